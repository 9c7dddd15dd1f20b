/* cli/cmd_gateway.c - `kt gateway run`: load config, start the server, stop cleanly */
/* SPDX-License-Identifier: Apache-2.0 */
#include "cli/cli.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "cli/cli_args.h"
#include "core/gv_buf.h"
#include "core/gv_log.h"
#include "core/gv_paths.h"
#include "gateway/gw_chain.h"
#include "gateway/gw_config.h"
#include "gateway/gw_emit.h"
#include "gateway/gw_server.h"

#define MOD "gateway"
/* In-flight requests get this long to finish after SIGTERM/SIGINT. */
#define DRAIN_MS 10000L

struct run_opts {
    const char *listen;
    const char *config;
    const char *state_dir;
    const char *agent_socket;
    const char *log_level;
    const char *log_format;
    long workers;
};

struct sigctx {
    struct gw_server *srv;
    struct event_base *base;
    int count;
};

#define USAGE                                                                                      \
    "usage: kt gateway run --listen HOST:PORT --policy-config FILE [--state-dir DIR]\n"            \
    "                      [--agent-socket PATH] [--workers N]\n"                                  \
    "                      [--log-level error|warn|info|debug]\n"                                  \
    "                      [--log-format text|json]\n"                                             \
    "  Serves POST /v1/chat/completions, GET /v1/models and GET /health, enforcing\n"              \
    "  the policy chain of FILE on every call. SIGTERM/SIGINT drain and exit 0.\n"

static int parse_args(int argc, char **argv, struct run_opts *o)
{
    const struct cli_opt opts[] = {
        {"--listen", CLI_OPT_STR, &o->listen, 0, 0},
        {"--policy-config", CLI_OPT_STR, &o->config, 0, 0},
        {"--state-dir", CLI_OPT_STR, &o->state_dir, 0, 0},
        {"--agent-socket", CLI_OPT_STR, &o->agent_socket, 0, 0},
        {"--log-level", CLI_OPT_STR, &o->log_level, 0, 0},
        {"--log-format", CLI_OPT_STR, &o->log_format, 0, 0},
        {"--workers", CLI_OPT_LONG, &o->workers, 1, 256},
        {NULL, CLI_OPT_FLAG, NULL, 0, 0},
    };
    const struct cli_spec spec = {"kt gateway run", USAGE, opts, NULL, 0, 0};
    int code = cli_args_parse(&spec, argc, argv, NULL);

    if (code != CLI_ARGS_RUN) {
        return code;
    }
    if (!o->listen || !o->config) {
        return cli_usage_error(&spec, "--listen and --policy-config are required");
    }
    return CLI_ARGS_RUN;
}

static void on_signal(evutil_socket_t sig, short kind, void *arg)
{
    struct sigctx *sc = arg;

    sc->count++;
    if (sc->count == 1) {
        gv_log(GV_LOG_INFO, MOD, "stopping", "signal=%d drain_ms=%ld", (int)sig, DRAIN_MS);
        gw_server_stop(sc->srv, DRAIN_MS);
        event_base_loopexit(sc->base, NULL);
    }
}

/* The chain as "a,b,c" for the ready line and the agent's hello. */
static void chain_csv(struct gw_chain *chain, struct gv_buf *out)
{
    size_t i, n = gw_chain_size(chain);

    for (i = 0; i < n; i++) {
        if (gv_buf_appendf(out, "%s%s", i ? "," : "", gw_chain_name(chain, i)) != GV_OK) {
            break;
        }
    }
    if (n == 0) {
        gv_buf_append_str(out, "-");
    }
}

/* Each in-flight request holds two descriptors (client and upstream) and the
 * default soft limit is often 1024, so a few hundred streams would exhaust it.
 * Raise the soft limit to the hard one, as nginx's worker_rlimit_nofile lets
 * operators do; the hard limit stays the administrator's decision. */
static void raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t was = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            rl.rlim_cur = was;
        }
    }
    gv_log(GV_LOG_INFO, "gateway", "open-file limit", "nofile=%llu hard=%llu",
           (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);
}

