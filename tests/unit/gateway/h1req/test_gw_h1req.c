/* tests/unit/gateway/h1req/test_gw_h1req.c - request framing: whole, byte-wise and random splits */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <http_parser.h>

#include "core/gv_buf.h"
#include "gateway/gw_h1req.h"

/* Every case is fed whole, one byte at a time and in RANDOM_SPLITS random
 * splits; each run renders what it got as text, and all runs must agree. A
 * request renders as
 *   "<METHOD> <path>[ target=<t>][ 1.0] ka=<0|1>[ cl=<n>][ chunked][ expect]
 *    hdrs={<name>: <value>|...} body=<body>\n"
 * and a refusal as "ERROR <status> <code> <message>\n". Requests pipelined in
 * one case render one after the other; bytes left after the last whole
 * request render as "PARTIAL <n>\n". */
#define RANDOM_SPLITS 8

struct row {
    const char *name;
    const char *raw;
    size_t len;
    const struct gw_h1_limits *lim;
    /* The whole rendering, or when it ends in a refusal a prefix of it
     * ("ERROR 400 invalid_request" alone accepts any 400 message). */
    const char *expect;
    bool prefix; /* expect is a prefix of the rendering in any case */
};

#define ROW(n, r, e)                                                                               \
    {                                                                                              \
        n, r, sizeof(r) - 1, NULL, e, false                                                        \
    }
#define ROWL(n, r, l, e)                                                                           \
    {                                                                                              \
        n, r, sizeof(r) - 1, l, e, false                                                           \
    }

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

static void render_head(struct gv_buf *out, const struct gw_h1req *r)
{
    const struct gw_h1_head *h = &r->head;
    size_t i;

    gv_buf_appendf(out, "%s %s", h->method_str, h->path);
    if (h->target_len != h->path_len || memcmp(h->target, h->path, h->path_len) != 0) {
        gv_buf_appendf(out, " target=%s", h->target);
    }
    if (h->minor == 0) {
        gv_buf_append_str(out, " 1.0");
    }
    gv_buf_appendf(out, " ka=%d", h->keep_alive ? 1 : 0);
    if (h->has_length) {
        gv_buf_appendf(out, " cl=%llu", (unsigned long long)h->content_length);
    }
    if (h->chunked) {
        gv_buf_append_str(out, " chunked");
    }
    if (h->expect_continue) {
        gv_buf_append_str(out, " expect");
    }
    gv_buf_append_str(out, " hdrs={");
    for (i = 0; i < h->nhdrs; i++) {
        if (i > 0) {
            gv_buf_append_char(out, '|');
        }
        gv_buf_append(out, h->hdrs[i].name, h->hdrs[i].name_len);
        gv_buf_append_str(out, ": ");
        gv_buf_append(out, h->hdrs[i].value, h->hdrs[i].value_len);
    }
    gv_buf_append_str(out, "}");
}

/* What must hold of a head whenever it is readable. */
static void check_head(const struct gw_h1req *r)
{
    const struct gw_h1_head *h = &r->head;
    size_t i;

    assert_non_null(h->method_str);
    assert_non_null(h->target);
    assert_non_null(h->path);
    assert_int_equal(h->target[h->target_len], '\0');
    assert_int_equal(h->path[h->path_len], '\0');
    /* An origin-form path is the target up to its query or fragment. */
    if (h->target[0] == '/') {
        assert_true(h->path_len <= h->target_len);
        assert_true(memcmp(h->path, h->target, h->path_len) == 0);
        assert_true(h->path_len == h->target_len || h->target[h->path_len] == '?' ||
                    h->target[h->path_len] == '#');
    }
    assert_true(h->path_len > 0);
    assert_true(h->minor == 0 || h->minor == 1);
    assert_true(h->nhdrs <= r->lim.max_headers);
    for (i = 0; i < h->nhdrs; i++) {
        const struct gw_h1_hdr *x = &h->hdrs[i];
        assert_true(x->name_len > 0);
        if (x->value_len > 0) {
            assert_true(x->value[0] != ' ' && x->value[0] != '\t');
            assert_true(x->value[x->value_len - 1] != ' ' && x->value[x->value_len - 1] != '\t');
        }
    }
}

/* Feeds raw in pieces of the sizes piece() picks, through every pipelined
 * request, and renders the outcome into out and the offsets of the events
 * into trace. mode: 0 whole, 1 byte-wise, else a random split seed. */
