/* gateway/gw_cmd_gov.h - governance commands: kt events, kt rbac */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GW_CMD_GOV_H
#define GW_CMD_GOV_H

/* argv starts after the command words; each returns the process exit code
 * (0 ok, 1 runtime failure or a failed check, 2 usage error). All read
 * --state-dir (default: the gateway's, gv_state_dir_default) and the audit
 * segments under <state-dir>/audit (--audit-dir overrides). */

/* kt events list [--limit N] [--run ID] [--decision D] [--since T] [--json]:
 * newest first; T is RFC 3339 ("2026-01-02T03:04:05Z") or an age ("15m", "2h", "7d"). */
int gw_cmd_events_list(int argc, char **argv);
/* kt events verify [--json] [--expect-head SEQ:HASH]: 0 and a count when the
 * chain is intact (and passes through the published head), 1 naming the first
 * bad record otherwise (a missing head.json included). */
int gw_cmd_events_verify(int argc, char **argv);
/* kt events tail [--lines N] [--json] [--max N]: the last N records, then new
 * ones as they are written, until SIGINT/SIGTERM or --max new records. */
int gw_cmd_events_tail(int argc, char **argv);
/* kt rbac hash-key [KEY]: prints the SHA-256 (hex) to paste into rbac.keys;
 * reads the key from the first line of stdin when KEY is absent, which keeps
 * it out of shell history and process lists. */
int gw_cmd_rbac_hash_key(int argc, char **argv);

#endif