int cli_gateway_run(int argc, char **argv)
{
    struct run_opts o;
    struct gv_cfg_err err;
    struct gw_config *cfg = NULL;
    struct gw_chain *chain = NULL;
    struct gw_emitter *em = NULL;
    struct gw_server *srv = NULL;
    struct gw_server_opts so;
    struct event_base *base = NULL;
    struct event *sigterm = NULL, *sigint = NULL;
    struct sigctx sc;
    struct gv_buf names;
    const char *state;
    char state_buf[4096], msg[512];
    int code, lvl;

    memset(&o, 0, sizeof(o));
    memset(&sc, 0, sizeof(sc));
    gv_buf_init(&names, 8192);
    code = parse_args(argc, argv, &o);
    if (code != CLI_ARGS_RUN) {
        goto out;
    }
    code = 2;
    if (o.log_level) {
        lvl = gv_log_level_parse(o.log_level);
        if (lvl < 0) {
            fprintf(stderr, "kt gateway run: unknown --log-level '%s'\n", o.log_level);
            goto out;
        }
        gv_log_set_level((enum gv_log_level)lvl);
    }
    if (o.log_format) {
        if (strcmp(o.log_format, "text") != 0 && strcmp(o.log_format, "json") != 0) {
            fprintf(stderr, "kt gateway run: --log-format wants text or json\n");
            goto out;
        }
        gv_log_set_format(strcmp(o.log_format, "json") == 0 ? GV_LOG_JSON : GV_LOG_TEXT);
    }
    if (cli_state_dir("kt gateway run", &o.state_dir, state_buf, sizeof(state_buf)) !=
        CLI_ARGS_RUN) {
        goto out;
    }
    state = o.state_dir;
    /* mkdir -p passes an existing directory on a read-only file system (EEXIST);
     * the check names what is wrong before anything tries to write there. An
     * unusable state dir is a usage error: exit 2. */
    if (gv_mkdir_p(state, 0700) != GV_OK || gv_dir_check(state) != GV_OK) {
        fprintf(stderr, "kt gateway run: cannot use state dir %s: %s\n", state, strerror(errno));
        goto out;
    }
    if (gw_config_load(o.config, &cfg, &err) != GV_OK) {
        fprintf(stderr, "%s\n", err.msg);
        goto out;
    }
    if (gw_chain_create(cfg, state, &chain, &err) != GV_OK) {
        fprintf(stderr, "%s\n", err.msg);
        goto out;
    }
    code = 1;
    /* Where records go: the one place that picks the emitter. */
    if (gw_emitter_create_agent(state, o.agent_socket, &em) != GV_OK) {
        fprintf(stderr, "kt gateway run: cannot create the event emitter\n");
        goto out;
    }
    chain_csv(chain, &names);
    gw_emitter_set_pack(em, cfg->pack_name, cfg->pack_version, names.data);

    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads();
    memset(&so, 0, sizeof(so));
    so.listen = o.listen;
    so.workers = (int)o.workers;
    so.cfg = cfg;
    so.chain = chain;
    so.emitter = em;
    so.drain_ms = DRAIN_MS;
    if (gw_server_create(&so, &srv, msg, sizeof(msg)) != GV_OK) {
        fprintf(stderr, "kt gateway run: %s\n", msg);
        code = 2;
        goto out;
    }
    raise_fd_limit();
    base = event_base_new();
    if (!base) {
        goto out;
    }
    sc.srv = srv;
    sc.base = base;
    sigterm = evsignal_new(base, SIGTERM, on_signal, &sc);
    sigint = evsignal_new(base, SIGINT, on_signal, &sc);
    if (!sigterm || !sigint || evsignal_add(sigterm, NULL) != 0 ||
        evsignal_add(sigint, NULL) != 0) {
        fprintf(stderr, "kt gateway run: cannot install signal handlers\n");
        goto out;
    }
    /* From here on workers log a line per request: queue lines and write them
     * from a background thread, so stderr I/O never sits on the request path.
     * Config errors above were written synchronously. If the thread cannot
     * start, the log just stays synchronous. */
    (void)gv_log_async_start();
    if (gw_server_start(srv) != GV_OK) {
        gv_log_async_stop();
        fprintf(stderr, "kt gateway run: cannot start worker threads\n");
        goto out;
    }
    gv_log(GV_LOG_INFO, MOD, "listening", "addr=%s workers=%d pack=%s chain=%s",
           gw_server_addr(srv), gw_server_workers(srv),
           cfg->pack_name && cfg->pack_name[0] ? cfg->pack_name : "-", names.data);
    event_base_dispatch(base);
    gw_server_join(srv);
    gv_log(GV_LOG_INFO, MOD, "stopped", NULL);
    code = 0;
out:
    if (sigterm) {
        event_free(sigterm);
    }
    if (sigint) {
        event_free(sigint);
    }
    gw_server_destroy(srv);
    if (base) {
        event_base_free(base);
    }
    gw_emitter_destroy(em);
    gw_chain_destroy(chain);
    gw_config_destroy(cfg);
    gv_buf_free(&names);
    /* Workers are joined and the teardown above has logged: write what is queued. */
    gv_log_async_stop();
    return code;
}
