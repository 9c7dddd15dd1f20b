/* agent/ag_sketch.c - bounded, mergeable latency sketch with 1% relative error */
/* SPDX-License-Identifier: Apache-2.0 */
#include "agent/ag_sketch.h"

#include <math.h>
#include <string.h>

#include "core/gv_mem.h"

void ag_sketch_init(struct ag_sketch *s)
{
    memset(s, 0, sizeof(*s));
}

void ag_sketch_free(struct ag_sketch *s)
{
    gv_free(s->bins);
    ag_sketch_init(s);
}

static int32_t bucket_of(uint64_t v)
{
    return (int32_t)ceil(log((double)v) / log(AG_SKETCH_GAMMA));
}

/* Makes bucket idx addressable, growing the window or collapsing its low end.
 * Returns the slot to count into. */
static uint32_t *slot_for(struct ag_sketch *s, int32_t idx)
{
    int32_t hi, new_lo, new_hi;
    uint32_t n;

    if (!s->bins) {
        s->cap = 16;
        s->bins = gv_calloc(s->cap, sizeof(*s->bins));
        s->lo = idx;
        s->nbins = 1;
        return &s->bins[0];
    }
    hi = s->lo + s->nbins - 1;
    if (idx >= s->lo && idx <= hi) {
        return &s->bins[idx - s->lo];
    }
    new_lo = idx < s->lo ? idx : s->lo;
    new_hi = idx > hi ? idx : hi;
    if (new_hi - new_lo + 1 > AG_SKETCH_MAX_BINS) {
        if (idx < s->lo) {
            /* Below a full window: the lowest bucket absorbs it. */
            return &s->bins[0];
        }
        /* Above: slide the window up, folding the low buckets into its new floor. */
        new_lo = new_hi - AG_SKETCH_MAX_BINS + 1;
    }
    n = (uint32_t)(new_hi - new_lo + 1);
    if (n > s->cap) {
        uint32_t cap = s->cap;
        while (cap < n) {
            cap *= 2;
        }
        if (cap > AG_SKETCH_MAX_BINS) {
            cap = AG_SKETCH_MAX_BINS;
        }
        s->bins = gv_realloc(s->bins, cap * sizeof(*s->bins));
        memset(s->bins + s->cap, 0, (cap - s->cap) * sizeof(*s->bins));
        s->cap = (uint16_t)cap;
    }
    if (new_lo < s->lo) {
        uint32_t shift = (uint32_t)(s->lo - new_lo);
        memmove(s->bins + shift, s->bins, s->nbins * sizeof(*s->bins));
        memset(s->bins, 0, shift * sizeof(*s->bins));
    }
    else if (new_lo > s->lo) {
        uint32_t fold = (uint32_t)(new_lo - s->lo);
        uint64_t sum = 0;
        uint32_t i;
        for (i = 0; i < fold && i < s->nbins; i++) {
            sum += s->bins[i];
        }
        if (fold < s->nbins) {
            memmove(s->bins, s->bins + fold, (s->nbins - fold) * sizeof(*s->bins));
            memset(s->bins + (s->nbins - fold), 0, fold * sizeof(*s->bins));
        }
        else {
            memset(s->bins, 0, s->cap * sizeof(*s->bins));
        }
        s->bins[0] += (uint32_t)sum;
    }
    s->lo = new_lo;
    s->nbins = (uint16_t)n;
    return &s->bins[idx - s->lo];
}

void ag_sketch_add(struct ag_sketch *s, uint64_t value_us)
{
    s->count++;
    if (value_us == 0) {
        s->zeros++;
        return;
    }
    (*slot_for(s, bucket_of(value_us)))++;
}

void ag_sketch_merge(struct ag_sketch *dst, const struct ag_sketch *src)
{
    uint32_t i;

    dst->zeros += src->zeros;
    dst->count += src->count;
    /* High buckets first, so a collapse keeps the window over the top. */
    for (i = src->nbins; i > 0; i--) {
        if (src->bins[i - 1]) {
            *slot_for(dst, src->lo + (int32_t)i - 1) += src->bins[i - 1];
        }
    }
}

double ag_sketch_quantile(const struct ag_sketch *s, double q)
{
    uint64_t rank, seen;
    uint32_t i;

    if (s->count == 0) {
        return 0;
    }
    if (q < 0) {
        q = 0;
    }
    if (q > 1) {
        q = 1;
    }
    /* Nearest rank: the smallest value with at least ceil(q * n) values <= it. */
    rank = (uint64_t)ceil(q * (double)s->count);
    if (rank == 0) {
        rank = 1;
    }
    seen = s->zeros;
    if (seen >= rank) {
        return 0;
    }
    for (i = 0; i < s->nbins; i++) {
        seen += s->bins[i];
        if (seen >= rank) {
            break;
        }
    }
    if (i == s->nbins) {
        i = s->nbins - 1;
    }
    /* Midpoint of (gamma^(k-1), gamma^k] in the relative sense. */
    return 2.0 * pow(AG_SKETCH_GAMMA, s->lo + (int32_t)i) / (AG_SKETCH_GAMMA + 1.0);
}

gv_rc ag_sketch_load(struct ag_sketch *s, int32_t lo, const uint32_t *counts, uint32_t nbins,
                     uint64_t zeros)
{
    uint32_t i;

    if (nbins > AG_SKETCH_MAX_BINS) {
        return GV_EINVAL;
    }
    ag_sketch_free(s);
    s->zeros = zeros;
    s->count = zeros;
    if (nbins == 0) {
        return GV_OK;
    }
    s->cap = (uint16_t)nbins;
    s->bins = gv_malloc(nbins * sizeof(*s->bins));
    memcpy(s->bins, counts, nbins * sizeof(*s->bins));
    s->lo = lo;
    s->nbins = (uint16_t)nbins;
    for (i = 0; i < nbins; i++) {
        s->count += counts[i];
    }
    return GV_OK;
}

uint64_t ag_sketch_mem(const struct ag_sketch *s)
{
    return (uint64_t)s->cap * sizeof(*s->bins);
}
