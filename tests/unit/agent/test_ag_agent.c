/* tests/unit/agent/test_ag_agent.c - emitter -> socket -> agent, restarts, replays */
/* SPDX-License-Identifier: Apache-2.0 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "agent/ag_agent.h"
#include "gateway/gw_emit.h"
#include "core/gv_log.h"
#include "core/gv_mem.h"
#include "core/gv_record.h"
#include "tests/unit/unit_tmpdir.h"

/* Waits are bounded: a broken build fails instead of hanging. */
#define WAIT_LIMIT_MS 20000

struct running {
    struct ag_agent *ag;
    pthread_t thr;
};

static char dir[256];

static void *agent_thread(void *arg)
{
    struct running *r = arg;
    ag_agent_run(r->ag, false);
    return NULL;
}

static void agent_start(struct running *r)
{
    struct ag_opts o;

    memset(&o, 0, sizeof(o));
    o.state_dir = dir;
    o.flush_ms = 200;
    o.fsync = false;
    o.label = "test";
    assert_int_equal(ag_agent_create(&o, &r->ag), GV_OK);
    assert_int_equal(pthread_create(&r->thr, NULL, agent_thread, r), 0);
}

static void agent_stop(struct running *r)
{
    ag_agent_stop(r->ag);
    pthread_join(r->thr, NULL);
    ag_agent_destroy(r->ag);
    r->ag = NULL;
}

static void emit_n(struct gw_emitter *em, const char *run, int n, enum gv_decision d)
{
    struct gv_record rec;
    int i;

    memset(&rec, 0, sizeof(rec));
    snprintf(rec.run_id, sizeof(rec.run_id), "%s", run);
    snprintf(rec.project, sizeof(rec.project), "p");
    rec.decision = d;
    rec.tokens_prompt = 3;
    rec.tokens_completion = 4;
    rec.latency_total_us = 1500;
    for (i = 0; i < n; i++) {
        /* The ring holds 4096: pace so it never drops in a test. */
        while (em->ops->emit(em, &rec, NULL) != GV_OK) {
            usleep(1000);
        }
    }
}

static void wait_events(struct running *r, uint64_t want)
{
    int waited = 0;
    while (ag_agent_events(r->ag) < want && waited < WAIT_LIMIT_MS) {
        usleep(5000);
        waited += 5;
    }
    assert_int_equal(ag_agent_events(r->ag), want);
}

/* Waits until the agent has counted want events and the emitter holds none it has not had
 * acknowledged. */
static void wait_delivered(struct running *r, struct gw_emitter *em, uint64_t want)
{
    unsigned long long dropped, pending = 1;
    int waited = 0;

    wait_events(r, want);
    while (waited < WAIT_LIMIT_MS) {
        em->ops->stats(em, &dropped, &pending);
        if (pending == 0) {
            break;
        }
        usleep(5000);
        waited += 5;
    }
    assert_int_equal(pending, 0);
}

/* key of run (project "p") from the live agent, or key.sub when sub is not NULL. */
static long long run_field(const char *run, const char *key, const char *sub)
{
    char sock[300];
    struct gv_buf out;
    struct json_object *root, *runs, *v;
    long long n = -1;
    size_t i;

    snprintf(sock, sizeof(sock), "%s/agent.sock", dir);
    gv_buf_init(&out, 0);
    assert_int_equal(ag_status_query(sock, true, 5000, &out), GV_OK);
    root = json_tokener_parse(out.data);
    assert_non_null(root);
    assert_true(json_object_object_get_ex(root, "runs", &runs));
    for (i = 0; i < json_object_array_length(runs); i++) {
        struct json_object *r = json_object_array_get_idx(runs, i);
        json_object_object_get_ex(r, "run_id", &v);
        if (strcmp(json_object_get_string(v), run) == 0) {
            json_object_object_get_ex(r, key, &v);
            if (sub) {
                json_object_object_get_ex(v, sub, &v);
            }
            n = json_object_get_int64(v);
        }
    }
    json_object_put(root);
    gv_buf_free(&out);
    return n;
}

static long long run_requests(const char *run)
{
    return run_field(run, "requests", NULL);
}

/* A test's agent (running while r.ag is set) and emitter: teardown stops what the test left
 * running, also when an assert ended it early, so no agent thread outlives its case. */
struct fx {
    struct running r;
    struct gw_emitter *em;
};

static void emitter_open(struct fx *f)
{
    assert_int_equal(gw_emitter_create_agent(dir, NULL, &f->em), GV_OK);
}

static void emitter_close(struct fx *f)
{
    f->em->ops->destroy(f->em);
    f->em = NULL;
}

