/* gateway/gw_config.c - load and validate policy-config.yaml */
/* SPDX-License-Identifier: Apache-2.0 */
#include "gateway/gw_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "core/gv_cfg.h"
#include "core/gv_log.h"
#include "core/gv_mem.h"
#include "core/gv_record.h"
#include "gateway/gw_policy.h"
#include "gateway/gw_telemetry.h"
#include "gateway/policies/gw_policies.h"

#define DEFAULT_BASE_URL "https://api.openai.com/v1"
#define MAX_TARGETS 64

static const char *const top_keys[] = {"pack",    "providers", "policies", "policy",
                                       "gateway", "telemetry", NULL};

/* ---- config maps for the parts kt itself owns ---- */

/* The pack's keys fill struct gw_config directly: they need no conversion. */
static const struct gv_cfg_map pack_map[] = {
    {"name", GV_CFG_STR, offsetof(struct gw_config, pack_name), "default", 0, NULL, 0, 0,
     "name of the policy pack, shown by `kt policy check`, in logs and events"},
    {"version", GV_CFG_STR, offsetof(struct gw_config, pack_version), "0.0.0", 0, NULL, 0, 0,
     "version of the pack (any text)"},
    {"enabled", GV_CFG_BOOL, offsetof(struct gw_config, pack_enabled), "true", 0, NULL, 0, 0,
     "`false` passes all traffic through with no policies; the gateway logs `pack disabled: "
     "passing traffic through with no policies`"},
    {NULL, 0, 0, NULL, 0, NULL, 0, 0, NULL},
};

struct providers_cfg {
    const struct gv_ynode *targets;
};

static const struct gv_cfg_map providers_map[] = {
    {"targets", GV_CFG_NODE, offsetof(struct providers_cfg, targets), NULL, GV_CFG_REQUIRED, NULL,
     0, 0,
     "(list) the upstream models requests may go to: at least one (at most 64) targets, each a "
     "mapping with the keys of `providers.targets[]`"},
    {NULL, 0, 0, NULL, 0, NULL, 0, 0, NULL},
};

struct target_cfg {
    const char *id;
    const char *provider;
    const char *base_url;
    const struct gv_ynode *secret_key_ref;
    bool stream_usage;
    long connect_timeout;
    long first_byte_timeout;
    long idle_timeout;
    const char *ca_file;
};

static const struct gv_cfg_map target_map[] = {
    {"id", GV_CFG_STR, offsetof(struct target_cfg, id), NULL, GV_CFG_REQUIRED, NULL, 0, 0,
     "unique, non-empty name of the target; clients may send it as `model`"},
    {"provider", GV_CFG_STR, offsetof(struct target_cfg, provider), NULL, GV_CFG_REQUIRED, NULL, 0,
     0,
     "`openai:chat:MODEL` or `openai-compatible:chat:MODEL`. MODEL is everything after the "
     "second colon, so fine-tuned names such as `ft:gpt-4o:org::id` work"},
    {"base_url", GV_CFG_STR, offsetof(struct target_cfg, base_url), NULL, 0, NULL, 0, 0,
     "API root, `http://` or `https://`; trailing `/` are removed. Required for "
     "`openai-compatible`. For `openai` the default is `$OPENAI_BASE_URL` if set, else "
     "`https://api.openai.com/v1`"},
    {"secret_key_ref", GV_CFG_NODE, offsetof(struct target_cfg, secret_key_ref), NULL, 0, NULL, 0,
     0,
     "(mapping) `{env: NAME}`: the upstream API key is read from environment variable NAME when "
     "the file is loaded. The variable must be set and non-empty, or loading fails with an "
     "error naming the variable (never its value). Without `secret_key_ref` the gateway has no "
     "key of its own for this target"},
    {"stream_usage", GV_CFG_BOOL, offsetof(struct target_cfg, stream_usage), "true", 0, NULL, 0, 0,
     "ask the upstream to report token usage on streamed answers "
     "(`stream_options.include_usage`), so streamed requests are costed too"},
    {"connect_timeout", GV_CFG_DURATION, offsetof(struct target_cfg, connect_timeout), "10s", 0,
     NULL, 1, 3600000, "TCP and TLS connect deadline"},
    {"first_byte_timeout", GV_CFG_DURATION, offsetof(struct target_cfg, first_byte_timeout), "120s",
     0, NULL, 1, 3600000, "deadline for the first byte of the answer"},
    {"idle_timeout", GV_CFG_DURATION, offsetof(struct target_cfg, idle_timeout), "60s", 0, NULL, 1,
     3600000, "longest gap between two bytes of a streamed answer"},
    {"ca_file", GV_CFG_STR, offsetof(struct target_cfg, ca_file), NULL, 0, NULL, 0, 0,
     "(path) for an `https://` base_url: a PEM file of the CA certificates to trust instead of "
     "the system store. Without it the gateway trusts the system store, or the file and "
     "directory in `SSL_CERT_FILE` / `SSL_CERT_DIR` when those are set (as OpenSSL reads them). "
     "Either way the upstream's certificate must name the base_url's host; a failed check "
     "answers 502 `upstream unreachable or invalid answer: TLS certificate verify failed: "
     "<reason>`. Loading fails if the file cannot be read"},
    {NULL, 0, 0, NULL, 0, NULL, 0, 0, NULL},
};

