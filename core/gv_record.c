/* core/gv_record.c - names for record enums */
/* SPDX-License-Identifier: Apache-2.0 */
#include "core/gv_record.h"

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
