/* gateway/policies/accounting/ledger.h - spend per run / team / principal, persisted */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GW_COST_LEDGER_H
#define GW_COST_LEDGER_H

#include <stdbool.h>

#include "core/gv_cfg.h"
#include "core/gv_rc.h"

struct gw_policy;

/* USD spent so far per (kind, key), kept in memory and written to a JSON file
 * by a background thread (never on the request path), so budgets survive
 * restarts. A crash loses at most the last flush interval of spend.
 * Shared by cost-tracker (runs, teams) and rbac (principals). */
struct gw_ledger;

#define GW_LEDGER_MAX_KEYS 1000000u /* distinct keys tracked; more are not counted */
#define GW_LEDGER_KEY_MAX 256u      /* longer keys are cut here */

/* Loads `path` when it exists (GV_EPROTO when it is not a ledger: budgets must
 * not silently reset) and starts the flusher. *out owned by the caller. */
gv_rc gw_ledger_open(const char *path, long flush_ms, struct gw_ledger **out);
/* The ledger a policy keeps in <state_dir>/<sub>/ledger.json (state_dir unset: "."), its
 * directory created 0700 first. In check-only mode nothing is created or opened (*out stays
 * as it was): the directory is only checked to be creatable. GV_ECONFIG at `settings`:
 * "<policy>: cannot create <dir>: <why>", or "<policy>: cannot load the spend ledger <file>
 * (<rc>); move it away to reset <budgets>". */
gv_rc gw_ledger_open_for(const struct gw_policy *pol, const char *sub, long flush_ms,
                         const char *budgets, const char *path, const struct gv_ynode *settings,
                         struct gv_cfg_err *err, struct gw_ledger **out);
/* Flushes one last time, stops the thread, frees. Accepts NULL. */
void gw_ledger_close(struct gw_ledger *l);
/* Spend so far; 0 for unknown keys. Thread-safe. */
double gw_ledger_get(struct gw_ledger *l, const char *kind, const char *key);
/* Adds usd (> 0) to (kind, key). Never blocks on I/O. Thread-safe. */
void gw_ledger_add(struct gw_ledger *l, const char *kind, const char *key, double usd);
/* Admission with a hold, for budgets that must hold under concurrency: when
 * spend plus what requests in flight hold for (kind, key) is below `budget`,
 * adds `usd` (>= 0) to the held amount and returns true; else false and
 * nothing changes. Holds are in memory only (never written). Thread-safe. */
bool gw_ledger_reserve(struct gw_ledger *l, const char *kind, const char *key, double budget,
                       double usd);
/* Ends a hold made by gw_ledger_reserve: releases `held` and adds `usd` (the
 * real cost; 0 when the request failed) to spend. Thread-safe. */
void gw_ledger_settle(struct gw_ledger *l, const char *kind, const char *key, double held,
                      double usd);
/* Writes the file now (tests, shutdown). GV_EIO on failure. */
gv_rc gw_ledger_flush(struct gw_ledger *l);

#endif
