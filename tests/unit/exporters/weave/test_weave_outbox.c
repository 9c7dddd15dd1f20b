/* tests/unit/exporters/weave/test_weave_outbox.c - append, read, commit, reopen, torn tail */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/gv_mem.h"
#include "exporters/weave/weave.h"
#include "tests/unit/unit_tmpdir.h"

static void events(struct ex_event *evs, struct gv_record *recs, struct gv_hello *h, size_t n,
                   uint64_t first_seq, bool content)
{
    size_t i;

    memset(h, 0, sizeof(*h));
    snprintf(h->instance_id, sizeof(h->instance_id), "aaaa");
    snprintf(h->pack_name, sizeof(h->pack_name), "pack");
    for (i = 0; i < n; i++) {
        memset(&recs[i], 0, sizeof(recs[i]));
        snprintf(recs[i].request_id, sizeof(recs[i].request_id), "req_%zu", (size_t)first_seq + i);
        if (content) {
            recs[i].content = gv_calloc(1, sizeof(*recs[i].content));
            recs[i].content->request = gv_strdup("[{\"role\":\"user\",\"content\":\"hi\"}]");
            recs[i].content->response = gv_strdup("hello");
        }
        evs[i].rec = &recs[i];
        evs[i].instance_id = "aaaa";
        evs[i].seq = first_seq + i;
        evs[i].hello = h;
    }
}

static void test_outbox_roundtrip_and_empty_after_commit(void **state)
{
    const char *dir = *state;
    struct ex_weave_outbox ob;
    struct ex_event evs[5];
    struct gv_record recs[5];
    struct ex_weave_item items[8];
    struct gv_hello h;
    size_t n, i;
    struct ex_weave_range r;
    struct stat st;
    char path[300];

    assert_int_equal(ex_weave_outbox_open(&ob, dir, 0, false), GV_OK);
    events(evs, recs, &h, 5, 1, true);
    assert_int_equal(ex_weave_outbox_append(&ob, evs, 5), GV_OK);
    for (i = 0; i < 5; i++) {
        gv_record_release(&recs[i]);
    }
    assert_int_equal(atomic_load(&ob.pending_calls), 5);
    assert_int_equal(ex_weave_outbox_claim(&ob, items, 3, &n, &r), GV_OK);
    assert_int_equal(n, 3);
    assert_int_equal(r.n, 3);
    assert_string_equal(items[0].rec.request_id, "req_1");
    assert_int_equal(items[2].meta.seq, 3);
    assert_string_equal(items[1].hello.pack_name, "pack");
    assert_string_equal(items[1].rec.content->response, "hello");
    for (i = 0; i < n; i++) {
        gv_record_release(&items[i].rec);
    }
    assert_int_equal(ex_weave_outbox_done(&ob, &r), GV_OK);
    assert_int_equal(atomic_load(&ob.pending_calls), 2);
    assert_int_equal(ex_weave_outbox_claim(&ob, items, 8, &n, &r), GV_OK);
    assert_int_equal(n, 2);
    assert_string_equal(items[0].rec.request_id, "req_4");
    for (i = 0; i < n; i++) {
        gv_record_release(&items[i].rec);
    }
    assert_int_equal(ex_weave_outbox_done(&ob, &r), GV_OK);
    /* All sent: the file is emptied. */
    snprintf(path, sizeof(path), "%s/outbox", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 0);
    assert_int_equal(atomic_load(&ob.pending_calls), 0);
    /* New events after emptying carry their hello again. */
    events(evs, recs, &h, 1, 6, false);
    assert_int_equal(ex_weave_outbox_append(&ob, evs, 1), GV_OK);
    assert_int_equal(ex_weave_outbox_claim(&ob, items, 8, &n, &r), GV_OK);
    assert_int_equal(n, 1);
    assert_string_equal(items[0].hello.pack_name, "pack");
    ex_weave_outbox_close(&ob);
}

static void test_outbox_reopen_resumes_at_cursor_and_cuts_torn_tail(void **state)
{
    const char *dir = *state;
    struct ex_weave_outbox ob;
    struct ex_event evs[4];
    struct gv_record recs[4];
    struct ex_weave_item items[8];
    struct gv_hello h;
    size_t n;
    struct ex_weave_range r;
    char path[300];
    FILE *f;

    assert_int_equal(ex_weave_outbox_open(&ob, dir, 0, false), GV_OK);
    events(evs, recs, &h, 4, 1, false);
    assert_int_equal(ex_weave_outbox_append(&ob, evs, 4), GV_OK);
    assert_int_equal(ex_weave_outbox_claim(&ob, items, 1, &n, &r), GV_OK);
    assert_int_equal(ex_weave_outbox_done(&ob, &r), GV_OK);
    ex_weave_outbox_close(&ob);
    /* A crash mid-append left half a frame. */
    snprintf(path, sizeof(path), "%s/outbox", dir);
    f = fopen(path, "ab");
    assert_non_null(f);
    assert_int_equal(fwrite("\x40\x00\x00\x00\x02zz", 1, 7, f), 7);
    fclose(f);
    assert_int_equal(ex_weave_outbox_open(&ob, dir, 0, false), GV_OK);
    assert_int_equal(atomic_load(&ob.pending_calls), 3);
    assert_int_equal(ex_weave_outbox_claim(&ob, items, 8, &n, &r), GV_OK);
    assert_int_equal(n, 3);
    assert_int_equal(items[0].meta.seq, 2);
    assert_string_equal(items[2].hello.pack_name, "pack");
    ex_weave_outbox_close(&ob);
}

