/* bench/gateway/floor.c - the cost floor of evhttp + libcurl multi: a proxy, nothing else */
/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kt-bench-floor --listen 127.0.0.1:PORT --upstream http://127.0.0.1:PORT2/v1/chat/completions
 *
 * A single-threaded reverse proxy built from exactly the blocks kt's gateway is built from and
 * nothing else: one libevent base set up like a kt worker's (gateway/gw_server.c), an evhttp
 * server, and libcurl multi driven by that base the way gateway/gw_upstream.c drives it
 * (socket and timer callbacks as libevent events, reused easy handles, one header list built
 * once, TCP_NODELAY). Every POST /v1/chat/completions is forwarded as is to the upstream with
 * a fixed Authorization, and the upstream's status and body go back with
 * Content-Type: application/json. No JSON, no policies, no records, no logging, and no heap
 * allocation of its own per request once the first requests have filled the handle pool.
 *
 * What it is for: bench/gateway/run.sh measures it next to kt with one worker. Its req/s are
 * the ceiling for anything built on these libraries on this machine, so kt's gap to nginx
 * splits into what the libraries cost (floor vs nginx) and what kt's own work costs on top
 * (kt vs floor). It links libevent and libcurl, and of kt only core/gv_time.c, for the Date
 * value kt sends, so nothing of kt's request path can leak into it.
 *
 * Upstream failures answer 502 with a short JSON error; other paths 404, other methods 405.
 * SIGINT or SIGTERM stop it; transfers still running are dropped with their clients.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>

#include "bench/gateway/floor_cli.h"
#include "core/gv_list.h"
#include "core/gv_time.h"

/* The values kt uses (gw_server.c, gw_upstream.c), so both pay for the same settings. */
#define HEADERS_MAX (64 * 1024)
#define BODY_MAX (8 * 1024 * 1024 + 64 * 1024)
#define CONN_TIMEOUT_S 300
#define CONNECT_TIMEOUT_MS 10000L
#define MAXCONNECTS 512L
/* Idle transfer objects (each with its easy handle) kept for the next requests. */
#define POOL_MAX 1024u

#define ERR_UPSTREAM                                                                               \
    "{\"error\":{\"message\":\"upstream unreachable or invalid answer\","                          \
    "\"type\":\"upstream_error\",\"code\":\"upstream_error\"}}"
#define ERR_NOT_FOUND                                                                              \
    "{\"error\":{\"message\":\"This server serves POST /v1/chat/completions only.\","              \
    "\"type\":\"invalid_request_error\",\"code\":\"unknown_url\"}}"
#define ERR_METHOD                                                                                 \
    "{\"error\":{\"message\":\"Method not allowed for this URL.\","                                \
    "\"type\":\"invalid_request_error\",\"code\":\"method_not_allowed\"}}"

/* The request headers that matter to the upstream. "Expect:" turns off the 100-continue
 * round trip for large bodies, as in gw_upstream.c. */
static const char *const up_headers[] = {"Content-Type: application/json",
                                         "Authorization: Bearer sk-bench-upstream", "Expect:"};
/* The Accept of each list: a streamed request asks the upstream for an event stream, as kt's
 * upstream calls do. */
static const char *const up_accept[2] = {"Accept: application/json", "Accept: text/event-stream"};
#define NHDRS ((int)(sizeof(up_headers) / sizeof(up_headers[0])))

struct proxy;

/* One upstream transfer. The easy handle stays with it for life, so the options that never
 * change (URL, headers, callbacks) are set once, when the handle is made. */
struct xfer {
    struct proxy *px;
    CURL *easy;
    struct evhttp_request *req; /* the client's request while the transfer runs */
    struct xfer *prev;
    struct xfer *next; /* in flight, or in the idle pool */
};

/* One per curl socket, as in gw_upstream.c. */
struct sockctx {
    struct event ev;
    int added;
    struct proxy *px;
};

