/* gateway/gw_trace.h - a request's trace context and the facts its spans need */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GW_TRACE_H
#define GW_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/gv_record.h"
#include "core/gv_trace.h"

struct json_object;

/* Call once a request has its request_id and start_wall_us. A valid client
 * `traceparent` (NULL when absent) makes the request's spans its children in
 * its trace, with its flags and `tracestate` (kept when at most
 * GV_TRACESTATE_MAX printable bytes, else dropped); otherwise a new trace.
 * The SERVER and CLIENT span ids (and a new trace id) derive from the request
 * id and start time, so the agent and any replay see the same ids. */
void gw_trace_begin(struct gv_record *rec, const char *traceparent, const char *tracestate);

/* The upstream call starts at `wall_us` (Unix epoch microseconds): that start and
 * the target's host and port (server.address/port) from its URL. */
void gw_trace_upstream_start(struct gv_record *rec, const char *url, uint64_t wall_us);

/* The first bytes of the upstream's response body arrived `since_start_us` after
 * the call started: for a stream, its first chunk. Only the first call counts. */
void gw_trace_first_byte(struct gv_record *rec, uint64_t since_start_us);

/* The `traceparent` value kt sends upstream: the CLIENT span in the request's
 * trace. out: GV_TRACEPARENT_LEN + 1 bytes. */
void gw_trace_upstream_header(const struct gv_record *rec, char *out);

/* Reads id, model and choices[].finish_reason of a chat completion (buffered)
 * or of one stream chunk; reasons accumulate in choice order, whole names only.
 * Never reads or stores message content. */
void gw_trace_response(struct gv_record *rec, struct json_object *o);
/* The same read off the answer's (or chunk's) text, for the relay's paths that
 * build no tree: id and model when they are plain strings (no escapes), and the
 * string values of the "finish_reason" keys inside choices. */
void gw_trace_response_text(struct gv_record *rec, const char *p, size_t n);
/* id and model alone, off the first chunk of a stream: the walk stops once it has
 * both, a few members in. */
void gw_trace_response_head(struct gv_record *rec, const char *p, size_t n);
/* One finish reason, as written between its quotes (the span gw_jscan_chunk_facts
 * found): added like those gw_trace_response_text finds; false when it is not read
 * (escaped, or longer than any reason). */
bool gw_trace_finish_reason(struct gv_record *rec, const char *v, size_t n);
/* As gw_trace_response_text, from spans gw_jscan_members already found (any may
 * be NULL): one walk of the answer serves usage and trace alike. */
void gw_trace_response_spans(struct gv_record *rec, const char *id, size_t idlen, const char *model,
                             size_t mlen, const char *choices, size_t clen);

#endif
