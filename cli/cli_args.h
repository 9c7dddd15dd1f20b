/* cli/cli_args.h - one argv parser for every kt command */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KT_CLI_ARGS_H
#define KT_CLI_ARGS_H

#include <stdbool.h>
#include <stddef.h>

/* Every command reads its options the same way:
 * - `--name value` and `--name=value`; a flag takes no value (`--json`);
 * - `-h` / `--help` print the command's usage on stdout, exit 0;
 * - `--` ends the options; a lone `-` is a positional argument;
 * - an unknown option, a missing or bad value or a wrong count of positional arguments prints
 *   one line `<cmd>: <what>` and the usage on stderr, exit 2.
 * The same option given twice keeps the last value, as getopt does, except a list option,
 * which keeps them all (more than its room is a usage error). */

enum cli_opt_kind {
    CLI_OPT_STR,  /* const char **out: points into argv */
    CLI_OPT_LONG, /* long *out, within [min, max] */
    CLI_OPT_FLAG, /* bool *out: set to true */
    CLI_OPT_LIST  /* struct cli_list *out: every value, in order (the option may repeat) */
};

/* What a CLI_OPT_LIST collects: values point into argv. */
struct cli_list {
    const char **v; /* room for max values */
    int n, max;
};

struct cli_opt {
    const char *name; /* "--listen" */
    enum cli_opt_kind kind;
    void *out;
    long min, max; /* CLI_OPT_LONG only */
};

struct cli_spec {
    const char *cmd;            /* "kt gateway run": the prefix of every error line */
    const char *usage;          /* whole usage text, ends with a newline */
    const struct cli_opt *opts; /* ends with a row whose name is NULL */
    const char **pos;           /* positional arguments land here, in order (or NULL) */
    int pos_min, pos_max;       /* how many positional arguments the command takes */
};

/* What cli_args_parse returns besides an exit code. */
#define CLI_ARGS_RUN (-1)

/* Parses argv against spec. CLI_ARGS_RUN: the command runs, options and positional
 * arguments are stored (*npos = how many positionals, may be NULL). Otherwise the exit code
 * the command returns at once: 0 after --help, 2 after a usage error (already printed). */
int cli_args_parse(const struct cli_spec *spec, int argc, char **argv, int *npos);

/* Prints "<cmd>: <message>" and the usage on stderr; returns 2, the usage exit code, so a
 * command can say `return cli_usage_error(&spec, "...")` for checks of its own. */
int cli_usage_error(const struct cli_spec *spec, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The state dir of a command that keeps state: *state as given, or where it is NULL the
 * default state dir (gv_state_dir_default), written into buf. CLI_ARGS_RUN, or 2 after
 * "<cmd>: no usable state dir; pass --state-dir" on stderr. `gateway run` and `agent run`
 * share it so that they fall back, and say so, the same way. */
int cli_state_dir(const char *cmd, const char **state, char *buf, size_t size);

/* Room for the state dir and the agent socket a command falls back to. */
struct cli_paths {
    char state[4096];
    char sock[4096];
};

/* The state dir and agent socket of a command that talks to the agent: *state and *sock as
 * given, or where they are NULL the defaults every kt command agrees on (the default state
 * dir, <state>/agent.sock), written into buf. CLI_ARGS_RUN, or 2 after "<cmd>: state dir
 * path too long" (or "socket path too long") on stderr. */
int cli_agent_paths(const char *cmd, const char **state, const char **sock, struct cli_paths *buf);

#endif
