/* core/gv_buf.h - growable byte buffer with a hard cap */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GV_BUF_H
#define GV_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include "core/gv_rc.h"

/* A byte buffer that grows up to `max` bytes. data is always NUL-terminated
 * (the terminator is not counted in len), so text can be used in place. */
struct gv_buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max;
};

/* Cannot fail; allocates nothing until the first append. max 0 means SIZE_MAX. */
void gv_buf_init(struct gv_buf *b, size_t max);
/* Releases the storage; the buffer can be reused after gv_buf_init. */
void gv_buf_free(struct gv_buf *b);
/* Room for n more bytes (and the NUL) without another allocation: for writers that
 * know an upper bound and then write through a pointer. GV_E2BIG past max. */
gv_rc gv_buf_reserve(struct gv_buf *b, size_t n);
/* Empties the buffer, keeping its storage. */
void gv_buf_reset(struct gv_buf *b);
/* Cuts the buffer back to its first len bytes (len <= b->len), NUL-terminated again: how a
 * writer takes back what it appended since a mark when the rest did not fit. */
void gv_buf_truncate(struct gv_buf *b, size_t len);
/* Append n bytes. GV_E2BIG (and nothing appended) when len + n would exceed max. */
gv_rc gv_buf_append_grow(struct gv_buf *b, const void *p, size_t n);
/* Inline because the request path appends a few hundred small pieces a request
 * (heads, the log line, the audit JSON) and the call cost more than the copy.
 * len + n + 1 <= cap implies len + n <= max, as cap never passes max + 1. */
static inline gv_rc gv_buf_append(struct gv_buf *b, const void *p, size_t n)
{
    if (n < b->cap - b->len) {
        if (n) {
            memcpy(b->data + b->len, p, n);
        }
        b->len += n;
        b->data[b->len] = '\0';
        return GV_OK;
    }
    return gv_buf_append_grow(b, p, n);
}
static inline gv_rc gv_buf_append_str(struct gv_buf *b, const char *s)
{
    return gv_buf_append(b, s, strlen(s));
}
static inline gv_rc gv_buf_append_char(struct gv_buf *b, char c)
{
    return gv_buf_append(b, &c, 1);
}
gv_rc gv_buf_appendf(struct gv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
gv_rc gv_buf_vappendf(struct gv_buf *b, const char *fmt, va_list ap);
/* v in decimal into out (no NUL); returns the number of digits. Without printf:
 * hot paths format several numbers a request. */
size_t gv_fmt_u64(unsigned long long v, char out[24]);
/* Copies at most size - 1 bytes of src (NULL: "") into dst and NUL-terminates:
 * for fixed fields filled from strings that may be too long or unterminated. */
void gv_str_copy(char *dst, size_t size, const char *src);
/* Append v in decimal, without printf (hot paths format several numbers a request). */
gv_rc gv_buf_append_u64(struct gv_buf *b, unsigned long long v);
/* Append v with exactly `decimals` (0..9) digits after the point, rounded half
 * away from zero at that digit; non-finite values are written as 0. Values too
 * large for fixed-point integers go through printf's "%.*f". */
gv_rc gv_buf_append_fixed(struct gv_buf *b, double v, int decimals);
/* The same into out (no NUL); returns the length, 0 when decimals is out of range. */
#define GV_FMT_FIXED_MAX 336
size_t gv_fmt_fixed(double v, int decimals, char out[GV_FMT_FIXED_MAX]);
/* Append s as a JSON string literal, quotes included. */
gv_rc gv_buf_append_json_str(struct gv_buf *b, const char *s, size_t n);
/* s as a JSON string literal at out, which has room for 2 + 6 * n bytes; returns the
 * end. For writers that reserved a bound first. */
char *gv_json_put_str(char *out, const char *s, size_t n);
/* One byte as it goes inside a JSON string: itself, a two-byte escape (\" \\ \n \r \t)
 * or \u00XX for other control bytes. Returns how many bytes it wrote to out. Bytes
 * >= 0x80 pass unchanged: callers hand in valid UTF-8. */
size_t gv_json_escape_byte(unsigned char c, char out[6]);
/* Drop the first n bytes (n > len empties the buffer). */
void gv_buf_consume(struct gv_buf *b, size_t n);
/* Hands the storage to the caller (free with gv_free) and resets b. Never NULL. */
char *gv_buf_steal(struct gv_buf *b);

#endif
