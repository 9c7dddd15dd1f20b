/* tests/unit/exporters/wandb/test_wandb_netrc.c - one machine's netrc entry replaced or removed */
/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "exporters/ex_wandb_netrc.h"
#include "tests/unit/unit_rand.h"

#define NEW "machine api.wandb.ai\n  login user\n  password NEWKEY\n"

struct netrc_case {
    const char *name;
    const char *in;
    const char *password; /* NULL: remove */
    const char *want;
    bool found;
};

static const struct netrc_case cases[] = {
    {"empty file gets the entry", "", "NEWKEY", NEW, false},
    {"other hosts are kept, entry appended",
     "machine other.example.com login bob password sekrit\n", "NEWKEY",
     "machine other.example.com login bob password sekrit\n" NEW, false},
    {"a missing final newline is added first", "machine other login bob password x", "NEWKEY",
     "machine other login bob password x\n" NEW, false},
    {"the entry is replaced in place",
     "machine a login x password 1\nmachine api.wandb.ai\n  login user\n  password OLD\n"
     "machine b login y password 2\n",
     "NEWKEY", "machine a login x password 1\n" NEW "machine b login y password 2\n", true},
    {"a one-line entry is replaced, its neighbours and comments kept",
     "# mine\nmachine api.wandb.ai login user password OLD\n# theirs\nmachine b password 2\n",
     "NEWKEY", "# mine\n" NEW "# theirs\nmachine b password 2\n", true},
    {"a second entry for the host goes",
     "machine api.wandb.ai password A\nmachine x password 1\n"
     "machine api.wandb.ai password B\n",
     "NEWKEY", NEW "machine x password 1\n", true},
    {"a host that only starts the same is another host", "machine api.wandb.ai.evil password A\n",
     "NEWKEY", "machine api.wandb.ai.evil password A\n" NEW, false},
    {"a password that reads 'machine api.wandb.ai' is data",
     "machine x login machine password api.wandb.ai\n", "NEWKEY",
     "machine x login machine password api.wandb.ai\n" NEW, false},
    {"macdef bodies are not parsed",
     "macdef init\nmachine api.wandb.ai password no\n\nmachine y password 3\n", "NEWKEY",
     "macdef init\nmachine api.wandb.ai password no\n\nmachine y password 3\n" NEW, false},
    {"default stays", "machine api.wandb.ai password OLD\ndefault login anon password z\n",
     "NEWKEY", NEW "default login anon password z\n", true},
    {"remove keeps the others",
     "machine a password 1\nmachine api.wandb.ai\n  login user\n  password OLD\nmachine b password "
     "2\n",
     NULL, "machine a password 1\nmachine b password 2\n", true},
    {"remove of the last entry", "machine a password 1\nmachine api.wandb.ai password OLD\n", NULL,
     "machine a password 1\n", true},
    {"remove without an entry changes nothing", "machine a password 1\n", NULL,
     "machine a password 1\n", false},
};

static void test_netrc_edit_cases(void **state)
{
    struct gv_buf out;
    size_t i;

    (void)state;
    gv_buf_init(&out, 1u << 16);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool found = !cases[i].found;
        gv_rc rc = ex_wandb_netrc_edit(cases[i].in, strlen(cases[i].in), "api.wandb.ai", "user",
                                       cases[i].password, &out, &found);
        if (rc != GV_OK || strcmp(out.data ? out.data : "", cases[i].want) != 0 ||
            found != cases[i].found) {
            print_error("case '%s': rc=%d found=%d\n got: [%s]\nwant: [%s]\n", cases[i].name,
                        (int)rc, (int)found, out.data ? out.data : "", cases[i].want);
            fail();
        }
    }
    gv_buf_free(&out);
}

static void test_netrc_edit_refuses_unwritable_values(void **state)
{
    struct gv_buf out;
    bool found;

    (void)state;
    gv_buf_init(&out, 1u << 16);
    assert_int_equal(ex_wandb_netrc_edit("", 0, "api.wandb.ai", "user", "a b", &out, &found),
                     GV_EINVAL);
    assert_int_equal(
        ex_wandb_netrc_edit("", 0, "api.wandb.ai", "user", "a\nmachine x", &out, &found),
        GV_EINVAL);
    assert_int_equal(ex_wandb_netrc_edit("", 0, "api.wandb.ai", "user", "", &out, &found),
                     GV_EINVAL);
    assert_int_equal(ex_wandb_netrc_edit("", 0, "", "user", "k", &out, &found), GV_EINVAL);
    gv_buf_free(&out);
}

/* Any bytes in: no crash, and the result still has the new entry. */
static void test_netrc_edit_any_bytes(void **state)
{
    struct gv_buf out;
    char in[64];
    uint32_t x = 12345;
    bool found;
    int i, j;

    (void)state;
    gv_buf_init(&out, 1u << 16);
    for (i = 0; i < 2000; i++) {
        for (j = 0; j < (int)sizeof(in); j++) {
            static const char al[] = "machine api.wandb.ai password#\n\t macdef default login";
            unit_lcg(&x);
            in[j] = (x >> 16) % 5 == 0 ? (char)(x >> 8) : al[(x >> 16) % (sizeof(al) - 1)];
        }
        assert_int_equal(
            ex_wandb_netrc_edit(in, sizeof(in), "api.wandb.ai", "user", "NEWKEY", &out, &found),
            GV_OK);
        assert_non_null(memmem(out.data, out.len, NEW, strlen(NEW)));
        assert_int_equal(
            ex_wandb_netrc_edit(in, sizeof(in), "api.wandb.ai", "user", NULL, &out, &found), GV_OK);
    }
    gv_buf_free(&out);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_netrc_edit_cases),
    cmocka_unit_test(test_netrc_edit_refuses_unwritable_values),
    cmocka_unit_test(test_netrc_edit_any_bytes),
};

#include "tests/unit/unit_main.h"
