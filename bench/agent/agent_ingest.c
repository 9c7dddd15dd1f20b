/* bench/agent/agent_ingest.c - agent ingest rate, CPU per event, memory per run, emit cost */
/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kt_bench_agent_ingest [events_per_sender]
 *
 * 1. ingest: an in-process agent (its own thread, fsync on and off) fed by 1 and 4
 *    gateway-like senders over the Unix socket; events/s until every event is counted and
 *    the agent thread's CPU time per million events.
 * 2. memory: bytes held per run with 10,000 active runs of 20 requests each.
 * 3. emit: the cost of gw emitter emit() on a request thread, 1 and 4 threads.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agent/ag_agent.h"
#include "agent/ag_runs.h"
#include "core/gv_buf.h"
#include "core/gv_event.h"
#include "core/gv_log.h"
#include "core/gv_mem.h"
#include "core/gv_time.h"
#include "gateway/gw_emit.h"

struct sender {
    char sock[100];
    int id;
    uint64_t n;
    pthread_t thr;
};

static void make_record(struct gv_record *r, uint64_t i)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->request_id, sizeof(r->request_id), "req-%llu", (unsigned long long)i);
    snprintf(r->run_id, sizeof(r->run_id), "run-%llu", (unsigned long long)(i % 100));
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
    r->start_wall_us = 1700000000000000ull + i;
    r->latency_total_us = 5000 + (i * 7919) % 200000;
    r->latency_gateway_us = 40 + i % 50;
    r->tokens_prompt = 30;
    r->tokens_completion = 12;
    r->cost_usd = 0.0001;
    r->http_status = 200;
}

static void send_all(int fd, const char *p, size_t n)
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

static void *sender_main(void *arg)
{
    struct sender *s = arg;
    struct sockaddr_un sa;
    struct gv_buf frames, payload;
    struct gv_record rec;
    struct gv_hello h;
    char id[GV_INSTANCE_ID_LEN + 1];
    char sink[65536];
    uint64_t i;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", s->sock);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        perror("connect");
        exit(1);
    }
    snprintf(id, sizeof(id), "%032x", s->id + 1);
    memset(&h, 0, sizeof(h));
    h.schema_version = GV_EVENT_SCHEMA_VERSION;
    snprintf(h.instance_id, sizeof(h.instance_id), "%s", id);
    snprintf(h.chain, sizeof(h.chain), "prompt-injection,pii-detector,audit-logger");
    gv_buf_init(&frames, 0);
    gv_buf_init(&payload, 0);
    gv_hello_encode(&h, &payload);
    gv_frame_append(&frames, GV_FRAME_HELLO, payload.data, payload.len);
    send_all(fd, frames.data, frames.len);
    /* Encoded in chunks of 1024 events, like the gateway's background thread. */
    for (i = 0; i < s->n;) {
        uint64_t k;
        gv_buf_reset(&frames);
        for (k = 0; k < 1024 && i < s->n; k++, i++) {
            make_record(&rec, i);
            gv_buf_reset(&payload);
            gv_event_encode(&rec, id, i + 1, &payload);
            gv_frame_append(&frames, GV_FRAME_EVENT, payload.data, payload.len);
        }
        send_all(fd, frames.data, frames.len);
        /* Acks are drained so the agent's output never backs up. */
        while (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0) {
        }
    }
    gv_buf_free(&frames);
    gv_buf_free(&payload);
    /* Keep the connection until the agent has read everything. */
    shutdown(fd, SHUT_WR);
    while (recv(fd, sink, sizeof(sink), 0) > 0) {
    }
    close(fd);
    return NULL;
}

struct agent_run {
    struct ag_agent *ag;
    pthread_t thr;
    clockid_t cpu;
};

static void *agent_main(void *arg)
{
    struct agent_run *a = arg;
    ag_agent_run(a->ag, false);
    return NULL;
}

static double thread_cpu_s(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void bench_ingest(int nsend, uint64_t per_sender, bool fsync)
{
    char dir[] = "/tmp/kt-bench-agent-XXXXXX";
    struct ag_opts o;
    struct agent_run a;
    struct sender *s = gv_calloc((size_t)nsend, sizeof(*s));
    uint64_t total = per_sender * (uint64_t)nsend, t0, t1;
    double c0, c1;
    char cmd[128];
    int i;

    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(1);
    }
    memset(&o, 0, sizeof(o));
    o.state_dir = dir;
    o.flush_ms = 1000;
    o.fsync = fsync;
    o.label = "bench";
    o.exporters = "none";
    if (ag_agent_create(&o, &a.ag) != GV_OK) {
        fprintf(stderr, "agent create failed\n");
        exit(1);
    }
    pthread_create(&a.thr, NULL, agent_main, &a);
    pthread_getcpuclockid(a.thr, &a.cpu);
    c0 = thread_cpu_s(a.cpu);
    t0 = gv_mono_us();
    for (i = 0; i < nsend; i++) {
        snprintf(s[i].sock, sizeof(s[i].sock), "%s/agent.sock", dir);
        s[i].id = i;
        s[i].n = per_sender;
        pthread_create(&s[i].thr, NULL, sender_main, &s[i]);
    }
    while (ag_agent_events(a.ag) < total) {
        usleep(200);
    }
    t1 = gv_mono_us();
    c1 = thread_cpu_s(a.cpu);
    for (i = 0; i < nsend; i++) {
        pthread_join(s[i].thr, NULL);
    }
    ag_agent_stop(a.ag);
    pthread_join(a.thr, NULL);
    ag_agent_destroy(a.ag);
    printf(
        "ingest senders=%d fsync=%s events=%llu events_per_s=%.0f agent_cpu_s_per_million=%.3f\n",
        nsend, fsync ? "on" : "off", (unsigned long long)total,
        (double)total / ((double)(t1 - t0) / 1e6), (c1 - c0) / ((double)total / 1e6));
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "cleanup failed\n");
    }
    gv_free(s);
}

