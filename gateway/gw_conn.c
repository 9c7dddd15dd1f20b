/* gateway/gw_conn.c - client connections: accept, read, frame, answer, keep-alive, timeouts */
/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE /* accept4 */
#include "gateway/gw_conn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "core/gv_buf.h"
#include "core/gv_list.h"
#include "core/gv_log.h"
#include "core/gv_mem.h"
#include "core/gv_time.h"

#define MOD "gateway"
#define CHUNK_BYTES (16u * 1024u)
#define CHUNKS_KEEP 256u       /* free chunks a worker keeps for the next answers */
#define READ_BUF (64u * 1024u) /* one per worker */
#define STASH_MAX (READ_BUF + 16u * 1024u)
#define IOV_BATCH 64
#define ACCEPT_BATCH 64
#define ACCEPT_PAUSE_MS 100
#define ACCEPT_LOG_EVERY_US 10000000u
#define LINGER_MS 2000
#define LINGER_MAX_BYTES (1u << 20)
#define HEAD_MAX 8192 /* our own answer heads */

struct chunk {
    struct chunk *next;
    size_t start; /* first unsent byte */
    size_t end;   /* one past the last byte */
    char data[CHUNK_BYTES];
};

enum timer_kind { TK_NONE = 0, TK_HEAD, TK_BODY, TK_IDLE, TK_SEND, TK_LINGER, TK_NKINDS };

struct gw_conn {
    struct gw_conns *cs;
    struct gw_conn *prev;
    struct gw_conn *next;
    int fd;
    struct event rev; /* EV_READ|EV_PERSIST; registered while we want bytes */
    struct event wev; /* EV_WRITE|EV_PERSIST; registered only while bytes wait */
    struct event tev; /* the one deadline that applies now; also the deferred notifier */
    struct event fev; /* never polled: activated to flush queued stream bytes this loop pass */
    enum timer_kind timer;
    struct gw_h1req h1;
    struct gv_buf stash; /* bytes read past the request in progress */
    struct chunk *oq_head;
    struct chunk *oq_tail;
    size_t unsent;
    uint64_t t_start;
    uint64_t lingered;
    const struct gw_conn_owner_ops *ops;
    void *owner;
    bool rev_on;
    bool wev_on;
    bool flush_sched; /* fev is active: queued bytes go out before the loop polls again */
    bool busy;        /* a request was dispatched and its answer has not ended */
    bool head_req;    /* the request in progress is HEAD: no body in the answer */
    bool keep_alive;  /* the request in progress allows another one after it */
    bool close_after; /* close once the answer is out */
    bool chunked;     /* ... with chunked framing (else close-delimited) */
    bool ended;       /* the answer in progress ended */
    bool full;        /* GW_CONN_FULL was reported; drained() is owed */
    bool peer_eof;
    bool dead; /* the socket failed: only freeing is left */
    bool lingering;
    bool in_dispatch;    /* inside the router's dispatch or refuse */
    bool in_process;     /* inside conn_process: freeing waits for the loop */
    bool resume_pending; /* stash bytes wait for processing */
};

struct gw_conns {
    struct event_base *base;
    int lfd;
    struct event lev;
    struct event accept_retry;
    bool lev_on;
    struct gw_conn_limits lim;
    gw_conn_dispatch_fn dispatch;
    gw_conn_refuse_fn refuse;
    void *arg;
    int worker;
    struct gw_conn *all;
    atomic_size_t nconns;           /* changed on this worker only; /health reads it from any */
    atomic_int accept_errno;        /* why the last accept() failed; 0 once one succeeds */
    atomic_ullong accept_failed_us; /* when (mono): the state goes stale without new tries */
    size_t nbusy;
    uint64_t accept_fails;
    uint64_t accept_logged_us;
    const struct timeval *tv[TK_NKINDS];
    struct chunk *free_chunks;
    size_t nfree_chunks;
    bool draining;
    void (*on_empty)(void *arg);
    char rbuf[READ_BUF];
};

static void conn_close(struct gw_conn *c);
static void conn_process(struct gw_conn *c, const char *data, size_t len);
static void conn_answer_ended(struct gw_conn *c);

/* ------------------------------------------------------------------ time */

/* One status a line: the table reads better than clang-format's layout. */
/* clang-format off */
static const char *reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 499: return "Client Closed Request";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Status";
    }
}
/* clang-format on */

/* ---------------------------------------------------------------- timers */

static void conn_timer(struct gw_conn *c, enum timer_kind k)
{
    if (c->timer == k) {
        return;
    }
    c->timer = k;
    if (k == TK_NONE) {
        event_del(&c->tev);
    }
    else {
        event_add(&c->tev, c->cs->tv[k]);
    }
}

/* Arms k again from now (progress on a send restarts its deadline). */
static void conn_timer_restart(struct gw_conn *c, enum timer_kind k)
{
    c->timer = k;
    event_add(&c->tev, c->cs->tv[k]);
}

