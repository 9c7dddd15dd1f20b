/* core/gv_log.c - one key=value (or JSON) line per log entry */
/* SPDX-License-Identifier: Apache-2.0 */
#include "core/gv_log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/gv_buf.h"
#include "core/gv_file.h"
#include "core/gv_mem.h"
#include "core/gv_thread.h"
#include "core/gv_time.h"

/* Caps on one entry: the kv text, and the whole line with its newline. */
#define KV_MAX 16384
#define LINE_MAX_BYTES 32768
/* Ordinary lines fit these stack buffers; only longer ones touch the heap. */
#define KV_STACK 2048
#define LINE_STACK 4096
/* Room kept behind each queue buffer for the dropped-lines notice. */
#define NOTICE_MAX 256
#define FLUSH_MS 10
/* Empty flushes in a row (~1 s) after which the writer parks until a line comes. */
#define PARK_AFTER_EMPTY 100u
#define ASYNC_MIN_BYTES 1024

int gv_log_level_current = GV_LOG_INFO;
static enum gv_log_format log_format = GV_LOG_TEXT;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void gv_log_set_level(enum gv_log_level level)
{
    gv_log_level_current = (int)level;
}

void gv_log_set_format(enum gv_log_format fmt)
{
    log_format = fmt;
}

int gv_log_level_parse(const char *s)
{
    int i;
    for (i = 0; i < 4; i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

/* ---- formatting ------------------------------------------------------------------------- */

/* A line being built: starts in the caller's stack buffer and moves to the heap
 * (once, at LINE_MAX_BYTES) only when it outgrows it. cap excludes the byte kept
 * for the newline. Once full, every later append is ignored. */
struct lbuf {
    char *p;
    size_t len;
    size_t cap;
    int heap;
    int full;
};

/* Length of p[0..len) without a trailing incomplete UTF-8 sequence. */
static size_t utf8_trim(const char *p, size_t len)
{
    size_t k = len;
    unsigned char lead;
    size_t need;

    while (k > 0 && len - k < 3 && ((unsigned char)p[k - 1] & 0xC0) == 0x80) {
        k--;
    }
    if (k == 0) {
        return len;
    }
    lead = (unsigned char)p[k - 1];
    if ((lead & 0xC0) != 0xC0) {
        return len;
    }
    need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
    return len - (k - 1) < need ? k - 1 : len;
}

static int lbuf_grow(struct lbuf *b, size_t n)
{
    char *h;

    if (b->heap || b->cap >= LINE_MAX_BYTES - 1) {
        return b->len + n <= b->cap;
    }
    h = gv_malloc(LINE_MAX_BYTES);
    memcpy(h, b->p, b->len);
    b->p = h;
    b->cap = LINE_MAX_BYTES - 1;
    b->heap = 1;
    return b->len + n <= b->cap;
}

/* Appends what fits of p[0..n); the cut lands on a character boundary later. */
static void lbuf_put(struct lbuf *b, const char *p, size_t n)
{
    if (b->full) {
        return;
    }
    if (b->len + n > b->cap && !lbuf_grow(b, n)) {
        n = b->cap - b->len;
        b->full = 1;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

/* Appends p[0..n) whole or not at all, so an escape sequence is never cut. */
static void lbuf_put_unit(struct lbuf *b, const char *p, size_t n)
{
    if (b->full) {
        return;
    }
    if (b->len + n > b->cap && !lbuf_grow(b, n)) {
        b->full = 1;
        return;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void lbuf_puts(struct lbuf *b, const char *s)
{
    lbuf_put(b, s, strlen(s));
}

/* One byte of a JSON string body, escaped as gv_buf_append_json_str escapes it; an
 * escape is one unit, so a cut line never ends inside one. */
static void json_char(struct lbuf *b, unsigned char c)
{
    char esc[6];

    lbuf_put_unit(b, esc, gv_json_escape_byte(c, esc));
}

static void json_str(struct lbuf *b, const char *s, size_t n)
{
    size_t i;

    lbuf_put_unit(b, "\"", 1);
    for (i = 0; i < n && !b->full; i++) {
        json_char(b, (unsigned char)s[i]);
    }
    lbuf_put_unit(b, "\"", 1);
}

/* Appends `k=v k2="v 2"` pairs as JSON members. The kv text is produced by
 * our own format strings, so a simple tokenizer that honours quotes is enough. */
static void kv_to_json(struct lbuf *out, const char *kv)
{
    const char *p = kv;
    while (*p && !out->full) {
        const char *k, *v;
        size_t klen;
        while (*p == ' ') {
            p++;
        }
        if (!*p) {
            break;
        }
        k = p;
        while (*p && *p != '=' && *p != ' ') {
            p++;
        }
        klen = (size_t)(p - k);
        if (*p != '=') {
            continue;
        }
        p++;
        lbuf_put_unit(out, ",", 1);
        json_str(out, k, klen);
        lbuf_put_unit(out, ":", 1);
        if (*p == '"') {
            /* Unquote in place of a copy: drop the backslash of each escape. */
            p++;
            lbuf_put_unit(out, "\"", 1);
            while (*p && *p != '"') {
                if (*p == '\\' && p[1]) {
                    p++;
                }
                json_char(out, (unsigned char)*p++);
            }
            if (*p == '"') {
                p++;
            }
            lbuf_put_unit(out, "\"", 1);
        }
        else {
            v = p;
            while (*p && *p != ' ') {
                p++;
            }
            json_str(out, v, (size_t)(p - v));
        }
    }
}

/* "2024-05-01T12:00:00.123Z" into ts (at least 32 bytes). gv_time_rfc3339 keeps the
 * date part per thread: gmtime_r takes glibc's process-wide timezone lock, which every
 * worker would otherwise queue on. */
static void format_ts(char *ts, size_t size)
{
    gv_time_rfc3339(gv_wall_us(), ts, size);
}

/* Builds the whole line, newline included, into b. */
static void format_line(struct lbuf *b, const char *ts, enum gv_log_level level, const char *mod,
                        const char *msg, const char *kv, size_t kvlen)
{
    if (log_format == GV_LOG_JSON) {
        lbuf_puts(b, "{\"ts\":\"");
        lbuf_puts(b, ts);
        lbuf_puts(b, "\",\"level\":\"");
        lbuf_puts(b, level_names[level]);
        lbuf_puts(b, "\",\"mod\":");
        json_str(b, mod, strlen(mod));
        lbuf_put_unit(b, ",\"msg\":", 7);
        json_str(b, msg, strlen(msg));
        if (kvlen) {
            kv_to_json(b, kv);
        }
        lbuf_put_unit(b, "}", 1);
    }
    else {
        lbuf_puts(b, "ts=");
        lbuf_puts(b, ts);
        lbuf_puts(b, " level=");
        lbuf_puts(b, level_names[level]);
        lbuf_puts(b, " mod=");
        lbuf_puts(b, mod);
        lbuf_puts(b, " msg=");
        json_str(b, msg, strlen(msg));
        if (kvlen) {
            lbuf_put_unit(b, " ", 1);
            lbuf_put(b, kv, kvlen);
        }
    }
    if (b->full) {
        b->len = utf8_trim(b->p, b->len);
    }
    /* cap always keeps this byte free. */
    b->p[b->len++] = '\n';
}

/* ---- asynchronous queue ----------------------------------------------------------------- */

/* Appenders fill buf under mu; the writer swaps it with spare (so appenders keep
 * going while it writes) and writes the old one outside the lock. Both buffers
 * are cap + NOTICE_MAX bytes. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    char *buf;
    size_t len;
    size_t cap;
    char *spare;
    uint64_t dropped;
    /* The writer was told to run now; appenders signal at most once per batch. */
    int kicked;
    /* The writer waits without a deadline: the next appender wakes it. */
    int parked;
    int stopping;
    /* Appenders may queue; cleared by the writer when it leaves, under mu, only
     * once the queue is empty. */
    int running;
} q = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* Serialises start and stop (main thread and the atexit hook). */
static pthread_mutex_t ctl_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
/* Fast path for gv_log_write: 0 means write synchronously without locking. */
static atomic_int async_on;

/* Returns 0 when the queue is not running: the caller writes the line itself. */
static int enqueue(enum gv_log_level level, const char *p, size_t n)
{
    int wake = 0;

    pthread_mutex_lock(&q.mu);
    if (!q.running) {
        pthread_mutex_unlock(&q.mu);
        return 0;
    }
    /* After a drop, later lines are dropped too until the writer takes the
     * buffer, so the lost lines form one gap that the notice marks exactly. */
    if (q.dropped == 0 && n <= q.cap - q.len) {
        memcpy(q.buf + q.len, p, n);
        q.len += n;
        if (!q.kicked && (level == GV_LOG_ERROR || q.len > q.cap / 2 || q.parked)) {
            q.kicked = 1;
            wake = 1;
        }
    }
    else {
        q.dropped++;
        if (!q.kicked) {
            q.kicked = 1;
            wake = 1;
        }
    }
    pthread_mutex_unlock(&q.mu);
    /* The cv lives for the whole process, so signalling after a concurrent stop
     * is harmless. */
    if (wake) {
        pthread_cond_signal(&q.cv);
    }
    return 1;
}

static size_t format_notice(char *dst, size_t size, uint64_t dropped)
{
    char ts[32];
    char kv[32];
    struct lbuf b;

    format_ts(ts, sizeof(ts));
    snprintf(kv, sizeof(kv), "dropped=%llu", (unsigned long long)dropped);
    b.p = dst;
    b.len = 0;
    /* NOTICE_MAX is far more than the notice needs; never grows to the heap. */
    b.cap = size - 1;
    b.heap = 1;
    b.full = 0;
    format_line(&b, ts, GV_LOG_WARN, "log", "log lines dropped", kv, strlen(kv));
    return b.len;
}

/* Under load the writer flushes every FLUSH_MS, so appenders never pay a wake-up.
 * An idle process would then wake it 100 times a second for nothing: after
 * PARK_AFTER_EMPTY empty flushes it parks, and the first line after that wakes it
 * (one signal per idle spell, written at once). */
static void *writer_main(void *arg)
{
    struct timespec dl;
    char *batch;
    size_t n;
    uint64_t dropped;
    unsigned empty = 0;

    (void)arg;
    pthread_mutex_lock(&q.mu);
    for (;;) {
        if (!q.kicked && !q.stopping) {
            /* Parked, the wait has no deadline: appenders see q.parked and signal. */
            q.parked = empty >= PARK_AFTER_EMPTY;
            if (!q.parked) {
                gv_time_deadline(CLOCK_MONOTONIC, FLUSH_MS * 1000u, &dl);
            }
            while (!q.kicked && !q.stopping) {
                if (q.parked) {
                    pthread_cond_wait(&q.cv, &q.mu);
                }
                else if (pthread_cond_timedwait(&q.cv, &q.mu, &dl) == ETIMEDOUT) {
                    break;
                }
            }
            q.parked = 0;
        }
        if (q.len == 0 && q.dropped == 0) {
            q.kicked = 0;
            if (q.stopping) {
                q.running = 0;
                break;
            }
            if (empty < PARK_AFTER_EMPTY) {
                empty++;
            }
            continue;
        }
        empty = 0;
        batch = q.buf;
        n = q.len;
        dropped = q.dropped;
        q.buf = q.spare;
        q.spare = NULL;
        q.len = 0;
        q.dropped = 0;
        q.kicked = 0;
        pthread_mutex_unlock(&q.mu);

        if (dropped) {
            n += format_notice(batch + n, NOTICE_MAX, dropped);
        }
        /* A failed write (stderr closed, EAGAIN) loses the batch, as a failed
         * synchronous write loses its line. */
        (void)gv_file_write_all(STDERR_FILENO, batch, n);

        pthread_mutex_lock(&q.mu);
        q.spare = batch;
    }
    pthread_mutex_unlock(&q.mu);
    return NULL;
}

/* exit() runs this in the exiting thread while the other threads, the log
 * writer included, still run: stopping the writer normally is safe there, and
 * it keeps the order of what was queued. Only _exit, a fatal signal or a stderr
 * that never drains can lose queued lines. */
static void flush_at_exit(void)
{
    gv_log_async_stop();
}

static void init_once_fn(void)
{
    pthread_condattr_t ca;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q.cv, &ca);
    pthread_condattr_destroy(&ca);
    atexit(flush_at_exit);
}

gv_rc gv_log_async_start_bytes(size_t bytes)
{
    gv_rc rc = GV_OK;

    pthread_once(&init_once, init_once_fn);
    pthread_mutex_lock(&ctl_mu);
    if (atomic_load(&async_on)) {
        goto out;
    }
    if (bytes < ASYNC_MIN_BYTES) {
        bytes = ASYNC_MIN_BYTES;
    }
    pthread_mutex_lock(&q.mu);
    q.buf = gv_malloc(bytes + NOTICE_MAX);
    q.spare = gv_malloc(bytes + NOTICE_MAX);
    q.cap = bytes;
    q.len = 0;
    q.dropped = 0;
    q.kicked = 0;
    q.parked = 0;
    q.stopping = 0;
    q.running = 1;
    pthread_mutex_unlock(&q.mu);
    rc = gv_thread_start(&q.thread, "kt-log", GV_THREAD_BACKGROUND, writer_main, NULL);
    if (rc) {
        pthread_mutex_lock(&q.mu);
        q.running = 0;
        gv_free(q.buf);
        gv_free(q.spare);
        q.buf = NULL;
        q.spare = NULL;
        pthread_mutex_unlock(&q.mu);
        goto out;
    }
    atomic_store(&async_on, 1);
out:
    pthread_mutex_unlock(&ctl_mu);
    return rc;
}

gv_rc gv_log_async_start(void)
{
    return gv_log_async_start_bytes(GV_LOG_ASYNC_BYTES);
}

void gv_log_async_stop(void)
{
    pthread_mutex_lock(&ctl_mu);
    if (!atomic_load(&async_on)) {
        goto out;
    }
    pthread_mutex_lock(&q.mu);
    q.stopping = 1;
    pthread_mutex_unlock(&q.mu);
    pthread_cond_signal(&q.cv);
    pthread_join(q.thread, NULL);
    /* The writer cleared running with the queue empty: from here every line is
     * written by its caller, after everything that was queued. */
    atomic_store(&async_on, 0);
    pthread_mutex_lock(&q.mu);
    gv_free(q.buf);
    gv_free(q.spare);
    q.buf = NULL;
    q.spare = NULL;
    q.len = 0;
    q.cap = 0;
    pthread_mutex_unlock(&q.mu);
out:
    pthread_mutex_unlock(&ctl_mu);
}

/* Formats one whole line (on the stack unless it is long) and queues or writes it. */
static void write_line(enum gv_log_level level, const char *ts, const char *mod, const char *msg,
                       const char *kv, size_t kvlen)
{
    char line_stack[LINE_STACK];
    struct lbuf line;
    ssize_t w;

    line.p = line_stack;
    line.len = 0;
    line.cap = sizeof(line_stack) - 1;
    line.heap = 0;
    line.full = 0;
    format_line(&line, ts, level, mod, msg, kv, kvlen);
    if (!atomic_load_explicit(&async_on, memory_order_acquire) ||
        !enqueue(level, line.p, line.len)) {
        w = write(STDERR_FILENO, line.p, line.len);
        (void)w;
    }
    if (line.heap) {
        gv_free(line.p);
    }
}

/* ---- entry point ------------------------------------------------------------------------ */

void gv_log_write(enum gv_log_level level, const char *mod, const char *msg, const char *kvfmt, ...)
{
    char ts[32];
    char kv_stack[KV_STACK];
    char *kv = kv_stack;
    size_t kvlen = 0;
    va_list ap;
    int n;

    format_ts(ts, sizeof(ts));
    kv_stack[0] = '\0';
    if (kvfmt) {
        va_start(ap, kvfmt);
        n = vsnprintf(kv_stack, sizeof(kv_stack), kvfmt, ap);
        va_end(ap);
        if (n > 0 && (size_t)n < sizeof(kv_stack)) {
            kvlen = (size_t)n;
        }
        else if (n > 0) {
            /* Rare: a long kv goes to the heap, cut at KV_MAX. */
            kvlen = (size_t)n < KV_MAX ? (size_t)n : KV_MAX;
            kv = gv_malloc(kvlen + 1);
            va_start(ap, kvfmt);
            vsnprintf(kv, kvlen + 1, kvfmt, ap);
            va_end(ap);
            if ((size_t)n > KV_MAX) {
                kvlen = utf8_trim(kv, kvlen);
                kv[kvlen] = '\0';
            }
        }
    }
    write_line(level, ts, mod, msg, kv, kvlen);
    if (kv != kv_stack) {
        gv_free(kv);
    }
}

void gv_log_write_kv(enum gv_log_level level, const char *mod, const char *msg, const char *kv,
                     size_t kvlen)
{
    char ts[32];

    if (!kv) {
        kv = "";
        kvlen = 0;
    }
    if (kvlen > KV_MAX) {
        kvlen = utf8_trim(kv, KV_MAX);
    }
    format_ts(ts, sizeof(ts));
    write_line(level, ts, mod, msg, kv, kvlen);
}
