/* tests/unit/gateway/policies/rbac/test_rbac.c - keys, roles, teams, role budgets */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/gv_hash.h"
#include "core/gv_record.h"
#include "gateway/gw_req.h"
#include "tests/unit/gateway/policies/pol_fixture.h"

extern const struct gw_policy_ops gw_policy_rbac;

static void sha_hex(const char *key, char out[GV_SHA256_HEX_LEN + 1])
{
    assert_int_equal(gv_sha256_hex(key, strlen(key), out), GV_OK);
}

static char cfg[4096];

static const char *config(const char *budget)
{
    char a[GV_SHA256_HEX_LEN + 1], b[GV_SHA256_HEX_LEN + 1];
    sha_hex("sk-alice", a);
    sha_hex("sk-bob", b);
    snprintf(cfg, sizeof(cfg),
             "keys:\n"
             "  - {name: alice, key_sha256: %s, team: vision-team, role: researcher}\n"
             "  - {name: bob, key_sha256: %s, role: intern}\n"
             "roles:\n"
             "  researcher: {models: [\"gpt-4o*\"], targets: [experiment-llm]%s}\n"
             "  intern: {models: [gpt-4o-mini]}\n"
             "teams:\n"
             "  interns-team: intern\n",
             a, b, budget);
    return cfg;
}

static void call_init(struct fx_call *c, const char *key, const char *model, const char *entity)
{
    fx_call_init(c, model, entity);
    c->req.api_key = key;
    snprintf(c->rec.target, sizeof(c->rec.target), "%s", "experiment-llm");
}

static struct gw_verdict eval(struct fx_pol *fx, struct fx_call *c)
{
    return fx_verdict(gw_policy_rbac.evaluate, fx, c);
}

/* Setup for the tests that ask the plain config (no role budget). */
static int open_plain(void **state)
{
    struct gv_cfg_err err;

    fx_pol_alloc(state);
    return fx_open(*state, &gw_policy_rbac, config(""), NULL, &err) == GV_OK ? 0 : -1;
}

/* One evaluate() call against the plain config: who asks, for what, and what must come back.
 * status and code are checked on a block; principal and team when not NULL. */
struct eval_row {
    const char *name;
    const char *key, *model, *entity;
    const char *target; /* NULL: the allowed experiment-llm */
    enum gw_action action;
    int status;
    const char *code;
    const char *principal, *team;
};

static const struct eval_row EVAL_ROWS[] = {
    {"missing key", "", "gpt-4o", "", NULL, GW_ACTION_BLOCK, 401, "invalid_api_key", NULL, NULL},
    {"unknown key", "sk-mallory", "gpt-4o", "", NULL, GW_ACTION_BLOCK, 401, "invalid_api_key", "",
     NULL},
    {"known key sets principal and team", "sk-alice", "gpt-4o-2024-08-06", "", NULL, GW_ACTION_PASS,
     0, NULL, "alice", "vision-team"},
    {"model outside the role", "sk-bob", "gpt-4o", "", NULL, GW_ACTION_BLOCK, 403, "rbac", NULL,
     NULL},
    {"model inside the role", "sk-bob", "gpt-4o-mini", "", NULL, GW_ACTION_PASS, 0, NULL, NULL,
     NULL},
    /* alice may use gpt-4o, but not when the request is tagged with a team whose role does
     * not allow it. */
    {"team whose role refuses the model", "sk-alice", "gpt-4o", "interns-team", NULL,
     GW_ACTION_BLOCK, 403, "rbac", NULL, NULL},
    {"entity that maps to no team", "sk-alice", "gpt-4o", "unmapped-entity", NULL, GW_ACTION_PASS,
     0, NULL, NULL, NULL},
    /* targets are checked too */
    {"target outside the role", "sk-alice", "gpt-4o", "", "other-target", GW_ACTION_BLOCK, 403,
     "rbac", NULL, NULL},
};

