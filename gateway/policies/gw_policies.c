/* gateway/policies/gw_policies.c - the registry of compiled-in policy types */
/* SPDX-License-Identifier: Apache-2.0 */
#include <string.h>

#include "gateway/policies/gw_policies.h"

/* A plain const table instead of a generated one: five policies, all always
 * built, and a table is easier to read than CMake string plumbing. */
extern const struct gw_policy_ops gw_policy_injection;
extern const struct gw_policy_ops gw_policy_pii;
extern const struct gw_policy_ops gw_policy_audit;
extern const struct gw_policy_ops gw_policy_rbac;
extern const struct gw_policy_ops gw_policy_cost;

static const struct gw_policy_ops *const registry[] = {
    &gw_policy_injection, &gw_policy_pii, &gw_policy_audit, &gw_policy_rbac, &gw_policy_cost, NULL,
};

const struct gw_policy_ops *gw_policy_find(const char *name)
{
    return gw_policy_lookup(registry, name);
}

const struct gw_policy_ops *const *gw_policies_builtin(void)
{
    return registry;
}
