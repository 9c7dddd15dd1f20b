/* tests/unit/gateway/upstream/test_gw_upstream.c - the client against a loopback upstream */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <signal.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <http_parser.h>

#include "core/gv_buf.h"
#include "gateway/gw_upstream.h"
#include "tests/unit/unit_net.h"

/* The stand-in upstream runs on the same event base as the client. Each
 * complete request gets the next scripted answer: bytes to write, then close,
 * stay silent, or keep the connection for the next request. */
enum after { KEEP = 0, CLOSE, SILENT };

struct script {
    const char *bytes; /* NULL: answer nothing */
    size_t len;        /* 0: strlen(bytes) */
    enum after after;
};

struct srv;

struct sconn {
    struct srv *s;
    int fd;
    struct event *ev;
    http_parser p;
    struct gv_buf req; /* raw bytes of the requests so far */
};

struct srv {
    struct event_base *base;
    int lfd;
    unsigned port;
    struct event *lev;
    struct script script[16];
    size_t nscript;
    size_t next;
    unsigned accepted;
    unsigned requests;
    struct gv_buf last_req; /* raw bytes of the last complete request */
    struct sconn *conns[16];
    size_t nconns;
};

struct fx {
    struct event_base *base;
    struct gw_upstream *up;
    struct srv srv;
    char url[128];
};

static struct fx *F;

static void sconn_close(struct sconn *c)
{
    struct srv *s = c->s;
    size_t i;

    for (i = 0; i < s->nconns; i++) {
        if (s->conns[i] == c) {
            s->conns[i] = s->conns[--s->nconns];
            break;
        }
    }
    event_free(c->ev);
    close(c->fd);
    gv_buf_free(&c->req);
    free(c);
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        assert_true(w > 0);
        p += w;
        n -= (size_t)w;
    }
}

