/* tests/unit/gateway/oai/test_gw_oai.c - body + headers -> status, code, param, as rows */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/gw_oai.h"

#define OK_BODY "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"
#define MAX_BODY 4096
/* A streamed request with this stream_options value. */
#define SO(v) "{\"model\":\"m\",\"messages\":[{}],\"stream\":true,\"stream_options\":" v "}"
/* A request with these messages. */
#define MSGS(v) "{\"model\":\"m\",\"messages\":" v "}"
/* A request whose one message has this content (raw bytes inside the JSON string). */
#define TEXT(v) "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"" v "\"}]}"

struct row {
    const char *what;
    const char *body;
    const char *run_id; /* X-Wandb-Run-Id, NULL when absent */
    const char *entity;
    const char *auth;
    int status;        /* 0: accepted */
    const char *code;  /* on refusal */
    const char *param; /* on refusal, NULL for JSON null */
    /* on acceptance */
    const char *model;
    int stream;
    int client_usage;
    const char *api_key;
};

/* One case a row, as wide as its request needs. */
/* clang-format off */
static const struct row rows[] = {
    {"plain request", OK_BODY, NULL, NULL, NULL, 0, NULL, NULL, "gpt-4o", 0, 0, ""},
    {"bearer key is read, spaces skipped", OK_BODY, NULL, NULL, "Bearer   sk-abc", 0, NULL, NULL,
     "gpt-4o", 0, 0, "sk-abc"},
    {"other auth schemes are not keys", OK_BODY, NULL, NULL, "Basic abc", 0, NULL, NULL, "gpt-4o",
     0, 0, ""},
    {"stream with include_usage",
     "{\"model\":\"m\",\"messages\":[{}],\"stream\":true,\"stream_options\":{\"include_usage\":true}}",
     NULL, NULL, NULL, 0, NULL, NULL, "m", 1, 1, ""},
    {"include_usage without stream is ignored",
     "{\"model\":\"m\",\"messages\":[{}],\"stream_options\":{\"include_usage\":true}}", NULL, NULL,
     NULL, 0, NULL, NULL, "m", 0, 0, ""},
    {"trailing white space after the JSON", OK_BODY " \r\n\t", NULL, NULL, NULL, 0, NULL, NULL,
     "gpt-4o", 0, 0, ""},
    {"valid run tag", OK_BODY, "run-2024_abc7", "team.a", NULL, 0, NULL, NULL, "gpt-4o", 0, 0,
     ""},
    {"run id with a slash", OK_BODY, "runs/abc", NULL, NULL, 400, "invalid_run_id",
     "X-Wandb-Run-Id", NULL, 0, 0, NULL},
    {"run id with a space", OK_BODY, "a b", NULL, NULL, 400, "invalid_run_id", "X-Wandb-Run-Id", NULL, 0, 0, NULL},
    {"empty run id", OK_BODY, "", NULL, NULL, 400, "invalid_run_id", "X-Wandb-Run-Id", NULL, 0, 0, NULL},
    {"entity with a colon", OK_BODY, NULL, "a:b", NULL, 400, "invalid_header", "X-Wandb-Entity", NULL, 0, 0, NULL},
    {"empty body", "", NULL, NULL, NULL, 400, "invalid_json", NULL, NULL, 0, 0, NULL},
    {"not JSON", "{model:", NULL, NULL, NULL, 400, "invalid_json", NULL, NULL, 0, 0, NULL},
    {"two JSON values", OK_BODY "{}", NULL, NULL, NULL, 400, "invalid_json", NULL, NULL, 0, 0, NULL},
    {"invalid UTF-8 inside a string",
     "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\"}]}", NULL, NULL,
     NULL, 400, "invalid_json", NULL, NULL, 0, 0, NULL},
    {"an array, not an object", "[1,2]", NULL, NULL, NULL, 400, "invalid_json", NULL, NULL, 0, 0, NULL},
    {"no model", "{\"messages\":[{}]}", NULL, NULL, NULL, 400, "missing_required_parameter",
     "model", NULL, 0, 0, NULL},
    {"null model", "{\"model\":null,\"messages\":[{}]}", NULL, NULL, NULL, 400,
     "missing_required_parameter", "model", NULL, 0, 0, NULL},
    {"numeric model", "{\"model\":5,\"messages\":[{}]}", NULL, NULL, NULL, 400, "invalid_type",
     "model", NULL, 0, 0, NULL},
    {"empty model", "{\"model\":\"\",\"messages\":[{}]}", NULL, NULL, NULL, 400, "invalid_type",
     "model", NULL, 0, 0, NULL},
    {"no messages", "{\"model\":\"m\"}", NULL, NULL, NULL, 400, "missing_required_parameter",
     "messages", NULL, 0, 0, NULL},
    {"messages not an array", "{\"model\":\"m\",\"messages\":{}}", NULL, NULL, NULL, 400,
     "invalid_type", "messages", NULL, 0, 0, NULL},
    {"empty messages", "{\"model\":\"m\",\"messages\":[]}", NULL, NULL, NULL, 400, "invalid_type",
     "messages", NULL, 0, 0, NULL},
    {"stream as a string", "{\"model\":\"m\",\"messages\":[{}],\"stream\":\"yes\"}", NULL, NULL,
     NULL, 400, "invalid_type", "stream", NULL, 0, 0, NULL},
    /* stream_options: an object with a boolean include_usage, or refused (never replaced). */
    {"stream_options a string", SO("\"garbage\""), NULL, NULL, NULL, 400, "invalid_type",
     "stream_options", NULL, 0, 0, NULL},
    {"stream_options a number", SO("5"), NULL, NULL, NULL, 400, "invalid_type", "stream_options",
     NULL, 0, 0, NULL},
    {"stream_options an array", SO("[1,2]"), NULL, NULL, NULL, 400, "invalid_type",
     "stream_options", NULL, 0, 0, NULL},
    {"include_usage a string", SO("{\"include_usage\":\"yes\"}"), NULL, NULL, NULL, 400,
     "invalid_type", "stream_options.include_usage", NULL, 0, 0, NULL},
    {"include_usage a number", SO("{\"include_usage\":1}"), NULL, NULL, NULL, 400, "invalid_type",
     "stream_options.include_usage", NULL, 0, 0, NULL},
    {"stream_options null is absent", SO("null"), NULL, NULL, NULL, 0, NULL, NULL, "m", 1, 0, ""},
    {"include_usage false", SO("{\"include_usage\":false}"), NULL, NULL, NULL, 0, NULL, NULL, "m",
     1, 0, ""},
    {"stream_options without include_usage", SO("{}"), NULL, NULL, NULL, 0, NULL, NULL, "m", 1, 0,
     ""},
    /* messages: objects; content a string, an array of parts, or null. */
    {"messages of numbers, strings and null", MSGS("[1,\"x\",null]"), NULL, NULL, NULL, 400,
     "invalid_type", "messages[0]", NULL, 0, 0, NULL},
    {"second message null", MSGS("[{},null]"), NULL, NULL, NULL, 400, "invalid_type",
     "messages[1]", NULL, 0, 0, NULL},
    {"message a string", MSGS("[\"hi\"]"), NULL, NULL, NULL, 400, "invalid_type", "messages[0]",
     NULL, 0, 0, NULL},
    {"content a number", MSGS("[{\"role\":\"user\",\"content\":5}]"), NULL, NULL, NULL, 400,
     "invalid_type", "messages[0].content", NULL, 0, 0, NULL},
    {"content an object", MSGS("[{\"role\":\"user\",\"content\":\"a\"},{\"content\":{\"a\":1}}]"),
     NULL, NULL, NULL, 400, "invalid_type", "messages[1].content", NULL, 0, 0, NULL},
    {"content a boolean", MSGS("[{\"role\":\"user\",\"content\":true}]"), NULL, NULL, NULL, 400,
     "invalid_type", "messages[0].content", NULL, 0, 0, NULL},
    {"content parts that are not objects", MSGS("[{\"role\":\"user\",\"content\":[\"a\"]}]"), NULL,
     NULL, NULL, 400, "invalid_type", "messages[0].content[0]", NULL, 0, 0, NULL},
    {"text part whose text is not a string",
     MSGS("[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":[\"a@b.co\"]}]}]"),
     NULL, NULL, NULL, 400, "invalid_type", "messages[0].content[0].text", NULL, 0, 0, NULL},
    {"text part without text", MSGS("[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]"),
     NULL, NULL, NULL, 400, "invalid_type", "messages[0].content[0].text", NULL, 0, 0, NULL},
    {"image part", MSGS("[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://x/y.png\"}}]}]"),
     NULL, NULL, NULL, 0, NULL, NULL, "m", 0, 0, ""},
    {"content parts", MSGS("[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"}]}]"),
     NULL, NULL, NULL, 0, NULL, NULL, "m", 0, 0, ""},
    {"content null (tool calls)", MSGS("[{\"role\":\"assistant\",\"content\":null}]"), NULL, NULL,
     NULL, 0, NULL, NULL, "m", 0, 0, ""},
    /* Strict UTF-8 (RFC 3629) and paired surrogate escapes. */
    {"overlong slash", TEXT("a\xc0\xaf" "b"), NULL, NULL, NULL, 400, "invalid_json", NULL, NULL, 0,
     0, NULL},
    {"overlong NUL", TEXT("a\xc0\x80" "b"), NULL, NULL, NULL, 400, "invalid_json", NULL, NULL, 0, 0,
     NULL},
    {"overlong in an e-mail", TEXT("jane.doe\xc0\xae" "example@corp.com"), NULL, NULL, NULL, 400,
     "invalid_json", NULL, NULL, 0, 0, NULL},
    {"three-byte overlong", TEXT("\xe0\x80\xaf"), NULL, NULL, NULL, 400, "invalid_json", NULL,
     NULL, 0, 0, NULL},
    {"encoded high surrogate", TEXT("\xed\xa0\x80"), NULL, NULL, NULL, 400, "invalid_json", NULL,
     NULL, 0, 0, NULL},
    {"encoded low surrogate", TEXT("\xed\xbf\xbf"), NULL, NULL, NULL, 400, "invalid_json", NULL,
     NULL, 0, 0, NULL},
    {"past U+10FFFF", TEXT("\xf4\x90\x80\x80"), NULL, NULL, NULL, 400, "invalid_json", NULL, NULL,
     0, 0, NULL},
    {"F5 lead byte", TEXT("\xf5\x80\x80\x80"), NULL, NULL, NULL, 400, "invalid_json", NULL, NULL, 0,
     0, NULL},
    {"cut three-byte sequence", TEXT("\xe2\x82" "x"), NULL, NULL, NULL, 400, "invalid_json", NULL,
     NULL, 0, 0, NULL},
    {"stray continuation byte", TEXT("\x80"), NULL, NULL, NULL, 400, "invalid_json", NULL, NULL, 0,
     0, NULL},
    {"lone high surrogate escape", TEXT("a\\ud800b"), NULL, NULL, NULL, 400, "invalid_json", NULL,
     NULL, 0, 0, NULL},
    {"lone low surrogate escape", TEXT("\\uDC00"), NULL, NULL, NULL, 400, "invalid_json", NULL,
     NULL, 0, 0, NULL},
    {"high surrogate escape before another escape", TEXT("\\ud800\\n"), NULL, NULL, NULL, 400,
     "invalid_json", NULL, NULL, 0, 0, NULL},
    {"two high surrogate escapes", TEXT("\\ud800\\ud800"), NULL, NULL, NULL, 400, "invalid_json",
     NULL, NULL, 0, 0, NULL},
    {"surrogate escape in a key", "{\"model\":\"m\",\"\\ud800\":1,\"messages\":[{}]}", NULL, NULL,
     NULL, 400, "invalid_json", NULL, NULL, 0, 0, NULL},
    {"paired surrogate escapes", TEXT("\\ud83d\\ude00"), NULL, NULL, NULL, 0, NULL, NULL, "m", 0,
     0, ""},
    {"escaped backslash before ud800 is text", TEXT("\\\\ud800"), NULL, NULL, NULL, 0, NULL, NULL,
     "m", 0, 0, ""},
    {"four-byte, three-byte and two-byte characters",
     TEXT("\xf0\x9f\x98\x80 \xe2\x82\xac \xc3\xa9 \xf4\x8f\xbf\xbf \xed\x9f\xbf"), NULL, NULL, NULL,
     0, NULL, NULL, "m", 0, 0, ""},
};
/* clang-format on */

