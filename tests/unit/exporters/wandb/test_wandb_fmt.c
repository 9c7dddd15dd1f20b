/* tests/unit/exporters/wandb/test_wandb_fmt.c - exact bytes of rows, config and payloads */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "exporters/wandb/wandb.h"
#include "tests/unit/exporters/json_text.h"

static void snapshot(struct ex_run_snapshot *s)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->run_id, sizeof(s->run_id), "exp1");
    snprintf(s->pack_name, sizeof(s->pack_name), "default");
    snprintf(s->pack_version, sizeof(s->pack_version), "1.0");
    snprintf(s->chain, sizeof(s->chain), "injection,pii, audit");
    s->requests = 10;
    s->allowed = 6;
    s->redacted = 2;
    s->blocked = 1;
    s->errors = 1;
    s->nblocked_by = 1;
    snprintf(s->blocked_by[0].policy, sizeof(s->blocked_by[0].policy), "injection");
    s->blocked_by[0].count = 1;
    s->pii[GV_PII_EMAIL_ADDRESS] = 3;
    s->tokens_prompt = 100;
    s->tokens_completion = 50;
    s->cost_usd = 0.0125;
    s->latency_p50_s = 0.1;
    s->latency_p95_s = 0.25;
    s->latency_p99_s = 0.5;
    s->overhead_p99_s = 0.001;
    s->interval_requests = 3;
    s->hist_nbins = 2;
    s->hist_edges[0] = 0.0;
    s->hist_edges[1] = 0.1;
    s->hist_edges[2] = 0.2;
    s->hist_counts[0] = 1;
    s->hist_counts[1] = 2;
    s->first_seen_wall_us = 1700000000000000ull;
}

static char *row_str(const struct ex_run_snapshot *s, uint64_t now)
{
    return json_text(ex_wandb_fmt_row(s, now));
}

static void test_fmt_row_exact_bytes(void **state)
{
    struct ex_run_snapshot s;
    char *got;

    snapshot(&s);
    got = row_str(&s, 1700000012500000ull);
    assert_string_equal(
        got, "{\"governance/requests\":10,\"governance/allowed\":6,\"governance/redacted\":2,"
             "\"governance/blocked\":1,\"governance/errors\":1,"
             "\"governance/blocked_by/injection\":1,\"governance/pii/EMAIL_ADDRESS\":3,"
             "\"governance/tokens_prompt\":100,\"governance/tokens_completion\":50,"
             "\"governance/tokens_total\":150,\"governance/cost_usd\":0.012500,"
             "\"governance/latency_p50_seconds\":0.1,\"governance/latency_p95_seconds\":0.25,"
             "\"governance/latency_p99_seconds\":0.5,\"governance/overhead_p99_seconds\":0.001,"
             "\"governance/latency_seconds\":{\"_type\":\"histogram\",\"values\":[1,2],"
             "\"bins\":[0,0.1,0.2]},\"_runtime\":12.500,\"_timestamp\":1700000012.500000}");
    free(got);
}

static void test_fmt_row_drops_broken_histogram(void **state)
{
    struct ex_run_snapshot s;
    char *got;

    snapshot(&s);
    s.hist_edges[2] = 0.1; /* not increasing */
    got = row_str(&s, 1700000012500000ull);
    assert_null(strstr(got, "latency_seconds\""));
    free(got);
    s.hist_edges[2] = 0.2;
    s.hist_nbins = EX_HIST_MAX_BINS + 1;
    got = row_str(&s, 1700000012500000ull);
    assert_null(strstr(got, "histogram"));
    free(got);
    s.hist_nbins = 2;
    s.interval_requests = 0; /* no traffic this interval: no histogram */
    got = row_str(&s, 1700000012500000ull);
    assert_null(strstr(got, "histogram"));
    free(got);
}

static void test_fmt_row_non_finite_is_null(void **state)
{
    struct ex_run_snapshot s;
    char *got;

    snapshot(&s);
    s.latency_p99_s = 1.0 / 0.0;
    got = row_str(&s, 1700000012500000ull);
    assert_non_null(strstr(got, "\"governance/latency_p99_seconds\":null"));
    free(got);
}

static void test_fmt_row_publishes_audit_head(void **state)
{
    static const char hash[] = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    struct ex_run_snapshot s;
    char *got;

    snapshot(&s);
    s.audit_head_seq = 3009;
    memcpy(s.audit_head_hash, hash, sizeof(hash));
    got = row_str(&s, 1700000012500000ull);
    assert_non_null(strstr(got, "\"governance/overhead_p99_seconds\":0.001,"
                                "\"governance/audit_head_seq\":3009,"
                                "\"governance/audit_head_hash\":\"9f86d081884c7d659a2feaa0c55ad015"
                                "a3bf4f1b2b0b822cd15d6c15b0f00a08\","));
    free(got);
}

