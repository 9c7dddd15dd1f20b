/* gateway/policies/injection/injection_model.c - features and score of the detector */
/* SPDX-License-Identifier: Apache-2.0 */
#include "gateway/policies/injection/injection.h"
#include "gateway/policies/injection/injection_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/gv_log.h"
#include "core/gv_mem.h"

/* Feature hashing needs a fast non-cryptographic mix per n-gram (millions per
 * second); libcrypto's digests are far too slow for that and gain nothing. The
 * finaliser of MurmurHash3 spreads bits well enough for 2^16 buckets. */
static inline uint32_t mix32(uint32_t h)
{
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    h ^= h >> 16;
    return h;
}

#if defined(__SSE2__)
#include <emmintrin.h>

/* Low 32 bits of a 32 x 32 bit product in each lane (SSE2 has only the
 * widening even-lane multiply). */
static inline __m128i mullo32(__m128i a, __m128i k)
{
    __m128i even = _mm_mul_epu32(a, k);
    __m128i odd = _mm_mul_epu32(_mm_srli_epi64(a, 32), _mm_srli_epi64(k, 32));

    return _mm_unpacklo_epi32(_mm_shuffle_epi32(even, _MM_SHUFFLE(0, 0, 2, 0)),
                              _mm_shuffle_epi32(odd, _MM_SHUFFLE(0, 0, 2, 0)));
}

/* mix32 in four lanes: the same bits as the scalar finaliser. */
static inline __m128i mix32x4(__m128i h)
{
    h = _mm_xor_si128(h, _mm_srli_epi32(h, 16));
    h = mullo32(h, _mm_set1_epi32((int)0x85EBCA6Bu));
    h = _mm_xor_si128(h, _mm_srli_epi32(h, 13));
    h = mullo32(h, _mm_set1_epi32((int)0xC2B2AE35u));
    return _mm_xor_si128(h, _mm_srli_epi32(h, 16));
}
#endif

#define SEED_C4 0x9E3779B9u
#define SEED_W1 0x7F4A7C15u
#define SEED_W2 0x94D049BBu

/* The caps fit what one segment can become (see injection_normalize). */
#define FOLD_MAX (INJECTION_SEGMENT_MAX + 4096u)
#define NORM_MAX (2u * INJECTION_SEGMENT_MAX + 4096u)
#define B64BUF_MAX (2u * 16u * 1024u + 64u)

static void *pcre_alloc(size_t n, void *data)
{
    (void)data;
    return gv_malloc(n);
}

static void pcre_free(void *p, void *data)
{
    (void)data;
    gv_free(p);
}

pcre2_general_context *injection_pcre_context(void)
{
    return pcre2_general_context_create(pcre_alloc, pcre_free, NULL);
}

static uint32_t fnv_word(const char *p, size_t n)
{
    uint32_t h = 2166136261u;
    size_t i;
    for (i = 0; i < n; i++) {
        h = (h ^ (unsigned char)p[i]) * 16777619u;
    }
    return h ? h : 1;
}

static void trig_add(struct injection_model *m, uint32_t key, size_t rule)
{
    uint32_t i;

    for (i = key & (INJECTION_TRIG_SLOTS - 1);; i = (i + 1) & (INJECTION_TRIG_SLOTS - 1)) {
        if (m->trig_key[i] == key || m->trig_key[i] == 0) {
            break;
        }
    }
    m->trig_key[i] = key;
    m->trig_mask[i] |= 1ULL << rule;
    m->trig_bloom[(key >> 10) & 63] |= 1ULL << ((key >> 16) & 63);
}

static inline uint64_t trig_find(const struct injection_model *m, uint32_t key)
{
    uint32_t i;

    key = key ? key : 1;
    if (!(m->trig_bloom[(key >> 10) & 63] & (1ULL << ((key >> 16) & 63)))) {
        return 0;
    }
    for (i = key & (INJECTION_TRIG_SLOTS - 1); m->trig_key[i];
         i = (i + 1) & (INJECTION_TRIG_SLOTS - 1)) {
        if (m->trig_key[i] == key) {
            return m->trig_mask[i];
        }
    }
    return 0;
}

