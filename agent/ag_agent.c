/* agent/ag_agent.c - kt agent: ingest events, keep durable per-run state, run exporters */
/* SPDX-License-Identifier: Apache-2.0 */
#include "agent/ag_agent.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <json-c/json.h>

#include "agent/ag_runs.h"
#include "core/gv_file.h"
#include "core/gv_cfg.h"
#include "core/gv_event.h"
#include "core/gv_log.h"
#include "core/gv_mem.h"
#include "core/gv_paths.h"
#include "core/gv_thread.h"
#include "core/gv_time.h"
#include "core/gv_yaml.h"
#include "exporters/ex_exporter.h"
#include "exporters/ex_exporters.gen.h"
#include "exporters/prom/prom.h"

#define MOD "agent"
/* Events decoded before one journal write + sync + ack. */
#define BATCH_MAX 1024
#define STATE_VERSION 1
#define EXP_QUEUE_MAX 8
/* Batches waiting for the exporter thread. */
#define AG_JOBS_MAX 4
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000
/* A status request is small; anything else from a client is an event stream. */
#define CONN_OUT_MAX (8u * 1024u * 1024u)

struct ag_job;

struct ag_instance {
    char id[GV_INSTANCE_ID_LEN + 1];
    uint64_t hwm; /* highest seq applied: anything <= is a duplicate */
    struct gv_hello hello;
};

struct ag_conn {
    struct ag_agent *ag;
    struct bufferevent *bev;
    struct ag_instance *inst; /* from this connection's hello */
    bool ack_pending;
    struct ag_conn *next;
};

struct ag_exp {
    struct ex_exporter ex;
    struct gv_ydoc *doc;
    struct gv_buf queue[EXP_QUEUE_MAX]; /* formatted payloads waiting for a retry */
    size_t nqueue;
    uint64_t next_try_us;
    uint64_t backoff_ms;
    unsigned long long dropped_payloads;
};

struct ag_agent {
    struct ag_opts opts;
    char state_dir[4096];
    char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char journal_path[4160];
    char state_path[4160];
    char label[256];
    int lock_fd;
    int journal_fd;
    uint64_t journal_bytes;
    struct ag_runs *runs;
    struct lh_table *instances;
    struct event_base *base;
    struct evconnlistener *listener;
    struct event *flush_ev, *sigterm_ev, *sigint_ev, *stop_ev, *commit_ev;
    bool journal_dirty;
    struct ag_conn *conns;
    struct ag_exp *exps;
    size_t nexps;
    struct ex_exporter *prom; /* also in exps; gets the agent's own counters */
    uint64_t flush_seq;
    /* batch scratch */
    struct gv_record *recs;
    struct ag_instance **rec_inst;
    uint64_t *rec_seq;
    struct ex_event *evs;
    struct gv_buf jbuf;
    /* counters */
    _Atomic uint64_t events;
    uint64_t duplicates, bad_frames, connections, flushes;
    _Atomic uint64_t exporter_retries, exporter_drops;
    /* exporter thread */
    pthread_t jthread;
    bool jthread_started;
    pthread_mutex_t jlock;
    pthread_cond_t jcond;
    struct ag_job *jobs[AG_JOBS_MAX];
    size_t njobs;
    bool jstop;
    struct gv_ydoc *cfg_doc;
    _Atomic int stop_requested;
};

/* ---- files --------------------------------------------------------------------------- */

static gv_rc read_file(const char *path, struct gv_buf *out)
{
    char tmp[65536];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    gv_rc rc = GV_OK;

    if (fd < 0) {
        return errno == ENOENT ? GV_ENOTFOUND : GV_EIO;
    }
    for (;;) {
        ssize_t r = read(fd, tmp, sizeof(tmp));
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            rc = GV_EIO;
            break;
        }
        if (r == 0) {
            break;
        }
        rc = gv_buf_append(out, tmp, (size_t)r);
        if (rc) {
            break;
        }
    }
    close(fd);
    return rc;
}

static struct ag_instance *instance_get(struct ag_agent *ag, const char *id)
{
    void *v = NULL;
    struct ag_instance *in;

    if (lh_table_lookup_ex(ag->instances, id, &v)) {
        return v;
    }
    in = gv_calloc(1, sizeof(*in));
    snprintf(in->id, sizeof(in->id), "%s", id);
    if (lh_table_insert(ag->instances, in->id, in) != 0) {
        abort(); /* json-c allocation failure: same policy as gv_malloc */
    }
    return in;
}

static void instance_free_entry(struct lh_entry *e)
{
    gv_free(lh_entry_v(e));
}

/* Applies one frame from the journal (recovery) or the wire (live, after the
 * journal write). Returns true when an event was counted. */
static bool apply_hello(struct ag_agent *ag, const uint8_t *p, size_t n, struct ag_instance **inst)
{
    struct gv_hello h;
    struct ag_instance *in;

    if (gv_hello_decode(p, n, &h) != GV_OK || !h.instance_id[0]) {
        return false;
    }
    in = instance_get(ag, h.instance_id);
    in->hello = h;
    if (inst) {
        *inst = in;
    }
    return true;
}

