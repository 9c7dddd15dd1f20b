/* gateway/gw_relay.c - a chat completion from request to answer: policies, upstream, relay */
/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE /* memmem */
#include "gateway/gw_relay.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <json-c/json.h>

#include "core/gv_buf.h"
#include "core/gv_log.h"
#include "core/gv_mem.h"
#include "core/gv_time.h"
#include "gateway/gw_http.h"
#include "gateway/gw_jscan.h"
#include "gateway/gw_oai.h"
#include "gateway/gw_route.h"
#include "gateway/gw_sse.h"
#include "gateway/gw_telemetry.h"
#include "gateway/gw_trace.h"
#include "gateway/gw_upstream.h"

#define MOD "gateway"
#define SSE_EVENT_MAX (1024u * 1024u)
#define ERR_BODY_MAX (64u * 1024u)
#define HDRS_MAX (16u * 1024u)
#define MAX_CHOICES 128
/* Finished request objects kept per worker for the next requests, with their
 * buffers when those stayed small: no calloc and no buffer growth per request. */
#define RQ_FREE_MAX 64u
#define RQ_KEEP_BUF (64u * 1024u)

/* Per-request state of a chat completion; lives from arrival to finish(). */
struct gw_rq {
    struct gw_worker *w;
    struct gw_conn *conn; /* NULL once the answer ended or the client left */
    struct gw_rq *prev;
    struct gw_rq *next;
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
    bool out_full; /* the client is behind: hold the upstream */
    bool in_cb;
    bool resp_too_big;
    bool stream_failed;
    bool policy_failed; /* a response policy failed: the answer is withheld */
    bool saw_done;
    bool rewrite;
    bool capture;    /* telemetry content: the answer's text goes into the record */
    bool trace_meta; /* the stream's id and model were read for the trace */

    bool keep_answer;       /* a policy records the answer text: collect it into answer */
    bool saw_usage;         /* the upstream reported usage for this answer */
    uint64_t relayed_bytes; /* answer text passed on to the client (content, arguments) */
    struct gw_jscan_chunk_repeats chunk_repeats; /* what this stream's chunks repeat */
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
    uint32_t parts_open[MAX_CHOICES];        /* refusal, tool calls fed and not yet flushed */
    char last_id[128];
    char last_model[128];
    long long last_created;
    struct gv_buf pending; /* SSE bytes for the next write */
    /* Pass-through events that are still in the upstream's bytes up_data is parsing
     * ([feed_lo, feed_hi), NULL outside it): [span, span + span_len), written ahead
     * of pending. They go to the connection from there, not through pending. */
    const char *span;
    size_t span_len;
    const char *feed_lo;
    const char *feed_hi;
    struct gv_buf scratch;
    struct gv_buf answer;         /* the first choice's text as sent, when keep_answer */
    struct gv_buf body_out;       /* the client's body with stream_options spliced in */
    struct gw_chain_async *async; /* async detection not merged yet */
    bool parked;                  /* answer done; the record waits for async */
};
#define rq gw_rq

/* ---------------------------------------------------------------- helpers */

/* A header value from the upstream, for our own answer head: anything that is
 * not printable ASCII or a space ends it, so no CR or LF can split the head. */
static void copy_hdr(char *dst, size_t size, const char *s)
{
    size_t i;

    for (i = 0; s && s[i] && i + 1 < size; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f) {
            break;
        }
        dst[i] = (char)ch;
    }
    dst[i] = '\0';
}

/* "name: value\r\n" lines from the upstream, kept only when every line is
 * well-formed (no control bytes inside), so they can go into our head as is. */
static char *safe_lines(const char *s)
{
    const char *p = s;

    if (!s || !*s) {
        return NULL;
    }
    while (*p) {
        const char *eol = strstr(p, "\r\n");
        const char *q;
        if (!eol || !memchr(p, ':', (size_t)(eol - p))) {
            return NULL;
        }
        for (q = p; q < eol; q++) {
            unsigned char ch = (unsigned char)*q;
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
                return NULL;
            }
        }
        p = eol + 2;
    }
    return gv_strdup(s);
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
        gv_str_copy(dst, size, "-");
    }
}

static uint64_t overhead_now(const struct rq *r)
{
    return r->gw_us + (gv_mono_us() - r->cb_t0);
}

static void add_upstream_headers(struct rq *r, struct gv_buf *h);

static void note_write(struct rq *r, enum gw_conn_wr wr)
{
    if (wr == GW_CONN_FULL) {
        r->out_full = true;
    }
    else if (wr == GW_CONN_GONE) {
        r->client_gone = true;
    }
}

/* The client's body with `"stream_options":{"include_usage":true},` put right after its
 * opening brace, into out. Only for a body that has no stream_options member at all (a
 * second one would be a duplicate key) and whose first member follows the brace; false
 * (out unspecified) sends the caller to the json-c print instead. */
static bool splice_stream_usage(struct gv_buf *out, struct json_object *body, const char *text,
                                size_t len)
{
    static const char member[] = "\"stream_options\":{\"include_usage\":true},";
    size_t open, first;

    if (json_object_object_get_ex(body, "stream_options", NULL)) {
        return false;
    }
    open = gw_jscan_skip_ws(text, 0, len);
    if (open >= len || text[open] != '{') {
        return false;
    }
    first = gw_jscan_skip_ws(text, open + 1, len);
    if (first >= len || text[first] != '"') {
        return false;
    }
    gv_buf_reset(out);
    return gv_buf_append(out, text, open + 1) == GV_OK &&
           gv_buf_append(out, member, sizeof(member) - 1) == GV_OK &&
           gv_buf_append(out, text + open + 1, len - open - 1) == GV_OK;
}

/* ------------------------------------------------------- request objects */

/* The buffers a request object keeps across uses, with the cap each is made with (resp's
 * and pending's are set again for every request in rq_get). One row a buffer: the object
 * is zeroed between requests, and these are the parts kept. */
static const struct {
    size_t off;
    size_t max;
} RQ_BUFS[] = {
    {offsetof(struct gw_rq, url), 4096},  {offsetof(struct gw_rq, resp), 0},
    {offsetof(struct gw_rq, pending), 0}, {offsetof(struct gw_rq, scratch), 0},
    {offsetof(struct gw_rq, answer), 0},  {offsetof(struct gw_rq, body_out), 0},
};
#define RQ_NBUFS (sizeof(RQ_BUFS) / sizeof(RQ_BUFS[0]))

static struct gv_buf *rq_buf(struct rq *r, size_t i)
{
    return (struct gv_buf *)(void *)((char *)r + RQ_BUFS[i].off);
}

#define RQ_AFTER_REC (offsetof(struct rq, rec) + sizeof(((struct rq *)0)->rec))

