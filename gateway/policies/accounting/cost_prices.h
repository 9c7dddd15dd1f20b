/* gateway/policies/accounting/cost_prices.h - built-in model price table */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GW_COST_PRICES_H
#define GW_COST_PRICES_H

#include <stdbool.h>
#include <stdint.h>

/* USD per million tokens. */
struct gw_cost_price {
    const char *model;
    double input_per_mtok;
    double output_per_mtok;
};

/* The built-in table (OpenAI list prices, standard tier), NULL-model terminated. */
extern const struct gw_cost_price gw_cost_builtin_prices[];

/* Price of `model` in `table` (NULL-model terminated): an exact match, else the
 * longest entry that is a prefix of model followed by '-' (so dated snapshots
 * such as "gpt-4o-2024-08-06" use "gpt-4o", while "gpt-4o-mini" has its own
 * row). NULL when unknown. Pure; thread-safe. */
const struct gw_cost_price *gw_cost_price_find(const struct gw_cost_price *table,
                                               const char *model);

/* USD for tokens at price p (NULL: 0). */
double gw_cost_price_usd(const struct gw_cost_price *p, uint64_t prompt_tokens,
                         uint64_t completion_tokens);

/* USD for tokens at the built-in prices; 0 and *known = false for unknown models.
 * Used by rbac budgets when cost-tracker did not run before it. */
double gw_cost_builtin_usd(const char *model, uint64_t prompt_tokens, uint64_t completion_tokens,
                           bool *known);

#endif
