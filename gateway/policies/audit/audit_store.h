/* gateway/policies/audit/audit_store.h - audit segment format: seal, read, verify, retain */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GW_AUDIT_STORE_H
#define GW_AUDIT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/gv_buf.h"
#include "core/gv_hash.h"
#include "core/gv_rc.h"

/* On-disk layout under <state-dir>/audit/ (docs/internals/audit.md):
 *   seg-<10 digits>.jsonl   segments, numbered from 1 without gaps
 *   head.json               where the chain ends: {"segment","seq","hash","bytes"}
 *   anchor.json             the end of the newest segment deleted by retention
 *   lock                    flock(2) taken around every append, by every writer
 * Every line of a segment is one JSON object whose last member is
 * "hash": the SHA-256 (hex) of the line's bytes before `,"hash":"`. The first
 * line is the segment header {"kt_audit":1,"segment","created","first_seq","anchor"};
 * every record after it has "seq" (global, +1 per record) and "prev" (the hash
 * of the line before it; for the first record, the header's). A header's
 * "anchor" is the hash of the previous segment's last line, or 64 zeros. */

#define GW_AUDIT_HASH_HEX GV_SHA256_HEX_LEN
#define GW_AUDIT_SEAL_LEN (9 + GW_AUDIT_HASH_HEX + 2) /* ,"hash":"<64>"} */
#define GW_AUDIT_LINE_MAX (1024u * 1024u)             /* one record line, content included */
#define GW_AUDIT_SEGMENT_READ_MAX (1024u * 1024u * 1024u)

extern const char gw_audit_zero_hash[GW_AUDIT_HASH_HEX + 1];

/* The end of a chain: which segment, the last seq written (first_seq - 1 when
 * the segment has only its header), the last line's hash, the segment size. */
struct gw_audit_pos {
    uint64_t segment;
    uint64_t seq;
    char hash[GW_AUDIT_HASH_HEX + 1];
    uint64_t bytes;
};

/* line holds one JSON object text ending in '}' and nothing after it. Replaces
 * the final '}' with `,"hash":"<sha256 of the text before it>"}` plus '\n' and
 * copies the hash into hash_out. GV_EINVAL when line does not end in '}',
 * GV_E2BIG when the buffer's cap is hit. */
gv_rc gw_audit_line_seal(struct gv_buf *line, char hash_out[GW_AUDIT_HASH_HEX + 1]);
/* The same for the line that starts at `from` in buf, after lines already there. */
gv_rc gw_audit_line_seal_from(struct gv_buf *buf, size_t from,
                              char hash_out[GW_AUDIT_HASH_HEX + 1]);

/* Checks one line (without its '\n'): the seal suffix is well formed and the
 * hash matches the bytes before it. On GV_OK hash_out holds the line's hash.
 * GV_EPROTO when the suffix is malformed or the hash differs. */
gv_rc gw_audit_line_check(const char *line, size_t len, char hash_out[GW_AUDIT_HASH_HEX + 1]);

/* "<dir>/seg-0000000042.jsonl". GV_E2BIG when it does not fit. */
gv_rc gw_audit_segment_path(const char *dir, uint64_t segment, char *buf, size_t size);

/* Segment numbers found in dir, ascending. *out is owned by the caller (gv_free),
 * NULL when there are none. GV_EIO when dir cannot be read (GV_ENOTFOUND when it
 * does not exist). */
gv_rc gw_audit_segments_list(const char *dir, uint64_t **out, size_t *n);

/* Reads a whole file (at most max bytes) into buf. GV_ENOTFOUND, GV_EIO, GV_E2BIG. */
gv_rc gw_audit_read_file(const char *path, size_t max, struct gv_buf *buf);

/* Segment `segment` of dir read whole (at most GW_AUDIT_SEGMENT_READ_MAX bytes) into buf:
 * gw_audit_segment_path into path, then gw_audit_read_file, with their errors. */
gv_rc gw_audit_segment_read(const char *dir, uint64_t segment, char *path, size_t size,
                            struct gv_buf *buf);

/* head.json and anchor.json. read: GV_ENOTFOUND when absent, GV_EPROTO when
 * malformed. write: atomically (temporary file + rename); fsync when `sync`. */
