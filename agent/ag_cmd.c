/* agent/ag_cmd.c - `kt agent run` and `kt agent status` */
/* SPDX-License-Identifier: Apache-2.0 */
#include "agent/ag_cmd.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/ag_agent.h"
#include "core/gv_buf.h"
#include "core/gv_cfg.h"
#include "core/gv_log.h"
#include "core/gv_paths.h"

static const char run_usage[] =
    "usage: kt agent run [--state-dir DIR] [--agent-socket PATH] [--flush-interval SECONDS]\n"
    "                    [--metrics-listen HOST:PORT] [--idle-timeout SECONDS]\n"
    "                    [--socket-group GROUP] [--label NAME] [--no-fsync]\n"
    "                    [--exporters all|none|NAME,...] [--config FILE]\n"
    "                    [--log-format text|json] [--log-level error|warn|info|debug]\n";

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

int ag_cmd_agent_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"state-dir", required_argument, NULL, 's'},
        {"agent-socket", required_argument, NULL, 'S'},
        {"flush-interval", required_argument, NULL, 'f'},
        {"metrics-listen", required_argument, NULL, 'm'},
        {"idle-timeout", required_argument, NULL, 'i'},
        {"socket-group", required_argument, NULL, 'g'},
        {"label", required_argument, NULL, 'l'},
        {"no-fsync", no_argument, NULL, 'n'},
        {"exporters", required_argument, NULL, 'e'},
        {"config", required_argument, NULL, 'c'},
        {"log-format", required_argument, NULL, 'F'},
        {"log-level", required_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct ag_opts o;
    struct ag_agent *ag = NULL;
    char state_dir[4096];
    int c, lvl;
    gv_rc rc;

    memset(&o, 0, sizeof(o));
    o.flush_ms = 10000;
    o.idle_ms = 30ull * 60ull * 1000ull;
    o.fsync = true;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc + 1, argv - 1, "", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            o.state_dir = optarg;
            break;
        case 'S':
            o.socket_path = optarg;
            break;
        case 'f':
            if (parse_seconds_ms(optarg, &o.flush_ms) != 0 || o.flush_ms == 0) {
                fprintf(stderr,
                        "kt agent run: --flush-interval: not a positive number of "
                        "seconds: '%s'\n",
                        optarg);
                return 2;
            }
            break;
        case 'm':
            o.metrics_listen = optarg;
            break;
        case 'i':
            if (parse_seconds_ms(optarg, &o.idle_ms) != 0) {
                fprintf(stderr, "kt agent run: --idle-timeout: not a number of seconds: '%s'\n",
                        optarg);
                return 2;
            }
            break;
        case 'g':
            o.socket_group = optarg;
            break;
        case 'l':
            o.label = optarg;
            break;
        case 'n':
            o.fsync = false;
            break;
        case 'e':
            o.exporters = optarg;
            break;
        case 'c':
            o.config_path = optarg;
            break;
        case 'F':
            if (strcmp(optarg, "json") == 0) {
                gv_log_set_format(GV_LOG_JSON);
            }
            else if (strcmp(optarg, "text") == 0) {
                gv_log_set_format(GV_LOG_TEXT);
            }
            else {
                fprintf(stderr, "kt agent run: --log-format must be text or json\n");
                return 2;
            }
            break;
        case 'L':
            lvl = gv_log_level_parse(optarg);
            if (lvl < 0) {
                fprintf(stderr, "kt agent run: --log-level must be error|warn|info|debug\n");
                return 2;
            }
            gv_log_set_level((enum gv_log_level)lvl);
            break;
        case 'h':
            fputs(run_usage, stdout);
            return 0;
        default:
            fprintf(stderr, "kt agent run: bad option '%s'\n%s", argv[optind - 2], run_usage);
            return 2;
        }
    }
    if (optind - 1 < argc) {
        fprintf(stderr, "kt agent run: unexpected argument '%s'\n%s", argv[optind - 1], run_usage);
        return 2;
    }
    if (!o.state_dir) {
        if (gv_state_dir_default(state_dir, sizeof(state_dir)) != GV_OK) {
            fprintf(stderr, "kt agent run: state dir path too long\n");
            return 2;
        }
        o.state_dir = state_dir;
    }
    rc = ag_agent_create(&o, &ag);
    if (rc) {
        fprintf(stderr, "kt agent run: cannot start: %s (see the log above)\n", gv_rc_str(rc));
        return rc == GV_ECONFIG ? 2 : 1;
    }
    rc = ag_agent_run(ag, true);
    ag_agent_destroy(ag);
    return rc ? 1 : 0;
}

int ag_cmd_agent_status(int argc, char **argv)
{
    const char *state = NULL, *sock = NULL;
    char state_dir[4096], sock_buf[4096];
    struct gv_buf out;
    bool json = false;
    int i, code = 0;
    gv_rc rc;

    for (i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        }
        else if (strcmp(argv[i], "--state-dir") == 0 && i + 1 < argc) {
            state = argv[++i];
        }
        else if (strcmp(argv[i], "--agent-socket") == 0 && i + 1 < argc) {
            sock = argv[++i];
        }
        else {
            fprintf(stderr, "usage: kt agent status [--json] [--state-dir DIR] "
                            "[--agent-socket PATH]\n");
            return 2;
        }
    }
    if (!state) {
        if (gv_state_dir_default(state_dir, sizeof(state_dir)) != GV_OK) {
            fprintf(stderr, "kt agent status: state dir path too long\n");
            return 2;
        }
        state = state_dir;
    }
    if (!sock) {
        if (gv_agent_socket_default(state, sock_buf, sizeof(sock_buf)) != GV_OK) {
            fprintf(stderr, "kt agent status: socket path too long\n");
            return 2;
        }
        sock = sock_buf;
    }
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
