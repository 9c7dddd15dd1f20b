/* exporters/weave/weave_outbox.c - the calls waiting for the trace server, on disk */
/* SPDX-License-Identifier: Apache-2.0 */
#include "exporters/weave/weave.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/gv_file.h"
#include "core/gv_log.h"
#include "core/gv_mem.h"
#include "core/gv_paths.h"
#include "core/gv_time.h"

#define MOD "exporter:weave"
/* One read brings at most this much of the outbox in: a frame is at most 64 KiB, so it
 * always holds one, and a batch of small events needs far less. */
#define READ_CHUNK (256u << 10)
#define READ_PER_EVENT 2048u
/* Distinct gateways remembered; beyond it the oldest entry is reused. */
#define HELLOS_MAX 1024u

static bool same_hello(const struct gv_hello *a, const struct gv_hello *b)
{
    return strcmp(a->instance_id, b->instance_id) == 0 && strcmp(a->pack_name, b->pack_name) == 0 &&
           strcmp(a->pack_version, b->pack_version) == 0 && strcmp(a->chain, b->chain) == 0;
}

/* Insert or replace the entry for h's instance. */
static void hello_put(struct gv_hello *arr, size_t *n, const struct gv_hello *h)
{
    size_t i;

    for (i = 0; i < *n; i++) {
        if (strcmp(arr[i].instance_id, h->instance_id) == 0) {
            arr[i] = *h;
            return;
        }
    }
    if (*n < HELLOS_MAX) {
        arr[(*n)++] = *h;
        return;
    }
    memmove(&arr[0], &arr[1], (HELLOS_MAX - 1) * sizeof(arr[0]));
    arr[HELLOS_MAX - 1] = *h;
}

static const struct gv_hello *hello_get(const struct gv_hello *arr, size_t n, const char *id)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (strcmp(arr[i].instance_id, id) == 0) {
            return &arr[i];
        }
    }
    return NULL;
}

static gv_rc cursor_save(struct ex_weave_outbox *ob)
{
    char text[32];
    int n = snprintf(text, sizeof(text), "%" PRIu64 "\n", ob->cursor);

    return gv_file_replace(ob->cursor_path, text, (size_t)n);
}

static uint64_t cursor_load(const char *path)
{
    char text[32];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t r;
    uint64_t v = 0;

    if (fd < 0) {
        return 0;
    }
    r = read(fd, text, sizeof(text) - 1);
    close(fd);
    if (r <= 0) {
        return 0;
    }
    text[r] = '\0';
    if (sscanf(text, "%" SCNu64, &v) != 1) {
        return 0;
    }
    return v;
}

static gv_rc pread_full(int fd, void *p, size_t n, uint64_t off)
{
    size_t got = 0;

    while (got < n) {
        ssize_t r = pread(fd, (char *)p + got, n - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return GV_EIO;
        }
        got += (size_t)r;
    }
    return GV_OK;
}

/* Learns every hello in the file and cuts a torn tail (a crash mid-append). */
static gv_rc scan(struct ex_weave_outbox *ob, uint64_t from)
{
    uint8_t hdr[GV_FRAME_HDR];
    uint8_t *payload = gv_malloc(GV_FRAME_MAX);
    uint64_t off = 0;
    gv_rc rc = GV_OK;

    while (off + GV_FRAME_HDR <= ob->size) {
        uint32_t len;
        if (pread_full(ob->fd, hdr, GV_FRAME_HDR, off) != GV_OK) {
            break;
        }
        len = gv_get_u32le(hdr);
        if (len > GV_FRAME_MAX || off + GV_FRAME_HDR + len > ob->size ||
            (hdr[4] != GV_FRAME_HELLO && hdr[4] != GV_FRAME_EVENT)) {
            break;
        }
        if (hdr[4] == GV_FRAME_HELLO) {
            struct gv_hello h;
            if (pread_full(ob->fd, payload, len, off + GV_FRAME_HDR) != GV_OK ||
                gv_hello_decode(payload, len, &h) != GV_OK) {
                break;
            }
            hello_put(ob->known, &ob->nknown, &h);
            hello_put(ob->written, &ob->nwritten, &h);
        }
        else if (off >= from) {
            atomic_fetch_add(&ob->pending_calls, 1);
        }
        off += GV_FRAME_HDR + len;
    }
    if (off < ob->size) {
        gv_log(GV_LOG_WARN, MOD, "outbox tail cut", "path=%s bytes=%" PRIu64, ob->path,
               ob->size - off);
        if (ftruncate(ob->fd, (off_t)off) != 0) {
            rc = GV_EIO;
        }
        ob->size = off;
    }
    gv_free(payload);
    return rc;
}

