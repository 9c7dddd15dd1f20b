/* exporters/wandb/wandb_sync.c - upload a stored run: resume, UpsertBucket, file_stream */
/* SPDX-License-Identifier: Apache-2.0 */
#include "exporters/wandb/wandb.h"

#include <stdio.h>
#include <string.h>

#include "core/gv_hash.h"
#include "core/gv_log.h"
#include "core/gv_mem.h"

#define MOD "exporter:wandb"

struct ex_wandb_seen {
    char dir[1024];
    bool resumed;
    bool upserted;
    uint64_t last_post_us; /* monotonic; 0 before the first post */
    /* A file_stream body W&B did not acknowledge, sent again as it is (rows
     * stored since wait for the next body) while `synced` is still retry_at. */
    struct gv_buf retry;
    uint64_t retry_at, retry_n, retry_end;
    bool retry_complete;
    struct ex_wandb_seen *next;
};

struct ex_wandb_proj {
    char key[2 * GV_RUN_TAG_MAX + 4];
    struct ex_wandb_proj *next;
};

void ex_wandb_session_init(struct ex_wandb_session *s, struct ex_wandb_api *api, const char *root)
{
    memset(s, 0, sizeof(*s));
    s->api = api;
    s->root = root;
    s->dashboards = true;
    s->upload_interval_us = 15u * 1000000u;
    s->heartbeat_us = 30u * 1000000u;
}

void ex_wandb_session_free(struct ex_wandb_session *s)
{
    while (s->seen) {
        struct ex_wandb_seen *n = s->seen->next;
        gv_buf_free(&s->seen->retry);
        gv_free(s->seen);
        s->seen = n;
    }
    while (s->projects) {
        struct ex_wandb_proj *n = s->projects->next;
        gv_free(s->projects);
        s->projects = n;
    }
}

static struct ex_wandb_seen *touch(struct ex_wandb_session *s, const char *dir)
{
    struct ex_wandb_seen *e;

    for (e = s->seen; e; e = e->next) {
        if (strcmp(e->dir, dir) == 0) {
            return e;
        }
    }
    e = gv_calloc(1, sizeof(*e));
    gv_buf_init(&e->retry, EX_WANDB_REQ_MAX);
    snprintf(e->dir, sizeof(e->dir), "%s", dir);
    e->next = s->seen;
    s->seen = e;
    return e;
}

static const char *meta_str(struct ex_wandb_run *run, const char *key)
{
    return ex_wandb_json_str(run->meta, key);
}

static void park(struct ex_wandb_session *s, struct ex_wandb_run *run, const char *what)
{
    snprintf(run->parked, sizeof(run->parked), "%s: HTTP %ld: %.200s", what, s->api->last_status,
             s->api->last_error);
    /* Logged once: the reason is saved, and a parked run is not tried again
     * until `kt wandb sync` clears it. A rejected key is one error for the
     * whole process, not one per run. */
    if (s->api->last_status == 401) {
        s->api->dead = true;
        gv_log(GV_LOG_ERROR, MOD, "W&B rejected the credentials; uploads stop, data stays on disk",
               "base_url=%s status=401 error=\"%s\" store=%s retry_with=\"kt wandb sync\"",
               s->api->base_url, s->api->last_error, s->root ? s->root : "");
    }
    else {
        gv_log(GV_LOG_ERROR, MOD, "W&B refused a run; its data stays on disk",
               "run=%s status=%ld error=\"%s\" dir=%s retry_with=\"kt wandb sync\"",
               meta_str(run, "run"), s->api->last_status, s->api->last_error, run->dir);
    }
    (void)ex_wandb_store_save_sync(run);
}

static const char RESUME_Q[] =
    "query RunResumeStatus($project: String, $entity: String, $name: String!) {"
    " model(name: $project, entityName: $entity) { id name entity { id name }"
    " bucket(name: $name, missingOk: true) { id name summaryMetrics displayName logLineCount"
    " historyLineCount eventsLineCount historyTail eventsTail config tags notes"
    " wandbConfig(keys: [\"t\"]) } } }";

/* After a restart the local store knows what W&B acknowledged, except when the
 * process died between a successful post and saving sync.json: W&B's line
 * count then tells how far it really got. */