static void test_evaluate_rows(void **state)
{
    struct fx_pol *fx = *state;
    const struct eval_row *r;
    struct fx_call c;
    struct gw_verdict v;
    size_t i;

    for (i = 0; i < sizeof(EVAL_ROWS) / sizeof(EVAL_ROWS[0]); i++) {
        r = &EVAL_ROWS[i];
        print_message("row: %s\n", r->name);
        call_init(&c, r->key, r->model, r->entity);
        if (r->target) {
            snprintf(c.rec.target, sizeof(c.rec.target), "%s", r->target);
        }
        v = eval(fx, &c);
        assert_int_equal(v.action, r->action);
        if (r->action == GW_ACTION_BLOCK) {
            assert_int_equal(v.status, r->status);
            assert_string_equal(v.code, r->code);
        }
        if (r->principal) {
            assert_string_equal(c.rec.principal, r->principal);
        }
        if (r->team) {
            assert_string_equal(c.rec.team, r->team);
        }
    }
}

static void test_role_budget_blocks_and_survives_restart(void **state)
{
    struct fx_pol fx;
    struct gv_cfg_err err;
    struct fx_call c;
    struct gw_verdict v;
    char st[256];

    (void)state;
    assert_int_equal(fx_open(&fx, &gw_policy_rbac, config(", budget_usd: 0.001"), NULL, &err),
                     GV_OK);
    snprintf(st, sizeof(st), "%s", fx.state);
    call_init(&c, "sk-alice", "gpt-4o", "");
    assert_int_equal(eval(&fx, &c).action, GW_ACTION_PASS);
    c.rec.tokens_prompt = 1000; /* 1000 * 2.50 / 1e6 = 0.0025 USD > 0.001 */
    gw_policy_rbac.complete(&fx.pol, &c.req, &c.rec);
    v = eval(&fx, &c);
    assert_int_equal(v.status, 403);
    assert_string_equal(v.code, "budget_exceeded");
    /* bob's role has no budget */
    call_init(&c, "sk-bob", "gpt-4o-mini", "");
    assert_int_equal(eval(&fx, &c).action, GW_ACTION_PASS);
    fx_close(&fx);
    assert_int_equal(fx_open(&fx, &gw_policy_rbac, config(", budget_usd: 0.001"), st, &err), GV_OK);
    call_init(&c, "sk-alice", "gpt-4o", "");
    assert_string_equal(eval(&fx, &c).code, "budget_exceeded");
    fx_close(&fx);
    unit_tmpdir_remove(st);
}

static struct gw_verdict tags(struct fx_pol *fx, struct fx_call *c)
{
    return fx_verdict(gw_policy_rbac.tags, fx, c);
}

/* X-Wandb-Entity is bound to the caller's team: its own name by default, or
 * teams.<team>.entities; a refused or unknown caller keeps no other entity. Each row: who
 * asks with which entity, the action, and the entity (and principal, when not NULL) the
 * record keeps. A refusal is always 403 rbac on X-Wandb-Entity. */
static const struct {
    const char *key, *entity;
    enum gw_action action;
    const char *entity_after, *principal;
} TAGS_ROWS[] = {
    {"sk-alice", "vision-exp-3", GW_ACTION_PASS, "vision-exp-3", NULL},
    {"sk-alice", "root-team", GW_ACTION_BLOCK, "vision-shared", "alice"}, /* never root-team */
    {"sk-root", "root-team", GW_ACTION_PASS, "root-team", NULL},
    {"sk-root", "vision-shared", GW_ACTION_BLOCK, "root-team", NULL},
    {"sk-bob", "root-team", GW_ACTION_BLOCK, "", NULL}, /* no team: no entity to tag */
    /* unknown or missing key: evaluate() answers 401; the entity is gone already */
    {"sk-mallory", "root-team", GW_ACTION_PASS, "", NULL},
    {"", "root-team", GW_ACTION_PASS, "", NULL},
};

