/* tests/unit/exporters/prom/test_prom.c - exact exposition bytes, HTTP endpoint */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/gv_cfg.h"
#include "core/gv_mem.h"
#include "core/gv_yaml.h"
#include "exporters/prom/prom.h"
#include "tests/unit/unit_net.h"

struct fixture {
    struct ex_exporter ex;
    struct gv_ydoc *doc;
    struct ex_run_snapshot s; /* the one run of b */
    struct ex_batch b;
    struct gv_buf out; /* what format() wrote */
};

static int setup(void **state)
{
    struct fixture *f = gv_calloc(1, sizeof(*f));
    struct gv_cfg_err err;
    const char *y = "listen: 127.0.0.1:0\n";

    assert_int_equal(gv_ydoc_load_buf("test", y, strlen(y), &f->doc, &err), GV_OK);
    f->ex.ops = &ex_prom;
    f->ex.name = "prom.0";
    f->ex.ctx = gv_calloc(1, ex_prom.ctx_size);
    assert_int_equal(gv_cfg_apply(ex_prom.config_map, "test", f->doc->root, f->ex.ctx, &err),
                     GV_OK);
    assert_int_equal(ex_prom.init(&f->ex, "/nonexistent"), GV_OK);
    f->b = (struct ex_batch){
        .seq = 1, .now_wall_us = 1, .agent_label = "h", .nruns = 1, .runs = &f->s};
    gv_buf_init(&f->out, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    ex_prom.destroy(&f->ex);
    gv_cfg_release(ex_prom.config_map, f->ex.ctx);
    gv_free(f->ex.ctx);
    gv_ydoc_destroy(f->doc);
    gv_buf_free(&f->out);
    gv_free(f);
    return 0;
}

static void snap(struct ex_run_snapshot *s, const char *run)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->run_id, sizeof(s->run_id), "%s", run);
    snprintf(s->project, sizeof(s->project), "pr\"oj");
    s->requests = 5;
    s->allowed = 2;
    s->redacted = 1;
    s->blocked = 1;
    s->errors = 1;
    s->nblocked_by = 1;
    snprintf(s->blocked_by[0].policy, sizeof(s->blocked_by[0].policy), "rbac");
    s->blocked_by[0].count = 1;
    s->pii[GV_PII_EMAIL_ADDRESS] = 3;
    s->tokens_prompt = 40;
    s->tokens_completion = 2;
    s->cost_usd = 0.25;
    s->interval_requests = 5;
    s->hist_nbins = 2;
    /* Two bins of the agent grid: [1e-3, 1.33e-3) and [1.33e-3, 1.78e-3). */
    s->hist_edges[0] = 1e-3;
    s->hist_edges[1] = 1e-4 * 13.335214321633240;
    s->hist_edges[2] = 1e-4 * 17.782794100389228;
    s->hist_counts[0] = 4;
    s->hist_counts[1] = 1;
}

/* Formats batch b into an emptied f->out, which must succeed; returns the page. */
static const char *format(struct fixture *f, const struct ex_batch *b)
{
    gv_buf_reset(&f->out);
    assert_int_equal(ex_prom.format(&f->ex, b, &f->out), GV_OK);
    return f->out.data;
}

static const char *const expected =
    "# HELP kt_requests_total Requests seen by the gateway, by decision.\n"
    "# TYPE kt_requests_total counter\n"
    "kt_requests_total{run_id=\"r1\",project=\"pr\\\"oj\",decision=\"allowed\"} 2\n"
    "kt_requests_total{run_id=\"r1\",project=\"pr\\\"oj\",decision=\"redacted\"} 1\n"
    "kt_requests_total{run_id=\"r1\",project=\"pr\\\"oj\",decision=\"blocked\"} 1\n"
    "kt_requests_total{run_id=\"r1\",project=\"pr\\\"oj\",decision=\"error\"} 1\n"
    "# HELP kt_policy_blocks_total Requests blocked, by policy.\n"
    "# TYPE kt_policy_blocks_total counter\n"
    "kt_policy_blocks_total{run_id=\"r1\",project=\"pr\\\"oj\",policy=\"rbac\"} 1\n"
    "# HELP kt_pii_redacted_total PII entities redacted, by type.\n"
    "# TYPE kt_pii_redacted_total counter\n"
    "kt_pii_redacted_total{run_id=\"r1\",project=\"pr\\\"oj\",entity_type=\"EMAIL_ADDRESS\"} 3\n"
    "# HELP kt_tokens_total Tokens, by kind.\n"
    "# TYPE kt_tokens_total counter\n"
    "kt_tokens_total{run_id=\"r1\",project=\"pr\\\"oj\",kind=\"prompt\"} 40\n"
    "kt_tokens_total{run_id=\"r1\",project=\"pr\\\"oj\",kind=\"completion\"} 2\n"
    "# HELP kt_cost_usd_total Estimated cost in US dollars.\n"
    "# TYPE kt_cost_usd_total counter\n"
    "kt_cost_usd_total{run_id=\"r1\",project=\"pr\\\"oj\"} 0.250000\n";

