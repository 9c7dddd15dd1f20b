/* tests/fuzz/fuzz.h - the libFuzzer entry point every target defines, and its checks */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KT_FUZZ_H
#define KT_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Runs one input. Must not keep state between calls that changes what a later
 * input does (a crash must replay from its input alone), must free what it
 * allocates, and returns 0. Defined by each fuzz_<target>.c. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant of the code under test: report and abort, so libFuzzer and the
 * replay runner both record the input as a crash. Active in every build type,
 * unlike assert(). */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
