/* tests/unit/gateway/h1resp/test_gw_h1resp.c - response framing: splits, bodies, malformed */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/gv_buf.h"
#include "gateway/gw_h1resp.h"
#include "tests/unit/unit_rand.h"

/* What a run saw, flattened so whole runs compare as strings. */
struct run {
    struct gv_buf body;
    int heads;
    int status;
    bool done;
    bool error;
    bool keep_alive;
    size_t leftover; /* bytes after the end of the message */
    char ctype[128];
    char reqid[128];
    char retry[64];
    char pass[512];
    const char *err;
};

/* Split modes: 0 whole, 1 byte at a time, 2.. random cuts seeded by the mode. */
static size_t next_cut(unsigned mode, uint32_t *rng, size_t left)
{
    if (mode == 0) {
        return left;
    }
    if (mode == 1) {
        return 1;
    }
    return 1 + unit_xorshift32(rng) % (left < 23 ? left : 23);
}

/* Feeds `wire` the way the client does: arrived bytes stay in one buffer until
 * the parser took them; eof() after the last byte when `eof` is set. */
static void run_wire(const char *wire, size_t len, unsigned mode, bool eof, struct run *out)
{
    struct gw_h1resp r;
    struct gv_buf in;
    size_t arrived = 0, pos = 0, used;
    uint32_t rng = 2463534242u + mode;
    enum gw_h1resp_ev ev;

    memset(out, 0, sizeof(*out));
    gv_buf_init(&out->body, 0);
    gv_buf_init(&in, 0);
    gw_h1resp_init(&r);
    while (arrived < len && !out->done && !out->error) {
        size_t cut = next_cut(mode, &rng, len - arrived);
        assert_int_equal(gv_buf_append(&in, wire + arrived, cut), GV_OK);
        arrived += cut;
        for (;;) {
            ev = gw_h1resp_feed(&r, in.data + pos, in.len - pos, &used);
            assert_true(used <= in.len - pos);
            pos += used;
            if (ev == GW_H1R_MORE) {
                assert_int_equal(pos, in.len);
                break;
            }
            if (ev == GW_H1R_HEAD) {
                out->heads++;
                out->status = r.head.status;
                snprintf(out->ctype, sizeof(out->ctype), "%s", r.head.content_type);
                snprintf(out->reqid, sizeof(out->reqid), "%s", r.head.request_id);
                snprintf(out->retry, sizeof(out->retry), "%s", r.head.retry_after);
                snprintf(out->pass, sizeof(out->pass), "%s",
                         r.head.pass.data ? r.head.pass.data : "");
            }
            else if (ev == GW_H1R_BODY) {
                assert_true(r.body >= in.data && r.body + r.body_len <= in.data + in.len);
                assert_int_equal(out->heads, 1);
                gv_buf_append(&out->body, r.body, r.body_len);
            }
            else if (ev == GW_H1R_DONE) {
                out->done = true;
                out->keep_alive = r.keep_alive;
                break;
            }
            else {
                out->error = true;
                out->err = r.err;
                assert_non_null(r.err);
                break;
            }
        }
    }
    if (!out->done && !out->error && eof) {
        ev = gw_h1resp_eof(&r);
        if (ev == GW_H1R_DONE) {
            out->done = true;
            out->keep_alive = r.keep_alive;
        }
        else {
            assert_int_equal(ev, GW_H1R_ERROR);
            out->error = true;
            out->err = r.err;
        }
    }
    if (out->done) {
        out->leftover = len - pos;
    }
    if (out->error) {
        /* A failed parser stays failed. */
        assert_int_equal(gw_h1resp_feed(&r, "x", 1, &used), GW_H1R_ERROR);
    }
    gw_h1resp_free(&r);
    gv_buf_free(&in);
}

static void run_free(struct run *r)
{
    gv_buf_free(&r->body);
}