static void run(const struct row *c, uint64_t mode, struct gv_buf *out, struct gv_buf *trace)
{
    struct gw_h1req r;
    uint64_t seed = mode * 0x9E3779B97F4A7C15ULL + 1;
    size_t pos = 0, start = 0;
    bool saw_head = false, idle = true;

    gw_h1req_init(&r, c->lim);
    while (pos < c->len) {
        size_t piece = c->len - pos;
        size_t off = 0;
        if (mode == 1) {
            piece = 1;
        }
        else if (mode > 1) {
            piece =
                1 + (size_t)(rng_next(&seed) % (uint64_t)(c->len - pos < 24 ? c->len - pos : 24));
        }
        while (off < piece) {
            size_t used = 0;
            enum gw_h1_status st = gw_h1req_feed(&r, c->raw + pos + off, piece - off, &used);
            assert_true(used <= piece - off);
            off += used;
            idle = false;
            if (st == GW_H1_MORE) {
                assert_int_equal(off, piece);
                continue;
            }
            if (st == GW_H1_HEAD) {
                assert_false(saw_head);
                saw_head = true;
                check_head(&r);
                assert_true(gw_h1req_in_body(&r));
                assert_false(gw_h1req_in_head(&r));
                continue;
            }
            if (st == GW_H1_ERROR) {
                size_t again;
                gv_buf_appendf(out, "ERROR %d %s %s\n", r.err_status, r.err_code, r.err_msg);
                gv_buf_appendf(trace, "error@%zu\n", pos + off);
                assert_non_null(r.err_msg);
                assert_int_equal(r.err_msg[strlen(r.err_msg) - 1], '.');
                assert_int_equal(gw_h1req_feed(&r, "GET / HTTP/1.1\r\n\r\n", 18, &again),
                                 GW_H1_ERROR);
                assert_int_equal(again, 0);
                gw_h1req_free(&r);
                return;
            }
            /* GW_H1_DONE */
            check_head(&r);
            assert_false(gw_h1req_in_body(&r));
            assert_false(gw_h1req_in_head(&r));
            assert_int_equal(saw_head, r.head.chunked || r.head.content_length > 0);
            if (r.head.has_length) {
                assert_int_equal(r.body.len, r.head.content_length);
            }
            render_head(out, &r);
            gv_buf_append_str(out, " body=");
            gv_buf_append(out, r.body.data ? r.body.data : "", r.body.len);
            gv_buf_append_char(out, '\n');
            gv_buf_appendf(trace, "done@%zu-%zu\n", start, pos + off);
            {
                size_t again = 1;
                assert_int_equal(gw_h1req_feed(&r, "x", 1, &again), GW_H1_DONE);
                assert_int_equal(again, 0);
            }
            gw_h1req_next(&r);
            saw_head = false;
            start = pos + off;
            idle = true;
            if (off == piece) {
                /* Nothing buffered: an idle keep-alive connection holds no heap. */
                gw_h1req_release(&r);
                assert_null(r.hbuf.data);
                assert_null(r.body.data);
            }
        }
        pos += piece;
    }
    if (!idle) {
        gv_buf_appendf(out, "PARTIAL %zu\n", c->len - start);
        gv_buf_appendf(trace, "partial@%zu\n", start);
    }
    gw_h1req_free(&r);
}

static void check_row(const struct row *c)
{
    struct gv_buf whole, wtrace, out, trace;
    uint64_t mode;

    gv_buf_init(&whole, 0);
    gv_buf_init(&wtrace, 0);
    run(c, 0, &whole, &wtrace);
    for (mode = 1; mode < 2 + RANDOM_SPLITS; mode++) {
        gv_buf_init(&out, 0);
        gv_buf_init(&trace, 0);
        run(c, mode, &out, &trace);
        if (strcmp(out.data, whole.data) != 0 || strcmp(trace.data, wtrace.data) != 0) {
            print_message("case '%s': split %llu differs from whole\n", c->name,
                          (unsigned long long)mode);
            print_message("whole: %s%ssplit: %s%s", whole.data, wtrace.data, out.data, trace.data);
            fail();
        }
        gv_buf_free(&out);
        gv_buf_free(&trace);
    }
    if (c->prefix || strstr(c->expect, "ERROR ") != NULL
            ? strncmp(whole.data, c->expect, strlen(c->expect)) != 0
            : strcmp(whole.data, c->expect) != 0) {
        print_message("case '%s'\n  expected: %s\n  got:      %s", c->name, c->expect, whole.data);
        fail();
    }
    gv_buf_free(&whole);
    gv_buf_free(&wtrace);
}

static void check_rows(const struct row *rows, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        check_row(&rows[i]);
    }
}

#define H11 "HTTP/1.1\r\nHost: a\r\n"
#define CHUNKED "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
#define E400 "ERROR 400 invalid_request "

static const struct gw_h1_limits SMALL_BODY = {.max_body = 10};
static const struct gw_h1_limits ONE_HEADER = {.max_headers = 1};

/* ---- requests that must be taken ---- */

