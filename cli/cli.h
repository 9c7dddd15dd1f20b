/* cli/cli.h - every kt subcommand; main.c dispatches to these */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KT_CLI_H
#define KT_CLI_H

/* Each takes argv starting after its command words ("kt gateway run --listen x" -> argv =
 * {"--listen", "x"}) and returns the process exit code: 0 ok (and `--help`), 1 runtime
 * failure, 2 usage or configuration error. Only cli/ writes to stdout and stderr (besides
 * core/gv_log's log lines). */

/* cmd_gateway.c, cmd_policy.c */
int cli_gateway_run(int argc, char **argv);
int cli_policy_check(int argc, char **argv);

/* cmd_events.c: the audit store read back. verify: 0 and a count when the chain is intact
 * (and, with --expect-head SEQ:HASH, passes through that published head), 1 naming the first
 * bad record otherwise (a missing head.json included). */
int cli_events_list(int argc, char **argv);
int cli_events_verify(int argc, char **argv);
int cli_events_tail(int argc, char **argv);
/* cmd_events_reemit.c: the events of audit records (by request id, run, or all) to the agent
 * again; it counts only the requests it has not counted. */
int cli_events_reemit(int argc, char **argv);

/* cmd_rbac.c */
int cli_rbac_hash_key(int argc, char **argv);

/* cmd_agent.c */
int cli_agent_run(int argc, char **argv);
int cli_agent_status(int argc, char **argv);

/* cmd_wandb.c: W&B without a gateway. Credentials come from WANDB_API_KEY or netrc only,
 * never from arguments. */
/* kt dashboards push [--entity E] [--project P] [--state-dir DIR]: upsert the governance
 * workspace and report, updating the views remembered in <state>/wandb/views.json instead of
 * duplicating them. */
int cli_dashboards_push(int argc, char **argv);
/* kt dashboards render [--entity E] [--project P]: both specs, names resolved, as one JSON
 * document on stdout. */
int cli_dashboards_render(int argc, char **argv);
/* The W&B half of `kt wandb sync`: upload every run stored in dir, resuming where an earlier
 * sync stopped, trying each request up to attempts times. Returns the exit code. */
int cli_wandb_sync_runs(const char *dir, long attempts);

/* cmd_wandb_sync.c: kt wandb sync [DIR] [--attempts N] [--state-dir DIR]: the W&B runs of
 * <state>/wandb-offline and the Weave calls of <state>/weave-offline; DIR names either, the
 * other is its sibling. */
int cli_wandb_sync(int argc, char **argv);

#endif
