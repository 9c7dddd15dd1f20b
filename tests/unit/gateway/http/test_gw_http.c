/* tests/unit/gateway/http/test_gw_http.c - error bodies, run-tag validation, request ids */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "core/gv_buf.h"
#include "core/gv_record.h"
#include "gateway/gw_http.h"

static const char *member(struct json_object *o, const char *key)
{
    struct json_object *v;

    assert_true(json_object_object_get_ex(o, key, &v));
    return v ? json_object_get_string(v) : NULL;
}

static void test_error_body_has_openai_shape(void **state)
{
    struct gv_buf b;
    struct json_object *o, *err, *v;

    gv_buf_init(&b, 0);
    assert_int_equal(gw_http_error_body(&b, "bad \"id\"\n\x01", "invalid_request_error",
                                        "invalid_run_id", "X-Wandb-Run-Id"),
                     GV_OK);
    o = json_tokener_parse(b.data);
    assert_non_null(o);
    assert_true(json_object_object_get_ex(o, "error", &err));
    assert_int_equal(json_object_object_length(o), 1);
    assert_int_equal(json_object_object_length(err), 4);
    assert_string_equal(member(err, "message"), "bad \"id\"\n\x01");
    assert_string_equal(member(err, "type"), "invalid_request_error");
    assert_string_equal(member(err, "code"), "invalid_run_id");
    assert_string_equal(member(err, "param"), "X-Wandb-Run-Id");
    json_object_put(o);

    /* code and param may be null, but the keys are always there. */
    gv_buf_reset(&b);
    assert_int_equal(gw_http_error_body(&b, "m", "server_error", NULL, NULL), GV_OK);
    o = json_tokener_parse(b.data);
    assert_non_null(o);
    assert_true(json_object_object_get_ex(o, "error", &err));
    assert_true(json_object_object_get_ex(err, "code", &v));
    assert_null(v);
    assert_true(json_object_object_get_ex(err, "param", &v));
    assert_null(v);
    json_object_put(o);
    gv_buf_free(&b);
}

static void test_error_body_reports_cap(void **state)
{
    struct gv_buf b;

    gv_buf_init(&b, 32);
    assert_int_equal(gw_http_error_body(&b, "a message far longer than the cap of this buffer",
                                        "invalid_request_error", NULL, NULL),
                     GV_E2BIG);
    gv_buf_free(&b);
}

/* Parses body as strict JSON (UTF-8 validated) and returns error.message. */
static char *strict_message(const struct gv_buf *b)
{
    struct json_tokener *tok = json_tokener_new();
    struct json_object *o, *err;
    char *msg;

    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    o = json_tokener_parse_ex(tok, b->data, (int)b->len);
    assert_int_equal(json_tokener_get_error(tok), json_tokener_success);
    assert_non_null(o);
    assert_true(json_object_object_get_ex(o, "error", &err));
    msg = strdup(member(err, "message"));
    json_object_put(o);
    json_tokener_free(tok);
    return msg;
}

static void expect_message(const char *in, const char *want)
{
    struct gv_buf b;
    char *got;

    gv_buf_init(&b, 0);
    assert_int_equal(gw_http_error_body(&b, in, "invalid_request_error", NULL, NULL), GV_OK);
    got = strict_message(&b);
    assert_string_equal(got, want);
    free(got);
    gv_buf_free(&b);
}

#define FFFD "\xef\xbf\xbd"

