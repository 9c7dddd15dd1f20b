/* gateway/policies/rbac/rbac.c - API keys to principals, roles to models */
/* SPDX-License-Identifier: Apache-2.0 */
#include <openssl/crypto.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/gv_hash.h"
#include "core/gv_mem.h"
#include "gateway/gw_policy.h"
#include "gateway/gw_req.h"
#include "gateway/policies/accounting/cost_prices.h"
#include "gateway/policies/accounting/ledger.h"

/* Every string below points into the config document, which outlives ctx. */
struct rbac_role {
    const char *name;
    const struct gv_ynode *models;  /* scalar sequence, or NULL: any model */
    const struct gv_ynode *targets; /* scalar sequence, or NULL: any target */
    bool has_budget;
    double budget_usd; /* per principal holding the role */
};

struct rbac_key {
    const char *name;
    unsigned char sha[32];
    const char *team; /* "" when none */
    const struct rbac_role *role;
};

struct rbac_team {
    const char *name;
    const struct rbac_role *role;
    const struct gv_ynode *entities; /* scalar sequence, or NULL: the team's own name */
};

struct rbac_ctx {
    const struct gv_ynode *keys;
    const struct gv_ynode *roles;
    const struct gv_ynode *teams;
    /* built by init */
    size_t nroles, nkeys, nteams;
    struct rbac_role *role;
    struct rbac_key *key;
    struct rbac_team *team;
    struct gw_ledger *ledger; /* only when some role has a budget */
};

static const struct gv_cfg_map config_map[] = {
    {"keys", GV_CFG_NODE, offsetof(struct rbac_ctx, keys), NULL, GV_CFG_REQUIRED, NULL, 0, 0,
     "(list) principals: `[{name, key_sha256, team, role}]`; `kt rbac hash-key` prints "
     "`key_sha256` for a key"},
    {"roles", GV_CFG_NODE, offsetof(struct rbac_ctx, roles), NULL, GV_CFG_REQUIRED, NULL, 0, 0,
     "(mapping) role name -> `{models: [...], targets: [...], budget_usd}`"},
    {"teams", GV_CFG_NODE, offsetof(struct rbac_ctx, teams), NULL, 0, NULL, 0, 0,
     "(mapping) team -> role, or -> `{role, entities: [...]}`: the role also limits requests "
     "tagged `X-Wandb-Entity: <team>`; `entities` lists the W&B entities that keys of the team "
     "may tag (exact, `*` or `prefix*`; default: the team's own name). A key without a team may "
     "tag none"},
    {NULL, 0, 0, NULL, 0, NULL, 0, 0, NULL},
};

static const struct rbac_role *find_role(const struct rbac_ctx *ctx, const char *name)
{
    size_t i;
    for (i = 0; i < ctx->nroles; i++) {
        if (strcmp(ctx->role[i].name, name) == 0) {
            return &ctx->role[i];
        }
    }
    return NULL;
}

static const struct rbac_team *find_team(const struct rbac_ctx *ctx, const char *team)
{
    size_t i;
    for (i = 0; team && *team && i < ctx->nteams; i++) {
        if (strcmp(ctx->team[i].name, team) == 0) {
            return &ctx->team[i];
        }
    }
    return NULL;
}

static const struct rbac_role *team_role(const struct rbac_ctx *ctx, const char *team)
{
    const struct rbac_team *t = find_team(ctx, team);
    return t ? t->role : NULL;
}

static gv_rc check_strlist(const struct gv_ynode *n, const char *what, const char *path,
                           struct gv_cfg_err *err)
{
    size_t i;
    if (n->kind != GV_Y_SEQ) {
        return gv_cfg_fail(err, path, n, "rbac: %s must be a list of names", what);
    }
    for (i = 0; i < n->n; i++) {
        if (n->items[i]->kind != GV_Y_SCALAR || !*n->items[i]->scalar) {
            return gv_cfg_fail(err, path, n->items[i], "rbac: %s entries must be names", what);
        }
    }
    return GV_OK;
}

