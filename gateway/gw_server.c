/* gateway/gw_server.c - the HTTP server: evhttp workers, routing, request lifecycle */
/* SPDX-License-Identifier: Apache-2.0 */
#include "gateway/gw_server.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <json-c/json.h>

#include "core/gv_buf.h"
#include "core/gv_log.h"
#include "core/gv_mem.h"
#include "core/gv_thread.h"
#include "core/gv_time.h"
#include "gateway/gw_http.h"
#include "gateway/gw_sse.h"
#include "gateway/gw_trace.h" /* trace: */
#include "gateway/gw_upstream.h"

#define MOD "gateway"
/* Past this many bytes waiting for a slow client, the upstream transfer pauses. */
#define OUT_HIGH_WATER (256u * 1024u)
#define JSON_DEPTH 64
#define SSE_EVENT_MAX (1024u * 1024u)
#define ERR_BODY_MAX (64u * 1024u)
#define MAX_CHOICES 128
#define LISTEN_BACKLOG 1024
#define HEADERS_MAX (64 * 1024)
/* Idle keep-alive connections are closed after this; requests waiting for a
 * slow upstream are not affected because libevent only times out reads. */
#define CONN_TIMEOUT_S 300
#define DRAIN_DEFAULT_MS 10000L
/* Finished request objects (about 4 KB each) kept per worker for the next requests, with
 * their URL and answer buffers when those stayed small: no calloc and no buffer growth per
 * request. */
#define RQ_FREE_MAX 64u
#define RQ_KEEP_BUF (64u * 1024u)

struct worker;

/* Per-request state of a chat completion; lives from arrival to finish(). */
struct rq {
    struct worker *w;
    struct evhttp_request *req; /* NULL once libevent took it back */
    struct rq *prev;
    struct rq *next;
    struct gw_req preq;
    struct gv_record rec;
    struct json_object *body;
    char *model;
    char *api_key;
    const char *send_body;
    size_t send_len;
    struct gv_buf url;
    struct gw_upstream_call *call;
    uint64_t t_start;
    uint64_t t_up_start;
    uint64_t t_up_end;
    uint64_t cb_t0; /* when the current callback began */
    uint64_t gw_us; /* time spent in the gateway's own code so far */
    bool stream;
    bool client_usage;
    bool sse_mode;
    bool headers_sent;
    bool client_gone;
    bool paused;
    bool in_cb;
    bool resp_too_big;
    bool stream_failed;
    bool policy_failed; /* a response policy failed: the answer is withheld */
    bool saw_done;
    bool rewrite;
    enum gv_decision decision;
    long up_status;
    char up_ctype[128];
    char up_reqid[128];
    char up_retry[64];
    char *up_openai; /* "openai-*: v\r\n" lines */
    struct gv_buf resp;
    struct gw_sse sse;
    struct gw_chain_stream *cs;
    unsigned char choice_state[MAX_CHOICES]; /* 0 unseen, 1 open, 2 finished */
    char last_id[128];
    char last_model[128];
    long long last_created;
    struct evbuffer *pending; /* what the next chunk sends */
    struct gv_buf scratch;
};

struct worker {
    struct gw_server *srv;
    int idx;
    pthread_t thread;
    bool started;
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    int fd;
    struct gw_upstream *up;
    struct gw_reqid ids;
    struct event *stop_ev;
    int stop_fd; /* eventfd: the only way other threads reach this worker */
    struct event *drain_timer;
    struct event *accept_retry; /* re-enables accepting after running out of fds */
    unsigned long long accept_fails;
    uint64_t accept_logged_us;
    struct rq *active;
    size_t nactive;
    size_t nlinger; /* answered while draining, connection still flushing */
    bool draining;
    json_tokener *tok;
    struct rq *free_rq; /* linked through next */
    size_t nfree;
};

struct gw_server {
    const struct gw_config *cfg;
    struct gw_chain *chain;
    struct gw_emitter *em;
    int nworkers;
    struct worker *workers;
    char addr[128];
    uint64_t start_mono;
    uint64_t start_wall;
    _Atomic long stop_drain_ms;
    bool joined;
    char *models_json;
};

/* ---------------------------------------------------------------- helpers */

static void release_conn(struct worker *w, struct evhttp_request *req);

static const char *hdr_or_empty(const char *s)
{
    return s ? s : "";
}

/* Truncating copy; a plain copy because snprintf("%s") costs more than the whole copy. */
static void copy_str(char *dst, size_t size, const char *s)
{
    size_t n = s ? strnlen(s, size - 1) : 0;

    if (n > 0) {
        memcpy(dst, s, n);
    }
    dst[n] = '\0';
}

/* Log-safe copy of a client-chosen name: no spaces, quotes or controls. */
static void log_safe(char *dst, size_t size, const char *s)
{
    size_t i;

    for (i = 0; s && s[i] && i + 1 < size; i++) {
        unsigned char c = (unsigned char)s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 strchr("._:@/+-", c) != NULL;
        dst[i] = ok ? (char)c : '_';
    }
    dst[i] = '\0';
    if (i == 0 && size > 1) {
        copy_str(dst, size, "-");
    }
}

static uint64_t overhead_now(const struct rq *r)
{
    return r->gw_us + (gv_mono_us() - r->cb_t0);
}

/* The RFC 7231 Date value, formatted once a second per thread: libevent would otherwise
 * format it for every answer. Names are fixed English whatever the locale. */
static const char *http_date(void)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    static _Thread_local time_t last = (time_t)-1;
    static _Thread_local char buf[40];
    time_t now = time(NULL);
    struct tm tm;

    if (now != last && gmtime_r(&now, &tm) != NULL) {
        snprintf(buf, sizeof(buf), "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7],
                 tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                 tm.tm_sec);
        last = now;
    }
    return buf;
}

static void add_common_headers(struct evhttp_request *req, const char *reqid, const char *run_id,
                               enum gv_decision d, uint64_t overhead_us)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    const char *date = http_date();
    char ms[32];

    if (date[0]) {
        evhttp_add_header(h, "Date", date);
    }
    evhttp_add_header(h, "x-kt-request-id", reqid);
    if (run_id && run_id[0]) {
        evhttp_add_header(h, "x-kt-run-id", run_id);
    }
    evhttp_add_header(h, "x-kt-decision", gv_decision_str(d));
    gw_http_fmt_ms(overhead_us, ms, sizeof(ms));
    evhttp_add_header(h, "x-kt-overhead-ms", ms);
}

/* A complete response with a body; evhttp adds Content-Length. */
static void send_body(struct evhttp_request *req, int status, const char *ctype, const char *body,
                      size_t len)
{
    struct evbuffer *b = evbuffer_new();

    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
    if (b) {
        evbuffer_add(b, body, len);
    }
    evhttp_send_reply(req, status, NULL, b);
    if (b) {
        evbuffer_free(b);
    }
}

static void make_error(struct gv_buf *out, int status, const char *type, const char *code,
                       const char *param, const char *message)
{
    gv_buf_reset(out);
    if (gw_http_error_body(out, message, type ? type : gw_http_error_type(status), code, param) !=
        GV_OK) {
        gv_buf_reset(out);
        gw_http_error_body(out, "error", gw_http_error_type(status), code, NULL);
    }
}

/* --------------------------------------------------- simple (non-chat) routes */

static void simple_reply(struct worker *w, struct evhttp_request *req, const char *reqid,
                         uint64_t t0, int status, const char *body, size_t len, enum gv_decision d)
{
    add_common_headers(req, reqid, NULL, d, gv_mono_us() - t0);
    release_conn(w, req);
    send_body(req, status, "application/json", body, len);
}

static void simple_error(struct worker *w, struct evhttp_request *req, const char *reqid,
                         uint64_t t0, int status, const char *code, const char *message)
{
    struct gv_buf b;

    gv_buf_init(&b, ERR_BODY_MAX);
    make_error(&b, status, NULL, code, NULL, message);
    simple_reply(w, req, reqid, t0, status, b.data, b.len, GV_DECISION_ERROR);
    gv_buf_free(&b);
}

static const char *provider_name(enum gw_provider_kind k)
{
    return k == GW_PROVIDER_OPENAI ? "openai" : "openai-compatible";
}