static void test_error_body_is_valid_utf8(void **state)
{
    char model[400], msg[128];
    struct gv_buf b;
    char *got;
    size_t i;

    /* Well-formed text, 2-, 3- and 4-byte characters included, is untouched. */
    expect_message("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
                   "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    /* Stray bytes, overlongs, surrogates and code points past U+10FFFF. */
    /* The literal is split so that \xff does not swallow the b. */
    /* clang-format off */
    expect_message("a\xff" "b", "a" FFFD "b");
    /* clang-format on */
    expect_message("\xc0\xaf", FFFD FFFD);
    expect_message("x\xed\xa0\x80y", "x" FFFD FFFD FFFD "y");
    expect_message("\xf4\x90\x80\x80", FFFD FFFD FFFD FFFD);
    expect_message("\x80\xbf", FFFD FFFD);
    /* A character cut at the end, and in the middle (one U+FFFD per cut one). */
    expect_message("model \xe2\x82", "model " FFFD);
    expect_message("\xf0\x9f\x98x\xe2", FFFD "x" FFFD);

    /* The real case: a client's model name of 2-byte characters cut by "%.100s"
     * at an odd byte count, as the server builds model_not_found messages. */
    model[0] = 'm';
    for (i = 1; i + 2 < sizeof(model); i += 2) {
        model[i] = '\xc3';
        model[i + 1] = '\xa9';
    }
    model[i] = '\0';
    snprintf(msg, sizeof(msg), "x%.100s", model);
    assert_int_equal(strlen(msg), 101);
    gv_buf_init(&b, 0);
    assert_int_equal(
        gw_http_error_body(&b, msg, "invalid_request_error", "model_not_found", "\xfemodel"),
        GV_OK);
    got = strict_message(&b);
    assert_int_equal(strlen(got), 2 + 98 + 3);
    assert_memory_equal(got, msg, 100);
    assert_memory_equal(got + 100, FFFD, 3);
    free(got);
    gv_buf_free(&b);
}

/* Every ill-formed sequence is found wherever it sits: at each offset of a long
 * ASCII run (so in an eight-byte step and in the tail after the last one), and a
 * well-formed one at the same offsets passes. */
static void test_utf8_valid_at_every_offset(void **state)
{
    static const struct {
        const char *seq;
        bool ok;
    } seqs[] = {
        {"\xc3\xa9", true},
        {"\xe2\x82\xac", true},
        {"\xf0\x9f\x98\x80", true},
        {"\x80", false},
        {"\xc3", false},
        {"\xc0\xaf", false},
        {"\xed\xa0\x80", false},
        {"\xf4\x90\x80\x80", false},
        {"\xff", false},
    };
    char buf[64];
    size_t k, off, n;

    (void)state;
    memset(buf, 'a', sizeof(buf));
    assert_true(gw_http_utf8_valid(buf, sizeof(buf)));
    assert_true(gw_http_utf8_valid(buf, 0));
    for (k = 0; k < sizeof(seqs) / sizeof(seqs[0]); k++) {
        n = strlen(seqs[k].seq);
        for (off = 0; off + n <= 40; off++) {
            memset(buf, 'a', sizeof(buf));
            memcpy(buf + off, seqs[k].seq, n);
            assert_int_equal(gw_http_utf8_valid(buf, 40), seqs[k].ok);
            /* Cut right after it, and with one ASCII byte after it. */
            assert_int_equal(gw_http_utf8_valid(buf, off + n), seqs[k].ok);
            assert_int_equal(gw_http_utf8_valid(buf, off + n + 1), seqs[k].ok);
        }
    }
}

static void test_error_type_by_status(void **state)
{
    assert_string_equal(gw_http_error_type(400), "invalid_request_error");
    assert_string_equal(gw_http_error_type(404), "invalid_request_error");
    assert_string_equal(gw_http_error_type(413), "invalid_request_error");
    assert_string_equal(gw_http_error_type(401), "authentication_error");
    assert_string_equal(gw_http_error_type(403), "permission_error");
    assert_string_equal(gw_http_error_type(502), "upstream_error");
    assert_string_equal(gw_http_error_type(504), "upstream_error");
    assert_string_equal(gw_http_error_type(500), "server_error");
}

static bool valid(const char *s)
{
    return gw_http_run_tag_valid(s, strlen(s));
}

static void test_run_tag_valid_accepts_wandb_ids(void **state)
{
    char max[GV_RUN_TAG_MAX + 1];

    assert_true(valid("run-2024_abc7"));
    assert_true(valid("a"));
    assert_true(valid("3x9k2m1p"));
    assert_true(valid("my.project-v2"));
    assert_true(valid("r\xc3\xa9sum\xc3\xa9")); /* UTF-8 */
    memset(max, 'x', GV_RUN_TAG_MAX);
    max[GV_RUN_TAG_MAX] = '\0';
    assert_true(valid(max));
}

static void test_run_tag_valid_rejects_bad(void **state)
{
    static const char *const bad[] = {"",     "runs/abc", "../etc", "a b",  "a\tb", "a:b",
                                      "a;b",  "a,b",      "a#b",    "a?b",  "a'b",  "a\"b",
                                      "a\\b", "a\x01",    "\x7f",   "a\nb", " a",   "a "};
    char big[300];
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(valid(bad[i]));
    }
    memset(big, 'x', sizeof(big));
    assert_false(gw_http_run_tag_valid(big, GV_RUN_TAG_MAX + 1));
    assert_false(gw_http_run_tag_valid(big, sizeof(big)));
    /* Embedded NUL counts as a control byte. */
    assert_false(gw_http_run_tag_valid("ab\0cd", 5));
    assert_false(gw_http_run_tag_valid(NULL, 3));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static void test_reqid_format_and_uniqueness(void **state)
{
    enum { N = 20000 };
    struct gw_reqid g1, g2;
    char(*ids)[GW_REQID_LEN + 1] = calloc(2 * N, sizeof(*ids));
    size_t i, j;

    assert_non_null(ids);
    gw_reqid_init(&g1);
    gw_reqid_init(&g2);
    /* Two generators stand for two workers of one process. */
    for (i = 0; i < N; i++) {
        gw_reqid_next(&g1, ids[2 * i]);
        gw_reqid_next(&g2, ids[2 * i + 1]);
    }
    for (i = 0; i < 2 * N; i++) {
        assert_int_equal(strlen(ids[i]), GW_REQID_LEN);
        assert_memory_equal(ids[i], "req_", 4);
        for (j = 4; j < GW_REQID_LEN; j++) {
            assert_non_null(strchr("0123456789abcdef", ids[i][j]));
        }
    }
    qsort(ids, 2 * N, sizeof(*ids), cmp_str);
    for (i = 1; i < 2 * N; i++) {
        assert_int_not_equal(strcmp(ids[i - 1], ids[i]), 0);
    }
    free(ids);
}

static void test_reqid_counter_wraps_without_repeating_prefix(void **state)
{
    struct gw_reqid g;
    char a[GW_REQID_LEN + 1], b[GW_REQID_LEN + 1];

    gw_reqid_init(&g);
    g.counter = 0xfffffffffffeULL;
    gw_reqid_next(&g, a);
    gw_reqid_next(&g, b);
    assert_memory_equal(a, b, 16); /* same worker prefix */
    assert_string_equal(b + 16, "000000000000");
    assert_string_not_equal(a, b);
}

static void test_fmt_ms_three_decimals(void **state)
{
    char buf[32];

    gw_http_fmt_ms(0, buf, sizeof(buf));
    assert_string_equal(buf, "0.000");
    gw_http_fmt_ms(1234567, buf, sizeof(buf));
    assert_string_equal(buf, "1234.567");
    gw_http_fmt_ms(5, buf, sizeof(buf));
    assert_string_equal(buf, "0.005");
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_error_body_has_openai_shape),
    cmocka_unit_test(test_error_body_reports_cap),
    cmocka_unit_test(test_error_body_is_valid_utf8),
    cmocka_unit_test(test_utf8_valid_at_every_offset),
    cmocka_unit_test(test_error_type_by_status),
    cmocka_unit_test(test_run_tag_valid_accepts_wandb_ids),
    cmocka_unit_test(test_run_tag_valid_rejects_bad),
    cmocka_unit_test(test_reqid_format_and_uniqueness),
    cmocka_unit_test(test_reqid_counter_wraps_without_repeating_prefix),
    cmocka_unit_test(test_fmt_ms_three_decimals),
};

#include "tests/unit/unit_main.h"
