/* gateway/gw_cmd_rbac.c - kt rbac hash-key: the key_sha256 for rbac.keys */
/* SPDX-License-Identifier: Apache-2.0 */
#include "gateway/gw_cmd_gov.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#include "gateway/policies/audit/audit_store.h"

#define KEY_MAX 4096

int gw_cmd_rbac_hash_key(int argc, char **argv)
{
    char line[KEY_MAX + 2];
    char hex[GW_AUDIT_HASH_HEX + 1];
    const char *key;
    size_t len;

    if (argc > 1 || (argc == 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0))) {
        fprintf(stderr, "usage: kt rbac hash-key [KEY]   (reads KEY from stdin when absent)\n");
        return 2;
    }
    if (argc == 1) {
        key = argv[0];
        len = strlen(key);
    }
    else {
        if (!fgets(line, sizeof(line), stdin)) {
            fprintf(stderr, "kt rbac hash-key: no key on stdin\n");
            return 2;
        }
        len = strlen(line);
        if (len > KEY_MAX) {
            fprintf(stderr, "kt rbac hash-key: key longer than %d bytes\n", KEY_MAX);
            OPENSSL_cleanse(line, sizeof(line));
            return 2;
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
            line[--len] = '\0';
        }
        key = line;
    }
    if (len == 0) {
        fprintf(stderr, "kt rbac hash-key: empty key\n");
        return 2;
    }
    /* The same digest rbac computes for each request's bearer token. */
    gw_audit_sha256_hex(key, len, hex);
    OPENSSL_cleanse(line, sizeof(line));
    printf("%s\n", hex);
    return 0;
}
