/* cli/cmd_policy.c - `kt policy check FILE`: validate a policy config */
/* SPDX-License-Identifier: Apache-2.0 */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

#include "cli/cli_args.h"
#include "core/gv_buf.h"
#include "core/gv_paths.h"
#include "gateway/gw_chain.h"
#include "gateway/gw_config.h"

#define USAGE                                                                                      \
    "usage: kt policy check [--state-dir DIR] FILE\n"                                              \
    "  Loads FILE and validates every setting and each policy's paths under the\n"                 \
    "  state dir without creating anything, then prints a one-line summary\n"                      \
    "  (exit 0) or the first problem as file:line:col: message (exit 2).\n"

int cli_policy_check(int argc, char **argv)
{
    struct gv_cfg_err err;
    struct gw_config *cfg = NULL;
    struct gw_chain *chain = NULL;
    struct gv_buf names;
    char state_dir[4096];
    const char *state = NULL;
    const char *file = NULL;
    const struct cli_opt opts[] = {
        {"--state-dir", CLI_OPT_STR, &state, 0, 0},
        {NULL, CLI_OPT_FLAG, NULL, 0, 0},
    };
    const struct cli_spec spec = {"kt policy check", USAGE, opts, &file, 1, 1};
    size_t i;
    int code;

    gv_buf_init(&names, 4096);
    code = cli_args_parse(&spec, argc, argv, NULL);
    if (code != CLI_ARGS_RUN) {
        goto out;
    }
    code = 2;
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