static void bench_memory(void)
{
    struct ag_runs *runs = ag_runs_create(0);
    struct gv_record r;
    uint64_t i;

    for (i = 0; i < 10000 * 20; i++) {
        make_record(&r, i);
        snprintf(r.run_id, sizeof(r.run_id), "run-%llu", (unsigned long long)(i % 10000));
        ag_runs_apply(runs, &r, NULL, 1);
    }
    printf("memory runs=%zu bytes_per_run=%.0f\n", ag_runs_count(runs),
           (double)ag_runs_mem(runs) / (double)ag_runs_count(runs));
    ag_runs_destroy(runs);
}

struct emitter_run {
    struct gw_emitter *em;
    uint64_t n;
    uint64_t ns;
    uint64_t cpu_ns;
    uint64_t burst;
    uint64_t dropped;
    pthread_t thr;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Emits in bursts (256 / threads: a busy gateway's worth), timing only the emit
 * calls, with a pause between bursts so the ring absorbs them. */
static void *emit_main(void *arg)
{
    struct emitter_run *e = arg;
    struct gv_record rec;
    uint64_t i = 0;

    make_record(&rec, 1);
    while (i < e->n) {
        uint64_t t0 = now_ns(), c0 = cpu_ns(), k;
        for (k = 0; k < e->burst && i < e->n; k++, i++) {
            if (e->em->ops->emit(e->em, &rec) != GV_OK) {
                e->dropped++;
            }
        }
        e->ns += now_ns() - t0;
        e->cpu_ns += cpu_ns() - c0;
        usleep(2000);
    }
    return NULL;
}

static void bench_emit(int nthreads, uint64_t per_thread)
{
    char dir[] = "/tmp/kt-bench-emit-XXXXXX";
    struct ag_opts o;
    struct agent_run a;
    struct emitter_run *e = gv_calloc((size_t)nthreads, sizeof(*e));
    struct gw_emitter *em = NULL;
    uint64_t ns = 0, cpu = 0, n = 0, dropped = 0;
    char cmd[128];
    int i;

    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(1);
    }
    memset(&o, 0, sizeof(o));
    o.state_dir = dir;
    o.flush_ms = 1000;
    o.fsync = true;
    o.label = "bench";
    o.exporters = "none";
    if (ag_agent_create(&o, &a.ag) != GV_OK || gw_emitter_create_agent(dir, NULL, &em)) {
        fprintf(stderr, "setup failed\n");
        exit(1);
    }
    pthread_create(&a.thr, NULL, agent_main, &a);
    for (i = 0; i < nthreads; i++) {
        e[i].em = em;
        e[i].n = per_thread;
        e[i].burst = 256 / (uint64_t)nthreads;
        pthread_create(&e[i].thr, NULL, emit_main, &e[i]);
    }
    for (i = 0; i < nthreads; i++) {
        pthread_join(e[i].thr, NULL);
        ns += e[i].ns;
        cpu += e[i].cpu_ns;
        n += e[i].n;
        dropped += e[i].dropped;
    }
    while (ag_agent_events(a.ag) + dropped < n) {
        usleep(1000);
    }
    printf("emit threads=%d events=%llu wall_ns_per_emit=%.1f cpu_ns_per_emit=%.1f dropped=%llu "
           "agent_counted=%llu\n",
           nthreads, (unsigned long long)n, (double)ns / (double)n, (double)cpu / (double)n,
           (unsigned long long)dropped, (unsigned long long)ag_agent_events(a.ag));
    em->ops->destroy(em);
    ag_agent_stop(a.ag);
    pthread_join(a.thr, NULL);
    ag_agent_destroy(a.ag);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "cleanup failed\n");
    }
    gv_free(e);
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;

    setvbuf(stdout, NULL, _IOLBF, 0);
    gv_log_set_level(GV_LOG_WARN);
    if (argc > 2 && strcmp(argv[2], "emit") == 0) {
        bench_emit(1, 100000);
        bench_emit(4, 25000);
        return 0;
    }
    bench_ingest(1, n, false);
    bench_ingest(4, n / 4, false);
    bench_ingest(1, n, true);
    bench_ingest(4, n / 4, true);
    bench_memory();
    bench_emit(1, 100000);
    bench_emit(4, 25000);
    return 0;
}
