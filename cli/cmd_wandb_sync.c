/* cli/cmd_wandb_sync.c - kt wandb sync: offline W&B runs and offline Weave calls */
/* SPDX-License-Identifier: Apache-2.0 */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli_args.h"
#include "core/gv_cfg.h"
#include "core/gv_log.h"
#include "core/gv_mem.h"
#include "core/gv_paths.h"
#include "core/gv_time.h"
#include "exporters/weave/weave.h"

static bool is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static const char *base_name(const char *p)
{
    size_t n = strlen(p);
    const char *s;

    while (n > 1 && p[n - 1] == '/') {
        n--;
    }
    s = p + n;
    while (s > p && s[-1] != '/') {
        s--;
    }
    return s;
}

/* Sibling `name` of dir (dir's parent + name). */
static int sibling(const char *dir, const char *name, char *out, size_t size)
{
    const char *b = base_name(dir);
    int n = snprintf(out, size, "%.*s%s", (int)(b - dir), dir, name);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* Uploads one offline outbox; attempts rounds with backoff (and Retry-After). */
static int sync_weave(const char *dir, long attempts)
{
    struct ex_weave_sender s;
    struct ex_weave_outbox ob;
    uint64_t before, wait_ms = 1000;
    long i;
    int ret = 1;

    ex_weave_sender_init(&s, NULL);
    s.entity = getenv("WANDB_ENTITY") ? getenv("WANDB_ENTITY") : "";
    s.project = getenv("WANDB_PROJECT") ? getenv("WANDB_PROJECT") : "";
    if (!s.api.have_key) {
        fprintf(stderr,
                "kt wandb sync: no W&B credentials: set WANDB_API_KEY or add a netrc entry "
                "for %s\n",
                s.api.base_url);
        ex_weave_sender_free(&s);
        return 1;
    }
    if (ex_weave_outbox_open(&ob, dir, 0, true) != GV_OK) {
        fprintf(stderr, "kt wandb sync: cannot open %s (is an agent using it?)\n", dir);
        goto out;
    }
    before = atomic_load(&ob.pending_calls);
    for (i = 0; i < attempts; i++) {
        if (ex_weave_send_outbox(&s, NULL, &ob, 0) == EX_WEAVE_SENT) {
            break;
        }
        if (i + 1 < attempts) {
            uint64_t now = gv_mono_us();
            uint64_t w = wait_ms;
            uint64_t nb = atomic_load(&s.not_before_us);
            if (nb > now && (nb - now) / 1000 > w) {
                w = (nb - now) / 1000 + 1;
            }
            usleep((useconds_t)(w * 1000));
            wait_ms = wait_ms < 16000 ? wait_ms * 2 : wait_ms;
        }
    }
    printf("kt wandb sync: %llu Weave call(s) in %s: %llu sent, %llu failed, %llu left "
           "(trace server %s)\n",
           (unsigned long long)before, dir, (unsigned long long)atomic_load(&s.sent),
           (unsigned long long)atomic_load(&s.failed),
           (unsigned long long)atomic_load(&ob.pending_calls), s.trace_url);
    if (atomic_load(&ob.pending_calls) > 0) {
        fprintf(stderr, "kt wandb sync: Weave calls left in %s: %s\n", dir, s.last_error);
    }
    ret = atomic_load(&ob.pending_calls) == 0 && atomic_load(&s.failed) == 0 ? 0 : 1;
out:
    ex_weave_outbox_close(&ob);
    ex_weave_sender_free(&s);
    return ret;
}

int cli_wandb_sync(int argc, char **argv)
{
    char wandb_dir[1024], weave_dir[1024], state[900];
    const char *dir = NULL, *state_dir = NULL;
    long attempts = 8;
    bool run_wandb, run_weave;
    const struct cli_opt opts[] = {
        {"--attempts", CLI_OPT_LONG, &attempts, 1, 1000},
        {"--state-dir", CLI_OPT_STR, &state_dir, 0, 0},
        {NULL, CLI_OPT_FLAG, NULL, 0, 0},
    };
    const struct cli_spec spec = {
        "kt wandb sync",
        "usage: kt wandb sync [DIR] [--attempts N] [--state-dir DIR]\n"
        "  Uploads the W&B runs of <state>/wandb-offline and the Weave calls of\n"
        "  <state>/weave-offline, resuming where an earlier sync stopped; DIR names either,\n"
        "  the other is its sibling. N (default 8) tries per request.\n",
        opts,
        &dir,
        0,
        1};
    int ret = cli_args_parse(&spec, argc, argv, NULL);

    if (ret != CLI_ARGS_RUN) {
        return ret;
    }
    ret = 0;
    if (dir) {
        bool is_weave = strncmp(base_name(dir), "weave-offline", 13) == 0;
        snprintf(is_weave ? weave_dir : wandb_dir, 1024, "%s", dir);
        if (sibling(dir, is_weave ? "wandb-offline" : "weave-offline",
                    is_weave ? wandb_dir : weave_dir, 1024) != 0) {
            return 2;
        }
        run_wandb = !is_weave || is_dir(wandb_dir);
    }
    else {
        if (state_dir) {
            snprintf(state, sizeof(state), "%s", state_dir);
        }
        else if (gv_state_dir_default(state, sizeof(state)) != GV_OK) {
            fprintf(stderr, "kt wandb sync: cannot find the state directory\n");
            return 2;
        }
        snprintf(wandb_dir, sizeof(wandb_dir), "%s/wandb-offline", state);
        snprintf(weave_dir, sizeof(weave_dir), "%s/weave-offline", state);
        run_wandb = is_dir(wandb_dir) || !is_dir(weave_dir);
    }
    run_weave = is_dir(weave_dir);
    if (run_wandb) {
        ret = cli_wandb_sync_runs(wandb_dir, attempts);
    }
    if (run_weave) {
        int w = sync_weave(weave_dir, attempts);
        ret = ret ? ret : w;
    }
    return ret;
}
