/* tests/unit/gateway/conn/test_gw_conn.c - client connections on a real event base and sockets */
/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gateway/gw_conn.h"
#include "tests/unit/unit_net.h"

/* One test server: what dispatch does is chosen per test. */
enum mode { ANSWER_NOW, STREAM_BIG, STREAM_FOREVER };

#define PIECE 4096

struct srv {
    struct event_base *base;
    struct gw_conns *cs;
    unsigned port;
    enum mode mode;
    struct gw_conn *held; /* the connection of the answer in progress */
    size_t pieces_left;
    size_t full_seen;
    size_t drained_calls;
    size_t closed_calls;
    size_t dispatched;
    size_t refused;
    int refused_status;
    char piece[PIECE];
};

static void stream_more(struct srv *s)
{
    while (s->held && s->pieces_left > 0) {
        enum gw_conn_wr wr = gw_conn_stream_write(s->held, s->piece, sizeof(s->piece));
        if (s->mode == STREAM_BIG) {
            s->pieces_left--;
        }
        if (wr == GW_CONN_GONE) {
            return; /* closed() follows */
        }
        if (wr == GW_CONN_FULL) {
            s->full_seen++;
            return; /* wait for drained() */
        }
    }
    if (s->held && s->pieces_left == 0) {
        struct gw_conn *c = s->held;
        s->held = NULL;
        gw_conn_stream_end(c);
    }
}

static void on_drained(void *arg)
{
    struct srv *s = arg;

    s->drained_calls++;
    stream_more(s);
}

static void on_closed(void *arg)
{
    struct srv *s = arg;

    s->closed_calls++;
    s->held = NULL;
}

static const struct gw_conn_owner_ops owner = {on_drained, on_closed};

static void dispatch(void *arg, struct gw_conn *c, const struct gw_conn_req *rq)
{
    struct srv *s = arg;
    char body[64];
    int n;

    s->dispatched++;
    if (s->mode == ANSWER_NOW) {
        n = snprintf(body, sizeof(body), "{\"path\":\"%s\",\"len\":%zu}", rq->head->path,
                     rq->body_len);
        gw_conn_reply(c, 200, "application/json", NULL, 0, body, (size_t)n);
        return;
    }
    gw_conn_attach(c, &owner, s);
    s->held = c;
    /* 16 MiB: more than the kernel's socket buffers on loopback hold, or no end. */
    s->pieces_left = s->mode == STREAM_BIG ? 4096 : (size_t)-1;
    gw_conn_stream_start(c, 200, "text/event-stream", NULL, 0);
    stream_more(s);
}

static void refuse(void *arg, struct gw_conn *c, int status, const char *code, const char *msg)
{
    struct srv *s = arg;

    (void)code;
    s->refused++;
    s->refused_status = status;
    gw_conn_reply(c, status, "application/json", NULL, 0, msg, strlen(msg));
}

static void srv_start(struct srv *s, enum mode mode)
{
    struct gw_conns_opts o;
    int fd;

    memset(s, 0, sizeof(*s));
    memset(s->piece, 'x', sizeof(s->piece));
    s->mode = mode;
    s->base = event_base_new();
    assert_non_null(s->base);
    fd = unit_listen_loopback(SOCK_NONBLOCK | SOCK_CLOEXEC, &s->port);
    memset(&o, 0, sizeof(o));
    o.base = s->base;
    o.listen_fd = fd;
    o.lim.high_water = 32 * 1024;
    o.lim.keepalive_timeout_ms = 5000;
    o.dispatch = dispatch;
    o.refuse = refuse;
    o.arg = s;
    assert_int_equal(gw_conns_create(&o, &s->cs), GV_OK);
}

static void srv_stop(struct srv *s)
{
    gw_conns_destroy(s->cs);
    event_base_free(s->base);
}

/* Runs the server's loop for a moment. */
static void spin(struct srv *s, int rounds)
{
    int i;

    for (i = 0; i < rounds; i++) {
        event_base_loop(s->base, EVLOOP_NONBLOCK);
        usleep(1000);
    }
}

static int client(struct srv *s, int rcvbuf)
{
    struct sockaddr_in sa = unit_loopback(s->port);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    /* Before connect: the kernel fixes the window scale at the handshake. */
    if (rcvbuf > 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    }
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    spin(s, 3);
    return fd;
}

static void send_all(struct srv *s, int fd, const char *p)
{
    size_t n = strlen(p), off = 0;

    while (off < n) {
        ssize_t w = write(fd, p + off, n - off);
        if (w > 0) {
            off += (size_t)w;
        }
        spin(s, 1);
    }
}

/* Reads what arrived while spinning the server, until `until` appears or rounds run out. */
static char tail[16]; /* the last bytes any drain_client read */

static size_t drain_client(struct srv *s, int fd, char *buf, size_t size, const char *until,
                           int rounds, bool *eof)
{
    size_t got = 0;
    char tmp[65536];
    int i;

    *eof = false;
    for (i = 0; i < rounds; i++) {
        ssize_t n;
        spin(s, 1);
        while ((n = read(fd, tmp, sizeof(tmp))) > 0) {
            size_t keep = (size_t)n;
            if (buf && got < size - 1) {
                if (keep > size - 1 - got) {
                    keep = size - 1 - got;
                }
                memcpy(buf + got, tmp, keep);
            }
            got += (size_t)n;
            if ((size_t)n >= sizeof(tail)) {
                memcpy(tail, tmp + n - sizeof(tail), sizeof(tail));
            }
            else {
                memmove(tail, tail + n, sizeof(tail) - (size_t)n);
                memcpy(tail + sizeof(tail) - (size_t)n, tmp, (size_t)n);
            }
        }
        if (n == 0) {
            *eof = true;
            break;
        }
        if (buf) {
            buf[got < size ? got : size - 1] = '\0';
            if (until && strstr(buf, until)) {
                break;
            }
        }
    }
    return got;
}