struct secret_cfg {
    const char *env;
};

static const struct gv_cfg_map secret_map[] = {
    {"env", GV_CFG_STR, offsetof(struct secret_cfg, env), NULL, GV_CFG_REQUIRED, NULL, 0, 0,
     "name of the environment variable that holds the upstream API key"},
    {NULL, 0, 0, NULL, 0, NULL, 0, 0, NULL},
};

struct policies_cfg {
    struct gv_cfg_strlist chain;
};

static const struct gv_cfg_map policies_map[] = {
    {"chain", GV_CFG_STRLIST, offsetof(struct policies_cfg, chain), NULL, 0, NULL, 0, 0,
     "the policies run on every request, in this order (at most 16); absent: none"},
    {NULL, 0, 0, NULL, 0, NULL, 0, 0, NULL},
};

struct gateway_cfg {
    size_t max_body_bytes;
    size_t max_response_bytes;
    long max_connections;
    size_t max_header_bytes;
    size_t max_header_line_bytes;
    long max_headers;
    long header_timeout;
    long body_timeout;
    long keepalive_timeout;
    long send_timeout;
};

static const struct gv_cfg_map gateway_map[] = {
    {"max_body_bytes", GV_CFG_SIZE, offsetof(struct gateway_cfg, max_body_bytes), "4MiB", 0, NULL,
     1024, 1073741824.0, "largest request body accepted; larger requests get HTTP 413"},
    {"max_response_bytes", GV_CFG_SIZE, offsetof(struct gateway_cfg, max_response_bytes), "32MiB",
     0, NULL, 1024, 4294967296.0, "largest non-streamed upstream answer accepted; HTTP 502 beyond"},
    {"max_connections", GV_CFG_INT, offsetof(struct gateway_cfg, max_connections), "0", 0, NULL, 0,
     10000000,
     "open client connections, all workers together. `0` takes what the descriptor limit "
     "allows: (soft `RLIMIT_NOFILE` − 256) / 2, so 256 descriptors stay for upstreams, the "
     "audit log and the agent socket and every client can have its upstream connection. Past "
     "the cap a new connection gets HTTP 503 (`too_many_connections`, `Retry-After: 1`) and is "
     "closed; open ones keep being served"},
    {"max_header_bytes", GV_CFG_SIZE, offsetof(struct gateway_cfg, max_header_bytes), "32KiB", 0,
     NULL, 1024, 1048576,
     "largest request head, request line and headers together; HTTP 431 beyond"},
    {"max_header_line_bytes", GV_CFG_SIZE, offsetof(struct gateway_cfg, max_header_line_bytes),
     "8KiB", 0, NULL, 256, 1048576,
     "largest request line or header line; HTTP 414 for the request line, 431 for a header"},
    {"max_headers", GV_CFG_INT, offsetof(struct gateway_cfg, max_headers), "64", 0, NULL, 8, 64,
     "most header fields in one request; HTTP 431 beyond"},
    {"header_timeout", GV_CFG_DURATION, offsetof(struct gateway_cfg, header_timeout), "10s", 0,
     NULL, 100, 3600000,
     "the whole request head must arrive within this of its first byte, however slowly it "
     "trickles in; HTTP 408 and close beyond"},
    {"body_timeout", GV_CFG_DURATION, offsetof(struct gateway_cfg, body_timeout), "60s", 0, NULL,
     100, 3600000,
     "the whole request body must arrive within this of the end of the head; HTTP 408 and close "
     "beyond"},
    {"keepalive_timeout", GV_CFG_DURATION, offsetof(struct gateway_cfg, keepalive_timeout), "20s",
     0, NULL, 100, 3600000, "an idle keep-alive connection is closed after this"},
    {"send_timeout", GV_CFG_DURATION, offsetof(struct gateway_cfg, send_timeout), "60s", 0, NULL,
     100, 3600000,
     "a client that takes no bytes of its answer for this long is disconnected; the request is "
     "recorded as 499"},
    {NULL, 0, 0, NULL, 0, NULL, 0, 0, NULL},
};

