/* gateway/policies/pii/pii.c - PII detection and redaction */
/* SPDX-License-Identifier: Apache-2.0 */
#include <stdbool.h>
#include <stddef.h>

#include "gateway/gw_policy.h"

struct pii_ctx {
    int action;
    struct gv_cfg_strlist entities;
    const struct gv_ynode *operators;
    bool scan_responses;
};

static const char *const actions[] = {"redact", "block", "flag", NULL};

static const struct gv_cfg_map config_map[] = {
    {"action", GV_CFG_ENUM, offsetof(struct pii_ctx, action), "redact", 0, actions, 0, 0,
     "redact (replace with <ENTITY_TYPE>), block (403) or flag"},
    {"entities", GV_CFG_STRLIST, offsetof(struct pii_ctx, entities), NULL, 0, NULL, 0, 0,
     "Presidio entity names to detect; absent means all"},
    {"operator", GV_CFG_NODE, offsetof(struct pii_ctx, operators), NULL, 0, NULL, 0, 0,
     "per-entity replacement: replace (default), mask or hash"},
    {"scan_responses", GV_CFG_BOOL, offsetof(struct pii_ctx, scan_responses), "false", 0, NULL, 0,
     0, "also redact the upstream's answer, streamed answers included"},
    {NULL, 0, 0, NULL, 0, NULL, 0, 0, NULL},
};

const struct gw_policy_ops gw_policy_pii = {
    .name = "pii-detector",
    .config_map = config_map,
    .ctx_size = sizeof(struct pii_ctx),
    .flags = GW_POL_PROMPT | GW_POL_RESPONSE,
};
