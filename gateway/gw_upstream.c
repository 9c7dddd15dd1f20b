/* gateway/gw_upstream.c - non-blocking upstream calls: kt's HTTP/1.1 client on a libevent base */
/* SPDX-License-Identifier: Apache-2.0 */
#include "gateway/gw_upstream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/util.h>
#include <http_parser.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/gv_buf.h"
#include "core/gv_list.h"
#include "core/gv_mem.h"
#include "core/gv_time.h"
#include "gateway/gw_h1resp.h"

#define CONNECT_TIMEOUT_DEFAULT_MS 10000L
#define RBUF_SIZE 16384u
/* Free read buffers kept per worker; a burst past this is freed when drained. */
#define RBUF_FREE_MAX 8u
/* Idle keep-alive connections kept per origin, and for how long. Shorter than
 * the usual server keep-alive timeouts (node 5 s, nginx 75 s), so the server
 * rarely closes one just as a request goes out on it. */
#define IDLE_PER_ORIGIN_MAX 64u
#define IDLE_KEEP_MS 4000u
#define SWEEP_MS 1000u
#define DNS_TTL_MS 30000u
/* TLS request bodies up to this size go out in the head's TLS record. */
#define TLS_COALESCE_MAX 16384u
/* TLS sessions kept per origin for resumption; each is used once (TLS 1.3 tickets are
 * single-use), and a full handshake brings new ones (OpenSSL servers send two). */
#define SESSIONS_MAX 4u
#define HOST_MAX 255u
#define WHAT_MAX 200u
/* Parsed URLs kept per worker: a gateway sends to a few configured base URLs. */
#define URL_CACHE_MAX 16u

struct rbuf {
    struct rbuf *next;
    size_t len; /* bytes read into data */
    size_t pos; /* bytes the parser took */
    char data[RBUF_SIZE];
};

struct tlsctx {
    char *ca_file; /* NULL: the default store */
    SSL_CTX *ctx;
};

struct conn;

/* Where requests go: one keep-alive pool, TLS session and DNS answer each. */
struct origin {
    struct origin *next;
    struct gw_upstream *up;
    bool tls;
    char host[HOST_MAX + 1];
    uint16_t port;
    char *ca_file;
    bool numeric; /* host is an IP literal (or localhost): no lookup */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    uint64_t addr_until_ms;              /* DNS cache; 0: none; UINT64_MAX: literal */
    SSL_SESSION *sessions[SESSIONS_MAX]; /* for resumption, newest last */
    size_t nsessions;
    struct conn *idle; /* most recently used first */
    size_t nidle;
};

struct conn {
    struct gw_upstream *up;
    struct origin *o;
    int fd;
    SSL *ssl;
    struct event ev;
    short ev_what;                 /* what ev is registered for; 0: not registered */
    struct gw_upstream_call *call; /* NULL while idle */
    struct conn *prev;             /* idle list */
    struct conn *next;
    uint64_t idle_since_ms;
    unsigned long nreq; /* requests sent on it */
    bool tls_failed;    /* its session must not be resumed */
};

enum call_state { C_RESOLVING = 0, C_CONNECTING, C_HANDSHAKE, C_WRITING, C_READING };

/* Finished call objects each worker keeps for reuse, with their request head
 * buffer (wiped) when it is no larger than this: a malloc a request less. */
#define CALL_POOL_MAX 64
#define HEAD_KEEP_MAX 2048u

struct gw_upstream_call {
    struct gw_upstream *up;
    struct gw_upstream_call *prev; /* in flight, for destroy */
    struct gw_upstream_call *next;
    const struct gw_upstream_ops *ops;
    void *arg;
    struct origin *o;
    struct conn *conn;
    enum call_state state;
    struct evdns_getaddrinfo_request *dns;
    char *head;      /* request head (holds the secret: wiped when the call ends) */
    size_t head_len; /* its bytes, plus the body when body_in_head */
    size_t head_cap; /* its allocation, kept across reuse up to HEAD_KEEP_MAX */
    const char *body;
    size_t body_len;
    size_t sent; /* bytes of head + body written */
    bool body_in_head;
    struct gw_h1resp resp;
    struct rbuf *buf;
    const char *pend; /* body bytes data() paused on, inside buf */
    size_t pend_len;
    struct event timer; /* deadlines, and deferred failures */
    uint64_t start_ms;
    uint64_t last_io_ms;
    long connect_ms;
    long first_byte_ms;
    long idle_ms;
    bool got_byte;
    bool paused;
    bool resume_due;
    bool send_due; /* a pooled connection's request waits for the end of the loop pass */
    bool retried;
    bool in_start;
    gv_rc fail_rc; /* a failure waiting for the loop (done() never runs inside start) */
    char what[WHAT_MAX];
};

struct target {
    bool tls;
    char host[HOST_MAX + 1];
    uint16_t port;
    const char *path; /* path and query, into the URL */
    size_t path_len;
    const char *hostport; /* for the Host header, into the URL */
    size_t hostport_len;
};

struct urlcache {
    char *url; /* a copy; t points into it */
    struct target t;
};

struct gw_upstream {
    struct event_base *base;
    struct evdns_base *dns;
    struct event sweep;
    struct gw_upstream_call *calls;
    struct origin *origins;
    struct tlsctx *tls;
    size_t ntls;
    struct rbuf *free_bufs;
    size_t nfree_bufs;
    struct gw_upstream_call *free_calls; /* finished calls kept for reuse (next-linked) */
    size_t nfree_calls;
    struct urlcache urls[URL_CACHE_MAX];
    size_t nurls;
    struct gw_upstream_stats st;
};

static void on_conn_io(evutil_socket_t fd, short what, void *arg);
static void on_call_timer(evutil_socket_t fd, short what, void *arg);
static void call_fail(struct gw_upstream_call *c, gv_rc rc, const char *what);
static void connect_new(struct gw_upstream_call *c);
static void send_request(struct gw_upstream_call *c);
static void read_answer(struct gw_upstream_call *c);

