/* tests/unit/core/test_gv_list.c - intrusive doubly linked lists */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/gv_list.h"

struct node {
    char name;
    struct node *prev;
    struct node *next;
};

/* The names from head on, checking every back link on the way. */
static void expect(const struct node *head, const char *names)
{
    char got[8];
    size_t n = 0;
    const struct node *prev = NULL;

    for (; head && n < sizeof(got) - 1; head = head->next) {
        assert_ptr_equal(head->prev, prev);
        got[n++] = head->name;
        prev = head;
    }
    got[n] = '\0';
    assert_string_equal(got, names);
}

static void test_push_puts_first(void **state)
{
    struct node a = {'a', NULL, NULL}, b = {'b', NULL, NULL}, c = {'c', NULL, NULL};
    struct node *head = NULL;

    (void)state;
    GV_DLIST_PUSH(head, &a);
    expect(head, "a");
    GV_DLIST_PUSH(head, &b);
    GV_DLIST_PUSH(head, &c);
    expect(head, "cba");
}

static void test_unlink_middle_head_tail(void **state)
{
    struct node a = {'a', NULL, NULL}, b = {'b', NULL, NULL}, c = {'c', NULL, NULL};
    struct node *head = NULL;

    (void)state;
    GV_DLIST_PUSH(head, &a);
    GV_DLIST_PUSH(head, &b);
    GV_DLIST_PUSH(head, &c);
    GV_DLIST_UNLINK(head, &b);
    expect(head, "ca");
    assert_null(b.prev);
    assert_null(b.next);
    GV_DLIST_UNLINK(head, &c);
    expect(head, "a");
    GV_DLIST_UNLINK(head, &a);
    assert_null(head);
    assert_null(a.next);
}

/* A node that is in no list leaves the list alone. */
static void test_unlink_unlisted_is_harmless(void **state)
{
    struct node a = {'a', NULL, NULL}, lone = {'x', NULL, NULL};
    struct node *head = NULL;

    (void)state;
    GV_DLIST_PUSH(head, &a);
    GV_DLIST_UNLINK(head, &lone);
    expect(head, "a");
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_push_puts_first),
    cmocka_unit_test(test_unlink_middle_head_tail),
    cmocka_unit_test(test_unlink_unlisted_is_harmless),
};

#include "tests/unit/unit_main.h"