static void handle_health(struct worker *w, struct evhttp_request *req, const char *reqid,
                          uint64_t t0)
{
    struct gw_server *s = w->srv;
    const struct gw_config *cfg = s->cfg;
    unsigned long long dropped = 0, pending = 0;
    uint64_t up = (gv_mono_us() - s->start_mono) / 1000000u;
    struct gv_buf b;
    size_t i, n;
    gv_rc rc;

    if (s->em && s->em->ops && s->em->ops->stats) {
        s->em->ops->stats(s->em, &dropped, &pending);
    }
    gv_buf_init(&b, 0);
    rc =
        gv_buf_appendf(&b, "{\"status\":\"ok\",\"version\":\"%s\",\"pack\":{\"name\":", KT_VERSION);
    rc = rc ? rc
            : gv_buf_append_json_str(&b, hdr_or_empty(cfg->pack_name),
                                     strlen(hdr_or_empty(cfg->pack_name)));
    rc = rc ? rc : gv_buf_append_str(&b, ",\"version\":");
    rc = rc ? rc
            : gv_buf_append_json_str(&b, hdr_or_empty(cfg->pack_version),
                                     strlen(hdr_or_empty(cfg->pack_version)));
    rc = rc ? rc
            : gv_buf_appendf(&b, ",\"enabled\":%s},\"targets\":[",
                             cfg->pack_enabled ? "true" : "false");
    for (i = 0; rc == GV_OK && i < cfg->ntargets; i++) {
        const struct gw_target *t = &cfg->targets[i];
        rc = gv_buf_append_str(&b, i ? ",{\"id\":" : "{\"id\":");
        rc = rc ? rc : gv_buf_append_json_str(&b, hdr_or_empty(t->id), strlen(hdr_or_empty(t->id)));
        rc =
            rc ? rc : gv_buf_appendf(&b, ",\"provider\":\"%s\",\"model\":", provider_name(t->kind));
        rc =
            rc ? rc
               : gv_buf_append_json_str(&b, hdr_or_empty(t->model), strlen(hdr_or_empty(t->model)));
        rc = rc ? rc : gv_buf_append_char(&b, '}');
    }
    rc = rc ? rc : gv_buf_append_str(&b, "],\"chain\":[");
    n = s->chain ? gw_chain_size(s->chain) : 0;
    for (i = 0; rc == GV_OK && i < n; i++) {
        const char *name = hdr_or_empty(gw_chain_name(s->chain, i));
        rc = i ? gv_buf_append_char(&b, ',') : GV_OK;
        rc = rc ? rc : gv_buf_append_json_str(&b, name, strlen(name));
    }
    rc = rc ? rc
            : gv_buf_appendf(&b,
                             "],\"uptime_s\":%llu,\"uptime\":%llu,\"workers\":%d,"
                             "\"events\":{\"dropped\":%llu,\"pending\":%llu}}",
                             (unsigned long long)up, (unsigned long long)up, s->nworkers, dropped,
                             pending);
    if (rc != GV_OK) {
        simple_error(w, req, reqid, t0, 500, "internal_error", "could not build health report");
    }
    else {
        simple_reply(w, req, reqid, t0, 200, b.data, b.len, GV_DECISION_ALLOWED);
    }
    gv_buf_free(&b);
}

static gv_rc append_model(struct gv_buf *b, bool *first, const char *id, const char *owner,
                          uint64_t created)
{
    gv_rc rc = gv_buf_append_str(b, *first ? "{\"id\":" : ",{\"id\":");

    *first = false;
    rc = rc ? rc : gv_buf_append_json_str(b, id, strlen(id));
    rc = rc ? rc
            : gv_buf_appendf(b, ",\"object\":\"model\",\"created\":%llu,\"owned_by\":",
                             (unsigned long long)created);
    rc = rc ? rc : gv_buf_append_json_str(b, owner, strlen(owner));
    rc = rc ? rc : gv_buf_append_char(b, '}');
    return rc;
}

/* The /v1/models body never changes while the server runs: build it once. */
static char *build_models(const struct gw_config *cfg, uint64_t created)
{
    struct gv_buf b;
    bool first = true;
    size_t i, j;
    gv_rc rc;

    gv_buf_init(&b, 0);
    rc = gv_buf_append_str(&b, "{\"object\":\"list\",\"data\":[");
    for (i = 0; rc == GV_OK && i < cfg->ntargets; i++) {
        const struct gw_target *t = &cfg->targets[i];
        bool dup = false;
        for (j = 0; j < i; j++) {
            dup = dup || (t->model && cfg->targets[j].model &&
                          strcmp(t->model, cfg->targets[j].model) == 0);
        }
        if (t->model && !dup) {
            rc = append_model(&b, &first, t->model, hdr_or_empty(t->id), created);
        }
    }
    for (i = 0; rc == GV_OK && i < cfg->ntargets; i++) {
        const struct gw_target *t = &cfg->targets[i];
        bool dup = false;
        for (j = 0; j < cfg->ntargets; j++) {
            dup = dup ||
                  (t->id && cfg->targets[j].model && strcmp(t->id, cfg->targets[j].model) == 0);
        }
        if (t->id && !dup) {
            rc = append_model(&b, &first, t->id, t->id, created);
        }
    }
    if (rc == GV_OK) {
        rc = gv_buf_append_str(&b, "]}");
    }
    return gv_buf_steal(&b);
}

static void handle_model_get(struct worker *w, struct evhttp_request *req, const char *reqid,
                             uint64_t t0, const char *id)
{
    const struct gw_target *t = gw_config_find_target(w->srv->cfg, id);
    struct gv_buf b;
    bool first = true;

    gv_buf_init(&b, ERR_BODY_MAX);
    if (!t) {
        make_error(&b, 404, NULL, "model_not_found", "model",
                   "The model does not exist or is not configured on this gateway.");
        simple_reply(w, req, reqid, t0, 404, b.data, b.len, GV_DECISION_ERROR);
    }
    else {
        /* append_model writes one object; drop the list framing. */
        append_model(&b, &first, id, hdr_or_empty(t->id), w->srv->start_wall / 1000000u);
        simple_reply(w, req, reqid, t0, 200, b.data, b.len, GV_DECISION_ALLOWED);
    }
    gv_buf_free(&b);
}

static void method_not_allowed(struct worker *w, struct evhttp_request *req, const char *reqid,
                               uint64_t t0, const char *allow)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
    simple_error(w, req, reqid, t0, 405, "method_not_allowed", "Method not allowed for this URL.");
}

/* ------------------------------------------------------------ chat: finish */

static void worker_maybe_exit(struct worker *w)
{
    if (w->draining && w->nactive == 0 && w->nlinger == 0) {
        event_base_loopexit(w->base, NULL);
    }
}

static void on_linger_close(struct evhttp_connection *evcon, void *arg)
{
    struct worker *w = arg;

    w->nlinger--;
    worker_maybe_exit(w);
}

/* Called right before the last bytes of an answer are queued. While draining,
 * the connection closes once they are written (Connection: close is honoured
 * even when added after the headers went out), and the worker waits for that
 * close so no answer is cut off by the exit. */
static void release_conn(struct worker *w, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = req ? evhttp_request_get_connection(req) : NULL;
    struct evkeyvalq *h;

    if (!evcon) {
        return;
    }
    if (!w->draining) {
        evhttp_connection_set_closecb(evcon, NULL, NULL);
        return;
    }
    h = evhttp_request_get_output_headers(req);
    if (!evhttp_find_header(h, "Connection")) {
        evhttp_add_header(h, "Connection", "close");
    }
    evhttp_connection_set_closecb(evcon, on_linger_close, w);
    w->nlinger++;
}

static void clear_closecb(struct rq *r)
{
    release_conn(r->w, r->req);
}

/* A zeroed request object with empty URL and answer buffers and pending evbuffer. */
static struct rq *rq_get(struct worker *w, const struct gw_config *cfg)
{
    struct rq *r = w->free_rq;
    struct gv_buf url, resp;
    struct evbuffer *pending;

    if (!r) {
        r = gv_calloc(1, sizeof(*r));
        gv_buf_init(&r->url, 4096);
        gv_buf_init(&r->resp, 0);
        r->pending = evbuffer_new();
    }
    else {
        w->free_rq = r->next;
        w->nfree--;
        url = r->url;
        resp = r->resp;
        pending = r->pending;
        memset(r, 0, sizeof(*r));
        r->url = url;
        r->resp = resp;
        r->pending = pending;
        gv_buf_reset(&r->url);
        gv_buf_reset(&r->resp);
    }
    /* The cap is the config's, whatever the buffer was last used for. */
    r->resp.max = cfg->max_response_bytes ? cfg->max_response_bytes : 32u << 20;
    return r;
}