struct proxy {
    struct event_base *base;
    struct evhttp *http;
    CURLM *multi;
    struct event *timer;
    struct curl_slist *hdrs[2]; /* the request headers: [1] for streamed requests */
    const char *upstream;
    struct xfer *active; /* in flight, for shutdown */
    struct xfer *pool;
    size_t npool;
};

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);

    if (!p) {
        fputs("kt-bench-floor: out of memory\n", stderr);
        abort();
    }
    return p;
}

/* Sends what the request's output buffer holds; evhttp adds Content-Length. A request whose
 * client already left was detached by evhttp: sending frees it. */
static void reply(struct evhttp_request *req, int status, const char *type)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    /* Formatted once a second, as kt does: evhttp would otherwise format one for every
     * answer, and the floor should not pay for what kt has already saved. */
    const char *date = gv_time_http_date();

    if (date[0]) {
        evhttp_add_header(h, "Date", date);
    }
    evhttp_add_header(h, "Content-Type", type ? type : "application/json");
    evhttp_send_reply(req, status, NULL, NULL);
}

static void reply_error(struct evhttp_request *req, int status, const char *body)
{
    struct evbuffer *out = evhttp_request_get_output_buffer(req);

    /* Part of a failed upstream answer may be there already. */
    evbuffer_drain(out, evbuffer_get_length(out));
    evbuffer_add(out, body, strlen(body));
    reply(req, status, NULL);
}

/* The answer goes straight into the client's output buffer: no copy of our own. */
static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb;

    if (evbuffer_add(evhttp_request_get_output_buffer(x->req), ptr, n) != 0) {
        return 0; /* libcurl ends the transfer with an error: 502 */
    }
    return n;
}

static struct xfer *xfer_new(struct proxy *px)
{
    struct xfer *x = xcalloc(1, sizeof(*x));
    CURL *e = curl_easy_init();

    if (!e) {
        free(x);
        return NULL;
    }
    x->px = px;
    x->easy = e;
    /* gw_upstream.c's new_easy(), less what only kt needs (headers callback, User-Agent). */
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)x);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_URL, px->upstream);
    return x;
}

static void xfer_free(struct xfer *x)
{
    curl_easy_cleanup(x->easy);
    free(x);
}

static void unlink_active(struct xfer *x)
{
    struct proxy *px = x->px;

    GV_DLIST_UNLINK(px->active, x);
}

/* Back to the pool: a handle is reusable once removed from the multi, whatever its result. */
static void xfer_put(struct xfer *x)
{
    struct proxy *px = x->px;

    x->req = NULL;
    if (px->npool >= POOL_MAX) {
        xfer_free(x);
        return;
    }
    x->next = px->pool;
    px->pool = x;
    px->npool++;
}

static void xfer_done(struct xfer *x, CURLcode res)
{
    struct proxy *px = x->px;
    struct evhttp_request *req = x->req;
    long status = 0;
    const char *type = NULL;

    curl_multi_remove_handle(px->multi, x->easy);
    unlink_active(x);
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    if (res != CURLE_OK || status < 100 || status > 599) {
        xfer_put(x);
        reply_error(req, 502, ERR_UPSTREAM);
        return;
    }
    /* The upstream's type (an event stream or JSON), valid until the handle is reused. */
    curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &type);
    reply(req, (int)status, type);
    xfer_put(x);
}

static void check_done(struct proxy *px)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(px->multi, &left)) != NULL) {
        struct xfer *x = NULL;

        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        if (x) {
            xfer_done(x, msg->data.result);
        }
    }
}

