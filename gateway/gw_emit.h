/* gateway/gw_emit.h - where finished request records go (the agent, later) */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GW_EMIT_H
#define GW_EMIT_H

#include "core/gv_rc.h"
#include "core/gv_record.h"

struct gw_emitter;

struct gw_emitter_ops {
    const char *name;
    /* Called on worker threads, once per finished request, concurrently.
     * Must never block or slow the request: copy and return. packed is rec
     * already packed (gw_chain_complete's req->packed), or NULL: the emitter
     * packs rec itself. */
    gv_rc (*emit)(struct gw_emitter *em, const struct gv_record *rec,
                  const struct gv_record_packed *packed);
    /* Numbers for /health: events dropped so far, events waiting (held
     * included). */
    void (*stats)(struct gw_emitter *em, unsigned long long *dropped, unsigned long long *pending);
    /* Events held in memory because the spool could not be written; NULL
     * for emitters without a spool. Any thread. */
    unsigned long long (*held)(struct gw_emitter *em);
    void (*destroy)(struct gw_emitter *em);
};

struct gw_emitter {
    const struct gw_emitter_ops *ops;
    void *ctx;
};

/* An emitter that discards records: the gateway without an agent. */
gv_rc gw_emitter_create_noop(struct gw_emitter **out);
/* The emitter that sends events to `kt agent` over its Unix socket, spooling
 * what the agent has not acknowledged under <state_dir>. socket_path NULL
 * means the default <state_dir>/agent.sock. The spool holds at most
 * $KT_SPOOL_MAX_BYTES (default 64 MiB); beyond that the oldest half of it is
 * dropped at once and counted in stats(). While the spool cannot be written (a full
 * disk) events wait in memory, up to $KT_SPOOL_HOLD_MAX_BYTES (default
 * 32 MiB), and go to the spool in order once it can be; past that cap new
 * events are dropped and counted. */
gv_rc gw_emitter_create_agent(const char *state_dir, const char *socket_path,
                              struct gw_emitter **out);
void gw_emitter_destroy(struct gw_emitter *em);
/* The policy pack this gateway runs (chain: comma-separated policy names),
 * carried to the agent in the hello frame of each connection so exporters can
 * label runs. Strings are copied; any thread; a no-op for other emitters. */
void gw_emitter_set_pack(struct gw_emitter *em, const char *name, const char *version,
                         const char *chain);

#endif
