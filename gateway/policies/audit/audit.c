/* gateway/policies/audit/audit.c - tamper-evident audit log */
/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/gv_file.h"
#include "core/gv_buf.h"
#include "core/gv_log.h"
#include "core/gv_mem.h"
#include "core/gv_paths.h"
#include "core/gv_thread.h"
#include "core/gv_time.h"
#include "gateway/gw_policy.h"
#include "gateway/gw_req.h"
#include "gateway/policies/audit/audit_store.h"
#include "gateway/policies/accounting/cost_prices.h"

enum { FSYNC_INTERVAL = 0, FSYNC_ALWAYS, FSYNC_OFF };
enum { ON_FAILURE_BLOCK = 0, ON_FAILURE_ALLOW };

/* One finished request waiting for the writer. Owns content. The node is as large
 * as its record packed (~700-900 bytes for a chat request), not the 4 KB of a
 * gv_record_packed: thousands wait for each group commit, and a small working set
 * keeps them in the cache between the request thread that writes them and the
 * writer that reads them. */
struct audit_node {
    struct audit_node *next;
    double cost_usd;
    struct json_object *content; /* deep copy of the forwarded messages, or NULL */
    struct json_object *answer;  /* the answer text as sent (a string), or NULL */
    bool answer_truncated;
    uint32_t cap;        /* bytes `rec` has room for */
    unsigned char rec[]; /* gv_record_packed's bytes; the writer unpacks them to seal */
};

/* Room a new node gets: its record rounded up, so a spare fits the next records of
 * about the same size. */
#define NODE_ROUND 256u
/* How much of the next spare audit_complete asks for ahead: a chat request's record. */
#define NODE_PREFETCH 1024u

/* Written nodes the writer keeps for reuse: one group commit's worth at ~80k
 * requests a second (a commit every 100 ms hands back ~8000; ~8 MB of nodes), so the
 * request threads allocate none under steady load and the writer hands a commit back
 * in one splice, without walking it. Idle, the writer keeps only SPARE_IDLE. */
#define SPARE_MAX 8192
#define SPARE_IDLE 64
#define IDLE_TRIM_US 1000000u

/* How often the writer takes queued records to seal them, and how many sealed
 * bytes force a commit before the fsync interval is up. */
#define SEAL_EVERY_US 2000u
#define PRE_COMMIT_BYTES (4u * 1024u * 1024u)
/* The page size drop_synced_pages() rounds to: a larger real page only means a
 * partial page is kept as well. */
#define AUDIT_PAGE 4096u

/* Records taken off the queue and already sealed (JSON + hash chain) as if
 * appended at `base`, waiting for the next commit. Sealing is most of the
 * writer's CPU; doing it a few records at a time instead of a whole interval's
 * worth at once keeps the writer from taking a core away from the request
 * threads for milliseconds at a time. If the log moved meanwhile (another
 * process appended, or a segment must rotate), the commit seals the nodes again
 * from the real position. */
struct audit_pre {
    struct audit_node *head, *tail;
    size_t count;
    bool holds_json;          /* some node keeps content or an answer (json-c) */
    bool valid;               /* every node sealed into buf, from base */
    struct gw_audit_pos base; /* the log position the lines follow */
    uint64_t seq;             /* the last sealed line's seq */
    char hash[GW_AUDIT_HASH_HEX + 1];
    struct gv_buf buf;
};

/* The background writer: request threads only queue; this thread appends,
 * fsyncs (group commit), rotates and applies retention. */
struct audit_writer {
    char dir[4096];
    int fsync_mode;
    long interval_ms;
    size_t segment_max;
    long retention_days;
    bool immutable;
    size_t queue_max;

    pthread_t thread;
    bool started;
    /* Request threads push records onto `inbox` with one compare-and-swap (newest
     * first); the writer takes the whole list with one exchange. No lock on the
     * request path: a mutex shared with the writer cost each request two cache
     * misses and, under load, futex waits. */
    _Atomic(struct audit_node *) inbox;
    atomic_size_t queued;   /* in the inbox, sealed or waiting to be retried */
    atomic_bool wants_wake; /* the writer sleeps on cv until the next record */
    pthread_mutex_t mu;     /* guards cv and stop only */
    pthread_cond_t cv;
    bool stop; /* under mu */
    pthread_mutex_t spare_mu;
    struct audit_node *spare; /* written nodes kept for audit_complete, under spare_mu */
    size_t nspare;

    atomic_bool healthy;   /* last append succeeded */
    atomic_int last_errno; /* of the last append's first failing call; 0: it did not fail */
    atomic_ullong dropped; /* records refused because the queue was full */
    atomic_ullong written;
    atomic_ullong drop_logged_at; /* mono us of the last "dropped" log line */

    /* The chain's end as last written, for the governance events: a sequence
     * lock (head_gen odd while the writer changes it), all atomics, so request
     * threads read it without a lock. The hash is its 64 hex digits in 8 words. */
    atomic_uint head_gen;
    atomic_uint_least64_t head_seq;
    atomic_uint_least64_t head_hash[GW_AUDIT_HASH_HEX / 8];

    /* writer thread only: records that failed to append, in order, retried first */
    struct audit_node *retry, *retry_tail;

    /* writer thread only (and init/destroy, before/after it runs) */
    int fd;
    int lockfd;
    struct gw_audit_pos pos;
    uint64_t seg_day;
    struct gv_buf out;    /* the batch */
    struct gv_record rec; /* the node being sealed, unpacked: read on this thread only */
    struct audit_pre pre;
    int err; /* errno of the first failing call of the append under way; 0: none yet */
};

struct audit_ctx {
    bool immutable;
    long retention_days;
    bool log_all_access;
    bool store_content;
    int fsync_mode;
    long fsync_interval_ms;
    int on_failure;
    size_t segment_max_bytes;
    long queue_max;
    const char *dir;
    struct audit_writer *w;
};

static const char *const fsync_modes[] = {"interval", "always", "off", NULL};
static const char *const failure_modes[] = {"block", "allow", NULL};

