/* core/gv_ring.c - a bounded lock-free ring: many producers, one consumer */
/* SPDX-License-Identifier: Apache-2.0 */
#include "core/gv_ring.h"

#include <stdint.h>

#include "core/gv_mem.h"

gv_rc gv_ring_init(struct gv_ring *r, size_t slots)
{
    size_t i;

    if (slots < 2 || (slots & (slots - 1)) != 0) {
        return GV_EINVAL;
    }
    r->turn = gv_malloc(slots * sizeof(*r->turn));
    for (i = 0; i < slots; i++) {
        atomic_init(&r->turn[i], i);
    }
    r->mask = slots - 1;
    atomic_init(&r->enq_pos, 0);
    atomic_init(&r->deq_pos, 0);
    return GV_OK;
}

void gv_ring_free(struct gv_ring *r)
{
    gv_free((void *)r->turn);
    r->turn = NULL;
}

bool gv_ring_claim(struct gv_ring *r, size_t *pos)
{
    size_t p = atomic_load_explicit(&r->enq_pos, memory_order_relaxed);

    for (;;) {
        size_t turn = atomic_load_explicit(&r->turn[p & r->mask], memory_order_acquire);
        intptr_t diff = (intptr_t)turn - (intptr_t)p;

        if (diff == 0) {
            /* The slot is free for claim p: take it unless another producer did. */
            if (atomic_compare_exchange_weak_explicit(&r->enq_pos, &p, p + 1, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                *pos = p;
                return true;
            }
        }
        else if (diff < 0) {
            return false; /* still holds claim p - slots, unconsumed: full */
        }
        else {
            p = atomic_load_explicit(&r->enq_pos, memory_order_relaxed);
        }
    }
}

void gv_ring_publish(struct gv_ring *r, size_t pos)
{
    atomic_store_explicit(&r->turn[pos & r->mask], pos + 1, memory_order_release);
}

bool gv_ring_front(struct gv_ring *r, size_t *pos)
{
    size_t p = atomic_load_explicit(&r->deq_pos, memory_order_relaxed);

    if (atomic_load_explicit(&r->turn[p & r->mask], memory_order_acquire) != p + 1) {
        return false;
    }
    *pos = p;
    return true;
}

void gv_ring_pop(struct gv_ring *r)
{
    size_t p = atomic_load_explicit(&r->deq_pos, memory_order_relaxed);

    /* Free for the claim one lap later. */
    atomic_store_explicit(&r->turn[p & r->mask], p + r->mask + 1, memory_order_release);
    atomic_store_explicit(&r->deq_pos, p + 1, memory_order_relaxed);
}

size_t gv_ring_used(struct gv_ring *r)
{
    size_t d = atomic_load_explicit(&r->deq_pos, memory_order_relaxed);
    size_t e = atomic_load_explicit(&r->enq_pos, memory_order_relaxed);

    return e - d;
}
