/* tests/unit/gateway/telemetry/test_gw_telemetry.c - config, shape, capped capture */
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
#include "gateway/gw_config.h"
#include "gateway/gw_telemetry.h"

static const char *BASE = "providers:\n"
                          "  targets:\n"
                          "    - id: t\n"
                          "      provider: openai:chat:gpt-4o\n";

static struct gw_config *load(const char *extra, gv_rc want, struct gv_cfg_err *err)
{
    char yaml[1024];
    struct gw_config *cfg = NULL;

    snprintf(yaml, sizeof(yaml), "%s%s", BASE, extra);
    assert_int_equal(gw_config_load_buf("t.yaml", yaml, strlen(yaml), &cfg, err), want);
    return cfg;
}

static void test_config_default_none_and_redacted(void **state)
{
    struct gv_cfg_err err;
    struct gw_config *cfg;

    (void)state;
    memset(&err, 0, sizeof(err));
    cfg = load("", GV_OK, &err);
    assert_int_equal(cfg->telemetry_content, GW_TELEMETRY_NONE);
    gw_config_destroy(cfg);
    cfg = load("telemetry:\n  content: redacted\n", GV_OK, &err);
    assert_int_equal(cfg->telemetry_content, GW_TELEMETRY_REDACTED);
    gw_config_destroy(cfg);
    cfg = load("telemetry:\n  content: raw\n", GV_ECONFIG, &err);
    assert_null(cfg);
    assert_non_null(strstr(err.msg, "t.yaml:6:"));
    cfg = load("telemetry:\n  prompts: true\n", GV_ECONFIG, &err);
    assert_non_null(strstr(err.msg, "prompts"));
}

static void test_shape_roles_whole_only(void **state)
{
    struct gv_record rec;
    struct json_object *body =
        json_tokener_parse("{\"messages\":[{\"role\":\"system\",\"content\":\"a\"},{\"role\":"
                           "\"user\",\"content\":\"b\"},"
                           "{\"role\":\"my secret role\",\"content\":\"c\"},{\"content\":\"d\"}]}");

    (void)state;
    memset(&rec, 0, sizeof(rec));
    gw_telemetry_shape(&rec, body, NULL);
    assert_int_equal(rec.nmessages, 4);
    assert_string_equal(rec.roles, "system,user,unknown,unknown");
    /* The array validation found, handed over, gives the same as the lookup. */
    memset(&rec, 0, sizeof(rec));
    gw_telemetry_shape(&rec, body, json_object_object_get(body, "messages"));
    assert_int_equal(rec.nmessages, 4);
    assert_string_equal(rec.roles, "system,user,unknown,unknown");
    json_object_put(body);
    gw_telemetry_shape(&rec, NULL, NULL);
    assert_int_equal(rec.nmessages, 0);
    assert_string_equal(rec.roles, "");
    /* Ten roles of 9 bytes do not fit the 63 the record holds: six whole ones do. */
    body = json_tokener_parse("{\"messages\":[{\"role\":\"assistant\"},{\"role\":\"assistant\"},"
                              "{\"role\":\"assistant\"},{\"role\":\"assistant\"},"
                              "{\"role\":\"assistant\"},{\"role\":\"assistant\"},"
                              "{\"role\":\"assistant\"},{\"role\":\"assistant\"},"
                              "{\"role\":\"assistant\"},{\"role\":\"assistant\"}]}");
    gw_telemetry_shape(&rec, body, NULL);
    assert_int_equal(rec.nmessages, 10);
    assert_string_equal(rec.roles, "assistant,assistant,assistant,assistant,assistant,assistant");
    json_object_put(body);
}