/* A zeroed request object with empty buffers. */
static struct rq *rq_get(struct gw_worker *w, const struct gw_config *cfg)
{
    struct rq *r = w->free_rq;
    struct gv_buf keep[RQ_NBUFS];
    size_t i;

    if (!r) {
        r = gv_calloc(1, sizeof(*r));
        for (i = 0; i < RQ_NBUFS; i++) {
            gv_buf_init(rq_buf(r, i), RQ_BUFS[i].max);
        }
    }
    else {
        w->free_rq = r->next;
        w->nfree--;
        for (i = 0; i < RQ_NBUFS; i++) {
            keep[i] = *rq_buf(r, i);
        }
        /* The record is 4 KB of which a request writes a few hundred bytes: it is
         * cleared as read (gv_record_clear), the rest of the object zeroed. */
        memset(r, 0, offsetof(struct rq, rec));
        gv_record_clear(&r->rec);
        memset((char *)r + RQ_AFTER_REC, 0, sizeof(*r) - RQ_AFTER_REC);
        for (i = 0; i < RQ_NBUFS; i++) {
            *rq_buf(r, i) = keep[i];
            gv_buf_reset(rq_buf(r, i));
        }
    }
    /* The cap is the config's, whatever the buffer was last used for. */
    r->resp.max = cfg->max_response_bytes ? cfg->max_response_bytes : 32u << 20;
    r->pending.max = SSE_EVENT_MAX * 2;
    return r;
}

static void rq_bufs_free(struct rq *r)
{
    size_t i;

    for (i = 0; i < RQ_NBUFS; i++) {
        gv_buf_free(rq_buf(r, i));
    }
}

/* Frees what a request owned except what rq_get hands out again; keeps or frees r. */
static void rq_put(struct gw_worker *w, struct rq *r)
{
    size_t i;

    if (w->nfree >= RQ_FREE_MAX) {
        rq_bufs_free(r);
        gv_free(r);
        return;
    }
    for (i = 0; i < RQ_NBUFS; i++) {
        if (rq_buf(r, i)->cap > RQ_KEEP_BUF) {
            gv_buf_free(rq_buf(r, i));
        }
    }
    r->next = w->free_rq;
    w->free_rq = r;
    w->nfree++;
}

void gw_relay_free_pool(struct gw_worker *w)
{
    /* Nothing waits on it by now: gw_relay_end_all finished every waiting record. */
    if (w->finish_ev) {
        event_free(w->finish_ev);
        w->finish_ev = NULL;
    }
    while (w->free_rq) {
        struct rq *r = w->free_rq;
        w->free_rq = r->next;
        w->nfree--;
        rq_bufs_free(r);
        gv_free(r);
    }
}

/* ------------------------------------------------------------ chat: finish */

/* An answer that ended before the upstream's usage arrived (the client left,
 * or the stream was cut) still cost something: the prompt the upstream read
 * and the text the client was sent. Without usage, both are estimated
 * (gw_req_tokens_estimate) and the record says so, so budgets hold. */
static void estimate_usage(struct rq *r)
{
    uint64_t prompt, prompt_max;
    bool left = strcmp(r->rec.error_code, "client_closed") == 0;

    if (r->saw_usage || !r->t_up_start || (!left && r->relayed_bytes == 0)) {
        return;
    }
    gw_req_prompt_tokens(&r->preq, &prompt, &prompt_max);
    r->rec.tokens_prompt = prompt;
    r->rec.tokens_completion = gw_req_tokens_estimate(r->relayed_bytes);
    r->rec.tokens_estimated = true;
}

static void unlink_active(struct rq *r)
{
    struct gw_worker *w = r->w;

    if (r->prev) {
        r->prev->next = r->next;
    }
    else {
        w->active = r->next;
    }
    if (r->next) {
        r->next->prev = r->prev;
    }
    r->prev = NULL;
    r->next = NULL;
}

static void finish_record(struct rq *r);

/* Records the answered requests that wait, oldest first. */
static void finish_waiting(struct gw_worker *w)
{
    while (w->finishing) {
        struct rq *r = w->finishing;
        w->finishing = r->next;
        r->next = NULL;
        finish_record(r);
    }
    w->finishing_last = NULL;
}

static void on_finish_ev(evutil_socket_t fd, short kind, void *arg)
{
    (void)fd;
    (void)kind;
    finish_waiting(arg);
}

/* The answer is queued and its connection's flush event made active; the
 * record, the complete hooks, the emit copy and the log line wait for
 * finish_ev, made active after it, so the answer leaves first. At low load
 * that takes this bookkeeping out of the client's wait; under load a pass
 * still does all of it. Without the event (it could not be made), at once. */
static void finish_later(struct rq *r)
{
    struct gw_worker *w = r->w;

    if (!w->finish_ev) {
        w->finish_ev = event_new(w->base, -1, 0, on_finish_ev, w);
        if (!w->finish_ev) {
            finish_record(r);
            return;
        }
    }
    r->next = NULL;
    if (w->finishing_last) {
        w->finishing_last->next = r;
    }
    else {
        w->finishing = r;
        event_active(w->finish_ev, EV_TIMEOUT, 1);
    }
    w->finishing_last = r;
}

/* The request is over for the client at `now`: record, audit, emit, log, free;
 * the record part waits (parked, off the active list) for async detection. */
static void finish_at(struct rq *r, int status, uint64_t now)
{
    if (r->call) {
        gw_upstream_abort(r->call);
        r->call = NULL;
        r->t_up_end = now;
    }
    if (r->conn) {
        /* The answer did not end: the connection closes. */
        gw_conn_detach(r->conn);
        r->conn = NULL;
    }
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
    estimate_usage(r);
    unlink_active(r);
    if (r->async) {
        /* Still counted in nactive, so a draining worker waits for it. */
        r->parked = true;
        return;
    }
    finish_later(r);
}

static void finish(struct rq *r, int status)
{
    finish_at(r, status, gv_mono_us());
}

/* The answer is handed to the client: kt's own time since the last callback
 * began ends at the same reading as the request. */
static void finish_counted(struct rq *r, int status)
{
    uint64_t now = gv_mono_us();

    r->gw_us += now - r->cb_t0;
    finish_at(r, status, now);
}

/* Async detection came back to this worker's loop. */
static void on_async_done(struct gw_async_job *job, void *arg)
{
    struct gw_chain_async *a = gw_chain_async_from_job(job);
    struct rq *r = gw_chain_async_owner(a);

    (void)arg;
    gw_chain_async_merge(a, &r->preq);
    r->async = NULL;
    if (r->parked) {
        finish_record(r);
    }
}

void gw_relay_async_drain(struct gw_worker *w)
{
    finish_waiting(w);
    gw_async_inbox_drain_destroy(w->inbox);
    w->inbox = NULL;
}