/* ------------------------------------------------------------------ time */

static uint64_t now_ms(struct gw_upstream *up)
{
    (void)up;
    /* Monotonic: the loop's cached time is wall-clock based and may stand a
     * little ahead of a fresh reading outside the loop. Coarse: every deadline
     * here (connect, first byte, idle, pooled sockets' keep, DNS cache) is tens
     * of milliseconds or more and is read against this same clock, while a
     * request reads it four times; a timer that fires before the coarse clock
     * has caught up is armed again for what is left. */
    return gv_mono_coarse_ms();
}

/* -------------------------------------------------------------- buffers */

static struct rbuf *rbuf_get(struct gw_upstream *up)
{
    struct rbuf *b = up->free_bufs;

    if (b) {
        up->free_bufs = b->next;
        up->nfree_bufs--;
    }
    else {
        b = gv_malloc(sizeof(*b));
        up->st.buffers++;
    }
    b->next = NULL;
    b->len = 0;
    b->pos = 0;
    return b;
}

static void rbuf_put(struct gw_upstream *up, struct rbuf *b)
{
    if (!b) {
        return;
    }
    if (up->nfree_bufs < RBUF_FREE_MAX) {
        b->next = up->free_bufs;
        up->free_bufs = b;
        up->nfree_bufs++;
        return;
    }
    gv_free(b);
    up->st.buffers--;
}

/* ---------------------------------------------------------- connections */

static void conn_watch(struct conn *k, short what)
{
    if (k->ev_what == what) {
        return;
    }
    if (k->ev_what) {
        event_del(&k->ev);
    }
    k->ev_what = what;
    if (what) {
        event_assign(&k->ev, k->up->base, k->fd, what | EV_PERSIST, on_conn_io, k);
        event_add(&k->ev, NULL);
    }
}

/* After an SSL call failed with error e: when TLS only waits for the socket to
 * become readable or writable, watch for that and return true. */
static bool tls_wait(struct conn *k, int e)
{
    if (e == SSL_ERROR_WANT_READ) {
        conn_watch(k, EV_READ);
        return true;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        conn_watch(k, EV_WRITE);
        return true;
    }
    return false;
}

static void idle_unlink(struct conn *k)
{
    struct origin *o = k->o;

    GV_DLIST_UNLINK(o->idle, k);
    o->nidle--;
    k->up->st.idle--;
}

static void conn_close(struct conn *k)
{
    if (!k) {
        return;
    }
    if (k->ev_what) {
        event_del(&k->ev);
    }
    if (k->ssl) {
        if (!k->tls_failed) {
            /* Closed without a TLS error: marked as shut down (nothing is sent), so
             * OpenSSL does not void the session the origin keeps for resumption. */
            SSL_set_shutdown(k->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        }
        SSL_free(k->ssl);
    }
    if (k->fd >= 0) {
        close(k->fd);
    }
    gv_free(k);
}

static void sweep_arm(struct gw_upstream *up)
{
    struct timeval tv = {SWEEP_MS / 1000u, (SWEEP_MS % 1000u) * 1000u};

    if (!evtimer_pending(&up->sweep, NULL)) {
        evtimer_add(&up->sweep, &tv);
    }
}

/* Keeps a connection that ended its answer cleanly for the next request. It
 * stays registered for EV_READ: while idle, readable means the peer closed it
 * or sent what no request asked for, and it is closed then. */
static void conn_pool(struct conn *k)
{
    struct origin *o = k->o;

    k->call = NULL;
    if (o->nidle >= IDLE_PER_ORIGIN_MAX || k->ev_what != EV_READ) {
        conn_close(k);
        return;
    }
    k->idle_since_ms = now_ms(k->up);
    GV_DLIST_PUSH(o->idle, k);
    o->nidle++;
    k->up->st.idle++;
    sweep_arm(k->up);
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    struct gw_upstream *up = arg;
    uint64_t now = now_ms(up);
    struct origin *o;
    bool left = false;

    (void)fd;
    (void)what;
    for (o = up->origins; o; o = o->next) {
        struct conn *k = o->idle, *next;
        for (; k; k = next) {
            next = k->next;
            if (now - k->idle_since_ms >= IDLE_KEEP_MS) {
                idle_unlink(k);
                conn_close(k);
            }
        }
        left = left || o->idle != NULL;
    }
    if (left) {
        sweep_arm(up);
    }
}

/* The most recently pooled live connection of o, unlinked, or NULL. */
static struct conn *conn_take(struct origin *o)
{
    uint64_t now = now_ms(o->up);
    struct conn *k;

    while ((k = o->idle) != NULL) {
        idle_unlink(k);
        if (now - k->idle_since_ms < IDLE_KEEP_MS) {
            return k;
        }
        conn_close(k);
    }
    return NULL;
}

/* ------------------------------------------------------------------ TLS */

static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    struct conn *k = SSL_get_app_data(ssl);
    struct origin *o;

    if (!k || !k->o) {
        return 0;
    }
    o = k->o;

    /* The reference passes to the origin (return 1); past the cap the oldest goes. */
    if (o->nsessions == SESSIONS_MAX) {
        SSL_SESSION_free(o->sessions[0]);
        memmove(o->sessions, o->sessions + 1, (SESSIONS_MAX - 1) * sizeof(o->sessions[0]));
        o->nsessions--;
    }
    o->sessions[o->nsessions++] = sess;
    return 1;
}