static enum ex_wandb_res resume(struct ex_wandb_session *s, struct ex_wandb_run *run,
                                const char *entity)
{
    struct json_object *vars = json_object_new_object();
    struct json_object *data = NULL;
    struct json_object *model, *bucket, *v;
    enum ex_wandb_res res;
    uint64_t h;

    json_object_object_add(vars, "project", json_object_new_string(meta_str(run, "project")));
    json_object_object_add(vars, "entity", json_object_new_string(entity));
    json_object_object_add(vars, "name", json_object_new_string(meta_str(run, "run")));
    res = ex_wandb_api_graphql(s->api, "RunResumeStatus", RESUME_Q, vars, &data);
    if (res != EX_WANDB_OK) {
        goto out;
    }
    if (!json_object_object_get_ex(data, "model", &model) || !model ||
        !json_object_object_get_ex(model, "bucket", &bucket) || !bucket ||
        !json_object_object_get_ex(bucket, "historyLineCount", &v) || !v) {
        goto out; /* a new run */
    }
    h = json_object_get_uint64(v);
    if (json_object_object_get_ex(bucket, "id", &v) && json_object_is_type(v, json_type_string)) {
        snprintf(run->storage_id, sizeof(run->storage_id), "%s", json_object_get_string(v));
    }
    if (h > run->base + run->synced && h <= run->base + run->lines) {
        gv_log(GV_LOG_INFO, MOD, "resuming where W&B stopped", "run=%s lines=%llu",
               meta_str(run, "run"), (unsigned long long)h);
        run->synced = h - run->base;
        if (ex_wandb_store_line_offset(run, run->synced, &run->synced_bytes)) {
            run->synced_bytes = 0;
        }
    }
    else if (h > run->base + run->lines) {
        /* W&B holds lines this store never wrote (its state dir was lost):
         * ours would overwrite them, so stop and let an operator decide. */
        snprintf(s->api->last_error, sizeof(s->api->last_error),
                 "W&B has %llu history lines, the local store only %llu", (unsigned long long)h,
                 (unsigned long long)(run->base + run->lines));
        s->api->last_status = 409;
        res = EX_WANDB_FATAL;
    }
out:
    json_object_put(data);
    json_object_put(vars);
    return res;
}

static const char UPSERT_Q[] =
    "mutation UpsertBucket($id: String, $name: String, $project: String, $entity: String,"
    " $groupName: String, $description: String, $displayName: String, $notes: String,"
    " $commit: String, $config: JSONString, $host: String, $debug: Boolean, $program: String,"
    " $repo: String, $jobType: String, $state: String, $sweep: String, $tags: [String!],"
    " $summaryMetrics: JSONString) { upsertBucket(input: { id: $id, name: $name,"
    " groupName: $groupName, modelName: $project, entityName: $entity,"
    " description: $description, displayName: $displayName, notes: $notes, config: $config,"
    " commit: $commit, host: $host, debug: $debug, jobProgram: $program, jobRepo: $repo,"
    " jobType: $jobType, state: $state, sweep: $sweep, tags: $tags,"
    " summaryMetrics: $summaryMetrics }) { bucket { id name displayName description config"
    " sweepName project { id name entity { id name } } historyLineCount } inserted } }";

static struct json_object *str_or_null(const char *s)
{
    return s && *s ? json_object_new_string(s) : NULL;
}

