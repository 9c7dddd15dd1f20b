/* tests/unit/core/event/test_gv_event.c - event codec and framing */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/gv_event.h"
#include "core/gv_mem.h"
#include "proto/gv_events.pb-c.h"

static void fill_record(struct gv_record *r)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->request_id, sizeof(r->request_id), "req-1");
    snprintf(r->run_id, sizeof(r->run_id), "run-a");
    snprintf(r->project, sizeof(r->project), "proj");
    snprintf(r->entity, sizeof(r->entity), "team-x");
    snprintf(r->run_group, sizeof(r->run_group), "sweep-1");
    snprintf(r->principal, sizeof(r->principal), "alice");
    snprintf(r->model, sizeof(r->model), "gpt-4o-mini");
    snprintf(r->target, sizeof(r->target), "openai");
    r->decision = GV_DECISION_REDACTED;
    r->npolicies = 2;
    snprintf(r->policies[0].name, sizeof(r->policies[0].name), "pii-detector");
    r->policies[0].action = GV_OUTCOME_REDACT;
    r->policies[0].score = 0.75;
    r->policies[0].pii_counts[GV_PII_EMAIL_ADDRESS] = 2;
    r->policies[0].pii_counts[GV_PII_UK_NHS] = 1;
    snprintf(r->policies[1].name, sizeof(r->policies[1].name), "rbac");
    r->policies[1].action = GV_OUTCOME_PASS;
    r->start_wall_us = 1700000000000000ull;
    r->latency_total_us = 12345;
    r->latency_upstream_us = 12000;
    r->latency_gateway_us = 345;
    r->tokens_prompt = 11;
    r->tokens_completion = 22;
    r->cost_usd = 0.0042;
    r->http_status = 200;
    r->streamed = true;
    r->tokens_estimated = true;
}

static void test_event_roundtrip_keeps_every_field(void **state)
{
    struct gv_record in, out;
    struct gv_event_meta meta;
    struct gv_buf b;

    (void)state;
    fill_record(&in);
    gv_buf_init(&b, 0);
    assert_int_equal(gv_event_encode(&in, "0123456789abcdef0123456789abcdef", 77, &b), GV_OK);
    assert_int_equal(gv_event_decode(b.data, b.len, &out, &meta), GV_OK);
    assert_string_equal(meta.instance_id, "0123456789abcdef0123456789abcdef");
    assert_int_equal(meta.seq, 77);
    assert_memory_equal(&in, &out, sizeof(in));
    gv_buf_free(&b);
}

/* weave: the telemetry fields, content at its cap still fits one frame. */
static void test_event_roundtrip_weave_fields_at_the_cap(void **state)
{
    struct gv_record in, out;
    struct gv_event_meta meta;
    struct gv_content c;
    struct gv_buf b;
    char *req = gv_malloc(GV_CONTENT_MAX + 1), *resp = gv_malloc(GV_CONTENT_MAX + 1);

    (void)state;
    fill_record(&in);
    memset(req, '"', GV_CONTENT_MAX); /* escapes would double JSON, not protobuf */
    req[GV_CONTENT_MAX] = '\0';
    memset(resp, 'a', GV_CONTENT_MAX);
    resp[GV_CONTENT_MAX] = '\0';
    c.request = req;
    c.response = resp;
    c.request_truncated = true;
    c.response_truncated = false;
    in.content = &c;
    in.nmessages = 3;
    snprintf(in.roles, sizeof(in.roles), "system,user,assistant");
    in.price_input_per_mtok = 2.5;
    in.price_output_per_mtok = 10;
    gv_buf_init(&b, 0);
    assert_int_equal(gv_event_encode(&in, "0123456789abcdef0123456789abcdef", 5, &b), GV_OK);
    assert_true(b.len <= GV_FRAME_MAX);
    assert_int_equal(gv_event_decode(b.data, b.len, &out, &meta), GV_OK);
    assert_non_null(out.content);
    assert_string_equal(out.content->request, req);
    assert_string_equal(out.content->response, resp);
    assert_true(out.content->request_truncated);
    assert_false(out.content->response_truncated);
    assert_int_equal(out.nmessages, 3);
    assert_string_equal(out.roles, "system,user,assistant");
    assert_true(out.price_output_per_mtok == 10.0);
    gv_record_release(&out);
    assert_null(out.content);
    /* Without content nothing is allocated. */
    in.content = NULL;
    gv_buf_reset(&b);
    assert_int_equal(gv_event_encode(&in, "id", 6, &b), GV_OK);
    assert_int_equal(gv_event_decode(b.data, b.len, &out, &meta), GV_OK);
    assert_null(out.content);
    gv_buf_free(&b);
    gv_free(req);
    gv_free(resp);
}

