/* agent/ag_cmd.h - the agent's kt subcommands */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef AG_CMD_H
#define AG_CMD_H

/* argv starts after the command words; return the process exit code
 * (0 ok, 1 runtime failure, 2 usage or configuration error). */
int ag_cmd_agent_run(int argc, char **argv);
int ag_cmd_agent_status(int argc, char **argv);
/* kt events reemit: the events of audit records (by request id, run, or all)
 * to the agent again; it counts only the requests it has not counted. */
int ag_cmd_events_reemit(int argc, char **argv);

#endif
