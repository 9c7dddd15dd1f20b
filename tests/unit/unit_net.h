/* tests/unit/unit_net.h - loopback TCP for tests that play a server, a client or a dead peer */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KT_UNIT_NET_H
#define KT_UNIT_NET_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

/* 127.0.0.1:port (0: the kernel picks when bound). */
static inline struct sockaddr_in unit_loopback(unsigned port)
{
    struct sockaddr_in a;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    return a;
}

/* A TCP socket of type SOCK_STREAM | flags (SOCK_NONBLOCK, SOCK_CLOEXEC) bound to 127.0.0.1
 * on a port the kernel picks, which goes to *port; the test fails when any step does.
 * SO_REUSEADDR, so that a listener's next run never waits out TIME_WAIT. */
static inline int unit_bind_loopback(int flags, unsigned *port)
{
    struct sockaddr_in a = unit_loopback(0);
    socklen_t len = sizeof(a);
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | flags, 0);

    assert_true(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* unit_bind_loopback, listening with a backlog of 16. */
static inline int unit_listen_loopback(int flags, unsigned *port)
{
    int fd = unit_bind_loopback(flags, port);

    assert_int_equal(listen(fd, 16), 0);
    return fd;
}

/* A port on 127.0.0.1 where nothing listens: bound, read back, closed. */
static inline unsigned unit_closed_port(void)
{
    unsigned port;

    close(unit_bind_loopback(0, &port));
    return port;
}

/* A TCP socket of type SOCK_STREAM | flags connected to 127.0.0.1:port. */
static inline int unit_connect_loopback(int flags, unsigned port)
{
    struct sockaddr_in a = unit_loopback(port);
    int fd = socket(AF_INET, SOCK_STREAM | flags, 0);

    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

#endif
