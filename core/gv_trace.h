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

/* gv_trace_derive seeded with the request: its id and start time. Labels in
 * use: "kt.trace" (16 bytes), "kt.server", "kt.client" (8). */
void gv_trace_derive_request(const struct gv_record *rec, const char *label, uint8_t *out,
                             size_t n);

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
