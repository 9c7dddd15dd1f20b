/* gateway/gw_emit_agent.c - governance events to kt agent: ring, spool, replay, acks */
/* SPDX-License-Identifier: Apache-2.0 */
#include "gateway/gw_emit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "core/gv_buf.h"
#include "core/gv_cfg.h"
#include "core/gv_event.h"
#include "core/gv_log.h"
#include "core/gv_mem.h"
#include "core/gv_ring.h"
#include "core/gv_paths.h"
#include "core/gv_thread.h"
#include "core/gv_time.h"

/* Worker threads hand records over through this many slots; the background
 * thread drains them within a poll interval, so it only absorbs bursts. */
#define RING_SLOTS 4096u
#define SPOOL_MAGIC "KTSPOOL1"
#define SPOOL_HDR 16u
#define SPOOL_CAP_DEFAULT (64u * 1024u * 1024u)
/* Frames sent and not yet acknowledged; sending pauses when this many are out. */
#define INFLIGHT_MAX 65536u
#define SEND_CHUNK (256u * 1024u)
/* Encoded events kept in memory while the spool cannot be written. */
#define HOLD_CAP_DEFAULT (32u * 1024u * 1024u)
#define HOLD_RETRY_MIN_US 10000u
#define HOLD_RETRY_MAX_US 1000000u
/* The nap between passes while records keep coming (see bg_main). */
#define BUSY_NAP_MS 2
/* Empty passes (about 0.4 s of polls) before an idle thread parks until woken. */
#define PARK_AFTER_IDLE 50u
#define MOD "emit"

struct inflight {
    uint64_t end_off; /* spool offset just past the frame */
};

/* Room in a slot for a record packed: a chat request's takes ~700-900 bytes; a larger
 * one (many policies, long names) goes to the heap. Slots of a whole gv_record_packed
 * (4.4 KB) spread the ring's records over 18 MB, a page each: every record written
 * and read was a TLB miss on both threads, and cost more cache than it used. */
#define SLOT_INLINE 1280u
/* What agent_emit asks for ahead of the next record: its pointers and ~900 bytes. */
#define SLOT_PREFETCH 1024u

/* A record in the ring: packed, and its telemetry content. */
struct em_slot {
    struct gv_content *content; /* weave: the slot's own copy, or NULL */
    unsigned char *big;         /* the packed record when it does not fit `bytes`, or NULL */
    unsigned char bytes[SLOT_INLINE];
};

struct agent_em {
    struct gw_emitter base;

    /* Workers claim slots, the background thread consumes them (core/gv_ring); slots[i] is
     * slot i's record, packed. */
    struct gv_ring ring;
    struct em_slot *slots;
    int wake_fd; /* eventfd: emit() nudges the background thread */
    /* The background thread sleeps with no timeout: whoever gives it work (emit,
     * set_pack, destroy) writes wake_fd when it sees this set. */
    _Atomic int parked;

    _Atomic unsigned long long dropped;
    _Atomic unsigned long long unacked; /* spooled, not yet acknowledged */
    _Atomic unsigned long long held_n;  /* encoded, waiting for the spool to take them */
    _Atomic int stop;
    pthread_t thread;
    bool thread_started;

    /* Hello data, set by gw_emitter_set_pack from any thread. */
    pthread_mutex_t hello_lock;
    struct gv_hello hello;
    _Atomic unsigned hello_gen;
    unsigned hello_sent_gen;

    /* Everything below belongs to the background thread. */
    char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char spool_path[4400];
    char old_path[4410]; /* spool_path with ".old" */
    char lock_path[4400];
    char instance_id[GV_INSTANCE_ID_LEN + 1];
    int lock_fd;
    /* The spool is two files of frames, each "KTSPOOL1 | u64 acked seq | frames": the
     * current one, appended to, and the old one, the current one before it (older frames),
     * or none (-1). Offsets are logical: bytes of frames counted across the old file and
     * then the current one, so the frame at offset x lies at SPOOL_HDR + x - base in its
     * file. Each file holds at most half the cap; when the current one is full it becomes
     * the old one, and the old one before it goes, with whatever of it is unacknowledged
     * (counted as dropped). Nothing is ever copied. */
    int spool_fd;
    int old_fd;
    uint64_t old_base, cur_base; /* the offset of each file's first frame */
    uint64_t cur_base_seq;       /* the seq of the current file's first frame */
    uint64_t spool_cap;
    uint64_t head_off, send_off, tail_off; /* head: first unacknowledged frame */
    uint64_t head_seq, send_seq, next_seq; /* seq of the frame at each offset */
    struct inflight *inflight;             /* ring of INFLIGHT_MAX */
    size_t if_head, if_count;
    int sock;
    uint64_t next_connect_us, backoff_us;
    struct gv_buf out; /* bytes waiting to go to the socket */
    size_t out_pos;
    struct gv_buf in;     /* bytes from the agent (acks) */
    struct gv_buf batch;  /* spool frames being built from the ring */
    struct gv_record rec; /* the slot being encoded, unpacked */
    bool batch_full;      /* the last drain stopped at its size limit, more wait */
    /* Frames the spool refused (a full disk), numbered from next_seq on, in
     * order: written before anything newer, once the spool takes them. */
    struct gv_buf held;
    size_t hold_cap;
    uint64_t next_hold_try_us, hold_backoff_us;
    unsigned long long logged_drops;
    uint64_t last_drop_log_us;
};

static const struct gw_emitter_ops agent_ops;

/* ---- spool file ---------------------------------------------------------------------- */

/* pwrite (wr) or pread until all n bytes at off are done, retrying on EINTR; an error or a
 * short file is GV_EIO. */
