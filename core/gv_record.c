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
                   offsetof(struct gv_record, policies) + sizeof(((struct gv_record *)0)->policies),
               "gv_record: start_wall_us must follow the policy slots");

/* The record's string arrays, in the struct's order. A request fills few of them
 * and those few are short: about 600 of the 2.6 KB a whole copy moved. The copies
 * cross threads (the audit writer's nodes, the emitter's ring), so every byte
 * written is a cache line the other core has to give up first. A field missing
 * here is still copied, whole. */
/* One line: clang-format 14 spreads the braced pair over four. */
/* clang-format off */
#define STR_FIELD(f) {offsetof(struct gv_record, f), sizeof(((struct gv_record *)0)->f)}
/* clang-format on */
static const struct {
    size_t off;
    size_t size;
} str_fields[] = {
    STR_FIELD(request_id),     STR_FIELD(run_id),          STR_FIELD(project),
    STR_FIELD(entity),         STR_FIELD(run_group),       STR_FIELD(principal),
    STR_FIELD(team),           STR_FIELD(model),           STR_FIELD(target),
    STR_FIELD(error_code),     STR_FIELD(roles),           STR_FIELD(tracestate),
    STR_FIELD(upstream_host),  STR_FIELD(response_model),  STR_FIELD(response_id),
    STR_FIELD(finish_reasons), STR_FIELD(audit_head_hash),
};

/* Bytes [from, to) as they are, less the policy slots past the used ones. */
static void copy_raw(char *dst, const char *src, size_t from, size_t to, size_t hole_from,
                     size_t hole_to)
{
    if (from < hole_from && to > hole_from) {
        memcpy(dst + from, src + from, hole_from - from);
        from = hole_to < to ? hole_to : to;
    }
    else if (from >= hole_from && from < hole_to) {
        from = hole_to < to ? hole_to : to;
    }
    if (to > from) {
        memcpy(dst + from, src + from, to - from);
    }
}

void gv_record_copy_used(struct gv_record *dst, const struct gv_record *src)
{
    uint32_t n = src->npolicies < GV_RECORD_MAX_POLICIES ? src->npolicies : GV_RECORD_MAX_POLICIES;
    size_t hole_from = offsetof(struct gv_record, policies) + n * sizeof(src->policies[0]);
    size_t hole_to = offsetof(struct gv_record, start_wall_us);
    const char *s = (const char *)src;
    char *d = (char *)dst;
    size_t at = 0, i;

    for (i = 0; i < sizeof(str_fields) / sizeof(str_fields[0]); i++) {
        size_t off = str_fields[i].off, len = strnlen(s + off, str_fields[i].size - 1);
        copy_raw(d, s, at, off, hole_from, hole_to);
        memcpy(d + off, s + off, len);
        d[off + len] = '\0';
        at = off + str_fields[i].size;
    }
    copy_raw(d, s, at, sizeof(*src), hole_from, hole_to);
    dst->content = NULL;
}
