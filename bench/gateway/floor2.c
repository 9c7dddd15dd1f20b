/* bench/gateway/floor2.c - the cost floor of kt's own HTTP/1.1 design: a proxy, nothing else */
/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kt-bench-floor2 --listen 127.0.0.1:PORT --upstream http://127.0.0.1:PORT2/v1/chat/completions
 *
 * The same contract as floor.c (every POST /v1/chat/completions is forwarded as is with a fixed
 * Authorization, the upstream's status and body go back; no JSON, no policies, no records), built
 * the way kt's data plane is to be built instead of on evhttp + libcurl:
 *   - one event loop, one raw libevent `event` per socket and direction, no bufferevent;
 *   - read() into 16 KB buffers from a per-worker pool, returned as soon as they are drained, so
 *     an idle connection holds no buffer;
 *   - libhttp-parser for client requests and upstream responses;
 *   - a keep-alive pool of upstream sockets that stay registered for EV_READ while idle (readable
 *     means closed by the peer), so taking one costs no syscall;
 *   - answers go out with writev at once; EV_WRITE is armed only after EAGAIN, so a relayed SSE
 *     event costs no epoll_ctl;
 *   - upstream bodies are relayed as they arrive: with Content-Length as is, anything else
 *     (SSE, chunked, close-delimited) as chunked; reading the upstream stops while more than
 *     BACKLOG_HIGH bytes wait for the client and resumes below half of it.
 * It links libevent, libhttp-parser and libc, and of kt only core/gv_time.c (the Date value,
 * formatted once a second as kt and nginx do), so its numbers are the design's alone.
 * No TLS, no timeouts (the benchmark's peers are local and bounded), plain HTTP upstream only.
 * Other paths answer 404, other methods 405, upstream failures before the answer began 502; a
 * failure after that closes the client connection. SIGINT or SIGTERM stop it.
 */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/util.h>
#include <http_parser.h>

#include "bench/gateway/floor_cli.h"
#include "core/gv_time.h"

#define BUF_SIZE (16 * 1024)
#define POOL_KEEP 1024u     /* free buffers kept for reuse; more go back to malloc */
#define UP_IDLE_MAX 1024u   /* idle upstream sockets kept open */
#define BODY_MAX (8u << 20) /* request bodies above this answer 413 */
#define BACKLOG_HIGH (32 * 1024)
#define IOV_MAX_OUT 16
#define ACCEPT_BATCH 64

#define ERR_UPSTREAM                                                                               \
    "{\"error\":{\"message\":\"upstream unreachable or invalid answer\","                          \
    "\"type\":\"upstream_error\",\"code\":\"upstream_error\"}}"
#define ERR_NOT_FOUND                                                                              \
    "{\"error\":{\"message\":\"This server serves POST /v1/chat/completions "                      \
    "only.\",\"type\":\"invalid_request_error\",\"code\":\"unknown_url\"}}"
#define ERR_METHOD                                                                                 \
    "{\"error\":{\"message\":\"Method not allowed for this URL.\","                                \
    "\"type\":\"invalid_request_error\",\"code\":\"method_not_allowed\"}}"
#define ERR_TOO_LARGE                                                                              \
    "{\"error\":{\"message\":\"Request body too large.\","                                         \
    "\"type\":\"invalid_request_error\",\"code\":\"request_too_large\"}}"
#define ERR_BAD                                                                                    \
    "{\"error\":{\"message\":\"Malformed HTTP request.\","                                         \
    "\"type\":\"invalid_request_error\",\"code\":\"bad_request\"}}"

struct buf {
    struct buf *next;
    size_t off; /* first byte not yet consumed or sent */
    size_t len; /* bytes held */
    char data[BUF_SIZE];
};

struct upconn;

struct conn {
    struct worker *w;
    int fd;
    struct event rev, wev;
    int wev_on;
    http_parser parser;
    struct buf *in;             /* unparsed bytes; NULL when none */
    struct buf *out, *out_tail; /* answer bytes not yet written */
    size_t out_bytes;
    /* The request being read or relayed. */
    char url_ok, url_len, field_accept, in_flight, keep_alive, closing, chunked_out, rev_off;
    char accept[64];
    size_t accept_len;
    struct buf *body_buf; /* body when it fits one pooled buffer */
    char *body;           /* body_buf->data or a malloc'd block */
    size_t body_len, body_cap;
    char head[512]; /* upstream request head */
    size_t head_len, req_sent;
    int retried;
    struct upconn *up;
};

struct upconn {
    struct worker *w;
    int fd;
    struct event rev, wev;
    int reading; /* rev registered */
    http_parser parser;
    struct conn *c; /* the client being served; NULL while idle in the pool */
    struct upconn *next;
    char field_ct, sse, done;
};

struct worker {
    struct event_base *base;
    struct buf *free_bufs;
    unsigned nfree;
    struct upconn *idle;
    unsigned nidle;
    struct sockaddr_in up_addr;
    char host[64];
    char path[256];
    struct event lev;
    struct event lpause; /* re-arms the listener after running out of descriptors */
    int lfd;
};

static http_parser_settings req_settings, resp_settings;

static void *xmalloc(size_t n)
{
    void *p = malloc(n);

    if (!p) {
        fputs("kt-bench-floor2: out of memory\n", stderr);
        abort();
    }
    return p;
}

static struct buf *buf_get(struct worker *w)
{
    struct buf *b = w->free_bufs;

    if (b) {
        w->free_bufs = b->next;
        w->nfree--;
    }
    else {
        b = xmalloc(sizeof(*b));
    }
    b->next = NULL;
    b->off = 0;
    b->len = 0;
    return b;
}

static void buf_put(struct worker *w, struct buf *b)
{
    if (w->nfree >= POOL_KEEP) {
        free(b);
        return;
    }
    b->next = w->free_bufs;
    w->free_bufs = b;
    w->nfree++;
}

/* ---- client output ------------------------------------------------------------------------ */

static void out_add(struct conn *c, const char *p, size_t n)
{
    while (n > 0) {
        struct buf *t = c->out_tail;
        size_t room, k;

        if (!t || t->len == BUF_SIZE) {
            t = buf_get(c->w);
            if (c->out_tail) {
                c->out_tail->next = t;
            }
            else {
                c->out = t;
            }
            c->out_tail = t;
        }
        room = BUF_SIZE - t->len;
        k = n < room ? n : room;
        memcpy(t->data + t->len, p, k);
        t->len += k;
        c->out_bytes += k;
        p += k;
        n -= k;
    }
}

static void conn_close(struct conn *c);
static void up_read_set(struct upconn *u, int on);
static void client_continue(struct conn *c);

/* Writes what is queued at once; EV_WRITE only while the socket refuses more. Returns -1 when
 * the connection was closed. */
static int out_flush(struct conn *c)
{
    while (c->out) {
        struct iovec iov[IOV_MAX_OUT];
        struct buf *b = c->out;
        int n = 0;
        ssize_t wr;

        for (; b && n < IOV_MAX_OUT; b = b->next, n++) {
            iov[n].iov_base = b->data + b->off;
            iov[n].iov_len = b->len - b->off;
        }
        wr = writev(c->fd, iov, n);
        if (wr < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                break;
            }
            conn_close(c);
            return -1;
        }
        c->out_bytes -= (size_t)wr;
        while (wr > 0) {
            b = c->out;
            size_t k = b->len - b->off;

            if ((size_t)wr < k) {
                b->off += (size_t)wr;
                break;
            }
            wr -= (ssize_t)k;
            c->out = b->next;
            buf_put(c->w, b);
        }
        if (!c->out) {
            c->out_tail = NULL;
        }
    }
    if (c->out && !c->wev_on) {
        event_add(&c->wev, NULL);
        c->wev_on = 1;
    }
    else if (!c->out && c->wev_on) {
        event_del(&c->wev);
        c->wev_on = 0;
    }
    /* Backpressure toward the upstream, one mark with hysteresis. */
    if (c->up) {
        if (c->out_bytes > BACKLOG_HIGH) {
            up_read_set(c->up, 0);
        }
        else if (c->out_bytes <= BACKLOG_HIGH / 2) {
            up_read_set(c->up, 1);
        }
    }
    if (!c->out && c->closing) {
        conn_close(c);
        return -1;
    }
    return 0;
}

/* A whole answer of our own (errors); the request is over once it is queued. */
static void answer(struct conn *c, int status, const char *reason, const char *body)
{
    char head[256];
    size_t blen = strlen(body);
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n%s\r\n",
                     status, reason, gv_time_http_date(), blen,
                     c->keep_alive ? "" : "Connection: close\r\n");

    out_add(c, head, (size_t)n);
    out_add(c, body, blen);
}

