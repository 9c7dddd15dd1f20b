/* bench/gateway/floor_cli.c - what both cost floors do around their proxy: arguments, socket */
/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "bench/gateway/floor_cli.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

int floor_args(int argc, char **argv, const char **listen_addr, const char **upstream)
{
    int i;

    *listen_addr = NULL;
    *upstream = NULL;
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
            *listen_addr = argv[++i];
        }
        else if (strcmp(argv[i], "--upstream") == 0 && i + 1 < argc) {
            *upstream = argv[++i];
        }
        else {
            return -1;
        }
    }
    return *listen_addr && *upstream ? 0 : -1;
}

int floor_listen(const char *prog, const char *addr)
{
    struct sockaddr_storage ss;
    int sslen = (int)sizeof(ss);
    int one = 1;
    int fd;

    memset(&ss, 0, sizeof(ss));
    if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &sslen) != 0) {
        fprintf(stderr, "%s: invalid --listen '%s': want HOST:PORT\n", prog, addr);
        return -1;
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "%s: socket: %s\n", prog, strerror(errno));
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, (socklen_t)sslen) != 0 ||
        listen(fd, FLOOR_LISTEN_BACKLOG) != 0) {
        fprintf(stderr, "%s: cannot listen on %s: %s\n", prog, addr, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

void floor_on_signal(evutil_socket_t sig, short kind, void *arg)
{
    event_base_loopbreak(arg);
}
