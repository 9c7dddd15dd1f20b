/* tests/unit/gateway/http/test_gw_http.c - error bodies, run-tag validation, request ids */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_body_has_openai_shape),
        cmocka_unit_test(test_error_body_reports_cap),
        cmocka_unit_test(test_error_type_by_status),
        cmocka_unit_test(test_run_tag_valid_accepts_wandb_ids),
        cmocka_unit_test(test_run_tag_valid_rejects_bad),
        cmocka_unit_test(test_reqid_format_and_uniqueness),
        cmocka_unit_test(test_reqid_counter_wraps_without_repeating_prefix),
        cmocka_unit_test(test_fmt_ms_three_decimals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