static enum ex_wandb_res upsert(struct ex_wandb_session *s, struct ex_wandb_run *run,
                                const char *entity, const char *cfg_hash, const char *cfg_str)
{
    struct json_object *vars = json_object_new_object();
    struct json_object *data = NULL;
    struct json_object *tags = json_object_new_array();
    struct json_object *bucket, *v, *proj, *ent;
    bool shared = false;
    enum ex_wandb_res res;

    if (json_object_object_get_ex(run->meta, "shared", &v)) {
        shared = json_object_get_boolean(v);
    }
    json_object_array_add(tags, json_object_new_string("kt"));
    json_object_array_add(tags, json_object_new_string("governance"));
    /* Every declared variable, unset ones as null, as the Go client sends them.
     * In shared mode the run belongs to the experiment: only name the run, so
     * its config, group and display name are left alone. */
    json_object_object_add(vars, "id", str_or_null(run->storage_id));
    json_object_object_add(vars, "name", json_object_new_string(meta_str(run, "run")));
    json_object_object_add(vars, "project", json_object_new_string(meta_str(run, "project")));
    json_object_object_add(vars, "entity", json_object_new_string(entity));
    json_object_object_add(vars, "groupName", shared ? NULL : str_or_null(meta_str(run, "group")));
    json_object_object_add(vars, "description", NULL);
    json_object_object_add(vars, "displayName", shared ? NULL : str_or_null(meta_str(run, "name")));
    json_object_object_add(vars, "notes", NULL);
    json_object_object_add(vars, "commit", NULL);
    json_object_object_add(vars, "config", shared ? NULL : json_object_new_string(cfg_str));
    json_object_object_add(vars, "host", str_or_null(meta_str(run, "label")));
    json_object_object_add(vars, "debug", NULL);
    json_object_object_add(vars, "program", shared ? NULL : json_object_new_string("kt-agent"));
    json_object_object_add(vars, "repo", NULL);
    json_object_object_add(vars, "jobType", shared ? NULL : str_or_null(meta_str(run, "job_type")));
    json_object_object_add(vars, "state", NULL);
    json_object_object_add(vars, "sweep", NULL);
    if (shared) {
        json_object_put(tags);
        tags = NULL;
    }
    json_object_object_add(vars, "tags", tags);
    json_object_object_add(vars, "summaryMetrics", NULL);
    res = ex_wandb_api_graphql(s->api, "UpsertBucket", UPSERT_Q, vars, &data);
    if (res == EX_WANDB_FATAL && s->api->last_status == 409) {
        res = EX_WANDB_RETRY; /* shared-mode race: the Go client retries these */
    }
    if (res != EX_WANDB_OK) {
        goto out;
    }
    if (json_object_object_get_ex(data, "upsertBucket", &v) && v &&
        json_object_object_get_ex(v, "bucket", &bucket) && bucket) {
        if (json_object_object_get_ex(bucket, "id", &v) &&
            json_object_is_type(v, json_type_string)) {
            snprintf(run->storage_id, sizeof(run->storage_id), "%s", json_object_get_string(v));
        }
        /* The canonical names W&B answers with build the file_stream URL. */
        if (json_object_object_get_ex(bucket, "project", &proj) && proj) {
            if (json_object_object_get_ex(proj, "name", &v) &&
                json_object_is_type(v, json_type_string)) {
                snprintf(run->project_c, sizeof(run->project_c), "%s", json_object_get_string(v));
            }
            if (json_object_object_get_ex(proj, "entity", &ent) && ent &&
                json_object_object_get_ex(ent, "name", &v) &&
                json_object_is_type(v, json_type_string)) {
                snprintf(run->entity_c, sizeof(run->entity_c), "%s", json_object_get_string(v));
            }
        }
    }
    if (!run->project_c[0]) {
        snprintf(run->project_c, sizeof(run->project_c), "%s", meta_str(run, "project"));
    }
    if (!run->entity_c[0]) {
        snprintf(run->entity_c, sizeof(run->entity_c), "%s", entity);
    }
    snprintf(run->config_sent, sizeof(run->config_sent), "%s", cfg_hash);
    (void)ex_wandb_store_save_sync(run);
out:
    json_object_put(data);
    json_object_put(vars);
    return res;
}

static void dashboards(struct ex_wandb_session *s, const char *entity, const char *project)
{
    struct ex_wandb_proj *p;
    char key[sizeof(p->key)];
    enum ex_wandb_res res;

    snprintf(key, sizeof(key), "%s/%s", entity, project);
    for (p = s->projects; p; p = p->next) {
        if (strcmp(p->key, key) == 0) {
            return;
        }
    }
    res = ex_wandb_dash_push(s->api, s->root, entity, project);
    if (res == EX_WANDB_RETRY) {
        return; /* try again with the next upload */
    }
    if (res == EX_WANDB_FATAL) {
        gv_log(GV_LOG_WARN, MOD, "W&B refused the dashboards; metrics still flow",
               "project=%s/%s status=%ld error=\"%s\"", entity, project, s->api->last_status,
               s->api->last_error);
    }
    p = gv_calloc(1, sizeof(*p));
    snprintf(p->key, sizeof(p->key), "%s", key);
    p->next = s->projects;
    s->projects = p;
}

/* One file_stream body: contiguous history lines from `synced`, the full
 * summary at line 0, and complete/exitcode only once every line is in. */