/* Index every rule's anchor words. GV_EINVAL if the table is over-full
 * (more words than half the slots): a build defect. */
static gv_rc build_triggers(struct injection_model *m)
{
    size_t i, words = 0;

    if (injection_nrules > 64) {
        return GV_EINVAL;
    }
    for (i = 0; i < injection_nrules; i++) {
        const char *p = injection_rules[i].anchors, *e;
        if (!p) {
            m->always |= 1ULL << i;
            continue;
        }
        while (*p) {
            while (*p == ' ') {
                p++;
            }
            for (e = p; *e && *e != ' '; e++) {
            }
            if (e > p) {
                if (++words > INJECTION_TRIG_SLOTS / 2) {
                    return GV_EINVAL;
                }
                trig_add(m, fnv_word(p, (size_t)(e - p)), i);
            }
            p = e;
        }
    }
    return GV_OK;
}

static gv_rc compile_rule(size_t i, uint32_t opts, pcre2_general_context *gc, pcre2_code **out)
{
    pcre2_compile_context *cc = pcre2_compile_context_create(gc);
    int err;
    PCRE2_SIZE off;

    *out = pcre2_compile((PCRE2_SPTR)injection_rules[i].pattern, PCRE2_ZERO_TERMINATED, opts, &err,
                         &off, cc);
    pcre2_compile_context_free(cc);
    if (!*out) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof(msg));
        gv_log(GV_LOG_ERROR, "injection", "rule does not compile", "rule=%s off=%zu err=\"%s\"",
               injection_rules[i].name, (size_t)off, (const char *)msg);
        return GV_ECONFIG;
    }
    /* JIT failure (e.g. unsupported CPU) leaves the interpreter: slower, correct. */
    (void)pcre2_jit_compile(*out, PCRE2_JIT_COMPLETE);
    return GV_OK;
}

/* Byte c into a 256-bit set: the start sets and the text's bytes alike. */
static inline void byte_set_add(uint64_t set[4], unsigned c)
{
    set[c >> 6] |= 1ULL << (c & 63);
}

/* Reads what pcre2_compile learned about the start of a match. The rules are
 * compiled without PCRE2_UTF, so code units are bytes. A fixed first byte of
 * a caseless pattern is reported in one case: with PCRE2's default tables
 * only ASCII letters have another case, and both go in. */
static void learn_start(const pcre2_code *re, struct injection_start *st)
{
    uint32_t type = 0, unit = 0, min = 0;
    const uint8_t *map = NULL;
    unsigned c;

    memset(st->first, 0xff, sizeof(st->first));
    st->min_len = 0;
    if (pcre2_pattern_info(re, PCRE2_INFO_MINLENGTH, &min) == 0) {
        st->min_len = min;
    }
    if (pcre2_pattern_info(re, PCRE2_INFO_FIRSTCODETYPE, &type) != 0) {
        return;
    }
    if (type == 1 && pcre2_pattern_info(re, PCRE2_INFO_FIRSTCODEUNIT, &unit) == 0 && unit < 256) {
        memset(st->first, 0, sizeof(st->first));
        byte_set_add(st->first, unit);
        if ((unit | 0x20) >= 'a' && (unit | 0x20) <= 'z') {
            byte_set_add(st->first, unit ^ 0x20);
        }
    }
    else if (type == 0 && pcre2_pattern_info(re, PCRE2_INFO_FIRSTBITMAP, &map) == 0 && map) {
        memset(st->first, 0, sizeof(st->first));
        for (c = 0; c < 256; c++) {
            if (map[c >> 3] & (1u << (c & 7))) {
                byte_set_add(st->first, c);
            }
        }
    }
}

