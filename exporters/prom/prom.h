/* exporters/prom/prom.h - Prometheus text exposition of per-run aggregates */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef EX_PROM_H
#define EX_PROM_H

#include <stdint.h>

#include "exporters/ex_exporter.h"

extern const struct ex_exporter_ops ex_prom;

#define EX_PROM_EXPORTERS_MAX 4

/* One exporter's delivery counters (exporters with a stats op). */
struct ex_prom_exporter_stats {
    char name[32];
    struct ex_stats st;
};

/* The agent's own counters, shown on the same page. */
struct ex_prom_agent_stats {
    uint64_t events, duplicates, bad_frames, connections, flushes;
    uint64_t exporter_retries, exporter_drops;
    uint64_t active_runs, journal_bytes;
    size_t nexporters;
    struct ex_prom_exporter_stats exporters[EX_PROM_EXPORTERS_MAX];
};

/* Sets the counters the next format() renders. Same thread as format(). */
void ex_prom_set_agent_stats(struct ex_exporter *ex, const struct ex_prom_agent_stats *st);

/* The port the endpoint is bound to (useful with port 0); 0 before init. */
int ex_prom_port(struct ex_exporter *ex);

#endif
