/* exporters/weave/weave.c - the ex_weave ops: config, init, events, flush, status, destroy */
/* SPDX-License-Identifier: Apache-2.0 */
#include "exporters/weave/weave.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/gv_log.h"
#include "core/gv_mem.h"
#include "core/gv_paths.h"
#include "core/gv_thread.h"
#include "core/gv_time.h"

#define MOD "exporter:weave"
/* The SDK's batch processor flushes at least this often. */
#define BATCH_INTERVAL_US 1000000u
#define BACKOFF_MIN_US 1000000u
#define BACKOFF_MAX_US 30000000u
/* Batches per pass before the thread looks at its stop flag again. */
#define PASS_BATCHES 50u
/* What a stopping agent still gives the trace server. */
#define FINAL_PASS_US 5000000u

static const struct gv_cfg_map weave_config[] = {
    {"enabled", GV_CFG_BOOL, offsetof(struct ex_weave_ctx, enabled), "true", 0, NULL, 0, 0,
     "one Weave call per governed request (`false`: off)"},
    {"base_url", GV_CFG_STR, offsetof(struct ex_weave_ctx, base_url), NULL, 0, NULL, 0, 0,
     "trace server; else `WF_TRACE_SERVER_URL`, else `<WANDB_BASE_URL>/traces` for dedicated "
     "servers, else `https://trace.wandb.ai`"},
    {"entity", GV_CFG_STR, offsetof(struct ex_weave_ctx, entity), NULL, 0, NULL, 0, 0,
     "entity for requests without `X-Wandb-Entity`; else `WANDB_ENTITY`, else the API key's "
     "default entity"},
    {"project", GV_CFG_STR, offsetof(struct ex_weave_ctx, project), NULL, 0, NULL, 0, 0,
     "project for requests without `X-Wandb-Project`; else `WANDB_PROJECT`, else `uncategorized`"},
    {"batch_size", GV_CFG_INT, offsetof(struct ex_weave_ctx, batch_calls), "100", 0, NULL, 1,
     EX_WEAVE_BATCH_MAX, "calls per upload (the SDK's default is 100)"},
    {"senders", GV_CFG_INT, offsetof(struct ex_weave_ctx, senders), "4", 0, NULL, 1,
     EX_WEAVE_SENDERS_MAX, "uploads in flight at once (the SDK runs up to 20)"},
    {"batch_bytes", GV_CFG_SIZE, offsetof(struct ex_weave_ctx, batch_bytes), "31MiB", 0, NULL,
     65536, 33554432.0, "largest upload body; bigger batches are split"},
    {"blocked_as_error", GV_CFG_BOOL, offsetof(struct ex_weave_ctx, blocked_as_error), "false", 0,
     NULL, 0, 0, "show blocked requests as failed calls (default: a normal call saying blocked)"},
    {"offline", GV_CFG_BOOL, offsetof(struct ex_weave_ctx, offline), "false", 0, NULL, 0, 0,
     "keep calls in `<state>/weave-offline` even with credentials (`kt wandb sync` uploads them)"},
    {"dir", GV_CFG_STR, offsetof(struct ex_weave_ctx, dir), NULL, 0, NULL, 0, 0,
     "(path) outbox directory; default `<state>/weave`, or `<state>/weave-offline` when offline"},
    {"outbox_max", GV_CFG_SIZE, offsetof(struct ex_weave_ctx, outbox_max), "1GiB", 0, NULL, 1048576,
     1099511627776.0, "calls beyond this wait nowhere: they are dropped and counted as failed"},
    {NULL, 0, 0, NULL, 0, NULL, 0, 0, NULL},
};

static void *send_main(void *arg)
{
    struct ex_weave_ctx *c = ((struct ex_weave_thread_arg *)arg)->c;
    struct ex_wandb_api *api = ((struct ex_weave_thread_arg *)arg)->api;
    uint64_t backoff = 0;

    for (;;) {
        enum ex_weave_send r;
        uint64_t wait_us, now, nb, deadline;
        struct timespec ts;
        bool stop;

        pthread_mutex_lock(&c->lock);
        stop = c->stop;
        pthread_mutex_unlock(&c->lock);
        if (stop) {
            break;
        }
        r = ex_weave_send_outbox(&c->snd, api, &c->ob, PASS_BATCHES);
        now = gv_mono_us();
        nb = atomic_load(&c->snd.not_before_us);
        if (r == EX_WEAVE_LATER) {
            if (nb > now) {
                /* The server said when: come back then, not sooner and not later. */
                wait_us = nb - now;
            }
            else {
                backoff = backoff ? backoff * 2 : BACKOFF_MIN_US;
                if (backoff > BACKOFF_MAX_US) {
                    backoff = BACKOFF_MAX_US;
                }
                wait_us = backoff;
                gv_log(GV_LOG_WARN, MOD, "trace server unavailable, will retry",
                       "wait_ms=%llu pending=%llu", (unsigned long long)(wait_us / 1000),
                       (unsigned long long)atomic_load(&c->ob.pending_calls));
            }
        }
        else {
            backoff = 0;
            if (atomic_load(&c->ob.pending_calls) >= (uint64_t)c->snd.batch_calls) {
                continue; /* a full batch is waiting */
            }
            wait_us = BATCH_INTERVAL_US;
        }
        /* A full batch arriving ends a batching wait early, never a backoff. */
        deadline = now + wait_us;
        pthread_mutex_lock(&c->lock);
        while (!c->stop && gv_mono_us() < deadline &&
               (r == EX_WEAVE_LATER || c->since_wake < c->snd.batch_calls)) {
            gv_time_deadline(CLOCK_REALTIME, deadline - gv_mono_us(), &ts);
            pthread_cond_timedwait(&c->cond, &c->lock, &ts);
        }
        if (r != EX_WEAVE_LATER) {
            c->since_wake = 0;
        }
        pthread_mutex_unlock(&c->lock);
    }
    return NULL;
}