static const struct gv_cfg_map config_map[] = {
    {"immutable", GV_CFG_BOOL, offsetof(struct audit_ctx, immutable), "true", 0, NULL, 0, 0,
     "make closed segments read-only, `0400` (records are always hash-chained; every file is "
     "created `0600`)"},
    {"retention_days", GV_CFG_INT, offsetof(struct audit_ctx, retention_days), "365", 0, NULL, 1,
     36500, "delete whole segments older than this"},
    {"log_all_access", GV_CFG_BOOL, offsetof(struct audit_ctx, log_all_access), "true", 0, NULL, 0,
     0, "record every request, not only blocked, redacted or failed ones"},
    {"store_content", GV_CFG_BOOL, offsetof(struct audit_ctx, store_content), "false", 0, NULL, 0,
     0,
     "store the prompt messages as forwarded (after redaction) and the answer as the client got "
     "it (after response policies; the first choice's text, at most 64 KiB, then cut at a UTF-8 "
     "boundary and marked `answer_truncated`)"},
    {"fsync", GV_CFG_ENUM, offsetof(struct audit_ctx, fsync_mode), "interval", 0, fsync_modes, 0, 0,
     "group commit mode"},
    {"fsync_interval", GV_CFG_DURATION, offsetof(struct audit_ctx, fsync_interval_ms), "100ms", 0,
     NULL, 1, 60000, "group commit interval: the most a crash can lose"},
    {"on_failure", GV_CFG_ENUM, offsetof(struct audit_ctx, on_failure), "block", 0, failure_modes,
     0, 0, "when the log cannot be written: refuse requests (HTTP 503) or let them through"},
    {"segment_max_bytes", GV_CFG_SIZE, offsetof(struct audit_ctx, segment_max_bytes), "64MiB", 0,
     NULL, 4096, 1073741824.0, "start a new segment past this size (and every UTC day)"},
    {"queue_max", GV_CFG_INT, offsetof(struct audit_ctx, queue_max), "65536", 0, NULL, 16, 10000000,
     "records waiting for the writer before `on_failure` applies"},
    {"dir", GV_CFG_STR, offsetof(struct audit_ctx, dir), NULL, 0, NULL, 0, 0,
     "(path) segment directory, `<state-dir>/audit` when absent; created `0700`; an existing "
     "one that group or others can open is used, with a WARN line asking for `0700`"},
    {NULL, 0, 0, NULL, 0, NULL, 0, 0, NULL},
};

static uint64_t today(void)
{
    return gv_wall_us() / 1000000u / 86400u;
}

static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* Remembers errno of the first call that failed in this append: recovery and
 * undo steps after it fail or succeed for their own reasons and overwrite errno,
 * and the error line must name the cause. Returns GV_EIO. */
static gv_rc io_failed(struct audit_writer *w)
{
    if (w->err == 0) {
        w->err = errno ? errno : EIO;
    }
    return GV_EIO;
}

/* Create segment `segment` whose header anchors to `anchor` and whose first
 * record will be first_seq; it becomes the open segment. */
static gv_rc segment_create(struct audit_writer *w, uint64_t segment, uint64_t first_seq,
                            const char *anchor)
{
    char path[4200], hash[GW_AUDIT_HASH_HEX + 1];
    uint64_t now = gv_wall_us();
    int fd = -1;
    gv_rc rc;

    gv_buf_reset(&w->out);
    rc = gw_audit_segment_path(w->dir, segment, path, sizeof(path));
    if (rc == GV_OK) {
        rc = gw_audit_header_json(segment, first_seq, anchor, now, &w->out);
    }
    if (rc == GV_OK) {
        rc = gw_audit_line_seal(&w->out, hash);
    }
    if (rc) {
        goto out;
    }
    /* 0600: with store_content a segment holds prompts; the directory may be
     * an operator's shared one, so the file itself keeps other users out. */
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = io_failed(w);
        goto out;
    }
    rc = gv_file_write_all(fd, w->out.data, w->out.len);
    if (rc == GV_OK && w->fsync_mode != FSYNC_OFF && fsync(fd) != 0) {
        rc = GV_EIO;
    }
    if (rc) {
        io_failed(w);
        /* Never leave a header-less file behind: recovery would have to guess. */
        close(fd);
        unlink(path);
        fd = -1;
        goto out;
    }
    if (w->fsync_mode != FSYNC_OFF) {
        sync_dir(w->dir);
    }
    if (w->fd >= 0) {
        close(w->fd);
    }
    w->fd = fd;
    w->pos.segment = segment;
    w->pos.seq = first_seq - 1;
    memcpy(w->pos.hash, hash, sizeof(hash));
    w->pos.bytes = w->out.len;
    w->seg_day = now / 1000000u / 86400u;
out:
    gv_buf_reset(&w->out);
    return rc;
}

/* The UTC day a segment was created, from its header; today when unreadable
 * (the segment then rotates no earlier than it would have). */
static uint64_t header_day(const char *path)
{
    char line[1024];
    struct json_object *o, *v;
    uint64_t day = today();
    ssize_t n;
    char *nl;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        return day;
    }
    n = read(fd, line, sizeof(line) - 1);
    close(fd);
    if (n <= 0) {
        return day;
    }
    line[n] = '\0';
    nl = strchr(line, '\n');
    if (nl) {
        *nl = '\0';
    }
    o = json_tokener_parse(line);
    if (o && json_object_object_get_ex(o, "created_s", &v)) {
        day = (uint64_t)json_object_get_int64(v) / 86400u;
    }
    json_object_put(o);
    return day;
}

/* Find where the chain ends from the files themselves: the newest segment's
 * last complete line. A torn last line (crash mid-append) is cut off: it was
 * never acknowledged, and everything before it stays byte-identical. */
static gv_rc recover(struct audit_writer *w)
{
    char path[4200];
    uint64_t *segs = NULL;
    size_t n = 0, end, start;
    struct gv_buf b;
    struct gw_audit_pos anchor;
    struct stat st;
    struct json_object *o = NULL, *v;
    uint64_t last;
    bool closed;
    int fd = -1;
    gv_rc rc;

    gv_buf_init(&b, 0);
    if (w->fd >= 0) {
        close(w->fd);
        w->fd = -1;
    }
    rc = gw_audit_segments_list(w->dir, &segs, &n);
    if (rc) {
        io_failed(w);
        goto out;
    }
    if (n == 0) {
        if (gw_audit_pos_read(w->dir, "anchor.json", &anchor) == GV_OK) {
            rc = segment_create(w, anchor.segment + 1, anchor.seq + 1, anchor.hash);
        }
        else {
            rc = segment_create(w, 1, 1, gw_audit_zero_hash);
        }
        goto out;
    }
    if (gw_audit_pos_read(w->dir, "head.json", &anchor) == GV_ENOTFOUND) {
        /* Segments without a head: either a crash right after the very first
         * segment, or someone removed it, perhaps with the newest records.
         * The files are all that is left to continue from; say so. */
        gv_log(GV_LOG_WARN, "policy:audit-logger",
               "head.json is missing; continuing from the segments as they are; check them "
               "with kt events verify --expect-head against a published head",
               "dir=%s segments=%zu", w->dir, n);
    }
    last = segs[n - 1];
    rc = gw_audit_segment_path(w->dir, last, path, sizeof(path));
    if (rc) {
        goto out;
    }
    if (stat(path, &st) != 0) {
        rc = io_failed(w);
        goto out;
    }
    closed = (st.st_mode & 0222) == 0;
    rc = gw_audit_read_file(path, GW_AUDIT_SEGMENT_READ_MAX, &b);
    if (rc) {
        io_failed(w);
        goto out;
    }
    end = b.len;
    while (end > 0 && b.data[end - 1] != '\n') {
        end--;
    }
    if (end < b.len && !closed) {
        gv_log(GV_LOG_WARN, "policy:audit-logger", "repairing torn last record",
               "segment=%" PRIu64 " cut_bytes=%zu", last, b.len - end);
        if (truncate(path, (off_t)end) != 0) {
            rc = io_failed(w);
            goto out;
        }
    }
    if (end == 0) {
        /* Not even a header survived: the segment never held a record. */
        if (unlink(path) != 0) {
            rc = io_failed(w);
            goto out;
        }
        gv_free(segs);
        segs = NULL;
        gv_buf_free(&b);
        return recover(w);
    }
    start = end - 1;
    while (start > 0 && b.data[start - 1] != '\n') {
        start--;
    }
    memset(&w->pos, 0, sizeof(w->pos));
    w->pos.segment = last;
    w->pos.bytes = end;
    if (gw_audit_line_check(b.data + start, end - 1 - start, w->pos.hash) != GV_OK) {
        /* Damage that is not a torn tail is evidence: keep it for `kt events
         * verify` and continue in a fresh segment chained to the bytes as they are. */
        (void)gv_sha256_hex(b.data + start, end - 1 - start, w->pos.hash);
        gv_log(GV_LOG_ERROR, "policy:audit-logger",
               "last audit record fails its hash; run kt events verify", "segment=%" PRIu64, last);
        closed = true;
    }
    o = json_tokener_parse(b.data + start);
    if (o && start == 0 && json_object_object_get_ex(o, "first_seq", &v)) {
        w->pos.seq = (uint64_t)json_object_get_int64(v) - 1;
    }
    else if (o && json_object_object_get_ex(o, "seq", &v)) {
        w->pos.seq = (uint64_t)json_object_get_int64(v);
    }
    else {
        gv_log(GV_LOG_ERROR, "policy:audit-logger", "last audit line is unreadable",
               "segment=%" PRIu64, last);
        closed = true;
    }
    if (closed) {
        rc = segment_create(w, last + 1, w->pos.seq + 1, w->pos.hash);
        goto out;
    }
    fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) {
        rc = io_failed(w);
        goto out;
    }
    /* A segment an older kt created 0644 is narrowed when it is reopened. */
    if ((st.st_mode & 0077) != 0 && fchmod(fd, 0600) != 0) {
        gv_log(GV_LOG_WARN, "policy:audit-logger", "cannot make the open segment private",
               "segment=%" PRIu64 " err=%s", last, strerror(errno));
    }
    w->fd = fd;
    w->seg_day = header_day(path);
out:
    json_object_put(o);
    gv_buf_free(&b);
    gv_free(segs);
    if (rc == GV_OK) {
        rc = gw_audit_pos_write(w->dir, "head.json", &w->pos, false);
        if (rc) {
            io_failed(w);
        }
    }
    return rc;
}

/* Under the lock: make sure w->pos is the real end of the chain. Another
 * gateway process may have appended since our last batch; head.json, written
 * under the same lock after every append, says where it stopped. */
static bool pos_equal(const struct gw_audit_pos *a, const struct gw_audit_pos *b)
{
    return a->segment == b->segment && a->seq == b->seq && a->bytes == b->bytes &&
           strcmp(a->hash, b->hash) == 0;
}

static gv_rc sync_pos(struct audit_writer *w)
{
    struct gw_audit_pos head;
    struct stat st;
    char path[4200];
    int fd;
    gv_rc rc;

    rc = gw_audit_pos_read(w->dir, "head.json", &head);
    if (rc != GV_OK) {
        if (rc != GV_ENOTFOUND) {
            /* Unreadable for a reason recovery may not meet again (EMFILE). */
            io_failed(w);
        }
        return recover(w);
    }
    if (w->fd >= 0 && pos_equal(&head, &w->pos) && fstat(w->fd, &st) == 0 &&
        (uint64_t)st.st_size == w->pos.bytes) {
        return GV_OK;
    }
    if (gw_audit_segment_path(w->dir, head.segment, path, sizeof(path)) != GV_OK ||
        stat(path, &st) != 0 || (uint64_t)st.st_size != head.bytes || (st.st_mode & 0222) == 0) {
        return recover(w);
    }
    fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) {
        io_failed(w);
        return recover(w);
    }
    if (w->fd >= 0) {
        close(w->fd);
    }
    w->fd = fd;
    w->pos = head;
    w->seg_day = header_day(path);
    return GV_OK;
}

/* The files are private, but a directory others can enter still shows them
 * which runs and when (names, sizes, times): the operator should know. */
static void warn_if_shared(const char *dir)
{
    struct stat st;

    if (stat(dir, &st) == 0 && (st.st_mode & 0077) != 0) {
        gv_log(GV_LOG_WARN, "policy:audit-logger",
               "audit directory is open to other users; its files are 0600, but make the "
               "directory 0700",
               "dir=%s mode=%03o", dir, (unsigned)(st.st_mode & 0777));
    }
}

static void apply_retention(struct audit_writer *w)
{
    unsigned deleted = 0;
    int64_t cutoff = (int64_t)(gv_wall_us() / 1000000u) - (int64_t)w->retention_days * 86400;
    gv_rc rc = gw_audit_retention(w->dir, cutoff, w->pos.segment, &deleted);

    if (rc) {
        gv_log(GV_LOG_WARN, "policy:audit-logger", "retention failed", "err=%s", gv_rc_str(rc));
    }
    else if (deleted) {
        gv_log(GV_LOG_INFO, "policy:audit-logger", "retention deleted old segments",
               "segments=%u days=%ld", deleted, w->retention_days);
    }
}

static gv_rc rotate(struct audit_writer *w)
{
    struct gw_audit_pos prev = w->pos;
    gv_rc rc;

    if (w->fd >= 0) {
        /* A closed segment is final: flush it, then make it read-only. */
        if (fsync(w->fd) != 0) {
            return io_failed(w);
        }
        if (w->immutable && fchmod(w->fd, 0400) != 0) {
            return io_failed(w);
        }
    }
    rc = segment_create(w, prev.segment + 1, prev.seq + 1, prev.hash);
    if (rc) {
        return rc;
    }
    apply_retention(w);
    return GV_OK;
}

/* The record's JSON at the end of `out` (from `mark`), with its content or without.
 * GV_E2BIG when the line with its seal and '\n' would pass GW_AUDIT_LINE_MAX. */
static gv_rc record_line(struct audit_writer *w, const struct audit_node *n, bool content,
                         uint64_t seq, const char *hash, struct gv_buf *out, size_t mark)
{
    gv_rc rc = gw_audit_record_json(&w->rec, n->cost_usd, content ? n->content : NULL,
                                    content ? n->answer : NULL, content && n->answer_truncated, seq,
                                    hash, out);

    if (rc == GV_OK && out->len - mark > GW_AUDIT_LINE_MAX - GW_AUDIT_SEAL_LEN - 1) {
        rc = GV_E2BIG;
    }
    return rc;
}

/* One record as a sealed line at the end of `out`, after the lines already there:
 * JSON with `seq`, then the hash chained onto `hash` (updated in place). It is
 * built where it stays; a line is up to 1 MiB with its content, and even a small
 * one copied once more was ~7% of this thread's time. A record whose line would
 * be larger is kept without the content. On failure out is as it was. */
static gv_rc seal_record(struct audit_writer *w, const struct audit_node *n, uint64_t seq,
                         char hash[GW_AUDIT_HASH_HEX + 1], struct gv_buf *out)
{
    const size_t mark = out->len;
    gv_rc rc;

    gv_record_unpack(&w->rec, n->rec);
    rc = record_line(w, n, true, seq, hash, out, mark);
    if (rc == GV_E2BIG && (n->content || n->answer)) {
        gv_buf_truncate(out, mark);
        rc = record_line(w, n, false, seq, hash, out, mark);
    }
    if (rc == GV_OK) {
        rc = gw_audit_line_seal_from(out, mark, hash);
    }
    if (rc != GV_OK) {
        gv_buf_truncate(out, mark);
    }
    return rc;
}

/* Makes the chain's end what the next governance events carry. */
static void publish_head(struct audit_writer *w)
{
    unsigned gen = atomic_load_explicit(&w->head_gen, memory_order_relaxed);
    size_t i;

    atomic_store_explicit(&w->head_gen, gen + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&w->head_seq, w->pos.seq, memory_order_relaxed);
    for (i = 0; i < GW_AUDIT_HASH_HEX / 8; i++) {
        uint64_t word;
        memcpy(&word, w->pos.hash + 8 * i, 8);
        atomic_store_explicit(&w->head_hash[i], word, memory_order_relaxed);
    }
    atomic_store_explicit(&w->head_gen, gen + 2, memory_order_release);
}

/* The head as last published, read on a request thread (see head_gen). */
static void read_head(struct audit_writer *w, uint64_t *seq, char hash[GW_AUDIT_HASH_HEX + 1])
{
    for (;;) {
        unsigned gen = atomic_load_explicit(&w->head_gen, memory_order_acquire);
        size_t i;

        if (gen & 1u) {
            continue; /* the writer is between two stores: a few instructions */
        }
        *seq = atomic_load_explicit(&w->head_seq, memory_order_relaxed);
        for (i = 0; i < GW_AUDIT_HASH_HEX / 8; i++) {
            uint64_t word = atomic_load_explicit(&w->head_hash[i], memory_order_relaxed);
            memcpy(hash + 8 * i, &word, 8);
        }
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&w->head_gen, memory_order_relaxed) == gen) {
            break;
        }
    }
    hash[GW_AUDIT_HASH_HEX] = '\0';
}

/* The segment's synced pages leave the page cache. The log is written once
 * and read back only by `kt audit verify`, so caching it is of no use to
 * anyone, and new pages cost the writer more than the lines it puts in them:
 * appending into fresh page cache took ~1.6 us of kernel time per 700-byte
 * line on the development VM (every page a first touch of guest memory),
 * ~0.13 us when each commit's pages are dropped and the next commit reuses
 * them (docs/internals/gateway.md, "The audit log's pages"). Only clean
 * pages are dropped, so with `fsync: off` nothing is done: dirty pages would
 * only be pushed to disk early. Advice, not a promise: a failure changes
 * nothing. */
static void drop_synced_pages(struct audit_writer *w)
{
    /* Whole pages only: the page the next line goes on stays, or the next
     * append would first read it back from disk. */
    uint64_t whole = w->pos.bytes & ~(uint64_t)(AUDIT_PAGE - 1);

    if (w->fsync_mode != FSYNC_OFF && whole > 0) {
        (void)posix_fadvise(w->fd, 0, (off_t)whole, POSIX_FADV_DONTNEED);
    }
}

/* Write `n` bytes of sealed lines that end at (seq, hash) at the end of the
 * current segment, fsync as configured, and move w->pos past them. A partial
 * write is taken back so the file ends on a record boundary. */
static gv_rc write_sealed(struct audit_writer *w, const void *data, size_t n, uint64_t seq,
                          const char hash[GW_AUDIT_HASH_HEX + 1])
{
    gv_rc rc = gv_file_write_all(w->fd, data, n);

    if (rc == GV_OK && w->fsync_mode != FSYNC_OFF && fdatasync(w->fd) != 0) {
        rc = GV_EIO;
    }
    if (rc) {
        io_failed(w);
        if (ftruncate(w->fd, (off_t)w->pos.bytes) != 0) {
            gv_log(GV_LOG_ERROR, "policy:audit-logger", "cannot undo partial audit write",
                   "segment=%" PRIu64, w->pos.segment);
        }
        return rc;
    }
    w->pos.seq = seq;
    memcpy(w->pos.hash, hash, GW_AUDIT_HASH_HEX + 1);
    w->pos.bytes += n;
    drop_synced_pages(w);
    publish_head(w);
    /* The records are written: a stale head.json only makes verify miss a
     * trailing deletion until the next append, so it is not a failed append. */
    if (gw_audit_pos_write(w->dir, "head.json", &w->pos, false) != GV_OK) {
        gv_log(GV_LOG_WARN, "policy:audit-logger", "cannot update head.json", "dir=%s", w->dir);
    }
    return GV_OK;
}

/* Append the nodes of the list in order: one write and one fsync per segment
 * touched (group commit). `pre`, when not NULL, holds the same nodes already
 * sealed; its lines are written as they are when the log is still where they
 * were sealed for and no rotation falls inside them. *done counts the nodes
 * that are durably written; on failure the rest are not in the file at all
 * and w->pos is the end of what was written. */
static gv_rc append_batch(struct audit_writer *w, struct audit_node *list,
                          const struct audit_pre *pre, size_t *done)
{
    struct audit_node *n = list;
    char hash[GW_AUDIT_HASH_HEX + 1];
    uint64_t seq;
    size_t count;
    gv_rc rc;

    *done = 0;
    w->err = 0;
    if (flock(w->lockfd, LOCK_EX) != 0) {
        return io_failed(w);
    }
    rc = sync_pos(w);
    if (rc == GV_OK && pre && pre->valid && pre->count > 0 && pos_equal(&w->pos, &pre->base) &&
        today() == w->seg_day && w->pos.bytes + pre->buf.len <= w->segment_max) {
        rc = write_sealed(w, pre->buf.data, pre->buf.len, pre->seq, pre->hash);
        if (rc == GV_OK) {
            *done = pre->count;
        }
        n = NULL;
    }
    while (rc == GV_OK && n) {
        uint64_t start_bytes;
        if (w->pos.bytes >= w->segment_max || today() != w->seg_day) {
            rc = rotate(w);
            if (rc) {
                break;
            }
        }
        start_bytes = w->pos.bytes;
        seq = w->pos.seq;
        count = 0;
        memcpy(hash, w->pos.hash, sizeof(hash));
        gv_buf_reset(&w->out);
        /* Fill this segment up to its size limit, at least one record. */
        for (; n && (count == 0 || start_bytes + w->out.len < w->segment_max); n = n->next) {
            rc = seal_record(w, n, seq + 1, hash, &w->out);
            if (rc) {
                break;
            }
            seq++;
            count++;
        }
        if (rc) {
            break;
        }
        rc = write_sealed(w, w->out.data, w->out.len, seq, hash);
        if (rc) {
            break;
        }
        *done += count;
    }
    gv_buf_reset(&w->out);
    flock(w->lockfd, LOCK_UN);
    return rc;
}

static void free_nodes(struct audit_node *n)
{
    while (n) {
        struct audit_node *next = n->next;
        json_object_put(n->content);
        json_object_put(n->answer);
        gv_free(n);
        n = next;
    }
}

/* Drops what written nodes hold (json_object_put may free a whole stored
 * conversation), so they can be kept as spares. */
static void clear_nodes(struct audit_node *n)
{
    for (; n; n = n->next) {
        json_object_put(n->content);
        json_object_put(n->answer);
        n->content = NULL;
        n->answer = NULL;
    }
}

/* Keeps up to SPARE_MAX cleared nodes for audit_complete and frees the rest: a
 * node freed on this thread and allocated again on a request thread costs both
 * threads more than handing it back. The list is cut outside spare_mu and spliced
 * in under it in one step: request threads take that lock too, and a commit hands
 * back thousands of nodes. Only this thread adds spares, so the room read first can only grow.
 * n..last is the list and count its length: when all of it fits, it is spliced
 * without a walk (by now its nodes are out of the cache, each step a miss). */
static void keep_nodes(struct audit_writer *w, struct audit_node *n, struct audit_node *last,
                       size_t count)
{
    struct audit_node *head = n, *tail = NULL;
    size_t room, k = 0;

    pthread_mutex_lock(&w->spare_mu);
    room = w->nspare < SPARE_MAX ? SPARE_MAX - w->nspare : 0;
    pthread_mutex_unlock(&w->spare_mu);
    if (n && count <= room) {
        tail = last;
        k = count;
        n = NULL;
    }
    while (n && k < room) {
        tail = n;
        n = n->next;
        k++;
    }
    if (tail) {
        tail->next = NULL;
    }
    free_nodes(n);
    if (k == 0) {
        return;
    }
    pthread_mutex_lock(&w->spare_mu);
    tail->next = w->spare;
    w->spare = head;
    w->nspare += k;
    pthread_mutex_unlock(&w->spare_mu);
}

/* Frees spares beyond SPARE_IDLE: the writer has nothing to do, so the memory a busy
 * spell kept goes back. The cut is made under spare_mu, the frees outside it. */
static void trim_spares(struct audit_writer *w)
{
    struct audit_node *n, *rest = NULL;
    size_t k = 0;

    pthread_mutex_lock(&w->spare_mu);
    for (n = w->spare; n && k + 1 < SPARE_IDLE; n = n->next) {
        k++;
    }
    if (n && n->next) {
        rest = n->next;
        n->next = NULL;
        w->nspare = k + 1;
    }
    pthread_mutex_unlock(&w->spare_mu);
    free_nodes(rest);
}

static void pre_reset(struct audit_pre *pre)
{
    pre->head = pre->tail = NULL;
    pre->count = 0;
    pre->holds_json = false;
    pre->valid = false;
    gv_buf_reset(&pre->buf);
}

/* Moves the nodes of `list` onto pre, sealing each after the last. Sealing
 * assumes the log is still at w->pos when the first node arrives; a failure
 * only marks pre invalid, and the commit then seals (and reports) again. */
static void pre_add(struct audit_writer *w, struct audit_node *list)
{
    struct audit_pre *pre = &w->pre;

    while (list) {
        struct audit_node *n = list;
        list = n->next;
        n->next = NULL;
        if (pre->count++ == 0) {
            pre->base = w->pos;
            pre->seq = w->pos.seq;
            memcpy(pre->hash, w->pos.hash, sizeof(pre->hash));
            pre->valid = true;
        }
        if (pre->tail) {
            pre->tail->next = n;
        }
        else {
            pre->head = n;
        }
        pre->tail = n;
        pre->holds_json = pre->holds_json || n->content || n->answer;
        if (!pre->valid) {
            continue;
        }
        if (seal_record(w, n, pre->seq + 1, pre->hash, &pre->buf) != GV_OK) {
            pre->valid = false;
            continue;
        }
        pre->seq++;
    }
}

/* Waits on w->cv (w->mu held) until `deadline_us` on the monotonic clock, or
 * without a deadline when it is 0. */
static void writer_wait(struct audit_writer *w, uint64_t deadline_us)
{
    struct timespec ts;
    uint64_t now = gv_mono_us();

    if (deadline_us == 0) {
        pthread_cond_wait(&w->cv, &w->mu);
        return;
    }
    if (deadline_us <= now) {
        return;
    }
    gv_time_deadline(CLOCK_REALTIME, deadline_us - now, &ts);
    pthread_cond_timedwait(&w->cv, &w->mu, &ts);
}

/* The records request threads pushed since the last call, oldest first, behind
 * any that failed before (those keep their place ahead of newer ones). */
static struct audit_node *take_queued(struct audit_writer *w)
{
    struct audit_node *n = atomic_exchange(&w->inbox, NULL), *fifo = NULL, *head;

    while (n) { /* the inbox is newest first */
        struct audit_node *next = n->next;
        n->next = fifo;
        fifo = n;
        n = next;
    }
    if (!w->retry) {
        return fifo;
    }
    head = w->retry;
    w->retry_tail->next = fifo;
    w->retry = w->retry_tail = NULL;
    return head;
}

/* Sleeps until deadline_us, or stop. */
static void writer_sleep(struct audit_writer *w, uint64_t deadline_us)
{
    pthread_mutex_lock(&w->mu);
    if (!w->stop) {
        writer_wait(w, deadline_us);
    }
    pthread_mutex_unlock(&w->mu);
}

/* Sleeps until a record is pushed, stop, or (when idle_us > 0) idle_us have passed;
 * true when it woke with nothing queued. */
static bool writer_idle(struct audit_writer *w, uint64_t idle_us)
{
    bool empty;

    pthread_mutex_lock(&w->mu);
    /* Announce the sleep, then look again: a push either lands before the look or
     * sees wants_wake and signals under mu (both sequentially consistent), so no
     * record is left waiting for a wakeup. */
    atomic_store(&w->wants_wake, true);
    if (!atomic_load(&w->inbox) && !w->stop) {
        writer_wait(w, idle_us ? gv_mono_us() + idle_us : 0);
    }
    atomic_store(&w->wants_wake, false);
    empty = !atomic_load(&w->inbox) && !w->stop;
    pthread_mutex_unlock(&w->mu);
    return empty;
}

static bool writer_stopping(struct audit_writer *w)
{
    bool stop;

    pthread_mutex_lock(&w->mu);
    stop = w->stop;
    pthread_mutex_unlock(&w->mu);
    return stop;
}

/* The writer takes what request threads queued every SEAL_EVERY_US and seals it
 * (JSON, hash chain) right away, so the sealing work is spread evenly; every
 * fsync interval it commits what is sealed: one write, one fdatasync, head.json
 * (group commit). Idle, it sleeps until the next record wakes it. */
static void *writer_main(void *arg)
{
    struct audit_writer *w = arg;
    uint64_t interval_us = (uint64_t)w->interval_ms * 1000u;
    uint64_t last_commit = gv_mono_us();
    bool failing = false;

    for (;;) {
        struct audit_node *batch, *tail, *written, *written_tail;
        size_t done = 0, count;
        uint64_t now;
        bool commit, stop, holds_json;
        gv_rc rc;

        batch = take_queued(w);
        if (batch) {
            pre_add(w, batch);
        }
        stop = writer_stopping(w);
        now = gv_mono_us();
        commit = w->pre.count > 0 &&
                 (stop || w->fsync_mode == FSYNC_ALWAYS || now >= last_commit + interval_us ||
                  w->pre.buf.len >= PRE_COMMIT_BYTES);
        if (!commit) {
            if (atomic_load(&w->inbox)) {
                continue;
            }
            if (stop) {
                break;
            }
            if (w->pre.count == 0) {
                /* Nothing to seal: wait for a record; after a quiet second, give back
                 * the spares a busy spell kept, then wait for as long as it takes. */
                if (writer_idle(w, IDLE_TRIM_US)) {
                    trim_spares(w);
                    (void)writer_idle(w, 0);
                }
            }
            else {
                uint64_t seal_at = now + SEAL_EVERY_US;
                uint64_t commit_at = last_commit + interval_us;
                writer_sleep(w, seal_at < commit_at ? seal_at : commit_at);
            }
            continue;
        }
        batch = w->pre.head;
        tail = w->pre.tail;
        count = w->pre.count;
        holds_json = w->pre.holds_json;

        rc = append_batch(w, batch, &w->pre, &done);
        pre_reset(&w->pre);
        last_commit = gv_mono_us();
        /* Detach what is written: the whole batch unless a write failed, so the
         * walk to the cut is only taken then. The nodes were sealed as they came
         * and are out of the cache by now: every step of a walk is a miss. */
        written = NULL;
        written_tail = NULL;
        if (done > 0 && done == count) {
            written = batch;
            written_tail = tail;
            batch = NULL;
        }
        else if (done > 0) {
            size_t k;
            written = written_tail = batch;
            for (k = 1; k < done; k++) {
                written_tail = written_tail->next;
            }
            batch = written_tail->next;
            written_tail->next = NULL;
        }

        atomic_fetch_sub(&w->queued, done);
        atomic_fetch_add(&w->written, done);
        if (rc == GV_OK) {
            if (holds_json) {
                clear_nodes(written);
            }
            keep_nodes(w, written, written_tail, done);
            if (failing) {
                gv_log(GV_LOG_WARN, "policy:audit-logger", "audit log writable again", "dir=%s",
                       w->dir);
                failing = false;
            }
            atomic_store(&w->last_errno, 0);
            atomic_store(&w->healthy, true);
            continue;
        }
        free_nodes(written);
        /* Keep the rest, in order, ahead of what arrived meanwhile; it is sealed
         * again from wherever the log is when it is retried. */
        if (batch) {
            w->retry = batch;
            w->retry_tail = tail;
        }
        atomic_store(&w->last_errno, w->err);
        atomic_store(&w->healthy, false);
        if (!failing) {
            gv_log(GV_LOG_ERROR, "policy:audit-logger",
                   "cannot write the audit log; retrying every interval", "dir=%s err=%s errno=%s",
                   w->dir, gv_rc_str(rc), w->err ? strerror(w->err) : "-");
            failing = true;
        }
        if (stop) {
            break;
        }
        /* Retry after an interval instead of spinning on a full disk. */
        writer_sleep(w, gv_mono_us() + interval_us);
    }
    if (atomic_load(&w->queued)) {
        gv_log(GV_LOG_ERROR, "policy:audit-logger", "audit records lost at shutdown",
               "records=%zu dir=%s", (size_t)atomic_load(&w->queued), w->dir);
    }
    return NULL;
}

static void writer_destroy(struct audit_writer *w)
{
    if (!w) {
        return;
    }
    if (w->started) {
        pthread_mutex_lock(&w->mu);
        w->stop = true;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thread, NULL);
    }
    free_nodes(atomic_exchange(&w->inbox, NULL));
    free_nodes(w->retry);
    if (w->fd >= 0) {
        if (w->fsync_mode != FSYNC_OFF) {
            (void)fsync(w->fd);
        }
        close(w->fd);
    }
    if (w->lockfd >= 0) {
        close(w->lockfd);
    }
    free_nodes(w->pre.head);
    free_nodes(w->spare);
    gv_buf_free(&w->pre.buf);
    gv_buf_free(&w->out);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    pthread_mutex_destroy(&w->spare_mu);
    gv_free(w);
}

static gv_rc audit_init(struct gw_policy *pol, const char *path, const struct gv_ynode *settings,
                        struct gv_cfg_err *err)
{
    struct audit_ctx *ctx = pol->ctx;
    struct audit_writer *w = gv_calloc(1, sizeof(*w));
    char lockpath[4200];
    int n;
    gv_rc rc;

    w->fd = -1;
    w->lockfd = -1;
    pthread_mutex_init(&w->mu, NULL);
    pthread_mutex_init(&w->spare_mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    gv_buf_init(&w->out, 0);
    gv_buf_init(&w->pre.buf, 0);
    atomic_init(&w->healthy, true);
    w->fsync_mode = ctx->fsync_mode;
    w->interval_ms = ctx->fsync_interval_ms > 0 ? ctx->fsync_interval_ms : 100;
    w->segment_max = ctx->segment_max_bytes ? ctx->segment_max_bytes : 64u * 1024u * 1024u;
    w->retention_days = ctx->retention_days > 0 ? ctx->retention_days : 365;
    w->immutable = ctx->immutable;
    w->queue_max = ctx->queue_max > 0 ? (size_t)ctx->queue_max : 65536;
    if (ctx->dir && *ctx->dir) {
        n = snprintf(w->dir, sizeof(w->dir), "%s", ctx->dir);
    }
    else {
        n = snprintf(w->dir, sizeof(w->dir), "%s/audit",
                     pol->state_dir && *pol->state_dir ? pol->state_dir : ".");
    }
    if (n < 0 || (size_t)n >= sizeof(w->dir)) {
        rc = gv_cfg_fail(err, path, settings, "audit-logger: directory path too long");
        goto out;
    }
    if (pol->check_only) {
        /* A dry run must leave the state dir as it found it: no directory, lock,
         * recovery, retention or first segment, no writer thread. */
        rc = GV_OK;
        if (gv_dir_check(w->dir) != GV_OK) {
            rc = gv_cfg_fail(err, path, settings, "audit-logger: cannot create %s: %s", w->dir,
                             strerror(errno));
        }
        writer_destroy(w);
        w = NULL;
        goto out;
    }
    if (gv_mkdir_p(w->dir, 0700) != GV_OK) {
        rc = gv_cfg_fail(err, path, settings, "audit-logger: cannot create %s: %s", w->dir,
                         strerror(errno));
        goto out;
    }
    warn_if_shared(w->dir);
    snprintf(lockpath, sizeof(lockpath), "%s/lock", w->dir);
    w->lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (w->lockfd < 0) {
        rc = gv_cfg_fail(err, path, settings, "audit-logger: cannot open %s: %s", lockpath,
                         strerror(errno));
        goto out;
    }
    if (flock(w->lockfd, LOCK_EX) != 0) {
        rc = gv_cfg_fail(err, path, settings, "audit-logger: cannot lock %s", lockpath);
        goto out;
    }
    rc = recover(w);
    if (rc == GV_OK) {
        apply_retention(w);
        publish_head(w);
    }
    flock(w->lockfd, LOCK_UN);
    if (rc) {
        rc = gv_cfg_fail(err, path, settings, "audit-logger: cannot open the audit log in %s: %s",
                         w->dir, gv_rc_str(rc));
        goto out;
    }
    if (gv_thread_start(&w->thread, "kt-audit", GV_THREAD_BACKGROUND, writer_main, w) != GV_OK) {
        rc = gv_cfg_fail(err, path, settings, "audit-logger: cannot start the writer thread");
        goto out;
    }
    w->started = true;
    gv_log(GV_LOG_INFO, "policy:audit-logger", "audit log open",
           "dir=%s segment=%" PRIu64 " seq=%" PRIu64 " fsync=%s", w->dir, w->pos.segment,
           w->pos.seq, fsync_modes[w->fsync_mode]);
out:
    if (rc) {
        writer_destroy(w);
        w = NULL;
    }
    ctx->w = w;
    return rc;
}

static gv_rc audit_evaluate(struct gw_policy *pol, struct gw_req *req, struct gw_verdict *out)
{
    struct audit_ctx *ctx = pol->ctx;
    struct audit_writer *w = ctx->w;
    bool ok;

    (void)req;
    memset(out, 0, sizeof(*out));
    out->action = GW_ACTION_PASS;
    if (!w || ctx->on_failure != ON_FAILURE_BLOCK) {
        return GV_OK;
    }
    /* Fail closed: a request that cannot be recorded is not served. The queue
     * check (lock-free, every worker calls this) catches a writer that is alive but falling behind
     * a dead disk. */
    ok = atomic_load(&w->healthy) && atomic_load(&w->queued) < w->queue_max;
    if (!ok) {
        out->action = GW_ACTION_BLOCK;
        out->status = 503;
        out->code = "audit_unavailable";
        out->message = "The audit log cannot be written; requests are refused until it can "
                       "(audit-logger on_failure: block).";
    }
    return GV_OK;
}

/* The same state evaluate reads, for /health: no I/O. */
static bool audit_ready(struct gw_policy *pol, char *why, size_t size)
{
    struct audit_ctx *ctx = pol->ctx;
    struct audit_writer *w = ctx->w;
    int err;

    if (!w || ctx->on_failure != ON_FAILURE_BLOCK) {
        return true;
    }
    if (!atomic_load(&w->healthy)) {
        err = atomic_load(&w->last_errno);
        snprintf(why, size,
                 "audit-logger: the audit log cannot be written (%s); chat requests get 503",
                 err ? strerror(err) : "see the gateway log");
        return false;
    }
    if (atomic_load(&w->queued) >= w->queue_max) {
        snprintf(why, size,
                 "audit-logger: %zu records wait for the writer (queue_max %zu); chat requests "
                 "get 503",
                 (size_t)atomic_load(&w->queued), w->queue_max);
        return false;
    }
    return true;
}

static struct json_object *forwarded_messages(const struct gw_req *req)
{
    struct json_object *messages, *copy = NULL;