static int setup(void **state)
{
    struct fx *f = gv_calloc(1, sizeof(*f));

    *state = f;
    unit_tmpdir_make(dir, sizeof(dir));
    gv_log_set_level(GV_LOG_WARN);
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    if (f->em) {
        emitter_close(f);
    }
    if (f->r.ag) {
        agent_stop(&f->r);
    }
    unit_tmpdir_remove(dir);
    gv_free(f);
    return 0;
}

static void test_events_counted_per_run(void **state)
{
    struct fx *f = *state;

    agent_start(&f->r);
    emitter_open(f);
    gw_emitter_set_pack(f->em, "pack", "1", "a,b");
    emit_n(f->em, "r1", 1000, GV_DECISION_ALLOWED);
    emit_n(f->em, "r2", 500, GV_DECISION_BLOCKED);
    emit_n(f->em, "", 7, GV_DECISION_REDACTED);
    wait_delivered(&f->r, f->em, 1507);
    assert_int_equal(run_requests("r1"), 1000);
    assert_int_equal(run_requests("r2"), 500);
    assert_int_equal(run_requests("untagged"), 7);
}

/* Records too large for a ring slot's own room (here 16 policies) go through the heap,
 * between small ones, and arrive whole. */
static void test_large_records_arrive_whole(void **state)
{
    struct fx *f = *state;
    static struct gv_record big;
    static struct gv_record_packed packed;
    int i;

    memset(&big, 0, sizeof(big));
    snprintf(big.run_id, sizeof(big.run_id), "big-run");
    snprintf(big.project, sizeof(big.project), "p");
    big.decision = GV_DECISION_BLOCKED;
    snprintf(big.error_code, sizeof(big.error_code), "policy-15");
    big.tokens_prompt = 7; /* after the policies: a record cut short loses these */
    big.tokens_completion = 11;
    big.npolicies = GV_RECORD_MAX_POLICIES;
    for (i = 0; i < GV_RECORD_MAX_POLICIES; i++) {
        snprintf(big.policies[i].name, sizeof(big.policies[i].name), "policy-%02d", i);
        big.policies[i].action = GV_OUTCOME_PASS;
    }
    gv_record_pack(&packed, &big);
    assert_true(packed.len > 2000); /* well past a slot's inline room */

    agent_start(&f->r);
    emitter_open(f);
    for (i = 0; i < 300; i++) {
        emit_n(f->em, "small-run", 1, GV_DECISION_ALLOWED);
        while (f->em->ops->emit(f->em, &big, NULL) != GV_OK) {
            usleep(1000);
        }
    }
    wait_delivered(&f->r, f->em, 600);
    assert_int_equal(run_requests("small-run"), 300);
    assert_int_equal(run_requests("big-run"), 300);
    assert_int_equal(run_field("big-run", "blocked", NULL), 300);
    assert_int_equal(run_field("big-run", "tokens", "prompt"), 300 * 7);
    assert_int_equal(run_field("big-run", "tokens", "completion"), 300 * 11);
}

/* After an idle spell the sender sleeps with no timeout: the next record must wake it,
 * so it reaches the agent while the emitter is still open (not at its close). */
static void test_record_after_idle_spell_is_delivered(void **state)
{
    struct fx *f = *state;

    agent_start(&f->r);
    emitter_open(f);
    emit_n(f->em, "r1", 1, GV_DECISION_ALLOWED);
    wait_delivered(&f->r, f->em, 1);
    usleep(1500 * 1000); /* well past the ~0.4 s of empty passes before it parks */
    emit_n(f->em, "r1", 1, GV_DECISION_ALLOWED);
    wait_delivered(&f->r, f->em, 2);
    assert_int_equal(run_requests("r1"), 2);
}

static void test_agent_started_late_gets_spooled_events(void **state)
{
    struct fx *f = *state;

    emitter_open(f);
    emit_n(f->em, "late", 3000, GV_DECISION_ALLOWED);
    agent_start(&f->r);
    wait_delivered(&f->r, f->em, 3000);
    assert_int_equal(run_requests("late"), 3000);
}

static void test_restarts_lose_nothing_and_count_nothing_twice(void **state)
{
    struct fx *f = *state;
    unsigned long long dropped, pending;

    agent_start(&f->r);
    emitter_open(f);
    emit_n(f->em, "x", 2000, GV_DECISION_ALLOWED);
    wait_events(&f->r, 2000);
    /* Agent restart: state comes back from state file + journal. */
    agent_stop(&f->r);
    emit_n(f->em, "x", 1000, GV_DECISION_ALLOWED);
    agent_start(&f->r);
    wait_delivered(&f->r, f->em, 3000);
    /* Gateway restart: the new emitter adopts the old spool and its numbering. */
    emitter_close(f);
    emitter_open(f);
    emit_n(f->em, "x", 500, GV_DECISION_ALLOWED);
    wait_delivered(&f->r, f->em, 3500);
    assert_int_equal(run_requests("x"), 3500);
    f->em->ops->stats(f->em, &dropped, &pending);
    assert_int_equal(dropped, 0);
    emitter_close(f);
    agent_stop(&f->r);
    /* And once more from disk only. */
    agent_start(&f->r);
    assert_int_equal(ag_agent_events(f->r.ag), 3500);
    assert_int_equal(run_requests("x"), 3500);
}