/* Appends `key` (" name=", a literal) and the value, "-" when empty, to the log line. */
#define KV_STR(b, key, v) kv_str((b), (key), sizeof(key) - 1, (v))
#define KV_U64(b, key, v) kv_u64((b), (key), sizeof(key) - 1, (v))

static void kv_str(struct gv_buf *b, const char *key, size_t klen, const char *v)
{
    (void)gv_buf_append(b, key, klen);
    (void)gv_buf_append_str(b, v && v[0] ? v : "-");
}

static void kv_u64(struct gv_buf *b, const char *key, size_t klen, unsigned long long v)
{
    (void)gv_buf_append(b, key, klen);
    (void)gv_buf_append_u64(b, v);
}

/* The one line per request: `req=... run=... model=... target=... decision=...
 * status=... total_ms=... upstream_ms=... overhead_ms=... tokens_in=... tokens_out=...
 * stream=0|1 [error=...]`. Built by appends into the worker's buffer, not printf:
 * it is written for every request. Prompt text, keys and answers never go in. */
static void log_request(const struct rq *r, struct gv_buf *kv)
{
    char ms[3][32], model[64];

    gw_http_fmt_ms(r->rec.latency_total_us, ms[0], sizeof(ms[0]));
    gw_http_fmt_ms(r->rec.latency_upstream_us, ms[1], sizeof(ms[1]));
    gw_http_fmt_ms(r->rec.latency_gateway_us, ms[2], sizeof(ms[2]));
    log_safe(model, sizeof(model), r->rec.model);
    gv_buf_reset(kv);
    KV_STR(kv, "req=", r->rec.request_id);
    KV_STR(kv, " run=", r->rec.run_id);
    KV_STR(kv, " model=", model);
    KV_STR(kv, " target=", r->rec.target);
    KV_STR(kv, " decision=", gv_decision_str(r->decision));
    KV_U64(kv, " status=", (unsigned long long)(r->rec.http_status < 0 ? 0 : r->rec.http_status));
    KV_STR(kv, " total_ms=", ms[0]);
    KV_STR(kv, " upstream_ms=", ms[1]);
    KV_STR(kv, " overhead_ms=", ms[2]);
    KV_U64(kv, " tokens_in=", (unsigned long long)r->rec.tokens_prompt);
    KV_U64(kv, " tokens_out=", (unsigned long long)r->rec.tokens_completion);
    KV_U64(kv, " stream=", r->stream ? 1 : 0);
    if (r->rec.error_code[0]) {
        KV_STR(kv, " error=", r->rec.error_code);
    }
    gv_log_write_kv(GV_LOG_INFO, MOD, "request", kv->data ? kv->data : "", kv->len);
}

static void finish_record(struct rq *r)
{
    struct gw_worker *w = r->w;
    struct gw_server *s = w->srv;

    gw_chain_complete(s->chain, &r->preq, &r->rec);
    if (s->em && s->em->ops && s->em->ops->emit) {
        s->em->ops->emit(s->em, &r->rec, r->preq.packed);
    }
    gv_record_release(&r->rec); /* the emitter copied any captured content */
    if (gv_log_enabled(GV_LOG_INFO)) {
        log_request(r, &w->logkv);
    }

    w->nactive--;
    if (r->body) {
        json_object_put(r->body);
    }
    gv_free(r->model);
    gv_free(r->api_key);
    gv_free(r->up_openai);
    gw_sse_free(&r->sse);
    rq_put(w, r);
    gw_worker_maybe_exit(w);
}

/* A whole answer from the upstream (or ours) with the upstream's headers. */
static void send_answer(struct rq *r, int status, const char *body, size_t len)
{
    struct gw_conn *c = r->conn;
    struct gv_buf hd;

    if (!c || r->client_gone) {
        return;
    }
    gv_buf_init(&hd, HDRS_MAX);
    add_upstream_headers(r, &hd);
    gw_route_kt_headers(&hd, r->rec.request_id, r->rec.run_id, r->decision, overhead_now(r));
    r->conn = NULL;
    gw_conn_reply(c, status, r->up_ctype[0] ? r->up_ctype : "application/json", hd.data, hd.len,
                  body, len);
    gv_buf_free(&hd);
}

/* Before any header went out: a whole JSON error answer, then finish. */
static void fail_json(struct rq *r, int status, const char *type, const char *code,
                      const char *param, const char *message)
{
    struct gv_buf b, hd;

    gv_buf_init(&b, ERR_BODY_MAX);
    gw_route_error_body(&b, status, type, code, param, message);
    if (r->decision != GV_DECISION_BLOCKED) {
        r->decision = GV_DECISION_ERROR;
    }
    gv_str_copy(r->rec.error_code, sizeof(r->rec.error_code), code ? code : type);
    if (r->conn && !r->client_gone) {
        struct gw_conn *c = r->conn;
        gv_buf_init(&hd, HDRS_MAX);
        gw_route_kt_headers(&hd, r->rec.request_id, r->rec.run_id, r->decision, overhead_now(r));
        r->conn = NULL;
        gw_conn_reply(c, status, "application/json", hd.data, hd.len, b.data, b.len);
        gv_buf_free(&hd);
    }
    gv_buf_free(&b);
    finish_counted(r, status);
}

/* Forgets the span of pass-through events, written or not. */
static void drop_span(struct rq *r)
{
    r->span = NULL;
    r->span_len = 0;
}

/* Writes the span of pass-through events, which comes before anything in pending. */
static void send_span(struct rq *r)
{
    if (r->span_len > 0 && r->conn && !r->client_gone) {
        note_write(r, gw_conn_stream_write(r->conn, r->span, r->span_len));
    }
    drop_span(r);
}

static void send_pending(struct rq *r)
{
    send_span(r);
    if (r->pending.len == 0) {
        return;
    }
    if (r->conn && !r->client_gone) {
        note_write(r, gw_conn_stream_write(r->conn, r->pending.data, r->pending.len));
    }
    gv_buf_reset(&r->pending);
}

/* A pass-through event's exact bytes, for the next write. The connection copies
 * what it is given into its queue; an event still in the bytes being parsed is
 * only marked, so that copy is the one it gets, where pending made it two (every
 * byte of a stream whose chunks pass as they came). Marks that follow each other
 * grow one span; the order on the wire stays: the span, then pending. */
static gv_rc pass_raw(struct rq *r, const char *p, size_t n)
{
    uintptr_t at = (uintptr_t)p, lo = (uintptr_t)r->feed_lo, hi = (uintptr_t)r->feed_hi;

    if (r->pending.len == 0 && lo != 0 && at >= lo && at <= hi && n <= hi - at) {
        if (r->span_len > 0 && (uintptr_t)r->span + r->span_len == at) {
            r->span_len += n;
            return GV_OK;
        }
        send_span(r);
        r->span = p;
        r->span_len = n;
        return GV_OK;
    }
    return gv_buf_append(&r->pending, p, n);
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
    gv_str_copy(r->rec.error_code, sizeof(r->rec.error_code), code);
    if (r->conn && !r->client_gone) {
        struct gw_conn *c = r->conn;
        /* Held-back text is dropped on purpose: it was never checked. */
        gv_buf_reset(&r->pending);
        drop_span(r);
        gw_conn_stream_write(c, b.data, b.len);
        r->conn = NULL;
        gw_conn_stream_end(c);
    }
    gv_buf_free(&b);
    finish_counted(r, status);
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
    r->saw_usage = true;
}

