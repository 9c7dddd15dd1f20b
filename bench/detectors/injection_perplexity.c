/* bench/detectors/injection_perplexity.c - a character-model perplexity signal for GCG suffixes */
/* SPDX-License-Identifier: Apache-2.0 */
/* GCG's adversarial suffixes ("...heroin which sorry bere---------------- ??legt !! lawyer
 * correctedilde]$. [[There among") carry no instruction words, so the rules and the n-gram
 * model miss them, but they read like no language: a character model of ordinary text finds
 * them improbable. This bench trains an order-3 character model on the TRAIN benign rows of
 * the shared data, at bench time (no weights are written or shipped, and no data text is kept
 * beyond this process), scores each text by its most surprising window, sets the thresholds on
 * the DEV negatives (text the model did not see, so the threshold is not set on memorised
 * rows), and reports on the held-out rows what `score >= 0.8 OR surprise > threshold` would
 * catch and what it would cost. Evaluation only: the gateway does not use it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/detectors/injection_points.h"
#include "core/gv_mem.h"
#include "gateway/policies/injection/injection.h"
#include "gateway/policies/injection/train/injection_data.h"

/* Trigram counts are hashed into 2^TRI_BITS cells; bigrams and unigrams are exact. */
#define TRI_BITS 22u
/* The surprise of a text is the highest mean -log2 P over any WINDOW bytes. */
#define WINDOW 48u
/* Interpolation weights of the trigram, bigram, unigram and uniform estimates. */
#define L3 0.6
#define L2 0.25
#define L1 0.1
#define L0 0.05
/* Each surprise threshold lets this share of the DEV negatives above it. */
static const double dev_fprs[] = {0.01, 0.002};
#define NPOINTS (sizeof(dev_fprs) / sizeof(dev_fprs[0]))

struct charlm {
    uint32_t *tri; /* 2^TRI_BITS */
    uint32_t bi[65536];
    uint32_t uni[256];
    uint64_t total;
};

/* ASCII lower case and one space for any whitespace run: the model should see
 * letters and punctuation, not layout. */
static unsigned char fold(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return (unsigned char)(c + 32);
    }
    return c == '\n' || c == '\t' || c == '\r' ? ' ' : c;
}

static uint32_t tri_cell(unsigned a, unsigned b, unsigned c)
{
    uint32_t x = (a << 16) | (b << 8) | c;
    return (x * 2654435761u) >> (32u - TRI_BITS);
}

static void lm_train(struct charlm *lm, const char *t, size_t n)
{
    unsigned a = ' ', b = ' ', c;
    size_t i;

    for (i = 0; i < n; i++) {
        c = fold((unsigned char)t[i]);
        if (c == ' ' && b == ' ') {
            continue;
        }
        lm->tri[tri_cell(a, b, c)]++;
        lm->bi[(b << 8) | c]++;
        lm->uni[c]++;
        lm->total++;
        a = b;
        b = c;
    }
}

static double lm_bits(const struct charlm *lm, unsigned a, unsigned b, unsigned c)
{
    double p3 =
        lm->bi[(a << 8) | b] ? (double)lm->tri[tri_cell(a, b, c)] / lm->bi[(a << 8) | b] : 0.0;
    double p2 = lm->uni[b] ? (double)lm->bi[(b << 8) | c] / lm->uni[b] : 0.0;
    double p1 = lm->total ? (double)lm->uni[c] / (double)lm->total : 0.0;
    double p = L3 * (p3 > 1.0 ? 1.0 : p3) + L2 * p2 + L1 * p1 + L0 / 256.0;

    return -log2(p);
}

/* The highest mean surprise (bits per byte) over any WINDOW consecutive bytes;
 * the whole text's mean when it is shorter. */
static double lm_surprise(const struct charlm *lm, const char *t, size_t n, double *bits)
{
    unsigned a = ' ', b = ' ', c;
    size_t i, m = 0, k;
    double sum = 0, best = 0;

    for (i = 0; i < n; i++) {
        c = fold((unsigned char)t[i]);
        if (c == ' ' && b == ' ') {
            continue;
        }
        bits[m++] = lm_bits(lm, a, b, c);
        a = b;
        b = c;
    }
    if (m == 0) {
        return 0.0;
    }
    for (k = 0; k < m; k++) {
        sum += bits[k];
        if (k >= WINDOW) {
            sum -= bits[k - WINDOW];
        }
        if (k + 1 >= WINDOW || k + 1 == m) {
            double mean = sum / (double)(k + 1 < WINDOW ? k + 1 : WINDOW);
            best = mean > best ? mean : best;
        }
    }
    return best;
}

static int cmp_desc(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a < b) - (a > b);
}

struct tally {
    size_t n, direct, either[NPOINTS];
};

static void print_tally(const char *name, const char *what, const struct tally *t)
{
    size_t i;

    if (!t->n) {
        return;
    }
    printf("| %-31s | %-6s | %5zu | %8.3f |", name, what, t->n, (double)t->direct / (double)t->n);
    for (i = 0; i < NPOINTS; i++) {
        printf(" %13.3f |", (double)t->either[i] / (double)t->n);
    }
    printf("\n");
}