/* Run the timer callback on the next loop pass: how the owner hears closed()
 * without being called back from inside its own gw_conn_* call. */
static void conn_defer(struct gw_conn *c)
{
    /* EV_READ marks "deferred", apart from a real EV_TIMEOUT. Activating a
     * one-shot timer also cancels its deadline: on_timer re-arms what applies. */
    event_active(&c->tev, EV_READ, 0);
}

/* ---------------------------------------------------------------- events */

/* Adds or deletes one of c's events; *is_on says which it is, so nothing is
 * asked of libevent twice. */
static void ev_set(struct gw_conn *c, struct event *ev, bool *is_on, bool on)
{
    if (*is_on == on || c->fd < 0) {
        return;
    }
    *is_on = on;
    if (on) {
        event_add(ev, NULL);
    }
    else {
        event_del(ev);
    }
}

static void rev_set(struct gw_conn *c, bool on)
{
    ev_set(c, &c->rev, &c->rev_on, on);
}

static void wev_set(struct gw_conn *c, bool on)
{
    ev_set(c, &c->wev, &c->wev_on, on);
}

/* writev that never raises SIGPIPE, whatever the process does with the signal:
 * a client that left is an error return here, not a signal. */
static ssize_t send_iov(int fd, struct iovec *iov, int n)
{
    struct msghdr m;

    memset(&m, 0, sizeof(m));
    m.msg_iov = iov;
    m.msg_iovlen = (size_t)n;
    return sendmsg(fd, &m, MSG_NOSIGNAL);
}

/* ---------------------------------------------------------- output queue */

static struct chunk *chunk_get(struct gw_conns *cs)
{
    struct chunk *k = cs->free_chunks;

    if (k) {
        cs->free_chunks = k->next;
        cs->nfree_chunks--;
    }
    else {
        k = gv_malloc(sizeof(*k));
    }
    k->next = NULL;
    k->start = 0;
    k->end = 0;
    return k;
}

static void chunk_put(struct gw_conns *cs, struct chunk *k)
{
    if (cs->nfree_chunks >= CHUNKS_KEEP) {
        gv_free(k);
        return;
    }
    k->next = cs->free_chunks;
    cs->free_chunks = k;
    cs->nfree_chunks++;
}

static void oq_append(struct gw_conn *c, const char *p, size_t n)
{
    c->unsent += n;
    while (n > 0) {
        struct chunk *t = c->oq_tail;
        size_t room;
        if (!t || t->end == CHUNK_BYTES) {
            t = chunk_get(c->cs);
            if (c->oq_tail) {
                c->oq_tail->next = t;
            }
            else {
                c->oq_head = t;
            }
            c->oq_tail = t;
        }
        room = CHUNK_BYTES - t->end;
        if (room > n) {
            room = n;
        }
        memcpy(t->data + t->end, p, room);
        t->end += room;
        p += room;
        n -= room;
    }
}

static void oq_consume(struct gw_conn *c, size_t n)
{
    c->unsent -= n;
    while (n > 0 && c->oq_head) {
        struct chunk *h = c->oq_head;
        size_t have = h->end - h->start;
        if (n < have) {
            h->start += n;
            return;
        }
        n -= have;
        c->oq_head = h->next;
        if (!c->oq_head) {
            c->oq_tail = NULL;
        }
        chunk_put(c->cs, h);
    }
}

static void oq_clear(struct gw_conn *c)
{
    while (c->oq_head) {
        struct chunk *h = c->oq_head;
        c->oq_head = h->next;
        chunk_put(c->cs, h);
    }
    c->oq_tail = NULL;
    c->unsent = 0;
}

/* The socket failed: nothing more can be sent or read. The owner (if any)
 * hears closed() on the next loop pass. */
static void conn_fail(struct gw_conn *c)
{
    c->dead = true;
    oq_clear(c);
    rev_set(c, false);
    wev_set(c, false);
    conn_defer(c);
}

/* Writes what waits; 0 when everything went, 1 when some waits, -1 on error. */
static int oq_flush(struct gw_conn *c)
{
    while (c->oq_head) {
        struct iovec iov[IOV_BATCH];
        struct chunk *k;
        int n = 0;
        ssize_t w;
        for (k = c->oq_head; k && n < IOV_BATCH; k = k->next) {
            iov[n].iov_base = k->data + k->start;
            iov[n].iov_len = k->end - k->start;
            n++;
        }
        w = send_iov(c->fd, iov, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return (errno == EAGAIN || errno == EWOULDBLOCK) ? 1 : -1;
        }
        oq_consume(c, (size_t)w);
    }
    return 0;
}

/* Sends iov at once when nothing waits, queues what does not go. */
static enum gw_conn_wr conn_writev(struct gw_conn *c, struct iovec *iov, int n)
{
    size_t total = 0, done = 0;
    int i;