/* The client context for one trust setting, made on first use. */
static SSL_CTX *tls_ctx(struct gw_upstream *up, const char *ca_file)
{
    SSL_CTX *ctx;
    size_t i;
    int ok;

    for (i = 0; i < up->ntls; i++) {
        const char *have = up->tls[i].ca_file;
        if ((!have && !ca_file) || (have && ca_file && strcmp(have, ca_file) == 0)) {
            return up->tls[i].ctx;
        }
    }
    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    /* The default paths are the system store, or SSL_CERT_FILE / SSL_CERT_DIR. */
    ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                 : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
        SSL_CTX_free(ctx);
        ERR_clear_error();
        return NULL;
    }
    /* Idle connections hold no TLS buffers; writes may be partial and resumed. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_new_session);
    up->tls = gv_realloc(up->tls, (up->ntls + 1) * sizeof(*up->tls));
    up->tls[up->ntls].ca_file = ca_file ? gv_strdup(ca_file) : NULL;
    up->tls[up->ntls].ctx = ctx;
    up->ntls++;
    return ctx;
}

gv_rc gw_upstream_prepare_tls(struct gw_upstream *up, const char *ca_file)
{
    return tls_ctx(up, ca_file) ? GV_OK : GV_EUPSTREAM;
}

/* Why a TLS operation failed, in words, into c->what. */
static void tls_why(struct gw_upstream_call *c, const char *during)
{
    long vr = c->conn && c->conn->ssl ? SSL_get_verify_result(c->conn->ssl) : X509_V_OK;
    unsigned long e = ERR_peek_last_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;

    if (c->conn) {
        c->conn->tls_failed = true;
    }
    if (vr != X509_V_OK) {
        snprintf(c->what, sizeof(c->what), "TLS certificate verify failed: %s",
                 X509_verify_cert_error_string(vr));
    }
    else {
        snprintf(c->what, sizeof(c->what), "TLS %s failed: %s", during,
                 reason ? reason : "connection closed");
    }
    ERR_clear_error();
}

/* ---------------------------------------------------------------- calls */

static void call_unlink(struct gw_upstream_call *c)
{
    GV_DLIST_UNLINK(c->up->calls, c);
}

/* Frees the call and what it holds; its connection is pooled (`reuse`) or closed. */
static void call_free(struct gw_upstream_call *c, bool reuse)
{
    struct gw_upstream *up = c->up;

    if (c->dns) {
        struct evdns_getaddrinfo_request *d = c->dns;
        c->dns = NULL;
        /* Runs the callback with EVUTIL_EAI_CANCEL, which ignores it. */
        evdns_getaddrinfo_cancel(d);
    }
    if (c->conn) {
        if (reuse) {
            conn_pool(c->conn);
        }
        else {
            conn_close(c->conn);
        }
        c->conn = NULL;
    }
    call_unlink(c);
    event_del(&c->timer);
    rbuf_put(up, c->buf);
    gw_h1resp_free(&c->resp);
    if (c->head) {
        OPENSSL_cleanse(c->head, c->head_len);
    }
    c->head_len = 0;
    /* Kept for the next call: a call is over 1 KB, and glibc answers each
     * allocation that large by consolidating its fast bins first, a cost every
     * request paid. */
    if (up->nfree_calls < CALL_POOL_MAX) {
        if (c->head_cap > HEAD_KEEP_MAX) {
            gv_free(c->head);
            c->head = NULL;
            c->head_cap = 0;
        }
        c->next = up->free_calls;
        up->free_calls = c;
        up->nfree_calls++;
        return;
    }
    gv_free(c->head);
    gv_free(c);
}

static void call_finish(struct gw_upstream_call *c, gv_rc rc, const char *what, bool reuse)
{
    const struct gw_upstream_ops *ops = c->ops;
    void *arg = c->arg;
    char why[WHAT_MAX];

    gv_str_copy(why, sizeof(why), what); /* `what` may live in the call */
    call_free(c, reuse);
    ops->done(arg, rc, why);
}

/* Ends the call with an error now, or from the loop when inside gw_upstream_start. */
static void call_fail(struct gw_upstream_call *c, gv_rc rc, const char *what)
{
    if (what != c->what) {
        snprintf(c->what, sizeof(c->what), "%s", what);
    }
    if (c->in_start) {
        c->fail_rc = rc;
        event_del(&c->timer);
        event_active(&c->timer, EV_TIMEOUT, 1);
        return;
    }
    call_finish(c, rc, c->what, false);
}

/* Arms the call's one timer for the earliest deadline of its phase. */
static void call_arm(struct gw_upstream_call *c)
{
    uint64_t now = now_ms(c->up), at = UINT64_MAX, left;
    struct timeval tv;

    if (c->fail_rc != GV_OK || c->resume_due) {
        return; /* the timer is already due */
    }
    if (c->state < C_WRITING && c->connect_ms > 0) {
        at = c->start_ms + (uint64_t)c->connect_ms;
    }
    if (!c->got_byte && c->first_byte_ms > 0 && c->start_ms + (uint64_t)c->first_byte_ms < at) {
        at = c->start_ms + (uint64_t)c->first_byte_ms;
    }
    if (c->got_byte && !c->paused && c->idle_ms > 0) {
        at = c->last_io_ms + (uint64_t)c->idle_ms;
    }
    if (c->paused || at == UINT64_MAX) {
        event_del(&c->timer);
        return;
    }
    left = at > now ? at - now : 0;
    tv.tv_sec = (time_t)(left / 1000u);
    tv.tv_usec = (suseconds_t)((left % 1000u) * 1000u);
    evtimer_add(&c->timer, &tv);
}