static void on_client_write(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    if (out_flush(c) == 0 && !c->in_flight && !c->out) {
        client_continue(c);
    }
}

/* ---- upstream side ------------------------------------------------------------------------ */

static void up_read_set(struct upconn *u, int on)
{
    if (on && !u->reading) {
        event_add(&u->rev, NULL);
        u->reading = 1;
    }
    else if (!on && u->reading) {
        event_del(&u->rev);
        u->reading = 0;
    }
}

static void up_close(struct upconn *u)
{
    event_del(&u->rev);
    event_del(&u->wev);
    close(u->fd);
    free(u);
}

static void request_done(struct conn *c);

/* The upstream failed. Before any answer byte was queued for the client it gets a 502; after
 * that its answer cannot be completed and the connection closes. */
static void up_fail(struct upconn *u)
{
    struct conn *c = u->c;

    if (c) {
        c->up = NULL;
        u->c = NULL;
    }
    up_close(u);
    if (!c) {
        return;
    }
    if (c->head_len == 0) { /* cleared once the answer began */
        conn_close(c);
        return;
    }
    answer(c, 502, "Bad Gateway", ERR_UPSTREAM);
    request_done(c);
}

/* Binds a socket to the client's request, with a fresh response parser. */
static void up_attach(struct upconn *u, struct conn *c)
{
    http_parser_init(&u->parser, HTTP_RESPONSE);
    u->parser.data = u;
    u->field_ct = 0;
    u->sse = 0;
    u->done = 0;
    u->c = c;
    c->up = u;
}

