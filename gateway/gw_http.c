/* gateway/gw_http.c - HTTP helpers: OpenAI error bodies, run-tag checks, request ids */
/* SPDX-License-Identifier: Apache-2.0 */
#include "gateway/gw_http.h"

#include <stdio.h>
#include <string.h>

#include <openssl/rand.h>

#include "core/gv_record.h"
#include "core/gv_time.h"

#define MASK48 0xffffffffffffULL

/* Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlongs, no
 * surrogates, nothing past U+10FFFF), or 0 with *bad set to the length of the
 * ill-formed prefix to replace (the maximal subpart, as Unicode recommends). */
static size_t utf8_seq(const unsigned char *p, size_t n, size_t *bad)
{
    unsigned char lo = 0x80, hi = 0xbf;
    size_t need, k;

    if (p[0] < 0x80) {
        return 1;
    }
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        need = 1;
    }
    else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        need = 2;
        lo = p[0] == 0xe0 ? 0xa0 : 0x80;
        hi = p[0] == 0xed ? 0x9f : 0xbf;
    }
    else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        need = 3;
        lo = p[0] == 0xf0 ? 0x90 : 0x80;
        hi = p[0] == 0xf4 ? 0x8f : 0xbf;
    }
    else {
        *bad = 1;
        return 0;
    }
    for (k = 1; k <= need; k++) {
        if (k >= n || p[k] < lo || p[k] > hi) {
            *bad = k;
            return 0;
        }
        lo = 0x80;
        hi = 0xbf;
    }
    return need + 1;
}

bool gw_http_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, len, bad;

    while (i < n) {
        /* ASCII runs are the common case (and a prompt can be megabytes): eight
         * bytes a step while none has its top bit set, then no call per byte. */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, p + i, sizeof(w));
            if (w & 0x8080808080808080ULL) {
                break;
            }
            i += 8;
        }
        if (i >= n) {
            break;
        }
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        len = utf8_seq(p + i, n - i, &bad);
        if (!len) {
            return false;
        }
        i += len;
    }
    return true;
}

/* s as a JSON string that is always valid UTF-8: messages carry client bytes
 * (a model name) and are cut with "%.100s", possibly inside a character, and
 * strict clients reject the whole body over one bad byte. Each ill-formed
 * sequence becomes U+FFFD. */
static gv_rc append_json_text(struct gv_buf *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    struct gv_buf clean;
    size_t i, len, bad;
    gv_rc rc = GV_OK;

    for (i = 0; i < n; i += len) {
        len = utf8_seq(p + i, n - i, &bad);
        if (!len) {
            break;
        }
    }
    if (i == n) {
        return gv_buf_append_json_str(out, s, n);
    }
    /* Each replaced byte grows to at most 3, so the copy is bounded by 3n. */
    gv_buf_init(&clean, 3 * n + 1);
    rc = gv_buf_append(&clean, s, i);
    while (rc == GV_OK && i < n) {
        len = utf8_seq(p + i, n - i, &bad);
        if (len) {
            rc = gv_buf_append(&clean, p + i, len);
            i += len;
        }
        else {
            rc = gv_buf_append(&clean, "\xef\xbf\xbd", 3);
            i += bad;
        }
    }
    if (rc == GV_OK) {
        rc = gv_buf_append_json_str(out, clean.data ? clean.data : "", clean.len);
    }
    gv_buf_free(&clean);
    return rc;
}

gv_rc gw_http_error_body(struct gv_buf *out, const char *message, const char *type,
                         const char *code, const char *param)
{
    gv_rc rc;

    rc = gv_buf_append_str(out, "{\"error\":{\"message\":");
    if (rc == GV_OK) {
        rc = append_json_text(out, message);
    }
    if (rc == GV_OK) {
        rc = gv_buf_append_str(out, ",\"type\":");
    }
    if (rc == GV_OK) {
        rc = append_json_text(out, type);
    }
    if (rc == GV_OK) {
        rc = gv_buf_append_str(out, ",\"code\":");
    }
    if (rc == GV_OK) {
        rc = code ? append_json_text(out, code) : gv_buf_append_str(out, "null");
    }
    if (rc == GV_OK) {
        rc = gv_buf_append_str(out, ",\"param\":");
    }
    if (rc == GV_OK) {
        rc = param ? append_json_text(out, param) : gv_buf_append_str(out, "null");
    }
    if (rc == GV_OK) {
        rc = gv_buf_append_str(out, "}}");
    }
    return rc;
}

const char *gw_http_error_type(int status)
{
    switch (status) {
    case 400:
    case 404:
    case 405:
    case 413:
        return "invalid_request_error";
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 429:
        return "rate_limit_error";
    case 502:
    case 504:
        return "upstream_error";
    default:
        return "server_error";
    }
}

bool gw_http_run_tag_valid(const char *s, size_t len)
{
    size_t i;

    if (!s || len == 0 || len > GV_RUN_TAG_MAX) {
        return false;
    }
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f) {
            return false;
        }
        if (strchr(":;,#?/'\\\"", c) != NULL) {
            return false;
        }
    }
    return true;
}

void gw_reqid_init(struct gw_reqid *g)
{
    unsigned char rnd[12];
    uint64_t a = 0, b = 0;
    size_t i;

    if (RAND_bytes(rnd, (int)sizeof(rnd)) != 1) {
        /* No CSPRNG: ids stay unique within this process thanks to the
         * counter; mixing in time and an address keeps processes apart. */
        uint64_t t = gv_wall_us() ^ (gv_mono_us() << 17) ^ (uint64_t)(uintptr_t)g;
        memcpy(rnd, &t, sizeof(t));
        t *= 0x9e3779b97f4a7c15ULL;
        memcpy(rnd + 8, &t, 4);
    }
    for (i = 0; i < 6; i++) {
        a = (a << 8) | rnd[i];
        b = (b << 8) | rnd[6 + i];
    }
    g->prefix = a & MASK48;
    g->counter = b & MASK48;
}

/* Both run several times per request: plain digit loops cost a tenth of snprintf. */
static void put_hex48(char *out, uint64_t v)
{
    static const char hex[] = "0123456789abcdef";
    int i;

    for (i = 11; i >= 0; i--) {
        out[i] = hex[v & 0xf];
        v >>= 4;
    }
}

void gw_reqid_next(struct gw_reqid *g, char *out)
{
    g->counter = (g->counter + 1) & MASK48;
    memcpy(out, "req_", 4);
    put_hex48(out + 4, g->prefix);
    put_hex48(out + 16, g->counter);
    out[GW_REQID_LEN] = '\0';
}

void gw_http_fmt_ms(uint64_t us, char *buf, size_t size)
{
    char tmp[32];
    size_t n = 0, i;
    uint64_t ms = us / 1000, frac = us % 1000;

    if (size == 0) {
        return;
    }
    /* Built backwards: three fraction digits, the point, then the whole milliseconds. */
    tmp[n++] = (char)('0' + frac % 10);
    tmp[n++] = (char)('0' + frac / 10 % 10);
    tmp[n++] = (char)('0' + frac / 100);
    tmp[n++] = '.';
    do {
        tmp[n++] = (char)('0' + ms % 10);
        ms /= 10;
    } while (ms > 0);
    /* Truncated like snprintf when buf is too small. */
    for (i = 0; i < n && i + 1 < size; i++) {
        buf[i] = tmp[n - 1 - i];
    }
    buf[i] = '\0';
}
