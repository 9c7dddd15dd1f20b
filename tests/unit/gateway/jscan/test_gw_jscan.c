/* tests/unit/gateway/jscan/test_gw_jscan.c - member spans as rows, and agreement with json-c */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "gateway/gw_jscan.h"
#include "tests/unit/unit_rand.h"

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
    {"{\"a\":\"\\\\\"}", "usage", GW_JSCAN_ABSENT, NULL}, /* an escaped backslash, then the end */
    {"{\"a\":\"\\\"}", "usage", GW_JSCAN_INVALID, NULL},  /* an escaped quote: never closed */
    {"{\"a\":}", "usage", GW_JSCAN_INVALID, NULL},
    /* Past the first sixteen bytes of a value, where the walk looks at a block at a time:
     * a control byte outside strings, white space, DEL and non-ASCII bytes. */
    {"{\"a\":[1,2,3,4,5,6,7,8,9,10,11,12,\x1f 13],\"usage\":1}", "usage", GW_JSCAN_INVALID, NULL},
    {"{\"a\":[1,2,3,4,5,6,7,8,9,10,11,12,\t\r\n13],\"usage\":1}", "usage", GW_JSCAN_FOUND, "1"},
    {"{\"a\":[1,2,3,4,5,6,7,8,9,10,11,12,13\x7f,\xc3\xa9],\"usage\":2}", "usage", GW_JSCAN_FOUND,
     "2"},
    {"{\"s\":\"0123456789abcdefghij\\\"klmnopqrstuvwxyz0123\",\"usage\":3}", "usage",
     GW_JSCAN_FOUND, "3"},
    {"{\"s\":\"0123456789abcdefghij\\\\\",\"usage\":4}", "usage", GW_JSCAN_FOUND, "4"},
    {"{\"a\":{\"b\":[{\"c\":\"}]\"},{\"d\":[[],{}]}],\"e\":\"xxxxxxxxxxxxxxxxxxx\"},\"usage\":5}",
     "usage", GW_JSCAN_FOUND, "5"},
    {"{\"a\":{\"b\":[1,2,3,4,5,6,7,8,9,10,11,12,13}},\"usage\":6}", "usage", GW_JSCAN_INVALID,
     NULL},
};

static void test_rows(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const char *v;
        size_t vlen;
        enum gw_jscan got =
            gw_jscan_member(rows[i].text, strlen(rows[i].text), rows[i].key, &v, &vlen);
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

/* Several counts in one walk: all or nothing. */
static void test_u64s_members(void **state)
{
    static const char *const both[] = {"prompt_tokens", "completion_tokens"};
    static const char *const with_str[] = {"prompt_tokens", "str"};
    const char *u = "{\"completion_tokens\":12,\"prompt_tokens\":7,\"str\":\"9\"}";
    unsigned long long n[2] = {0, 0};
    (void)state;

    assert_true(gw_jscan_u64s(u, strlen(u), both, 2, n));
    assert_true(n[0] == 7 && n[1] == 12);
    assert_false(gw_jscan_u64s(u, strlen(u), with_str, 2, n));
    assert_false(gw_jscan_u64s("{\"prompt_tokens\":7}", 18, both, 2, n));
    assert_false(gw_jscan_u64s("[1]", 3, both, 2, n));
    assert_false(gw_jscan_u64s(u, strlen(u), both, 0, n));
}

/* The walk that stops at the last key it asks for: the same counts as the whole walk
 * where both are there, without reading (or checking) what follows them. */
static void test_u64s_first_stops_at_the_last_key(void **state)
{
    static const char *const both[] = {"prompt_tokens", "completion_tokens"};
    const char *u = "{\"prompt_tokens\":24,\"completion_tokens\":15,\"total_tokens\":39,"
                    "\"prompt_tokens_details\":{\"cached_tokens\":0}}";
    /* What follows the counts is not read: a bad member there does not matter. */
    const char *rest_bad = "{\"prompt_tokens\":3,\"completion_tokens\":4,\"x\":}";
    const char *not_int = "{\"prompt_tokens\":7,\"completion_tokens\":\"1\"}";
    unsigned long long n[2] = {0, 0};
    (void)state;

    assert_true(gw_jscan_u64s_first(u, strlen(u), both, 2, n));
    assert_true(n[0] == 24 && n[1] == 15);
    assert_false(gw_jscan_u64s(rest_bad, strlen(rest_bad), both, 2, n));
    assert_true(gw_jscan_u64s_first(rest_bad, strlen(rest_bad), both, 2, n));
    assert_true(n[0] == 3 && n[1] == 4);
    /* A missing or non-integer count is still no count. */
    assert_false(gw_jscan_u64s_first("{\"prompt_tokens\":7}", 18, both, 2, n));
    assert_false(gw_jscan_u64s_first(not_int, strlen(not_int), both, 2, n));
    assert_false(gw_jscan_u64s_first("[1]", 3, both, 2, n));
}

/* What one walk over a stream chunk finds: the text bytes of every `content` and
 * `arguments` string at any depth (keys inside strings, values spelled like a key and
 * non-strings count 0), a `finish_reason` string, a `usage` other than null. */
static const struct {
    const char *json;
    size_t text;
    bool finish, usage;
} chunk_rows[] = {
    {"{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"}}]}", 5, false, false},
    {"{\"choices\":[{\"delta\":{\"content\":\"ab\"}},{\"delta\":{\"content\":\"cde\"}}]}", 5, false,
     false},
    {"{\"choices\":[{\"delta\":{\"content\":null}}]}", 0, false, false},
    {"{\"choices\":[{\"delta\":{\"content\" : \"x y\"}}]}", 3, false, false},
    {"{\"choices\":[{\"delta\":{\"content\":\"say \\\"content\\\": no\"}}]}", 19, false, false},
    {"{\"role\":\"content\",\"n\":1}", 0, false, false},
    {"{\"logprobs\":{\"content\":[{\"token\":\"a\"}]}}", 0, false, false},
    {"{\"delta\":{\"tool_calls\":[{\"function\":{\"arguments\":\"{\\\"a\\\":1}\"}}]}}", 9, false,
     false},
    {"{\"delta\":{\"content\":\"ab\",\"tool_calls\":[{\"function\":{\"arguments\":\"{}\"}}]}}", 4,
     false, false},
    {"{\"delta\":{\"content\":\"cut sho", 7, false, false},
    {"", 0, false, false},
    {"{\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}", 0, true, false},
    {"{\"choices\":[{\"delta\":{\"content\":\"x\"},\"finish_reason\":null}],\"usage\":null}", 1,
     false, false},
    {"{\"choices\":[],\"usage\":{\"prompt_tokens\":3}}", 0, false, true},
    {"{\"usage\" :  {\"total_tokens\":1}}", 0, false, true},
    /* Keys spelled inside strings are not keys. */
    {"{\"delta\":{\"content\":\"\\\"usage\\\":{} \\\"finish_reason\\\":\\\"x\\\"\"}}", 36, false,
     false},
    {"\"usage\":", 0, false, false},
};

