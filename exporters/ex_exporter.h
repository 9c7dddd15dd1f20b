/* exporters/ex_exporter.h - how an exporter plugs into the agent */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef EX_EXPORTER_H
#define EX_EXPORTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/gv_buf.h"
#include "core/gv_cfg.h"
#include "core/gv_event.h"
#include "core/gv_pii.h"
#include "core/gv_rc.h"
#include "core/gv_record.h"

#define EX_HIST_MAX_BINS 64

struct ex_blocked_by {
    char policy[48];
    uint64_t count;
};

/* One run's aggregates at flush time. Counts are cumulative since the run was
 * first seen (any snapshot alone tells the totals); the histogram covers only
 * the requests since the previous flush. Plain data owned by the agent. */
struct ex_run_snapshot {
    char run_id[GV_RUN_TAG_MAX + 1]; /* "untagged" for requests without a run id */
    char project[GV_RUN_TAG_MAX + 1];
    char entity[GV_RUN_TAG_MAX + 1];
    char run_group[GV_RUN_TAG_MAX + 1];
    char pack_name[128];
    char pack_version[64];
    char chain[256]; /* comma-separated policy names */
    uint64_t requests, allowed, redacted, blocked, errors;
    uint32_t nblocked_by;
    struct ex_blocked_by blocked_by[GV_RECORD_MAX_POLICIES];
    uint64_t pii[GV_PII_NTYPES];
    uint64_t tokens_prompt, tokens_completion;
    double cost_usd;
    double latency_p50_s, latency_p95_s, latency_p99_s, overhead_p99_s;
    uint64_t interval_requests;              /* requests since the previous flush */
    uint32_t hist_nbins;                     /* 0 when interval_requests == 0 */
    double hist_edges[EX_HIST_MAX_BINS + 1]; /* seconds, increasing */
    uint64_t hist_counts[EX_HIST_MAX_BINS];
    uint64_t first_seen_wall_us, last_seen_wall_us;
    bool finalized; /* idle past the limit: this is the run's last snapshot */
    /* The audit chain's end as the run's latest events saw it (seq 0: none),
     * published so the local audit log can be checked against it later. */
    uint64_t audit_head_seq;
    char audit_head_hash[65];
};

/* What one flush hands to every exporter: the runs that changed since the
 * previous flush (and the ones being finalised). An exporter with nothing
 * queued gets a batch every flush interval, nruns == 0 when nothing changed,
 * so it can do timed work (W&B: held rows, heartbeats) without a thread. */
struct ex_batch {
    uint64_t seq; /* increases by one per flush */
    uint64_t now_wall_us;
    const char *agent_label; /* stable per host (default: host name) */
    size_t nruns;
    const struct ex_run_snapshot *runs;
};

enum ex_flush { EX_FLUSH_OK = 0, EX_FLUSH_RETRY, EX_FLUSH_DROP };

/* One newly counted request, for exporters that send every request (traces)
 * rather than aggregates. Borrowed for the duration of the events() call. */
struct ex_event {
    const struct gv_record *rec;
    const char *instance_id; /* the gateway's; with seq, unique per request */
    uint64_t seq;
    const struct gv_hello *hello; /* that gateway's pack; never NULL */
};

/* Delivery counters of an exporter that sends per-request items (spans) on
 * its own schedule, for `kt agent status` and /metrics. */
struct ex_stats {
    uint64_t sent;    /* items the backend acknowledged */
    uint64_t queued;  /* items durable and waiting to be sent */
    uint64_t dropped; /* items given up: queue full, or refused by the backend */
    uint64_t retries; /* requests answered with a retryable failure */
    uint64_t exports; /* metric exports the backend acknowledged */
};

/* One exporter's delivery counters, by name. */
#define EX_EXPORTERS_MAX 8
struct ex_exporter_stats {
    char name[32];
    struct ex_stats st;
};

/* The agent's own counters and its exporters' delivery counters, for exporters that publish
 * metrics about the agent (Prometheus). A snapshot taken when the flush was scheduled. */
struct ex_agent_stats {
    uint64_t events, duplicates, bad_frames, connections, flushes;
    uint64_t exporter_retries, exporter_drops;
    uint64_t active_runs, journal_bytes;
    size_t nexporters;
    struct ex_exporter_stats exporters[EX_EXPORTERS_MAX];
};

/* ops->flags */
#define EX_OPS_OPT_IN 1u         /* runs only when its settings are given */
#define EX_OPS_METRICS_LISTEN 2u /* `kt agent run --metrics-listen A` sets its `listen: A` */

struct ex_exporter;

struct ex_exporter_ops {
    const char *name;
    unsigned flags;                      /* EX_OPS_* */
    const struct gv_cfg_map *config_map; /* may be NULL */
    size_t ctx_size;
    /* Set up after config_map filled ctx; state_dir for durable state. */
    gv_rc (*init)(struct ex_exporter *ex, const char *state_dir);
    /* Pure: the exact bytes this exporter would send for the batch. */
    gv_rc (*format)(struct ex_exporter *ex, const struct ex_batch *batch, struct gv_buf *out);
    /* Does the I/O for what format produced. RETRY: call again later with the
     * same bytes (the agent owns backoff); DROP: give up on these bytes. */
    enum ex_flush (*flush)(struct ex_exporter *ex, const struct gv_buf *payload);
    void (*destroy)(struct ex_exporter *ex);
    /* Optional: for exporters that send every request (traces) rather than aggregates.
     * Called on the ingest thread with the new events, oldest first, before the agent
     * journals them and acknowledges them to the gateway. It must keep them durably in its
     * own outbox without network I/O and return quickly: its own schedule (flush, or a
     * thread of its own) sends them. A replay after a crash may hand the same
     * (instance_id, seq) again. Non-OK: the agent logs and counts a drop. */
    gv_rc (*events)(struct ex_exporter *ex, const struct ex_event *evs, size_t n);
    /* Optional. Appends this exporter's counters for `kt agent status`: one
     * text line, or (json) one JSON object. Any thread. */
    void (*status)(struct ex_exporter *ex, bool json, struct gv_buf *out);
    /* Optional (NULL): delivery counters; any thread. */
    void (*stats)(struct ex_exporter *ex, struct ex_stats *out);
    /* Optional (NULL): the agent's counters, on the exporter thread before each format(). */
    void (*agent_stats)(struct ex_exporter *ex, const struct ex_agent_stats *st);
};

struct ex_exporter {
    const struct ex_exporter_ops *ops;
    void *ctx;
    const char *name; /* instance name for logs: "wandb.0" */
    bool fsync;       /* the agent runs with --fsync: events() syncs what it stores */
};

#endif