static struct upconn *up_connect(struct worker *w);

/* Sends the rest of the request head and body with one writev. */
static void up_write(struct upconn *u)
{
    struct conn *c = u->c;

    for (;;) {
        struct iovec iov[2];
        size_t total = c->head_len + c->body_len;
        int n = 0;
        ssize_t wr;

        if (c->req_sent >= total) {
            return;
        }
        if (c->req_sent < c->head_len) {
            iov[n].iov_base = c->head + c->req_sent;
            iov[n++].iov_len = c->head_len - c->req_sent;
        }
        if (c->body_len > 0) {
            size_t off = c->req_sent > c->head_len ? c->req_sent - c->head_len : 0;

            iov[n].iov_base = c->body + off;
            iov[n++].iov_len = c->body_len - off;
        }
        wr = writev(u->fd, iov, n);
        if (wr < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                event_add(&u->wev, NULL);
                return;
            }
            /* A pooled socket the peer closed meanwhile: once more on a fresh one, only if
             * nothing of this request went out. */
            if (c->req_sent == 0 && !c->retried) {
                struct upconn *fresh = up_connect(c->w);

                c->retried = 1;
                u->c = NULL;
                up_close(u);
                if (fresh) {
                    up_attach(fresh, c);
                    up_write(fresh);
                    return;
                }
                c->up = NULL;
                answer(c, 502, "Bad Gateway", ERR_UPSTREAM);
                request_done(c);
                return;
            }
            up_fail(u);
            return;
        }
        c->req_sent += (size_t)wr;
    }
}

static void on_up_write(evutil_socket_t fd, short what, void *arg)
{
    struct upconn *u = arg;

    if (u->c) {
        up_write(u);
    }
}

static void on_up_read(evutil_socket_t fd, short what, void *arg);

