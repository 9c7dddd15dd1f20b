/* tests/unit/gateway/sse/test_gw_sse.c - SSE parser: splits, line endings, limits */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/gv_buf.h"
#include "gateway/gw_sse.h"
#include "tests/unit/unit_rand.h"

/* Everything the callback saw, flattened so whole runs compare as strings:
 * per event "<name>|<has_data>|<done>|<data>\n", and the raw bytes apart. */
struct seen {
    struct gv_buf events;
    struct gv_buf raw;
    int n;
};

static gv_rc collect(void *arg, const struct gw_sse_event *ev)
{
    struct seen *s = arg;

    s->n++;
    gv_buf_appendf(&s->events, "%s|%d|%d|", ev->name, ev->has_data ? 1 : 0, ev->done ? 1 : 0);
    gv_buf_append(&s->events, ev->data, ev->data_len);
    gv_buf_append_char(&s->events, '\n');
    gv_buf_append(&s->raw, ev->raw, ev->raw_len);
    return GV_OK;
}

static void seen_init(struct seen *s)
{
    gv_buf_init(&s->events, 0);
    gv_buf_init(&s->raw, 0);
    s->n = 0;
}

static void seen_free(struct seen *s)
{
    gv_buf_free(&s->events);
    gv_buf_free(&s->raw);
}

/* A parser and what its callback saw. */
struct parse {
    struct gw_sse p;
    struct seen s;
};

/* max: the parser's event cap (0: its default). */
static void parse_open(struct parse *x, size_t max)
{
    seen_init(&x->s);
    gw_sse_init(&x->p, max);
}

static void parse_close(struct parse *x)
{
    gw_sse_free(&x->p);
    seen_free(&x->s);
}

static gv_rc feed(struct parse *x, const char *in, size_t len)
{
    return gw_sse_feed(&x->p, in, len, collect, &x->s);
}

static gv_rc finish(struct parse *x)
{
    return gw_sse_finish(&x->p, collect, &x->s);
}

static const char STREAM[] =
    ": keep-alive\n\n"
    "data: {\"id\":\"c1\",\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n"
    "event: message\r\ndata: line one\r\ndata: line two\r\n\r\n"
    "data:no-space\rid: 7\r\r"
    "retry: 10\ndata: {\"usage\":{\"prompt_tokens\":3}}\n\n"
    "data: [DONE]\n\n";

static const char EXPECTED[] =
    "|0|0|\n"
    "|1|0|{\"id\":\"c1\",\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n"
    "message|1|0|line one\nline two\n"
    "|1|0|no-space\n"
    "|1|0|{\"usage\":{\"prompt_tokens\":3}}\n"
    "|1|1|[DONE]\n";

static void run_split(const char *in, size_t len, size_t cut, struct seen *s)
{
    struct gw_sse p;

    gw_sse_init(&p, 0);
    assert_int_equal(gw_sse_feed(&p, in, cut, collect, s), GV_OK);
    assert_int_equal(gw_sse_feed(&p, in + cut, len - cut, collect, s), GV_OK);
    assert_int_equal(gw_sse_finish(&p, collect, s), GV_OK);
    gw_sse_free(&p);
}

static void test_feed_whole_stream(void **state)
{
    struct seen s;

    seen_init(&s);
    run_split(STREAM, sizeof(STREAM) - 1, sizeof(STREAM) - 1, &s);
    assert_string_equal(s.events.data, EXPECTED);
    /* A proxy that forwards raw bytes forwards exactly what came in. */
    assert_int_equal(s.raw.len, sizeof(STREAM) - 1);
    assert_memory_equal(s.raw.data, STREAM, sizeof(STREAM) - 1);
    seen_free(&s);
}

static void test_feed_split_at_every_byte(void **state)
{
    size_t cut, len = sizeof(STREAM) - 1;

    for (cut = 0; cut <= len; cut++) {
        struct seen s;
        seen_init(&s);
        run_split(STREAM, len, cut, &s);
        assert_string_equal(s.events.data, EXPECTED);
        assert_int_equal(s.raw.len, len);
        assert_memory_equal(s.raw.data, STREAM, len);
        seen_free(&s);
    }
}

