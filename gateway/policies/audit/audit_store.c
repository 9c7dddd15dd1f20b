/* gateway/policies/audit/audit_store.c - audit segment format: seal, read, verify, retain */
/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE /* memmem */
#include "gateway/policies/audit/audit_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/gv_file.h"
#include "core/gv_hash.h"
#include "core/gv_mem.h"
#include "core/gv_record.h"
#include "core/gv_time.h"

const char gw_audit_zero_hash[GW_AUDIT_HASH_HEX + 1] =
    "0000000000000000000000000000000000000000000000000000000000000000";

static const char SEAL_PREFIX[] = ",\"hash\":\"";

gv_rc gw_audit_line_seal(struct gv_buf *line, char hash_out[GW_AUDIT_HASH_HEX + 1])
{
    return gw_audit_line_seal_from(line, 0, hash_out);
}

gv_rc gw_audit_line_seal_from(struct gv_buf *line, size_t from,
                              char hash_out[GW_AUDIT_HASH_HEX + 1])
{
    char hash[GW_AUDIT_HASH_HEX + 1];
    char seal[sizeof(SEAL_PREFIX) - 1 + GW_AUDIT_HASH_HEX + 3];
    size_t body;
    gv_rc rc;

    if (from > line->len || line->len - from < 2 || line->data[line->len - 1] != '}') {
        return GV_EINVAL;
    }
    body = line->len - 1;
    /* The hash covers the object text up to, not including, the seal: the
     * bytes a verifier can cut back to without parsing anything. */
    (void)gv_sha256_hex(line->data + from, body - from, hash);
    line->len = body;
    line->data[body] = '\0';
    /* One append, so the line gets the whole seal or none of it. */
    memcpy(seal, SEAL_PREFIX, sizeof(SEAL_PREFIX) - 1);
    memcpy(seal + sizeof(SEAL_PREFIX) - 1, hash, GW_AUDIT_HASH_HEX);
    memcpy(seal + sizeof(SEAL_PREFIX) - 1 + GW_AUDIT_HASH_HEX, "\"}\n", 3);
    rc = gv_buf_append(line, seal, sizeof(seal));
    if (rc) {
        /* Put the brace back so the caller's buffer is unchanged. */
        line->data[body] = '}';
        line->len = body + 1;
        return rc;
    }
    memcpy(hash_out, hash, sizeof(hash));
    return GV_OK;
}

static bool is_hex64(const char *p)
{
    size_t i;
    for (i = 0; i < GW_AUDIT_HASH_HEX; i++) {
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

gv_rc gw_audit_line_check(const char *line, size_t len, char hash_out[GW_AUDIT_HASH_HEX + 1])
{
    char want[GW_AUDIT_HASH_HEX + 1];
    size_t body;
    const char *seal;

    if (len <= GW_AUDIT_SEAL_LEN) {
        return GV_EPROTO;
    }
    body = len - GW_AUDIT_SEAL_LEN;
    seal = line + body;
    if (memcmp(seal, SEAL_PREFIX, sizeof(SEAL_PREFIX) - 1) != 0 ||
        !is_hex64(seal + sizeof(SEAL_PREFIX) - 1) || seal[len - body - 2] != '"' ||
        seal[len - body - 1] != '}') {
        return GV_EPROTO;
    }
    (void)gv_sha256_hex(line, body, want);
    if (memcmp(want, seal + sizeof(SEAL_PREFIX) - 1, GW_AUDIT_HASH_HEX) != 0) {
        return GV_EPROTO;
    }
    memcpy(hash_out, want, sizeof(want));
    return GV_OK;
}

gv_rc gw_audit_segment_path(const char *dir, uint64_t segment, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s/seg-%010" PRIu64 ".jsonl", dir, segment);
    return (n < 0 || (size_t)n >= size) ? GV_E2BIG : GV_OK;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return x < y ? -1 : (x > y ? 1 : 0);
}

/* "seg-0000000042.jsonl" -> 42; false for anything else. */
static bool parse_segment_name(const char *name, uint64_t *out)
{
    uint64_t v = 0;
    size_t i;

    if (strncmp(name, "seg-", 4) != 0 || strlen(name) != 4 + 10 + 6 ||
        strcmp(name + 14, ".jsonl") != 0) {
        return false;
    }
    for (i = 4; i < 14; i++) {
        if (name[i] < '0' || name[i] > '9') {
            return false;
        }
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    *out = v;
    return v > 0;
}

gv_rc gw_audit_segments_list(const char *dir, uint64_t **out, size_t *n)
{
    DIR *d;
    struct dirent *de;
    uint64_t *v = NULL;
    size_t len = 0, cap = 0;

    *out = NULL;
    *n = 0;
    d = opendir(dir);
    if (!d) {
        return errno == ENOENT ? GV_ENOTFOUND : GV_EIO;
    }
    while ((de = readdir(d)) != NULL) {
        uint64_t seg;
        if (!parse_segment_name(de->d_name, &seg)) {
            continue;
        }
        if (len == cap) {
            cap = cap ? cap * 2 : 16;
            v = gv_realloc(v, cap * sizeof(*v));
        }
        v[len++] = seg;
    }
    closedir(d);
    if (len) {
        qsort(v, len, sizeof(*v), cmp_u64);
    }
    *out = v;
    *n = len;
    return GV_OK;
}

gv_rc gw_audit_read_file(const char *path, size_t max, struct gv_buf *buf)
{
    char chunk[65536];
    gv_rc rc = GV_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        return errno == ENOENT ? GV_ENOTFOUND : GV_EIO;
    }
    gv_buf_init(buf, max);
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof(chunk));
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            rc = GV_EIO;
            goto out;
        }
        if (r == 0) {
            break;
        }
        rc = gv_buf_append(buf, chunk, (size_t)r);
        if (rc) {
            goto out;
        }
    }
    /* An empty file still yields a valid empty string. */
    rc = gv_buf_append(buf, "", 0);
