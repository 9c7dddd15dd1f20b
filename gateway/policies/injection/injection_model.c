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

gv_rc injection_model_create(const struct injection_weights *w, struct injection_model **out)
{
    struct injection_model *m = NULL;
    pcre2_general_context *gc = NULL;
    size_t i;
    int err;
    PCRE2_SIZE off;
    gv_rc rc = GV_OK;

    *out = NULL;
    if (w && (w->nrules != injection_nrules || !w->ngram || !w->rule || !w->flag)) {
        rc = GV_EINVAL;
        goto out;
    }
    gc = pcre2_general_context_create(pcre_alloc, pcre_free, NULL);
    m = gv_calloc(1, sizeof(*m));
    m->w = w;
    m->re = gv_calloc(injection_nrules, sizeof(*m->re));
    for (i = 0; i < injection_nrules; i++) {
        pcre2_compile_context *cc = pcre2_compile_context_create(gc);
        m->re[i] = pcre2_compile((PCRE2_SPTR)injection_rules[i].pattern, PCRE2_ZERO_TERMINATED, 0,
                                 &err, &off, cc);
        pcre2_compile_context_free(cc);
        if (!m->re[i]) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(err, msg, sizeof(msg));
            gv_log(GV_LOG_ERROR, "injection", "rule does not compile", "rule=%s off=%zu err=\"%s\"",
                   injection_rules[i].name, (size_t)off, (const char *)msg);
            rc = GV_ECONFIG;
            goto out;
        }
        /* JIT failure (e.g. unsupported CPU) leaves the interpreter: slower, correct. */
        (void)pcre2_jit_compile(m->re[i], PCRE2_JIT_COMPLETE);
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
    }
    gv_free(m->re);
    gv_free(m);
}

struct injection_scratch *injection_scratch_create(void)
{
    struct injection_scratch *s = gv_calloc(1, sizeof(*s));
    pcre2_general_context *gc = pcre2_general_context_create(pcre_alloc, pcre_free, NULL);

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
    gv_free(s);
}

static inline bool wordbyte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c >= 0x80;
}

/* Character 4-grams over the whole normalised text (punctuation included, so
 * "<|im" and "###" count), word unigrams and word bigrams. With fn NULL the
 * signed bucket weights are summed into *acc instead of being reported. */
static size_t ngrams(const unsigned char *t, size_t n, const int16_t *w, int64_t *acc,
                     injection_ngram_fn fn, void *arg)
{
    size_t i, count = 0;
    uint32_t h, word = 0, prev = 0;
    bool inword = false, have_prev = false;
    int64_t sum = 0;

#define EMIT(hh)                                                                                   \
    do {                                                                                           \
        uint32_t b_ = (hh) >> (32u - INJECTION_HASH_BITS);                                         \
        int s_ = ((hh)&1u) ? 1 : -1;                                                               \
        if (fn) {                                                                                  \
            fn(arg, b_, s_);                                                                       \
        }                                                                                          \
        else {                                                                                     \
            sum += s_ * (int64_t)w[b_];                                                            \
        }                                                                                          \
        count++;                                                                                   \
    } while (0)

    for (i = 0; i + 4 <= n; i++) {
        uint32_t v = (uint32_t)t[i] | ((uint32_t)t[i + 1] << 8) | ((uint32_t)t[i + 2] << 16) |
                     ((uint32_t)t[i + 3] << 24);
        h = mix32(v ^ SEED_C4);
        EMIT(h);
    }
    for (i = 0; i <= n; i++) {
        if (i < n && wordbyte(t[i])) {
            if (!inword) {
                word = 2166136261u;
                inword = true;
            }
            word = (word ^ t[i]) * 16777619u;
            continue;
        }
        if (inword) {
            h = mix32(word ^ SEED_W1);
            EMIT(h);
            if (have_prev) {
                h = mix32((prev * 0x01000193u) ^ word ^ SEED_W2);
                EMIT(h);
            }
            prev = word;
            have_prev = true;
            inword = false;
        }
    }
#undef EMIT
    if (acc) {
        *acc = sum;
    }
    return count;
}

static bool rule_matches(const struct injection_model *m, size_t i, const struct gv_buf *t,
                         struct injection_scratch *s)
{
    int r = pcre2_match(m->re[i], (PCRE2_SPTR)t->data, t->len, 0, 0, s->md, NULL);
    return r >= 0;
}

gv_rc injection_features(const struct injection_model *m, const char *text, size_t len,
                         struct injection_scratch *s, injection_ngram_fn ngram, void *arg,
                         bool *rule_hits, unsigned *flags, size_t *nfeat)
{
    size_t i;
    gv_rc rc;

    *nfeat = 0;
    rc = injection_normalize(text, len, &s->norm, flags, s);
    if (rc) {
        goto out;
    }
    *nfeat = ngrams((const unsigned char *)s->norm.data, s->norm.len, NULL, NULL, ngram, arg);
    for (i = 0; i < injection_nrules; i++) {
        rule_hits[i] = rule_matches(m, i, &s->norm, s);
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
    int64_t acc = 0;
    double z;

    if (!w) {
        return 0.5;
    }
    /* The caps are sized for a segment, so this cannot fail; if it ever did,
     * the prefix that fit is still scored rather than nothing. */
    (void)injection_normalize(text, len, &s->norm, &flags, s);
    n = ngrams((const unsigned char *)s->norm.data, s->norm.len, w->ngram, &acc, NULL, NULL);
    z = w->bias;
    if (n) {
        z += (double)acc * w->ngram_scale / sqrt((double)n);
    }
    for (i = 0; i < injection_nrules; i++) {
        /* Rules the trainer gave no weight cannot change the score: skip the scan. */
        if (w->rule[i] > 0.0f && rule_matches(m, i, &s->norm, s)) {
            z += w->rule[i];
            *families |= 1u << injection_rules[i].family;
        }
    }
    for (i = 0; i < INJECTION_NF_COUNT; i++) {
        if (flags & (1u << i)) {
            z += w->flag[i];
            if (w->flag[i] > 0.0f) {
                *families |= 1u << INJECTION_FAM_OBFUSCATION;
            }
        }
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
