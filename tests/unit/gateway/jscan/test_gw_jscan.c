/* tests/unit/gateway/jscan/test_gw_jscan.c - member spans as rows, and agreement with json-c */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "gateway/gw_jscan.h"

struct row {
    const char *text;
    const char *key;
    enum gw_jscan want;
    const char *value; /* the span's text when found */
};

static const struct row rows[] = {
    {"{\"usage\":{\"prompt_tokens\":7}}", "usage", GW_JSCAN_FOUND, "{\"prompt_tokens\":7}"},
    {" \n{ \"a\" : [1,{\"usage\":2}] , \"usage\" :null }\r\n", "usage", GW_JSCAN_FOUND, "null"},
    {"{\"a\":1}", "usage", GW_JSCAN_ABSENT, NULL},
    {"{}", "usage", GW_JSCAN_ABSENT, NULL},
    {"{\"usage\":1,\"usage\":{\"x\":\"}\"}}", "usage", GW_JSCAN_FOUND, "{\"x\":\"}\"}"},
    {"{\"s\":\"a \\\" usage\",\"choices\":[]}", "choices", GW_JSCAN_FOUND, "[]"},
    {"{\"nested\":{\"usage\":1}}", "usage", GW_JSCAN_ABSENT, NULL},
    {"[{\"usage\":1}]", "usage", GW_JSCAN_INVALID, NULL},
    {"<html>502</html>", "usage", GW_JSCAN_INVALID, NULL},
    {"", "usage", GW_JSCAN_INVALID, NULL},
    {"{\"a\":1", "usage", GW_JSCAN_INVALID, NULL},
    {"{\"a\":[1,2}", "usage", GW_JSCAN_INVALID, NULL},
    {"{\"a\":\"open}", "usage", GW_JSCAN_INVALID, NULL},
    {"{\"a\":1}{\"b\":2}", "usage", GW_JSCAN_INVALID, NULL},
    {"{\"a\":1,}", "usage", GW_JSCAN_INVALID, NULL},
    {"{\"a\"1}", "usage", GW_JSCAN_INVALID, NULL},
    {"{\"a\":\"\\\\\"}", "usage", GW_JSCAN_ABSENT, NULL},   /* an escaped backslash, then the end */
    {"{\"a\":\"\\\"}", "usage", GW_JSCAN_INVALID, NULL}, /* an escaped quote: never closed */
    {"{\"a\":}", "usage", GW_JSCAN_INVALID, NULL},
};

static void test_rows(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const char *v;
        size_t vlen;
        enum gw_jscan got = gw_jscan_member(rows[i].text, strlen(rows[i].text), rows[i].key, &v,
                                            &vlen);
        print_message("row %zu: %s\n", i, rows[i].text);
        assert_int_equal(got, rows[i].want);
        if (got == GW_JSCAN_FOUND) {
            assert_int_equal(vlen, strlen(rows[i].value));
            assert_memory_equal(v, rows[i].value, vlen);
        }
    }
}

/* Every valid object json-c reads: the scanner must agree on found or absent,
 * and the span must parse to the member json-c sees (json-c keeps the last of
 * repeated keys, like the scanner). Inputs are cut at every length too: a
 * prefix json-c refuses must never be FOUND with a span past the cut. */
