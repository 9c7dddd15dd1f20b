/* gateway/main.c - the kt executable: parse the subcommand, dispatch */
/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <string.h>

#include "agent/ag_cmd.h"
#include "exporters/wandb/ex_wandb_cmd.h"
#include "exporters/weave/weave.h"
#include "gateway/gw_cmd.h"
#include "gateway/gw_cmd_gov.h"

/* Each command lives in the library of its area; this table is all main knows.
 * A command gets argv starting after its words ("kt gateway run --listen x"
 * -> argv = {"--listen", "x"}). */
struct kt_command {
    const char *group;
    const char *verb;
    int (*run)(int argc, char **argv);
    const char *help;
};

static const struct kt_command commands[] = {
    {"gateway", "run", gw_cmd_gateway_run,
     "--listen HOST:PORT --policy-config FILE [--state-dir DIR] [--workers N]"},
    {"policy", "check", gw_cmd_policy_check, "FILE   validate a policy config"},
    {"events", "list", gw_cmd_events_list,
     "[--limit N] [--run ID] [--decision D] [--since T] [--json] [--wide] [--state-dir DIR]"},
    {"events", "verify", gw_cmd_events_verify, "[--json] [--state-dir DIR]   check the hash chain"},
    {"events", "tail", gw_cmd_events_tail, "[--lines N] [--json] [--max N] [--state-dir DIR]"},
    {"rbac", "hash-key", gw_cmd_rbac_hash_key, "[KEY]   SHA-256 for rbac.keys (KEY from stdin)"},
    {"agent", "run", ag_cmd_agent_run,
     "[--state-dir DIR] [--agent-socket PATH] [--flush-interval S] [--metrics-listen HOST:PORT]"},
    {"agent", "status", ag_cmd_agent_status, "[--json] [--state-dir DIR] [--agent-socket PATH]"},
    {"auth", "login", ex_wandb_cmd_auth_login,
     "[--host URL] [--relogin] [--key-file FILE]   W&B API key into ~/.netrc"},
    {"auth", "status", ex_wandb_cmd_auth_status, "[--host URL]   which W&B key, whose"},
    {"auth", "logout", ex_wandb_cmd_auth_logout, "[--host URL]   remove the key from ~/.netrc"},
    {"dashboards", "push", ex_wandb_cmd_dashboards_push,
     "[--entity E] [--project P] [--state-dir DIR]"},
    {"dashboards", "render", ex_wandb_cmd_dashboards_render, "[--entity E] [--project P]"},
    {"wandb", "sync", ex_weave_cmd_wandb_sync,
     "[DIR] [--attempts N]   upload offline W&B runs and Weave calls"},
    {NULL, NULL, NULL, NULL},
};

static void usage(FILE *out)
{
    size_t i;
    fprintf(out, "kt %s - LLM governance gateway and W&B agent\n\nusage:\n", KT_VERSION);
    for (i = 0; commands[i].group; i++) {
        fprintf(out, "  kt %s %s %s\n", commands[i].group, commands[i].verb, commands[i].help);
    }
    fprintf(out, "  kt --version\n  kt help\n");
}

int main(int argc, char **argv)
{
    size_t i;

    if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("kt %s\n", KT_VERSION);
        return 0;
    }
    for (i = 0; commands[i].group; i++) {
        if (strcmp(argv[1], commands[i].group) != 0) {
            continue;
        }
        /* "kt policy check FILE": group + verb; the verb is required. */
        if (argc >= 3 && strcmp(argv[2], commands[i].verb) == 0) {
            return commands[i].run(argc - 3, argv + 3);
        }
    }
    fprintf(stderr, "kt: unknown command '%s%s%s'\n\n", argv[1], argc >= 3 ? " " : "",
            argc >= 3 ? argv[2] : "");
    usage(stderr);
    return 2;
}
