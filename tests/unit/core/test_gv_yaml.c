/* tests/unit/core/test_gv_yaml.c - YAML tree: positions, aliases, limits, garbage */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/gv_buf.h"
#include "core/gv_yaml.h"
#include "tests/unit/unit_rand.h"

static gv_rc load(const char *text, struct gv_ydoc **doc, struct gv_cfg_err *err)
{
    return gv_ydoc_load_buf("t.yaml", text, strlen(text), doc, err);
}

/* The document of text[0..len), which must load. */
static struct gv_ydoc *loaded_n(const char *text, size_t len)
{
    struct gv_ydoc *doc = NULL;
    struct gv_cfg_err err;

    assert_int_equal(gv_ydoc_load_buf("t.yaml", text, len, &doc, &err), GV_OK);
    return doc;
}

static struct gv_ydoc *loaded(const char *text)
{
    return loaded_n(text, strlen(text));
}

/* text[0..len) must be refused as a config error with exactly msg, and no document. */
static void refused_n(const char *text, size_t len, const char *msg)
{
    struct gv_ydoc *doc = NULL;
    struct gv_cfg_err err;

    assert_int_equal(gv_ydoc_load_buf("t.yaml", text, len, &doc, &err), GV_ECONFIG);
    assert_null(doc);
    assert_string_equal(err.msg, msg);
}

static void refused(const char *text, const char *msg)
{
    refused_n(text, strlen(text), msg);
}

static void test_load_buf_block_positions(void **state)
{
    struct gv_ydoc *doc = NULL;
    const struct gv_ynode *n;

    (void)state;
    doc = loaded("a: 1\nb:\n  - x\n  - 'y'\nc: {d: e}\n");
    assert_non_null(doc->root);
    assert_int_equal(doc->root->kind, GV_Y_MAP);
    assert_int_equal(doc->root->n, 3);
    n = gv_ynode_get(doc->root, "a");
    assert_string_equal(n->scalar, "1");
    assert_int_equal(n->line, 1);
    assert_int_equal(n->col, 4);
    assert_false(n->quoted);
    n = gv_ynode_get(doc->root, "b");
    assert_int_equal(n->kind, GV_Y_SEQ);
    assert_int_equal(n->n, 2);
    assert_int_equal(n->items[1]->line, 4);
    assert_int_equal(n->items[1]->col, 5);
    assert_true(n->items[1]->quoted);
    assert_string_equal(n->items[1]->scalar, "y");
    n = gv_ynode_key(doc->root, "c");
    assert_int_equal(n->line, 5);
    assert_int_equal(n->col, 1);
    n = gv_ynode_get(gv_ynode_get(doc->root, "c"), "d");
    assert_string_equal(n->scalar, "e");
    assert_int_equal(n->col, 8);
    assert_null(gv_ynode_get(doc->root, "zz"));
    assert_null(gv_ynode_get(gv_ynode_get(doc->root, "a"), "x"));
    gv_ydoc_destroy(doc);
}

static void test_load_buf_empty_document(void **state)
{
    struct gv_ydoc *doc = NULL;

    (void)state;
    doc = loaded("");
    assert_null(doc->root);
    gv_ydoc_destroy(doc);
    doc = loaded("# only a comment\n");
    assert_null(doc->root);
    gv_ydoc_destroy(doc);
}

static void test_load_buf_many_items(void **state)
{
    struct gv_buf b;
    struct gv_ydoc *doc = NULL;
    int i;

    (void)state;
    gv_buf_init(&b, 0);
    for (i = 0; i < 1000; i++) {
        assert_int_equal(gv_buf_appendf(&b, "k%d: [%d, v]\n", i, i), GV_OK);
    }
    doc = loaded_n(b.data, b.len);
    assert_int_equal(doc->root->n, 1000);
    assert_string_equal(gv_ynode_get(doc->root, "k999")->items[0]->scalar, "999");
    assert_int_equal(gv_ynode_key(doc->root, "k999")->line, 1000);
    gv_ydoc_destroy(doc);
    gv_buf_free(&b);
}