static struct json_object *parse_json(struct gw_worker *w, const char *p, size_t n)
{
    return gw_oai_parse_json(w->tok, GW_OAI_JSON_UNCHECKED, p, n);
}

static gv_rc append_sse_json(struct rq *r, struct json_object *o)
{
    const char *s =
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    gv_rc rc = gv_buf_append(&r->pending, "data: ", 6);

    rc = rc ? rc : gv_buf_append(&r->pending, s, strlen(s));
    rc = rc ? rc : gv_buf_append(&r->pending, "\n\n", 2);
    return rc;
}

/* The answer text of `choices` as it goes to the client (`part`: "delta" for
 * stream chunks, "message" for a whole answer): counted for the usage
 * estimate, and the first choice's content kept when a policy records it. */
static void note_text(struct rq *r, struct json_object *choices, const char *part)
{
    size_t i, n;

    if (!choices || !json_object_is_type(choices, json_type_array)) {
        return;
    }
    n = json_object_array_length(choices);
    for (i = 0; i < n; i++) {
        struct json_object *ch = json_object_array_get_idx(choices, i);
        struct json_object *m, *v, *idx, *calls;
        long long index = (long long)i;
        size_t j, ncalls;

        if (!json_object_is_type(ch, json_type_object) ||
            !json_object_object_get_ex(ch, part, &m) || !json_object_is_type(m, json_type_object)) {
            continue;
        }
        if (json_object_object_get_ex(ch, "index", &idx) && idx) {
            index = (long long)json_object_get_int64(idx);
        }
        if (json_object_object_get_ex(m, "content", &v) &&
            json_object_is_type(v, json_type_string)) {
            size_t len = (size_t)json_object_get_string_len(v);
            r->relayed_bytes += len;
            if (r->keep_answer && index == 0) {
                gw_req_answer_append(&r->answer, &r->preq.answer_truncated,
                                     json_object_get_string(v), len);
            }
        }
        if (!json_object_object_get_ex(m, "tool_calls", &calls) ||
            !json_object_is_type(calls, json_type_array)) {
            continue;
        }
        ncalls = json_object_array_length(calls);
        for (j = 0; j < ncalls; j++) {
            struct json_object *call = json_object_array_get_idx(calls, j), *f, *a;
            if (json_object_is_type(call, json_type_object) &&
                json_object_object_get_ex(call, "function", &f) &&
                json_object_is_type(f, json_type_object) &&
                json_object_object_get_ex(f, "arguments", &a) &&
                json_object_is_type(a, json_type_string)) {
                r->relayed_bytes += (size_t)json_object_get_string_len(a);
            }
        }
    }
}

static void note_answer(struct rq *r, struct json_object *o, const char *part)
{
    struct json_object *choices;

    if (o && json_object_object_get_ex(o, "choices", &choices)) {
        note_text(r, choices, part);
    }
}

/* One bit of parts_open per streamed part other than content. */
#define PART_BIT(part) (1u << ((part)-GW_STREAM_REFUSAL))
/* A flushed part joined to the same part's text in the finishing chunk. */
#define PART_JOIN_MAX (16u * 1024u * 1024u)

/* Feed one part's text to the chain; *out is what may be sent now (NULL when
 * nothing is). */
static gv_rc feed_part(struct rq *r, long long idx, int part, const char *text, size_t len,
                       bool final, struct json_object **out)
{
    gv_rc rc;

    *out = NULL;
    gv_buf_reset(&r->scratch);
    rc = gw_chain_stream_part(r->cs, (int)idx, part, text, len, final, &r->scratch);
    if (rc != GV_OK) {
        r->policy_failed = true;
        return rc;
    }
    if (final) {
        r->parts_open[idx] &= ~PART_BIT(part);
    }
    else {
        r->parts_open[idx] |= PART_BIT(part);
    }
    if (final && r->scratch.len == 0) {
        return GV_OK;
    }
    *out = json_object_new_string_len(r->scratch.data ? r->scratch.data : "", (int)r->scratch.len);
    return GV_OK;
}

/* `add` after the string member `key` of `o` (or as it, when there is none);
 * takes `add`. Both are one piece's policy output, bounded by the chain. */
static gv_rc append_string(struct json_object *o, const char *key, struct json_object *add)
{
    struct json_object *old;
    struct gv_buf b;
    gv_rc rc;

    if (!json_object_object_get_ex(o, key, &old) || !json_object_is_type(old, json_type_string)) {
        json_object_object_add(o, key, add);
        return GV_OK;
    }
    gv_buf_init(&b, PART_JOIN_MAX);
    rc = gv_buf_append(&b, json_object_get_string(old), (size_t)json_object_get_string_len(old));
    rc = rc ? rc
            : gv_buf_append(&b, json_object_get_string(add),
                            (size_t)json_object_get_string_len(add));
    json_object_put(add);
    if (rc == GV_OK) {
        json_object_object_add(o, key, json_object_new_string_len(b.data, (int)b.len));
    }
    gv_buf_free(&b);
    return rc;
}

/* The tool call with index k in delta.tool_calls, created when absent. */
static struct json_object *tool_call_at(struct json_object *delta, int k)
{
    struct json_object *calls, *call, *v;
    size_t j, n;

    if (!json_object_object_get_ex(delta, "tool_calls", &calls) ||
        !json_object_is_type(calls, json_type_array)) {
        calls = json_object_new_array();
        json_object_object_add(delta, "tool_calls", calls);
    }
    n = json_object_array_length(calls);
    for (j = 0; j < n; j++) {
        call = json_object_array_get_idx(calls, j);
        if (json_object_is_type(call, json_type_object) &&
            json_object_object_get_ex(call, "index", &v) && json_object_get_int(v) == k) {
            return call;
        }
    }
    call = json_object_new_object();
    json_object_object_add(call, "index", json_object_new_int(k));
    json_object_array_add(calls, call);
    return call;
}

/* Answer text outside delta.content: delta.refusal and each streamed tool
 * call's function.arguments go through the response policies like content,
 * each as its own stream (arguments arrive split across events just as
 * content does). `final` flushes what the policies held back into this
 * choice's delta, creating it (and the tool call entries) as needed. */
static gv_rc rewrite_parts(struct rq *r, struct json_object *ch, long long idx,
                           struct json_object **delta, bool final, bool *modified)
{
    struct json_object *v, *calls, *out;
    int part;
    gv_rc rc = GV_OK;

