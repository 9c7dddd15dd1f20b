/* tests/unit/gateway/req/test_gw_req.c - walking and rewriting request texts */
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

#include "core/gv_mem.h"
#include "gateway/gw_req.h"

struct seen {
    int n;
    char log[1024];     /* "role/kind=text;" per visit */
    int fail_at;        /* visit number that returns GV_EIO, 0 = never */
    const char *needle; /* texts containing it are replaced by "[X]" */
    size_t last_len;
};

static gv_rc visit(void *arg, const char *role, const char *kind, const char *text, size_t len,
                   struct gv_buf *replacement, bool *replace)
{
    struct seen *s = arg;
    size_t used = strlen(s->log);

    s->n++;
    s->last_len = len;
    snprintf(s->log + used, sizeof(s->log) - used, "%s/%s=%.*s;", role, kind, (int)len, text);
    if (s->fail_at && s->n == s->fail_at) {
        return GV_EIO;
    }
    if (s->needle && strstr(text, s->needle)) {
        *replace = true;
        return gv_buf_append_str(replacement, "[X]");
    }
    return GV_OK;
}

/* A request and what the walk over it saw; each test gets a zeroed one. */
struct walk {
    struct gw_req req;
    struct seen s;
};

static int setup(void **state)
{
    *state = calloc(1, sizeof(struct walk));
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    struct walk *w = *state;

    json_object_put(w->req.body);
    free(w);
    return 0;
}

/* A fresh request whose body is json (the previous body is released). */
static void req_from(struct walk *w, const char *json)
{
    json_object_put(w->req.body);
    memset(&w->req, 0, sizeof(w->req));
    w->req.body = json_tokener_parse(json);
    assert_non_null(w->req.body);
}

static gv_rc walk(struct walk *w)
{
    return gw_req_foreach_text(&w->req, visit, &w->s);
}

/* A request body and what the walk must see in it, as "role/kind=text;" per
 * visit; the walk only reads, so the body stays unmodified. */
struct sees_row {
    const char *what;
    const char *json;
    const char *want;
};

static const struct sees_row sees_rows[] = {
    {"every shape a text can take",
     "{\"messages\":["
     "{\"role\":\"system\",\"content\":\"be nice\"},"
     "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"part one\"},"
     "{\"type\":\"image_url\",\"image_url\":{\"url\":\"http://x\"}},\"bare\"]},"
     "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c1\","
     "\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
     "{\"role\":\"assistant\",\"function_call\":{\"name\":\"g\",\"arguments\":"
     "\"{\\\"a\\\":1}\"}},"
     "{\"content\":\"no role\"},"
     "42,"
     "{\"role\":\"tool\",\"content\":7}]}",
     "system/content=be nice;user/content=part one;user/content=bare;"
     "assistant/arguments={};assistant/arguments={\"a\":1};user/content=no role;"},
    /* Members are found by their exact names, among look-alikes, and a name
     * given twice counts once, with its last value, as json-c keeps it. */
    {"exact member names, the last of duplicates",
     "{\"messages\":["
     "{\"roles\":\"system\",\"contents\":\"no\",\"content\":\"first\","
     "\"content\":\"last\",\"role\":\"tool\",\"tool_call_id\":\"t\"},"
     "{\"role\":\"assistant\",\"tool_call\":[{\"function\":{\"arguments\":\"x\"}}],"
     "\"function\":{\"arguments\":\"y\"},\"function_calls\":{\"arguments\":\"z\"},"
     "\"tool_calls\":[{\"function\":{\"arguments\":\"a\"}}],"
     "\"function_call\":{\"arguments\":\"b\"},\"c\":\"\",\"\":\"empty\"}]}",
     "tool/content=last;assistant/arguments=a;assistant/arguments=b;"},
};

static void test_foreach_text_sees(void **state)
{
    struct walk *w = *state;
    size_t i;

    for (i = 0; i < sizeof(sees_rows) / sizeof(sees_rows[0]); i++) {
        print_message("case: %s\n", sees_rows[i].what);
        memset(&w->s, 0, sizeof(w->s));
        req_from(w, sees_rows[i].json);
        assert_int_equal(walk(w), GV_OK);
        assert_string_equal(w->s.log, sees_rows[i].want);
        assert_false(w->req.body_modified);
        /* The same walk from the array validation handed over, without the lookup. */
        memset(&w->s, 0, sizeof(w->s));
        w->req.messages = json_object_object_get(w->req.body, "messages");
        assert_int_equal(walk(w), GV_OK);
        assert_string_equal(w->s.log, sees_rows[i].want);
    }
}

static void test_foreach_text_replaces_in_place(void **state)
{
    struct walk *w = *state;
    const char *out;

    w->s.needle = "secret";
    req_from(w, "{\"model\":\"m\",\"messages\":["
                "{\"role\":\"user\",\"content\":\"my secret is 42\"},"
                "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a secret\"},"
                "\"secret bare\",\"fine\"]},"
                "{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{\"arguments\":"
                "\"secret args\"}}]}]}");
    assert_int_equal(walk(w), GV_OK);
    assert_true(w->req.body_modified);
    out = json_object_to_json_string_ext(w->req.body, JSON_C_TO_STRING_PLAIN);
    assert_string_equal(out, "{\"model\":\"m\",\"messages\":["
                             "{\"role\":\"user\",\"content\":\"[X]\"},"
                             "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"[X]\"},"
                             "\"[X]\",\"fine\"]},"
                             "{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{"
                             "\"arguments\":\"[X]\"}}]}]}");
}

