/* tests/unit/exporters/otlp/test_otlp.c - OTLP encoding, metrics, spool, delivery helpers */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/gv_event.h"
#include "core/gv_trace.h"
#include "exporters/otlp/otlp.h"
#include "exporters/otlp/otlp.pb-c.h"
#include "exporters/otlp/otlp_pb.h"
#include "tests/unit/unit_tmpdir.h"

static void fill(struct gv_record *r, const char *id, enum gv_decision d)
{
    struct gv_trace_ids ids;

    memset(r, 0, sizeof(*r));
    snprintf(r->request_id, sizeof(r->request_id), "%s", id);
    snprintf(r->run_id, sizeof(r->run_id), "run-1");
    snprintf(r->project, sizeof(r->project), "proj");
    snprintf(r->entity, sizeof(r->entity), "ent");
    snprintf(r->model, sizeof(r->model), "gpt-4o");
    r->decision = d;
    r->start_wall_us = 1700000000000000ull;
    r->latency_total_us = 30000;
    r->latency_gateway_us = 700;
    r->http_status = d == GV_DECISION_BLOCKED ? 403 : 200;
    r->npolicies = 2;
    snprintf(r->policies[0].name, sizeof(r->policies[0].name), "prompt-injection");
    snprintf(r->policies[1].name, sizeof(r->policies[1].name), "pii-detector");
    r->policies[0].start_wall_us = r->start_wall_us + 10;
    r->policies[0].duration_us = 40;
    r->policies[1].start_wall_us = r->start_wall_us + 60;
    r->policies[1].duration_us = 20;
    if (d == GV_DECISION_BLOCKED) {
        r->policies[0].action = GV_OUTCOME_BLOCK;
        r->policies[1].action = GV_OUTCOME_SKIPPED;
        snprintf(r->error_code, sizeof(r->error_code), "prompt-injection");
        return;
    }
    if (d == GV_DECISION_REDACTED) {
        r->policies[1].action = GV_OUTCOME_REDACT;
        r->policies[1].pii_counts[GV_PII_EMAIL_ADDRESS] = 2;
    }
    r->upstream_start_wall_us = r->start_wall_us + 100;
    r->latency_upstream_us = 25000;
    r->upstream_first_byte_us = 5000;
    r->tokens_prompt = 20;
    r->tokens_completion = 300;
    r->cost_usd = 0.25;
    snprintf(r->upstream_host, sizeof(r->upstream_host), "api.example.com");
    r->upstream_port = 443;
    snprintf(r->finish_reasons, sizeof(r->finish_reasons), "stop,length");
    gv_trace_derive_ids(r, &ids);
    memcpy(r->trace_id, ids.trace, GV_TRACE_ID_LEN);
    memcpy(r->span_id, ids.server, GV_SPAN_ID_LEN);
    memcpy(r->upstream_span_id, ids.client, GV_SPAN_ID_LEN);
    r->trace_flags = 1;
}

static const struct ex_otlp_resource res = {1, {{"service.name", "kt"}}};

static const char *attr_str(Kt__Otlp__V1__KeyValue **kv, size_t n, const char *key)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (strcmp(kv[i]->key, key) == 0 &&
            kv[i]->value->value_case == KT__OTLP__V1__ANY_VALUE__VALUE_STRING_VALUE) {
            return kv[i]->value->string_value;
        }
    }
    return NULL;
}

static void test_event_codec_keeps_trace_fields(void **state)
{
    struct gv_record a, b;
    struct gv_event_meta meta;
    struct gv_buf buf;

    (void)state;
    fill(&a, "req-1", GV_DECISION_ALLOWED);
    snprintf(a.tracestate, sizeof(a.tracestate), "k=v");
    snprintf(a.response_id, sizeof(a.response_id), "chatcmpl-9");
    gv_buf_init(&buf, 0);
    assert_int_equal(gv_event_encode(&a, "inst", 7, &buf), GV_OK);
    assert_int_equal(gv_event_decode(buf.data, buf.len, &b, &meta), GV_OK);
    assert_memory_equal(a.trace_id, b.trace_id, GV_TRACE_ID_LEN);
    assert_memory_equal(a.span_id, b.span_id, GV_SPAN_ID_LEN);
    assert_memory_equal(a.upstream_span_id, b.upstream_span_id, GV_SPAN_ID_LEN);
    assert_false(gv_trace_id_valid(b.parent_span_id, GV_SPAN_ID_LEN));
    assert_string_equal(b.tracestate, "k=v");
    assert_string_equal(b.finish_reasons, "stop,length");
    assert_string_equal(b.response_id, "chatcmpl-9");
    assert_string_equal(b.upstream_host, "api.example.com");
    assert_int_equal(b.upstream_port, 443);
    assert_int_equal(b.upstream_start_wall_us, a.upstream_start_wall_us);
    assert_int_equal(b.policies[1].start_wall_us, a.policies[1].start_wall_us);
    assert_int_equal(b.policies[0].duration_us, 40);
    gv_buf_free(&buf);
}