/* Frees what a request owned except what rq_get hands out again; keeps or frees r. */
static void rq_put(struct worker *w, struct rq *r)
{
    if (r->resp.cap > RQ_KEEP_BUF) {
        gv_buf_free(&r->resp);
    }
    if (r->url.cap > RQ_KEEP_BUF) {
        gv_buf_free(&r->url);
    }
    if (r->pending && evbuffer_get_length(r->pending) > 0) {
        evbuffer_drain(r->pending, evbuffer_get_length(r->pending));
    }
    if (w->nfree >= RQ_FREE_MAX || !r->pending) {
        gv_buf_free(&r->url);
        gv_buf_free(&r->resp);
        if (r->pending) {
            evbuffer_free(r->pending);
        }
        gv_free(r);
        return;
    }
    r->next = w->free_rq;
    w->free_rq = r;
    w->nfree++;
}

static void rq_free_all(struct worker *w)
{
    while (w->free_rq) {
        struct rq *r = w->free_rq;
        w->free_rq = r->next;
        w->nfree--;
        gv_buf_free(&r->url);
        gv_buf_free(&r->resp);
        if (r->pending) {
            evbuffer_free(r->pending);
        }
        gv_free(r);
    }
}

/* The request is over for the client: record, audit, emit, log, free. */
static void finish(struct rq *r, int status)
{
    struct worker *w = r->w;
    struct gw_server *s = w->srv;
    uint64_t now = gv_mono_us();
    char tot[32], ups[32], ovh[32], model[64];

    if (r->call) {
        gw_upstream_abort(r->call);
        r->call = NULL;
        r->t_up_end = now;
    }
    if (r->req && !evhttp_request_get_connection(r->req)) {
        /* Detached by libevent after the client left: ours to free. */
        evhttp_request_free(r->req);
    }
    r->req = NULL;
    if (r->cs) {
        /* x-kt-decision went out with the stream's headers; only the record
         * can still say that the answer was redacted. */
        if (gw_chain_stream_rewritten(r->cs) && r->decision == GV_DECISION_ALLOWED) {
            r->decision = GV_DECISION_REDACTED;
        }
        gw_chain_stream_close(r->cs);
        r->cs = NULL;
    }
    r->rec.http_status = status;
    r->rec.decision = r->decision;
    r->rec.latency_total_us = now - r->t_start;
    r->rec.latency_upstream_us = r->t_up_start ? r->t_up_end - r->t_up_start : 0;
    r->rec.latency_gateway_us = r->gw_us;
    gw_chain_complete(s->chain, &r->preq, &r->rec);
    if (s->em && s->em->ops && s->em->ops->emit) {
        s->em->ops->emit(s->em, &r->rec);
    }
    gw_http_fmt_ms(r->rec.latency_total_us, tot, sizeof(tot));
    gw_http_fmt_ms(r->rec.latency_upstream_us, ups, sizeof(ups));
    gw_http_fmt_ms(r->rec.latency_gateway_us, ovh, sizeof(ovh));
    log_safe(model, sizeof(model), r->rec.model);
    gv_log(GV_LOG_INFO, MOD, "request",
           "req=%s run=%s model=%s target=%s decision=%s status=%d total_ms=%s upstream_ms=%s "
           "overhead_ms=%s tokens_in=%llu tokens_out=%llu stream=%d%s%s",
           r->rec.request_id, r->rec.run_id[0] ? r->rec.run_id : "-", model,
           r->rec.target[0] ? r->rec.target : "-", gv_decision_str(r->decision), status, tot, ups,
           ovh, (unsigned long long)r->rec.tokens_prompt,
           (unsigned long long)r->rec.tokens_completion, r->stream ? 1 : 0,
           r->rec.error_code[0] ? " error=" : "", r->rec.error_code);

    if (r->prev) {
        r->prev->next = r->next;
    }
    else {
        w->active = r->next;
    }
    if (r->next) {
        r->next->prev = r->prev;
    }
    w->nactive--;
    if (r->body) {
        json_object_put(r->body);
    }
    gv_free(r->model);
    gv_free(r->api_key);
    gv_free(r->up_openai);
    gv_buf_free(&r->scratch);
    gw_sse_free(&r->sse);
    rq_put(w, r);
    worker_maybe_exit(w);
}

/* Before any header went out: a whole JSON error answer, then finish. */
static void fail_json(struct rq *r, int status, const char *type, const char *code,
                      const char *param, const char *message)
{
    struct gv_buf b;

    gv_buf_init(&b, ERR_BODY_MAX);
    make_error(&b, status, type, code, param, message);
    if (r->decision != GV_DECISION_BLOCKED) {
        r->decision = GV_DECISION_ERROR;
    }
    copy_str(r->rec.error_code, sizeof(r->rec.error_code), code ? code : type);
    if (r->req && evhttp_request_get_connection(r->req)) {
        clear_closecb(r);
        add_common_headers(r->req, r->rec.request_id, r->rec.run_id, r->decision, overhead_now(r));
        send_body(r->req, status, "application/json", b.data, b.len);
        r->req = NULL;
    }
    r->gw_us = overhead_now(r);
    gv_buf_free(&b);
    finish(r, status);
}

static void on_drained(struct evhttp_connection *evcon, void *arg);

static void send_pending(struct rq *r)
{
    if (r->req && evbuffer_get_length(r->pending) > 0) {
        evhttp_send_reply_chunk_with_cb(r->req, r->pending, on_drained, r);
    }
}

/* After the stream started: an error event, then the end of the stream. */
static void fail_stream(struct rq *r, int status, const char *code, const char *message)
{
    struct gv_buf b;

    gv_buf_init(&b, ERR_BODY_MAX);
    gv_buf_append_str(&b, "data: ");
    gw_http_error_body(&b, message, gw_http_error_type(status), code, NULL);
    gv_buf_append_str(&b, "\n\n");
    r->decision = GV_DECISION_ERROR;
    copy_str(r->rec.error_code, sizeof(r->rec.error_code), code);
    if (r->req && evhttp_request_get_connection(r->req)) {
        /* Held-back text is dropped on purpose: it was never checked. */
        evbuffer_add(r->pending, b.data, b.len);
        send_pending(r);
        clear_closecb(r);
        evhttp_send_reply_end(r->req);
        r->req = NULL;
    }
    r->gw_us = overhead_now(r);
    gv_buf_free(&b);
    finish(r, status);
}

static void fail(struct rq *r, int status, const char *code, const char *message)
{
    if (r->headers_sent) {
        fail_stream(r, status, code, message);
    }
    else {
        fail_json(r, status, NULL, code, NULL, message);
    }
}

/* A response policy failed: the client gets an error in place of the answer
 * (or of the rest of the stream), never text that was not checked. */
static void fail_policy(struct rq *r)
{
    fail(r, 500, "policy_error", "a governance policy failed; the answer was withheld");
}

/* ------------------------------------------------------- chat: the answer */

static long long json_get_ll(struct json_object *o, const char *key)
{
    struct json_object *v;

    if (o && json_object_object_get_ex(o, key, &v) && v) {
        return (long long)json_object_get_int64(v);
    }
    return 0;
}

static void read_usage(struct rq *r, struct json_object *usage)
{
    long long in = json_get_ll(usage, "prompt_tokens");
    long long out = json_get_ll(usage, "completion_tokens");

    r->rec.tokens_prompt = in > 0 ? (uint64_t)in : 0;
    r->rec.tokens_completion = out > 0 ? (uint64_t)out : 0;
}

static struct json_object *parse_json(struct worker *w, const char *p, size_t n)
{
    struct json_object *o;
    size_t end, i;

    if (n == 0 || n > (size_t)INT32_MAX) {
        return NULL;
    }
    json_tokener_reset(w->tok);
    o = json_tokener_parse_ex(w->tok, p, (int)n);
    if (!o) {
        return NULL;
    }
    if (json_tokener_get_error(w->tok) != json_tokener_success) {
        json_object_put(o);
        return NULL;
    }
    end = json_tokener_get_parse_end(w->tok);
    for (i = end; i < n; i++) {
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n') {
            json_object_put(o);
            return NULL;
        }
    }
    return o;
}

