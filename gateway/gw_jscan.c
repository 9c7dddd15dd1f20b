/* gateway/gw_jscan.c - find one top-level member of a JSON object without building a tree */
/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE /* memmem */
#include "gateway/gw_jscan.h"

#include <stdbool.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define DEPTH_MAX 64    /* the same bound the request parser uses */
#define KEYS_MEASURED 8 /* keys whose lengths a walk takes once, up front */

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

size_t gw_jscan_skip_ws(const char *p, size_t i, size_t n)
{
    while (i < n && is_ws(p[i])) {
        i++;
    }
    return i;
}

#if defined(__SSE2__)
/* Sixteen bytes at a time where the scans below look for a few byte values:
 * an answer is mostly runs of plain bytes between them. */

/* The bit of each byte of p[0..16) that is a quote or a backslash. */
static unsigned string_stops16(const char *p)
{
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i m =
        _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\\')));
    return (unsigned)_mm_movemask_epi8(m);
}

/* The bit of each byte of p[0..16) that skip_value must look at: a quote, a
 * bracket, or a control byte (white space included; it is let through there). */
static unsigned value_stops16(const char *p)
{
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i m = _mm_cmpeq_epi8(_mm_max_epu8(v, _mm_set1_epi8(0x1f)), _mm_set1_epi8(0x1f));
    m = _mm_or_si128(m, _mm_cmpeq_epi8(v, _mm_set1_epi8('"')));
    /* '[' 0x5b, ']' 0x5d, '{' 0x7b, '}' 0x7d: with bit 5 cleared, '{' and '}' are
     * '[' and ']', and no other byte becomes one of those two. */
    __m128i f = _mm_andnot_si128(_mm_set1_epi8(0x20), v);
    m = _mm_or_si128(m, _mm_cmpeq_epi8(f, _mm_set1_epi8('[')));
    m = _mm_or_si128(m, _mm_cmpeq_epi8(f, _mm_set1_epi8(']')));
    return (unsigned)_mm_movemask_epi8(m);
}
#endif

/* p[i] is the opening quote; returns the index after the closing one, or n+1.
 * A backslash takes the byte after it, so a quote is escaped when an odd
 * number of backslashes stands before it. */
static size_t skip_string(const char *p, size_t i, size_t n)
{
    i++;
    for (;;) {
#if defined(__SSE2__)
        while (i + 16 <= n) {
            unsigned m = string_stops16(p + i);
            if (m) {
                i += (size_t)__builtin_ctz(m);
                break;
            }
            i += 16;
        }
#endif
        while (i < n && p[i] != '"' && p[i] != '\\') {
            i++;
        }
        if (i >= n) {
            return n + 1;
        }
        if (p[i] == '"') {
            return i + 1;
        }
        i += 2; /* the backslash and the byte it escapes */
    }
}

/* Skips one value starting at p[i]; returns the index after it, or n+1. */
static size_t skip_value(const char *p, size_t i, size_t n)
{
    char stack[DEPTH_MAX];
    int depth = 0;

    if (i >= n) {
        return n + 1;
    }
    if (p[i] != '{' && p[i] != '[') {
        if (p[i] == '"') {
            return skip_string(p, i, n);
        }
        /* number, true, false, null: up to the next delimiter, never empty */
        size_t start = i;
        while (i < n && !is_ws(p[i]) && p[i] != ',' && p[i] != '}' && p[i] != ']') {
            if ((unsigned char)p[i] < 0x20 || p[i] == '"' || p[i] == '{' || p[i] == '[' ||
                p[i] == ':') {
                return n + 1;
            }
            i++;
        }
        return i > start ? i : n + 1;
    }
    while (i < n) {
        char c;
#if defined(__SSE2__)
        if (i + 16 <= n) {
            unsigned m = value_stops16(p + i);
            if (!m) {
                i += 16;
                continue;
            }
            i += (size_t)__builtin_ctz(m);
        }
#endif
        c = p[i];
        if (c == '"') {
            i = skip_string(p, i, n);
            continue;
        }
        if (c == '{' || c == '[') {
            if (depth == DEPTH_MAX) {
                return n + 1;
            }
            stack[depth++] = c == '{' ? '}' : ']';
        }
        else if (c == '}' || c == ']') {
            if (depth == 0 || stack[depth - 1] != c) {
                return n + 1;
            }
            depth--;
            if (depth == 0) {
                return i + 1;
            }
        }
        else if ((unsigned char)c < 0x20 && !is_ws(c)) {
            return n + 1;
        }
        i++;
    }
    return n + 1;
}