static gv_rc pio_full(int fd, char *b, size_t n, uint64_t off, bool wr)
{
    while (n > 0) {
        ssize_t k = wr ? pwrite(fd, b, n, (off_t)off) : pread(fd, b, n, (off_t)off);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            return GV_EIO;
        }
        b += k;
        n -= (size_t)k;
        off += (uint64_t)k;
    }
    return GV_OK;
}

static gv_rc write_full(int fd, const void *p, size_t n, uint64_t off)
{
    return pio_full(fd, (char *)p, n, off, true); /* pwrite only reads the bytes */
}

static gv_rc read_full(int fd, void *p, size_t n, uint64_t off)
{
    return pio_full(fd, p, n, off, false);
}

static gv_rc spool_write_header(int fd, uint64_t acked)
{
    uint8_t hdr[SPOOL_HDR];

    memcpy(hdr, SPOOL_MAGIC, 8);
    gv_put_u64le(hdr + 8, acked);
    return write_full(fd, hdr, SPOOL_HDR, 0);
}

/* Persists "everything up to head_seq - 1 is done", so a restart never replays it. The
 * current file's header says it for both files (recovery takes the larger of the two). */
static void spool_write_acked(struct agent_em *a)
{
    uint8_t v[8];
    gv_put_u64le(v, a->head_seq - 1);
    if (write_full(a->spool_fd, v, sizeof(v), 8) != GV_OK) {
        gv_log(GV_LOG_ERROR, MOD, "spool header write failed", "path=%s errno=%d", a->spool_path,
               errno);
    }
}

/* The file holding offset x, where in it x lies, and how many bytes of frames follow x
 * in that file: a read never runs from one file into the other. */
static int spool_locate(const struct agent_em *a, uint64_t x, uint64_t *at, uint64_t *left)
{
    if (a->old_fd >= 0 && x < a->cur_base) {
        *at = SPOOL_HDR + (x - a->old_base);
        *left = a->cur_base - x;
        return a->old_fd;
    }
    *at = SPOOL_HDR + (x - a->cur_base);
    *left = a->tail_off - x;
    return a->spool_fd;
}

/* A spool file's acknowledged seq; false when it has no valid header (new or foreign). */
static bool spool_read_acked(int fd, uint64_t *acked)
{
    uint8_t hdr[SPOOL_HDR];
    struct stat st;

    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size < SPOOL_HDR ||
        read_full(fd, hdr, SPOOL_HDR, 0) != GV_OK || memcmp(hdr, SPOOL_MAGIC, 8) != 0) {
        return false;
    }
    *acked = gv_get_u64le(hdr + 8);
    return true;
}

/* What a walk of one spool file's frames found. Offsets count from its first frame. */
struct spool_scan {
    uint64_t len;       /* bytes of whole frames (a torn tail is cut off) */
    uint64_t first_seq; /* 0: no frames */
    uint64_t last_seq;
    uint64_t pending_off; /* the first frame past `acked`, or len */
    uint64_t pending_seq; /* its seq (0 with none) */
};

/* Walks the frames of the spool file fd from its header on, each decoded and numbered
 * one after the other; stops at the first that is not, and cuts the file there. */
static gv_rc spool_scan_file(int fd, const char *path, uint64_t acked, struct spool_scan *sc)
{
    struct stat st;
    struct gv_record *rec = NULL;
    struct gv_event_meta meta;
    uint8_t *frame = NULL;
    uint64_t off = SPOOL_HDR;
    gv_rc rc = GV_OK;

    memset(sc, 0, sizeof(*sc));
    if (fstat(fd, &st) != 0) {
        return GV_EIO;
    }
    rec = gv_malloc(sizeof(*rec));
    frame = gv_malloc(GV_FRAME_HDR + GV_FRAME_MAX);
    sc->pending_off = UINT64_MAX;
    while (off + GV_FRAME_HDR <= (uint64_t)st.st_size) {
        uint32_t len;
        if (read_full(fd, frame, GV_FRAME_HDR, off) != GV_OK) {
            break;
        }
        len = gv_get_u32le(frame);
        if (len > GV_FRAME_MAX || frame[4] != GV_FRAME_EVENT ||
            off + GV_FRAME_HDR + len > (uint64_t)st.st_size ||
            read_full(fd, frame + GV_FRAME_HDR, len, off + GV_FRAME_HDR) != GV_OK ||
            gv_event_decode(frame + GV_FRAME_HDR, len, rec, &meta) != GV_OK ||
            (sc->last_seq && meta.seq != sc->last_seq + 1)) {
            gv_record_release(rec);
            break;
        }
        gv_record_release(rec);
        if (meta.seq > acked && sc->pending_off == UINT64_MAX) {
            sc->pending_off = off - SPOOL_HDR;
            sc->pending_seq = meta.seq;
        }
        if (sc->first_seq == 0) {
            sc->first_seq = meta.seq;
        }
        sc->last_seq = meta.seq;
        off += GV_FRAME_HDR + len;
    }
    if (off != (uint64_t)st.st_size && (uint64_t)st.st_size >= SPOOL_HDR) {
        gv_log(GV_LOG_WARN, MOD, "spool tail cut", "path=%s bytes=%llu", path,
               (unsigned long long)((uint64_t)st.st_size - off));
        if (ftruncate(fd, (off_t)off) != 0) {
            rc = GV_EIO;
        }
    }
    sc->len = off - SPOOL_HDR;
    if (sc->pending_off == UINT64_MAX) {
        sc->pending_off = sc->len;
    }
    gv_free(frame);
    gv_free(rec);
    return rc;
}

/* Closes and removes the old file. */
static void spool_forget_old(struct agent_em *a)
{
    if (a->old_fd >= 0) {
        close(a->old_fd);
        a->old_fd = -1;
    }
    if (unlink(a->old_path) != 0 && errno != ENOENT) {
        gv_log(GV_LOG_WARN, MOD, "cannot remove the old spool file", "path=%s errno=%d",
               a->old_path, errno);
    }
}

