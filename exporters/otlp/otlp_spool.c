/* exporters/otlp/otlp_spool.c - events waiting for the OTLP backend, on disk */
/* SPDX-License-Identifier: Apache-2.0 */
#include "exporters/otlp/otlp.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/gv_event.h"
#include "core/gv_file.h"
#include "core/gv_log.h"
#include "core/gv_mem.h"
#include "core/gv_paths.h"

#define MOD "otlp"
/* A segment is closed and a new one begun past this size, so acknowledged
 * events leave the disk a segment at a time. */
#define SEG_MAX (8u << 20)
/* One peek reads at most this much of a segment. */
#define READ_MAX (1u << 20)

struct ex_otlp_spool {
    char dir[1024];
    uint64_t max_bytes;
    bool fsync;
    pthread_mutex_t lock;
    /* writer (ingest thread), under lock */
    int wfd;
    uint64_t wgen;
    uint64_t wsize; /* bytes of wgen fully written */
    uint64_t pending_bytes;
    uint64_t pending_recs;
    /* reader (sender thread) */
    uint64_t rgen, roff; /* the cursor */
    uint64_t held_end;   /* offset in rgen past the held batch */
    uint64_t held_bytes;
    size_t held_n;
    struct gv_buf rbuf;
    struct gv_buf enc, payload;
};

static void seg_path(const struct ex_otlp_spool *sp, uint64_t gen, char *out, size_t size)
{
    snprintf(out, size, "%s/spool.%020" PRIu64, sp->dir, gen);
}

static gv_rc cursor_save(struct ex_otlp_spool *sp)
{
    char path[1100], text[64];
    int n = snprintf(text, sizeof(text), "%" PRIu64 " %" PRIu64 "\n", sp->rgen, sp->roff);

    snprintf(path, sizeof(path), "%s/cursor", sp->dir);
    return gv_file_replace(path, text, (size_t)n);
}

static void cursor_load(struct ex_otlp_spool *sp, bool *found)
{
    char path[1100], text[64];
    int fd;
    ssize_t r;

    *found = false;
    snprintf(path, sizeof(path), "%s/cursor", sp->dir);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return;
    }
    r = read(fd, text, sizeof(text) - 1);
    close(fd);
    if (r > 0) {
        text[r] = '\0';
        *found = sscanf(text, "%" SCNu64 " %" SCNu64, &sp->rgen, &sp->roff) == 2;
    }
}

