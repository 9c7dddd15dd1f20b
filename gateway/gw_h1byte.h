/* gateway/gw_h1byte.h - the byte classes both HTTP/1.1 framers test (RFC 9110 5.5, 5.6) */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GW_H1BYTE_H
#define GW_H1BYTE_H

/* Inline on purpose: the request and response framers call these once per
 * byte of every head and chunk line. ASCII only, whatever the locale. */

#include <stdbool.h>
#include <stddef.h>

/* SP or HTAB: the blanks around a field value. */
static inline bool gw_h1byte_is_ws(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* A control byte (0x00-0x1f, 0x7f): never legal in a head outside CRLF, and
 * HTAB in a field value. */
static inline bool gw_h1byte_is_ctl(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

static inline unsigned char gw_h1byte_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/* a[0..alen) equals b[0..blen), ASCII case-insensitive (field names, tokens). */
static inline bool gw_h1byte_ieq(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t i;

    if (alen != blen) {
        return false;
    }
    for (i = 0; i < alen; i++) {
        if (gw_h1byte_lower((unsigned char)a[i]) != gw_h1byte_lower((unsigned char)b[i])) {
            return false;
        }
    }
    return true;
}

/* a[0..alen) equals lower[0..n), ASCII case-insensitive, where lower has no
 * upper-case letters (the names and tokens the framers look for are written
 * so): only a's bytes need folding. */
static inline bool gw_h1byte_ieq_lower(const char *a, size_t alen, const char *lower, size_t n)
{
    size_t i;

    if (alen != n) {
        return false;
    }
    for (i = 0; i < n; i++) {
        if (gw_h1byte_lower((unsigned char)a[i]) != (unsigned char)lower[i]) {
            return false;
        }
    }
    return true;
}

#endif
