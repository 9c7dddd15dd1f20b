/* exporters/wandb/ex_wandb_cmd.h - kt subcommands that talk to W&B without a gateway */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef EX_WANDB_CMD_H
#define EX_WANDB_CMD_H

/* argv starts after the command words; each returns the process exit code
 * (0 ok, 1 runtime failure, 2 usage error). Credentials come from
 * WANDB_API_KEY or netrc only, never from arguments. */

/* kt dashboards push [--entity E] [--project P] [--state-dir DIR]: upsert the
 * governance workspace and report, updating the views remembered in
 * <state>/wandb/views.json instead of duplicating them. */
int ex_wandb_cmd_dashboards_push(int argc, char **argv);
/* kt dashboards render [--entity E] [--project P]: print both specs, names
 * resolved, as one JSON document on stdout. */
int ex_wandb_cmd_dashboards_render(int argc, char **argv);
/* kt wandb sync [DIR] [--attempts N]: upload every run stored in DIR (default
 * <state>/wandb-offline), resuming where an earlier sync stopped. */
int ex_wandb_cmd_sync(int argc, char **argv);

/* kt auth login [--host URL] [--relogin] [--key-file FILE]: read a W&B API key
 * (FILE's first line, else the terminal without echo, else stdin's first
 * line), check it with the Viewer query against --host (else WANDB_BASE_URL,
 * else https://api.wandb.ai), print the user and default entity and write it
 * to $NETRC (else ~/.netrc) with mode 0600, replacing that host's entry and
 * keeping every other. Without --relogin a saved key that W&B still accepts
 * is kept. Exit 1 when W&B refuses the key or cannot be asked, or the file
 * cannot be written; 2 for usage errors, no key or a malformed key. The key
 * never appears in argv, logs or stdout. */
int ex_wandb_cmd_auth_login(int argc, char **argv);
/* kt auth status [--host URL]: which key would be used (WANDB_API_KEY, else
 * the netrc entry), who it belongs to; exit 1 when none or refused. */
int ex_wandb_cmd_auth_status(int argc, char **argv);
/* kt auth logout [--host URL]: remove the host's netrc entry, keeping the
 * others; exit 1 when there was none. */
int ex_wandb_cmd_auth_logout(int argc, char **argv);

#endif
