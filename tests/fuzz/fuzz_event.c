/* tests/fuzz/fuzz_event.c - how the agent reads frames and events: socket, journal, spool */
/* SPDX-License-Identifier: Apache-2.0 */
#include <string.h>

#include "core/gv_buf.h"
#include "core/gv_event.h"
#include "tests/fuzz/fuzz.h"

/* The input is what the agent reads from a gateway socket, its journal or a gateway spool: a
 * run of frames, each decoded by its type as the agent does, or a spool file (by its magic).
 * Checks: a frame never claims more
 * than the bytes given or more than GV_FRAME_MAX, every decoded string is terminated within its
 * field, and a decoded event encodes again (the agent re-journals what it applied) and decodes
 * to the same run id and sequence. */
static void check_event(const uint8_t *p, size_t n)
{
    struct gv_record rec, again;
    struct gv_event_meta meta, meta2;
    struct gv_buf out;

    memset(&rec, 0, sizeof(rec));
    if (gv_event_decode(p, n, &rec, &meta) != GV_OK) {
        return;
    }
    FUZZ_CHECK(memchr(meta.instance_id, '\0', sizeof(meta.instance_id)) != NULL);
    FUZZ_CHECK(memchr(rec.run_id, '\0', sizeof(rec.run_id)) != NULL);
    FUZZ_CHECK(memchr(rec.request_id, '\0', sizeof(rec.request_id)) != NULL);
    gv_buf_init(&out, GV_FRAME_MAX * 4u);
    if (gv_event_encode(&rec, meta.instance_id, meta.seq, &out) == GV_OK) {
        memset(&again, 0, sizeof(again));
        FUZZ_CHECK(gv_event_decode(out.data, out.len, &again, &meta2) == GV_OK);
        FUZZ_CHECK(meta2.seq == meta.seq);
        FUZZ_CHECK(strcmp(again.run_id, rec.run_id) == 0);
        FUZZ_CHECK(strcmp(again.request_id, rec.request_id) == 0);
        gv_record_release(&again);
    }
    gv_buf_free(&out);
    gv_record_release(&rec);
}

/* A gateway spool: "KTSPOOL1", u64 acked seq, then u32 length | payload records. */
static void read_spool(const uint8_t *data, size_t size)
{
    size_t off = 16;

    while (size - off >= 4) {
        uint32_t n = gv_get_u32le(data + off);
        if (n > GV_FRAME_MAX || n > size - off - 4) {
            return;
        }
        check_event(data + off + 4, n);
        off += 4 + (size_t)n;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;

    if (size >= 16 && memcmp(data, "KTSPOOL1", 8) == 0) {
        read_spool(data, size);
        return 0;
    }

    while (off < size) {
        unsigned type;
        const uint8_t *payload;
        size_t plen, used;
        struct gv_hello h;

        if (gv_frame_parse(data + off, size - off, &type, &payload, &plen, &used) != GV_OK) {
            break;
        }
        FUZZ_CHECK(used == GV_FRAME_HDR + plen && used <= size - off);
        FUZZ_CHECK(plen <= GV_FRAME_MAX);
        FUZZ_CHECK(payload == data + off + GV_FRAME_HDR);
        if (type == GV_FRAME_HELLO && gv_hello_decode(payload, plen, &h) == GV_OK) {
            FUZZ_CHECK(memchr(h.instance_id, '\0', sizeof(h.instance_id)) != NULL);
            FUZZ_CHECK(memchr(h.pack_name, '\0', sizeof(h.pack_name)) != NULL);
            FUZZ_CHECK(memchr(h.chain, '\0', sizeof(h.chain)) != NULL);
        }
        else if (type == GV_FRAME_EVENT) {
            check_event(payload, plen);
        }
        off += used;
    }
    /* The payload alone, as a spool record's body is handed to the decoder. */
    check_event(data, size);
    return 0;
}