const struct gw_config_section *gw_config_sections(void)
{
    static const struct gw_config_section sections[] = {
        {"pack", pack_map},
        {"providers", providers_map},
        {"providers.targets[]", target_map},
        {"providers.targets[].secret_key_ref", secret_map},
        {"policies", policies_map},
        {"gateway", gateway_map},
        {NULL, NULL},
    };
    return sections;
}

/* ---- helpers ---- */

static bool is_null(const struct gv_ynode *n)
{
    return n && n->kind == GV_Y_SCALAR && !n->quoted &&
           (n->scalar[0] == '\0' || strcmp(n->scalar, "~") == 0 || strcmp(n->scalar, "null") == 0);
}

static void known_policies(const struct gw_config *cfg, char *buf, size_t size)
{
    const struct gw_policy_ops *const *all = cfg->policies;
    size_t used = 0;
    size_t i;

    buf[0] = '\0';
    for (i = 0; all[i]; i++) {
        int n = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", all[i]->name);
        if (n < 0 || (size_t)n >= size - used) {
            break;
        }
        used += (size_t)n;
    }
}

static void top_key_list(char *buf, size_t size)
{
    size_t used = 0;
    size_t i;

    buf[0] = '\0';
    for (i = 0; top_keys[i]; i++) {
        int n = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", top_keys[i]);
        if (n < 0 || (size_t)n >= size - used) {
            break;
        }
        used += (size_t)n;
    }
}

static bool url_ok(const char *u)
{
    return (strncmp(u, "http://", 7) == 0 && u[7]) || (strncmp(u, "https://", 8) == 0 && u[8]);
}

/* Copies a URL without its trailing slashes, so paths can be appended as "/x". */
static char *url_norm(const char *u)
{
    size_t n = strlen(u);

    while (n > 0 && u[n - 1] == '/') {
        n--;
    }
    return gv_strndup(u, n);
}

/* ---- sections ---- */

static gv_rc load_pack(struct gw_config *cfg, const struct gv_ynode *node, struct gv_cfg_err *err)
{
    return gv_cfg_apply_in(pack_map, cfg->path, "pack", node, cfg, err);
}

static gv_rc parse_provider(struct gw_config *cfg, const struct gv_ynode *map, const char *where,
                            const struct target_cfg *t, struct gw_target *out,
                            struct gv_cfg_err *err)
{
    const struct gv_ynode *pn = gv_ynode_get(map, "provider");
    const char *p = t->provider;
    const char *model;

    if (strncmp(p, "openai:chat:", 12) == 0) {
        out->kind = GW_PROVIDER_OPENAI;
        model = p + 12;
    }
    else if (strncmp(p, "openai-compatible:chat:", 23) == 0) {
        out->kind = GW_PROVIDER_OPENAI_COMPATIBLE;
        model = p + 23;
    }
    else {
        return gv_cfg_fail(err, cfg->path, pn,
                           "%s.provider: expected openai:chat:MODEL or "
                           "openai-compatible:chat:MODEL, got '%.100s'",
                           where, p);
    }
    /* The model name is everything after the second colon: fine-tuned model
     * names ("ft:gpt-4o:org::id") contain colons themselves. */
    if (!*model) {
        return gv_cfg_fail(err, cfg->path, pn, "%s.provider: the model name after '%.*s' is empty",
                           where, (int)(model - p), p);
    }
    out->model = gv_strdup(model);
    return GV_OK;
}

static gv_rc load_secret(struct gw_config *cfg, const struct gv_ynode *ref, const char *where,
                         struct gw_target *out, struct gv_cfg_err *err)
{
    struct secret_cfg s;
    char w[160];
    const char *val;
    gv_rc rc;

