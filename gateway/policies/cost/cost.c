/* gateway/policies/cost/cost.c - cost per request and budgets */
/* SPDX-License-Identifier: Apache-2.0 */
#include <json-c/json.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/gv_log.h"
#include "core/gv_mem.h"
#include "gateway/gw_policy.h"
#include "gateway/gw_req.h"
#include "gateway/policies/accounting/cost_prices.h"
#include "gateway/policies/accounting/ledger.h"

/* One budget row: `default` applies to every run (or team) without its own. */
struct budget {
    const char *name; /* points into the config document */
    double usd;
};

struct budget_set {
    size_t n;
    struct budget *items;
    bool has_default;
    double default_usd;
};

struct cost_ctx {
    const struct gv_ynode *prices;
    const struct gv_ynode *budgets;
    long state_flush_ms;
    long default_max_tokens;
    /* built by init */
    struct gw_cost_price *table; /* overrides first, then the built-in rows */
    struct budget_set runs;
    struct budget_set teams;
    struct gw_ledger *ledger;
    atomic_bool unknown_logged;
};

static const struct gv_cfg_map config_map[] = {
    {"prices", GV_CFG_NODE, offsetof(struct cost_ctx, prices), NULL, 0, NULL, 0, 0,
     "(mapping) model -> `{input_per_mtok, output_per_mtok}` in USD, overriding the built-in "
     "prices; absent: the built-in table"},
    {"budgets", GV_CFG_NODE, offsetof(struct cost_ctx, budgets), NULL, 0, NULL, 0, 0,
     "(mapping) `{runs: {<run id>|default: budget_usd}, teams: {<team>|default: budget_usd}}`"},
    {"state_flush", GV_CFG_DURATION, offsetof(struct cost_ctx, state_flush_ms), "1s", 0, NULL, 10,
     3600000, "how often spend is written to `<state-dir>/cost/ledger.json`"},
    {"default_max_tokens", GV_CFG_INT, offsetof(struct cost_ctx, default_max_tokens), "4096", 0,
     NULL, 1, 100000000,
     "completion tokens a budgeted request holds for when it sets neither `max_tokens` nor "
     "`max_completion_tokens`"},
    {NULL, 0, 0, NULL, 0, NULL, 0, 0, NULL},
};

/* What a budgeted request holds in the ledger from evaluate() until its cost
 * is known; parked in req->policy_state[pol->slot]. The keys are copied: a
 * policy later in the chain may still set the record's team. */
struct hold {
    double usd;
    bool run;
    bool team;
    char run_id[GV_RUN_TAG_MAX + 1];
    char team_id[GV_RUN_TAG_MAX + 1];
};

static gv_rc need_number(struct gv_cfg_err *err, const char *path, const struct gv_ynode *n,
                         const char *what, double *out)
{
    if (!n || n->kind != GV_Y_SCALAR || !gv_cfg_parse_double(n->scalar, out) || *out < 0 ||
        *out > 1e12) {
        return gv_cfg_fail(err, path, n, "cost-tracker: %s must be a number >= 0", what);
    }
    return GV_OK;
}

