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

static void lines_of(struct ex_wandb_run *run, uint64_t from, struct json_object **arr, uint64_t *n)
{
    uint64_t end;
    *arr = json_object_new_array();
    assert_int_equal(ex_wandb_store_read_lines(run, from, 0, 1u << 20, *arr, n, &end), GV_OK);
}

static void test_append_assigns_steps_and_dedupes(void **state)
{
    const char *root = *state;
    struct json_object *e1 = entry("r1-gov", 1, false);
    struct json_object *e2 = entry("r1-gov", 2, false);
    struct json_object *arr;
    struct ex_wandb_run run;
    char dir[1024];
    char *sum;
    uint64_t n;

    assert_int_equal(ex_wandb_store_append(root, e1, 1, 100, false, dir, sizeof(dir)), GV_OK);
    /* The same payload again (a retry) adds nothing. */
    assert_int_equal(ex_wandb_store_append(root, e1, 1, 100, false, dir, sizeof(dir)), GV_OK);
    assert_int_equal(ex_wandb_store_append(root, e2, 2, 200, false, dir, sizeof(dir)), GV_OK);
    /* An older payload would send _step backwards: ignored. */
    assert_int_equal(ex_wandb_store_append(root, e1, 1, 50, false, dir, sizeof(dir)), GV_OK);
    assert_int_equal(ex_wandb_store_open(dir, &run), GV_OK);
    assert_int_equal(run.lines, 2);
    assert_int_equal(run.next_step, 2);
    lines_of(&run, 0, &arr, &n);
    assert_int_equal(n, 2);
    assert_string_equal(json_object_get_string(json_object_array_get_idx(arr, 0)),
                        "{\"governance/requests\":1,\"_runtime\":1.5,\"_step\":0}");
    assert_string_equal(json_object_get_string(json_object_array_get_idx(arr, 1)),
                        "{\"governance/requests\":2,\"_runtime\":1.5,\"_step\":1}");
    json_object_put(arr);
    lines_of(&run, 1, &arr, &n);
    assert_int_equal(n, 1);
    json_object_put(arr);
    sum = ex_wandb_store_summary(&run);
    assert_string_equal(sum, "{\"governance/requests\":2,\"_runtime\":1.5,\"_step\":1,"
                             "\"_wandb\":{\"runtime\":1}}");
    free(sum);
    ex_wandb_store_close(&run);
    json_object_put(e1);
    json_object_put(e2);
}

static void test_shared_rows_have_no_step(void **state)
{
    const char *root = *state;
    struct json_object *e = entry("exp", 1, false);
    struct json_object *arr;
    struct ex_wandb_run run;
    char dir[1024];
    uint64_t n;

    assert_int_equal(ex_wandb_store_append(root, e, 1, 100, true, dir, sizeof(dir)), GV_OK);
    assert_int_equal(ex_wandb_store_open(dir, &run), GV_OK);
    lines_of(&run, 0, &arr, &n);
    assert_null(strstr(json_object_get_string(json_object_array_get_idx(arr, 0)), "_step"));
    json_object_put(arr);
    ex_wandb_store_close(&run);
    json_object_put(e);
}

static void test_open_cuts_uncounted_lines(void **state)
{
    const char *root = *state;
    struct json_object *e = entry("crash", 1, false);
    struct ex_wandb_run run;
    char dir[1024], path[1100];
    FILE *f;
    long size;

    assert_int_equal(ex_wandb_store_append(root, e, 1, 100, false, dir, sizeof(dir)), GV_OK);
    snprintf(path, sizeof(path), "%s/history.jsonl", dir);
    f = fopen(path, "ab");
    assert_non_null(f);
    fputs("{\"half written\n", f); /* what a crash before state.json leaves */
    fclose(f);
    assert_int_equal(ex_wandb_store_open(dir, &run), GV_OK);
    ex_wandb_store_close(&run);
    f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fclose(f);
    assert_int_equal(size,
                     (long)strlen("{\"governance/requests\":1,\"_runtime\":1.5,\"_step\":0}\n"));
    json_object_put(e);
}

static void test_final_then_traffic_reopens(void **state)
{
    const char *root = *state;
    struct json_object *e1 = entry("fin", 1, true);
    struct json_object *e2 = entry("fin", 2, false);
    struct ex_wandb_run run;
    char dir[1024];

    assert_int_equal(ex_wandb_store_append(root, e1, 1, 100, false, dir, sizeof(dir)), GV_OK);
    assert_int_equal(ex_wandb_store_open(dir, &run), GV_OK);
    assert_true(run.final);
    run.complete_sent = true;
    assert_int_equal(ex_wandb_store_save_sync(&run), GV_OK);
    ex_wandb_store_close(&run);
    assert_int_equal(ex_wandb_store_append(root, e2, 2, 200, false, dir, sizeof(dir)), GV_OK);
    assert_int_equal(ex_wandb_store_open(dir, &run), GV_OK);
    assert_false(run.final);
    assert_false(run.complete_sent);
    ex_wandb_store_close(&run);
    json_object_put(e1);
    json_object_put(e2);
}

static void test_safe_name_and_missing_row(void **state)
{
    const char *root = *state;
    struct json_object *e = entry("../../etc", 1, false);
    char out[32];
    char dir[1024];

    ex_wandb_safe_name("../a/b", out, sizeof(out));
    assert_string_equal(out, "_._a_b");
    ex_wandb_safe_name("", out, sizeof(out));
    assert_string_equal(out, "_");
    assert_int_equal(ex_wandb_store_append(root, e, 1, 100, false, dir, sizeof(dir)), GV_OK);
    assert_non_null(strstr(dir, "/_._.._etc"));
    json_object_object_del(e, "row");
    assert_int_equal(ex_wandb_store_append(root, e, 2, 200, false, dir, sizeof(dir)), GV_EINVAL);
    json_object_put(e);
}

static const struct CMUnitTest tests[] = {
    UNIT_TMPDIR_TEST(test_append_assigns_steps_and_dedupes),
    UNIT_TMPDIR_TEST(test_shared_rows_have_no_step),
    UNIT_TMPDIR_TEST(test_open_cuts_uncounted_lines),
    UNIT_TMPDIR_TEST(test_final_then_traffic_reopens),
    UNIT_TMPDIR_TEST(test_safe_name_and_missing_row),
};

#include "tests/unit/unit_main.h"