    memset(&s, 0, sizeof(s));
    snprintf(w, sizeof(w), "%s.secret_key_ref", where);
    rc = gv_cfg_apply_in(secret_map, cfg->path, w, ref, &s, err);
    if (rc) {
        return rc;
    }
    out->secret_env = s.env;
    val = getenv(s.env);
    /* Only the variable's name goes into the message: never its value. */
    if (!val || !*val) {
        return gv_cfg_fail(err, cfg->path, gv_ynode_get(ref, "env"),
                           "%s.env: environment variable %.100s is %s", w, s.env,
                           val ? "empty" : "not set");
    }
    out->secret = gv_strdup(val);
    return GV_OK;
}

static gv_rc load_target(struct gw_config *cfg, const struct gv_ynode *map, size_t idx,
                         struct gw_target *out, struct gv_cfg_err *err)
{
    struct target_cfg t;
    char where[64];
    const char *env_url;
    gv_rc rc;

    memset(&t, 0, sizeof(t));
    snprintf(where, sizeof(where), "providers.targets[%zu]", idx);
    if (map->kind != GV_Y_MAP) {
        return gv_cfg_fail(err, cfg->path, map, "%s: expected a mapping, got a %s", where,
                           is_null(map) ? "null" : gv_ynode_kind_str(map->kind));
    }
    rc = gv_cfg_apply_in(target_map, cfg->path, where, map, &t, err);
    if (rc) {
        return rc;
    }
    if (!*t.id) {
        return gv_cfg_fail(err, cfg->path, gv_ynode_get(map, "id"), "%s.id: must not be empty",
                           where);
    }
    out->id = t.id;
    out->stream_usage = t.stream_usage;
    out->connect_timeout_ms = t.connect_timeout;
    out->first_byte_timeout_ms = t.first_byte_timeout;
    out->idle_timeout_ms = t.idle_timeout;
    if (t.ca_file) {
        /* A CA file the gateway cannot read would fail every TLS call: refuse it now. */
        if (!*t.ca_file || access(t.ca_file, R_OK) != 0) {
            return gv_cfg_fail(err, cfg->path, gv_ynode_get(map, "ca_file"),
                               "%s.ca_file: cannot read '%.200s'", where, t.ca_file);
        }
        out->ca_file = t.ca_file;
    }
    rc = parse_provider(cfg, map, where, &t, out, err);
    if (rc) {
        return rc;
    }
    if (t.base_url) {
        if (!url_ok(t.base_url)) {
            return gv_cfg_fail(err, cfg->path, gv_ynode_get(map, "base_url"),
                               "%s.base_url: expected an http:// or https:// URL, got '%.100s'",
                               where, t.base_url);
        }
        out->base_url = url_norm(t.base_url);
    }
    else if (out->kind == GW_PROVIDER_OPENAI_COMPATIBLE) {
        return gv_cfg_fail(err, cfg->path, map, "%s: an openai-compatible provider needs base_url",
                           where);
    }
    else {
        env_url = getenv("OPENAI_BASE_URL");
        if (env_url && *env_url) {
            if (!url_ok(env_url)) {
                return gv_cfg_fail(err, cfg->path, map,
                                   "%s: environment variable OPENAI_BASE_URL is not an http:// "
                                   "or https:// URL",
                                   where);
            }
            out->base_url = url_norm(env_url);
        }
        else {
            out->base_url = gv_strdup(DEFAULT_BASE_URL);
        }
    }
    if (t.secret_key_ref) {
        rc = load_secret(cfg, t.secret_key_ref, where, out, err);
    }
    return rc;
}

static gv_rc load_providers(struct gw_config *cfg, const struct gv_ynode *node,
                            struct gv_cfg_err *err)
{
    struct providers_cfg p;
    const struct gv_ynode *seq;
    size_t i;
    size_t j;
    gv_rc rc;

