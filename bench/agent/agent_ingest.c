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
 * 4. otlp (`kt_bench_agent_ingest N otlp [RATE]`): the same ingest with the OTLP exporter on,
 *    sending to a local OTLP/HTTP receiver (libevent, decoding every request down to its
 *    spans with protobuf-c, bench/agent/otlp_count.proto, to count them): requests/s and
 *    spans/s until every span is acknowledged, CPU per span of the ingest thread and of the
 *    exporter's thread. With RATE, two senders offer RATE requests/s in all and the run
 *    reports how far behind the exporter was when the last request had been offered.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>

#include "agent/ag_agent.h"
#include "agent/ag_runs.h"
#include "core/gv_buf.h"
#include "core/gv_event.h"
#include "core/gv_log.h"
#include "core/gv_mem.h"
#include "core/gv_time.h"
#include "bench/agent/bench_agent.h"
#include "bench/agent/otlp_count.pb-c.h"
#include "gateway/gw_emit.h"
#include "gateway/gw_trace.h"

/* Section 4 sends what a served request carries: trace ids and an upstream call. */
static bool full_records;

struct sender {
    char sock[100];
    int id;
    uint64_t n;
    double rate; /* events/s this sender offers; 0: as fast as the agent reads */
    uint64_t done_us;
    pthread_t thr;
};

static void make_record(struct gv_record *r, uint64_t i)
{
    bench_record(r, i, 100);
    r->start_wall_us = 1700000000000000ull + i;
    r->cost_usd = 0.0001;
    r->http_status = 200;
    if (full_records) {
        if (r->decision == GV_DECISION_BLOCKED) {
            r->policies[1].action = GV_OUTCOME_SKIPPED;
            r->policies[2].action = GV_OUTCOME_SKIPPED;
            r->http_status = 403;
        }
        else {
            r->upstream_start_wall_us = r->start_wall_us + 50;
            r->latency_upstream_us = r->latency_total_us - 60;
            snprintf(r->upstream_host, sizeof(r->upstream_host), "api.example.com");
            r->upstream_port = 443;
            snprintf(r->response_model, sizeof(r->response_model), "gpt-4o-2024-08-06");
            snprintf(r->response_id, sizeof(r->response_id), "chatcmpl-%llu",
                     (unsigned long long)i);
            snprintf(r->finish_reasons, sizeof(r->finish_reasons), "stop");
        }
        gw_trace_begin(r, NULL, NULL);
    }
}

