/* exporters/otlp/otlp_spans.c - one trace per request: SERVER, a span per policy, CLIENT */
/* SPDX-License-Identifier: Apache-2.0 */
#include "exporters/otlp/otlp.h"

#include <stdio.h>
#include <string.h>

#include "core/gv_pii.h"
#include "core/gv_trace.h"
#include "exporters/otlp/otlp_pb.h"

/* Span.flags: the W3C flags in bits 0-7, then "is the parent remote known"
 * (bit 8) and "is it remote" (bit 9), as the OTLP specification defines them. */
#define FLAGS_HAS_IS_REMOTE 0x100u
#define FLAGS_IS_REMOTE 0x200u
#define SPAN_ATTRS_MAX 24

typedef Kt__Otlp__V1__Span span_pb;

/* A record's ids: the event's, or derived like the gateway derives them when
 * an older gateway sent none. */
struct ids {
    uint8_t trace[GV_TRACE_ID_LEN];
    uint8_t server[GV_SPAN_ID_LEN];
    uint8_t client[GV_SPAN_ID_LEN];
};

static void ids_of(const struct gv_record *rec, struct ids *ids)
{
    struct gv_trace_ids derived;

    gv_trace_derive_ids(rec, &derived);
    memcpy(ids->trace,
           gv_trace_id_valid(rec->trace_id, GV_TRACE_ID_LEN) ? rec->trace_id : derived.trace,
           sizeof(ids->trace));
    memcpy(ids->server,
           gv_trace_id_valid(rec->span_id, GV_SPAN_ID_LEN) ? rec->span_id : derived.server,
           sizeof(ids->server));
    memcpy(ids->client,
           gv_trace_id_valid(rec->upstream_span_id, GV_SPAN_ID_LEN) ? rec->upstream_span_id
                                                                    : derived.client,
           sizeof(ids->client));
}

static ProtobufCBinaryData bin(struct ex_otlp_arena *a, const uint8_t *p, size_t n)
{
    ProtobufCBinaryData b;

    b.len = n;
    b.data = ex_otlp_alloc(a, n);
    memcpy(b.data, p, n);
    return b;
}

static bool upstream_called(const struct gv_record *rec)
{
    return rec->upstream_start_wall_us != 0;
}

size_t ex_otlp_spans_count(const struct gv_record *rec)
{
    size_t n = 1, i;

    for (i = 0; i < rec->npolicies && i < GV_RECORD_MAX_POLICIES; i++) {
        n += rec->policies[i].action != GV_OUTCOME_SKIPPED;
    }
    return n + (upstream_called(rec) ? 1 : 0);
}

static span_pb *span_new(struct ex_otlp_arena *a, const struct gv_record *rec,
                         const struct ids *ids, const uint8_t *span_id, const uint8_t *parent,
                         uint32_t flags)
{
    span_pb *s = ex_otlp_alloc(a, sizeof(*s));

    kt__otlp__v1__span__init(s);
    s->trace_id = bin(a, ids->trace, GV_TRACE_ID_LEN);
    s->span_id = bin(a, span_id, GV_SPAN_ID_LEN);
    if (parent && gv_trace_id_valid(parent, GV_SPAN_ID_LEN)) {
        s->parent_span_id = bin(a, parent, GV_SPAN_ID_LEN);
    }
    s->trace_state = (char *)(uintptr_t)rec->tracestate;
    s->flags = flags;
    return s;
}

/* The span's kind and when it ran (from start_us for dur_us microseconds), and the empty
 * attribute list span_end hands it. */
static void span_begin(struct ex_otlp_arena *a, span_pb *s, Kt__Otlp__V1__Span__SpanKind kind,
                       uint64_t start_us, uint64_t dur_us, struct ex_otlp_attrs *at)
{
    s->kind = kind;
    s->start_time_unix_nano = start_us * 1000u;
    s->end_time_unix_nano = (start_us + dur_us) * 1000u;
    ex_otlp_attrs_init(a, at, SPAN_ATTRS_MAX);
}

/* The span takes the attributes collected since span_begin; an error span gets status ERROR
 * with msg. */
static void span_end(struct ex_otlp_arena *a, span_pb *s, const struct ex_otlp_attrs *at,
                     bool error, const char *msg)
{
    s->attributes = at->v;
    s->n_attributes = at->n;
    if (!error) {
        return;
    }
    s->status = ex_otlp_alloc(a, sizeof(*s->status));
    kt__otlp__v1__status__init(s->status);
    s->status->code = KT__OTLP__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR;
    s->status->message = (char *)(uintptr_t)msg;
}

/* The W&B run tags every span of a request carries; wandb.wb_run_id is the
 * entity/project/run path Weave links spans to a run by. */