static struct upconn *up_connect(struct worker *w)
{
    struct upconn *u;
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        return NULL;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&w->up_addr, sizeof(w->up_addr)) != 0 &&
        errno != EINPROGRESS) {
        close(fd);
        return NULL;
    }
    u = xmalloc(sizeof(*u));
    memset(u, 0, sizeof(*u));
    u->w = w;
    u->fd = fd;
    event_assign(&u->rev, w->base, fd, EV_READ | EV_PERSIST, on_up_read, u);
    event_assign(&u->wev, w->base, fd, EV_WRITE, on_up_write, u);
    event_add(&u->rev, NULL);
    u->reading = 1;
    /* No wait for writability: on loopback the handshake is done by the time the request is
     * written, which saves two epoll_ctl a connection; if not, the write says EAGAIN and
     * EV_WRITE waits for it, and a refused connect fails the write. */
    return u;
}

/* Starts the request on a pooled socket (no syscall but the write) or a fresh one. */
static void up_start(struct conn *c)
{
    struct worker *w = c->w;
    struct upconn *u = w->idle;
    int n = snprintf(c->head, sizeof(c->head),
                     "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     "Authorization: Bearer sk-bench-upstream\r\nAccept: %.*s\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     w->path, w->host, (int)c->accept_len, c->accept, c->body_len);

    c->head_len = (size_t)n;
    c->req_sent = 0;
    c->retried = 0;
    if (u) {
        w->idle = u->next;
        w->nidle--;
        u->next = NULL;
    }
    else {
        u = up_connect(w);
        if (!u) {
            answer(c, 502, "Bad Gateway", ERR_UPSTREAM);
            request_done(c);
            return;
        }
    }
    up_attach(u, c);
    up_write(u);
}

static int resp_header_field(http_parser *p, const char *at, size_t len)
{
    struct upconn *u = p->data;

    /* Split field names are rare on loopback; a split one just is not recognised. */
    u->field_ct = len == 12 && strncasecmp(at, "content-type", 12) == 0;
    return 0;
}

static int resp_header_value(http_parser *p, const char *at, size_t len)
{
    struct upconn *u = p->data;

    if (u->field_ct && len >= 17 && strncasecmp(at, "text/event-stream", 17) == 0) {
        u->sse = 1;
    }
    u->field_ct = 0;
    return 0;
}

static int resp_headers_complete(http_parser *p)
{
    struct upconn *u = p->data;
    struct conn *c = u->c;
    char head[320];
    int n;

    c->chunked_out = u->sse || (p->flags & F_CHUNKED) || p->content_length == ULLONG_MAX;
    if (c->chunked_out) {
        n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %u %s\r\nDate: %s\r\nContent-Type: %s\r\n"
                     "Transfer-Encoding: chunked\r\n%s\r\n",
                     p->status_code, http_status_str((enum http_status)p->status_code),
                     gv_time_http_date(), u->sse ? "text/event-stream" : "application/json",
                     c->keep_alive ? "" : "Connection: close\r\n");
    }
    else {
        n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %u %s\r\nDate: %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %llu\r\n%s\r\n",
                     p->status_code, http_status_str((enum http_status)p->status_code),
                     gv_time_http_date(), (unsigned long long)p->content_length,
                     c->keep_alive ? "" : "Connection: close\r\n");
    }
    out_add(c, head, (size_t)n);
    c->head_len = 0; /* the answer began: no 502 from here on */
    return 0;
}

static int resp_body(http_parser *p, const char *at, size_t len)
{
    struct upconn *u = p->data;
    struct conn *c = u->c;

    if (c->chunked_out) {
        char size[24];
        int n = snprintf(size, sizeof(size), "%zx\r\n", len);

        out_add(c, size, (size_t)n);
        out_add(c, at, len);
        out_add(c, "\r\n", 2);
    }
    else {
        out_add(c, at, len);
    }
    return 0;
}

static int resp_complete(http_parser *p)
{
    struct upconn *u = p->data;

    if (u->c->chunked_out) {
        out_add(u->c, "0\r\n\r\n", 5);
    }
    u->done = 1;
    http_parser_pause(p, 1);
    return 0;
}

