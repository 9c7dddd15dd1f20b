/* exporters/ex_registry.h - the registry of compiled-in exporters */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef EX_REGISTRY_H
#define EX_REGISTRY_H

#include "exporters/ex_exporter.h"

/* Every exporter this build has, NULL-terminated, in the order they start: what `kt agent run`
 * hands to the agent (ag_opts.exporters). Optional exporters (EX_WANDB=OFF, ...) are absent. */
const struct ex_exporter_ops *const *ex_registry_builtin(void);

#endif
