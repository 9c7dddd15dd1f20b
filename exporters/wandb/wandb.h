/* exporters/wandb/wandb.h - W&B exporter: ops object, run store, API client, sync */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef EX_WANDB_H
#define EX_WANDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "core/gv_buf.h"
#include "core/gv_rc.h"
#include "exporters/ex_exporter.h"
#include "exporters/ex_wandb_api.h"

/* The ops object the agent instantiates:
 *   ex->ops = &ex_wandb; ex->ctx = gv_calloc(1, ex_wandb.ctx_size); ex->name = "wandb.0";
 *   gv_cfg_apply(ex_wandb.config_map, path, wandb_yaml_mapping_or_NULL, ex->ctx, &err);
 *   ex_wandb.init(ex, state_dir);
 *   per flush: format(ex, batch, &buf) then flush(ex, &buf) until OK or DROP;
 *   ex_wandb.destroy(ex); gv_cfg_release(ex_wandb.config_map, ex->ctx); gv_free(ex->ctx).
 * init never fails for missing credentials: it falls back to offline mode. */
extern const struct ex_exporter_ops ex_wandb;

enum ex_wandb_mapping { EX_WANDB_COMPANION = 0, EX_WANDB_SHARED };

/* ---- pure formatting (exporters/wandb/wandb_fmt.c) ---- */

struct ex_wandb_fmt_opts {
    enum ex_wandb_mapping mapping;
    bool per_host;
    const char *label;   /* agent label; batch->agent_label when NULL */
    const char *entity;  /* default entity ("" = the Viewer's) */
    const char *project; /* default project */
};

/* The W&B run id kt writes for an experiment run: "<id>-gov" (companion),
 * "<id>-gov-<label>" (companion, per_host), "<id>" (shared). Characters W&B
 * reserves (:;,#?/' and whitespace) become '-'. GV_E2BIG if it does not fit. */
gv_rc ex_wandb_run_name(const struct ex_wandb_fmt_opts *o, const char *exp_run, const char *label,
                        char *out, size_t size);
/* One history row (no _step: the store assigns it) as a new json object. */
struct json_object *ex_wandb_fmt_row(const struct ex_run_snapshot *s, uint64_t now_wall_us);
/* The run's config in W&B's {"key":{"value":v}} form, _wandb included. */
struct json_object *ex_wandb_fmt_config(const struct ex_run_snapshot *s, const char *label);
/* The payload the agent keeps and hands to flush: a JSON document
 * {"kt_wandb":1,"seq","now_us","label","shared","runs":[{run,exp_run,entity,project,group,
 *  name,job_type,config,row,final}]}. Deterministic for equal inputs. */
gv_rc ex_wandb_fmt_batch(const struct ex_wandb_fmt_opts *o, const struct ex_batch *b,
                         struct gv_buf *out);

/* ---- durable run store (exporters/wandb/wandb_store.c) ----
 * <root>/<entity or "_">/<project>/<run>/ holds run.json (identity + config),
 * history.jsonl (one row per line, line i is W&B offset base+i), summary.json,
 * state.json (append state) and sync.json (upload state). Every file is
 * replaced atomically (write + fsync + rename) except history.jsonl, which is
 * appended and cut back to state.json's line count when a crash left more. */
struct ex_wandb_run {
    char dir[1024];
    struct json_object *meta; /* run.json, owned */
    uint64_t base, lines, next_step, last_seq, last_now_us;
    bool final;
    uint64_t synced, synced_bytes; /* lines (from base) W&B has acknowledged */
    char storage_id[256];
    char entity_c[GV_RUN_TAG_MAX + 1], project_c[GV_RUN_TAG_MAX + 1];
    bool complete_sent;
    char parked[256];     /* why uploads stopped; empty when not parked */
    char config_sent[65]; /* sha256 hex of the config last upserted */
};

/* Append one payload run entry: dedupes a retried payload (same seq and time,
 * or older), assigns _step, rewrites summary and run.json. *dir_out gets the
 * run directory. GV_EIO on file errors. */
gv_rc ex_wandb_store_append(const char *root, struct json_object *entry, uint64_t seq,
                            uint64_t now_us, bool shared, char *dir_out, size_t dir_size);
/* Load a run directory. GV_ENOTFOUND when it has no run.json. Free with
 * ex_wandb_store_close. */
gv_rc ex_wandb_store_open(const char *dir, struct ex_wandb_run *run);
void ex_wandb_store_close(struct ex_wandb_run *run);
gv_rc ex_wandb_store_save_sync(struct ex_wandb_run *run);
gv_rc ex_wandb_store_save_state(struct ex_wandb_run *run);
/* Read history lines [from, run->lines) (indexes from base) into arr as
 * strings, stopping before max_bytes. *n and *end_bytes say how far it got;
 * start_bytes is the byte offset of line `from` (0 to scan from the top). */