/* The walk of gw_jscan_members; with stop_when_all it returns FOUND once every key is
 * found, without reading on. */
static enum gw_jscan members_walk(const char *p, size_t n, const char *const *keys, size_t nkeys,
                                  const char **v, size_t *vlen, bool stop_when_all)
{
    size_t i = gw_jscan_skip_ws(p, 0, n), k, nfound = 0; /* keys found so far */
    /* The keys' lengths, taken once rather than at every member that starts
     * with the same byte; past KEYS_MEASURED keys they are taken as before. */
    size_t klens[KEYS_MEASURED];

    for (k = 0; k < nkeys; k++) {
        v[k] = NULL;
        vlen[k] = 0;
        if (k < KEYS_MEASURED) {
            klens[k] = strlen(keys[k]);
        }
    }
    if (i >= n || p[i] != '{') {
        return GW_JSCAN_INVALID;
    }
    i = gw_jscan_skip_ws(p, i + 1, n);
    if (i < n && p[i] == '}') {
        return gw_jscan_skip_ws(p, i + 1, n) == n ? GW_JSCAN_ABSENT : GW_JSCAN_INVALID;
    }
    while (i < n) {
        size_t ks, ke, vs;
        if (p[i] != '"') {
            goto invalid;
        }
        ks = i + 1;
        i = skip_string(p, i, n);
        if (i > n) {
            goto invalid;
        }
        ke = i - 1;
        i = gw_jscan_skip_ws(p, i, n);
        if (i >= n || p[i] != ':') {
            goto invalid;
        }
        vs = gw_jscan_skip_ws(p, i + 1, n);
        i = skip_value(p, vs, n);
        if (i > n) {
            goto invalid;
        }
        for (k = 0; k < nkeys; k++) {
            size_t klen = k < KEYS_MEASURED ? klens[k] : strlen(keys[k]);
            /* Length and first byte first: a walk meets every member, and most differ there. */
            if (ke - ks != klen || (klen > 0 && p[ks] != keys[k][0])) {
                continue;
            }
            if (memcmp(p + ks, keys[k], klen) == 0) {
                nfound += v[k] == NULL;
                v[k] = p + vs;
                vlen[k] = i - vs;
            }
        }
        if (stop_when_all && nfound == nkeys) {
            return GW_JSCAN_FOUND;
        }
        i = gw_jscan_skip_ws(p, i, n);
        if (i < n && p[i] == ',') {
            i = gw_jscan_skip_ws(p, i + 1, n);
            continue;
        }
        if (i < n && p[i] == '}') {
            if (gw_jscan_skip_ws(p, i + 1, n) != n) {
                goto invalid;
            }
            return nfound > 0 ? GW_JSCAN_FOUND : GW_JSCAN_ABSENT;
        }
        goto invalid;
    }
invalid:
    for (k = 0; k < nkeys; k++) {
        v[k] = NULL;
        vlen[k] = 0;
    }
    return GW_JSCAN_INVALID;
}

enum gw_jscan gw_jscan_members(const char *p, size_t n, const char *const *keys, size_t nkeys,
                               const char **v, size_t *vlen)
{
    return members_walk(p, n, keys, nkeys, v, vlen, false);
}

enum gw_jscan gw_jscan_members_first(const char *p, size_t n, const char *const *keys, size_t nkeys,
                                     const char **v, size_t *vlen)
{
    return members_walk(p, n, keys, nkeys, v, vlen, true);
}

enum gw_jscan gw_jscan_member(const char *p, size_t n, const char *key, const char **v,
                              size_t *vlen)
{
    return gw_jscan_members(p, n, &key, 1, v, vlen);
}

