/* cli/cmd_agent.c - `kt agent run` and `kt agent status` */
/* SPDX-License-Identifier: Apache-2.0 */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/ag_agent.h"
#include "cli/cli_args.h"
#include "core/gv_buf.h"
#include "core/gv_cfg.h"
#include "core/gv_log.h"

#define RUN_USAGE                                                                                  \
    "usage: kt agent run [--state-dir DIR] [--agent-socket PATH] [--flush-interval SECONDS]\n"     \
    "                    [--metrics-listen HOST:PORT] [--idle-timeout SECONDS]\n"                  \
    "                    [--socket-group GROUP] [--label NAME] [--no-fsync]\n"                     \
    "                    [--exporters all|none|NAME,...] [--config FILE]\n"                        \
    "                    [--log-format text|json] [--log-level error|warn|info|debug]\n"           \
    "  Receives the gateways' events on a Unix socket, aggregates them per W&B run and\n"          \
    "  exports them (W&B, Weave, OTLP, Prometheus). SIGTERM flushes and exits 0.\n"

/* Seconds as a decimal number ("10", "0.5"), within (0, 1 year]. */
static int parse_seconds_ms(const char *s, uint64_t *ms)
{
    double v;

    if (!gv_cfg_parse_double(s, &v) || !(v >= 0) || v > 31536000.0) {
        return -1;
    }
    *ms = (uint64_t)(v * 1000.0 + 0.5);
    return 0;
}

int cli_agent_run(int argc, char **argv)
{
    const char *flush = NULL, *idle = NULL, *log_format = NULL, *log_level = NULL;
    bool no_fsync = false;
    struct ag_opts o;
    struct gv_cfg_err err;
    const struct cli_opt opts[] = {
        {"--state-dir", CLI_OPT_STR, &o.state_dir, 0, 0},
        {"--agent-socket", CLI_OPT_STR, &o.socket_path, 0, 0},
        {"--flush-interval", CLI_OPT_STR, &flush, 0, 0},
        {"--metrics-listen", CLI_OPT_STR, &o.metrics_listen, 0, 0},
        {"--idle-timeout", CLI_OPT_STR, &idle, 0, 0},
        {"--socket-group", CLI_OPT_STR, &o.socket_group, 0, 0},
        {"--label", CLI_OPT_STR, &o.label, 0, 0},
        {"--no-fsync", CLI_OPT_FLAG, &no_fsync, 0, 0},
        {"--exporters", CLI_OPT_STR, &o.exporters, 0, 0},
        {"--config", CLI_OPT_STR, &o.config_path, 0, 0},
        {"--log-format", CLI_OPT_STR, &log_format, 0, 0},
        {"--log-level", CLI_OPT_STR, &log_level, 0, 0},
        {NULL, CLI_OPT_FLAG, NULL, 0, 0},
    };
    const struct cli_spec spec = {"kt agent run", RUN_USAGE, opts, NULL, 0, 0};
    struct ag_agent *ag = NULL;
    char state_dir[4096];
    int code, lvl;
    gv_rc rc;

    memset(&o, 0, sizeof(o));
    memset(&err, 0, sizeof(err));
    o.flush_ms = 10000;
    o.idle_ms = 30ull * 60ull * 1000ull;
    code = cli_args_parse(&spec, argc, argv, NULL);
    if (code != CLI_ARGS_RUN) {
        return code;
    }
    o.fsync = !no_fsync;
    o.err = &err;
    if (flush && (parse_seconds_ms(flush, &o.flush_ms) != 0 || o.flush_ms == 0)) {
        return cli_usage_error(&spec, "--flush-interval: not a positive number of seconds: '%s'",
                               flush);
    }
    if (idle && parse_seconds_ms(idle, &o.idle_ms) != 0) {
        return cli_usage_error(&spec, "--idle-timeout: not a number of seconds: '%s'", idle);
    }
    if (log_format) {
        if (strcmp(log_format, "json") != 0 && strcmp(log_format, "text") != 0) {
            return cli_usage_error(&spec, "--log-format must be text or json");
        }
        gv_log_set_format(strcmp(log_format, "json") == 0 ? GV_LOG_JSON : GV_LOG_TEXT);
    }
    if (log_level) {
        lvl = gv_log_level_parse(log_level);
        if (lvl < 0) {
            return cli_usage_error(&spec, "--log-level must be error|warn|info|debug");
        }
        gv_log_set_level((enum gv_log_level)lvl);
    }
    code = cli_state_dir(spec.cmd, &o.state_dir, state_dir, sizeof(state_dir));
    if (code != CLI_ARGS_RUN) {
        return code;
    }
    rc = ag_agent_create(&o, &ag);
    if (rc == GV_ECONFIG && err.msg[0]) {
        fprintf(stderr, "kt agent run: %s\n", err.msg);
        return 2;
    }
    if (rc) {
        fprintf(stderr, "kt agent run: cannot start: %s (see the log above)\n", gv_rc_str(rc));
        return rc == GV_ECONFIG ? 2 : 1;
    }
    rc = ag_agent_run(ag, true);
    ag_agent_destroy(ag);
    return rc ? 1 : 0;
}

int cli_agent_status(int argc, char **argv)
{
    const char *state = NULL, *sock = NULL;
    struct cli_paths paths;
    struct gv_buf out;
    bool json = false;
    const struct cli_opt opts[] = {
        {"--json", CLI_OPT_FLAG, &json, 0, 0},
        {"--state-dir", CLI_OPT_STR, &state, 0, 0},
        {"--agent-socket", CLI_OPT_STR, &sock, 0, 0},
        {NULL, CLI_OPT_FLAG, NULL, 0, 0},
    };
    const struct cli_spec spec = {
        .cmd = "kt agent status",
        .usage = "usage: kt agent status [--json] [--state-dir DIR] [--agent-socket PATH]\n"
                 "  Per-run counts, latency percentiles, tokens and cost from the running agent.\n",
        .opts = opts,
    };
    int code = cli_args_parse(&spec, argc, argv, NULL);
    gv_rc rc;

    if (code != CLI_ARGS_RUN) {
        return code;
    }
    code = cli_agent_paths(spec.cmd, &state, &sock, &paths);
    if (code != CLI_ARGS_RUN) {
        return code;
    }
    code = 0;
    gv_buf_init(&out, 0);
    rc = ag_status_query(sock, json, 5000, &out);
    if (rc) {
        fprintf(stderr, "kt agent status: no agent answering at %s (%s)\n", sock, gv_rc_str(rc));
        code = 1;
    }
    else {
        fwrite(out.data, 1, out.len, stdout);
    }
    gv_buf_free(&out);
    return code;
}