/* Waits until every one of `total` events emitted without an agent is either spooled or
 * dropped, and says how many are which. */
static void wait_spooled(struct gw_emitter *em, unsigned long long total,
                         unsigned long long *dropped, unsigned long long *pending)
{
    int waited = 0;

    while (waited < WAIT_LIMIT_MS) {
        em->ops->stats(em, dropped, pending);
        if (*dropped + *pending == total) {
            break;
        }
        usleep(5000);
        waited += 5;
    }
    assert_int_equal(*dropped + *pending, total);
}

static void test_full_spool_drops_oldest_and_counts(void **state)
{
    struct fx *f = *state;
    unsigned long long dropped = 0, pending = 0;

    setenv("KT_SPOOL_MAX_BYTES", "64KiB", 1);
    emitter_open(f);
    unsetenv("KT_SPOOL_MAX_BYTES");
    /* No agent: 3000 events of ~50 bytes do not fit in 64 KiB. */
    emit_n(f->em, "full", 3000, GV_DECISION_ALLOWED);
    wait_spooled(f->em, 3000, &dropped, &pending);
    assert_true(dropped > 0);
    /* Every frame is over 40 bytes: 64 KiB holds fewer than 1639 of them. */
    assert_true(pending * 40 <= 64 * 1024);
    print_message("spool 64KiB: kept %llu dropped %llu\n", pending, dropped);
    agent_start(&f->r);
    wait_delivered(&f->r, f->em, pending);
    /* Exactly what was kept arrives; what was dropped is counted, not lost silently. */
    assert_int_equal(run_requests("full"), (long long)pending);
}

/* The count of spool files ending in `suffix` under the test's state dir. */
static int spool_files(const char *suffix)
{
    char path[512];
    struct dirent *de;
    DIR *d;
    int n = 0;

    snprintf(path, sizeof(path), "%s/spool", dir);
    d = opendir(path);
    while (d && (de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name), k = strlen(suffix);
        n += len > k && strcmp(de->d_name + len - k, suffix) == 0;
    }
    if (d) {
        closedir(d);
    }
    return n;
}

/* A full spool is two files (the older half in the second): a restarted gateway reads
 * both back, in order, numbers on from them, and the agent gets each kept event once. */
static void test_full_spool_survives_a_restart(void **state)
{
    struct fx *f = *state;
    unsigned long long dropped = 0, pending = 0, kept;

    setenv("KT_SPOOL_MAX_BYTES", "64KiB", 1);
    emitter_open(f);
    emit_n(f->em, "turn", 3000, GV_DECISION_ALLOWED);
    wait_spooled(f->em, 3000, &dropped, &pending);
    assert_true(dropped > 0);
    assert_int_equal(spool_files(".spool.old"), 1);
    kept = pending;
    emitter_close(f);
    emitter_open(f);
    unsetenv("KT_SPOOL_MAX_BYTES");
    f->em->ops->stats(f->em, &dropped, &pending);
    assert_int_equal(pending, kept);
    assert_int_equal(dropped, 0);
    emit_n(f->em, "turn", 10, GV_DECISION_ALLOWED);
    agent_start(&f->r);
    wait_delivered(&f->r, f->em, kept + 10);
    assert_int_equal(run_requests("turn"), (long long)(kept + 10));
    /* Everything acknowledged: the old file is gone. */
    emitter_close(f);
    assert_int_equal(spool_files(".spool.old"), 0);
}

static void test_bad_spool_limit_is_refused(void **state)
{
    struct fx *f = *state;

    setenv("KT_SPOOL_MAX_BYTES", "lots", 1);
    assert_int_equal(gw_emitter_create_agent(dir, NULL, &f->em), GV_ECONFIG);
    unsetenv("KT_SPOOL_MAX_BYTES");
    assert_null(f->em);
}

/* Every case here runs on a fresh fixture: setup before it, teardown after. */
#define FX_TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

static const struct CMUnitTest tests[] = {
    FX_TEST(test_events_counted_per_run),
    FX_TEST(test_record_after_idle_spell_is_delivered),
    FX_TEST(test_large_records_arrive_whole),
    FX_TEST(test_agent_started_late_gets_spooled_events),
    FX_TEST(test_restarts_lose_nothing_and_count_nothing_twice),
    FX_TEST(test_full_spool_drops_oldest_and_counts),
    FX_TEST(test_full_spool_survives_a_restart),
    FX_TEST(test_bad_spool_limit_is_refused),
};

#include "tests/unit/unit_main.h"