static void test_load_buf_duplicate_key(void **state)
{

    (void)state;
    refused("a: 1\nb:\n  x: 1\n  x: 2\n", "t.yaml:4:3: duplicate key 'x' (first defined at 3:3)");
    refused("{a: 1, a: 2}", "t.yaml:1:8: duplicate key 'a' (first defined at 1:2)");
}

static void test_load_buf_syntax_error_position(void **state)
{

    (void)state;
    refused("a: 1\nb: [1, 2\nc: 3\n", "t.yaml:3:2: did not find expected ',' or ']' "
                                      "(while parsing a flow sequence at 2:4)");
    refused("a: b: c\n", "t.yaml:1:5: mapping values are not allowed in this context");
}

static void test_load_buf_alias_copied(void **state)
{
    struct gv_ydoc *doc = NULL;
    const struct gv_ynode *a;
    const struct gv_ynode *b;

    (void)state;
    doc = loaded("base: &b {x: 1, y: [2, 3]}\ncopy: *b\ns: &s hi\nt: *s\n");
    a = gv_ynode_get(doc->root, "base");
    b = gv_ynode_get(doc->root, "copy");
    assert_ptr_not_equal(a, b);
    assert_int_equal(b->kind, GV_Y_MAP);
    assert_string_equal(gv_ynode_get(b, "y")->items[1]->scalar, "3");
    /* The copy keeps the anchor's positions. */
    assert_int_equal(gv_ynode_get(b, "x")->line, 1);
    assert_string_equal(gv_ynode_get(doc->root, "t")->scalar, "hi");
    gv_ydoc_destroy(doc);
}

static void test_load_buf_alias_cycle_and_unknown(void **state)
{

    (void)state;
    refused("a: &x [1, *x]\n", "t.yaml:1:11: unknown anchor 'x' "
                               "(aliases must follow a complete anchored node)");
    refused("a: *nope\n", "t.yaml:1:4: unknown anchor 'nope' "
                          "(aliases must follow a complete anchored node)");
}

static void test_load_buf_alias_bomb(void **state)
{
    struct gv_ydoc *doc = NULL;
    struct gv_cfg_err err;
    const char *bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                       "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                       "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                       "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                       "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                       "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n";

    (void)state;
    assert_int_equal(load(bomb, &doc, &err), GV_ECONFIG);
    assert_null(doc);
    assert_non_null(strstr(err.msg, "document too large (more than 100000 nodes)"));
    assert_int_equal(strncmp(err.msg, "t.yaml:5:", 9), 0);
}

static void test_load_buf_depth_limit(void **state)
{
    struct gv_buf b;
    int i;

    (void)state;
    gv_buf_init(&b, 0);
    for (i = 0; i < 64; i++) {
        assert_int_equal(gv_buf_append_char(&b, '['), GV_OK);
    }
    for (i = 0; i < 64; i++) {
        assert_int_equal(gv_buf_append_char(&b, ']'), GV_OK);
    }
    gv_ydoc_destroy(loaded_n(b.data, b.len));
    gv_buf_reset(&b);
    for (i = 0; i < 65; i++) {
        assert_int_equal(gv_buf_append_char(&b, '['), GV_OK);
    }
    refused_n(b.data, b.len, "t.yaml:1:65: nesting deeper than 64 levels");
    gv_buf_free(&b);
}

static void test_load_buf_rejects(void **state)
{
    static const char nul[] = "a: \"x\\0y\"\n";

    (void)state;
    refused(nul, "t.yaml:1:4: scalar contains a NUL character");
    refused("a: 1\n---\nb: 2\n", "t.yaml:2:1: only one YAML document is allowed");
    refused("[a, b]: 1\n", "t.yaml:1:1: mapping keys must be scalars, got a sequence");
    refused_n("a: \xff\xfe\n", 7, "t.yaml:1:4: invalid leading UTF-8 octet");
}