    if (c->dead) {
        return GW_CONN_GONE;
    }
    for (i = 0; i < n; i++) {
        total += iov[i].iov_len;
    }
    if (total == 0) {
        return GW_CONN_OK;
    }
    if (c->unsent == 0) {
        ssize_t w;
        do {
            w = send_iov(c->fd, iov, n);
        } while (w < 0 && errno == EINTR);
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            conn_fail(c);
            return GW_CONN_GONE;
        }
        done = w > 0 ? (size_t)w : 0;
        if (done == total) {
            return GW_CONN_OK;
        }
    }
    for (i = 0; i < n; i++) {
        size_t len = iov[i].iov_len;
        const char *p = iov[i].iov_base;
        if (done >= len) {
            done -= len;
            continue;
        }
        oq_append(c, p + done, len - done);
        done = 0;
    }
    if (!c->flush_sched) {
        wev_set(c, true);
        if (c->timer != TK_SEND) {
            conn_timer(c, TK_SEND);
        }
    }
    if (c->unsent > c->cs->lim.high_water) {
        c->full = true;
        return GW_CONN_FULL;
    }
    return GW_CONN_OK;
}

/* Streamed pieces: queued, and sent together once the current callback returns
 * (the same loop pass, before epoll_wait), so a head, its events and the end of
 * a stream that arrived in one upstream read leave in one writev. */
static enum gw_conn_wr conn_queue(struct gw_conn *c, struct iovec *iov, int n)
{
    int i;

    if (c->dead) {
        return GW_CONN_GONE;
    }
    for (i = 0; i < n; i++) {
        if (iov[i].iov_len > 0) {
            oq_append(c, iov[i].iov_base, iov[i].iov_len);
        }
    }
    if (c->unsent > 0 && !c->wev_on && !c->flush_sched) {
        c->flush_sched = true;
        event_active(&c->fev, EV_WRITE, 0);
    }
    if (c->unsent > c->cs->lim.high_water) {
        c->full = true;
        return GW_CONN_FULL;
    }
    return c->full ? GW_CONN_FULL : GW_CONN_OK;
}

/* -------------------------------------------------------------- lifetime */

static void conn_free(struct gw_conn *c)
{
    struct gw_conns *cs = c->cs;

    if (c->fd >= 0) {
        event_del(&c->rev);
        event_del(&c->wev);
        close(c->fd);
        c->fd = -1;
    }
    event_del(&c->tev);
    event_del(&c->fev);
    if (c->busy) {
        cs->nbusy--;
    }
    oq_clear(c);
    gw_h1req_free(&c->h1);
    gv_buf_free(&c->stash);
    GV_DLIST_UNLINK(cs->all, c);
    cs->nconns--;
    gv_free(c);
    if (cs->draining && cs->nconns == 0 && cs->on_empty) {
        cs->on_empty(cs->arg);
    }
}

/* Closing a connection the owner still holds waits for detach (or closed()). */
static void conn_close(struct gw_conn *c)
{
    if (c->ops || c->in_dispatch || c->in_process) {
        c->dead = true;
        rev_set(c, false);
        wev_set(c, false);
        conn_defer(c);
        return;
    }
    conn_free(c);
}

/* Our side is done: send FIN, then read and drop what the client still sends
 * for a moment, so a reset does not destroy the answer before it was read. */
static void conn_linger(struct gw_conn *c)
{
    if (c->peer_eof || c->dead) {
        conn_close(c);
        return;
    }
    shutdown(c->fd, SHUT_WR);
    c->lingering = true;
    wev_set(c, false);
    rev_set(c, true);
    conn_timer(c, TK_LINGER);
}

