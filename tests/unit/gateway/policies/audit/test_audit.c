/* tests/unit/gateway/policies/audit/test_audit.c - audit-logger writer, chain and verify */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <json-c/json.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/time.h>
#include <sys/wait.h>

#include "core/gv_buf.h"
#include "core/gv_record.h"
#include "gateway/gw_req.h"
#include "gateway/policies/audit/audit_store.h"
#include "tests/unit/gateway/policies/pol_fixture.h"

extern const struct gw_policy_ops gw_policy_audit;

static const char *const BASE_CFG = "immutable: true\n"
                                    "retention_days: 365\n"
                                    "log_all_access: true\n"
                                    "fsync_interval: 10ms\n";

static void fill_rec(struct gv_record *rec, int i, enum gv_decision d)
{
    memset(rec, 0, sizeof(*rec));
    snprintf(rec->request_id, sizeof(rec->request_id), "req-%04d", i);
    snprintf(rec->run_id, sizeof(rec->run_id), "run-%d", i % 2);
    snprintf(rec->model, sizeof(rec->model), "gpt-4o");
    snprintf(rec->target, sizeof(rec->target), "experiment-llm");
    rec->decision = d;
    rec->http_status = d == GV_DECISION_BLOCKED ? 403 : 200;
    rec->npolicies = 1;
    snprintf(rec->policies[0].name, sizeof(rec->policies[0].name), "pii-detector");
    rec->policies[0].action = d == GV_DECISION_REDACTED ? GV_OUTCOME_REDACT : GV_OUTCOME_PASS;
    rec->policies[0].pii_counts[GV_PII_EMAIL_ADDRESS] = d == GV_DECISION_REDACTED ? 1 : 0;
    rec->start_wall_us = 1700000000000000ull + (uint64_t)i * 1000u;
    rec->tokens_prompt = 10;
    rec->tokens_completion = 20;
}

/* The policy as a test drives it: the instance, and a request wired to the record complete()
 * writes, the way the chain hands them over. */
struct audit_fx {
    struct fx_pol fx;
    struct gw_req req;
    struct gv_record rec;
};

/* Open the policy with `cfg` in `state`; the request and its record start empty. */
static void audit_open(struct audit_fx *a, const char *cfg, const char *state)
{
    struct gv_cfg_err err;

    memset(&a->req, 0, sizeof(a->req));
    memset(&a->rec, 0, sizeof(a->rec));
    a->req.rec = &a->rec;
    assert_int_equal(fx_open(&a->fx, &gw_policy_audit, cfg, state, &err), GV_OK);
}

/* Hand the request and its record over as the chain does when a request ends: stamp()
 * (cost, audit head), the record packed once it is final, then complete(). */
static void audit_complete(struct audit_fx *a)
{
    gw_policy_audit.stamp(&a->fx.pol, &a->req, &a->rec);
    a->req.packed = gv_record_pack_scratch(&a->rec);
    gw_policy_audit.complete(&a->fx.pol, &a->req, &a->rec);
}

/* Write n records through the policy (complete()), then close it (drains). */
static void write_records(const char *state, const char *cfg, int from, int n)
{
    struct audit_fx a;
    int i;

    audit_open(&a, cfg, state);
    for (i = from; i < from + n; i++) {
        fill_rec(&a.rec, i, i % 3 == 0 ? GV_DECISION_REDACTED : GV_DECISION_ALLOWED);
        audit_complete(&a);
    }
    fx_close(&a.fx);
}

static void audit_dir(const char *state, char *buf, size_t size)
{
    snprintf(buf, size, "%s/audit", state);
}

static void seg1(const char *state, char *buf, size_t size)
{
    char dir[512];
    audit_dir(state, dir, sizeof(dir));
    assert_int_equal(gw_audit_segment_path(dir, 1, buf, size), GV_OK);
}

/* The log under state, which must verify: what verify found. A failure names its problem. */
static struct gw_audit_verify_result verified(const char *state)
{
    char dir[512];
    struct gw_audit_verify_result res;

    audit_dir(state, dir, sizeof(dir));
    if (gw_audit_verify(dir, &res) != GV_OK) {
        fail_msg("%s", res.problem);
    }
    return res;
}

/* Rewrite a file through a callback on its bytes. */
static void rewrite(const char *path, void (*fn)(struct gv_buf *b))
{
    struct gv_buf b;
    FILE *f;

    chmod(path, 0644);
    assert_int_equal(gw_audit_read_file(path, 1u << 26, &b), GV_OK);
    fn(&b);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b.data, 1, b.len, f), b.len);
    fclose(f);
    gv_buf_free(&b);
}

/* Byte offset where line `n` (1-based) starts. */
static size_t line_start(const struct gv_buf *b, int n)
{
    size_t off = 0;
    while (--n > 0) {
        const char *nl = memchr(b->data + off, '\n', b->len - off);
        assert_non_null(nl);
        off = (size_t)(nl - b->data) + 1;
    }
    return off;
}