static void on_call_timer(evutil_socket_t fd, short what, void *arg)
{
    struct gw_upstream_call *c = arg;
    uint64_t now = now_ms(c->up);

    (void)fd;
    (void)what;
    if (c->fail_rc != GV_OK) {
        call_finish(c, c->fail_rc, c->what, false);
        return;
    }
    if (c->resume_due) {
        c->resume_due = false;
        conn_watch(c->conn, EV_READ);
        read_answer(c);
        return;
    }
    if (c->send_due) {
        send_request(c);
        return;
    }
    if (c->state < C_WRITING && c->connect_ms > 0 && now >= c->start_ms + (uint64_t)c->connect_ms) {
        call_finish(c, GV_ETIMEDOUT, "connect", false);
        return;
    }
    if (!c->got_byte && c->first_byte_ms > 0 && now >= c->start_ms + (uint64_t)c->first_byte_ms) {
        call_finish(c, GV_ETIMEDOUT, "first_byte", false);
        return;
    }
    if (c->got_byte && !c->paused && c->idle_ms > 0 &&
        now >= c->last_io_ms + (uint64_t)c->idle_ms) {
        call_finish(c, GV_ETIMEDOUT, "idle", false);
        return;
    }
    /* Bytes came since it was armed (deadlines move lazily): arm for the rest. */
    call_arm(c);
}

/* ------------------------------------------------------------ the answer */

/* Backpressure: the socket is not read while the consumer cannot take more. */
static void pause_reading(struct gw_upstream_call *c)
{
    c->paused = true;
    conn_watch(c->conn, 0);
    event_del(&c->timer); /* a slow client is not the upstream's fault: no idle clock */
}

/* Feeds the parser what is buffered. Returns false when the call ended or paused. */
static bool deliver(struct gw_upstream_call *c)
{
    struct rbuf *b = c->buf;
    struct gw_up_headers h;
    enum gw_up_flow flow;
    enum gw_h1resp_ev ev;
    size_t used;

    if (c->pend_len > 0) {
        flow = c->ops->data(c->arg, c->pend, c->pend_len);
        if (flow == GW_UP_PAUSE) {
            pause_reading(c);
            return false;
        }
        c->pend = NULL;
        c->pend_len = 0;
        if (flow == GW_UP_ABORT) {
            call_finish(c, GV_EPROTO, "aborted", false);
            return false;
        }
    }
    while (b->pos < b->len) {
        ev = gw_h1resp_feed(&c->resp, b->data + b->pos, b->len - b->pos, &used);
        b->pos += used;
        switch (ev) {
        case GW_H1R_MORE:
            break;
        case GW_H1R_HEAD:
            h.status = c->resp.head.status;
            h.content_type = c->resp.head.content_type;
            h.request_id = c->resp.head.request_id;
            h.retry_after = c->resp.head.retry_after;
            h.openai_lines = c->resp.head.pass.data ? c->resp.head.pass.data : "";
            c->ops->headers(c->arg, &h);
            continue;
        case GW_H1R_BODY:
            flow = c->ops->data(c->arg, c->resp.body, c->resp.body_len);
            if (flow == GW_UP_PAUSE) {
                /* Not consumed: kept in the buffer and delivered again on resume. */
                c->pend = c->resp.body;
                c->pend_len = c->resp.body_len;
                pause_reading(c);
                return false;
            }
            if (flow == GW_UP_ABORT) {
                call_finish(c, GV_EPROTO, "aborted", false);
                return false;
            }
            continue;
        case GW_H1R_DONE:
            /* Reuse only a connection that ended exactly at the message's end. */
            call_finish(c, GV_OK, "ok",
                        c->resp.keep_alive && b->pos == b->len &&
                            !(c->conn->ssl && SSL_pending(c->conn->ssl) > 0));
            return false;
        case GW_H1R_ERROR:
        default:
            call_finish(c, GV_EUPSTREAM, c->resp.err ? c->resp.err : "malformed answer", false);
            return false;
        }
        break;
    }
    return true;
}

/* Reads what the connection has and hands it on, until it would block, the
 * call pauses or ends. */
static void read_answer(struct gw_upstream_call *c)
{
    struct conn *k = c->conn;
    struct gw_upstream *up = c->up;
    ssize_t n;
    size_t room;
    bool first = !c->got_byte;

    if (c->paused) {
        return;
    }
    if (c->buf && !deliver(c)) {
        return;
    }
    for (;;) {
        if (!c->buf) {
            c->buf = rbuf_get(up);
        }
        if (c->buf->pos == c->buf->len) {
            c->buf->pos = 0;
            c->buf->len = 0;
        }
        else if (c->buf->pos > 0 && c->buf->len == RBUF_SIZE) {
            memmove(c->buf->data, c->buf->data + c->buf->pos, c->buf->len - c->buf->pos);
            c->buf->len -= c->buf->pos;
            c->buf->pos = 0;
        }
        room = RBUF_SIZE - c->buf->len;
        if (k->ssl) {
            int r;
            ERR_clear_error();
            r = SSL_read(k->ssl, c->buf->data + c->buf->len, (int)room);
            if (r > 0) {
                n = r;
            }
            else {
                int e = SSL_get_error(k->ssl, r);
                if (tls_wait(k, e)) {
                    break;
                }
                if (e == SSL_ERROR_ZERO_RETURN ||
                    (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && r == 0)) {
                    n = 0; /* the end, with or without close_notify */
                }
                else {
                    tls_why(c, "read");
                    call_finish(c, GV_EUPSTREAM, c->what, false);
                    return;
                }
            }
        }
        else {
            n = read(k->fd, c->buf->data + c->buf->len, room);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
                break;
            }
            if (n < 0) {
                snprintf(c->what, sizeof(c->what), "upstream connection failed: %s",
                         errno == ECONNRESET ? "reset by peer" : "read error");
                call_finish(c, GV_EUPSTREAM, c->what, false);
                return;
            }
        }
        if (n == 0) {
            enum gw_h1resp_ev ev = gw_h1resp_eof(&c->resp);
            if (ev == GW_H1R_DONE) {
                call_finish(c, GV_OK, "ok", false);
            }
            else {
                call_finish(c, GV_EUPSTREAM, c->resp.err, false);
            }
            return;
        }
        c->buf->len += (size_t)n;
        c->got_byte = true;
        c->last_io_ms = now_ms(up);
        if (!deliver(c)) {
            return;
        }
        if (c->buf->pos == c->buf->len) {
            /* Drained: the buffer goes back, so a quiet stream holds none. */
            rbuf_put(up, c->buf);
            c->buf = NULL;
        }
        /* A short plain read means the socket is empty: the next readiness says
         * when there is more, without an EAGAIN read. TLS may hold decrypted bytes. */
        if (!k->ssl && (size_t)n < room) {
            break;
        }
    }
    /* Deadlines move lazily: a pending timer re-arms itself for the rest when it
     * fires, so a read costs no timer change, except the switch to the idle clock. */
    if ((first && c->got_byte) || !evtimer_pending(&c->timer, NULL)) {
        call_arm(c);
    }
}

