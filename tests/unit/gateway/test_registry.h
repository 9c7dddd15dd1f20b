/* tests/unit/gateway/test_registry.h - a policy registry of a test's own policies and kt's */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KT_TEST_REGISTRY_H
#define KT_TEST_REGISTRY_H

#include <stddef.h>

#include "gateway/policies/gw_policies.h"

/* extras (NULL-terminated) first, then every built-in policy, NULL-terminated, into out[max]:
 * what a test hands to gw_config_load_with or puts in cfg->policies, so the chain finds its
 * test policies by name beside the real ones. Entries past max - 1 are left out. */
static inline const struct gw_policy_ops *const *
test_registry_with(const struct gw_policy_ops *const *extras, const struct gw_policy_ops **out,
                   size_t max)
{
    const struct gw_policy_ops *const *builtin = gw_policies_builtin();
    size_t n = 0, i;

    for (i = 0; extras[i] && n + 1 < max; i++) {
        out[n++] = extras[i];
    }
    for (i = 0; builtin[i] && n + 1 < max; i++) {
        out[n++] = builtin[i];
    }
    out[n] = NULL;
    return out;
}

#endif
