/* core/gv_log.h - one key=value (or JSON) line per log entry */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GV_LOG_H
#define GV_LOG_H

#include <stddef.h>

#include "core/gv_rc.h"

enum gv_log_level { GV_LOG_ERROR = 0, GV_LOG_WARN, GV_LOG_INFO, GV_LOG_DEBUG };
enum gv_log_format { GV_LOG_TEXT = 0, GV_LOG_JSON };

extern int gv_log_level_current;

/* Process-wide settings; call before starting threads. */
void gv_log_set_level(enum gv_log_level level);
void gv_log_set_format(enum gv_log_format fmt);
/* Parse "error|warn|info|debug"; -1 when unknown. */
int gv_log_level_parse(const char *s);

/* Writes `ts=… level=… mod=<mod> msg="<msg>" <kv>` to stderr as one whole line, so
 * lines from several threads never interleave. `kv` is a printf format for
 * extra key=value pairs (may be NULL). Never pass prompt text, keys or PII.
 * The kv text is cut at 16 KiB and the line at 32 KiB, both on a UTF-8 character
 * boundary. Ordinary lines are formatted on the stack, without allocating.
 * Synchronous mode (the default): one write(2) from the calling thread.
 * Asynchronous mode (gv_log_async_start): the line is copied into a bounded
 * queue and written later by the log thread; the caller makes no syscall. */
void gv_log_write(enum gv_log_level level, const char *mod, const char *msg, const char *kvfmt, ...)
    __attribute__((format(printf, 4, 5)));

/* gv_log_write with the key=value text already built (kvlen bytes): for the line
 * logged per request, where formatting it with printf was a tenth of the
 * gateway's own work. The same cuts apply. */
void gv_log_write_kv(enum gv_log_level level, const char *mod, const char *msg, const char *kv,
                     size_t kvlen);

/* True when a line at `level` would be written: check it before building one. */
#define gv_log_enabled(level) ((int)(level) <= gv_log_level_current)

/* gv_log(GV_LOG_INFO, "gateway", "listening", "addr=%s", addr): checks the
 * level before formatting anything. */
#define gv_log(level, mod, msg, ...)                                                               \
    do {                                                                                           \
        if ((int)(level) <= gv_log_level_current) {                                                \
            gv_log_write((level), (mod), (msg), __VA_ARGS__);                                      \
        }                                                                                          \
    } while (0)

/* Default bound of the asynchronous queue. */
#define GV_LOG_ASYNC_BYTES (1024 * 1024)

/* Starts asynchronous mode with a queue of GV_LOG_ASYNC_BYTES: from now on
 * gv_log_write only copies the line into the queue, and a background thread
 * ("kt-log") writes the queue to stderr every ~10 ms, sooner when it is half
 * full or holds an error line, with one write(2) per batch. Lines stay whole,
 * and the lines of one thread keep their order. A line that does not fit is
 * dropped and counted, and so is every line after it until the writer takes
 * the queue; then the writer emits
 * `level=warn mod=log msg="log lines dropped" dropped=N` exactly where the
 * lines went missing. GV_OK when started or already running; GV_EIO when the
 * thread cannot be created (the log stays synchronous). Thread-safe, but meant
 * for the main thread. An exit() without gv_log_async_stop flushes the queue
 * from an atexit hook. */
gv_rc gv_log_async_start(void);
/* gv_log_async_start with a queue bound of `bytes` (at least 1 KiB is used);
 * the bound is small in tests so that overflow is cheap to reach. */
gv_rc gv_log_async_start_bytes(size_t bytes);
/* Writes everything queued (and the dropped-lines notice, if due), joins the
 * log thread and returns to synchronous mode. Lines logged meanwhile by other
 * threads are either queued before the drain or written synchronously after
 * it, so no thread sees its lines reordered. No-op when not started. Blocks as
 * long as stderr does. */
void gv_log_async_stop(void);

#endif