gv_rc gw_audit_pos_read(const char *dir, const char *name, struct gw_audit_pos *pos);
gv_rc gw_audit_pos_write(const char *dir, const char *name, const struct gw_audit_pos *pos,
                         bool sync);

struct gv_record;
struct json_object;

/* The most the fixed part of a record's line (all but content and answer) can take
 * with a `prev` of prev_len bytes: every string byte escaped as \u00XX, every number
 * at its widest, the keys. gw_audit_record_json reserves it and writes unchecked. */
size_t gw_audit_record_bound(size_t prev_len);

/* Appends one unsealed record object for rec to out: seq, prev, time, request
 * id, run tags, principal, model, target, decision, status, per-policy outcomes
 * with PII counts, latency, tokens ("tokens_estimated": true when they are
 * kt's estimate), cost (cost_usd) and, when content is not NULL, "content":
 * content (the redacted messages; borrowed), and when answer (a JSON string,
 * borrowed) is not NULL, "answer": the answer text as the client got it, with
 * "answer_truncated": true when it was cut at its cap. Never prompt or answer
 * text otherwise. GV_E2BIG when out's cap is reached. Thread-safe. */
gv_rc gw_audit_record_json(const struct gv_record *rec, double cost_usd,
                           struct json_object *content, struct json_object *answer,
                           bool answer_truncated, uint64_t seq, const char *prev,
                           struct gv_buf *out);

/* Appends an unsealed segment header object to out. */
/* A string member of a parsed audit line, or "" when absent or not a string (the
 * readers of the log take a missing field as empty). Borrowed from o. */
const char *gw_audit_member_str(struct json_object *o, const char *key);

gv_rc gw_audit_header_json(uint64_t segment, uint64_t first_seq, const char *anchor,
                           uint64_t created_wall_us, struct gv_buf *out);

/* Result of gw_audit_verify. On a failure `problem` names the first bad record
 * as "<file>:<line>: record seq N: <what>" and `bad_seq` is its seq (0 when unknown). */
struct gw_audit_verify_result {
    uint64_t records;
    uint64_t segments;
    uint64_t first_seq;
    uint64_t last_seq;
    uint64_t bad_seq;
    char problem[512];
};

/* Walks every segment of dir in order and checks each line's own hash, the
 * chain of prev/anchor hashes, seq continuity, segment numbering, the
 * retention anchor and head.json (so deleted or rewritten trailing records
 * are caught too; a missing head.json is a failure, since it alone says where
 * the log ended). GV_OK when intact; GV_EPROTO when tampered or truncated
 * (res->problem says where); GV_ENOTFOUND when there is no audit log; GV_EIO
 * when a file cannot be read. Reads only; safe while a gateway writes. */
gv_rc gw_audit_verify(const char *dir, struct gw_audit_verify_result *res);

/* gw_audit_verify, and the chain must also pass through a head published
 * elsewhere: expect->seq and expect->hash as head.json held them (the hash of
 * record `seq`, or of the header of the segment that starts at seq + 1). The
 * log may have grown past it. GV_EPROTO names what differs: a log that ends
 * before the published seq, a different hash there (rewritten), or a head
 * older than what retention kept. */
gv_rc gw_audit_verify_expect(const char *dir, const struct gw_audit_pos *expect,
                             struct gw_audit_verify_result *res);

/* Calls fn for every record line (not headers) of segment `segment`, last line
 * first, with the line without its '\n' (not NUL-terminated). fn returns false
 * to stop; *stopped tells the caller. A torn final line is skipped. */
typedef bool (*gw_audit_line_fn)(void *arg, const char *line, size_t len);
gv_rc gw_audit_segment_each_reverse(const char *dir, uint64_t segment, gw_audit_line_fn fn,
                                    void *arg, bool *stopped);

/* Deletes whole segments, oldest first, whose file was last modified before
 * `cutoff_wall_s`, never `keep_from` or anything newer, and stops at the first
 * young one so what remains is contiguous. Before each deletion anchor.json is
 * rewritten with that segment's end, so the remaining chain still verifies.
 * *deleted counts the segments removed. */
gv_rc gw_audit_retention(const char *dir, int64_t cutoff_wall_s, uint64_t keep_from,
                         unsigned *deleted);

#endif
