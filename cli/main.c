/* cli/main.c - the kt executable: parse the subcommand, dispatch */
/* SPDX-License-Identifier: Apache-2.0 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#ifdef KT_HAVE_MIMALLOC
#include <mimalloc.h>
#endif

#include "cli/cli.h"
#include "core/gv_thread.h"

/* Each command lives in cli/cmd_<group>.c; this table is all main knows.
 * A command gets argv starting after its words ("kt gateway run --listen x"
 * -> argv = {"--listen", "x"}). */
struct kt_command {
    const char *group;
    const char *verb;
    int (*run)(int argc, char **argv);
    const char *help;
};

static const struct kt_command commands[] = {
    {"gateway", "run", cli_gateway_run,
     "--listen HOST:PORT --policy-config FILE [--state-dir DIR] [--workers N]"},
    {"policy", "check", cli_policy_check, "FILE   validate a policy config"},
    {"events", "list", cli_events_list,
     "[--limit N] [--run ID] [--decision D] [--since T] [--json] [--wide] [--state-dir DIR]"},
    {"events", "verify", cli_events_verify,
     "[--json] [--expect-head SEQ:HASH] [--state-dir DIR]   check the hash chain"},
    {"events", "tail", cli_events_tail, "[--lines N] [--json] [--max N] [--state-dir DIR]"},
    {"events", "reemit", cli_events_reemit,
     "(--request-id ID | --run ID | --all) [--state-dir DIR]   events again from the audit log"},
    {"rbac", "hash-key", cli_rbac_hash_key, "[KEY]   SHA-256 for rbac.keys (KEY from stdin)"},
    {"agent", "run", cli_agent_run,
     "[--state-dir DIR] [--agent-socket PATH] [--flush-interval S] [--metrics-listen HOST:PORT]"},
    {"agent", "status", cli_agent_status, "[--json] [--state-dir DIR] [--agent-socket PATH]"},
    {"auth", "login", cli_auth_login,
     "[--host URL] [--relogin] [--key-file FILE]   W&B API key into ~/.netrc"},
    {"auth", "status", cli_auth_status, "[--host URL]   which W&B key, whose"},
    {"auth", "logout", cli_auth_logout, "[--host URL]   remove the key from ~/.netrc"},
#ifdef KT_HAVE_WANDB
    {"dashboards", "push", cli_dashboards_push, "[--entity E] [--project P] [--state-dir DIR]"},
    {"dashboards", "render", cli_dashboards_render, "[--entity E] [--project P]"},
#endif
#ifdef KT_HAVE_WEAVE
    {"wandb", "sync", cli_wandb_sync,
     "[DIR] [--attempts N]   upload offline W&B runs and Weave calls"},
#endif
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

/* The commands of one group; false when there is no such group. */
static bool group_usage(FILE *out, const char *group)
{
    bool found = false;
    size_t i;

    for (i = 0; commands[i].group; i++) {
        if (strcmp(commands[i].group, group) == 0) {
            fprintf(out, "%skt %s %s %s\n", found ? "  " : "usage: ", group, commands[i].verb,
                    commands[i].help);
            found = true;
        }
    }
    return found;
}

int main(int argc, char **argv)
{
    size_t i;

    gv_thread_use_c_locale(); /* commands parse JSON on this thread too */
    if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("kt %s\n", KT_VERSION);
#ifdef KT_HAVE_MIMALLOC
        int v = mi_version(); /* 209 is 2.0.9 */
        printf("malloc: mimalloc %d.%d.%d\n", v / 100, v / 10 % 10, v % 10);
#else
        printf("malloc: glibc\n");
#endif
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
    /* "kt events --help": that group's commands. */
    if (argc >= 3 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0) &&
        group_usage(stdout, argv[1])) {
        return 0;
    }
    fprintf(stderr, "kt: unknown command '%s%s%s'\n\n", argv[1], argc >= 3 ? " " : "",
            argc >= 3 ? argv[2] : "");
    usage(stderr);
    return 2;
}