static void test_rows(void **state)
{
    json_tokener *tok = json_tokener_new_ex(64);
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct row *r = &rows[i];
        struct gw_oai_hdrs h = {r->run_id, NULL, r->entity, NULL, r->auth};
        struct gw_oai_chat chat;
        struct gw_oai_err err;
        struct gv_record rec;
        bool ok;

        memset(&rec, 0, sizeof(rec));
        memset(&err, 0, sizeof(err));
        print_message("case: %s\n", r->what);
        ok = gw_oai_chat_check(tok, &h, r->body, strlen(r->body), MAX_BODY, &chat, &rec, &err);
        if (r->status == 0) {
            assert_true(ok);
            assert_string_equal(chat.model, r->model);
            assert_int_equal(chat.stream, r->stream);
            assert_int_equal(chat.client_usage, r->client_usage);
            /* The messages array the policies walk is the body's own. */
            assert_ptr_equal(chat.messages, json_object_object_get(chat.body, "messages"));
            assert_string_equal(chat.api_key, r->api_key);
            assert_string_equal(rec.run_id, r->run_id ? r->run_id : "");
            assert_string_equal(rec.entity, r->entity ? r->entity : "");
        }
        else {
            assert_false(ok);
            assert_int_equal(err.status, r->status);
            assert_string_equal(err.code, r->code);
            if (r->param) {
                assert_non_null(err.param);
                assert_string_equal(err.param, r->param);
            }
            else {
                assert_null(err.param);
            }
            assert_true(strlen(err.message) > 0);
        }
        if (chat.body) {
            json_object_put(chat.body);
        }
    }
    json_tokener_free(tok);
}