static gv_rc append_sse_json(struct rq *r, struct json_object *o)
{
    const char *s =
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    evbuffer_add(r->pending, "data: ", 6);
    evbuffer_add(r->pending, s, strlen(s));
    evbuffer_add(r->pending, "\n\n", 2);
    return GV_OK;
}

/* Final text of every choice still open, as one content event each. */
static gv_rc flush_choices(struct rq *r)
{
    int i;
    gv_rc rc = GV_OK;

    if (!r->cs) {
        return GV_OK;
    }
    for (i = 0; i < MAX_CHOICES && rc == GV_OK; i++) {
        struct json_object *o, *choices, *choice, *delta;
        if (r->choice_state[i] != 1) {
            continue;
        }
        r->choice_state[i] = 2;
        gv_buf_reset(&r->scratch);
        rc = gw_chain_stream_text(r->cs, i, "", 0, true, &r->scratch);
        if (rc != GV_OK) {
            r->policy_failed = true;
            continue;
        }
        if (r->scratch.len == 0) {
            continue;
        }
        o = json_object_new_object();
        json_object_object_add(o, "id", json_object_new_string(r->last_id));
        json_object_object_add(o, "object", json_object_new_string("chat.completion.chunk"));
        json_object_object_add(o, "created", json_object_new_int64(r->last_created));
        json_object_object_add(o, "model", json_object_new_string(r->last_model));
        choices = json_object_new_array();
        choice = json_object_new_object();
        delta = json_object_new_object();
        json_object_object_add(delta, "content",
                               json_object_new_string_len(r->scratch.data, (int)r->scratch.len));
        json_object_object_add(choice, "index", json_object_new_int(i));
        json_object_object_add(choice, "delta", delta);
        json_object_object_add(choice, "finish_reason", NULL);
        json_object_array_add(choices, choice);
        json_object_object_add(o, "choices", choices);
        append_sse_json(r, o);
        json_object_put(o);
    }
    return rc;
}

/* Response policies see each choice's delta.content; what they return (maybe
 * less, held back, or rewritten) replaces it. */
static gv_rc rewrite_choices(struct rq *r, struct json_object *choices, bool *modified)
{
    size_t i, n = json_object_array_length(choices);
    gv_rc rc = GV_OK;

    for (i = 0; i < n && rc == GV_OK; i++) {
        struct json_object *ch = json_object_array_get_idx(choices, i);
        struct json_object *delta = NULL, *content = NULL, *fin = NULL, *idxo;
        const char *text = "";
        size_t len = 0;
        bool final, has_content;
        long long idx = (long long)i;

        if (!json_object_is_type(ch, json_type_object)) {
            continue;
        }
        if (json_object_object_get_ex(ch, "index", &idxo) && idxo) {
            idx = (long long)json_object_get_int64(idxo);
        }
        if (idx < 0 || idx >= MAX_CHOICES) {
            return GV_EPROTO;
        }
        json_object_object_get_ex(ch, "delta", &delta);
        if (delta && !json_object_is_type(delta, json_type_object)) {
            delta = NULL;
        }
        has_content = delta && json_object_object_get_ex(delta, "content", &content) &&
                      json_object_is_type(content, json_type_string);
        final = json_object_object_get_ex(ch, "finish_reason", &fin) && fin != NULL;
        if (!has_content && !final) {
            continue;
        }
        if (r->choice_state[idx] == 2) {
            if (has_content) {
                return GV_EPROTO; /* text after the choice finished */
            }
            continue;
        }
        if (has_content) {
            text = json_object_get_string(content);
            len = (size_t)json_object_get_string_len(content);
        }
        gv_buf_reset(&r->scratch);
        rc = gw_chain_stream_text(r->cs, (int)idx, text, len, final, &r->scratch);
        if (rc != GV_OK) {
            r->policy_failed = true;
            break;
        }
        r->choice_state[idx] = final ? 2 : 1;
        if (has_content || r->scratch.len > 0) {
            if (!delta) {
                delta = json_object_new_object();
                json_object_object_add(ch, "delta", delta);
            }
            json_object_object_add(
                delta, "content",
                json_object_new_string_len(r->scratch.data ? r->scratch.data : "",
                                           (int)r->scratch.len));
            *modified = true;
        }
    }
    return rc;
}

static void remember_chunk_meta(struct rq *r, struct json_object *o)
{
    struct json_object *v;

    gw_trace_response(&r->rec, o); /* trace: response id, model, finish reasons */
    if (json_object_object_get_ex(o, "id", &v) && json_object_is_type(v, json_type_string)) {
        copy_str(r->last_id, sizeof(r->last_id), json_object_get_string(v));
    }
    if (json_object_object_get_ex(o, "model", &v) && json_object_is_type(v, json_type_string)) {
        copy_str(r->last_model, sizeof(r->last_model), json_object_get_string(v));
    }
    if (json_object_object_get_ex(o, "created", &v) && v) {
        r->last_created = (long long)json_object_get_int64(v);
    }
}

static gv_rc on_event(void *arg, const struct gw_sse_event *ev)
{
    struct rq *r = arg;
    struct json_object *o, *usage = NULL, *choices = NULL;
    bool modified = false;
    size_t nchoices;
    gv_rc rc = GV_OK;

    if (!ev->has_data) {
        evbuffer_add(r->pending, ev->raw, ev->raw_len); /* comments, keep-alives */
        return GV_OK;
    }
    if (ev->done) {
        rc = flush_choices(r);
        r->saw_done = true;
        if (rc == GV_OK) {
            evbuffer_add(r->pending, ev->raw, ev->raw_len);
        }
        return rc;
    }
    o = parse_json(r->w, ev->data, ev->data_len);
    if (!o) {
        /* Text we cannot read cannot be checked: fail closed when it must be. */
        if (r->rewrite) {
            return GV_EPROTO;
        }
        evbuffer_add(r->pending, ev->raw, ev->raw_len);
        return GV_OK;
    }
    if (json_object_object_get_ex(o, "usage", &usage) &&
        json_object_is_type(usage, json_type_object)) {
        read_usage(r, usage);
    }
    else {
        usage = NULL;
    }
    if (!json_object_object_get_ex(o, "choices", &choices) ||
        !json_object_is_type(choices, json_type_array)) {
        choices = NULL;
    }
    nchoices = choices ? json_object_array_length(choices) : 0;
    if (usage && !r->client_usage) {
        if (nchoices == 0) {
            json_object_put(o); /* the usage-only chunk the client did not ask for */
            return GV_OK;
        }
        json_object_object_del(o, "usage");
        modified = true;
    }
    if (r->rewrite && choices) {
        remember_chunk_meta(r, o);
        rc = rewrite_choices(r, choices, &modified);
    }
    if (rc == GV_OK) {
        if (modified) {
            append_sse_json(r, o);
        }
        else {
            evbuffer_add(r->pending, ev->raw, ev->raw_len);
        }
    }
    json_object_put(o);
    return rc;
}

static size_t out_pending(struct rq *r)
{
    struct evhttp_connection *evcon = r->req ? evhttp_request_get_connection(r->req) : NULL;
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;

    return bev ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;
}

static void add_upstream_headers(struct rq *r)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(r->req);
    const char *p = r->up_openai;

    if (r->up_reqid[0]) {
        evhttp_add_header(out, "x-request-id", r->up_reqid);
    }
    if (r->up_retry[0]) {
        evhttp_add_header(out, "retry-after", r->up_retry);
    }
    while (p && *p) {
        const char *eol = strstr(p, "\r\n");
        const char *colon = memchr(p, ':', eol ? (size_t)(eol - p) : strlen(p));
        char name[64], val[256];
        size_t nlen, vlen;

        if (!eol) {
            break;
        }
        if (colon) {
            const char *v = colon + 1;
            while (v < eol && *v == ' ') {
                v++;
            }
            nlen = (size_t)(colon - p);
            vlen = (size_t)(eol - v);
            if (nlen < sizeof(name) && vlen < sizeof(val)) {
                memcpy(name, p, nlen);
                name[nlen] = '\0';
                memcpy(val, v, vlen);
                val[vlen] = '\0';
                evhttp_add_header(out, name, val);
            }
        }
        p = eol + 2;
    }
}

