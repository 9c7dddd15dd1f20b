/* tests/unit/core/test_gv_cfg.c - config maps: types, defaults, positioned errors */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/gv_cfg.h"

struct demo {
    bool on;
    long count;
    double threshold;
    const char *label;
    int action;
    struct gv_cfg_strlist entities;
    const struct gv_ynode *extra;
    size_t body;
    long timeout;
    const char *must;
};

static const char *const actions[] = {"block", "flag", "log", NULL};

static const struct gv_cfg_map demo_map[] = {
    {"on", GV_CFG_BOOL, offsetof(struct demo, on), "true", 0, NULL, 0, 0, NULL},
    {"count", GV_CFG_INT, offsetof(struct demo, count), "3", 0, NULL, 1, 10, NULL},
    {"threshold", GV_CFG_DOUBLE, offsetof(struct demo, threshold), "0.8", 0, NULL, 0, 1, NULL},
    {"label", GV_CFG_STR, offsetof(struct demo, label), "none", 0, NULL, 0, 0, NULL},
    {"action", GV_CFG_ENUM, offsetof(struct demo, action), "flag", 0, actions, 0, 0, NULL},
    {"entities", GV_CFG_STRLIST, offsetof(struct demo, entities), NULL, 0, NULL, 0, 0, NULL},
    {"extra", GV_CFG_NODE, offsetof(struct demo, extra), NULL, 0, NULL, 0, 0, NULL},
    {"body", GV_CFG_SIZE, offsetof(struct demo, body), "4MiB", 0, NULL, 0, 0, NULL},
    {"timeout", GV_CFG_DURATION, offsetof(struct demo, timeout), "30s", 0, NULL, 0, 0, NULL},
    {NULL, 0, 0, NULL, 0, NULL, 0, 0, NULL},
};

static const struct gv_cfg_map required_map[] = {
    {"must", GV_CFG_STR, offsetof(struct demo, must), NULL, GV_CFG_REQUIRED, NULL, 0, 0, NULL},
    {NULL, 0, 0, NULL, 0, NULL, 0, 0, NULL},
};

/* One applied document: the YAML tree, the struct filled from its `p` member
 * (as policy.demo) and the error. */
struct applied {
    struct gv_ydoc *doc;
    struct gv_cfg_err err;
    struct demo d;
};

static void applied_free(struct applied *a)
{
    gv_cfg_release(demo_map, &a->d);
    gv_ydoc_destroy(a->doc);
    a->doc = NULL;
}

/* Parses `yaml` and applies `map` to its `p` member into a fresh a->d, after
 * freeing what a held; returns the rc of the apply. */
static gv_rc apply(struct applied *a, const struct gv_cfg_map *map, const char *yaml)
{
    applied_free(a);
    memset(&a->d, 0, sizeof(a->d));
    assert_int_equal(gv_ydoc_load_buf("c.yaml", yaml, strlen(yaml), &a->doc, &a->err), GV_OK);
    return gv_cfg_apply_in(map, "c.yaml", "policy.demo", gv_ynode_get(a->doc->root, "p"), &a->d,
                           &a->err);
}

static int setup(void **state)
{
    *state = calloc(1, sizeof(struct applied));
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    applied_free(*state);
    free(*state);
    return 0;
}

/* Expects apply() to fail with exactly `msg`. */
static void expect_error(const char *yaml, const char *msg)
{
    struct applied a = {0};

    assert_int_equal(apply(&a, demo_map, yaml), GV_ECONFIG);
    assert_string_equal(a.err.msg, msg);
    /* A failed apply leaves nothing allocated behind. */
    assert_null(a.d.entities.items);
    applied_free(&a);
}

/* The scalar settings in got are those of want; the list and the node are the caller's to
 * check. */
static void assert_scalars(const struct demo *got, const struct demo *want)
{
    assert_int_equal(got->on, want->on);
    assert_int_equal(got->count, want->count);
    assert_true(got->threshold == want->threshold);
    assert_string_equal(got->label, want->label);
    assert_int_equal(got->action, want->action);
    assert_int_equal(got->body, want->body);
    assert_int_equal(got->timeout, want->timeout);
}

static void test_apply_defaults(void **state)
{
    struct applied *a = *state;
    const struct demo want = {.on = true,
                              .count = 3,
                              .threshold = 0.8,
                              .label = "none",
                              .action = 1,
                              .body = 4u * 1024 * 1024,
                              .timeout = 30000};

    assert_int_equal(apply(a, demo_map, "q: 1\n"), GV_OK);
    assert_scalars(&a->d, &want);
    assert_int_equal(a->d.entities.n, 0);
    assert_null(a->d.extra);
    gv_cfg_release(demo_map, &a->d);
    /* An explicit null mapping ("p:" with nothing) also means defaults. */
    assert_int_equal(apply(a, demo_map, "p:\n"), GV_OK);
    assert_int_equal(a->d.count, 3);
    gv_cfg_release(demo_map, &a->d);
}

