/* exporters/prom/prom.c - Prometheus text exposition of per-run aggregates */
/* SPDX-License-Identifier: Apache-2.0 */
#include "exporters/prom/prom.h"

#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <json-c/linkhash.h>

#include "core/gv_log.h"
#include "core/gv_mem.h"
#include "core/gv_pii.h"
#include "core/gv_thread.h"

#define MOD "exporter:prom"
#define PAGE_MAX (256u * 1024u * 1024u)
/* Histogram buckets: every 4th edge of the agent's grid (1e-4 s * 10^(i/2)),
 * so each agent bin lands in exactly one bucket. */
#define NBUCKETS 16

struct prom_run {
    char *key;
    /* The run's latest snapshot: its counts are cumulative, so they are shown as they are;
     * its histogram is the last interval's only and is accumulated below instead. */
    struct ex_run_snapshot last;
    uint64_t buckets[NBUCKETS + 1]; /* last: above every bound (+Inf only) */
    uint64_t hist_count;
    double hist_sum; /* from bin midpoints: the snapshot carries no exact sums */
};

struct prom_ctx {
    const char *listen; /* config map: HOST:PORT */
    struct lh_table *runs;
    struct ex_agent_stats stats;
    /* HTTP side, on its own thread */
    struct event_base *base;
    struct evhttp *http;
    struct event *tick; /* checks `stopping` from inside the HTTP thread */
    _Atomic int stopping;
    pthread_t thread;
    bool thread_started;
    int port;
    pthread_mutex_t lock;
    char *page; /* published by flush */
    size_t page_len;
};

static const struct gv_cfg_map prom_config[] = {
    {"listen", GV_CFG_STR, offsetof(struct prom_ctx, listen), NULL, GV_CFG_REQUIRED, NULL, 0, 0,
     "`HOST:PORT` that serves `GET /metrics`; `kt agent run --metrics-listen A` sets it, and "
     "without either the exporter is off"},
    {NULL, 0, 0, NULL, 0, NULL, 0, 0, NULL},
};

static double bucket_bound(unsigned i)
{
    return 1e-4 * pow(10.0, (double)i / 2.0);
}

static void run_free_entry(struct lh_entry *e)
{
    struct prom_run *r = (struct prom_run *)lh_entry_v(e);
    gv_free(r->key);
    gv_free(r);
}

/* ---- format -------------------------------------------------------------------------- */

static void merge_snapshot(struct prom_ctx *c, const struct ex_run_snapshot *s)
{
    struct gv_buf k;
    struct prom_run *r;
    void *v = NULL;
    uint32_t i;
    unsigned b;

    gv_buf_init(&k, 0);
    (void)gv_buf_appendf(&k, "%s\x1f%s", s->project, s->run_id);
    if (lh_table_lookup_ex(c->runs, k.data, &v)) {
        r = v;
        gv_buf_free(&k);
    }
    else {
        r = gv_calloc(1, sizeof(*r));
        r->key = gv_buf_steal(&k);
        if (lh_table_insert(c->runs, r->key, r) != 0) {
            abort(); /* json-c allocation failure: same policy as gv_malloc */
        }
    }
    /* Counts in a snapshot are cumulative: take them as they are. */
    r->last = *s;
    if (r->last.nblocked_by > GV_RECORD_MAX_POLICIES) {
        r->last.nblocked_by = GV_RECORD_MAX_POLICIES;
    }
    /* The histogram covers the interval only: accumulate it. */
    for (i = 0; i < s->hist_nbins && i < EX_HIST_MAX_BINS; i++) {
        double hi = s->hist_edges[i + 1];
        double lo = s->hist_edges[i];
        if (!s->hist_counts[i]) {
            continue;
        }
        for (b = 0; b < NBUCKETS; b++) {
            if (hi > 0 && hi <= bucket_bound(b) * (1 + 1e-9)) {
                break;
            }
        }
        r->buckets[b] += s->hist_counts[i];
        r->hist_count += s->hist_counts[i];
        r->hist_sum += (double)s->hist_counts[i] * (lo > 0 && hi > 0 ? sqrt(lo * hi) : hi / 2);
    }
}