static gv_rc parse_roles(struct rbac_ctx *ctx, const char *path, struct gv_cfg_err *err)
{
    const struct gv_ynode *r = ctx->roles;
    size_t i, j;
    gv_rc rc;

    if (r->kind != GV_Y_MAP || r->n == 0) {
        return gv_cfg_fail(err, path, r,
                           "rbac: roles must map each role name to {models, targets, budget_usd}");
    }
    ctx->role = gv_calloc(r->n, sizeof(*ctx->role));
    for (i = 0; i < r->n; i++) {
        const struct gv_ynode *def = r->items[i];
        struct rbac_role *role = &ctx->role[ctx->nroles];
        const struct gv_ynode *b;

        role->name = r->keys[i]->scalar;
        if (def->kind == GV_Y_SCALAR && !*def->scalar) {
            ctx->nroles++; /* `admin:` with nothing: any model, any target */
            continue;
        }
        if (def->kind != GV_Y_MAP) {
            return gv_cfg_fail(err, path, def,
                               "rbac: role '%s' must be {models, targets, "
                               "budget_usd}",
                               role->name);
        }
        for (j = 0; j < def->n; j++) {
            const char *k = def->keys[j]->scalar;
            if (strcmp(k, "models") && strcmp(k, "targets") && strcmp(k, "budget_usd")) {
                return gv_cfg_fail(err, path, def->keys[j],
                                   "rbac: unknown key '%s' in role '%s' (models, targets, "
                                   "budget_usd)",
                                   k, role->name);
            }
        }
        role->models = gv_ynode_get(def, "models");
        role->targets = gv_ynode_get(def, "targets");
        if (role->models && (rc = check_strlist(role->models, "models", path, err)) != GV_OK) {
            return rc;
        }
        if (role->targets && (rc = check_strlist(role->targets, "targets", path, err)) != GV_OK) {
            return rc;
        }
        b = gv_ynode_get(def, "budget_usd");
        if (b) {
            if (b->kind != GV_Y_SCALAR || !gv_cfg_parse_double(b->scalar, &role->budget_usd) ||
                role->budget_usd < 0) {
                return gv_cfg_fail(err, path, b, "rbac: budget_usd must be a number >= 0");
            }
            role->has_budget = true;
        }
        ctx->nroles++;
    }
    return GV_OK;
}

