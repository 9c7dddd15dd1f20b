/* tests/unit/gateway/policies/cost/test_cost.c - prices, cost per request, budgets, ledger */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <json-c/json.h>
#include <math.h>

#include "core/gv_record.h"
#include "gateway/gw_req.h"
#include "gateway/policies/accounting/cost_prices.h"
#include "gateway/policies/accounting/ledger.h"
#include "tests/unit/gateway/policies/pol_fixture.h"

extern const struct gw_policy_ops gw_policy_cost;

static void test_price_find_exact_prefix_and_unknown(void **state)
{
    const struct gw_cost_price *p;

    (void)state;
    p = gw_cost_price_find(gw_cost_builtin_prices, "gpt-4o");
    assert_non_null(p);
    assert_string_equal(p->model, "gpt-4o");
    p = gw_cost_price_find(gw_cost_builtin_prices, "gpt-4o-mini-2024-07-18");
    assert_string_equal(p->model, "gpt-4o-mini");
    p = gw_cost_price_find(gw_cost_builtin_prices, "gpt-4o-2024-08-06");
    assert_string_equal(p->model, "gpt-4o");
    assert_null(gw_cost_price_find(gw_cost_builtin_prices, "gpt-4oX"));
    assert_null(gw_cost_price_find(gw_cost_builtin_prices, "llama-3"));
    assert_null(gw_cost_price_find(gw_cost_builtin_prices, ""));
}

static void call_init(struct fx_call *c, const char *model, const char *run, const char *entity)
{
    fx_call_init(c, model, entity);
    snprintf(c->rec.run_id, sizeof(c->rec.run_id), "%s", run);
}

static void test_complete_fills_cost_with_override(void **state)
{
    struct fx_pol *fx = *state;
    struct gv_cfg_err err;
    struct fx_call c;

    assert_int_equal(fx_open(fx, &gw_policy_cost,
                             "prices:\n  gpt-4o: {input_per_mtok: 1, output_per_mtok: 2}\n"
                             "  my-model: {input_per_mtok: 10, output_per_mtok: 20}\n",
                             NULL, &err),
                     GV_OK);
    call_init(&c, "gpt-4o", "", "");
    c.rec.tokens_prompt = 1000000;
    c.rec.tokens_completion = 500000;
    gw_policy_cost.complete(&fx->pol, &c.req, &c.rec);
    assert_true(fabs(c.rec.cost_usd - 2.0) < 1e-9);
    call_init(&c, "gpt-4o-mini", "", "");
    c.rec.tokens_prompt = 1000000;
    gw_policy_cost.complete(&fx->pol, &c.req, &c.rec);
    assert_true(fabs(c.rec.cost_usd - 0.15) < 1e-9); /* built-in row still there */
    call_init(&c, "unknown-model", "", "");
    c.rec.tokens_prompt = 1000000;
    gw_policy_cost.complete(&fx->pol, &c.req, &c.rec);
    assert_true(c.rec.cost_usd == 0.0);
}

static void test_run_and_team_budgets_block_and_survive_restart(void **state)
{
    static const char *const yaml = "budgets:\n"
                                    "  runs: {default: 1.0, big-run: 100}\n"
                                    "  teams: {vision-team: 3.0}\n";
    struct fx_pol fx;
    struct gv_cfg_err err;
    struct gw_verdict v;
    struct fx_call c;
    char st[256];

    (void)state;
    assert_int_equal(fx_open(&fx, &gw_policy_cost, yaml, NULL, &err), GV_OK);
    snprintf(st, sizeof(st), "%s", fx.state);
    call_init(&c, "gpt-4o", "run-1", "vision-team");
    v = fx_verdict(gw_policy_cost.evaluate, &fx, &c);
    assert_int_equal(v.action, GW_ACTION_PASS);
    c.rec.tokens_prompt = 400000; /* 1.00 USD at 2.50/M: reaches the run's default budget */
    gw_policy_cost.complete(&fx.pol, &c.req, &c.rec);
    v = fx_verdict(gw_policy_cost.evaluate, &fx, &c);
    assert_int_equal(v.action, GW_ACTION_BLOCK);
    assert_int_equal(v.status, 403);
    assert_string_equal(v.code, "budget_exceeded");
    /* Another run of the same team still has room... */
    call_init(&c, "gpt-4o", "big-run", "vision-team");
    v = fx_verdict(gw_policy_cost.evaluate, &fx, &c);
    assert_int_equal(v.action, GW_ACTION_PASS);
    c.rec.tokens_prompt = 800000; /* +2.00: the team reaches 3.00 */
    gw_policy_cost.complete(&fx.pol, &c.req, &c.rec);
    v = fx_verdict(gw_policy_cost.evaluate, &fx, &c);
    assert_string_equal(v.code, "budget_exceeded");
    /* ...a run without tags is not limited. */
    call_init(&c, "gpt-4o", "", "");
    v = fx_verdict(gw_policy_cost.evaluate, &fx, &c);
    assert_int_equal(v.action, GW_ACTION_PASS);
    fx_close(&fx);

    assert_int_equal(fx_open(&fx, &gw_policy_cost, yaml, st, &err), GV_OK);
    call_init(&c, "gpt-4o", "run-1", "");
    v = fx_verdict(gw_policy_cost.evaluate, &fx, &c);
    assert_string_equal(v.code, "budget_exceeded");
    call_init(&c, "gpt-4o", "run-2", "vision-team");
    v = fx_verdict(gw_policy_cost.evaluate, &fx, &c);
    assert_string_equal(v.code, "budget_exceeded");
    fx_close(&fx);
    unit_tmpdir_remove(st);
}