static int on_req_done(http_parser *p)
{
    struct sconn *c = p->data;
    struct srv *s = c->s;

    s->requests++;
    gv_buf_reset(&s->last_req);
    gv_buf_append(&s->last_req, c->req.data, c->req.len);
    gv_buf_reset(&c->req);
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings req_settings = {.on_message_complete = on_req_done};

static void on_sconn(evutil_socket_t fd, short what, void *arg)
{
    struct sconn *c = arg;
    struct srv *s = c->s;
    char buf[65536];
    ssize_t n = read(fd, buf, sizeof(buf));
    size_t off = 0;

    (void)what;
    if (n <= 0) {
        sconn_close(c);
        return;
    }
    gv_buf_append(&c->req, buf, (size_t)n);
    while (off < (size_t)n) {
        size_t used = http_parser_execute(&c->p, &req_settings, buf + off, (size_t)n - off);
        off += used;
        if (HTTP_PARSER_ERRNO(&c->p) == HPE_PAUSED) {
            struct script *sc;
            http_parser_pause(&c->p, 0);
            assert_true(s->next < s->nscript);
            sc = &s->script[s->next++];
            if (sc->bytes) {
                write_all(fd, sc->bytes, sc->len ? sc->len : strlen(sc->bytes));
            }
            if (sc->after == CLOSE) {
                sconn_close(c);
                return;
            }
            continue;
        }
        assert_int_equal(HTTP_PARSER_ERRNO(&c->p), HPE_OK);
    }
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    struct srv *s = arg;
    struct sconn *c;
    int cfd = accept(fd, NULL, NULL);

    (void)what;
    if (cfd < 0) {
        return;
    }
    evutil_make_socket_nonblocking(cfd);
    c = calloc(1, sizeof(*c));
    c->s = s;
    c->fd = cfd;
    gv_buf_init(&c->req, 0);
    http_parser_init(&c->p, HTTP_REQUEST);
    c->p.data = c;
    c->ev = event_new(s->base, cfd, EV_READ | EV_PERSIST, on_sconn, c);
    event_add(c->ev, NULL);
    assert_true(s->nconns < 16);
    s->conns[s->nconns++] = c;
    s->accepted++;
}

static void srv_start(struct srv *s, struct event_base *base)
{
    memset(s, 0, sizeof(*s));
    s->base = base;
    gv_buf_init(&s->last_req, 0);
    s->lfd = unit_listen_loopback(0, &s->port);
    evutil_make_socket_nonblocking(s->lfd);
    s->lev = event_new(base, s->lfd, EV_READ | EV_PERSIST, on_accept, s);
    event_add(s->lev, NULL);
}

static void srv_stop(struct srv *s)
{
    while (s->nconns > 0) {
        sconn_close(s->conns[0]);
    }
    event_free(s->lev);
    close(s->lfd);
    gv_buf_free(&s->last_req);
}

static void srv_answer(struct srv *s, const char *bytes, enum after after)
{
    assert_true(s->nscript < 16);
    s->script[s->nscript].bytes = bytes;
    s->script[s->nscript].len = 0;
    s->script[s->nscript].after = after;
    s->nscript++;
}

/* ------------------------------------------------------------ one call */

struct call {
    struct gw_upstream_call *h;
    bool in_start;
    bool done;
    gv_rc rc;
    char what[200];
    long status;
    char ctype[128];
    char lines[512];
    int headers;
    struct gv_buf body;
    /* Backpressure: pause on every `pause_every`-th new delivery. */
    unsigned pause_every;
    unsigned deliveries;
    unsigned pauses;
    bool paused;
    struct gv_buf held; /* the bytes refused with PAUSE, to compare on redelivery */
    struct event *resumer;
};

static void cb_headers(void *arg, const struct gw_up_headers *h)
{
    struct call *c = arg;

    assert_false(c->in_start);
    c->headers++;
    c->status = h->status;
    snprintf(c->ctype, sizeof(c->ctype), "%s", h->content_type);
    snprintf(c->lines, sizeof(c->lines), "%s", h->openai_lines);
}

static enum gw_up_flow cb_data(void *arg, const char *p, size_t n)
{
    struct call *c = arg;
    struct timeval soon = {0, 1000};

    assert_false(c->in_start);
    assert_int_equal(c->headers, 1);
    if (c->paused) {
        /* Redelivered after resume: exactly the bytes refused. */
        assert_int_equal(n, c->held.len);
        assert_memory_equal(p, c->held.data, n);
        c->paused = false;
    }
    else if (c->pause_every && ++c->deliveries % c->pause_every == 0) {
        c->pauses++;
        c->paused = true;
        gv_buf_reset(&c->held);
        gv_buf_append(&c->held, p, n);
        evtimer_add(c->resumer, &soon);
        return GW_UP_PAUSE;
    }
    gv_buf_append(&c->body, p, n);
    return GW_UP_CONTINUE;
}

static void cb_done(void *arg, gv_rc rc, const char *what)
{
    struct call *c = arg;

    assert_false(c->in_start);
    assert_false(c->done);
    c->done = true;
    c->h = NULL;
    c->rc = rc;
    snprintf(c->what, sizeof(c->what), "%s", what);
}

static const struct gw_upstream_ops ops = {cb_headers, cb_data, cb_done};

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    struct call *c = arg;

    (void)fd;
    (void)what;
    if (c->h) {
        gw_upstream_resume(c->h);
    }
}

static void call_init(struct call *c)
{
    memset(c, 0, sizeof(*c));
    gv_buf_init(&c->body, 0);
    gv_buf_init(&c->held, 0);
    c->resumer = evtimer_new(F->base, on_resume, c);
}

static void call_free(struct call *c)
{
    event_free(c->resumer);
    gv_buf_free(&c->body);
    gv_buf_free(&c->held);
}

static void start(struct call *c, const char *url, long first_byte_ms, long idle_ms)
{
    struct gw_upstream_req rq;

    memset(&rq, 0, sizeof(rq));
    rq.url = url ? url : F->url;
    rq.auth_bearer = "sk-test-secret";
    rq.accept = "text/event-stream";
    rq.body = "{\"model\":\"m\"}";
    rq.body_len = strlen(rq.body);
    rq.first_byte_timeout_ms = first_byte_ms;
    rq.idle_timeout_ms = idle_ms;
    rq.extra_headers = "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n";
    c->in_start = true;
    assert_int_equal(gw_upstream_start(F->up, &rq, &ops, c, &c->h), GV_OK);
    c->in_start = false;
    assert_false(c->done);
}

/* Runs the loop until the call is done; bounded, so a hang fails instead of blocking. */
static void wait_done(struct call *c)
{
    int i;

    for (i = 0; i < 100000 && !c->done; i++) {
        event_base_loop(F->base, EVLOOP_ONCE);
    }
    assert_true(c->done);
}

static void run_call(struct call *c, long first_byte_ms, long idle_ms)
{
    start(c, NULL, first_byte_ms, idle_ms);
    wait_done(c);
}

