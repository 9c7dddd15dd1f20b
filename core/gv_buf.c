/* core/gv_buf.c - growable byte buffer with a hard cap */
/* SPDX-License-Identifier: Apache-2.0 */
#include "core/gv_buf.h"

#include <math.h>
#include <stdbool.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/gv_mem.h"
#include "core/gv_scan.h"

void gv_buf_init(struct gv_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max ? max : SIZE_MAX - 1;
}

void gv_buf_free(struct gv_buf *b)
{
    gv_free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void gv_buf_reset(struct gv_buf *b)
{
    b->len = 0;
    if (b->data) {
        b->data[0] = '\0';
    }
}

void gv_buf_truncate(struct gv_buf *b, size_t len)
{
    if (len < b->len) {
        b->len = len;
    }
    if (b->data) {
        b->data[b->len] = '\0';
    }
}

gv_rc gv_buf_reserve(struct gv_buf *b, size_t extra)
{
    size_t need;
    size_t ncap;

    if (extra > b->max || b->len > b->max - extra) {
        return GV_E2BIG;
    }
    need = b->len + extra + 1;
    if (need <= b->cap) {
        return GV_OK;
    }
    /* 256 first: request heads, header blocks and log lines grew 64, 128, 256,
     * 512 before, a realloc each, several buffers a request. */
    ncap = b->cap ? b->cap : 256;
    while (ncap < need) {
        ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
    }
    if (ncap > b->max + 1) {
        ncap = b->max + 1;
    }
    b->data = gv_realloc(b->data, ncap);
    b->cap = ncap;
    return GV_OK;
}

gv_rc gv_buf_append_grow(struct gv_buf *b, const void *p, size_t n)
{
    gv_rc rc = gv_buf_reserve(b, n);
    if (rc) {
        return rc;
    }
    if (n) {
        memcpy(b->data + b->len, p, n);
    }
    b->len += n;
    b->data[b->len] = '\0';
    return GV_OK;
}

gv_rc gv_buf_vappendf(struct gv_buf *b, const char *fmt, va_list ap)
{
    va_list cp;
    int n;
    gv_rc rc;

    va_copy(cp, ap);
    n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0) {
        return GV_EINVAL;
    }
    rc = gv_buf_reserve(b, (size_t)n);
    if (rc) {
        return rc;
    }
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return GV_OK;
}

gv_rc gv_buf_appendf(struct gv_buf *b, const char *fmt, ...)
{
    va_list ap;
    gv_rc rc;

    va_start(ap, fmt);
    rc = gv_buf_vappendf(b, fmt, ap);
    va_end(ap);
    return rc;
}

size_t gv_fmt_u64(unsigned long long v, char out[24])
{
    char tmp[24];
    size_t i = sizeof(tmp);

    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    memcpy(out, tmp + i, sizeof(tmp) - i);
    return sizeof(tmp) - i;
}

void gv_str_copy(char *dst, size_t size, const char *src)
{
    size_t n = src ? strnlen(src, size - 1) : 0;

    if (n > 0) {
        memcpy(dst, src, n);
    }
    dst[n] = '\0';
}

gv_rc gv_buf_append_u64(struct gv_buf *b, unsigned long long v)
{
    char tmp[24];

    return gv_buf_append(b, tmp, gv_fmt_u64(v, tmp));
}

size_t gv_fmt_fixed(double v, int decimals, char out[GV_FMT_FIXED_MAX])
{
    static const double scale[10] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};
    unsigned long long n, ip, fp, div = 1;
    bool neg;
    size_t len = 0;
    double s;
    int i;

    if (decimals < 0 || decimals > 9) {
        return 0;
    }
    if (!isfinite(v)) {
        v = 0.0;
    }
    neg = v < 0;
    s = (neg ? -v : v) * scale[decimals];
    if (s >= 9.0e18) {
        /* At most 309 integer digits, the sign, the point and 9 decimals. */
        int k = snprintf(out, GV_FMT_FIXED_MAX, "%.*f", decimals, v);
        return k > 0 && k < GV_FMT_FIXED_MAX ? (size_t)k : 0;
    }
    n = (unsigned long long)(s + 0.5);
    for (i = 0; i < decimals; i++) {
        div *= 10;
    }
    ip = n / div;
    fp = n % div;
    if (neg && n > 0) {
        out[len++] = '-';
    }
    len += gv_fmt_u64(ip, out + len);
    if (decimals > 0) {
        out[len++] = '.';
        for (i = decimals - 1; i >= 0; i--) {
            out[len + (size_t)i] = (char)('0' + fp % 10);
            fp /= 10;
        }
        len += (size_t)decimals;
    }
    return len;
}

gv_rc gv_buf_append_fixed(struct gv_buf *b, double v, int decimals)
{
    char tmp[GV_FMT_FIXED_MAX];
    size_t n = gv_fmt_fixed(v, decimals, tmp);

    return n ? gv_buf_append(b, tmp, n) : GV_EINVAL;
}

size_t gv_json_escape_byte(unsigned char c, char out[6])
{
    static const char hex[] = "0123456789abcdef";
    char e = 0;

    switch (c) {
    case '"':
        e = '"';
        break;
    case '\\':
        e = '\\';
        break;
    case '\n':
        e = 'n';
        break;
    case '\r':
        e = 'r';
        break;
    case '\t':
        e = 't';
        break;
    default:
        if (c < 0x20) {
            memcpy(out, "\\u00", 4);
            out[4] = hex[c >> 4];
            out[5] = hex[c & 15];
            return 6;
        }
        out[0] = (char)c;
        return 1;
    }
    out[0] = '\\';
    out[1] = e;
    return 2;
}

/* The end of the run from i of bytes that go into a JSON string as they are. */
gv_rc gv_buf_append_json_str(struct gv_buf *b, const char *s, size_t n)
{
    size_t i = 0;
    gv_rc rc = gv_buf_append_char(b, '"');

    while (rc == GV_OK && i < n) {
        /* Runs of bytes that need no escape go in one copy: most strings are one run. */
        size_t run = gv_scan_json_plain(s, i, n);
        if (run > i) {
            rc = gv_buf_append(b, s + i, run - i);
            i = run;
            continue;
        }
        {
            char esc[6];
            size_t k = gv_json_escape_byte((unsigned char)s[i], esc);
            rc = gv_buf_append(b, esc, k);
            i++;
        }
    }
    if (rc == GV_OK) {
        rc = gv_buf_append_char(b, '"');
    }
    return rc;
}

char *gv_json_put_str(char *out, const char *s, size_t n)
{
    size_t i = 0;

    *out++ = '"';
    while (i < n) {
        size_t run = gv_scan_json_plain(s, i, n);
        memcpy(out, s + i, run - i);
        out += run - i;
        i = run;
        if (i < n) {
            out += gv_json_escape_byte((unsigned char)s[i], out);
            i++;
        }
    }
    *out++ = '"';
    return out;
}

void gv_buf_consume(struct gv_buf *b, size_t n)
{
    if (n >= b->len) {
        gv_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

char *gv_buf_steal(struct gv_buf *b)
{
    char *p = b->data ? b->data : gv_strdup("");
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}