static void verify_fails_with(const char *state, uint64_t seq, const char *what)
{
    char dir[512];
    struct gw_audit_verify_result res;

    audit_dir(state, dir, sizeof(dir));
    assert_int_equal(gw_audit_verify(dir, &res), GV_EPROTO);
    if (seq) {
        assert_int_equal(res.bad_seq, seq);
    }
    if (!strstr(res.problem, what)) {
        fail_msg("problem '%s' does not mention '%s'", res.problem, what);
    }
}

/* Six records through the policy, then segment 1 (its path in `path`) rewritten by fn. */
static void tampered(const char *st, void (*fn)(struct gv_buf *b), char *path, size_t size)
{
    write_records(st, BASE_CFG, 1, 6);
    seg1(st, path, size);
    rewrite(path, fn);
}

static void test_line_seal_roundtrip_and_edit(void **state)
{
    struct gv_buf b;
    char h[GW_AUDIT_HASH_HEX + 1], h2[GW_AUDIT_HASH_HEX + 1];

    (void)state;
    gv_buf_init(&b, 0);
    assert_int_equal(gv_buf_append_str(&b, "{\"seq\":1}"), GV_OK);
    assert_int_equal(gw_audit_line_seal(&b, h), GV_OK);
    assert_int_equal(b.data[b.len - 1], '\n');
    assert_int_equal(gw_audit_line_check(b.data, b.len - 1, h2), GV_OK);
    assert_string_equal(h, h2);
    b.data[3] = 'x';
    assert_int_equal(gw_audit_line_check(b.data, b.len - 1, h2), GV_EPROTO);
    assert_int_equal(gw_audit_line_check("{}", 2, h2), GV_EPROTO);
    gv_buf_reset(&b);
    assert_int_equal(gv_buf_append_str(&b, "not json"), GV_OK);
    assert_int_equal(gw_audit_line_seal(&b, h), GV_EINVAL);
    gv_buf_free(&b);
}

/* The line's bytes are part of the chain: a verifier and `kt events` read them. */
static void test_record_json_bytes(void **state)
{
    struct gv_record rec;
    struct gv_buf b;

    (void)state;
    fill_rec(&rec, 7, GV_DECISION_REDACTED);
    snprintf(rec.team, sizeof(rec.team), "a\"b\\c\n");
    rec.npolicies = 2;
    snprintf(rec.policies[1].name, sizeof(rec.policies[1].name), "prompt-injection");
    rec.policies[1].action = GV_OUTCOME_BLOCK;
    rec.policies[1].score = 0.91234;
    rec.policies[1].pii_counts[GV_PII_PERSON] = 2;
    rec.latency_total_us = 1234567;
    rec.latency_upstream_us = 1000;
    rec.latency_gateway_us = 5;
    rec.streamed = true;
    rec.tokens_estimated = true;
    gv_buf_init(&b, 0);
    assert_int_equal(gv_buf_append_str(&b, "x"), GV_OK);
    assert_int_equal(gw_audit_record_json(&rec, 0.000125, NULL, NULL, false, 42, "ab", &b), GV_OK);
    assert_string_equal(
        b.data, "x{\"seq\":42,\"prev\":\"ab\",\"ts\":\"2023-11-14T22:13:20.007Z\","
                "\"ts_us\":1700000000007000,\"request_id\":\"req-0007\",\"run_id\":\"run-1\","
                "\"project\":\"\",\"entity\":\"\",\"run_group\":\"\",\"principal\":\"\","
                "\"team\":\"a\\\"b\\\\c\\n\",\"model\":\"gpt-4o\",\"target\":\"experiment-llm\","
                "\"decision\":\"redacted\",\"status\":200,\"error_code\":\"\",\"policies\":["
                "{\"name\":\"pii-detector\",\"action\":\"redact\",\"score\":0.0000,"
                "\"pii\":{\"EMAIL_ADDRESS\":1}},"
                "{\"name\":\"prompt-injection\",\"action\":\"block\",\"score\":0.9123,"
                "\"pii\":{\"PERSON\":2}}],\"pii\":{\"PERSON\":2,\"EMAIL_ADDRESS\":1},"
                "\"latency_ms\":1234.567,\"upstream_ms\":1.000,\"gateway_ms\":0.005,"
                "\"tokens_prompt\":10,\"tokens_completion\":20,\"cost_usd\":0.00012500,"
                "\"streamed\":true,\"tokens_estimated\":true}");
    gv_buf_free(&b);
}

/* The writer reserves gw_audit_record_bound and then writes without checks: the worst
 * record (every string byte a control byte, every count and number at its widest)
 * must fit. The buffer's cap is the bound plus the closing brace, so ASan sees any
 * byte past it. */