gv_rc ex_wandb_store_read_lines(struct ex_wandb_run *run, uint64_t from, uint64_t start_bytes,
                                size_t max_bytes, struct json_object *arr, uint64_t *n,
                                uint64_t *end_bytes);
/* The byte offset where line `idx` starts. */
gv_rc ex_wandb_store_line_offset(struct ex_wandb_run *run, uint64_t idx, uint64_t *bytes);
/* Read summary.json's single line (caller frees); NULL when absent. */
char *ex_wandb_store_summary(struct ex_wandb_run *run);
/* Call fn for every run directory under root (entity/project/run). */
gv_rc ex_wandb_store_walk(const char *root, gv_rc (*fn)(const char *dir, void *arg), void *arg);
/* Atomically replace path with the bytes. */
gv_rc ex_wandb_write_file(const char *path, const char *data, size_t len);
/* File-system-safe name: bytes outside [A-Za-z0-9._-] and a leading '.' become '_'. */
void ex_wandb_safe_name(const char *in, char *out, size_t size);

/* ---- upload (exporters/wandb/wandb_sync.c) ---- */

struct ex_wandb_dash;

/* Per-process upload memory: which runs were resumed/upserted this session,
 * when each last posted, which projects have dashboards. */
struct ex_wandb_session {
    struct ex_wandb_api *api;
    const char *root;               /* store root, views.json lives here */
    bool dashboards;                /* push the workspace + report per project */
    uint64_t upload_interval_us;    /* per run, at most one post per interval */
    uint64_t heartbeat_us;          /* {} when a run posted nothing this long */
    struct ex_wandb_seen *seen;     /* runs touched this session */
    struct ex_wandb_proj *projects; /* projects whose dashboards were pushed */
};

enum ex_wandb_sync {
    EX_WANDB_SYNC_DONE = 0, /* nothing left to send (or sent all of it) */
    EX_WANDB_SYNC_LATER,    /* rate limit: pending lines wait for the interval */
    EX_WANDB_SYNC_RETRY,    /* W&B or the network failed; the same body goes next time */
    EX_WANDB_SYNC_PARKED    /* W&B refused; data kept on disk for kt wandb sync */
};

void ex_wandb_session_init(struct ex_wandb_session *s, struct ex_wandb_api *api, const char *root);
void ex_wandb_session_free(struct ex_wandb_session *s);
/* Upload what a run directory holds beyond what W&B acknowledged: resume
 * status, UpsertBucket, dashboards for its project, then file_stream in
 * requests of at most EX_WANDB_REQ_MAX bytes. `now_mono_us` drives the rate
 * limit and heartbeats; force ignores the rate limit. */
enum ex_wandb_sync ex_wandb_sync_dir(struct ex_wandb_session *s, const char *dir,
                                     uint64_t now_mono_us, bool force);
/* Heartbeat/upload every run this session has seen. Returns the worst result. */
enum ex_wandb_sync ex_wandb_sync_seen(struct ex_wandb_session *s, uint64_t now_mono_us);

/* ---- the exporter instance (exporters/wandb/wandb.c) ---- */

/* ctx of an ex_wandb instance. The first block is filled by the config map
 * (strings belong to the config document); the rest is set up by init. */
struct ex_wandb_ctx {
    char *base_url;          /* else WANDB_BASE_URL, else https://api.wandb.ai */
    char *entity;            /* else WANDB_ENTITY, else the Viewer's */
    char *project;           /* else WANDB_PROJECT, else "uncategorized" */
    int run_mapping;         /* enum ex_wandb_mapping */
    bool per_host;           /* companion run id gains the agent label */
    char *label;             /* else the agent's label (host name) */
    long upload_interval_ms; /* per run, at most one file_stream post per interval */
    long heartbeat_ms;       /* {} after this long without a post */
    bool dashboards;         /* upsert the workspace + report once per project */
    bool offline;            /* never talk to W&B, even with a key */
    char *dir;               /* store root; default <state>/wandb or <state>/wandb-offline */

    struct ex_wandb_api api;
    struct ex_wandb_session sess;
    struct ex_wandb_fmt_opts fmt;
    char entity_env[GV_RUN_TAG_MAX + 1];
    char project_env[GV_RUN_TAG_MAX + 1];
    char root[1024];
    bool online;
    bool started;
};

/* ---- dashboards (exporters/wandb/wandb_dash.c) ---- */

/* The specs built into the binary (from dashboards/wandb/), names resolved:
 * a workspace view and a report for entity/project. *out owned by caller. */
gv_rc ex_wandb_dash_render(const char *entity, const char *project, const char *project_id,
                           struct json_object **workspace, struct json_object **report);
/* upsertView both specs for entity/project, creating them the first time and
 * updating the ids remembered in <root>/views.json afterwards. */
enum ex_wandb_res ex_wandb_dash_push(struct ex_wandb_api *api, const char *root, const char *entity,
                                     const char *project);

#endif