    memset(&p, 0, sizeof(p));
    if (!node || is_null(node)) {
        return gv_cfg_fail(err, cfg->path, node ? node : cfg->doc->root,
                           "providers: at least one target is required "
                           "(providers.targets: [{id, provider}])");
    }
    rc = gv_cfg_apply_in(providers_map, cfg->path, "providers", node, &p, err);
    if (rc) {
        return rc;
    }
    seq = p.targets;
    if (seq->kind != GV_Y_SEQ) {
        return gv_cfg_fail(err, cfg->path, seq, "providers.targets: expected a sequence, got a %s",
                           is_null(seq) ? "null" : gv_ynode_kind_str(seq->kind));
    }
    if (seq->n == 0) {
        return gv_cfg_fail(err, cfg->path, seq,
                           "providers.targets: at least one target is required");
    }
    if (seq->n > MAX_TARGETS) {
        return gv_cfg_fail(err, cfg->path, seq->items[MAX_TARGETS],
                           "providers.targets: more than %d targets", MAX_TARGETS);
    }
    cfg->targets = gv_calloc(seq->n, sizeof(*cfg->targets));
    for (i = 0; i < seq->n; i++) {
        /* Counted before loading so a failure still frees what the target got. */
        cfg->ntargets = i + 1;
        rc = load_target(cfg, seq->items[i], i, &cfg->targets[i], err);
        if (rc) {
            return rc;
        }
        for (j = 0; j < i; j++) {
            if (strcmp(cfg->targets[j].id, cfg->targets[i].id) == 0) {
                const struct gv_ynode *first = gv_ynode_get(seq->items[j], "id");
                return gv_cfg_fail(err, cfg->path, gv_ynode_get(seq->items[i], "id"),
                                   "providers.targets[%zu].id: duplicate target id '%.100s' "
                                   "(first used at %d:%d)",
                                   i, cfg->targets[i].id, first->line, first->col);
            }
        }
    }
    return GV_OK;
}

static gv_rc load_gateway(struct gw_config *cfg, const struct gv_ynode *node,
                          struct gv_cfg_err *err)
{
    struct gateway_cfg g;
    gv_rc rc;

    memset(&g, 0, sizeof(g));
    rc = gv_cfg_apply_in(gateway_map, cfg->path, "gateway", node, &g, err);
    if (rc) {
        return rc;
    }
    cfg->max_body_bytes = g.max_body_bytes;
    cfg->max_response_bytes = g.max_response_bytes;
    cfg->max_connections = g.max_connections > 0 ? (size_t)g.max_connections : 0;
    cfg->max_header_bytes = g.max_header_bytes;
    cfg->max_header_line_bytes = g.max_header_line_bytes;
    cfg->max_headers = g.max_headers > 0 ? (size_t)g.max_headers : 0;
    cfg->header_timeout_ms = g.header_timeout;
    cfg->body_timeout_ms = g.body_timeout;
    cfg->keepalive_timeout_ms = g.keepalive_timeout;
    cfg->send_timeout_ms = g.send_timeout;
    return GV_OK;
}

/* Runs a policy's config map over its settings into a scratch ctx, so every
 * typo is reported at load time even for policies not in the chain. */
static gv_rc validate_settings(struct gw_config *cfg, const struct gw_policy_ops *ops,
                               const struct gv_ynode *settings, struct gv_cfg_err *err)
{
    char where[96];
    void *ctx;
    gv_rc rc;

    snprintf(where, sizeof(where), "policy.%s", ops->name);
    ctx = gv_calloc(1, ops->ctx_size ? ops->ctx_size : 1);
    rc = gv_cfg_apply_in(ops->config_map, cfg->path, where, settings, ctx, err);
    gv_cfg_release(ops->config_map, ctx);
    gv_free(ctx);
    return rc;
}