static void test_tags_bind_entity_to_team(void **state)
{
    struct fx_pol fx;
    struct gv_cfg_err err;
    struct fx_call c;
    struct gw_verdict v;
    char a[GV_SHA256_HEX_LEN + 1], b[GV_SHA256_HEX_LEN + 1], r[GV_SHA256_HEX_LEN + 1];
    char text[2048];
    size_t i;

    (void)state;
    sha_hex("sk-alice", a);
    sha_hex("sk-bob", b);
    sha_hex("sk-root", r);
    snprintf(text, sizeof(text),
             "keys:\n"
             "  - {name: alice, key_sha256: %s, team: vision-team}\n"
             "  - {name: bob, key_sha256: %s, role: admin}\n"
             "  - {name: root, key_sha256: %s, team: root-team}\n"
             "roles:\n  researcher: {models: [\"gpt-4o*\"]}\n  admin:\n"
             "teams:\n"
             "  vision-team: {role: researcher, entities: [vision-shared, \"vision-exp-*\"]}\n"
             "  root-team: admin\n",
             a, b, r);
    assert_int_equal(fx_open(&fx, &gw_policy_rbac, text, NULL, &err), GV_OK);
    for (i = 0; i < sizeof(TAGS_ROWS) / sizeof(TAGS_ROWS[0]); i++) {
        print_message("row: %s %s\n", TAGS_ROWS[i].key, TAGS_ROWS[i].entity);
        call_init(&c, TAGS_ROWS[i].key, "gpt-4o", TAGS_ROWS[i].entity);
        v = tags(&fx, &c);
        assert_int_equal(v.action, TAGS_ROWS[i].action);
        if (v.action == GW_ACTION_BLOCK) {
            assert_int_equal(v.status, 403);
            assert_string_equal(v.code, "rbac");
            assert_string_equal(v.param, "X-Wandb-Entity");
        }
        assert_string_equal(c.rec.entity, TAGS_ROWS[i].entity_after);
        if (TAGS_ROWS[i].principal) {
            assert_string_equal(c.rec.principal, TAGS_ROWS[i].principal);
        }
    }
    fx_close(&fx);
    unit_tmpdir_remove(fx.state);

    /* Bad team entries are refused with their position. */
    fx_assert_refused(&gw_policy_rbac,
                      "keys: []\nroles:\n  r:\nteams:\n  t: {role: r, entity: [x]}\n", &err);
    assert_non_null(strstr(err.msg, "policy.yaml:5:"));
    assert_non_null(strstr(err.msg, "unknown key 'entity' in team 't'"));
    fx_assert_refused(&gw_policy_rbac, "keys: []\nroles:\n  r:\nteams:\n  t: {entities: [x]}\n",
                      &err);
    assert_non_null(strstr(err.msg, "team 't' needs a role"));
    fx_assert_refused(&gw_policy_rbac,
                      "keys: []\nroles:\n  r:\nteams:\n  t: {role: r, entities: x}\n", &err);
    assert_non_null(strstr(err.msg, "entities must be a list"));
}

static void test_init_rejects_bad_config_with_position(void **state)
{
    struct gv_cfg_err err;

    (void)state;
    fx_assert_refused(&gw_policy_rbac,
                      "keys:\n  - {name: a, key_sha256: sk-plaintext, role: r}\n"
                      "roles:\n  r: {}\n",
                      &err);
    assert_non_null(strstr(err.msg, "policy.yaml:2:"));
    assert_non_null(strstr(err.msg, "key_sha256"));
    fx_assert_refused(&gw_policy_rbac,
                      "keys:\n  - {name: a, key_sha256: "
                      "0000000000000000000000000000000000000000000000000000000000000000, "
                      "role: nope}\nroles:\n  r: {}\n",
                      &err);
    assert_non_null(strstr(err.msg, "unknown role 'nope'"));
    fx_assert_refused(&gw_policy_rbac, "roles:\n  r: {}\n", &err);
}

static void test_check_only_creates_nothing(void **state)
{
    (void)state;
    fx_assert_check_only_creates_nothing(&gw_policy_rbac, config(", budget_usd: 0.001"), "/rbac");
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_evaluate_rows, open_plain, fx_pol_teardown),
    cmocka_unit_test(test_role_budget_blocks_and_survives_restart),
    cmocka_unit_test(test_tags_bind_entity_to_team),
    cmocka_unit_test(test_init_rejects_bad_config_with_position),
    cmocka_unit_test(test_check_only_creates_nothing),
};

#include "tests/unit/unit_main.h"