static void test_apply_values(void **state)
{
    struct applied *a = *state;
    const struct demo want = {.on = false,
                              .count = 10,
                              .threshold = 0.25,
                              .label = "007",
                              .action = 2,
                              .body = 512u * 1024,
                              .timeout = 100};

    assert_int_equal(apply(a, demo_map,
                           "p:\n  on: no\n  count: 10\n  threshold: 0.25\n  label: '007'\n"
                           "  action: log\n  entities: [PERSON, EMAIL_ADDRESS]\n"
                           "  extra: {a: [1]}\n  body: 512KiB\n  timeout: 100ms\n"),
                     GV_OK);
    assert_scalars(&a->d, &want);
    assert_int_equal(a->d.entities.n, 2);
    assert_string_equal(a->d.entities.items[1], "EMAIL_ADDRESS");
    assert_int_equal(a->d.entities.nodes[1]->line, 7);
    assert_int_equal(a->d.entities.nodes[1]->col, 22);
    assert_int_equal(a->d.extra->kind, GV_Y_MAP);
    gv_cfg_release(demo_map, &a->d);
    assert_null(a->d.entities.items);
    assert_int_equal(a->d.entities.n, 0);
    /* Releasing twice is harmless. */
    gv_cfg_release(demo_map, &a->d);
}

static void test_apply_unknown_key(void **state)
{
    (void)state;
    expect_error("p:\n  on: true\n  colour: red\n",
                 "c.yaml:3:3: unknown key 'colour' in policy.demo (expected one of: on, count, "
                 "threshold, label, action, entities, extra, body, timeout)");
}

static void test_apply_wrong_type(void **state)
{
    (void)state;
    expect_error("p:\n  threshold: [1, 2]\n",
                 "c.yaml:2:14: policy.demo.threshold: expected a number, got a sequence");
    expect_error("p: {threshold: high}\n",
                 "c.yaml:1:16: policy.demo.threshold: expected a number, got 'high'");
    expect_error("p: {on: maybe}\n",
                 "c.yaml:1:9: policy.demo.on: expected a boolean (true or false), got 'maybe'");
    expect_error("p: {count: 2.5}\n",
                 "c.yaml:1:12: policy.demo.count: expected an integer, got '2.5'");
    expect_error("p: {label: {a: 1}}\n",
                 "c.yaml:1:12: policy.demo.label: expected a string, got a mapping");
    expect_error("p: {label: }\n", "c.yaml:1:12: policy.demo.label: expected a string, got null");
    expect_error("p: {entities: PERSON}\n",
                 "c.yaml:1:15: policy.demo.entities: expected a sequence of strings, got a "
                 "scalar");
    expect_error("p: {entities: [PERSON, [x]]}\n",
                 "c.yaml:1:24: policy.demo.entities[1]: expected a string, got a sequence");
    expect_error("p: [1]\n", "c.yaml:1:4: policy.demo: expected a mapping, got a sequence");
}

static void test_apply_enum(void **state)
{
    (void)state;
    expect_error("p: {action: redact}\n",
                 "c.yaml:1:13: policy.demo.action: expected one of block|flag|log, got 'redact'");
    expect_error("p: {action: [block]}\n",
                 "c.yaml:1:13: policy.demo.action: expected one of block|flag|log, got a "
                 "sequence");
}

static void test_apply_range(void **state)
{
    (void)state;
    expect_error("p: {threshold: 1.5}\n",
                 "c.yaml:1:16: policy.demo.threshold: 1.5 is out of range [0, 1]");
    expect_error("p: {count: 0}\n", "c.yaml:1:12: policy.demo.count: 0 is out of range [1, 10]");
    expect_error("p: {body: 4XB}\n",
                 "c.yaml:1:11: policy.demo.body: expected a size (bytes, or e.g. 512KiB, 4MiB, "
                 "1GB), got '4XB'");
    expect_error("p: {timeout: soon}\n",
                 "c.yaml:1:14: policy.demo.timeout: expected a duration (milliseconds, or e.g. "
                 "100ms, 30s, 5m), got 'soon'");
}

