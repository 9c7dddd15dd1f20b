/* gateway/gw_jscan.h - find one top-level member of a JSON object without building a tree */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GW_JSCAN_H
#define GW_JSCAN_H

/* The relay needs one small member (`usage`, `choices`) of answers it otherwise
 * passes on byte for byte. Building a json-c tree of a whole answer only to read
 * `usage` was the largest item of kt's own per-request work; this walks the
 * text once, checking its structure on the way (one object, balanced brackets,
 * closed strings), and json-c then parses just
 * the member it found. It is a structural scanner, not a JSON parser: it does
 * not check number or literal syntax or escapes (json-c does, on what is used),
 * and it compares keys as raw bytes (a key spelled with escapes is not found). */

#include <stdbool.h>
#include <stddef.h>

enum gw_jscan {
    GW_JSCAN_FOUND = 0, /* v and vlen span the member's value (the last one if repeated) */
    GW_JSCAN_ABSENT,    /* a well-formed object without that key */
    GW_JSCAN_INVALID    /* not one JSON object (after white space), or cut short */
};

/* The index of the first byte at or after i in p[0..n) that is not JSON white space, or n. */
size_t gw_jscan_skip_ws(const char *p, size_t i, size_t n);

/* Looks for `key` among the members of the object in p[0..n). Pure. */
enum gw_jscan gw_jscan_member(const char *p, size_t n, const char *key, const char **v,
                              size_t *vlen);

/* One walk for several keys: for each keys[i] found, v[i]/vlen[i] span its value
 * (NULL/0 when absent). INVALID leaves every span NULL; FOUND when at least one
 * key was found. */
enum gw_jscan gw_jscan_members(const char *p, size_t n, const char *const *keys, size_t nkeys,
                               const char **v, size_t *vlen);
/* As gw_jscan_members, but the walk ends as soon as every key was found: the rest of
 * the object is not checked, so FOUND says only that the object began well. For members
 * near the start of a large text (a stream's id and model). */
enum gw_jscan gw_jscan_members_first(const char *p, size_t n, const char *const *keys, size_t nkeys,
                                     const char **v, size_t *vlen);

/* The member `key` of the object in p[0..n) when it is a plain non-negative
 * integer (digits only, at most 19): true and *out. false when absent, not
 * such a number, or the text is not an object (the caller may then ask json-c). */
bool gw_jscan_u64(const char *p, size_t n, const char *key, unsigned long long *out);

/* Several such members in one walk: true and out[i] for every keys[i] only when all
 * are there as plain integers (nkeys <= GW_JSCAN_U64S_MAX). */
#define GW_JSCAN_U64S_MAX 8
bool gw_jscan_u64s(const char *p, size_t n, const char *const *keys, size_t nkeys,
                   unsigned long long *out);
/* As gw_jscan_u64s, but the walk ends once every key is found (gw_jscan_members_first):
 * for an object another walk has already delimited, such as an answer's usage, whose
 * counts OpenAI puts first, ahead of the nested details. A key given twice counts its
 * first value. */
bool gw_jscan_u64s_first(const char *p, size_t n, const char *const *keys, size_t nkeys,
                         unsigned long long *out);

/* What the relay needs from a stream chunk it passes on untouched, from one walk over
 * its strings instead of a memmem per key. */
struct gw_jscan_chunk {
    /* The summed lengths, in bytes as written (escapes counted as they stand), of the
     * string values of every `content` and `arguments` key at any depth: the answer
     * text's size. A value that is not a string counts 0; one cut short counts what
     * is there. */
    size_t text_bytes;
    bool finish_reason; /* some `finish_reason` key has a string value */
    bool usage;         /* some `usage` key has a value other than null */
    /* The string values of `finish_reason` keys the walk passed whole: how many, and the
     * first without its quotes (as written), so a stream's finish reason needs no second
     * walk of its chunk. */
    unsigned nreasons;
    const char *reason;
    size_t reason_len;
};

/* What a stream's chunks repeat around the keys that count. OpenAI sends the same id,
 * object, created, model, system_fingerprint and choice index before each delta, and the
 * same logprobs, finish_reason and usage (all null) after it, so most of each walk is over
 * bytes the last chunk had too. Kept per stream (zero it to start). */
#define GW_JSCAN_HEAD_MAX 320
#define GW_JSCAN_TAIL_MAX 128
#define GW_JSCAN_HEAD_KEYS 24
struct gw_jscan_chunk_repeats {
    size_t head_len; /* 0: none learnt */
    size_t tail_len; /* 0: none learnt */
    /* Where the head's keys start (their opening quotes, ascending; the first ones and
     * the last): a chunk that shares only part of the head (the one that finishes, the
     * one with usage) starts its walk at the last of them inside what it shares. */
    size_t nkeys;
    unsigned short keys[GW_JSCAN_HEAD_KEYS];
    char head[GW_JSCAN_HEAD_MAX];
    char tail[GW_JSCAN_TAIL_MAX];
};

/* Fills *out from p[0..n) in one pass: every quoted run followed by a colon is a key
 * (a quote inside a string is escaped), at any depth. Any bytes are fine. With rep (may
 * be NULL) a chunk that begins with the learnt head starts its walk after it, one that
 * shares part of it starts at the last learnt key inside that part, and one whose rest is
 * the learnt tail stops there; a chunk that did not begin with the whole head teaches rep
 * its own. *out is the same as without rep. */
void gw_jscan_chunk_facts(const char *p, size_t n, struct gw_jscan_chunk *out,
                          struct gw_jscan_chunk_repeats *rep);

#endif
