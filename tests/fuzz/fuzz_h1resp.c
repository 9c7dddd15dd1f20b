/* tests/fuzz/fuzz_h1resp.c - upstream response framing fed in splits the input decides */
/* SPDX-License-Identifier: Apache-2.0 */
#include <string.h>

#include "core/gv_buf.h"
#include "gateway/gw_h1resp.h"
#include "tests/fuzz/fuzz.h"

/* The first byte chooses how the rest is cut into arrivals (0: one piece) and
 * whether the peer closes after the last byte. Arrived bytes stay in one buffer
 * until the parser took them, as in the client. Checks: used never passes what
 * was given, body pointers stay inside the arrived bytes, body bytes never
 * exceed the bytes fed, one head at most and before any body, a failed or
 * finished parser stays so, and pass-through lines stay under their cap. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gw_h1resp r;
    struct gv_buf in;
    size_t off = 1, pos = 0, used, body = 0;
    unsigned cut, heads = 0;
    bool eof, over = false;
    enum gw_h1resp_ev ev = GW_H1R_MORE;

    if (size < 1) {
        return 0;
    }
    cut = data[0] & 0x1f;
    eof = (data[0] & 0x20) != 0;
    gw_h1resp_init(&r);
    gv_buf_init(&in, 0);
    while (off < size && !over) {
        size_t n = cut ? cut : size - off;
        if (n > size - off) {
            n = size - off;
        }
        FUZZ_CHECK(gv_buf_append(&in, data + off, n) == GV_OK);
        off += n;
        for (;;) {
            ev = gw_h1resp_feed(&r, in.data + pos, in.len - pos, &used);
            FUZZ_CHECK(used <= in.len - pos);
            pos += used;
            if (ev == GW_H1R_MORE) {
                FUZZ_CHECK(pos == in.len);
                break;
            }
            if (ev == GW_H1R_HEAD) {
                heads++;
                FUZZ_CHECK(heads == 1 && body == 0);
                FUZZ_CHECK(r.head.status >= 200 && r.head.status <= 999);
                FUZZ_CHECK(r.head.pass.len <= GW_H1RESP_PASS_MAX);
                FUZZ_CHECK(strlen(r.head.content_type) < sizeof(r.head.content_type));
                continue;
            }
            if (ev == GW_H1R_BODY) {
                FUZZ_CHECK(heads == 1);
                FUZZ_CHECK(r.body >= in.data && r.body + r.body_len <= in.data + in.len);
                body += r.body_len;
                continue;
            }
            FUZZ_CHECK(ev == GW_H1R_DONE || (ev == GW_H1R_ERROR && r.err != NULL));
            FUZZ_CHECK(ev == GW_H1R_ERROR || heads == 1);
            over = true;
            break;
        }
    }
    if (!over && eof) {
        ev = gw_h1resp_eof(&r);
        FUZZ_CHECK(ev == GW_H1R_DONE || (ev == GW_H1R_ERROR && r.err != NULL));
        FUZZ_CHECK(ev == GW_H1R_ERROR || heads == 1);
    }
    if (ev == GW_H1R_ERROR) {
        FUZZ_CHECK(gw_h1resp_feed(&r, "x", 1, &used) == GW_H1R_ERROR);
    }
    FUZZ_CHECK(body <= size);
    gw_h1resp_free(&r);
    gv_buf_free(&in);
    return 0;
}