static void test_chunk_facts(void **state)
{
    size_t i;
    (void)state;

    for (i = 0; i < sizeof(chunk_rows) / sizeof(chunk_rows[0]); i++) {
        struct gw_jscan_chunk f;
        print_message("row %zu: %s\n", i, chunk_rows[i].json);
        gw_jscan_chunk_facts(chunk_rows[i].json, strlen(chunk_rows[i].json), &f, NULL);
        assert_int_equal(f.text_bytes, chunk_rows[i].text);
        assert_int_equal(f.finish_reason, chunk_rows[i].finish);
        assert_int_equal(f.usage, chunk_rows[i].usage);
    }
}

/* Any bytes, cut anywhere: no read past the end (ASan), and never more text than bytes. */
static void test_chunk_facts_any_cut(void **state)
{
    const char *whole = chunk_rows[15].json;
    size_t n = strlen(whole), k;
    (void)state;

    for (k = 0; k <= n; k++) {
        struct gw_jscan_chunk f;
        char *cut = malloc(k ? k : 1);
        memcpy(cut, whole, k);
        gw_jscan_chunk_facts(cut, k, &f, NULL);
        assert_true(f.text_bytes <= k);
        free(cut);
    }
}

/* A stream as OpenAI sends it: the chunks after the first repeat the first ~200 bytes. */
static const char *const stream_chunks[] = {
    "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\","
    "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
    "\"finish_reason\":null}],\"usage\":null}",
    "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"finish_reason\":null}],"
    "\"usage\":null}",
    "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" world\"},\"finish_reason\":null}],"
    "\"usage\":null}",
    "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\","
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"!\"},\"finish_reason\":null}],"
    "\"usage\":null}",
    "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\","
    "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}",
    "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\","
    "\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":3}}",
};

static void expect_same_facts(const char *p, size_t n, struct gw_jscan_chunk_repeats *rep)
{
    struct gw_jscan_chunk plain, fast;

    gw_jscan_chunk_facts(p, n, &plain, NULL);
    gw_jscan_chunk_facts(p, n, &fast, rep);
    assert_int_equal(fast.text_bytes, plain.text_bytes);
    assert_int_equal(fast.finish_reason, plain.finish_reason);
    assert_int_equal(fast.usage, plain.usage);
    assert_int_equal(fast.nreasons, plain.nreasons);
    assert_ptr_equal(fast.reason, plain.reason);
    assert_int_equal(fast.reason_len, plain.reason_len);
}

