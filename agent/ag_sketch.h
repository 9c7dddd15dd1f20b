/* agent/ag_sketch.h - bounded, mergeable latency sketch with 1% relative error */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef AG_SKETCH_H
#define AG_SKETCH_H

#include <stdint.h>

#include "core/gv_rc.h"

/* Log buckets: value v (microseconds, v >= 1) goes to bucket ceil(log_gamma(v)),
 * gamma = 1.02, so a bucket's midpoint is within 0.99% of every value in it
 * (DDSketch). At most AG_SKETCH_MAX_BINS contiguous buckets are kept; beyond
 * that the lowest ones are collapsed, so high quantiles stay exact to 1% and
 * memory is fixed whatever the count. Zero goes to its own counter. */
#define AG_SKETCH_GAMMA 1.02
#define AG_SKETCH_MAX_BINS 256

struct ag_sketch {
    uint32_t *bins; /* nbins counts for buckets lo .. lo + nbins - 1; NULL when empty */
    int32_t lo;
    uint16_t nbins;
    uint16_t cap; /* allocated bins */
    uint64_t zeros;
    uint64_t count;
};

/* Cannot fail. */
void ag_sketch_init(struct ag_sketch *s);
void ag_sketch_free(struct ag_sketch *s);
void ag_sketch_add(struct ag_sketch *s, uint64_t value_us);
/* Adds every count of src into dst (bucket-wise, then collapsing if needed). */
void ag_sketch_merge(struct ag_sketch *dst, const struct ag_sketch *src);
/* Value at quantile q in [0,1] (nearest rank), in microseconds; 0 when empty. */
double ag_sketch_quantile(const struct ag_sketch *s, double q);
/* Rebuild from stored parts (state file): lo, counts, zeros. GV_EINVAL when
 * nbins exceeds the limit. Replaces s's content. */
gv_rc ag_sketch_load(struct ag_sketch *s, int32_t lo, const uint32_t *counts, uint32_t nbins,
                     uint64_t zeros);
/* Bytes of heap the sketch holds. */
uint64_t ag_sketch_mem(const struct ag_sketch *s);

#endif