void injection_byte_set(const unsigned char *t, size_t n, uint64_t set[4])
{
    unsigned char seen[256];
    uint64_t x, bits;
    size_t i, k;

    /* A byte store per text byte, then the flags folded into bits eight at a
     * time: setting a bit per byte costs a shift and a read-modify-write of
     * a word picked by the byte. */
    memset(seen, 0, sizeof(seen));
#pragma GCC unroll 4
    for (i = 0; i < n; i++) {
        seen[t[i]] = 1;
    }
    for (k = 0; k < 4; k++) {
        bits = 0;
#pragma GCC unroll 8
        for (i = 0; i < 8; i++) {
            memcpy(&x, seen + 64 * k + 8 * i, 8);
            /* Byte j (0 or 1) lands alone at bit 56 + j: no two products share a bit. */
            bits |= ((x * 0x0102040810204080ULL) >> 56) << (8 * i);
        }
        set[k] = bits;
    }
}

bool injection_start_possible(const struct injection_start *st, const uint64_t set[4], size_t n)
{
    return n >= st->min_len && ((st->first[0] & set[0]) | (st->first[1] & set[1]) |
                                (st->first[2] & set[2]) | (st->first[3] & set[3])) != 0;
}

gv_rc injection_model_create(const struct injection_weights *w, struct injection_model **out)
{
    struct injection_model *m = NULL;
    pcre2_general_context *gc = NULL;
    size_t i;
    uint32_t min;
    gv_rc rc = GV_OK;

    *out = NULL;
    if (w && (w->nrules != injection_nrules || !w->ngram || !w->rule || !w->flag)) {
        rc = GV_EINVAL;
        goto out;
    }
    gc = injection_pcre_context();
    m = gv_calloc(1, sizeof(*m));
    m->w = w;
    m->re = gv_calloc(injection_nrules, sizeof(*m->re));
    m->re_a = gv_calloc(injection_nrules, sizeof(*m->re_a));
    rc = build_triggers(m);
    if (rc) {
        goto out;
    }
    for (i = 0; i < injection_nrules; i++) {
        m->all |= 1ULL << i;
        if (w && w->rule[i] > 0.0f) {
            m->weighted |= 1ULL << i;
        }
    }
    for (i = 0; i < injection_nrules; i++) {
        rc = compile_rule(i, 0, gc, &m->re[i]);
        if (rc == GV_OK) {
            learn_start(m->re[i], &m->start[i]);
        }
        if (rc == GV_OK && injection_rules[i].anchors) {
            /* Match-time PCRE2_ANCHORED would bypass the JIT; compile it in. */
            rc = compile_rule(i, PCRE2_ANCHORED, gc, &m->re_a[i]);
        }
        if (rc == GV_OK && m->re_a[i] &&
            pcre2_pattern_info(m->re_a[i], PCRE2_INFO_MINLENGTH, &min) == 0) {
            m->start[i].min_len_anch = min;
        }
        if (rc) {
            goto out;
        }
    }
    *out = m;
    m = NULL;
out:
    pcre2_general_context_free(gc);
    injection_model_destroy(m);
    return rc;
}

void injection_model_destroy(struct injection_model *m)
{
    size_t i;

    if (!m) {
        return;
    }
    for (i = 0; m->re && i < injection_nrules; i++) {
        pcre2_code_free(m->re[i]);
        pcre2_code_free(m->re_a[i]);
    }
    gv_free(m->re);
    gv_free(m->re_a);
    gv_free(m);
}

struct injection_scratch *injection_scratch_create(void)
{
    struct injection_scratch *s = gv_calloc(1, sizeof(*s));
    pcre2_general_context *gc = injection_pcre_context();

    gv_buf_init(&s->fold, FOLD_MAX);
    gv_buf_init(&s->norm, NORM_MAX);
    gv_buf_init(&s->b64, B64BUF_MAX);
    s->md = pcre2_match_data_create(1, gc);
    pcre2_general_context_free(gc);
    s->hits = gv_calloc(injection_nrules, sizeof(*s->hits));
    return s;
}

void injection_scratch_destroy(struct injection_scratch *s)
{
    if (!s) {
        return;
    }
    gv_buf_free(&s->fold);
    gv_buf_free(&s->norm);
    gv_buf_free(&s->b64);
    pcre2_match_data_free(s->md);
    gv_free(s->hits);
    gv_free(s->anch);
    gv_free(s);
}

