/* tests/fuzz/fuzz_sse.c - SSE parser fed in chunk splits the input decides */
/* SPDX-License-Identifier: Apache-2.0 */
#include <string.h>

#include "core/gv_buf.h"
#include "gateway/gw_sse.h"
#include "tests/fuzz/fuzz.h"

struct seen {
    struct gv_buf raw; /* every event's raw bytes, concatenated */
    size_t events;
    size_t stop_after; /* the callback fails on this event (0: never) */
};

static gv_rc on_event(void *arg, const struct gw_sse_event *ev)
{
    struct seen *s = arg;

    FUZZ_CHECK(ev->data && ev->name && ev->raw);
    FUZZ_CHECK(ev->data[ev->data_len] == '\0');
    FUZZ_CHECK(ev->has_data || ev->data_len == 0);
    FUZZ_CHECK(!ev->done || (ev->data_len == 6 && memcmp(ev->data, "[DONE]", 6) == 0));
    FUZZ_CHECK(ev->data_len <= ev->raw_len);
    s->events++;
    if (s->stop_after && s->events == s->stop_after) {
        return GV_EIO;
    }
    return gv_buf_append(&s->raw, ev->raw, ev->raw_len);
}

/* The first bytes choose the event bound and where the rest is cut into
 * feeds, so the fuzzer explores lines and CRLFs split at every offset. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gw_sse p;
    struct seen s;
    size_t max_event, off, fed = 0;
    bool failed = false;
    gv_rc rc = GV_OK;

    if (size < 3) {
        return 0;
    }
    max_event = (size_t)data[0] * 4 + 1;
    memset(&s, 0, sizeof(s));
    s.stop_after = data[1] % 8 == 7 ? (size_t)(data[1] >> 3) + 1 : 0;
    off = 2;
    gw_sse_init(&p, max_event);
    gv_buf_init(&s.raw, 0);
    while (off < size) {
        size_t n = (size_t)data[off] % 17;
        off++;
        if (n > size - off) {
            n = size - off;
        }
        rc = gw_sse_feed(&p, (const char *)data + off, n, on_event, &s);
        if (failed) {
            FUZZ_CHECK(rc == GV_EPROTO);
        }
        if (rc != GV_OK) {
            failed = true;
        }
        else {
            fed += n;
        }
        off += n;
    }
    if (!failed) {
        rc = gw_sse_finish(&p, on_event, &s);
        /* Without a failure every byte was reported in exactly one event,
         * except a trailing blank-less block that carried no data. */
        if (rc == GV_OK) {
            FUZZ_CHECK(s.raw.len <= fed);
        }
    }
    gw_sse_free(&p);
    gv_buf_free(&s.raw);
    return 0;
}