static void up_headers(void *arg, const struct gw_up_headers *h)
{
    struct rq *r = arg;

    r->cb_t0 = gv_mono_us();
    r->in_cb = true;
    r->up_status = h->status;
    copy_str(r->up_ctype, sizeof(r->up_ctype), h->content_type);
    copy_str(r->up_reqid, sizeof(r->up_reqid), h->request_id);
    copy_str(r->up_retry, sizeof(r->up_retry), h->retry_after);
    gv_free(r->up_openai);
    r->up_openai = gv_strdup(h->openai_lines);
    if (r->req && r->stream && h->status >= 200 && h->status < 300 &&
        strncasecmp(h->content_type, "text/event-stream", 17) == 0) {
        struct evkeyvalq *out = evhttp_request_get_output_headers(r->req);
        r->sse_mode = true;
        r->rec.streamed = true;
        r->rewrite = gw_chain_wants_response(r->w->srv->chain);
        if (r->rewrite) {
            r->cs = gw_chain_stream_open(r->w->srv->chain, &r->preq);
        }
        evhttp_add_header(out, "Content-Type", h->content_type);
        evhttp_add_header(out, "Cache-Control", "no-cache");
        add_upstream_headers(r);
        add_common_headers(r->req, r->rec.request_id, r->rec.run_id, r->decision, overhead_now(r));
        evhttp_send_reply_start(r->req, 200, "OK");
        r->headers_sent = true;
    }
    r->gw_us += gv_mono_us() - r->cb_t0;
    r->in_cb = false;
}

static enum gw_up_flow up_data(void *arg, const char *p, size_t n)
{
    struct rq *r = arg;
    enum gw_up_flow flow = GW_UP_CONTINUE;
    gv_rc rc;

    if (r->client_gone || !r->req) {
        return GW_UP_ABORT;
    }
    if (r->sse_mode && out_pending(r) > OUT_HIGH_WATER) {
        /* Not consumed: libcurl hands these bytes over again after resume. */
        r->paused = true;
        return GW_UP_PAUSE;
    }
    r->cb_t0 = gv_mono_us();
    r->in_cb = true;
    gw_trace_first_byte(&r->rec, r->cb_t0 - r->t_up_start); /* trace: the first body byte */
    if (r->sse_mode) {
        rc = gw_sse_feed(&r->sse, p, n, on_event, r);
        send_pending(r);
        if (rc != GV_OK) {
            r->stream_failed = true;
            flow = GW_UP_ABORT;
        }
    }
    else if (gv_buf_append(&r->resp, p, n) != GV_OK) {
        r->resp_too_big = true;
        flow = GW_UP_ABORT;
    }
    r->gw_us += gv_mono_us() - r->cb_t0;
    r->in_cb = false;
    if (r->client_gone) {
        flow = GW_UP_ABORT;
    }
    return flow;
}

static void finish_buffered(struct rq *r)
{
    struct json_object *o, *v, *err;
    const char *body = r->resp.data ? r->resp.data : "";
    size_t len = r->resp.len;
    int status = (int)r->up_status;

    if (status < 200 || status >= 300) {
        /* The upstream's own error answer, passed on unchanged. */
        r->decision = GV_DECISION_ERROR;
        copy_str(r->rec.error_code, sizeof(r->rec.error_code), "upstream_error");
        o = parse_json(r->w, body, len);
        if (o && json_object_object_get_ex(o, "error", &err) &&
            json_object_object_get_ex(err, "code", &v) &&
            json_object_is_type(v, json_type_string)) {
            copy_str(r->rec.error_code, sizeof(r->rec.error_code), json_object_get_string(v));
        }
        if (o) {
            json_object_put(o);
        }
        if (status < 100 || status > 599) {
            fail_json(r, 502, NULL, "upstream_error", NULL, "upstream answered with a bad status");
            return;
        }
    }
    else {
        o = parse_json(r->w, body, len);
        if (!o || !json_object_is_type(o, json_type_object)) {
            if (o) {
                json_object_put(o);
            }
            fail_json(r, 502, NULL, "upstream_error", NULL, "upstream returned invalid JSON");
            return;
        }
        if (json_object_object_get_ex(o, "usage", &v) && json_object_is_type(v, json_type_object)) {
            read_usage(r, v);
        }
        gw_trace_response(&r->rec, o); /* trace: response id, model, finish reasons */
        if (gw_chain_wants_response(r->w->srv->chain)) {
            bool rewritten = false;
            if (gw_chain_response_json(r->w->srv->chain, &r->preq, o, &rewritten) != GV_OK) {
                /* Fail closed: the answer was not fully checked. */
                json_object_put(o);
                fail_policy(r);
                return;
            }
            if (rewritten && r->decision == GV_DECISION_ALLOWED) {
                r->decision = GV_DECISION_REDACTED;
            }
            /* A policy that changes the answer says so with a REDACT verdict (gw_chain.h):
             * otherwise the upstream's own bytes go out, without a second serialization. */
            if (rewritten) {
                body = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                             JSON_C_TO_STRING_NOSLASHESCAPE);
                len = strlen(body);
                /* The serialized text lives in o: send before putting it. */
            }
        }
        if (r->req && evhttp_request_get_connection(r->req)) {
            clear_closecb(r);
            add_upstream_headers(r);
            add_common_headers(r->req, r->rec.request_id, r->rec.run_id, r->decision,
                               overhead_now(r));
            send_body(r->req, status, r->up_ctype[0] ? r->up_ctype : "application/json", body, len);
            r->req = NULL;
        }
        json_object_put(o);
        r->gw_us = overhead_now(r);
        finish(r, status);
        return;
    }
    if (r->req && evhttp_request_get_connection(r->req)) {
        clear_closecb(r);
        add_upstream_headers(r);
        add_common_headers(r->req, r->rec.request_id, r->rec.run_id, r->decision, overhead_now(r));
        send_body(r->req, status, r->up_ctype[0] ? r->up_ctype : "application/json", body, len);
        r->req = NULL;
    }
    r->gw_us = overhead_now(r);
    finish(r, status);
}

static void up_done(void *arg, gv_rc rc, const char *what)
{
    struct rq *r = arg;
    char msg[160];

    r->call = NULL;
    r->t_up_end = gv_mono_us();
    r->cb_t0 = r->t_up_end;
    if (r->client_gone || !r->req) {
        r->decision = GV_DECISION_ERROR;
        copy_str(r->rec.error_code, sizeof(r->rec.error_code), "client_closed");
        finish(r, 499);
        return;
    }
    if (r->policy_failed) {
        /* The transfer was aborted because a response policy failed. */
        fail_policy(r);
        return;
    }
    if (rc == GV_ETIMEDOUT) {
        snprintf(msg, sizeof(msg), "upstream timed out (%s timeout)", what);
        fail(r, 504, "upstream_timeout", msg);
        return;
    }
    if (rc == GV_EPROTO && r->resp_too_big) {
        fail(r, 502, "upstream_error", "upstream answer exceeds gateway.max_response_bytes");
        return;
    }
    if (rc == GV_EPROTO && r->stream_failed) {
        fail(r, 502, "upstream_error", "upstream stream could not be read or checked");
        return;
    }
    if (rc != GV_OK) {
        snprintf(msg, sizeof(msg), "upstream unreachable or invalid answer: %s", what);
        fail(r, 502, "upstream_error", msg);
        return;
    }
    if (!r->sse_mode) {
        finish_buffered(r);
        return;
    }
    rc = gw_sse_finish(&r->sse, on_event, r);
    if (rc == GV_OK && !r->saw_done) {
        rc = flush_choices(r);
    }
    if (rc != GV_OK && r->policy_failed) {
        fail_policy(r);
        return;
    }
    if (rc != GV_OK) {
        fail_stream(r, 502, "upstream_error", "upstream stream could not be read or checked");
        return;
    }
    send_pending(r);
    clear_closecb(r);
    evhttp_send_reply_end(r->req);
    r->req = NULL;
    r->gw_us = overhead_now(r);
    finish(r, 200);
}

static const struct gw_upstream_ops up_ops = {
    .headers = up_headers,
    .data = up_data,
    .done = up_done,
};

static void on_drained(struct evhttp_connection *evcon, void *arg)
{
    struct rq *r = arg;

    if (r->paused && r->call) {
        r->paused = false;
        gw_upstream_resume(r->call);
    }
}

static void on_client_close(struct evhttp_connection *evcon, void *arg)
{
    struct rq *r = arg;

    r->client_gone = true;
    if (r->req && evhttp_request_get_connection(r->req)) {
        /* Still attached: libevent frees it with the connection. */
        r->req = NULL;
    }
    if (r->in_cb) {
        return; /* up_data sees client_gone and aborts the transfer */
    }
    r->decision = GV_DECISION_ERROR;
    copy_str(r->rec.error_code, sizeof(r->rec.error_code), "client_closed");
    finish(r, 499);
}

