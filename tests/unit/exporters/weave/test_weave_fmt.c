/* tests/unit/exporters/weave/test_weave_fmt.c - exact bytes of Weave calls from records */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/gv_mem.h"
#include "exporters/weave/weave.h"
#include "tests/unit/exporters/json_text.h"

#define INSTANCE "0123456789abcdef0123456789abcdef"

static struct gv_hello hello;

static void record(struct gv_record *r, enum gv_decision d)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->request_id, sizeof(r->request_id), "req_1");
    snprintf(r->run_id, sizeof(r->run_id), "run1");
    snprintf(r->model, sizeof(r->model), "gpt-4o");
    snprintf(r->target, sizeof(r->target), "t1");
    snprintf(r->roles, sizeof(r->roles), "system,user");
    r->nmessages = 2;
    r->decision = d;
    r->npolicies = 2;
    snprintf(r->policies[0].name, sizeof(r->policies[0].name), "prompt-injection");
    r->policies[0].score = 0.25;
    snprintf(r->policies[1].name, sizeof(r->policies[1].name), "pii-detector");
    r->start_wall_us = 1767225600000000ull; /* 2026-01-01T00:00:00Z */
    r->latency_total_us = 840000;
    r->latency_upstream_us = 800000;
    r->latency_gateway_us = 1500;
    r->tokens_prompt = 42;
    r->tokens_completion = 128;
    r->cost_usd = 0.001385;
    r->http_status = 200;
    if (d == GV_DECISION_REDACTED) {
        r->policies[1].action = GV_OUTCOME_REDACT;
        r->policies[1].pii_counts[GV_PII_EMAIL_ADDRESS] = 1;
    }
    if (d == GV_DECISION_BLOCKED) {
        r->policies[0].action = GV_OUTCOME_BLOCK;
        r->policies[1].action = GV_OUTCOME_SKIPPED;
        r->tokens_prompt = r->tokens_completion = 0;
        r->cost_usd = 0;
        r->http_status = 403;
        snprintf(r->error_code, sizeof(r->error_code), "prompt_injection_detected");
    }
    if (d == GV_DECISION_ERROR) {
        r->tokens_prompt = r->tokens_completion = 0;
        r->cost_usd = 0;
        r->http_status = 500;
        snprintf(r->error_code, sizeof(r->error_code), "upstream_error");
    }
}

static void input(struct ex_weave_call_in *in, const struct gv_record *r)
{
    memset(in, 0, sizeof(*in));
    in->rec = r;
    in->instance_id = INSTANCE;
    in->seq = 7;
    in->hello = &hello;
    in->entity = "acme";
    in->project = "rlhf";
    in->policy_ref = "weave:///acme/rlhf/object/kt-policy-pack:abc123";
}

/* One call as the exporter gets it: a record of decision d and the input that points at it. */
struct call {
    struct gv_record r;
    struct ex_weave_call_in in;
};

static void call_make(struct call *c, enum gv_decision d)
{
    record(&c->r, d);
    input(&c->in, &c->r);
}

static char *start_str(const struct ex_weave_call_in *in)
{
    return json_text(ex_weave_fmt_start(in));
}

static char *end_str(const struct ex_weave_call_in *in)
{
    return json_text(ex_weave_fmt_end(in));
}

/* Whether the bytes a formatter wrote hold want; takes text (from start_str or end_str), so a
 * check is one assert_true or assert_false line that names what it looked for. */
static bool holds(char *text, const char *want)
{
    bool found = strstr(text, want) != NULL;

    gv_free(text);
    return found;
}

static int setup(void **state)
{
    (void)state;
    memset(&hello, 0, sizeof(hello));
    snprintf(hello.instance_id, sizeof(hello.instance_id), INSTANCE);
    snprintf(hello.pack_name, sizeof(hello.pack_name), "pack");
    snprintf(hello.pack_version, sizeof(hello.pack_version), "1.0.0");
    snprintf(hello.chain, sizeof(hello.chain), "prompt-injection,pii-detector");
    return 0;
}