static void on_timer(evutil_socket_t fd, short kind, void *arg)
{
    struct proxy *px = arg;
    int running = 0;

    curl_multi_socket_action(px->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(px);
}

static void on_sock(evutil_socket_t fd, short kind, void *arg)
{
    struct sockctx *sc = arg;
    struct proxy *px = sc->px;
    int action = 0, running = 0;

    if (kind & EV_READ) {
        action |= CURL_CSELECT_IN;
    }
    if (kind & EV_WRITE) {
        action |= CURL_CSELECT_OUT;
    }
    /* sc may be freed inside socket_action (CURL_POLL_REMOVE): do not touch it after. */
    curl_multi_socket_action(px->multi, fd, action, &running);
    check_done(px);
}

static int sock_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct proxy *px = userp;
    struct sockctx *sc = socketp;
    short kind = EV_PERSIST;

    if (what == CURL_POLL_REMOVE) {
        if (sc) {
            if (sc->added) {
                event_del(&sc->ev);
            }
            free(sc);
            curl_multi_assign(px->multi, s, NULL);
        }
        return 0;
    }
    if (!sc) {
        sc = xcalloc(1, sizeof(*sc));
        sc->px = px;
        curl_multi_assign(px->multi, s, sc);
    }
    else if (sc->added) {
        event_del(&sc->ev);
    }
    if (what & CURL_POLL_IN) {
        kind |= EV_READ;
    }
    if (what & CURL_POLL_OUT) {
        kind |= EV_WRITE;
    }
    event_assign(&sc->ev, px->base, s, kind, on_sock, sc);
    event_add(&sc->ev, NULL);
    sc->added = 1;
    return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct proxy *px = userp;
    struct timeval tv;

    if (timeout_ms < 0) {
        evtimer_del(px->timer);
        return 0;
    }
    /* Even 0 goes through the loop: libcurl forbids socket_action from here. */
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    evtimer_add(px->timer, &tv);
    return 0;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct proxy *px = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    struct evbuffer *in;
    struct xfer *x;
    const char *body, *accept;
    size_t len;

    if (!path || strcmp(path, "/v1/chat/completions") != 0) {
        reply_error(req, 404, ERR_NOT_FOUND);
        return;
    }
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
        reply_error(req, 405, ERR_METHOD);
        return;
    }
    x = px->pool;
    if (x) {
        px->pool = x->next;
        px->npool--;
        x->next = NULL;
    }
    else {
        x = xfer_new(px);
        if (!x) {
            reply_error(req, 502, ERR_UPSTREAM);
            return;
        }
    }
    /* The body stays in the request's input buffer until the reply frees the request, which
     * is after the transfer: libcurl sends it from there without a copy. A client that leaves
     * meanwhile only detaches the request, so the pointer stays valid. */
    in = evhttp_request_get_input_buffer(req);
    len = evbuffer_get_length(in);
    body = len > 0 ? (const char *)evbuffer_pullup(in, -1) : "";
    x->req = req;
    accept = evhttp_find_header(evhttp_request_get_input_headers(req), "Accept");
    curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER,
                     px->hdrs[accept && strstr(accept, "text/event-stream") != NULL]);
    curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    if (curl_multi_add_handle(px->multi, x->easy) != CURLM_OK) {
        xfer_put(x);
        reply_error(req, 502, ERR_UPSTREAM);
        return;
    }
    GV_DLIST_PUSH(px->active, x);
}

static int valid_url(const char *url)
{
    CURLU *u = curl_url();
    int ok = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK;

    curl_url_cleanup(u);
    return ok;
}

static void usage(void)
{
    fputs("usage: kt-bench-floor --listen HOST:PORT --upstream URL\n", stderr);
}

