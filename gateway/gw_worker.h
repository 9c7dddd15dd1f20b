/* gateway/gw_worker.h - the server's and each worker's state, shared by the server's modules */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GW_WORKER_H
#define GW_WORKER_H

/* Private to gw_server.c, gw_route.c and gw_relay.c: one gw_server, N workers,
 * each an event loop on its own thread that owns its connections, upstream
 * pool and requests. Nothing here is shared between workers but the read-only
 * config, the chain (thread-safe) and the emitter (thread-safe). */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "core/gv_buf.h"
#include "gateway/gw_chain.h"
#include "gateway/gw_config.h"
#include "gateway/gw_conn.h"
#include "gateway/gw_emit.h"
#include "gateway/gw_http.h"
#include "gateway/gw_upstream.h"

struct event;
struct event_base;
struct gw_rq;

struct gw_worker {
    struct gw_server *srv;
    int idx;
    pthread_t thread;
    bool started;
    struct event_base *base;
    struct gw_conns *conns;
    int listen_fd; /* until gw_conns takes it */
    struct gw_upstream *up;
    struct gw_reqid ids;
    struct event *stop_ev;
    int stop_fd; /* eventfd: the only way other threads reach this worker */
    struct event *drain_timer;
    struct gw_rq *active; /* chat requests in flight */
    size_t nactive;
    struct gw_rq *free_rq; /* finished request objects kept for reuse */
    /* Answered requests whose record waits for finish_ev, oldest first (gw_relay.c). */
    struct gw_rq *finishing;
    struct gw_rq *finishing_last;
    struct event *finish_ev;
    size_t nfree;
    bool draining;
    json_tokener *tok;
    struct gv_buf logkv;          /* the request log line's key=value text, reused */
    struct gw_async_inbox *inbox; /* async detection comes back here; made on first use */
};

struct gw_server {
    const struct gw_config *cfg;
    struct gw_chain *chain;
    struct gw_emitter *em;
    int nworkers;
    struct gw_worker *workers;
    struct gw_conn_limits lim;
    size_t max_conns; /* all workers together */
    char addr[128];
    uint64_t start_mono;
    uint64_t start_wall;
    _Atomic long stop_drain_ms;
    bool joined;
    char *models_json;
};

/* When draining and nothing is left in flight, ends the worker's loop. */
void gw_worker_maybe_exit(struct gw_worker *w);

#endif
