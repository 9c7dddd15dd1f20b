/* gateway/gw_upstream.c - non-blocking upstream calls: libcurl multi on a libevent base */
/* SPDX-License-Identifier: Apache-2.0 */
#include "gateway/gw_upstream.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "core/gv_buf.h"
#include "core/gv_mem.h"

#define CONNECT_TIMEOUT_DEFAULT_MS 10000L
#define OPENAI_HDR_MAX 4096u
/* Easy handles kept for reuse; more than this in flight are freed when done. */
#define POOL_MAX 1024u
/* Distinct (Accept, bearer) header sets kept built; a gateway has a few targets and two
 * Accept values, so past this the rare extra set is built per call. */
#define HDR_CACHE_MAX 16u

/* Request headers are the same for every call to one target: built once, not per call. */
struct hdrset {
    char *accept;
    char *auth; /* the secret; wiped before it is freed */
    struct curl_slist *hdrs;
};

struct sockctx {
    struct event ev;
    bool added;
    struct gw_upstream *up;
};

struct gw_upstream {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    struct gw_upstream_call *calls; /* in flight, for destroy */
    CURL **pool;
    size_t npool;
    struct hdrset hdrcache[HDR_CACHE_MAX];
    size_t nhdrcache;
};

struct gw_upstream_call {
    struct gw_upstream *up;
    CURL *easy;
    struct curl_slist *list; /* the headers sent: cached, or hdrs */
    struct curl_slist *hdrs; /* owned only when the header cache was full */
    const struct gw_upstream_ops *ops;
    void *arg;
    struct event *deadline; /* first byte, then idle gap */
    bool armed;
    long armed_ms;
    struct timeval armed_at; /* the loop's cached time when last armed */
    long first_byte_ms;
    long idle_ms;
    bool got_byte;
    bool headers_done;
    bool paused;
    bool aborted_by_cb;
    const char *timeout_what;
    long status;
    char ctype[128];
    char reqid[128];
    char retry_after[64];
    struct gv_buf openai; /* "openai-*: v\r\n" lines */
    struct gw_upstream_call *prev;
    struct gw_upstream_call *next;
};

static void check_done(struct gw_upstream *up);

static void disarm_deadline(struct gw_upstream_call *c)
{
    evtimer_del(c->deadline);
    c->armed = false;
}

/* libevent measures a timer from the loop's cached time, so arming again in the same loop
 * iteration (every header line of one read) gives the same deadline: skip those re-adds. */
static void arm_deadline(struct gw_upstream_call *c, long ms)
{
    struct timeval tv, now = {0, 0};

    if (ms <= 0) {
        disarm_deadline(c);
        return;
    }
    if (event_base_gettimeofday_cached(c->up->base, &now) == 0 && c->armed && c->armed_ms == ms &&
        timercmp(&now, &c->armed_at, ==)) {
        return;
    }
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    evtimer_add(c->deadline, &tv);
    c->armed = true;
    c->armed_ms = ms;
    c->armed_at = now;
}

/* Returns the handle to the pool (or frees it) and the call's memory. Only a handle
 * whose transfer ran to a clean end (`reuse`) is pooled: pooled handles are not
 * reset, so one cut off mid-transfer (maybe paused, holding bytes) is freed. */
