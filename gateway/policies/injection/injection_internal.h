/* gateway/policies/injection/injection_internal.h - detector internals shared by its files */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef INJECTION_INTERNAL_H
#define INJECTION_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/gv_buf.h"
#include "gateway/policies/injection/injection.h"

struct injection_rule {
    const char *name;
    enum injection_family family;
    const char *pattern; /* matched against normalised (lowercase, folded) text */
    const char *anchors; /* space-separated words a match starts with; NULL: scan the text */
};

extern const struct injection_rule injection_rules[];
extern const size_t injection_nrules;

/* A PCRE2 general context whose allocations go through gv_mem, so running out of memory
 * aborts as elsewhere. Caller frees with pcre2_general_context_free; what was made with it
 * keeps the allocator. Any thread. */
pcre2_general_context *injection_pcre_context(void);

/* Anchor words: FNV-1a of the word -> bit mask of the rules it may start. */
#define INJECTION_TRIG_SLOTS 1024u
/* Anchor occurrences remembered per segment: at most one per word, so half
 * a segment bounds it. Beyond that (impossible) a rule scans the whole text. */
#define INJECTION_ANCHOR_MAX (INJECTION_SEGMENT_MAX / 2u + 1u)

struct injection_anchor {
    uint32_t off;  /* byte offset of the word in the normalised text */
    uint64_t mask; /* rules that may start there */
};

/* Where a match of a rule can begin, as PCRE2 worked it out when compiling
 * the pattern: the bytes a match can start with and the shortest text that
 * can match. A rule run over the whole text is skipped when the text holds
 * none of those bytes or is too short: pcre2_match would look for the same
 * start and fail, after its ~700 instructions of setup. */
struct injection_start {
    uint64_t first[4];     /* 256-bit set of first bytes; all ones when PCRE2 knows none */
    uint32_t min_len;      /* in bytes: the rules are compiled without PCRE2_UTF */
    uint32_t min_len_anch; /* the same for the anchored copy (0 when there is none) */
};

struct injection_model {
    const struct injection_weights *w; /* NULL: features only */
    pcre2_code **re;                   /* injection_nrules compiled rules */
    pcre2_code **re_a;                 /* the same, anchored (NULL for always-scan rules) */
    uint64_t always;                   /* rules without anchors: scan the whole text */
    uint64_t all;                      /* one bit per rule */
    uint64_t weighted;                 /* rules the weights give a positive weight */
    uint32_t trig_key[INJECTION_TRIG_SLOTS];
    uint64_t trig_mask[INJECTION_TRIG_SLOTS];
    uint64_t trig_bloom[64];          /* 4096-bit filter in front of the table */
    struct injection_start start[64]; /* per rule (at most 64, see build_triggers) */
};

/* The set of bytes in t[0..n), as 256 bits. */
void injection_byte_set(const unsigned char *t, size_t n, uint64_t set[4]);
/* Whether a text of n bytes whose bytes are `set` can hold a match starting
 * the way `st` says; false means pcre2_match cannot match it. */
bool injection_start_possible(const struct injection_start *st, const uint64_t set[4], size_t n);

struct injection_scratch {
    struct gv_buf fold; /* stage A output */
    struct gv_buf norm; /* normalised text */
    struct gv_buf b64;  /* base64 run and its decoding */
    pcre2_match_data *md;
    bool *hits;                    /* injection_nrules */
    struct injection_anchor *anch; /* grows up to INJECTION_ANCHOR_MAX */
    size_t nanch, canch;
    uint64_t anch_over; /* rules with anchors beyond INJECTION_ANCHOR_MAX */
};

#endif
