/* agent/ag_export.c - the agent's exporters: configuration, the export thread, retries */
/* SPDX-License-Identifier: Apache-2.0 */
#include "agent/ag_internal.h"

/* ---- exporters ----------------------------------------------------------------------- */

/* Exporters run on their own thread: a slow W&B upload or a retry backoff never
 * delays ingest or acknowledgements. The event loop only hands over batches. */
struct ag_job {
    struct ex_batch batch;
    struct ex_run_snapshot *snaps;
    struct ex_agent_stats st;
};

static void exp_queue_push(struct ag_agent *ag, struct ag_exp *x, struct gv_buf *payload)
{
    if (x->nqueue == EXP_QUEUE_MAX) {
        /* The oldest payload goes: counts in later ones are cumulative anyway. */
        gv_buf_free(&x->queue[0]);
        memmove(&x->queue[0], &x->queue[1], (EXP_QUEUE_MAX - 1) * sizeof(x->queue[0]));
        x->nqueue--;
        x->dropped_payloads++;
        atomic_fetch_add(&ag->exporter_drops, 1);
        gv_log(GV_LOG_WARN, MOD, "exporter queue full, oldest payload dropped", "exporter=%s",
               x->ex.name);
    }
    x->queue[x->nqueue++] = *payload;
    gv_buf_init(payload, 0);
}

/* Sends what is queued, oldest first, stopping at the first RETRY. */
static void exp_drain(struct ag_agent *ag, struct ag_exp *x, bool force)
{
    uint64_t now = gv_mono_us();

    if (!force && now < x->next_try_us) {
        return;
    }
    while (x->nqueue > 0) {
        enum ex_flush r = x->ex.ops->flush(&x->ex, &x->queue[0]);
        if (r == EX_FLUSH_RETRY) {
            atomic_fetch_add(&ag->exporter_retries, 1);
            x->backoff_ms = x->backoff_ms ? x->backoff_ms * 2 : BACKOFF_MIN_MS;
            if (x->backoff_ms > BACKOFF_MAX_MS) {
                x->backoff_ms = BACKOFF_MAX_MS;
            }
            x->next_try_us = now + x->backoff_ms * 1000;
            gv_log(GV_LOG_WARN, MOD, "exporter flush failed, will retry",
                   "exporter=%s "
                   "backoff_ms=%llu queued=%zu",
                   x->ex.name, (unsigned long long)x->backoff_ms, x->nqueue);
            return;
        }
        if (r == EX_FLUSH_DROP) {
            atomic_fetch_add(&ag->exporter_drops, 1);
            gv_log(GV_LOG_WARN, MOD, "exporter dropped a payload", "exporter=%s", x->ex.name);
        }
        x->backoff_ms = 0;
        gv_buf_free(&x->queue[0]);
        memmove(&x->queue[0], &x->queue[1], (x->nqueue - 1) * sizeof(x->queue[0]));
        x->nqueue--;
    }
}

static void job_free(struct ag_job *j)
{
    if (j) {
        gv_free(j->snaps);
        gv_free(j);
    }
}

static void job_run(struct ag_agent *ag, struct ag_job *j)
{
    size_t i;

    for (i = 0; i < ag->nexps; i++) {
        struct ag_exp *x = &ag->exps[i];
        struct gv_buf payload;
        gv_rc rc;

        if (x->ex.ops->agent_stats) {
            x->ex.ops->agent_stats(&x->ex, &j->st);
        }

        /* An empty batch still goes to every exporter: Prometheus shows the
         * agent counters, W&B sends rows held back by its upload interval and
         * heartbeats for live runs, which it can only do when flush is called.
         * A payload already waiting does that job, and an empty one must never
         * push a real one out of the queue. */
        if (j->batch.nruns == 0 && !x->ex.ops->agent_stats && x->nqueue > 0) {
            continue;
        }
        gv_buf_init(&payload, 0);
        rc = x->ex.ops->format(&x->ex, &j->batch, &payload);
        if (rc) {
            gv_log(GV_LOG_ERROR, MOD, "exporter format failed", "exporter=%s rc=%s", x->ex.name,
                   gv_rc_str(rc));
            atomic_fetch_add(&ag->exporter_drops, 1);
            gv_buf_free(&payload);
            continue;
        }
        exp_queue_push(ag, x, &payload);
    }
}

