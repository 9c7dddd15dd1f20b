/* bench/detectors/injection_detector.c - prompt-injection accuracy per data file and speed */
/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/detectors/injection_points.h"
#include "core/gv_buf.h"
#include "core/gv_mem.h"
#include "gateway/policies/injection/injection.h"
#include "gateway/policies/injection/train/injection_data.h"

#define THRESHOLD POINTS_THRESHOLD
/* Each size is timed in ROUNDS rounds of at least ROUND_NS of CPU time (and
 * MIN_ITERS calls); the fastest round is reported, which is the least
 * disturbed by other processes on a shared machine. */
#define ROUNDS 5
#define ROUND_NS 80000000ULL
#define MIN_ITERS 20u

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    /* CPU time of this thread: "ns per request on one core". */
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

struct counts {
    size_t n, tp, fp, fn, tn;
};

static void print_row(const char *name, const char *kind, const struct counts *c)
{
    double p = c->tp + c->fp ? (double)c->tp / (double)(c->tp + c->fp) : 0;
    double r = c->tp + c->fn ? (double)c->tp / (double)(c->tp + c->fn) : 0;
    double f1 = p + r > 0 ? 2 * p * r / (p + r) : 0;
    double fpr = c->fp + c->tn ? (double)c->fp / (double)(c->fp + c->tn) : 0;
    char ps[16], rs[16], fs[16], fprs[16];

    /* A metric with no denominator is shown as "-" rather than a fake 0. */
    snprintf(ps, sizeof(ps), c->tp + c->fp ? "%.3f" : "-", p);
    snprintf(rs, sizeof(rs), c->tp + c->fn ? "%.3f" : "-", r);
    snprintf(fs, sizeof(fs), c->tp + c->fn ? "%.3f" : "-", f1);
    snprintf(fprs, sizeof(fprs), c->fp + c->tn ? "%.3f" : "-", fpr);
    printf("| %-31s | %-9s | %5zu | %4zu | %4zu | %4zu | %5zu | %6s | %6s | %6s | %6s |\n", name,
           kind, c->n, c->tp, c->fp, c->fn, c->tn, ps, rs, fs, fprs);
}

static void add(struct counts *c, int label, bool pos)
{
    c->n++;
    c->tp += pos && label;
    c->fp += pos && !label;
    c->fn += !pos && label;
    c->tn += !pos && !label;
}

/* Rows counted at the three operating points: recall for attack rows, the
 * false-positive rate for benign ones. */
struct rates {
    size_t n, hit[POINTS_N];
};

static void rates_add(struct rates *r, const double t[POINTS_N], double score)
{
    size_t i;

    r->n++;
    for (i = 0; i < POINTS_N; i++) {
        r->hit[i] += (size_t)points_hit(t, i, score);
    }
}

static void print_rates(const char *name, const char *what, const struct rates *r)
{
    size_t i;

    if (!r->n) {
        return;
    }
    printf("| %-31s | %-6s | %5zu |", name, what, r->n);
    for (i = 0; i < POINTS_N; i++) {
        printf(" %11.3f |", (double)r->hit[i] / (double)r->n);
    }
    printf("\n");
}

static void print_rates_head(const char *first)
{
    printf("| %-31s | %-6s | %5s | %11s | %11s | %11s |\n", first, "rate", "rows", "@0.80",
           "@FPR<=1%", "@FPR<=3%");
    printf("|---------------------------------|--------|-------|-------------|-------------|----"
           "---------|\n");
}

/* Recall of every held-out attack file (and all of them) and the false-positive
 * rate of every held-out negative file, at the default threshold and at the
 * thresholds that keep the held-out false-positive rate at or below 1% and 3%.
 * Reported, never tuned on. */