static void test_spans_structure_and_attributes(void **state)
{
    struct gv_record recs[2];
    struct gv_buf out;
    Kt__Otlp__V1__ExportTraceServiceRequest *req;
    Kt__Otlp__V1__ScopeSpans *ss;
    size_t i, server = 0, client = 0, internal = 0;

    (void)state;
    fill(&recs[0], "req-a", GV_DECISION_REDACTED);
    fill(&recs[1], "req-b", GV_DECISION_BLOCKED); /* no ids: derived like the gateway */
    assert_int_equal(ex_otlp_spans_count(&recs[0]), 4);
    assert_int_equal(ex_otlp_spans_count(&recs[1]), 2);
    gv_buf_init(&out, 0);
    assert_int_equal(ex_otlp_spans_encode(&res, recs, 2, &out), GV_OK);
    req = kt__otlp__v1__export_trace_service_request__unpack(NULL, out.len,
                                                             (const uint8_t *)out.data);
    assert_non_null(req);
    assert_int_equal(req->n_resource_spans, 1);
    assert_string_equal(attr_str(req->resource_spans[0]->resource->attributes,
                                 req->resource_spans[0]->resource->n_attributes, "service.name"),
                        "kt");
    ss = req->resource_spans[0]->scope_spans[0];
    assert_string_equal(ss->scope->name, "kt");
    assert_int_equal(ss->n_spans, 6);
    for (i = 0; i < ss->n_spans; i++) {
        Kt__Otlp__V1__Span *s = ss->spans[i];
        assert_int_equal(s->trace_id.len, 16);
        assert_int_equal(s->span_id.len, 8);
        if (s->kind == KT__OTLP__V1__SPAN__SPAN_KIND__SPAN_KIND_SERVER) {
            server++;
            assert_int_equal(s->parent_span_id.len, 0);
            assert_string_equal(attr_str(s->attributes, s->n_attributes, "wandb.wb_run_id"),
                                "ent/proj/run-1");
        }
        else {
            assert_int_equal(s->parent_span_id.len, 8);
        }
        if (s->kind == KT__OTLP__V1__SPAN__SPAN_KIND__SPAN_KIND_CLIENT) {
            client++;
            assert_string_equal(s->name, "chat gpt-4o");
            assert_memory_equal(s->span_id.data, recs[0].upstream_span_id, 8);
            assert_memory_equal(s->trace_id.data, recs[0].trace_id, 16);
            assert_string_equal(attr_str(s->attributes, s->n_attributes, "server.address"),
                                "api.example.com");
            assert_int_equal(s->end_time_unix_nano - s->start_time_unix_nano, 25000000u);
        }
        if (s->kind == KT__OTLP__V1__SPAN__SPAN_KIND__SPAN_KIND_INTERNAL) {
            internal++;
            assert_int_equal(s->end_time_unix_nano - s->start_time_unix_nano,
                             strcmp(s->name, "kt.policy prompt-injection") == 0 ? 40000u : 20000u);
        }
    }
    assert_int_equal(server, 2);
    assert_int_equal(client, 1);
    assert_int_equal(internal, 3);
    kt__otlp__v1__export_trace_service_request__free_unpacked(req, NULL);
    /* Same records, same bytes: a replay sends the same ids. */
    {
        struct gv_buf again;
        gv_buf_init(&again, 0);
        assert_int_equal(ex_otlp_spans_encode(&res, recs, 2, &again), GV_OK);
        assert_int_equal(again.len, out.len);
        assert_memory_equal(again.data, out.data, out.len);
        gv_buf_free(&again);
    }
    gv_buf_free(&out);
}