static void test_feed_one_byte_at_a_time(void **state)
{
    struct parse x;
    size_t i, len = sizeof(STREAM) - 1;

    parse_open(&x, 0);
    for (i = 0; i < len; i++) {
        assert_int_equal(feed(&x, STREAM + i, 1), GV_OK);
    }
    assert_int_equal(finish(&x), GV_OK);
    assert_string_equal(x.s.events.data, EXPECTED);
    parse_close(&x);
}

static void test_feed_crlf_split_between_cr_and_lf(void **state)
{
    static const char in[] = "data: a\r\n\r\ndata: b\r\n\r\n";
    struct parse x;

    parse_open(&x, 0);
    /* Cut right after the \r of the blank line: the \n must not start an event. */
    assert_int_equal(feed(&x, in, 10), GV_OK);
    assert_int_equal(x.s.n, 0);
    assert_int_equal(feed(&x, in + 10, sizeof(in) - 1 - 10), GV_OK);
    assert_int_equal(finish(&x), GV_OK);
    assert_int_equal(x.s.n, 2);
    assert_string_equal(x.s.events.data, "|1|0|a\n|1|0|b\n");
    parse_close(&x);
}

static void test_finish_reports_unterminated_event(void **state)
{
    static const char in[] = "data: {\"x\":1}\n\ndata: [DONE]";
    struct parse x;

    parse_open(&x, 0);
    assert_int_equal(feed(&x, in, sizeof(in) - 1), GV_OK);
    assert_int_equal(x.s.n, 1);
    assert_int_equal(finish(&x), GV_OK);
    assert_string_equal(x.s.events.data, "|1|0|{\"x\":1}\n|1|1|[DONE]\n");
    parse_close(&x);
}

static void test_feed_oversized_event_fails(void **state)
{
    char big[300];
    struct parse x;

    memset(big, 'x', sizeof(big));
    memcpy(big, "data: ", 6);
    parse_open(&x, 256);
    assert_int_equal(feed(&x, "data: ok\n\n", 10), GV_OK);
    assert_int_equal(feed(&x, big, sizeof(big)), GV_E2BIG);
    /* Failed for good: no half-event is ever reported afterwards. */
    assert_int_equal(feed(&x, "\n\n", 2), GV_EPROTO);
    assert_int_equal(finish(&x), GV_EPROTO);
    assert_int_equal(x.s.n, 1);
    parse_close(&x);
}

static void test_feed_many_lines_in_one_event_hit_the_cap(void **state)
{
    struct parse x;
    int i;
    gv_rc rc = GV_OK;

    parse_open(&x, 1024);
    /* Each line is short; the event as a whole is what is bounded. */
    for (i = 0; i < 200 && rc == GV_OK; i++) {
        rc = feed(&x, "data: 0123456789\n", 17);
    }
    assert_int_equal(rc, GV_E2BIG);
    assert_int_equal(x.s.n, 0);
    parse_close(&x);
}

static gv_rc stop_at_second(void *arg, const struct gw_sse_event *ev)
{
    int *n = arg;

    (*n)++;
    return *n == 2 ? GV_EPROTO : GV_OK;
}

static void test_feed_returns_callback_error(void **state)
{
    static const char in[] = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
    struct gw_sse p;
    int n = 0;

    gw_sse_init(&p, 0);
    assert_int_equal(gw_sse_feed(&p, in, sizeof(in) - 1, stop_at_second, &n), GV_EPROTO);
    assert_int_equal(n, 2);
    gw_sse_free(&p);
}