static void test_apply_required_missing(void **state)
{
    struct applied *a = *state;

    assert_int_equal(apply(a, required_map, "x: 1\np:\n    other: 1\n"), GV_ECONFIG);
    assert_string_equal(a->err.msg, "c.yaml:3:5: unknown key 'other' in policy.demo (expected one "
                                    "of: must)");
    assert_int_equal(apply(a, required_map, "x: 1\np:\n    {}\n"), GV_ECONFIG);
    /* Positioned on the mapping that lacks the key. */
    assert_string_equal(a->err.msg, "c.yaml:3:5: policy.demo: missing required key 'must'");
    /* No mapping at all: nothing to point at but the file. */
    assert_int_equal(apply(a, required_map, "x: 1\n"), GV_ECONFIG);
    assert_string_equal(a->err.msg, "c.yaml:1:1: policy.demo: missing required key 'must'");
}

static void test_apply_no_settings_map(void **state)
{
    struct applied *a = *state;

    assert_int_equal(apply(a, NULL, "p: {}\n"), GV_OK);
    assert_int_equal(apply(a, NULL, "p: {a: 1}\n"), GV_ECONFIG);
    assert_string_equal(a->err.msg, "c.yaml:1:5: unknown key 'a' in policy.demo (it takes no "
                                    "settings)");
}

static void test_parse_size(void **state)
{
    static const struct {
        const char *in;
        size_t out;
    } good[] = {
        {"0", 0},           {"123", 123},         {"4MiB", 4194304},
        {"512KiB", 524288}, {"1GB", 1000000000},  {"1gb", 1000000000},
        {"2KB", 2000},      {"1.5KiB", 1536},     {"4 MiB", 4194304},
        {"16k", 16384},     {"1GiB", 1073741824}, {"10B", 10},
    };
    static const char *const bad[] = {
        "",
        "-1",
        "+1",
        "4XB",
        "1.5",
        "MiB",
        "1.KiB",
        " 4MiB",
        "4MiB ",
        "18446744073709551616",
        "99999999999GiB",
        "0x10",
    };
    size_t v;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        v = 7;
        assert_true(gv_cfg_parse_size(good[i].in, &v));
        assert_int_equal(v, good[i].out);
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = 7;
        assert_false(gv_cfg_parse_size(bad[i], &v));
        assert_int_equal(v, 7);
    }
}

static void test_parse_duration(void **state)
{
    static const struct {
        const char *in;
        long out;
    } good[] = {
        {"30s", 30000}, {"100ms", 100},  {"5m", 300000}, {"250", 250},
        {"1.5s", 1500}, {"1h", 3600000}, {"0", 0},       {"2min", 120000},
    };
    static const char *const bad[] = {
        "", "s", "-5s", "5 parsecs", "5d", "5.s", "1e3", "inf", "99999999999999999999s"};
    long v;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_true(gv_cfg_parse_duration_ms(good[i].in, &v));
        assert_int_equal(v, good[i].out);
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(gv_cfg_parse_duration_ms(bad[i], &v));
    }
}

static void test_parse_scalars(void **state)
{
    bool b = false;
    long l = 0;
    double d = 0;

    (void)state;
    assert_true(gv_cfg_parse_bool("yes", &b));
    assert_true(b);
    assert_true(gv_cfg_parse_bool("False", &b));
    assert_false(b);
    assert_false(gv_cfg_parse_bool("1", &b));
    assert_true(gv_cfg_parse_long("-42", &l));
    assert_int_equal(l, -42);
    assert_false(gv_cfg_parse_long("42x", &l));
    assert_false(gv_cfg_parse_long(" 42", &l));
    assert_false(gv_cfg_parse_long("99999999999999999999", &l));
    assert_true(gv_cfg_parse_double("0.8", &d));
    assert_true(d == 0.8);
    assert_true(gv_cfg_parse_double("1e-3", &d));
    assert_false(gv_cfg_parse_double("nan", &d));
    assert_false(gv_cfg_parse_double("inf", &d));
    assert_false(gv_cfg_parse_double("0x1p3", &d));
    assert_false(gv_cfg_parse_double("", &d));
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_apply_defaults, setup, teardown),
    cmocka_unit_test_setup_teardown(test_apply_values, setup, teardown),
    cmocka_unit_test(test_apply_unknown_key),
    cmocka_unit_test(test_apply_wrong_type),
    cmocka_unit_test(test_apply_enum),
    cmocka_unit_test(test_apply_range),
    cmocka_unit_test_setup_teardown(test_apply_required_missing, setup, teardown),
    cmocka_unit_test_setup_teardown(test_apply_no_settings_map, setup, teardown),
    cmocka_unit_test(test_parse_size),
    cmocka_unit_test(test_parse_duration),
    cmocka_unit_test(test_parse_scalars),
};

#include "tests/unit/unit_main.h"