static void test_call_id_deterministic_uuidv7(void **state)
{
    char a[37], b[37], c[37], t[37];

    (void)state;
    ex_weave_call_id(INSTANCE, 7, 1767225600000000ull, a);
    ex_weave_call_id(INSTANCE, 7, 1767225600000000ull, b);
    ex_weave_call_id(INSTANCE, 8, 1767225600000000ull, c);
    ex_weave_trace_id(INSTANCE, 7, 1767225600000000ull, t);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_string_not_equal(a, t);
    assert_int_equal(strlen(a), 36);
    /* 1767225600000 ms = 0x019b76daa800: the time prefix, then version 7, variant 10. */
    assert_memory_equal(a, "019b76da-a800-7", 15);
    assert_true(strchr("89ab", a[19]) != NULL);
    assert_int_equal(a[8], '-');
    assert_int_equal(a[23], '-');
}

static void test_fmt_start_exact_bytes(void **state)
{
    struct call c;
    char *s, id[37], tid[37], want[4096];

    (void)state;
    call_make(&c, GV_DECISION_REDACTED);
    ex_weave_call_id(INSTANCE, 7, c.r.start_wall_us, id);
    ex_weave_trace_id(INSTANCE, 7, c.r.start_wall_us, tid);
    s = start_str(&c.in);
    snprintf(
        want, sizeof(want),
        "{\"project_id\":\"acme/rlhf\",\"id\":\"%s\",\"trace_id\":\"%s\","
        "\"op_name\":\"openai.chat.completions.create\","
        "\"display_name\":\"gpt-4o \xc2\xb7 redacted\","
        "\"started_at\":\"2026-01-01T00:00:00.000000Z\","
        "\"attributes\":{\"kt\":{\"decision\":\"redacted\",\"request_id\":\"req_1\","
        "\"principal\":\"\",\"team\":\"\",\"status\":200,\"streamed\":false,"
        "\"target\":\"t1\",\"latency_us\":840000,\"upstream_us\":800000,"
        "\"overhead_us\":1500,\"cost_usd\":0.001385,"
        "\"policies\":[{\"name\":\"prompt-injection\",\"action\":\"pass\",\"score\":0.25},"
        "{\"name\":\"pii-detector\",\"action\":\"redact\",\"score\":0}],"
        "\"pii\":{\"EMAIL_ADDRESS\":1},\"gateway\":\"" INSTANCE "\",\"seq\":7,"
        "\"pack\":{\"name\":\"pack\",\"version\":\"1.0.0\","
        "\"chain\":[\"prompt-injection\",\"pii-detector\"]},"
        "\"policy\":\"weave:///acme/rlhf/object/kt-policy-pack:abc123\"}},"
        "\"inputs\":{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"system\",\"content\":null},"
        "{\"role\":\"user\",\"content\":null}],\"n_messages\":2},"
        "\"wb_run_id\":\"acme/rlhf/run1\"}",
        id, tid);
    assert_string_equal(s, want);
    gv_free(s);
}

static void test_fmt_end_exact_bytes(void **state)
{
    struct call c;
    char *s, id[37], want[2048];

    (void)state;
    call_make(&c, GV_DECISION_ALLOWED);
    ex_weave_call_id(INSTANCE, 7, c.r.start_wall_us, id);
    s = end_str(&c.in);
    snprintf(want, sizeof(want),
             "{\"project_id\":\"acme/rlhf\",\"id\":\"%s\","
             "\"ended_at\":\"2026-01-01T00:00:00.840000Z\",\"exception\":null,"
             "\"output\":{\"object\":\"chat.completion\",\"model\":\"gpt-4o\","
             "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":null},"
             "\"finish_reason\":null}],\"usage\":{\"prompt_tokens\":42,"
             "\"completion_tokens\":128,\"total_tokens\":170}},"
             "\"summary\":{\"usage\":{\"gpt-4o\":{\"requests\":1,\"prompt_tokens\":42,"
             "\"completion_tokens\":128,\"total_tokens\":170}}}}",
             id);
    assert_string_equal(s, want);
    gv_free(s);
}

static void test_fmt_blocked_is_not_an_exception(void **state)
{
    struct call c;

    (void)state;
    call_make(&c, GV_DECISION_BLOCKED);
    assert_true(holds(end_str(&c.in), "\"exception\":null,\"output\":{\"blocked\":true,"
                                      "\"policy\":\"prompt-injection\","
                                      "\"code\":\"prompt_injection_detected\",\"status\":403}"));
    assert_true(holds(end_str(&c.in), "\"gpt-4o\":{\"requests\":1,\"prompt_tokens\":0,"));
    c.in.blocked_as_error = true;
    assert_true(holds(end_str(&c.in), "\"exception\":\"kt.Blocked: prompt-injection\""));
}

