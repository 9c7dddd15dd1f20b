/* gateway/gw_http.c - HTTP helpers: OpenAI error bodies, run-tag checks, request ids */
/* SPDX-License-Identifier: Apache-2.0 */
#include "gateway/gw_http.h"

#include <stdio.h>
#include <string.h>

#include <openssl/rand.h>

#include "core/gv_record.h"
#include "core/gv_time.h"

#define MASK48 0xffffffffffffULL

gv_rc gw_http_error_body(struct gv_buf *out, const char *message, const char *type,
                         const char *code, const char *param)
{
    gv_rc rc;

    rc = gv_buf_append_str(out, "{\"error\":{\"message\":");
    if (rc == GV_OK) {
        rc = gv_buf_append_json_str(out, message, strlen(message));
    }
    if (rc == GV_OK) {
        rc = gv_buf_append_str(out, ",\"type\":");
    }
    if (rc == GV_OK) {
        rc = gv_buf_append_json_str(out, type, strlen(type));
    }
    if (rc == GV_OK) {
        rc = gv_buf_append_str(out, ",\"code\":");
    }
    if (rc == GV_OK) {
        rc =
            code ? gv_buf_append_json_str(out, code, strlen(code)) : gv_buf_append_str(out, "null");
    }
    if (rc == GV_OK) {
        rc = gv_buf_append_str(out, ",\"param\":");
    }
    if (rc == GV_OK) {
        rc = param ? gv_buf_append_json_str(out, param, strlen(param))
                   : gv_buf_append_str(out, "null");
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
