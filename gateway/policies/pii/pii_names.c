/* gateway/policies/pii/pii_names.c - lookups in the name table and word filters */
/* SPDX-License-Identifier: Apache-2.0 */
#include "gateway/policies/pii/pii_names.h"

#include <stdint.h>

/* The tables are generated (gen/gen_names.pl); the code that reads them is not,
 * so it is reviewed and formatted like the rest. */
#include "gateway/policies/pii/pii_names_data.h"

/* FNV-1a 64 over the word: the generator sets its filter bits with the same hash. */
#define FNV_BASIS 0xcbf29ce484222325u
#define FNV_PRIME 0x100000001b3u

static uint64_t fnv1a(const char *s, size_t len)
{
    uint64_t h = FNV_BASIS;
    size_t i;

    for (i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= FNV_PRIME;
    }
    return h;
}

static bool bit_set(const uint64_t *bits, uint32_t bit)
{
    return (bits[bit >> 6] & ((uint64_t)1 << (bit & 63))) != 0;
}

/* memcmp's order over the shorter length, compared in place: the binary search
 * below compares several names a word, and most differ in their first bytes,
 * where a call would cost more than the comparison. */
static int prefix_cmp(const char *a, const char *b, size_t n)
{
    size_t k;

    for (k = 0; k < n; k++) {
        if (a[k] != b[k]) {
            return (unsigned char)a[k] < (unsigned char)b[k] ? -1 : 1;
        }
    }
    return 0;
}

unsigned pii_names_lookup(const char *lower, size_t len)
{
    size_t lo, hi;
    unsigned char c0;

    /* Every name is made of a-z: search only the rows of the first letter,
     * which all share it, so the comparisons start at the second byte. */
    if (len == 0) {
        return 0;
    }
    c0 = (unsigned char)lower[0];
    if (c0 < 'a' || c0 > 'z') {
        return 0;
    }
    lo = names_first[c0 - 'a'];
    hi = names_first[c0 - 'a' + 1];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *n = names[mid].name;
        size_t nlen = names[mid].len;
        int c = prefix_cmp(n + 1, lower + 1, (nlen < len ? nlen : len) - 1);
        if (c == 0) {
            c = nlen < len ? -1 : nlen > len ? 1 : 0;
        }
        if (c == 0) {
            return names[mid].flags;
        }
        if (c < 0) {
            lo = mid + 1;
        }
        else {
            hi = mid;
        }
    }
    return 0;
}

bool pii_names_given(const char *word, size_t len)
{
    char lw[16];
    uint64_t h = FNV_BASIS;
    size_t i;
    unsigned f;

    if (len > sizeof(lw)) {
        return false; /* longer than any name in the table */
    }
    /* One pass folds the case, rejects what is not an ASCII letter and hashes:
     * it runs for nearly every lower-case word of a text. */
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)word[i] | 0x20;
        if (c < 'a' || c > 'z') {
            return false;
        }
        lw[i] = (char)c;
        h = (h ^ c) * FNV_PRIME;
    }
    if (!bit_set(given, (uint32_t)h & ((1u << GIVEN_BITS_LOG2) - 1u))) {
        return false;
    }
    f = pii_names_lookup(lw, len);
    return (f & PII_NAME_FIRST) && !(f & PII_NAME_COMMON);
}

bool pii_words_has(const char *lower, size_t len)
{
    uint64_t h = fnv1a(lower, len);
    uint32_t h1 = (uint32_t)h;
    uint32_t h2 = (uint32_t)(h >> 32) | 1u;
    uint32_t i;

    /* Double hashing gives the k probes from one hash, as the generator set them. */
    for (i = 0; i < BLOOM_K; i++) {
        if (!bit_set(bloom, (h1 + i * h2) & ((1u << BLOOM_BITS_LOG2) - 1u))) {
            return false;
        }
    }
    return true;
}
