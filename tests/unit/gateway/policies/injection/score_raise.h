/* tests/unit/gateway/policies/injection/score_raise.h - what holds of every per-hit score raise */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KT_TEST_SCORE_RAISE_H
#define KT_TEST_SCORE_RAISE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/* The detector raises a score per hit in more than one place (stems a user turn shares with
 * the system prompt, cues in a tool's output), each with its own weight and cap but the same
 * contract: no hit leaves `base` as it is, each hit raises it up to `cap` hits and no further,
 * and a score at either end stays within [0, 1]. */
static inline void assert_raise_per_hit_up_to_cap(double (*raise)(double, size_t), double base,
                                                  size_t cap)
{
    assert_true(raise(base, 0) == base);
    assert_true(raise(base, 1) > base);
    assert_true(raise(base, 2) > raise(base, 1));
    assert_true(raise(base, cap + 4) == raise(base, cap));
    assert_true(raise(1.0, cap) <= 1.0);
    assert_true(raise(0.0, cap) >= 0.0);
}

#endif
