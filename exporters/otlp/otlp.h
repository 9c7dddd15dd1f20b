/* exporters/otlp/otlp.h - OTLP/HTTP exporter: spans per request, GenAI and kt metrics */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef EX_OTLP_H
#define EX_OTLP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/gv_buf.h"
#include "core/gv_rc.h"
#include "core/gv_record.h"
#include "exporters/ex_exporter.h"

/* The ops object the agent instantiates (see exporters/ex_exporter.h). Off
 * (every op a no-op) unless an endpoint is configured. */
extern const struct ex_exporter_ops ex_otlp;

#define EX_OTLP_URL_MAX 1024
#define EX_OTLP_ATTRS_MAX 32 /* resource attributes from OTEL_RESOURCE_ATTRIBUTES */

struct ex_otlp_kv {
    char key[128];
    char value[256];
};

/* What the spans and metrics say about the agent: the OTLP Resource. */
struct ex_otlp_resource {
    size_t n;
    struct ex_otlp_kv kv[EX_OTLP_ATTRS_MAX + 2]; /* service.name first */
};

/* ---- spans (exporters/otlp/otlp_spans.c) ---- */

/* Appends an ExportTraceServiceRequest holding the spans of recs[0..n) to
 * out: per request a SERVER span, an INTERNAL span per policy that ran and,
 * when the upstream was called, a CLIENT span with the GenAI attributes. Ids
 * come from the event (derived from the request id when an older gateway sent
 * none), so the same records always give the same bytes. Never content. */
gv_rc ex_otlp_spans_encode(const struct ex_otlp_resource *res, const struct gv_record *recs,
                           size_t n, struct gv_buf *out);
/* Spans ex_otlp_spans_encode makes for one record. */
size_t ex_otlp_spans_count(const struct gv_record *rec);

/* ---- metrics (exporters/otlp/otlp_metrics.c) ---- */

struct ex_otlp_metrics;

/* Cumulative aggregates since start_wall_us. delta: exports report the change
 * since the last acknowledged export instead. */
struct ex_otlp_metrics *ex_otlp_metrics_create(bool delta, uint64_t start_wall_us);
void ex_otlp_metrics_destroy(struct ex_otlp_metrics *m);
/* Adds one request. Bounded: past a per-metric series limit a request lands
 * in the overflow series (attribute otel.metric.overflow=true). */
void ex_otlp_metrics_record(struct ex_otlp_metrics *m, const struct gv_record *rec);
/* Appends an ExportMetricsServiceRequest of the current state at now_wall_us.
 * *mark is what ex_otlp_metrics_acked needs to move the delta base. */
gv_rc ex_otlp_metrics_encode(struct ex_otlp_metrics *m, const struct ex_otlp_resource *res,
                             uint64_t now_wall_us, struct gv_buf *out);
/* The export encoded last was acknowledged: with delta temporality the next
 * export starts from it. */
void ex_otlp_metrics_acked(struct ex_otlp_metrics *m);

/* ---- durable spool (exporters/otlp/otlp_spool.c) ----
 * Events wait in <dir>/spool.<gen> segment files (the agent's event frames);
 * <dir>/cursor says "gen offset" of the first byte not yet acknowledged by the
 * backend, replaced atomically after every acknowledgement. A restart resumes
 * at the cursor: acknowledged batches are not sent again, unacknowledged ones
 * are. Appends happen on the ingest thread, reads on the sender thread. */
struct ex_otlp_spool;

gv_rc ex_otlp_spool_open(const char *dir, uint64_t max_bytes, bool fsync,
                         struct ex_otlp_spool **out);
void ex_otlp_spool_close(struct ex_otlp_spool *sp);
/* Appends the records whose bytes fit under max_bytes; *dropped counts the
 * rest (the queue is full). GV_EIO when the file cannot be written. */
gv_rc ex_otlp_spool_append(struct ex_otlp_spool *sp, const struct ex_event *evs, size_t n,
                           size_t *dropped);
/* Up to max records from the cursor on into recs (caller's array). *n is 0
 * when nothing is waiting. The batch is held until ack or skip. */
gv_rc ex_otlp_spool_peek(struct ex_otlp_spool *sp, struct gv_record *recs, size_t max, size_t *n);
/* The held batch is acknowledged (or given up): the cursor moves past it. */
gv_rc ex_otlp_spool_ack(struct ex_otlp_spool *sp);
/* Records waiting (not yet acknowledged). */
uint64_t ex_otlp_spool_pending(struct ex_otlp_spool *sp);

/* ---- HTTP (exporters/otlp/otlp.c) ---- */

enum ex_otlp_res {
    EX_OTLP_OK = 0,
    EX_OTLP_RETRY, /* 429, 502, 503, 504 or a network error: same body later */
    EX_OTLP_FATAL  /* any other answer: the body will never be accepted */
};

/* Classifies an HTTP status per the OTLP/HTTP specification (0: network error). */
enum ex_otlp_res ex_otlp_classify(long status);
/* Parses Retry-After (delay-seconds or an HTTP-date) into milliseconds from
 * now_wall_s; -1 when absent or unparseable. */
long ex_otlp_retry_after_ms(const char *value, long now_wall_s);
/* Parses a W3C-baggage-style "k=v,k2=v2" list (OTEL_EXPORTER_OTLP_HEADERS,
 * OTEL_RESOURCE_ATTRIBUTES): keys and values trimmed and percent-decoded.
 * Entries past max or too long are skipped. Returns how many were stored. */
size_t ex_otlp_parse_kv_list(const char *s, struct ex_otlp_kv *out, size_t max);

#endif
