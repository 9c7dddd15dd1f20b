/* agent/ag_runs.h - per-run aggregation of governance events */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef AG_RUNS_H
#define AG_RUNS_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "agent/ag_sketch.h"
#include "core/gv_buf.h"
#include "core/gv_event.h"
#include "core/gv_rc.h"
#include "core/gv_record.h"
#include "exporters/ex_exporter.h"

#define AG_RUN_UNTAGGED "untagged"
/* The per-flush histogram grid: bin 0 is [0, 100us), bin k >= 1 is
 * [1e-4 * 10^((k-1)/8), 1e-4 * 10^(k/8)) seconds; the last bin is open-ended. */
#define AG_HIST_BINS EX_HIST_MAX_BINS
double ag_hist_edge(unsigned k);

struct ag_runs;

/* Cannot fail. Runs idle for idle_ms (by wall clock) are finalised at the next
 * collect; 0 keeps runs forever. Single-threaded: one owner calls everything. */
struct ag_runs *ag_runs_create(uint64_t idle_ms);
void ag_runs_destroy(struct ag_runs *runs);

/* Counts one event into the run (entity, project, run_id), creating it if
 * needed. pack (may be NULL) labels the run with the sender's policy pack.
 * now_wall_us is the agent's clock, used for idleness. */
void ag_runs_apply(struct ag_runs *runs, const struct gv_record *rec, const struct gv_hello *pack,
                   uint64_t now_wall_us);

/* Snapshots of every run changed since the previous collect plus the ones idle
 * past the limit (finalized = true; their memory is released here). Resets the
 * per-flush histograms. *out is a gv_malloc'd array owned by the caller (NULL
 * when there is none); returns its length. */
size_t ag_runs_collect(struct ag_runs *runs, uint64_t now_wall_us, struct ex_run_snapshot **out);

/* Runs held now. */
size_t ag_runs_count(const struct ag_runs *runs);
/* Heap bytes held by runs (structs, keys, sketches, blocked-by lists). */
uint64_t ag_runs_mem(const struct ag_runs *runs);

/* The live aggregates as JSON ({"runs":[...]}) or a text table, appended to out. */
gv_rc ag_runs_status(const struct ag_runs *runs, int json, struct gv_buf *out);

/* Whole state in/out for the agent's state file. to_json returns a new array
 * (caller puts it). from_json replaces the content; GV_EPROTO on bad shape. */
struct json_object *ag_runs_to_json(const struct ag_runs *runs);
gv_rc ag_runs_from_json(struct ag_runs *runs, struct json_object *arr);

#endif
