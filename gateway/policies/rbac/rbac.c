/* gateway/policies/rbac/rbac.c - API keys to principals, roles to models */
/* SPDX-License-Identifier: Apache-2.0 */
#include <stddef.h>

#include "gateway/gw_policy.h"

struct rbac_ctx {
    const struct gv_ynode *keys;
    const struct gv_ynode *roles;
    const struct gv_ynode *teams;
};

static const struct gv_cfg_map config_map[] = {
    {"keys", GV_CFG_NODE, offsetof(struct rbac_ctx, keys), NULL, GV_CFG_REQUIRED, NULL, 0, 0,
     "principals: [{name, key_sha256, team, role}]"},
    {"roles", GV_CFG_NODE, offsetof(struct rbac_ctx, roles), NULL, GV_CFG_REQUIRED, NULL, 0, 0,
     "role -> {models: [...], targets: [...], budget_usd}"},
    {"teams", GV_CFG_NODE, offsetof(struct rbac_ctx, teams), NULL, 0, NULL, 0, 0,
     "W&B entity/team -> role"},
    {NULL, 0, 0, NULL, 0, NULL, 0, 0, NULL},
};

const struct gw_policy_ops gw_policy_rbac = {
    .name = "rbac",
    .config_map = config_map,
    .ctx_size = sizeof(struct rbac_ctx),
    .flags = GW_POL_PROMPT,
    .settings_required = true,
};