static gv_rc weave_init(struct ex_exporter *ex, const char *state_dir)
{
    struct ex_weave_ctx *c = ex->ctx;
    int n;
    gv_rc rc;

    if (!c->enabled) {
        gv_log(GV_LOG_INFO, MOD, "Weave calls are off (exporters.weave.enabled: false)", "inst=%s",
               ex->name ? ex->name : "weave");
        return GV_OK;
    }
    ex_weave_sender_init(&c->snd, c->base_url);
    c->snd.entity =
        ex_wandb_setting(c->entity, "WANDB_ENTITY", c->entity_env, sizeof(c->entity_env));
    c->snd.project =
        ex_wandb_setting(c->project, "WANDB_PROJECT", c->project_env, sizeof(c->project_env));
    c->snd.batch_calls = (size_t)c->batch_calls;
    c->snd.batch_bytes = c->batch_bytes;
    c->snd.blocked_as_error = c->blocked_as_error;
    c->online = c->snd.api.have_key && !c->offline;
    if (c->dir && *c->dir) {
        n = snprintf(c->root, sizeof(c->root), "%s", c->dir);
    }
    else {
        n = snprintf(c->root, sizeof(c->root), "%s/%s", state_dir ? state_dir : ".",
                     c->online ? "weave" : "weave-offline");
    }
    if (n < 0 || (size_t)n >= sizeof(c->root)) {
        rc = GV_E2BIG;
        goto out;
    }
    rc = ex_weave_outbox_open(&c->ob, c->root, c->outbox_max, ex->fsync);
    if (rc) {
        gv_log(GV_LOG_ERROR, MOD, "cannot open the Weave outbox", "dir=%s rc=%s", c->root,
               gv_rc_str(rc));
        ex_weave_outbox_close(&c->ob);
        goto out;
    }
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    c->started = true;
    if (c->online) {
        size_t i;
        for (i = 0; i < (size_t)c->senders && i < EX_WEAVE_SENDERS_MAX; i++) {
            ex_wandb_api_init(&c->apis[i], NULL);
            c->args[i].c = c;
            c->args[i].api = &c->apis[i];
            rc = gv_thread_start(&c->threads[i], "kt-weave-send", GV_THREAD_SERVING, send_main,
                                 &c->args[i]);
            if (rc) {
                ex_wandb_api_free(&c->apis[i]);
                break;
            }
            c->nthreads++;
        }
        c->thread_started = c->nthreads > 0;
        if (rc && c->nthreads > 0) {
            /* Fewer uploads in flight is still a working exporter. */
            gv_log(GV_LOG_WARN, MOD, "fewer sending threads than configured", "started=%zu",
                   c->nthreads);
            rc = GV_OK;
        }
        if (rc) {
            goto out;
        }
        gv_log(GV_LOG_INFO, MOD, "exporting calls to Weave",
               "inst=%s trace_server=%s outbox=%s pending=%llu", ex->name ? ex->name : "weave",
               c->snd.trace_url, c->root, (unsigned long long)atomic_load(&c->ob.pending_calls));
    }
    else {
        gv_log(GV_LOG_INFO, MOD,
               c->offline ? "offline mode: Weave calls are kept locally"
                          : "no W&B credentials (WANDB_API_KEY or netrc): Weave calls are kept "
                            "locally",
               "inst=%s dir=%s upload_with=\"kt wandb sync\"", ex->name ? ex->name : "weave",
               c->root);
    }
out:
    if (rc) {
        if (c->started) {
            ex_weave_outbox_close(&c->ob);
            pthread_mutex_destroy(&c->lock);
            pthread_cond_destroy(&c->cond);
            c->started = false;
        }
        ex_weave_sender_free(&c->snd);
    }
    return rc;
}