static void *exp_thread_main(void *arg)
{
    struct ag_agent *ag = arg;
    size_t i;

    for (;;) {
        struct ag_job *j = NULL;
        bool stopping;
        struct timespec ts;

        pthread_mutex_lock(&ag->jlock);
        if (ag->njobs == 0 && !ag->jstop) {
            gv_time_deadline(CLOCK_REALTIME, 200000u, &ts);
            pthread_cond_timedwait(&ag->jcond, &ag->jlock, &ts);
        }
        if (ag->njobs > 0) {
            j = ag->jobs[0];
            memmove(&ag->jobs[0], &ag->jobs[1], (ag->njobs - 1) * sizeof(ag->jobs[0]));
            ag->njobs--;
        }
        stopping = ag->jstop && ag->njobs == 0 && !j;
        pthread_mutex_unlock(&ag->jlock);
        if (j) {
            job_run(ag, j);
            job_free(j);
        }
        for (i = 0; i < ag->nexps; i++) {
            exp_drain(ag, &ag->exps[i], stopping);
        }
        if (stopping) {
            break;
        }
    }
    return NULL;
}

void ag_jobs_stop(struct ag_agent *ag)
{
    if (!ag->jthread_started) {
        return;
    }
    pthread_mutex_lock(&ag->jlock);
    ag->jstop = true;
    pthread_cond_signal(&ag->jcond);
    pthread_mutex_unlock(&ag->jlock);
    pthread_join(ag->jthread, NULL);
    ag->jthread_started = false;
}

void ag_flush_now(struct ag_agent *ag, bool final)
{
    struct ag_job *j = gv_calloc(1, sizeof(*j));

    if (ag->audit_head_seq != ag->audit_head_logged) {
        /* Off the machine with the log shipper: a value to check the audit
         * log against later (kt events verify --expect-head SEQ:HASH). */
        gv_log(GV_LOG_INFO, MOD, "audit chain head", "seq=%llu hash=%s",
               (unsigned long long)ag->audit_head_seq, ag->audit_head_hash);
        ag->audit_head_logged = ag->audit_head_seq;
    }
    j->batch.nruns = ag_runs_collect(ag->runs, gv_wall_us(), &j->snaps);
    j->batch.runs = j->snaps;
    j->batch.seq = ++ag->flush_seq;
    j->batch.now_wall_us = gv_wall_us();
    j->batch.agent_label = ag->label;
    j->st.events = atomic_load(&ag->events);
    j->st.duplicates = ag->duplicates;
    j->st.bad_frames = ag->bad_frames;
    j->st.connections = ag->connections;
    j->st.flushes = ag->flushes + 1;
    j->st.exporter_retries = atomic_load(&ag->exporter_retries);
    j->st.exporter_drops = atomic_load(&ag->exporter_drops);
    j->st.active_runs = ag_runs_count(ag->runs);
    j->st.journal_bytes = ag->journal_bytes;
    j->st.nexporters = ag_exporters_stats(ag, j->st.exporters, EX_EXPORTERS_MAX);
    if (ag->nexps == 0) {
        job_free(j);
    }
    else {
        pthread_mutex_lock(&ag->jlock);
        if (ag->njobs == AG_JOBS_MAX) {
            /* Exporters are this far behind: the oldest batch goes (its
             * counts are in the next ones; its interval histogram is lost). */
            job_free(ag->jobs[0]);
            memmove(&ag->jobs[0], &ag->jobs[1], (AG_JOBS_MAX - 1) * sizeof(ag->jobs[0]));
            ag->njobs--;
            atomic_fetch_add(&ag->exporter_drops, 1);
        }
        ag->jobs[ag->njobs++] = j;
        pthread_cond_signal(&ag->jcond);
        pthread_mutex_unlock(&ag->jlock);
    }
    ag->flushes++;
    (void)ag_state_save(ag);
    (void) final;
}

void ag_on_flush(evutil_socket_t fd, short what, void *arg)
{
    ag_flush_now(arg, false);
}

/* Is name in the comma-separated list? NULL or "all" means every exporter. */
static bool selected(const char *list, const char *name)
{
    size_t n = strlen(name);
    const char *p = list;

    if (!list || strcmp(list, "all") == 0) {
        return true;
    }
    while (p && *p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0) {
            return true;
        }
        p = comma ? comma + 1 : NULL;
    }
    return false;
}

/* The `exporters:` mapping of the --config file (NULL when absent). Unknown
 * top-level keys and exporter names are configuration errors with a position. */