static void on_up_read(evutil_socket_t fd, short what, void *arg)
{
    struct upconn *u = arg;
    struct worker *w = u->w;
    struct conn *c = u->c;
    struct buf *b;
    ssize_t n;
    size_t used;

    b = buf_get(w);
    n = read(fd, b->data, BUF_SIZE);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        buf_put(w, b);
        return;
    }
    if (!c) { /* idle in the pool: readable means closed, or talking out of turn */
        struct upconn **pp = &w->idle;

        buf_put(w, b);
        while (*pp && *pp != u) {
            pp = &(*pp)->next;
        }
        if (*pp) {
            *pp = u->next;
            w->nidle--;
        }
        up_close(u);
        return;
    }
    if (n < 0) {
        buf_put(w, b);
        up_fail(u);
        return;
    }
    /* n == 0 tells the parser the peer closed: the end of a close-delimited body. */
    used = http_parser_execute(&u->parser, &resp_settings, b->data, n > 0 ? (size_t)n : 0);
    buf_put(w, b);
    if (u->done) {
        int reuse = n > 0 && used == (size_t)n && http_should_keep_alive(&u->parser);

        c->up = NULL;
        u->c = NULL;
        if (reuse && w->nidle < UP_IDLE_MAX) {
            up_read_set(u, 1); /* stays registered: readable while idle = closed */
            u->next = w->idle;
            w->idle = u;
            w->nidle++;
        }
        else {
            up_close(u);
        }
        request_done(c);
        return;
    }
    if (n == 0 || HTTP_PARSER_ERRNO(&u->parser) != HPE_OK) {
        up_fail(u);
        return;
    }
    out_flush(c);
}

/* ---- client side -------------------------------------------------------------------------- */

static int req_message_begin(http_parser *p)
{
    struct conn *c = p->data;

    c->url_ok = 0;
    c->url_len = 0;
    c->accept_len = 0;
    c->field_accept = 0;
    c->body_len = 0;
    return 0;
}

static int req_url(http_parser *p, const char *at, size_t len)
{
    static const char want[] = "/v1/chat/completions";
    struct conn *c = p->data;
    size_t have = (size_t)c->url_len;

    /* Compared piece by piece: the URL may come in several reads. */
    if (have + len > sizeof(want) - 1 || memcmp(want + have, at, len) != 0) {
        c->url_len = 127;
        return 0;
    }
    c->url_len = (char)(have + len);
    c->url_ok = c->url_len == (char)(sizeof(want) - 1);
    return 0;
}

static int req_header_field(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;

    c->field_accept = len == 6 && strncasecmp(at, "accept", 6) == 0;
    return 0;
}

static int req_header_value(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;

    if (c->field_accept) {
        size_t room = sizeof(c->accept) - c->accept_len;
        size_t k = len < room ? len : room;

        memcpy(c->accept + c->accept_len, at, k);
        c->accept_len += k;
    }
    return 0;
}

static int req_body(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;

    if (c->body_len + len > BODY_MAX) {
        return 1; /* HPE_CB_body: answered 413 */
    }
    if (c->body_len + len > c->body_cap) {
        size_t cap = c->body_cap ? c->body_cap : BUF_SIZE;
        char *nb;

        while (cap < c->body_len + len) {
            cap *= 2;
        }
        if (!c->body) {
            if (cap == BUF_SIZE) {
                c->body_buf = buf_get(c->w);
                nb = c->body_buf->data;
            }
            else {
                nb = xmalloc(cap);
            }
        }
        else {
            nb = xmalloc(cap);
            memcpy(nb, c->body, c->body_len);
            if (c->body_buf) {
                buf_put(c->w, c->body_buf);
                c->body_buf = NULL;
            }
            else {
                free(c->body);
            }
        }
        c->body = nb;
        c->body_cap = cap;
    }
    memcpy(c->body + c->body_len, at, len);
    c->body_len += len;
    return 0;
}

static int req_complete(http_parser *p)
{
    struct conn *c = p->data;

    c->in_flight = 1;
    c->keep_alive = (char)http_should_keep_alive(p);
    http_parser_pause(p, 1); /* one request at a time; pipelined ones wait in c->in */
    return 0;
}

static void body_release(struct conn *c)
{
    if (c->body_buf) {
        buf_put(c->w, c->body_buf);
    }
    else {
        free(c->body);
    }
    c->body_buf = NULL;
    c->body = NULL;
    c->body_len = 0;
    c->body_cap = 0;
}

