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

/* The most events one test appends: more than a 512-byte outbox holds. */
#define MAX_EVENTS 64

/* A test's temp dir, its outbox and the events it appends there. */
struct fx {
    char dir[UNIT_TMPDIR_MAX];
    struct ex_weave_outbox ob;
    struct ex_event evs[MAX_EVENTS];
    struct gv_record recs[MAX_EVENTS];
    struct gv_hello h;
};

static void release_records(struct gv_record *recs, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        gv_record_release(&recs[i]);
    }
}

static void release_items(struct ex_weave_item *items, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        gv_record_release(&items[i].rec);
    }
}

static int setup(void **state)
{
    struct fx *f = gv_calloc(1, sizeof(*f));

    unit_tmpdir_make(f->dir, sizeof(f->dir));
    *state = f;
    return 0;
}

/* The records' content is freed here whatever the test got to, so a failed assert leaks
 * nothing; each test closes its outbox itself, since some reopen it. */
static int teardown(void **state)
{
    struct fx *f = *state;

    release_records(f->recs, MAX_EVENTS);
    unit_tmpdir_remove(f->dir);
    gv_free(f);
    return 0;
}

/* f's outbox opened with no size cap, with n fresh events appended: seqs 1 to n. */
static void open_and_append(struct fx *f, size_t n, bool content)
{
    assert_int_equal(ex_weave_outbox_open(&f->ob, f->dir, 0, false), GV_OK);
    events(f->evs, f->recs, &f->h, n, 1, content);
    assert_int_equal(ex_weave_outbox_append(&f->ob, f->evs, n), GV_OK);
}

static void test_outbox_roundtrip_and_empty_after_commit(void **state)
{
    struct fx *f = *state;
    struct ex_weave_item items[8];
    size_t n;
    struct ex_weave_range r;
    struct stat st;
    char path[300];

    open_and_append(f, 5, true);
    /* What is claimed is read back from the file, not from the appended records. */
    release_records(f->recs, 5);
    assert_int_equal(atomic_load(&f->ob.pending_calls), 5);
    assert_int_equal(ex_weave_outbox_claim(&f->ob, items, 3, &n, &r), GV_OK);
    assert_int_equal(n, 3);
    assert_int_equal(r.n, 3);
    assert_string_equal(items[0].rec.request_id, "req_1");
    assert_int_equal(items[2].meta.seq, 3);
    assert_string_equal(items[1].hello.pack_name, "pack");
    assert_string_equal(items[1].rec.content->response, "hello");
    release_items(items, n);
    assert_int_equal(ex_weave_outbox_done(&f->ob, &r), GV_OK);
    assert_int_equal(atomic_load(&f->ob.pending_calls), 2);
    assert_int_equal(ex_weave_outbox_claim(&f->ob, items, 8, &n, &r), GV_OK);
    assert_int_equal(n, 2);
    assert_string_equal(items[0].rec.request_id, "req_4");
    release_items(items, n);
    assert_int_equal(ex_weave_outbox_done(&f->ob, &r), GV_OK);
    /* All sent: the file is emptied. */
    snprintf(path, sizeof(path), "%s/outbox", f->dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 0);
    assert_int_equal(atomic_load(&f->ob.pending_calls), 0);
    /* New events after emptying carry their hello again. */
    events(f->evs, f->recs, &f->h, 1, 6, false);
    assert_int_equal(ex_weave_outbox_append(&f->ob, f->evs, 1), GV_OK);
    assert_int_equal(ex_weave_outbox_claim(&f->ob, items, 8, &n, &r), GV_OK);
    assert_int_equal(n, 1);
    assert_string_equal(items[0].hello.pack_name, "pack");
    ex_weave_outbox_close(&f->ob);
}

