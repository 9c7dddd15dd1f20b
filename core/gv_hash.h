/* core/gv_hash.h - SHA-256 and lowercase hex, the one place kt hashes */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GV_HASH_H
#define GV_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "core/gv_rc.h"

#define GV_SHA256_LEN 32
#define GV_SHA256_HEX_LEN 64

/* SHA-256 of n bytes into md. Thread-safe and cheap to call often: each thread keeps one
 * context and the algorithm is fetched once (EVP_Digest would look it up and allocate a
 * context on every call, which costs more than hashing a short line). GV_EIO only when
 * OpenSSL fails (it cannot allocate); md is then all zero, which no stored hash equals, so a
 * chain check over it fails loudly. */
gv_rc gv_sha256(const void *p, size_t n, uint8_t md[GV_SHA256_LEN]);
/* SHA-256 of a[0..na) followed by b[0..nb), without copying them together. */
gv_rc gv_sha256_2(const void *a, size_t na, const void *b, size_t nb, uint8_t md[GV_SHA256_LEN]);
/* gv_sha256 as 64 lowercase hex digits and a NUL. */
gv_rc gv_sha256_hex(const void *p, size_t n, char out[GV_SHA256_HEX_LEN + 1]);
/* n bytes as 2n lowercase hex digits and a NUL (out holds 2n + 1). */
void gv_hex_encode(const void *p, size_t n, char *out);

#endif