/* Prometheus label values escape backslash, double quote and newline. */
static gv_rc label(struct gv_buf *out, const char *v)
{
    gv_rc rc = GV_OK;
    for (; *v && rc == GV_OK; v++) {
        if (*v == '\\') {
            rc = gv_buf_append_str(out, "\\\\");
        }
        else if (*v == '"') {
            rc = gv_buf_append_str(out, "\\\"");
        }
        else if (*v == '\n') {
            rc = gv_buf_append_str(out, "\\n");
        }
        else {
            rc = gv_buf_append_char(out, *v);
        }
    }
    return rc;
}

#define TRY(x)                                                                                     \
    do {                                                                                           \
        rc = (x);                                                                                  \
        if (rc) {                                                                                  \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

static gv_rc series(struct gv_buf *out, const char *name, const struct prom_run *r, const char *k2,
                    const char *v2, const char *valfmt, ...) __attribute__((format(printf, 6, 7)));

/* name{run_id="..",project=".."[,k2="v2"]} value */
static gv_rc series(struct gv_buf *out, const char *name, const struct prom_run *r, const char *k2,
                    const char *v2, const char *valfmt, ...)
{
    va_list ap;
    gv_rc rc;

    TRY(gv_buf_appendf(out, "%s{run_id=\"", name));
    TRY(label(out, r->last.run_id));
    if (k2 && strcmp(k2, "-project") == 0) {
        k2 = NULL;
    }
    else {
        TRY(gv_buf_append_str(out, "\",project=\""));
        TRY(label(out, r->last.project));
    }
    if (k2) {
        TRY(gv_buf_appendf(out, "\",%s=\"", k2));
        TRY(label(out, v2));
    }
    TRY(gv_buf_append_str(out, "\"} "));
    va_start(ap, valfmt);
    rc = gv_buf_vappendf(out, valfmt, ap);
    va_end(ap);
    if (rc) {
        goto out;
    }
    rc = gv_buf_append_char(out, '\n');
out:
    return rc;
}

static gv_rc delivery_series(struct gv_buf *out, const struct ex_agent_stats *st);

static gv_rc render(struct prom_ctx *c, struct gv_buf *out)
{
    static const char *const decisions[] = {"allowed", "redacted", "blocked", "error"};
    struct lh_entry *e;
    uint32_t i;
    gv_rc rc = GV_OK;

    TRY(gv_buf_append_str(out, "# HELP kt_requests_total Requests seen by the gateway, by "
                               "decision.\n# TYPE kt_requests_total counter\n"));
    lh_foreach(c->runs, e)
    {
        const struct prom_run *r = lh_entry_v(e);
        const uint64_t v[] = {r->last.allowed, r->last.redacted, r->last.blocked, r->last.errors};
        for (i = 0; i < 4; i++) {
            TRY(series(out, "kt_requests_total", r, "decision", decisions[i], "%llu",
                       (unsigned long long)v[i]));
        }
    }
    TRY(gv_buf_append_str(out, "# HELP kt_policy_blocks_total Requests blocked, by policy.\n"
                               "# TYPE kt_policy_blocks_total counter\n"));
    lh_foreach(c->runs, e)
    {
        const struct prom_run *r = lh_entry_v(e);
        const struct ex_blocked_by *by = r->last.blocked_by;
        for (i = 0; i < r->last.nblocked_by; i++) {
            TRY(series(out, "kt_policy_blocks_total", r, "policy", by[i].policy, "%llu",
                       (unsigned long long)by[i].count));
        }
    }
    TRY(gv_buf_append_str(out, "# HELP kt_pii_redacted_total PII entities redacted, by type.\n"
                               "# TYPE kt_pii_redacted_total counter\n"));
    lh_foreach(c->runs, e)
    {
        const struct prom_run *r = lh_entry_v(e);
        for (i = 0; i < GV_PII_NTYPES; i++) {
            if (r->last.pii[i]) {
                TRY(series(out, "kt_pii_redacted_total", r, "entity_type", gv_pii_name((int)i),
                           "%llu", (unsigned long long)r->last.pii[i]));
            }
        }
    }
    TRY(gv_buf_append_str(out, "# HELP kt_tokens_total Tokens, by kind.\n"
                               "# TYPE kt_tokens_total counter\n"));
    lh_foreach(c->runs, e)
    {
        const struct prom_run *r = lh_entry_v(e);
        TRY(series(out, "kt_tokens_total", r, "kind", "prompt", "%llu",
                   (unsigned long long)r->last.tokens_prompt));
        TRY(series(out, "kt_tokens_total", r, "kind", "completion", "%llu",
                   (unsigned long long)r->last.tokens_completion));
    }
    TRY(gv_buf_append_str(out, "# HELP kt_cost_usd_total Estimated cost in US dollars.\n"
                               "# TYPE kt_cost_usd_total counter\n"));
    lh_foreach(c->runs, e)
    {
        TRY(series(out, "kt_cost_usd_total", lh_entry_v(e), NULL, NULL, "%.6f",
                   ((const struct prom_run *)lh_entry_v(e))->last.cost_usd));
    }
    TRY(gv_buf_append_str(out, "# HELP kt_request_latency_seconds Request latency through the "
                               "gateway (sum from bin midpoints).\n"
                               "# TYPE kt_request_latency_seconds histogram\n"));
    lh_foreach(c->runs, e)
    {
        const struct prom_run *r = lh_entry_v(e);
        uint64_t cum = 0;
        char le[32];
        for (i = 0; i < NBUCKETS; i++) {
            cum += r->buckets[i];
            snprintf(le, sizeof(le), "%g", bucket_bound(i));
            TRY(series(out, "kt_request_latency_seconds_bucket", r, "le", le, "%llu",
                       (unsigned long long)cum));
        }
        TRY(series(out, "kt_request_latency_seconds_bucket", r, "le", "+Inf", "%llu",
                   (unsigned long long)r->hist_count));
        TRY(series(out, "kt_request_latency_seconds_sum", r, NULL, NULL, "%.6f", r->hist_sum));
        TRY(series(out, "kt_request_latency_seconds_count", r, NULL, NULL, "%llu",
                   (unsigned long long)r->hist_count));
    }
    TRY(gv_buf_appendf(
        out,
        "# HELP kt_agent_events_total Governance events counted by the agent.\n"
        "# TYPE kt_agent_events_total counter\nkt_agent_events_total %llu\n"
        "# HELP kt_agent_duplicate_events_total Replayed events already counted.\n"
        "# TYPE kt_agent_duplicate_events_total counter\n"
        "kt_agent_duplicate_events_total %llu\n"
        "# HELP kt_agent_bad_frames_total Frames that did not decode.\n"
        "# TYPE kt_agent_bad_frames_total counter\nkt_agent_bad_frames_total %llu\n"
        "# HELP kt_agent_connections_total Gateway and client connections.\n"
        "# TYPE kt_agent_connections_total counter\n"
        "kt_agent_connections_total %llu\n"
        "# HELP kt_agent_flushes_total Exporter flushes.\n"
        "# TYPE kt_agent_flushes_total counter\nkt_agent_flushes_total %llu\n"
        "# HELP kt_agent_exporter_retries_total Exporter flushes to retry.\n"
        "# TYPE kt_agent_exporter_retries_total counter\n"
        "kt_agent_exporter_retries_total %llu\n"
        "# HELP kt_agent_exporter_drops_total Exporter payloads given up.\n"
        "# TYPE kt_agent_exporter_drops_total counter\n"
        "kt_agent_exporter_drops_total %llu\n"
        "# HELP kt_agent_active_runs Runs held in memory.\n"
        "# TYPE kt_agent_active_runs gauge\nkt_agent_active_runs %llu\n"
        "# HELP kt_agent_journal_bytes Journal bytes since the last checkpoint.\n"
        "# TYPE kt_agent_journal_bytes gauge\nkt_agent_journal_bytes %llu\n",
        (unsigned long long)c->stats.events, (unsigned long long)c->stats.duplicates,
        (unsigned long long)c->stats.bad_frames, (unsigned long long)c->stats.connections,
        (unsigned long long)c->stats.flushes, (unsigned long long)c->stats.exporter_retries,
        (unsigned long long)c->stats.exporter_drops, (unsigned long long)c->stats.active_runs,
        (unsigned long long)c->stats.journal_bytes));
    TRY(delivery_series(out, &c->stats));
out:
    return rc;
}

/* The delivery counters of exporters that send per-request data (OTLP). */
static gv_rc delivery_series(struct gv_buf *out, const struct ex_agent_stats *st)
{
    static const struct {
        const char *name, *type, *help;
    } fam[] = {
        {"kt_agent_export_sent_total", "counter",
         "Requests whose data an exporter's backend acknowledged."},
        {"kt_agent_export_queued", "gauge", "Requests waiting on disk for an exporter."},
        {"kt_agent_export_dropped_total", "counter",
         "Requests an exporter gave up: queue full or refused by the backend."},
        {"kt_agent_export_retries_total", "counter",
         "Export requests answered with a retryable failure."},
    };
    size_t f, i;
    gv_rc rc = GV_OK;

    if (st->nexporters == 0) {
        return GV_OK;
    }
    for (f = 0; f < sizeof(fam) / sizeof(fam[0]) && rc == GV_OK; f++) {
        rc = gv_buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", fam[f].name, fam[f].help,
                            fam[f].name, fam[f].type);
        for (i = 0; i < st->nexporters && i < EX_EXPORTERS_MAX && rc == GV_OK; i++) {
            const struct ex_stats *e = &st->exporters[i].st;
            uint64_t v = f == 0 ? e->sent : f == 1 ? e->queued : f == 2 ? e->dropped : e->retries;
            rc = gv_buf_appendf(out, "%s{exporter=\"%s\"} %llu\n", fam[f].name,
                                st->exporters[i].name, (unsigned long long)v);
        }
    }
    return rc;
}

/* Folds the batch into the exporter's table and renders the whole page. No I/O
 * and no clock, so the bytes depend only on the batches seen, in order. */
static gv_rc prom_format(struct ex_exporter *ex, const struct ex_batch *batch, struct gv_buf *out)
{
    struct prom_ctx *c = ex->ctx;
    struct lh_entry *e, *tmp;
    size_t i;
    gv_rc rc;

    for (i = 0; i < batch->nruns; i++) {
        merge_snapshot(c, &batch->runs[i]);
    }
    rc = render(c, out);
    /* A finalised run is shown one last time, then forgotten. */
    lh_foreach_safe(c->runs, e, tmp)
    {
        if (((struct prom_run *)lh_entry_v(e))->last.finalized) {
            lh_table_delete(c->runs, lh_entry_k(e));
        }
    }
    return rc;
}

static enum ex_flush prom_flush(struct ex_exporter *ex, const struct gv_buf *payload)
{
    struct prom_ctx *c = ex->ctx;
    char *page = gv_malloc(payload->len + 1);

    memcpy(page, payload->data, payload->len);
    page[payload->len] = '\0';
    pthread_mutex_lock(&c->lock);
    gv_free(c->page);
    c->page = page;
    c->page_len = payload->len;
    pthread_mutex_unlock(&c->lock);
    return EX_FLUSH_OK;
}

/* ---- HTTP ---------------------------------------------------------------------------- */

static void on_metrics(struct evhttp_request *req, void *arg)
{
    struct prom_ctx *c = arg;
    struct evbuffer *body = evbuffer_new();

    if (!body) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
        evhttp_send_error(req, 405, NULL);
        evbuffer_free(body);
        return;
    }
    pthread_mutex_lock(&c->lock);
    if (c->page) {
        evbuffer_add(body, c->page, c->page_len);
    }
    pthread_mutex_unlock(&c->lock);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    evhttp_send_reply(req, 200, "OK", body);
    evbuffer_free(body);
}

