/* tests/unit/exporters/wandb/test_wandb_store.c - durable rows: steps, dedupe, crash repair */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/gv_mem.h"
#include "exporters/wandb/wandb.h"
#include "tests/unit/unit_tmpdir.h"

static struct json_object *entry(const char *run, int requests, bool final)
{
    struct json_object *e = json_object_new_object();
    struct json_object *row = json_object_new_object();
    json_object_object_add(e, "run", json_object_new_string(run));
    json_object_object_add(e, "entity", json_object_new_string(""));
    json_object_object_add(e, "project", json_object_new_string("gov"));
    json_object_object_add(e, "config", json_object_new_object());
    json_object_object_add(row, "governance/requests", json_object_new_int(requests));
    json_object_object_add(row, "_runtime", json_object_new_double(1.5));
    json_object_object_add(e, "row", row);
    json_object_object_add(e, "final", json_object_new_boolean(final));
    return e;
}

/* Each test's store: a fresh root, the run directory the last append named, and the run a
 * test opens from it, which teardown closes. */
struct fixture {
    char *root;
    char dir[1024];
    struct ex_wandb_run run;
};

static int setup(void **state)
{
    struct fixture *f = gv_calloc(1, sizeof(*f));
    void *root;

    unit_tmpdir_setup(&root);
    f->root = root;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    void *root = f->root;

    ex_wandb_store_close(&f->run);
    unit_tmpdir_teardown(&root);
    gv_free(f);
    return 0;
}

/* Appends payload entry e (and drops it) as payload seq at now_us; f->dir names its run. */
static gv_rc append(struct fixture *f, struct json_object *e, uint64_t seq, uint64_t now_us,
                    bool shared)
{
    gv_rc rc = ex_wandb_store_append(f->root, e, seq, now_us, shared, f->dir, sizeof(f->dir));

    json_object_put(e);
    return rc;
}

static void lines_of(struct ex_wandb_run *run, uint64_t from, struct json_object **arr, uint64_t *n)
{
    uint64_t end;
    *arr = json_object_new_array();
    assert_int_equal(ex_wandb_store_read_lines(run, from, 0, 1u << 20, *arr, n, &end), GV_OK);
}

static void test_append_assigns_steps_and_dedupes(void **state)
{
    struct fixture *f = *state;
    struct json_object *arr;
    char *sum;
    uint64_t n;

    assert_int_equal(append(f, entry("r1-gov", 1, false), 1, 100, false), GV_OK);
    /* The same payload again (a retry) adds nothing. */
    assert_int_equal(append(f, entry("r1-gov", 1, false), 1, 100, false), GV_OK);
    assert_int_equal(append(f, entry("r1-gov", 2, false), 2, 200, false), GV_OK);
    /* An older payload would send _step backwards: ignored. */
    assert_int_equal(append(f, entry("r1-gov", 1, false), 1, 50, false), GV_OK);
    assert_int_equal(ex_wandb_store_open(f->dir, &f->run), GV_OK);
    assert_int_equal(f->run.lines, 2);
    assert_int_equal(f->run.next_step, 2);
    lines_of(&f->run, 0, &arr, &n);
    assert_int_equal(n, 2);
    assert_string_equal(json_object_get_string(json_object_array_get_idx(arr, 0)),
                        "{\"governance/requests\":1,\"_runtime\":1.5,\"_step\":0}");
    assert_string_equal(json_object_get_string(json_object_array_get_idx(arr, 1)),
                        "{\"governance/requests\":2,\"_runtime\":1.5,\"_step\":1}");
    json_object_put(arr);
    lines_of(&f->run, 1, &arr, &n);
    assert_int_equal(n, 1);
    json_object_put(arr);
    sum = ex_wandb_store_summary(&f->run);
    assert_string_equal(sum, "{\"governance/requests\":2,\"_runtime\":1.5,\"_step\":1,"
                             "\"_wandb\":{\"runtime\":1}}");
    free(sum);
}

static void test_shared_rows_have_no_step(void **state)
{
    struct fixture *f = *state;
    struct json_object *arr;
    uint64_t n;

    assert_int_equal(append(f, entry("exp", 1, false), 1, 100, true), GV_OK);
    assert_int_equal(ex_wandb_store_open(f->dir, &f->run), GV_OK);
    lines_of(&f->run, 0, &arr, &n);
    assert_null(strstr(json_object_get_string(json_object_array_get_idx(arr, 0)), "_step"));
    json_object_put(arr);
}

static void test_open_cuts_uncounted_lines(void **state)
{
    struct fixture *f = *state;
    char path[1100];
    FILE *fp;
    long size;

    assert_int_equal(append(f, entry("crash", 1, false), 1, 100, false), GV_OK);
    snprintf(path, sizeof(path), "%s/history.jsonl", f->dir);
    fp = fopen(path, "ab");
    assert_non_null(fp);
    fputs("{\"half written\n", fp); /* what a crash before state.json leaves */
    fclose(fp);
    assert_int_equal(ex_wandb_store_open(f->dir, &f->run), GV_OK);
    fp = fopen(path, "rb");
    fseek(fp, 0, SEEK_END);
    size = ftell(fp);
    fclose(fp);
    assert_int_equal(size,
                     (long)strlen("{\"governance/requests\":1,\"_runtime\":1.5,\"_step\":0}\n"));
}

static void test_final_then_traffic_reopens(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(append(f, entry("fin", 1, true), 1, 100, false), GV_OK);
    assert_int_equal(ex_wandb_store_open(f->dir, &f->run), GV_OK);
    assert_true(f->run.final);
    f->run.complete_sent = true;
    assert_int_equal(ex_wandb_store_save_sync(&f->run), GV_OK);
    ex_wandb_store_close(&f->run);
    assert_int_equal(append(f, entry("fin", 2, false), 2, 200, false), GV_OK);
    assert_int_equal(ex_wandb_store_open(f->dir, &f->run), GV_OK);
    assert_false(f->run.final);
    assert_false(f->run.complete_sent);
}

static void test_safe_name_and_missing_row(void **state)
{
    struct fixture *f = *state;
    struct json_object *e;
    char out[32];

    ex_wandb_safe_name("../a/b", out, sizeof(out));
    assert_string_equal(out, "_._a_b");
    ex_wandb_safe_name("", out, sizeof(out));
    assert_string_equal(out, "_");
    assert_int_equal(append(f, entry("../../etc", 1, false), 1, 100, false), GV_OK);
    assert_non_null(strstr(f->dir, "/_._.._etc"));
    e = entry("../../etc", 1, false);
    json_object_object_del(e, "row");
    assert_int_equal(append(f, e, 2, 200, false), GV_EINVAL);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_append_assigns_steps_and_dedupes, setup, teardown),
    cmocka_unit_test_setup_teardown(test_shared_rows_have_no_step, setup, teardown),
    cmocka_unit_test_setup_teardown(test_open_cuts_uncounted_lines, setup, teardown),
    cmocka_unit_test_setup_teardown(test_final_then_traffic_reopens, setup, teardown),
    cmocka_unit_test_setup_teardown(test_safe_name_and_missing_row, setup, teardown),
};

#include "tests/unit/unit_main.h"
