/* core/gv_log.c - one key=value (or JSON) line per log entry */
/* SPDX-License-Identifier: Apache-2.0 */
#include "core/gv_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "core/gv_buf.h"

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

/* Appends `k=v k2="v 2"` pairs as JSON members. The kv text is produced by
 * our own format strings, so a simple tokenizer that honours quotes is enough. */
static void kv_to_json(struct gv_buf *out, const char *kv)
{
    const char *p = kv;
    while (*p) {
        const char *k, *v, *end;
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
        gv_buf_append_str(out, ",");
        gv_buf_append_json_str(out, k, klen);
        gv_buf_append_str(out, ":");
        if (*p == '"') {
            struct gv_buf val;
            gv_buf_init(&val, 0);
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1]) {
                    p++;
                }
                gv_buf_append_char(&val, *p++);
            }
            if (*p == '"') {
                p++;
            }
            gv_buf_append_json_str(out, val.data ? val.data : "", val.len);
            gv_buf_free(&val);
        }
        else {
            v = p;
            while (*p && *p != ' ') {
                p++;
            }
            end = p;
            gv_buf_append_json_str(out, v, (size_t)(end - v));
        }
    }
}

void gv_log_write(enum gv_log_level level, const char *mod, const char *msg, const char *kvfmt,
                  ...)
{
    char ts[64];
    struct timeval tv;
    struct tm tm;
    struct gv_buf line;
    struct gv_buf kv;
    va_list ap;
    ssize_t w;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(tv.tv_usec / 1000));

    gv_buf_init(&kv, 16384);
    if (kvfmt) {
        va_start(ap, kvfmt);
        gv_buf_vappendf(&kv, kvfmt, ap);
        va_end(ap);
    }
    gv_buf_init(&line, 32768);
    if (log_format == GV_LOG_JSON) {
        gv_buf_appendf(&line, "{\"ts\":\"%s\",\"level\":\"%s\",\"mod\":", ts, level_names[level]);
        gv_buf_append_json_str(&line, mod, strlen(mod));
        gv_buf_append_str(&line, ",\"msg\":");
        gv_buf_append_json_str(&line, msg, strlen(msg));
        if (kv.len) {
            kv_to_json(&line, kv.data);
        }
        gv_buf_append_str(&line, "}\n");
    }
    else {
        gv_buf_appendf(&line, "ts=%s level=%s mod=%s msg=", ts, level_names[level], mod);
        gv_buf_append_json_str(&line, msg, strlen(msg));
        if (kv.len) {
            gv_buf_append_char(&line, ' ');
            gv_buf_append(&line, kv.data, kv.len);
        }
        gv_buf_append_char(&line, '\n');
    }
    if (line.len) {
        w = write(STDERR_FILENO, line.data, line.len);
        (void)w;
    }
    gv_buf_free(&line);
    gv_buf_free(&kv);
}