/* The server will send `answer` and then do `after`; one call runs to its end against it. */
static void answered(struct call *c, const char *answer, enum after after, long first_byte_ms,
                     long idle_ms)
{
    srv_answer(&F->srv, answer, after);
    call_init(c);
    run_call(c, first_byte_ms, idle_ms);
}

/* *state is left as it came: a row of ANSWERS comes in through it. */
static int setup(void **state)
{
    (void)state;
    F = calloc(1, sizeof(*F));
    F->base = event_base_new();
    assert_non_null(F->base);
    assert_int_equal(gw_upstream_create(F->base, &F->up), GV_OK);
    srv_start(&F->srv, F->base);
    snprintf(F->url, sizeof(F->url), "http://127.0.0.1:%u/v1/chat/completions", F->srv.port);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    gw_upstream_destroy(F->up);
    srv_stop(&F->srv);
    event_base_free(F->base);
    free(F);
    F = NULL;
    return 0;
}

static const char OK_JSON[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                              "openai-version: 2020-10-01\r\nx-ratelimit-limit-requests: 5\r\n"
                              "Content-Length: 11\r\n\r\n{\"id\":\"c\"}\n";

/* One call that must come back 200 with OK_JSON's body. */
static void expect_ok_json(void)
{
    struct call c;

    call_init(&c);
    run_call(&c, 0, 0);
    assert_int_equal(c.rc, GV_OK);
    assert_int_equal(c.status, 200);
    assert_int_equal(c.body.len, 11);
    call_free(&c);
}

/* --------------------------------------------------------------- tests */

static void test_request_goes_out_whole_and_answer_comes_back(void **state)
{
    struct call c;
    const char *r;

    (void)state;
    answered(&c, OK_JSON, KEEP, 0, 0);
    assert_int_equal(c.rc, GV_OK);
    assert_int_equal(c.status, 200);
    assert_string_equal(c.ctype, "application/json");
    assert_string_equal(c.lines, "openai-version: 2020-10-01\r\nx-ratelimit-limit-requests: 5\r\n");
    assert_int_equal(c.body.len, 11);
    assert_memory_equal(c.body.data, "{\"id\":\"c\"}\n", 11);
    r = F->srv.last_req.data;
    assert_non_null(strstr(r, "POST /v1/chat/completions HTTP/1.1\r\n"));
    assert_non_null(strstr(r, "\r\nHost: 127.0.0.1:"));
    assert_non_null(strstr(r, "\r\nAuthorization: Bearer sk-test-secret\r\n"));
    assert_non_null(strstr(r, "\r\nAccept: text/event-stream\r\n"));
    assert_non_null(strstr(r, "\r\nContent-Length: 13\r\n"));
    assert_non_null(strstr(r, "\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-"));
    assert_non_null(strstr(r, "\r\n\r\n{\"model\":\"m\"}"));
    call_free(&c);
}

static void test_keep_alive_one_connection_for_many_requests(void **state)
{
    struct gw_upstream_stats st;
    int i;

    (void)state;
    for (i = 0; i < 8; i++) {
        srv_answer(&F->srv, OK_JSON, KEEP);
    }
    for (i = 0; i < 8; i++) {
        expect_ok_json();
    }
    gw_upstream_stats(F->up, &st);
    assert_int_equal(F->srv.accepted, 1);
    assert_int_equal(F->srv.requests, 8);
    assert_int_equal(st.connects, 1);
    assert_int_equal(st.reuses, 7);
    assert_int_equal(st.idle, 1);
}

static void test_connection_close_answer_is_not_pooled(void **state)
{
    struct gw_upstream_stats st;
    struct call c;

    (void)state;
    srv_answer(&F->srv, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi",
               KEEP);
    answered(&c, OK_JSON, KEEP, 0, 0);
    assert_int_equal(c.rc, GV_OK);
    call_free(&c);
    gw_upstream_stats(F->up, &st);
    assert_int_equal(st.idle, 0);
    call_init(&c);
    run_call(&c, 0, 0);
    assert_int_equal(c.rc, GV_OK);
    call_free(&c);
    assert_int_equal(F->srv.accepted, 2);
}

/* A big chunked answer to a consumer that refuses every third delivery: every
 * byte arrives once, in order, and the refused bytes come again after resume. */
static void test_slow_consumer_pause_and_resume(void **state)
{
    struct gv_buf wire, want;
    struct gw_upstream_stats st;
    struct call c;
    size_t i;

    (void)state;
    gv_buf_init(&wire, 0);
    gv_buf_init(&want, 0);
    gv_buf_append_str(&wire, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n");
    for (i = 0; i < 3000; i++) {
        char ev[96];
        int n =
            snprintf(ev, sizeof(ev), "data: {\"i\":%zu,\"pad\":\"xxxxxxxxxxxxxxxxxxxx\"}\n\n", i);
        gv_buf_appendf(&wire, "%x\r\n", n);
        gv_buf_append(&wire, ev, (size_t)n);
        gv_buf_append_str(&wire, "\r\n");
        gv_buf_append(&want, ev, (size_t)n);
    }
    gv_buf_append_str(&wire, "0\r\n\r\n");
    F->srv.script[0].bytes = wire.data;
    F->srv.script[0].len = wire.len;
    F->srv.script[0].after = KEEP;
    F->srv.nscript = 1;
    call_init(&c);
    c.pause_every = 3;
    run_call(&c, 0, 5000);
    assert_int_equal(c.rc, GV_OK);
    assert_true(c.pauses > 10);
    assert_int_equal(c.body.len, want.len);
    assert_memory_equal(c.body.data, want.data, want.len);
    gw_upstream_stats(F->up, &st);
    /* One connection, and buffers back on the free list: a couple at most. */
    assert_int_equal(st.connects, 1);
    assert_true(st.buffers <= 2);
    assert_int_equal(st.idle, 1);
    call_free(&c);
    gv_buf_free(&wire);
    gv_buf_free(&want);
}

/* One call against one scripted answer, and how it must end. None of these
 * leaves a connection in the pool. */
struct answer_case {
    const char *name;
    const char *answer; /* what the server sends; NULL: nothing */
    enum after after;   /* and then */
    long first_byte_ms;
    long idle_ms;
    gv_rc rc;
    const char *what; /* what done() says */
    int headers;      /* times headers() ran */
    const char *body; /* the body bytes delivered */
};

static const struct answer_case ANSWERS[] = {
    {"upstream close mid-chunk is an error",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n9\r\nhal", CLOSE, 0, 0,
     GV_EUPSTREAM, "upstream closed the connection mid-answer", 1, "hellohal"},
    {"close-delimited answer ends at close",
     "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: a\n\ndata: [DONE]\n\n", CLOSE,
     0, 0, GV_OK, "ok", 1, "data: a\n\ndata: [DONE]\n\n"},
    {"malformed answer is an upstream error",
     "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
     "2\r\nhi\r\n0\r\n\r\n",
     KEEP, 0, 0, GV_EUPSTREAM, "bad Content-Length in the upstream answer", 0, ""},
    {"first byte timeout", NULL, SILENT, 30, 0, GV_ETIMEDOUT, "first_byte", 0, ""},
    {"idle timeout after some bytes",
     "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
     "Transfer-Encoding: chunked\r\n\r\n8\r\ndata: a\n\r\n",
     SILENT, 5000, 30, GV_ETIMEDOUT, "idle", 1, "data: a\n"},
};

/* One row of ANSWERS; the row comes in as the initial state. */
static void test_answer(void **state)
{
    const struct answer_case *a = *state;
    struct gw_upstream_stats st;
    struct call c;

    answered(&c, a->answer, a->after, a->first_byte_ms, a->idle_ms);
    gw_upstream_stats(F->up, &st);
    assert_int_equal(c.rc, a->rc);
    assert_string_equal(c.what, a->what);
    assert_int_equal(c.headers, a->headers);
    assert_int_equal(c.body.len, strlen(a->body));
    if (c.body.len > 0) {
        assert_memory_equal(c.body.data, a->body, c.body.len);
    }
    assert_int_equal(st.idle, 0);
    call_free(&c);
}

/* Two calls with the pooled connection lost between them, by lose(): the
 * second call still comes back whole, on a second connection, after `retries`
 * retries. The first answer is followed by first_after. */
static void second_call_after(enum after first_after, void (*lose)(void), int retries)
{
    struct gw_upstream_stats st;

    srv_answer(&F->srv, OK_JSON, first_after);
    srv_answer(&F->srv, OK_JSON, KEEP);
    expect_ok_json();
    lose();
    expect_ok_json();
    gw_upstream_stats(F->up, &st);
    assert_int_equal(st.connects, 2);
    assert_int_equal(st.retries, retries);
}

/* Runs the loop until the client has seen the server close its idle connection. */
static void wait_idle_dropped(void)
{
    struct gw_upstream_stats st;
    int i;

    for (i = 0; i < 1000; i++) {
        gw_upstream_stats(F->up, &st);
        if (st.idle == 0) {
            break;
        }
        event_base_loop(F->base, EVLOOP_ONCE);
    }
    assert_int_equal(st.idle, 0);
}

/* Resets the server's one connection while it sits in the client's pool. */
static void reset_the_connection(void)
{
    struct linger lg = {1, 0};

    assert_int_equal(F->srv.nconns, 1);
    /* SO_LINGER 0: close sends RST, which loopback delivers before close returns. */
    setsockopt(F->srv.conns[0]->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    sconn_close(F->srv.conns[0]);
}

/* The upstream closes a pooled connection while it is idle: the client sees it
 * (the socket stays registered for read), drops it, and the next request gets
 * a fresh connection. */
static void test_pooled_connection_closed_while_idle(void **state)
{
    (void)state;
    second_call_after(CLOSE, wait_idle_dropped, 0);
    assert_int_equal(F->srv.accepted, 2);
}

/* The upstream resets a pooled connection and the request is started before
 * the loop noticed: the write fails before any byte went out, so the request
 * goes once more on a fresh connection. */
static void test_stale_pooled_connection_is_retried_once(void **state)
{
    (void)state;
    second_call_after(KEEP, reset_the_connection, 1);
    assert_int_equal(F->srv.requests, 2);
}

static void test_refused_connection_reports_from_the_loop(void **state)
{
    struct call c;
    char url[128];

    (void)state;
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/v1/chat/completions", unit_closed_port());
    call_init(&c);
    start(&c, url, 0, 0); /* asserts done() did not run inside start */
    wait_done(&c);
    assert_int_equal(c.rc, GV_EUPSTREAM);
    assert_non_null(strstr(c.what, "connection refused"));
    call_free(&c);
}

static void test_abort_calls_no_done(void **state)
{
    struct gw_upstream_stats st;
    struct call c;
    int i;

    (void)state;
    srv_answer(&F->srv, NULL, SILENT);
    call_init(&c);
    start(&c, NULL, 0, 0);
    for (i = 0; i < 1000 && F->srv.requests == 0; i++) {
        event_base_loop(F->base, EVLOOP_ONCE);
    }
    assert_int_equal(F->srv.requests, 1);
    gw_upstream_abort(c.h);
    c.h = NULL;
    event_base_loop(F->base, EVLOOP_NONBLOCK);
    assert_false(c.done);
    gw_upstream_stats(F->up, &st);
    assert_int_equal(st.idle, 0);
    call_free(&c);
}

static void test_bad_urls_are_refused_at_start(void **state)
{
    static const char *bad[] = {"ftp://127.0.0.1/x", "127.0.0.1:80/x", "http:///x",
                                "http://user:pw@127.0.0.1/x", ""};
    struct gw_upstream_req rq;
    struct gw_upstream_call *h;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&rq, 0, sizeof(rq));
        rq.url = bad[i];
        assert_int_equal(gw_upstream_start(F->up, &rq, &ops, NULL, &h), GV_EUPSTREAM);
        assert_null(h);
    }
}

/* Every test gets its own loop, client and server. */
#define UP_TEST(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        UP_TEST(test_request_goes_out_whole_and_answer_comes_back),
        UP_TEST(test_keep_alive_one_connection_for_many_requests),
        UP_TEST(test_connection_close_answer_is_not_pooled),
        UP_TEST(test_slow_consumer_pause_and_resume),
        UP_TEST(test_pooled_connection_closed_while_idle),
        UP_TEST(test_stale_pooled_connection_is_retried_once),
        UP_TEST(test_refused_connection_reports_from_the_loop),
        UP_TEST(test_abort_calls_no_done),
        UP_TEST(test_bad_urls_are_refused_at_start),
    };
    struct CMUnitTest answers[sizeof(ANSWERS) / sizeof(ANSWERS[0])];
    size_t i;
    int failed;

    /* Each row is a test of its own, with its own loop, client and server. */
    for (i = 0; i < sizeof(ANSWERS) / sizeof(ANSWERS[0]); i++) {
        answers[i] =
            (struct CMUnitTest){ANSWERS[i].name, test_answer, setup, teardown, (void *)&ANSWERS[i]};
    }
    /* As kt gateway does: a write on a reset connection is an error, not a signal. */
    signal(SIGPIPE, SIG_IGN);
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    return failed + cmocka_run_group_tests(answers, NULL, NULL);
}