/* ----------------------------------------------------------- the request */

/* Writes what is left of head + body. True when all of it is out. */
static bool write_some(struct gw_upstream_call *c, int *err)
{
    struct conn *k = c->conn;
    size_t hl = c->head_len;
    size_t total = hl + (c->body_in_head ? 0 : c->body_len);

    *err = 0;
    while (c->sent < total) {
        ssize_t n;
        if (k->ssl) {
            const char *p = c->sent < hl ? c->head + c->sent : c->body + (c->sent - hl);
            size_t len = c->sent < hl ? hl - c->sent : total - c->sent;
            int r;
            ERR_clear_error();
            r = SSL_write(k->ssl, p, (int)(len > INT32_MAX ? INT32_MAX : len));
            if (r <= 0) {
                int e = SSL_get_error(k->ssl, r);
                if (tls_wait(k, e)) {
                    return false;
                }
                *err = e == SSL_ERROR_SYSCALL && errno ? errno : EPROTO;
                return false;
            }
            n = r;
        }
        else {
            struct iovec iov[2];
            int cnt = 0;
            if (c->sent < hl) {
                iov[cnt].iov_base = c->head + c->sent;
                iov[cnt].iov_len = hl - c->sent;
                cnt++;
            }
            if (c->body_len > 0) {
                size_t off = c->sent > hl ? c->sent - hl : 0;
                iov[cnt].iov_base = (void *)(c->body + off);
                iov[cnt].iov_len = c->body_len - off;
                cnt++;
            }
            n = writev(k->fd, iov, cnt);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                    conn_watch(k, EV_WRITE);
                    return false;
                }
                *err = errno;
                return false;
            }
        }
        c->sent += (size_t)n;
    }
    return true;
}

static void send_request(struct gw_upstream_call *c)
{
    struct conn *k = c->conn;
    int err = 0;

    c->state = C_WRITING;
    c->send_due = false;
    if (!write_some(c, &err)) {
        if (err == 0) {
            call_arm(c);
            return; /* waits for the socket */
        }
        if (k->nreq > 0 && c->sent == 0 && !c->retried) {
            /* A pooled connection the peer closed while idle: nothing of the
             * request went out, so it goes once on a fresh connection. */
            c->retried = true;
            c->up->st.retries++;
            conn_close(k);
            c->conn = NULL;
            connect_new(c);
            return;
        }
        snprintf(c->what, sizeof(c->what), "upstream connection failed: %s",
                 err == ECONNRESET || err == EPIPE ? "reset by peer" : "write error");
        call_fail(c, GV_EUPSTREAM, c->what);
        return;
    }
    k->nreq++;
    c->state = C_READING;
    conn_watch(k, EV_READ);
    call_arm(c);
}

static void handshake(struct gw_upstream_call *c)
{
    struct conn *k = c->conn;
    int r, e;

    c->state = C_HANDSHAKE;
    ERR_clear_error();
    r = SSL_connect(k->ssl);
    if (r == 1) {
        send_request(c);
        return;
    }
    e = SSL_get_error(k->ssl, r);
    if (tls_wait(k, e)) {
        return;
    }
    tls_why(c, "handshake");
    call_fail(c, GV_EUPSTREAM, c->what);
}

static bool host_is_ip(const char *host)
{
    unsigned char tmp[sizeof(struct in6_addr)];

    return inet_pton(AF_INET, host, tmp) == 1 || inet_pton(AF_INET6, host, tmp) == 1;
}

static void start_tls(struct gw_upstream_call *c)
{
    struct conn *k = c->conn;
    struct origin *o = c->o;
    SSL_CTX *ctx = tls_ctx(c->up, o->ca_file);

    if (!ctx) {
        call_fail(c, GV_EUPSTREAM,
                  o->ca_file ? "TLS setup failed: cannot load ca_file" : "TLS setup failed");
        return;
    }
    k->ssl = SSL_new(ctx);
    if (!k->ssl) {
        call_fail(c, GV_EUPSTREAM, "TLS setup failed");
        return;
    }
    SSL_set_app_data(k->ssl, k);
    SSL_set_fd(k->ssl, k->fd);
    SSL_set_connect_state(k->ssl);
    if (host_is_ip(o->host)) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(k->ssl), o->host);
    }
    else {
        SSL_set_tlsext_host_name(k->ssl, o->host);
        SSL_set1_host(k->ssl, o->host);
    }
    /* The newest session still resumable, used once: the SSL holds its own reference. */
    while (o->nsessions > 0) {
        SSL_SESSION *sess = o->sessions[--o->nsessions];
        bool ok = SSL_SESSION_is_resumable(sess) == 1 && SSL_set_session(k->ssl, sess) == 1;
        SSL_SESSION_free(sess);
        if (ok) {
            break;
        }
    }
    handshake(c);
}

static void on_connected(struct gw_upstream_call *c)
{
    if (c->o->tls) {
        start_tls(c);
    }
    else {
        send_request(c);
    }
}

/* An idle TLS connection became readable: TLS 1.3 servers send session tickets
 * (and may send key updates) after an answer went out. True when that was all and
 * the connection stays good; false on application data, the peer's close or an error. */