static void print_operating_points(const struct injection_dataset *d, const double *score,
                                   const double t[POINTS_N])
{
    size_t f, k;

    printf("\n## prompt-injection: recall and false alarms at three operating points (held-out "
           "rows)\n\n");
    printf("Thresholds from the held-out negatives (benign and hard negatives): the default "
           "0.80 (score >= 0.80), FPR <= 1%% (score > %.3f), FPR <= 3%% (score > %.3f). `rate` "
           "is recall for attack rows and the false-positive rate for benign rows.\n\n",
           t[1], t[2]);
    print_rates_head("file");
    /* f < nfiles: one file; nfiles: the row-split files together; nfiles + 1: all. */
    for (f = 0; f <= d->nfiles + 1; f++) {
        struct rates att = {0}, neg = {0};
        char name[64];
        for (k = 0; k < d->n; k++) {
            const struct injection_row *r = &d->rows[k];
            if (r->split != INJECTION_SPLIT_HELDOUT || (f < d->nfiles && r->file != f) ||
                (f == d->nfiles && (d->files[r->file].heldout || !r->label)) ||
                (f > d->nfiles && !r->label)) {
                continue;
            }
            rates_add(r->label ? &att : &neg, t, score[k]);
        }
        snprintf(name, sizeof(name), "%s%s",
                 f < d->nfiles    ? d->files[f].name
                 : f == d->nfiles ? "attack, row-split files"
                                  : "ALL attack rows",
                 f < d->nfiles && d->files[f].heldout ? " (file)" : "");
        print_rates(name, "recall", &att);
        print_rates(name, "FPR", &neg);
    }
}

/* The same three points per language of the rows that carry one (CyberSecEval's
 * machine-translated file: its attacks, and its translated system prompts and
 * judge questions as the benign side). */
static void print_languages(const struct injection_dataset *d, const double *score,
                            const double t[POINTS_N])
{
    const char **langs = gv_calloc(d->n ? d->n : 1, sizeof(*langs));
    size_t nl = 0, k, i;

    for (k = 0; k < d->n; k++) {
        const char *lang = d->rows[k].lang;
        if (d->rows[k].split != INJECTION_SPLIT_HELDOUT || !lang) {
            continue;
        }
        for (i = 0; i < nl && strcmp(langs[i], lang) != 0; i++) {
        }
        if (i == nl) {
            langs[nl++] = lang;
        }
    }
    qsort(langs, nl, sizeof(*langs), cmp_str);
    printf("\n## prompt-injection: per language (held-out rows of the machine-translated "
           "CyberSecEval file)\n\n");
    print_rates_head("language");
    for (i = 0; i < nl; i++) {
        struct rates att = {0}, neg = {0};
        for (k = 0; k < d->n; k++) {
            const struct injection_row *r = &d->rows[k];
            if (r->split == INJECTION_SPLIT_HELDOUT && r->lang && strcmp(r->lang, langs[i]) == 0) {
                rates_add(r->label ? &att : &neg, t, score[k]);
            }
        }
        print_rates(langs[i], "recall", &att);
        print_rates(langs[i], "FPR", &neg);
    }
    gv_free(langs);
}

/* Operating points of the pairs' own negatives: the default threshold, then
 * the scores that keep 1% and 3% of neg[0..n) above them. Sorts neg. */
static void pair_thresholds(double *neg, size_t n, double t[POINTS_N])
{
    static const double fprs[] = {0.01, 0.03};
    size_t j, k;

    qsort(neg, n, sizeof(*neg), points_cmp_desc);
    t[0] = POINTS_THRESHOLD;
    for (j = 0; j < 2; j++) {
        k = (size_t)(fprs[j] * (double)n);
        t[j + 1] = k < n ? neg[k] : -1.0;
    }
}

/* The user turn scored alone and against a system prompt: CyberSecEval's held-out
 * attacks and judge questions against their own system prompt, and every other
 * held-out negative against one of those system prompts (round robin), so that
 * ordinary turns under a guarding prompt are counted too. Each side gets its own
 * 1%/3% thresholds from its negatives, so recall is compared at equal FPR. */
