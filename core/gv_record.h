/* core/gv_record.h - what kt knows about one request once it is done */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GV_RECORD_H
#define GV_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/gv_pii.h"

enum gv_decision {
    GV_DECISION_ALLOWED = 0, /* passed every policy unchanged (flags/logs allowed) */
    GV_DECISION_REDACTED,    /* forwarded after a policy rewrote it */
    GV_DECISION_BLOCKED,     /* a policy refused it; never reached the upstream */
    GV_DECISION_ERROR        /* bad request, upstream failure, timeout */
};

/* What a policy did to this request. Mirrors enum gw_action's order. */
enum gv_outcome_action {
    GV_OUTCOME_PASS = 0,
    GV_OUTCOME_LOG,
    GV_OUTCOME_FLAG,
    GV_OUTCOME_REDACT,
    GV_OUTCOME_BLOCK,
    GV_OUTCOME_SKIPPED, /* not run: an earlier policy blocked */
    GV_OUTCOME_ERROR    /* the policy failed; the chain failed closed */
};

#define GV_RECORD_MAX_POLICIES 16
#define GV_RUN_TAG_MAX 128 /* W&B run ids, projects, entities, groups: bytes */
/* otlp: W3C trace context sizes (trace id, span id, the tracestate header's limit) */
#define GV_TRACE_ID_LEN 16
#define GV_SPAN_ID_LEN 8
#define GV_TRACESTATE_MAX 512

/* weave: telemetry content (policy config `telemetry: {content: redacted}`).
 * Each text is capped so that the encoded event stays inside one wire frame
 * (GV_FRAME_MAX): an older agent must still read a newer gateway's events. */
#define GV_CONTENT_MAX (28u * 1024u)
#define GV_CONTENT_TRUNCATED "[truncated by kt]"
#define GV_ROLES_MAX 64

/* One heap block per request, only when content capture is on. Whoever owns the
 * record owns this: a by-value copy of a record must either take it (and clear
 * the source's pointer) or duplicate it with gv_content_dup. */
struct gv_content {
    char *request;  /* JSON array of the messages sent upstream (after pii-detector); NUL-ended */
    char *response; /* answer text after response policies; NUL-ended; "" when none */
    size_t response_len; /* strlen(response), so a long stream appends in constant time */
    bool request_truncated;
    bool response_truncated;
};

struct gv_policy_outcome {
    char name[48];
    enum gv_outcome_action action;
    double score; /* detector score in [0,1], or 0 */
    uint32_t pii_counts[GV_PII_NTYPES];
    /* otlp: when the policy ran (wall clock) and for how long; 0 when unknown */
    uint64_t start_wall_us;
    uint64_t duration_us;
};

/* Plain data, copied by value: it outlives the request and crosses threads.
 * Never holds keys or PII values; prompt and answer text only in `content`,
 * and only as forwarded after redaction, when the operator opted in. */
