/* exporters/ex_registry.c - the registry of compiled-in exporters */
/* SPDX-License-Identifier: Apache-2.0 */
#include "exporters/ex_registry.h"

#include <stddef.h>

/* A plain const table, as for policies: each exporter's CMake option defines KT_EX_<NAME>
 * for this file when the exporter is built. */
#ifdef KT_EX_OTLP
extern const struct ex_exporter_ops ex_otlp;
#endif
#ifdef KT_EX_PROM
extern const struct ex_exporter_ops ex_prom;
#endif
#ifdef KT_EX_WANDB
extern const struct ex_exporter_ops ex_wandb;
#endif
#ifdef KT_EX_WEAVE
extern const struct ex_exporter_ops ex_weave;
#endif

static const struct ex_exporter_ops *const registry[] = {
#ifdef KT_EX_OTLP
    &ex_otlp,
#endif
#ifdef KT_EX_PROM
    &ex_prom,
#endif
#ifdef KT_EX_WANDB
    &ex_wandb,
#endif
#ifdef KT_EX_WEAVE
    &ex_weave,
#endif
    NULL,
};

const struct ex_exporter_ops *const *ex_registry_builtin(void)
{
    return registry;
}