/* Reads the spool a previous gateway with this instance id left (the old file, then the
 * current one): skips what was acknowledged, cuts a torn tail, and continues the sequence
 * numbers. An old file that does not end where the current one starts is not ours to
 * replay (a crash between its two steps of a rotation cannot make one): it is dropped. */
static gv_rc spool_recover(struct agent_em *a)
{
    struct spool_scan so, sc;
    uint64_t acked = 0, acked_old = 0, last_seq;
    bool have_old = a->old_fd >= 0 && spool_read_acked(a->old_fd, &acked_old);

    if (!spool_read_acked(a->spool_fd, &acked)) {
        /* New (or unreadable) current file: start it empty. */
        if (ftruncate(a->spool_fd, 0) != 0 || spool_write_header(a->spool_fd, acked_old)) {
            return GV_EIO;
        }
    }
    if (have_old && acked_old > acked) {
        acked = acked_old;
    }
    memset(&so, 0, sizeof(so));
    if (have_old && spool_scan_file(a->old_fd, a->old_path, acked, &so) != GV_OK) {
        return GV_EIO;
    }
    if (spool_scan_file(a->spool_fd, a->spool_path, acked, &sc) != GV_OK) {
        return GV_EIO;
    }
    if (have_old &&
        (so.len == so.pending_off || (sc.first_seq && so.last_seq + 1 != sc.first_seq))) {
        if (so.len != so.pending_off) {
            gv_log(GV_LOG_WARN, MOD, "old spool file does not precede the current one; dropped",
                   "path=%s", a->old_path);
        }
        have_old = false;
    }
    if (!have_old) {
        spool_forget_old(a);
        memset(&so, 0, sizeof(so));
    }
    a->old_base = 0;
    a->cur_base = so.len;
    a->tail_off = so.len + sc.len;
    last_seq = sc.last_seq ? sc.last_seq : so.last_seq;
    a->next_seq = (last_seq > acked ? last_seq : acked) + 1;
    a->cur_base_seq = sc.first_seq ? sc.first_seq : a->next_seq;
    if (so.pending_off < so.len) {
        a->head_off = so.pending_off;
        a->head_seq = so.pending_seq;
    }
    else if (sc.pending_off < sc.len) {
        a->head_off = a->cur_base + sc.pending_off;
        a->head_seq = sc.pending_seq;
    }
    else {
        a->head_off = a->tail_off;
        a->head_seq = a->next_seq;
    }
    a->send_off = a->head_off;
    a->send_seq = a->head_seq;
    atomic_store(&a->unacked, a->next_seq - a->head_seq);
    if (a->next_seq > a->head_seq) {
        gv_log(GV_LOG_INFO, MOD, "spool recovered", "instance=%s pending=%llu next_seq=%llu",
               a->instance_id, (unsigned long long)(a->next_seq - a->head_seq),
               (unsigned long long)a->next_seq);
    }
    return GV_OK;
}

/* Removes the old file; its frames not yet acknowledged are dropped and counted, and the
 * head moves to the current file's first frame. */
static void spool_drop_old(struct agent_em *a)
{
    if (a->old_fd < 0) {
        return;
    }
    if (a->head_seq < a->cur_base_seq) {
        uint64_t k = a->cur_base_seq - a->head_seq;
        /* Sent ones leave the in-flight ring: their acks name frames no longer kept. */
        while (a->if_count > 0 && a->inflight[a->if_head].end_off <= a->cur_base) {
            a->if_head = (a->if_head + 1) % INFLIGHT_MAX;
            a->if_count--;
        }
        a->head_off = a->cur_base;
        a->head_seq = a->cur_base_seq;
        if (a->send_seq < a->head_seq) {
            a->send_off = a->head_off;
            a->send_seq = a->head_seq;
        }
        atomic_fetch_add(&a->dropped, k);
        atomic_fetch_sub(&a->unacked, k);
    }
    spool_forget_old(a);
}

/* The current file becomes the old one (after the old one before it is dropped) and an
 * empty current file starts at the tail. A spool that stays full (no agent for a long
 * time) so sheds the older half of its cap at once, as it always has, but the newer half
 * stays where it is: keeping it used to mean copying it into a new file, about a byte
 * copied a byte appended, ~5% of a busy gateway's throughput on 2 cores. */
static gv_rc spool_rotate(struct agent_em *a)
{
    int fd;

    spool_drop_old(a);
    if (rename(a->spool_path, a->old_path) != 0) {
        return GV_EIO;
    }
    fd = open(a->spool_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || spool_write_header(fd, a->head_seq - 1) != GV_OK) {
        int err = errno;
        if (fd >= 0) {
            close(fd);
        }
        /* Put it back: one current file, as before. */
        if (rename(a->old_path, a->spool_path) != 0) {
            gv_log(GV_LOG_ERROR, MOD, "spool rotation undone badly", "path=%s errno=%d",
                   a->spool_path, errno);
        }
        errno = err;
        return GV_EIO;
    }
    a->old_fd = a->spool_fd;
    a->old_base = a->cur_base;
    a->spool_fd = fd;
    a->cur_base = a->tail_off;
    a->cur_base_seq = a->next_seq;
    return GV_OK;
}

/* Room for len more bytes. A file whose frames are all acknowledged goes at once: the old
 * one is removed, the current one cut back to its header (the common case with a live
 * agent). A current file that would pass half the cap becomes the old one. GV_EIO when the
 * files cannot be switched: the caller holds the events, as for a failed write. */