/* ------------------------------------------------------- chat: the request */

static bool check_tag(struct rq *r, struct evkeyvalq *in, const char *name, char *dst, size_t size,
                      const char *code)
{
    const char *v = evhttp_find_header(in, name);
    char msg[160];

    if (!v) {
        return true;
    }
    if (!gw_http_run_tag_valid(v, strlen(v))) {
        snprintf(msg, sizeof(msg),
                 "Invalid %s header: 1 to %d characters, no whitespace, control characters "
                 "or any of :;,#?/'",
                 name, GV_RUN_TAG_MAX);
        fail_json(r, 400, NULL, code, name, msg);
        return false;
    }
    copy_str(dst, size, v);
    return true;
}

static void handle_chat(struct worker *w, struct evhttp_request *req, const char *reqid,
                        uint64_t t0)
{
    struct gw_server *s = w->srv;
    const struct gw_config *cfg = s->cfg;
    struct rq *r = rq_get(w, cfg);
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    struct evbuffer *inbuf = evhttp_request_get_input_buffer(req);
    struct json_object *v, *messages, *so;
    struct gw_verdict verdict;
    struct gw_upstream_req up;
    const struct gw_target *t;
    const char *auth, *model, *p;
    size_t len = evbuffer_get_length(inbuf);
    char msg[256];
    char traceparent[GV_TRACEPARENT_LEN + 1]; /* trace: */
    bool need_usage;

    r->w = w;
    r->req = req;
    r->t_start = t0;
    r->cb_t0 = t0;
    r->decision = GV_DECISION_ALLOWED;
    r->preq.model = "";
    r->preq.api_key = "";
    r->preq.rec = &r->rec;
    r->rec.start_wall_us = gv_wall_us();
    copy_str(r->rec.request_id, sizeof(r->rec.request_id), reqid);
    /* trace: continue the client's trace context, or start one */
    gw_trace_begin(&r->rec, evhttp_find_header(in, "traceparent"),
                   evhttp_find_header(in, "tracestate"));
    gv_buf_init(&r->scratch, 0);
    gw_sse_init(&r->sse, SSE_EVENT_MAX);
    r->next = w->active;
    if (w->active) {
        w->active->prev = r;
    }
    w->active = r;
    w->nactive++;
    if (evhttp_request_get_connection(req)) {
        evhttp_connection_set_closecb(evhttp_request_get_connection(req), on_client_close, r);
    }

    if (!check_tag(r, in, "X-Wandb-Run-Id", r->rec.run_id, sizeof(r->rec.run_id),
                   "invalid_run_id") ||
        !check_tag(r, in, "X-Wandb-Project", r->rec.project, sizeof(r->rec.project),
                   "invalid_header") ||
        !check_tag(r, in, "X-Wandb-Entity", r->rec.entity, sizeof(r->rec.entity),
                   "invalid_header") ||
        !check_tag(r, in, "X-Wandb-Run-Group", r->rec.run_group, sizeof(r->rec.run_group),
                   "invalid_header")) {
        return;
    }
    auth = evhttp_find_header(in, "Authorization");
    if (auth && strncasecmp(auth, "Bearer ", 7) == 0) {
        for (auth += 7; *auth == ' '; auth++) {
        }
        r->api_key = gv_strdup(auth);
        r->preq.api_key = r->api_key;
    }
    if (len > cfg->max_body_bytes) {
        snprintf(msg, sizeof(msg), "Request body of %zu bytes exceeds the limit of %zu bytes.", len,
                 cfg->max_body_bytes);
        fail_json(r, 413, NULL, "request_too_large", NULL, msg);
        return;
    }
    p = (const char *)evbuffer_pullup(inbuf, -1);
    r->body = parse_json(w, p, len);
    r->preq.body = r->body;
    if (!r->body) {
        fail_json(r, 400, NULL, "invalid_json", NULL,
                  "We could not parse the JSON body of your request. The body must be valid "
                  "UTF-8 JSON.");
        return;
    }
    if (!json_object_is_type(r->body, json_type_object)) {
        fail_json(r, 400, NULL, "invalid_json", NULL, "The request body must be a JSON object.");
        return;
    }
    if (!json_object_object_get_ex(r->body, "model", &v) || !v) {
        fail_json(r, 400, NULL, "missing_required_parameter", "model",
                  "You must provide a model parameter.");
        return;
    }
    if (!json_object_is_type(v, json_type_string) || json_object_get_string_len(v) == 0) {
        fail_json(r, 400, NULL, "invalid_type", "model", "model must be a non-empty string.");
        return;
    }
    model = json_object_get_string(v);
    r->model = gv_strdup(model);
    r->preq.model = r->model;
    copy_str(r->rec.model, sizeof(r->rec.model), r->model);
    if (!json_object_object_get_ex(r->body, "messages", &messages) || !messages) {
        fail_json(r, 400, NULL, "missing_required_parameter", "messages",
                  "Missing required parameter: 'messages'.");
        return;
    }
    if (!json_object_is_type(messages, json_type_array) ||
        json_object_array_length(messages) == 0) {
        fail_json(r, 400, NULL, "invalid_type", "messages",
                  "messages must be a non-empty array of message objects.");
        return;
    }
    if (json_object_object_get_ex(r->body, "stream", &v) && v) {
        if (!json_object_is_type(v, json_type_boolean)) {
            fail_json(r, 400, NULL, "invalid_type", "stream", "stream must be a boolean.");
            return;
        }
        r->stream = json_object_get_boolean(v);
    }
    r->preq.stream = r->stream;
    if (r->stream && json_object_object_get_ex(r->body, "stream_options", &so) && so &&
        json_object_object_get_ex(so, "include_usage", &v) && v &&
        json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v)) {
        r->client_usage = true;
    }
    t = gw_config_find_target(cfg, r->model);
    if (!t) {
        snprintf(msg, sizeof(msg),
                 "The model `%.100s` does not exist or is not configured on this gateway.",
                 r->model);
        fail_json(r, 404, NULL, "model_not_found", "model", msg);
        return;
    }
    r->preq.target = t;
    copy_str(r->rec.target, sizeof(r->rec.target), t->id);

    memset(&verdict, 0, sizeof(verdict));
    gw_chain_evaluate(s->chain, &r->preq, &verdict);
    if (verdict.action == GW_ACTION_BLOCK) {
        r->decision = verdict.code && strcmp(verdict.code, "policy_error") == 0
                          ? GV_DECISION_ERROR
                          : GV_DECISION_BLOCKED;
        fail_json(r, verdict.status ? verdict.status : 403, "policy_violation",
                  verdict.code ? verdict.code : "policy_violation", NULL,
                  verdict.message ? verdict.message : "The request was blocked by a policy.");
        return;
    }
    if (verdict.action == GW_ACTION_REDACT) {
        r->decision = GV_DECISION_REDACTED;
    }

    /* Only re-serialize when something changed: otherwise the client's bytes go out as is. */
    need_usage = r->stream && t->stream_usage && !r->client_usage;
    if (r->preq.body_modified || need_usage || strcmp(r->model, t->model) != 0) {
        json_object_object_add(r->body, "model", json_object_new_string(t->model));
        if (need_usage) {
            if (!json_object_object_get_ex(r->body, "stream_options", &so) ||
                !json_object_is_type(so, json_type_object)) {
                so = json_object_new_object();
                json_object_object_add(r->body, "stream_options", so);
            }
            json_object_object_add(so, "include_usage", json_object_new_boolean(1));
        }
        r->send_body = json_object_to_json_string_ext(r->body, JSON_C_TO_STRING_PLAIN |
                                                                   JSON_C_TO_STRING_NOSLASHESCAPE);
        r->send_len = strlen(r->send_body);
    }
    else {
        r->send_body = p;
        r->send_len = len;
    }
    if (gv_buf_appendf(&r->url, "%s/chat/completions", t->base_url) != GV_OK) {
        fail_json(r, 502, NULL, "upstream_error", NULL, "upstream URL too long");
        return;
    }
    memset(&up, 0, sizeof(up));
    up.url = r->url.data;
    up.auth_bearer = t->secret;
    up.accept = r->stream ? "text/event-stream" : "application/json";
    up.body = r->send_body;
    up.body_len = r->send_len;
    up.connect_timeout_ms = t->connect_timeout_ms;
    up.first_byte_timeout_ms = t->first_byte_timeout_ms;
    up.idle_timeout_ms = t->idle_timeout_ms;
    /* trace: the CLIENT span starts here; its traceparent goes upstream */
    gw_trace_upstream_start(&r->rec, up.url);
    gw_trace_upstream_header(&r->rec, traceparent);
    up.traceparent = traceparent;
    up.tracestate = r->rec.tracestate[0] ? r->rec.tracestate : NULL;
    r->t_up_start = gv_mono_us();
    r->gw_us = r->t_up_start - t0;
    if (gw_upstream_start(w->up, &up, &up_ops, r, &r->call) != GV_OK) {
        r->t_up_end = gv_mono_us();
        r->cb_t0 = r->t_up_end;
        fail_json(r, 502, NULL, "upstream_error", NULL, "upstream request could not be started");
        return;
    }
}

