/* tests/unit/core/test_gv_file.c - whole-file reads and atomic replaces */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/gv_file.h"

struct fx {
    char dir[64];
    char path[96];
};

static int setup(void **state)
{
    static struct fx f;

    snprintf(f.dir, sizeof(f.dir), "/tmp/kt-test-file-XXXXXX");
    if (!mkdtemp(f.dir)) {
        return -1;
    }
    snprintf(f.path, sizeof(f.path), "%s/f", f.dir);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char tmp[128];

    unlink(f->path);
    snprintf(tmp, sizeof(tmp), "%s.tmp", f->path);
    unlink(tmp);
    rmdir(f->dir);
    return 0;
}

static void test_replace_then_read(void **state)
{
    struct fx *f = *state;
    struct gv_buf b;
    struct stat st;

    assert_int_equal(gv_file_replace(f->path, "first", 5), GV_OK);
    assert_int_equal(gv_file_replace(f->path, "second\n", 7), GV_OK);
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    gv_buf_init(&b, 0);
    assert_int_equal(gv_buf_append(&b, "> ", 2), GV_OK);
    assert_int_equal(gv_file_read_all(f->path, &b), GV_OK);
    assert_int_equal(b.len, 9);
    assert_memory_equal(b.data, "> second\n", 9);
    gv_buf_free(&b);
}

/* Bigger than one read: every byte arrives, in order. */
static void test_read_large(void **state)
{
    struct fx *f = *state;
    size_t n = 200000, i;
    char *data = malloc(n);
    struct gv_buf b;

    assert_non_null(data);
    for (i = 0; i < n; i++) {
        data[i] = (char)(i * 7 + i / 251);
    }
    assert_int_equal(gv_file_replace(f->path, data, n), GV_OK);
    gv_buf_init(&b, 0);
    assert_int_equal(gv_file_read_all(f->path, &b), GV_OK);
    assert_int_equal(b.len, n);
    assert_memory_equal(b.data, data, n);
    gv_buf_free(&b);
    free(data);
}

static void test_read_missing_and_capped(void **state)
{
    struct fx *f = *state;
    struct gv_buf b;

    gv_buf_init(&b, 0);
    assert_int_equal(gv_file_read_all(f->path, &b), GV_ENOTFOUND);
    assert_int_equal(b.len, 0);
    gv_buf_free(&b);
    assert_int_equal(gv_file_replace(f->path, "0123456789", 10), GV_OK);
    gv_buf_init(&b, 4);
    assert_int_equal(gv_file_read_all(f->path, &b), GV_E2BIG);
    gv_buf_free(&b);
    /* A directory opens but cannot be read: an I/O error, not "missing". */
    gv_buf_init(&b, 0);
    assert_int_equal(gv_file_read_all(f->dir, &b), GV_EIO);
    gv_buf_free(&b);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_replace_then_read, setup, teardown),
    cmocka_unit_test_setup_teardown(test_read_large, setup, teardown),
    cmocka_unit_test_setup_teardown(test_read_missing_and_capped, setup, teardown),
};

#include "tests/unit/unit_main.h"
