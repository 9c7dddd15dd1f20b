/* gateway/gw_upstream.h - non-blocking upstream calls: libcurl multi on a libevent base */
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
    const char *openai_lines; /* "openai-x: v\r\n" lines, "" when none */
};

/* Callbacks of one call, all on the worker's thread. Neither headers() nor
 * data() may call gw_upstream_abort/resume on their own call (they run inside
 * libcurl); they steer through data()'s return value instead. */
struct gw_upstream_ops {
    /* The final response's status line and headers are in (1xx skipped). */
    void (*headers)(void *arg, const struct gw_up_headers *h);
    /* Body bytes in arrival order. */
    enum gw_up_flow (*data)(void *arg, const char *p, size_t n);
    /* The call is over, successfully (GV_OK: the whole body was delivered) or
     * not: GV_ETIMEDOUT (connect, first byte or idle timeout; `what` says which),
     * GV_EUPSTREAM (refused, reset, DNS, TLS, malformed HTTP), GV_EPROTO
     * (aborted by data()). The call object is gone when done() runs. */
    void (*done)(void *arg, gv_rc rc, const char *what);
};

/* One request. Pointed-to memory must stay valid until done() (or abort). */
struct gw_upstream_req {
    const char *url;
    const char *auth_bearer; /* secret for Authorization; never logged */
    const char *accept;      /* Accept header value, NULL for application/json */
    const char *body;
    size_t body_len;
    long connect_timeout_ms;    /* 0: 10 s */
    long first_byte_timeout_ms; /* 0: none */
    long idle_timeout_ms;       /* max gap between body bytes after the first; 0: none */
    /* trace: W3C headers for this call alone (NULL: none); copied at start */
    const char *traceparent;
    const char *tracestate;
};

/* One per worker thread, bound to that worker's event base. Keeps libcurl's
 * connection cache (keep-alive to upstreams) and a pool of easy handles.
 * GV_EIO when libcurl cannot be set up. */
gv_rc gw_upstream_create(struct event_base *base, struct gw_upstream **out);
/* Aborts calls still running (without calling their done()). */
void gw_upstream_destroy(struct gw_upstream *up);

/* Starts a call; callbacks follow from the event loop, never from inside this
 * function. *out (may be NULL) identifies it for resume/abort until done().
 * GV_EUPSTREAM when libcurl refuses the request (bad URL). */
gv_rc gw_upstream_start(struct gw_upstream *up, const struct gw_upstream_req *rq,
                        const struct gw_upstream_ops *ops, void *arg,
                        struct gw_upstream_call **out);
/* Resume a call whose data() returned GW_UP_PAUSE. Not from inside its callbacks. */
void gw_upstream_resume(struct gw_upstream_call *c);
/* Stop a call now; done() is not called. Not from inside its callbacks. */
void gw_upstream_abort(struct gw_upstream_call *c);

#endif