/* $1 a completion token, prompts free: a request with max_tokens 1 holds $1. */
static const char *const hold_yaml =
    "prices:\n  gpt-4o: {input_per_mtok: 0, output_per_mtok: 1000000}\n"
    "budgets:\n  runs: {hold-run: 3}\n  teams: {hold-team: 100}\n";

static void call_body(struct fx_call *c, const char *json)
{
    c->req.body = json_tokener_parse(json);
    assert_non_null(c->req.body);
}

static void test_evaluate_holds_worst_case_until_complete(void **state)
{
    struct fx_pol *fx = *state;
    struct gv_cfg_err err;
    struct gw_verdict v;
    struct fx_call c[4];
    int i;

    assert_int_equal(fx_open(fx, &gw_policy_cost, hold_yaml, NULL, &err), GV_OK);
    /* Three requests in flight at once hold the whole budget: the fourth is
     * refused although nothing is spent yet. */
    for (i = 0; i < 4; i++) {
        call_init(&c[i], "gpt-4o", "hold-run", "hold-team");
        call_body(&c[i], "{\"max_tokens\":1,\"messages\":[{\"role\":\"user\","
                         "\"content\":\"hi\"}]}");
        v = fx_verdict(gw_policy_cost.evaluate, fx, &c[i]);
        assert_int_equal(v.action, i < 3 ? GW_ACTION_PASS : GW_ACTION_BLOCK);
    }
    assert_string_equal(v.code, "budget_exceeded");
    assert_null(c[3].req.policy_state[0]);
    /* One fails upstream (no tokens): its hold is released, nothing charged,
     * so a new request fits again. */
    gw_policy_cost.complete(&fx->pol, &c[0].req, &c[0].rec);
    assert_null(c[0].req.policy_state[0]);
    json_object_put(c[3].req.body);
    call_init(&c[3], "gpt-4o", "hold-run", "hold-team");
    call_body(&c[3], "{\"max_tokens\":1,\"messages\":[]}");
    v = fx_verdict(gw_policy_cost.evaluate, fx, &c[3]);
    assert_int_equal(v.action, GW_ACTION_PASS);
    /* The others settle to their real cost, $1 each: 3 spent, budget reached. */
    for (i = 1; i < 4; i++) {
        c[i].rec.tokens_completion = 1;
        gw_policy_cost.complete(&fx->pol, &c[i].req, &c[i].rec);
        assert_true(c[i].rec.cost_priced);
        assert_true(fabs(c[i].rec.cost_usd - 1.0) < 1e-9);
        json_object_put(c[i].req.body);
    }
    json_object_put(c[0].req.body);
    call_init(&c[0], "gpt-4o", "hold-run", "");
    v = fx_verdict(gw_policy_cost.evaluate, fx, &c[0]);
    assert_int_equal(v.action, GW_ACTION_BLOCK);
}

/* a, a request on `run` with `body`, is let through and still in flight when b, an empty one
 * on the same run, comes: b's action, which says whether a's hold left room for it. */
static enum gw_action second_request_action(struct fx_pol *fx, const char *body, const char *run,
                                            struct fx_call *a, struct fx_call *b)
{
    struct gw_verdict v;

    call_init(a, "gpt-4o", run, "");
    call_body(a, body);
    v = fx_verdict(gw_policy_cost.evaluate, fx, a);
    assert_int_equal(v.action, GW_ACTION_PASS);
    call_init(b, "gpt-4o", run, "");
    v = fx_verdict(gw_policy_cost.evaluate, fx, b);
    return v.action;
}

/* What a request holds, seen from outside: with a run budget of exactly `usd`
 * a second request is refused while the first holds at least `usd`, and with
 * a budget a hair above it the second still fits. */
static void assert_holds(struct fx_pol *fx, const char *body, const char *run_at,
                         const char *run_above)
{
    struct fx_call a, b;

    assert_int_equal(second_request_action(fx, body, run_at, &a, &b), GW_ACTION_BLOCK);
    gw_policy_cost.complete(&fx->pol, &a.req, &a.rec);
    json_object_put(a.req.body);

    assert_int_equal(second_request_action(fx, body, run_above, &a, &b), GW_ACTION_PASS);
    gw_policy_cost.complete(&fx->pol, &b.req, &b.rec);
    gw_policy_cost.complete(&fx->pol, &a.req, &a.rec);
    json_object_put(a.req.body);
}

