/* tests/unit/core/test_gv_record.c - a packed record carries every used byte, and only those */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/gv_buf.h"
#include "core/gv_record.h"

/* One line: clang-format 14 spreads the braced pair over four. */
/* clang-format off */
#define FIELD(f) {offsetof(struct gv_record, f), sizeof(((struct gv_record *)0)->f)}
/* clang-format on */
/* The string arrays, named here on their own: a byte the copy skipped anywhere
 * else shows as a difference. */
static const struct {
    size_t off, size;
} strs[] = {
    FIELD(request_id),      FIELD(run_id),         FIELD(project),     FIELD(entity),
    FIELD(run_group),       FIELD(principal),      FIELD(team),        FIELD(model),
    FIELD(target),          FIELD(error_code),     FIELD(roles),       FIELD(tracestate),
    FIELD(upstream_host),   FIELD(response_model), FIELD(response_id), FIELD(finish_reasons),
    FIELD(audit_head_hash),
};

static struct gv_record_packed packed;

/* What the other thread gets: src packed, then unpacked over dst. */
static void hand_over(struct gv_record *dst, const struct gv_record *src)
{
    gv_record_pack(&packed, src);
    gv_record_unpack(dst, packed.bytes);
}

static int in_string_tail(size_t off)
{
    size_t i;
    for (i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        if (off == strs[i].off + strs[i].size - 1) {
            return 1;
        }
    }
    return 0;
}

/* Every byte set (no NUL anywhere): each string arrives cut to size - 1 and
 * NUL-ended, every other byte of the used part equals the source, and the unused
 * policy slots keep what dst had. */
static void test_every_used_byte_arrives(void **state)
{
    static struct gv_record src, dst;
    size_t pol_from, pol_to, i;
    unsigned char *s = (unsigned char *)&src, *d = (unsigned char *)&dst;

    (void)state;
    for (i = 0; i < sizeof(src); i++) {
        s[i] = (unsigned char)(1 + i % 251);
    }
    src.npolicies = 3;
    src.content = NULL;
    memset(&dst, 0xEE, sizeof(dst));
    hand_over(&dst, &src);
    pol_from = offsetof(struct gv_record, policies) + 3 * sizeof(src.policies[0]);
    pol_to = offsetof(struct gv_record, start_wall_us);
    for (i = 0; i < sizeof(src); i++) {
        if (i >= pol_from && i < pol_to) {
            assert_int_equal(d[i], 0xEE);
        }
        else if (in_string_tail(i)) {
            assert_int_equal(d[i], 0);
        }
        else {
            assert_int_equal(d[i], s[i]);
        }
    }
}

/* Short strings: the bytes up to the NUL arrive, what lies past it in dst stays. */
static void test_short_strings_and_fields(void **state)
{
    static struct gv_record src, dst;

    (void)state;
    memset(&src, 0, sizeof(src));
    gv_str_copy(src.request_id, sizeof(src.request_id), "req_1");
    gv_str_copy(src.model, sizeof(src.model), "gpt-4o");
    gv_str_copy(src.tracestate, sizeof(src.tracestate), "k=v");
    gv_str_copy(src.audit_head_hash, sizeof(src.audit_head_hash), "ab");
    gv_str_copy(src.policies[0].name, sizeof(src.policies[0].name), "pii-detector");
    src.npolicies = 1;
    src.tokens_prompt = 24;
    src.http_status = 200;
    src.audit_head_seq = 7;
    memset(&dst, 'x', sizeof(dst));
    hand_over(&dst, &src);
    assert_string_equal(dst.request_id, "req_1");
    assert_string_equal(dst.model, "gpt-4o");
    assert_string_equal(dst.tracestate, "k=v");
    assert_string_equal(dst.audit_head_hash, "ab");
    assert_string_equal(dst.run_id, "");
    assert_string_equal(dst.policies[0].name, "pii-detector");
    assert_int_equal(dst.npolicies, 1);
    assert_int_equal(dst.tokens_prompt, 24);
    assert_int_equal(dst.http_status, 200);
    assert_int_equal(dst.audit_head_seq, 7);
    assert_null(dst.content);
    assert_int_equal(dst.model[7], 'x'); /* past the NUL: not written */
}

/* Every policy count, none to past the slots: the used slots arrive whole, the
 * others keep what dst had, the fields after the slots arrive. */
static void test_policy_counts(void **state)
{
    static const uint32_t counts[] = {
        0,  1, 3, GV_RECORD_MAX_POLICIES - 1, GV_RECORD_MAX_POLICIES, GV_RECORD_MAX_POLICIES + 1,
        200};
    static struct gv_record src, dst;
    size_t k;

    (void)state;
    for (k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
        uint32_t used = counts[k] < GV_RECORD_MAX_POLICIES ? counts[k] : GV_RECORD_MAX_POLICIES;
        uint32_t i;

        memset(&src, 0, sizeof(src));
        src.npolicies = counts[k];
        for (i = 0; i < GV_RECORD_MAX_POLICIES; i++) {
            snprintf(src.policies[i].name, sizeof(src.policies[i].name), "policy-%u", i);
            src.policies[i].score = 0.5 + i;
            src.policies[i].duration_us = 1000u + i;
        }
        src.tokens_completion = 42;
        gv_str_copy(src.audit_head_hash, sizeof(src.audit_head_hash), "ff");
        memset(&dst, 0x5A, sizeof(dst));
        hand_over(&dst, &src);
        assert_int_equal(dst.npolicies, counts[k]);
        for (i = 0; i < GV_RECORD_MAX_POLICIES; i++) {
            if (i < used) {
                assert_memory_equal(&dst.policies[i], &src.policies[i], sizeof(src.policies[i]));
            }
            else {
                assert_int_equal(((unsigned char *)&dst.policies[i])[0], 0x5A);
            }
        }
        assert_int_equal(dst.tokens_completion, 42);
        assert_string_equal(dst.audit_head_hash, "ff");
    }
}

