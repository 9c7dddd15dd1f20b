/* tests/unit/exporters/wandb/wandb_driver.c - feed ex_wandb hand-made batches, as the agent does */
/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/gv_cfg.h"
#include "core/gv_log.h"
#include "core/gv_mem.h"
#include "core/gv_time.h"
#include "core/gv_yaml.h"
#include "cli/cli.h"
#include "exporters/wandb/wandb.h"

/* usage: wandb_driver --state DIR [--config YAML] [--runs N] [--batches M] [--start K]
 *                     [--gap-ms G] [--final] [--label L] [--max-seconds S]
 *                     [--queue-max Q]
 * Batch k carries, per run, cumulative counts that are a function of k only, so
 * a test can predict every history row. Payloads are queued and retried with
 * backoff like the agent does; exit 0 when every payload was flushed. With
 * --queue-max, the oldest waiting payload is dropped (and counted) beyond Q
 * waiting, as the agent drops beyond its exporter queue.
 * `wandb_driver sync ARGS...` runs `kt wandb sync ARGS...` (same code) for
 * trees where the kt executable is not built. */

static void sleep_ms(uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void fill(struct ex_run_snapshot *s, int run, long k, uint64_t first_us, bool final)
{
    uint64_t m = (uint64_t)k + 1;
    int i;

    memset(s, 0, sizeof(*s));
    snprintf(s->run_id, sizeof(s->run_id), "exp%d", run);
    snprintf(s->pack_name, sizeof(s->pack_name), "default");
    snprintf(s->pack_version, sizeof(s->pack_version), "1");
    snprintf(s->chain, sizeof(s->chain), "injection,pii,audit,rbac,cost");
    s->requests = 10 * m;
    s->allowed = 7 * m;
    s->redacted = m;
    s->blocked = 2 * m;
    s->nblocked_by = 1;
    snprintf(s->blocked_by[0].policy, sizeof(s->blocked_by[0].policy), "injection");
    s->blocked_by[0].count = 2 * m;
    s->pii[GV_PII_EMAIL_ADDRESS] = m;
    s->tokens_prompt = 100 * m;
    s->tokens_completion = 40 * m;
    s->cost_usd = 0.01 * (double)m;
    s->latency_p50_s = 0.05;
    s->latency_p95_s = 0.1;
    s->latency_p99_s = 0.2;
    s->overhead_p99_s = 0.0005;
    s->interval_requests = 10;
    s->hist_nbins = 4;
    for (i = 0; i <= 4; i++) {
        s->hist_edges[i] = 0.05 * i;
    }
    s->hist_counts[0] = 4;
    s->hist_counts[1] = 3;
    s->hist_counts[2] = 2;
    s->hist_counts[3] = 1;
    s->first_seen_wall_us = first_us;
    s->finalized = final;
}

int main(int argc, char **argv)
{
    const char *state = NULL, *config = "", *label = "host-a";
    long runs = 1, batches = 1, start = 0, gap_ms = 0, max_s = 120, queue_max = 0;
    bool final = false;
    struct ex_exporter ex = {0};
    struct ex_wandb_ctx *c;
    struct gv_ydoc *doc = NULL;
    struct gv_cfg_err err;
    struct ex_run_snapshot *snaps;
    struct gv_buf *queue;
    size_t nq = 0, head = 0;
    unsigned long flushes = 0, retries = 0, drops = 0;
    uint64_t first_us = gv_wall_us() - 1000000u, deadline, backoff = 100;
    long k;
    int i, ret = 1;

    if (argc >= 2 && strcmp(argv[1], "sync") == 0) {
        return cli_wandb_sync(argc - 2, argv + 2);
    }
    for (i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : "";
        if (strcmp(argv[i], "--final") == 0) {
            final = true;
            continue;
        }
        if (strcmp(argv[i], "--state") == 0) {
            state = v;
        }
        else if (strcmp(argv[i], "--config") == 0) {
            config = v;
        }
        else if (strcmp(argv[i], "--label") == 0) {
            label = v;
        }
        else if (!gv_cfg_parse_long(v, strcmp(argv[i], "--runs") == 0        ? &runs
                                       : strcmp(argv[i], "--batches") == 0   ? &batches
                                       : strcmp(argv[i], "--start") == 0     ? &start
                                       : strcmp(argv[i], "--gap-ms") == 0    ? &gap_ms
                                       : strcmp(argv[i], "--queue-max") == 0 ? &queue_max
                                                                             : &max_s)) {
            fprintf(stderr, "wandb_driver: bad value for %s\n", argv[i]);
            return 2;
        }
        i++;
    }
    if (!state || runs < 1 || runs > 64 || batches < 0 || batches > 100000) {
        fprintf(stderr, "wandb_driver: --state DIR required; 1..64 runs\n");
        return 2;
    }
    gv_log_set_level(GV_LOG_INFO);
    ex.ops = &ex_wandb;
    ex.name = "wandb.0";
    ex.ctx = gv_calloc(1, ex_wandb.ctx_size);
    c = ex.ctx;
    if (gv_ydoc_load_buf("--config", config, strlen(config), &doc, &err) != GV_OK ||
        gv_cfg_apply(ex_wandb.config_map, "--config", doc->root, ex.ctx, &err) != GV_OK) {
        fprintf(stderr, "wandb_driver: %s\n", err.msg);
        gv_ydoc_destroy(doc);
        gv_free(ex.ctx);
        return 2;
    }
    if (ex_wandb.init(&ex, state) != GV_OK) {
        fprintf(stderr, "wandb_driver: init failed\n");
        goto out_cfg;
    }
    snaps = gv_calloc((size_t)runs, sizeof(*snaps));
    queue = gv_calloc((size_t)batches + 1, sizeof(*queue));
    deadline = gv_mono_us() + (uint64_t)max_s * 1000000u;
    for (k = start; k < start + batches; k++) {
        struct ex_batch b = {0};
        for (i = 0; i < runs; i++) {
            fill(&snaps[i], i, k, first_us, final && k == start + batches - 1);
        }
        b.seq = (uint64_t)k + 1;
        b.now_wall_us = gv_wall_us();
        b.agent_label = label;
        b.nruns = (size_t)runs;
        b.runs = snaps;
        gv_buf_init(&queue[nq], 0);
        if (ex_wandb.format(&ex, &b, &queue[nq]) != GV_OK) {
            fprintf(stderr, "wandb_driver: format failed\n");
            goto out;
        }
        nq++;
        if (queue_max > 0 && nq - head > (size_t)queue_max) {
            head++;
            drops++;
        }
        /* Drain in order, one try per batch; the rest waits for the loop below. */
        while (head < nq) {
            enum ex_flush r = ex_wandb.flush(&ex, &queue[head]);
            flushes++;
            if (r == EX_FLUSH_RETRY) {
                retries++;
                break;
            }
            drops += r == EX_FLUSH_DROP;
            head++;
        }
        if (gap_ms > 0) {
            sleep_ms((uint64_t)gap_ms);
        }
    }
    while (head < nq && gv_mono_us() < deadline) {
        enum ex_flush r = ex_wandb.flush(&ex, &queue[head]);
        flushes++;
        if (r == EX_FLUSH_RETRY) {
            retries++;
            sleep_ms(c->api.retry_after_ms > backoff ? c->api.retry_after_ms : backoff);
            backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
            continue;
        }
        backoff = 100;
        drops += r == EX_FLUSH_DROP;
        head++;
    }
    ret = head == nq ? 0 : 1;
    printf("{\"flushes\":%lu,\"retries\":%lu,\"drops\":%lu,\"pending\":%zu,\"http_requests\":%lu,"
           "\"online\":%s,\"store\":\"%s\"}\n",
           flushes, retries, drops, nq - head, c->api.nrequests, c->online ? "true" : "false",
           c->root);
out:
    ex_wandb.destroy(&ex);
    for (head = 0; head < nq; head++) {
        gv_buf_free(&queue[head]);
    }
    gv_free(queue);
    gv_free(snaps);
out_cfg:
    gv_cfg_release(ex_wandb.config_map, ex.ctx);
    gv_ydoc_destroy(doc);
    gv_free(ex.ctx);
    return ret;
}
