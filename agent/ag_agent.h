/* agent/ag_agent.h - kt agent: ingest events, keep durable per-run state, run exporters */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef AG_AGENT_H
#define AG_AGENT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/gv_buf.h"
#include "core/gv_cfg.h"
#include "core/gv_rc.h"

struct ex_exporter_ops;

struct ag_opts {
    const char *state_dir;      /* required */
    const char *socket_path;    /* NULL: <state_dir>/agent.sock */
    const char *socket_group;   /* NULL: socket mode 0600; else 0660 owned by this group */
    const char *metrics_listen; /* NULL: no Prometheus endpoint */
    const char *label;          /* exporters' agent_label; NULL: host name */
    const char *exporters;      /* comma-separated names, "all" (NULL) or "none" */
    const char *config_path;    /* YAML with `exporters: {<name>: {settings}}`, or NULL */
    uint64_t flush_ms;          /* exporter flush and state checkpoint period */
    uint64_t idle_ms;           /* finalise runs idle this long; 0 never */
    bool fsync;                 /* fdatasync the journal before acknowledging */
    struct gv_cfg_err *err;     /* out, may be NULL: the message of a GV_ECONFIG from create */
    /* The exporter types to choose from (NULL-terminated); NULL: ex_registry_builtin(). */
    const struct ex_exporter_ops *const *registry;
};

struct ag_agent;

/* Opens the state dir (recovering state.json + journal), binds the socket and
 * starts the exporters. GV_EIO when the socket or state cannot be set up (for
 * example another agent owns the state dir), GV_ECONFIG for a bad exporter
 * setting (its message in opts->err, which the caller prints), GV_EPROTO for a state file
 * that does not parse. Logs the other causes. */
gv_rc ag_agent_create(const struct ag_opts *opts, struct ag_agent **out);
/* Serves until SIGTERM/SIGINT (when handle_signals) or ag_agent_stop, then
 * flushes exporters and checkpoints. Call from one thread. */
gv_rc ag_agent_run(struct ag_agent *ag, bool handle_signals);
/* Any thread: makes ag_agent_run return after its final flush. */
void ag_agent_stop(struct ag_agent *ag);
void ag_agent_destroy(struct ag_agent *ag);

/* Events counted so far (not duplicates); any thread. */
uint64_t ag_agent_events(struct ag_agent *ag);

/* Client side of `kt agent status`: asks the agent at socket_path and appends
 * its reply to out. GV_EIO when no agent answers, GV_ETIMEDOUT after timeout_ms. */
gv_rc ag_status_query(const char *socket_path, bool json, int timeout_ms, struct gv_buf *out);

#endif
