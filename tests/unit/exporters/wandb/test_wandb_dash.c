/* tests/unit/exporters/wandb/test_wandb_dash.c - built-in specs parse, resolve, agree */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "exporters/wandb/wandb.h"

static const char *const keys[] = {
    "governance/allowed",
    "governance/blocked",
    "governance/blocked_by/",
    "governance/pii/",
    "governance/latency_p50_seconds",
    "governance/latency_p95_seconds",
    "governance/latency_p99_seconds",
    "governance/latency_seconds\"",
    "governance/tokens_total",
    "governance/cost_usd",
};

static void test_render_resolves_names(void **state)
{
    struct json_object *ws = NULL, *rp = NULL;
    const char *w, *r;
    size_t i;

    assert_int_equal(ex_wandb_dash_render("alice", "gov", "UHJvamVjdDox", &ws, &rp), GV_OK);
    w = json_object_to_json_string_ext(ws, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    assert_null(strchr(w, '@'));
    assert_non_null(strstr(w, "\"name\":\"Governance\""));
    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        assert_non_null(strstr(w, keys[i]));
    }
    r = json_object_to_json_string_ext(rp, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    assert_null(strchr(r, '@'));
    assert_non_null(strstr(r, "\"entityName\":\"alice\""));
    assert_non_null(strstr(r, "\"id\":\"UHJvamVjdDox\""));
    assert_non_null(strstr(r, "LLM governance in gov"));
    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        assert_non_null(strstr(r, keys[i]));
    }
    json_object_put(ws);
    json_object_put(rp);
}

/* The panels of the report's panel-grid block (the last one if several). */
static struct json_object *report_panels(struct json_object *rp)
{
    struct json_object *v, *blocks, *rpan = NULL;
    size_t i;

    assert_true(json_object_object_get_ex(rp, "blocks", &blocks));
    for (i = 0; i < json_object_array_length(blocks); i++) {
        v = json_object_array_get_idx(blocks, i);
        if (json_object_object_get_ex(v, "metadata", &v) &&
            json_object_object_get_ex(v, "panelBankSectionConfig", &v)) {
            assert_true(json_object_object_get_ex(v, "panels", &rpan));
        }
    }
    assert_non_null(rpan);
    return rpan;
}

static void test_report_panels_equal_workspace_panels(void **state)
{
    struct json_object *ws = NULL, *rp = NULL, *v, *secs, *wp, *rpan;

    assert_int_equal(ex_wandb_dash_render("e", "p", "1", &ws, &rp), GV_OK);
    assert_true(json_object_object_get_ex(ws, "section", &v));
    assert_true(json_object_object_get_ex(v, "panelBankConfig", &v));
    assert_true(json_object_object_get_ex(v, "sections", &secs));
    assert_true(json_object_object_get_ex(json_object_array_get_idx(secs, 0), "panels", &wp));
    assert_int_equal(json_object_array_length(wp), 7);
    rpan = report_panels(rp);
    assert_true(json_object_equal(wp, rpan));
    json_object_put(ws);
    json_object_put(rp);
}

/* The report's panel grid is 24 columns wide and places each panel where its
 * layout says: panels that share cells are drawn on top of each other. */
static void test_report_panels_tile_the_grid(void **state)
{
    struct json_object *ws = NULL, *rp = NULL, *rpan;
    long x[16], y[16], w[16], h[16];
    size_t n, i, j;

    assert_int_equal(ex_wandb_dash_render("e", "p", "1", &ws, &rp), GV_OK);
    rpan = report_panels(rp);
    n = json_object_array_length(rpan);
    assert_true(n > 1 && n <= 16);
    for (i = 0; i < n; i++) {
        struct json_object *l, *f;
        assert_true(json_object_object_get_ex(json_object_array_get_idx(rpan, i), "layout", &l));
        assert_true(json_object_object_get_ex(l, "x", &f));
        x[i] = json_object_get_int(f);
        assert_true(json_object_object_get_ex(l, "y", &f));
        y[i] = json_object_get_int(f);
        assert_true(json_object_object_get_ex(l, "w", &f));
        w[i] = json_object_get_int(f);
        assert_true(json_object_object_get_ex(l, "h", &f));
        h[i] = json_object_get_int(f);
        /* Three across, rows of height 6, in the workspace's order. */
        assert_int_equal(w[i], 8);
        assert_int_equal(h[i], 6);
        assert_int_equal(x[i], (long)(i % 3) * 8);
        assert_int_equal(y[i], (long)(i / 3) * 6);
    }
    for (i = 0; i < n; i++) {
        for (j = i + 1; j < n; j++) {
            bool apart = x[i] + w[i] <= x[j] || x[j] + w[j] <= x[i] || y[i] + h[i] <= y[j] ||
                         y[j] + h[j] <= y[i];
            assert_true(apart);
        }
    }
    json_object_put(ws);
    json_object_put(rp);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_render_resolves_names),
    cmocka_unit_test(test_report_panels_equal_workspace_panels),
    cmocka_unit_test(test_report_panels_tile_the_grid),
};

#include "tests/unit/unit_main.h"