/* Packing writes its length and that many bytes, nothing after them: a record with
 * short strings and three policies fits in a quarter of the record's size. */
static void test_pack_writes_only_what_it_uses(void **state)
{
    static struct gv_record src, dst;
    static struct gv_record_packed p;
    size_t i;

    (void)state;
    memset(&src, 0, sizeof(src));
    gv_str_copy(src.request_id, sizeof(src.request_id), "req_3a731c5f6fb8839e89de79ed");
    gv_str_copy(src.model, sizeof(src.model), "gpt-4o");
    gv_str_copy(src.target, sizeof(src.target), "experiment-llm");
    gv_str_copy(src.response_id, sizeof(src.response_id), "chatcmpl-bench0000000000000000000000");
    memset(src.audit_head_hash, 'a', sizeof(src.audit_head_hash) - 1);
    src.npolicies = 3;
    memset(&p, 0xC3, sizeof(p));
    gv_record_pack(&p, &src);
    assert_true(p.len > 0);
    assert_true(p.len < sizeof(struct gv_record) / 4);
    for (i = p.len; i < sizeof(p.bytes); i++) {
        assert_int_equal(p.bytes[i], 0xC3);
    }
    memset(&dst, 0, sizeof(dst));
    gv_record_unpack(&dst, p.bytes);
    assert_string_equal(dst.response_id, src.response_id);
    assert_int_equal(strlen(dst.audit_head_hash), sizeof(src.audit_head_hash) - 1);
}

/* Strings of every length from empty to their array's size - 1, in every field at
 * once: each arrives as it was, and the packed record never outgrows its bound. */
static void test_string_lengths(void **state)
{
    static struct gv_record src, dst;
    static struct gv_record_packed p;
    size_t len, i;

    (void)state;
    for (len = 0; len < sizeof(src.tracestate); len++) {
        memset(&src, 0, sizeof(src));
        for (i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
            size_t n = len < strs[i].size - 1 ? len : strs[i].size - 1;
            memset((char *)&src + strs[i].off, 'a' + (int)(i % 26), n);
        }
        src.npolicies = GV_RECORD_MAX_POLICIES;
        gv_record_pack(&p, &src);
        assert_true(p.len <= sizeof(p.bytes));
        memset(&dst, 0x77, sizeof(dst));
        gv_record_unpack(&dst, p.bytes);
        for (i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
            assert_string_equal((char *)&dst + strs[i].off, (char *)&src + strs[i].off);
        }
    }
}

/* A record full of garbage (no NUL anywhere) reads as empty once cleared: it packs to the
 * bytes a zeroed record packs to, every byte outside the string arrays' tails and the
 * policy slots is zero, and those two keep what was there (nothing more is written). */
static void test_clear_reads_as_zeroed(void **state)
{
    static struct gv_record dirty, zero;
    static struct gv_record_packed want;
    const size_t pol_from = offsetof(struct gv_record, policies),
                 pol_to = offsetof(struct gv_record, start_wall_us);
    const unsigned char *d = (const unsigned char *)&dirty;
    size_t i, k, tails = 0;

    (void)state;
    memset(&dirty, 0xA5, sizeof(dirty));
    memset(&zero, 0, sizeof(zero));
    gv_record_clear(&dirty);
    assert_null(dirty.content);
    assert_int_equal(dirty.npolicies, 0);
    gv_record_pack(&want, &zero);
    gv_record_pack(&packed, &dirty);
    assert_int_equal(packed.len, want.len);
    assert_memory_equal(packed.bytes, want.bytes, want.len);
    for (i = 0; i < sizeof(dirty); i++) {
        bool tail = i >= pol_from && i < pol_to;
        for (k = 0; !tail && k < sizeof(strs) / sizeof(strs[0]); k++) {
            tail = i > strs[k].off && i < strs[k].off + strs[k].size;
        }
        assert_int_equal(d[i], tail ? 0xA5 : 0);
        tails += tail;
    }
    /* Most of the record is not written. */
    assert_true(tails > sizeof(dirty) / 2);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_clear_reads_as_zeroed),
    cmocka_unit_test(test_every_used_byte_arrives),
    cmocka_unit_test(test_short_strings_and_fields),
    cmocka_unit_test(test_policy_counts),
    cmocka_unit_test(test_pack_writes_only_what_it_uses),
    cmocka_unit_test(test_string_lengths),
};

#include "tests/unit/unit_main.h"
