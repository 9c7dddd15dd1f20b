/* tests/unit/unit_main.h - the main of a unit test executable: run the file's cases */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KT_UNIT_MAIN_H
#define KT_UNIT_MAIN_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/* Include this last, after `static const struct CMUnitTest tests[]`: every unit test runs its
 * cases the same way, as one cmocka group named "tests" with no group setup, so that runner is
 * written here once. A test that needs a group setup or other work before the run (ignoring
 * SIGPIPE, a second group) writes its own main instead. */
int main(void)
{
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif
