/* tests/unit/agent/test_ag_runs.c - per-run counts, snapshots, finalisation, state */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <cmocka.h>

#include "agent/ag_runs.h"
#include "core/gv_mem.h"

static void rec_make(struct gv_record *r, const char *run, enum gv_decision d, uint64_t lat_us)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->run_id, sizeof(r->run_id), "%s", run);
    snprintf(r->project, sizeof(r->project), "proj");
    snprintf(r->entity, sizeof(r->entity), "ent");
    r->decision = d;
    r->latency_total_us = lat_us;
    r->latency_gateway_us = lat_us / 100;
    r->tokens_prompt = 10;
    r->tokens_completion = d == GV_DECISION_BLOCKED ? 0 : 5;
    r->cost_usd = 0.5;
    r->start_wall_us = 1000 + lat_us;
    r->npolicies = 2;
    snprintf(r->policies[0].name, sizeof(r->policies[0].name), "pii-detector");
    snprintf(r->policies[1].name, sizeof(r->policies[1].name), "prompt-injection");
    if (d == GV_DECISION_REDACTED) {
        r->policies[0].action = GV_OUTCOME_REDACT;
        r->policies[0].pii_counts[GV_PII_EMAIL_ADDRESS] = 2;
    }
    if (d == GV_DECISION_BLOCKED) {
        r->policies[1].action = GV_OUTCOME_BLOCK;
    }
}

static const struct ex_run_snapshot *find(const struct ex_run_snapshot *v, size_t n,
                                          const char *run)
{
    size_t i;
    for (i = 0; i < n; i++) {
        if (strcmp(v[i].run_id, run) == 0) {
            return &v[i];
        }
    }
    return NULL;
}

static void feed(struct ag_runs *runs)
{
    struct gv_record r;
    struct gv_hello pack;
    int i;

    memset(&pack, 0, sizeof(pack));
    snprintf(pack.pack_name, sizeof(pack.pack_name), "default");
    snprintf(pack.pack_version, sizeof(pack.pack_version), "1.0");
    snprintf(pack.chain, sizeof(pack.chain), "pii-detector,prompt-injection");
    for (i = 0; i < 10; i++) {
        rec_make(&r, "a", GV_DECISION_ALLOWED, 10000 + (uint64_t)i * 1000);
        ag_runs_apply(runs, &r, &pack, 100);
    }
    rec_make(&r, "a", GV_DECISION_REDACTED, 20000);
    ag_runs_apply(runs, &r, &pack, 100);
    rec_make(&r, "a", GV_DECISION_BLOCKED, 300);
    ag_runs_apply(runs, &r, &pack, 100);
    rec_make(&r, "", GV_DECISION_ERROR, 5000);
    ag_runs_apply(runs, &r, NULL, 200);
}

/* PII found by a policy that only flags or logs it (sync, or async after the
 * request was forwarded) is PII that went upstream: it counts too. A blocked
 * request's PII never left and does not. */
static void test_collect_counts_pii_flagged_or_logged(void **state)
{
    struct ag_runs *runs = ag_runs_create(0);
    struct ex_run_snapshot *v = NULL;
    const struct ex_run_snapshot *a;
    struct gv_record r;

    (void)state;
    rec_make(&r, "a", GV_DECISION_ALLOWED, 1000);
    r.policies[0].action = GV_OUTCOME_FLAG;
    r.policies[0].pii_counts[GV_PII_EMAIL_ADDRESS] = 3;
    ag_runs_apply(runs, &r, NULL, 100);
    rec_make(&r, "a", GV_DECISION_ALLOWED, 1000);
    r.policies[0].action = GV_OUTCOME_LOG;
    r.policies[0].pii_counts[GV_PII_PERSON] = 1;
    ag_runs_apply(runs, &r, NULL, 100);
    rec_make(&r, "a", GV_DECISION_BLOCKED, 1000);
    r.policies[0].action = GV_OUTCOME_BLOCK;
    r.policies[0].pii_counts[GV_PII_EMAIL_ADDRESS] = 5;
    ag_runs_apply(runs, &r, NULL, 100);
    assert_int_equal(ag_runs_collect(runs, 300, &v), 1);
    a = find(v, 1, "a");
    assert_non_null(a);
    assert_int_equal(a->pii[GV_PII_EMAIL_ADDRESS], 3);
    assert_int_equal(a->pii[GV_PII_PERSON], 1);
    gv_free(v);
    ag_runs_destroy(runs);
}

static void test_collect_counts_per_run(void **state)
{
    struct ag_runs *runs = ag_runs_create(0);
    struct ex_run_snapshot *v = NULL;
    const struct ex_run_snapshot *a, *u;
    size_t n, i;
    uint64_t hist = 0;

    (void)state;
    feed(runs);
    n = ag_runs_collect(runs, 300, &v);
    assert_int_equal(n, 2);
    a = find(v, n, "a");
    u = find(v, n, AG_RUN_UNTAGGED);
    assert_non_null(a);
    assert_non_null(u);
    assert_int_equal(a->requests, 12);
    assert_int_equal(a->allowed, 10);
    assert_int_equal(a->redacted, 1);
    assert_int_equal(a->blocked, 1);
    assert_int_equal(a->errors, 0);
    assert_int_equal(a->nblocked_by, 1);
    assert_string_equal(a->blocked_by[0].policy, "prompt-injection");
    assert_int_equal(a->blocked_by[0].count, 1);
    assert_int_equal(a->pii[GV_PII_EMAIL_ADDRESS], 2);
    assert_int_equal(a->tokens_prompt, 120);
    assert_int_equal(a->tokens_completion, 55);
    assert_true(fabs(a->cost_usd - 6.0) < 1e-9);
    assert_string_equal(a->pack_name, "default");
    assert_string_equal(a->chain, "pii-detector,prompt-injection");
    assert_int_equal(a->interval_requests, 12);
    assert_true(a->hist_nbins > 0 && a->hist_nbins <= EX_HIST_MAX_BINS);
    for (i = 0; i < a->hist_nbins; i++) {
        hist += a->hist_counts[i];
        assert_true(a->hist_edges[i] < a->hist_edges[i + 1]);
    }
    assert_int_equal(hist, 12);
    /* p50 of 300us, 10..19 ms and 20 ms is 14 ms (nearest rank 6 of 12). */
    assert_true(fabs(a->latency_p50_s - 0.014) <= 0.014 * 0.01);
    assert_int_equal(u->errors, 1);
    assert_false(a->finalized);
    gv_free(v);
    /* Nothing changed: nothing to report, and the interval restarts. */
    n = ag_runs_collect(runs, 400, &v);
    assert_int_equal(n, 0);
    assert_null(v);
    ag_runs_destroy(runs);
}

static void test_collect_finalizes_idle_runs(void **state)
{
    struct ag_runs *runs = ag_runs_create(1); /* 1 ms */
    struct ex_run_snapshot *v = NULL;
    size_t n;

    (void)state;
    feed(runs);
    n = ag_runs_collect(runs, 100 + 500, &v); /* a touched at 100, untagged at 200 */
    assert_int_equal(n, 2);
    gv_free(v);
    n = ag_runs_collect(runs, 100 + 1000, &v);
    assert_int_equal(n, 1);
    assert_true(v[0].finalized);
    assert_string_equal(v[0].run_id, "a");
    assert_int_equal(v[0].requests, 12);
    assert_int_equal(ag_runs_count(runs), 1);
    gv_free(v);
    ag_runs_destroy(runs);
}

static void test_json_roundtrip_keeps_totals(void **state)
{
    struct ag_runs *runs = ag_runs_create(0), *back = ag_runs_create(0);
    struct json_object *j, *j2;
    struct ex_run_snapshot *v1 = NULL, *v2 = NULL;
    size_t n1, n2;

    (void)state;
    feed(runs);
    j = ag_runs_to_json(runs);
    assert_int_equal(ag_runs_from_json(back, j), GV_OK);
    j2 = ag_runs_to_json(back);
    assert_string_equal(json_object_to_json_string(j), json_object_to_json_string(j2));
    n1 = ag_runs_collect(runs, 300, &v1);
    n2 = ag_runs_collect(back, 300, &v2);
    assert_int_equal(n1, n2);
    assert_memory_equal(v1, v2, n1 * sizeof(*v1));
    json_object_put(j);
    json_object_put(j2);
    gv_free(v1);
    gv_free(v2);
    ag_runs_destroy(runs);
    ag_runs_destroy(back);
}

static void test_from_json_rejects_bad_shape(void **state)
{
    struct ag_runs *runs = ag_runs_create(0);
    struct json_object *j = json_tokener_parse("[{\"run_id\":\"x\",\"lat\":{\"lo\":1}}]");

    (void)state;
    assert_int_equal(ag_runs_from_json(runs, j), GV_EPROTO);
    json_object_put(j);
    j = json_tokener_parse("{}");
    assert_int_equal(ag_runs_from_json(runs, j), GV_EPROTO);
    json_object_put(j);
    ag_runs_destroy(runs);
}

static void test_status_json_has_counts(void **state)
{
    struct ag_runs *runs = ag_runs_create(0);
    struct gv_buf b;
    struct json_object *j, *r, *v;

    (void)state;
    feed(runs);
    gv_buf_init(&b, 0);
    assert_int_equal(ag_runs_status(runs, 1, &b), GV_OK);
    j = json_tokener_parse(b.data);
    assert_non_null(j);
    assert_int_equal(json_object_array_length(j), 2);
    r = json_object_array_get_idx(j, 0);
    assert_true(json_object_object_get_ex(r, "requests", &v));
    assert_int_equal(json_object_get_int(v), 12);
    json_object_put(j);
    gv_buf_reset(&b);
    assert_int_equal(ag_runs_status(runs, 0, &b), GV_OK);
    assert_non_null(strstr(b.data, "untagged"));
    gv_buf_free(&b);
    ag_runs_destroy(runs);
}

static void test_memory_per_run_under_4k(void **state)
{
    struct ag_runs *runs = ag_runs_create(0);
    struct gv_record r;
    char id[32];
    int i, k;

    (void)state;
    for (i = 0; i < 1000; i++) {
        snprintf(id, sizeof(id), "run-%d", i);
        for (k = 0; k < 20; k++) {
            rec_make(&r, id, GV_DECISION_ALLOWED, 1000 + (uint64_t)(k * k * 997) % 2000000);
            ag_runs_apply(runs, &r, NULL, 1);
        }
    }
    assert_true(ag_runs_mem(runs) / 1000 <= 4096);
    ag_runs_destroy(runs);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_collect_counts_per_run),
    cmocka_unit_test(test_collect_counts_pii_flagged_or_logged),
    cmocka_unit_test(test_collect_finalizes_idle_runs),
    cmocka_unit_test(test_json_roundtrip_keeps_totals),
    cmocka_unit_test(test_from_json_rejects_bad_shape),
    cmocka_unit_test(test_status_json_has_counts),
    cmocka_unit_test(test_memory_per_run_under_4k),
};

#include "tests/unit/unit_main.h"
