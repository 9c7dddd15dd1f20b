/* core/gv_trace.h - W3C trace context ids: derive, parse, format */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GV_TRACE_H
#define GV_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/gv_rc.h"
#include "core/gv_record.h"

/* "00-" + 32 hex + "-" + 16 hex + "-" + 2 hex */
#define GV_TRACEPARENT_LEN 55

/* Fills out[0..n) (n <= 32) with the leading bytes of SHA-256(label NUL seed).
 * The same inputs give the same id on every host and every replay; a result
 * that is all zero (invalid in W3C) has its last byte set to 1. */
void gv_trace_derive(const char *label, const void *seed, size_t seed_len, uint8_t *out, size_t n);

/* A request's own ids, derived from the request: see gv_trace_derive_ids. */
struct gv_trace_ids {
    uint8_t trace[GV_TRACE_ID_LEN]; /* when the client sent no traceparent */
    uint8_t server[GV_SPAN_ID_LEN]; /* the gateway's SERVER span */
    uint8_t client[GV_SPAN_ID_LEN]; /* its CLIENT span, the upstream call */
};

/* Fills ids from one SHA-256 of "kt.ids" NUL "<request id>/<start wall us>": bytes
 * 0-15 the trace id, 16-23 the SERVER span, 24-31 the CLIENT span, each made
 * valid like gv_trace_derive. One hash, not one per id: it runs on every request.
 * The same record gives the same ids on every host, so an exporter can derive
 * what an older gateway did not send. */
void gv_trace_derive_ids(const struct gv_record *rec, struct gv_trace_ids *ids);

/* True when any byte of id[0..n) is non-zero (W3C: all-zero ids are invalid). */
bool gv_trace_id_valid(const uint8_t *id, size_t n);

/* Parses a `traceparent` header value per W3C Trace Context level 1: version
 * 00 exactly 55 characters; a later version at least that, with '-' after;
 * version ff, upper-case hex, all-zero ids are refused. GV_EINVAL when the
 * value is not one kt may continue (the caller then starts a new trace). */
gv_rc gv_trace_parse(const char *value, uint8_t trace_id[GV_TRACE_ID_LEN],
                     uint8_t span_id[GV_SPAN_ID_LEN], uint8_t *flags);

/* Writes "00-<trace>-<span>-<flags>" and a NUL into out (at least
 * GV_TRACEPARENT_LEN + 1 bytes). */
void gv_trace_format(const uint8_t trace_id[GV_TRACE_ID_LEN], const uint8_t span_id[GV_SPAN_ID_LEN],
                     uint8_t flags, char *out);

#endif