static gv_rc spool_make_room(struct agent_em *a, size_t len)
{
    if (a->old_fd >= 0 && a->head_off >= a->cur_base) {
        spool_forget_old(a); /* nothing in it is pending */
    }
    if (a->head_off == a->tail_off && a->tail_off > a->cur_base) {
        spool_write_acked(a);
        if (ftruncate(a->spool_fd, SPOOL_HDR) == 0) {
            a->cur_base = a->tail_off;
            a->cur_base_seq = a->next_seq;
            a->if_count = 0;
        }
    }
    if (a->tail_off > a->cur_base && a->tail_off - a->cur_base + len > a->spool_cap / 2) {
        return spool_rotate(a);
    }
    return GV_OK;
}

/* Appends n encoded frames at the spool's tail. A partial write is cut off
 * again, so the space goes back and the spool stays whole frames. */
static gv_rc spool_append(struct agent_em *a, const struct gv_buf *frames, size_t n)
{
    uint64_t at = SPOOL_HDR + (a->tail_off - a->cur_base);

    if (write_full(a->spool_fd, frames->data, frames->len, at) != GV_OK) {
        int err = errno;
        if (ftruncate(a->spool_fd, (off_t)at) != 0) {
            /* Harmless: the torn bytes lie past the tail, where the next
             * append writes, and recovery cuts a torn tail. */
            gv_log(GV_LOG_DEBUG, MOD, "spool tail not cut", "errno=%d", errno);
        }
        errno = err;
        return GV_EIO;
    }
    a->tail_off += frames->len;
    a->next_seq += n;
    atomic_fetch_add(&a->unacked, n);
    return GV_OK;
}

static void hold_backoff(struct agent_em *a)
{
    a->hold_backoff_us = a->hold_backoff_us ? a->hold_backoff_us * 2 : HOLD_RETRY_MIN_US;
    if (a->hold_backoff_us > HOLD_RETRY_MAX_US) {
        a->hold_backoff_us = HOLD_RETRY_MAX_US;
    }
    a->next_hold_try_us = gv_mono_us() + a->hold_backoff_us;
}

/* Tries to move the held frames into the spool (force: ignore the backoff). */
static void hold_flush(struct agent_em *a, bool force)
{
    size_t n = (size_t)atomic_load(&a->held_n);

    if (n == 0 || (!force && gv_mono_us() < a->next_hold_try_us)) {
        return;
    }
    if (spool_make_room(a, a->held.len) != GV_OK || spool_append(a, &a->held, n) != GV_OK) {
        hold_backoff(a);
        return;
    }
    gv_log(GV_LOG_INFO, MOD, "spool writable again; held events spooled", "path=%s count=%zu",
           a->spool_path, n);
    gv_buf_reset(&a->held);
    atomic_store(&a->held_n, 0);
    a->hold_backoff_us = 0;
}

/* Gives the front slot back to the ring, with the heap copy of a record too large
 * for its inline room: every pop frees it, so a claimed slot starts with none. */
static void pop_slot(struct agent_em *a, struct em_slot *slot)
{
    gv_free(slot->big);
    slot->big = NULL;
    gv_ring_pop(&a->ring);
}

/* Moves every record waiting in the ring into the spool, numbering them. */
static size_t drain_ring(struct agent_em *a)
{
    /* A batch is a small part of the spool, so dropping old events always
     * makes room for it; the caller drains again right away if more wait. */
    size_t limit = a->spool_cap / 4 < 1024 * 1024 ? a->spool_cap / 4 : 1024 * 1024;
    size_t n = 0, held = (size_t)atomic_load(&a->held_n);

    if (held > 0) {
        hold_flush(a, false);
        held = (size_t)atomic_load(&a->held_n);
        if (held > 0 && a->held.len >= a->hold_cap) {
            /* Memory is bounded too: the ring fills and emit() counts drops. */
            return 0;
        }
    }
    gv_buf_reset(&a->batch);
    a->batch_full = false;
    for (;;) {
        size_t pos, mark = a->batch.len;
        struct em_slot *slot;
        struct gv_record *rec = &a->rec;
        uint8_t *hdr;

        if (mark >= limit) {
            a->batch_full = true;
            break;
        }
        if (!gv_ring_front(&a->ring, &pos)) {
            break;
        }
        slot = &a->slots[gv_ring_index(&a->ring, pos)];
        gv_record_unpack(rec, slot->big ? slot->big : slot->bytes);
        rec->content = slot->content; /* the record owns it now */
        slot->content = NULL;
        /* Frame header first, length patched once the payload size is known. */
        if (gv_buf_append(&a->batch, "\0\0\0\0\2", GV_FRAME_HDR) != GV_OK ||
            gv_event_encode(rec, a->instance_id, a->next_seq + held + n, &a->batch) != GV_OK) {
            gv_buf_truncate(&a->batch, mark);
            if (mark == 0) {
                /* Cannot happen with bounded records; never wedge the ring. */
                gv_record_release(rec);
                atomic_fetch_add(&a->dropped, 1);
                pop_slot(a, slot);
                continue;
            }
            slot->content = rec->content; /* the slot stays for the next batch */
            rec->content = NULL;
            break;
        }
        hdr = (uint8_t *)a->batch.data + mark;
        gv_put_u32le(hdr, (uint32_t)(a->batch.len - mark - GV_FRAME_HDR));
        gv_record_release(rec); /* weave: encoded, not needed */
        pop_slot(a, slot);
        n++;
    }
    if (n == 0) {
        return 0;
    }
    if (held == 0) {
        if (spool_make_room(a, a->batch.len) == GV_OK && spool_append(a, &a->batch, n) == GV_OK) {
            return n;
        }
        gv_log(GV_LOG_WARN, MOD, "spool write failed; holding events in memory until it succeeds",
               "path=%s count=%zu errno=%d hold_max_bytes=%zu", a->spool_path, n, errno,
               a->hold_cap);
        hold_backoff(a);
    }
    /* Behind the held frames, in seq order. The batch is small next to the
     * cap, so the cap is exceeded by at most one batch. */
    if (gv_buf_append(&a->held, a->batch.data, a->batch.len) != GV_OK) {
        atomic_fetch_add(&a->dropped, n); /* cannot happen: held is unbounded, cap checked */
        return n;
    }
    atomic_fetch_add(&a->held_n, n);
    return n;
}