static void test_fmt_upstream_error_is_an_exception(void **state)
{
    struct call c;

    (void)state;
    call_make(&c, GV_DECISION_ERROR);
    assert_true(
        holds(end_str(&c.in),
              "\"exception\":\"kt.UpstreamError: upstream_error (HTTP 500)\",\"output\":null"));
}

static void test_fmt_content_redacted_and_guarded(void **state)
{
    struct call c;
    struct gv_content content;

    (void)state;
    call_make(&c, GV_DECISION_REDACTED);
    c.in.policy_ref = NULL;
    content.request = (char *)"[{\"role\":\"system\",\"content\":\"weave:///x\"},"
                              "{\"role\":\"user\",\"content\":\"mail <EMAIL_ADDRESS>\"}]";
    content.response = (char *)"done";
    content.request_truncated = false;
    content.response_truncated = false;
    c.r.content = &content;
    assert_true(holds(start_str(&c.in),
                      "\"inputs\":{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"system\","
                      "\"content\":\"[kt:not-a-ref] weave:///x\"},{\"role\":\"user\","
                      "\"content\":\"mail <EMAIL_ADDRESS>\"}],\"n_messages\":2}"));
    assert_false(holds(start_str(&c.in), "\"policy\":"));
    assert_true(holds(end_str(&c.in), "\"message\":{\"role\":\"assistant\",\"content\":\"done\"}"));
    /* A blocked prompt's text never leaves, whatever was captured. */
    c.r.decision = GV_DECISION_BLOCKED;
    assert_false(holds(start_str(&c.in), "mail <"));
    assert_true(holds(start_str(&c.in), "{\"role\":\"user\",\"content\":null}"));
    c.r.content = NULL;
}

/* A ref-like string is guarded wherever it sits: an object's value or an array's element. */
static void test_fmt_guards_refs_at_any_depth(void **state)
{
    struct call c;
    struct gv_content content = {0};

    (void)state;
    call_make(&c, GV_DECISION_ALLOWED);
    content.request = (char *)"[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
                              "\"text\":\"weave:///a\"},\"weave:///b\",[\"weave:///c\"]]}]";
    c.r.content = &content;
    assert_true(holds(start_str(&c.in),
                      "\"content\":[{\"type\":\"text\",\"text\":\"[kt:not-a-ref] weave:///a\"},"
                      "\"[kt:not-a-ref] weave:///b\",[\"[kt:not-a-ref] weave:///c\"]]"));
    c.r.content = NULL;
}

static void test_fmt_untagged_has_no_run_link(void **state)
{
    struct call c;

    (void)state;
    call_make(&c, GV_DECISION_ALLOWED);
    c.r.run_id[0] = '\0';
    assert_false(holds(start_str(&c.in), "wb_run_id"));
}

static void test_fmt_upsert_and_complete_items(void **state)
{
    struct call c;
    struct gv_buf b;
    char *st, *en;

    (void)state;
    call_make(&c, GV_DECISION_ALLOWED);
    st = start_str(&c.in);
    en = end_str(&c.in);
    gv_buf_init(&b, 0);
    assert_int_equal(ex_weave_fmt_upsert_items(&c.in, &b), GV_OK);
    assert_int_equal(strncmp(b.data, "{\"mode\":\"start\",\"req\":{\"start\":", 31), 0);
    assert_non_null(strstr(b.data, st));
    assert_non_null(strstr(b.data, "}}},{\"mode\":\"end\",\"req\":{\"end\":"));
    assert_non_null(strstr(b.data, en));
    gv_buf_reset(&b);
    assert_int_equal(ex_weave_fmt_complete_item(&c.in, &b), GV_OK);
    /* The start object with the end's fields after it, once. */
    assert_int_equal(strncmp(b.data, st, strlen(st) - 1), 0);
    assert_non_null(
        strstr(b.data, ",\"ended_at\":\"2026-01-01T00:00:00.840000Z\",\"exception\":null,"));
    assert_null(strstr(strstr(b.data, "ended_at"), "\"project_id\""));
    gv_buf_free(&b);
    gv_free(st);
    gv_free(en);
}

/* An item that does not fit in the batch is left out whole: what was there before stays,
 * and nothing of the item follows it. */
