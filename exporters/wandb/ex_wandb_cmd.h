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

#endif