/* The head is learnt from the second chunk (the first names the role) and the tail from
 * the first that has text after it; the next chunks use both, and the facts are those of
 * a walk from the start every time. */
static void test_chunk_repeats_over_a_stream(void **state)
{
    struct gw_jscan_chunk_repeats rep = {0};
    const char *c2 = stream_chunks[1];
    const char *after = strstr(c2, "\"Hello\"") + strlen("\"Hello\"");
    size_t i;
    (void)state;

    for (i = 0; i < sizeof(stream_chunks) / sizeof(stream_chunks[0]); i++) {
        expect_same_facts(stream_chunks[i], strlen(stream_chunks[i]), &rep);
        if (i == 1) {
            /* Up to and with the quote of "content": nothing before it counts. */
            assert_int_equal(rep.head_len, (size_t)(strstr(c2, "\"content\"") - c2) + 1);
            /* From the end of the delta's text: nothing after it counts. */
            assert_int_equal(rep.tail_len, strlen(after));
            assert_memory_equal(rep.tail, after, rep.tail_len);
        }
    }
    /* The last two did not begin with the head and taught their own. */
    assert_memory_equal(rep.head, stream_chunks[5], rep.head_len);
}

/* The chunks that finish a choice or carry usage share the head only up to their
 * delta or choices: their walks start at the last learnt key inside what they share
 * (here "choices"), and what they learn keeps the keys before it. */
static void test_chunk_partial_head(void **state)
{
    struct gw_jscan_chunk_repeats rep = {0};
    struct gw_jscan_chunk f;
    const char *fin = stream_chunks[4], *use = stream_chunks[5];
    size_t choices = (size_t)(strstr(fin, "\"choices\"") - fin), k;
    (void)state;

    gw_jscan_chunk_facts(stream_chunks[1], strlen(stream_chunks[1]), &f, &rep);
    assert_true(rep.nkeys >= 4);
    for (k = 0; k < rep.nkeys; k++) {
        assert_int_equal(stream_chunks[1][rep.keys[k]], '"');
        assert_true(k == 0 || rep.keys[k] > rep.keys[k - 1]);
    }
    assert_int_equal(rep.head_len, (size_t)rep.keys[rep.nkeys - 1] + 1);
    expect_same_facts(fin, strlen(fin), &rep);
    gw_jscan_chunk_facts(stream_chunks[2], strlen(stream_chunks[2]), &f, &rep);
    gw_jscan_chunk_facts(fin, strlen(fin), &f, &rep);
    assert_int_equal(f.nreasons, 1);
    assert_int_equal(f.reason_len, 4);
    assert_memory_equal(f.reason, "stop", 4);
    /* It learnt its own head, and kept the keys up to "choices" it shared. */
    assert_true(rep.nkeys >= 5);
    for (k = 0; k < rep.nkeys && rep.keys[k] <= choices; k++) {
        assert_int_equal(fin[rep.keys[k]], '"');
    }
    assert_int_equal(rep.keys[k - 1], choices);
    expect_same_facts(use, strlen(use), &rep);
}

/* More keys than the head keeps: the first ones and the latest stay, in order. */
static void test_chunk_head_keys_bounded(void **state)
{
    struct gw_jscan_chunk_repeats rep = {0};
    struct gw_jscan_chunk f;
    char buf[GW_JSCAN_HEAD_MAX];
    size_t n = 0, k, i;
    (void)state;

    buf[n++] = '{';
    for (i = 0; i < 40; i++) {
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\"k%zu\":1,", i % 10);
    }
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\"content\":\"x\"}");
    assert_true(n < sizeof(buf));
    gw_jscan_chunk_facts(buf, n, &f, &rep);
    assert_int_equal(f.text_bytes, 1);
    assert_int_equal(rep.nkeys, GW_JSCAN_HEAD_KEYS);
    assert_int_equal(rep.head_len, (size_t)(strstr(buf, "\"content\"") - buf) + 1);
    assert_int_equal(rep.keys[rep.nkeys - 1], rep.head_len - 1);
    for (k = 0; k < rep.nkeys; k++) {
        assert_int_equal(buf[rep.keys[k]], '"');
        assert_true(k == 0 || rep.keys[k] > rep.keys[k - 1]);
    }
    buf[n - 3] = 'y';
    expect_same_facts(buf, n, &rep);
}

