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

/* The packed form skips the policy slots past the used ones: nothing may sit
 * between them and start_wall_us. */
_Static_assert(offsetof(struct gv_record, start_wall_us) ==
                   offsetof(struct gv_record, policies) + sizeof(((struct gv_record *)0)->policies),
               "gv_record: start_wall_us must follow the policy slots");

/* The record's string arrays, in the struct's order. A request fills few of them
 * and those few are short: about 600 of the 2.6 KB a whole copy moved. Each goes
 * into the packed form as a two-byte length and its bytes; everything between
 * them goes as it is. A field missing here is still carried, whole. */
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
#define NSTR (sizeof(str_fields) / sizeof(str_fields[0]))
/* The worst case: the count of used policies, a length per string (a string is at
 * most its array's size - 1 bytes), every other byte. */
_Static_assert(sizeof(uint32_t) + 2 * NSTR <= GV_RECORD_PACKED_MAX - sizeof(struct gv_record),
               "gv_record_packed: no room for the worst case");

/* The record's bytes [from, to) less the unused policy slots [hole_from, hole_to),
 * as spans: the part before the hole and the part after it. */
struct span2 {
    size_t a_from, a_len, b_from, b_len;
};

static struct span2 around_hole(size_t from, size_t to, size_t hole_from, size_t hole_to)
{
    struct span2 sp = {from, 0, 0, 0};

    if (from < hole_from) {
        sp.a_len = (to < hole_from ? to : hole_from) - from;
    }
    if (to > hole_to) {
        sp.b_from = from > hole_to ? from : hole_to;
        sp.b_len = to - sp.b_from;
    }
    return sp;
}

/* Where the unused policy slots of a record with n used ones begin. */
static size_t hole_start(uint32_t n)
{
    n = n < GV_RECORD_MAX_POLICIES ? n : GV_RECORD_MAX_POLICIES;
    return offsetof(struct gv_record, policies) + n * sizeof(((struct gv_record *)0)->policies[0]);
}

static size_t put_span(unsigned char *out, size_t pos, const char *rec, struct span2 sp)
{
    memcpy(out + pos, rec + sp.a_from, sp.a_len);
    memcpy(out + pos + sp.a_len, rec + sp.b_from, sp.b_len);
    return pos + sp.a_len + sp.b_len;
}

static size_t get_span(char *rec, const unsigned char *in, size_t pos, struct span2 sp)
{
    memcpy(rec + sp.a_from, in + pos, sp.a_len);
    memcpy(rec + sp.b_from, in + pos + sp.a_len, sp.b_len);
    return pos + sp.a_len + sp.b_len;
}

static void zero_span(char *rec, struct span2 sp)
{
    memset(rec + sp.a_from, 0, sp.a_len);
    memset(rec + sp.b_from, 0, sp.b_len);
}

void gv_record_pack(struct gv_record_packed *dst, const struct gv_record *src)
{
    const size_t hole_to = offsetof(struct gv_record, start_wall_us);
    const size_t hole_from = hole_start(src->npolicies);
    const char *s = (const char *)src;
    unsigned char *out = dst->bytes;
    uint32_t n = src->npolicies;
    size_t pos = sizeof(n), at = 0, i;

    memcpy(out, &n, sizeof(n)); /* first, so unpack knows where the hole is */
    for (i = 0; i < NSTR; i++) {
        size_t off = str_fields[i].off, len = strnlen(s + off, str_fields[i].size - 1);
        uint16_t len16 = (uint16_t)len;

        pos = put_span(out, pos, s, around_hole(at, off, hole_from, hole_to));
        memcpy(out + pos, &len16, sizeof(len16));
        memcpy(out + pos + sizeof(len16), s + off, len);
        pos += sizeof(len16) + len;
        at = off + str_fields[i].size;
    }
    pos = put_span(out, pos, s, around_hole(at, sizeof(*src), hole_from, hole_to));
    dst->len = (uint32_t)pos;
}

const struct gv_record_packed *gv_record_pack_scratch(const struct gv_record *src)
{
    static _Thread_local struct gv_record_packed scratch;

    gv_record_pack(&scratch, src);
    return &scratch;
}

void gv_record_unpack(struct gv_record *dst, const unsigned char *in)
{
    const size_t hole_to = offsetof(struct gv_record, start_wall_us);
    char *d = (char *)dst;
    uint32_t n;
    size_t hole_from, pos = sizeof(n), at = 0, i;

    memcpy(&n, in, sizeof(n));
    hole_from = hole_start(n);
    for (i = 0; i < NSTR; i++) {
        size_t off = str_fields[i].off;
        uint16_t len16;

        pos = get_span(d, in, pos, around_hole(at, off, hole_from, hole_to));
        memcpy(&len16, in + pos, sizeof(len16));
        memcpy(d + off, in + pos + sizeof(len16), len16);
        d[off + len16] = '\0';
        pos += sizeof(len16) + len16;
        at = off + str_fields[i].size;
    }
    (void)get_span(d, in, pos, around_hole(at, sizeof(*dst), hole_from, hole_to));
    dst->content = NULL;
}

void gv_record_clear(struct gv_record *rec)
{
    const size_t hole_from = hole_start(0), hole_to = offsetof(struct gv_record, start_wall_us);
    char *d = (char *)rec;
    size_t at = 0, i;

    for (i = 0; i < NSTR; i++) {
        zero_span(d, around_hole(at, str_fields[i].off, hole_from, hole_to));
        d[str_fields[i].off] = '\0';
        at = str_fields[i].off + str_fields[i].size;
    }
    zero_span(d, around_hole(at, sizeof(*rec), hole_from, hole_to));
}