    if (*delta && json_object_object_get_ex(*delta, "refusal", &v) &&
        json_object_is_type(v, json_type_string)) {
        rc = feed_part(r, idx, GW_STREAM_REFUSAL, json_object_get_string(v),
                       (size_t)json_object_get_string_len(v), false, &out);
        if (rc != GV_OK) {
            return rc;
        }
        json_object_object_add(*delta, "refusal", out);
        *modified = true;
    }
    if (*delta && json_object_object_get_ex(*delta, "tool_calls", &calls) &&
        json_object_is_type(calls, json_type_array)) {
        size_t j, n = json_object_array_length(calls);
        for (j = 0; j < n; j++) {
            struct json_object *call = json_object_array_get_idx(calls, j), *f, *a, *ko;
            int k = (int)j;
            if (!json_object_is_type(call, json_type_object) ||
                !json_object_object_get_ex(call, "function", &f) ||
                !json_object_is_type(f, json_type_object) ||
                !json_object_object_get_ex(f, "arguments", &a) ||
                !json_object_is_type(a, json_type_string)) {
                continue;
            }
            if (json_object_object_get_ex(call, "index", &ko) && ko) {
                k = json_object_get_int(ko);
            }
            if (k < 0 || k >= GW_CHAIN_STREAM_CALLS) {
                continue; /* past the chain's stream states: passed on as it came */
            }
            rc = feed_part(r, idx, GW_STREAM_CALL0 + k, json_object_get_string(a),
                           (size_t)json_object_get_string_len(a), false, &out);
            if (rc != GV_OK) {
                return rc;
            }
            json_object_object_add(f, "arguments", out);
            *modified = true;
        }
    }
    for (part = GW_STREAM_REFUSAL; final && r->parts_open[idx] && rc == GV_OK &&
                                   part < GW_STREAM_CALL0 + GW_CHAIN_STREAM_CALLS;
         part++) {
        struct json_object *f;
        if (!(r->parts_open[idx] & PART_BIT(part))) {
            continue;
        }
        rc = feed_part(r, idx, part, "", 0, true, &out);
        if (rc != GV_OK || !out) {
            continue;
        }
        *modified = true;
        if (!*delta) {
            *delta = json_object_new_object();
            json_object_object_add(ch, "delta", *delta);
        }
        if (part == GW_STREAM_REFUSAL) {
            rc = append_string(*delta, "refusal", out);
        }
        else {
            struct json_object *call = tool_call_at(*delta, part - GW_STREAM_CALL0);
            if (!json_object_object_get_ex(call, "function", &f) ||
                !json_object_is_type(f, json_type_object)) {
                f = json_object_new_object();
                json_object_object_add(call, "function", f);
            }
            rc = append_string(f, "arguments", out);
        }
    }
    return rc;
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
        struct json_object *o, *choices, *choice, *delta = NULL;
        bool parts = false;
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
        choice = json_object_new_object();
        if (r->scratch.len > 0) {
            delta = json_object_new_object();
            json_object_object_add(
                delta, "content", json_object_new_string_len(r->scratch.data, (int)r->scratch.len));
            json_object_object_add(choice, "delta", delta);
        }
        rc = rewrite_parts(r, choice, i, &delta, true, &parts);
        if (rc != GV_OK || !delta) {
            json_object_put(choice);
            continue;
        }
        o = json_object_new_object();
        json_object_object_add(o, "id", json_object_new_string(r->last_id));
        json_object_object_add(o, "object", json_object_new_string("chat.completion.chunk"));
        json_object_object_add(o, "created", json_object_new_int64(r->last_created));
        json_object_object_add(o, "model", json_object_new_string(r->last_model));
        choices = json_object_new_array();
        json_object_object_add(choice, "index", json_object_new_int(i));
        json_object_object_add(choice, "finish_reason", NULL);
        json_object_array_add(choices, choice);
        json_object_object_add(o, "choices", choices);
        gw_telemetry_answer(r->w->srv->cfg, &r->rec, o); /* held-back text, as sent */
        note_answer(r, o, "delta");
        rc = append_sse_json(r, o);
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
        struct json_object *delta = NULL, *content = NULL, *fin = NULL, *idxo, *part;
        const char *text = "";
        size_t len = 0;
        bool final, has_content, has_parts;
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
        /* "refusal": null rides on ordinary chunks; only text counts. */
        has_parts = delta && ((json_object_object_get_ex(delta, "refusal", &part) &&
                               json_object_is_type(part, json_type_string)) ||
                              (json_object_object_get_ex(delta, "tool_calls", &part) &&
                               json_object_is_type(part, json_type_array)));
        final = json_object_object_get_ex(ch, "finish_reason", &fin) && fin != NULL;
        if (!has_content && !has_parts && !final) {
            continue;
        }
        if (r->choice_state[idx] == 2) {
            if (has_content || has_parts) {
                return GV_EPROTO; /* text after the choice finished */
            }
            continue;
        }
        if (has_parts || final) {
            rc = rewrite_parts(r, ch, idx, &delta, final, modified);
            if (rc != GV_OK) {
                break;
            }
            r->choice_state[idx] = final ? 2 : 1;
        }
        if (!has_content && !final) {
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

    if (json_object_object_get_ex(o, "id", &v) && json_object_is_type(v, json_type_string)) {
        gv_str_copy(r->last_id, sizeof(r->last_id), json_object_get_string(v));
    }
    if (json_object_object_get_ex(o, "model", &v) && json_object_is_type(v, json_type_string)) {
        gv_str_copy(r->last_model, sizeof(r->last_model), json_object_get_string(v));
    }
    if (json_object_object_get_ex(o, "created", &v) && v) {
        r->last_created = (long long)json_object_get_int64(v);
    }
}

/* The counts of a usage member's text (v NULL: none), a span the answer's walk
 * delimited. */
static void read_usage_span(struct rq *r, const char *v, size_t vlen)
{
    if (v && vlen > 0 && v[0] == '{') {
        static const char *const keys[] = {"prompt_tokens", "completion_tokens"};
        unsigned long long n[2];
        struct json_object *u;
        /* OpenAI's counts are plain integers: read them off the text, in one walk that
         * ends at the second of them (the span is whole: the answer's walk found its end). */
        if (gw_jscan_u64s_first(v, vlen, keys, 2, n)) {
            r->rec.tokens_prompt = n[0];
            r->rec.tokens_completion = n[1];
            r->saw_usage = true;
            return;
        }
        u = parse_json(r->w, v, vlen);
        if (u && json_object_is_type(u, json_type_object)) {
            read_usage(r, u);
        }
        if (u) {
            json_object_put(u);
        }
    }
}

/* Usage and the trace facts (id, model, finish reasons) of an answer's text, in
 * one walk; false when the text is not one JSON object. */
static bool read_answer_text(struct rq *r, const char *p, size_t n)
{
    static const char *const keys[] = {"usage", "id", "model", "choices"};
    const char *v[4];
    size_t vlen[4];

    if (gw_jscan_members(p, n, keys, 4, v, vlen) == GW_JSCAN_INVALID) {
        return false;
    }
    read_usage_span(r, v[0], vlen[0]);
    gw_trace_response_spans(&r->rec, v[1], vlen[1], v[2], vlen[2], v[3], vlen[3]);
    return true;
}

/* An SSE event when no response policy reads the text: pass it on as it came,
 * unless it carries the usage the client did not ask for. */
static gv_rc pass_event(struct rq *r, const struct gw_sse_event *ev)
{
    static const char *const usage_keys[] = {"usage", "choices"};
    const char *v[2];
    size_t vlen[2];
    struct json_object *o;
    struct gw_jscan_chunk facts;

    /* One walk over the chunk's strings says what the rest needs: the text's size (an
     * answer cut short is charged by it), whether a choice finished, whether usage is
     * there. OpenAI puts "usage":null on every chunk but the last, so most chunks go
     * on after this walk alone, with no json-c tree. */
    gw_jscan_chunk_facts(ev->data, ev->data_len, &facts, &r->chunk_repeats);
    r->relayed_bytes += facts.text_bytes;
    /* The first chunk names the answer; the ones that finish a choice say why. The walk
     * above has the reason when there is one (a chunk finishes one choice); a chunk with
     * several, or with one it could not pass whole, is walked again for them all. */
    if (!r->trace_meta) {
        r->trace_meta = true;
        gw_trace_response_head(&r->rec, ev->data, ev->data_len);
    }
    if (facts.nreasons == 1) {
        gw_trace_finish_reason(&r->rec, facts.reason, facts.reason_len);
    }
    else if (facts.finish_reason) {
        gw_trace_response_text(&r->rec, ev->data, ev->data_len);
    }
    if (!facts.usage) {
        return pass_raw(r, ev->raw, ev->raw_len);
    }
    /* Usage and choices in one walk (the last chunk of every stream). */
    if (gw_jscan_members(ev->data, ev->data_len, usage_keys, 2, v, vlen) != GW_JSCAN_FOUND ||
        !v[0] || vlen[0] == 0 || v[0][0] != '{') {
        return pass_raw(r, ev->raw, ev->raw_len);
    }
    read_usage_span(r, v[0], vlen[0]);
    if (r->client_usage) {
        return pass_raw(r, ev->raw, ev->raw_len);
    }
    if (!v[1] || (vlen[1] == 2 && v[1][0] == '[' && v[1][1] == ']')) {
        return GV_OK; /* the usage-only chunk the client did not ask for */
    }
    /* Usage on a chunk with choices (not what OpenAI sends, but legal): drop the member. */
    o = parse_json(r->w, ev->data, ev->data_len);
    if (!o) {
        return pass_raw(r, ev->raw, ev->raw_len);
    }
    json_object_object_del(o, "usage");
    {
        gv_rc rc = append_sse_json(r, o);
        json_object_put(o);
        return rc;
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
        return pass_raw(r, ev->raw, ev->raw_len); /* comments, keep-alives */
    }
    if (!r->rewrite && !r->capture && !r->keep_answer && !ev->done) {
        return pass_event(r, ev);
    }
    if (ev->done) {
        rc = flush_choices(r);
        r->saw_done = true;
        return rc == GV_OK ? pass_raw(r, ev->raw, ev->raw_len) : rc;
    }
    o = parse_json(r->w, ev->data, ev->data_len);
    if (!o) {
        /* Text we cannot read cannot be checked: fail closed when it must be. */
        if (r->rewrite) {
            return GV_EPROTO;
        }
        gv_buf_append(&r->pending, ev->raw, ev->raw_len);
        return GV_OK;
    }
    gw_trace_response(&r->rec, o); /* id, model, finish reasons */
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
        gw_telemetry_answer(r->w->srv->cfg, &r->rec, o); /* the chunk as sent */
        note_answer(r, o, "delta");
        if (modified) {
            rc = append_sse_json(r, o);
        }
        else {
            rc = gv_buf_append(&r->pending, ev->raw, ev->raw_len);
        }
    }
    json_object_put(o);
    return rc;
}