static void test_body_over_the_limit_is_413_before_parsing(void **state)
{
    json_tokener *tok = json_tokener_new_ex(64);
    struct gw_oai_hdrs h = {0};
    struct gw_oai_chat chat;
    struct gw_oai_err err;
    struct gv_record rec;

    (void)state;
    memset(&rec, 0, sizeof(rec));
    assert_false(gw_oai_chat_check(tok, &h, OK_BODY, strlen(OK_BODY), 10, &chat, &rec, &err));
    assert_int_equal(err.status, 413);
    assert_string_equal(err.code, "request_too_large");
    assert_null(chat.body);
    json_tokener_free(tok);
}

static void test_tag_over_the_limit_is_refused(void **state)
{
    json_tokener *tok = json_tokener_new_ex(64);
    char tag[GV_RUN_TAG_MAX + 2];
    struct gw_oai_hdrs h = {0};
    struct gw_oai_chat chat;
    struct gw_oai_err err;
    struct gv_record rec;

    (void)state;
    memset(tag, 'a', sizeof(tag) - 1);
    tag[sizeof(tag) - 1] = '\0';
    h.run_id = tag;
    memset(&rec, 0, sizeof(rec));
    assert_false(gw_oai_chat_check(tok, &h, OK_BODY, strlen(OK_BODY), MAX_BODY, &chat, &rec, &err));
    assert_int_equal(err.status, 400);
    tag[GV_RUN_TAG_MAX] = '\0';
    assert_true(gw_oai_chat_check(tok, &h, OK_BODY, strlen(OK_BODY), MAX_BODY, &chat, &rec, &err));
    assert_int_equal(strlen(rec.run_id), GV_RUN_TAG_MAX);
    json_object_put(chat.body);
    json_tokener_free(tok);
}

