/* bench/agent/bench_agent.h - an in-process agent and a gateway-like feeder for the agent benches
 */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef BENCH_AGENT_H
#define BENCH_AGENT_H

/* Static functions in a header: each bench under bench/agent/ is one executable built from one
 * .c file (bench/CMakeLists.txt), and these are what they share. */

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agent/ag_agent.h"
#include "core/gv_buf.h"
#include "core/gv_event.h"
#include "core/gv_time.h"

/* An agent running ag_agent_run on its own thread, in a temp dir of its own. */
struct bench_agent {
    char dir[64];
    struct ag_opts o;
    struct ag_agent *ag;
    pthread_t thr;
    clockid_t cpu; /* the agent thread's CPU clock */
};

/* A fresh dir from tmpl ("/tmp/kt-bench-x-XXXXXX") and options for an agent in it that
 * flushes every second and exports to `exporters`; the caller may change a->o before
 * bench_agent_create. Exits on failure. */
static void bench_agent_init(struct bench_agent *a, const char *tmpl, const char *exporters)
{
    memset(a, 0, sizeof(*a));
    snprintf(a->dir, sizeof(a->dir), "%s", tmpl);
    if (!mkdtemp(a->dir)) {
        perror("mkdtemp");
        exit(1);
    }
    a->o.state_dir = a->dir;
    a->o.flush_ms = 1000;
    a->o.label = "bench";
    a->o.exporters = exporters;
}

static void bench_agent_create(struct bench_agent *a)
{
    if (ag_agent_create(&a->o, &a->ag) != GV_OK) {
        fprintf(stderr, "agent create failed\n");
        exit(1);
    }
}

static void *bench_agent_main(void *arg)
{
    struct bench_agent *a = arg;

    ag_agent_run(a->ag, false);
    return NULL;
}

static void bench_agent_run(struct bench_agent *a)
{
    pthread_create(&a->thr, NULL, bench_agent_main, a);
    pthread_getcpuclockid(a->thr, &a->cpu);
}

/* Stops and destroys the agent and removes its dir. */
static void bench_agent_finish(struct bench_agent *a)
{
    char cmd[128];

    ag_agent_stop(a->ag);
    pthread_join(a->thr, NULL);
    ag_agent_destroy(a->ag);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", a->dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", a->dir);
    }
}

/* The part of a request record every agent bench sends: request i of run i % nruns in
 * project bench, every 4th one blocked by the first of three policies, 30 + 12 tokens. */
static void bench_record(struct gv_record *r, uint64_t i, uint64_t nruns)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->request_id, sizeof(r->request_id), "req-%llu", (unsigned long long)i);
    snprintf(r->run_id, sizeof(r->run_id), "run-%llu", (unsigned long long)(i % nruns));
    snprintf(r->project, sizeof(r->project), "bench");
    snprintf(r->entity, sizeof(r->entity), "team");
    snprintf(r->model, sizeof(r->model), "gpt-4o");
    r->decision = (enum gv_decision)(i % 4 == 3 ? GV_DECISION_BLOCKED : GV_DECISION_ALLOWED);
    r->npolicies = 3;
    snprintf(r->policies[0].name, sizeof(r->policies[0].name), "prompt-injection");
    snprintf(r->policies[1].name, sizeof(r->policies[1].name), "pii-detector");
    snprintf(r->policies[2].name, sizeof(r->policies[2].name), "audit-logger");
    if (r->decision == GV_DECISION_BLOCKED) {
        r->policies[0].action = GV_OUTCOME_BLOCK;
    }
    r->latency_total_us = 5000 + (i * 7919) % 200000;
    r->latency_gateway_us = 40 + i % 50;
    r->tokens_prompt = 30;
    r->tokens_completion = 12;
}

static void feed_send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            perror("send");
            exit(1);
        }
        p += w;
        n -= (size_t)w;
    }
}

/* A connection to the agent's socket, as the gateway opens it. Exits on failure. */
static int feed_connect(const char *sock)
{
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        perror("connect");
        exit(1);
    }
    return fd;
}

/* Sends h, then n events made by make(rec, first + i) under h's instance id, encoded `chunk`
 * at a time like the gateway's background thread; with rate > 0 paced to rate events/s. The
 * agent's acks are drained as they come so its output never backs up. Senders that feed one
 * agent at once take apart ranges of `first`: the agent counts a request id once, so a
 * second sender of the same ids would be deduplicated, not counted. */
static void feed_events(int fd, const struct gv_hello *h, uint64_t first, uint64_t n,
                        uint64_t chunk, double rate, void (*make)(struct gv_record *, uint64_t))
{
    struct gv_buf frames, payload;
    struct gv_record rec;
    char sink[65536];
    uint64_t i, start;

    gv_buf_init(&frames, 0);
    gv_buf_init(&payload, 0);
    gv_hello_encode(h, &payload);
    gv_frame_append(&frames, GV_FRAME_HELLO, payload.data, payload.len);
    feed_send_all(fd, frames.data, frames.len);
    start = gv_mono_us();
    for (i = 0; i < n;) {
        uint64_t k;
        if (rate > 0) {
            uint64_t due = start + (uint64_t)((double)i * 1e6 / rate), now = gv_mono_us();
            if (due > now) {
                usleep((useconds_t)(due - now));
            }
        }
        gv_buf_reset(&frames);
        for (k = 0; k < chunk && i < n; k++, i++) {
            make(&rec, first + i);
            gv_buf_reset(&payload);
            gv_event_encode(&rec, h->instance_id, i + 1, &payload);
            gv_frame_append(&frames, GV_FRAME_EVENT, payload.data, payload.len);
        }
        feed_send_all(fd, frames.data, frames.len);
        while (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0) {
        }
    }
    gv_buf_free(&frames);
    gv_buf_free(&payload);
}

#endif