/* Stopping is polled rather than signalled: it needs no cross-thread wakeup
 * support from libevent and costs ten wakeups a second. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct prom_ctx *c = arg;
    if (atomic_load(&c->stopping)) {
        event_base_loopbreak(c->base);
    }
}

static void *http_main(void *arg)
{
    struct prom_ctx *c = arg;
    event_base_dispatch(c->base);
    return NULL;
}

static gv_rc split_hostport(const char *s, char *host, size_t hsize, int *port)
{
    const char *colon = strrchr(s, ':');
    char *end = NULL;
    long p;
    size_t n;

    if (!colon || colon == s) {
        return GV_EINVAL;
    }
    n = (size_t)(colon - s);
    if (s[0] == '[' && n >= 2 && s[n - 1] == ']') {
        s++;
        n -= 2;
    }
    if (n >= hsize) {
        return GV_EINVAL;
    }
    memcpy(host, s, n);
    host[n] = '\0';
    p = strtol(colon + 1, &end, 10);
    if (!end || *end || end == colon + 1 || p < 0 || p > 65535) {
        return GV_EINVAL;
    }
    *port = (int)p;
    return GV_OK;
}

static void prom_destroy(struct ex_exporter *ex);

static gv_rc prom_init(struct ex_exporter *ex, const char *state_dir)
{
    struct prom_ctx *c = ex->ctx;
    struct evhttp_bound_socket *bound;
    char host[256];
    int port;
    gv_rc rc;

    pthread_mutex_init(&c->lock, NULL);
    c->runs = lh_kchar_table_new(256, run_free_entry);
    rc = split_hostport(c->listen ? c->listen : "", host, sizeof(host), &port);
    if (rc) {
        gv_log(GV_LOG_ERROR, MOD, "listen must be HOST:PORT", NULL);
        rc = GV_ECONFIG;
        goto out;
    }
    c->base = event_base_new();
    c->http = c->base ? evhttp_new(c->base) : NULL;
    if (!c->http) {
        rc = GV_EIO;
        goto out;
    }
    evhttp_set_cb(c->http, "/metrics", on_metrics, c);
    evhttp_set_allowed_methods(c->http, EVHTTP_REQ_GET);
    bound = evhttp_bind_socket_with_handle(c->http, host, (uint16_t)port);
    if (!bound) {
        gv_log(GV_LOG_ERROR, MOD, "cannot listen", "addr=%s", c->listen);
        rc = GV_EIO;
        goto out;
    }
    {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        evutil_socket_t fd = evhttp_bound_socket_get_fd(bound);
        if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
            if (ss.ss_family == AF_INET) {
                c->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
            }
            else if (ss.ss_family == AF_INET6) {
                c->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
            }
        }
    }
    {
        struct timeval tv = {0, 100000};
        c->tick = event_new(c->base, -1, EV_PERSIST, on_tick, c);
        if (!c->tick || event_add(c->tick, &tv) != 0) {
            rc = GV_EIO;
            goto out;
        }
    }
    if (gv_thread_start(&c->thread, "kt-prom", GV_THREAD_SERVING, http_main, c) != GV_OK) {
        rc = GV_EIO;
        goto out;
    }
    c->thread_started = true;
    gv_log(GV_LOG_INFO, MOD, "metrics listening", "host=%s port=%d", host, c->port);
out:
    if (rc) {
        /* The agent does not call destroy after a failed init. */
        prom_destroy(ex);
    }
    return rc;
}