/* "traceparent: <tp>\r\n" and, when the client sent one, "tracestate: <ts>\r\n"
 * into out (cut to size, NUL-ended): the headers kt adds upstream. */
static void trace_headers(char *out, size_t size, const char *tp, const char *ts)
{
    const char *part[6] = {"traceparent: ", tp, "\r\n", "tracestate: ", ts, "\r\n"};
    size_t n = 0, i, k = ts[0] ? 6 : 3;

    for (i = 0; i < k; i++) {
        size_t len = strlen(part[i]);
        if (len > size - 1 - n) {
            len = size - 1 - n;
        }
        memcpy(out + n, part[i], len);
        n += len;
    }
    out[n] = '\0';
}

/* "<name>: <value>\r\n" into h when value is not empty. */
static void add_header(struct gv_buf *h, const char *name, const char *value)
{
    if (value[0]) {
        gv_buf_append_str(h, name);
        gv_buf_append(h, ": ", 2);
        gv_buf_append_str(h, value);
        gv_buf_append(h, "\r\n", 2);
    }
}

/* Header lines the client gets from the upstream's answer. */
static void add_upstream_headers(struct rq *r, struct gv_buf *h)
{
    add_header(h, "x-request-id", r->up_reqid);
    add_header(h, "retry-after", r->up_retry);
    if (r->up_openai) {
        gv_buf_append_str(h, r->up_openai);
    }
}

static void up_headers(void *arg, const struct gw_up_headers *h)
{
    struct rq *r = arg;

    /* Copying a few header values is timed as the upstream's (it runs before
     * t_up_end); only a stream's head, which kt writes here, is timed as kt's. */
    r->in_cb = true;
    r->up_status = h->status;
    copy_hdr(r->up_ctype, sizeof(r->up_ctype), h->content_type);
    copy_hdr(r->up_reqid, sizeof(r->up_reqid), h->request_id);
    copy_hdr(r->up_retry, sizeof(r->up_retry), h->retry_after);
    gv_free(r->up_openai);
    r->up_openai = safe_lines(h->openai_lines);
    if (r->conn && r->stream && h->status >= 200 && h->status < 300 &&
        strncasecmp(h->content_type, "text/event-stream", 17) == 0) {
        struct gv_buf hd;
        enum gw_conn_wr wr;
        r->cb_t0 = gv_mono_us();
        r->sse_mode = true;
        r->rec.streamed = true;
        r->rewrite = gw_chain_wants_response(r->w->srv->chain);
        if (r->rewrite) {
            r->cs = gw_chain_stream_open(r->w->srv->chain, &r->preq);
        }
        gv_buf_init(&hd, HDRS_MAX);
        gv_buf_append_str(&hd, "Cache-Control: no-cache\r\n");
        add_upstream_headers(r, &hd);
        gw_route_kt_headers(&hd, r->rec.request_id, r->rec.run_id, r->decision, overhead_now(r));
        wr = gw_conn_stream_start(r->conn, 200, r->up_ctype, hd.data, hd.len);
        gv_buf_free(&hd);
        note_write(r, wr);
        r->headers_sent = true;
        r->gw_us += gv_mono_us() - r->cb_t0;
    }
    r->in_cb = false;
}

