/* exporters/wandb/wandb.c - the ex_wandb ops: config, init, format, flush, destroy */
/* SPDX-License-Identifier: Apache-2.0 */
#include "exporters/wandb/wandb.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/gv_hash.h"
#include "core/gv_log.h"
#include "core/gv_mem.h"
#include "core/gv_paths.h"
#include "core/gv_time.h"

#define MOD "exporter:wandb"

static const char *const mappings[] = {"companion", "shared", NULL};

static const struct gv_cfg_map wandb_config[] = {
    {"base_url", GV_CFG_STR, offsetof(struct ex_wandb_ctx, base_url), NULL, 0, NULL, 0, 0,
     "W&B API server; else `WANDB_BASE_URL`, else `https://api.wandb.ai`"},
    {"entity", GV_CFG_STR, offsetof(struct ex_wandb_ctx, entity), NULL, 0, NULL, 0, 0,
     "default entity; else `WANDB_ENTITY`, else the API key's default entity"},
    {"project", GV_CFG_STR, offsetof(struct ex_wandb_ctx, project), NULL, 0, NULL, 0, 0,
     "default project; else `WANDB_PROJECT`, else `uncategorized`"},
    {"run_mapping", GV_CFG_ENUM, offsetof(struct ex_wandb_ctx, run_mapping), "companion", 0,
     mappings, 0, 0,
     "`companion`: a `<run_id>-gov` run beside each tagged run; `shared`: write into the "
     "experiment's run itself (preview)"},
    {"per_host", GV_CFG_BOOL, offsetof(struct ex_wandb_ctx, per_host), "false", 0, NULL, 0, 0,
     "the companion run id gains the agent label, `<run_id>-gov-<label>`, so several hosts can "
     "write to one run"},
    {"label", GV_CFG_STR, offsetof(struct ex_wandb_ctx, label), NULL, 0, NULL, 0, 0,
     "this agent's stable label; default the host name"},
    {"upload_interval", GV_CFG_DURATION, offsetof(struct ex_wandb_ctx, upload_interval_ms), "15s",
     0, NULL, 0, 0, "at most one upload per run per interval"},
    {"heartbeat", GV_CFG_DURATION, offsetof(struct ex_wandb_ctx, heartbeat_ms), "30s", 0, NULL, 0,
     0, "an empty file_stream post after this long without one"},
    {"dashboards", GV_CFG_BOOL, offsetof(struct ex_wandb_ctx, dashboards), "true", 0, NULL, 0, 0,
     "upsert the governance workspace and report once per project"},
    {"offline", GV_CFG_BOOL, offsetof(struct ex_wandb_ctx, offline), "false", 0, NULL, 0, 0,
     "write runs to `<state>/wandb-offline` even with credentials"},
    {"dir", GV_CFG_STR, offsetof(struct ex_wandb_ctx, dir), NULL, 0, NULL, 0, 0,
     "(path) run store directory; default `<state>/wandb` or `<state>/wandb-offline`"},
    {NULL, 0, 0, NULL, 0, NULL, 0, 0, NULL},
};

static gv_rc wandb_init(struct ex_exporter *ex, const char *state_dir)
{
    struct ex_wandb_ctx *c = ex->ctx;
    int n;
    gv_rc rc;

    ex_wandb_api_init(&c->api, c->base_url);
    c->api.shared = c->run_mapping == EX_WANDB_SHARED;
    c->api.backoff = true;
    c->online = c->api.have_key && !c->offline;
    c->fmt.mapping = (enum ex_wandb_mapping)c->run_mapping;
    c->fmt.per_host = c->per_host;
    c->fmt.label = c->label && *c->label ? c->label : NULL;
    c->fmt.entity =
        ex_wandb_setting(c->entity, "WANDB_ENTITY", c->entity_env, sizeof(c->entity_env));
    c->fmt.project =
        ex_wandb_setting(c->project, "WANDB_PROJECT", c->project_env, sizeof(c->project_env));
    if (c->dir && *c->dir) {
        n = snprintf(c->root, sizeof(c->root), "%s", c->dir);
    }
    else {
        n = snprintf(c->root, sizeof(c->root), "%s/%s", state_dir ? state_dir : ".",
                     c->online ? "wandb" : "wandb-offline");
    }
    if (n < 0 || (size_t)n >= sizeof(c->root)) {
        rc = GV_E2BIG;
        goto out;
    }
    rc = gv_mkdir_p(c->root, 0700);
    if (rc) {
        gv_log(GV_LOG_ERROR, MOD, "cannot create the run store", "dir=%s", c->root);
        goto out;
    }
    ex_wandb_session_init(&c->sess, &c->api, c->root);
    c->sess.dashboards = c->dashboards;
    c->sess.upload_interval_us =
        (uint64_t)(c->upload_interval_ms > 0 ? c->upload_interval_ms : 0) * 1000u;
    c->sess.heartbeat_us = (uint64_t)(c->heartbeat_ms > 0 ? c->heartbeat_ms : 30000) * 1000u;
    c->started = true;
    if (c->online) {
        gv_log(GV_LOG_INFO, MOD, "exporting to W&B", "inst=%s base_url=%s store=%s mapping=%s",
               ex->name ? ex->name : "wandb", c->api.base_url, c->root,
               mappings[c->run_mapping == EX_WANDB_SHARED]);
    }
    else {
        gv_log(GV_LOG_INFO, MOD,
               c->offline ? "offline mode: W&B runs are written locally"
                          : "no W&B credentials (WANDB_API_KEY or netrc): W&B runs are written "
                            "locally",
               "inst=%s dir=%s upload_with=\"kt wandb sync %s\"", ex->name ? ex->name : "wandb",
               c->root, c->root);
    }
out:
    if (rc) {
        ex_wandb_api_free(&c->api);
    }
    return rc;
}

