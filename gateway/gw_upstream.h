/* gateway/gw_upstream.h - non-blocking upstream calls: kt's HTTP/1.1 client on a libevent base */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GW_UPSTREAM_H
#define GW_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>

#include "core/gv_rc.h"

struct event_base;
struct gw_upstream;
struct gw_upstream_call;

/* What the data callback wants next. */
enum gw_up_flow {
    GW_UP_CONTINUE = 0,
    GW_UP_PAUSE, /* keep these bytes for later: they are delivered again after resume */
    GW_UP_ABORT  /* stop the transfer; done() follows with GV_EPROTO */
};

/* Response headers worth passing on to the client. */
struct gw_up_headers {
    long status;
    const char *content_type; /* "" when absent */
    const char *request_id;   /* x-request-id, "" when absent */
    const char *retry_after;  /* "" when absent */
    /* "name: value\r\n" lines of openai-*, x-ratelimit-*, retry-after-ms and
     * x-should-retry, as received (at most 4 KiB), "" when none */
    const char *openai_lines;
};

/* Callbacks of one call, all on the worker's thread. Neither headers() nor
 * data() may call gw_upstream_abort/resume on their own call (they run inside
 * the client's read loop); they steer through data()'s return value instead. */
struct gw_upstream_ops {
    /* The final response's status line and headers are in (1xx skipped). */
    void (*headers)(void *arg, const struct gw_up_headers *h);
    /* Body bytes in arrival order. */
    enum gw_up_flow (*data)(void *arg, const char *p, size_t n);
    /* The call is over, successfully (GV_OK: the whole body was delivered) or
     * not: GV_ETIMEDOUT (`what` is "connect", "first_byte" or "idle"),
     * GV_EUPSTREAM (refused, reset, DNS, TLS, malformed HTTP; `what` says why in
     * words, e.g. "TLS certificate verify failed: hostname mismatch", and never
     * holds the URL or a secret), GV_EPROTO (aborted by data()). The call object
     * is gone when done() runs; `what` is valid during the call only. */
    void (*done)(void *arg, gv_rc rc, const char *what);
};

/* One request: POST url with a JSON body. Pointed-to memory must stay valid
 * until done() (or abort). */
struct gw_upstream_req {
    const char *url;         /* http:// or https://; host, optional port, path and query */
    const char *auth_bearer; /* secret for Authorization; never logged */
    const char *accept;      /* Accept header value, NULL for application/json */
    const char *body;
    size_t body_len;
    long connect_timeout_ms;    /* 0: 10 s */
    long first_byte_timeout_ms; /* 0: none */
    long idle_timeout_ms;       /* max gap between body bytes after the first; 0: none */
    /* https only: PEM file of the CAs to trust instead of the system store.
     * NULL: the system store, or SSL_CERT_FILE / SSL_CERT_DIR when set (read by
     * OpenSSL). The peer's certificate must name the URL's host either way. */
    const char *ca_file;
    /* More request headers, "Name: value\r\n" lines sent as given (e.g.
     * traceparent), NULL for none. The caller builds them: no bare CR or LF. */
    const char *extra_headers;
};

/* Counters of one worker's client, for tests and diagnostics. */
struct gw_upstream_stats {
    unsigned long connects; /* TCP connections opened */
    unsigned long reuses;   /* requests sent on a pooled keep-alive connection */
    unsigned long retries;  /* requests moved to a fresh connection after a stale one failed */
    unsigned long idle;     /* keep-alive connections pooled now */
    unsigned long buffers;  /* read buffers held now, by calls and the free list */
};

/* One per worker thread, bound to that worker's event base; not thread-safe.
 * The process must ignore SIGPIPE (kt gateway does): requests go out with
 * writev and OpenSSL's writes, which raise it on a connection the peer reset.
 * Keeps a keep-alive pool per origin (scheme, host, port, CA file), TLS
 * contexts and sessions, a short DNS cache and a few 16 KiB read buffers.
 * GV_EIO when the timer cannot be made. */
gv_rc gw_upstream_create(struct event_base *base, struct gw_upstream **out);
/* Aborts calls still running (without calling their done()). */
void gw_upstream_destroy(struct gw_upstream *up);

/* Loads the trust store for ca_file (NULL: the system store, or SSL_CERT_FILE)
 * now, at start-up, so the first HTTPS request does not read certificate files
 * on the event loop. GV_EUPSTREAM when the store cannot be loaded. */
gv_rc gw_upstream_prepare_tls(struct gw_upstream *up, const char *ca_file);

/* Starts a call; callbacks follow from the event loop, never from inside this
 * function. *out (may be NULL) identifies it for resume/abort until done().
 * GV_EUPSTREAM when the URL is not an http(s) URL with a host. A pooled
 * connection that fails before any byte of the request was written is
 * replaced by a fresh one once; nothing else is retried. */
gv_rc gw_upstream_start(struct gw_upstream *up, const struct gw_upstream_req *rq,
                        const struct gw_upstream_ops *ops, void *arg,
                        struct gw_upstream_call **out);
/* Resume a call whose data() returned GW_UP_PAUSE: the held bytes are
 * delivered again from the event loop, not from inside this function. Not from
 * inside its callbacks. */
void gw_upstream_resume(struct gw_upstream_call *c);
/* Stop a call now; done() is not called. Not from inside its callbacks. */
void gw_upstream_abort(struct gw_upstream_call *c);

/* Copies the client's counters into *out. */
void gw_upstream_stats(const struct gw_upstream *up, struct gw_upstream_stats *out);

#endif