static gv_rc config_exporters(struct ag_agent *ag, const struct ex_exporter_ops *const *all,
                              const struct gv_ynode **out, struct gv_cfg_err *err)
{
    const struct gv_ynode *root, *ex;
    size_t i, k;
    gv_rc rc;

    *out = NULL;
    if (!ag->opts.config_path) {
        return GV_OK;
    }
    rc = gv_ydoc_load_file(ag->opts.config_path, &ag->cfg_doc, err);
    if (rc) {
        return rc;
    }
    root = ag->cfg_doc->root;
    if (!root) {
        return GV_OK;
    }
    if (root->kind != GV_Y_MAP) {
        return gv_cfg_fail(err, ag->opts.config_path, root, "expected a mapping, found a %s",
                           gv_ynode_kind_str(root->kind));
    }
    for (i = 0; i < root->n; i++) {
        if (strcmp(root->keys[i]->scalar, "exporters") != 0) {
            return gv_cfg_fail(err, ag->opts.config_path, root->keys[i],
                               "unknown key '%s' (known: exporters)", root->keys[i]->scalar);
        }
    }
    ex = gv_ynode_get(root, "exporters");
    if (!ex) {
        return GV_OK;
    }
    if (ex->kind != GV_Y_MAP) {
        return gv_cfg_fail(err, ag->opts.config_path, ex, "exporters: expected a mapping");
    }
    for (i = 0; i < ex->n; i++) {
        bool known = false;
        for (k = 0; all[k]; k++) {
            known = known || strcmp(all[k]->name, ex->keys[i]->scalar) == 0;
        }
        if (!known) {
            return gv_cfg_fail(err, ag->opts.config_path, ex->keys[i], "unknown exporter '%s'",
                               ex->keys[i]->scalar);
        }
    }
    *out = ex;
    return GV_OK;
}

/* A configuration error goes back to the caller, who prints it (only cli/ writes to stderr). */
static gv_rc config_error(struct ag_agent *ag, const struct gv_cfg_err *err)
{
    if (ag->opts.err) {
        *ag->opts.err = *err;
    }
    return GV_ECONFIG;
}

gv_rc ag_exporters_start(struct ag_agent *ag)
{
    const struct ex_exporter_ops *const *all =
        ag->opts.registry ? ag->opts.registry : ex_registry_builtin();
    const struct gv_ynode *cfg = NULL;
    struct gv_cfg_err err;
    size_t i, count = 0;
    gv_rc rc;

    memset(&err, 0, sizeof(err));
    rc = config_exporters(ag, all, &cfg, &err);
    if (rc) {
        return config_error(ag, &err);
    }
    for (i = 0; all[i]; i++) {
        count++;
    }
    if (ag->opts.exporters && strcmp(ag->opts.exporters, "all") != 0 &&
        strcmp(ag->opts.exporters, "none") != 0) {
        const char *p = ag->opts.exporters;
        while (p && *p) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            bool known = false;
            for (i = 0; all[i]; i++) {
                known = known || (strlen(all[i]->name) == len && !strncmp(all[i]->name, p, len));
            }
            if (!known) {
                snprintf(err.msg, sizeof(err.msg), "--exporters: unknown exporter '%.*s'", (int)len,
                         p);
                return config_error(ag, &err);
            }
            p = comma ? comma + 1 : NULL;
        }
    }
    ag->exps = gv_calloc(count ? count : 1, sizeof(*ag->exps));
    for (i = 0; all[i]; i++) {
        const struct ex_exporter_ops *ops = all[i];
        struct ag_exp *x = &ag->exps[ag->nexps];
        const struct gv_ynode *mapping = cfg ? gv_ynode_get(cfg, ops->name) : NULL;
        const char *path = ag->opts.config_path ? ag->opts.config_path : "agent";
        char name[64];
        bool listen_flag = (ops->flags & EX_OPS_METRICS_LISTEN) && ag->opts.metrics_listen;

        if ((ag->opts.exporters && strcmp(ag->opts.exporters, "none") == 0) ||
            !selected(ag->opts.exporters, ops->name)) {
            continue;
        }
        /* An opt-in exporter (Prometheus: a listening port) runs only when asked to;
         * --metrics-listen wins over the file. */
        if ((ops->flags & EX_OPS_OPT_IN) && !listen_flag && !mapping) {
            continue;
        }
        if (listen_flag) {
            struct gv_buf y;
            gv_buf_init(&y, 4096);
            rc = gv_buf_append_str(&y, "listen: ");
            if (rc == GV_OK) {
                rc = gv_buf_append_json_str(&y, ag->opts.metrics_listen,
                                            strlen(ag->opts.metrics_listen));
            }
            if (rc == GV_OK) {
                rc = gv_ydoc_load_buf("--metrics-listen", y.data, y.len, &x->doc, &err);
            }
            gv_buf_free(&y);
            if (rc) {
                snprintf(err.msg, sizeof(err.msg), "bad --metrics-listen '%s'",
                         ag->opts.metrics_listen);
                return config_error(ag, &err);
            }
            mapping = x->doc->root;
            path = "--metrics-listen";
        }
        snprintf(name, sizeof(name), "%s.0", ops->name);
        x->ex.ops = ops;
        x->ex.name = gv_strdup(name);
        x->ex.fsync = ag->opts.fsync;
        x->ex.ctx = gv_calloc(1, ops->ctx_size ? ops->ctx_size : 1);
        if (ops->config_map) {
            rc = gv_cfg_apply(ops->config_map, path, mapping, x->ex.ctx, &err);
            if (rc) {
                rc = config_error(ag, &err);
                goto skip;
            }
        }
        else if (mapping) {
            snprintf(err.msg, sizeof(err.msg), "%s: exporter %s takes no settings", path,
                     ops->name);
            rc = config_error(ag, &err);
            goto skip;
        }
        rc = ops->init(&x->ex, ag->state_dir);
        if (rc) {
            gv_log(GV_LOG_ERROR, MOD, "exporter failed to start", "exporter=%s rc=%s", name,
                   gv_rc_str(rc));
            goto skip;
        }
        gv_log(GV_LOG_INFO, MOD, "exporter started", "exporter=%s", name);
        ag->nexps++;
        continue;
    skip:
        if (ops->config_map) {
            gv_cfg_release(ops->config_map, x->ex.ctx);
        }
        gv_free(x->ex.ctx);
        gv_free((void *)x->ex.name);
        gv_ydoc_destroy(x->doc);
        memset(x, 0, sizeof(*x));
        return rc;
    }
    if (ag->nexps > 0) {
        if (gv_thread_start(&ag->jthread, "kt-agent-export", GV_THREAD_SERVING, exp_thread_main,
                            ag) != GV_OK) {
            return GV_EIO;
        }
        ag->jthread_started = true;
    }
    return GV_OK;
}