static gv_rc load_chain(struct gw_config *cfg, const struct gv_ynode *policies,
                        const struct gv_ynode *policy, struct gv_cfg_err *err)
{
    struct policies_cfg pc;
    char known[512];
    const struct gw_policy_ops *ops;
    size_t i;
    size_t j;
    gv_rc rc;

    memset(&pc, 0, sizeof(pc));
    rc = gv_cfg_apply_in(policies_map, cfg->path, "policies", policies, &pc, err);
    if (rc) {
        goto out;
    }
    if (pc.chain.n > GV_RECORD_MAX_POLICIES) {
        rc = gv_cfg_fail(err, cfg->path, pc.chain.nodes[GV_RECORD_MAX_POLICIES],
                         "policies.chain: more than %d policies", GV_RECORD_MAX_POLICIES);
        goto out;
    }
    if (pc.chain.n) {
        cfg->chain = gv_calloc(pc.chain.n, sizeof(*cfg->chain));
    }
    for (i = 0; i < pc.chain.n; i++) {
        const char *name = pc.chain.items[i];
        const struct gv_ynode *node = pc.chain.nodes[i];
        const struct gv_ynode *settings;

        ops = gw_policy_lookup(cfg->policies, name);
        if (!ops) {
            known_policies(cfg, known, sizeof(known));
            rc = gv_cfg_fail(err, cfg->path, node,
                             "policies.chain: unknown policy '%.100s' (known: %s)", name, known);
            goto out;
        }
        for (j = 0; j < i; j++) {
            if (strcmp(cfg->chain[j].name, name) == 0) {
                rc = gv_cfg_fail(err, cfg->path, node,
                                 "policies.chain: '%.100s' is listed twice (first at %d:%d)", name,
                                 cfg->chain[j].name_node->line, cfg->chain[j].name_node->col);
                goto out;
            }
        }
        settings = gv_ynode_get(policy, name);
        if (is_null(settings)) {
            settings = NULL;
        }
        if (!settings && ops->settings_required) {
            rc = gv_cfg_fail(err, cfg->path, node,
                             "policies.chain: policy '%s' needs settings: add a policy.%s mapping",
                             name, name);
            goto out;
        }
        if (settings && settings->kind != GV_Y_MAP) {
            rc = gv_cfg_fail(err, cfg->path, settings, "policy.%s: expected a mapping, got a %s",
                             name, gv_ynode_kind_str(settings->kind));
            goto out;
        }
        cfg->chain[i].name = name;
        cfg->chain[i].name_node = node;
        cfg->chain[i].settings = settings;
        cfg->nchain = i + 1;
    }
out:
    gv_cfg_release(policies_map, &pc);
    return rc;
}

static gv_rc load_policy_settings(struct gw_config *cfg, const struct gv_ynode *policy,
                                  struct gv_cfg_err *err)
{
    char known[512];
    const struct gw_policy_ops *ops;
    size_t i;
    size_t j;
    bool chained;
    gv_rc rc;

    if (!policy || is_null(policy)) {
        return GV_OK;
    }
    if (policy->kind != GV_Y_MAP) {
        return gv_cfg_fail(err, cfg->path, policy, "policy: expected a mapping, got a %s",
                           gv_ynode_kind_str(policy->kind));
    }
    for (i = 0; i < policy->n; i++) {
        const struct gv_ynode *key = policy->keys[i];
        const struct gv_ynode *val = policy->items[i];

        ops = gw_policy_lookup(cfg->policies, key->scalar);
        if (!ops) {
            known_policies(cfg, known, sizeof(known));
            return gv_cfg_fail(err, cfg->path, key, "policy: unknown policy '%.100s' (known: %s)",
                               key->scalar, known);
        }
        rc = validate_settings(cfg, ops, is_null(val) ? NULL : val, err);
        if (rc) {
            return rc;
        }
        chained = false;
        for (j = 0; j < cfg->nchain; j++) {
            if (strcmp(cfg->chain[j].name, key->scalar) == 0) {
                chained = true;
            }
        }
        if (!chained) {
            gv_log(GV_LOG_WARN, "config", "policy settings ignored: policy is not in the chain",
                   "at=%s:%d:%d policy=%s", cfg->path, key->line, key->col, key->scalar);
        }
    }
    return GV_OK;
}

/* ---- public ---- */

/* Validates the parsed document; takes ownership of doc (freed on failure). */
/* The sections loaded from their one mapping each, in this order (policies and
 * policy follow: they need the chain and each other). */
static const struct {
    const char *key;
    gv_rc (*load)(struct gw_config *cfg, const struct gv_ynode *node, struct gv_cfg_err *err);
} SECTIONS[] = {
    {"pack", load_pack},
    {"providers", load_providers},
    {"gateway", load_gateway},
    /* what events carry for trace exporters (gateway/gw_telemetry.c) */
    {"telemetry", gw_telemetry_config_load},
};

static gv_rc load_doc(struct gv_ydoc *doc, const struct gw_policy_ops *const *reg,
                      struct gw_config **out, struct gv_cfg_err *err)
{
    struct gw_config *cfg = NULL;
    const struct gv_ynode *root;
    char keys[128];
    size_t i;
    size_t k;
    gv_rc rc;

