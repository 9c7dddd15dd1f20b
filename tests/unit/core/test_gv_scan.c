/* tests/unit/core/test_gv_scan.c - the JSON escape scan in registers against a plain loop */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/gv_scan.h"

/* Bytes at the edges of the word tests: around the control range, the quote,
 * the backslash, zero and the high half, where a borrow or a sign would show. */
static const unsigned char EDGES[] = {0x00, 0x01, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x5b,
                                      0x5c, 0x5d, 0x7f, 0x80, 0x9f, 0xa0, 0xdc, 0xff};

static size_t naive_plain(const char *p, size_t i, size_t n)
{
    while (i < n && (unsigned char)p[i] >= 0x20 && p[i] != '"' && p[i] != '\\') {
        i++;
    }
    return i;
}

/* A buffer of mostly plain letters with a few edge bytes, so that matches
 * fall at every distance, inside and past the inline words. */
static void fill(char *buf, size_t n, unsigned seed)
{
    size_t k;

    srand(seed);
    for (k = 0; k < n; k++) {
        buf[k] = rand() % 16 == 0 ? (char)EDGES[rand() % sizeof(EDGES)] : (char)('a' + rand() % 26);
    }
}

static void test_plain_matches_plain_loop(void **state)
{
    char buf[160];
    unsigned seed;
    size_t i, n;

    (void)state;
    for (seed = 1; seed <= 200; seed++) {
        fill(buf, sizeof(buf), seed);
        for (i = 0; i < sizeof(buf); i++) {
            for (n = i; n <= sizeof(buf); n += 7) {
                assert_int_equal(gv_scan_json_plain(buf, i, n), naive_plain(buf, i, n));
            }
        }
    }
}

/* Each edge byte at each place of a word, after plain bytes and before more of
 * itself: only the first byte that needs an escape may be reported. */
static void test_first_of_several_at_every_place(void **state)
{
    char buf[24];
    size_t at, e;

    (void)state;
    for (e = 0; e < sizeof(EDGES); e++) {
        for (at = 0; at < 16; at++) {
            memset(buf, 'x', sizeof(buf));
            buf[at] = (char)EDGES[e];
            memset(buf + at + 1, EDGES[e], sizeof(buf) - at - 1);
            assert_int_equal(gv_scan_json_plain(buf, 0, sizeof(buf)),
                             naive_plain(buf, 0, sizeof(buf)));
        }
    }
}

/* Long plain runs, UTF-8 included, up to the one byte that needs an escape;
 * an empty range gives its start. */
static void test_long_and_empty(void **state)
{
    char buf[300];

    (void)state;
    memset(buf, 'a', sizeof(buf));
    memcpy(buf + 100, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9);
    buf[250] = '\\';
    assert_int_equal(gv_scan_json_plain(buf, 0, sizeof(buf)), 250);
    assert_int_equal(gv_scan_json_plain(buf, 0, 250), 250);
    assert_int_equal(gv_scan_json_plain(buf, 251, sizeof(buf)), sizeof(buf));
    assert_int_equal(gv_scan_json_plain(buf, 9, 9), 9);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_plain_matches_plain_loop),
    cmocka_unit_test(test_first_of_several_at_every_place),
    cmocka_unit_test(test_long_and_empty),
};

#include "tests/unit/unit_main.h"
