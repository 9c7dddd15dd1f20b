/* gateway/gw_cmd.h - the gateway's kt subcommands */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GW_CMD_H
#define GW_CMD_H

/* argv starts after the command words; return the process exit code
 * (0 ok, 1 runtime failure, 2 usage or configuration error). */
int gw_cmd_gateway_run(int argc, char **argv);
int gw_cmd_policy_check(int argc, char **argv);

#endif