static void test_record_json_worst_case_fits_bound(void **state)
{
    static struct gv_record rec;
    char prev[200];
    struct gv_buf b;
    size_t bound, i;
    int t;

    (void)state;
    for (t = 0; t < GV_PII_NTYPES; t++) {
        assert_true(strlen(gv_pii_name(t)) < 32);
    }
    memset(&rec, 0x01, sizeof(rec));
#define FILL(f) ((f)[sizeof(f) - 1] = '\0')
    FILL(rec.request_id);
    FILL(rec.run_id);
    FILL(rec.project);
    FILL(rec.entity);
    FILL(rec.run_group);
    FILL(rec.principal);
    FILL(rec.team);
    FILL(rec.model);
    FILL(rec.target);
    FILL(rec.error_code);
    rec.npolicies = GV_RECORD_MAX_POLICIES;
    for (i = 0; i < GV_RECORD_MAX_POLICIES; i++) {
        FILL(rec.policies[i].name);
        rec.policies[i].action = GV_OUTCOME_ERROR;
        rec.policies[i].score = -1.7e308;
        for (t = 0; t < GV_PII_NTYPES; t++) {
            rec.policies[i].pii_counts[t] = UINT32_MAX / GV_RECORD_MAX_POLICIES;
        }
    }
#undef FILL
    rec.decision = GV_DECISION_ERROR;
    rec.http_status = 599;
    rec.start_wall_us = UINT64_MAX / 2;
    rec.latency_total_us = rec.latency_upstream_us = rec.latency_gateway_us = UINT64_MAX;
    rec.tokens_prompt = rec.tokens_completion = UINT64_MAX;
    rec.streamed = rec.tokens_estimated = true;
    memset(prev, 0x01, sizeof(prev) - 1);
    prev[sizeof(prev) - 1] = '\0';
    bound = gw_audit_record_bound(strlen(prev));
    gv_buf_init(&b, bound + 1);
    assert_int_equal(gw_audit_record_json(&rec, -1.7e308, NULL, NULL, false, UINT64_MAX, prev, &b),
                     GV_OK);
    assert_true(b.len <= bound + 1);
    assert_int_equal(b.data[b.len - 1], '}');
    {
        struct json_object *o = json_tokener_parse(b.data);
        assert_non_null(o);
        json_object_put(o);
    }
    gv_buf_free(&b);
}

static void test_complete_writes_chain_that_verifies(void **state)
{
    const char *st = *state;
    struct gw_audit_verify_result res;

    write_records(st, BASE_CFG, 1, 25);
    res = verified(st);
    assert_int_equal(res.records, 25);
    assert_int_equal(res.first_seq, 1);
    assert_int_equal(res.last_seq, 25);
    /* A restart continues the same chain. */
    write_records(st, BASE_CFG, 26, 5);
    assert_int_equal(verified(st).records, 30);
}

/* A node is as large as its record: records of very different sizes through one
 * writer, the large ones after small ones were written and their nodes kept for
 * reuse, all come out whole. */
static void test_records_of_any_size_come_out_whole(void **state)
{
    const char *st = *state;
    struct audit_fx a;
    struct gv_buf b;
    char path[600], want[160];
    int i, k, tries;

    audit_open(&a, "fsync: always\n", st);
    for (i = 1; i <= 40; i++) {
        bool large = i > 10 && i % 2 == 1;
        fill_rec(&a.rec, i, GV_DECISION_ALLOWED);
        if (large) {
            a.rec.npolicies = GV_RECORD_MAX_POLICIES;
            for (k = 0; k < GV_RECORD_MAX_POLICIES; k++) {
                snprintf(a.rec.policies[k].name, sizeof(a.rec.policies[k].name), "policy-%02d-%d",
                         k, i);
                a.rec.policies[k].pii_counts[GV_PII_EMAIL_ADDRESS] = (uint32_t)(k + i);
            }
            snprintf(a.rec.error_code, sizeof(a.rec.error_code), "large_record_%d_%s", i,
                     "padding_padding_padding");
        }
        audit_complete(&a);
        if (i == 10) {
            /* Wait until the ten small ones are written: their nodes are spares now. */
            for (tries = 0; tries < 500 && verified(st).records < 10; tries++) {
                usleep(10000);
            }
            assert_int_equal(verified(st).records, 10);
        }
    }
    fx_close(&a.fx);
    assert_int_equal(verified(st).records, 40);
    seg1(st, path, sizeof(path));
    assert_int_equal(gw_audit_read_file(path, 1u << 22, &b), GV_OK);
    for (i = 11; i <= 40; i += 2) {
        snprintf(want, sizeof(want), "large_record_%d_padding_padding_padding", i);
        assert_non_null(strstr(b.data, want));
        snprintf(want, sizeof(want), "\"policy-15-%d\"", i);
        assert_non_null(strstr(b.data, want));
    }
    gv_buf_free(&b);
}

static void test_record_holds_no_content_by_default(void **state)
{
    const char *st = *state;
    char path[600];
    struct gv_buf b;
    struct audit_fx a;
    struct gv_cfg_err err;

    audit_open(&a, BASE_CFG, st);
    a.req.body = json_tokener_parse(
        "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"secret words\"}]}");
    fill_rec(&a.rec, 1, GV_DECISION_ALLOWED);
    audit_complete(&a);
    fx_close(&a.fx);
    seg1(st, path, sizeof(path));
    assert_int_equal(gw_audit_read_file(path, 1u << 20, &b), GV_OK);
    assert_null(strstr(b.data, "secret words"));
    assert_non_null(strstr(b.data, "\"request_id\":\"req-0001\""));
    assert_non_null(strstr(b.data, "\"cost_usd\":0.00022500")); /* 10 in + 20 out at gpt-4o */
    gv_buf_free(&b);

    /* store_content: only what was forwarded, never for a blocked request. The same request
     * goes to the policy opened again. */
    assert_int_equal(
        fx_open(&a.fx, &gw_policy_audit, "store_content: true\nfsync: always\n", st, &err), GV_OK);
    fill_rec(&a.rec, 2, GV_DECISION_REDACTED);
    audit_complete(&a);
    fill_rec(&a.rec, 3, GV_DECISION_BLOCKED);
    json_object_put(a.req.body);
    a.req.body = json_tokener_parse(
        "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"blocked words\"}]}");
    audit_complete(&a);
    fx_close(&a.fx);
    json_object_put(a.req.body);
    assert_int_equal(gw_audit_read_file(path, 1u << 20, &b), GV_OK);
    assert_non_null(strstr(b.data, "secret words"));
    assert_null(strstr(b.data, "blocked words"));
    gv_buf_free(&b);
}