out:
    close(fd);
    if (rc) {
        gv_buf_free(buf);
    }
    return rc;
}

static bool get_u64(struct json_object *o, const char *key, uint64_t *out)
{
    struct json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int)) {
        return false;
    }
    *out = (uint64_t)json_object_get_int64(v);
    return json_object_get_int64(v) >= 0;
}

static bool get_hash(struct json_object *o, const char *key, char out[GW_AUDIT_HASH_HEX + 1])
{
    struct json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string) ||
        json_object_get_string_len(v) != GW_AUDIT_HASH_HEX ||
        !is_hex64(json_object_get_string(v))) {
        return false;
    }
    memcpy(out, json_object_get_string(v), GW_AUDIT_HASH_HEX + 1);
    return true;
}

static struct json_object *parse_obj(const char *p, size_t n)
{
    struct json_tokener *tok = json_tokener_new();
    struct json_object *o;

    o = json_tokener_parse_ex(tok, p, (int)n);
    if (o && (json_tokener_get_error(tok) != json_tokener_success || tok->char_offset != (int)n ||
              !json_object_is_type(o, json_type_object))) {
        json_object_put(o);
        o = NULL;
    }
    json_tokener_free(tok);
    return o;
}

gv_rc gw_audit_pos_read(const char *dir, const char *name, struct gw_audit_pos *pos)
{
    char path[4096];
    struct gv_buf b;
    struct json_object *o = NULL;
    gv_rc rc;
    int n = snprintf(path, sizeof(path), "%s/%s", dir, name);

    if (n < 0 || (size_t)n >= sizeof(path)) {
        return GV_E2BIG;
    }
    rc = gw_audit_read_file(path, 4096, &b);
    if (rc) {
        return rc == GV_E2BIG ? GV_EPROTO : rc;
    }
    o = parse_obj(b.data, b.len && b.data[b.len - 1] == '\n' ? b.len - 1 : b.len);
    memset(pos, 0, sizeof(*pos));
    if (!o || !get_u64(o, "segment", &pos->segment) || !get_u64(o, "seq", &pos->seq) ||
        !get_hash(o, "hash", pos->hash) || !get_u64(o, "bytes", &pos->bytes)) {
        rc = GV_EPROTO;
    }
    json_object_put(o);
    gv_buf_free(&b);
    return rc;
}

gv_rc gw_audit_pos_write(const char *dir, const char *name, const struct gw_audit_pos *pos,
                         bool sync)
{
    char path[4096], tmp[4096], text[256];
    int fd = -1, n, t, m;
    gv_rc rc = GV_OK;

    n = snprintf(path, sizeof(path), "%s/%s", dir, name);
    t = snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
    m = snprintf(text, sizeof(text),
                 "{\"segment\":%" PRIu64 ",\"seq\":%" PRIu64 ",\"hash\":\"%s\",\"bytes\":%" PRIu64
                 "}\n",
                 pos->segment, pos->seq, pos->hash, pos->bytes);
    if (n < 0 || (size_t)n >= sizeof(path) || t < 0 || (size_t)t >= sizeof(tmp) || m < 0 ||
        (size_t)m >= sizeof(text)) {
        return GV_E2BIG;
    }
    /* 0600: the head names how far the log goes; nobody else needs to read it. */
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = GV_EIO;
        goto out;
    }
    rc = gv_file_write_all(fd, text, (size_t)m);
    if (rc == GV_OK && sync && fsync(fd) != 0) {
        rc = GV_EIO;
    }
    if (close(fd) != 0 && rc == GV_OK) {
        rc = GV_EIO;
    }
    fd = -1;
    if (rc == GV_OK && rename(tmp, path) != 0) {
        rc = GV_EIO;
    }