static Kt__Otlp__V1__Metric *find_metric(Kt__Otlp__V1__ExportMetricsServiceRequest *req,
                                         const char *name)
{
    Kt__Otlp__V1__ScopeMetrics *sm = req->resource_metrics[0]->scope_metrics[0];
    size_t i;

    for (i = 0; i < sm->n_metrics; i++) {
        if (strcmp(sm->metrics[i]->name, name) == 0) {
            return sm->metrics[i];
        }
    }
    return NULL;
}

/* m's export at now_wall_us, encoded, then read back with the OTLP definitions (the caller frees
 * it with kt__otlp__v1__export_metrics_service_request__free_unpacked). */
static Kt__Otlp__V1__ExportMetricsServiceRequest *export_metrics(struct ex_otlp_metrics *m,
                                                                 uint64_t now_wall_us)
{
    Kt__Otlp__V1__ExportMetricsServiceRequest *req;
    struct gv_buf out;

    gv_buf_init(&out, 0);
    assert_int_equal(ex_otlp_metrics_encode(m, &res, now_wall_us, &out), GV_OK);
    req = kt__otlp__v1__export_metrics_service_request__unpack(NULL, out.len,
                                                               (const uint8_t *)out.data);
    gv_buf_free(&out);
    assert_non_null(req);
    return req;
}

static void test_metrics_buckets_counts_and_delta(void **state)
{
    struct ex_otlp_metrics *m = ex_otlp_metrics_create(true, 1000);
    struct gv_record r;
    Kt__Otlp__V1__ExportMetricsServiceRequest *req;
    Kt__Otlp__V1__Metric *tok, *reqs;
    size_t i;

    (void)state;
    fill(&r, "a", GV_DECISION_ALLOWED);
    ex_otlp_metrics_record(m, &r);
    fill(&r, "b", GV_DECISION_REDACTED);
    ex_otlp_metrics_record(m, &r);
    fill(&r, "c", GV_DECISION_BLOCKED);
    ex_otlp_metrics_record(m, &r);
    req = export_metrics(m, 2000);
    tok = find_metric(req, "gen_ai.client.token.usage");
    assert_non_null(tok);
    assert_string_equal(tok->unit, "{token}");
    assert_int_equal(tok->histogram->n_data_points, 2);
    for (i = 0; i < 2; i++) {
        Kt__Otlp__V1__HistogramDataPoint *p = tok->histogram->data_points[i];
        const char *type = attr_str(p->attributes, p->n_attributes, "gen_ai.token.type");
        assert_int_equal(p->count, 2);
        assert_int_equal(p->n_explicit_bounds, 14);
        assert_int_equal(p->n_bucket_counts, 15);
        /* 20 tokens: (16, 64] is bucket 3; 300: (256, 1024] is bucket 5. */
        assert_int_equal(p->bucket_counts[strcmp(type, "input") == 0 ? 3 : 5], 2);
        assert_true(p->has_sum);
    }
    reqs = find_metric(req, "kt.governance.requests");
    assert_int_equal(reqs->sum->aggregation_temporality,
                     KT__OTLP__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_DELTA);
    assert_int_equal(reqs->sum->n_data_points, 3);
    assert_non_null(find_metric(req, "kt.governance.blocks"));
    assert_non_null(find_metric(req, "kt.governance.redactions"));
    assert_non_null(find_metric(req, "gen_ai.client.operation.time_to_first_chunk") == NULL
                        ? (void *)1
                        : NULL); /* nothing was streamed */
    kt__otlp__v1__export_metrics_service_request__free_unpacked(req, NULL);

    /* Acknowledged: the next delta export starts from zero again. */
    ex_otlp_metrics_acked(m);
    fill(&r, "d", GV_DECISION_ALLOWED);
    ex_otlp_metrics_record(m, &r);
    req = export_metrics(m, 3000);
    reqs = find_metric(req, "kt.governance.requests");
    for (i = 0; i < reqs->sum->n_data_points; i++) {
        Kt__Otlp__V1__NumberDataPoint *p = reqs->sum->data_points[i];
        const char *d = attr_str(p->attributes, p->n_attributes, "kt.decision");
        assert_int_equal(p->as_int, strcmp(d, "allowed") == 0 ? 1 : 0);
        assert_int_equal(p->start_time_unix_nano, 2000u * 1000u);
    }
    kt__otlp__v1__export_metrics_service_request__free_unpacked(req, NULL);
    ex_otlp_metrics_destroy(m);
}

