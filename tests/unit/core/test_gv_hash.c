/* tests/unit/core/test_gv_hash.c - SHA-256 against published vectors, hex encoding */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/gv_hash.h"

/* FIPS 180-2 examples and the empty input. */
static const struct {
    const char *in;
    const char *hex;
} vectors[] = {
    {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
    {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
};

static void test_vectors(void **state)
{
    char hex[GV_SHA256_HEX_LEN + 1];
    size_t i;
    (void)state;

    for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        assert_int_equal(gv_sha256_hex(vectors[i].in, strlen(vectors[i].in), hex), GV_OK);
        assert_string_equal(hex, vectors[i].hex);
    }
}

/* Two parts hash as their concatenation, wherever the cut is. */
static void test_two_parts(void **state)
{
    const char *s = vectors[2].in;
    size_t n = strlen(s), cut;
    uint8_t whole[GV_SHA256_LEN], parts[GV_SHA256_LEN];
    (void)state;

    assert_int_equal(gv_sha256(s, n, whole), GV_OK);
    for (cut = 0; cut <= n; cut++) {
        assert_int_equal(gv_sha256_2(s, cut, s + cut, n - cut, parts), GV_OK);
        assert_memory_equal(parts, whole, sizeof(whole));
    }
}

static void test_hex_encode(void **state)
{
    const uint8_t b[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
    char out[2 * sizeof(b) + 1];
    (void)state;

    memset(out, 'x', sizeof(out));
    gv_hex_encode(b, sizeof(b), out);
    assert_string_equal(out, "00017f80abff");
    gv_hex_encode(b, 0, out);
    assert_string_equal(out, "");
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_vectors),
    cmocka_unit_test(test_two_parts),
    cmocka_unit_test(test_hex_encode),
};

#include "tests/unit/unit_main.h"