out:
    if (rc) {
        unlink(tmp);
    }
    return rc;
}

/* ---- verification ---- */

struct walk {
    const char *dir;
    struct gw_audit_verify_result *res;
    char prev[GW_AUDIT_HASH_HEX + 1];  /* hash of the last good line so far */
    uint64_t next_seq;                 /* seq the next record must carry */
    bool have_prev;                    /* false before the first segment */
    const struct gw_audit_pos *expect; /* a published head to find in the chain, or NULL */
    bool expect_found;                 /* a line at expect->seq carries expect->hash */
};

/* The chain stands at (seq, hash) after a good line (or at the retention
 * anchor). A head names either a record or, right after a rotation, the new
 * segment's header, which follows the record it carries the seq of. */
static void expect_check(struct walk *w, uint64_t seq, const char *hash)
{
    if (w->expect && seq == w->expect->seq && strcmp(hash, w->expect->hash) == 0) {
        w->expect_found = true;
    }
}

static gv_rc fail(struct walk *w, const char *file, size_t lineno, uint64_t seq, const char *fmt,
                  const char *what)
{
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    w->res->bad_seq = seq;
    if (seq) {
        snprintf(w->res->problem, sizeof(w->res->problem), "%s:%zu: record seq %" PRIu64 ": %s",
                 base, lineno, seq, what ? what : fmt);
    }
    else {
        snprintf(w->res->problem, sizeof(w->res->problem), "%s:%zu: %s", base, lineno,
                 what ? what : fmt);
    }
    return GV_EPROTO;
}

/* Seq a broken line claims, for naming it; 0 when unreadable. */
static uint64_t claimed_seq(const char *p, size_t n)
{
    struct json_object *o;
    uint64_t seq = 0;
    const char *key = "\"seq\":";
    const char *hit = memmem(p, n, key, strlen(key));

    /* Try a real parse first; fall back to the key text for a line whose
     * JSON an edit broke, so the report still names a record. */
    o = parse_obj(p, n);
    if (o) {
        if (!get_u64(o, "seq", &seq)) {
            seq = 0;
        }
        json_object_put(o);
        return seq;
    }
    if (hit) {
        const char *q = hit + strlen(key);
        while (q < p + n && *q >= '0' && *q <= '9') {
            seq = seq * 10 + (uint64_t)(*q - '0');
            q++;
        }
    }
    return seq;
}

static gv_rc verify_segment(struct walk *w, uint64_t segment, const struct gw_audit_pos *anchor,
                            struct gw_audit_pos *end)
{
    char path[4096], hash[GW_AUDIT_HASH_HEX + 1];
    struct gv_buf b;
    struct json_object *o = NULL;
    size_t off = 0, lineno = 0;
    gv_rc rc;