static void run_tags(struct ex_otlp_arena *a, struct ex_otlp_attrs *at, const struct gv_record *rec)
{
    if (!rec->run_id[0]) {
        return;
    }
    if (rec->entity[0] && rec->project[0]) {
        size_t n = strlen(rec->entity) + strlen(rec->project) + strlen(rec->run_id) + 3;
        char *p = ex_otlp_alloc(a, n);
        snprintf(p, n, "%s/%s/%s", rec->entity, rec->project, rec->run_id);
        ex_otlp_attr_str(a, at, "wandb.wb_run_id", p);
    }
    ex_otlp_attr_str(a, at, "wandb.run_id", rec->run_id);
    ex_otlp_attr_str_set(a, at, "wandb.project", rec->project);
    ex_otlp_attr_str_set(a, at, "wandb.entity", rec->entity);
    ex_otlp_attr_str_set(a, at, "wandb.run_group", rec->run_group);
}

static span_pb *server_span(struct ex_otlp_arena *a, const struct gv_record *rec,
                            const struct ids *ids)
{
    bool remote = gv_trace_id_valid(rec->parent_span_id, GV_SPAN_ID_LEN);
    span_pb *s = span_new(a, rec, ids, ids->server, rec->parent_span_id,
                          rec->trace_flags | FLAGS_HAS_IS_REMOTE | (remote ? FLAGS_IS_REMOTE : 0));
    struct ex_otlp_attrs at;
    bool error = rec->decision == GV_DECISION_ERROR && rec->http_status >= 500;

    s->name = "POST /v1/chat/completions";
    span_begin(a, s, KT__OTLP__V1__SPAN__SPAN_KIND__SPAN_KIND_SERVER, rec->start_wall_us,
               rec->latency_total_us, &at);
    ex_otlp_attr_str(a, &at, "http.request.method", "POST");
    ex_otlp_attr_str(a, &at, "http.route", "/v1/chat/completions");
    ex_otlp_attr_int(a, &at, "http.response.status_code", rec->http_status);
    ex_otlp_attr_str(a, &at, "kt.request_id", rec->request_id);
    ex_otlp_attr_str(a, &at, "kt.decision", gv_decision_str(rec->decision));
    ex_otlp_attr_str_set(a, &at, "kt.error_code", rec->error_code);
    ex_otlp_attr_str_set(a, &at, "gen_ai.request.model", rec->model);
    ex_otlp_attr_str_set(a, &at, "kt.target", rec->target);
    ex_otlp_attr_str_set(a, &at, "kt.principal", rec->principal);
    ex_otlp_attr_str_set(a, &at, "kt.team", rec->team);
    ex_otlp_attr_double(a, &at, "kt.gateway.overhead", (double)rec->latency_gateway_us / 1e6);
    if (rec->cost_usd > 0) {
        ex_otlp_attr_double(a, &at, "kt.cost", rec->cost_usd);
    }
    ex_otlp_attr_bool(a, &at, "kt.streamed", rec->streamed);
    if (error) {
        ex_otlp_attr_str(a, &at, "error.type", rec->error_code[0] ? rec->error_code : "_OTHER");
    }
    run_tags(a, &at, rec);
    span_end(a, s, &at, error, rec->error_code);
    return s;
}

static span_pb *policy_span(struct ex_otlp_arena *a, const struct gv_record *rec,
                            const struct ids *ids, uint32_t idx)
{
    const struct gv_policy_outcome *o = &rec->policies[idx];
    uint8_t seed[GV_SPAN_ID_LEN + 1], id[GV_SPAN_ID_LEN];
    struct ex_otlp_attrs at;
    span_pb *s;
    uint64_t start = o->start_wall_us ? o->start_wall_us : rec->start_wall_us;
    size_t n;
    int k;
    char *name;

    memcpy(seed, ids->server, GV_SPAN_ID_LEN);
    seed[GV_SPAN_ID_LEN] = (uint8_t)idx;
    gv_trace_derive("kt.policy", seed, sizeof(seed), id, sizeof(id));
    s = span_new(a, rec, ids, id, ids->server, rec->trace_flags | FLAGS_HAS_IS_REMOTE);
    n = strlen(o->name) + sizeof("kt.policy ");
    name = ex_otlp_alloc(a, n);
    snprintf(name, n, "kt.policy %s", o->name);
    s->name = name;
    span_begin(a, s, KT__OTLP__V1__SPAN__SPAN_KIND__SPAN_KIND_INTERNAL, start, o->duration_us, &at);
    ex_otlp_attr_str(a, &at, "kt.policy.name", o->name);
    ex_otlp_attr_str(a, &at, "kt.policy.action", gv_outcome_action_str(o->action));
    ex_otlp_attr_double(a, &at, "kt.policy.score", o->score);
    ex_otlp_attr_int(a, &at, "kt.policy.index", idx);
    for (k = 0; k < GV_PII_NTYPES; k++) {
        if (o->pii_counts[k]) {
            const char *type = gv_pii_name(k);
            size_t kn = strlen(type) + sizeof("kt.pii.");
            char *key = ex_otlp_alloc(a, kn);
            snprintf(key, kn, "kt.pii.%s", type);
            ex_otlp_attr_int(a, &at, key, o->pii_counts[k]);
        }
    }
    span_end(a, s, &at, o->action == GV_OUTCOME_ERROR, "policy failed");
    return s;
}

