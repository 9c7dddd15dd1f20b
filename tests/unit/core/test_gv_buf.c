/* tests/unit/core/test_gv_buf.c - taking back what was appended since a mark */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/gv_buf.h"

/* A writer that marks, appends, then takes it back: the bytes before the mark stay, the
 * text ends there again (data stays NUL-terminated), and appends go on from the mark. */
static void test_truncate_to_a_mark(void **state)
{
    struct gv_buf b;
    size_t mark;
    (void)state;

    gv_buf_init(&b, 0);
    assert_int_equal(gv_buf_append_str(&b, "kept"), GV_OK);
    mark = b.len;
    assert_int_equal(gv_buf_append_str(&b, ",half an item"), GV_OK);
    gv_buf_truncate(&b, mark);
    assert_int_equal(b.len, 4);
    assert_string_equal(b.data, "kept");
    assert_int_equal(gv_buf_append_str(&b, "+next"), GV_OK);
    assert_string_equal(b.data, "kept+next");
    gv_buf_truncate(&b, 0);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    gv_buf_free(&b);
}

/* Past the end it only ends the text where it is; an empty buffer has nothing to cut. */
static void test_truncate_past_end_and_empty(void **state)
{
    struct gv_buf b;
    (void)state;

    gv_buf_init(&b, 0);
    gv_buf_truncate(&b, 0);
    assert_null(b.data);
    assert_int_equal(gv_buf_append_str(&b, "abc"), GV_OK);
    gv_buf_truncate(&b, 10);
    assert_int_equal(b.len, 3);
    assert_string_equal(b.data, "abc");
    gv_buf_free(&b);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_truncate_to_a_mark),
    cmocka_unit_test(test_truncate_past_end_and_empty),
};

#include "tests/unit/unit_main.h"