/* Delivery counters of the exporters that keep them, for status and /metrics. */
size_t ag_exporters_stats(struct ag_agent *ag, struct ex_exporter_stats *out, size_t max)
{
    size_t i, n = 0;

    for (i = 0; i < ag->nexps && n < max; i++) {
        struct ag_exp *x = &ag->exps[i];
        if (x->ex.ops->stats) {
            snprintf(out[n].name, sizeof(out[n].name), "%s", x->ex.ops->name);
            x->ex.ops->stats(&x->ex, &out[n].st);
            n++;
        }
    }
    return n;
}

void ag_exporters_stop(struct ag_agent *ag)
{
    size_t i, j;

    ag_jobs_stop(ag);
    for (i = 0; i < ag->njobs; i++) {
        job_free(ag->jobs[i]);
    }
    ag->njobs = 0;
    for (i = 0; i < ag->nexps; i++) {
        struct ag_exp *x = &ag->exps[i];
        x->ex.ops->destroy(&x->ex);
        if (x->ex.ops->config_map) {
            gv_cfg_release(x->ex.ops->config_map, x->ex.ctx);
        }
        for (j = 0; j < x->nqueue; j++) {
            gv_buf_free(&x->queue[j]);
        }
        gv_free(x->ex.ctx);
        gv_free((void *)x->ex.name);
        gv_ydoc_destroy(x->doc);
    }
    gv_free(ag->exps);
    ag->exps = NULL;
    ag->nexps = 0;
}

/* Hands the batch's new events to the exporters that take them one by one. */
void ag_exporters_events(struct ag_agent *ag, size_t nrec)
{
    size_t i;

    for (i = 0; i < nrec; i++) {
        ag->evs[i].rec = &ag->recs[i];
        ag->evs[i].instance_id = ag->rec_inst[i]->id;
        ag->evs[i].seq = ag->rec_seq[i];
        ag->evs[i].hello = &ag->rec_inst[i]->hello;
    }
    for (i = 0; i < ag->nexps; i++) {
        struct ag_exp *x = &ag->exps[i];
        gv_rc rc;
        if (!x->ex.ops->events) {
            continue;
        }
        rc = x->ex.ops->events(&x->ex, ag->evs, nrec);
        if (rc) {
            atomic_fetch_add(&ag->exporter_drops, 1);
            gv_log(GV_LOG_ERROR, MOD, "exporter could not store events", "exporter=%s n=%zu rc=%s",
                   x->ex.name, nrec, gv_rc_str(rc));
        }
    }
}

/* Each exporter's own status line or object, after the agent's. */
void ag_exporters_status(struct ag_agent *ag, bool json, struct gv_buf *out)
{
    size_t i;
    bool first = true;

    if (json) {
        (void)gv_buf_append_str(out, ",\"exporters\":{");
    }
    for (i = 0; i < ag->nexps; i++) {
        struct ag_exp *x = &ag->exps[i];
        if (!x->ex.ops->status) {
            continue;
        }
        if (json) {
            (void)gv_buf_appendf(out, "%s\"%s\":", first ? "" : ",", x->ex.ops->name);
        }
        x->ex.ops->status(&x->ex, json, out);
        first = false;
    }
    if (json) {
        (void)gv_buf_append_str(out, "}");
    }
}