static gv_rc parse_prices(struct cost_ctx *ctx, const char *path, struct gv_cfg_err *err)
{
    const struct gv_ynode *p = ctx->prices;
    size_t nbuiltin = 0, i, k = 0;
    gv_rc rc;

    while (gw_cost_builtin_prices[nbuiltin].model) {
        nbuiltin++;
    }
    if (p && p->kind != GV_Y_MAP) {
        return gv_cfg_fail(err, path, p,
                           "cost-tracker: prices must be a mapping of model -> "
                           "{input_per_mtok, output_per_mtok}, not a %s",
                           gv_ynode_kind_str(p->kind));
    }
    ctx->table = gv_calloc((p ? p->n : 0) + nbuiltin + 1, sizeof(*ctx->table));
    for (i = 0; p && i < p->n; i++) {
        const struct gv_ynode *row = p->items[i];
        struct gw_cost_price *t = &ctx->table[k];
        size_t j;

        if (row->kind != GV_Y_MAP) {
            return gv_cfg_fail(err, path, row,
                               "cost-tracker: prices.%s must be {input_per_mtok, "
                               "output_per_mtok}",
                               p->keys[i]->scalar);
        }
        for (j = 0; j < row->n; j++) {
            const char *key = row->keys[j]->scalar;
            if (strcmp(key, "input_per_mtok") != 0 && strcmp(key, "output_per_mtok") != 0) {
                return gv_cfg_fail(err, path, row->keys[j],
                                   "cost-tracker: unknown key '%s' (input_per_mtok, "
                                   "output_per_mtok)",
                                   key);
            }
        }
        t->model = p->keys[i]->scalar;
        rc = need_number(err, path, gv_ynode_get(row, "input_per_mtok"),
                         "input_per_mtok (USD per million prompt tokens)", &t->input_per_mtok);
        if (rc == GV_OK) {
            rc = need_number(err, path, gv_ynode_get(row, "output_per_mtok"),
                             "output_per_mtok (USD per million completion tokens)",
                             &t->output_per_mtok);
        }
        if (rc) {
            if (!gv_ynode_get(row, "input_per_mtok") || !gv_ynode_get(row, "output_per_mtok")) {
                return gv_cfg_fail(err, path, row,
                                   "cost-tracker: prices.%s needs input_per_mtok and "
                                   "output_per_mtok",
                                   p->keys[i]->scalar);
            }
            return rc;
        }
        k++;
    }
    /* Overrides come first, so an exact override wins over the built-in row
     * (gw_cost_price_find returns the first exact match). */
    for (i = 0; i < nbuiltin; i++) {
        ctx->table[k++] = gw_cost_builtin_prices[i];
    }
    return GV_OK;
}

static gv_rc parse_budget_set(const struct gv_ynode *n, const char *what, const char *path,
                              struct budget_set *set, struct gv_cfg_err *err)
{
    size_t i;
    gv_rc rc;

    if (!n) {
        return GV_OK;
    }
    if (n->kind != GV_Y_MAP) {
        return gv_cfg_fail(err, path, n,
                           "cost-tracker: budgets.%s must be a mapping of %s -> "
                           "budget_usd",
                           what, what);
    }
    set->items = gv_calloc(n->n + 1, sizeof(*set->items));
    for (i = 0; i < n->n; i++) {
        double usd;
        rc = need_number(err, path, n->items[i], "a budget (USD)", &usd);
        if (rc) {
            return rc;
        }
        if (strcmp(n->keys[i]->scalar, "default") == 0) {
            set->has_default = true;
            set->default_usd = usd;
            continue;
        }
        set->items[set->n].name = n->keys[i]->scalar;
        set->items[set->n].usd = usd;
        set->n++;
    }
    return GV_OK;
}

/* Budget for name, or -1 when none applies. */
static double budget_for(const struct budget_set *set, const char *name)
{
    size_t i;
    if (!name || !*name) {
        return -1.0;
    }
    for (i = 0; i < set->n; i++) {
        if (strcmp(set->items[i].name, name) == 0) {
            return set->items[i].usd;
        }
    }
    return set->has_default ? set->default_usd : -1.0;
}

/* The team a request is charged to: rbac's, else the W&B entity it is tagged with. */
static const char *team_of(const struct gv_record *rec)
{
    return rec->team[0] ? rec->team : rec->entity;
}

static void cost_destroy(struct gw_policy *pol);

static gv_rc cost_setup(struct gw_policy *pol, const char *path, const struct gv_ynode *settings,
                        struct gv_cfg_err *err)
{
    struct cost_ctx *ctx = pol->ctx;
    const struct gv_ynode *b = ctx->budgets;
    size_t i;
    gv_rc rc;

    rc = parse_prices(ctx, path, err);
    if (rc) {
        return rc;
    }
    if (b && b->kind != GV_Y_MAP) {
        return gv_cfg_fail(err, path, b, "cost-tracker: budgets must be {runs: ..., teams: ...}");
    }
    for (i = 0; b && i < b->n; i++) {
        const char *k = b->keys[i]->scalar;
        if (strcmp(k, "runs") != 0 && strcmp(k, "teams") != 0) {
            return gv_cfg_fail(err, path, b->keys[i],
                               "cost-tracker: unknown budgets key '%s' (runs, teams)", k);
        }
    }
    rc = parse_budget_set(b ? gv_ynode_get(b, "runs") : NULL, "runs", path, &ctx->runs, err);
    if (rc == GV_OK) {
        rc = parse_budget_set(b ? gv_ynode_get(b, "teams") : NULL, "teams", path, &ctx->teams, err);
    }
    if (rc) {
        return rc;
    }
    return gw_ledger_open_for(pol, "cost", ctx->state_flush_ms, "every budget", path, settings, err,
                              &ctx->ledger);
}