static void test_feed_arbitrary_bytes_never_crash(void **state)
{
    unsigned char buf[4096];
    uint32_t x = 12345;
    struct parse px;
    size_t i;
    int round;

    for (round = 0; round < 50; round++) {
        parse_open(&px, 512);
        for (i = 0; i < sizeof(buf); i++) {
            unit_lcg(&x);
            /* Bias toward the bytes the parser cares about. */
            buf[i] = (unsigned char)((x >> 16) % 7 == 0
                                         ? (uint32_t)(unsigned char)"\n\r:d "[(x >> 8) % 5]
                                         : (x >> 16));
        }
        (void)feed(&px, (const char *)buf, sizeof(buf));
        (void)finish(&px);
        parse_close(&px);
    }
}

/* Events whole in one feed are reported from the caller's bytes (no copy);
 * whatever shape each event has, the events seen are the ones byte-by-byte
 * feeding (always the copying path) reports. */
static const char SHAPES[] = "data: plain\n\n"
                             "data\n\n"             /* an empty data line: a copy */
                             "data: a\ndata: b\n\n" /* two data lines joined by \n: a copy */
                             "event\ndata: x\n\n"   /* an event: field without a colon */
                             "event:upd\ndata:y\n\n"
                             "eventual: no\nid: 4\ndata:  two spaces\n\n"
                             ": only a comment\n\n"
                             "\n" /* a blank line alone */
                             "data: cr\r\n\r\n"
                             "data: [DONE]\n\n";

static void test_feed_whole_matches_byte_by_byte(void **state)
{
    struct parse whole, bytes;
    size_t i, len = sizeof(SHAPES) - 1;

    parse_open(&whole, 0);
    parse_open(&bytes, 0);
    assert_int_equal(feed(&whole, SHAPES, len), GV_OK);
    for (i = 0; i < len; i++) {
        assert_int_equal(feed(&bytes, SHAPES + i, 1), GV_OK);
    }
    assert_int_equal(finish(&whole), GV_OK);
    assert_int_equal(finish(&bytes), GV_OK);
    assert_string_equal(whole.s.events.data, bytes.s.events.data);
    assert_string_equal(whole.s.events.data, "|1|0|plain\n"
                                             "|1|0|\n"
                                             "|1|0|a\nb\n"
                                             "|1|0|x\n"
                                             "upd|1|0|y\n"
                                             "|1|0| two spaces\n"
                                             "|0|0|\n"
                                             "|0|0|\n"
                                             "|1|0|cr\n"
                                             "|1|1|[DONE]\n");
    assert_int_equal(whole.s.raw.len, len);
    assert_memory_equal(whole.s.raw.data, SHAPES, len);
    parse_close(&whole);
    parse_close(&bytes);
}

struct spot {
    const char *in;
    size_t len;
    int inside; /* events whose raw and data pointed into in */
};

static gv_rc spot_in_place(void *arg, const struct gw_sse_event *ev)
{
    struct spot *s = arg;

    if (ev->raw >= s->in && ev->raw + ev->raw_len <= s->in + s->len &&
        (!ev->has_data ||
         (ev->data >= ev->raw && ev->data + ev->data_len <= ev->raw + ev->raw_len))) {
        s->inside++;
    }
    return GV_OK;
}

static void test_feed_whole_event_is_not_copied(void **state)
{
    static const char in[] = "data: {\"a\":1}\n\n: ping\n\ndata: [DONE]\n\ndata: cut";
    struct spot s = {in, sizeof(in) - 1, 0};
    struct gw_sse p;

    gw_sse_init(&p, 0);
    assert_int_equal(gw_sse_feed(&p, in, sizeof(in) - 1, spot_in_place, &s), GV_OK);
    assert_int_equal(s.inside, 3);
    /* The cut event was held in the parser's own buffer: reported from there. */
    s.inside = 0;
    assert_int_equal(gw_sse_feed(&p, "\n\n", 2, spot_in_place, &s), GV_OK);
    assert_int_equal(s.inside, 0);
    gw_sse_free(&p);
}

/* The cap is the same whichever path an event takes: an event of exactly
 * max_event bytes passes, one byte more fails. */