/* error.type of the upstream call: the upstream's error code, else its status. */
static const char *client_error(struct ex_otlp_arena *a, const struct gv_record *rec)
{
    char *p;

    if (rec->decision != GV_DECISION_ERROR && rec->http_status < 400) {
        return NULL;
    }
    if (rec->error_code[0]) {
        return rec->error_code;
    }
    p = ex_otlp_alloc(a, 16);
    snprintf(p, 16, "%d", rec->http_status);
    return p;
}

static span_pb *client_span(struct ex_otlp_arena *a, const struct gv_record *rec,
                            const struct ids *ids)
{
    span_pb *s =
        span_new(a, rec, ids, ids->client, ids->server, rec->trace_flags | FLAGS_HAS_IS_REMOTE);
    struct ex_otlp_attrs at;
    const char *err = client_error(a, rec);
    size_t n = strlen(rec->model) + sizeof("chat ");
    char *name = ex_otlp_alloc(a, n);

    snprintf(name, n, rec->model[0] ? "chat %s" : "chat", rec->model);
    s->name = name;
    span_begin(a, s, KT__OTLP__V1__SPAN__SPAN_KIND__SPAN_KIND_CLIENT, rec->upstream_start_wall_us,
               rec->latency_upstream_us, &at);
    ex_otlp_attr_str(a, &at, "gen_ai.operation.name", "chat");
    /* Every kt target speaks the OpenAI chat completions API. */
    ex_otlp_attr_str(a, &at, "gen_ai.provider.name", "openai");
    ex_otlp_attr_str(a, &at, "gen_ai.request.model", rec->model);
    ex_otlp_attr_str_set(a, &at, "gen_ai.response.model", rec->response_model);
    ex_otlp_attr_str_set(a, &at, "gen_ai.response.id", rec->response_id);
    if (rec->finish_reasons[0]) {
        ex_otlp_attr_csv(a, &at, "gen_ai.response.finish_reasons", rec->finish_reasons);
    }
    if (!err || rec->tokens_prompt || rec->tokens_completion) {
        ex_otlp_attr_int(a, &at, "gen_ai.usage.input_tokens", (int64_t)rec->tokens_prompt);
        ex_otlp_attr_int(a, &at, "gen_ai.usage.output_tokens", (int64_t)rec->tokens_completion);
    }
    ex_otlp_attr_str_set(a, &at, "server.address", rec->upstream_host);
    if (rec->upstream_port > 0) {
        ex_otlp_attr_int(a, &at, "server.port", rec->upstream_port);
    }
    if (err) {
        ex_otlp_attr_str(a, &at, "error.type", err);
    }
    if (rec->streamed && rec->upstream_first_byte_us) {
        ex_otlp_attr_double(a, &at, "kt.time_to_first_chunk",
                            (double)rec->upstream_first_byte_us / 1e6);
    }
    ex_otlp_attr_str(a, &at, "kt.decision", gv_decision_str(rec->decision));
    ex_otlp_attr_str_set(a, &at, "kt.target", rec->target);
    run_tags(a, &at, rec);
    span_end(a, s, &at, err != NULL, err);
    return s;
}

gv_rc ex_otlp_spans_encode(const struct ex_otlp_resource *res, const struct gv_record *recs,
                           size_t n, struct gv_buf *out)
{
    struct ex_otlp_arena a = {NULL};
    Kt__Otlp__V1__ExportTraceServiceRequest req = KT__OTLP__V1__EXPORT_TRACE_SERVICE_REQUEST__INIT;
    Kt__Otlp__V1__ResourceSpans rs = KT__OTLP__V1__RESOURCE_SPANS__INIT;
    Kt__Otlp__V1__ScopeSpans ss = KT__OTLP__V1__SCOPE_SPANS__INIT;
    Kt__Otlp__V1__ResourceSpans *rsp = &rs;
    Kt__Otlp__V1__ScopeSpans *ssp = &ss;
    size_t i, total = 0, k = 0;
    uint32_t p;
    gv_rc rc;

    for (i = 0; i < n; i++) {
        total += ex_otlp_spans_count(&recs[i]);
    }
    ss.spans = ex_otlp_alloc(&a, (total ? total : 1) * sizeof(*ss.spans));
    for (i = 0; i < n; i++) {
        const struct gv_record *rec = &recs[i];
        struct ids ids;

        ids_of(rec, &ids);
        ss.spans[k++] = server_span(&a, rec, &ids);
        for (p = 0; p < rec->npolicies && p < GV_RECORD_MAX_POLICIES; p++) {
            if (rec->policies[p].action != GV_OUTCOME_SKIPPED) {
                ss.spans[k++] = policy_span(&a, rec, &ids, p);
            }
        }
        if (upstream_called(rec)) {
            ss.spans[k++] = client_span(&a, rec, &ids);
        }
    }
    ss.n_spans = k;
    ss.scope = ex_otlp_scope_pb(&a);
    rs.resource = ex_otlp_resource_pb(&a, res);
    rs.n_scope_spans = 1;
    rs.scope_spans = &ssp;
    req.n_resource_spans = 1;
    req.resource_spans = &rsp;
    rc = ex_otlp_pack(&req.base, out);
    ex_otlp_arena_free(&a);
    return rc;
}