/* --------------------------------------------------------------- routing */

static void on_request(struct evhttp_request *req, void *arg)
{
    struct worker *w = arg;
    uint64_t t0 = gv_mono_us();
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    char reqid[GW_REQID_LEN + 1];

    gw_reqid_next(&w->ids, reqid);
    if (!path) {
        path = "";
    }
    if (strcmp(path, "/v1/chat/completions") == 0) {
        if (cmd != EVHTTP_REQ_POST) {
            method_not_allowed(w, req, reqid, t0, "POST");
            return;
        }
        handle_chat(w, req, reqid, t0);
    }
    else if (strcmp(path, "/health") == 0 || strcmp(path, "/v1/models") == 0 ||
             strncmp(path, "/v1/models/", 11) == 0) {
        if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
            method_not_allowed(w, req, reqid, t0, "GET, HEAD");
            return;
        }
        if (path[1] == 'h') {
            handle_health(w, req, reqid, t0);
        }
        else if (path[10] == '/') {
            handle_model_get(w, req, reqid, t0, path + 11);
        }
        else {
            simple_reply(w, req, reqid, t0, 200, w->srv->models_json, strlen(w->srv->models_json),
                         GV_DECISION_ALLOWED);
        }
    }
    else {
        simple_error(w, req, reqid, t0, 404, "unknown_url",
                     "Unknown request URL. This gateway serves POST /v1/chat/completions, "
                     "GET /v1/models and GET /health.");
    }
}

/* --------------------------------------------------------------- workers */

static void end_all(struct worker *w)
{
    while (w->active) {
        struct rq *r = w->active;
        if (r->headers_sent) {
            fail_stream(r, 503, "gateway_shutdown", "The gateway is shutting down.");
        }
        else {
            fail_json(r, 503, NULL, "gateway_shutdown", NULL, "The gateway is shutting down.");
        }
    }
}

static void on_drain_timeout(evutil_socket_t fd, short kind, void *arg)
{
    struct worker *w = arg;

    if (w->nactive > 0) {
        gv_log(GV_LOG_WARN, MOD, "drain deadline passed", "worker=%d ending=%zu", w->idx,
               w->nactive);
    }
    end_all(w);
    event_base_loopexit(w->base, NULL);
}

/* Out of file descriptors: the listening socket stays readable, and libevent
 * would retry accept() in a tight loop, logging each failure. Stop accepting
 * for a moment instead; connections wait in the kernel's backlog meanwhile,
 * and the requests already in flight (which need fds for the upstream and the
 * audit log) get a chance to finish and free some. */
#define ACCEPT_PAUSE_MS 100
#define ACCEPT_LOG_EVERY_US 10000000u

static void on_accept_retry(evutil_socket_t fd, short kind, void *arg)
{
    struct worker *w = arg;
    (void)fd;
    (void)kind;
    if (w->bound && !w->draining) {
        evconnlistener_enable(evhttp_bound_socket_get_listener(w->bound));
    }
}

/* libevent hands the error callback evhttp's own pointer, not ours; each worker
 * runs its loop on its own thread, so the thread says which worker it is. */
static _Thread_local struct worker *this_worker;

static void on_accept_error(struct evconnlistener *lev, void *arg)
{
    struct worker *w = this_worker;
    int err = EVUTIL_SOCKET_ERROR();
    struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
    uint64_t now = gv_mono_us();

    (void)arg;
    if (!w) {
        return;
    }
    w->accept_fails++;
    if (w->accept_logged_us == 0 || now - w->accept_logged_us >= ACCEPT_LOG_EVERY_US) {
        gv_log(GV_LOG_ERROR, "gateway", "cannot accept connections; pausing the listener",
               "worker=%d errno=%d err=\"%s\" failures_total=%llu pause_ms=%d", w->idx, err,
               strerror(err), w->accept_fails, ACCEPT_PAUSE_MS);
        w->accept_logged_us = now;
    }
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        evconnlistener_disable(lev);
        evtimer_add(w->accept_retry, &tv);
    }
}

static void on_stop(evutil_socket_t fd, short kind, void *arg)
{
    struct worker *w = arg;
    long ms = atomic_load(&w->srv->stop_drain_ms);
    struct timeval tv;
    uint64_t count;

    /* Level-triggered: empty the counter or this runs again every loop. */
    if (read(w->stop_fd, &count, sizeof(count)) < 0) {
        count = 0;
    }
    if (!w->draining) {
        w->draining = true;
        if (w->bound) {
            evhttp_del_accept_socket(w->http, w->bound); /* closes the listening socket */
            w->bound = NULL;
            w->fd = -1;
        }
    }
    if (ms <= 0 || w->nactive == 0) {
        end_all(w);
        event_base_loopexit(w->base, NULL);
        return;
    }
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    evtimer_add(w->drain_timer, &tv);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    this_worker = w;
    event_base_dispatch(w->base);
    return NULL;
}

static gv_rc parse_listen(const char *listen, char *host, size_t hsize, char *port, size_t psize)
{
    const char *colon;
    size_t hlen;

    if (!listen || !*listen) {
        return GV_EINVAL;
    }
    if (listen[0] == '[') {
        const char *end = strchr(listen, ']');
        if (!end || end[1] != ':') {
            return GV_EINVAL;
        }
        hlen = (size_t)(end - listen - 1);
        if (hlen >= hsize) {
            return GV_EINVAL;
        }
        memcpy(host, listen + 1, hlen);
        host[hlen] = '\0';
        colon = end + 1;
    }
    else {
        colon = strrchr(listen, ':');
        if (!colon) {
            return GV_EINVAL;
        }
        hlen = (size_t)(colon - listen);
        if (hlen >= hsize) {
            return GV_EINVAL;
        }
        memcpy(host, listen, hlen);
        host[hlen] = '\0';
    }
    if (strlen(colon + 1) == 0 || strlen(colon + 1) >= psize ||
        strspn(colon + 1, "0123456789") != strlen(colon + 1) || strlen(colon + 1) > 5) {
        return GV_EINVAL;
    }
    snprintf(port, psize, "%s", colon + 1);
    return GV_OK;
}

static int bind_one(const struct sockaddr *sa, socklen_t len, bool reuseport)
{
    int one = 1;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
        close(fd);
        return -1;
    }
    if (bind(fd, sa, len) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static void set_port(struct sockaddr_storage *ss, unsigned port)
{
    if (ss->ss_family == AF_INET6) {
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    }
    else {
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    }
}

static unsigned get_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET6) {
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    }
    return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

/* All workers listen on the same address through SO_REUSEPORT. A plain bind
 * first proves the port is free, so two gateways never silently share one. */