static void test_fmt_item_that_does_not_fit_leaves_nothing(void **state)
{
    struct call c;
    struct gv_buf b;
    char *st;

    (void)state;
    call_make(&c, GV_DECISION_ALLOWED);
    st = start_str(&c.in);
    /* Room for the start item of an upsert pair, not for the end item after it. */
    gv_buf_init(&b, strlen(st) + 64);
    assert_int_equal(gv_buf_append_str(&b, "{\"batch\":["), GV_OK);
    assert_int_equal(ex_weave_fmt_upsert_items(&c.in, &b), GV_E2BIG);
    assert_string_equal(b.data, "{\"batch\":[");
    assert_int_equal(ex_weave_fmt_complete_item(&c.in, &b), GV_E2BIG);
    assert_string_equal(b.data, "{\"batch\":[");
    gv_buf_free(&b);
    gv_free(st);
}

static void test_fmt_policy_obj_and_cost_exact(void **state)
{
    struct gv_buf b;
    char oid[64];

    (void)state;
    gv_buf_init(&b, 0);
    snprintf(hello.pack_name, sizeof(hello.pack_name), "my pack/v2");
    assert_int_equal(ex_weave_fmt_policy_obj("acme/rlhf", &hello, &b, oid, sizeof(oid)), GV_OK);
    assert_string_equal(oid, "kt-policy-my-pack-v2");
    assert_string_equal(b.data, "{\"obj\":{\"project_id\":\"acme/rlhf\","
                                "\"object_id\":\"kt-policy-my-pack-v2\",\"val\":{\"kind\":"
                                "\"kt.policy_pack\",\"name\":\"my pack/v2\",\"version\":\"1.0.0\","
                                "\"chain\":[\"prompt-injection\",\"pii-detector\"]}}}");
    gv_buf_reset(&b);
    assert_int_equal(ex_weave_fmt_cost("acme/rlhf", "gpt-4o", 2.5, 10.0, &b), GV_OK);
    assert_string_equal(b.data, "{\"project_id\":\"acme/rlhf\",\"costs\":{\"gpt-4o\":{"
                                "\"prompt_token_cost\":2.5e-06,\"completion_token_cost\":1e-05,"
                                "\"prompt_token_cost_unit\":\"USD\","
                                "\"completion_token_cost_unit\":\"USD\",\"provider_id\":\"kt\"}}}");
    gv_buf_free(&b);
}

static void test_trace_url_resolution(void **state)
{
    char u[256];

    (void)state;
    unsetenv("WF_TRACE_SERVER_URL");
    ex_weave_trace_url(NULL, NULL, u, sizeof(u));
    assert_string_equal(u, "https://trace.wandb.ai");
    ex_weave_trace_url(NULL, "https://api.wandb.ai", u, sizeof(u));
    assert_string_equal(u, "https://trace.wandb.ai");
    ex_weave_trace_url(NULL, "https://acme.wandb.io/", u, sizeof(u));
    assert_string_equal(u, "https://acme.wandb.io/traces");
    setenv("WF_TRACE_SERVER_URL", "http://127.0.0.1:9/", 1);
    ex_weave_trace_url(NULL, "https://acme.wandb.io", u, sizeof(u));
    assert_string_equal(u, "http://127.0.0.1:9");
    ex_weave_trace_url("http://override", "https://acme.wandb.io", u, sizeof(u));
    assert_string_equal(u, "http://override");
    unsetenv("WF_TRACE_SERVER_URL");
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup(test_call_id_deterministic_uuidv7, setup),
    cmocka_unit_test_setup(test_fmt_start_exact_bytes, setup),
    cmocka_unit_test_setup(test_fmt_end_exact_bytes, setup),
    cmocka_unit_test_setup(test_fmt_blocked_is_not_an_exception, setup),
    cmocka_unit_test_setup(test_fmt_upstream_error_is_an_exception, setup),
    cmocka_unit_test_setup(test_fmt_content_redacted_and_guarded, setup),
    cmocka_unit_test_setup(test_fmt_guards_refs_at_any_depth, setup),
    cmocka_unit_test_setup(test_fmt_untagged_has_no_run_link, setup),
    cmocka_unit_test_setup(test_fmt_upsert_and_complete_items, setup),
    cmocka_unit_test_setup(test_fmt_item_that_does_not_fit_leaves_nothing, setup),
    cmocka_unit_test_setup(test_fmt_policy_obj_and_cost_exact, setup),
    cmocka_unit_test_setup(test_trace_url_resolution, setup),
};

#include "tests/unit/unit_main.h"