static void prom_destroy(struct ex_exporter *ex)
{
    struct prom_ctx *c = ex->ctx;

    if (c->thread_started) {
        atomic_store(&c->stopping, 1);
        pthread_join(c->thread, NULL);
        c->thread_started = false;
    }
    if (c->tick) {
        event_free(c->tick);
        c->tick = NULL;
    }
    if (c->http) {
        evhttp_free(c->http);
        c->http = NULL;
    }
    if (c->base) {
        event_base_free(c->base);
        c->base = NULL;
    }
    if (c->runs) {
        lh_table_free(c->runs);
        c->runs = NULL;
        pthread_mutex_destroy(&c->lock);
    }
    gv_free(c->page);
    c->page = NULL;
}

/* The agent's counters the next format() renders; same thread as format(). */
static void prom_agent_stats(struct ex_exporter *ex, const struct ex_agent_stats *st)
{
    ((struct prom_ctx *)ex->ctx)->stats = *st;
}

int ex_prom_port(struct ex_exporter *ex)
{
    return ((struct prom_ctx *)ex->ctx)->port;
}

const struct ex_exporter_ops ex_prom = {
    .name = "prom",
    .flags = EX_OPS_OPT_IN | EX_OPS_METRICS_LISTEN,
    .config_map = prom_config,
    .ctx_size = sizeof(struct prom_ctx),
    .init = prom_init,
    .format = prom_format,
    .flush = prom_flush,
    .destroy = prom_destroy,
    .agent_stats = prom_agent_stats,
};
