/* tests/unit/core/test_gv_record.c - gv_record_copy_used copies every used byte */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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
    gv_record_copy_used(&dst, &src);
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
    gv_record_copy_used(&dst, &src);
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

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_every_used_byte_arrives),
    cmocka_unit_test(test_short_strings_and_fields),
};

#include "tests/unit/unit_main.h"