/* The answer's bytes are all out (or were queued and now flushed). */
static void conn_after_flush(struct gw_conn *c)
{
    if (c->busy || c->lingering) {
        return;
    }
    if (c->close_after) {
        conn_linger(c);
        return;
    }
    if (c->resume_pending) {
        return;
    }
    conn_timer(c, gw_h1req_in_head(&c->h1) ? TK_HEAD : TK_IDLE);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct gw_conn *c = arg;
    enum timer_kind k = c->timer;
    struct gw_conns *cs = c->cs;

    (void)fd;
    c->timer = TK_NONE;
    if (c->dead) {
        if (c->ops) {
            const struct gw_conn_owner_ops *ops = c->ops;
            void *owner = c->owner;
            c->ops = NULL;
            c->owner = NULL;
            ops->closed(owner);
        }
        conn_free(c);
        return;
    }
    if (!(what & EV_TIMEOUT) || k == TK_NONE) {
        if (c->lingering) {
            conn_timer(c, TK_LINGER);
            return;
        }
        /* Activated by conn_defer for a resume of pipelined bytes. */
        if (c->resume_pending && !c->busy) {
            struct gv_buf tmp = c->stash;
            c->resume_pending = false;
            gv_buf_init(&c->stash, STASH_MAX);
            conn_process(c, tmp.data, tmp.len);
            gv_buf_free(&tmp);
            if (c->dead) {
                conn_close(c);
            }
            else if (!c->busy && !c->lingering) {
                if (!c->peer_eof) {
                    rev_set(c, true);
                }
                if (c->unsent == 0) {
                    conn_after_flush(c);
                }
            }
        }
        else if (!c->busy && c->unsent == 0) {
            conn_after_flush(c);
        }
        else if (c->unsent > 0) {
            conn_timer(c, TK_SEND);
        }
        return;
    }
    switch (k) {
    case TK_HEAD:
    case TK_BODY:
        /* Slow or stalled client: answer 408 and close. */
        c->keep_alive = false;
        c->close_after = true;
        if (cs->refuse && !c->busy) {
            c->in_dispatch = true;
            cs->refuse(cs->arg, c, 408, "request_timeout",
                       k == TK_HEAD ? "The request head did not arrive in time."
                                    : "The request body did not arrive in time.");
            c->in_dispatch = false;
        }
        if (!c->dead && !c->lingering) {
            c->close_after = true;
            if (c->unsent == 0) {
                conn_linger(c);
            }
        }
        if (c->dead) {
            conn_close(c);
        }
        return;
    case TK_IDLE:
    case TK_LINGER:
        conn_close(c);
        return;
    case TK_SEND:
        gv_log(GV_LOG_INFO, MOD, "client stopped reading; closing", "worker=%d unsent=%zu",
               cs->worker, c->unsent);
        conn_fail(c);
        return;
    default:
        return;
    }
}

/* ----------------------------------------------------------------- input */

static void conn_dispatch(struct gw_conn *c)
{
    struct gw_conns *cs = c->cs;
    struct gw_conn_req rq;

    c->busy = true;
    cs->nbusy++;
    c->ended = false;
    c->chunked = false;
    c->full = false;
    c->head_req = c->h1.head.method == GW_H1_METHOD_HEAD;
    c->keep_alive = c->h1.head.keep_alive;
    if (cs->draining) {
        c->close_after = true;
    }
    conn_timer(c, TK_NONE);
    rq.head = &c->h1.head;
    rq.body = c->h1.body.data ? c->h1.body.data : "";
    rq.body_len = c->h1.body.len;
    rq.t_start = c->t_start;
    c->in_dispatch = true;
    cs->dispatch(cs->arg, c, &rq);
    c->in_dispatch = false;
}

static void conn_refuse(struct gw_conn *c)
{
    struct gw_conns *cs = c->cs;

    c->busy = true;
    cs->nbusy++;
    c->ended = false;
    c->head_req = false;
    c->keep_alive = false;
    c->close_after = true;
    conn_timer(c, TK_NONE);
    c->in_dispatch = true;
    cs->refuse(cs->arg, c, c->h1.err_status, c->h1.err_code, c->h1.err_msg);
    c->in_dispatch = false;
}

/* Frames as many requests as the bytes hold, one at a time: while one is being
 * answered, the rest waits in the stash. */
