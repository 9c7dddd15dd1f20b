/* tests/fuzz/fuzz_h1req.c - request framing fed whole, byte-wise and in input-chosen splits */
/* SPDX-License-Identifier: Apache-2.0 */
#include <string.h>

#include "core/gv_buf.h"
#include "gateway/gw_h1req.h"
#include "tests/fuzz/fuzz.h"

static void check_head(const struct gw_h1req *r)
{
    const struct gw_h1_head *h = &r->head;
    size_t i, bytes = 0;

    FUZZ_CHECK(h->method_str && h->target && h->path);
    FUZZ_CHECK(h->target[h->target_len] == '\0');
    FUZZ_CHECK(h->path[h->path_len] == '\0');
    /* An origin-form path is the target up to its query or fragment. */
    if (h->target[0] == '/') {
        FUZZ_CHECK(h->path_len <= h->target_len);
        FUZZ_CHECK(memcmp(h->path, h->target, h->path_len) == 0);
        FUZZ_CHECK(h->path_len == h->target_len || h->target[h->path_len] == '?' ||
                   h->target[h->path_len] == '#');
    }
    FUZZ_CHECK(h->path_len > 0 && h->path_len <= h->target_len + 1);
    FUZZ_CHECK(h->target_len < r->lim.max_line);
    FUZZ_CHECK(h->minor == 0 || h->minor == 1);
    FUZZ_CHECK(h->nhdrs <= r->lim.max_headers);
    FUZZ_CHECK(!(h->chunked && h->has_length));
    for (i = 0; i < h->nhdrs; i++) {
        const struct gw_h1_hdr *x = &h->hdrs[i];
        FUZZ_CHECK(x->name_len > 0 && x->name_len < r->lim.max_line);
        FUZZ_CHECK(x->value_len < r->lim.max_line);
        FUZZ_CHECK(x->name[x->name_len] == '\0');
        FUZZ_CHECK(memchr(x->name, '\0', x->name_len) == NULL);
        FUZZ_CHECK(memchr(x->value, '\r', x->value_len) == NULL);
        FUZZ_CHECK(memchr(x->value, '\n', x->value_len) == NULL);
        FUZZ_CHECK(memchr(x->value, '\0', x->value_len) == NULL);
        if (x->value_len > 0) {
            FUZZ_CHECK(x->value[0] != ' ' && x->value[0] != '\t');
            FUZZ_CHECK(x->value[x->value_len - 1] != ' ' && x->value[x->value_len - 1] != '\t');
        }
        bytes += x->name_len + x->value_len;
    }
    FUZZ_CHECK(bytes + h->target_len <= r->lim.max_head);
    FUZZ_CHECK(gw_h1req_header_count(h, "content-length") <= 1);
    FUZZ_CHECK(gw_h1req_header_count(h, "host") <= 1);
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

/* mode 0: whole; 1: byte-wise; else pieces of 1..max_piece bytes from seed. */
static void run(const uint8_t *data, size_t size, const struct gw_h1_limits *lim, uint64_t mode,
                size_t max_piece, struct gv_buf *seen)
{
    struct gw_h1req r;
    uint64_t seed = mode;
    size_t pos = 0, start = 0;
    bool head_seen = false, busy = false;

    gw_h1req_init(&r, lim);
    while (pos < size) {
        size_t piece = size - pos, off = 0;
        if (mode == 1) {
            piece = 1;
        }
        else if (mode > 1) {
            size_t cap = size - pos < max_piece ? size - pos : max_piece;
            piece = 1 + (size_t)(rng_next(&seed) % cap);
        }
        while (off < piece) {
            size_t used = SIZE_MAX;
            enum gw_h1_status st;
            st = gw_h1req_feed(&r, (const char *)data + pos + off, piece - off, &used);
            FUZZ_CHECK(used <= piece - off);
            off += used;
            busy = true;
            if (st == GW_H1_MORE) {
                FUZZ_CHECK(off == piece);
                FUZZ_CHECK(!head_seen || gw_h1req_in_body(&r));
                continue;
            }
            if (st == GW_H1_HEAD) {
                FUZZ_CHECK(!head_seen);
                head_seen = true;
                check_head(&r);
                FUZZ_CHECK(r.head.chunked || r.head.content_length > 0);
                FUZZ_CHECK(gw_h1req_in_body(&r) && !gw_h1req_in_head(&r));
                continue;
            }
            if (st == GW_H1_ERROR) {
                size_t again = SIZE_MAX;
                FUZZ_CHECK(r.err_status >= 400 && r.err_status <= 505);
                FUZZ_CHECK(r.err_code && r.err_msg);
                FUZZ_CHECK(gw_h1req_feed(&r, "GET / HTTP/1.1\r\n\r\n", 18, &again) == GW_H1_ERROR);
                FUZZ_CHECK(again == 0);
                gv_buf_appendf(seen, "error %d %s at %zu\n", r.err_status, r.err_code, pos + off);
                gw_h1req_free(&r);
                return;
            }
            FUZZ_CHECK(st == GW_H1_DONE);
            check_head(&r);
            FUZZ_CHECK(head_seen == (r.head.chunked || r.head.content_length > 0));
            FUZZ_CHECK(!gw_h1req_in_body(&r) && !gw_h1req_in_head(&r));
            FUZZ_CHECK(r.body.len <= r.lim.max_body);
            if (r.head.has_length) {
                FUZZ_CHECK(r.body.len == r.head.content_length);
            }
            if (!r.head.has_length && !r.head.chunked) {
                FUZZ_CHECK(r.body.len == 0);
            }
            gv_buf_appendf(seen, "%s %s %zu-%zu ka=%d hdrs=%zu body=%zu:", r.head.method_str,
                           r.head.target, start, pos + off, r.head.keep_alive ? 1 : 0, r.head.nhdrs,
                           r.body.len);
            gv_buf_append(seen, r.body.data ? r.body.data : "", r.body.len);
            gv_buf_append_char(seen, '\n');
            gw_h1req_next(&r);
            head_seen = false;
            busy = false;
            start = pos + off;
            if (off == piece) {
                gw_h1req_release(&r);
                FUZZ_CHECK(r.hbuf.data == NULL && r.body.data == NULL);
            }
        }
        pos += piece;
    }
    if (busy) {
        gv_buf_appendf(seen, "partial from %zu\n", start);
    }
    gw_h1req_free(&r);
}

/* data[0] picks the limits (odd: small ones, so every limit is reached),
 * data[1] the seed of the random splits and their largest piece; the rest is
 * what a client sent. The verdicts of the whole, byte-wise and split runs
 * must be the same, down to the offsets. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gw_h1_limits lim;
    /* Everything each run saw, rendered so that runs compare as bytes. */
    struct gv_buf whole, bytes, split;

    if (size < 2) {
        return 0;
    }
    memset(&lim, 0, sizeof(lim));
    if (data[0] & 1) {
        lim.max_line = 8 + (size_t)(data[0] >> 1) % 64;
        lim.max_head = lim.max_line + (size_t)(data[0] >> 3) * 8;
        lim.max_headers = 1 + (size_t)(data[0] >> 1) % 8;
        lim.max_body = (size_t)(data[0] >> 2) + 1;
    }
    gv_buf_init(&whole, 0);
    gv_buf_init(&bytes, 0);
    gv_buf_init(&split, 0);
    run(data + 2, size - 2, &lim, 0, 0, &whole);
    run(data + 2, size - 2, &lim, 1, 0, &bytes);
    run(data + 2, size - 2, &lim, 2 + data[1], 1 + (size_t)(data[1] % 32), &split);
    FUZZ_CHECK(whole.len == bytes.len);
    FUZZ_CHECK(whole.len == 0 || memcmp(whole.data, bytes.data, whole.len) == 0);
    FUZZ_CHECK(whole.len == split.len);
    FUZZ_CHECK(whole.len == 0 || memcmp(whole.data, split.data, whole.len) == 0);
    gv_buf_free(&whole);
    gv_buf_free(&bytes);
    gv_buf_free(&split);
    return 0;
}