/* store_content keeps the answer as the relay collected it; a record priced
 * by cost-tracker keeps that cost; estimated tokens say so. */
static void test_store_content_keeps_answer_and_priced_cost(void **state)
{
    const char *st = *state;
    char path[600];
    struct gv_buf b, answer;
    struct audit_fx a;

    audit_open(&a, "store_content: true\nfsync: always\n", st);
    assert_true(gw_policy_audit.keeps_answer(&a.fx.pol));
    a.req.body = json_tokener_parse(
        "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"q?\"}]}");
    gv_buf_init(&answer, 0);
    assert_int_equal(gv_buf_append_str(&answer, "the \"answer\" <EMAIL_ADDRESS>"), GV_OK);
    a.req.answer = &answer;
    fill_rec(&a.rec, 1, GV_DECISION_REDACTED);
    a.rec.cost_usd = 11.0; /* cost-tracker's configured price, set before complete() */
    a.rec.cost_priced = true;
    audit_complete(&a);
    fill_rec(&a.rec, 2, GV_DECISION_ALLOWED);
    a.rec.tokens_estimated = true;
    a.req.answer_truncated = true;
    audit_complete(&a);
    fill_rec(&a.rec, 3, GV_DECISION_BLOCKED);
    gv_buf_reset(&answer);
    assert_int_equal(gv_buf_append_str(&answer, "never stored"), GV_OK);
    audit_complete(&a);
    fx_close(&a.fx);
    json_object_put(a.req.body);
    gv_buf_free(&answer);
    seg1(st, path, sizeof(path));
    assert_int_equal(gw_audit_read_file(path, 1u << 20, &b), GV_OK);
    assert_non_null(strstr(b.data, "\"cost_usd\":11.00000000,\"streamed\":false,\"content\":"));
    assert_non_null(strstr(b.data, "\"answer\":\"the \\\"answer\\\" <EMAIL_ADDRESS>\",\"hash\""));
    assert_non_null(strstr(b.data, "\"cost_usd\":0.00022500,\"streamed\":false,"
                                   "\"tokens_estimated\":true,"));
    assert_non_null(strstr(b.data, "<EMAIL_ADDRESS>\",\"answer_truncated\":true,\"hash\""));
    assert_null(strstr(b.data, "never stored"));
    gv_buf_free(&b);
}

/* A line is at most GW_AUDIT_LINE_MAX: a record whose content would make it longer is
 * kept without its content, between records that keep theirs, and the chain holds. */
static void test_oversize_content_is_left_out(void **state)
{
    const char *st = *state;
    const size_t big = GW_AUDIT_LINE_MAX + 4096;
    char path[600];
    struct gv_buf b, answer;
    struct audit_fx a;
    const char *line2, *line3;
    char *huge = malloc(big + 1);

    assert_non_null(huge);
    memset(huge, 'x', big);
    huge[big] = '\0';
    audit_open(&a, "store_content: true\nfsync: always\n", st);
    a.req.body = json_tokener_parse(
        "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"q?\"}]}");
    gv_buf_init(&answer, 0);
    a.req.answer = &answer;
    assert_int_equal(gv_buf_append_str(&answer, "small-one"), GV_OK);
    fill_rec(&a.rec, 1, GV_DECISION_ALLOWED);
    audit_complete(&a);
    gv_buf_reset(&answer);
    assert_int_equal(gv_buf_append_str(&answer, huge), GV_OK);
    fill_rec(&a.rec, 2, GV_DECISION_ALLOWED);
    audit_complete(&a);
    gv_buf_reset(&answer);
    assert_int_equal(gv_buf_append_str(&answer, "small-three"), GV_OK);
    fill_rec(&a.rec, 3, GV_DECISION_ALLOWED);
    audit_complete(&a);
    fx_close(&a.fx);
    json_object_put(a.req.body);
    gv_buf_free(&answer);
    free(huge);
    assert_int_equal(verified(st).records, 3);
    seg1(st, path, sizeof(path));
    assert_int_equal(gw_audit_read_file(path, 1u << 22, &b), GV_OK);
    assert_true(b.len < GW_AUDIT_LINE_MAX);
    assert_non_null(strstr(b.data, "\"answer\":\"small-one\""));
    line2 = strstr(b.data, "\"request_id\":\"req-0002\"");
    line3 = strstr(b.data, "\"request_id\":\"req-0003\"");
    assert_non_null(line2);
    assert_non_null(line3);
    assert_true(line2 < line3);
    /* Record 2 has neither content nor answer; record 3 has both again. */
    assert_true(strstr(line2, "\"content\"") > line3);
    assert_true(strstr(line2, "\"answer\"") > line3);
    assert_non_null(strstr(line3, "\"answer\":\"small-three\""));
    gv_buf_free(&b);
}