    rc = gw_audit_segment_path(w->dir, segment, path, sizeof(path));
    if (rc) {
        return rc;
    }
    rc = gw_audit_read_file(path, GW_AUDIT_SEGMENT_READ_MAX, &b);
    if (rc) {
        snprintf(w->res->problem, sizeof(w->res->problem), "%.400s: cannot read (%s)", path,
                 gv_rc_str(rc));
        return rc == GV_E2BIG ? GV_EIO : rc;
    }
    while (off < b.len) {
        const char *line = b.data + off;
        const char *nl = memchr(line, '\n', b.len - off);
        size_t len;
        uint64_t seq = 0, v = 0;
        char prev[GW_AUDIT_HASH_HEX + 1];

        lineno++;
        if (!nl) {
            rc = fail(w, path, lineno, w->next_seq, NULL,
                      "truncated: the last line is incomplete (no newline)");
            goto out;
        }
        len = (size_t)(nl - line);
        off += len + 1;
        if (gw_audit_line_check(line, len, hash) != GV_OK) {
            rc = fail(w, path, lineno, claimed_seq(line, len), NULL,
                      "edited: the line's bytes do not match its hash");
            goto out;
        }
        o = parse_obj(line, len);
        if (!o) {
            rc = fail(w, path, lineno, claimed_seq(line, len), NULL, "not a JSON object");
            goto out;
        }
        if (lineno == 1) {
            /* Segment header: anchors this segment to the end of the previous. */
            if (!get_u64(o, "kt_audit", &v) || !get_u64(o, "segment", &v) || v != segment ||
                !get_u64(o, "first_seq", &seq) || !get_hash(o, "anchor", prev)) {
                rc = fail(w, path, lineno, 0, NULL, "bad segment header");
                goto out;
            }
            if (!w->have_prev) {
                const char *want = anchor ? anchor->hash : gw_audit_zero_hash;
                uint64_t want_seg = anchor ? anchor->segment + 1 : 1;
                if (segment != want_seg) {
                    rc = fail(w, path, lineno, 0, NULL,
                              anchor ? "segments before this one are missing (the retention "
                                       "anchor names an older end)"
                                     : "the first segment is missing (no retention anchor)");
                    goto out;
                }
                if (strcmp(prev, want) != 0 || (anchor && seq != anchor->seq + 1)) {
                    rc = fail(w, path, lineno, 0, NULL,
                              "segment header does not match the retention anchor");
                    goto out;
                }
                w->next_seq = seq;
                w->res->first_seq = seq;
            }
            else if (strcmp(prev, w->prev) != 0 || seq != w->next_seq) {
                rc = fail(w, path, lineno, 0, NULL,
                          "segment header does not chain to the previous segment's last record");
                goto out;
            }
        }
        else {
            if (!get_u64(o, "seq", &seq) || !get_hash(o, "prev", prev)) {
                rc = fail(w, path, lineno, claimed_seq(line, len), NULL,
                          "missing seq or prev fields");
                goto out;
            }
            if (strcmp(prev, w->prev) != 0) {
                rc = fail(w, path, lineno, seq, NULL,
                          "does not chain to the line before it (a record was deleted, "
                          "inserted or reordered here)");
                goto out;
            }
            if (seq != w->next_seq) {
                rc = fail(w, path, lineno, seq, NULL, "out of sequence");
                goto out;
            }
            w->next_seq++;
            w->res->records++;
            w->res->last_seq = seq;
        }
        json_object_put(o);
        o = NULL;
        memcpy(w->prev, hash, sizeof(hash));
        w->have_prev = true;
        expect_check(w, w->next_seq - 1, hash);
    }
    if (lineno == 0) {
        rc = fail(w, path, 1, 0, NULL, "empty segment (no header)");
        goto out;
    }
    end->segment = segment;
    end->seq = w->next_seq - 1;
    memcpy(end->hash, w->prev, sizeof(end->hash));
    end->bytes = b.len;
    w->res->segments++;
out:
    json_object_put(o);
    gv_buf_free(&b);
    return rc;
}

static gv_rc verify(const char *dir, const struct gw_audit_pos *expect,
                    struct gw_audit_verify_result *res)
{
    struct walk w;
    struct gw_audit_pos anchor, head, end;
    bool have_anchor = false, have_head = false;
    uint64_t *segs = NULL;
    size_t n = 0, i;
    gv_rc rc;

    memset(res, 0, sizeof(*res));
    memset(&w, 0, sizeof(w));
    memset(&end, 0, sizeof(end));
    w.dir = dir;
    w.res = res;
    w.expect = expect;
    rc = gw_audit_segments_list(dir, &segs, &n);
    if (rc) {
        snprintf(res->problem, sizeof(res->problem), "%s: no audit log (%s)", dir, gv_rc_str(rc));
        goto out;
    }
    rc = gw_audit_pos_read(dir, "anchor.json", &anchor);
    if (rc == GV_OK) {
        have_anchor = true;
    }
    else if (rc != GV_ENOTFOUND) {
        snprintf(res->problem, sizeof(res->problem), "anchor.json: unreadable (%s)", gv_rc_str(rc));
        rc = GV_EPROTO;
        goto out;
    }
    rc = gw_audit_pos_read(dir, "head.json", &head);
    if (rc == GV_OK) {
        have_head = true;
    }
    else if (rc != GV_ENOTFOUND) {
        snprintf(res->problem, sizeof(res->problem), "head.json: unreadable (%s)", gv_rc_str(rc));
        rc = GV_EPROTO;
        goto out;
    }
    if (n == 0 && !have_anchor) {
        if (have_head) {
            snprintf(res->problem, sizeof(res->problem),
                     "every segment is missing (head.json names segment %" PRIu64 ")",
                     head.segment);
            rc = GV_EPROTO;
        }
        else {
            snprintf(res->problem, sizeof(res->problem), "%s: no audit segments", dir);
            rc = GV_ENOTFOUND;
        }
        goto out;
    }
    /* Segments the anchor already covers are left over from a retention run
     * that stopped between writing the anchor and deleting them. */
    if (have_anchor) {
        size_t k = 0;
        for (i = 0; i < n; i++) {
            if (segs[i] > anchor.segment) {
                segs[k++] = segs[i];
            }
        }
        n = k;
        expect_check(&w, anchor.seq, anchor.hash);
    }
    for (i = 0; i < n; i++) {
        if (i > 0 && segs[i] != segs[i - 1] + 1) {
            snprintf(res->problem, sizeof(res->problem),
                     "segment %" PRIu64 " is missing (found %" PRIu64 " then %" PRIu64 ")",
                     segs[i - 1] + 1, segs[i - 1], segs[i]);
            res->bad_seq = w.next_seq;
            rc = GV_EPROTO;
            goto out;
        }
        rc = verify_segment(&w, segs[i], have_anchor ? &anchor : NULL, &end);
        if (rc) {
            goto out;
        }
    }
    /* head.json is written after every append: a log that ends before it lost
     * records at the end; one whose line at head's seq differs was rewritten.
     * A log may run ahead of head after a crash between append and head write. */
    if (have_head) {
        if (head.segment > end.segment || (head.segment == end.segment && head.seq > end.seq)) {
            snprintf(res->problem, sizeof(res->problem),
                     "truncated: records up to seq %" PRIu64 " (segment %" PRIu64
                     ") were written but the log ends at seq %" PRIu64,
                     head.seq, head.segment, end.seq);
            res->bad_seq = end.seq + 1;
            rc = GV_EPROTO;
            goto out;
        }
        if (head.segment == end.segment && head.seq == end.seq &&
            strcmp(head.hash, end.hash) != 0) {
            snprintf(res->problem, sizeof(res->problem),
                     "record seq %" PRIu64 " (the last) does not match head.json: rewritten",
                     end.seq);
            res->bad_seq = end.seq;
            rc = GV_EPROTO;
            goto out;
        }
    }
    else {
        /* Without a head nothing says where the log ended: deleting the newest
         * records together with head.json would otherwise go unnoticed. */
        snprintf(res->problem, sizeof(res->problem),
                 "head.json is missing: the end of the log cannot be confirmed (records at the "
                 "end may have been deleted); check it against a published head with "
                 "--expect-head SEQ:HASH");
        res->bad_seq = end.seq + 1;
        rc = GV_EPROTO;
        goto out;
    }
    if (expect && !w.expect_found) {
        if (expect->seq > end.seq) {
            snprintf(res->problem, sizeof(res->problem),
                     "truncated: the published head is seq %" PRIu64
                     " but the log ends at seq %" PRIu64,
                     expect->seq, end.seq);
            res->bad_seq = end.seq + 1;
        }
        else if (have_anchor && expect->seq < anchor.seq) {
            snprintf(res->problem, sizeof(res->problem),
                     "the published head (seq %" PRIu64
                     ") is older than what retention kept (from seq %" PRIu64
                     "): it cannot be checked",
                     expect->seq, anchor.seq + 1);
            res->bad_seq = expect->seq;
        }
        else {
            snprintf(res->problem, sizeof(res->problem),
                     "record seq %" PRIu64
                     " does not match the published head's hash: the log was rewritten",
                     expect->seq);
            res->bad_seq = expect->seq;
        }
        rc = GV_EPROTO;
        goto out;
    }
    rc = GV_OK;
out:
    gv_free(segs);
    return rc;
}

gv_rc gw_audit_verify(const char *dir, struct gw_audit_verify_result *res)
{
    return verify(dir, NULL, res);
}

gv_rc gw_audit_verify_expect(const char *dir, const struct gw_audit_pos *expect,
                             struct gw_audit_verify_result *res)
{
    return verify(dir, expect, res);
}

gv_rc gw_audit_segment_read(const char *dir, uint64_t segment, char *path, size_t size,
                            struct gv_buf *buf)
{
    gv_rc rc = gw_audit_segment_path(dir, segment, path, size);

    if (rc) {
        return rc;
    }
    return gw_audit_read_file(path, GW_AUDIT_SEGMENT_READ_MAX, buf);
}