static uint64_t file_size(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Counts whole frames in [off, end of file). */
static uint64_t count_frames(const char *path, uint64_t off)
{
    struct gv_buf b;
    uint64_t n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t pos = 0;

    if (fd < 0) {
        return 0;
    }
    gv_buf_init(&b, 0);
    for (;;) {
        char tmp[65536];
        ssize_t r = pread(fd, tmp, sizeof(tmp), (off_t)(off + b.len));
        if (r <= 0 || gv_buf_append(&b, tmp, (size_t)r) != GV_OK) {
            break;
        }
    }
    close(fd);
    while (pos < b.len) {
        unsigned type;
        const uint8_t *p;
        size_t plen, used;
        if (gv_frame_parse(b.data + pos, b.len - pos, &type, &p, &plen, &used) != GV_OK) {
            break;
        }
        n++;
        pos += used;
    }
    gv_buf_free(&b);
    return n;
}

static gv_rc open_writer(struct ex_otlp_spool *sp)
{
    char path[1100];

    seg_path(sp, sp->wgen, path, sizeof(path));
    sp->wfd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (sp->wfd < 0) {
        gv_log(GV_LOG_ERROR, MOD, "cannot open spool segment", "path=%s errno=%d", path, errno);
        return GV_EIO;
    }
    sp->wsize = file_size(path);
    return GV_OK;
}

gv_rc ex_otlp_spool_open(const char *dir, uint64_t max_bytes, bool fsync,
                         struct ex_otlp_spool **out)
{
    struct ex_otlp_spool *sp = gv_calloc(1, sizeof(*sp));
    uint64_t gmin = UINT64_MAX, gmax = 0, g;
    bool have_cursor;
    struct dirent *de;
    DIR *d;
    gv_rc rc;

    *out = NULL;
    snprintf(sp->dir, sizeof(sp->dir), "%s", dir);
    sp->max_bytes = max_bytes;
    sp->fsync = fsync;
    sp->wfd = -1;
    pthread_mutex_init(&sp->lock, NULL);
    gv_buf_init(&sp->rbuf, 0);
    gv_buf_init(&sp->enc, 0);
    gv_buf_init(&sp->payload, 0);
    rc = gv_mkdir_p(dir, 0700);
    if (rc) {
        goto out;
    }
    d = opendir(dir);
    if (!d) {
        rc = GV_EIO;
        goto out;
    }
    while ((de = readdir(d)) != NULL) {
        char *end;
        if (strncmp(de->d_name, "spool.", 6) != 0) {
            continue;
        }
        g = strtoull(de->d_name + 6, &end, 10);
        if (*end != '\0') {
            continue;
        }
        gmin = g < gmin ? g : gmin;
        gmax = g > gmax ? g : gmax;
    }
    closedir(d);
    cursor_load(sp, &have_cursor);
    if (gmin == UINT64_MAX) {
        /* Nothing waits: start afresh after the cursor's generation. */
        sp->rgen = have_cursor ? sp->rgen + 1 : 0;
        sp->roff = 0;
        gmin = gmax = sp->rgen;
    }
    else if (!have_cursor || sp->rgen < gmin) {
        sp->rgen = gmin;
        sp->roff = 0;
    }
    /* Appends go to a new segment: a torn tail left by a crash in the last
     * one is then only ever read up to its last whole frame. */
    sp->wgen = (gmax > sp->rgen ? gmax : sp->rgen) + 1;
    for (g = sp->rgen; g < sp->wgen; g++) {
        char path[1100];
        uint64_t off = g == sp->rgen ? sp->roff : 0, size;
        seg_path(sp, g, path, sizeof(path));
        size = file_size(path);
        if (size > off) {
            sp->pending_bytes += size - off;
            sp->pending_recs += count_frames(path, off);
        }
    }
    rc = open_writer(sp);
    if (rc) {
        goto out;
    }
    if (sp->pending_recs) {
        gv_log(GV_LOG_INFO, MOD, "spool resumed", "events=%" PRIu64 " bytes=%" PRIu64,
               sp->pending_recs, sp->pending_bytes);
    }
    *out = sp;
    sp = NULL;
out:
    ex_otlp_spool_close(sp);
    return rc;
}

void ex_otlp_spool_close(struct ex_otlp_spool *sp)
{
    if (!sp) {
        return;
    }
    if (sp->wfd >= 0) {
        close(sp->wfd);
    }
    gv_buf_free(&sp->rbuf);
    gv_buf_free(&sp->enc);
    gv_buf_free(&sp->payload);
    pthread_mutex_destroy(&sp->lock);
    gv_free(sp);
}

gv_rc ex_otlp_spool_append(struct ex_otlp_spool *sp, const struct ex_event *evs, size_t n,
                           size_t *dropped)
{
    size_t i, kept = 0;
    gv_rc rc = GV_OK;

    *dropped = 0;
    pthread_mutex_lock(&sp->lock);
    gv_buf_reset(&sp->enc);
    for (i = 0; i < n; i++) {
        size_t before = sp->enc.len;
        gv_buf_reset(&sp->payload);
        if (gv_event_encode(evs[i].rec, "", 0, &sp->payload) != GV_OK ||
            gv_frame_append(&sp->enc, GV_FRAME_EVENT, sp->payload.data, sp->payload.len) != GV_OK) {
            (*dropped)++;
            continue;
        }
        if (sp->pending_bytes + sp->enc.len > sp->max_bytes) {
            /* Full: the newest go, what waits is older and already durable. */
            sp->enc.len = before;
            (*dropped)++;
            continue;
        }
        kept++;
    }
    if (sp->enc.len == 0) {
        goto out;
    }
    if (sp->wsize > 0 && sp->wsize + sp->enc.len > SEG_MAX) {
        close(sp->wfd);
        sp->wfd = -1;
        sp->wgen++;
        rc = open_writer(sp);
        if (rc) {
            *dropped += kept;
            goto out;
        }
    }
    if (gv_file_write_all(sp->wfd, sp->enc.data, sp->enc.len) != GV_OK ||
        (sp->fsync && fdatasync(sp->wfd) != 0)) {
        /* Whatever part was written is cut when the segment is read: the
         * reader stops at the last whole frame of a closed segment. Start a
         * new one so later appends do not follow a torn frame. */
        gv_log(GV_LOG_ERROR, MOD, "spool write failed", "errno=%d", errno);
        close(sp->wfd);
        sp->wfd = -1;
        sp->wgen++;
        (void)open_writer(sp);
        *dropped += kept;
        rc = GV_EIO;
        goto out;
    }
    sp->wsize += sp->enc.len;
    sp->pending_bytes += sp->enc.len;
    sp->pending_recs += kept;
out:
    pthread_mutex_unlock(&sp->lock);
    return rc;
}

/* The cursor's segment is read to its end and a later one exists: move on. */
static void next_segment(struct ex_otlp_spool *sp)
{
    char path[1100];

    seg_path(sp, sp->rgen, path, sizeof(path));
    sp->rgen++;
    sp->roff = 0;
    /* The cursor first: a crash in between leaves a file nothing points into,
     * which the next start skips past because it is older than the cursor. */
    if (cursor_save(sp) == GV_OK) {
        unlink(path);
    }
}

gv_rc ex_otlp_spool_peek(struct ex_otlp_spool *sp, struct gv_record *recs, size_t max, size_t *n)
{
    *n = 0;
    sp->held_n = 0;
    sp->held_bytes = 0;
    for (;;) {
        char path[1100];
        uint64_t limit, wgen;
        size_t want, pos = 0;
        int fd;

        pthread_mutex_lock(&sp->lock);
        wgen = sp->wgen;
        limit = sp->rgen == wgen ? sp->wsize : UINT64_MAX;
        pthread_mutex_unlock(&sp->lock);
        seg_path(sp, sp->rgen, path, sizeof(path));
        if (limit == UINT64_MAX) {
            limit = file_size(path);
        }
        if (sp->roff >= limit) {
            if (sp->rgen < wgen) {
                next_segment(sp);
                continue;
            }
            return GV_OK;
        }
        want = limit - sp->roff > READ_MAX ? READ_MAX : (size_t)(limit - sp->roff);
        gv_buf_reset(&sp->rbuf);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            if (sp->rgen < wgen) {
                next_segment(sp);
                continue;
            }
            return GV_EIO;
        }
        while (sp->rbuf.len < want) {
            char tmp[65536];
            size_t chunk = want - sp->rbuf.len > sizeof(tmp) ? sizeof(tmp) : want - sp->rbuf.len;
            ssize_t r = pread(fd, tmp, chunk, (off_t)(sp->roff + sp->rbuf.len));
            if (r <= 0 || gv_buf_append(&sp->rbuf, tmp, (size_t)r) != GV_OK) {
                break;
            }
        }
        close(fd);
        while (pos < sp->rbuf.len && *n < max) {
            unsigned type;
            const uint8_t *p;
            size_t plen, used;
            struct gv_event_meta meta;
            if (gv_frame_parse(sp->rbuf.data + pos, sp->rbuf.len - pos, &type, &p, &plen, &used) !=
                GV_OK) {
                break;
            }
            if (type == GV_FRAME_EVENT && gv_event_decode(p, plen, &recs[*n], &meta) == GV_OK) {
                (*n)++;
            }
            pos += used;
            sp->held_n++;
        }
        if (pos == 0) {
            /* A torn frame at the end of a closed segment (a crash mid-write):
             * nothing more will come, so the rest of it is skipped. */
            if (sp->rgen < wgen) {
                next_segment(sp);
                continue;
            }
            return GV_OK;
        }
        sp->held_end = sp->roff + pos;
        sp->held_bytes = pos;
        if (*n == 0) {
            /* Only undecodable frames: step over them without a request. */
            (void)ex_otlp_spool_ack(sp);
            continue;
        }
        return GV_OK;
    }
}

gv_rc ex_otlp_spool_ack(struct ex_otlp_spool *sp)
{
    gv_rc rc;

    if (sp->held_bytes == 0) {
        return GV_OK;
    }
    sp->roff = sp->held_end;
    rc = cursor_save(sp);
    pthread_mutex_lock(&sp->lock);
    sp->pending_bytes -= sp->held_bytes <= sp->pending_bytes ? sp->held_bytes : sp->pending_bytes;
    sp->pending_recs -= sp->held_n <= sp->pending_recs ? sp->held_n : sp->pending_recs;
    pthread_mutex_unlock(&sp->lock);
    sp->held_bytes = 0;
    sp->held_n = 0;
    return rc;
}

uint64_t ex_otlp_spool_pending(struct ex_otlp_spool *sp)
{
    uint64_t n;

    pthread_mutex_lock(&sp->lock);
    n = sp->pending_recs;
    pthread_mutex_unlock(&sp->lock);
    return n;
}