/* Recovery: the journal holds hello and event frames written after the state
 * file; the seq marks skip what the state file already counted. A torn tail
 * (the agent died mid-write, so it was never acknowledged) is cut. */
static gv_rc journal_replay(struct ag_agent *ag)
{
    struct gv_buf data;
    struct gv_record *rec = gv_malloc(sizeof(*rec));
    size_t off = 0;
    uint64_t applied = 0;
    gv_rc rc;

    gv_buf_init(&data, 0);
    rc = read_file(ag->journal_path, &data);
    if (rc == GV_ENOTFOUND) {
        rc = GV_OK;
        goto out;
    }
    if (rc) {
        goto out;
    }
    while (off < data.len) {
        unsigned type;
        const uint8_t *payload;
        size_t plen, used;
        struct gv_event_meta meta;

        if (gv_frame_parse(data.data + off, data.len - off, &type, &payload, &plen, &used)) {
            break;
        }
        if (type == GV_FRAME_HELLO) {
            if (!apply_hello(ag, payload, plen, NULL)) {
                break;
            }
        }
        else if (type == GV_FRAME_EVENT) {
            struct ag_instance *in;
            if (gv_event_decode(payload, plen, rec, &meta) != GV_OK) {
                break;
            }
            in = instance_get(ag, meta.instance_id);
            if (meta.seq > in->hwm) {
                ag_runs_apply(ag->runs, rec, &in->hello, gv_wall_us());
                in->hwm = meta.seq;
                atomic_fetch_add(&ag->events, 1);
                applied++;
            }
            gv_record_release(rec);
        }
        off += used;
    }
    if (off < data.len) {
        gv_log(GV_LOG_WARN, MOD, "journal tail cut", "bytes=%zu", data.len - off);
        if (truncate(ag->journal_path, (off_t)off) != 0) {
            rc = GV_EIO;
            goto out;
        }
    }
    ag->journal_bytes = off;
    if (applied) {
        gv_log(GV_LOG_INFO, MOD, "journal replayed", "events=%llu", (unsigned long long)applied);
    }
out:
    gv_buf_free(&data);
    gv_free(rec);
    return rc;
}

static gv_rc state_load(struct ag_agent *ag)
{
    struct gv_buf data;
    struct json_object *root = NULL, *v;
    size_t i;
    gv_rc rc;

    gv_buf_init(&data, 0);
    rc = read_file(ag->state_path, &data);
    if (rc == GV_ENOTFOUND) {
        rc = GV_OK;
        goto out;
    }
    if (rc) {
        goto out;
    }
    root = json_tokener_parse(data.data);
    if (!root || !json_object_object_get_ex(root, "runs", &v)) {
        rc = GV_EPROTO;
        goto out;
    }
    rc = ag_runs_from_json(ag->runs, v);
    if (rc) {
        goto out;
    }
    if (json_object_object_get_ex(root, "instances", &v) &&
        json_object_is_type(v, json_type_array)) {
        for (i = 0; i < json_object_array_length(v); i++) {
            struct json_object *o = json_object_array_get_idx(v, i), *f;
            struct ag_instance *in;
            if (!json_object_object_get_ex(o, "id", &f)) {
                continue;
            }
            in = instance_get(ag, json_object_get_string(f));
            if (json_object_object_get_ex(o, "hwm", &f)) {
                in->hwm = json_object_get_uint64(f);
            }
            snprintf(in->hello.instance_id, sizeof(in->hello.instance_id), "%s", in->id);
            if (json_object_object_get_ex(o, "pack_name", &f)) {
                snprintf(in->hello.pack_name, sizeof(in->hello.pack_name), "%s",
                         json_object_get_string(f));
            }
            if (json_object_object_get_ex(o, "pack_version", &f)) {
                snprintf(in->hello.pack_version, sizeof(in->hello.pack_version), "%s",
                         json_object_get_string(f));
            }
            if (json_object_object_get_ex(o, "chain", &f)) {
                snprintf(in->hello.chain, sizeof(in->hello.chain), "%s", json_object_get_string(f));
            }
        }
    }
    if (json_object_object_get_ex(root, "events", &v)) {
        atomic_store(&ag->events, json_object_get_uint64(v));
    }
    if (json_object_object_get_ex(root, "flush_seq", &v)) {
        ag->flush_seq = json_object_get_uint64(v);
    }
out:
    json_object_put(root);
    gv_buf_free(&data);
    return rc;
}

/* Checkpoint: state.json is replaced atomically, then the journal it covers is
 * emptied. A crash between the two replays a journal whose events the seq marks
 * in the new state already cover, so nothing counts twice. */