static gv_rc cost_init(struct gw_policy *pol, const char *path, const struct gv_ynode *settings,
                       struct gv_cfg_err *err)
{
    gv_rc rc = cost_setup(pol, path, settings, err);
    if (rc) {
        /* Leave nothing behind whether or not the chain calls destroy. */
        cost_destroy(pol);
    }
    return rc;
}

/* A positive integer member of the request body, or 0. */
static uint64_t body_u64(const struct gw_req *req, const char *key)
{
    struct json_object *v;
    int64_t n;

    if (!req->body || !json_object_object_get_ex(req->body, key, &v) ||
        !json_object_is_type(v, json_type_int)) {
        return 0;
    }
    n = json_object_get_int64(v);
    return n > 0 ? (uint64_t)n : 0;
}

/* The most this request can cost: every prompt byte a token, and every choice
 * as long as the request allows (max_completion_tokens, max_tokens, else
 * default_max_tokens), at this tracker's prices. */
static double worst_case_usd(const struct cost_ctx *ctx, struct gw_req *req)
{
    const struct gw_cost_price *p = gw_cost_price_find(ctx->table, req->rec->model);
    uint64_t est, prompt_max, completion, n;

    if (!p) {
        return 0.0;
    }
    gw_req_prompt_tokens(req, &est, &prompt_max);
    completion = body_u64(req, "max_completion_tokens");
    if (!completion) {
        completion = body_u64(req, "max_tokens");
    }
    if (!completion) {
        completion = (uint64_t)ctx->default_max_tokens;
    }
    n = body_u64(req, "n");
    n = n ? (n > 128 ? 128 : n) : 1;
    return ((double)prompt_max * p->input_per_mtok +
            (double)completion * (double)n * p->output_per_mtok) /
           1e6;
}

static void budget_block(struct gw_verdict *out, const char *message)
{
    gw_verdict_block(out, 403, "budget_exceeded", message);
}

static gv_rc cost_evaluate(struct gw_policy *pol, struct gw_req *req, struct gw_verdict *out)
{
    struct cost_ctx *ctx = pol->ctx;
    const struct gv_record *rec = req->rec;
    double run_budget, team_budget, worst;
    const char *team;
    struct hold *h;

    memset(out, 0, sizeof(*out));
    out->action = GW_ACTION_PASS;
    if (!rec || pol->slot >= GV_RECORD_MAX_POLICIES || req->policy_state[pol->slot]) {
        return GV_OK;
    }
    team = team_of(rec);
    run_budget = budget_for(&ctx->runs, rec->run_id);
    team_budget = budget_for(&ctx->teams, team);
    if (run_budget < 0 && team_budget < 0) {
        return GV_OK;
    }
    /* Admitted while spend plus what requests in flight hold is below the
     * budget; the request then holds its worst case until complete() settles
     * it to the real cost. Requests arriving together see each other's holds,
     * so concurrency cannot overshoot a budget (a request admitted under it
     * may still end above it by at most its own cost, as a lone one could). */
    worst = worst_case_usd(ctx, req);
    h = gv_calloc(1, sizeof(*h));
    h->usd = worst;
    if (run_budget >= 0) {
        if (!gw_ledger_reserve(ctx->ledger, "run", rec->run_id, run_budget, worst)) {
            gv_free(h);
            budget_block(out, "The spend budget of this W&B run is exhausted (cost-tracker).");
            return GV_OK;
        }
        h->run = true;
        gv_str_copy(h->run_id, sizeof(h->run_id), rec->run_id);
    }
    if (team_budget >= 0) {
        if (!gw_ledger_reserve(ctx->ledger, "team", team, team_budget, worst)) {
            if (h->run) {
                gw_ledger_settle(ctx->ledger, "run", h->run_id, worst, 0.0);
            }
            gv_free(h);
            budget_block(out, "The spend budget of this team is exhausted (cost-tracker).");
            return GV_OK;
        }
        h->team = true;
        gv_str_copy(h->team_id, sizeof(h->team_id), team);
    }
    req->policy_state[pol->slot] = h;
    return GV_OK;
}