static void test_log_all_access_false_skips_allowed(void **state)
{
    const char *st = *state;

    /* 1..9: i % 3 == 0 are redacted (3, 6, 9), the rest allowed. */
    write_records(st, "log_all_access: false\nfsync_interval: 10ms\n", 1, 9);
    assert_int_equal(verified(st).records, 3);
}

static void edit_byte(struct gv_buf *b)
{
    size_t off = line_start(b, 4); /* record seq 3 */
    char *p = strstr(b->data + off, "req-0003");
    assert_non_null(p);
    p[4] = '9';
}

static void delete_line(struct gv_buf *b)
{
    size_t a = line_start(b, 4), z = line_start(b, 5); /* drop record seq 3 */
    memmove(b->data + a, b->data + z, b->len - z);
    b->len -= z - a;
}

static void swap_lines(struct gv_buf *b)
{
    size_t a = line_start(b, 3), m = line_start(b, 4), z = line_start(b, 5);
    char *tmp = gv_malloc(z - a);
    /* lines 3 and 4 are records seq 2 and 3 */
    memcpy(tmp, b->data + m, z - m);
    memcpy(tmp + (z - m), b->data + a, m - a);
    memcpy(b->data + a, tmp, z - a);
    gv_free(tmp);
}

static void cut_tail(struct gv_buf *b)
{
    b->len -= 10; /* a torn last line */
}

/* One way of tampering with segment 1, and what verify must say about it: the seq it names
 * (0: none) and a word of its problem. */
struct tamper_row {
    void (*edit)(struct gv_buf *b);
    uint64_t bad_seq;
    const char *problem;
};

static const struct tamper_row EDITED = {edit_byte, 3, "edited"};
static const struct tamper_row DELETED = {delete_line, 4, "deleted, inserted or reordered"};
static const struct tamper_row SWAPPED = {swap_lines, 3, "deleted, inserted or reordered"};
static const struct tamper_row TORN = {cut_tail, 0, "truncated"};

/* Each row is its own cmocka test (the row comes in as the initial state), so a failure names
 * the row; the dir is made here because a setup would replace that state. */
static void test_verify_names_tampering(void **state)
{
    const struct tamper_row *row = *state;
    char st[UNIT_TMPDIR_MAX], path[600];

    unit_tmpdir_make(st, sizeof(st));
    tampered(st, row->edit, path, sizeof(path));
    verify_fails_with(st, row->bad_seq, row->problem);
    unit_tmpdir_remove(st);
}

static void drop_last_line(struct gv_buf *b)
{
    b->len = line_start(b, 7); /* header + 5 records remain of 6 */
}

static void test_verify_catches_truncation(void **state)
{
    char st[256], path[600];

    (void)state;
    unit_tmpdir_make(st, sizeof(st));
    tampered(st, drop_last_line, path, sizeof(path));
    verify_fails_with(st, 6, "truncated");

    /* A torn tail left by a crash is repaired by the next start. */
    rewrite(path, cut_tail);
    /* head.json is ahead of the repaired log: the writer re-derives it. */
    write_records(st, BASE_CFG, 100, 2);
    assert_int_equal(verified(st).records, 6); /* 4 survived the cut + 2 new */
    unit_tmpdir_remove(st);
}

static void test_rotation_and_retention_keep_chain_verifiable(void **state)
{
    const char *st = *state;
    char dir[512], path[600];
    struct gw_audit_verify_result res;
    struct timeval old[2];
    uint64_t *segs = NULL;
    size_t n = 0;
    unsigned deleted = 0;

    /* ~700-byte records, 4 KiB segments: several segments. */
    write_records(st, "segment_max_bytes: 4096\nfsync: always\n", 1, 30);
    audit_dir(st, dir, sizeof(dir));
    res = verified(st);
    assert_int_equal(res.records, 30);
    assert_true(res.segments >= 3);
    /* Closed segments are read-only. */
    assert_int_equal(gw_audit_segment_path(dir, 1, path, sizeof(path)), GV_OK);
    {
        struct stat sb;
        assert_int_equal(stat(path, &sb), 0);
        assert_int_equal(sb.st_mode & 0222, 0);
    }
    /* Age the two oldest segments and apply retention. */
    memset(old, 0, sizeof(old));
    old[0].tv_sec = old[1].tv_sec = 1000;
    utimes(path, old);
    assert_int_equal(gw_audit_segment_path(dir, 2, path, sizeof(path)), GV_OK);
    utimes(path, old);
    assert_int_equal(gw_audit_retention(dir, 100000, UINT64_MAX, &deleted), GV_OK);
    assert_int_equal(deleted, 2);
    assert_int_equal(gw_audit_segments_list(dir, &segs, &n), GV_OK);
    assert_int_equal(segs[0], 3);
    gv_free(segs);
    res = verified(st);
    assert_true(res.first_seq > 1);
    assert_int_equal(res.last_seq, 30);
    /* Deleting a middle segment by hand is caught. */
    assert_int_equal(gw_audit_segment_path(dir, 4, path, sizeof(path)), GV_OK);
    assert_int_equal(unlink(path), 0);
    verify_fails_with(st, 0, "segment 4 is missing");
}

