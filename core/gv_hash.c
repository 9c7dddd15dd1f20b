/* core/gv_hash.c - SHA-256 and lowercase hex, the one place kt hashes */
/* SPDX-License-Identifier: Apache-2.0 */
#include "core/gv_hash.h"

#include <pthread.h>
#include <string.h>

#include <openssl/evp.h>

static pthread_once_t sha_once = PTHREAD_ONCE_INIT;
static pthread_key_t sha_key;
static EVP_MD *sha; /* fetched once; lives as long as the process */

static void sha_ctx_free(void *p)
{
    EVP_MD_CTX_free(p);
}

static void sha_init(void)
{
    if (pthread_key_create(&sha_key, sha_ctx_free) == 0) {
        sha = EVP_MD_fetch(NULL, "SHA256", NULL);
    }
}

gv_rc gv_sha256(const void *p, size_t n, uint8_t md[GV_SHA256_LEN])
{
    return gv_sha256_2(p, n, NULL, 0, md);
}

gv_rc gv_sha256_2(const void *a, size_t na, const void *b, size_t nb, uint8_t md[GV_SHA256_LEN])
{
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_MD_CTX *ctx;

    pthread_once(&sha_once, sha_init);
    ctx = sha ? pthread_getspecific(sha_key) : NULL;
    if (!ctx && sha) {
        ctx = EVP_MD_CTX_new();
        if (ctx && pthread_setspecific(sha_key, ctx) != 0) {
            EVP_MD_CTX_free(ctx);
            ctx = NULL;
        }
    }
    if (!ctx || EVP_DigestInit_ex2(ctx, sha, NULL) != 1 || EVP_DigestUpdate(ctx, a, na) != 1 ||
        (nb && EVP_DigestUpdate(ctx, b, nb) != 1) || EVP_DigestFinal_ex(ctx, out, &len) != 1 ||
        len != GV_SHA256_LEN) {
        memset(md, 0, GV_SHA256_LEN);
        return GV_EIO;
    }
    memcpy(md, out, GV_SHA256_LEN);
    return GV_OK;
}

gv_rc gv_sha256_hex(const void *p, size_t n, char out[GV_SHA256_HEX_LEN + 1])
{
    uint8_t md[GV_SHA256_LEN];
    gv_rc rc = gv_sha256(p, n, md);

    gv_hex_encode(md, sizeof(md), out);
    return rc;
}

void gv_hex_encode(const void *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *b = p;
    size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 0xf];
    }
    out[2 * n] = '\0';
}