static void print_conversation(const struct injection_dataset *d, const double *score)
{
    const char **sys = gv_calloc(d->n ? d->n : 1, sizeof(*sys));
    double *with_score = gv_calloc(d->n ? d->n : 1, sizeof(*with_score));
    double *neg_a = gv_calloc(d->n ? d->n : 1, sizeof(*neg_a));
    double *neg_w = gv_calloc(d->n ? d->n : 1, sizeof(*neg_w));
    double ta[POINTS_N], tw[POINTS_N];
    struct rates alone[3], with[3];
    static const char *const names[3] = {"attacks (own system prompt)",
                                         "judge questions (own prompt)",
                                         "other negatives (a prompt)"};
    signed char *kind = gv_calloc(d->n ? d->n : 1, sizeof(*kind));
    size_t nsys = 0, nneg = 0, k, i, guarded = 0;

    memset(alone, 0, sizeof(alone));
    memset(with, 0, sizeof(with));
    for (k = 0; k < d->n; k++) {
        if (d->rows[k].split == INJECTION_SPLIT_HELDOUT && d->rows[k].system) {
            sys[nsys++] = d->rows[k].system;
        }
    }
    for (k = 0; k < d->n; k++) {
        const struct injection_row *r = &d->rows[k];
        const char *sp = r->system ? r->system : nsys ? sys[k % nsys] : NULL;
        size_t ov;
        kind[k] = -1;
        if (!sp || r->split != INJECTION_SPLIT_HELDOUT || d->files[r->file].heldout ||
            (r->label && !r->system)) {
            continue;
        }
        kind[k] = (signed char)(r->label ? 0 : r->system ? 1 : 2);
        ov = injection_protected_overlap(sp, strlen(sp), r->text, r->len);
        guarded += ov >= INJECTION_CONV_MIN;
        with_score[k] = injection_conversation_score(score[k], ov);
        if (!r->label) {
            neg_a[nneg] = score[k];
            neg_w[nneg++] = with_score[k];
        }
    }
    pair_thresholds(neg_a, nneg, ta);
    pair_thresholds(neg_w, nneg, tw);
    for (k = 0; k < d->n; k++) {
        if (kind[k] >= 0) {
            rates_add(&alone[kind[k]], ta, score[k]);
            rates_add(&with[kind[k]], tw, with_score[k]);
        }
    }
    printf("\n## prompt-injection: user turn alone vs scored against the system prompt "
           "(held-out rows)\n\n");
    printf("%zu system prompts; %zu turns overlap what their prompt guards. Thresholds from "
           "the %zu negatives below: alone 1%% > %.3f, 3%% > %.3f; with the system prompt "
           "1%% > %.3f, 3%% > %.3f.\n\n",
           nsys, guarded, nneg, ta[1], ta[2], tw[1], tw[2]);
    print_rates_head("rows");
    for (i = 0; i < 3; i++) {
        print_rates(names[i], i ? "FPR" : "recall", &alone[i]);
        print_rates("  + system prompt", i ? "FPR" : "recall", &with[i]);
    }
    gv_free(kind);
    gv_free(neg_a);
    gv_free(neg_w);
    gv_free(with_score);
    gv_free(sys);
}

/* Every held-out row read as tool output: the direct score and the indirect
 * profile's (injection_indirect_score), per file, each at its own thresholds
 * from the held-out negatives so that recall is compared at equal FPR. The
 * negatives stand in for documents and tool results: none of them is an
 * attack wherever it is read. */
