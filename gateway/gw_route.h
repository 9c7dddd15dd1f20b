/* gateway/gw_route.h - routing and the small routes: /health, /v1/models, errors */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GW_ROUTE_H
#define GW_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "core/gv_buf.h"
#include "core/gv_record.h"
#include "gateway/gw_conn.h"
#include "gateway/gw_worker.h"

/* gw_conn_dispatch_fn for a worker (arg is the worker). */
void gw_route_dispatch(void *arg, struct gw_conn *c, const struct gw_conn_req *rq);
/* gw_conn_refuse_fn for a worker: the parser's refusal as an OpenAI error. */
void gw_route_refuse(void *arg, struct gw_conn *c, int status, const char *code,
                     const char *message);

/* Appends the x-kt-* header lines every answer carries. */
void gw_route_kt_headers(struct gv_buf *h, const char *reqid, const char *run_id,
                         enum gv_decision d, uint64_t overhead_us);

/* Replaces out with an OpenAI error body for status (type from the status when
 * NULL); never fails (falls back to a short message). */
void gw_route_error_body(struct gv_buf *out, int status, const char *type, const char *code,
                         const char *param, const char *message);

/* The /v1/models body, built once at start. The caller frees it. */
char *gw_route_models_json(const struct gw_config *cfg, uint64_t created);

#endif