static void test_request_and_answer_captured_only_when_redacted(void **state)
{
    struct gw_config cfg;
    struct gv_record rec;
    const char *body = "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\","
                       "\"content\":\"mail <EMAIL_ADDRESS>\"}],\"temperature\":0}";
    struct json_object *ans = json_tokener_parse(
        "{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"ok\"}}]}");
    struct json_object *chunk =
        json_tokener_parse("{\"choices\":[{\"index\":0,\"delta\":{\"content\":\" then\"}}]}");
    struct json_object *other = /* a second choice's text is not the first's */
        json_tokener_parse("{\"choices\":[{\"index\":1,\"delta\":{\"content\":\" no\"}}]}");

    (void)state;
    memset(&cfg, 0, sizeof(cfg));
    memset(&rec, 0, sizeof(rec));
    gw_telemetry_request(&cfg, &rec, body, strlen(body));
    gw_telemetry_answer(&cfg, &rec, ans);
    assert_null(rec.content);
    cfg.telemetry_content = GW_TELEMETRY_REDACTED;
    gw_telemetry_request(&cfg, &rec, body, strlen(body));
    assert_non_null(rec.content);
    assert_string_equal(rec.content->request,
                        "[{\"role\":\"user\",\"content\":\"mail <EMAIL_ADDRESS>\"}]");
    gw_telemetry_answer(&cfg, &rec, ans);
    gw_telemetry_answer(&cfg, &rec, chunk);
    gw_telemetry_answer(&cfg, &rec, other);
    assert_string_equal(rec.content->response, "ok then");
    assert_false(rec.content->request_truncated);
    gv_record_release(&rec);
    assert_null(rec.content);
    json_object_put(ans);
    json_object_put(chunk);
    json_object_put(other);
}

static void test_capture_is_capped_with_marker(void **state)
{
    struct gw_config cfg;
    struct gv_record rec;
    struct json_object *msgs, *body = json_object_new_object(), *arr = json_object_new_array();
    struct json_object *m, *ans;
    char *big = gv_malloc(3 * GV_CONTENT_MAX);
    const char *text;
    size_t i;

    (void)state;
    /* Multi-byte text so a cut could split a character. */
    for (i = 0; i + 2 < 3 * GV_CONTENT_MAX; i += 2) {
        big[i] = (char)0xc3;
        big[i + 1] = (char)0xa9;
    }
    big[i] = '\0';
    for (i = 0; i < 2; i++) {
        m = json_object_new_object();
        json_object_object_add(m, "role", json_object_new_string("user"));
        json_object_object_add(m, "content", json_object_new_string(big));
        json_object_array_add(arr, m);
    }
    json_object_object_add(body, "messages", arr);
    text = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN);
    memset(&cfg, 0, sizeof(cfg));
    cfg.telemetry_content = GW_TELEMETRY_REDACTED;
    memset(&rec, 0, sizeof(rec));
    gw_telemetry_request(&cfg, &rec, text, strlen(text));
    assert_true(rec.content->request_truncated);
    assert_true(strlen(rec.content->request) <= GV_CONTENT_MAX);
    msgs = json_tokener_parse(rec.content->request);
    assert_non_null(msgs);
    assert_int_equal(json_object_array_length(msgs), 1);
    text = json_object_get_string(
        json_object_object_get(json_object_array_get_idx(msgs, 0), "content"));
    assert_non_null(strstr(text, GV_CONTENT_TRUNCATED));
    /* The cut left whole characters before the marker. */
    assert_int_equal((strstr(text, GV_CONTENT_TRUNCATED) - text) % 2, 0);
    json_object_put(msgs);
    m = json_object_new_object();
    json_object_object_add(m, "content", json_object_new_string(big));
    ans = json_object_new_object();
    arr = json_object_new_array();
    json_object_object_add(m, "role", json_object_new_string("assistant"));
    msgs = json_object_new_object();
    json_object_object_add(msgs, "message", m);
    json_object_array_add(arr, msgs);
    json_object_object_add(ans, "choices", arr);
    gw_telemetry_answer(&cfg, &rec, ans);
    gw_telemetry_answer(&cfg, &rec, ans);
    assert_true(rec.content->response_truncated);
    assert_int_equal(strlen(rec.content->response),
                     GV_CONTENT_MAX + sizeof(GV_CONTENT_TRUNCATED) - 1);
    gv_record_release(&rec);
    json_object_put(ans);
    json_object_put(body);
    gv_free(big);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_config_default_none_and_redacted),
    cmocka_unit_test(test_shape_roles_whole_only),
    cmocka_unit_test(test_request_and_answer_captured_only_when_redacted),
    cmocka_unit_test(test_capture_is_capped_with_marker),
};

#include "tests/unit/unit_main.h"