/* ---- socket -------------------------------------------------------------------------- */

static void disconnect(struct agent_em *a, const char *why)
{
    if (a->sock >= 0) {
        gv_log(GV_LOG_INFO, MOD, "agent disconnected", "reason=%s pending=%llu", why,
               (unsigned long long)(a->next_seq - a->head_seq));
        close(a->sock);
        a->sock = -1;
    }
    gv_buf_reset(&a->out);
    gv_buf_reset(&a->in);
    a->out_pos = 0;
    a->if_count = 0;
    a->send_off = a->head_off;
    a->send_seq = a->head_seq;
    a->next_connect_us = gv_mono_us() + a->backoff_us;
}

static void queue_hello(struct agent_em *a)
{
    struct gv_hello h;
    struct gv_buf enc;

    pthread_mutex_lock(&a->hello_lock);
    h = a->hello;
    a->hello_sent_gen = atomic_load(&a->hello_gen);
    pthread_mutex_unlock(&a->hello_lock);
    gv_buf_init(&enc, GV_FRAME_MAX);
    if (gv_hello_encode(&h, &enc) == GV_OK) {
        (void)gv_frame_append(&a->out, GV_FRAME_HELLO, enc.data, enc.len);
    }
    gv_buf_free(&enc);
}

static void try_connect(struct agent_em *a)
{
    struct sockaddr_un sa;
    int fd;

    if (a->sock >= 0 || gv_mono_us() < a->next_connect_us) {
        return;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, a->sock_path, strlen(a->sock_path) + 1);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        /* Absent agent: retry at a gentle pace, up to once a second. */
        a->backoff_us = a->backoff_us ? a->backoff_us * 2 : 50000;
        if (a->backoff_us > 1000000) {
            a->backoff_us = 1000000;
        }
        a->next_connect_us = gv_mono_us() + a->backoff_us;
        return;
    }
    a->sock = fd;
    a->backoff_us = 50000;
    gv_log(GV_LOG_INFO, MOD, "agent connected", "socket=%s pending=%llu", a->sock_path,
           (unsigned long long)(a->next_seq - a->head_seq));
    gv_buf_reset(&a->out);
    a->out_pos = 0;
    queue_hello(a);
}

/* Tops up the output buffer with whole frames from the spool. */
static void fill_out(struct agent_em *a)
{
    uint8_t *buf;
    uint64_t at, left;
    size_t n, p = 0;
    int fd;

    if (a->out_pos < a->out.len) {
        return;
    }
    gv_buf_reset(&a->out);
    a->out_pos = 0;
    if (atomic_load(&a->hello_gen) != a->hello_sent_gen) {
        queue_hello(a);
    }
    if (a->send_off >= a->tail_off || a->if_count >= INFLIGHT_MAX) {
        return;
    }
    fd = spool_locate(a, a->send_off, &at, &left);
    n = left > SEND_CHUNK ? SEND_CHUNK : (size_t)left;
    buf = gv_malloc(n);
    if (read_full(fd, buf, n, at) != GV_OK) {
        gv_free(buf);
        return;
    }
    while (p + GV_FRAME_HDR <= n && a->if_count < INFLIGHT_MAX) {
        size_t len = GV_FRAME_HDR + gv_get_u32le(buf + p);
        if (p + len > n) {
            break;
        }
        p += len;
        a->inflight[(a->if_head + a->if_count) % INFLIGHT_MAX].end_off = a->send_off + p;
        a->if_count++;
        a->send_seq++;
    }
    if (p == 0 || gv_buf_append(&a->out, buf, p) != GV_OK) {
        gv_free(buf);
        return;
    }
    a->send_off += p;
    gv_free(buf);
}

static void handle_ack(struct agent_em *a, uint64_t seq)
{
    bool moved = false;

    while (a->if_count > 0 && a->head_seq <= seq) {
        a->head_off = a->inflight[a->if_head].end_off;
        a->if_head = (a->if_head + 1) % INFLIGHT_MAX;
        a->if_count--;
        a->head_seq++;
        atomic_fetch_sub(&a->unacked, 1);
        moved = true;
    }
    if (moved) {
        spool_write_acked(a);
    }
}

static void read_acks(struct agent_em *a)
{
    char tmp[4096];
    size_t off = 0;

    for (;;) {
        ssize_t r = recv(a->sock, tmp, sizeof(tmp), 0);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }
        if (r <= 0) {
            disconnect(a, r == 0 ? "closed" : "read_error");
            return;
        }
        if (gv_buf_append(&a->in, tmp, (size_t)r) != GV_OK) {
            disconnect(a, "input_overflow");
            return;
        }
    }
    for (;;) {
        unsigned type;
        const uint8_t *payload;
        size_t plen, used;
        gv_rc rc = gv_frame_parse(a->in.data + off, a->in.len - off, &type, &payload, &plen, &used);
        if (rc == GV_EAGAIN) {
            break;
        }
        if (rc != GV_OK) {
            disconnect(a, "bad_frame");
            return;
        }
        if (type == GV_FRAME_ACK && plen >= 8) {
            handle_ack(a, gv_get_u64le(payload));
        }
        off += used;
    }
    gv_buf_consume(&a->in, off);
}