    if (!req || !req->body || !json_object_object_get_ex(req->body, "messages", &messages)) {
        return NULL;
    }
    /* A private copy: the writer thread must not share json-c refcounts with
     * the request, which frees its body when it finishes. */
    if (json_object_deep_copy(messages, &copy, NULL) != 0) {
        return NULL;
    }
    return copy;
}

/* The record's last changes before it is packed (gw_policy.h): a cost, and the
 * audit chain's head. */
static void audit_stamp(struct gw_policy *pol, struct gw_req *req, struct gv_record *rec)
{
    struct audit_ctx *ctx = pol->ctx;
    const struct gw_cost_price *price;

    (void)req;
    if (!rec->cost_priced && (rec->tokens_prompt || rec->tokens_completion)) {
        /* No cost-tracker in the chain (it prices every request before any
         * stamp(), wherever it is listed): price the tokens at list prices,
         * and put the price on the record too, so the governance event (and
         * W&B) carries the same cost as the audit log. */
        rec->cost_priced = true;
        price = gw_cost_price_find(gw_cost_builtin_prices, rec->model);
        rec->cost_usd = gw_cost_price_usd(price, rec->tokens_prompt, rec->tokens_completion);
        /* weave: the prices behind that cost, for the trace server's cost table */
        if (price) {
            rec->price_input_per_mtok = price->input_per_mtok;
            rec->price_output_per_mtok = price->output_per_mtok;
        }
    }
    /* The chain's end so far (this record is not written yet): the agent
     * publishes it, so a verifier can check the log against it later. */
    if (ctx->w) {
        read_head(ctx->w, &rec->audit_head_seq, rec->audit_head_hash);
    }
}

static void audit_complete(struct gw_policy *pol, struct gw_req *req, struct gv_record *rec)
{
    struct audit_ctx *ctx = pol->ctx;
    struct audit_writer *w = ctx->w;
    struct audit_node *n, *next;
    size_t next_len;
    const struct gv_record_packed *packed;

    if (!w || !(ctx->log_all_access || rec->decision != GV_DECISION_ALLOWED)) {
        return;
    }
    if (atomic_load(&w->queued) >= w->queue_max) {
        unsigned long long now = gv_mono_us();
        atomic_fetch_add(&w->dropped, 1);
        if (now - atomic_load(&w->drop_logged_at) > 10000000u) {
            atomic_store(&w->drop_logged_at, now);
            gv_log(GV_LOG_ERROR, "policy:audit-logger", "audit queue full; record dropped",
                   "dropped_total=%llu queue_max=%zu", atomic_load(&w->dropped), w->queue_max);
        }
        return;
    }
    /* Packed by the chain once the record was final (weave: the request keeps its
     * telemetry content); a caller that did not come through the chain packs here.
     * The node is as large as the packed record and no larger. */
    packed = req && req->packed ? req->packed : gv_record_pack_scratch(rec);
    pthread_mutex_lock(&w->spare_mu);
    n = w->spare;
    if (n) {
        w->spare = n->next;
        w->nspare--;
    }
    /* The next request's node, which the writer last touched (gv_mem.h). Another
     * worker may take it, or free it, before this one does: a prefetch never faults,
     * so that only wastes the hint. */
    next = w->spare;
    next_len = next ? sizeof(*next) + (next->cap < NODE_PREFETCH ? next->cap : NODE_PREFETCH) : 0;
    pthread_mutex_unlock(&w->spare_mu);
    if (next) {
        gv_prefetch_write(next, next_len);
    }
    if (n && n->cap < packed->len) {
        gv_free(n); /* spares are cleared: it holds no content */
        n = NULL;
    }
    if (!n) {
        uint32_t cap = (packed->len + NODE_ROUND - 1) & ~(NODE_ROUND - 1);
        n = gv_malloc(sizeof(*n) + cap);
        n->cap = cap;
    }
    n->next = NULL;
    memcpy(n->rec, packed->bytes, packed->len);
    n->cost_usd = rec->cost_usd;
    n->content = NULL;
    n->answer = NULL;
    n->answer_truncated = false;
    /* Only what was forwarded is stored: after every rewrite, never for a
     * blocked request (later policies, pii included, may not have run). */
    if (ctx->store_content &&
        (rec->decision == GV_DECISION_ALLOWED || rec->decision == GV_DECISION_REDACTED)) {
        n->content = forwarded_messages(req);
        if (req && req->answer) {
            /* A private string: the relay reuses its buffer for the next request. */
            n->answer = json_object_new_string_len(req->answer->data ? req->answer->data : "",
                                                   (int)req->answer->len);
            n->answer_truncated = req->answer_truncated;
        }
    }
    /* The bound is checked before the push, so several threads at once may pass
     * it by one record each. */
    atomic_fetch_add(&w->queued, 1);
    n->next = atomic_load_explicit(&w->inbox, memory_order_relaxed);
    while (!atomic_compare_exchange_weak(&w->inbox, &n->next, n)) {
    }
    /* The writer only needs a nudge when it sleeps with nothing to seal: at
     * most one signal per quiet spell, not one per record. */
    if (atomic_load(&w->wants_wake) || w->fsync_mode == FSYNC_ALWAYS) {
        pthread_mutex_lock(&w->mu);
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
    }
}

/* store_content keeps the answer too, so the relay must collect it. */
static bool audit_keeps_answer(const struct gw_policy *pol)
{
    const struct audit_ctx *ctx = pol->ctx;
    return ctx->store_content;
}

static void audit_destroy(struct gw_policy *pol)
{
    struct audit_ctx *ctx = pol->ctx;
    writer_destroy(ctx->w);
    ctx->w = NULL;
}

const struct gw_policy_ops gw_policy_audit = {
    .name = "audit-logger",
    .config_map = config_map,
    .ctx_size = sizeof(struct audit_ctx),
    .flags = GW_POL_PROMPT | GW_POL_COMPLETE,
    .init = audit_init,
    .evaluate = audit_evaluate,
    .ready = audit_ready,
    .stamp = audit_stamp,
    .complete = audit_complete,
    .keeps_answer = audit_keeps_answer,
    .destroy = audit_destroy,
};