static void test_outbox_reopen_resumes_at_cursor_and_cuts_torn_tail(void **state)
{
    struct fx *f = *state;
    struct ex_weave_item items[8];
    size_t n;
    struct ex_weave_range r;
    char path[300];
    FILE *fp;

    open_and_append(f, 4, false);
    assert_int_equal(ex_weave_outbox_claim(&f->ob, items, 1, &n, &r), GV_OK);
    assert_int_equal(ex_weave_outbox_done(&f->ob, &r), GV_OK);
    ex_weave_outbox_close(&f->ob);
    /* A crash mid-append left half a frame. */
    snprintf(path, sizeof(path), "%s/outbox", f->dir);
    fp = fopen(path, "ab");
    assert_non_null(fp);
    assert_int_equal(fwrite("\x40\x00\x00\x00\x02zz", 1, 7, fp), 7);
    fclose(fp);
    assert_int_equal(ex_weave_outbox_open(&f->ob, f->dir, 0, false), GV_OK);
    assert_int_equal(atomic_load(&f->ob.pending_calls), 3);
    assert_int_equal(ex_weave_outbox_claim(&f->ob, items, 8, &n, &r), GV_OK);
    assert_int_equal(n, 3);
    assert_int_equal(items[0].meta.seq, 2);
    assert_string_equal(items[2].hello.pack_name, "pack");
    ex_weave_outbox_close(&f->ob);
}

/* Several senders: ranges finish out of order, one goes back; the cursor only
 * moves over what is done without a gap, and a retried range comes back whole. */
static void test_outbox_ranges_out_of_order_and_retry(void **state)
{
    struct fx *f = *state;
    struct ex_weave_outbox *ob = &f->ob;
    struct ex_weave_item items[4];
    struct ex_weave_range a, b, c, d;
    size_t n;

    open_and_append(f, 6, false);
    assert_int_equal(ex_weave_outbox_claim(ob, items, 2, &n, &a), GV_OK);
    assert_int_equal(ex_weave_outbox_claim(ob, items, 2, &n, &b), GV_OK);
    assert_int_equal(ex_weave_outbox_claim(ob, items, 2, &n, &c), GV_OK);
    assert_int_equal(items[0].meta.seq, 5);
    assert_int_equal(ex_weave_outbox_done(ob, &c), GV_OK);
    assert_int_equal(ob->cursor, 0);
    ex_weave_outbox_retry(ob, &b);
    assert_int_equal(ex_weave_outbox_done(ob, &a), GV_OK);
    assert_int_equal(ob->cursor, a.end);
    assert_int_equal(ex_weave_outbox_claim(ob, items, 2, &n, &d), GV_OK);
    assert_int_equal(n, 2);
    assert_int_equal(items[0].meta.seq, 3);
    assert_int_equal(d.start, b.start);
    assert_int_equal(d.end, b.end);
    assert_int_equal(ex_weave_outbox_done(ob, &d), GV_OK);
    /* Everything is done: the file is emptied and the cursor is back at 0. */
    assert_int_equal(ob->size, 0);
    assert_int_equal(ob->cursor, 0);
    assert_int_equal(atomic_load(&ob->pending_calls), 0);
    assert_int_equal(ex_weave_outbox_claim(ob, items, 2, &n, &a), GV_OK);
    assert_int_equal(n, 0);
    ex_weave_outbox_close(ob);
}

static void test_outbox_full_and_locked(void **state)
{
    struct fx *f = *state;
    struct ex_weave_outbox other;

    assert_int_equal(ex_weave_outbox_open(&f->ob, f->dir, 512, false), GV_OK);
    assert_int_equal(ex_weave_outbox_open(&other, f->dir, 0, false), GV_EIO);
    ex_weave_outbox_close(&other);
    events(f->evs, f->recs, &f->h, MAX_EVENTS, 1, false);
    assert_int_equal(ex_weave_outbox_append(&f->ob, f->evs, MAX_EVENTS), GV_E2BIG);
    assert_int_equal(atomic_load(&f->ob.pending_calls), 0);
    ex_weave_outbox_close(&f->ob);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_outbox_roundtrip_and_empty_after_commit, setup, teardown),
    cmocka_unit_test_setup_teardown(test_outbox_reopen_resumes_at_cursor_and_cuts_torn_tail, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_outbox_ranges_out_of_order_and_retry, setup, teardown),
    cmocka_unit_test_setup_teardown(test_outbox_full_and_locked, setup, teardown),
};

#include "tests/unit/unit_main.h"