static void test_worst_case_uses_max_tokens_n_and_default(void **state)
{
    static const char *const yaml =
        "prices:\n  gpt-4o: {input_per_mtok: 1000000, output_per_mtok: 1000000}\n"
        "budgets:\n  runs: {r59: 59, r59up: 59.001, r15: 15, r15up: 15.001}\n"
        "default_max_tokens: 50\n";
    struct fx_pol *fx = *state;
    struct gv_cfg_err err;

    assert_int_equal(fx_open(fx, &gw_policy_cost, yaml, NULL, &err), GV_OK);
    /* prompt bound: 2 bytes + 4 + 3 = 9 tokens; no max tokens: the default 50 */
    assert_holds(fx, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", "r59", "r59up");
    /* max_completion_tokens wins over max_tokens, times n choices: 9 + 2 * 3 */
    assert_holds(fx,
                 "{\"max_tokens\":40,\"max_completion_tokens\":3,\"n\":2,"
                 "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                 "r15", "r15up");
}

/* The chain prices before any complete(): complete() then charges that cost
 * and does not price again. */
static void test_price_runs_once(void **state)
{
    struct fx_pol *fx = *state;
    struct gv_cfg_err err;
    struct fx_call c;

    assert_int_equal(fx_open(fx, &gw_policy_cost,
                             "prices:\n  gpt-4o: {input_per_mtok: 1000000, output_per_mtok: 0}\n",
                             NULL, &err),
                     GV_OK);
    call_init(&c, "gpt-4o", "", "");
    c.rec.tokens_prompt = 11;
    assert_non_null(gw_policy_cost.price);
    gw_policy_cost.price(&fx->pol, &c.req, &c.rec);
    assert_true(c.rec.cost_priced);
    assert_true(fabs(c.rec.cost_usd - 11.0) < 1e-9);
    assert_true(c.rec.price_input_per_mtok == 1000000.0);
    c.rec.tokens_prompt = 12; /* a second pricing would show */
    gw_policy_cost.complete(&fx->pol, &c.req, &c.rec);
    assert_true(fabs(c.rec.cost_usd - 11.0) < 1e-9);
}

static void test_init_rejects_bad_config_with_position(void **state)
{
    struct gv_cfg_err err;

    (void)state;
    fx_assert_refused(&gw_policy_cost,
                      "prices:\n  gpt-4o: {input_per_mtok: cheap, output_per_mtok: 1}\n", &err);
    assert_non_null(strstr(err.msg, "policy.yaml:2:"));
    fx_assert_refused(&gw_policy_cost, "budgets:\n  projects: {a: 1}\n", &err);
    assert_non_null(strstr(err.msg, "policy.yaml:2:3"));
    fx_assert_refused(&gw_policy_cost, "budgets:\n  runs: {default: -1}\n", &err);
}

static void test_ledger_rejects_corrupt_file(void **state)
{
    char st[256], path[400];
    struct gw_ledger *l = NULL;
    FILE *f;

    (void)state;
    unit_tmpdir_make(st, sizeof(st));
    snprintf(path, sizeof(path), "%s/ledger.json", st);
    f = fopen(path, "w");
    fputs("{\"version\":1,\"spend\":[1,2]}", f);
    fclose(f);
    assert_int_equal(gw_ledger_open(path, 1000, &l), GV_EPROTO);
    assert_null(l);
    unlink(path);
    assert_int_equal(gw_ledger_open(path, 1000, &l), GV_OK);
    gw_ledger_add(l, "run", "r", 0.5);
    gw_ledger_add(l, "run", "r", -3); /* ignored */
    assert_true(fabs(gw_ledger_get(l, "run", "r") - 0.5) < 1e-12);
    assert_true(gw_ledger_get(l, "team", "r") == 0.0);
    assert_int_equal(gw_ledger_flush(l), GV_OK);
    gw_ledger_close(l);
    assert_int_equal(gw_ledger_open(path, 1000, &l), GV_OK);
    assert_true(fabs(gw_ledger_get(l, "run", "r") - 0.5) < 1e-9);
    gw_ledger_close(l);
    unit_tmpdir_remove(st);
}

static void test_check_only_creates_nothing(void **state)
{
    (void)state;
    fx_assert_check_only_creates_nothing(&gw_policy_cost, "budgets:\n  runs: {default: 1}\n",
                                         "/cost");
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_price_find_exact_prefix_and_unknown),
    cmocka_unit_test_setup_teardown(test_complete_fills_cost_with_override, fx_pol_alloc,
                                    fx_pol_teardown),
    cmocka_unit_test(test_run_and_team_budgets_block_and_survive_restart),
    cmocka_unit_test_setup_teardown(test_evaluate_holds_worst_case_until_complete, fx_pol_alloc,
                                    fx_pol_teardown),
    cmocka_unit_test_setup_teardown(test_worst_case_uses_max_tokens_n_and_default, fx_pol_alloc,
                                    fx_pol_teardown),
    cmocka_unit_test_setup_teardown(test_price_runs_once, fx_pol_alloc, fx_pol_teardown),
    cmocka_unit_test(test_init_rejects_bad_config_with_position),
    cmocka_unit_test(test_ledger_rejects_corrupt_file),
    cmocka_unit_test(test_check_only_creates_nothing),
};

#include "tests/unit/unit_main.h"