static const struct row ACCEPTED[] = {
    ROW("get", "GET / " H11 "\r\n", "GET / ka=1 hdrs={Host: a} body=\n"),
    ROW("query and fragment", "GET /v1/models?x=1#f " H11 "\r\n",
        "GET /v1/models target=/v1/models?x=1#f ka=1 hdrs={Host: a} body=\n"),
    ROW("absolute form", "GET http://h:8080/v1/x?y=2 " H11 "\r\n",
        "GET /v1/x target=http://h:8080/v1/x?y=2 ka=1 hdrs={Host: a} body=\n"),
    ROW("absolute form without path", "GET http://h " H11 "\r\n",
        "GET / target=http://h ka=1 hdrs={Host: a} body=\n"),
    ROW("asterisk", "OPTIONS * " H11 "\r\n", "OPTIONS * ka=1 hdrs={Host: a} body=\n"),
    ROW("head", "HEAD /health " H11 "\r\n", "HEAD /health ka=1 hdrs={Host: a} body=\n"),
    ROW("delete", "DELETE /x " H11 "\r\n", "DELETE /x ka=1 hdrs={Host: a} body=\n"),
    ROW("post with length", "POST /v1/chat/completions " H11 "Content-Length: 5\r\n\r\nhello",
        "POST /v1/chat/completions ka=1 cl=5 hdrs={Host: a|Content-Length: 5} body=hello\n"),
    ROW("post with length 0", "POST /p " H11 "Content-Length: 0\r\n\r\n",
        "POST /p ka=1 cl=0 hdrs={Host: a|Content-Length: 0} body=\n"),
    ROW("post without length", "POST /p " H11 "\r\n", "POST /p ka=1 hdrs={Host: a} body=\n"),
    ROW("length with spaces", "POST /p " H11 "Content-Length:  3  \r\n\r\nabc",
        "POST /p ka=1 cl=3 hdrs={Host: a|Content-Length: 3} body=abc\n"),
    ROW("body with binary bytes", "POST /p " H11 "Content-Length: 4\r\n\r\n\0\r\n\xff",
        "POST /p ka=1 cl=4 hdrs={Host: a|Content-Length: 4} body=\0\r\n\xff\n"),
    ROW("chunked", CHUNKED "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        "POST /c ka=1 chunked hdrs={Host: a|Transfer-Encoding: chunked} body=hello world\n"),
    ROW("chunked upper case hex and name",
        "POST /c " H11 "transfer-encoding: Chunked\r\n\r\n"
        "A\r\n0123456789\r\n0\r\n\r\n",
        "POST /c ka=1 chunked hdrs={Host: a|transfer-encoding: Chunked} body=0123456789\n"),
    ROW("chunked with spaces around the value",
        "POST /c " H11 "Transfer-Encoding:   chunked  \r\n\r\n1\r\nx\r\n0\r\n\r\n",
        "POST /c ka=1 chunked hdrs={Host: a|Transfer-Encoding: chunked} body=x\n"),
    ROW("chunked all upper case", "POST /c " H11 "TRANSFER-ENCODING: CHUNKED\r\n\r\n0\r\n\r\n",
        "POST /c ka=1 chunked hdrs={Host: a|TRANSFER-ENCODING: CHUNKED} body=\n"),
    ROW("chunked with leading zeros", CHUNKED "0003\r\nabc\r\n000\r\n\r\n",
        "POST /c ka=1 chunked hdrs={Host: a|Transfer-Encoding: chunked} body=abc\n"),
    ROW("chunk extensions",
        CHUNKED "1;ext=1\r\na\r\n1;name=\"quo;ted \\\" x\"\r\nb\r\n"
                "1 ; a = b ;c;d=\"\"\r\nc\r\n0;last\r\n\r\n",
        "POST /c ka=1 chunked hdrs={Host: a|Transfer-Encoding: chunked} body=abc\n"),
    ROW("trailers are dropped", CHUNKED "1\r\nx\r\n0\r\nX-Sum: 1\r\nContent-Length: 9\r\n\r\n",
        "POST /c ka=1 chunked hdrs={Host: a|Transfer-Encoding: chunked} body=x\n"),
    ROW("empty chunked body", CHUNKED "0\r\n\r\n",
        "POST /c ka=1 chunked hdrs={Host: a|Transfer-Encoding: chunked} body=\n"),
    ROW("http/1.0 closes", "GET / HTTP/1.0\r\n\r\n", "GET / 1.0 ka=0 hdrs={} body=\n"),
    ROW("http/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        "GET / 1.0 ka=1 hdrs={Connection: keep-alive} body=\n"),
    ROW("http/1.1 close", "GET / " H11 "Connection: close\r\n\r\n",
        "GET / ka=0 hdrs={Host: a|Connection: close} body=\n"),
    ROW("http/1.1 close in a list", "GET / " H11 "Connection: TE, close\r\n\r\n",
        "GET / ka=0 hdrs={Host: a|Connection: TE, close} body=\n"),
    ROW("value trimmed", "GET / " H11 "X-A:   a  b \t\r\nX-B:\r\nX-C: \t \r\n\r\n",
        "GET / ka=1 hdrs={Host: a|X-A: a  b|X-B: |X-C: } body=\n"),
    ROW("obs-text and tabs in a value", "GET / " H11 "X: caf\xc3\xa9\tx\r\n\r\n",
        "GET / ka=1 hdrs={Host: a|X: caf\xc3\xa9\tx} body=\n"),
    ROW("expect 100-continue", "POST /p " H11 "Expect: 100-Continue\r\nContent-Length: 1\r\n\r\nz",
        "POST /p ka=1 cl=1 expect hdrs={Host: a|Expect: 100-Continue|Content-Length: 1} body=z\n"),
    ROW("http/1.0 expect is ignored", "GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n",
        "GET / 1.0 ka=0 hdrs={Expect: 100-continue} body=\n"),
    ROW("empty lines before the request line", "\r\n\r\nGET / " H11 "\r\n",
        "GET / ka=1 hdrs={Host: a} body=\n"),
    ROW("upgrade is ignored", "GET / " H11 "Connection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
        "GET / ka=1 hdrs={Host: a|Connection: Upgrade|Upgrade: h2c} body=\n"),
    ROW("incomplete head", "GET / HTTP/1.1\r\nHost: a\r\n", "PARTIAL 25\n"),
    ROW("incomplete body", "POST /p " H11 "Content-Length: 5\r\n\r\nhel", "PARTIAL 51\n"),
    ROWL("body at the limit", "POST /p " H11 "Content-Length: 10\r\n\r\n0123456789", &SMALL_BODY,
         "POST /p ka=1 cl=10 hdrs={Host: a|Content-Length: 10} body=0123456789\n"),
    ROWL("chunked at the limit", CHUNKED "6\r\n012345\r\n4\r\n6789\r\n0\r\n\r\n", &SMALL_BODY,
         "POST /c ka=1 chunked hdrs={Host: a|Transfer-Encoding: chunked} body=0123456789\n"),
};

/* ---- pipelining and keep-alive sequences ---- */

static const struct row SEQUENCES[] = {
    ROW("three pipelined",
        "GET /a " H11 "\r\nPOST /b " H11 "Content-Length: 2\r\n\r\nhi" CHUNKED
        "2\r\nyo\r\n0\r\n\r\n",
        "GET /a ka=1 hdrs={Host: a} body=\n"
        "POST /b ka=1 cl=2 hdrs={Host: a|Content-Length: 2} body=hi\n"
        "POST /c ka=1 chunked hdrs={Host: a|Transfer-Encoding: chunked} body=yo\n"),
    ROW("pipelined then a partial head", "GET /a " H11 "\r\nGET /b HTTP/1.1\r\nHo",
        "GET /a ka=1 hdrs={Host: a} body=\nPARTIAL 19\n"),
    ROW("pipelined then a refusal", "GET /a " H11 "\r\nGET /b HTTP/1.1\nHost: a\r\n\r\n",
        "GET /a ka=1 hdrs={Host: a} body=\nERROR 400 invalid_request A line ends in an LF"),
    ROW("http/1.0 keep-alive then close",
        "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n\r\n",
        "GET /a 1.0 ka=1 hdrs={Connection: keep-alive} body=\nGET /b 1.0 ka=0 hdrs={} body=\n"),
    ROW("keep-alive then connection close",
        "GET /a " H11 "\r\nGET /b " H11 "Connection: close\r\n\r\n",
        "GET /a ka=1 hdrs={Host: a} body=\nGET /b ka=0 hdrs={Host: a|Connection: close} body=\n"),
    ROW("stray CRLF after a body",
        "POST /a " H11 "Content-Length: 1\r\n\r\nx\r\nGET /b " H11 "\r\n",
        "POST /a ka=1 cl=1 hdrs={Host: a|Content-Length: 1} body=x\nGET /b ka=1 hdrs={Host: a} "
        "body=\n"),
};

/* ---- refusals that are not about smuggling ---- */

static const struct row REFUSED[] = {
    ROW("http/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", "ERROR 505 http_version_not_supported"),
    ROW("http/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", "ERROR 505 http_version_not_supported"),
    ROW("http/0.9 version", "GET / HTTP/0.9\r\n\r\n", "ERROR 505 http_version_not_supported"),
    ROW("http/0.9 line", "GET /\r\n\r\n", E400 "The request line is malformed"),
    ROW("not http", "GET / HTTX/1.1\r\n\r\n", "ERROR 400 invalid_request"),
    ROW("connect", "CONNECT api.openai.com:443 HTTP/1.1\r\nHost: api.openai.com\r\n\r\n",
        "ERROR 501 method_not_supported CONNECT"),
    ROW("unknown method", "BREW /pot " H11 "\r\n", "ERROR 501 method_not_supported"),
    ROW("lower-case method", "get / " H11 "\r\n", "ERROR 501 method_not_supported"),
    ROW("separator in the method", "GE(T / " H11 "\r\n", E400 "The request line is malformed"),
    ROW("control byte in the version",
        "GET / HTTP/1.\x7f"
        "1\r\nHost: a\r\n\r\n",
        E400 "The request head contains a NUL or other control byte"),
    ROW("expect other", "POST /p " H11 "Expect: 200-ok\r\nContent-Length: 1\r\n\r\nz",
        "ERROR 417 expectation_failed"),
    ROW("no host", "GET / HTTP/1.1\r\n\r\n", E400 "An HTTP/1.1 request must have a Host"),
    ROW("two hosts", "GET / " H11 "Host: b\r\n\r\n", E400 "The request has more than one Host"),
    ROW("double space", "GET  / " H11 "\r\n", E400 "The request line is malformed"),
    ROW("space before version", "GET /  " H11 "\r\n", E400 "The request line is malformed"),
    ROW("trailing space", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
        E400 "The request line is malformed"),
    ROW("leading space", " GET / " H11 "\r\n", E400 "The request line is malformed"),
    ROW("tab separator", "GET\t/ " H11 "\r\n", E400),
    ROW("space in target", "GET /a b " H11 "\r\n", E400 "The request line is malformed"),
    ROW("utf-8 in target", "GET /caf\xc3\xa9 " H11 "\r\n", E400 "The request target"),
    ROW("bad target", "GET ?x " H11 "\r\n", "ERROR 400 invalid_request"),
    ROW("empty name", "GET / " H11 ": x\r\n\r\n", E400 "A header line is malformed"),
    ROW("no colon", "GET / " H11 "X\r\n\r\n", E400 "A header line is malformed"),
    ROW("del in value", "GET / " H11 "X: a\x7f\r\n\r\n", E400 "The request head contains a NUL"),
    ROW("binary garbage", "\x16\x03\x01\x02\x00\x01\x00", E400 "The request head contains a NUL"),
    ROWL("content-length past the limit", "POST /p " H11 "Content-Length: 11\r\n\r\n0123456789X",
         &SMALL_BODY, "ERROR 413 request_too_large"),
    ROWL("chunked past the limit", CHUNKED "6\r\n012345\r\n5\r\n6789X\r\n0\r\n\r\n", &SMALL_BODY,
         "ERROR 413 request_too_large"),
    ROWL("one chunk past the limit", CHUNKED "b\r\n", &SMALL_BODY, "ERROR 413 request_too_large"),
    /* Head lines that arrive together reach the parser in one call: each is
     * still judged as the parser stands at its end, before the next. Here the
     * parser reads "H.1" leniently as the start of a version whose digits the
     * next line would supply. */
    ROW("version finished on the next line", "POST /c H.1\r\n1.1\r\nHost: a\r\n\r\n",
        "ERROR 505 http_version_not_supported"),
    ROW("second host before a bad line", "GET / " H11 "Host: b\r\n\x01\r\n\r\n",
        E400 "The request has more than one Host header; send exactly one.\n"),
    ROWL("a header too many before a bad line", "GET / " H11 "X: 1\r\n\x01\r\n\r\n", &ONE_HEADER,
         "ERROR 431 headers_too_large The request has more header fields than this server "
         "accepts; send fewer headers.\n"),
    ROW("huge content-length", "POST /p " H11 "Content-Length: 1000000000000\r\n\r\n",
        "ERROR 413 request_too_large"),
    ROW("huge chunk", CHUNKED "fffffffffffffff\r\n", "ERROR 413 request_too_large"),
};

/* ---- request smuggling: every one of these is refused ---- */

static const struct row SMUGGLING[] = {
    /* CL.TE and TE.CL */
    ROW("CL.TE", "POST /p " H11 "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
        E400 "The request has both Content-Length and Transfer-Encoding"),
    ROW("TE.CL",
        "POST /p " H11 "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED"
        "\r\n0\r\n\r\n",
        E400 "The request has both Content-Length and Transfer-Encoding"),
    ROW("CL.TE with gzip", "POST /p " H11 "Content-Length: 1\r\nTransfer-Encoding: gzip\r\n\r\nx",
        E400 "The request has both"),
    ROW("TE gzip then CL", "POST /p " H11 "Transfer-Encoding: gzip\r\nContent-Length: 1\r\n\r\nx",
        E400 "The request has both"),
    /* CL.CL */
    ROW("CL.CL differing", "POST /p " H11 "Content-Length: 1\r\nContent-Length: 2\r\n\r\nxy",
        E400 "The request has more than one Content-Length"),
    ROW("CL.CL equal", "POST /p " H11 "Content-Length: 1\r\nContent-Length: 1\r\n\r\nx",
        E400 "The request has more than one Content-Length"),
    ROW("CL list", "POST /p " H11 "Content-Length: 1, 1\r\n\r\nx", E400 "The Content-Length"),
    ROW("CL negative", "POST /p " H11 "Content-Length: -1\r\n\r\n", E400 "The Content-Length"),
    ROW("CL plus", "POST /p " H11 "Content-Length: +1\r\n\r\nx", E400 "The Content-Length"),
    ROW("CL hex", "POST /p " H11 "Content-Length: 0x1\r\n\r\nx", E400 "The Content-Length"),
    ROW("CL empty", "POST /p " H11 "Content-Length:\r\n\r\n", E400 "The Content-Length"),
    ROW("CL inner space", "POST /p " H11 "Content-Length: 1 2\r\n\r\n", E400 "The Content-Length"),
    ROW("CL overflow", "POST /p " H11 "Content-Length: 99999999999999999999\r\n\r\n",
        E400 "The Content-Length"),
    ROW("CL space before colon", "POST /p " H11 "Content-Length : 1\r\n\r\nx",
        E400 "A header name contains"),
    /* Transfer-Encoding variants */
    ROW("TE gzip", "POST /p " H11 "Transfer-Encoding: gzip\r\n\r\n",
        "ERROR 501 unsupported_transfer_encoding"),
    ROW("TE gzip, chunked", "POST /p " H11 "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        "ERROR 501 unsupported_transfer_encoding"),
    ROW("TE chunked, chunked",
        "POST /p " H11 "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
        "ERROR 501 unsupported_transfer_encoding"),
    ROW("TE twice",
        "POST /p " H11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
        "0\r\n\r\n",
        "ERROR 501 unsupported_transfer_encoding"),
    ROW("TE chunked then identity",
        "POST /p " H11 "Transfer-Encoding: chunked\r\n"
        "Transfer-Encoding: identity\r\n\r\n0\r\n\r\n",
        "ERROR 501 unsupported_transfer_encoding"),
    ROW("TE chunked with a tab", "POST /p " H11 "Transfer-Encoding: chunked\t\r\n\r\n0\r\n\r\n",
        "ERROR 501 unsupported_transfer_encoding"),
    ROW("TE xchunked", "POST /p " H11 "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        "ERROR 501 unsupported_transfer_encoding"),
    ROW("TE chunked-x", "POST /p " H11 "Transfer-Encoding: chunked-x\r\n\r\n0\r\n\r\n",
        "ERROR 501 unsupported_transfer_encoding"),
    ROW("TE with a parameter", "POST /p " H11 "Transfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n",
        "ERROR 501 unsupported_transfer_encoding"),
    ROW("TE empty", "POST /p " H11 "Transfer-Encoding:\r\n\r\n", "ERROR 501"),
    ROW("TE space before colon", "POST /p " H11 "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        E400 "A header name contains"),
    ROW("TE tab before colon", "POST /p " H11 "Transfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n",
        E400 "A header name contains"),
    ROW("TE in HTTP/1.0", "POST /p HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        E400 "Transfer-Encoding is not allowed in an HTTP/1.0"),
    ROW("TE folded", "POST /p " H11 "Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
        E400 "A header line starts with whitespace"),
    /* obs-fold */
    ROW("obs-fold", "GET / " H11 "X: a\r\n b\r\n\r\n", E400 "A header line starts with whitespace"),
    ROW("obs-fold with a tab", "GET / " H11 "X: a\r\n\tb\r\n\r\n", E400 "A header line starts"),
    ROW("obs-fold in CL", "POST /p " H11 "Content-Length: 1\r\n 0\r\n\r\nx",
        E400 "A header line starts"),
    ROW("whitespace before the first header", "GET / HTTP/1.1\r\n Host: a\r\n\r\n",
        E400 "A header line starts"),
    /* bare CR and bare LF */
    ROW("LF-only head", "GET / HTTP/1.1\nHost: a\n\n", E400 "A line ends in an LF"),
    ROW("bare LF in a header", "GET / " H11 "X: a\nY: b\r\n\r\n", E400 "A line ends in an LF"),
    ROW("bare LF ends the head", "GET / " H11 "\n", E400 "A line ends in an LF"),
    ROW("bare CR in the request line", "GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", E400),
    ROW("bare CR in a value", "GET / " H11 "X: a\rb\r\n\r\n", E400 "A line ends in a CR"),
    ROW("bare CR ends the head", "GET / " H11 "\rX", E400 "A line ends in a CR"),
    ROW("CR CR LF", "GET / " H11 "X: a\r\r\n\r\n", E400 "A line ends in a CR"),
    /* NUL and control bytes */
    ROW("NUL in a value", "GET / " H11 "X: a\0b\r\n\r\n", E400 "The request head contains a NUL"),
    ROW("NUL in a name", "GET / " H11 "X\0: a\r\n\r\n", E400 "The request head contains a NUL"),
    ROW("NUL in the target", "GET /a\0 " H11 "\r\n", E400 "The request head contains a NUL"),
    ROW("NUL in the method", "G\0T / " H11 "\r\n", E400 "The request head contains a NUL"),
    ROW("vertical tab in a value", "GET / " H11 "X: a\vb\r\n\r\n", E400 "The request head"),
    ROW("escape in the version", "GET / HTTP/1.1\x1b\r\nHost: a\r\n\r\n", E400 "The request head"),
    /* chunk sizes */
    ROW("chunk size overflow", CHUNKED "ffffffffffffffffff\r\n", E400 "A chunk size"),
    ROW("chunk size negative", CHUNKED "-1\r\n", E400 "A chunk size"),
    ROW("chunk size 0x", CHUNKED "0x5\r\nhello\r\n0\r\n\r\n", E400 "A chunk size"),
    ROW("chunk size with junk", CHUNKED "5g\r\nhello\r\n0\r\n\r\n", E400 "A chunk size"),
    ROW("chunk size then junk", CHUNKED "5 junk\r\nhello\r\n0\r\n\r\n", E400 "A chunk size"),
    ROW("chunk size with a space inside", CHUNKED "1 0\r\n", E400 "A chunk size"),
    ROW("chunk size with trailing space", CHUNKED "5 \r\nhello\r\n0\r\n\r\n", E400 "A chunk size"),
    ROW("chunk size empty", CHUNKED "\r\n", E400 "A chunk size"),
    ROW("chunk size with a leading space", CHUNKED " 5\r\nhello\r\n0\r\n\r\n", E400 "A chunk size"),
    ROW("chunk size bare LF", CHUNKED "5\nhello\r\n0\r\n\r\n", E400 "A line ends in an LF"),
    ROW("chunk size bare CR", CHUNKED "5\rhello\r\n0\r\n\r\n", E400 "A line ends in a CR"),
    ROW("last chunk bare LF", CHUNKED "0\n\r\n", E400 "A line ends in an LF"),
    /* chunk extensions */
    ROW("extension without a name", CHUNKED "5;\r\nhello\r\n0\r\n\r\n", E400 "A chunk extension"),
    ROW("extension with an empty name", CHUNKED "5;=x\r\nhello\r\n0\r\n\r\n",
        E400 "A chunk extension"),
    ROW("extension with an empty value", CHUNKED "5;a=\r\nhello\r\n0\r\n\r\n",
        E400 "A chunk extension"),
    ROW("extension value with a space", CHUNKED "5;a=b c\r\nhello\r\n0\r\n\r\n",
        E400 "A chunk extension"),
    ROW("extension with trailing space", CHUNKED "5;a \r\nhello\r\n0\r\n\r\n",
        E400 "A chunk extension"),
    ROW("extension unterminated quote", CHUNKED "5;a=\"x\r\nhello\r\n0\r\n\r\n",
        E400 "A chunk extension"),
    ROW("extension bare LF", CHUNKED "5;a=b\nhello\r\n0\r\n\r\n", E400 "A line ends in an LF"),
    ROW("extension bare LF in quotes", CHUNKED "5;a=\"x\ny\"\r\nhello\r\n0\r\n\r\n", E400),
    ROW("extension bare CR", CHUNKED "5;a\rb\r\nhello\r\n0\r\n\r\n", E400 "A line ends in a CR"),
    ROW("extension NUL", CHUNKED "5;a\0\r\nhello\r\n0\r\n\r\n", E400 "A chunk extension"),
    ROW("extension with a bad character", CHUNKED "5;a@b\r\nhello\r\n0\r\n\r\n",
        E400 "A chunk extension"),
    /* chunk data framing */
    ROW("chunk data too long", CHUNKED "1\r\naXY0\r\n\r\n",
        E400 "Chunk data is not followed by CRLF"),
    ROW("chunk data too short", CHUNKED "5\r\nhell\r\n0\r\n\r\n",
        E400 "Chunk data is not followed"),
    ROW("chunk data then LF", CHUNKED "1\r\na\n0\r\n\r\n", E400 "Chunk data is not followed"),
    ROW("chunk data then CR X", CHUNKED "1\r\na\rX0\r\n\r\n", E400 "A line ends in a CR"),
    /* trailers */
    ROW("trailer obs-fold", CHUNKED "0\r\nX: a\r\n b\r\n\r\n", E400 "A header line starts"),
    ROW("trailer bare LF", CHUNKED "0\r\nX: a\n\r\n", E400 "A line ends in an LF"),
    ROW("trailer space before colon", CHUNKED "0\r\nX : a\r\n\r\n", E400 "A header name"),
    ROW("trailer NUL", CHUNKED "0\r\nX: \0\r\n\r\n", E400 "The request head contains a NUL"),
    ROW("trailer bare LF at the end", CHUNKED "0\r\n\n", E400 "A line ends in an LF"),
    ROW("trailer without colon", CHUNKED "0\r\nGET / HTTP/1.1\r\n\r\n", E400),
};

struct table {
    const struct row *rows;
    size_t n;
};
#define TABLE(t)                                                                                   \
    {                                                                                              \
        t, sizeof(t) / sizeof(t[0])                                                                \
    }

static const struct table T_ACCEPTED = TABLE(ACCEPTED);
static const struct table T_SEQUENCES = TABLE(SEQUENCES);
static const struct table T_REFUSED = TABLE(REFUSED);
static const struct table T_SMUGGLING = TABLE(SMUGGLING);

/* One cmocka test per table; the table comes in as the initial state. */
static void test_table(void **state)
{
    const struct table *t = *state;

    check_rows(t->rows, t->n);
}

/* ---- limits: exactly at each limit is taken, one byte past is refused ---- */

/* A request whose request line, one header line or whole head is made n
 * bytes long (CRLF not counted in a line, counted in the head). */
static void build(struct gv_buf *b, char what, size_t n)
{
    size_t i;

    gv_buf_reset(b);
    if (what == 'r') { /* request line: "GET /aaaa HTTP/1.1" */
        gv_buf_append_str(b, "GET /");
        for (i = 0; i + 14 < n; i++) {
            gv_buf_append_char(b, 'a');
        }
        gv_buf_append_str(b, " HTTP/1.1\r\nHost: a\r\n\r\n");
        return;
    }
    gv_buf_append_str(b, "GET / HTTP/1.1\r\nHost: a\r\n");
    if (what == 'l') { /* one header line "X: vvvv" */
        gv_buf_append_str(b, "X: ");
        for (i = 0; i + 3 < n; i++) {
            gv_buf_append_char(b, 'v');
        }
        gv_buf_append_str(b, "\r\n\r\n");
        return;
    }
    /* the whole head: pad with one header line */
    gv_buf_append_str(b, "X: ");
    for (i = b->len; i + 4 < n; i++) {
        gv_buf_append_char(b, 'v');
    }
    gv_buf_append_str(b, "\r\n\r\n");
}

/* The request built in b, checked as a row named name: see struct row for expect and prefix. */
static void check_built(const struct gv_buf *b, const char *name, const struct gw_h1_limits *lim,
                        const char *expect, bool prefix)
{
    struct row c = {name, b->data, b->len, lim, expect, prefix};

    check_row(&c);
}

static void check_limit(char what, const struct gw_h1_limits *lim, size_t n, const char *past)
{
    struct gv_buf b;

    gv_buf_init(&b, 0);
    build(&b, what, n);
    check_built(&b, "at the limit", lim, "GET /", true);
    build(&b, what, n + 1);
    check_built(&b, "past the limit", lim, past, true);
    gv_buf_free(&b);
}

static void test_limits_line_and_head(void **state)
{
    static const struct gw_h1_limits lim = {.max_line = 100, .max_head = 300};
    static const struct gw_h1_limits head = {.max_head = 300};
    struct gv_buf b;

    (void)state;
    gv_buf_init(&b, 0);
    build(&b, 'r', 100);
    assert_int_equal(b.len, 100 + 2 + 9 + 2);
    build(&b, 'l', 100);
    assert_int_equal(b.len, 16 + 9 + 100 + 4);
    build(&b, 'h', 300);
    assert_int_equal(b.len, 300);
    gv_buf_free(&b);
    check_limit('r', &lim, 100, "ERROR 414 uri_too_long");
    check_limit('l', &lim, 100, "ERROR 431 headers_too_large A header line is longer");
    check_limit('h', &head, 300, "ERROR 431 headers_too_large The request headers are larger");
    /* The defaults: 8 KiB lines, 32 KiB heads. */
    check_limit('r', NULL, 8192, "ERROR 414 uri_too_long");
    check_limit('l', NULL, 8192, "ERROR 431 headers_too_large A header line");
}

/* A GET whose head holds n header lines: Host, then X-1 .. X-<n-1>. */
static void build_headers(struct gv_buf *b, size_t n)
{
    size_t i;

    gv_buf_reset(b);
    gv_buf_append_str(b, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (i = 1; i < n; i++) {
        gv_buf_appendf(b, "X-%zu: v\r\n", i);
    }
    gv_buf_append_str(b, "\r\n");
}

/* The request with max headers is taken and renders as `taken` (or, with prefix, starts so),
 * one more is refused with 431; lim NULL is the default limit. */
static void check_header_count(const struct gw_h1_limits *lim, size_t max, const char *taken,
                               bool prefix)
{
    struct gv_buf b;

    gv_buf_init(&b, 0);
    build_headers(&b, max);
    check_built(&b, "header count", lim, taken, prefix);
    build_headers(&b, max + 1);
    check_built(&b, "header count", lim, "ERROR 431 headers_too_large The request has more", true);
    gv_buf_free(&b);
}

static void test_limits_header_count(void **state)
{
    static const struct gw_h1_limits lim = {.max_headers = 5};

    (void)state;
    check_header_count(&lim, 5, "GET / ka=1 hdrs={Host: a|X-1: v|X-2: v|X-3: v|X-4: v} body=\n",
                       false);
    /* The default is GW_H1_MAX_HDRS. */
    check_header_count(NULL, GW_H1_MAX_HDRS, "GET / ka=1", true);
}

/* ---- the API around feed ---- */

static void test_api(void **state)
{
    static const char req[] = "POST /p HTTP/1.1\r\nHost: a\r\ncontent-type: text/plain\r\n"
                              "X-Dup: 1\r\nx-dup: 2\r\nContent-Length: 3\r\n\r\nabc";
    struct gw_h1req r;
    const struct gw_h1_hdr *h;
    size_t used;

    (void)state;
    gw_h1req_init(&r, NULL);
    /* Nothing on the heap before bytes arrive. */
    assert_null(r.hbuf.data);
    assert_null(r.body.data);
    assert_false(gw_h1req_in_head(&r));
    assert_int_equal(gw_h1req_feed(&r, req, 0, &used), GW_H1_MORE);
    assert_int_equal(used, 0);
    assert_int_equal(gw_h1req_feed(&r, req, 5, &used), GW_H1_MORE);
    assert_true(gw_h1req_in_head(&r));
    assert_false(gw_h1req_in_body(&r));
    assert_int_equal(gw_h1req_feed(&r, req + 5, sizeof(req) - 1 - 5, &used), GW_H1_HEAD);
    assert_int_equal(used, sizeof(req) - 1 - 5 - 3);
    assert_true(gw_h1req_in_body(&r));
    assert_int_equal(r.head.method, GW_H1_METHOD_POST);
    h = gw_h1req_header(&r.head, "Content-Type");
    assert_non_null(h);
    assert_int_equal(h->value_len, 10);
    assert_memory_equal(h->value, "text/plain", 10);
    h = gw_h1req_header(&r.head, "X-DUP");
    assert_non_null(h);
    assert_memory_equal(h->value, "1", 1);
    assert_int_equal(gw_h1req_header_count(&r.head, "x-dup"), 2);
    assert_int_equal(gw_h1req_header_count(&r.head, "x-du"), 0);
    assert_null(gw_h1req_header(&r.head, "x-dupe"));
    assert_int_equal(gw_h1req_feed(&r, "ab", 2, &used), GW_H1_MORE);
    assert_int_equal(gw_h1req_feed(&r, "cGET", 4, &used), GW_H1_DONE);
    assert_int_equal(used, 1);
    assert_int_equal(r.body.len, 3);
    assert_string_equal(r.body.data, "abc");
    gw_h1req_next(&r);
    assert_false(gw_h1req_in_head(&r));
    gw_h1req_release(&r);
    assert_null(r.hbuf.data);
    assert_null(r.body.data);
    /* Usable after release, and the next head holds nothing of the last one
     * (its header slots are not zeroed, only counted). */
    assert_int_equal(gw_h1req_feed(&r, "GET /x HTTP/1.0\r\n\r\n", 19, &used), GW_H1_DONE);
    assert_int_equal(r.head.method, GW_H1_METHOD_GET);
    assert_string_equal(r.head.path, "/x");
    assert_false(r.head.keep_alive);
    assert_int_equal(r.head.nhdrs, 0);
    assert_null(gw_h1req_header(&r.head, "content-type"));
    assert_int_equal(gw_h1req_header_count(&r.head, "x-dup"), 0);
    assert_false(r.head.has_length);
    assert_int_equal(r.head.content_length, 0);
    assert_int_equal(r.head.minor, 0);
    gw_h1req_free(&r);
}

/* The path of every target the head accepts is the one http_parser_parse_url
 * finds (the framing takes a plain path without it), and a target it cannot
 * parse is refused: thousands of targets from the bytes that matter to URL
 * parsing, origin-form and absolute-form, with and without query and fragment. */
#define PATH_TARGETS 20000

static void test_path_matches_parse_url(void **state)
{
    static const char alphabet[] = "//??##aZ09-._~%:@!$&'()*+,;=[]\"^`{|}<>";
    static const char *const starts[] = {"/", "/v1/", "http://h", "http://h:8/", "*", "", "h/"};
    char target[48], raw[128];
    uint64_t seed = 0x5EEDu;
    size_t i, k, n, used, accepted = 0, plain = 0;

    (void)state;
    for (i = 0; i < PATH_TARGETS; i++) {
        struct http_parser_url u;
        struct gw_h1req r;
        enum gw_h1_status st;
        const char *want;
        size_t want_len;
        bool parses;
        int len;

        n = (size_t)snprintf(target, sizeof(target), "%s",
                             starts[rng_next(&seed) % (sizeof(starts) / sizeof(starts[0]))]);
        for (k = rng_next(&seed) % 24; k > 0; k--) {
            target[n++] = alphabet[rng_next(&seed) % (sizeof(alphabet) - 1)];
        }
        target[n] = '\0';
        len = snprintf(raw, sizeof(raw), "GET %s HTTP/1.1\r\nHost: a\r\n\r\n", target);
        http_parser_url_init(&u);
        parses = n > 0 && http_parser_parse_url(target, n, 0, &u) == 0;
        gw_h1req_init(&r, NULL);
        st = gw_h1req_feed(&r, raw, (size_t)len, &used);
        if (st == GW_H1_DONE) {
            accepted++;
            assert_true(parses);
            want = (u.field_set & (1u << UF_PATH)) ? target + u.field_data[UF_PATH].off : "/";
            want_len = (u.field_set & (1u << UF_PATH)) ? u.field_data[UF_PATH].len : 1;
            assert_int_equal(r.head.path_len, want_len);
            assert_memory_equal(r.head.path, want, want_len);
            plain += memchr(target, '?', n) == NULL && memchr(target, '#', n) == NULL;
        }
        else {
            /* Refused for the target: unparsable, or a byte the head does not let in. */
            assert_int_equal(st, GW_H1_ERROR);
            assert_true(!parses || strpbrk(target, "\"\\^`{|}<>") != NULL);
        }
        gw_h1req_free(&r);
    }
    /* The draw reaches both ways of finding the path and both outcomes. */
    assert_true(accepted > PATH_TARGETS / 4);
    assert_true(plain > PATH_TARGETS / 20);
    assert_true(accepted - plain > PATH_TARGETS / 20);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_path_matches_parse_url),
    {"accepted", test_table, NULL, NULL, (void *)&T_ACCEPTED},
    {"sequences", test_table, NULL, NULL, (void *)&T_SEQUENCES},
    {"refused", test_table, NULL, NULL, (void *)&T_REFUSED},
    {"smuggling", test_table, NULL, NULL, (void *)&T_SMUGGLING},
    cmocka_unit_test(test_limits_line_and_head),
    cmocka_unit_test(test_limits_header_count),
    cmocka_unit_test(test_api),
};

#include "tests/unit/unit_main.h"