static void tally_add(struct tally *t, bool direct, double surprise, const double *thr)
{
    size_t i;

    t->n++;
    t->direct += direct;
    for (i = 0; i < NPOINTS; i++) {
        t->either[i] += direct || surprise > thr[i];
    }
}

int main(void)
{
    const char *dir = injection_data_dir();
    struct injection_dataset *d = NULL;
    struct injection_model *m = NULL;
    struct injection_scratch *s = NULL;
    struct charlm *lm = NULL;
    double *bits = NULL, *neg = NULL, thr[NPOINTS];
    size_t k, f, nneg = 0, maxlen = 0;
    gv_rc rc;

    rc = injection_data_load(dir, &d);
    if (rc == GV_ENOTFOUND) {
        printf("injection perplexity: skipped, no detector data at %s (set KT_DETECTORS_DIR)\n",
               dir);
        return 0;
    }
    if (rc || injection_model_create(&injection_weights_builtin, &m) != GV_OK) {
        fprintf(stderr, "injection perplexity: cannot load data or model\n");
        injection_data_free(d);
        return 1;
    }
    s = injection_scratch_create();
    lm = gv_calloc(1, sizeof(*lm));
    lm->tri = gv_calloc((size_t)1 << TRI_BITS, sizeof(*lm->tri));
    for (k = 0; k < d->n; k++) {
        const struct injection_row *r = &d->rows[k];
        maxlen = r->len > maxlen ? r->len : maxlen;
        if (r->split == INJECTION_SPLIT_TRAIN && !r->label) {
            lm_train(lm, r->text, r->len);
        }
    }
    bits = gv_calloc(maxlen + 1, sizeof(*bits));
    neg = gv_calloc(d->n + 1, sizeof(*neg));
    /* The thresholds from the DEV negatives only: the held-out rows never set them. */
    for (k = 0; k < d->n; k++) {
        const struct injection_row *r = &d->rows[k];
        if (r->split == INJECTION_SPLIT_DEV && !r->label) {
            neg[nneg++] = lm_surprise(lm, r->text, r->len, bits);
        }
    }
    qsort(neg, nneg, sizeof(*neg), cmp_desc);
    for (k = 0; k < NPOINTS; k++) {
        thr[k] = neg[(size_t)(dev_fprs[k] * (double)nneg)];
    }
    printf("## prompt-injection: character-model surprise as a second signal (held-out rows)\n\n");
    printf("Order-3 character model trained at bench time on the TRAIN benign rows (%llu "
           "bytes); a text's surprise is its highest mean -log2 P over %u bytes. Thresholds from "
           "the %zu DEV benign rows: %.2f bits/byte (1%% of them above), %.2f (0.2%%). `either` "
           "= score >= %.2f or surprise above the threshold.\n\n",
           (unsigned long long)lm->total, WINDOW, nneg, thr[0], thr[1], POINTS_THRESHOLD);
    printf("| %-31s | %-6s | %5s | %8s | %13s | %13s |\n", "held-out rows", "rate", "rows",
           "direct", "either @1%", "either @0.2%");
    printf("|---------------------------------|--------|-------|----------|---------------|------"
           "---------|\n");
    for (f = 0; f <= d->nfiles; f++) {
        static const char *const methods[] = {"GCG", "PAIR", "JBC"};
        struct tally att = {0}, ben = {0}, meth[3];
        size_t j;
        memset(meth, 0, sizeof(meth));
        for (k = 0; k < d->n; k++) {
            const struct injection_row *r = &d->rows[k];
            double sc, surprise;
            bool direct;
            if (r->split != INJECTION_SPLIT_HELDOUT || (f < d->nfiles && r->file != f)) {
                continue;
            }
            sc = injection_score(m, r->text, r->len, s);
            direct = sc >= POINTS_THRESHOLD;
            surprise = lm_surprise(lm, r->text, r->len, bits);
            tally_add(r->label ? &att : &ben, direct, surprise, thr);
            for (j = 0; j < 3 && r->method; j++) {
                if (strcmp(r->method, methods[j]) == 0) {
                    tally_add(&meth[j], direct, surprise, thr);
                }
            }
        }
        print_tally(f < d->nfiles ? d->files[f].name : "ALL held-out rows", "recall", &att);
        for (j = 0; j < 3; j++) {
            char name[64];
            snprintf(name, sizeof(name), "  %s", methods[j]);
            print_tally(name, "recall", &meth[j]);
        }
        print_tally(f < d->nfiles ? d->files[f].name : "ALL held-out rows", "FPR", &ben);
    }
    gv_free(bits);
    gv_free(neg);
    gv_free(lm->tri);
    gv_free(lm);
    injection_scratch_destroy(s);
    injection_model_destroy(m);
    injection_data_free(d);
    return 0;
}