static void test_format_exact_bytes(void **state)
{
    struct fixture *f = *state;
    const char *page;
    const char *hist;

    snap(&f->s, "r1");
    page = format(f, &f->b);
    assert_memory_equal(page, expected, strlen(expected));
    hist = strstr(page, "kt_request_latency_seconds_bucket{run_id=\"r1\",project=\"pr\\\"oj\","
                        "le=\"0.001\"} 0\n"
                        "kt_request_latency_seconds_bucket{run_id=\"r1\",project=\"pr\\\"oj\","
                        "le=\"0.00316228\"} 5\n");
    assert_non_null(hist);
    assert_non_null(strstr(page, "le=\"+Inf\"} 5\n"));
    assert_non_null(strstr(page, "kt_request_latency_seconds_count{run_id=\"r1\","
                                 "project=\"pr\\\"oj\"} 5\n"));
    assert_non_null(strstr(page, "\nkt_agent_events_total 0\n"));
}

static void test_histogram_accumulates_counters_do_not(void **state)
{
    struct fixture *f = *state;
    const char *page;

    snap(&f->s, "r1");
    format(f, &f->b);
    f->s.requests = 10;
    f->s.allowed = 7;
    page = format(f, &f->b);
    assert_non_null(strstr(page, "decision=\"allowed\"} 7\n"));
    assert_non_null(strstr(page, "le=\"+Inf\"} 10\n"));
}

static void test_finalized_run_shown_once(void **state)
{
    struct fixture *f = *state;
    struct ex_batch empty = {.seq = 2, .now_wall_us = 2, .agent_label = "h", .nruns = 0};

    snap(&f->s, "gone");
    f->s.finalized = true;
    assert_non_null(strstr(format(f, &f->b), "run_id=\"gone\""));
    assert_null(strstr(format(f, &empty), "run_id=\"gone\""));
}

static void test_flush_serves_page_over_http(void **state)
{
    struct fixture *f = *state;
    struct gv_buf page;
    char resp[4096];
    const char *req = "GET /metrics HTTP/1.0\r\n\r\n";
    size_t got = 0;
    ssize_t r;
    int fd;

    gv_buf_init(&page, 0);
    assert_int_equal(gv_buf_append_str(&page, "kt_agent_events_total 42\n"), GV_OK);
    assert_int_equal(ex_prom.flush(&f->ex, &page), EX_FLUSH_OK);
    fd = unit_connect_loopback(0, (unsigned)ex_prom_port(&f->ex));
    assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    while ((r = read(fd, resp + got, sizeof(resp) - 1 - got)) > 0) {
        got += (size_t)r;
    }
    resp[got] = '\0';
    close(fd);
    assert_non_null(strstr(resp, "200 OK"));
    assert_non_null(strstr(resp, "text/plain; version=0.0.4"));
    assert_non_null(strstr(resp, "\r\n\r\nkt_agent_events_total 42\n"));
    gv_buf_free(&page);
}

/* Every case here runs on a fresh fixture: setup before it, teardown after. */
#define FX_TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

static const struct CMUnitTest tests[] = {
    FX_TEST(test_format_exact_bytes),
    FX_TEST(test_histogram_accumulates_counters_do_not),
    FX_TEST(test_finalized_run_shown_once),
    FX_TEST(test_flush_serves_page_over_http),
};

#include "tests/unit/unit_main.h"