static void *sender_main(void *arg)
{
    struct sender *s = arg;
    struct gv_hello h;
    char sink[65536];
    int fd = feed_connect(s->sock);

    memset(&h, 0, sizeof(h));
    h.schema_version = GV_EVENT_SCHEMA_VERSION;
    snprintf(h.instance_id, sizeof(h.instance_id), "%032x", s->id + 1);
    snprintf(h.chain, sizeof(h.chain), "prompt-injection,pii-detector,audit-logger");
    /* Encoded in chunks of 1024 events, like the gateway's background thread (256 when
     * paced, so the offered rate is smooth). */
    feed_events(fd, &h, (uint64_t)s->id * s->n, s->n, s->rate > 0 ? 256 : 1024, s->rate,
                make_record);
    s->done_us = gv_mono_us();
    /* Keep the connection until the agent has read everything. */
    shutdown(fd, SHUT_WR);
    while (recv(fd, sink, sizeof(sink), 0) > 0) {
    }
    close(fd);
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
    struct bench_agent a;
    struct sender *s = gv_calloc((size_t)nsend, sizeof(*s));
    uint64_t total = per_sender * (uint64_t)nsend, t0, t1;
    double c0, c1;
    int i;

    bench_agent_init(&a, "/tmp/kt-bench-agent-XXXXXX", "none");
    a.o.fsync = fsync;
    bench_agent_create(&a);
    bench_agent_run(&a);
    c0 = thread_cpu_s(a.cpu);
    t0 = gv_mono_us();
    for (i = 0; i < nsend; i++) {
        snprintf(s[i].sock, sizeof(s[i].sock), "%s/agent.sock", a.dir);
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
    bench_agent_finish(&a);
    printf(
        "ingest senders=%d fsync=%s events=%llu events_per_s=%.0f agent_cpu_s_per_million=%.3f\n",
        nsend, fsync ? "on" : "off", (unsigned long long)total,
        (double)total / ((double)(t1 - t0) / 1e6), (c1 - c0) / ((double)total / 1e6));
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
            if (e->em->ops->emit(e->em, &rec, NULL) != GV_OK) {
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
    struct bench_agent a;
    struct emitter_run *e = gv_calloc((size_t)nthreads, sizeof(*e));
    struct gw_emitter *em = NULL;
    uint64_t ns = 0, cpu = 0, n = 0, dropped = 0;
    int i;

    bench_agent_init(&a, "/tmp/kt-bench-emit-XXXXXX", "none");
    a.o.fsync = true;
    bench_agent_create(&a);
    if (gw_emitter_create_agent(a.dir, NULL, &em)) {
        fprintf(stderr, "setup failed\n");
        exit(1);
    }
    bench_agent_run(&a);
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
    bench_agent_finish(&a);
    gv_free(e);
}

/* ---- 4. OTLP export ---------------------------------------------------------------- */

struct receiver {
    struct event_base *base;
    struct evhttp *http;
    int port;
    pthread_t thr;
    _Atomic uint64_t spans, requests, bytes;
};

/* The receiver decodes into one reused arena, as a collector would pool its buffers: its
 * malloc/free would otherwise take the CPU the exporter is measured on (two cores). */
static _Alignas(16) unsigned char rcv_arena[64u << 20];
static size_t rcv_used;

static void *rcv_alloc(void *data, size_t size)
{
    size_t need = (size + 15u) & ~(size_t)15u;
    (void)data;
    if (need < size || need > sizeof(rcv_arena) - rcv_used) {
        return NULL;
    }
    rcv_used += need;
    return rcv_arena + rcv_used - need;
}

static void rcv_free(void *data, void *p)
{
    (void)data;
    (void)p;
}

static void on_otlp(struct evhttp_request *req, void *arg)
{
    ProtobufCAllocator alloc = {rcv_alloc, rcv_free, NULL};
    struct receiver *r = arg;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    const uint8_t *p = evbuffer_pullup(in, -1);
    const char *uri = evhttp_request_get_uri(req);

    if (uri && strcmp(uri, "/v1/traces") == 0) {
        Kt__Bench__V1__CountTraceRequest *t;
        size_t i, j;
        rcv_used = 0;
        t = kt__bench__v1__count_trace_request__unpack(&alloc, n, p);
        if (!t) {
            evhttp_send_reply(req, 400, "Bad Request", NULL);
            return;
        }
        for (i = 0; i < t->n_resource_spans; i++) {
            for (j = 0; j < t->resource_spans[i]->n_scope_spans; j++) {
                atomic_fetch_add(&r->spans, t->resource_spans[i]->scope_spans[j]->n_spans);
            }
        }
        kt__bench__v1__count_trace_request__free_unpacked(t, &alloc);
        atomic_fetch_add(&r->requests, 1);
        atomic_fetch_add(&r->bytes, n);
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "application/x-protobuf");
    evhttp_send_reply(req, 200, "OK", NULL);
}

static void *receiver_main(void *arg)
{
    struct receiver *r = arg;
    event_base_dispatch(r->base);
    return NULL;
}

static void receiver_start(struct receiver *r)
{
    struct evhttp_bound_socket *bs;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    memset(r, 0, sizeof(*r));
    /* receiver_stop breaks the loop from another thread: the base must be told at once. */
    evthread_use_pthreads();
    r->base = event_base_new();
    r->http = evhttp_new(r->base);
    evhttp_set_max_body_size(r->http, 64u << 20);
    evhttp_set_gencb(r->http, on_otlp, r);
    bs = evhttp_bind_socket_with_handle(r->http, "127.0.0.1", 0);
    if (!bs || getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &len) != 0) {
        fprintf(stderr, "receiver bind failed\n");
        exit(1);
    }
    r->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    pthread_create(&r->thr, NULL, receiver_main, r);
}

static void receiver_stop(struct receiver *r)
{
    event_base_loopbreak(r->base);
    pthread_join(r->thr, NULL);
    evhttp_free(r->http);
    event_base_free(r->base);
}

/* The first line of /proc/self/task/<tid>/<file> into buf. Returns 0, or -1 when it cannot be
 * read (the thread may have ended since the directory was listed). */
static int task_line(const char *tid, const char *file, char *buf, size_t size)
{
    char path[300];
    FILE *f;
    int rc;

    snprintf(path, sizeof(path), "/proc/self/task/%s/%s", tid, file);
    f = fopen(path, "r");
    if (!f) {
        return -1;
    }
    rc = fgets(buf, (int)size, f) ? 0 : -1;
    fclose(f);
    return rc;
}

/* CPU seconds of this process's thread named `name` (utime + stime from /proc). */
static double named_thread_cpu_s(const char *name)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *de;
    double s = 0;

    while (d && (de = readdir(d)) != NULL) {
        char comm[64] = "", stat[1024];
        unsigned long ut = 0, st = 0;
        char *p;
        if (de->d_name[0] == '.') {
            continue;
        }
        if (task_line(de->d_name, "comm", comm, sizeof(comm)) != 0) {
            continue;
        }
        comm[strcspn(comm, "\n")] = '\0';
        if (strcmp(comm, name) != 0) {
            continue;
        }
        if (task_line(de->d_name, "stat", stat, sizeof(stat)) != 0) {
            continue;
        }
        /* Fields 14 and 15 follow the ")" that ends the name. */
        p = strrchr(stat, ')');
        if (p &&
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2) {
            s += (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
        }
    }
    if (d) {
        closedir(d);
    }
    return s;
}

static void bench_otlp(int nsend, uint64_t per_sender, double rate)
{
    char url[64];
    struct bench_agent a;
    struct receiver rcv;
    struct sender *s = gv_calloc((size_t)nsend, sizeof(*s));
    uint64_t total = per_sender * (uint64_t)nsend, want = 0, t0, t1, i;
    double c0, c1, x0, x1;
    int k;

    full_records = true;
    for (i = 0; i < total; i++) {
        struct gv_record r;
        make_record(&r, i);
        want += r.decision == GV_DECISION_BLOCKED ? 2 : 5;
    }
    bench_agent_init(&a, "/tmp/kt-bench-otlp-XXXXXX", "otlp");
    receiver_start(&rcv);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", rcv.port);
    setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url, 1);
    setenv("OTEL_BSP_SCHEDULE_DELAY", "100", 1);
    bench_agent_create(&a);
    bench_agent_run(&a);
    c0 = thread_cpu_s(a.cpu);
    x0 = named_thread_cpu_s("kt-agent-otlp");
    t0 = gv_mono_us();
    for (k = 0; k < nsend; k++) {
        snprintf(s[k].sock, sizeof(s[k].sock), "%s/agent.sock", a.dir);
        s[k].id = k;
        s[k].n = per_sender;
        s[k].rate = rate / nsend;
        pthread_create(&s[k].thr, NULL, sender_main, &s[k]);
    }
    /* Bounded: a stalled exporter ends the run after 10 minutes with what arrived. */
    while (atomic_load(&rcv.spans) < want && gv_mono_us() - t0 < 600000000u) {
        usleep(1000);
    }
    t1 = gv_mono_us();
    c1 = thread_cpu_s(a.cpu);
    x1 = named_thread_cpu_s("kt-agent-otlp");
    uint64_t sent_us = 0;
    for (k = 0; k < nsend; k++) {
        pthread_join(s[k].thr, NULL);
        sent_us = s[k].done_us > sent_us ? s[k].done_us : sent_us;
    }
    /* Paced: how far behind the exporter was when the last request had been offered. */
    if (rate > 0) {
        printf("otlp paced offered_requests_per_s=%.0f achieved_offer_per_s=%.0f "
               "last_span_after_last_request_ms=%.0f\n",
               rate, (double)total / ((double)(sent_us - t0) / 1e6),
               t1 > sent_us ? (double)(t1 - sent_us) / 1e3 : 0.0);
    }
    printf("otlp senders=%d requests=%llu spans=%llu/%llu export_requests=%llu "
           "body_bytes_per_span=%.0f requests_per_s=%.0f spans_per_s=%.0f "
           "ingest_thread_cpu_us_per_span=%.2f exporter_thread_cpu_us_per_span=%.2f\n",
           nsend, (unsigned long long)total, (unsigned long long)atomic_load(&rcv.spans),
           (unsigned long long)want, (unsigned long long)atomic_load(&rcv.requests),
           (double)atomic_load(&rcv.bytes) / (double)want,
           (double)total / ((double)(t1 - t0) / 1e6), (double)want / ((double)(t1 - t0) / 1e6),
           (c1 - c0) * 1e6 / (double)want, (x1 - x0) * 1e6 / (double)want);
    bench_agent_finish(&a);
    receiver_stop(&rcv);
    unsetenv("OTEL_EXPORTER_OTLP_ENDPOINT");
    unsetenv("OTEL_BSP_SCHEDULE_DELAY");
    full_records = false;
    gv_free(s);
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;

    setvbuf(stdout, NULL, _IOLBF, 0);
    gv_log_set_level(GV_LOG_WARN);
    if (argc > 2 && strcmp(argv[2], "otlp") == 0) {
        double rate = argc > 3 ? strtod(argv[3], NULL) : 0;
        if (rate > 0) {
            bench_otlp(2, n / 2, rate);
            return 0;
        }
        bench_otlp(1, n, 0);
        bench_otlp(4, n / 4, 0);
        return 0;
    }
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