gv_rc gw_audit_segment_each_reverse(const char *dir, uint64_t segment, gw_audit_line_fn fn,
                                    void *arg, bool *stopped)
{
    char path[4096];
    struct gv_buf b;
    size_t end;
    gv_rc rc;

    *stopped = false;
    rc = gw_audit_segment_read(dir, segment, path, sizeof(path), &b);
    if (rc) {
        return rc;
    }
    /* Ignore a torn final line (no newline yet): a writer may be mid-append. */
    end = b.len;
    while (end > 0 && b.data[end - 1] != '\n') {
        end--;
    }
    while (end > 0) {
        size_t start = end - 1; /* at the '\n' ending this line */
        while (start > 0 && b.data[start - 1] != '\n') {
            start--;
        }
        if (start == 0) {
            break; /* the header */
        }
        if (!fn(arg, b.data + start, end - 1 - start)) {
            *stopped = true;
            break;
        }
        end = start;
    }
    gv_buf_free(&b);
    return GV_OK;
}

/* The end of a closed segment: its last line's seq and hash. */
static gv_rc segment_end(const char *dir, uint64_t segment, struct gw_audit_pos *pos)
{
    char path[4096];
    struct gv_buf b;
    struct json_object *o = NULL;
    size_t end, start;
    uint64_t v;
    gv_rc rc;

    rc = gw_audit_segment_read(dir, segment, path, sizeof(path), &b);
    if (rc) {
        return rc;
    }
    end = b.len;
    if (end == 0 || b.data[end - 1] != '\n') {
        rc = GV_EPROTO;
        goto out;
    }
    start = end - 1;
    while (start > 0 && b.data[start - 1] != '\n') {
        start--;
    }
    o = parse_obj(b.data + start, end - 1 - start);
    if (!o || gw_audit_line_check(b.data + start, end - 1 - start, pos->hash) != GV_OK) {
        rc = GV_EPROTO;
        goto out;
    }
    if (start == 0) {
        if (!get_u64(o, "first_seq", &v) || v == 0) {
            rc = GV_EPROTO;
            goto out;
        }
        pos->seq = v - 1;
    }
    else if (!get_u64(o, "seq", &pos->seq)) {
        rc = GV_EPROTO;
        goto out;
    }
    pos->segment = segment;
    pos->bytes = b.len;
out:
    json_object_put(o);
    gv_buf_free(&b);
    return rc;
}

gv_rc gw_audit_retention(const char *dir, int64_t cutoff_wall_s, uint64_t keep_from,
                         unsigned *deleted)
{
    uint64_t *segs = NULL;
    size_t n = 0, i;
    gv_rc rc;

    *deleted = 0;
    rc = gw_audit_segments_list(dir, &segs, &n);
    if (rc) {
        return rc;
    }
    for (i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        struct gw_audit_pos end;

        if (segs[i] >= keep_from) {
            break;
        }
        rc = gw_audit_segment_path(dir, segs[i], path, sizeof(path));
        if (rc) {
            goto out;
        }
        if (stat(path, &st) != 0) {
            rc = GV_EIO;
            goto out;
        }
        if ((int64_t)st.st_mtime >= cutoff_wall_s) {
            break;
        }
        /* Anchor first, then delete: a crash in between leaves an anchor that
         * names a segment still present, which verify accepts as the start. */
        rc = segment_end(dir, segs[i], &end);
        if (rc) {
            goto out;
        }
        rc = gw_audit_pos_write(dir, "anchor.json", &end, true);
        if (rc) {
            goto out;
        }
        if (unlink(path) != 0) {
            rc = GV_EIO;
            goto out;
        }
        (*deleted)++;
    }
out:
    gv_free(segs);
    return rc;
}

/* ---- record and header objects ---- */

/* Records are written straight into the line buffer with core's JSON string
 * escaper rather than through json-c objects: the writer thread shares two
 * cores with the request workers, and a dozen small allocations per record
 * were most of its cost. Readers parse the lines with json-c. */

struct jw {
    struct gv_buf *b;
    gv_rc rc;
    bool first;
};

static void jw_key(struct jw *w, const char *k)
{
    /* Keys are constants: plain appends, no printf. */
    if (w->rc == GV_OK) {
        w->rc = w->first ? gv_buf_append(w->b, "\"", 1) : gv_buf_append(w->b, ",\"", 2);
    }
    if (w->rc == GV_OK) {
        w->rc = gv_buf_append_str(w->b, k);
    }
    if (w->rc == GV_OK) {
        w->rc = gv_buf_append(w->b, "\":", 2);
    }
    w->first = false;
}