static void test_feed_cap_is_exact_on_both_paths(void **state)
{
    static const char ev[] = "data: 0123456789\n\n"; /* 18 bytes */
    size_t len = sizeof(ev) - 1, i;
    struct parse x;

    parse_open(&x, len);
    assert_int_equal(feed(&x, ev, len), GV_OK);
    for (i = 0; i < len; i++) {
        assert_int_equal(feed(&x, ev + i, 1), GV_OK);
    }
    assert_int_equal(x.s.n, 2);
    parse_close(&x);
    parse_open(&x, len - 1);
    assert_int_equal(feed(&x, ev, len), GV_E2BIG);
    assert_int_equal(x.s.n, 0);
    parse_close(&x);
}

/* Streams of random shapes, some with a \r in a line (a bare one too), fed in random
 * splits: the events are the byte-by-byte ones. The \r is looked for once a feed, so a
 * \r several events after the start of a feed must still send its event down the
 * copying path, and the events after it back to the in-place one. */
static void test_feed_random_shapes_match_byte_by_byte(void **state)
{
    static const char *const shapes[] = {
        "data: {\"a\":1}\n\n",
        "data: x\ry\n\n",
        "data: cr\r\n\r\n",
        ": c\n\n",
        "data: a\ndata: b\n\n",
        "data: t\n\r\n",
        "event: e\ndata: n\n\n",
        "\n",
        "data: [DONE]\n\n",
        "id: 1\rdata: q\n\n",
        "data:\n\n",
    };
    uint32_t x = 777;
    int round;

    for (round = 0; round < 300; round++) {
        struct parse split, bytes;
        char in[2048];
        size_t len = 0, i, at;
        int k, nshapes = 1 + (int)(unit_xorshift32(&x) % 24);

        for (k = 0; k < nshapes; k++) {
            const char *sh = shapes[unit_xorshift32(&x) % (sizeof(shapes) / sizeof(shapes[0]))];
            size_t n = strlen(sh);
            if (len + n > sizeof(in)) {
                break;
            }
            memcpy(in + len, sh, n);
            len += n;
        }
        parse_open(&split, 0);
        parse_open(&bytes, 0);
        for (at = 0; at < len;) {
            size_t n = 1 + unit_xorshift32(&x) % (len - at);
            assert_int_equal(feed(&split, in + at, n), GV_OK);
            at += n;
        }
        for (i = 0; i < len; i++) {
            assert_int_equal(feed(&bytes, in + i, 1), GV_OK);
        }
        assert_int_equal(finish(&split), GV_OK);
        assert_int_equal(finish(&bytes), GV_OK);
        assert_int_equal(split.s.n, bytes.s.n);
        assert_string_equal(split.s.events.data ? split.s.events.data : "",
                            bytes.s.events.data ? bytes.s.events.data : "");
        assert_int_equal(split.s.raw.len, bytes.s.raw.len);
        parse_close(&split);
        parse_close(&bytes);
    }
    (void)state;
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_feed_whole_stream),
    cmocka_unit_test(test_feed_split_at_every_byte),
    cmocka_unit_test(test_feed_one_byte_at_a_time),
    cmocka_unit_test(test_feed_crlf_split_between_cr_and_lf),
    cmocka_unit_test(test_finish_reports_unterminated_event),
    cmocka_unit_test(test_feed_oversized_event_fails),
    cmocka_unit_test(test_feed_many_lines_in_one_event_hit_the_cap),
    cmocka_unit_test(test_feed_returns_callback_error),
    cmocka_unit_test(test_feed_arbitrary_bytes_never_crash),
    cmocka_unit_test(test_feed_whole_matches_byte_by_byte),
    cmocka_unit_test(test_feed_whole_event_is_not_copied),
    cmocka_unit_test(test_feed_cap_is_exact_on_both_paths),
    cmocka_unit_test(test_feed_random_shapes_match_byte_by_byte),
};

#include "tests/unit/unit_main.h"
