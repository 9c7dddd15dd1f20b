/* cli/cmd_rbac.c - kt rbac hash-key: the key_sha256 for rbac.keys */
/* SPDX-License-Identifier: Apache-2.0 */
#include "cli/cli.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli_args.h"
#include "core/gv_hash.h"

#define KEY_MAX 4096

int cli_rbac_hash_key(int argc, char **argv)
{
    char line[KEY_MAX + 2];
    char hex[GV_SHA256_HEX_LEN + 1];
    const char *key;
    size_t len;

    const char *arg = NULL;
    const struct cli_opt opts[] = {{NULL, CLI_OPT_FLAG, NULL, 0, 0}};
    const struct cli_spec spec = {
        "kt rbac hash-key",
        "usage: kt rbac hash-key [KEY]\n"
        "  Prints the key_sha256 for rbac.keys. Reads KEY from stdin when absent (so it stays\n"
        "  out of the shell history and the process list).\n",
        opts,
        &arg,
        0,
        1};
    int code = cli_args_parse(&spec, argc, argv, NULL);

    if (code != CLI_ARGS_RUN) {
        return code;
    }
    if (arg) {
        key = arg;
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
    (void)gv_sha256_hex(key, len, hex);
    OPENSSL_cleanse(line, sizeof(line));
    printf("%s\n", hex);
    return 0;
}
