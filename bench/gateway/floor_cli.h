/* bench/gateway/floor_cli.h - what both cost floors do around their proxy: arguments, socket */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef FLOOR_CLI_H
#define FLOOR_CLI_H

#include <event2/util.h>

/* kt's listen backlog (gateway/gw_server.c), so the floors queue connects as kt does. */
#define FLOOR_LISTEN_BACKLOG 1024

/* Reads `--listen HOST:PORT --upstream URL` from argv into *listen_addr and *upstream. Returns
 * 0, or -1 when an argument is unknown or one of the two is missing (the caller prints its
 * usage). */
int floor_args(int argc, char **argv, const char **listen_addr, const char **upstream);

/* A non-blocking listening socket on HOST:PORT with FLOOR_LISTEN_BACKLOG, or -1 after a
 * message on stderr that starts with `prog`. */
int floor_listen(const char *prog, const char *addr);

/* A signal event's callback: stops the loop of the event base `arg`. */
void floor_on_signal(evutil_socket_t sig, short kind, void *arg);

#endif