static void release_call(struct gw_upstream_call *c, bool reuse)
{
    struct gw_upstream *up = c->up;

    curl_multi_remove_handle(up->multi, c->easy);
    if (reuse && up->npool < POOL_MAX) {
        up->pool[up->npool++] = c->easy;
    }
    else {
        curl_easy_cleanup(c->easy);
    }
    if (c->prev) {
        c->prev->next = c->next;
    }
    else {
        up->calls = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    curl_slist_free_all(c->hdrs);
    event_free(c->deadline);
    gv_buf_free(&c->openai);
    gv_free(c);
}

static void finish_call(struct gw_upstream_call *c, gv_rc rc, const char *what)
{
    const struct gw_upstream_ops *ops = c->ops;
    void *arg = c->arg;

    release_call(c, rc == GV_OK);
    ops->done(arg, rc, what);
}

static void on_deadline(evutil_socket_t fd, short kind, void *arg)
{
    struct gw_upstream_call *c = arg;

    finish_call(c, GV_ETIMEDOUT, c->got_byte ? "idle" : "first_byte");
}

static void on_timer(evutil_socket_t fd, short kind, void *arg)
{
    struct gw_upstream *up = arg;
    int running = 0;

    curl_multi_socket_action(up->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(up);
}

static void on_sock(evutil_socket_t fd, short kind, void *arg)
{
    struct sockctx *sc = arg;
    struct gw_upstream *up = sc->up;
    int action = 0, running = 0;

    if (kind & EV_READ) {
        action |= CURL_CSELECT_IN;
    }
    if (kind & EV_WRITE) {
        action |= CURL_CSELECT_OUT;
    }
    /* sc may be freed inside socket_action (CURL_POLL_REMOVE): do not touch it after. */
    curl_multi_socket_action(up->multi, fd, action, &running);
    check_done(up);
}

static int sock_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct gw_upstream *up = userp;
    struct sockctx *sc = socketp;
    short kind = EV_PERSIST;

    if (what == CURL_POLL_REMOVE) {
        if (sc) {
            if (sc->added) {
                event_del(&sc->ev);
            }
            gv_free(sc);
            curl_multi_assign(up->multi, s, NULL);
        }
        return 0;
    }
    if (!sc) {
        sc = gv_calloc(1, sizeof(*sc));
        sc->up = up;
        curl_multi_assign(up->multi, s, sc);
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
    event_assign(&sc->ev, up->base, s, kind, on_sock, sc);
    event_add(&sc->ev, NULL);
    sc->added = true;
    return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct gw_upstream *up = userp;
    struct timeval tv;

    if (timeout_ms < 0) {
        evtimer_del(up->timer);
        return 0;
    }
    /* Even 0 goes through the loop: libcurl forbids socket_action from here. */
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    evtimer_add(up->timer, &tv);
    return 0;
}

static void check_done(struct gw_upstream *up)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(up->multi, &left)) != NULL) {
        struct gw_upstream_call *c = NULL;
        CURLcode res;

        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        res = msg->data.result;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
        if (!c) {
            continue;
        }
        if (res == CURLE_OK) {
            finish_call(c, GV_OK, "ok");
        }
        else if (c->aborted_by_cb) {
            finish_call(c, GV_EPROTO, "aborted");
        }
        else if (res == CURLE_OPERATION_TIMEDOUT) {
            finish_call(c, GV_ETIMEDOUT, c->got_byte ? "transfer" : "connect");
        }
        else {
            /* curl_easy_strerror is constant text: no URL, no secret. */
            finish_call(c, GV_EUPSTREAM, curl_easy_strerror(res));
        }
    }
}

static void deliver_headers(struct gw_upstream_call *c)
{
    struct gw_up_headers h;

    c->headers_done = true;
    h.status = c->status;
    h.content_type = c->ctype;
    h.request_id = c->reqid;
    h.retry_after = c->retry_after;
    h.openai_lines = c->openai.data ? c->openai.data : "";
    c->ops->headers(c->arg, &h);
}

static void copy_value(char *dst, size_t size, const char *v, size_t n)
{
    if (n >= size) {
        n = size - 1;
    }
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static size_t header_cb(char *buf, size_t size, size_t nitems, void *ud)
{
    struct gw_upstream_call *c = ud;
    size_t len = size * nitems, n = len, nlen;
    const char *colon, *v;

    if (!c->got_byte) {
        c->got_byte = true;
    }
    arm_deadline(c, c->idle_ms);
    if (c->headers_done) {
        return len; /* trailers */
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) {
        n--;
    }
    if (n >= 5 && strncasecmp(buf, "HTTP/", 5) == 0) {
        /* A new response (after a 1xx or a redirect hop): forget the last one. */
        c->ctype[0] = '\0';
        c->reqid[0] = '\0';
        c->retry_after[0] = '\0';
        gv_buf_reset(&c->openai);
        return len;
    }
    if (n == 0) {
        curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &c->status);
        if (c->status >= 200) {
            deliver_headers(c);
        }
        return len;
    }
    colon = memchr(buf, ':', n);
    if (!colon) {
        return len;
    }
    nlen = (size_t)(colon - buf);
    v = colon + 1;
    while (v < buf + n && (*v == ' ' || *v == '\t')) {
        v++;
    }
    if (nlen == 12 && strncasecmp(buf, "content-type", nlen) == 0) {
        copy_value(c->ctype, sizeof(c->ctype), v, (size_t)(buf + n - v));
    }
    else if (nlen == 12 && strncasecmp(buf, "x-request-id", nlen) == 0) {
        copy_value(c->reqid, sizeof(c->reqid), v, (size_t)(buf + n - v));
    }
    else if (nlen == 11 && strncasecmp(buf, "retry-after", nlen) == 0) {
        copy_value(c->retry_after, sizeof(c->retry_after), v, (size_t)(buf + n - v));
    }
    else if (nlen > 7 && strncasecmp(buf, "openai-", 7) == 0) {
        /* Bounded: headers past the cap are dropped, not an error. */
        if (gv_buf_append(&c->openai, buf, n) == GV_OK &&
            gv_buf_append(&c->openai, "\r\n", 2) != GV_OK) {
            gv_buf_reset(&c->openai);
        }
    }
    return len;
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct gw_upstream_call *c = ud;
    size_t n = size * nmemb;
    enum gw_up_flow flow;

    if (!c->headers_done) {
        curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &c->status);
        deliver_headers(c);
    }
    c->got_byte = true;
    flow = c->ops->data(c->arg, ptr, n);
    if (flow == GW_UP_PAUSE) {
        /* A slow client is not the upstream's fault: no idle clock while paused. */
        c->paused = true;
        disarm_deadline(c);
        return CURL_WRITEFUNC_PAUSE;
    }
    if (flow == GW_UP_ABORT) {
        c->aborted_by_cb = true;
        return 0;
    }
    arm_deadline(c, c->idle_ms);
    return n;
}