static enum gw_up_flow up_data(void *arg, const char *p, size_t n)
{
    struct rq *r = arg;
    enum gw_up_flow flow = GW_UP_CONTINUE;
    gv_rc rc;

    if (r->client_gone || !r->conn) {
        return GW_UP_ABORT;
    }
    if (r->sse_mode && r->out_full) {
        /* Not consumed: the client handles these bytes over again after resume. */
        r->paused = true;
        return GW_UP_PAUSE;
    }
    r->in_cb = true;
    if (r->sse_mode) {
        r->cb_t0 = gv_mono_us();
        gw_trace_first_byte(&r->rec, r->cb_t0 - r->t_up_start); /* only the first counts */
        r->feed_lo = p;
        r->feed_hi = p + n;
        rc = gw_sse_feed(&r->sse, p, n, on_event, r);
        send_pending(r); /* the span too: its bytes are the caller's until we return */
        r->feed_lo = r->feed_hi = NULL;
        if (r->client_gone) {
            flow = GW_UP_ABORT;
        }
        if (rc != GV_OK) {
            r->stream_failed = true;
            flow = GW_UP_ABORT;
        }
        r->gw_us += gv_mono_us() - r->cb_t0;
    }
    else {
        /* A whole answer is read here and worked on at up_done: keeping its bytes is
         * timed as the upstream's, like its header values. */
        if (r->rec.upstream_first_byte_us == 0) { /* the clock only for the first */
            gw_trace_first_byte(&r->rec, gv_mono_us() - r->t_up_start);
        }
        if (gv_buf_append(&r->resp, p, n) != GV_OK) {
            r->resp_too_big = true;
            flow = GW_UP_ABORT;
        }
    }
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
        gv_str_copy(r->rec.error_code, sizeof(r->rec.error_code), "upstream_error");
        o = parse_json(r->w, body, len);
        if (o && json_object_object_get_ex(o, "error", &err) &&
            json_object_object_get_ex(err, "code", &v) &&
            json_object_is_type(v, json_type_string)) {
            gv_str_copy(r->rec.error_code, sizeof(r->rec.error_code), json_object_get_string(v));
        }
        if (o) {
            json_object_put(o);
        }
        if (status < 100 || status > 599) {
            fail_json(r, 502, NULL, "upstream_error", NULL, "upstream answered with a bad status");
            return;
        }
    }
    else if (!gw_chain_wants_response(r->w->srv->chain) && !r->capture && !r->keep_answer) {
        /* Nothing reads the answer but the usage counter: no tree of the whole answer. */
        if (!read_answer_text(r, body, len)) {
            fail_json(r, 502, NULL, "upstream_error", NULL, "upstream returned invalid JSON");
            return;
        }
        send_answer(r, status, body, len);
        finish_counted(r, status);
        return;
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
        gw_trace_response(&r->rec, o); /* id, model, finish reasons */
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
        gw_telemetry_answer(r->w->srv->cfg, &r->rec, o); /* the answer as sent */
        note_answer(r, o, "message");
        send_answer(r, status, body, len);
        json_object_put(o);
        finish_counted(r, status);
        return;
    }
    send_answer(r, status, body, len);
    finish_counted(r, status);
}