/* v[0..vlen) as a plain non-negative integer of at most 19 digits. */
static bool plain_u64(const char *v, size_t vlen, unsigned long long *out)
{
    unsigned long long x = 0;
    size_t i;

    if (!v || vlen == 0 || vlen > 19) {
        return false;
    }
    for (i = 0; i < vlen; i++) {
        if (v[i] < '0' || v[i] > '9') {
            return false;
        }
        x = x * 10 + (unsigned long long)(v[i] - '0');
    }
    *out = x;
    return true;
}

static bool u64s_walk(const char *p, size_t n, const char *const *keys, size_t nkeys,
                      unsigned long long *out, bool stop_when_all)
{
    const char *v[GW_JSCAN_U64S_MAX];
    size_t vlen[GW_JSCAN_U64S_MAX], i;

    if (nkeys == 0 || nkeys > GW_JSCAN_U64S_MAX ||
        members_walk(p, n, keys, nkeys, v, vlen, stop_when_all) != GW_JSCAN_FOUND) {
        return false;
    }
    for (i = 0; i < nkeys; i++) {
        if (!plain_u64(v[i], vlen[i], &out[i])) {
            return false;
        }
    }
    return true;
}

bool gw_jscan_u64s(const char *p, size_t n, const char *const *keys, size_t nkeys,
                   unsigned long long *out)
{
    return u64s_walk(p, n, keys, nkeys, out, false);
}

bool gw_jscan_u64s_first(const char *p, size_t n, const char *const *keys, size_t nkeys,
                         unsigned long long *out)
{
    return u64s_walk(p, n, keys, nkeys, out, true);
}

bool gw_jscan_u64(const char *p, size_t n, const char *key, unsigned long long *out)
{
    return gw_jscan_u64s(p, n, &key, 1, out);
}

static bool key_is(const char *p, size_t from, size_t to, const char *key, size_t klen)
{
    return to - from == klen && memcmp(p + from, key, klen) == 0;
}

/* How many leading bytes a[0..n) and b[0..n) share: a word at a time, as only the
 * chunks that differ from the head (two or three a stream) come here. */
static size_t shared_prefix(const char *a, const char *b, size_t n)
{
    size_t i = 0;

    while (i + sizeof(unsigned long long) <= n) {
        unsigned long long x, y;
        memcpy(&x, a + i, sizeof(x));
        memcpy(&y, b + i, sizeof(y));
        if (x != y) {
            break;
        }
        i += sizeof(x);
    }
    while (i < n && a[i] == b[i]) {
        i++;
    }
    return i;
}

/* The keys a walk met with nothing found yet, for the next head: the first ones, and
 * in the last slot always the latest. */
struct head_keys {
    size_t n;
    unsigned short at[GW_JSCAN_HEAD_KEYS];
};

static void head_keys_add(struct head_keys *hk, size_t ks)
{
    if (ks + 1 > GW_JSCAN_HEAD_MAX) {
        return; /* past what a head can hold */
    }
    if (hk->n == GW_JSCAN_HEAD_KEYS) {
        hk->n--;
    }
    hk->at[hk->n++] = (unsigned short)ks;
}

/* Why the head and the tail may be skipped: the walk carries nothing from one key to the
 * next but where it is and *out, and facts only add up.
 * - Head: at the top of an iteration whose quote is at ks, everything the walk has read
 *   lies in p[0..ks] (a "null" tested after a usage key that reached past ks would hold
 *   the quote at ks, fail, and set usage). So a chunk whose bytes 0..ks are those of a
 *   chunk whose walk reached ks with *out still empty reaches ks the same way, and its
 *   walk can start there. The head kept is the last such ks of a walk.
 * - Tail: from the top of an iteration at i, the walk reads only p[i..n). So if the rest
 *   of a chunk is byte for byte the rest of one whose walk found nothing there (from no
 *   finish_reason and no usage, so that finding one would have shown), it finds nothing
 *   there either. The tail kept is the rest after the last place a walk found a fact. */