/* The encoding appends to what out holds, is byte for byte what protobuf-c's own
 * packer gives for the same message, and a cap too small for it leaves out as it
 * was with GV_E2BIG. */
static void test_event_encode_appends_exact_bytes_or_nothing(void **state)
{
    struct gv_record in;
    struct gv_buf b, small;
    Gv__V1__GovernanceEvent *ev;
    uint8_t *again;
    size_t n;

    (void)state;
    fill_record(&in);
    gv_buf_init(&b, 0);
    gv_buf_append_str(&b, "xyz");
    assert_int_equal(gv_event_encode(&in, "0123456789abcdef0123456789abcdef", 9, &b), GV_OK);
    assert_memory_equal(b.data, "xyz", 3);
    assert_int_equal(b.data[b.len], '\0');
    ev = gv__v1__governance_event__unpack(NULL, b.len - 3, (const uint8_t *)b.data + 3);
    assert_non_null(ev);
    assert_int_equal(ev->n_policies, 2);
    n = gv__v1__governance_event__get_packed_size(ev);
    assert_int_equal(n, b.len - 3);
    again = gv_malloc(n);
    assert_int_equal(gv__v1__governance_event__pack(ev, again), n);
    assert_memory_equal(again, b.data + 3, n);
    gv_free(again);
    gv__v1__governance_event__free_unpacked(ev, NULL);
    /* Room for "xyz" and part of the event only. */
    gv_buf_init(&small, b.len - 1);
    gv_buf_append_str(&small, "xyz");
    assert_int_equal(gv_event_encode(&in, "0123456789abcdef0123456789abcdef", 9, &small), GV_E2BIG);
    assert_int_equal(small.len, 3);
    assert_string_equal(small.data, "xyz");
    gv_buf_free(&small);
    gv_buf_free(&b);
}