int main(int argc, char **argv)
{
    struct proxy px;
    struct event_config *ecfg;
    struct event *sigint = NULL, *sigterm = NULL;
    struct curl_slist *n;
    const char *listen_addr = NULL;
    int fd = -1, code = 1, i;

    memset(&px, 0, sizeof(px));
    if (floor_args(argc, argv, &listen_addr, &px.upstream) != 0) {
        usage();
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fputs("kt-bench-floor: cannot set up libcurl\n", stderr);
        return 1;
    }
    if (!valid_url(px.upstream)) {
        fprintf(stderr, "kt-bench-floor: invalid --upstream '%s'\n", px.upstream);
        code = 2;
        goto out;
    }
    ecfg = event_config_new();
    if (ecfg) {
        /* As a kt worker's base: libcurl drops and re-adds a keep-alive socket around every
         * transfer, which the changelist folds into one epoll_ctl or none; one thread only. */
        event_config_set_flag(ecfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
        event_config_set_flag(ecfg, EVENT_BASE_FLAG_NOLOCK);
        px.base = event_base_new_with_config(ecfg);
        event_config_free(ecfg);
    }
    if (!px.base) {
        fputs("kt-bench-floor: cannot create the event base\n", stderr);
        goto out;
    }
    /* Built once, shared by every transfer, as gw_upstream.c caches its lists. */
    for (i = 0; i < NHDRS + 1; i++) {
        int k;

        for (k = 0; k < 2; k++) {
            n = curl_slist_append(px.hdrs[k], i < NHDRS ? up_headers[i] : up_accept[k]);
            if (!n) {
                break;
            }
            px.hdrs[k] = n;
        }
        if (k < 2) {
            break;
        }
    }
    px.multi = curl_multi_init();
    px.timer = evtimer_new(px.base, on_timer, &px);
    px.http = evhttp_new(px.base);
    sigint = evsignal_new(px.base, SIGINT, floor_on_signal, px.base);
    sigterm = evsignal_new(px.base, SIGTERM, floor_on_signal, px.base);
    if (i < NHDRS + 1 || !px.multi || !px.timer || !px.http || !sigint || !sigterm ||
        event_add(sigint, NULL) != 0 || event_add(sigterm, NULL) != 0) {
        fputs("kt-bench-floor: cannot set up the event loop or libcurl\n", stderr);
        goto out;
    }
    curl_multi_setopt(px.multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(px.multi, CURLMOPT_SOCKETDATA, &px);
    curl_multi_setopt(px.multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(px.multi, CURLMOPT_TIMERDATA, &px);
    curl_multi_setopt(px.multi, CURLMOPT_MAXCONNECTS, MAXCONNECTS);
    evhttp_set_max_body_size(px.http, BODY_MAX);
    evhttp_set_max_headers_size(px.http, HEADERS_MAX);
    evhttp_set_timeout(px.http, CONN_TIMEOUT_S);
    evhttp_set_gencb(px.http, on_request, &px);
    /* A listening socket with kt's backlog, handed to evhttp as kt does. */
    fd = floor_listen("kt-bench-floor", listen_addr);
    if (fd < 0) {
        goto out;
    }
    if (!evhttp_accept_socket_with_handle(px.http, fd)) {
        fprintf(stderr, "kt-bench-floor: cannot serve on %s\n", listen_addr);
        close(fd);
        goto out;
    }
    event_base_dispatch(px.base);
    code = 0;

out:
    /* Transfers still running: a request whose client left was detached and is ours to
     * free; the others go with their connections in evhttp_free. */
    while (px.active) {
        struct xfer *x = px.active;
        unlink_active(x);
        curl_multi_remove_handle(px.multi, x->easy);
        if (!evhttp_request_get_connection(x->req)) {
            evhttp_request_free(x->req);
        }
        xfer_free(x);
    }
    if (px.http) {
        evhttp_free(px.http);
    }
    /* Before the base goes: closing cached connections calls sock_cb with CURL_POLL_REMOVE. */
    if (px.multi) {
        curl_multi_cleanup(px.multi);
    }
    while (px.pool) {
        struct xfer *x = px.pool;
        px.pool = x->next;
        xfer_free(x);
    }
    curl_slist_free_all(px.hdrs[0]);
    curl_slist_free_all(px.hdrs[1]);
    if (sigint) {
        event_free(sigint);
    }
    if (sigterm) {
        event_free(sigterm);
    }
    if (px.timer) {
        event_free(px.timer);
    }
    if (px.base) {
        event_base_free(px.base);
    }
    curl_global_cleanup();
    return code;
}
