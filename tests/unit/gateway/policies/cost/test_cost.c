/* tests/unit/gateway/policies/cost/test_cost.c - prices, cost per request, budgets, ledger */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>

#include "core/gv_record.h"
#include "gateway/gw_req.h"
#include "gateway/policies/cost/cost_prices.h"
#include "gateway/policies/cost/ledger.h"
#include "tests/unit/gateway/policies/audit/pol_fixture.h"

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

struct call {
    struct gw_req req;
    struct gv_record rec;
};

static void call_init(struct call *c, const char *model, const char *run, const char *entity)
{
    memset(c, 0, sizeof(*c));
    c->req.model = model;
    c->req.rec = &c->rec;
    snprintf(c->rec.model, sizeof(c->rec.model), "%s", model);
    snprintf(c->rec.run_id, sizeof(c->rec.run_id), "%s", run);
    snprintf(c->rec.entity, sizeof(c->rec.entity), "%s", entity);
}

static void test_complete_fills_cost_with_override(void **state)
{
    struct fx_pol fx;
    struct gv_cfg_err err;
    struct call c;

    (void)state;
    assert_int_equal(fx_open(&fx, &gw_policy_cost,
                             "prices:\n  gpt-4o: {input_per_mtok: 1, output_per_mtok: 2}\n"
                             "  my-model: {input_per_mtok: 10, output_per_mtok: 20}\n",
                             NULL, &err),
                     GV_OK);
    call_init(&c, "gpt-4o", "", "");
    c.rec.tokens_prompt = 1000000;
    c.rec.tokens_completion = 500000;
    gw_policy_cost.complete(&fx.pol, &c.req, &c.rec);
    assert_true(fabs(c.rec.cost_usd - 2.0) < 1e-9);
    call_init(&c, "gpt-4o-mini", "", "");
    c.rec.tokens_prompt = 1000000;
    gw_policy_cost.complete(&fx.pol, &c.req, &c.rec);
    assert_true(fabs(c.rec.cost_usd - 0.15) < 1e-9); /* built-in row still there */
    call_init(&c, "unknown-model", "", "");
    c.rec.tokens_prompt = 1000000;
    gw_policy_cost.complete(&fx.pol, &c.req, &c.rec);
    assert_true(c.rec.cost_usd == 0.0);
    fx_close(&fx);
    fx_rmtree(fx.state);
}

static void test_run_and_team_budgets_block_and_survive_restart(void **state)
{
    static const char *const yaml = "budgets:\n"
                                    "  runs: {default: 1.0, big-run: 100}\n"
                                    "  teams: {vision-team: 3.0}\n";
    struct fx_pol fx;
    struct gv_cfg_err err;
    struct gw_verdict v;
    struct call c;
    char st[256];

    (void)state;
    assert_int_equal(fx_open(&fx, &gw_policy_cost, yaml, NULL, &err), GV_OK);
    snprintf(st, sizeof(st), "%s", fx.state);
    call_init(&c, "gpt-4o", "run-1", "vision-team");
    assert_int_equal(gw_policy_cost.evaluate(&fx.pol, &c.req, &v), GV_OK);
    assert_int_equal(v.action, GW_ACTION_PASS);
    c.rec.tokens_prompt = 400000; /* 1.00 USD at 2.50/M: reaches the run's default budget */
    gw_policy_cost.complete(&fx.pol, &c.req, &c.rec);
    assert_int_equal(gw_policy_cost.evaluate(&fx.pol, &c.req, &v), GV_OK);
    assert_int_equal(v.action, GW_ACTION_BLOCK);
    assert_int_equal(v.status, 403);
    assert_string_equal(v.code, "budget_exceeded");
    /* Another run of the same team still has room... */
    call_init(&c, "gpt-4o", "big-run", "vision-team");
    assert_int_equal(gw_policy_cost.evaluate(&fx.pol, &c.req, &v), GV_OK);
    assert_int_equal(v.action, GW_ACTION_PASS);
    c.rec.tokens_prompt = 800000; /* +2.00: the team reaches 3.00 */
    gw_policy_cost.complete(&fx.pol, &c.req, &c.rec);
    assert_int_equal(gw_policy_cost.evaluate(&fx.pol, &c.req, &v), GV_OK);
    assert_string_equal(v.code, "budget_exceeded");
    /* ...a run without tags is not limited. */
    call_init(&c, "gpt-4o", "", "");
    assert_int_equal(gw_policy_cost.evaluate(&fx.pol, &c.req, &v), GV_OK);
    assert_int_equal(v.action, GW_ACTION_PASS);
    fx_close(&fx);

    assert_int_equal(fx_open(&fx, &gw_policy_cost, yaml, st, &err), GV_OK);
    call_init(&c, "gpt-4o", "run-1", "");
    assert_int_equal(gw_policy_cost.evaluate(&fx.pol, &c.req, &v), GV_OK);
    assert_string_equal(v.code, "budget_exceeded");
    call_init(&c, "gpt-4o", "run-2", "vision-team");
    assert_int_equal(gw_policy_cost.evaluate(&fx.pol, &c.req, &v), GV_OK);
    assert_string_equal(v.code, "budget_exceeded");
    fx_close(&fx);
    fx_rmtree(st);
}

static void test_init_rejects_bad_config_with_position(void **state)
{
    struct fx_pol fx;
    struct gv_cfg_err err;

    (void)state;
    assert_int_equal(fx_open(&fx, &gw_policy_cost,
                             "prices:\n  gpt-4o: {input_per_mtok: cheap, output_per_mtok: 1}\n",
                             NULL, &err),
                     GV_ECONFIG);
    assert_non_null(strstr(err.msg, "policy.yaml:2:"));
    fx_close(&fx);
    fx_rmtree(fx.state);
    assert_int_equal(fx_open(&fx, &gw_policy_cost, "budgets:\n  projects: {a: 1}\n", NULL, &err),
                     GV_ECONFIG);
    assert_non_null(strstr(err.msg, "policy.yaml:2:3"));
    fx_close(&fx);
    fx_rmtree(fx.state);
    assert_int_equal(fx_open(&fx, &gw_policy_cost, "budgets:\n  runs: {default: -1}\n", NULL, &err),
                     GV_ECONFIG);
    fx_close(&fx);
    fx_rmtree(fx.state);
}

static void test_ledger_rejects_corrupt_file(void **state)
{
    char st[256], path[400];
    struct gw_ledger *l = NULL;
    FILE *f;

    (void)state;
    fx_tempdir(st, sizeof(st));
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
    fx_rmtree(st);
}

static void test_check_only_creates_nothing(void **state)
{
    (void)state;
    fx_assert_check_only_creates_nothing(&gw_policy_cost, "budgets:\n  runs: {default: 1}\n", "/cost");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_price_find_exact_prefix_and_unknown),
        cmocka_unit_test(test_complete_fills_cost_with_override),
        cmocka_unit_test(test_run_and_team_budgets_block_and_survive_restart),
        cmocka_unit_test(test_init_rejects_bad_config_with_position),
        cmocka_unit_test(test_ledger_rejects_corrupt_file),
        cmocka_unit_test(test_check_only_creates_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