static void conn_process(struct gw_conn *c, const char *data, size_t len)
{
    /* The head or body deadline a request still waiting for bytes needs, armed once
     * the bytes at hand are framed: a request that arrives whole (most of them)
     * never arms either, where it used to re-arm the connection's timer twice on
     * its way to dispatch. The loop's cached time is the same at both points. */
    enum timer_kind want = TK_NONE;

    c->in_process = true;
    while (len > 0 && !c->dead && !c->lingering) {
        enum gw_h1_status st;
        size_t used = 0;

        if (c->busy || c->close_after) {
            if (c->close_after) {
                break; /* nothing after a closing request is read */
            }
            if (gv_buf_append(&c->stash, data, len) != GV_OK) {
                c->close_after = true; /* a client that floods pipelined bytes */
            }
            rev_set(c, c->stash.len < READ_BUF);
            break;
        }
        if (!gw_h1req_in_head(&c->h1) && !gw_h1req_in_body(&c->h1)) {
            c->t_start = gv_mono_us();
            want = TK_HEAD;
        }
        st = gw_h1req_feed(&c->h1, data, len, &used);
        data += used;
        len -= used;
        switch (st) {
        case GW_H1_MORE:
            break;
        case GW_H1_HEAD:
            want = TK_BODY;
            if (c->h1.head.expect_continue) {
                static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                struct iovec iov = {(void *)cont, sizeof(cont) - 1};
                /* Armed first, as the interim answer may leave a send deadline. */
                conn_timer(c, TK_BODY);
                want = TK_NONE;
                conn_writev(c, &iov, 1);
            }
            break;
        case GW_H1_DONE:
            want = TK_NONE;
            conn_dispatch(c);
            break;
        case GW_H1_ERROR:
            want = TK_NONE;
            conn_refuse(c);
            len = 0;
            break;
        }
    }
    if (want != TK_NONE && !c->dead && !c->lingering && !c->busy) {
        conn_timer(c, want);
    }
    c->in_process = false;
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    struct gw_conn *c = arg;
    struct gw_conns *cs = c->cs;
    ssize_t n;

    (void)what;
    if (c->lingering) {
        n = read(fd, cs->rbuf, sizeof(cs->rbuf));
        if (n > 0) {
            c->lingered += (uint64_t)n;
        }
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) ||
            c->lingered > LINGER_MAX_BYTES) {
            conn_close(c);
        }
        return;
    }
    n = read(fd, cs->rbuf, sizeof(cs->rbuf));
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            return;
        }
        if (c->busy) {
            conn_fail(c);
        }
        else {
            conn_close(c);
        }
        return;
    }
    if (n == 0) {
        c->peer_eof = true;
        rev_set(c, false);
        if (!c->busy) {
            /* Idle, or a request cut off half-way: nothing to answer. */
            conn_close(c);
        }
        return; /* a half-closed client still gets its answer */
    }
    conn_process(c, cs->rbuf, (size_t)n);
    if (c->dead && !c->ops) {
        conn_free(c);
    }
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    struct gw_conn *c = arg;
    int r;

    (void)fd;
    (void)what;
    c->flush_sched = false;
    if (c->dead) {
        return; /* the deferred close is already on its way */
    }
    r = oq_flush(c);
    if (r < 0) {
        conn_fail(c);
        if (!c->ops) {
            conn_free(c);
        }
        return;
    }
    if (r > 0) {
        wev_set(c, true);
        conn_timer_restart(c, TK_SEND);
    }
    else {
        wev_set(c, false);
        if (c->timer == TK_SEND) {
            conn_timer(c, TK_NONE);
        }
        if (!c->busy) {
            conn_after_flush(c);
            return;
        }
    }
    if (c->full && c->unsent <= c->cs->lim.high_water / 2 && c->ops) {
        c->full = false;
        c->ops->drained(c->owner);
    }
}

/* ----------------------------------------------------------------- answer */

/* A bounded appender for answer heads: plain copies, no printf per answer. */
struct headw {
    char *p;
    size_t len;
    size_t size;
    bool over;
};

static void hw_put(struct headw *w, const char *s, size_t n)
{
    if (w->over || n >= w->size - w->len) {
        w->over = true;
        return;
    }
    memcpy(w->p + w->len, s, n);
    w->len += n;
}

static void hw_str(struct headw *w, const char *s)
{
    hw_put(w, s, strlen(s));
}

static void hw_u64(struct headw *w, unsigned long long v)
{
    char tmp[24];

    hw_put(w, tmp, gv_fmt_u64(v, tmp));
}