/* The answer is queued: flush it and go on with a pipelined request, if any. */
static void request_done(struct conn *c)
{
    c->in_flight = 0;
    body_release(c);
    if (!c->keep_alive) {
        c->closing = 1;
    }
    if (out_flush(c) == 0 && !c->closing && !c->out) {
        client_continue(c);
    }
}

/* Parses what the client sent so far; dispatches a complete request. */
static void client_continue(struct conn *c)
{
    struct buf *b = c->in;
    size_t used;
    enum http_errno e;

    if (c->in_flight || c->closing) {
        return;
    }
    if (c->rev_off) {
        event_add(&c->rev, NULL);
        c->rev_off = 0;
    }
    if (!b) {
        return;
    }
    http_parser_pause(&c->parser, 0);
    used = http_parser_execute(&c->parser, &req_settings, b->data + b->off, b->len - b->off);
    b->off += used;
    if (b->off == b->len) {
        c->in = NULL;
        buf_put(c->w, b);
    }
    e = HTTP_PARSER_ERRNO(&c->parser);
    if (e != HPE_OK && e != HPE_PAUSED) {
        c->keep_alive = 0;
        if (e == HPE_CB_body) {
            answer(c, 413, "Payload Too Large", ERR_TOO_LARGE);
        }
        else {
            answer(c, 400, "Bad Request", ERR_BAD);
        }
        request_done(c);
        return;
    }
    if (!c->in_flight) {
        return; /* needs more bytes */
    }
    if (!c->url_ok) {
        answer(c, 404, "Not Found", ERR_NOT_FOUND);
        request_done(c);
    }
    else if (c->parser.method != HTTP_POST) {
        answer(c, 405, "Method Not Allowed", ERR_METHOD);
        request_done(c);
    }
    else {
        if (c->accept_len == 0) {
            memcpy(c->accept, "application/json", 16);
            c->accept_len = 16;
        }
        up_start(c);
    }
}

static void on_client_read(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    struct buf *b = c->in;
    ssize_t n;

    if (!b) {
        b = c->in = buf_get(c->w);
    }
    else if (b->off > 0 && b->len == BUF_SIZE) {
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
    }
    if (b->len == BUF_SIZE) {
        /* Busy with one request and a full buffer of pipelined ones: stop reading until the
         * answer is out (level-triggered epoll would otherwise spin). */
        event_del(&c->rev);
        c->rev_off = 1;
        return;
    }
    n = read(fd, b->data + b->len, BUF_SIZE - b->len);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            return;
        }
        conn_close(c); /* closed or reset; an upstream request in flight is dropped */
        return;
    }
    b->len += (size_t)n;
    client_continue(c);
}

static void conn_close(struct conn *c)
{
    struct worker *w = c->w;

    if (c->up) {
        c->up->c = NULL;
        up_close(c->up); /* mid-answer: its framing is unknown now */
    }
    event_del(&c->rev);
    event_del(&c->wev);
    close(c->fd);
    if (c->in) {
        buf_put(w, c->in);
    }
    while (c->out) {
        struct buf *b = c->out;

        c->out = b->next;
        buf_put(w, b);
    }
    body_release(c);
    c->parser.data = NULL;
    free(c);
}

static void on_listen_resume(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;

    event_add(&w->lev, NULL);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    struct worker *w = arg;
    int i, one = 1;

    for (i = 0; i < ACCEPT_BATCH; i++) {
        struct conn *c;
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                /* The pending connection keeps the listener readable: without a pause the
                 * loop would spin on it. Connections wait in the backlog meanwhile. */
                struct timeval tv = {0, 100 * 1000};

                fprintf(stderr, "kt-bench-floor2: accept: %s; pausing 100 ms\n", strerror(errno));
                event_del(&w->lev);
                evtimer_add(&w->lpause, &tv);
            }
            return;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c = xmalloc(sizeof(*c));
        memset(c, 0, sizeof(*c));
        c->w = w;
        c->fd = fd;
        c->keep_alive = 1;
        http_parser_init(&c->parser, HTTP_REQUEST);
        c->parser.data = c;
        event_assign(&c->rev, w->base, fd, EV_READ | EV_PERSIST, on_client_read, c);
        event_assign(&c->wev, w->base, fd, EV_WRITE | EV_PERSIST, on_client_write, c);
        event_add(&c->rev, NULL);
    }
}