    cfg = gv_calloc(1, sizeof(*cfg));
    cfg->doc = doc;
    cfg->path = cfg->doc->path;
    cfg->policies = reg;
    root = cfg->doc->root;
    if (!root || is_null(root)) {
        rc = gv_cfg_fail(err, cfg->path, NULL, "the configuration is empty");
        goto out;
    }
    if (root->kind != GV_Y_MAP) {
        rc = gv_cfg_fail(err, cfg->path, root, "expected a mapping at the top level, got a %s",
                         gv_ynode_kind_str(root->kind));
        goto out;
    }
    for (i = 0; i < root->n; i++) {
        for (k = 0; top_keys[k]; k++) {
            if (strcmp(root->keys[i]->scalar, top_keys[k]) == 0) {
                break;
            }
        }
        if (!top_keys[k]) {
            top_key_list(keys, sizeof(keys));
            rc = gv_cfg_fail(err, cfg->path, root->keys[i],
                             "unknown top-level key '%.100s' (expected one of: %s)",
                             root->keys[i]->scalar, keys);
            goto out;
        }
    }
    for (k = 0; k < sizeof(SECTIONS) / sizeof(SECTIONS[0]); k++) {
        rc = SECTIONS[k].load(cfg, gv_ynode_get(root, SECTIONS[k].key), err);
        if (rc) {
            goto out;
        }
    }
    rc = load_chain(cfg, gv_ynode_get(root, "policies"), gv_ynode_get(root, "policy"), err);
    if (rc) {
        goto out;
    }
    rc = load_policy_settings(cfg, gv_ynode_get(root, "policy"), err);
    if (rc) {
        goto out;
    }
    *out = cfg;
    cfg = NULL;
out:
    gw_config_destroy(cfg);
    return rc;
}

gv_rc gw_config_load(const char *path, struct gw_config **out, struct gv_cfg_err *err)
{
    return gw_config_load_with(path, gw_policies_builtin(), out, err);
}

/* A file (from_file: name is its path) or bytes in memory (data, len, called name in
 * messages), parsed and loaded against reg. err may be NULL: the message then goes
 * nowhere. */
static gv_rc load_source(bool from_file, const char *name, const char *data, size_t len,
                         const struct gw_policy_ops *const *reg, struct gw_config **out,
                         struct gv_cfg_err *err)
{
    struct gv_cfg_err scratch;
    struct gv_ydoc *doc = NULL;
    gv_rc rc;

    *out = NULL;
    if (!err) {
        err = &scratch;
    }
    err->msg[0] = '\0';
    rc = from_file ? gv_ydoc_load_file(name, &doc, err)
                   : gv_ydoc_load_buf(name, data, len, &doc, err);
    if (rc == GV_OK) {
        rc = load_doc(doc, reg, out, err);
    }
    return rc;
}

gv_rc gw_config_load_with(const char *path, const struct gw_policy_ops *const *reg,
                          struct gw_config **out, struct gv_cfg_err *err)
{
    return load_source(true, path, NULL, 0, reg, out, err);
}

gv_rc gw_config_load_buf(const char *name, const char *data, size_t len, struct gw_config **out,
                         struct gv_cfg_err *err)
{
    return load_source(false, name, data, len, gw_policies_builtin(), out, err);
}

void gw_config_destroy(struct gw_config *cfg)
{
    size_t i;

    if (!cfg) {
        return;
    }
    for (i = 0; i < cfg->ntargets; i++) {
        struct gw_target *t = &cfg->targets[i];
        if (t->secret) {
            /* The key should not linger in freed heap memory. */
            OPENSSL_cleanse(t->secret, strlen(t->secret));
        }
        gv_free(t->secret);
        gv_free(t->model);
        gv_free(t->base_url);
    }
    gv_free(cfg->targets);
    gv_free(cfg->chain);
    gv_ydoc_destroy(cfg->doc);
    gv_free(cfg);
}

const struct gw_target *gw_config_find_target(const struct gw_config *cfg, const char *model)
{
    size_t i;

    if (!cfg || !model) {
        return NULL;
    }
    /* Model names first: a request naming the upstream model is the common case. */
    for (i = 0; i < cfg->ntargets; i++) {
        if (strcmp(cfg->targets[i].model, model) == 0) {
            return &cfg->targets[i];
        }
    }
    for (i = 0; i < cfg->ntargets; i++) {
        if (strcmp(cfg->targets[i].id, model) == 0) {
            return &cfg->targets[i];
        }
    }
    return NULL;
}