static gv_rc state_save(struct ag_agent *ag)
{
    struct json_object *root = json_object_new_object();
    struct json_object *insts = json_object_new_array();
    struct lh_entry *e;
    char tmp[4300];
    const char *text;
    int fd = -1;
    gv_rc rc = GV_OK;

    lh_foreach(ag->instances, e)
    {
        const struct ag_instance *in = lh_entry_v(e);
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "id", json_object_new_string(in->id));
        json_object_object_add(o, "hwm", json_object_new_uint64(in->hwm));
        json_object_object_add(o, "pack_name", json_object_new_string(in->hello.pack_name));
        json_object_object_add(o, "pack_version", json_object_new_string(in->hello.pack_version));
        json_object_object_add(o, "chain", json_object_new_string(in->hello.chain));
        json_object_array_add(insts, o);
    }
    json_object_object_add(root, "version", json_object_new_int(STATE_VERSION));
    json_object_object_add(root, "events", json_object_new_uint64(atomic_load(&ag->events)));
    json_object_object_add(root, "flush_seq", json_object_new_uint64(ag->flush_seq));
    json_object_object_add(root, "instances", insts);
    json_object_object_add(root, "runs", ag_runs_to_json(ag->runs));
    text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);
    snprintf(tmp, sizeof(tmp), "%s.tmp", ag->state_path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || gv_file_write_all(fd, text, strlen(text)) != GV_OK ||
        (ag->opts.fsync && fdatasync(fd) != 0)) {
        rc = GV_EIO;
        goto out;
    }
    close(fd);
    fd = -1;
    if (rename(tmp, ag->state_path) != 0) {
        rc = GV_EIO;
        goto out;
    }
    if (ftruncate(ag->journal_fd, 0) != 0) {
        rc = GV_EIO;
        goto out;
    }
    ag->journal_bytes = 0;
out:
    if (fd >= 0) {
        close(fd);
    }
    if (rc) {
        gv_log(GV_LOG_ERROR, MOD, "checkpoint failed", "path=%s errno=%d", ag->state_path, errno);
    }
    json_object_put(root);
    return rc;
}

/* ---- exporters ----------------------------------------------------------------------- */

/* Exporters run on their own thread: a slow W&B upload or a retry backoff never
 * delays ingest or acknowledgements. The event loop only hands over batches. */
struct ag_job {
    struct ex_batch batch;
    struct ex_run_snapshot *snaps;
    struct ex_prom_agent_stats st;
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