static gv_rc weave_events(struct ex_exporter *ex, const struct ex_event *evs, size_t n)
{
    struct ex_weave_ctx *c = ex->ctx;
    gv_rc rc;

    if (!c->started) {
        return GV_OK;
    }
    rc = ex_weave_outbox_append(&c->ob, evs, n);
    if (rc) {
        atomic_fetch_add(&c->store_failed, n);
        return rc;
    }
    atomic_fetch_add(&c->stored, n);
    if (c->thread_started) {
        pthread_mutex_lock(&c->lock);
        c->since_wake += n;
        if (c->since_wake >= c->snd.batch_calls) {
            pthread_cond_broadcast(&c->cond);
        }
        pthread_mutex_unlock(&c->lock);
    }
    return GV_OK;
}

/* Calls leave through the outbox and the sending thread, not through the
 * agent's per-flush payload: this one only says which exporter it is. */
static gv_rc weave_format(struct ex_exporter *ex, const struct ex_batch *batch, struct gv_buf *out)
{
    (void)ex;
    return gv_buf_appendf(out, "{\"kt_weave\":1,\"seq\":%llu}", (unsigned long long)batch->seq);
}

static enum ex_flush weave_flush(struct ex_exporter *ex, const struct gv_buf *payload)
{
    (void)ex;
    (void)payload;
    return EX_FLUSH_OK;
}

static void weave_status(struct ex_exporter *ex, bool json, struct gv_buf *out)
{
    struct ex_weave_ctx *c = ex->ctx;
    char err[sizeof(c->snd.last_error)];
    unsigned long long pending = 0, sent = 0, failed = 0;

    err[0] = '\0';
    if (c->started) {
        pending = atomic_load(&c->ob.pending_calls);
        sent = atomic_load(&c->snd.sent);
        failed = atomic_load(&c->snd.failed) + atomic_load(&c->store_failed);
        pthread_mutex_lock(&c->snd.err_lock);
        snprintf(err, sizeof(err), "%s", c->snd.last_error);
        pthread_mutex_unlock(&c->snd.err_lock);
    }
    if (json) {
        (void)gv_buf_appendf(out,
                             "{\"enabled\":%s,\"online\":%s,\"pending\":%llu,\"sent\":%llu,"
                             "\"failed\":%llu,\"requests\":%llu,\"splits\":%llu,\"retries\":%llu,"
                             "\"trace_server\":",
                             c->started ? "true" : "false", c->online ? "true" : "false", pending,
                             sent, failed, (unsigned long long)atomic_load(&c->snd.requests),
                             (unsigned long long)atomic_load(&c->snd.splits),
                             (unsigned long long)atomic_load(&c->snd.retries));
        (void)gv_buf_append_json_str(out, c->started ? c->snd.trace_url : "",
                                     c->started ? strlen(c->snd.trace_url) : 0);
        (void)gv_buf_append_str(out, ",\"outbox\":");
        (void)gv_buf_append_json_str(out, c->root, strlen(c->root));
        (void)gv_buf_append_str(out, ",\"last_error\":");
        (void)gv_buf_append_json_str(out, err, strlen(err));
        (void)gv_buf_append_str(out, "}");
        return;
    }
    if (!c->started) {
        (void)gv_buf_append_str(out, "weave: off\n");
        return;
    }
    (void)gv_buf_appendf(out, "weave: %s pending=%llu sent=%llu failed=%llu last_error=\"%s\"\n",
                         c->online ? c->snd.trace_url : c->root, pending, sent, failed, err);
}

static void weave_destroy(struct ex_exporter *ex)
{
    struct ex_weave_ctx *c = ex->ctx;
    uint64_t until;

    if (!c || !c->started) {
        return;
    }
    if (c->thread_started) {
        size_t i;
        pthread_mutex_lock(&c->lock);
        c->stop = true;
        pthread_cond_broadcast(&c->cond);
        pthread_mutex_unlock(&c->lock);
        for (i = 0; i < c->nthreads; i++) {
            pthread_join(c->threads[i], NULL);
        }
        c->thread_started = false;
        /* One last, bounded go at what is waiting; the rest stays in the
         * outbox for the next start. */
        until = gv_mono_us() + FINAL_PASS_US;
        while (atomic_load(&c->ob.pending_calls) > 0 && gv_mono_us() < until &&
               ex_weave_send_outbox(&c->snd, &c->apis[0], &c->ob, PASS_BATCHES) == EX_WEAVE_SENT) {
        }
        for (i = 0; i < c->nthreads; i++) {
            ex_wandb_api_free(&c->apis[i]);
        }
        c->nthreads = 0;
    }
    ex_weave_outbox_close(&c->ob);
    ex_weave_sender_free(&c->snd);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
    c->started = false;
}

const struct ex_exporter_ops ex_weave = {
    .name = "weave",
    .config_map = weave_config,
    .ctx_size = sizeof(struct ex_weave_ctx),
    .init = weave_init,
    .format = weave_format,
    .flush = weave_flush,
    .destroy = weave_destroy,
    .events = weave_events,
    .status = weave_status,
};