/* Word bytes of the normalised text: [a-z0-9] and every byte of a non-ASCII
 * character. One load per byte instead of three range tests on the hot walk. */
static const bool word_byte[256] = {
    ['0' ... '9'] = true,
    ['a' ... 'z'] = true,
    [0x80 ... 0xFF] = true,
};

static inline bool wordbyte(unsigned char c)
{
    return word_byte[c];
}

/* Bits set in the 1024-bit class map. Counted in parallel within each word
 * (the x86-64 baseline has no popcount instruction, and the builtin becomes a
 * libgcc call per word): per-byte counts of the 16 words are summed (at most
 * 8 x 16 per byte), then the bytes. */
static unsigned count_classes(const uint64_t seen[16])
{
    const uint64_t m1 = 0x5555555555555555ULL, m2 = 0x3333333333333333ULL,
                   m4 = 0x0F0F0F0F0F0F0F0FULL, m8 = 0x00FF00FF00FF00FFULL;
    uint64_t bytes = 0, x;
    size_t i;

    for (i = 0; i < 16; i++) {
        x = seen[i];
        x -= (x >> 1) & m1;
        x = (x & m2) + ((x >> 2) & m2);
        bytes += (x + (x >> 4)) & m4;
    }
    /* Four 16-bit sums of at most 256, added in the top 16 bits. */
    bytes = (bytes & m8) + ((bytes >> 8) & m8);
    return (unsigned)((bytes * 0x0001000100010001ULL) >> 48);
}

/* Character 4-grams over the whole normalised text (punctuation included, so
 * "<|im" and "###" count), word unigrams and word bigrams. One walk serves
 * both uses: with `sum_mode` the signed bucket weights are summed (the hot
 * path: branch-free, accumulator in a register); otherwise each feature is
 * reported to fn (the trainer). The callers pass a constant, so the compiler
 * builds two specialised copies of the very same walk. Anchor words are
 * recorded in s->anch for the rules. t[n] is the NUL of the gv_buf holding
 * the text, not a word byte: it ends the last word. */
static inline __attribute__((always_inline)) size_t
ngram_walk(const struct injection_model *m, const unsigned char *t, size_t n, const int8_t *w,
           int64_t *acc, unsigned *classes, injection_ngram_fn fn, void *arg,
           struct injection_scratch *s, const bool sum_mode)
{
    size_t i, count = 0, start = 0;
    uint32_t h, word = 0, prev = 0;
    bool have_prev = false;
    int64_t sum = 0;
    uint64_t am;
    /* Which of 1024 bucket classes occurred: a linear-counting estimate of
     * how many distinct n-grams the text has (injection_ngram_repeat). */
    uint64_t seen[16] = {0};

    /* Bucket b_ with the sign's mask neg_ (0: plus, -1: minus). */
#define SUM(b_, neg_)                                                                              \
    do {                                                                                           \
        int64_t v_ = w[b_];                                                                        \
        sum += (v_ ^ (neg_)) - (neg_);                                                             \
        seen[((b_) >> 6) & 15u] |= (uint64_t)1 << ((b_)&63u);                                      \
    } while (0)
#define EMIT(hh)                                                                                   \
    do {                                                                                           \
        uint32_t b_ = (hh) >> (32u - INJECTION_HASH_BITS);                                         \
        if (sum_mode) {                                                                            \
            SUM(b_, (int64_t)((hh)&1u) - 1);                                                       \
        }                                                                                          \
        else {                                                                                     \
            fn(arg, b_, ((hh)&1u) ? 1 : -1);                                                       \
        }                                                                                          \
    } while (0)