static void write_out(struct agent_em *a)
{
    while (a->sock >= 0) {
        ssize_t w;
        fill_out(a);
        if (a->out_pos >= a->out.len) {
            return;
        }
        w = send(a->sock, a->out.data + a->out_pos, a->out.len - a->out_pos, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        if (w < 0) {
            disconnect(a, "write_error");
            return;
        }
        a->out_pos += (size_t)w;
    }
}

static void log_drops(struct agent_em *a, bool force)
{
    unsigned long long d = atomic_load(&a->dropped);
    uint64_t now = gv_mono_us();

    if (d != a->logged_drops && (force || now - a->last_drop_log_us >= 1000000)) {
        gv_log(GV_LOG_WARN, MOD, "governance events dropped", "dropped=%llu total_dropped=%llu",
               d - a->logged_drops, d);
        a->logged_drops = d;
        a->last_drop_log_us = now;
    }
}

static void wake(struct agent_em *a)
{
    uint64_t one = 1;
    ssize_t w = write(a->wake_fd, &one, sizeof(one));
    (void)w;
}

/* Whether an idle pass may sleep until woken: nothing waits in memory, stop was not
 * asked, and a connected agent has the current hello (a new connection sends it first
 * thing). Acks and a closed agent socket still wake it (poll). */
static bool may_park(struct agent_em *a, unsigned idle, bool stopping)
{
    return !stopping && idle >= PARK_AFTER_IDLE && atomic_load(&a->held_n) == 0 &&
           (a->sock < 0 || atomic_load(&a->hello_gen) == a->hello_sent_gen);
}

/* Announces the sleep, then looks at the ring once more: a record published before
 * the look is seen here, one published after it sees parked (emit's fence pairs with
 * this one) and writes wake_fd. The poll timeout to use: -1 with the agent connected,
 * else until the next connection attempt; 0 when there is work after all. */
static int park(struct agent_em *a)
{
    size_t pos;
    uint64_t now;

    atomic_store(&a->parked, 1);
    atomic_thread_fence(memory_order_seq_cst);
    if (gv_ring_front(&a->ring, &pos) || atomic_load(&a->stop)) {
        atomic_store(&a->parked, 0);
        return 0;
    }
    if (a->sock >= 0) {
        return -1;
    }
    now = gv_mono_us();
    return a->next_connect_us > now ? (int)((a->next_connect_us - now) / 1000u) + 1 : 0;
}

static void *bg_main(void *arg)
{
    struct agent_em *a = arg;
    unsigned idle = 0;
    uint64_t deadline = 0;

    for (;;) {
        struct pollfd pfd[2];
        int timeout;
        size_t n = drain_ring(a);
        bool stopping = atomic_load(&a->stop) != 0;

        try_connect(a);
        if (a->sock >= 0) {
            write_out(a);
        }
        if (a->sock >= 0) {
            read_acks(a);
        }
        log_drops(a, false);
        if (stopping) {
            /* Give a live agent a moment to acknowledge; the rest stays spooled. */
            if (deadline == 0) {
                deadline = gv_mono_us() + 500000;
            }
            if (a->sock < 0 || a->head_seq == a->next_seq || gv_mono_us() > deadline) {
                break;
            }
        }
        idle = n ? 0 : idle + 1;
        /* A pass costs a spool write, a send and an ack read whatever its size, and
         * each wakeup is a context switch taken from the request threads' cores. So
         * under load the thread takes the ring in batches: it naps BUSY_NAP_MS after
         * a pass that found records (2 ms is 100 records at 50k req/s, of 4096
         * slots), watching only the wake fd, so the agent's acks do not wake it
         * record by record; a pass cut short by its size limit goes again at once.
         * Idle, it backs off further. emit() wakes it at half full either way. */
        timeout = n == 0 ? (idle < 40 ? 5 : 20) : a->batch_full ? 0 : BUSY_NAP_MS;
        /* Idle for a while: no more polls every 20 ms, sleep until there is work. */
        if (n == 0 && may_park(a, idle, stopping)) {
            timeout = park(a);
        }
        pfd[0].fd = a->wake_fd;
        pfd[0].events = POLLIN;
        pfd[0].revents = 0;
        pfd[1].fd = a->sock;
        pfd[1].events = POLLIN | (a->out_pos < a->out.len ? POLLOUT : 0);
        pfd[1].revents = 0;
        if (poll(pfd, a->sock >= 0 && n == 0 ? 2 : 1, timeout) > 0 && (pfd[0].revents & POLLIN)) {
            uint64_t v;
            ssize_t r = read(a->wake_fd, &v, sizeof(v));
            (void)r;
        }
        atomic_store_explicit(&a->parked, 0, memory_order_relaxed);
    }
    hold_flush(a, true);
    if (atomic_load(&a->held_n) > 0) {
        unsigned long long n = atomic_exchange(&a->held_n, 0);
        gv_log(GV_LOG_ERROR, MOD, "spool still unwritable at exit; held events lost",
               "path=%s count=%llu", a->spool_path, n);
        atomic_fetch_add(&a->dropped, n);
        gv_buf_reset(&a->held);
    }
    log_drops(a, true);
    if (a->sock >= 0) {
        close(a->sock);
        a->sock = -1;
    }
    return NULL;
}

/* ---- emitter ops --------------------------------------------------------------------- */

static gv_rc agent_emit(struct gw_emitter *em, const struct gv_record *rec,
                        const struct gv_record_packed *packed)
{
    struct agent_em *a = (struct agent_em *)em;
    struct em_slot *slot;
    size_t pos;

    if (!gv_ring_claim(&a->ring, &pos)) {
        /* Ring full: the background thread is far behind. Never wait. */
        atomic_fetch_add_explicit(&a->dropped, 1, memory_order_relaxed);
        return GV_EAGAIN;
    }
    slot = &a->slots[gv_ring_index(&a->ring, pos)];
    if (!packed) {
        packed = gv_record_pack_scratch(rec);
    }
    if (packed->len <= sizeof(slot->bytes)) {
        memcpy(slot->bytes, packed->bytes, packed->len);
    }
    else {
        slot->big = gv_malloc(packed->len);
        memcpy(slot->big, packed->bytes, packed->len);
    }
    /* weave: the slot owns its own copy; the request frees the original. */
    slot->content = gv_content_dup(rec->content);
    gv_ring_publish(&a->ring, pos);
    /* The next record's slot, which the sender last read (gv_mem.h): the bytes a chat
     * request's record takes, not the whole slot. */
    gv_prefetch_write(&a->slots[gv_ring_index(&a->ring, pos + 1)], SLOT_PREFETCH);
    /* A parked thread is woken by the first record after its sleep (the fence pairs
     * with park()'s); a napping one once per half-ring, not a syscall per record. */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&a->parked, memory_order_relaxed) ||
        pos - atomic_load_explicit(&a->ring.deq_pos, memory_order_relaxed) == RING_SLOTS / 2) {
        wake(a);
    }
    return GV_OK;
}