static void test_agrees_with_json_c(void **state)
{
    static const char *docs[] = {
        "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"gpt-4o\","
        "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hi \\\"x\\\" "
        "{ [ \\\\\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":7,"
        "\"completion_tokens\":8,\"total_tokens\":15,\"details\":{\"a\":[1,2.5e3,true,null]}}}",
        "{\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"}]\"},"
        "\"finish_reason\":null}],\"usage\":null}",
        "{\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}",
    };
    size_t d, cut;

    (void)state;
    for (d = 0; d < sizeof(docs) / sizeof(docs[0]); d++) {
        size_t n = strlen(docs[d]);
        for (cut = 0; cut <= n; cut++) {
            char *text = strndup(docs[d], cut);
            struct json_object *o = json_tokener_parse(text);
            const char *v;
            size_t vlen;
            enum gw_jscan got = gw_jscan_member(text, cut, "usage", &v, &vlen);
            if (o && json_object_is_type(o, json_type_object)) {
                struct json_object *m;
                bool has = json_object_object_get_ex(o, "usage", &m);
                assert_int_equal(got, has ? GW_JSCAN_FOUND : GW_JSCAN_ABSENT);
                if (has) {
                    char *span = strndup(v, vlen);
                    struct json_object *again = json_tokener_parse(span);
                    assert_true(json_object_equal(again, m) || (!again && !m));
                    json_object_put(again);
                    free(span);
                }
            }
            else if (cut < n) {
                assert_int_not_equal(got, GW_JSCAN_FOUND);
            }
            json_object_put(o);
            free(text);
        }
    }
}

static void test_u64_members(void **state)
{
    static const char u[] = "{\"prompt_tokens\": 7,\"completion_tokens\":12345678901234567,"
                            "\"neg\":-1,\"frac\":1.5,\"exp\":1e3,\"str\":\"5\","
                            "\"big\":99999999999999999999}";
    unsigned long long x = 0;

    (void)state;
    assert_true(gw_jscan_u64(u, strlen(u), "prompt_tokens", &x));
    assert_int_equal(x, 7);
    assert_true(gw_jscan_u64(u, strlen(u), "completion_tokens", &x));
    assert_true(x == 12345678901234567ULL);
    assert_false(gw_jscan_u64(u, strlen(u), "neg", &x));
    assert_false(gw_jscan_u64(u, strlen(u), "frac", &x));
    assert_false(gw_jscan_u64(u, strlen(u), "exp", &x));
    assert_false(gw_jscan_u64(u, strlen(u), "str", &x));
    assert_false(gw_jscan_u64(u, strlen(u), "big", &x));
    assert_false(gw_jscan_u64(u, strlen(u), "absent", &x));
    assert_false(gw_jscan_u64("{\"prompt_tokens\":7", 18, "prompt_tokens", &x));
}

/* Text bytes of every `content` (or `arguments`) string, at any depth, as a stream chunk
 * carries them; keys inside strings, values spelled like the key and non-strings count 0. */
static const struct {
    const char *json, *key;
    size_t want;
} text_rows[] = {
    {"{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"}}]}", "content", 5},
    {"{\"choices\":[{\"delta\":{\"content\":\"ab\"}},{\"delta\":{\"content\":\"cde\"}}]}",
     "content", 5},
    {"{\"choices\":[{\"delta\":{\"content\":null}}]}", "content", 0},
    {"{\"choices\":[{\"delta\":{\"content\" : \"x y\"}}]}", "content", 3},
    {"{\"choices\":[{\"delta\":{\"content\":\"say \\\"content\\\": no\"}}]}", "content", 19},
    {"{\"role\":\"content\",\"n\":1}", "content", 0},
    {"{\"logprobs\":{\"content\":[{\"token\":\"a\"}]}}", "content", 0},
    {"{\"delta\":{\"tool_calls\":[{\"function\":{\"arguments\":\"{\\\"a\\\":1}\"}}]}}",
     "arguments", 9},
    {"{\"delta\":{\"content\":\"cut sho", "content", 7},
    {"", "content", 0},
};

static void test_string_bytes(void **state)
{
    size_t i;
    (void)state;

    for (i = 0; i < sizeof(text_rows) / sizeof(text_rows[0]); i++) {
        print_message("row %zu: %s\n", i, text_rows[i].json);
        assert_int_equal(gw_jscan_string_bytes(text_rows[i].json, strlen(text_rows[i].json),
                                               text_rows[i].key),
                         text_rows[i].want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_agrees_with_json_c),
        cmocka_unit_test(test_u64_members),
        cmocka_unit_test(test_string_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