static gv_rc build_body(struct ex_wandb_run *run, bool shared, struct gv_buf *body, uint64_t *n,
                        uint64_t *end_bytes, bool *complete)
{
    struct json_object *doc = json_object_new_object();
    struct json_object *files = json_object_new_object();
    struct json_object *arr = json_object_new_array();
    struct json_object *f;
    char *summary = NULL;
    gv_rc rc;

    *complete = false;
    rc = ex_wandb_store_read_lines(run, run->synced, run->synced_bytes, EX_WANDB_REQ_MAX / 2, arr,
                                   n, end_bytes);
    if (rc) {
        goto out;
    }
    if (*n > 0) {
        f = json_object_new_object();
        json_object_object_add(f, "offset", json_object_new_uint64(run->base + run->synced));
        json_object_object_add(f, "content", arr);
        arr = NULL;
        json_object_object_add(files, "wandb-history.jsonl", f);
        /* In shared mode the summary belongs to the experiment's own writer. */
        summary = shared ? NULL : ex_wandb_store_summary(run);
        if (summary) {
            struct json_object *c = json_object_new_array();
            json_object_array_add(c, json_object_new_string(summary));
            f = json_object_new_object();
            json_object_object_add(f, "offset", json_object_new_int(0));
            json_object_object_add(f, "content", c);
            json_object_object_add(files, "wandb-summary.json", f);
        }
    }
    if (json_object_object_length(files) > 0) {
        json_object_object_add(doc, "files", files);
        files = NULL;
    }
    if (run->final && !shared && run->synced + *n == run->lines) {
        json_object_object_add(doc, "complete", json_object_new_boolean(1));
        json_object_object_add(doc, "exitcode", json_object_new_int(0));
        *complete = true;
    }
    rc = ex_wandb_json_append(body, doc);
out:
    gv_free(summary);
    json_object_put(arr);
    json_object_put(files);
    json_object_put(doc);
    return rc;
}

/* A run's setup call (resume, upsert) that did not succeed: FATAL parks the run naming the
 * call, RETRY tries the run again later; either way *out says so and this returns true. */
static bool setup_failed(struct ex_wandb_session *s, struct ex_wandb_run *run,
                         enum ex_wandb_res res, const char *call, enum ex_wandb_sync *out)
{
    if (res == EX_WANDB_FATAL) {
        park(s, run, call);
        *out = EX_WANDB_SYNC_PARKED;
        return true;
    }
    if (res == EX_WANDB_RETRY) {
        *out = EX_WANDB_SYNC_RETRY;
        return true;
    }
    return false;
}

