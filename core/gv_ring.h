/* core/gv_ring.h - a bounded lock-free ring: many producers, one consumer */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GV_RING_H
#define GV_RING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/gv_rc.h"

/* The ring orders slots; the caller keeps the payloads in its own array of the same size and
 * indexes it with gv_ring_index(). A producer claims a slot (one CAS), fills the payload and
 * publishes it; the consumer sees slots in claim order, reads the payload and pops. No call
 * blocks or allocates: a full ring says so and the producer decides (the gateway counts a
 * drop). Vyukov's bounded queue: slot i's turn counter says whether it is free for claim
 * number pos (turn == pos), filled (turn == pos + 1) or not yet consumed. */
struct gv_ring {
    _Atomic size_t *turn;
    size_t mask;            /* slots - 1 */
    _Atomic size_t enq_pos; /* next claim */
    _Atomic size_t deq_pos; /* next slot the consumer reads; written by the consumer only */
};

/* slots must be a power of two, at least 2. GV_EINVAL otherwise. */
gv_rc gv_ring_init(struct gv_ring *r, size_t slots);
void gv_ring_free(struct gv_ring *r);

/* Any thread. Claims the next slot: *pos identifies it until published. False when the ring
 * is full (the consumer is a whole ring behind). */
bool gv_ring_claim(struct gv_ring *r, size_t *pos);
/* Any thread: the payload of claim pos is written; the consumer may read it. */
void gv_ring_publish(struct gv_ring *r, size_t pos);

/* The consumer thread only. The oldest claim, when it is published: *pos, true. False when
 * nothing is published yet (a claimed, unpublished slot holds back the ones after it). */
bool gv_ring_front(struct gv_ring *r, size_t *pos);
/* The consumer thread only: frees the front slot for producers. */
void gv_ring_pop(struct gv_ring *r);

/* Where claim pos lives in the caller's payload array. */
static inline size_t gv_ring_index(const struct gv_ring *r, size_t pos)
{
    return pos & r->mask;
}

/* Any thread: claims made minus slots popped (a snapshot; exact when nothing moves). */
size_t gv_ring_used(struct gv_ring *r);

#endif