gv_rc gw_upstream_create(struct event_base *base, struct gw_upstream **out)
{
    struct gw_upstream *up = gv_calloc(1, sizeof(*up));
    gv_rc rc = GV_OK;

    *out = NULL;
    up->base = base;
    up->pool = gv_calloc(POOL_MAX, sizeof(*up->pool));
    up->timer = evtimer_new(base, on_timer, up);
    up->multi = curl_multi_init();
    if (!up->multi || !up->timer) {
        rc = GV_EIO;
        goto out;
    }
    curl_multi_setopt(up->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(up->multi, CURLMOPT_SOCKETDATA, up);
    curl_multi_setopt(up->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(up->multi, CURLMOPT_TIMERDATA, up);
    /* Keep idle keep-alive connections to upstreams for the next requests. */
    curl_multi_setopt(up->multi, CURLMOPT_MAXCONNECTS, 512L);
    *out = up;
    up = NULL;
out:
    gw_upstream_destroy(up);
    return rc;
}

void gw_upstream_destroy(struct gw_upstream *up)
{
    size_t i;

    if (!up) {
        return;
    }
    while (up->calls) {
        release_call(up->calls, false);
    }
    for (i = 0; i < up->npool; i++) {
        curl_easy_cleanup(up->pool[i]);
    }
    for (i = 0; i < up->nhdrcache; i++) {
        struct hdrset *hs = &up->hdrcache[i];
        curl_slist_free_all(hs->hdrs);
        gv_free(hs->accept);
        memset(hs->auth, 0, strlen(hs->auth));
        gv_free(hs->auth);
    }
    if (up->multi) {
        curl_multi_cleanup(up->multi);
    }
    if (up->timer) {
        event_free(up->timer);
    }
    gv_free(up->pool);
    gv_free(up);
}

static gv_rc add_header(struct curl_slist **list, const char *name, const char *value)
{
    struct gv_buf b;
    struct curl_slist *n;
    gv_rc rc;

    gv_buf_init(&b, 0);
    rc = gv_buf_appendf(&b, "%s: %s", name, value);
    if (rc == GV_OK) {
        n = curl_slist_append(*list, b.data);
        if (!n) {
            rc = GV_EIO;
        }
        else {
            *list = n;
        }
    }
    /* The buffer may hold the secret: wipe before freeing. */
    if (b.data) {
        memset(b.data, 0, b.cap);
    }
    gv_buf_free(&b);
    return rc;
}

/* A handle with the options every call shares; NULL when libcurl cannot make one. */
static CURL *new_easy(void)
{
    CURL *e = curl_easy_init();

    if (e) {
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(e, CURLOPT_USERAGENT, "kt/" KT_VERSION);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
        curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
        curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    }
    return e;
}

static gv_rc build_headers(const struct gw_upstream_req *rq, struct curl_slist **list)
{
    gv_rc rc;

    rc = add_header(list, "Content-Type", "application/json");
    if (rc == GV_OK) {
        rc = add_header(list, "Accept", rq->accept ? rq->accept : "application/json");
    }
    if (rc == GV_OK && rq->auth_bearer && rq->auth_bearer[0]) {
        struct gv_buf v;
        gv_buf_init(&v, 0);
        rc = gv_buf_appendf(&v, "Bearer %s", rq->auth_bearer);
        if (rc == GV_OK) {
            rc = add_header(list, "Authorization", v.data);
        }
        if (v.data) {
            memset(v.data, 0, v.cap);
        }
        gv_buf_free(&v);
    }
    if (rc == GV_OK) {
        /* No "Expect: 100-continue" round trip for large bodies. */
        struct curl_slist *n = curl_slist_append(*list, "Expect:");
        if (n) {
            *list = n;
        }
    }
    return rc;
}

/* The header list of a call: the cached one for its (Accept, bearer) pair, built and
 * cached on first use; built for this call alone (c->hdrs) when the cache is full. */
static gv_rc call_headers(struct gw_upstream *up, const struct gw_upstream_req *rq,
                          struct gw_upstream_call *c)
{
    const char *accept = rq->accept ? rq->accept : "application/json";
    const char *auth = rq->auth_bearer ? rq->auth_bearer : "";
    struct curl_slist *list = NULL;
    struct hdrset *hs;
    size_t i;
    gv_rc rc;

    if (rq->traceparent) {
        /* trace: per-call trace headers make the list this call's own, uncached */
        rc = build_headers(rq, &list);
        if (rc == GV_OK) {
            rc = add_header(&list, "traceparent", rq->traceparent);
        }
        if (rc == GV_OK && rq->tracestate) {
            rc = add_header(&list, "tracestate", rq->tracestate);
        }
        if (rc != GV_OK) {
            curl_slist_free_all(list);
            return rc;
        }
        c->hdrs = list;
        c->list = list;
        return GV_OK;
    }
    for (i = 0; i < up->nhdrcache; i++) {
        hs = &up->hdrcache[i];
        if (strcmp(hs->accept, accept) == 0 && strcmp(hs->auth, auth) == 0) {
            c->list = hs->hdrs;
            return GV_OK;
        }
    }
    rc = build_headers(rq, &list);
    if (rc != GV_OK) {
        curl_slist_free_all(list);
        return rc;
    }
    if (up->nhdrcache < HDR_CACHE_MAX) {
        hs = &up->hdrcache[up->nhdrcache++];
        hs->accept = gv_strdup(accept);
        hs->auth = gv_strdup(auth);
        hs->hdrs = list;
    }
    else {
        c->hdrs = list;
    }
    c->list = list;
    return GV_OK;
}

gv_rc gw_upstream_start(struct gw_upstream *up, const struct gw_upstream_req *rq,
                        const struct gw_upstream_ops *ops, void *arg, struct gw_upstream_call **out)
{
    struct gw_upstream_call *c = gv_calloc(1, sizeof(*c));
    CURL *e;
    gv_rc rc = GV_OK;

    if (out) {
        *out = NULL;
    }
    c->up = up;
    c->ops = ops;
    c->arg = arg;
    c->first_byte_ms = rq->first_byte_timeout_ms;
    c->idle_ms = rq->idle_timeout_ms;
    gv_buf_init(&c->openai, OPENAI_HDR_MAX);
    c->deadline = evtimer_new(up->base, on_deadline, c);
    /* A pooled handle keeps the options every call shares (new_easy) and the ones set below
     * are set on every call, so no curl_easy_reset: it freed and re-made all of them. */
    e = up->npool > 0 ? up->pool[--up->npool] : new_easy();
    c->easy = e;
    if (!e || !c->deadline) {
        rc = GV_EIO;
        goto out;
    }
    rc = call_headers(up, rq, c);
    if (rc != GV_OK) {
        goto out;
    }
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)c);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->list);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, rq->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     rq->connect_timeout_ms > 0 ? rq->connect_timeout_ms
                                                : CONNECT_TIMEOUT_DEFAULT_MS);
    if (curl_easy_setopt(e, CURLOPT_URL, rq->url) != CURLE_OK) {
        rc = GV_EUPSTREAM;
        goto out;
    }
    if (curl_multi_add_handle(up->multi, e) != CURLM_OK) {
        rc = GV_EUPSTREAM;
        goto out;
    }
    c->next = up->calls;
    if (up->calls) {
        up->calls->prev = c;
    }
    up->calls = c;
    arm_deadline(c, c->first_byte_ms);
    if (out) {
        *out = c;
    }
    c = NULL;
out:
    if (c) {
        if (c->easy) {
            curl_easy_cleanup(c->easy);
        }
        curl_slist_free_all(c->hdrs);
        if (c->deadline) {
            event_free(c->deadline);
        }
        gv_buf_free(&c->openai);
        gv_free(c);
    }
    return rc;
}

void gw_upstream_resume(struct gw_upstream_call *c)
{
    if (!c || !c->paused) {
        return;
    }
    c->paused = false;
    arm_deadline(c, c->got_byte ? c->idle_ms : c->first_byte_ms);
    /* May deliver the held bytes right away, through write_cb. */
    curl_easy_pause(c->easy, CURLPAUSE_CONT);
}

void gw_upstream_abort(struct gw_upstream_call *c)
{
    if (c) {
        release_call(c, false);
    }
}
