/* gateway/gw_cmd_policy.c - `kt policy check FILE`: validate a policy config */
/* SPDX-License-Identifier: Apache-2.0 */
#include "gateway/gw_cmd.h"

#include <stdio.h>
#include <string.h>

#include "core/gv_buf.h"
#include "core/gv_paths.h"
#include "gateway/gw_chain.h"
#include "gateway/gw_config.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: kt policy check [--state-dir DIR] FILE\n"
                 "  Loads FILE and validates every setting and each policy's paths under the\n"
                 "  state dir without creating anything, then prints a one-line summary\n"
                 "  (exit 0) or the first problem as file:line:col: message (exit 2).\n");
}

int gw_cmd_policy_check(int argc, char **argv)
{
    struct gv_cfg_err err;
    struct gw_config *cfg = NULL;
    struct gw_chain *chain = NULL;
    struct gv_buf names;
    char state_dir[4096];
    const char *state = NULL;
    const char *file = NULL;
    size_t i;
    int code = 2;
    int a;

    gv_buf_init(&names, 4096);
    for (a = 0; a < argc; a++) {
        if (strcmp(argv[a], "-h") == 0 || strcmp(argv[a], "--help") == 0) {
            usage(stdout);
            code = 0;
            goto out;
        }
        if (strcmp(argv[a], "--state-dir") == 0 && a + 1 < argc) {
            state = argv[++a];
        }
        else if (argv[a][0] == '-' && argv[a][1]) {
            fprintf(stderr, "kt policy check: unknown option '%s'\n", argv[a]);
            usage(stderr);
            goto out;
        }
        else if (!file) {
            file = argv[a];
        }
        else {
            fprintf(stderr, "kt policy check: one FILE only\n");
            usage(stderr);
            goto out;
        }
    }
    if (!file) {
        usage(stderr);
        goto out;
    }
    /* Policies that persist (audit, cost, rbac) check the same state dir the
     * gateway would use, so a check catches an unusable one too; a check only
     * looks, it never creates anything there. */
    if (!state) {
        if (gv_state_dir_default(state_dir, sizeof(state_dir)) == GV_OK) {
            state = state_dir;
        }
    }
    if (gw_config_load(file, &cfg, &err) != GV_OK) {
        fprintf(stderr, "%s\n", err.msg);
        goto out;
    }
    if (gw_chain_create_check(cfg, state, &chain, &err) != GV_OK) {
        fprintf(stderr, "%s\n", err.msg);
        goto out;
    }
    for (i = 0; i < cfg->nchain; i++) {
        if (gv_buf_appendf(&names, "%s%s", i ? ", " : "", cfg->chain[i].name) != GV_OK) {
            break;
        }
    }
    printf("%s: ok (pack %s %s%s, %zu target%s, chain: %s)\n", file, cfg->pack_name,
           cfg->pack_version, cfg->pack_enabled ? "" : " disabled", cfg->ntargets,
           cfg->ntargets == 1 ? "" : "s", names.len ? names.data : "none");
    code = 0;
out:
    gw_chain_destroy(chain);
    gw_config_destroy(cfg);
    gv_buf_free(&names);
    return code;
}
