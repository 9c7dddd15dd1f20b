/* tests/unit/gateway/trace/test_gw_trace.c - trace context and response facts of a request */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "gateway/gw_trace.h"

#define TP "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03"

static void rec_init(struct gv_record *rec, const char *id)
{
    memset(rec, 0, sizeof(*rec));
    snprintf(rec->request_id, sizeof(rec->request_id), "%s", id);
    rec->start_wall_us = 1700000000000000ull;
}

static void test_client_context_is_continued(void **state)
{
    struct gv_record rec;
    char hdr[GV_TRACEPARENT_LEN + 1], want[GV_TRACEPARENT_LEN + 1];

    (void)state;
    rec_init(&rec, "req_a");
    gw_trace_begin(&rec, TP, "vendor=x");
    assert_int_equal(rec.trace_id[0], 0x4b);
    assert_int_equal(rec.parent_span_id[7], 0xb7);
    assert_int_equal(rec.trace_flags, 1); /* only the sampled bit travels */
    assert_string_equal(rec.tracestate, "vendor=x");
    assert_true(gv_trace_id_valid(rec.span_id, GV_SPAN_ID_LEN));
    assert_memory_not_equal(rec.span_id, rec.upstream_span_id, GV_SPAN_ID_LEN);
    gw_trace_upstream_header(&rec, hdr);
    gv_trace_format(rec.trace_id, rec.upstream_span_id, 1, want);
    assert_string_equal(hdr, want);
    assert_memory_equal(hdr, "00-4bf92f3577b34da6a3ce929d0e0e4736-", 36);
}

static void test_new_trace_without_or_with_bad_context(void **state)
{
    struct gv_record a, b;
    struct gv_trace_ids ids;

    (void)state;
    rec_init(&a, "req_b");
    gw_trace_begin(&a, NULL, "vendor=x");
    assert_true(gv_trace_id_valid(a.trace_id, GV_TRACE_ID_LEN));
    assert_false(gv_trace_id_valid(a.parent_span_id, GV_SPAN_ID_LEN));
    assert_string_equal(a.tracestate, ""); /* no tracestate without a traceparent */
    assert_int_equal(a.trace_flags, 1);
    /* The same request gives the same ids: a replay sends the same trace. */
    rec_init(&b, "req_b");
    gw_trace_begin(&b, "garbage", NULL);
    assert_memory_equal(a.trace_id, b.trace_id, GV_TRACE_ID_LEN);
    assert_memory_equal(a.span_id, b.span_id, GV_SPAN_ID_LEN);
    assert_memory_equal(a.upstream_span_id, b.upstream_span_id, GV_SPAN_ID_LEN);
    /* What an exporter derives from the record is what the gateway sent. */
    gv_trace_derive_ids(&a, &ids);
    assert_memory_equal(a.trace_id, ids.trace, GV_TRACE_ID_LEN);
    assert_memory_equal(a.span_id, ids.server, GV_SPAN_ID_LEN);
    assert_memory_equal(a.upstream_span_id, ids.client, GV_SPAN_ID_LEN);
}

static void test_tracestate_with_control_bytes_is_dropped(void **state)
{
    struct gv_record rec;
    char big[GV_TRACESTATE_MAX + 8];

    (void)state;
    rec_init(&rec, "req_c");
    gw_trace_begin(&rec, TP, "a=1\r\nX-Injected: yes");
    assert_string_equal(rec.tracestate, "");
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    gw_trace_begin(&rec, TP, big);
    assert_string_equal(rec.tracestate, "");
}

static void test_upstream_start_and_response_facts(void **state)
{
    struct gv_record rec;
    struct json_object *o;

    (void)state;
    rec_init(&rec, "req_d");
    gw_trace_upstream_start(&rec, "https://api.example.com/v1/chat/completions", 1764921600123456u);
    assert_string_equal(rec.upstream_host, "api.example.com");
    assert_int_equal(rec.upstream_port, 443);
    assert_int_equal(rec.upstream_start_wall_us, 1764921600123456u);
    gw_trace_first_byte(&rec, 1500);
    gw_trace_first_byte(&rec, 9000);
    assert_int_equal(rec.upstream_first_byte_us, 1500);
    o = json_tokener_parse("{\"id\":\"chatcmpl-1\",\"model\":\"gpt-4o-2024\",\"choices\":["
                           "{\"finish_reason\":\"stop\",\"message\":{\"content\":\"secret\"}},"
                           "{\"finish_reason\":\"length\"},{\"finish_reason\":null},"
                           "{\"finish_reason\":\"a,b\"}]}");
    gw_trace_response(&rec, o);
    json_object_put(o);
    assert_string_equal(rec.response_id, "chatcmpl-1");
    assert_string_equal(rec.response_model, "gpt-4o-2024");
    assert_string_equal(rec.finish_reasons, "stop,length");
    gw_trace_response(&rec, NULL);
    assert_string_equal(rec.finish_reasons, "stop,length");
}

/* A stream's facts off its chunks' text: id and model from the first chunk's head, each
 * reason from the span the chunk walk found; the same names the tree read gives. */
static void test_stream_facts_from_text(void **state)
{
    static const char first[] =
        "{\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\","
        "\"model\":\"gpt-4o-mini\",\"choices\":[{\"delta\":{\"content\":\"x";
    struct gv_record rec;
    (void)state;

    rec_init(&rec, "req_s");
    gw_trace_response_head(&rec, first, strlen(first)); /* cut short after the model */
    assert_string_equal(rec.response_id, "chatcmpl-9");
    assert_string_equal(rec.response_model, "gpt-4o-mini");
    assert_true(gw_trace_finish_reason(&rec, "stop", 4));
    assert_false(gw_trace_finish_reason(&rec, "st\\op", 6));
    assert_false(gw_trace_finish_reason(&rec, "an_unknown_reason_longer_than_any", 33));
    assert_true(gw_trace_finish_reason(&rec, "length", 6));
    assert_string_equal(rec.finish_reasons, "stop,length");
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_client_context_is_continued),
    cmocka_unit_test(test_new_trace_without_or_with_bad_context),
    cmocka_unit_test(test_tracestate_with_control_bytes_is_dropped),
    cmocka_unit_test(test_upstream_start_and_response_facts),
    cmocka_unit_test(test_stream_facts_from_text),
};

#include "tests/unit/unit_main.h"