static void jw_strn(struct jw *w, const char *k, const char *v, size_t n)
{
    jw_key(w, k);
    if (w->rc == GV_OK) {
        w->rc = gv_buf_append_json_str(w->b, v, n);
    }
}

static void jw_str(struct jw *w, const char *k, const char *v)
{
    jw_strn(w, k, v, strlen(v));
}

static void jw_u64(struct jw *w, const char *k, uint64_t v)
{
    jw_key(w, k);
    if (w->rc == GV_OK) {
        w->rc = gv_buf_append_u64(w->b, (unsigned long long)v);
    }
}

static void jw_raw(struct jw *w, const char *text)
{
    if (w->rc == GV_OK) {
        w->rc = gv_buf_append_str(w->b, text);
    }
}

const char *gw_audit_member_str(struct json_object *o, const char *key)
{
    struct json_object *v;

    if (json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)) {
        return json_object_get_string(v);
    }
    return "";
}

/* The record's fixed part is written through a pointer into room reserved for its
 * worst case: the writer thread seals every request's line, and checking room,
 * writing a NUL and measuring the key for each of ~60 pieces was most of its work. */
#define PUT_LIT(o, lit) (memcpy((o), (lit), sizeof(lit) - 1), (o) += sizeof(lit) - 1)
/* A record field as a JSON string. Fields are fixed arrays filled by other threads'
 * code: never trust a NUL. */
#define PUT_ARRAY_STR(o, f) ((o) = gv_json_put_str((o), (f), strnlen((f), sizeof(f))))
/* A key and its field; keys are literals, so the key, its quotes and the colon are
 * one copy. */
#define PUT_FIELD(o, key, f) (PUT_LIT(o, ",\"" key "\":"), PUT_ARRAY_STR(o, f))

static char *put_u64(char *o, uint64_t v)
{
    return o + gv_fmt_u64((unsigned long long)v, o);
}

/* A double with a fixed number of decimals: the line's bytes must not depend on a
 * printf's shortest-representation choices. Non-finite values become 0. */
static char *put_fixed(char *o, double v, int decimals)
{
    return o + gv_fmt_fixed(v, decimals, o);
}

static char *put_cstr(char *o, const char *s)
{
    return gv_json_put_str(o, s, strlen(s));
}

/* {"NAME":count,...} over the non-zero counts. */
static char *put_pii(char *o, const uint32_t *counts)
{
    bool first = true;
    int t;

    *o++ = '{';
    for (t = 0; t < GV_PII_NTYPES; t++) {
        if (counts[t]) {
            if (!first) {
                *o++ = ',';
            }
            first = false;
            o = put_cstr(o, gv_pii_name(t));
            *o++ = ':';
            o = put_u64(o, counts[t]);
        }
    }
    *o++ = '}';
    return o;
}

size_t gw_audit_record_bound(size_t prev_len)
{
    /* A pii entry: the name (under 32 bytes, checked by the unit test) escaped at
     * worst, a colon, a count and a comma. */
    size_t pii = GV_PII_NTYPES * (6u * 32u + 32u) + 8u;

    return 6u * sizeof(struct gv_record) + 6u * prev_len + 1024u +
           (GV_RECORD_MAX_POLICIES + 1u) * (256u + pii + GV_FMT_FIXED_MAX) + 6u * GV_FMT_FIXED_MAX;
}

gv_rc gw_audit_record_json(const struct gv_record *rec, double cost_usd,
                           struct json_object *content, struct json_object *answer,
                           bool answer_truncated, uint64_t seq, const char *prev,
                           struct gv_buf *out)
{
    struct jw w = {out, GV_OK, false};
    uint32_t totals[GV_PII_NTYPES];
    size_t mark = out->len, prev_len = strlen(prev);
    char ts[40];
    uint32_t i, npol;
    int t;
    char *o;

