/* gateway/gw_relay.h - a chat completion from request to answer: policies, upstream, relay */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GW_RELAY_H
#define GW_RELAY_H

/* The chat route: validate (gw_oai), run the request policies, call the
 * upstream, and relay its answer to the client: a JSON answer whole (after
 * response policies), or an SSE stream event by event (usage chunk handled,
 * response policies on each delta), with backpressure: the upstream is paused
 * while the client has more than the connection's high-water mark unsent.
 * Ends in exactly one record per request (chain complete, emit, log line). */

#include <stdint.h>

#include "gateway/gw_conn.h"
#include "gateway/gw_worker.h"

/* Handles POST /v1/chat/completions; the answer may come later (the
 * connection is attached then). */
void gw_relay_chat(struct gw_worker *w, struct gw_conn *c, const struct gw_conn_req *rq,
                   const char *reqid);

/* Ends every request in flight with a 503 (or an error event on a stream), and
 * finishes the records of answered requests that wait for the loop. */
void gw_relay_end_all(struct gw_worker *w);

/* After the worker's loop ended: finishes the records still waiting for the
 * loop, waits for the async detection of requests whose answers are out, and
 * finishes their records (audit, event, log).
 * Blocking: shutdown only, on the worker's thread. */
void gw_relay_async_drain(struct gw_worker *w);

/* Frees the worker's pool of finished request objects (after gw_relay_end_all). */
void gw_relay_free_pool(struct gw_worker *w);

#endif
