/* gateway/policies/pii/pii_scan.h - PII detector core: find entity spans, redact text */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef PII_SCAN_H
#define PII_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/gv_buf.h"
#include "core/gv_pii.h"
#include "core/gv_rc.h"

/* Every type the scanner knows, as a bit mask of (1u << enum gv_pii_type). */
#define PII_ALL_TYPES ((1u << GV_PII_NTYPES) - 1u)
/* More spans than this in one text is GV_E2BIG (about one per 16 bytes of 1 MiB). */
#define PII_MAX_SPANS (64u * 1024u)

/* One finding: bytes [start, end) of the scanned text are an entity of `type`. */
struct pii_span {
    size_t start;
    size_t end;
    int type; /* enum gv_pii_type */
};

/* Caller-owned scratch for pii_scan, reused across texts to avoid allocations.
 * After pii_scan, spans[0..n) are the findings, sorted by start, never overlapping. */
struct pii_scan_buf {
    struct pii_span *spans;
    size_t n;
    size_t cap;
    void *words; /* tokenizer scratch for PERSON, wcap words of PII_SCAN_WORD_BYTES */
    size_t wcap;
};

/* The size of one tokenizer word in pii_scan_buf.words (for callers that cap it). */
#define PII_SCAN_WORD_BYTES 24u

/* Cannot fail; allocates nothing until the first scan. */
void pii_scan_buf_init(struct pii_scan_buf *b);
void pii_scan_buf_free(struct pii_scan_buf *b);

/* Find the entities of the types in `types` (bit mask) in text[0..len). Any byte
 * sequence is accepted (invalid UTF-8 is treated as non-letters). Replaces the
 * previous contents of b. GV_E2BIG when more than PII_MAX_SPANS were found (b
 * then holds the first PII_MAX_SPANS). Pure apart from b: thread-safe with one
 * b per thread. */
gv_rc pii_scan(const char *text, size_t len, uint32_t types, struct pii_scan_buf *b);

/* How each type is replaced: `<TYPE>` (replace), every letter and digit turned
 * into '*' (mask), or `<TYPE:16 hex digits>` from HMAC-SHA256 under key (hash). */
enum pii_op { PII_OP_REPLACE = 0, PII_OP_MASK, PII_OP_HASH };

struct pii_redact_opts {
    unsigned char op[GV_PII_NTYPES]; /* enum pii_op per type; zeroed = replace all */
    unsigned char key[32];           /* HMAC key for PII_OP_HASH */
};

/* Append text[0..len) to out with spans[0..n) (sorted, non-overlapping, inside
 * the text) rewritten per opts (NULL: replace all). GV_E2BIG when out's cap is
 * reached (out then holds a prefix). Thread-safe. */
gv_rc pii_redact(const char *text, size_t len, const struct pii_span *spans, size_t n,
                 const struct pii_redact_opts *opts, struct gv_buf *out);

/* Where a streamed text can be cut so that nothing after the cut can still
 * become part of an entity with more bytes, and nothing before it needs more:
 * the start of the trailing run of entity-like characters (digits with single
 * separators, an e-mail or URL being written, capitalised words). Returns a
 * value <= len; len when the text ends with a clear break. */
size_t pii_stream_cut(const char *text, size_t len);

/* Validators, exposed for tests and the bench. `digits` are ASCII digits only. */
bool pii_luhn_ok(const char *digits, size_t n);
/* `s` is a compact IBAN (letters and digits, no spaces, either case). Checks the
 * country's registered length and the ISO 7064 mod-97 check digits. */
bool pii_iban_ok(const char *s, size_t n);
/* US SSA rules: area not 000, 666 or 900-999; group not 00; serial not 0000. */
bool pii_ssn_ok(unsigned area, unsigned group, unsigned serial);
/* Textual IPv4 (dotted quad) / IPv6 per inet_pton, n < 64. */
bool pii_ipv4_ok(const char *s, size_t n);
bool pii_ipv6_ok(const char *s, size_t n);
/* NHS number mod-11 check over exactly 10 digits. */
bool pii_nhs_ok(const char *digits);

#endif
