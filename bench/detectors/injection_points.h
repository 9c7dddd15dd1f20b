/* bench/detectors/injection_points.h - the prompt-injection operating points both benches use */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef BENCH_INJECTION_POINTS_H
#define BENCH_INJECTION_POINTS_H

#include <stdlib.h>

#include "core/gv_mem.h"
#include "gateway/policies/injection/train/injection_data.h"

/* The shipped default (policy.prompt-injection.threshold). */
#define POINTS_THRESHOLD 0.8
/* False-alarm budgets reported besides the default: 1% and 3% of the held-out negatives. */
#define POINTS_N 3

static inline int points_cmp_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

/* The three operating points: t[0] the default threshold (a row is positive at
 * score >= t[0]), t[1] and t[2] the scores an attack must exceed so that at
 * most 1% and 3% of the held-out negatives (benign and hard negatives, whose
 * scores are score[k] for rows k of d) score above them (positive at > t[i]).
 * Reported, never tuned on. */
static inline void points_thresholds(const struct injection_dataset *d, const double *score,
                                     double t[POINTS_N])
{
    static const double fprs[] = {0.01, 0.03};
    double *neg = gv_calloc(d->n ? d->n : 1, sizeof(*neg));
    size_t nneg = 0, k, j;

    for (k = 0; k < d->n; k++) {
        if (d->rows[k].split == INJECTION_SPLIT_HELDOUT && !d->rows[k].label) {
            neg[nneg++] = score[k];
        }
    }
    qsort(neg, nneg, sizeof(*neg), points_cmp_desc);
    t[0] = POINTS_THRESHOLD;
    for (j = 0; j < 2; j++) {
        k = (size_t)(fprs[j] * (double)nneg);
        t[j + 1] = k < nneg ? neg[k] : -1.0;
    }
    gv_free(neg);
}

/* Whether `score` is positive at operating point i of t. */
static inline int points_hit(const double t[POINTS_N], size_t i, double score)
{
    return i == 0 ? score >= t[0] : score > t[i];
}

#endif
