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

/* cmd_auth.c: W&B credentials, the way `wandb login` keeps them.
 * kt auth login [--host URL] [--relogin] [--key-file FILE]: read a W&B API key (FILE's first
 * line, else the terminal without echo, else stdin's first line), check it with the Viewer
 * query against --host (else WANDB_BASE_URL, else https://api.wandb.ai), print the user and
 * default entity and write it to $NETRC (else ~/.netrc) with mode 0600, replacing that host's
 * entry and keeping every other. Without --relogin a saved key that W&B still accepts is
 * kept. Exit 1 when W&B refuses the key or cannot be asked, or the file cannot be written; 2
 * for usage errors, no key or a malformed key. The key never appears in argv, logs or stdout.
 * kt auth status [--host URL]: which key would be used (WANDB_API_KEY, else the netrc
 * entry), whose it is; exit 1 when none or refused.
 * kt auth logout [--host URL]: remove the host's netrc entry, keeping the others; exit 1
 * when there was none. */
int cli_auth_login(int argc, char **argv);
int cli_auth_status(int argc, char **argv);
int cli_auth_logout(int argc, char **argv);

/* cmd_wandb_sync.c: kt wandb sync [DIR] [--attempts N] [--state-dir DIR]: the W&B runs of
 * <state>/wandb-offline and the Weave calls of <state>/weave-offline; DIR names either, the
 * other is its sibling. */
int cli_wandb_sync(int argc, char **argv);

#endif
