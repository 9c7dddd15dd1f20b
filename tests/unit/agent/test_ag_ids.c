/* tests/unit/agent/test_ag_ids.c - the set of counted request ids */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/ag_ids.h"

static void id_of(unsigned long long n, char out[32])
{
    snprintf(out, 32, "req_%012llx%012llx", 0xabcdefULL, n);
}

static void test_key_takes_gateway_ids_as_they_are(void **state)
{
    static const uint8_t want[AG_IDS_KEY] = {0x00, 0x00, 0x00, 0xab, 0xcd, 0xef,
                                             0x00, 0x00, 0x00, 0x00, 0x01, 0x02};
    uint8_t a[AG_IDS_KEY], b[AG_IDS_KEY];

    ag_ids_key("req_000000abcdef000000000102", a);
    assert_memory_equal(a, want, AG_IDS_KEY);
    /* Anything else is hashed: still a fixed key, different for different ids. */
    ag_ids_key("req_000000abcdef00000000010Z", a);
    ag_ids_key("req_000000abcdef00000000010z", b);
    assert_memory_not_equal(a, b, AG_IDS_KEY);
    ag_ids_key("", a);
    ag_ids_key("x", b);
    assert_memory_not_equal(a, b, AG_IDS_KEY);
}

/* Several ids per bucket (keys that share their last two bytes), added in an
 * order that is neither sorted nor reversed. */
static void test_add_has_remove_many(void **state)
{
    struct ag_ids *ids = ag_ids_create();
    const unsigned long long n = 200000;
    uint8_t k[AG_IDS_KEY];
    char id[32];
    unsigned long long i;

    for (i = 0; i < n; i++) {
        id_of((i * 7919) % n, id);
        ag_ids_key(id, k);
        assert_false(ag_ids_has(ids, k));
        ag_ids_add(ids, k);
        ag_ids_add(ids, k); /* a second add is a no-op */
    }
    assert_int_equal(ag_ids_count(ids), n);
    for (i = 0; i < n; i++) {
        id_of(i, id);
        ag_ids_key(id, k);
        assert_true(ag_ids_has(ids, k));
    }
    id_of(n, id);
    ag_ids_key(id, k);
    assert_false(ag_ids_has(ids, k));
    /* Taking back the newest keys (a batch the journal refused). */
    id_of(5, id);
    ag_ids_key(id, k);
    ag_ids_remove(ids, k);
    assert_false(ag_ids_has(ids, k));
    assert_int_equal(ag_ids_count(ids), n - 1);
    ag_ids_destroy(ids);
}

static void test_save_then_load(void **state)
{
    char dir[] = "/tmp/kt-test-ids-XXXXXX";
    char path[64];
    struct ag_ids *ids = ag_ids_create();
    struct ag_ids *back = ag_ids_create();
    uint8_t k[AG_IDS_KEY];
    char id[32];
    unsigned long long i;
    FILE *f;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/ids", dir);
    assert_int_equal(ag_ids_load(back, path), 0); /* absent: empty */
    for (i = 0; i < 100; i++) {
        id_of(i, id);
        ag_ids_key(id, k);
        ag_ids_add(ids, k);
        if (i == 49) {
            assert_int_equal(ag_ids_save(ids, path, false), 0);
        }
    }
    assert_int_equal(ag_ids_save(ids, path, true), 0);
    assert_int_equal(ag_ids_save(ids, path, true), 0); /* nothing new: nothing written */
    /* A torn tail (a crash mid-append) is ignored. */
    f = fopen(path, "a");
    assert_non_null(f);
    fputs("torn", f);
    fclose(f);
    assert_int_equal(ag_ids_load(back, path), 0);
    assert_int_equal(ag_ids_count(back), 100);
    for (i = 0; i < 100; i++) {
        id_of(i, id);
        ag_ids_key(id, k);
        assert_true(ag_ids_has(back, k));
    }
    unlink(path);
    rmdir(dir);
    ag_ids_destroy(ids);
    ag_ids_destroy(back);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_key_takes_gateway_ids_as_they_are),
    cmocka_unit_test(test_add_has_remove_many),
    cmocka_unit_test(test_save_then_load),
};

#include "tests/unit/unit_main.h"