static void agent_stats(struct gw_emitter *em, unsigned long long *dropped,
                        unsigned long long *pending)
{
    struct agent_em *a = (struct agent_em *)em;

    if (dropped) {
        *dropped = atomic_load(&a->dropped);
    }
    if (pending) {
        /* Spooled and not yet acknowledged; the ring holds at most a few
         * milliseconds of records on top of that. */
        *pending = atomic_load(&a->unacked) + atomic_load(&a->held_n);
    }
}

static unsigned long long agent_held(struct gw_emitter *em)
{
    return atomic_load(&((struct agent_em *)em)->held_n);
}

static void agent_destroy(struct gw_emitter *em)
{
    struct agent_em *a = (struct agent_em *)em;

    if (!a) {
        return;
    }
    if (a->thread_started) {
        atomic_store(&a->stop, 1);
        wake(a); /* it may be parked */
        pthread_join(a->thread, NULL);
    }
    if (a->spool_fd >= 0) {
        /* All acknowledged: leave a spool with nothing in it (only once it was read: a
         * spool that could not be is left as it is). */
        if (a->thread_started && a->head_seq == a->next_seq) {
            spool_make_room(a, 0);
        }
        close(a->spool_fd);
    }
    if (a->old_fd >= 0) {
        close(a->old_fd);
    }
    if (a->lock_fd >= 0) {
        close(a->lock_fd); /* releases the flock: the next gateway adopts this spool */
    }
    if (a->sock >= 0) {
        close(a->sock);
    }
    if (a->wake_fd >= 0) {
        close(a->wake_fd);
    }
    pthread_mutex_destroy(&a->hello_lock);
    gv_buf_free(&a->out);
    gv_buf_free(&a->in);
    gv_buf_free(&a->batch);
    gv_buf_free(&a->held);
    gv_free(a->inflight);
    gv_ring_free(&a->ring);
    if (a->slots) {
        size_t i;
        for (i = 0; i < RING_SLOTS; i++) {
            gv_content_free(a->slots[i].content); /* weave: records never drained */
            gv_free(a->slots[i].big);
        }
    }
    gv_unmap_zeroed(a->slots, RING_SLOTS, sizeof(*a->slots));
    gv_record_release(&a->rec);
    gv_free(a);
}

static const struct gw_emitter_ops agent_ops = {
    .name = "agent",
    .emit = agent_emit,
    .stats = agent_stats,
    .held = agent_held,
    .destroy = agent_destroy,
};

/* Takes over the spool of a gateway that is gone (its lock is free), else starts
 * a new instance. Sets instance_id, lock_fd and the paths. */
static gv_rc adopt_instance(struct agent_em *a, const char *spool_dir)
{
    DIR *d = opendir(spool_dir);
    struct dirent *de;
    unsigned char rnd[GV_INSTANCE_ID_LEN / 2];
    size_t i;
    int fd;

    while (d && (de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len != GV_INSTANCE_ID_LEN + 5 || strcmp(de->d_name + GV_INSTANCE_ID_LEN, ".lock")) {
            continue;
        }
        snprintf(a->lock_path, sizeof(a->lock_path), "%s/%s", spool_dir, de->d_name);
        fd = open(a->lock_path, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
            continue;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            close(fd);
            continue;
        }
        a->lock_fd = fd;
        memcpy(a->instance_id, de->d_name, GV_INSTANCE_ID_LEN);
        a->instance_id[GV_INSTANCE_ID_LEN] = '\0';
        break;
    }
    if (d) {
        closedir(d);
    }
    if (a->lock_fd < 0) {
        if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
            return GV_EIO;
        }
        for (i = 0; i < sizeof(rnd); i++) {
            snprintf(a->instance_id + 2 * i, 3, "%02x", rnd[i]);
        }
        snprintf(a->lock_path, sizeof(a->lock_path), "%s/%s.lock", spool_dir, a->instance_id);
        fd = open(a->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) != 0) {
            if (fd >= 0) {
                close(fd);
            }
            return GV_EIO;
        }
        a->lock_fd = fd;
    }
    snprintf(a->spool_path, sizeof(a->spool_path), "%s/%s.spool", spool_dir, a->instance_id);
    return GV_OK;
}

gv_rc gw_emitter_create_agent(const char *state_dir, const char *socket_path,
                              struct gw_emitter **out)
{
    struct agent_em *a = NULL;
    char spool_dir[4096];
    char sock[4096];
    int n;
    gv_rc rc;

