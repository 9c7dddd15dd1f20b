/* core/gv_log.h - one key=value (or JSON) line per log entry */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GV_LOG_H
#define GV_LOG_H

enum gv_log_level { GV_LOG_ERROR = 0, GV_LOG_WARN, GV_LOG_INFO, GV_LOG_DEBUG };
enum gv_log_format { GV_LOG_TEXT = 0, GV_LOG_JSON };

extern int gv_log_level_current;

/* Process-wide settings; call before starting threads. */
void gv_log_set_level(enum gv_log_level level);
void gv_log_set_format(enum gv_log_format fmt);
/* Parse "error|warn|info|debug"; -1 when unknown. */
int gv_log_level_parse(const char *s);

/* Writes `ts=… level=… mod=<mod> msg="<msg>" <kv>` as one write(2) to stderr, so
 * lines from several threads never interleave. `kv` is a printf format for
 * extra key=value pairs (may be NULL). Never pass prompt text, keys or PII. */
void gv_log_write(enum gv_log_level level, const char *mod, const char *msg, const char *kvfmt,
                  ...) __attribute__((format(printf, 4, 5)));

/* gv_log(GV_LOG_INFO, "gateway", "listening", "addr=%s", addr): checks the
 * level before formatting anything. */
#define gv_log(level, mod, msg, ...)                                                               \
    do {                                                                                           \
        if ((int)(level) <= gv_log_level_current) {                                                \
            gv_log_write((level), (mod), (msg), __VA_ARGS__);                                      \
        }                                                                                          \
    } while (0)

#endif