static void up_done(void *arg, gv_rc rc, const char *what)
{
    struct rq *r = arg;
    char msg[160];

    r->call = NULL;
    r->t_up_end = gv_mono_us();
    r->cb_t0 = r->t_up_end;
    if (r->client_gone || !r->conn) {
        r->decision = GV_DECISION_ERROR;
        gv_str_copy(r->rec.error_code, sizeof(r->rec.error_code), "client_closed");
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
    if (r->conn && !r->client_gone) {
        struct gw_conn *c = r->conn;
        r->conn = NULL;
        gw_conn_stream_end(c);
    }
    finish_counted(r, r->client_gone ? 499 : 200);
}

static const struct gw_upstream_ops up_ops = {
    .headers = up_headers,
    .data = up_data,
    .done = up_done,
};

/* ------------------------------------------------- the client's connection */

static void on_drained(void *arg)
{
    struct rq *r = arg;

    r->out_full = false;
    if (r->paused && r->call) {
        r->paused = false;
        gw_upstream_resume(r->call);
    }
}

static void on_client_closed(void *arg)
{
    struct rq *r = arg;

    r->conn = NULL;
    r->client_gone = true;
    if (r->in_cb) {
        return; /* up_data sees client_gone and aborts the transfer */
    }
    r->decision = GV_DECISION_ERROR;
    gv_str_copy(r->rec.error_code, sizeof(r->rec.error_code), "client_closed");
    finish(r, 499);
}

static const struct gw_conn_owner_ops conn_ops = {
    .drained = on_drained,
    .closed = on_client_closed,
};

/* ------------------------------------------------------- chat: the request */

static const char *hdr_value(const struct gw_h1_head *h, const char *name, char *buf, size_t size)
{
    const struct gw_h1_hdr *v = gw_h1req_header(h, name);
    size_t n;

    if (!v) {
        return NULL;
    }
    /* gw_h1req keeps values NUL-terminated inside its buffer, but a copy keeps
     * this independent of that and bounds what the checks see. */
    n = v->value_len < size - 1 ? v->value_len : size - 1;
    memcpy(buf, v->value, n);
    buf[n] = '\0';
    return buf;
}

void gw_relay_chat(struct gw_worker *w, struct gw_conn *c, const struct gw_conn_req *in,
                   const char *reqid)
{
    struct gw_server *s = w->srv;
    const struct gw_config *cfg = s->cfg;
    struct rq *r = rq_get(w, cfg);
    char run_id[GV_RUN_TAG_MAX + 2], project[GV_RUN_TAG_MAX + 2], entity[GV_RUN_TAG_MAX + 2];
    char group[GV_RUN_TAG_MAX + 2], auth[1024];
    char tp_in[GV_TRACEPARENT_LEN + 2], ts_in[GV_TRACESTATE_MAX + 2];
    char tp_out[GV_TRACEPARENT_LEN + 1], extra[GV_TRACEPARENT_LEN + GV_TRACESTATE_MAX + 32];
    struct gw_oai_hdrs oh;
    struct gw_oai_chat chat;
    struct gw_oai_err err;
    struct json_object *so;
    struct gw_verdict verdict;
    struct gw_upstream_req up;
    const struct gw_target *t;
    char msg[256];
    bool need_usage, reprint, ok;

    r->w = w;
    r->conn = c;
    r->t_start = in->t_start;
    r->cb_t0 = in->t_start;
    r->decision = GV_DECISION_ALLOWED;
    r->preq.model = "";
    r->preq.api_key = "";
    r->preq.rec = &r->rec;
    r->rec.start_wall_us = gv_wall_at_mono(in->t_start);
    gv_str_copy(r->rec.request_id, sizeof(r->rec.request_id), reqid);
    /* Continue the client's trace context, or start a trace. */
    gw_trace_begin(&r->rec, hdr_value(in->head, "traceparent", tp_in, sizeof(tp_in)),
                   hdr_value(in->head, "tracestate", ts_in, sizeof(ts_in)));
    gw_sse_init(&r->sse, SSE_EVENT_MAX);
    r->next = w->active;
    if (w->active) {
        w->active->prev = r;
    }
    w->active = r;
    w->nactive++;
    gw_conn_attach(c, &conn_ops, r);

    /* Tags longer than the limit must still fail the check: the buffers hold
     * one byte more than a valid tag. */
    oh.run_id = hdr_value(in->head, "x-wandb-run-id", run_id, sizeof(run_id));
    oh.project = hdr_value(in->head, "x-wandb-project", project, sizeof(project));
    oh.entity = hdr_value(in->head, "x-wandb-entity", entity, sizeof(entity));
    oh.run_group = hdr_value(in->head, "x-wandb-run-group", group, sizeof(group));
    oh.authorization = hdr_value(in->head, "authorization", auth, sizeof(auth));
    ok = gw_oai_chat_check(w->tok, &oh, in->body, in->body_len, cfg->max_body_bytes, &chat, &r->rec,
                           &err);
    r->body = chat.body;
    /* Roles and message count, never text, read while the tree just built is
     * in the cache (policies change texts, not messages or roles). */
    gw_telemetry_shape(&r->rec, r->body, chat.messages);
    if (!ok) {
        fail_json(r, err.status, NULL, err.code, err.param, err.message);
        return;
    }
    r->preq.body = r->body;
    r->preq.messages = chat.messages;
    r->api_key = gv_strdup(chat.api_key);
    r->preq.api_key = r->api_key;
    r->model = gv_strdup(chat.model);
    r->preq.model = r->model;
    gv_str_copy(r->rec.model, sizeof(r->rec.model), r->model);
    r->stream = chat.stream;
    r->preq.stream = r->stream;
    r->client_usage = chat.client_usage;
    t = gw_config_find_target(cfg, r->model);
    if (!t) {
        snprintf(msg, sizeof(msg),
                 "The model `%.100s` does not exist or is not configured on this gateway.",
                 r->model);
        fail_json(r, 404, NULL, "model_not_found", "model", msg);
        return;
    }
    r->preq.target = t;
    gv_str_copy(r->rec.target, sizeof(r->rec.target), t->id);

    memset(&verdict, 0, sizeof(verdict));
    gw_chain_evaluate(s->chain, &r->preq, &verdict);
    if (verdict.action == GW_ACTION_BLOCK) {
        r->decision = verdict.code && strcmp(verdict.code, "policy_error") == 0
                          ? GV_DECISION_ERROR
                          : GV_DECISION_BLOCKED;
        fail_json(r, verdict.status ? verdict.status : 403, "policy_violation",
                  verdict.code ? verdict.code : "policy_violation", verdict.param,
                  verdict.message ? verdict.message : "The request was blocked by a policy.");
        return;
    }
    if (verdict.action == GW_ACTION_REDACT) {
        r->decision = GV_DECISION_REDACTED;
    }

    /* Only re-serialize when something changed: otherwise the client's bytes go out as is.
     * When the only change is asking for usage on a stream, the member is spliced into the
     * client's bytes: a json-c print of the whole tree cost ~3% of a streamed request. */
    need_usage = r->stream && t->stream_usage && !r->client_usage;
    reprint = r->preq.body_modified || strcmp(r->model, t->model) != 0;
    if (!reprint && need_usage &&
        splice_stream_usage(&r->body_out, r->body, in->body, in->body_len)) {
        r->send_body = r->body_out.data;
        r->send_len = r->body_out.len;
    }
    else if (reprint || need_usage) {
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
        /* The parser's body buffer stays valid until the answer ends. */
        r->send_body = in->body;
        r->send_len = in->body_len;
    }
    r->capture = cfg->telemetry_content == GW_TELEMETRY_REDACTED;
    r->keep_answer = gw_chain_keeps_answer(s->chain);
    if (r->keep_answer) {
        r->preq.answer = &r->answer;
    }
    /* The messages exactly as they go upstream, when telemetry content is on. */
    gw_telemetry_request(cfg, &r->rec, r->send_body, r->send_len);
    if (gv_buf_append_str(&r->url, t->base_url) != GV_OK ||
        gv_buf_append_str(&r->url, "/chat/completions") != GV_OK) {
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
    up.ca_file = t->ca_file;
    /* The CLIENT span's traceparent (and the client's tracestate) go upstream; the span
     * starts here, its wall start from the same reading as the upstream's time. */
    gw_trace_upstream_header(&r->rec, tp_out);
    trace_headers(extra, sizeof(extra), tp_out, r->rec.tracestate);
    up.extra_headers = extra;
    r->t_up_start = gv_mono_us();
    gw_trace_upstream_start(&r->rec, up.url, gv_wall_at_mono(r->t_up_start));
    r->gw_us = r->t_up_start - in->t_start;
    if (gw_upstream_start(w->up, &up, &up_ops, r, &r->call) != GV_OK) {
        r->t_up_end = gv_mono_us();
        r->cb_t0 = r->t_up_end;
        fail_json(r, 502, NULL, "upstream_error", NULL, "upstream request could not be started");
        return;
    }
    /* Forwarded: async detection now runs beside the upstream call. Copying
     * the request for it is kt's own time on the request path: it counts. */
    if (gw_chain_has_async(s->chain)) {
        uint64_t t0 = gv_mono_us();
        if (!w->inbox && gw_async_inbox_create(w->base, on_async_done, w, &w->inbox) != GV_OK) {
            gv_log(GV_LOG_WARN, MOD, "cannot start async detection on this worker", "worker=%d",
                   w->idx);
        }
        r->async = gw_chain_async_start(s->chain, &r->preq, w->inbox, r);
        r->gw_us += gv_mono_us() - t0;
    }
}

void gw_relay_end_all(struct gw_worker *w)
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
    /* Also outside the loop (worker_free), where finish_ev would never run. */
    finish_waiting(w);
}