static void print_tool_output(const struct injection_dataset *d, const double *score)
{
    struct injection_indirect *ind = NULL;
    struct injection_indirect_scratch *is = NULL;
    double *prof = gv_calloc(d->n ? d->n : 1, sizeof(*prof));
    double *neg_d = gv_calloc(d->n ? d->n : 1, sizeof(*neg_d));
    double *neg_p = gv_calloc(d->n ? d->n : 1, sizeof(*neg_p));
    double td[POINTS_N], tp[POINTS_N];
    size_t k, f, nneg = 0, hit_rows = 0;

    if (injection_indirect_create(&ind) != GV_OK) {
        fprintf(stderr, "injection: indirect profile does not compile\n");
        goto out;
    }
    is = injection_indirect_scratch_create();
    for (k = 0; k < d->n; k++) {
        const struct injection_row *r = &d->rows[k];
        size_t hits;
        if (r->split != INJECTION_SPLIT_HELDOUT) {
            continue;
        }
        hits = injection_indirect_hits(ind, r->text, r->len, is);
        hit_rows += hits > 0;
        prof[k] = injection_indirect_score(score[k], hits);
        if (!r->label) {
            neg_d[nneg] = score[k];
            neg_p[nneg++] = prof[k];
        }
    }
    pair_thresholds(neg_d, nneg, td);
    pair_thresholds(neg_p, nneg, tp);
    printf("\n## prompt-injection: every held-out row read as tool output, direct vs indirect "
           "profile\n\n");
    printf("%zu rows match an indirect pattern. Thresholds from the %zu negatives: direct 1%% > "
           "%.3f, 3%% > %.3f; indirect 1%% > %.3f, 3%% > %.3f.\n\n",
           hit_rows, nneg, td[1], td[2], tp[1], tp[2]);
    print_rates_head("file");
    for (f = 0; f <= d->nfiles; f++) {
        struct rates dir[2], pro[2];
        char name[64];
        memset(dir, 0, sizeof(dir));
        memset(pro, 0, sizeof(pro));
        for (k = 0; k < d->n; k++) {
            const struct injection_row *r = &d->rows[k];
            if (r->split != INJECTION_SPLIT_HELDOUT || (f < d->nfiles && r->file != f)) {
                continue;
            }
            rates_add(&dir[r->label], td, score[k]);
            rates_add(&pro[r->label], tp, prof[k]);
        }
        snprintf(name, sizeof(name), "%s", f < d->nfiles ? d->files[f].name : "ALL held-out rows");
        print_rates(name, "recall", &dir[1]);
        print_rates("  indirect profile", "recall", &pro[1]);
        print_rates(name, "FPR", &dir[0]);
        print_rates("  indirect profile", "FPR", &pro[0]);
    }
out:
    injection_indirect_scratch_destroy(is);
    injection_indirect_destroy(ind);
    gv_free(prof);
    gv_free(neg_d);
    gv_free(neg_p);
}

/* A benign prompt of exactly `size` bytes made of held-out benign rows. */
static void make_prompt(const struct injection_dataset *d, size_t size, struct gv_buf *b)
{
    size_t k = 0, guard = 0;

    gv_buf_reset(b);
    while (b->len < size && guard < 1000000) {
        const struct injection_row *r = &d->rows[k++ % d->n];
        guard++;
        if (r->label == 0 && !d->files[r->file].hard_negative) {
            size_t take = r->len < size - b->len ? r->len : size - b->len;
            (void)gv_buf_append(b, r->text, take);
            if (b->len < size) {
                (void)gv_buf_append_char(b, '\n');
            }
        }
    }
}