enum ex_wandb_sync ex_wandb_sync_dir(struct ex_wandb_session *s, const char *dir,
                                     uint64_t now_mono_us, bool force)
{
    struct ex_wandb_run run;
    struct ex_wandb_seen *seen = touch(s, dir);
    struct json_object *cfg;
    struct gv_buf body;
    const char *entity;
    const char *cfg_str = "{}";
    char cfg_hash[65];
    enum ex_wandb_sync out = EX_WANDB_SYNC_DONE;
    enum ex_wandb_res res;
    bool shared = false;
    bool complete;
    bool need_complete;
    uint64_t n, end;
    struct json_object *v;

    gv_buf_init(&body, EX_WANDB_REQ_MAX);
    if (ex_wandb_store_open(dir, &run) != GV_OK) {
        gv_log(GV_LOG_WARN, MOD, "unreadable run directory skipped", "dir=%s", dir);
        gv_buf_free(&body);
        return EX_WANDB_SYNC_DONE;
    }
    if (run.parked[0] || s->api->dead) {
        out = EX_WANDB_SYNC_PARKED;
        goto done;
    }
    if (json_object_object_get_ex(run.meta, "shared", &v)) {
        shared = json_object_get_boolean(v);
    }
    need_complete = run.final && !run.complete_sent && !shared;
    if (run.synced >= run.lines && !need_complete) {
        /* Idle: the Go client's heartbeat is an empty {} after 30 s of silence. */
        if (seen->upserted && !run.final && now_mono_us - seen->last_post_us >= s->heartbeat_us) {
            gv_buf_append_str(&body, "{}");
            res = ex_wandb_api_file_stream(s->api, run.entity_c, run.project_c,
                                           meta_str(&run, "run"), &body);
            if (res == EX_WANDB_OK) {
                seen->last_post_us = now_mono_us;
            }
        }
        goto done;
    }
    if (!force && !need_complete && seen->last_post_us &&
        now_mono_us - seen->last_post_us < s->upload_interval_us) {
        out = EX_WANDB_SYNC_LATER;
        goto done;
    }
    entity = meta_str(&run, "entity");
    if (!*entity) {
        res = ex_wandb_api_viewer(s->api);
        if (res != EX_WANDB_OK) {
            out = res == EX_WANDB_RETRY ? EX_WANDB_SYNC_RETRY : EX_WANDB_SYNC_PARKED;
            goto done;
        }
        entity = s->api->viewer_entity;
    }
    if (!seen->resumed && !shared) {
        if (setup_failed(s, &run, resume(s, &run, entity), "RunResumeStatus", &out)) {
            goto done;
        }
        seen->resumed = true;
    }
    if (json_object_object_get_ex(run.meta, "config", &cfg)) {
        cfg_str = json_object_to_json_string_ext(cfg, JSON_C_TO_STRING_PLAIN |
                                                          JSON_C_TO_STRING_NOSLASHESCAPE);
    }
    (void)gv_sha256_hex(cfg_str, strlen(cfg_str), cfg_hash);
    if (!seen->upserted || strcmp(cfg_hash, run.config_sent) != 0) {
        if (setup_failed(s, &run, upsert(s, &run, entity, cfg_hash, cfg_str), "UpsertBucket",
                         &out)) {
            goto done;
        }
        seen->upserted = true;
    }
    if (s->dashboards) {
        dashboards(s, run.entity_c, run.project_c);
    }
    do {
        const struct gv_buf *send = &body;

        gv_buf_reset(&body);
        if (seen->retry.len > 0 && seen->retry_at == run.synced) {
            /* The same body again, even if rows were stored since: W&B may
             * have applied the first one, and only identical bytes at the
             * same offsets are sure to be a no-op there. */
            send = &seen->retry;
            n = seen->retry_n;
            end = seen->retry_end;
            complete = seen->retry_complete;
        }
        else {
            gv_buf_reset(&seen->retry);
            if (build_body(&run, shared, &body, &n, &end, &complete) != GV_OK) {
                gv_log(GV_LOG_ERROR, MOD, "cannot read the run's history", "dir=%s", dir);
                out = EX_WANDB_SYNC_RETRY;
                goto done;
            }
        }
        res = ex_wandb_api_file_stream(s->api, run.entity_c, run.project_c, meta_str(&run, "run"),
                                       send);
        if (res != EX_WANDB_RETRY) {
            gv_buf_reset(&seen->retry);
        }
        else if (send == &body) {
            if (gv_buf_append(&seen->retry, body.data, body.len) == GV_OK) {
                seen->retry_at = run.synced;
                seen->retry_n = n;
                seen->retry_end = end;
                seen->retry_complete = complete;
            }
            else {
                gv_buf_reset(&seen->retry);
            }
        }
        if (res == EX_WANDB_FATAL) {
            park(s, &run, "file_stream");
            out = EX_WANDB_SYNC_PARKED;
            goto done;
        }
        if (res == EX_WANDB_RETRY) {
            gv_log(GV_LOG_WARN, MOD, "W&B upload failed; will retry with the same body",
                   "run=%s status=%ld error=\"%s\" retry_after_ms=%llu", meta_str(&run, "run"),
                   s->api->last_status, s->api->last_error,
                   (unsigned long long)s->api->retry_after_ms);
            out = EX_WANDB_SYNC_RETRY;
            goto done;
        }
        run.synced += n;
        run.synced_bytes = end;
        if (complete) {
            run.complete_sent = true;
        }
        seen->last_post_us = now_mono_us;
        if (ex_wandb_store_save_sync(&run) != GV_OK) {
            gv_log(GV_LOG_ERROR, MOD, "cannot save upload state", "dir=%s", dir);
            out = EX_WANDB_SYNC_RETRY;
            goto done;
        }
    } while (run.synced < run.lines || (run.final && !shared && !run.complete_sent));
done:
    ex_wandb_store_close(&run);
    gv_buf_free(&body);
    return out;
}

enum ex_wandb_sync ex_wandb_sync_seen(struct ex_wandb_session *s, uint64_t now_mono_us)
{
    struct ex_wandb_seen *e;
    enum ex_wandb_sync worst = EX_WANDB_SYNC_DONE;
    enum ex_wandb_sync r;

    for (e = s->seen; e; e = e->next) {
        r = ex_wandb_sync_dir(s, e->dir, now_mono_us, false);
        if (r == EX_WANDB_SYNC_RETRY) {
            worst = r;
        }
        else if (r == EX_WANDB_SYNC_LATER && worst == EX_WANDB_SYNC_DONE) {
            worst = r;
        }
    }
    return worst;
}