    w.rc = gv_buf_reserve(out, gw_audit_record_bound(prev_len));
    if (w.rc) {
        return w.rc;
    }
    o = out->data + out->len;
    memset(totals, 0, sizeof(totals));
    gv_time_rfc3339(rec->start_wall_us, ts, sizeof(ts));
    PUT_LIT(o, "{\"seq\":");
    o = put_u64(o, seq);
    PUT_LIT(o, ",\"prev\":");
    o = gv_json_put_str(o, prev, prev_len);
    PUT_LIT(o, ",\"ts\":");
    o = put_cstr(o, ts);
    PUT_LIT(o, ",\"ts_us\":");
    o = put_u64(o, rec->start_wall_us);
    PUT_FIELD(o, "request_id", rec->request_id);
    PUT_FIELD(o, "run_id", rec->run_id);
    PUT_FIELD(o, "project", rec->project);
    PUT_FIELD(o, "entity", rec->entity);
    PUT_FIELD(o, "run_group", rec->run_group);
    PUT_FIELD(o, "principal", rec->principal);
    PUT_FIELD(o, "team", rec->team);
    PUT_FIELD(o, "model", rec->model);
    PUT_FIELD(o, "target", rec->target);
    PUT_LIT(o, ",\"decision\":");
    o = put_cstr(o, gv_decision_str(rec->decision));
    PUT_LIT(o, ",\"status\":");
    o = put_u64(o, rec->http_status > 0 ? (uint64_t)rec->http_status : 0);
    PUT_FIELD(o, "error_code", rec->error_code);
    PUT_LIT(o, ",\"policies\":[");
    npol = rec->npolicies < GV_RECORD_MAX_POLICIES ? rec->npolicies : GV_RECORD_MAX_POLICIES;
    for (i = 0; i < npol; i++) {
        const struct gv_policy_outcome *po = &rec->policies[i];

        if (i > 0) {
            *o++ = ',';
        }
        PUT_LIT(o, "{\"name\":");
        PUT_ARRAY_STR(o, po->name);
        PUT_LIT(o, ",\"action\":");
        o = put_cstr(o, gv_outcome_action_str(po->action));
        PUT_LIT(o, ",\"score\":");
        o = put_fixed(o, po->score, 4);
        PUT_LIT(o, ",\"pii\":");
        o = put_pii(o, po->pii_counts);
        *o++ = '}';
        for (t = 0; t < GV_PII_NTYPES; t++) {
            totals[t] += po->pii_counts[t];
        }
    }
    PUT_LIT(o, "],\"pii\":");
    o = put_pii(o, totals);
    PUT_LIT(o, ",\"latency_ms\":");
    o = put_fixed(o, (double)rec->latency_total_us / 1000.0, 3);
    PUT_LIT(o, ",\"upstream_ms\":");
    o = put_fixed(o, (double)rec->latency_upstream_us / 1000.0, 3);
    PUT_LIT(o, ",\"gateway_ms\":");
    o = put_fixed(o, (double)rec->latency_gateway_us / 1000.0, 3);
    PUT_LIT(o, ",\"tokens_prompt\":");
    o = put_u64(o, rec->tokens_prompt);
    PUT_LIT(o, ",\"tokens_completion\":");
    o = put_u64(o, rec->tokens_completion);
    PUT_LIT(o, ",\"cost_usd\":");
    o = put_fixed(o, cost_usd, 8);
    if (rec->streamed) {
        PUT_LIT(o, ",\"streamed\":true");
    }
    else {
        PUT_LIT(o, ",\"streamed\":false");
    }
    if (rec->tokens_estimated) {
        PUT_LIT(o, ",\"tokens_estimated\":true");
    }
    out->len = (size_t)(o - out->data);
    out->data[out->len] = '\0';
    if (content) {
        size_t len = 0;
        const char *text = json_object_to_json_string_length(
            content, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
        jw_key(&w, "content");
        if (w.rc == GV_OK) {
            w.rc = gv_buf_append(out, text, len);
        }
    }
    if (answer) {
        size_t len = 0;
        const char *text = json_object_to_json_string_length(
            answer, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
        jw_key(&w, "answer");
        if (w.rc == GV_OK) {
            w.rc = gv_buf_append(out, text, len);
        }
        if (answer_truncated) {
            jw_key(&w, "answer_truncated");
            jw_raw(&w, "true");
        }
    }
    jw_raw(&w, "}");
    if (w.rc) {
        /* Leave out as it was: no half record. */
        gv_buf_truncate(out, mark);
    }
    return w.rc;
}

gv_rc gw_audit_header_json(uint64_t segment, uint64_t first_seq, const char *anchor,
                           uint64_t created_wall_us, struct gv_buf *out)
{
    struct jw w = {out, GV_OK, true};
    char ts[40];

    gv_time_rfc3339(created_wall_us, ts, sizeof(ts));
    jw_raw(&w, "{");
    jw_u64(&w, "kt_audit", 1);
    jw_u64(&w, "segment", segment);
    jw_str(&w, "created", ts);
    jw_u64(&w, "created_s", created_wall_us / 1000000u);
    jw_u64(&w, "first_seq", first_seq);
    jw_str(&w, "anchor", anchor);
    jw_raw(&w, "}");
    return w.rc;
}