int main(void)
{
    static const size_t sizes[] = {1024, 4096, 8192, 65536};
    struct injection_dataset *d = NULL;
    struct injection_model *m = NULL;
    struct injection_scratch *s = NULL;
    struct counts *per = NULL, attack = {0}, benign = {0}, hard = {0}, seen = {0}, unseen = {0};
    double *score = NULL, t[POINTS_N];
    struct gv_buf prompt;
    const char *dir = injection_data_dir();
    size_t f, k, i;
    gv_rc rc;
    int ret = 1;

    gv_buf_init(&prompt, 1u << 20);
    rc = injection_data_load(dir, &d);
    if (rc == GV_ENOTFOUND) {
        printf("injection: skipped, no detector data at %s (set KT_DETECTORS_DIR)\n", dir);
        ret = 0;
        goto out;
    }
    if (rc) {
        fprintf(stderr, "injection: cannot load %s: %s\n", dir, gv_rc_str(rc));
        goto out;
    }
    rc = injection_model_create(&injection_weights_builtin, &m);
    if (rc) {
        fprintf(stderr, "injection: model: %s\n", gv_rc_str(rc));
        goto out;
    }
    s = injection_scratch_create();
    per = calloc(d->nfiles, sizeof(*per));
    score = calloc(d->n ? d->n : 1, sizeof(*score));
    if (!per || !score) {
        goto out;
    }
    for (k = 0; k < d->n; k++) {
        const struct injection_row *r = &d->rows[k];
        bool pos;
        if (r->split != INJECTION_SPLIT_HELDOUT) {
            continue;
        }
        score[k] = injection_score(m, r->text, r->len, s);
        pos = score[k] >= THRESHOLD;
        add(&per[r->file], r->label, pos);
        if (r->label) {
            add(&attack, 1, pos);
            /* Files split by row were partly trained on; whole held-out files never. */
            add(d->files[r->file].heldout ? &unseen : &seen, 1, pos);
        }
        else if (d->files[r->file].hard_negative) {
            add(&hard, 0, pos);
        }
        else {
            add(&benign, 0, pos);
        }
    }
    printf("## prompt-injection: held-out rows of %s, threshold %.2f\n\n", dir, THRESHOLD);
    printf("Held out: whole files marked (file) plus 1/5 of every other file by SHA-256 of the "
           "row; never trained or tuned on.\n\n");
    printf("| %-31s | %-9s | %5s | %4s | %4s | %4s | %5s | %6s | %6s | %6s | %6s |\n", "file",
           "kind", "rows", "tp", "fp", "fn", "tn", "prec", "recall", "F1", "FPR");
    printf(
        "|---------------------------------|-----------|-------|------|------|------|-------|-----"
        "---|--------|--------|--------|\n");
    for (f = 0; f < d->nfiles; f++) {
        char name[64];
        const char *kind;
        if (!per[f].n) {
            continue;
        }
        snprintf(name, sizeof(name), "%s%s", d->files[f].name,
                 d->files[f].heldout ? " (file)" : "");
        if (per[f].tp + per[f].fn && per[f].fp + per[f].tn) {
            kind = "mixed";
        }
        else if (per[f].tp + per[f].fn) {
            kind = "attack";
        }
        else {
            kind = d->files[f].hard_negative ? "hard-neg" : "benign";
        }
        print_row(name, kind, &per[f]);
    }
    print_row("attack, row-split files", "attack", &seen);
    print_row("attack, held-out files", "attack", &unseen);
    print_row("ALL attack rows", "attack", &attack);
    print_row("ALL benign (not hard-neg)", "benign", &benign);
    print_row("ALL hard negatives", "hard-neg", &hard);
    {
        struct counts all = attack;
        all.n += benign.n + hard.n;
        all.fp += benign.fp + hard.fp;
        all.tn += benign.tn + hard.tn;
        print_row("ALL held-out rows", "mixed", &all);
    }
    points_thresholds(d, score, t);
    print_operating_points(d, score, t);
    print_languages(d, score, t);
    print_conversation(d, score);
    print_tool_output(d, score);

    printf(
        "\n## prompt-injection: speed (one core, benign prompts, normalise + rules + model)\n\n");
    printf("CPU time of one thread, fastest of %d rounds.\n\n", ROUNDS);
    printf("| %-8s | %10s | %8s |\n", "prompt", "ns/request", "ns/byte");
    printf("|----------|------------|----------|\n");
    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint64_t t0, t1, iters, r;
        double best = 0;
        volatile double sink = 0;
        make_prompt(d, sizes[i], &prompt);
        sink += injection_score(m, prompt.data, prompt.len, s); /* warm caches */
        for (r = 0; r < ROUNDS; r++) {
            double one;
            iters = 0;
            t0 = now_ns();
            do {
                sink += injection_score(m, prompt.data, prompt.len, s);
                iters++;
                t1 = now_ns();
            } while (t1 - t0 < ROUND_NS || iters < MIN_ITERS);
            one = (double)(t1 - t0) / (double)iters;
            if (r == 0 || one < best) {
                best = one;
            }
        }
        (void)sink;
        printf("| %4zu KiB | %10.0f | %8.2f |\n", sizes[i] / 1024, best, best / (double)prompt.len);
    }
    ret = 0;
out:
    free(per);
    free(score);
    gv_buf_free(&prompt);
    injection_scratch_destroy(s);
    injection_model_destroy(m);
    injection_data_free(d);
    return ret;
}
