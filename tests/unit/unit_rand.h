/* tests/unit/unit_rand.h - the repeatable pseudo-random numbers behind generated test inputs */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KT_UNIT_RAND_H
#define KT_UNIT_RAND_H

#include <stdint.h>

/* Each generator keeps its state in the test (*x, seeded there), so a run repeats byte for
 * byte and a failure can be replayed; none of them is fit for anything but test inputs. */

/* The linear congruential step of the C standard's rand() example: advances *x and returns
 * it. Its low bits are weak, so callers take bits from 8 or 16 up. */
static inline uint32_t unit_lcg(uint32_t *x)
{
    *x = *x * 1103515245u + 12345u;
    return *x;
}

/* Marsaglia's xorshift32 (shifts 13, 17, 5): advances *x, which must not be 0, and returns
 * it. */
static inline uint32_t unit_xorshift32(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

#endif
