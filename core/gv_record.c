/* core/gv_record.c - names for record enums, and copying a record */
/* SPDX-License-Identifier: Apache-2.0 */
#include "core/gv_record.h"

#include <stddef.h>
#include <string.h>

static const char *const decisions[] = {"allowed", "redacted", "blocked", "error"};
static const char *const actions[] = {"pass", "log", "flag", "redact", "block", "skipped", "error"};

const char *gv_decision_str(enum gv_decision d)
{
    if ((unsigned)d > GV_DECISION_ERROR) {
        return "unknown";
    }
    return decisions[d];
}

int gv_decision_parse(const char *s)
{
    int i;
    for (i = 0; i <= GV_DECISION_ERROR; i++) {
        if (strcmp(s, decisions[i]) == 0) {
            return i;
        }
    }
    return -1;
}

const char *gv_outcome_action_str(enum gv_outcome_action a)
{
    if ((unsigned)a > GV_OUTCOME_ERROR) {
        return "unknown";
    }
    return actions[a];
}

/* gv_record_copy_used copies around the policy slots: nothing may sit between them
 * and start_wall_us. */
_Static_assert(offsetof(struct gv_record, start_wall_us) ==
                   offsetof(struct gv_record, policies) +
                       sizeof(((struct gv_record *)0)->policies),
               "gv_record: start_wall_us must follow the policy slots");

void gv_record_copy_used(struct gv_record *dst, const struct gv_record *src)
{
    uint32_t n = src->npolicies < GV_RECORD_MAX_POLICIES ? src->npolicies : GV_RECORD_MAX_POLICIES;
    size_t tail = offsetof(struct gv_record, start_wall_us);

    memcpy(dst, src, offsetof(struct gv_record, policies));
    memcpy(dst->policies, src->policies, n * sizeof(src->policies[0]));
    memcpy((char *)dst + tail, (const char *)src + tail, sizeof(*src) - tail);
    dst->content = NULL;
}
