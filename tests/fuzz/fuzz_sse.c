/* tests/fuzz/fuzz_sse.c - SSE parser fed in chunk splits the input decides, and the same
 * bytes fed whole against one at a time */
/* SPDX-License-Identifier: Apache-2.0 */
#include <string.h>

#include "core/gv_buf.h"
#include "gateway/gw_sse.h"
#include "tests/fuzz/fuzz.h"

struct seen {
    struct gv_buf raw;  /* every event's raw bytes, concatenated */
    struct gv_buf flat; /* every event as "name|has_data|done|data_len:data|raw_len\n" */
    size_t events;
    size_t stop_after; /* the callback fails on this event (0: never) */
};

static gv_rc on_event(void *arg, const struct gw_sse_event *ev)
{
    struct seen *s = arg;

    FUZZ_CHECK(ev->data && ev->name && ev->raw);
    FUZZ_CHECK(ev->name[strlen(ev->name)] == '\0');
    FUZZ_CHECK(ev->has_data || ev->data_len == 0);
    FUZZ_CHECK(!ev->done || (ev->data_len == 6 && memcmp(ev->data, "[DONE]", 6) == 0));
    FUZZ_CHECK(ev->data_len <= ev->raw_len);
    s->events++;
    (void)gv_buf_appendf(&s->flat, "%s|%d|%d|%zu:", ev->name, ev->has_data, ev->done, ev->data_len);
    (void)gv_buf_append(&s->flat, ev->data, ev->data_len);
    (void)gv_buf_appendf(&s->flat, "|%zu\n", ev->raw_len);
    if (s->stop_after && s->events == s->stop_after) {
        return GV_EIO;
    }
    return gv_buf_append(&s->raw, ev->raw, ev->raw_len);
}

/* bytes[0..n) through a fresh parser, whole (step 0) or step bytes a feed;
 * returns the first failure, or finish's rc. Events whole in a feed take the
 * parser's no-copy path, the others its copying path: both must see the same. */
static gv_rc run_steps(const char *bytes, size_t n, size_t step, size_t max_event, struct seen *s)
{
    struct gw_sse p;
    size_t off = 0;
    gv_rc rc = GV_OK;

    gw_sse_init(&p, max_event);
    while (off < n && rc == GV_OK) {
        size_t k = step == 0 || step > n - off ? n - off : step;
        rc = gw_sse_feed(&p, bytes + off, k, on_event, s);
        off += k;
    }
    if (rc == GV_OK) {
        rc = gw_sse_finish(&p, on_event, s);
    }
    gw_sse_free(&p);
    return rc;
}

static void seen_init(struct seen *s, size_t stop_after)
{
    memset(s, 0, sizeof(*s));
    gv_buf_init(&s->raw, 0);
    gv_buf_init(&s->flat, 0);
    s->stop_after = stop_after;
}

static void seen_free(struct seen *s)
{
    gv_buf_free(&s->raw);
    gv_buf_free(&s->flat);
}

static void check_whole_against_bytes(const char *bytes, size_t n, size_t max_event,
                                      size_t stop_after)
{
    struct seen whole, one;
    gv_rc rc_whole, rc_one;

    seen_init(&whole, stop_after);
    seen_init(&one, stop_after);
    rc_whole = run_steps(bytes, n, 0, max_event, &whole);
    rc_one = run_steps(bytes, n, 1, max_event, &one);
    FUZZ_CHECK(rc_whole == rc_one);
    FUZZ_CHECK(whole.flat.len == one.flat.len);
    FUZZ_CHECK(whole.flat.len == 0 || memcmp(whole.flat.data, one.flat.data, one.flat.len) == 0);
    seen_free(&whole);
    seen_free(&one);
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
    seen_init(&s, data[1] % 8 == 7 ? (size_t)(data[1] >> 3) + 1 : 0);
    check_whole_against_bytes((const char *)data + 2, size - 2, max_event, s.stop_after);
    off = 2;
    gw_sse_init(&p, max_event);
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
    seen_free(&s);
    return 0;
}