static gv_rc parse_teams(struct rbac_ctx *ctx, const char *path, struct gv_cfg_err *err)
{
    const struct gv_ynode *t = ctx->teams;
    size_t i;

    if (!t) {
        return GV_OK;
    }
    if (t->kind != GV_Y_MAP) {
        return gv_cfg_fail(err, path, t, "rbac: teams must map W&B entity/team names to roles");
    }
    ctx->team = gv_calloc(t->n + 1, sizeof(*ctx->team));
    for (i = 0; i < t->n; i++) {
        const char *name = t->keys[i]->scalar;
        const struct gv_ynode *v = t->items[i];
        const struct gv_ynode *role = v;
        size_t j;
        gv_rc rc;

        if (v->kind == GV_Y_MAP) {
            for (j = 0; j < v->n; j++) {
                const char *k = v->keys[j]->scalar;
                if (strcmp(k, "role") && strcmp(k, "entities")) {
                    return gv_cfg_fail(err, path, v->keys[j],
                                       "rbac: unknown key '%s' in team '%s' (role, entities)", k,
                                       name);
                }
            }
            role = gv_ynode_get(v, "role");
            ctx->team[i].entities = gv_ynode_get(v, "entities");
            if (!role) {
                return gv_cfg_fail(err, path, v, "rbac: team '%s' needs a role", name);
            }
            if (ctx->team[i].entities &&
                (rc = check_strlist(ctx->team[i].entities, "entities", path, err)) != GV_OK) {
                return rc;
            }
        }
        if (role->kind != GV_Y_SCALAR || !(ctx->team[i].role = find_role(ctx, role->scalar))) {
            return gv_cfg_fail(err, path, role,
                               "rbac: team '%s' maps to unknown role '%s' (a role name, or "
                               "{role, entities})",
                               name, role->kind == GV_Y_SCALAR ? role->scalar : "?");
        }
        ctx->team[i].name = name;
        ctx->nteams++;
    }
    return GV_OK;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static gv_rc parse_keys(struct rbac_ctx *ctx, const char *path, struct gv_cfg_err *err)
{
    const struct gv_ynode *k = ctx->keys;
    size_t i, j;

    if (k->kind != GV_Y_SEQ) {
        return gv_cfg_fail(err, path, k,
                           "rbac: keys must be a list of {name, key_sha256, team, role}");
    }
    ctx->key = gv_calloc(k->n + 1, sizeof(*ctx->key));
    for (i = 0; i < k->n; i++) {
        const struct gv_ynode *e = k->items[i];
        const struct gv_ynode *name, *sha, *team, *role;
        struct rbac_key *key = &ctx->key[i];

        if (e->kind != GV_Y_MAP) {
            return gv_cfg_fail(err, path, e,
                               "rbac: each key must be {name, key_sha256, team, "
                               "role}");
        }
        for (j = 0; j < e->n; j++) {
            const char *f = e->keys[j]->scalar;
            if (strcmp(f, "name") && strcmp(f, "key_sha256") && strcmp(f, "team") &&
                strcmp(f, "role")) {
                return gv_cfg_fail(err, path, e->keys[j],
                                   "rbac: unknown key '%s' (name, key_sha256, team, role)", f);
            }
        }
        name = gv_ynode_get(e, "name");
        sha = gv_ynode_get(e, "key_sha256");
        team = gv_ynode_get(e, "team");
        role = gv_ynode_get(e, "role");
        if (!name || name->kind != GV_Y_SCALAR || !*name->scalar) {
            return gv_cfg_fail(err, path, name ? name : e, "rbac: key needs a name");
        }
        if (strlen(name->scalar) >= sizeof(((struct gv_record *)0)->principal)) {
            return gv_cfg_fail(err, path, name, "rbac: name longer than 63 bytes");
        }
        if (!sha || sha->kind != GV_Y_SCALAR || strlen(sha->scalar) != 64) {
            return gv_cfg_fail(err, path, sha ? sha : e,
                               "rbac: key '%s' needs key_sha256: 64 hex characters (the SHA-256 "
                               "of the API key, from `kt rbac hash-key`; never the key itself)",
                               name->scalar);
        }
        for (j = 0; j < 32; j++) {
            int hi = hexval(sha->scalar[2 * j]), lo = hexval(sha->scalar[2 * j + 1]);
            if (hi < 0 || lo < 0) {
                return gv_cfg_fail(err, path, sha, "rbac: key_sha256 must be hexadecimal");
            }
            key->sha[j] = (unsigned char)(hi << 4 | lo);
        }
        key->name = name->scalar;
        key->team = "";
        if (team) {
            if (team->kind != GV_Y_SCALAR ||
                strlen(team->scalar) >= sizeof(((struct gv_record *)0)->team)) {
                return gv_cfg_fail(err, path, team, "rbac: team must be a name under 64 bytes");
            }
            key->team = team->scalar;
        }
        if (role) {
            if (role->kind != GV_Y_SCALAR || !(key->role = find_role(ctx, role->scalar))) {
                return gv_cfg_fail(err, path, role, "rbac: unknown role '%s'",
                                   role->kind == GV_Y_SCALAR ? role->scalar : "?");
            }
        }
        else if (!(key->role = team_role(ctx, key->team))) {
            return gv_cfg_fail(err, path, e,
                               "rbac: key '%s' needs a role (or a team that teams maps to one)",
                               key->name);
        }
        for (j = 0; j < i; j++) {
            if (memcmp(ctx->key[j].sha, key->sha, 32) == 0) {
                return gv_cfg_fail(err, path, sha,
                                   "rbac: key '%s' has the same key_sha256 as "
                                   "'%s'",
                                   key->name, ctx->key[j].name);
            }
        }
        ctx->nkeys++;
    }
    return GV_OK;
}

static void rbac_destroy(struct gw_policy *pol)
{
    struct rbac_ctx *ctx = pol->ctx;
    gw_ledger_close(ctx->ledger);
    gv_free(ctx->role);
    gv_free(ctx->key);
    gv_free(ctx->team);
    ctx->ledger = NULL;
    ctx->role = NULL;
    ctx->key = NULL;
    ctx->team = NULL;
    ctx->nroles = ctx->nkeys = ctx->nteams = 0;
}

static gv_rc setup(struct gw_policy *pol, const char *path, const struct gv_ynode *settings,
                   struct gv_cfg_err *err)
{
    struct rbac_ctx *ctx = pol->ctx;
    bool budgets = false;
    size_t i;
    gv_rc rc;

    rc = parse_roles(ctx, path, err);
    if (rc == GV_OK) {
        rc = parse_teams(ctx, path, err);
    }
    if (rc == GV_OK) {
        rc = parse_keys(ctx, path, err);
    }
    if (rc) {
        return rc;
    }
    for (i = 0; i < ctx->nroles; i++) {
        budgets = budgets || ctx->role[i].has_budget;
    }
    if (!budgets) {
        return GV_OK;
    }
    return gw_ledger_open_for(pol, "rbac", 1000, "role budgets", path, settings, err, &ctx->ledger);
}

static gv_rc rbac_init(struct gw_policy *pol, const char *path, const struct gv_ynode *settings,
                       struct gv_cfg_err *err)
{
    gv_rc rc = setup(pol, path, settings, err);
    if (rc) {
        rbac_destroy(pol);
    }
    return rc;
}

/* A name list allows s: exact entries, "*" for anything, "prefix*" for a prefix. */
static bool allowed(const struct gv_ynode *list, const char *s)
{
    size_t i;
    if (!list) {
        return true;
    }
    for (i = 0; i < list->n; i++) {
        const char *p = list->items[i]->scalar;
        size_t n = strlen(p);
        if (n && p[n - 1] == '*' ? strncmp(p, s, n - 1) == 0 : strcmp(p, s) == 0) {
            return true;
        }
    }
    return false;
}

static bool role_allows(const struct rbac_role *role, const struct gw_req *req)
{
    const char *target = req->rec ? req->rec->target : "";
    return allowed(role->models, req->model ? req->model : "") && allowed(role->targets, target);
}

/* The configured key the request's bearer token hashes to; *found is NULL
 * when there is no token or no such key. */
static gv_rc lookup(const struct rbac_ctx *ctx, const struct gw_req *req,
                    const struct rbac_key **found)
{
    uint8_t md[GV_SHA256_LEN];
    size_t i;

    *found = NULL;
    if (!req->api_key || !*req->api_key) {
        return GV_OK;
    }
    /* The same digest `kt rbac hash-key` prints for rbac.keys. */
    if (gv_sha256(req->api_key, strlen(req->api_key), md) != GV_OK) {
        return GV_EIO;
    }
    /* Compare against every key in constant time per key, so timing says
     * nothing about how close a guess came. */
    for (i = 0; i < ctx->nkeys; i++) {
        if (CRYPTO_memcmp(md, ctx->key[i].sha, 32) == 0) {
            *found = &ctx->key[i];
        }
    }
    return GV_OK;
}

/* The W&B entities a key may tag: its team's `entities`, else the team's own
 * name; none for a key without a team. *own is the first exact name, for
 * recording a refused request under the caller's entity ("" when none). */
static bool may_tag(const struct rbac_ctx *ctx, const struct rbac_key *key, const char *entity,
                    const char **own)
{
    const struct rbac_team *t = find_team(ctx, key->team);
    size_t i;

    *own = "";
    if (!key->team[0]) {
        return false;
    }
    if (!t || !t->entities) {
        *own = key->team;
        return strcmp(entity, key->team) == 0;
    }
    for (i = 0; i < t->entities->n; i++) {
        const char *e = t->entities->items[i]->scalar;
        if (!strchr(e, '*')) {
            *own = e;
            break;
        }
    }
    return allowed(t->entities, entity);
}

static void set_principal(struct gv_record *rec, const struct rbac_key *key)
{
    snprintf(rec->principal, sizeof(rec->principal), "%s", key->name);
    if (key->team[0]) {
        snprintf(rec->team, sizeof(rec->team), "%s", key->team);
    }
}

/* X-Wandb-Entity decides whose W&B entity the agent writes the request's run
 * into, so it is bound to the caller: only its team's entities. A request this
 * refuses, or one from an unknown caller, keeps no entity it was not allowed. */
static gv_rc rbac_tags(struct gw_policy *pol, struct gw_req *req, struct gw_verdict *out)
{
    struct rbac_ctx *ctx = pol->ctx;
    const struct rbac_key *found;
    const char *own;
    gv_rc rc;

    memset(out, 0, sizeof(*out));
    out->action = GW_ACTION_PASS;
    if (!req->rec || !req->rec->entity[0]) {
        return GV_OK;
    }
    rc = lookup(ctx, req, &found);
    if (rc) {
        return rc;
    }
    if (!found) {
        req->rec->entity[0] = '\0'; /* evaluate() refuses it with 401 */
        return GV_OK;
    }
    if (may_tag(ctx, found, req->rec->entity, &own)) {
        return GV_OK;
    }
    snprintf(req->rec->entity, sizeof(req->rec->entity), "%s", own);
    set_principal(req->rec, found);
    gw_verdict_block(
        out, 403, "rbac",
        "This API key may not tag requests with that W&B entity: X-Wandb-Entity must be one "
        "of its team's entities (rbac).");
    out->param = "X-Wandb-Entity";
    return GV_OK;
}

static gv_rc rbac_evaluate(struct gw_policy *pol, struct gw_req *req, struct gw_verdict *out)
{
    struct rbac_ctx *ctx = pol->ctx;
    const struct rbac_key *found = NULL;
    const struct rbac_role *trole;
    gv_rc rc;

    memset(out, 0, sizeof(*out));
    out->action = GW_ACTION_PASS;
    if (!req->api_key || !*req->api_key) {
        gw_verdict_block(out, 401, "invalid_api_key",
                         "Missing API key: send `Authorization: Bearer <key>` (rbac).");
        return GV_OK;
    }
    rc = lookup(ctx, req, &found);
    if (rc) {
        return rc;
    }
    if (!found) {
        gw_verdict_block(out, 401, "invalid_api_key", "Incorrect API key provided (rbac).");
        return GV_OK;
    }
    if (req->rec) {
        set_principal(req->rec, found);
    }
    if (!role_allows(found->role, req)) {
        gw_verdict_block(out, 403, "rbac",
                         "The role of this API key may not use this model (rbac).");
        return GV_OK;
    }
    /* A request tagged with a W&B entity that teams maps must also be allowed
     * by that team's role: the key cannot widen what the team may do. */
    trole = req->rec ? team_role(ctx, req->rec->entity) : NULL;
    if (trole && !role_allows(trole, req)) {
        gw_verdict_block(out, 403, "rbac",
                         "The W&B team this request is tagged with may not use this model (rbac).");
        return GV_OK;
    }
    if (ctx->ledger && found->role->has_budget &&
        gw_ledger_get(ctx->ledger, "principal", found->name) >= found->role->budget_usd) {
        gw_verdict_block(out, 403, "budget_exceeded",
                         "The spend budget of this API key's role is exhausted (rbac).");
    }
    return GV_OK;
}

/* Who the caller is, nothing more: the route has no model to check a role
 * against, so only evaluate's 401s (no key, unknown key) stand. */
static gv_rc rbac_authenticate(struct gw_policy *pol, struct gw_req *req, struct gw_verdict *out)
{
    gv_rc rc = rbac_evaluate(pol, req, out);

    if (rc == GV_OK && out->action == GW_ACTION_BLOCK && out->status != 401) {
        memset(out, 0, sizeof(*out));
        out->action = GW_ACTION_PASS;
    }
    return rc;
}

static void rbac_complete(struct gw_policy *pol, struct gw_req *req, struct gv_record *rec)
{
    struct rbac_ctx *ctx = pol->ctx;
    char model[sizeof(rec->model) + 1];
    double usd = rec->cost_usd;
    bool known;

    (void)req;
    if (!ctx->ledger || !rec->principal[0]) {
        return;
    }
    if (!rec->cost_priced) {
        /* No cost-tracker in the chain to set the one cost: list prices. */
        memcpy(model, rec->model, sizeof(rec->model));
        model[sizeof(rec->model)] = '\0';
        usd = gw_cost_builtin_usd(model, rec->tokens_prompt, rec->tokens_completion, &known);
    }
    gw_ledger_add(ctx->ledger, "principal", rec->principal, usd);
}

const struct gw_policy_ops gw_policy_rbac = {
    .name = "rbac",
    .config_map = config_map,
    .ctx_size = sizeof(struct rbac_ctx),
    .flags = GW_POL_PROMPT | GW_POL_COMPLETE,
    .settings_required = true,
    .init = rbac_init,
    .evaluate = rbac_evaluate,
    .tags = rbac_tags,
    .complete = rbac_complete,
    .authenticate = rbac_authenticate,
    .destroy = rbac_destroy,
};