static size_t build_head(struct gw_conn *c, char *out, size_t size, int status, const char *ctype,
                         const char *hdrs, size_t hdrs_len, long long clen, bool chunked)
{
    const struct gw_h1_head *h = &c->h1.head;
    struct headw w = {out, 0, size, false};
    char code[4];

    if (c->cs->draining || !c->keep_alive) {
        c->close_after = true;
    }
    if (status < 100 || status > 999) {
        status = 500;
    }
    code[0] = (char)('0' + status / 100);
    code[1] = (char)('0' + status / 10 % 10);
    code[2] = (char)('0' + status % 10);
    code[3] = ' ';
    hw_str(&w, h->minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ");
    hw_put(&w, code, 4);
    hw_str(&w, reason(status));
    hw_str(&w, "\r\nDate: ");
    hw_str(&w, gv_time_http_date());
    hw_put(&w, "\r\n", 2);
    if (hdrs && hdrs_len > 0) {
        hw_put(&w, hdrs, hdrs_len);
    }
    if (ctype) {
        hw_str(&w, "Content-Type: ");
        hw_str(&w, ctype);
        hw_put(&w, "\r\n", 2);
    }
    if (clen >= 0) {
        hw_str(&w, "Content-Length: ");
        hw_u64(&w, (unsigned long long)clen);
        hw_put(&w, "\r\n", 2);
    }
    else if (chunked) {
        hw_str(&w, "Transfer-Encoding: chunked\r\n");
    }
    if (c->close_after) {
        hw_str(&w, "Connection: close\r\n");
    }
    else if (h->minor == 0) {
        hw_str(&w, "Connection: keep-alive\r\n");
    }
    hw_put(&w, "\r\n", 2);
    return w.over ? 0 : w.len;
}

enum gw_conn_wr gw_conn_reply(struct gw_conn *c, int status, const char *ctype, const char *hdrs,
                              size_t hdrs_len, const char *body, size_t len)
{
    char head[HEAD_MAX];
    struct iovec iov[2];
    size_t hl;
    enum gw_conn_wr wr;
    int n = 1;

    hl = build_head(c, head, sizeof(head), status, ctype, hdrs, hdrs_len, (long long)len, false);
    if (hl == 0) {
        /* The caller's headers overflowed our head buffer: answer without them. */
        hl = build_head(c, head, sizeof(head), status, ctype, NULL, 0, (long long)len, false);
    }
    iov[0].iov_base = head;
    iov[0].iov_len = hl;
    if (!c->head_req && len > 0) {
        iov[1].iov_base = (void *)body;
        iov[1].iov_len = len;
        n = 2;
    }
    /* A small answer waits for the end of the loop pass, like a stream's pieces: the
     * answers a busy pass makes leave together, so the client is woken once for them
     * rather than once each, and waking a sleeping peer is most of what a loopback write
     * costs. A large one goes at once, straight from the caller's buffer. */
    if (hl + (n == 2 ? len : 0) <= CHUNK_BYTES) {
        wr = conn_queue(c, iov, n);
    }
    else {
        wr = conn_writev(c, iov, n);
    }
    conn_answer_ended(c);
    return wr;
}

enum gw_conn_wr gw_conn_stream_start(struct gw_conn *c, int status, const char *ctype,
                                     const char *hdrs, size_t hdrs_len)
{
    char head[HEAD_MAX];
    struct iovec iov;
    size_t hl;

    c->chunked = c->h1.head.minor >= 1;
    if (!c->chunked) {
        c->close_after = true; /* HTTP/1.0: the end of the body is the close */
    }
    hl = build_head(c, head, sizeof(head), status, ctype, hdrs, hdrs_len, -1, c->chunked);
    if (hl == 0) {
        hl = build_head(c, head, sizeof(head), status, ctype, NULL, 0, -1, c->chunked);
    }
    iov.iov_base = head;
    iov.iov_len = hl;
    return conn_queue(c, &iov, 1);
}

enum gw_conn_wr gw_conn_stream_write(struct gw_conn *c, const char *p, size_t len)
{
    char size[24];
    struct iovec iov[3];
    int n;

    if (c->dead) {
        return GW_CONN_GONE;
    }
    if (len == 0 || c->head_req) {
        return c->full ? GW_CONN_FULL : GW_CONN_OK;
    }
    if (!c->chunked) {
        iov[0].iov_base = (void *)p;
        iov[0].iov_len = len;
        return conn_queue(c, iov, 1);
    }
    {
        static const char hex[] = "0123456789abcdef";
        size_t k = sizeof(size) - 2, v = len;
        size[sizeof(size) - 2] = '\r';
        size[sizeof(size) - 1] = '\n';
        do {
            size[--k] = hex[v & 15];
            v >>= 4;
        } while (v > 0);
        n = (int)(sizeof(size) - k);
        iov[0].iov_base = size + k;
        iov[0].iov_len = (size_t)n;
    }
    iov[1].iov_base = (void *)p;
    iov[1].iov_len = len;
    iov[2].iov_base = "\r\n";
    iov[2].iov_len = 2;
    return conn_queue(c, iov, 3);
}

enum gw_conn_wr gw_conn_stream_end(struct gw_conn *c)
{
    enum gw_conn_wr wr = GW_CONN_OK;

    if (c->chunked && !c->head_req) {
        struct iovec iov = {"0\r\n\r\n", 5};
        wr = conn_queue(c, &iov, 1);
    }
    conn_answer_ended(c);
    return wr;
}

void gw_conn_set_close(struct gw_conn *c)
{
    c->close_after = true;
}

/* The owner's part is over: the next request may be framed. */
static void conn_answer_ended(struct gw_conn *c)
{
    struct gw_conns *cs = c->cs;

    if (c->ended) {
        return;
    }
    c->ended = true;
    c->ops = NULL;
    c->owner = NULL;
    if (c->busy) {
        c->busy = false;
        cs->nbusy--;
    }
    if (c->dead) {
        return; /* conn_fail already scheduled the rest */
    }
    gw_h1req_next(&c->h1);
    if (c->peer_eof && c->stash.len == 0) {
        c->close_after = true;
    }
    if (c->close_after) {
        gv_buf_free(&c->stash);
        if (c->unsent == 0) {
            conn_linger(c); /* frees at once only outside conn_process */
        }
        return;
    }
    gw_h1req_release(&c->h1);
    if (c->stash.len > 0) {
        /* Answered from the loop (never inside dispatch: nothing is read
         * into the stash while conn_process still holds bytes). */
        c->resume_pending = true;
        conn_defer(c);
        return;
    }
    if (!c->peer_eof) {
        rev_set(c, true);
    }
    if (c->unsent == 0 && !c->in_dispatch) {
        conn_after_flush(c);
    }
    else if (c->unsent == 0) {
        conn_timer(c, TK_IDLE);
    }
}

void gw_conn_attach(struct gw_conn *c, const struct gw_conn_owner_ops *ops, void *arg)
{
    c->ops = ops;
    c->owner = arg;
}

void gw_conn_detach(struct gw_conn *c)
{
    if (!c) {
        return;
    }
    c->ops = NULL;
    c->owner = NULL;
    if (c->dead) {
        /* A deferred closed() may be pending: the timer callback frees. */
        conn_defer(c);
        return;
    }
    if (!c->ended) {
        /* The answer was cut short: the connection cannot carry another. */
        c->ended = true;
        if (c->busy) {
            c->busy = false;
            c->cs->nbusy--;
        }
        c->dead = true;
        oq_clear(c);
        rev_set(c, false);
        wev_set(c, false);
        conn_defer(c);
    }
}

/* ---------------------------------------------------------------- accept */

static void conn_new(struct gw_conns *cs, int fd)
{
    struct gw_conn *c = gv_calloc(1, sizeof(*c));
    int one = 1;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->cs = cs;
    c->fd = fd;
    gw_h1req_init(&c->h1, &cs->lim.h1);
    gv_buf_init(&c->stash, STASH_MAX);
    event_assign(&c->rev, cs->base, fd, EV_READ | EV_PERSIST, on_read, c);
    event_assign(&c->wev, cs->base, fd, EV_WRITE | EV_PERSIST, on_write, c);
    event_assign(&c->fev, cs->base, -1, 0, on_write, c);
    evtimer_assign(&c->tev, cs->base, on_timer, c);
    GV_DLIST_PUSH(cs->all, c);
    cs->nconns++;
    c->keep_alive = true;
    rev_set(c, true);
    /* A client that connects and says nothing is held to the head deadline. */
    conn_timer(c, TK_HEAD);
}

/* Over the cap: a short JSON 503 and close, so the client retries elsewhere
 * instead of hanging in the backlog. */
static void refuse_over_cap(struct gw_conns *cs, int fd)
{
    static const char body[] =
        "{\"error\":{\"message\":\"The gateway is at its connection limit; retry shortly.\","
        "\"type\":\"server_error\",\"code\":\"too_many_connections\",\"param\":null}}";
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 503 Service Unavailable\r\nDate: %s\r\nContent-Type: "
                     "application/json\r\nContent-Length: %zu\r\nRetry-After: 1\r\n"
                     "Connection: close\r\n\r\n",
                     gv_time_http_date(), sizeof(body) - 1);
    struct iovec iov[2] = {{head, (size_t)n}, {(void *)body, sizeof(body) - 1}};
    ssize_t w = send_iov(fd, iov, 2);

    (void)w; /* best effort: a fresh socket's buffer takes this whole */
    shutdown(fd, SHUT_WR);
    close(fd);
}

