/* tests/unit/core/test_gv_mem.c - a mapped zeroed array costs memory only where written */
/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/gv_mem.h"

/* Pages of [p, p + n) the kernel has backed with memory (mincore). */
static size_t resident_pages(void *p, size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t npages = (n + page - 1) / page;
    unsigned char *vec = gv_calloc(npages, 1);
    size_t i, res = 0;

    assert_int_equal(mincore(p, n, vec), 0);
    for (i = 0; i < npages; i++) {
        res += vec[i] & 1u;
    }
    gv_free(vec);
    return res;
}

/* The emitter's ring is 4096 records; a gateway that sees a few requests a
 * second writes a handful of them. The array must read as zeros and hold no
 * memory but the pages written, whatever malloc the process links. */
static void test_map_zeroed_is_zero_and_untouched_until_written(void **state)
{
    const size_t count = 4096, size = 2048;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    unsigned char *a;
    size_t i;

    (void)state;
    a = gv_map_zeroed(count, size);
    assert_non_null(a);
    assert_int_equal((uintptr_t)a % page, 0);
    assert_int_equal(resident_pages(a, count * size), 0);
    a[0] = 1;
    a[count * size / 2] = 2;
    a[count * size - 1] = 3;
    assert_int_equal(resident_pages(a, count * size), 3);
    /* Reading maps the shared zero page, which mincore also reports; read
     * after the count above so it counts only writes. */
    for (i = 0; i < count * size; i += page) {
        if (i != 0 && i != count * size / 2 && i != count * size - page) {
            assert_int_equal(a[i], 0);
        }
    }
    assert_int_equal(a[count * size - 1], 3);
    gv_unmap_zeroed(a, count, size);
}

static void test_map_zeroed_of_nothing_is_usable(void **state)
{
    unsigned char *a;

    (void)state;
    a = gv_map_zeroed(0, 16);
    assert_non_null(a);
    a[0] = 1; /* one byte, as gv_calloc(0, n) gives */
    gv_unmap_zeroed(a, 0, 16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_map_zeroed_is_zero_and_untouched_until_written),
        cmocka_unit_test(test_map_zeroed_of_nothing_is_usable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