/* json-c's own UTF-8 check runs for bytes kt has not checked (upstream
 * answers) and not for a request body, which gw_http_utf8_valid checked. */
static void test_parse_json_checks_utf8_only_when_asked(void **state)
{
    json_tokener *tok = json_tokener_new_ex(64);
    const char bad[] = "{\"content\":\"caf\xc3\"}";
    struct json_object *o;

    (void)state;
    assert_null(gw_oai_parse_json(tok, GW_OAI_JSON_UNCHECKED, bad, sizeof(bad) - 1));
    o = gw_oai_parse_json(tok, GW_OAI_JSON_UTF8_CHECKED, bad, sizeof(bad) - 1);
    assert_non_null(o);
    json_object_put(o);
    /* and the request path still refuses it, by its own check */
    {
        struct gw_oai_hdrs h = {0};
        struct gw_oai_chat chat;
        struct gw_oai_err err;
        struct gv_record rec;
        const char body[] = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
                            "\"content\":\"caf\xc3\"}]}";

        memset(&rec, 0, sizeof(rec));
        assert_false(
            gw_oai_chat_check(tok, &h, body, sizeof(body) - 1, MAX_BODY, &chat, &rec, &err));
        assert_int_equal(err.status, 400);
        assert_string_equal(err.code, "invalid_json");
        assert_null(chat.body);
    }
    json_tokener_free(tok);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_parse_json_checks_utf8_only_when_asked),
    cmocka_unit_test(test_rows),
    cmocka_unit_test(test_body_over_the_limit_is_413_before_parsing),
    cmocka_unit_test(test_tag_over_the_limit_is_refused),
};

#include "tests/unit/unit_main.h"
