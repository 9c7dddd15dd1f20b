/* gateway/gw_http.h - HTTP helpers: OpenAI error bodies, run-tag checks, request ids */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GW_HTTP_H
#define GW_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/gv_buf.h"
#include "core/gv_rc.h"

/* "req_" + 24 lower-case hex digits. */
#define GW_REQID_LEN 28

/* Appends `{"error":{"message":...,"type":...,"code":...,"param":...}}` to out,
 * the shape every OpenAI client parses. code and param may be NULL (JSON null);
 * message and type must not be NULL. Strings are JSON-escaped, so any bytes are
 * safe, and the body is always valid UTF-8: each ill-formed sequence (invalid
 * bytes, a character cut by truncation) becomes U+FFFD. GV_E2BIG when out's cap is reached (out
 * then holds a prefix). */
gv_rc gw_http_error_body(struct gv_buf *out, const char *message, const char *type,
                         const char *code, const char *param);

/* The OpenAI error `type` for a status the gateway makes itself:
 * 400/404/405/413 invalid_request_error, 401 authentication_error,
 * 403 permission_error, 429 rate_limit_error, 502/504 upstream_error,
 * anything else server_error. Never NULL. */
const char *gw_http_error_type(int status);

/* True when `s` (len bytes, not necessarily NUL-terminated) is a valid W&B run
 * tag value: 1..GV_RUN_TAG_MAX bytes, no whitespace, no control bytes (< 0x20,
 * 0x7f) and none of : ; , # ? / ' \ " (the characters W&B refuses in run ids,
 * plus the quoting ones that would break logs). Bytes >= 0x80 are allowed. */
bool gw_http_run_tag_valid(const char *s, size_t len);

/* True when p[0..n) is well-formed UTF-8 as RFC 3629 defines it: no overlong
 * forms (C0 AF), no encoded surrogates (ED A0 80), nothing past U+10FFFF, no
 * sequence cut short. Pure. */
bool gw_http_utf8_valid(const char *p, size_t n);

/* Request ids: unique per process and, with overwhelming probability, across
 * processes. One generator per worker thread; not thread-safe. */
struct gw_reqid {
    uint64_t prefix;  /* 48 random bits */
    uint64_t counter; /* starts at a random 48-bit value */
};

/* Seeds from the OpenSSL CSPRNG (falls back to time and address bits, which
 * only weakens cross-process uniqueness). Cannot fail. */
void gw_reqid_init(struct gw_reqid *g);
/* Writes the next id and its NUL into out (GW_REQID_LEN + 1 bytes). */
void gw_reqid_next(struct gw_reqid *g, char *out);

/* Formats microseconds as milliseconds with 3 decimals ("12.345") into buf. */
void gw_http_fmt_ms(uint64_t us, char *buf, size_t size);

#endif
