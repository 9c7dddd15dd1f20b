/* gateway/policies/cost/cost.c - cost per request and budgets */
/* SPDX-License-Identifier: Apache-2.0 */
#include <stddef.h>

#include "gateway/gw_policy.h"

struct cost_ctx {
    const struct gv_ynode *prices;
    const struct gv_ynode *budgets;
};

static const struct gv_cfg_map config_map[] = {
    {"prices", GV_CFG_NODE, offsetof(struct cost_ctx, prices), NULL, 0, NULL, 0, 0,
     "model -> {input_per_mtok, output_per_mtok} in USD, over the built-in table"},
    {"budgets", GV_CFG_NODE, offsetof(struct cost_ctx, budgets), NULL, 0, NULL, 0, 0,
     "{runs: {<run id>|default: budget_usd}, teams: {<team>: budget_usd}}"},
    {NULL, 0, 0, NULL, 0, NULL, 0, 0, NULL},
};

const struct gw_policy_ops gw_policy_cost = {
    .name = "cost-tracker",
    .config_map = config_map,
    .ctx_size = sizeof(struct cost_ctx),
    .flags = GW_POL_PROMPT | GW_POL_COMPLETE,
};