    if (ag->prom) {
        ex_prom_set_agent_stats(ag->prom, &j->st);
    }
    for (i = 0; i < ag->nexps; i++) {
        struct ag_exp *x = &ag->exps[i];
        struct gv_buf payload;
        gv_rc rc;

        /* An empty batch still goes to every exporter: Prometheus shows the
         * agent counters, W&B sends rows held back by its upload interval and
         * heartbeats for live runs, which it can only do when flush is called.
         * A payload already waiting does that job, and an empty one must never
         * push a real one out of the queue. */
        if (j->batch.nruns == 0 && &x->ex != ag->prom && x->nqueue > 0) {
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

static void jobs_stop(struct ag_agent *ag)
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

static size_t exporters_stats(struct ag_agent *ag, struct ex_prom_exporter_stats *out,
                              size_t max);

static void flush_now(struct ag_agent *ag, bool final)
{
    struct ag_job *j = gv_calloc(1, sizeof(*j));

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
    j->st.nexporters = exporters_stats(ag, j->st.exporters, EX_PROM_EXPORTERS_MAX);
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
    (void)state_save(ag);
    (void) final;
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    flush_now(arg, false);
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

static gv_rc exporters_start(struct ag_agent *ag)
{
    static const struct ex_exporter_ops *const all[] = {
#define EX_EXPORTER(n) &ex_##n,
        EX_EXPORTERS_LIST
#undef EX_EXPORTER
            NULL};
    const struct gv_ynode *cfg = NULL;
    struct gv_cfg_err err;
    size_t i, count = 0;
    gv_rc rc;

    memset(&err, 0, sizeof(err));
    rc = config_exporters(ag, all, &cfg, &err);
    if (rc) {
        fprintf(stderr, "%s\n", err.msg);
        return GV_ECONFIG;
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
                fprintf(stderr, "kt agent: --exporters: unknown exporter '%.*s'\n", (int)len, p);
                return GV_ECONFIG;
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
        bool is_prom = strcmp(ops->name, "prom") == 0;

        if ((ag->opts.exporters && strcmp(ag->opts.exporters, "none") == 0) ||
            !selected(ag->opts.exporters, ops->name)) {
            continue;
        }
        /* Prometheus listens only when asked to; --metrics-listen wins over the file. */
        if (is_prom && !ag->opts.metrics_listen && !mapping) {
            continue;
        }
        if (is_prom && ag->opts.metrics_listen) {
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
                fprintf(stderr, "kt agent: bad --metrics-listen '%s'\n", ag->opts.metrics_listen);
                return GV_ECONFIG;
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
                fprintf(stderr, "%s\n", err.msg);
                rc = GV_ECONFIG;
                goto skip;
            }
        }
        else if (mapping) {
            fprintf(stderr, "%s: exporter %s takes no settings\n", path, ops->name);
            rc = GV_ECONFIG;
            goto skip;
        }
        rc = ops->init(&x->ex, ag->state_dir);
        if (rc) {
            gv_log(GV_LOG_ERROR, MOD, "exporter failed to start", "exporter=%s rc=%s", name,
                   gv_rc_str(rc));
            goto skip;
        }
        gv_log(GV_LOG_INFO, MOD, "exporter started", "exporter=%s", name);
        if (is_prom) {
            ag->prom = &x->ex;
        }
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

/* Hands new events to the exporters that take them one by one, before they
 * are journaled: a crash in between makes the gateway resend them (the same
 * events again, with the same trace ids), never lose them. */
static void exporters_ingest(struct ag_agent *ag, size_t nrec)
{
    size_t i;

    for (i = 0; i < ag->nexps; i++) {
        if (ag->exps[i].ex.ops->ingest) {
            ag->exps[i].ex.ops->ingest(&ag->exps[i].ex, ag->recs, nrec);
        }
    }
}

/* Delivery counters of the exporters that keep them, for status and /metrics. */
static size_t exporters_stats(struct ag_agent *ag, struct ex_prom_exporter_stats *out, size_t max)
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

static void exporters_stop(struct ag_agent *ag)
{
    size_t i, j;

    jobs_stop(ag);
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
static void exporters_events(struct ag_agent *ag, size_t nrec)
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
static void exporters_status(struct ag_agent *ag, bool json, struct gv_buf *out)
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

/* ---- connections --------------------------------------------------------------------- */

static void conn_close(struct ag_conn *c)
{
    struct ag_conn **pp;

    for (pp = &c->ag->conns; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    bufferevent_free(c->bev);
    gv_free(c);
}

static void send_frame(struct ag_conn *c, enum gv_frame_type type, const void *p, size_t n)
{
    uint8_t hdr[GV_FRAME_HDR];

    gv_put_u32le(hdr, (uint32_t)n);
    hdr[4] = (uint8_t)type;
    bufferevent_write(c->bev, hdr, sizeof(hdr));
    if (n) {
        bufferevent_write(c->bev, p, n);
    }
}

static void reply_status(struct ag_conn *c, bool json)
{
    struct ag_agent *ag = c->ag;
    struct ex_prom_exporter_stats es[EX_PROM_EXPORTERS_MAX];
    size_t nes = exporters_stats(ag, es, EX_PROM_EXPORTERS_MAX), i;
    struct gv_buf out;
    bool ok;

    gv_buf_init(&out, CONN_OUT_MAX);
    if (json) {
        (void)gv_buf_appendf(&out,
                             "{\"agent\":{\"events\":%llu,\"duplicates\":%llu,\"runs\":%zu,"
                             "\"connections\":%llu,\"flushes\":%llu,\"exporters\":%zu},",
                             (unsigned long long)atomic_load(&ag->events),
                             (unsigned long long)ag->duplicates, ag_runs_count(ag->runs),
                             (unsigned long long)ag->connections, (unsigned long long)ag->flushes,
                             ag->nexps);
        (void)gv_buf_append_str(&out, "\"delivery\":{");
        for (i = 0; i < nes; i++) {
            (void)gv_buf_appendf(&out,
                                 "%s\"%s\":{\"sent\":%llu,\"queued\":%llu,\"dropped\":%llu,"
                                 "\"retries\":%llu,\"metric_exports\":%llu}",
                                 i ? "," : "", es[i].name, (unsigned long long)es[i].st.sent,
                                 (unsigned long long)es[i].st.queued,
                                 (unsigned long long)es[i].st.dropped,
                                 (unsigned long long)es[i].st.retries,
                                 (unsigned long long)es[i].st.exports);
        }
        (void)gv_buf_append_str(&out, "},\"runs\":");
        ok = ag_runs_status(ag->runs, 1, &out) == GV_OK;
        if (ok) {
            exporters_status(ag, true, &out);
        }
        if (!ok || gv_buf_append_str(&out, "}\n") != GV_OK) {
            gv_buf_reset(&out);
            (void)gv_buf_append_str(&out, "{\"error\":\"status too large\"}\n");
        }
    }
    else {
        (void)gv_buf_appendf(&out, "agent: events=%llu duplicates=%llu runs=%zu exporters=%zu\n",
                             (unsigned long long)atomic_load(&ag->events),
                             (unsigned long long)ag->duplicates, ag_runs_count(ag->runs),
                             ag->nexps);
        for (i = 0; i < nes; i++) {
            (void)gv_buf_appendf(&out,
                                 "exporter %s: sent=%llu queued=%llu dropped=%llu retries=%llu "
                                 "metric_exports=%llu\n",
                                 es[i].name, (unsigned long long)es[i].st.sent,
                                 (unsigned long long)es[i].st.queued,
                                 (unsigned long long)es[i].st.dropped,
                                 (unsigned long long)es[i].st.retries,
                                 (unsigned long long)es[i].st.exports);
        }
        exporters_status(ag, false, &out);
        if (ag_runs_status(ag->runs, 0, &out) != GV_OK) {
            (void)gv_buf_append_str(&out, "(truncated)\n");
        }
    }
    /* Replies may exceed one frame: split, the client concatenates. */
    {
        size_t off = 0;
        while (off < out.len) {
            size_t n = out.len - off > GV_FRAME_MAX ? GV_FRAME_MAX : out.len - off;
            send_frame(c, GV_FRAME_STATUS_REPLY, out.data + off, n);
            off += n;
        }
        send_frame(c, GV_FRAME_STATUS_REPLY, NULL, 0); /* empty frame: the end */
    }
    gv_buf_free(&out);
}

/* Decodes up to BATCH_MAX events, makes the new ones durable in the journal,
 * counts them, then acknowledges: the ack never runs ahead of the journal. */
static bool process_input(struct ag_conn *c)
{
    struct ag_agent *ag = c->ag;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t nrec = 0, i;
    bool ack = false, ok = true;

    gv_buf_reset(&ag->jbuf);
    while (nrec < BATCH_MAX) {
        uint8_t hdr[GV_FRAME_HDR];
        size_t len = evbuffer_get_length(in), plen;
        const uint8_t *frame;
        unsigned type;

        if (len < GV_FRAME_HDR) {
            break;
        }
        evbuffer_copyout(in, hdr, GV_FRAME_HDR);
        plen = gv_get_u32le(hdr);
        if (plen > GV_FRAME_MAX) {
            ag->bad_frames++;
            gv_log(GV_LOG_WARN, MOD, "oversized frame, closing connection", "len=%zu", plen);
            ok = false;
            break;
        }
        if (len < GV_FRAME_HDR + plen) {
            break;
        }
        frame = evbuffer_pullup(in, (ev_ssize_t)(GV_FRAME_HDR + plen));
        type = frame[4];
        if (type == GV_FRAME_HELLO) {
            if (apply_hello(ag, frame + GV_FRAME_HDR, plen, &c->inst)) {
                (void)gv_buf_append(&ag->jbuf, frame, GV_FRAME_HDR + plen);
            }
            else {
                ag->bad_frames++;
            }
        }
        else if (type == GV_FRAME_EVENT) {
            struct gv_event_meta meta;
            struct ag_instance *inst;
            if (gv_event_decode(frame + GV_FRAME_HDR, plen, &ag->recs[nrec], &meta) != GV_OK) {
                ag->bad_frames++;
            }
            else {
                inst = c->inst && strcmp(c->inst->id, meta.instance_id) == 0
                           ? c->inst
                           : instance_get(ag, meta.instance_id);
                if (!c->inst) {
                    c->inst = inst;
                }
                ack = true;
                if (meta.seq <= inst->hwm) {
                    ag->duplicates++;
                    gv_record_release(&ag->recs[nrec]);
                }
                else {
                    /* Marked now so a replay inside this batch is a duplicate too. */
                    inst->hwm = meta.seq;
                    ag->rec_seq[nrec] = meta.seq;
                    ag->rec_inst[nrec++] = inst;
                    (void)gv_buf_append(&ag->jbuf, frame, GV_FRAME_HDR + plen);
                }
            }
        }
        else if (type == GV_FRAME_STATUS) {
            reply_status(c, plen >= 1 && frame[GV_FRAME_HDR] == 1);
        }
        evbuffer_drain(in, GV_FRAME_HDR + plen);
    }
    /* Trace exporters store each event before the journal has it: a crash in
     * between leaves it unacknowledged, the gateway resends it and the
     * exporter's deterministic ids make the second copy the same call. */
    if (nrec > 0) {
        exporters_events(ag, nrec);
        exporters_ingest(ag, nrec);
    }
    if (ag->jbuf.len) {
        if (gv_file_write_all(ag->journal_fd, ag->jbuf.data, ag->jbuf.len) != GV_OK) {
            /* Not durable: not acknowledged, so the gateway resends after a
             * restart; the seq marks set above make continuing unsafe. */
            gv_log(GV_LOG_ERROR, MOD, "journal write failed; stopping", "errno=%d", errno);
            ag_agent_stop(ag);
            return false;
        }
        ag->journal_bytes += ag->jbuf.len;
        ag->journal_dirty = true;
    }
    for (i = 0; i < nrec; i++) {
        ag_runs_apply(ag->runs, &ag->recs[i], &ag->rec_inst[i]->hello, gv_wall_us());
        gv_record_release(&ag->recs[i]);
    }
    atomic_fetch_add(&ag->events, nrec);
    if (ack && c->inst) {
        /* Acknowledged by commit(), after one fdatasync for everything read in
         * this loop iteration, from every connection (group commit). */
        c->ack_pending = true;
        event_active(ag->commit_ev, EV_TIMEOUT, 0);
    }
    return ok;
}

/* Makes the journal durable, then acknowledges. Runs after the read callbacks
 * of a loop iteration (lower priority), so one sync covers many events. */
static void on_commit(evutil_socket_t fd, short what, void *arg)
{
    struct ag_agent *ag = arg;
    struct ag_conn *c;

    if (ag->journal_dirty) {
        if (ag->opts.fsync && fdatasync(ag->journal_fd) != 0) {
            gv_log(GV_LOG_ERROR, MOD, "journal sync failed; stopping", "errno=%d", errno);
            ag_agent_stop(ag);
            return;
        }
        ag->journal_dirty = false;
    }
    for (c = ag->conns; c; c = c->next) {
        if (c->ack_pending && c->inst) {
            uint8_t v[8];
            gv_put_u64le(v, c->inst->hwm);
            send_frame(c, GV_FRAME_ACK, v, sizeof(v));
        }
        c->ack_pending = false;
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct ag_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);

    for (;;) {
        size_t before = evbuffer_get_length(in);
        if (!process_input(c)) {
            conn_close(c);
            return;
        }
        if (evbuffer_get_length(in) == before || evbuffer_get_length(in) < GV_FRAME_HDR) {
            return;
        }
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        conn_close(arg);
    }
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
    struct ag_agent *ag = arg;
    struct ag_conn *c = gv_calloc(1, sizeof(*c));

    c->ag = ag;
    c->bev = bufferevent_socket_new(ag->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev) {
        close(fd);
        gv_free(c);
        return;
    }
    /* A bounded read buffer: a sender that outruns us waits in its own spool. */
    bufferevent_setwatermark(c->bev, EV_READ, 0, 4u * 1024u * 1024u);
    bufferevent_set_max_single_read(c->bev, 1024 * 1024);
    bufferevent_priority_set(c->bev, 0);
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->next = ag->conns;
    ag->conns = c;
    ag->connections++;
}

/* ---- lifecycle ----------------------------------------------------------------------- */

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct ag_agent *ag = arg;
    gv_log(GV_LOG_INFO, MOD, "stopping", "signal=%d", (int)sig);
    event_base_loopexit(ag->base, NULL);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    struct ag_agent *ag = arg;
    if (atomic_load(&ag->stop_requested)) {
        event_base_loopexit(ag->base, NULL);
    }
}

/* Refuses to take over a socket another agent is serving; removes a stale one. */
static gv_rc prepare_socket_path(const char *path)
{
    struct sockaddr_un sa;
    struct stat st;
    int fd;

    if (lstat(path, &st) != 0) {
        return GV_OK;
    }
    if (!S_ISSOCK(st.st_mode)) {
        gv_log(GV_LOG_ERROR, MOD, "socket path exists and is not a socket", "path=%s", path);
        return GV_EIO;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        close(fd);
        gv_log(GV_LOG_ERROR, MOD, "another agent is listening", "socket=%s", path);
        return GV_EIO;
    }
    if (fd >= 0) {
        close(fd);
    }
    unlink(path);
    return GV_OK;
}

static gv_rc listen_socket(struct ag_agent *ag)
{
    struct sockaddr_un sa;
    mode_t old;
    gv_rc rc;

    rc = prepare_socket_path(ag->sock_path);
    if (rc) {
        return rc;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, ag->sock_path, strlen(ag->sock_path) + 1);
    /* umask at bind time: the socket is never world-accessible, not even briefly. */
    old = umask(0177);
    ag->listener = evconnlistener_new_bind(ag->base, on_accept, ag,
                                           LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 128,
                                           (struct sockaddr *)&sa, (int)sizeof(sa));
    umask(old);
    if (!ag->listener) {
        gv_log(GV_LOG_ERROR, MOD, "cannot listen", "socket=%s errno=%d", ag->sock_path, errno);
        return GV_EIO;
    }
    if (ag->opts.socket_group) {
        struct group *g = getgrnam(ag->opts.socket_group);
        if (!g || chown(ag->sock_path, (uid_t)-1, g->gr_gid) != 0 ||
            chmod(ag->sock_path, 0660) != 0) {
            gv_log(GV_LOG_ERROR, MOD, "cannot give the socket to the group", "group=%s",
                   ag->opts.socket_group);
            return GV_EIO;
        }
    }
    return GV_OK;
}

gv_rc ag_agent_create(const struct ag_opts *opts, struct ag_agent **out)
{
    struct ag_agent *ag = gv_calloc(1, sizeof(*ag));
    char dir[4128];
    char sock[4096];
    struct timeval tv;
    gv_rc rc;

    *out = NULL;
    ag->opts = *opts;
    ag->lock_fd = -1;
    pthread_mutex_init(&ag->jlock, NULL);
    pthread_cond_init(&ag->jcond, NULL);
    ag->journal_fd = -1;
    gv_buf_init(&ag->jbuf, 0);
    snprintf(ag->state_dir, sizeof(ag->state_dir), "%s", opts->state_dir);
    if (opts->label) {
        snprintf(ag->label, sizeof(ag->label), "%s", opts->label);
    }
    else if (gethostname(ag->label, sizeof(ag->label) - 1) != 0) {
        snprintf(ag->label, sizeof(ag->label), "kt-agent");
    }
    if (opts->socket_path) {
        snprintf(sock, sizeof(sock), "%s", opts->socket_path);
    }
    else if (gv_agent_socket_default(ag->state_dir, sock, sizeof(sock)) != GV_OK) {
        rc = GV_E2BIG;
        goto out;
    }
    if (strlen(sock) >= sizeof(ag->sock_path)) {
        gv_log(GV_LOG_ERROR, MOD, "socket path too long", "max=%zu", sizeof(ag->sock_path) - 1);
        rc = GV_E2BIG;
        goto out;
    }
    memcpy(ag->sock_path, sock, strlen(sock) + 1);
    snprintf(dir, sizeof(dir), "%s/agent", ag->state_dir);
    /* An existing directory on a read-only file system passes mkdir -p (EEXIST):
     * check that it can be written, so the error names the real cause. An
     * unusable state dir is the operator's to fix, like a bad option: exit 2. */
    if (gv_mkdir_p(dir, 0700) != GV_OK || gv_dir_check(dir) != GV_OK) {
        gv_log(GV_LOG_ERROR, MOD, "cannot use state dir", "path=%s err=\"%s\"", dir,
               strerror(errno));
        rc = GV_ECONFIG;
        goto out;
    }
    snprintf(ag->journal_path, sizeof(ag->journal_path), "%s/journal", dir);
    snprintf(ag->state_path, sizeof(ag->state_path), "%s/state.json", dir);
    {
        char lock[4160];
        snprintf(lock, sizeof(lock), "%s/lock", dir);
        ag->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (ag->lock_fd < 0) {
            gv_log(GV_LOG_ERROR, MOD, "cannot open the state dir's lock file", "path=%s err=\"%s\"",
                   lock, strerror(errno));
            rc = GV_ECONFIG;
            goto out;
        }
        if (flock(ag->lock_fd, LOCK_EX | LOCK_NB) != 0) {
            if (errno == EWOULDBLOCK) {
                gv_log(GV_LOG_ERROR, MOD, "another agent uses this state dir", "path=%s", dir);
            }
            else {
                gv_log(GV_LOG_ERROR, MOD, "cannot lock the state dir", "path=%s err=\"%s\"", lock,
                       strerror(errno));
            }
            rc = GV_EIO;
            goto out;
        }
    }
    ag->runs = ag_runs_create(opts->idle_ms);
    ag->instances = lh_kchar_table_new(16, instance_free_entry);
    ag->recs = gv_malloc(BATCH_MAX * sizeof(*ag->recs));
    ag->rec_inst = gv_malloc(BATCH_MAX * sizeof(*ag->rec_inst));
    ag->rec_seq = gv_malloc(BATCH_MAX * sizeof(*ag->rec_seq));
    ag->evs = gv_malloc(BATCH_MAX * sizeof(*ag->evs));
    rc = state_load(ag);
    if (rc) {
        gv_log(GV_LOG_ERROR, MOD, "state file unreadable", "path=%s rc=%s", ag->state_path,
               gv_rc_str(rc));
        goto out;
    }
    rc = journal_replay(ag);
    if (rc) {
        gv_log(GV_LOG_ERROR, MOD, "journal unreadable", "path=%s", ag->journal_path);
        goto out;
    }
    ag->journal_fd = open(ag->journal_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (ag->journal_fd < 0) {
        rc = GV_EIO;
        goto out;
    }
    ag->base = event_base_new();
    /* Two priorities: reads first, then the group commit that acknowledges them. */
    if (!ag->base || event_base_priority_init(ag->base, 2) != 0) {
        rc = GV_EIO;
        goto out;
    }
    rc = listen_socket(ag);
    if (rc) {
        goto out;
    }
    rc = exporters_start(ag);
    if (rc) {
        goto out;
    }
    ag->commit_ev = event_new(ag->base, -1, 0, on_commit, ag);
    event_priority_set(ag->commit_ev, 1);
    ag->flush_ev = event_new(ag->base, -1, EV_PERSIST, on_flush, ag);
    tv.tv_sec = (time_t)(opts->flush_ms / 1000);
    tv.tv_usec = (suseconds_t)(opts->flush_ms % 1000) * 1000;
    event_add(ag->flush_ev, &tv);
    ag->stop_ev = event_new(ag->base, -1, EV_PERSIST, on_stop, ag);
    tv.tv_sec = 0;
    tv.tv_usec = 100000;
    event_add(ag->stop_ev, &tv);
    gv_log(GV_LOG_INFO, MOD, "listening", "socket=%s state=%s events=%llu runs=%zu", ag->sock_path,
           ag->state_dir, (unsigned long long)atomic_load(&ag->events), ag_runs_count(ag->runs));
    *out = ag;
    ag = NULL;
out:
    ag_agent_destroy(ag);
    return rc;
}

gv_rc ag_agent_run(struct ag_agent *ag, bool handle_signals)
{
    if (handle_signals) {
        signal(SIGPIPE, SIG_IGN);
        ag->sigterm_ev = evsignal_new(ag->base, SIGTERM, on_signal, ag);
        ag->sigint_ev = evsignal_new(ag->base, SIGINT, on_signal, ag);
        evsignal_add(ag->sigterm_ev, NULL);
        evsignal_add(ag->sigint_ev, NULL);
    }
    event_base_dispatch(ag->base);
    flush_now(ag, true);
    /* The exporters get the last batch and one final attempt at what is queued. */
    jobs_stop(ag);
    gv_log(GV_LOG_INFO, MOD, "stopped", "events=%llu runs=%zu",
           (unsigned long long)atomic_load(&ag->events), ag_runs_count(ag->runs));
    return GV_OK;
}

void ag_agent_stop(struct ag_agent *ag)
{
    atomic_store(&ag->stop_requested, 1);
}

uint64_t ag_agent_events(struct ag_agent *ag)
{
    return atomic_load(&ag->events);
}

void ag_agent_destroy(struct ag_agent *ag)
{
    if (!ag) {
        return;
    }
    while (ag->conns) {
        conn_close(ag->conns);
    }
    exporters_stop(ag);
    if (ag->listener) {
        evconnlistener_free(ag->listener);
        unlink(ag->sock_path);
    }
    if (ag->flush_ev) {
        event_free(ag->flush_ev);
    }
    if (ag->stop_ev) {
        event_free(ag->stop_ev);
    }
    if (ag->commit_ev) {
        event_free(ag->commit_ev);
    }
    if (ag->sigterm_ev) {
        event_free(ag->sigterm_ev);
    }
    if (ag->sigint_ev) {
        event_free(ag->sigint_ev);
    }
    if (ag->base) {
        event_base_free(ag->base);
    }
    if (ag->journal_fd >= 0) {
        close(ag->journal_fd);
    }
    if (ag->lock_fd >= 0) {
        close(ag->lock_fd);
    }
    ag_runs_destroy(ag->runs);
    gv_ydoc_destroy(ag->cfg_doc);
    pthread_mutex_destroy(&ag->jlock);
    pthread_cond_destroy(&ag->jcond);
    if (ag->instances) {
        lh_table_free(ag->instances);
    }
    gv_free(ag->recs);
    gv_free(ag->rec_inst);
    gv_free(ag->rec_seq);
    gv_free(ag->evs);
    gv_buf_free(&ag->jbuf);
    gv_free(ag);
}

/* ---- status client ------------------------------------------------------------------- */

gv_rc ag_status_query(const char *socket_path, bool json, int timeout_ms, struct gv_buf *out)
{
    struct sockaddr_un sa;
    struct gv_buf in;
    uint8_t req[GV_FRAME_HDR + 1];
    uint64_t deadline = gv_mono_us() + (uint64_t)timeout_ms * 1000;
    int fd = -1;
    gv_rc rc = GV_OK;

    if (strlen(socket_path) >= sizeof(sa.sun_path)) {
        return GV_E2BIG;
    }
    gv_buf_init(&in, CONN_OUT_MAX + GV_FRAME_MAX);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, socket_path, strlen(socket_path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        rc = GV_EIO;
        goto out;
    }
    gv_put_u32le(req, 1);
    req[4] = GV_FRAME_STATUS;
    req[5] = json ? 1 : 0;
    if (send(fd, req, sizeof(req), MSG_NOSIGNAL) != (ssize_t)sizeof(req)) {
        rc = GV_EIO;
        goto out;
    }
    for (;;) {
        char tmp[65536];
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        uint64_t now = gv_mono_us();
        ssize_t r;
        size_t off = 0;
        bool done = false;

        if (now >= deadline) {
            rc = GV_ETIMEDOUT;
            goto out;
        }
        if (poll(&pfd, 1, (int)((deadline - now) / 1000) + 1) <= 0) {
            continue;
        }
        r = recv(fd, tmp, sizeof(tmp), 0);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            rc = GV_EIO;
            goto out;
        }
        rc = gv_buf_append(&in, tmp, (size_t)r);
        if (rc) {
            goto out;
        }
        for (;;) {
            unsigned type;
            const uint8_t *p;
            size_t plen, used;
            if (gv_frame_parse(in.data + off, in.len - off, &type, &p, &plen, &used) != GV_OK) {
                break;
            }
            if (type == GV_FRAME_STATUS_REPLY) {
                if (plen == 0) {
                    done = true;
                }
                else {
                    rc = gv_buf_append(out, p, plen);
                    if (rc) {
                        goto out;
                    }
                }
            }
            off += used;
        }
        gv_buf_consume(&in, off);
        if (done) {
            break;
        }
    }
out:
    if (fd >= 0) {
        close(fd);
    }
    gv_buf_free(&in);
    return rc;
}