struct gv_record {
    char request_id[40];
    char run_id[GV_RUN_TAG_MAX + 1];
    char project[GV_RUN_TAG_MAX + 1];
    char entity[GV_RUN_TAG_MAX + 1];
    char run_group[GV_RUN_TAG_MAX + 1];
    char principal[64]; /* from rbac; empty when anonymous */
    char team[64];
    char model[128];
    char target[64];
    enum gv_decision decision;
    char error_code[48]; /* OpenAI error code or policy name when not allowed */
    uint32_t npolicies;
    struct gv_policy_outcome policies[GV_RECORD_MAX_POLICIES];
    uint64_t start_wall_us;
    uint64_t latency_total_us;
    uint64_t latency_upstream_us;
    uint64_t latency_gateway_us;
    uint64_t tokens_prompt;
    uint64_t tokens_completion;
    double cost_usd;
    /* The tokens are kt's estimate, not the upstream's usage: the answer ended
     * (client gone, stream cut) before usage arrived. */
    bool tokens_estimated;
    /* cost_usd was set from the cost-tracker's prices (configured over the
     * built-in table); nobody prices the request a second time. */
    bool cost_priced;
    int http_status;
    bool streamed;
    /* weave: */
    uint32_t nmessages;
    char roles[GV_ROLES_MAX];    /* message roles in order, comma-separated, whole roles only */
    struct gv_content *content;  /* NULL unless telemetry content is captured; owned */
    double price_input_per_mtok; /* cost-tracker's price used for cost_usd; 0 unpriced */
    double price_output_per_mtok;
    /* otlp: W&B-independent trace context and what the OTLP spans need. Ids are
     * all zero when unknown (an older gateway); never taken from the body. */
    uint8_t trace_id[GV_TRACE_ID_LEN];
    uint8_t span_id[GV_SPAN_ID_LEN];          /* the gateway's SERVER span */
    uint8_t parent_span_id[GV_SPAN_ID_LEN];   /* the client's span (traceparent) */
    uint8_t upstream_span_id[GV_SPAN_ID_LEN]; /* the CLIENT span, sent upstream */
    uint8_t trace_flags;                      /* W3C flags; 1 = sampled */
    char tracestate[GV_TRACESTATE_MAX + 1];   /* the client's, passed on as is */
    uint64_t upstream_start_wall_us;          /* 0: the upstream was not called */
    uint64_t upstream_first_byte_us;          /* first body byte, since start; 0 none */
    char upstream_host[128];                  /* server.address of the target */
    int upstream_port;
    char response_model[128];
    char response_id[128];
    char finish_reasons[64]; /* comma-separated, one per choice */
    /* The audit chain's end when the request completed (audit-logger sets
     * it): the last written record's seq and hash; 0 and "" without one. */
    uint64_t audit_head_seq;
    char audit_head_hash[65];
};

const char *gv_decision_str(enum gv_decision d);
/* -1 when unknown */
int gv_decision_parse(const char *s);
const char *gv_outcome_action_str(enum gv_outcome_action a);

/* weave: content ownership helpers (core/gv_event.c). */
/* A deep copy; NULL for NULL. Aborts on OOM like gv_malloc. */
struct gv_content *gv_content_dup(const struct gv_content *c);
/* Frees c and its texts; NULL is fine. */
void gv_content_free(struct gv_content *c);
/* Frees what the record owns (its content) and clears the pointer. */
void gv_record_release(struct gv_record *rec);
/* A record on its way to another thread (the audit writer's nodes, the emitter's
 * ring): the bytes it uses, back to back. The record spreads ~600 bytes of content
 * over ~30 of its cache lines (each string array starts a line or so after the
 * last); packed they fill ~14, and each line written here is one the other core
 * has to give up first and then fetch. */
#define GV_RECORD_PACKED_MAX (sizeof(struct gv_record) + 64)
struct gv_record_packed {
    uint32_t len; /* bytes of `bytes` in use */
    unsigned char bytes[GV_RECORD_PACKED_MAX];
};
/* core/gv_record.c: packs every field src uses into dst, writing only dst->len and the
 * first dst->len bytes: not the unused policy slots (most of the record's 4 KB), not
 * the bytes past each string's NUL. A string array without a NUL is cut to its
 * size - 1. src->content is not carried (the caller takes or duplicates it). */
void gv_record_pack(struct gv_record_packed *dst, const struct gv_record *src);
/* src packed into this thread's scratch, for a caller that copies the len bytes to
 * storage of their size (an audit node, a ring slot): the scratch stays in this
 * thread's cache. Valid until the thread's next call. */
const struct gv_record_packed *gv_record_pack_scratch(const struct gv_record *src);
/* The record that `bytes` (a gv_record_packed's, or a copy of its first len) was packed
 * from, into dst: every field it used, each string NUL-ended; the unused policy slots
 * and the bytes past each string's NUL stay as they were in dst. dst->content is set
 * to NULL. */
void gv_record_unpack(struct gv_record *dst, const unsigned char *bytes);
/* An empty record, as far as anything reads it: every field zero, every string empty,
 * no policies (npolicies 0), content NULL. Writes what pack would carry of it (~300
 * bytes and each string's first), not the whole 4 KB: the bytes past each string's
 * first and the policy slots stay as they were, as after unpack (a slot is cleared
 * as a request takes it). */
void gv_record_clear(struct gv_record *rec);

#endif