static const char *body_of(const struct run *r)
{
    return r->body.data ? r->body.data : "";
}

struct good_case {
    const char *name;
    const char *wire;
    bool eof; /* the peer closes after the last byte */
    int status;
    const char *body;
    bool keep_alive;
    size_t leftover;
};

static const struct good_case GOOD[] = {
    {"content-length",
     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
     "11\r\n\r\n{\"a\":\"bcd\"}",
     false, 200, "{\"a\":\"bcd\"}", true, 0},
    {"chunked with extensions and trailers",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
     "5;ext=1\r\nhello\r\n6;name=\"quoted\";x\r\n world\r\n"
     "A\r\n0123456789\r\n0\r\nX-Trailer: t\r\nX-Other: u\r\n\r\n",
     false, 200, "hello world0123456789", true, 0},
    {"chunked, upper-case size, no trailers",
     "HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n"
     "0\r\n\r\n",
     false, 200, "abcdefghijklmnopqrstuvwxyz", true, 0},
    {"close-delimited", "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: x\n\n",
     true, 200, "data: x\n\n", false, 0},
    {"close-delimited, empty", "HTTP/1.1 200 OK\r\n\r\n", true, 200, "", false, 0},
    {"1xx then 200",
     "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
     "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
     false, 200, "ok", true, 0},
    {"204 has no body", "HTTP/1.1 204 No Content\r\n\r\n", false, 204, "", true, 0},
    {"content-length 0", "HTTP/1.1 429 Too Many\r\nContent-Length: 0\r\n\r\n", false, 429, "", true,
     0},
    {"HTTP/1.0 closes", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi", false, 200, "hi", false,
     0},
    {"HTTP/1.0 keep-alive",
     "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi", false, 200, "hi",
     true, 0},
    {"Connection: close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi",
     false, 200, "hi", false, 0},
    {"bytes after the message", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1", false,
     200, "hi", true, 8},
    {"obs-text and tabs in values",
     "HTTP/1.1 200 \xc3\xa9t\xc3\xa9\r\nX-A:\tv\xe9\t\r\nContent-Length: 1\r\n\r\n!", false, 200,
     "!", true, 0},
};

static void test_feed_good_cases_in_every_split(void **state)
{
    size_t i;
    unsigned mode;
    struct run r;

    (void)state;
    for (i = 0; i < sizeof(GOOD) / sizeof(GOOD[0]); i++) {
        for (mode = 0; mode < 40; mode++) {
            const struct good_case *c = &GOOD[i];
            run_wire(c->wire, strlen(c->wire), mode, c->eof, &r);
            if (r.error || !r.done) {
                fail_msg("%s (split %u): %s", c->name, mode, r.err ? r.err : "not done");
            }
            assert_int_equal(r.heads, 1);
            assert_int_equal(r.status, c->status);
            assert_string_equal(body_of(&r), c->body);
            assert_int_equal(r.keep_alive, c->keep_alive);
            assert_int_equal(r.leftover, c->leftover);
            run_free(&r);
        }
    }
}

static void test_feed_keeps_the_headers_the_gateway_passes_on(void **state)
{
    static const char wire[] = "HTTP/1.1 100 Continue\r\nx-request-id: not-this-one\r\n\r\n"
                               "HTTP/1.1 429 Too Many Requests\r\n"
                               "Content-Type: application/json; charset=utf-8\r\n"
                               "X-Request-Id: req_123\r\n"
                               "Retry-After: 7\r\n"
                               "retry-after-ms: 6500\r\n"
                               "x-should-retry: true\r\n"
                               "x-ratelimit-remaining-requests: 0\r\n"
                               "openai-version: 2020-10-01\r\n"
                               "openai-processing-ms: 12   \r\n"
                               "Set-Cookie: secret=1\r\n"
                               "Content-Length: 2\r\n\r\n{}";
    struct run r;
    unsigned mode;

    (void)state;
    for (mode = 0; mode < 8; mode++) {
        run_wire(wire, strlen(wire), mode, false, &r);
        assert_true(r.done);
        assert_int_equal(r.status, 429);
        assert_string_equal(r.ctype, "application/json; charset=utf-8");
        assert_string_equal(r.reqid, "req_123");
        assert_string_equal(r.retry, "7");
        assert_string_equal(r.pass, "retry-after-ms: 6500\r\n"
                                    "x-should-retry: true\r\n"
                                    "x-ratelimit-remaining-requests: 0\r\n"
                                    "openai-version: 2020-10-01\r\n"
                                    "openai-processing-ms: 12\r\n");
        run_free(&r);
    }
}