gv_rc ex_weave_outbox_open(struct ex_weave_outbox *ob, const char *dir, uint64_t max_bytes,
                           bool fsync)
{
    struct stat st;
    int n1, n2;
    gv_rc rc;

    memset(ob, 0, sizeof(*ob));
    ob->fd = -1;
    ob->lock_fd = -1;
    pthread_mutex_init(&ob->lock, NULL);
    ob->max_bytes = max_bytes ? max_bytes : EX_WEAVE_OUTBOX_MAX_DEFAULT;
    ob->fsync = fsync;
    ob->written = gv_calloc(HELLOS_MAX, sizeof(*ob->written));
    ob->known = gv_calloc(HELLOS_MAX, sizeof(*ob->known));
    n1 = snprintf(ob->path, sizeof(ob->path), "%s/outbox", dir);
    n2 = snprintf(ob->cursor_path, sizeof(ob->cursor_path), "%s/cursor", dir);
    if (n1 < 0 || n2 < 0 || (size_t)n1 >= sizeof(ob->path) ||
        (size_t)n2 >= sizeof(ob->cursor_path)) {
        return GV_E2BIG;
    }
    rc = gv_mkdir_p(dir, 0700);
    if (rc) {
        return rc;
    }
    {
        char lock[1100];
        snprintf(lock, sizeof(lock), "%s/lock", dir);
        ob->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (ob->lock_fd < 0 || flock(ob->lock_fd, LOCK_EX | LOCK_NB) != 0) {
            gv_log(GV_LOG_ERROR, MOD, "another process uses this Weave outbox", "dir=%s", dir);
            return GV_EIO;
        }
    }
    ob->fd = open(ob->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (ob->fd < 0 || fstat(ob->fd, &st) != 0) {
        return GV_EIO;
    }
    ob->size = (uint64_t)st.st_size;
    ob->cursor = cursor_load(ob->cursor_path);
    /* The file was emptied after the cursor was last saved: all of it is new. */
    if (ob->cursor > ob->size) {
        ob->cursor = 0;
    }
    rc = scan(ob, ob->cursor);
    if (rc) {
        return rc;
    }
    if (ob->cursor > ob->size) {
        ob->cursor = 0; /* the tail cut took the cursor's frame */
    }
    return GV_OK;
}

void ex_weave_outbox_close(struct ex_weave_outbox *ob)
{
    if (ob->fd >= 0) {
        (void)cursor_save(ob);
        close(ob->fd);
        ob->fd = -1;
    }
    if (ob->lock_fd >= 0) {
        close(ob->lock_fd);
        ob->lock_fd = -1;
    }
    gv_free(ob->written);
    gv_free(ob->known);
    ob->written = ob->known = NULL;
    gv_free(ob->rmem);
    ob->rmem = NULL;
    pthread_mutex_destroy(&ob->lock);
}

static gv_rc append_frame(struct gv_buf *b, enum gv_frame_type type, size_t mark)
{
    /* The payload was appended after a reserved header at mark. */
    uint8_t *hdr = (uint8_t *)b->data + mark;

    gv_put_u32le(hdr, (uint32_t)(b->len - mark - GV_FRAME_HDR));
    hdr[4] = (uint8_t)type;
    return b->len - mark - GV_FRAME_HDR > GV_FRAME_MAX ? GV_E2BIG : GV_OK;
}

gv_rc ex_weave_outbox_append(struct ex_weave_outbox *ob, const struct ex_event *evs, size_t n)
{
    static const char zero[GV_FRAME_HDR];
    struct gv_buf b;
    size_t i, mark;
    gv_rc rc = GV_OK;

    gv_buf_init(&b, 0);
    pthread_mutex_lock(&ob->lock);
    for (i = 0; i < n && rc == GV_OK; i++) {
        const struct gv_hello *w = hello_get(ob->written, ob->nwritten, evs[i].instance_id);
        if (!w || !same_hello(w, evs[i].hello)) {
            struct gv_hello h = *evs[i].hello;
            /* The hello names the instance its events carry. */
            snprintf(h.instance_id, sizeof(h.instance_id), "%s", evs[i].instance_id);
            mark = b.len;
            rc = gv_buf_append(&b, zero, sizeof(zero));
            if (rc == GV_OK) {
                rc = gv_hello_encode(&h, &b);
            }
            if (rc == GV_OK) {
                rc = append_frame(&b, GV_FRAME_HELLO, mark);
            }
            if (rc == GV_OK) {
                hello_put(ob->written, &ob->nwritten, &h);
            }
        }
        mark = b.len;
        if (rc == GV_OK) {
            rc = gv_buf_append(&b, zero, sizeof(zero));
        }
        if (rc == GV_OK) {
            rc = gv_event_encode(evs[i].rec, evs[i].instance_id, evs[i].seq, &b);
        }
        if (rc == GV_OK) {
            rc = append_frame(&b, GV_FRAME_EVENT, mark);
        }
    }
    if (rc == GV_OK && ob->size + b.len > ob->max_bytes) {
        rc = GV_E2BIG;
    }
    if (rc == GV_OK && b.len) {
        if (gv_file_write_all(ob->fd, b.data, b.len) != GV_OK ||
            (ob->fsync && fdatasync(ob->fd) != 0)) {
            /* A partial write is cut at the next open (torn tail). */
            rc = GV_EIO;
        }
        else {
            ob->size += b.len;
            atomic_fetch_add(&ob->pending_calls, n);
        }
    }
    if (rc) {
        /* What this call meant to write may be half in `written`: forget it all
         * so the next append writes its hellos again. */
        ob->nwritten = 0;
    }
    pthread_mutex_unlock(&ob->lock);
    gv_buf_free(&b);
    return rc;
}

static void range_insert(struct ex_weave_range *arr, size_t *n, const struct ex_weave_range *r)
{
    size_t i = *n;

    if (*n == EX_WEAVE_RANGES_MAX) {
        return; /* cannot happen: at most one range per sending thread is out */
    }
    while (i > 0 && arr[i - 1].start > r->start) {
        arr[i] = arr[i - 1];
        i--;
    }
    arr[i] = *r;
    (*n)++;
}

/* Parses events from ob->rmem[0..len) (the outbox from `start`), at most max. */
static void parse_events(struct ex_weave_outbox *ob, size_t len, uint64_t start,
                         struct ex_weave_item *items, size_t max, size_t *n, uint64_t *end)
{
    size_t off = 0;

    *n = 0;
    while (*n < max) {
        unsigned type;
        const uint8_t *payload;
        size_t plen, used;

        if (gv_frame_parse(ob->rmem + off, len - off, &type, &payload, &plen, &used) != GV_OK) {
            break;
        }
        if (type == GV_FRAME_HELLO) {
            struct gv_hello h;
            if (gv_hello_decode(payload, plen, &h) == GV_OK) {
                hello_put(ob->known, &ob->nknown, &h);
            }
        }
        else if (type == GV_FRAME_EVENT) {
            struct ex_weave_item *it = &items[*n];
            const struct gv_hello *h;
            /* An event that does not decode cannot be sent; it is skipped. */
            if (gv_event_decode(payload, plen, &it->rec, &it->meta) == GV_OK) {
                h = hello_get(ob->known, ob->nknown, it->meta.instance_id);
                if (h) {
                    it->hello = *h;
                }
                else {
                    memset(&it->hello, 0, sizeof(it->hello));
                    snprintf(it->hello.instance_id, sizeof(it->hello.instance_id), "%s",
                             it->meta.instance_id);
                }
                (*n)++;
            }
        }
        off += used;
    }
    *end = start + off;
}

gv_rc ex_weave_outbox_claim(struct ex_weave_outbox *ob, struct ex_weave_item *items, size_t max,
                            size_t *n, struct ex_weave_range *r)
{
    uint64_t start, want, end;
    bool again = false;
    gv_rc rc = GV_OK;

    *n = 0;
    memset(r, 0, sizeof(*r));
    if (max == 0) {
        return GV_OK;
    }
    /* Held while reading: the reader state (hellos, scratch) is shared by the
     * sending threads, and the ingest thread only waits for one small read. */
    pthread_mutex_lock(&ob->lock);
    if (!ob->rmem) {
        ob->rmem = gv_malloc(READ_CHUNK);
    }
    if (ob->nretry > 0) {
        *r = ob->retry[0];
        memmove(&ob->retry[0], &ob->retry[1], (ob->nretry - 1) * sizeof(ob->retry[0]));
        ob->nretry--;
        start = r->start;
        want = r->end - r->start;
        again = true;
    }
    else {
        if (ob->read_off < ob->cursor) {
            ob->read_off = ob->cursor;
        }
        start = ob->read_off;
        if (start >= ob->size) {
            goto out;
        }
        want = (uint64_t)max * READ_PER_EVENT;
        if (want < GV_FRAME_HDR + GV_FRAME_MAX) {
            want = GV_FRAME_HDR + GV_FRAME_MAX;
        }
        if (want > READ_CHUNK) {
            want = READ_CHUNK;
        }
        if (want > ob->size - start) {
            want = ob->size - start;
        }
    }
    rc = pread_full(ob->fd, ob->rmem, (size_t)want, start);
    if (rc) {
        if (again) {
            range_insert(ob->retry, &ob->nretry, r);
        }
        goto out;
    }
    parse_events(ob, (size_t)want, start, items, max, n, &end);
    r->start = start;
    r->end = again ? r->end : end;
    r->n = *n;
    if (!again) {
        ob->read_off = end;
    }
out:
    pthread_mutex_unlock(&ob->lock);
    return rc;
}

gv_rc ex_weave_outbox_done(struct ex_weave_outbox *ob, const struct ex_weave_range *r)
{
    gv_rc rc = GV_OK;
    uint64_t now = gv_mono_us();
    bool moved = false;

    pthread_mutex_lock(&ob->lock);
    if (r->end > r->start) {
        range_insert(ob->done, &ob->ndone, r);
    }
    if (atomic_load(&ob->pending_calls) >= r->n) {
        atomic_fetch_sub(&ob->pending_calls, r->n);
    }
    else {
        atomic_store(&ob->pending_calls, 0);
    }
    while (ob->ndone > 0 && ob->done[0].start <= ob->cursor) {
        if (ob->done[0].end > ob->cursor) {
            ob->cursor = ob->done[0].end;
        }
        memmove(&ob->done[0], &ob->done[1], (ob->ndone - 1) * sizeof(ob->done[0]));
        ob->ndone--;
        moved = true;
    }
    if (ob->size > 0 && ob->cursor >= ob->size && ob->read_off >= ob->size && ob->nretry == 0) {
        /* All sent and nothing claimed: empty the file. The cursor is saved
         * before the lock is released, so no append lands behind a stale one. */
        if (ftruncate(ob->fd, 0) != 0) {
            rc = GV_EIO;
        }
        else {
            ob->size = 0;
            ob->cursor = 0;
            ob->read_off = 0;
            ob->nwritten = 0;
            rc = cursor_save(ob);
            ob->cursor_saved_us = now;
        }
    }
    else if (moved && now - ob->cursor_saved_us >= 250000u) {
        /* Throttled: a crash re-sends at most this much, under the same ids. */
        rc = cursor_save(ob);
        ob->cursor_saved_us = now;
    }
    pthread_mutex_unlock(&ob->lock);
    return rc;
}

void ex_weave_outbox_retry(struct ex_weave_outbox *ob, const struct ex_weave_range *r)
{
    pthread_mutex_lock(&ob->lock);
    range_insert(ob->retry, &ob->nretry, r);
    pthread_mutex_unlock(&ob->lock);
}

uint64_t ex_weave_outbox_pending(struct ex_weave_outbox *ob)
{
    uint64_t v;

    pthread_mutex_lock(&ob->lock);
    v = ob->size - ob->cursor;
    pthread_mutex_unlock(&ob->lock);
    return v;
}