/* Several senders: ranges finish out of order, one goes back; the cursor only
 * moves over what is done without a gap, and a retried range comes back whole. */
static void test_outbox_ranges_out_of_order_and_retry(void **state)
{
    const char *dir = *state;
    struct ex_weave_outbox ob;
    struct ex_event evs[6];
    struct gv_record recs[6];
    struct ex_weave_item items[4];
    struct gv_hello h;
    struct ex_weave_range a, b, c, d;
    size_t n, i;

    assert_int_equal(ex_weave_outbox_open(&ob, dir, 0, false), GV_OK);
    events(evs, recs, &h, 6, 1, false);
    assert_int_equal(ex_weave_outbox_append(&ob, evs, 6), GV_OK);
    assert_int_equal(ex_weave_outbox_claim(&ob, items, 2, &n, &a), GV_OK);
    assert_int_equal(ex_weave_outbox_claim(&ob, items, 2, &n, &b), GV_OK);
    assert_int_equal(ex_weave_outbox_claim(&ob, items, 2, &n, &c), GV_OK);
    assert_int_equal(items[0].meta.seq, 5);
    assert_int_equal(ex_weave_outbox_done(&ob, &c), GV_OK);
    assert_int_equal(ob.cursor, 0);
    ex_weave_outbox_retry(&ob, &b);
    assert_int_equal(ex_weave_outbox_done(&ob, &a), GV_OK);
    assert_int_equal(ob.cursor, a.end);
    assert_int_equal(ex_weave_outbox_claim(&ob, items, 2, &n, &d), GV_OK);
    assert_int_equal(n, 2);
    assert_int_equal(items[0].meta.seq, 3);
    assert_int_equal(d.start, b.start);
    assert_int_equal(d.end, b.end);
    assert_int_equal(ex_weave_outbox_done(&ob, &d), GV_OK);
    /* Everything is done: the file is emptied and the cursor is back at 0. */
    assert_int_equal(ob.size, 0);
    assert_int_equal(ob.cursor, 0);
    assert_int_equal(atomic_load(&ob.pending_calls), 0);
    assert_int_equal(ex_weave_outbox_claim(&ob, items, 2, &n, &a), GV_OK);
    assert_int_equal(n, 0);
    for (i = 0; i < 6; i++) {
        gv_record_release(&recs[i]);
    }
    ex_weave_outbox_close(&ob);
}

static void test_outbox_full_and_locked(void **state)
{
    const char *dir = *state;
    struct ex_weave_outbox ob, other;
    struct ex_event evs[64];
    struct gv_record recs[64];
    struct gv_hello h;
    size_t i;

    assert_int_equal(ex_weave_outbox_open(&ob, dir, 512, false), GV_OK);
    assert_int_equal(ex_weave_outbox_open(&other, dir, 0, false), GV_EIO);
    ex_weave_outbox_close(&other);
    events(evs, recs, &h, 64, 1, false);
    assert_int_equal(ex_weave_outbox_append(&ob, evs, 64), GV_E2BIG);
    assert_int_equal(atomic_load(&ob.pending_calls), 0);
    for (i = 0; i < 64; i++) {
        gv_record_release(&recs[i]);
    }
    ex_weave_outbox_close(&ob);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_outbox_roundtrip_and_empty_after_commit, unit_tmpdir_setup,
                                    unit_tmpdir_teardown),
    cmocka_unit_test_setup_teardown(test_outbox_reopen_resumes_at_cursor_and_cuts_torn_tail,
                                    unit_tmpdir_setup, unit_tmpdir_teardown),
    cmocka_unit_test_setup_teardown(test_outbox_ranges_out_of_order_and_retry, unit_tmpdir_setup,
                                    unit_tmpdir_teardown),
    cmocka_unit_test_setup_teardown(test_outbox_full_and_locked, unit_tmpdir_setup,
                                    unit_tmpdir_teardown),
};

#include "tests/unit/unit_main.h"
