/* gateway/gw_policy.c - finding a policy type in a registry */
/* SPDX-License-Identifier: Apache-2.0 */
#include "gateway/gw_policy.h"

#include <string.h>

const struct gw_policy_ops *gw_policy_lookup(const struct gw_policy_ops *const *reg,
                                             const char *name)
{
    size_t i;

    for (i = 0; reg && reg[i]; i++) {
        if (strcmp(reg[i]->name, name) == 0) {
            return reg[i];
        }
    }
    return NULL;
}

void gw_verdict_block(struct gw_verdict *out, uint16_t status, const char *code,
                      const char *message)
{
    out->action = GW_ACTION_BLOCK;
    out->status = status;
    out->code = code;
    out->message = message;
}

void gw_verdict_act(struct gw_verdict *out, enum gw_action action, const char *code,
                    const char *message)
{
    if (action == GW_ACTION_BLOCK) {
        gw_verdict_block(out, 403, code, message);
        return;
    }
    out->action = action;
}