    /* The 4-gram at i is t[i..i+3] little-endian; rolling it in byte by byte
     * loads each byte once and gives the very same value on any host (this
     * also finishes the tail the vector loop leaves). */
    i = 0;
#if defined(__SSE2__)
    /* Summing is order-independent, so 16 4-grams are hashed at once: lane j
     * of the load at t + i + r is the little-endian 4-gram at i + r + 4j (x86
     * is little-endian). The trainer's callback keeps the scalar order. */
    if (sum_mode) {
        const __m128i seed = _mm_set1_epi32((int)SEED_C4), one = _mm_set1_epi32(1);
        uint32_t bs[16];
        int32_t negs[16];
        size_t r;
        for (; i + 19 <= n; i += 16) {
            /* The lanes' buckets and sign masks too, as EMIT would take them. */
            for (r = 0; r < 4; r++) {
                __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(t + i + r));
                __m128i hv = mix32x4(_mm_xor_si128(v, seed));
                _mm_storeu_si128((__m128i *)(void *)(bs + 4 * r),
                                 _mm_srli_epi32(hv, 32 - INJECTION_HASH_BITS));
                _mm_storeu_si128((__m128i *)(void *)(negs + 4 * r),
                                 _mm_sub_epi32(_mm_and_si128(hv, one), one));
            }
            for (r = 0; r < 16; r++) {
                SUM(bs[r], (int64_t)negs[r]);
            }
        }
    }
#endif
    if (i + 4 <= n) {
        uint32_t v = (uint32_t)t[i] << 8 | ((uint32_t)t[i + 1] << 16) | ((uint32_t)t[i + 2] << 24);
        for (; i + 4 <= n; i++) {
            v = (v >> 8) | ((uint32_t)t[i + 3] << 24);
            h = mix32(v ^ SEED_C4);
            EMIT(h);
        }
    }
    count += n >= 4 ? n - 3 : 0;
    i = 0;
    while (i < n) {
        /* Skip to a word, hash it to its end, then emit its features: two
         * tight loops instead of a state test per byte. */
        while (i < n && !wordbyte(t[i])) {
            i++;
        }
        if (i == n) {
            break;
        }
        start = i;
        word = 2166136261u;
        do {
            word = (word ^ t[i]) * 16777619u;
            i++;
        } while (wordbyte(t[i]));
        am = trig_find(m, word);
        if (am) {
            if (s->nanch == s->canch && s->canch < INJECTION_ANCHOR_MAX) {
                s->canch = s->canch ? s->canch * 2 : 256;
                if (s->canch > INJECTION_ANCHOR_MAX) {
                    s->canch = INJECTION_ANCHOR_MAX;
                }
                s->anch = gv_realloc(s->anch, s->canch * sizeof(*s->anch));
            }
            if (s->nanch < s->canch) {
                s->anch[s->nanch].off = (uint32_t)start;
                s->anch[s->nanch].mask = am;
                s->nanch++;
            }
            else {
                s->anch_over |= am;
            }
        }
        h = mix32(word ^ SEED_W1);
        EMIT(h);
        count++;
        if (have_prev) {
            h = mix32((prev * 0x01000193u) ^ word ^ SEED_W2);
            EMIT(h);
            count++;
        }
        prev = word;
        have_prev = true;
    }
#undef EMIT
#undef SUM
    if (sum_mode) {
        *acc = sum;
        *classes = count_classes(seen);
    }
    return count;
}

/* Run the rules in `enabled` over s->norm: anchored attempts where their
 * anchor words occur, whole-text scans for the rest. Returns the hit mask. */
/* A match that starts right after an opening quote is a phrase being
 * mentioned ("translate 'ignore the previous instructions'"), not given. */
static bool quoted_at(PCRE2_SPTR t, size_t off)
{
    return (off >= 1 && (t[off - 1] == '\'' || t[off - 1] == '"')) ||
           (off >= 2 && t[off - 1] == ' ' && (t[off - 2] == '\'' || t[off - 2] == '"'));
}