static void test_load_buf_garbage_never_crashes(void **state)
{
    /* Mostly YAML punctuation so the parser gets deep into its states, plus
     * raw bytes for the reader; a fixed seed keeps failures reproducible. */
    static const char alphabet[] = "{}[]:,-&*!|>'\"#%@` \n\t?abc01.~\\";
    char buf[300];
    uint32_t seed = 12345;
    int round;
    size_t i;
    size_t len;
    int ok = 0;
    int bad = 0;

    (void)state;
    for (round = 0; round < 5000; round++) {
        struct gv_ydoc *doc = NULL;
        struct gv_cfg_err err;
        gv_rc rc;

        unit_lcg(&seed);
        len = (seed >> 16) % sizeof(buf);
        for (i = 0; i < len; i++) {
            unit_lcg(&seed);
            if ((seed >> 16) % 8 == 0) {
                buf[i] = (char)((seed >> 8) & 0xff);
            }
            else {
                buf[i] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
            }
        }
        rc = gv_ydoc_load_buf("fuzz", buf, len, &doc, &err);
        if (rc == GV_OK) {
            ok++;
            assert_non_null(doc);
            gv_ydoc_destroy(doc);
        }
        else {
            bad++;
            assert_int_equal(rc, GV_ECONFIG);
            assert_null(doc);
            assert_int_equal(strncmp(err.msg, "fuzz:", 5), 0);
        }
    }
    /* Both outcomes must occur or the generator is not exercising anything. */
    assert_true(ok > 0);
    assert_true(bad > 0);
}

static void test_load_file_missing(void **state)
{
    struct gv_ydoc *doc = NULL;
    struct gv_cfg_err err;

    (void)state;
    assert_int_equal(gv_ydoc_load_file("/nonexistent/kt.yaml", &doc, &err), GV_EIO);
    assert_null(doc);
    assert_string_equal(err.msg, "/nonexistent/kt.yaml: cannot open: No such file or directory");
}

static void test_cfg_fail_format(void **state)
{
    struct gv_ydoc *doc = NULL;
    struct gv_cfg_err err;

    (void)state;
    assert_int_equal(gv_cfg_fail(&err, "p.yaml", NULL, "bad %d", 7), GV_ECONFIG);
    assert_string_equal(err.msg, "p.yaml:1:1: bad 7");
    doc = loaded("\n\n   k: v\n");
    assert_int_equal(gv_cfg_fail(&err, doc->path, gv_ynode_get(doc->root, "k"), "x"), GV_ECONFIG);
    assert_string_equal(err.msg, "t.yaml:3:7: x");
    assert_string_equal(gv_ynode_kind_str(GV_Y_SEQ), "sequence");
    assert_string_equal(gv_ynode_kind_str(GV_Y_MAP), "mapping");
    assert_string_equal(gv_ynode_kind_str(GV_Y_SCALAR), "scalar");
    gv_ydoc_destroy(doc);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_load_buf_block_positions),
    cmocka_unit_test(test_load_buf_empty_document),
    cmocka_unit_test(test_load_buf_many_items),
    cmocka_unit_test(test_load_buf_duplicate_key),
    cmocka_unit_test(test_load_buf_syntax_error_position),
    cmocka_unit_test(test_load_buf_alias_copied),
    cmocka_unit_test(test_load_buf_alias_cycle_and_unknown),
    cmocka_unit_test(test_load_buf_alias_bomb),
    cmocka_unit_test(test_load_buf_depth_limit),
    cmocka_unit_test(test_load_buf_rejects),
    cmocka_unit_test(test_load_buf_garbage_never_crashes),
    cmocka_unit_test(test_load_file_missing),
    cmocka_unit_test(test_cfg_fail_format),
};

#include "tests/unit/unit_main.h"