/* Starts the server in `mode` and sends `request` from a new client, whose fd it returns. */
static int srv_client(struct srv *s, enum mode mode, int rcvbuf, const char *request)
{
    int fd;

    srv_start(s, mode);
    fd = client(s, rcvbuf);
    send_all(s, fd, request);
    return fd;
}

/* The client hangs up; the loop runs long enough to see it. */
static void hang_up(struct srv *s, int fd)
{
    close(fd);
    spin(s, 20);
}

/* A client that stops reading: the writes queue up to the mark, GW_CONN_FULL
 * holds the producer, and once the client reads, drained() lets it finish.
 * Every byte arrives, in order, in chunked framing. */
static void test_slow_reader_is_held_then_resumed(void **state)
{
    struct srv s;
    char *all = test_malloc(2u << 20);
    size_t got, left, drained;
    bool eof;
    int fd;

    (void)state;
    fd = srv_client(&s, STREAM_BIG, 4096,
                    "GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    spin(&s, 50); /* nobody reads: the kernel buffers fill, then ours up to the mark */
    assert_int_equal(s.dispatched, 1);
    assert_true(s.full_seen >= 1);
    left = s.pieces_left;
    drained = s.drained_calls;
    spin(&s, 50); /* still nobody reads: the producer stays held */
    assert_true(left > 0);
    assert_int_equal(s.pieces_left, left);
    assert_int_equal(s.drained_calls, drained);
    got = drain_client(&s, fd, all, 2u << 20, NULL, 20000, &eof);
    assert_true(eof);
    assert_int_equal(s.pieces_left, 0);
    assert_true(s.drained_calls > drained);
    assert_true(got > 4096u * PIECE);
    assert_non_null(strstr(all, "Transfer-Encoding: chunked"));
    assert_non_null(strstr(all, "\r\n1000\r\n"));
    assert_int_equal(memcmp(tail + sizeof(tail) - 7, "\r\n0\r\n\r\n", 7), 0);
    assert_int_equal(s.closed_calls, 0);
    hang_up(&s, fd);
    assert_int_equal(gw_conns_count(s.cs), 0);
    test_free(all);
    srv_stop(&s);
}

/* A client that leaves mid-stream: the owner hears closed() once, from the
 * loop, and the connection is gone. */
static void test_client_abort_mid_stream(void **state)
{
    struct srv s;
    char buf[4096];
    bool eof;
    int fd;

    (void)state;
    fd = srv_client(&s, STREAM_FOREVER, 0, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
    drain_client(&s, fd, buf, sizeof(buf), "xxxx", 200, &eof);
    assert_non_null(strstr(buf, "HTTP/1.1 200 OK"));
    close(fd);
    drain_client(&s, -1, NULL, 0, NULL, 300, &eof);
    assert_int_equal(s.closed_calls, 1);
    assert_null(s.held);
    assert_int_equal(gw_conns_count(s.cs), 0);
    assert_int_equal(gw_conns_busy(s.cs), 0);
    srv_stop(&s);
}

/* Three pipelined requests in one write, answered in order on one
 * connection; then a framing error is refused and the connection closes. */
static void test_pipelined_then_refused(void **state)
{
    struct srv s;
    char buf[8192];
    const char *a, *b, *c;
    bool eof;
    int fd;

    (void)state;
    fd = srv_client(
        &s, ANSWER_NOW, 0,
        "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
        "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        "GET /c HTTP/1.1\r\nHost: x\r\n\r\n"
        "GET /d HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n");
    drain_client(&s, fd, buf, sizeof(buf), NULL, 200, &eof);
    a = strstr(buf, "{\"path\":\"/a\",\"len\":0}");
    b = strstr(buf, "{\"path\":\"/b\",\"len\":3}");
    c = strstr(buf, "{\"path\":\"/c\",\"len\":0}");
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_true(a < b && b < c);
    assert_int_equal(s.dispatched, 3);
    assert_int_equal(s.refused, 1);
    assert_int_equal(s.refused_status, 400);
    assert_non_null(strstr(c, "HTTP/1.1 400 Bad Request"));
    assert_non_null(strstr(c, "Connection: close"));
    assert_true(eof);
    hang_up(&s, fd);
    assert_int_equal(gw_conns_count(s.cs), 0);
    srv_stop(&s);
}

/* Expect: 100-continue gets the interim answer before the body is sent. */
static void test_expect_continue(void **state)
{
    struct srv s;
    char buf[4096];
    bool eof;
    int fd;

    (void)state;
    fd = srv_client(
        &s, ANSWER_NOW, 0,
        "POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    drain_client(&s, fd, buf, sizeof(buf), "\r\n\r\n", 200, &eof);
    assert_string_equal(buf, "HTTP/1.1 100 Continue\r\n\r\n");
    assert_int_equal(s.dispatched, 0);
    send_all(&s, fd, "abcd");
    drain_client(&s, fd, buf, sizeof(buf), "}", 200, &eof);
    assert_non_null(strstr(buf, "{\"path\":\"/e\",\"len\":4}"));
    hang_up(&s, fd);
    srv_stop(&s);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_slow_reader_is_held_then_resumed),
    cmocka_unit_test(test_client_abort_mid_stream),
    cmocka_unit_test(test_pipelined_then_refused),
    cmocka_unit_test(test_expect_continue),
};

#include "tests/unit/unit_main.h"