static uint64_t run_rules(const struct injection_model *m, struct injection_scratch *s,
                          unsigned *flags, uint64_t enabled)
{
    PCRE2_SPTR t = (PCRE2_SPTR)s->norm.data;
    size_t n = s->norm.len, k, i;
    uint64_t hits = 0, quoted = 0, full = m->always | s->anch_over, mm;

    /* Spaced-out letters were joined into one word: anchors are unreliable. */
    if (*flags & INJECTION_NF_SPACED) {
        full = m->all;
    }
    full &= enabled;
    for (k = 0; k < s->nanch; k++) {
        mm = s->anch[k].mask & enabled & ~hits & ~full;
        while (mm) {
            i = (size_t)__builtin_ctzll(mm);
            mm &= mm - 1;
            /* Every match is at least min_len_anch bytes long: where less text
             * is left, pcre2_match would fail after its setup. */
            if (n - s->anch[k].off < m->start[i].min_len_anch) {
                continue;
            }
            if (pcre2_match(m->re_a[i], t, n, s->anch[k].off, 0, s->md, NULL) >= 0) {
                /* Markup families quote by nature (style="display:none"). */
                if (injection_rules[i].family <= INJECTION_FAM_PERSONA &&
                    quoted_at(t, s->anch[k].off)) {
                    quoted |= 1ULL << i;
                }
                else {
                    hits |= 1ULL << i;
                }
            }
        }
    }
    if (full) {
        uint64_t set[4];
        injection_byte_set(t, n, set);
        for (mm = full; mm; mm &= mm - 1) {
            i = (size_t)__builtin_ctzll(mm);
            if (injection_start_possible(&m->start[i], set, n) &&
                pcre2_match(m->re[i], t, n, 0, 0, s->md, NULL) >= 0) {
                hits |= 1ULL << i;
            }
        }
    }
    /* Only mentioned, never given: one feature of its own, learned apart. */
    if (quoted & ~hits) {
        *flags |= INJECTION_NF_QUOTED;
    }
    return hits;
}

double injection_ngram_norm(size_t n)
{
    /* 1/sqrt(n) for ordinary prompts; past INJECTION_NORM_KNEE features it
     * becomes a mean (times a constant, continuous at the knee), so a long
     * text cannot drift to an extreme score just by being long. */
    if (n == 0) {
        return 0.0;
    }
    /* A greeting has a handful of n-grams: damp them as if there were
     * INJECTION_NORM_MIN, so two words cannot carry a verdict alone. */
    if (n < INJECTION_NORM_MIN) {
        return 1.0 / sqrt((double)INJECTION_NORM_MIN);
    }
    if (n <= INJECTION_NORM_KNEE) {
        return 1.0 / sqrt((double)n);
    }
    return sqrt((double)INJECTION_NORM_KNEE) / (double)n;
}

size_t injection_ngram_effective(size_t n, double distinct)
{
    double cap = INJECTION_REPEAT_MAX * (distinct < 1.0 ? 1.0 : distinct);

    return (double)n <= cap ? n : (size_t)cap;
}

/* injection_ngram_effective of n n-grams of which `classes` of the 1024
 * bucket classes occurred, estimating the distinct ones by linear counting.
 * The estimate, -1024 ln(1 - classes / 1024), exceeds `classes` by far more
 * than its rounding, so up to INJECTION_REPEAT_MAX times `classes` n-grams
 * are all effective whatever it is: the logarithm is left out. */
static size_t ngram_effective_classes(size_t n, unsigned classes)
{
    unsigned zeros = 1024u - classes;
    double distinct;

    if ((double)n <= INJECTION_REPEAT_MAX * (double)classes) {
        return n;
    }
    /* Saturated (no class left empty): at least as many as the classes. */
    distinct = zeros ? -1024.0 * log((double)zeros / 1024.0) : 1024.0 * 8.0;
    return injection_ngram_effective(n, distinct);
}

static void ignore_ngram(void *arg, uint32_t bucket, int sign)
{
    (void)arg;
    (void)bucket;
    (void)sign;
}

static size_t extract(const struct injection_model *m, struct injection_scratch *s, const int8_t *w,
                      int64_t *acc, unsigned *classes, injection_ngram_fn fn, void *arg)
{
    const unsigned char *t = (const unsigned char *)s->norm.data;

    s->nanch = 0;
    s->anch_over = 0;
    if (!w && !fn) {
        fn = ignore_ngram;
    }
    if (fn) {
        return ngram_walk(m, t, s->norm.len, NULL, NULL, NULL, fn, arg, s, false);
    }
    return ngram_walk(m, t, s->norm.len, w, acc, classes, NULL, NULL, s, true);
}

