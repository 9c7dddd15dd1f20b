/* tests/unit/cli/test_cli_args.c - cli_args_parse over a table of command lines */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cli/cli_args.h"

/* What one parse left behind, in one line, so a row can say what it expects. */
struct got {
    const char *dir;
    long n;
    bool json;
    const char *pos[2];
    int npos;
};

struct row {
    const char *name;
    const char *argv[8]; /* NULL-terminated */
    int want_rc;         /* CLI_ARGS_RUN, 0 (help) or 2 */
    const char *want_dir;
    long want_n;
    bool want_json;
    int want_npos;
    const char *want_pos0;
};

/* One case a row. */
/* clang-format off */
static const struct row rows[] = {
    {"nothing", {NULL}, CLI_ARGS_RUN, NULL, 7, false, 0, NULL},
    {"space value", {"--dir", "/x", NULL}, CLI_ARGS_RUN, "/x", 7, false, 0, NULL},
    {"equals value", {"--dir=/x", NULL}, CLI_ARGS_RUN, "/x", 7, false, 0, NULL},
    {"equals keeps later =", {"--dir=a=b", NULL}, CLI_ARGS_RUN, "a=b", 7, false, 0, NULL},
    {"empty equals value", {"--dir=", NULL}, CLI_ARGS_RUN, "", 7, false, 0, NULL},
    {"number both ways", {"--n", "3", "--n=4", NULL}, CLI_ARGS_RUN, NULL, 4, false, 0, NULL},
    {"flag", {"--json", NULL}, CLI_ARGS_RUN, NULL, 7, true, 0, NULL},
    {"positional", {"f.yaml", "--json", NULL}, CLI_ARGS_RUN, NULL, 7, true, 1, "f.yaml"},
    {"lone dash is positional", {"-", NULL}, CLI_ARGS_RUN, NULL, 7, false, 1, "-"},
    {"double dash ends options", {"--", "--json", NULL}, CLI_ARGS_RUN, NULL, 7, false, 1, "--json"},
    {"value may start with dash", {"--dir", "--json", NULL}, CLI_ARGS_RUN, "--json", 7, false, 0,
     NULL},
    {"help", {"--help", NULL}, 0, NULL, 7, false, 0, NULL},
    {"short help", {"-h", NULL}, 0, NULL, 7, false, 0, NULL},
    {"help wins over a bad option after it", {"--help", "--bogus", NULL}, 0, NULL, 7, false, 0,
     NULL},
    {"unknown option", {"--bogus", NULL}, 2, NULL, 7, false, 0, NULL},
    {"unknown with value", {"--bogus=1", NULL}, 2, NULL, 7, false, 0, NULL},
    {"prefix is not a match", {"--di", "x", NULL}, 2, NULL, 7, false, 0, NULL},
    {"short option unknown", {"-x", NULL}, 2, NULL, 7, false, 0, NULL},
    {"missing value", {"--dir", NULL}, 2, NULL, 7, false, 0, NULL},
    {"flag with value", {"--json=1", NULL}, 2, NULL, 7, false, 0, NULL},
    {"number not a number", {"--n", "3x", NULL}, 2, NULL, 7, false, 0, NULL},
    {"number below range", {"--n=0", NULL}, 2, NULL, 7, false, 0, NULL},
    {"number above range", {"--n=11", NULL}, 2, NULL, 7, false, 0, NULL},
    {"number empty", {"--n=", NULL}, 2, NULL, 7, false, 0, NULL},
    {"too many positionals", {"a", "b", "c", NULL}, 2, NULL, 7, false, 0, NULL},
};
/* clang-format on */

static int parse_row(const struct row *r, struct got *g, int pos_min)
{
    char *argv[8];
    int argc = 0;
    const struct cli_opt opts[] = {
        {"--dir", CLI_OPT_STR, &g->dir, 0, 0},
        {"--n", CLI_OPT_LONG, &g->n, 1, 10},
        {"--json", CLI_OPT_FLAG, &g->json, 0, 0},
        {NULL, CLI_OPT_FLAG, NULL, 0, 0},
    };
    const struct cli_spec spec = {
        "kt test", "usage: kt test [--dir D] [--n N] [--json] [F [G]]\n", opts, g->pos, pos_min, 2};

    while (r->argv[argc]) {
        argv[argc] = (char *)r->argv[argc];
        argc++;
    }
    memset(g, 0, sizeof(*g));
    g->n = 7;
    return cli_args_parse(&spec, argc, argv, &g->npos);
}

static void test_rows(void **state)
{
    size_t i;
    (void)state;

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct row *r = &rows[i];
        struct got g;
        int rc = parse_row(r, &g, 0);

        print_message("case: %s\n", r->name);
        assert_int_equal(rc, r->want_rc);
        if (rc != CLI_ARGS_RUN) {
            continue;
        }
        if (r->want_dir) {
            assert_non_null(g.dir);
            assert_string_equal(g.dir, r->want_dir);
        }
        else {
            assert_null(g.dir);
        }
        assert_int_equal(g.n, r->want_n);
        assert_int_equal(g.json, r->want_json);
        assert_int_equal(g.npos, r->want_npos);
        if (r->want_pos0) {
            assert_string_equal(g.pos[0], r->want_pos0);
        }
    }
}

/* A required positional argument that is missing is a usage error, not a run. */
static void test_missing_positional(void **state)
{
    static const struct row none = {"none", {"--json", NULL}, 2, NULL, 7, true, 0, NULL};
    struct got g;
    (void)state;

    assert_int_equal(parse_row(&none, &g, 1), 2);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_rows),
    cmocka_unit_test(test_missing_positional),
};

#include "tests/unit/unit_main.h"