static gv_rc wandb_format(struct ex_exporter *ex, const struct ex_batch *batch, struct gv_buf *out)
{
    struct ex_wandb_ctx *c = ex->ctx;
    return ex_wandb_fmt_batch(&c->fmt, batch, out);
}

/* Shared mode: W&B tells writers apart by client id; a stable one per label
 * keeps our line offsets ours across restarts. */
static void stable_client_id(struct ex_wandb_api *api, const char *label)
{
    uint8_t md[GV_SHA256_LEN];
    char in[256];

    snprintf(in, sizeof(in), "kt-agent:%s", label);
    (void)gv_sha256(in, strlen(in), md);
    gv_hex_encode(md, 16, api->client_id);
}

static enum ex_flush wandb_flush(struct ex_exporter *ex, const struct gv_buf *payload)
{
    struct ex_wandb_ctx *c = ex->ctx;
    struct json_tokener *tok = NULL;
    struct json_object *doc = NULL;
    struct json_object *runs, *v;
    enum ex_flush res = EX_FLUSH_OK;
    uint64_t seq, now_us, mono;
    bool shared;
    char dir[1024];
    size_t i;
    gv_rc rc;

    if (!c->started || !payload->data || payload->len == 0 || payload->len > INT32_MAX) {
        return EX_FLUSH_DROP;
    }
    tok = json_tokener_new();
    doc = json_tokener_parse_ex(tok, payload->data, (int)payload->len);
    if (!doc || !json_object_object_get_ex(doc, "kt_wandb", &v) || json_object_get_int(v) != 1 ||
        !json_object_object_get_ex(doc, "runs", &runs) ||
        !json_object_is_type(runs, json_type_array)) {
        gv_log(GV_LOG_ERROR, MOD, "payload is not a kt W&B batch; dropped", "inst=%s bytes=%zu",
               ex->name ? ex->name : "wandb", payload->len);
        res = EX_FLUSH_DROP;
        goto out;
    }
    seq = json_object_object_get_ex(doc, "seq", &v) ? json_object_get_uint64(v) : 0;
    now_us = json_object_object_get_ex(doc, "now_us", &v) ? json_object_get_uint64(v) : 0;
    shared = json_object_object_get_ex(doc, "shared", &v) && json_object_get_boolean(v);
    if (shared && json_object_object_get_ex(doc, "label", &v)) {
        stable_client_id(&c->api, json_object_get_string(v));
    }
    /* Rows land on disk first: whatever happens to W&B or to this process,
     * they are there for the next try or for `kt wandb sync`. */
    for (i = 0; i < json_object_array_length(runs); i++) {
        rc = ex_wandb_store_append(c->root, json_object_array_get_idx(runs, i), seq, now_us, shared,
                                   dir, sizeof(dir));
        if (rc) {
            gv_log(GV_LOG_ERROR, MOD, "cannot store W&B rows; will retry", "inst=%s dir=%s rc=%s",
                   ex->name ? ex->name : "wandb", c->root, gv_rc_str(rc));
            res = EX_FLUSH_RETRY;
            goto out;
        }
        if (c->online) {
            /* Registers the run with the session; uploads unless rate-limited. */
            mono = gv_mono_us();
            if (ex_wandb_sync_dir(&c->sess, dir, mono, false) == EX_WANDB_SYNC_RETRY) {
                res = EX_FLUSH_RETRY;
            }
        }
    }
    if (c->online && ex_wandb_sync_seen(&c->sess, gv_mono_us()) == EX_WANDB_SYNC_RETRY) {
        res = EX_FLUSH_RETRY;
    }
out:
    json_object_put(doc);
    if (tok) {
        json_tokener_free(tok);
    }
    return res;
}

static void wandb_destroy(struct ex_exporter *ex)
{
    struct ex_wandb_ctx *c = ex->ctx;

    if (!c || !c->started) {
        return;
    }
    /* Last chance for rows still waiting on the rate limit. */
    if (c->online) {
        (void)ex_wandb_sync_seen(&c->sess, gv_mono_us() + c->sess.upload_interval_us + 1);
    }
    ex_wandb_session_free(&c->sess);
    ex_wandb_api_free(&c->api);
    c->started = false;
}

const struct ex_exporter_ops ex_wandb = {
    .name = "wandb",
    .config_map = wandb_config,
    .ctx_size = sizeof(struct ex_wandb_ctx),
    .init = wandb_init,
    .format = wandb_format,
    .flush = wandb_flush,
    .destroy = wandb_destroy,
};