/* The one cost of the request, from this tracker's prices (configured rows
 * over the built-in table). Runs before every complete() hook. */
static void cost_price(struct gw_policy *pol, struct gw_req *req, struct gv_record *rec)
{
    struct cost_ctx *ctx = pol->ctx;
    const struct gw_cost_price *p;
    char model[sizeof(rec->model) + 1];

    (void)req;
    if (rec->cost_priced) {
        return;
    }
    rec->cost_priced = true;
    memcpy(model, rec->model, sizeof(rec->model));
    model[sizeof(rec->model)] = '\0';
    p = gw_cost_price_find(ctx->table, model);
    if (!p) {
        if ((rec->tokens_prompt || rec->tokens_completion) &&
            !atomic_exchange(&ctx->unknown_logged, true)) {
            gv_log(GV_LOG_WARN, "policy:cost-tracker",
                   "no price for model; its requests cost 0 (add it under "
                   "policy.cost-tracker.prices)",
                   "model=%s", model);
        }
        rec->cost_usd = 0.0;
        return;
    }
    /* weave: the trace exporter pushes the same prices so Weave's cost equals ours */
    rec->price_input_per_mtok = p->input_per_mtok;
    rec->price_output_per_mtok = p->output_per_mtok;
    rec->cost_usd = ((double)rec->tokens_prompt * p->input_per_mtok +
                     (double)rec->tokens_completion * p->output_per_mtok) /
                    1e6;
}

static void hold_end(struct cost_ctx *ctx, struct hold *h, double usd)
{
    if (h->run) {
        gw_ledger_settle(ctx->ledger, "run", h->run_id, h->usd, usd);
    }
    if (h->team) {
        gw_ledger_settle(ctx->ledger, "team", h->team_id, h->usd, usd);
    }
}

static void cost_complete(struct gw_policy *pol, struct gw_req *req, struct gv_record *rec)
{
    struct cost_ctx *ctx = pol->ctx;
    struct hold *h = NULL;
    double usd;

    cost_price(pol, req, rec); /* no-op when the chain already priced it */
    usd = rec->cost_usd;
    if (req && pol->slot < GV_RECORD_MAX_POLICIES) {
        h = req->policy_state[pol->slot];
        req->policy_state[pol->slot] = NULL;
    }
    if (h) {
        hold_end(ctx, h, usd);
    }
    if (rec->run_id[0] && !(h && h->run)) {
        gw_ledger_add(ctx->ledger, "run", rec->run_id, usd);
    }
    if (team_of(rec)[0] && !(h && h->team)) {
        gw_ledger_add(ctx->ledger, "team", team_of(rec), usd);
    }
    gv_free(h);
}

/* A hold whose request never reached complete(): released, nothing charged. */
static void cost_state_free(struct gw_policy *pol, void *state)
{
    struct hold *h = state;

    hold_end(pol->ctx, h, 0.0);
    gv_free(h);
}

static void cost_destroy(struct gw_policy *pol)
{
    struct cost_ctx *ctx = pol->ctx;
    gw_ledger_close(ctx->ledger);
    ctx->ledger = NULL;
    gv_free(ctx->table);
    gv_free(ctx->runs.items);
    gv_free(ctx->teams.items);
    ctx->table = NULL;
    ctx->runs.items = NULL;
    ctx->teams.items = NULL;
}

const struct gw_policy_ops gw_policy_cost = {
    .name = "cost-tracker",
    .config_map = config_map,
    .ctx_size = sizeof(struct cost_ctx),
    .flags = GW_POL_PROMPT | GW_POL_COMPLETE,
    .init = cost_init,
    .evaluate = cost_evaluate,
    .price = cost_price,
    .complete = cost_complete,
    .stream_free = cost_state_free,
    .destroy = cost_destroy,
};