/* A cumulative token histogram carries the smallest and the largest value of its period, per
 * token type (an exporter that swapped, dropped or reset them would fail here). */
static void test_metrics_histogram_min_max(void **state)
{
    static const uint64_t prompts[] = {64, 5, 300};
    struct ex_otlp_metrics *m = ex_otlp_metrics_create(false, 1000);
    struct gv_record r;
    Kt__Otlp__V1__ExportMetricsServiceRequest *req;
    Kt__Otlp__V1__Metric *tok;
    size_t i;
    char id[8];

    (void)state;
    for (i = 0; i < 3; i++) {
        snprintf(id, sizeof(id), "m%zu", i);
        fill(&r, id, GV_DECISION_ALLOWED);
        r.tokens_prompt = prompts[i];
        r.tokens_completion = 7;
        ex_otlp_metrics_record(m, &r);
    }
    req = export_metrics(m, 2000);
    tok = find_metric(req, "gen_ai.client.token.usage");
    assert_non_null(tok);
    assert_int_equal(tok->histogram->n_data_points, 2);
    for (i = 0; i < 2; i++) {
        Kt__Otlp__V1__HistogramDataPoint *p = tok->histogram->data_points[i];
        bool input =
            strcmp(attr_str(p->attributes, p->n_attributes, "gen_ai.token.type"), "input") == 0;
        assert_int_equal(p->count, 3);
        assert_true(p->has_min);
        assert_true(p->has_max);
        assert_true(p->min == (input ? 5.0 : 7.0));
        assert_true(p->max == (input ? 300.0 : 7.0));
        assert_true(p->sum == (input ? 369.0 : 21.0));
    }
    kt__otlp__v1__export_metrics_service_request__free_unpacked(req, NULL);
    ex_otlp_metrics_destroy(m);
}

static void test_series_limit_overflows(void **state)
{
    struct ex_otlp_metrics *m = ex_otlp_metrics_create(false, 1000);
    struct gv_record r;
    Kt__Otlp__V1__ExportMetricsServiceRequest *req;
    Kt__Otlp__V1__Metric *cost;
    int i;

    (void)state;
    for (i = 0; i < 300; i++) {
        fill(&r, "x", GV_DECISION_ALLOWED);
        snprintf(r.model, sizeof(r.model), "model-%d", i);
        ex_otlp_metrics_record(m, &r);
    }
    req = export_metrics(m, 2000);
    cost = find_metric(req, "kt.cost");
    assert_int_equal(cost->sum->n_data_points, 257); /* 256 series and the overflow one */
    kt__otlp__v1__export_metrics_service_request__free_unpacked(req, NULL);
    ex_otlp_metrics_destroy(m);
}

static void test_spool_ack_restart_and_limit(void **state)
{
    char dir[UNIT_TMPDIR_MAX];
    struct ex_otlp_spool *sp;
    struct gv_record in[5], outr[8];
    struct ex_event ev[5] = {{0}};
    size_t dropped, n, i;

    (void)state;
    unit_tmpdir_make(dir, sizeof(dir));
    for (i = 0; i < 5; i++) {
        char id[16];
        snprintf(id, sizeof(id), "r%zu", i);
        fill(&in[i], id, GV_DECISION_ALLOWED);
    }
    for (i = 0; i < 5; i++) {
        ev[i].rec = &in[i];
    }
    assert_int_equal(ex_otlp_spool_open(dir, 1u << 20, false, &sp), GV_OK);
    assert_int_equal(ex_otlp_spool_append(sp, ev, 5, &dropped), GV_OK);
    assert_int_equal(dropped, 0);
    assert_int_equal(ex_otlp_spool_pending(sp), 5);
    assert_int_equal(ex_otlp_spool_peek(sp, outr, 2, &n), GV_OK);
    assert_int_equal(n, 2);
    assert_string_equal(outr[0].request_id, "r0");
    assert_int_equal(ex_otlp_spool_ack(sp), GV_OK);
    assert_int_equal(ex_otlp_spool_pending(sp), 3);
    /* Peeked but not acknowledged: a restart sends it again. */
    assert_int_equal(ex_otlp_spool_peek(sp, outr, 2, &n), GV_OK);
    assert_string_equal(outr[0].request_id, "r2");
    ex_otlp_spool_close(sp);

    assert_int_equal(ex_otlp_spool_open(dir, 1u << 20, false, &sp), GV_OK);
    assert_int_equal(ex_otlp_spool_pending(sp), 3);
    assert_int_equal(ex_otlp_spool_peek(sp, outr, 8, &n), GV_OK);
    assert_int_equal(n, 3);
    assert_string_equal(outr[0].request_id, "r2");
    assert_string_equal(outr[2].request_id, "r4");
    assert_int_equal(ex_otlp_spool_ack(sp), GV_OK);
    assert_int_equal(ex_otlp_spool_peek(sp, outr, 8, &n), GV_OK);
    assert_int_equal(n, 0);
    ex_otlp_spool_close(sp);

    /* A tiny limit: the newest records are dropped and counted. */
    assert_int_equal(ex_otlp_spool_open(dir, 1024, false, &sp), GV_OK);
    assert_int_equal(ex_otlp_spool_pending(sp), 0);
    assert_int_equal(ex_otlp_spool_append(sp, ev, 5, &dropped), GV_OK);
    assert_true(dropped > 0 && dropped < 5);
    assert_int_equal(ex_otlp_spool_pending(sp), 5 - dropped);
    ex_otlp_spool_close(sp);
    unit_tmpdir_remove(dir);
}

