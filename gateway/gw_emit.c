/* gateway/gw_emit.c - the no-op emitter and the generic destroy */
/* SPDX-License-Identifier: Apache-2.0 */
#include "gateway/gw_emit.h"

#include <stddef.h>

#include "core/gv_mem.h"

/* Without an agent, records are dropped on purpose: nothing is pending and
 * nothing counts as lost. */
static gv_rc noop_emit(struct gw_emitter *em, const struct gv_record *rec,
                       const struct gv_record_packed *packed)
{
    return GV_OK;
}

static void noop_stats(struct gw_emitter *em, unsigned long long *dropped,
                       unsigned long long *pending)
{
    if (dropped) {
        *dropped = 0;
    }
    if (pending) {
        *pending = 0;
    }
}

static void noop_destroy(struct gw_emitter *em)
{
    gv_free(em);
}

static const struct gw_emitter_ops noop_ops = {
    .name = "noop",
    .emit = noop_emit,
    .stats = noop_stats,
    .destroy = noop_destroy,
};

gv_rc gw_emitter_create_noop(struct gw_emitter **out)
{
    struct gw_emitter *em = gv_calloc(1, sizeof(*em));

    em->ops = &noop_ops;
    *out = em;
    return GV_OK;
}

void gw_emitter_destroy(struct gw_emitter *em)
{
    if (em && em->ops && em->ops->destroy) {
        em->ops->destroy(em);
    }
}