static void head_path(const char *state, char *buf, size_t size)
{
    snprintf(buf, size, "%s/audit/head.json", state);
}

/* Deletes the newest of 6 records and head.json together, as someone hiding a deletion would. */
static void drop_newest_record_and_head(const char *state)
{
    char path[600], head[600];

    seg1(state, path, sizeof(path));
    rewrite(path, drop_last_line);
    head_path(state, head, sizeof(head));
    assert_int_equal(unlink(head), 0);
}

static void test_verify_fails_without_head(void **state)
{
    const char *st = *state;

    write_records(st, BASE_CFG, 1, 6);
    drop_newest_record_and_head(st);
    verify_fails_with(st, 0, "head.json is missing");
}

static void verify_expect_fails_with(const char *state, const struct gw_audit_pos *expect,
                                     const char *what)
{
    char dir[512];
    struct gw_audit_verify_result res;

    audit_dir(state, dir, sizeof(dir));
    assert_int_equal(gw_audit_verify_expect(dir, expect, &res), GV_EPROTO);
    if (!strstr(res.problem, what)) {
        fail_msg("problem '%s' does not mention '%s'", res.problem, what);
    }
}

static void test_verify_expect_head(void **state)
{
    char st[256], dir[512], path[600];
    struct gw_audit_verify_result res;
    struct gw_audit_pos published, other;

    (void)state;
    unit_tmpdir_make(st, sizeof(st));
    write_records(st, BASE_CFG, 1, 6);
    audit_dir(st, dir, sizeof(dir));
    assert_int_equal(gw_audit_pos_read(dir, "head.json", &published), GV_OK);
    assert_int_equal(published.seq, 6);
    assert_int_equal(gw_audit_verify_expect(dir, &published, &res), GV_OK);
    /* The log may grow past a published head. */
    write_records(st, BASE_CFG, 7, 2);
    assert_int_equal(gw_audit_verify_expect(dir, &published, &res), GV_OK);
    assert_int_equal(res.last_seq, 8);
    /* A hash the chain never held at that seq. */
    other = published;
    other.hash[0] = other.hash[0] == '0' ? '1' : '0';
    verify_expect_fails_with(st, &other, "does not match the published head");
    other = published;
    other.seq = 100;
    verify_expect_fails_with(st, &other, "truncated: the published head is seq 100");

    /* Deleting the newest records and head.json, then letting the writer
     * re-derive head.json from what is left, passes a plain verify; the
     * published head still catches it. */
    assert_int_equal(gw_audit_pos_read(dir, "head.json", &published), GV_OK);
    drop_newest_record_and_head(st);
    {
        /* The writer says that it found no head (the log goes to fd 2). */
        char logp[600];
        struct gv_buf logb;
        int saved = dup(2), fd;
        snprintf(logp, sizeof(logp), "%s/stderr.txt", st);
        fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        assert_true(saved >= 0 && fd >= 0);
        dup2(fd, 2);
        write_records(st, BASE_CFG, 0, 0);
        dup2(saved, 2);
        close(saved);
        close(fd);
        assert_int_equal(gw_audit_read_file(logp, 1u << 20, &logb), GV_OK);
        assert_non_null(strstr(logb.data, "head.json is missing"));
        gv_buf_free(&logb);
    }
    verified(st);
    verify_expect_fails_with(st, &published, "truncated: the published head is seq 8");
    unit_tmpdir_remove(st);

    /* Right after a rotation head.json names the new segment's header. */
    unit_tmpdir_make(st, sizeof(st));
    write_records(st, "segment_max_bytes: 4096\nfsync: always\n", 1, 30);
    audit_dir(st, dir, sizeof(dir));
    {
        uint64_t seg;
        for (seg = 2; seg < 100; seg++) {
            struct gw_audit_pos hd;
            struct gv_buf b;
            size_t nl;
            assert_int_equal(gw_audit_segment_path(dir, seg, path, sizeof(path)), GV_OK);
            if (gw_audit_read_file(path, 1u << 20, &b) != GV_OK) {
                break;
            }
            /* The header line's hash is the last 64 hex digits before `"}`. */
            nl = (size_t)((char *)memchr(b.data, '\n', b.len) - b.data);
            memset(&hd, 0, sizeof(hd));
            memcpy(hd.hash, b.data + nl - 2 - GW_AUDIT_HASH_HEX, GW_AUDIT_HASH_HEX);
            {
                struct json_object *o = json_tokener_parse(b.data);
                struct json_object *v;
                assert_non_null(o);
                assert_true(json_object_object_get_ex(o, "first_seq", &v));
                hd.seq = (uint64_t)json_object_get_int64(v) - 1;
                json_object_put(o);
            }
            gv_buf_free(&b);
            assert_int_equal(gw_audit_verify_expect(dir, &hd, &res), GV_OK);
        }
        assert_true(seg > 3);
    }
    unit_tmpdir_remove(st);
}