static void test_http_helpers(void **state)
{
    struct ex_otlp_kv kv[4];
    size_t n;

    (void)state;
    assert_int_equal(ex_otlp_classify(200), EX_OTLP_OK);
    assert_int_equal(ex_otlp_classify(0), EX_OTLP_RETRY);
    assert_int_equal(ex_otlp_classify(429), EX_OTLP_RETRY);
    assert_int_equal(ex_otlp_classify(502), EX_OTLP_RETRY);
    assert_int_equal(ex_otlp_classify(503), EX_OTLP_RETRY);
    assert_int_equal(ex_otlp_classify(504), EX_OTLP_RETRY);
    assert_int_equal(ex_otlp_classify(500), EX_OTLP_FATAL);
    assert_int_equal(ex_otlp_classify(400), EX_OTLP_FATAL);
    assert_int_equal(ex_otlp_retry_after_ms("3", 0), 3000);
    assert_int_equal(ex_otlp_retry_after_ms("", 0), -1);
    assert_int_equal(ex_otlp_retry_after_ms("soon", 0), -1);
    assert_int_equal(ex_otlp_retry_after_ms("Wed, 21 Oct 2015 07:28:10 GMT", 1445412480), 10000);
    assert_int_equal(ex_otlp_retry_after_ms("99999999", 0), 300000);
    n = ex_otlp_parse_kv_list(" api-key = a%20b , bad, x=1,=novalue", kv, 4);
    assert_int_equal(n, 2);
    assert_string_equal(kv[0].key, "api-key");
    assert_string_equal(kv[0].value, "a b");
    assert_string_equal(kv[1].key, "x");
    assert_int_equal(ex_otlp_parse_kv_list(NULL, kv, 4), 0);
}

/* An unset (empty) text field adds no attribute; a set one adds exactly one. */
static void test_attr_str_set_skips_empty(void **state)
{
    struct ex_otlp_arena a;
    struct ex_otlp_attrs at;

    (void)state;
    memset(&a, 0, sizeof(a));
    ex_otlp_attrs_init(&a, &at, 4);
    ex_otlp_attr_str_set(&a, &at, "kt.team", "");
    assert_int_equal(at.n, 0);
    ex_otlp_attr_str_set(&a, &at, "kt.team", "ml");
    assert_int_equal(at.n, 1);
    assert_string_equal(attr_str(at.v, at.n, "kt.team"), "ml");
    ex_otlp_arena_free(&a);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_event_codec_keeps_trace_fields),
    cmocka_unit_test(test_spans_structure_and_attributes),
    cmocka_unit_test(test_metrics_buckets_counts_and_delta),
    cmocka_unit_test(test_metrics_histogram_min_max),
    cmocka_unit_test(test_series_limit_overflows),
    cmocka_unit_test(test_spool_ack_restart_and_limit),
    cmocka_unit_test(test_http_helpers),
    cmocka_unit_test(test_attr_str_set_skips_empty),
};

#include "tests/unit/unit_main.h"
