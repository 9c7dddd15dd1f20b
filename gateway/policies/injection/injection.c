/* gateway/policies/injection/injection.c - prompt-injection detector */
/* SPDX-License-Identifier: Apache-2.0 */
#include <stddef.h>

#include "gateway/gw_policy.h"

struct injection_ctx {
    double threshold;
    int action; /* index into actions[] */
};

static const char *const actions[] = {"block", "flag", "log", NULL};

static const struct gv_cfg_map config_map[] = {
    {"threshold", GV_CFG_DOUBLE, offsetof(struct injection_ctx, threshold), "0.8", 0, NULL, 0, 1,
     "score at or above which the action applies"},
    {"action", GV_CFG_ENUM, offsetof(struct injection_ctx, action), "block", 0, actions, 0, 0,
     "block (403), flag (allow, record as flagged) or log (record only)"},
    {NULL, 0, 0, NULL, 0, NULL, 0, 0, NULL},
};

const struct gw_policy_ops gw_policy_injection = {
    .name = "prompt-injection",
    .config_map = config_map,
    .ctx_size = sizeof(struct injection_ctx),
    .flags = GW_POL_PROMPT,
};