static void assert_mode(const char *path, unsigned mode)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    if ((sb.st_mode & 0777) != mode) {
        fail_msg("%s is %03o, want %03o", path, (unsigned)(sb.st_mode & 0777), mode);
    }
}

static void test_files_are_private_in_a_shared_dir(void **state)
{
    const char *st = *state;
    char dir[512], cfg[1024], path[600];
    mode_t old = umask(022);

    /* An operator's directory that everybody may read. */
    snprintf(dir, sizeof(dir), "%s/shared", st);
    assert_int_equal(mkdir(dir, 0755), 0);
    assert_int_equal(chmod(dir, 0755), 0);
    snprintf(cfg, sizeof(cfg),
             "dir: %s\nstore_content: true\nsegment_max_bytes: 4096\nfsync: always\n", dir);
    write_records(st, cfg, 1, 30);
    assert_int_equal(gw_audit_segment_path(dir, 1, path, sizeof(path)), GV_OK);
    assert_mode(path, 0400); /* closed */
    snprintf(path, sizeof(path), "%s/head.json", dir);
    assert_mode(path, 0600);
    {
        uint64_t *segs = NULL;
        size_t n = 0;
        assert_int_equal(gw_audit_segments_list(dir, &segs, &n), GV_OK);
        assert_true(n >= 3);
        assert_int_equal(gw_audit_segment_path(dir, segs[n - 1], path, sizeof(path)), GV_OK);
        gv_free(segs);
    }
    assert_mode(path, 0600); /* the open segment */
    umask(old);
}

/* evaluate() on the request until it answers `want` or 5 s have passed (the writer works on
 * its own thread; this polls, it asserts no timing): the last verdict. */
static struct gw_verdict evaluate_until(struct audit_fx *a, enum gw_action want)
{
    struct gw_verdict v;
    int i;

    for (i = 0; i < 500; i++) {
        gw_policy_audit.evaluate(&a->fx.pol, &a->req, &v);
        if (v.action == want) {
            break;
        }
        usleep(10000);
    }
    return v;
}

static void test_on_failure_block_refuses_when_disk_fails(void **state)
{
    const char *st = *state;
    char path[600];
    struct audit_fx a;
    struct gw_verdict v;
    struct rlimit old, lim;
    struct stat sb;

    audit_open(&a, "fsync: always\non_failure: block\n", st);
    fill_rec(&a.rec, 1, GV_DECISION_ALLOWED);
    assert_int_equal(gw_policy_audit.evaluate(&a.fx.pol, &a.req, &v), GV_OK);
    assert_int_equal(v.action, GW_ACTION_PASS);

    /* A file size limit makes the next append fail like a full disk. */
    seg1(st, path, sizeof(path));
    assert_int_equal(stat(path, &sb), 0);
    signal(SIGXFSZ, SIG_IGN);
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = (rlim_t)sb.st_size + 10;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    audit_complete(&a);
    /* Once the writer has tried, requests are refused. */
    v = evaluate_until(&a, GW_ACTION_BLOCK);
    assert_int_equal(v.action, GW_ACTION_BLOCK);
    assert_int_equal(v.status, 503);
    assert_string_equal(v.code, "audit_unavailable");
    /* The file still ends on a record boundary. */
    assert_int_equal(stat(path, &sb), 0);
    /* Space comes back: the queued record is written, requests pass again. */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    assert_int_equal(evaluate_until(&a, GW_ACTION_PASS).action, GW_ACTION_PASS);
    fx_close(&a.fx);
    assert_int_equal(verified(st).records, 1);
}

static void test_on_failure_allow_passes(void **state)
{
    const char *st = *state;
    struct audit_fx a;
    struct gw_verdict v;

    audit_open(&a, "on_failure: allow\n", st);
    assert_int_equal(gw_policy_audit.evaluate(&a.fx.pol, &a.req, &v), GV_OK);
    assert_int_equal(v.action, GW_ACTION_PASS);
    fx_close(&a.fx);
}

static void test_config_rejects_bad_values(void **state)
{
    struct gv_cfg_err err;

    (void)state;
    fx_assert_refused(&gw_policy_audit, "fsync: sometimes\n", &err);
    assert_non_null(strstr(err.msg, "policy.yaml:1:"));
    fx_assert_refused(&gw_policy_audit, "retention_days: 0\n", &err);
}