struct bad_case {
    const char *name;
    const char *wire;
    bool eof;
};

static const struct bad_case BAD[] = {
    {"CL and TE",
     "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
     "5\r\nhello\r\n0\r\n\r\n",
     false},
    {"TE and CL",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
     "5\r\nhello\r\n0\r\n\r\n",
     false},
    {"two CL", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi", false},
    {"differing CL", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nhi!", false},
    {"CL not a number", "HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\nhi", false},
    {"CL negative", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nhi", false},
    {"TE gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nhi", true},
    {"TE gzip, chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
     false},
    {"TE twice",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"
     "\r\n0\r\n\r\n",
     false},
    {"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhi\r\n0\r\n\r\n",
     false},
    {"chunk size overflow",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
     "fffffffffffffffff\r\nhi\r\n0\r\n\r\n",
     false},
    {"chunk data without CRLF",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
     "5\r\nhelloXY0\r\n\r\n",
     false},
    {"chunk size line with bare LF",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
     "5\nhello\r\n0\r\n\r\n",
     false},
    {"chunk size line with bare CR",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
     "5\rXhello\r\n0\r\n\r\n",
     false},
    {"control byte in chunk extension",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
     "5;a\x01\r\nhello\r\n0\r\n\r\n",
     false},
    {"bare LF in head", "HTTP/1.1 200 OK\nContent-Length: 2\r\n\r\nhi", false},
    {"bare LF ends head", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\nhi", false},
    {"bare CR in head", "HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\nhi", false},
    {"obs-fold", "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nhi", false},
    {"NUL in head", "HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 2\r\n\r\nhi", false},
    {"status 000", "HTTP/1.1 000 Zero\r\nContent-Length: 2\r\n\r\nhi", false},
    {"1xx with a body", "HTTP/1.1 100 Continue\r\nContent-Length: 2\r\n\r\nok", false},
    {"HTTP/2.0", "HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nhi", false},
    {"not HTTP", "SSH-2.0-OpenSSH_9.2\r\n", true},
    {"101", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
     false},
    {"cut mid-chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", true},
    {"cut before the last chunk",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
     "5\r\nhello\r\n",
     true},
    {"cut mid-length", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", true},
    {"cut mid-head", "HTTP/1.1 200 OK\r\nContent-Le", true},
    {"closed without answer", "", true},
};

static void test_feed_malformed_is_an_error_in_every_split(void **state)
{
    size_t i;
    unsigned mode;
    struct run r;

    (void)state;
    for (i = 0; i < sizeof(BAD) / sizeof(BAD[0]); i++) {
        /* sizeof, not strlen: the NUL case carries a NUL. */
        size_t len = strlen(BAD[i].wire);
        if (strstr(BAD[i].name, "NUL")) {
            len = sizeof("HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 2\r\n\r\nhi") - 1;
        }
        for (mode = 0; mode < 40; mode++) {
            run_wire(BAD[i].wire, len, mode, BAD[i].eof, &r);
            if (!r.error) {
                fail_msg("%s (split %u): accepted, body '%s'", BAD[i].name, mode, body_of(&r));
            }
            assert_false(r.done);
            run_free(&r);
        }
    }
}

/* The middle of a line is checked eight bytes at a time: a control byte is
 * found wherever it sits in the word, a tab or obs-text is passed. The reason
 * phrase is the part libhttp-parser takes any byte in. */
static void test_feed_control_bytes_at_every_offset(void **state)
{
    static const char bad[] = {'\0', '\x01', '\x1f', '\x7f'};
    static const char good[] = {'\t', ' ', '\x80', '\xff', '~'};
    struct gv_buf w;
    struct run r;
    size_t k, i, j;
    unsigned mode;

    (void)state;
    for (k = 0; k < 24; k++) {
        for (i = 0; i < sizeof(bad) + sizeof(good); i++) {
            bool is_bad = i < sizeof(bad);
            gv_buf_init(&w, 0);
            gv_buf_append_str(&w, "HTTP/1.1 200 ");
            for (j = 0; j < k; j++) {
                gv_buf_append_char(&w, 'a');
            }
            gv_buf_append_char(&w, is_bad ? bad[i] : good[i - sizeof(bad)]);
            gv_buf_append_str(&w, "bcdefghijklmnop\r\nContent-Length: 2\r\n\r\nhi");
            for (mode = 0; mode < 3; mode++) {
                run_wire(w.data, w.len, mode, false, &r);
                if (is_bad) {
                    assert_true(r.error);
                    assert_string_equal(r.err, "control byte in the upstream answer's framing");
                }
                else {
                    assert_true(r.done);
                    assert_string_equal(body_of(&r), "hi");
                }
                run_free(&r);
            }
            gv_buf_free(&w);
        }
    }
}

static void test_feed_refuses_a_head_over_the_cap(void **state)
{
    struct gv_buf w;
    struct run r;
    size_t i;

    (void)state;
    gv_buf_init(&w, 0);
    gv_buf_append_str(&w, "HTTP/1.1 200 OK\r\n");
    for (i = 0; i < 2000; i++) {
        gv_buf_appendf(&w, "X-Filler-%zu: %040zu\r\n", i, i);
    }
    gv_buf_append_str(&w, "Content-Length: 0\r\n\r\n");
    run_wire(w.data, w.len, 0, false, &r);
    assert_true(r.error);
    run_free(&r);
    run_wire(w.data, w.len, 7, false, &r);
    assert_true(r.error);
    run_free(&r);
    gv_buf_free(&w);
}

static void test_feed_long_values_are_cut_not_overflowed(void **state)
{
    struct gv_buf w;
    struct run r;
    size_t i;

    (void)state;
    gv_buf_init(&w, 0);
    gv_buf_append_str(&w, "HTTP/1.1 200 OK\r\nContent-Type: ");
    for (i = 0; i < 1000; i++) {
        gv_buf_append_char(&w, 'a');
    }
    gv_buf_append_str(&w, "\r\nopenai-long: ");
    for (i = 0; i < 1000; i++) {
        gv_buf_append_char(&w, 'b');
    }
    gv_buf_append_str(&w, "\r\nopenai-short: s\r\nContent-Length: 1\r\n\r\n!");
    run_wire(w.data, w.len, 1, false, &r);
    assert_true(r.done);
    assert_int_equal(strlen(r.ctype), 127);
    /* A value cut to fit is dropped, not passed on changed. */
    assert_string_equal(r.pass, "openai-short: s\r\n");
    run_free(&r);
    gv_buf_free(&w);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_feed_good_cases_in_every_split),
    cmocka_unit_test(test_feed_keeps_the_headers_the_gateway_passes_on),
    cmocka_unit_test(test_feed_malformed_is_an_error_in_every_split),
    cmocka_unit_test(test_feed_control_bytes_at_every_offset),
    cmocka_unit_test(test_feed_refuses_a_head_over_the_cap),
    cmocka_unit_test(test_feed_long_values_are_cut_not_overflowed),
};

#include "tests/unit/unit_main.h"