static bool idle_tls_ok(struct conn *k)
{
    char byte;
    int r;

    ERR_clear_error();
    r = SSL_read(k->ssl, &byte, 1);
    if (r > 0) {
        return false;
    }
    if (SSL_get_error(k->ssl, r) == SSL_ERROR_WANT_READ) {
        return true;
    }
    ERR_clear_error();
    return false;
}

static void on_conn_io(evutil_socket_t fd, short what, void *arg)
{
    struct conn *k = arg;
    struct gw_upstream_call *c = k->call;
    int err = 0;
    socklen_t len = sizeof(err);

    (void)what;
    if (!c) {
        /* Idle and readable: closed by the peer, or bytes nobody asked for (unless
         * TLS consumed them as its own messages). */
        if (k->ssl && idle_tls_ok(k)) {
            return;
        }
        idle_unlink(k);
        conn_close(k);
        return;
    }
    switch (c->state) {
    case C_CONNECTING:
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
            err = errno;
        }
        if (err != 0) {
            snprintf(c->what, sizeof(c->what), "cannot connect to upstream: %s",
                     err == ECONNREFUSED ? "connection refused" : strerror(err));
            call_fail(c, GV_EUPSTREAM, c->what);
            return;
        }
        on_connected(c);
        return;
    case C_HANDSHAKE:
        handshake(c);
        return;
    case C_WRITING:
        send_request(c);
        return;
    case C_READING:
        read_answer(c);
        return;
    case C_RESOLVING:
    default:
        return;
    }
}

static void connect_addr(struct gw_upstream_call *c)
{
    struct origin *o = c->o;
    struct conn *k;
    int fd, one = 1;

    c->state = C_CONNECTING;
    fd = socket(o->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(c->what, sizeof(c->what), "cannot connect to upstream: %s", strerror(errno));
        call_fail(c, GV_EUPSTREAM, c->what);
        return;
    }
    /* Request heads go out at once; the kernel's own keepalive finds dead peers. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    k = gv_calloc(1, sizeof(*k));
    k->up = c->up;
    k->o = o;
    k->fd = fd;
    k->call = c;
    c->conn = k;
    c->up->st.connects++;
    if (connect(fd, (struct sockaddr *)&o->addr, o->addrlen) == 0) {
        conn_watch(k, EV_READ);
        on_connected(c);
        return;
    }
    if (errno != EINPROGRESS) {
        snprintf(c->what, sizeof(c->what), "cannot connect to upstream: %s",
                 errno == ECONNREFUSED ? "connection refused" : strerror(errno));
        call_fail(c, GV_EUPSTREAM, c->what);
        return;
    }
    conn_watch(k, EV_WRITE);
}

static void set_port(struct sockaddr_storage *ss, uint16_t port)
{
    if (ss->ss_family == AF_INET) {
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
    }
    else if (ss->ss_family == AF_INET6) {
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
    }
}

static void on_dns(int result, struct evutil_addrinfo *res, void *arg)
{
    struct gw_upstream_call *c = arg;
    struct origin *o;

    if (result == EVUTIL_EAI_CANCEL) {
        return; /* the call is being freed */
    }
    c->dns = NULL;
    o = c->o;
    if (result != 0 || !res || res->ai_addrlen > sizeof(o->addr)) {
        snprintf(c->what, sizeof(c->what), "DNS lookup of the upstream host failed: %s",
                 result != 0 ? evutil_gai_strerror(result) : "no address");
        if (res) {
            evutil_freeaddrinfo(res);
        }
        call_fail(c, GV_EUPSTREAM, c->what);
        return;
    }
    memcpy(&o->addr, res->ai_addr, res->ai_addrlen);
    o->addrlen = (socklen_t)res->ai_addrlen;
    set_port(&o->addr, o->port);
    o->addr_until_ms = now_ms(c->up) + DNS_TTL_MS;
    evutil_freeaddrinfo(res);
    connect_addr(c);
}