static void test_foreach_text_stops_on_error(void **state)
{
    struct walk *w = *state;

    w->s.fail_at = 2;
    req_from(w, "{\"messages\":[{\"content\":\"a\"},{\"content\":\"b\"},{\"content\":\"c\"}]}");
    assert_int_equal(walk(w), GV_EIO);
    assert_int_equal(w->s.n, 2);
    assert_string_equal(w->s.log, "user/content=a;user/content=b;");
}

static void test_foreach_text_no_messages(void **state)
{
    struct walk *w = *state;

    req_from(w, "{\"messages\":\"not an array\"}");
    assert_int_equal(walk(w), GV_OK);
    req_from(w, "{\"prompt\":\"legacy\"}");
    assert_int_equal(walk(w), GV_OK);
    json_object_put(w->req.body);
    memset(&w->req, 0, sizeof(w->req));
    assert_int_equal(walk(w), GV_OK);
    assert_int_equal(w->s.n, 0);
}

static void test_foreach_text_embedded_nul_length(void **state)
{
    struct walk *w = *state;

    /* The callback gets the JSON string's real length, not strlen(). */
    req_from(w, "{\"messages\":[{\"content\":\"a\\u0000b\"}]}");
    assert_int_equal(walk(w), GV_OK);
    assert_int_equal(w->s.last_len, 3);
    assert_int_equal(w->s.n, 1);
}

static void test_answer_append_caps_at_a_utf8_boundary(void **state)
{
    struct gv_buf b;
    bool cut = false;
    char *big = gv_malloc(GW_REQ_ANSWER_MAX);

    (void)state;
    gv_buf_init(&b, 0);
    gw_req_answer_append(&b, &cut, "Hello, ", 7);
    gw_req_answer_append(&b, &cut, "world", 5);
    assert_int_equal(b.len, 12);
    assert_memory_equal(b.data, "Hello, world", 12);
    assert_false(cut);
    /* Fill up to two bytes short of the cap, then a 3-byte character: it does
     * not fit whole, so nothing of it is kept, and the answer says it was cut. */
    memset(big, 'a', GW_REQ_ANSWER_MAX);
    gw_req_answer_append(&b, &cut, big, GW_REQ_ANSWER_MAX - 2 - b.len);
    assert_int_equal(b.len, GW_REQ_ANSWER_MAX - 2);
    assert_false(cut);
    gw_req_answer_append(&b, &cut, "\xe2\x82\xac tail", 8);
    assert_int_equal(b.len, GW_REQ_ANSWER_MAX - 2);
    assert_true(cut);
    /* Once cut, later text is not appended (the kept text is a prefix). */
    gw_req_answer_append(&b, &cut, "x", 1);
    assert_int_equal(b.len, GW_REQ_ANSWER_MAX - 2);
    gv_buf_free(&b);
    gv_free(big);
}

static void test_prompt_tokens_estimate_and_bound(void **state)
{
    struct walk *w = *state;
    uint64_t est = 0, max = 0;

    assert_int_equal(gw_req_tokens_estimate(0), 0);
    assert_int_equal(gw_req_tokens_estimate(1), 1);
    assert_int_equal(gw_req_tokens_estimate(4), 1);
    assert_int_equal(gw_req_tokens_estimate(2000), 500);
    /* Two messages: 8 + 5 text bytes, 4 tokens framing each, 3 for the reply. */
    req_from(w, "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief\"},"
                "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hello\"}]}]}");
    gw_req_prompt_tokens(&w->req, &est, &max);
    assert_int_equal(est, 2 + 2 + 2 * GW_REQ_TOKENS_PER_MESSAGE + GW_REQ_TOKENS_REPLY);
    assert_int_equal(max, 13 + 2 * GW_REQ_TOKENS_PER_MESSAGE + GW_REQ_TOKENS_REPLY);
    assert_false(w->req.body_modified);
    json_object_put(w->req.body);
    memset(&w->req, 0, sizeof(w->req));
    gw_req_prompt_tokens(&w->req, &est, &max);
    assert_int_equal(est, GW_REQ_TOKENS_REPLY);
    assert_int_equal(max, GW_REQ_TOKENS_REPLY);
}

/* Every test walks its own fresh request. */
#define WALK_TEST(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

static const struct CMUnitTest tests[] = {
    WALK_TEST(test_foreach_text_sees),
    WALK_TEST(test_foreach_text_replaces_in_place),
    WALK_TEST(test_foreach_text_stops_on_error),
    WALK_TEST(test_foreach_text_no_messages),
    WALK_TEST(test_foreach_text_embedded_nul_length),
    cmocka_unit_test(test_answer_append_caps_at_a_utf8_boundary),
    WALK_TEST(test_prompt_tokens_estimate_and_bound),
};

#include "tests/unit/unit_main.h"