    *out = NULL;
    if (!state_dir || !*state_dir) {
        return GV_EINVAL;
    }
    if (socket_path) {
        n = snprintf(sock, sizeof(sock), "%s", socket_path);
        rc = n < 0 || (size_t)n >= sizeof(sock) ? GV_E2BIG : GV_OK;
    }
    else {
        rc = gv_agent_socket_default(state_dir, sock, sizeof(sock));
    }
    if (rc) {
        return rc;
    }
    a = gv_calloc(1, sizeof(*a));
    a->base.ops = &agent_ops;
    a->base.ctx = a;
    a->lock_fd = -1;
    a->spool_fd = -1;
    a->old_fd = -1;
    a->sock = -1;
    a->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    a->spool_cap = SPOOL_CAP_DEFAULT;
    {
        /* KT_SPOOL_MAX_BYTES: how much disk the unacknowledged events may take. */
        const char *v = getenv("KT_SPOOL_MAX_BYTES");
        size_t cap;
        if (v && *v) {
            if (!gv_cfg_parse_size(v, &cap) || cap < 4096) {
                gv_log(GV_LOG_ERROR, MOD, "KT_SPOOL_MAX_BYTES must be a size >= 4096", NULL);
                rc = GV_ECONFIG;
                goto out;
            }
            a->spool_cap = cap;
        }
    }
    pthread_mutex_init(&a->hello_lock, NULL);
    gv_buf_init(&a->out, SEND_CHUNK + GV_FRAME_MAX);
    gv_buf_init(&a->in, 1024 * 1024);
    gv_buf_init(&a->batch, 0);
    gv_buf_init(&a->held, 0);
    a->hold_cap = HOLD_CAP_DEFAULT;
    {
        /* KT_SPOOL_HOLD_MAX_BYTES: how much memory events may take while the
         * spool's disk is full. */
        const char *v = getenv("KT_SPOOL_HOLD_MAX_BYTES");
        size_t cap;
        if (v && *v) {
            if (!gv_cfg_parse_size(v, &cap) || cap < 4096) {
                gv_log(GV_LOG_ERROR, MOD, "KT_SPOOL_HOLD_MAX_BYTES must be a size >= 4096", NULL);
                rc = GV_ECONFIG;
                goto out;
            }
            a->hold_cap = cap;
        }
    }
    if (a->wake_fd < 0) {
        rc = GV_EIO;
        goto out;
    }
    if (strlen(sock) >= sizeof(a->sock_path)) {
        gv_log(GV_LOG_ERROR, MOD, "agent socket path too long", "max=%zu",
               sizeof(a->sock_path) - 1);
        rc = GV_E2BIG;
        goto out;
    }
    memcpy(a->sock_path, sock, strlen(sock) + 1);
    n = snprintf(spool_dir, sizeof(spool_dir), "%s/spool", state_dir);
    if (n < 0 || (size_t)n >= sizeof(spool_dir)) {
        rc = GV_E2BIG;
        goto out;
    }
    rc = gv_mkdir_p(spool_dir, 0700);
    if (rc) {
        gv_log(GV_LOG_ERROR, MOD, "cannot create spool dir", "path=%s errno=%d", spool_dir, errno);
        goto out;
    }
    rc = adopt_instance(a, spool_dir);
    if (rc) {
        gv_log(GV_LOG_ERROR, MOD, "cannot lock a spool", "dir=%s errno=%d", spool_dir, errno);
        goto out;
    }
    snprintf(a->old_path, sizeof(a->old_path), "%s.old", a->spool_path);
    a->old_fd = open(a->old_path, O_RDWR | O_CLOEXEC);
    a->spool_fd = open(a->spool_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (a->spool_fd < 0) {
        gv_log(GV_LOG_ERROR, MOD, "cannot open spool", "path=%s errno=%d", a->spool_path, errno);
        rc = GV_EIO;
        goto out;
    }
    rc = spool_recover(a);
    if (rc) {
        gv_log(GV_LOG_ERROR, MOD, "cannot read spool", "path=%s", a->spool_path);
        goto out;
    }
    (void)gv_ring_init(&a->ring, RING_SLOTS); /* a power of two: cannot fail */
    /* Mapped: a slot's pages take memory only once a record is written there. */
    a->slots = gv_map_zeroed(RING_SLOTS, sizeof(*a->slots));
    a->inflight = gv_malloc(INFLIGHT_MAX * sizeof(*a->inflight));
    a->hello.schema_version = GV_EVENT_SCHEMA_VERSION;
    memcpy(a->hello.instance_id, a->instance_id, sizeof(a->hello.instance_id));
    a->hello.pid = (uint32_t)getpid();
    if (gv_thread_start(&a->thread, "kt-emit", GV_THREAD_BACKGROUND, bg_main, a) != GV_OK) {
        rc = GV_EIO;
        goto out;
    }
    a->thread_started = true;
    gv_log(GV_LOG_INFO, MOD, "agent emitter ready", "socket=%s instance=%s spool=%s", a->sock_path,
           a->instance_id, a->spool_path);
    *out = &a->base;
    a = NULL;
out:
    agent_destroy(a ? &a->base : NULL);
    return rc;
}

void gw_emitter_set_pack(struct gw_emitter *em, const char *name, const char *version,
                         const char *chain)
{
    struct agent_em *a = (struct agent_em *)em;

    if (!em || em->ops != &agent_ops) {
        return;
    }
    pthread_mutex_lock(&a->hello_lock);
    snprintf(a->hello.pack_name, sizeof(a->hello.pack_name), "%s", name ? name : "");
    snprintf(a->hello.pack_version, sizeof(a->hello.pack_version), "%s", version ? version : "");
    snprintf(a->hello.chain, sizeof(a->hello.chain), "%s", chain ? chain : "");
    pthread_mutex_unlock(&a->hello_lock);
    atomic_fetch_add(&a->hello_gen, 1); /* a full barrier, like emit()'s fence */
    if (atomic_load(&a->parked)) {
        wake(a);
    }
}