/* The first members only: FOUND as soon as both are there, whatever follows. */
static void test_members_first(void **state)
{
    static const char *const keys[] = {"id", "model"};
    static const char cut[] = "{\"id\":\"c1\",\"object\":\"x\",\"model\":\"m\",\"choices\":[{";
    static const char no_model[] = "{\"id\":\"c1\",\"choices\":[]}";
    const char *v[2];
    size_t vlen[2];
    (void)state;

    assert_int_equal(gw_jscan_members_first(cut, strlen(cut), keys, 2, v, vlen), GW_JSCAN_FOUND);
    assert_int_equal(vlen[0], 4);
    assert_memory_equal(v[0], "\"c1\"", 4);
    assert_memory_equal(v[1], "\"m\"", 3);
    /* The whole walk says the same text is cut short. */
    assert_int_equal(gw_jscan_members(cut, strlen(cut), keys, 2, v, vlen), GW_JSCAN_INVALID);
    /* A key that never comes: the walk goes on to the end, as gw_jscan_members. */
    assert_int_equal(gw_jscan_members_first(no_model, strlen(no_model), keys, 2, v, vlen),
                     GW_JSCAN_FOUND);
    assert_null(v[1]);
    assert_int_equal(gw_jscan_members_first(cut, 20, keys, 2, v, vlen), GW_JSCAN_INVALID);
}

/* A finish_reason or a usage in what would be the tail keeps it from being learnt: a
 * chunk ending that way must be walked. */
static void test_chunk_tail_not_learnt_over_facts(void **state)
{
    static const char fin[] = "{\"choices\":[{\"delta\":{\"content\":\"a\"},"
                              "\"finish_reason\":\"stop\"}]}";
    static const char use[] = "{\"choices\":[],\"usage\":{\"total_tokens\":1}}";
    struct gw_jscan_chunk_repeats rep = {0};
    struct gw_jscan_chunk f;
    (void)state;

    gw_jscan_chunk_facts(fin, strlen(fin), &f, &rep);
    assert_true(f.finish_reason);
    assert_int_equal(rep.tail_len, 0);
    gw_jscan_chunk_facts(use, strlen(use), &f, &rep);
    assert_true(f.usage);
    assert_int_equal(rep.tail_len, 0);
}

/* A chunk cut right after a counted value ends its walk with no iteration after the
 * count: its rest is not quiet and must not become the tail, or the next chunk with the
 * same rest would lose that text. */
static void test_chunk_tail_not_learnt_after_last_count(void **state)
{
    static const char a[] = "{\"content\":\"a\",\"content\":\"bc\"";
    static const char b[] = "{\"content\":\"zz\",\"content\":\"bc\"";
    struct gw_jscan_chunk_repeats rep = {0};
    (void)state;

    expect_same_facts(a, strlen(a), &rep);
    assert_int_equal(rep.tail_len, 0);
    expect_same_facts(b, strlen(b), &rep);
}

/* Chunks made from a stream's chunks by changing, cutting and repeating bytes, fed in
 * a random order through one record of repeats: always the facts of a walk from the start. Bytes
 * are drawn from those that steer the walk, so changes land in keys, quotes, escapes
 * and the "null" after usage. */
static void test_chunk_repeats_agree_on_mutations(void **state)
{
    static const char steer[] = "\"\\:,{}[] nul0";
    struct gw_jscan_chunk_repeats rep = {0};
    char buf[512];
    uint32_t x = 2463534242u;
    int round;
    (void)state;

    for (round = 0; round < 20000; round++) {
        const char *base;
        size_t n, k, edits;

        unit_xorshift32(&x);
        base = stream_chunks[x % (sizeof(stream_chunks) / sizeof(stream_chunks[0]))];
        n = strlen(base);
        memcpy(buf, base, n);
        unit_xorshift32(&x);
        edits = x % 4;
        for (k = 0; k < edits; k++) {
            unit_xorshift32(&x);
            buf[x % n] = steer[(x >> 16) % (sizeof(steer) - 1)];
        }
        unit_xorshift32(&x);
        if (x % 5 == 0) {
            n = (x >> 8) % (n + 1); /* cut short */
        }
        expect_same_facts(buf, n, &rep);
    }
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_rows),
    cmocka_unit_test(test_agrees_with_json_c),
    cmocka_unit_test(test_u64_members),
    cmocka_unit_test(test_u64s_members),
    cmocka_unit_test(test_u64s_first_stops_at_the_last_key),
    cmocka_unit_test(test_chunk_facts),
    cmocka_unit_test(test_chunk_facts_any_cut),
    cmocka_unit_test(test_chunk_repeats_over_a_stream),
    cmocka_unit_test(test_chunk_partial_head),
    cmocka_unit_test(test_chunk_head_keys_bounded),
    cmocka_unit_test(test_members_first),
    cmocka_unit_test(test_chunk_tail_not_learnt_over_facts),
    cmocka_unit_test(test_chunk_tail_not_learnt_after_last_count),
    cmocka_unit_test(test_chunk_repeats_agree_on_mutations),
};

#include "tests/unit/unit_main.h"