gv_rc injection_features(const struct injection_model *m, const char *text, size_t len,
                         struct injection_scratch *s, injection_ngram_fn ngram, void *arg,
                         bool *rule_hits, unsigned *flags, size_t *nfeat)
{
    size_t i;
    uint64_t hits;
    gv_rc rc;

    *nfeat = 0;
    rc = injection_normalize(text, len, &s->norm, flags, s);
    if (rc) {
        goto out;
    }
    *nfeat = extract(m, s, NULL, NULL, NULL, ngram, arg);
    hits = run_rules(m, s, flags, ~0ULL);
    for (i = 0; i < injection_nrules; i++) {
        rule_hits[i] = (hits >> i) & 1u;
    }
out:
    return rc;
}

/* Score one segment (len <= INJECTION_SEGMENT_MAX). */
static double score_segment(const struct injection_model *m, const char *text, size_t len,
                            struct injection_scratch *s, unsigned *families)
{
    const struct injection_weights *w = m->w;
    unsigned flags = 0;
    size_t i, n;
    uint64_t hits, mm;
    int64_t acc = 0;
    double z;
    unsigned classes = 0;
    size_t n_eff = 0;

    if (!w) {
        return 0.5;
    }
    /* The caps are sized for a segment, so this cannot fail; if it ever did,
     * the prefix that fit is still scored rather than nothing. */
    (void)injection_normalize(text, len, &s->norm, &flags, s);
    n = extract(m, s, w->ngram, &acc, &classes, NULL, NULL);
    z = w->bias;
    if (n) {
        /* The mean n-gram weight, counted as if the text said each thing
         * once: for ordinary text n_eff is n and this is the usual term. */
        n_eff = ngram_effective_classes(n, classes);
        z += (double)acc / (double)n * (double)n_eff * w->ngram_scale * injection_ngram_norm(n_eff);
    }
    /* Rules the trainer gave no weight cannot change the score: skip them. */
    hits = run_rules(m, s, &flags, m->weighted);
    /* Lowest rule first, as the sum has always been taken. */
    for (mm = hits; mm; mm &= mm - 1) {
        i = (size_t)__builtin_ctzll(mm);
        z += w->rule[i];
        *families |= 1u << injection_rules[i].family;
    }
    for (i = 0; i < INJECTION_NF_COUNT; i++) {
        if (flags & (1u << i)) {
            z += w->flag[i];
            if (w->flag[i] > 0.0f) {
                *families |= 1u << INJECTION_FAM_OBFUSCATION;
            }
        }
    }
    /* N-grams alone must not block a short ordinary request: without a rule
     * or obfuscation match (a quoted mention is neither) the verdict needs
     * stronger odds, by a margin that fades to nothing at INJECTION_SHORT_END
     * features (see the header). */
    if (!hits && !(flags & ~INJECTION_NF_QUOTED) && n_eff < INJECTION_SHORT_END) {
        z -= INJECTION_SHORT_MARGIN * (1.0 - (double)n_eff / (double)INJECTION_SHORT_END);
    }
    return 1.0 / (1.0 + exp(-z));
}

double injection_score_ex(const struct injection_model *m, const char *text, size_t len,
                          struct injection_scratch *s, unsigned *families)
{
    double best = 0.0, sc;
    size_t off = 0, take, k;

    *families = 0;
    if (len == 0) {
        return score_segment(m, "", 0, s, families);
    }
    while (off < len) {
        take = len - off;
        if (take > INJECTION_SEGMENT_MAX) {
            take = INJECTION_SEGMENT_MAX;
            /* Prefer to cut at whitespace so a word is not split in two. */
            for (k = take; k > take - 1024; k--) {
                if (text[off + k - 1] == ' ' || text[off + k - 1] == '\n') {
                    take = k;
                    break;
                }
            }
        }
        sc = score_segment(m, text + off, take, s, families);
        if (sc > best) {
            best = sc;
        }
        off += take;
    }
    return best;
}

double injection_score(const struct injection_model *m, const char *text, size_t len,
                       struct injection_scratch *s)
{
    unsigned fam;
    return injection_score_ex(m, text, len, s, &fam);
}