static void on_accept_retry(evutil_socket_t fd, short what, void *arg)
{
    struct gw_conns *cs = arg;

    (void)fd;
    (void)what;
    if (cs->lfd >= 0 && !cs->draining && !cs->lev_on) {
        event_add(&cs->lev, NULL);
        cs->lev_on = true;
    }
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    struct gw_conns *cs = arg;
    int i;

    (void)what;
    for (i = 0; i < ACCEPT_BATCH; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            uint64_t now;
            if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ECONNABORTED) {
                return;
            }
            /* Out of descriptors or memory: the listener stays readable and
             * would spin. Pause it; waiting connections stay in the backlog and
             * requests in flight get to finish and free some. */
            cs->accept_fails++;
            now = gv_mono_us();
            atomic_store_explicit(&cs->accept_errno, err, memory_order_relaxed);
            atomic_store_explicit(&cs->accept_failed_us, now, memory_order_relaxed);
            if (cs->accept_logged_us == 0 || now - cs->accept_logged_us >= ACCEPT_LOG_EVERY_US) {
                gv_log(GV_LOG_ERROR, MOD, "cannot accept connections; pausing the listener",
                       "worker=%d errno=%d err=\"%s\" failures_total=%llu pause_ms=%d", cs->worker,
                       err, strerror(err), (unsigned long long)cs->accept_fails, ACCEPT_PAUSE_MS);
                cs->accept_logged_us = now;
            }
            if (cs->lev_on) {
                event_del(&cs->lev);
                cs->lev_on = false;
            }
            {
                struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
                evtimer_add(&cs->accept_retry, &tv);
            }
            return;
        }
        if (atomic_load_explicit(&cs->accept_errno, memory_order_relaxed) != 0) {
            atomic_store_explicit(&cs->accept_errno, 0, memory_order_relaxed);
        }
        if (cs->lim.max_conns > 0 && cs->nconns >= cs->lim.max_conns) {
            refuse_over_cap(cs, fd);
            continue;
        }
        conn_new(cs, fd);
    }
}