static gv_rc open_listeners(struct gw_server *s, const char *listen, int *fds, char *err,
                            size_t errsize)
{
    struct addrinfo hints, *ai = NULL;
    struct sockaddr_storage ss;
    socklen_t sslen;
    char host[256], port[16], shown[300];
    int probe, i, gai;
    gv_rc rc = GV_OK;

    if (parse_listen(listen, host, sizeof(host), port, sizeof(port)) != GV_OK ||
        strtol(port, NULL, 10) > 65535) {
        snprintf(err, errsize, "invalid --listen '%s': want HOST:PORT", listen ? listen : "");
        return GV_EINVAL;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
    if (gai != 0 || !ai) {
        snprintf(err, errsize, "invalid --listen host '%s': %s", host, gai_strerror(gai));
        rc = GV_EINVAL;
        goto out;
    }
    memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    sslen = (socklen_t)ai->ai_addrlen;
    probe = bind_one((struct sockaddr *)&ss, sslen, false);
    if (probe < 0) {
        snprintf(err, errsize, "cannot listen on %s: %s", listen, strerror(errno));
        rc = GV_EIO;
        goto out;
    }
    getsockname(probe, (struct sockaddr *)&ss, &sslen);
    close(probe);
    for (i = 0; i < s->nworkers; i++) {
        fds[i] = bind_one((struct sockaddr *)&ss, sslen, true);
        if (fds[i] < 0) {
            snprintf(err, errsize, "cannot listen on %s: %s", listen, strerror(errno));
            rc = GV_EIO;
            goto out;
        }
    }
    if (ss.ss_family == AF_INET6) {
        char a[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, a, sizeof(a));
        snprintf(shown, sizeof(shown), "[%s]:%u", a, get_port(&ss));
    }
    else {
        char a[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, a, sizeof(a));
        snprintf(shown, sizeof(shown), "%s:%u", a, get_port(&ss));
    }
    copy_str(s->addr, sizeof(s->addr), shown);
    set_port(&ss, get_port(&ss));
out:
    if (ai) {
        freeaddrinfo(ai);
    }
    return rc;
}

static gv_rc worker_init(struct gw_server *s, struct worker *w, int idx, int fd)
{
    size_t cap = s->cfg->max_body_bytes ? s->cfg->max_body_bytes : 4u << 20;
    struct event_config *ecfg;

    w->srv = s;
    w->idx = idx;
    w->fd = fd;
    gw_reqid_init(&w->ids);
    ecfg = event_config_new();
    if (ecfg) {
        /* libcurl drops and re-adds a keep-alive socket around every transfer:
         * the changelist folds those into one epoll_ctl (or none). */
        event_config_set_flag(ecfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
        /* Only this worker's thread touches its base (gw_server_stop goes through stop_fd),
         * so no lock around every event_add and event_del. */
        event_config_set_flag(ecfg, EVENT_BASE_FLAG_NOLOCK);
        w->base = event_base_new_with_config(ecfg);
        event_config_free(ecfg);
    }
    if (!w->base) {
        return GV_EIO;
    }
    w->http = evhttp_new(w->base);
    w->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->stop_fd < 0) {
        return GV_EIO;
    }
    w->stop_ev = event_new(w->base, w->stop_fd, EV_READ | EV_PERSIST, on_stop, w);
    if (w->stop_ev && event_add(w->stop_ev, NULL) != 0) {
        return GV_EIO;
    }
    w->drain_timer = evtimer_new(w->base, on_drain_timeout, w);
    w->accept_retry = evtimer_new(w->base, on_accept_retry, w);
    w->tok = json_tokener_new_ex(JSON_DEPTH);
    if (!w->http || !w->stop_ev || !w->drain_timer || !w->accept_retry || !w->tok) {
        return GV_EIO;
    }
    json_tokener_set_flags(w->tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    if (gw_upstream_create(w->base, &w->up) != GV_OK) {
        return GV_EIO;
    }
    /* libevent 2.1 cannot stop a body at our limit itself: its hard cap sits
     * above it so bodies in between get our OpenAI-shaped 413. */
    evhttp_set_max_body_size(w->http, (ev_ssize_t)(cap * 2 + 64 * 1024));
    evhttp_set_max_headers_size(w->http, HEADERS_MAX);
    evhttp_set_timeout(w->http, CONN_TIMEOUT_S);
    evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(w->http, on_request, w);
    w->bound = evhttp_accept_socket_with_handle(w->http, fd);
    if (!w->bound) {
        return GV_EIO;
    }
    evconnlistener_set_error_cb(evhttp_bound_socket_get_listener(w->bound), on_accept_error);
    w->fd = -1; /* the listener owns it now */
    return GV_OK;
}

static void worker_free(struct worker *w)
{
    if (w->base) {
        end_all(w);
    }
    if (w->http) {
        evhttp_free(w->http);
    }
    if (w->fd >= 0) {
        close(w->fd);
    }
    gw_upstream_destroy(w->up);
    if (w->stop_ev) {
        event_free(w->stop_ev);
    }
    if (w->stop_fd >= 0) {
        close(w->stop_fd);
    }
    if (w->drain_timer) {
        event_free(w->drain_timer);
    }
    if (w->accept_retry) {
        event_free(w->accept_retry);
    }
    if (w->tok) {
        json_tokener_free(w->tok);
    }
    rq_free_all(w);
    if (w->base) {
        event_base_free(w->base);
    }
}

gv_rc gw_server_create(const struct gw_server_opts *opts, struct gw_server **out, char *err,
                       size_t errsize)
{
    struct gw_server *s = gv_calloc(1, sizeof(*s));
    int *fds = NULL;
    int i, n = opts->workers;
    gv_rc rc;

    *out = NULL;
    err[0] = '\0';
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)c : 1;
    }
    if (n > 256) {
        n = 256;
    }
    evthread_use_pthreads();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    s->cfg = opts->cfg;
    s->chain = opts->chain;
    s->em = opts->emitter;
    s->nworkers = n;
    s->start_mono = gv_mono_us();
    s->start_wall = gv_wall_us();
    atomic_store(&s->stop_drain_ms, opts->drain_ms > 0 ? opts->drain_ms : DRAIN_DEFAULT_MS);
    s->models_json = build_models(s->cfg, s->start_wall / 1000000u);
    s->workers = gv_calloc((size_t)n, sizeof(*s->workers));
    fds = gv_calloc((size_t)n, sizeof(*fds));
    for (i = 0; i < n; i++) {
        fds[i] = -1;
        s->workers[i].fd = -1;
        s->workers[i].stop_fd = -1;
    }
    rc = open_listeners(s, opts->listen, fds, err, errsize);
    for (i = 0; rc == GV_OK && i < n; i++) {
        rc = worker_init(s, &s->workers[i], i, fds[i]);
        fds[i] = -1;
        if (rc != GV_OK) {
            snprintf(err, errsize, "cannot set up event loop %d", i);
        }
    }
    for (i = 0; i < n; i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
        }
    }
    gv_free(fds);
    if (rc != GV_OK) {
        s->joined = true;
        gw_server_destroy(s);
        return rc;
    }
    *out = s;
    return GV_OK;
}

const char *gw_server_addr(const struct gw_server *srv)
{
    return srv->addr;
}

int gw_server_workers(const struct gw_server *srv)
{
    return srv->nworkers;
}

gv_rc gw_server_start(struct gw_server *srv)
{
    int i;

    for (i = 0; i < srv->nworkers; i++) {
        struct worker *w = &srv->workers[i];
        char name[16];
        snprintf(name, sizeof(name), "kt-worker-%d", i);
        if (gv_thread_start(&w->thread, name, GV_THREAD_SERVING, worker_main, w) != GV_OK) {
            gw_server_stop(srv, 0);
            gw_server_join(srv);
            return GV_EIO;
        }
        w->started = true;
    }
    return GV_OK;
}

void gw_server_stop(struct gw_server *srv, long drain_ms)
{
    int i;

    if (!srv) {
        return;
    }
    atomic_store(&srv->stop_drain_ms, drain_ms);
    for (i = 0; i < srv->nworkers; i++) {
        if (srv->workers[i].stop_fd >= 0) {
            uint64_t one = 1;
            ssize_t n = write(srv->workers[i].stop_fd, &one, sizeof(one));
            (void)n; /* only fails when the counter is saturated: a stop is pending anyway */
        }
    }
}

void gw_server_join(struct gw_server *srv)
{
    int i;

    for (i = 0; srv && i < srv->nworkers; i++) {
        if (srv->workers[i].started) {
            pthread_join(srv->workers[i].thread, NULL);
            srv->workers[i].started = false;
        }
    }
    if (srv) {
        srv->joined = true;
    }
}

void gw_server_destroy(struct gw_server *srv)
{
    int i;

    if (!srv) {
        return;
    }
    if (!srv->joined) {
        gw_server_stop(srv, 0);
        gw_server_join(srv);
    }
    for (i = 0; srv->workers && i < srv->nworkers; i++) {
        worker_free(&srv->workers[i]);
    }
    gv_free(srv->workers);
    gv_free(srv->models_json);
    gv_free(srv);
    curl_global_cleanup();
}