/* A fresh connection: the address from the literal, the cache or a lookup. */
static void connect_new(struct gw_upstream_call *c)
{
    struct origin *o = c->o;
    struct gw_upstream *up = c->up;
    struct evutil_addrinfo hints;
    struct evdns_getaddrinfo_request *req;
    bool was;

    if (o->addr_until_ms > now_ms(up)) {
        connect_addr(c);
        return;
    }
    c->state = C_RESOLVING;
    if (!up->dns) {
        up->dns = evdns_base_new(up->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                               EVDNS_BASE_DISABLE_WHEN_INACTIVE);
        if (!up->dns) {
            call_fail(c, GV_EUPSTREAM, "DNS lookup of the upstream host failed: no resolver");
            return;
        }
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
    /* The callback may run before this returns (hosts file, cached answer); it
     * must not end the call under us then, so its failures wait for the loop. */
    was = c->in_start;
    c->in_start = true;
    req = evdns_getaddrinfo(up->dns, o->host, NULL, &hints, on_dns, c);
    c->in_start = was;
    if (req) {
        c->dns = req;
    }
}

/* ------------------------------------------------------------------ URL */

static gv_rc parse_url(const char *url, struct target *t)
{
    struct http_parser_url u;
    size_t len = strlen(url), hl, sl;
    const char *schema;

    http_parser_url_init(&u);
    if (http_parser_parse_url(url, len, 0, &u) != 0 || !(u.field_set & (1 << UF_SCHEMA)) ||
        !(u.field_set & (1 << UF_HOST)) || (u.field_set & (1 << UF_USERINFO))) {
        return GV_EUPSTREAM;
    }
    schema = url + u.field_data[UF_SCHEMA].off;
    sl = u.field_data[UF_SCHEMA].len;
    if (sl == 5 && strncasecmp(schema, "https", 5) == 0) {
        t->tls = true;
    }
    else if (sl == 4 && strncasecmp(schema, "http", 4) == 0) {
        t->tls = false;
    }
    else {
        return GV_EUPSTREAM;
    }
    hl = u.field_data[UF_HOST].len;
    if (hl == 0 || hl > HOST_MAX) {
        return GV_EUPSTREAM;
    }
    memcpy(t->host, url + u.field_data[UF_HOST].off, hl);
    t->host[hl] = '\0';
    t->port = (u.field_set & (1 << UF_PORT)) ? u.port : (t->tls ? 443 : 80);
    if (t->port == 0) {
        return GV_EUPSTREAM;
    }
    /* Host header: the authority as written (brackets of an IPv6 literal kept). */
    t->hostport = strstr(url, "://") + 3;
    t->hostport_len = (size_t)(url + u.field_data[UF_HOST].off + hl - t->hostport);
    if (u.field_set & (1 << UF_PORT)) {
        t->hostport_len =
            (size_t)(url + u.field_data[UF_PORT].off + u.field_data[UF_PORT].len - t->hostport);
    }
    else if (t->hostport[t->hostport_len] == ']') {
        t->hostport_len++;
    }
    if (u.field_set & (1 << UF_PATH)) {
        t->path = url + u.field_data[UF_PATH].off;
        t->path_len = len - u.field_data[UF_PATH].off;
        if (u.field_set & (1 << UF_FRAGMENT)) {
            t->path_len = u.field_data[UF_FRAGMENT].off - 1 - u.field_data[UF_PATH].off;
        }
    }
    else {
        t->path = "/";
        t->path_len = 1;
    }
    return GV_OK;
}

/* The parsed form of url, from the cache when it was seen before. */
static gv_rc target_of(struct gw_upstream *up, const char *url, struct target *t)
{
    struct urlcache *e;
    size_t i;

    for (i = 0; i < up->nurls; i++) {
        if (strcmp(up->urls[i].url, url) == 0) {
            *t = up->urls[i].t;
            return GV_OK;
        }
    }
    if (parse_url(url, t) != GV_OK) {
        return GV_EUPSTREAM;
    }
    if (up->nurls < URL_CACHE_MAX) {
        e = &up->urls[up->nurls];
        e->url = gv_strdup(url);
        if (parse_url(e->url, &e->t) == GV_OK) {
            up->nurls++;
        }
        else {
            gv_free(e->url);
        }
    }
    return GV_OK;
}

static struct origin *origin_get(struct gw_upstream *up, const struct target *t,
                                 const char *ca_file)
{
    struct origin *o;

    if (!t->tls) {
        ca_file = NULL; /* plain HTTP: the CA setting does not split the pool */
    }
    for (o = up->origins; o; o = o->next) {
        if (o->tls == t->tls && o->port == t->port && strcasecmp(o->host, t->host) == 0 &&
            ((!o->ca_file && !ca_file) ||
             (o->ca_file && ca_file && strcmp(o->ca_file, ca_file) == 0))) {
            return o;
        }
    }
    o = gv_calloc(1, sizeof(*o));
    o->up = up;
    o->tls = t->tls;
    o->port = t->port;
    snprintf(o->host, sizeof(o->host), "%s", t->host);
    o->ca_file = ca_file ? gv_strdup(ca_file) : NULL;
    {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&o->addr;
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&o->addr;
        if (inet_pton(AF_INET, o->host, &a4->sin_addr) == 1) {
            a4->sin_family = AF_INET;
            o->addrlen = sizeof(*a4);
            o->numeric = true;
        }
        else if (inet_pton(AF_INET6, o->host, &a6->sin6_addr) == 1) {
            a6->sin6_family = AF_INET6;
            o->addrlen = sizeof(*a6);
            o->numeric = true;
        }
        else if (strcasecmp(o->host, "localhost") == 0) {
            /* No lookup for the loopback name; the certificate still has to say localhost. */
            a4->sin_family = AF_INET;
            a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            o->addrlen = sizeof(*a4);
            o->numeric = true;
        }
    }
    if (o->numeric) {
        set_port(&o->addr, o->port);
        o->addr_until_ms = UINT64_MAX;
    }
    o->next = up->origins;
    up->origins = o;
    return o;
}

/* Appends n bytes at *w and moves it on. */
static void put(char **w, const char *p, size_t n)
{
    memcpy(*w, p, n);
    *w += n;
}

/* The request head, sized first and written into one buffer (the reused
 * call's when it is large enough): no regrowth and no formatting on the
 * request path. */
static void build_head(struct gw_upstream_call *c, const struct gw_upstream_req *rq,
                       const struct target *t)
{
    static const char s1[] = " HTTP/1.1\r\nHost: ";
    static const char s2[] =
        "\r\nUser-Agent: kt/" KT_VERSION "\r\nContent-Type: application/json\r\nAccept: ";
    static const char s3[] = "\r\nAuthorization: Bearer ";
    static const char s4[] = "\r\nContent-Length: ";
    const char *accept = rq->accept ? rq->accept : "application/json";
    const char *auth = rq->auth_bearer && rq->auth_bearer[0] ? rq->auth_bearer : NULL;
    size_t alen = strlen(accept), klen = auth ? strlen(auth) : 0;
    size_t xlen = rq->extra_headers ? strlen(rq->extra_headers) : 0;
    char num[24], *w;
    size_t nlen = gv_fmt_u64(c->body_len, num), len;

    len = 5 + t->path_len + sizeof(s1) - 1 + t->hostport_len + sizeof(s2) - 1 + alen +
          (auth ? sizeof(s3) - 1 + klen : 0) + sizeof(s4) - 1 + nlen + 2 + xlen + 2;
    c->body_in_head = t->tls && c->body_len <= TLS_COALESCE_MAX;
    len += c->body_in_head ? c->body_len : 0;
    if (len > c->head_cap) {
        gv_free(c->head);
        c->head = gv_malloc(len);
        c->head_cap = len;
    }
    w = c->head;
    put(&w, "POST ", 5);
    put(&w, t->path, t->path_len);
    put(&w, s1, sizeof(s1) - 1);
    put(&w, t->hostport, t->hostport_len);
    put(&w, s2, sizeof(s2) - 1);
    put(&w, accept, alen);
    if (auth) {
        put(&w, s3, sizeof(s3) - 1);
        put(&w, auth, klen);
    }
    put(&w, s4, sizeof(s4) - 1);
    put(&w, num, nlen);
    put(&w, "\r\n", 2);
    if (xlen) {
        put(&w, rq->extra_headers, xlen);
    }
    put(&w, "\r\n", 2);
    if (c->body_in_head) {
        /* One TLS record (and one write) for a small request, not two. */
        put(&w, c->body, c->body_len);
    }
    c->head_len = (size_t)(w - c->head);
}

/* --------------------------------------------------------------- the API */

gv_rc gw_upstream_create(struct event_base *base, struct gw_upstream **out)
{
    struct gw_upstream *up = gv_calloc(1, sizeof(*up));

    *out = NULL;
    up->base = base;
    if (evtimer_assign(&up->sweep, base, on_sweep, up) != 0) {
        gv_free(up);
        return GV_EIO;
    }
    *out = up;
    return GV_OK;
}

void gw_upstream_destroy(struct gw_upstream *up)
{
    struct origin *o, *next;
    struct rbuf *b;
    size_t i;

    if (!up) {
        return;
    }
    while (up->calls) {
        call_free(up->calls, false);
    }
    while (up->free_calls) {
        struct gw_upstream_call *c = up->free_calls;
        up->free_calls = c->next;
        gv_free(c->head);
        gv_free(c);
    }
    for (o = up->origins; o; o = next) {
        next = o->next;
        while (o->idle) {
            struct conn *k = o->idle;
            idle_unlink(k);
            conn_close(k);
        }
        while (o->nsessions > 0) {
            SSL_SESSION_free(o->sessions[--o->nsessions]);
        }
        gv_free(o->ca_file);
        gv_free(o);
    }
    while ((b = up->free_bufs) != NULL) {
        up->free_bufs = b->next;
        gv_free(b);
    }
    for (i = 0; i < up->ntls; i++) {
        SSL_CTX_free(up->tls[i].ctx);
        gv_free(up->tls[i].ca_file);
    }
    gv_free(up->tls);
    for (i = 0; i < up->nurls; i++) {
        gv_free(up->urls[i].url);
    }
    if (up->dns) {
        evdns_base_free(up->dns, 0);
    }
    event_del(&up->sweep);
    gv_free(up);
}

gv_rc gw_upstream_start(struct gw_upstream *up, const struct gw_upstream_req *rq,
                        const struct gw_upstream_ops *ops, void *arg, struct gw_upstream_call **out)
{
    struct gw_upstream_call *c;
    struct target t;

    if (out) {
        *out = NULL;
    }
    memset(&t, 0, sizeof(t));
    if (!rq->url || target_of(up, rq->url, &t) != GV_OK) {
        return GV_EUPSTREAM;
    }
    c = up->free_calls;
    if (c) {
        char *head = c->head; /* wiped when its last call ended */
        size_t cap = c->head_cap;

        up->free_calls = c->next;
        up->nfree_calls--;
        memset(c, 0, sizeof(*c));
        c->head = head;
        c->head_cap = cap;
    }
    else {
        c = gv_calloc(1, sizeof(*c));
    }
    c->up = up;
    c->ops = ops;
    c->arg = arg;
    c->body = rq->body ? rq->body : "";
    c->body_len = rq->body ? rq->body_len : 0;
    c->connect_ms =
        rq->connect_timeout_ms > 0 ? rq->connect_timeout_ms : CONNECT_TIMEOUT_DEFAULT_MS;
    c->first_byte_ms = rq->first_byte_timeout_ms;
    c->idle_ms = rq->idle_timeout_ms;
    c->start_ms = now_ms(up);
    c->last_io_ms = c->start_ms;
    gw_h1resp_init(&c->resp);
    evtimer_assign(&c->timer, up->base, on_call_timer, c);
    build_head(c, rq, &t);
    c->o = origin_get(up, &t, rq->ca_file);
    GV_DLIST_PUSH(up->calls, c);
    if (out) {
        *out = c;
    }
    /* Failures from here on reach done() from the loop (call_fail). */
    c->in_start = true;
    c->conn = conn_take(c->o);
    if (c->conn) {
        up->st.reuses++;
        c->conn->call = c;
        /* Sent from the loop once this pass has run its other callbacks, with the other
         * requests the pass started: the upstream is woken once for all of them, not once
         * per request, and a sleeping peer's wake-up is most of a loopback write's cost. */
        c->state = C_WRITING;
        c->send_due = true;
        event_active(&c->timer, EV_TIMEOUT, 1);
    }
    else {
        connect_new(c);
    }
    c->in_start = false;
    if (c->fail_rc == GV_OK && !c->send_due) {
        call_arm(c);
    }
    return GV_OK;
}

void gw_upstream_resume(struct gw_upstream_call *c)
{
    if (!c || !c->paused) {
        return;
    }
    c->paused = false;
    c->last_io_ms = now_ms(c->up);
    /* The held bytes go out from the loop, through the timer made due now. */
    c->resume_due = true;
    event_del(&c->timer);
    event_active(&c->timer, EV_TIMEOUT, 1);
}

void gw_upstream_abort(struct gw_upstream_call *c)
{
    if (c) {
        call_free(c, false);
    }
}

void gw_upstream_stats(const struct gw_upstream *up, struct gw_upstream_stats *out)
{
    *out = up->st;
}