/* ---------------------------------------------------------------- set up */

gv_rc gw_conns_create(const struct gw_conns_opts *opts, struct gw_conns **out)
{
    struct gw_conns *cs = gv_calloc(1, sizeof(*cs));
    long ms[TK_NKINDS] = {0};
    int k;

    *out = NULL;
    cs->base = opts->base;
    cs->lfd = opts->listen_fd;
    cs->lim = opts->lim;
    cs->dispatch = opts->dispatch;
    cs->refuse = opts->refuse;
    cs->arg = opts->arg;
    cs->worker = opts->worker;
    cs->on_empty = opts->on_empty;
    if (cs->lim.high_water == 0) {
        cs->lim.high_water = 32u * 1024u;
    }
    ms[TK_HEAD] = cs->lim.header_timeout_ms > 0 ? cs->lim.header_timeout_ms : 10000;
    ms[TK_BODY] = cs->lim.body_timeout_ms > 0 ? cs->lim.body_timeout_ms : 60000;
    ms[TK_IDLE] = cs->lim.keepalive_timeout_ms > 0 ? cs->lim.keepalive_timeout_ms : 20000;
    ms[TK_SEND] = cs->lim.send_timeout_ms > 0 ? cs->lim.send_timeout_ms : 60000;
    ms[TK_LINGER] = LINGER_MS;
    for (k = TK_HEAD; k < TK_NKINDS; k++) {
        /* Common timeouts: every connection's deadline of one kind sits in one
         * queue, so arming one is O(1) and costs no syscall. */
        struct timeval tv = {ms[k] / 1000, (ms[k] % 1000) * 1000};
        cs->tv[k] = event_base_init_common_timeout(cs->base, &tv);
        if (!cs->tv[k]) {
            gv_free(cs);
            close(opts->listen_fd);
            return GV_EIO;
        }
    }
    event_assign(&cs->lev, cs->base, cs->lfd, EV_READ | EV_PERSIST, on_accept, cs);
    evtimer_assign(&cs->accept_retry, cs->base, on_accept_retry, cs);
    if (event_add(&cs->lev, NULL) != 0) {
        close(cs->lfd);
        gv_free(cs);
        return GV_EIO;
    }
    cs->lev_on = true;
    *out = cs;
    return GV_OK;
}

static void close_listener(struct gw_conns *cs)
{
    if (cs->lfd >= 0) {
        if (cs->lev_on) {
            event_del(&cs->lev);
            cs->lev_on = false;
        }
        evtimer_del(&cs->accept_retry);
        close(cs->lfd);
        cs->lfd = -1;
    }
}

void gw_conns_drain(struct gw_conns *cs)
{
    struct gw_conn *c, *next;

    if (!cs) {
        return;
    }
    cs->draining = true;
    close_listener(cs);
    for (c = cs->all; c; c = next) {
        next = c->next;
        if (!c->busy && !c->dead && !gw_h1req_in_head(&c->h1) && !gw_h1req_in_body(&c->h1) &&
            c->unsent == 0 && !c->resume_pending) {
            conn_close(c);
        }
        else {
            c->close_after = true;
        }
    }
}

void gw_conns_destroy(struct gw_conns *cs)
{
    if (!cs) {
        return;
    }
    close_listener(cs);
    while (cs->all) {
        struct gw_conn *c = cs->all;
        if (c->ops) {
            const struct gw_conn_owner_ops *ops = c->ops;
            void *owner = c->owner;
            c->ops = NULL;
            c->owner = NULL;
            c->dead = true;
            ops->closed(owner);
        }
        conn_free(c);
    }
    while (cs->free_chunks) {
        struct chunk *k = cs->free_chunks;
        cs->free_chunks = k->next;
        gv_free(k);
    }
    gv_free(cs);
}

size_t gw_conns_count(const struct gw_conns *cs)
{
    return cs ? cs->nconns : 0;
}

int gw_conns_accept_errno(const struct gw_conns *cs)
{
    struct gw_conns *m = (struct gw_conns *)cs; /* atomics are read through non-const */
    unsigned long long at;

    if (!cs) {
        return 0;
    }
    at = atomic_load_explicit(&m->accept_failed_us, memory_order_relaxed);
    /* The paused listener retries every ACCEPT_PAUSE_MS while clients wait, so a
     * failure older than a few pauses means nothing failed since. */
    if (at == 0 || gv_mono_us() - at > 10u * ACCEPT_PAUSE_MS * 1000u) {
        return 0;
    }
    return atomic_load_explicit(&m->accept_errno, memory_order_relaxed);
}

size_t gw_conns_busy(const struct gw_conns *cs)
{
    return cs ? cs->nbusy : 0;
}
