/* gateway/policies/accounting/cost_prices.c - built-in model price table */
/* SPDX-License-Identifier: Apache-2.0 */
#include "gateway/policies/accounting/cost_prices.h"

#include <stddef.h>

/* OpenAI standard-tier list prices, USD per 1M tokens (input, output), as
 * published on openai.com/api/pricing. Override or extend them with
 * policy.cost-tracker.prices; a price change is a config change, not a build. */
const struct gw_cost_price gw_cost_builtin_prices[] = {
    {"gpt-5", 1.25, 10.00},
    {"gpt-5-mini", 0.25, 2.00},
    {"gpt-5-nano", 0.05, 0.40},
    {"gpt-4.1", 2.00, 8.00},
    {"gpt-4.1-mini", 0.40, 1.60},
    {"gpt-4.1-nano", 0.10, 0.40},
    {"gpt-4o", 2.50, 10.00},
    {"gpt-4o-mini", 0.15, 0.60},
    {"gpt-4-turbo", 10.00, 30.00},
    {"gpt-4", 30.00, 60.00},
    {"gpt-3.5-turbo", 0.50, 1.50},
    {"o1", 15.00, 60.00},
    {"o1-mini", 1.10, 4.40},
    {"o3", 2.00, 8.00},
    {"o3-mini", 1.10, 4.40},
    {"o4-mini", 1.10, 4.40},
    {NULL, 0, 0},
};

const struct gw_cost_price *gw_cost_price_find(const struct gw_cost_price *table, const char *model)
{
    const struct gw_cost_price *best = NULL;
    size_t best_len = 0;
    size_t i;

    if (!model || !*model) {
        return NULL;
    }
    /* One compare per row: where the row's name is a prefix of model, model's next
     * byte tells an exact match (NUL) from a dated snapshot ('-'). A request
     * prices its model once or twice; this used to cost three string calls a row. */
    for (i = 0; table[i].model; i++) {
        const char *a = model, *b = table[i].model;
        while (*b && *a == *b) {
            a++;
            b++;
        }
        if (*b) {
            continue;
        }
        if (*a == '\0') {
            return &table[i];
        }
        if (*a == '-' && (size_t)(a - model) > best_len) {
            best = &table[i];
            best_len = (size_t)(a - model);
        }
    }
    return best;
}

double gw_cost_price_usd(const struct gw_cost_price *p, uint64_t prompt_tokens,
                         uint64_t completion_tokens)
{
    if (!p) {
        return 0.0;
    }
    return ((double)prompt_tokens * p->input_per_mtok +
            (double)completion_tokens * p->output_per_mtok) /
           1e6;
}

double gw_cost_builtin_usd(const char *model, uint64_t prompt_tokens, uint64_t completion_tokens,
                           bool *known)
{
    const struct gw_cost_price *p = gw_cost_price_find(gw_cost_builtin_prices, model);

    *known = p != NULL;
    return gw_cost_price_usd(p, prompt_tokens, completion_tokens);
}