static void test_two_processes_share_one_chain(void **state)
{
    const char *st = *state;
    struct gw_audit_verify_result res;
    pid_t kids[2];
    int i, status;

    /* Create the log first so both writers start from an existing chain. */
    write_records(st, BASE_CFG, 1, 1);
    for (i = 0; i < 2; i++) {
        kids[i] = fork();
        assert_true(kids[i] >= 0);
        if (kids[i] == 0) {
            /* Tiny segments: the writers also race through rotations. */
            write_records(st, "fsync: off\nfsync_interval: 1ms\nsegment_max_bytes: 8192\n",
                          1000 * (i + 1), 300);
            _exit(0);
        }
    }
    for (i = 0; i < 2; i++) {
        assert_int_equal(waitpid(kids[i], &status, 0), kids[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    res = verified(st);
    assert_int_equal(res.records, 601);
    assert_true(res.segments > 2);
}

static void test_verify_garbage_segment_does_not_crash(void **state)
{
    const char *st = *state;
    char dir[512], path[600];
    struct gw_audit_verify_result res;
    unsigned char junk[4096];
    FILE *f;
    size_t i;

    audit_dir(st, dir, sizeof(dir));
    mkdir(dir, 0700);
    for (i = 0; i < sizeof(junk); i++) {
        junk[i] = (unsigned char)(i * 131 + 7);
    }
    assert_int_equal(gw_audit_segment_path(dir, 1, path, sizeof(path)), GV_OK);
    f = fopen(path, "wb");
    fwrite(junk, 1, sizeof(junk), f);
    fclose(f);
    assert_int_equal(gw_audit_verify(dir, &res), GV_EPROTO);
}

/* Pages of the file at path that sit in the page cache (mincore on a read-only
 * mapping: mapping reads nothing in). -1 where the filesystem keeps files in memory
 * (tmpfs, ramfs: nothing can leave the cache there). */
static long cached_pages(const char *path, long *total)
{
    struct statfs fs;
    struct stat sb;
    unsigned char *vec;
    long page = sysconf(_SC_PAGESIZE), n, i, resident = 0;
    void *map;
    int fd;

    assert_int_equal(statfs(path, &fs), 0);
    if (fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC) {
        return -1;
    }
    fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &sb), 0);
    n = (long)((sb.st_size + page - 1) / page);
    assert_true(n > 4);
    map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, fd, 0);
    assert_true(map != MAP_FAILED);
    vec = test_malloc((size_t)n);
    assert_int_equal(mincore(map, (size_t)sb.st_size, vec), 0);
    for (i = 0; i < n; i++) {
        resident += vec[i] & 1;
    }
    test_free(vec);
    munmap(map, (size_t)sb.st_size);
    close(fd);
    *total = n;
    return resident;
}

/* Committed lines leave the page cache (they are only ever read back by verify), all but
 * the page the next line goes on; with `fsync: off` nothing is synced, so nothing may be
 * dropped and the pages stay. */
static void test_synced_pages_leave_the_cache(void **state)
{
    const char *st = *state;
    char path[600], off_state[600];
    long total = 0, resident;

    write_records(st, BASE_CFG, 1, 400);
    seg1(st, path, sizeof(path));
    resident = cached_pages(path, &total);
    if (resident < 0) {
        skip();
    }
    /* The page the next line would go on stays. */
    assert_true(resident <= 1);

    snprintf(off_state, sizeof(off_state), "%s/off", st);
    assert_int_equal(mkdir(off_state, 0700), 0);
    write_records(off_state, "fsync: off\n", 1, 400);
    seg1(off_state, path, sizeof(path));
    resident = cached_pages(path, &total);
    assert_int_equal(resident, total);
    assert_int_equal(verified(st).records, 400);
}

static void test_check_only_creates_nothing(void **state)
{
    (void)state;
    fx_assert_check_only_creates_nothing(&gw_policy_audit, "retention_days: 30\n", "/audit");
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_line_seal_roundtrip_and_edit),
    cmocka_unit_test(test_record_json_bytes),
    cmocka_unit_test(test_record_json_worst_case_fits_bound),
    UNIT_TMPDIR_TEST(test_records_of_any_size_come_out_whole),
    UNIT_TMPDIR_TEST(test_complete_writes_chain_that_verifies),
    UNIT_TMPDIR_TEST(test_record_holds_no_content_by_default),
    UNIT_TMPDIR_TEST(test_store_content_keeps_answer_and_priced_cost),
    UNIT_TMPDIR_TEST(test_oversize_content_is_left_out),
    UNIT_TMPDIR_TEST(test_log_all_access_false_skips_allowed),
    {"verify names an edited record", test_verify_names_tampering, NULL, NULL, (void *)&EDITED},
    {"verify names the record after a deleted one", test_verify_names_tampering, NULL, NULL,
     (void *)&DELETED},
    {"verify names a swapped record", test_verify_names_tampering, NULL, NULL, (void *)&SWAPPED},
    {"verify catches a torn last line", test_verify_names_tampering, NULL, NULL, (void *)&TORN},
    cmocka_unit_test(test_verify_catches_truncation),
    UNIT_TMPDIR_TEST(test_rotation_and_retention_keep_chain_verifiable),
    UNIT_TMPDIR_TEST(test_verify_fails_without_head),
    cmocka_unit_test(test_verify_expect_head),
    UNIT_TMPDIR_TEST(test_files_are_private_in_a_shared_dir),
    UNIT_TMPDIR_TEST(test_on_failure_block_refuses_when_disk_fails),
    UNIT_TMPDIR_TEST(test_on_failure_allow_passes),
    cmocka_unit_test(test_config_rejects_bad_values),
    UNIT_TMPDIR_TEST(test_two_processes_share_one_chain),
    UNIT_TMPDIR_TEST(test_verify_garbage_segment_does_not_crash),
    cmocka_unit_test(test_check_only_creates_nothing),
    UNIT_TMPDIR_TEST(test_synced_pages_leave_the_cache),
};

#include "tests/unit/unit_main.h"
