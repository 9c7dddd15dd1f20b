/* gateway/policies/gw_policies.h - the registry of compiled-in policy types */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GW_POLICIES_H
#define GW_POLICIES_H

#include "gateway/gw_policy.h"

/* Every policy type compiled in, NULL-terminated: what `kt gateway run` hands to the config
 * loader and the chain. */
const struct gw_policy_ops *const *gw_policies_builtin(void);
/* gw_policy_lookup(gw_policies_builtin(), name). */
const struct gw_policy_ops *gw_policy_find(const char *name);

#endif