void gw_jscan_chunk_facts(const char *p, size_t n, struct gw_jscan_chunk *out,
                          struct gw_jscan_chunk_repeats *rep)
{
    /* Facts only grow, so "the same facts as at the mark" is "no fact grew since": a
     * count of growths says it in a register. Copying and comparing *out instead read
     * back bytes just stored one field at a time, which the store buffer cannot forward
     * to a wider load: a stall on every key, ~40% of this walk's time in perf. */
    unsigned grew = 0, grew_at_mark = 0;
    struct head_keys hk = {0};
    size_t i = 0, mark;
    bool skipped = false, cut = false;

    memset(out, 0, sizeof(*out));
    if (rep && rep->head_len > 0 && rep->head_len <= n &&
        memcmp(p, rep->head, rep->head_len) == 0) {
        i = rep->head_len - 1; /* the quote that starts the first key that may count */
        skipped = true;
    }
    else if (rep && rep->nkeys > 0) {
        /* Part of the head: the same argument holds at every learnt key whose quote
         * lies in the shared bytes; start at the last one, and learn on from there. */
        size_t lim = rep->head_len < n ? rep->head_len : n;
        size_t same = shared_prefix(p, rep->head, lim), k;
        for (k = 0; k < rep->nkeys && rep->keys[k] < same; k++) {
            hk.at[hk.n++] = rep->keys[k];
        }
        if (hk.n > 0) {
            i = hk.at[--hk.n]; /* walked again below, and learnt again there */
        }
    }
    mark = i;
    while (i < n) {
        const char *q;
        size_t ks, ke, v;

        if (grew != grew_at_mark) {
            mark = i; /* the walk found something just before here */
            grew_at_mark = grew;
        }
        if (rep && rep->tail_len == n - i && memcmp(p + i, rep->tail, n - i) == 0) {
            cut = true;
            break;
        }
        q = memchr(p + i, '"', n - i);
        if (!q) {
            break;
        }
        ks = (size_t)(q - p);
        if (!skipped && grew == 0) { /* nothing found yet */
            head_keys_add(&hk, ks);
        }
        ke = skip_string(p, ks, n);
        if (ke > n) {
            break; /* cut short */
        }
        v = gw_jscan_skip_ws(p, ke, n);
        if (v >= n || p[v] != ':') {
            i = ke; /* a string value, not a key */
            continue;
        }
        v = gw_jscan_skip_ws(p, v + 1, n);
        i = v;
        if (v >= n) {
            break;
        }
        /* The key without its quotes is p[ks + 1 .. ke - 1). */
        if (key_is(p, ks + 1, ke - 1, "usage", 5)) {
            if (!out->usage && !(n - v >= 4 && memcmp(p + v, "null", 4) == 0)) {
                out->usage = true;
                grew++;
            }
            continue;
        }
        if (p[v] != '"') {
            continue; /* an object, array or literal: its strings are walked next */
        }
        i = skip_string(p, v, n);
        if (key_is(p, ks + 1, ke - 1, "content", 7) || key_is(p, ks + 1, ke - 1, "arguments", 9)) {
            size_t len = i > n ? n - v - 1 : i - v - 2;
            out->text_bytes += len;
            grew += len > 0;
        }
        else if (key_is(p, ks + 1, ke - 1, "finish_reason", 13)) {
            grew += !out->finish_reason || i <= n;
            out->finish_reason = true;
            if (i <= n && out->nreasons++ == 0) {
                out->reason = p + v + 1;
                out->reason_len = i - v - 2;
            }
        }
    }
    if (!rep) {
        return;
    }
    if (!skipped) {
        /* The head ends with the quote of the last key met with nothing found. */
        rep->head_len = hk.n > 0 ? (size_t)hk.at[hk.n - 1] + 1 : 0;
        rep->nkeys = hk.n;
        memcpy(rep->keys, hk.at, hk.n * sizeof(hk.at[0]));
        memcpy(rep->head, p, rep->head_len);
    }
    if (!cut) {
        bool quiet = grew == grew_at_mark && !out->finish_reason && !out->usage;
        rep->tail_len = quiet && n - mark <= sizeof(rep->tail) ? n - mark : 0;
        memcpy(rep->tail, p + mark, rep->tail_len);
    }
}
