/* exporters/prom/prom.h - Prometheus text exposition of per-run aggregates */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef EX_PROM_H
#define EX_PROM_H

#include <stdint.h>

#include "exporters/ex_exporter.h"

extern const struct ex_exporter_ops ex_prom;

/* The port the endpoint is bound to (useful with port 0); 0 before init. */
int ex_prom_port(struct ex_exporter *ex);

#endif