/* http://HOST:PORT/PATH with a numeric IPv4 host: a benchmark needs no DNS. */
static int parse_upstream(struct worker *w, const char *url)
{
    struct http_parser_url u;
    size_t hl, pl;
    int sslen = (int)sizeof(w->up_addr);
    char hostport[80];

    http_parser_url_init(&u);
    if (http_parser_parse_url(url, strlen(url), 0, &u) != 0 || !(u.field_set & (1 << UF_HOST)) ||
        !(u.field_set & (1 << UF_PORT)) || strncmp(url, "http://", 7) != 0) {
        return -1;
    }
    hl = u.field_data[UF_HOST].len;
    pl = (u.field_set & (1 << UF_PATH)) ? u.field_data[UF_PATH].len : 0;
    if (hl + 7 > sizeof(w->host) || pl + 1 > sizeof(w->path) || pl == 0) {
        return -1;
    }
    snprintf(w->host, sizeof(w->host), "%.*s:%u", (int)hl, url + u.field_data[UF_HOST].off, u.port);
    snprintf(w->path, sizeof(w->path), "%.*s", (int)pl, url + u.field_data[UF_PATH].off);
    snprintf(hostport, sizeof(hostport), "%s", w->host);
    return evutil_parse_sockaddr_port(hostport, (struct sockaddr *)&w->up_addr, &sslen) == 0 &&
                   w->up_addr.sin_family == AF_INET
               ? 0
               : -1;
}

int main(int argc, char **argv)
{
    static struct worker w;
    struct event_config *cfg;
    struct event *sigint, *sigterm;
    const char *listen_addr = NULL, *upstream = NULL;

    if (floor_args(argc, argv, &listen_addr, &upstream) != 0) {
        fputs("usage: kt-bench-floor2 --listen HOST:PORT --upstream URL\n", stderr);
        return 2;
    }
    if (parse_upstream(&w, upstream) != 0) {
        fprintf(stderr,
                "kt-bench-floor2: invalid --upstream '%s': want "
                "http://IPv4:PORT/PATH\n",
                upstream);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    req_settings.on_message_begin = req_message_begin;
    req_settings.on_url = req_url;
    req_settings.on_header_field = req_header_field;
    req_settings.on_header_value = req_header_value;
    req_settings.on_body = req_body;
    req_settings.on_message_complete = req_complete;
    resp_settings.on_header_field = resp_header_field;
    resp_settings.on_header_value = resp_header_value;
    resp_settings.on_headers_complete = resp_headers_complete;
    resp_settings.on_body = resp_body;
    resp_settings.on_message_complete = resp_complete;

    /* One thread: no locks in the base. */
    cfg = event_config_new();
    if (!cfg) {
        return 1;
    }
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
    w.base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    w.lfd = listen_addr ? floor_listen("kt-bench-floor2", listen_addr) : -1;
    if (!w.base || w.lfd < 0) {
        return 1;
    }
    event_assign(&w.lev, w.base, w.lfd, EV_READ | EV_PERSIST, on_accept, &w);
    evtimer_assign(&w.lpause, w.base, on_listen_resume, &w);
    event_add(&w.lev, NULL);
    sigint = evsignal_new(w.base, SIGINT, floor_on_signal, w.base);
    sigterm = evsignal_new(w.base, SIGTERM, floor_on_signal, w.base);
    if (!sigint || !sigterm) {
        return 1;
    }
    event_add(sigint, NULL);
    event_add(sigterm, NULL);
    fprintf(stderr, "kt-bench-floor2: listening on %s, upstream %s\n", listen_addr, upstream);
    event_base_dispatch(w.base);
    event_free(sigint);
    event_free(sigterm);
    event_del(&w.lev);
    evtimer_del(&w.lpause);
    close(w.lfd);
    while (w.idle) {
        struct upconn *u = w.idle;

        w.idle = u->next;
        up_close(u);
    }
    while (w.free_bufs) {
        struct buf *b = w.free_bufs;

        w.free_bufs = b->next;
        free(b);
    }
    event_base_free(w.base);
    return 0;
}
