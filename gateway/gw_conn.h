/* gateway/gw_conn.h - client connections: accept, read, frame, answer, keep-alive, timeouts */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GW_CONN_H
#define GW_CONN_H

/* One worker's client side, on raw libevent events (no evhttp, no bufferevent):
 * - reads go into the worker's one read buffer and straight into the request
 *   parser (gateway/gw_h1req.h), which copies what it keeps; a connection holds
 *   its own input bytes only while a pipelined request waits for its turn;
 * - answers go out with writev at once; EV_WRITE is armed only after EAGAIN, so
 *   a relayed SSE event costs no epoll_ctl; what the client has not taken yet
 *   waits in 16 KiB chunks from a per-worker free list, returned when drained;
 * - deadlines: the whole request head (slowloris), the body, an idle keep-alive
 *   connection, and an answer the client stops reading;
 * - a cap on connections, so descriptors stay in reserve for upstreams and the
 *   audit log; past it a new connection gets a 503 and is closed.
 * Everything here runs on the worker's thread. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/gv_rc.h"
#include "gateway/gw_h1req.h"

struct event_base;
struct gw_conn;
struct gw_conns;

/* What the owner of an answer in progress hears from its connection. Called
 * from the event loop, never from inside a gw_conn_* call. */
struct gw_conn_owner_ops {
    /* The unsent bytes fell to half the high-water mark after an answer write
     * reported GW_CONN_FULL: produce more. */
    void (*drained)(void *arg);
    /* The client is gone (reset, write error, send timeout) before the answer
     * ended. The connection is already detached: do not touch it again. */
    void (*closed)(void *arg);
};

/* A parsed request, handed to the router. head and body are the parser's:
 * valid until the answer is complete. */
struct gw_conn_req {
    const struct gw_h1_head *head;
    const char *body;
    size_t body_len;
    uint64_t t_start; /* monotonic us: when the request head began to arrive */
};

/* Called for every complete request. It answers at once (gw_conn_reply) or
 * later: then it must gw_conn_attach before returning. */
typedef void (*gw_conn_dispatch_fn)(void *arg, struct gw_conn *c, const struct gw_conn_req *rq);

/* Called for a request the parser refused (status 400..505): the router
 * writes the JSON error. The connection closes after it. */
typedef void (*gw_conn_refuse_fn)(void *arg, struct gw_conn *c, int status, const char *code,
                                  const char *message);

struct gw_conn_limits {
    struct gw_h1_limits h1;
    long header_timeout_ms;    /* whole head from its first byte; 0: 10 s */
    long body_timeout_ms;      /* whole body from the end of the head; 0: 60 s */
    long keepalive_timeout_ms; /* idle between requests; 0: 20 s */
    long send_timeout_ms;      /* an answer the client does not read; 0: 60 s */
    size_t max_conns;          /* open client connections on this worker; 0: no cap */
    size_t high_water;         /* unsent answer bytes before GW_CONN_FULL; 0: 32 KiB */
};

struct gw_conns_opts {
    struct event_base *base;
    int listen_fd; /* non-blocking listening socket; the conns own it from now on */
    struct gw_conn_limits lim;
    gw_conn_dispatch_fn dispatch;
    gw_conn_refuse_fn refuse;
    void *arg;
    /* While draining: the last connection closed. May be NULL. */
    void (*on_empty)(void *arg);
    int worker; /* index, for log lines */
};

/* Starts accepting on opts->listen_fd. GV_EIO when the events cannot be made
 * (the fd is closed then too). */
gv_rc gw_conns_create(const struct gw_conns_opts *opts, struct gw_conns **out);
/* Closes the listener and every connection (owners hear closed()). Accepts NULL. */
void gw_conns_destroy(struct gw_conns *cs);
/* Stop accepting (close the listener) and close idle keep-alive connections;
 * connections with a request in progress close once it is answered. */
void gw_conns_drain(struct gw_conns *cs);
/* Open connections, and those with a request in progress. */
size_t gw_conns_count(const struct gw_conns *cs);
size_t gw_conns_busy(const struct gw_conns *cs);
/* errno of the last accept() that failed (EMFILE, ENFILE, ENOMEM...) while it
 * is recent (within ten listener pauses, 1 s); 0 once a connection was accepted
 * again or nothing failed since. The count and this may be read from any
 * thread (for /health). */
int gw_conns_accept_errno(const struct gw_conns *cs);

/* The request's owner takes the connection until its answer ends. */
void gw_conn_attach(struct gw_conn *c, const struct gw_conn_owner_ops *ops, void *arg);
/* The owner lets go. If the answer did not end, the connection is closed (it
 * cannot carry another request). The owner hears nothing more. */
void gw_conn_detach(struct gw_conn *c);

enum gw_conn_wr {
    GW_CONN_OK = 0, /* written or queued; go on */
    GW_CONN_FULL,   /* queued, but the client is behind: wait for drained() */
    GW_CONN_GONE    /* the client is gone; closed() follows unless detached first */
};

/* A whole answer with Content-Length. `hdrs` are complete header lines
 * ("Name: value\r\n"...) or NULL; Date, Content-Length and Connection are
 * added here. HEAD requests get the head only. Ends the answer and releases
 * the owner: c may be freed before this returns, so never touch it again
 * (gw_conn_stream_end likewise). */
enum gw_conn_wr gw_conn_reply(struct gw_conn *c, int status, const char *ctype, const char *hdrs,
                              size_t hdrs_len, const char *body, size_t len);
/* The head of a streamed answer: chunked on HTTP/1.1, close-delimited on 1.0. */
enum gw_conn_wr gw_conn_stream_start(struct gw_conn *c, int status, const char *ctype,
                                     const char *hdrs, size_t hdrs_len);
/* One piece of a streamed answer, sent at once (one chunk). len 0 is a no-op. */
enum gw_conn_wr gw_conn_stream_write(struct gw_conn *c, const char *p, size_t len);
/* Ends a streamed answer. */
enum gw_conn_wr gw_conn_stream_end(struct gw_conn *c);
/* Ask the connection to close after this answer (Connection: close). Before
 * the head is written. */
void gw_conn_set_close(struct gw_conn *c);

#endif