static void test_event_decode_rejects_garbage(void **state)
{
    struct gv_record out;
    struct gv_event_meta meta;
    const uint8_t bad[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

    (void)state;
    assert_int_equal(gv_event_decode(bad, sizeof(bad), &out, &meta), GV_EPROTO);
}

static void test_event_decode_survives_random_bytes(void **state)
{
    struct gv_record in, out;
    struct gv_event_meta meta;
    struct gv_buf b;
    int i;

    (void)state;
    fill_record(&in);
    gv_buf_init(&b, 0);
    assert_int_equal(gv_event_encode(&in, "id", 1, &b), GV_OK);
    srand(7);
    /* Mutated valid encodings and truncations: decode either succeeds with
     * bounded fields or reports EPROTO, never crashes (ASan checks the rest). */
    for (i = 0; i < 20000; i++) {
        char copy[8192];
        size_t n = b.len;
        int k;
        memcpy(copy, b.data, n);
        for (k = 0; k < 1 + rand() % 4; k++) {
            copy[rand() % n] = (char)rand();
        }
        n = (size_t)rand() % (n + 1);
        if (gv_event_decode(copy, n, &out, &meta) == GV_OK) {
            assert_true(strlen(out.run_id) <= GV_RUN_TAG_MAX);
            assert_true(out.npolicies <= GV_RECORD_MAX_POLICIES);
            assert_true(out.decision <= GV_DECISION_ERROR);
            gv_record_release(&out);
        }
    }
    gv_buf_free(&b);
}

static void test_event_decode_truncates_long_strings(void **state)
{
    struct gv_record in, out;
    struct gv_event_meta meta;
    struct gv_buf b;
    char longid[300];

    (void)state;
    fill_record(&in);
    memset(longid, 'x', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    gv_buf_init(&b, 0);
    /* An instance id longer than the field, as a hostile sender could send. */
    assert_int_equal(gv_event_encode(&in, longid, 1, &b), GV_OK);
    assert_int_equal(gv_event_decode(b.data, b.len, &out, &meta), GV_OK);
    assert_int_equal(strlen(meta.instance_id), GV_INSTANCE_ID_LEN);
    gv_buf_free(&b);
}

static void test_hello_roundtrip_chain(void **state)
{
    struct gv_hello in, out;
    struct gv_buf b;

    (void)state;
    memset(&in, 0, sizeof(in));
    in.schema_version = GV_EVENT_SCHEMA_VERSION;
    snprintf(in.instance_id, sizeof(in.instance_id), "abc");
    snprintf(in.pack_name, sizeof(in.pack_name), "research-default");
    snprintf(in.pack_version, sizeof(in.pack_version), "1.2.0");
    snprintf(in.chain, sizeof(in.chain), "prompt-injection,pii-detector,audit-logger");
    in.pid = 42;
    gv_buf_init(&b, 0);
    assert_int_equal(gv_hello_encode(&in, &b), GV_OK);
    assert_int_equal(gv_hello_decode(b.data, b.len, &out), GV_OK);
    assert_memory_equal(&in, &out, sizeof(in));
    gv_buf_free(&b);
}

/* A chain longer than gv_hello.chain keeps whole names: the first one that does not fit ends
 * it, since a cut name would read as another policy. */
static void test_hello_decode_keeps_whole_names(void **state)
{
    char long_name[sizeof(((struct gv_hello *)0)->chain) - 4];
    char *names[] = {(char *)"first", long_name, (char *)"third"};
    Gv__V1__Hello m = GV__V1__HELLO__INIT;
    struct gv_hello out;
    uint8_t *buf;
    size_t n;

    (void)state;
    memset(long_name, 'x', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    m.n_chain = 3;
    m.chain = names;
    buf = malloc(gv__v1__hello__get_packed_size(&m));
    n = gv__v1__hello__pack(&m, buf);
    assert_int_equal(gv_hello_decode(buf, n, &out), GV_OK);
    assert_string_equal(out.chain, "first");
    /* With room for it the long name is kept whole, and the next one after it is not. */
    names[0] = (char *)"a";
    n = gv__v1__hello__pack(&m, buf);
    assert_int_equal(gv_hello_decode(buf, n, &out), GV_OK);
    assert_int_equal(strlen(out.chain), 2 + strlen(long_name));
    assert_memory_equal(out.chain, "a,", 2);
    free(buf);
}

static void test_frame_parse_incomplete_and_oversized(void **state)
{
    struct gv_buf b;
    unsigned type;
    const uint8_t *p;
    size_t plen, used;
    uint8_t big[GV_FRAME_HDR];

    (void)state;
    gv_buf_init(&b, 0);
    assert_int_equal(gv_frame_append(&b, GV_FRAME_ACK, "12345678", 8), GV_OK);
    assert_int_equal(gv_frame_parse(b.data, 3, &type, &p, &plen, &used), GV_EAGAIN);
    assert_int_equal(gv_frame_parse(b.data, b.len - 1, &type, &p, &plen, &used), GV_EAGAIN);
    assert_int_equal(gv_frame_parse(b.data, b.len, &type, &p, &plen, &used), GV_OK);
    assert_int_equal(type, GV_FRAME_ACK);
    assert_int_equal(plen, 8);
    assert_int_equal(used, GV_FRAME_HDR + 8);
    assert_memory_equal(p, "12345678", 8);
    gv_put_u32le(big, GV_FRAME_MAX + 1);
    big[4] = GV_FRAME_EVENT;
    assert_int_equal(gv_frame_parse(big, sizeof(big), &type, &p, &plen, &used), GV_EPROTO);
    assert_int_equal(gv_frame_append(&b, GV_FRAME_EVENT, big, GV_FRAME_MAX + 1), GV_E2BIG);
    gv_buf_free(&b);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_event_roundtrip_keeps_every_field),
    cmocka_unit_test(test_event_roundtrip_weave_fields_at_the_cap),
    cmocka_unit_test(test_event_encode_appends_exact_bytes_or_nothing),
    cmocka_unit_test(test_event_decode_rejects_garbage),
    cmocka_unit_test(test_event_decode_survives_random_bytes),
    cmocka_unit_test(test_event_decode_truncates_long_strings),
    cmocka_unit_test(test_hello_roundtrip_chain),
    cmocka_unit_test(test_hello_decode_keeps_whole_names),
    cmocka_unit_test(test_frame_parse_incomplete_and_oversized),
};

#include "tests/unit/unit_main.h"