static void test_fmt_config_wraps_values(void **state)
{
    struct ex_run_snapshot s;
    struct json_object *cfg;
    struct gv_buf b;

    snapshot(&s);
    cfg = ex_wandb_fmt_config(&s, "host-a");
    gv_buf_init(&b, 0);
    assert_int_equal(ex_wandb_json_append(&b, cfg), GV_OK);
    assert_string_equal(b.data, "{\"experiment_run_id\":{\"value\":\"exp1\"},"
                                "\"pack_name\":{\"value\":\"default\"},"
                                "\"pack_version\":{\"value\":\"1.0\"},"
                                "\"policy_chain\":{\"value\":[\"injection\",\"pii\",\"audit\"]},"
                                "\"agent_label\":{\"value\":\"host-a\"},"
                                "\"_wandb\":{\"value\":{\"cli_version\":\"" KT_VERSION "\","
                                "\"t\":{\"5\":\"" KT_VERSION "\"},\"m\":[]}}}");
    gv_buf_free(&b);
    json_object_put(cfg);
}

static void test_run_name_mappings(void **state)
{
    struct ex_wandb_fmt_opts o = {0};
    char out[64];

    assert_int_equal(ex_wandb_run_name(&o, "abc", "h1", out, sizeof(out)), GV_OK);
    assert_string_equal(out, "abc-gov");
    o.per_host = true;
    assert_int_equal(ex_wandb_run_name(&o, "abc", "node:7", out, sizeof(out)), GV_OK);
    assert_string_equal(out, "abc-gov-node-7");
    o.mapping = EX_WANDB_SHARED;
    assert_int_equal(ex_wandb_run_name(&o, "a/b", "h1", out, sizeof(out)), GV_OK);
    assert_string_equal(out, "a-b");
    assert_int_equal(ex_wandb_run_name(&o, "0123456789", "h", out, 5), GV_E2BIG);
}

static void test_fmt_batch_exact_and_deterministic(void **state)
{
    struct ex_run_snapshot s[2];
    struct ex_batch b = {0};
    struct ex_wandb_fmt_opts o = {0};
    struct gv_buf a, c;
    struct json_object *doc, *runs, *r, *v;

    snapshot(&s[0]);
    snapshot(&s[1]);
    s[1].run_id[0] = '\0'; /* no run id: nothing to write */
    snprintf(s[0].run_group, sizeof(s[0].run_group), "sweep-3");
    s[0].finalized = true;
    b.seq = 7;
    b.now_wall_us = 1700000012500000ull;
    b.agent_label = "host-a";
    b.nruns = 2;
    b.runs = s;
    o.project = "gov";
    gv_buf_init(&a, 0);
    gv_buf_init(&c, 0);
    assert_int_equal(ex_wandb_fmt_batch(&o, &b, &a), GV_OK);
    assert_int_equal(ex_wandb_fmt_batch(&o, &b, &c), GV_OK);
    assert_string_equal(a.data, c.data);
    doc = json_tokener_parse(a.data);
    assert_non_null(doc);
    assert_true(json_object_object_get_ex(doc, "runs", &runs));
    assert_int_equal(json_object_array_length(runs), 1);
    r = json_object_array_get_idx(runs, 0);
    assert_true(json_object_object_get_ex(r, "run", &v));
    assert_string_equal(json_object_get_string(v), "exp1-gov");
    assert_true(json_object_object_get_ex(r, "name", &v));
    assert_string_equal(json_object_get_string(v), "governance \xc2\xb7 exp1");
    assert_true(json_object_object_get_ex(r, "group", &v));
    assert_string_equal(json_object_get_string(v), "sweep-3");
    assert_true(json_object_object_get_ex(r, "project", &v));
    assert_string_equal(json_object_get_string(v), "gov");
    assert_true(json_object_object_get_ex(r, "final", &v));
    assert_true(json_object_get_boolean(v));
    assert_true(json_object_object_get_ex(r, "job_type", &v));
    assert_string_equal(json_object_get_string(v), "governance");
    json_object_put(doc);
    /* The cap on the agent's buffer is honoured. */
    gv_buf_free(&c);
    gv_buf_init(&c, 16);
    assert_int_equal(ex_wandb_fmt_batch(&o, &b, &c), GV_E2BIG);
    gv_buf_free(&a);
    gv_buf_free(&c);
}

static void test_fmt_batch_defaults_project_and_group(void **state)
{
    struct ex_run_snapshot s;
    struct ex_batch b = {0};
    struct ex_wandb_fmt_opts o = {0};
    struct gv_buf a;

    snapshot(&s);
    b.nruns = 1;
    b.runs = &s;
    gv_buf_init(&a, 0);
    assert_int_equal(ex_wandb_fmt_batch(&o, &b, &a), GV_OK);
    assert_non_null(strstr(a.data, "\"project\":\"uncategorized\""));
    assert_non_null(strstr(a.data, "\"group\":\"exp1\""));
    assert_non_null(strstr(a.data, "\"label\":\"kt-agent\""));
    gv_buf_free(&a);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_fmt_row_exact_bytes),
    cmocka_unit_test(test_fmt_row_drops_broken_histogram),
    cmocka_unit_test(test_fmt_row_non_finite_is_null),
    cmocka_unit_test(test_fmt_row_publishes_audit_head),
    cmocka_unit_test(test_fmt_config_wraps_values),
    cmocka_unit_test(test_run_name_mappings),
    cmocka_unit_test(test_fmt_batch_exact_and_deterministic),
    cmocka_unit_test(test_fmt_batch_defaults_project_and_group),
};

#include "tests/unit/unit_main.h"
