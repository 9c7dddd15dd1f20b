/* gateway/gw_server.h - the HTTP server: worker threads, listeners, start and stop */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GW_SERVER_H
#define GW_SERVER_H

#include <stddef.h>

#include "core/gv_rc.h"
#include "gateway/gw_chain.h"
#include "gateway/gw_config.h"
#include "gateway/gw_emit.h"

struct gw_server;

struct gw_server_opts {
    const char *listen;          /* "HOST:PORT", "[v6]:PORT"; port 0 picks one */
    int workers;                 /* event-loop threads; <= 0 means one per CPU */
    const struct gw_config *cfg; /* borrowed; must outlive the server */
    struct gw_chain *chain;      /* borrowed; shared by all workers */
    struct gw_emitter *emitter;  /* borrowed; receives one record per chat request */
    long drain_ms;               /* graceful stop: wait this long for in-flight requests */
};

/* Binds the listening sockets (one SO_REUSEPORT socket per worker, all on the
 * same port) and prepares the workers; nothing runs yet. GV_EINVAL for a bad
 * listen address (err says why), GV_EIO when binding fails. *out is owned by
 * the caller (gw_server_destroy). Main thread only. */
gv_rc gw_server_create(const struct gw_server_opts *opts, struct gw_server **out, char *err,
                       size_t errsize);

/* The bound address as "host:port" (the real port when 0 was asked). Borrowed,
 * valid until destroy. */
const char *gw_server_addr(const struct gw_server *srv);
int gw_server_workers(const struct gw_server *srv);

/* Starts the worker threads. GV_EIO when a thread cannot be created (those
 * started are stopped again). */
gv_rc gw_server_start(struct gw_server *srv);

/* Asks every worker to stop accepting, finish what is in flight (at most
 * drain_ms; 0 ends in-flight requests at once) and exit. Any thread; may be
 * called more than once (a second call with 0 shortens the drain). */
void gw_server_stop(struct gw_server *srv, long drain_ms);

/* Waits for the workers to exit after gw_server_stop. */
void gw_server_join(struct gw_server *srv);

/* Joins (stopping first if needed) and frees everything. Accepts NULL. */
void gw_server_destroy(struct gw_server *srv);

#endif
