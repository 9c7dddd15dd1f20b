/* bench/agent/weave_export.c - the Weave exporter's throughput into the trace server */
/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kt_bench_weave_export [calls] [batch_size] [senders]    (run by bench/agent/weave.sh)
 *
 * WANDB_BASE_URL names where a W&B stand-in (tests/e2e/wandb-standin, --lean) will listen;
 * its trace server lives under /traces; WANDB_API_KEY is its key. An in-process agent with
 * only the weave exporter is fed `calls` events over its socket while nothing listens there
 * yet, so they all wait in the outbox; the program then prints "outbox: N calls waiting"
 * and the caller starts the stand-in. The drain is timed from the first call sent to the
 * last: calls/s, and the process CPU time per call over that window (the agent's threads;
 * the feeding thread is done by then).
 */
#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agent/ag_agent.h"
#include "bench/agent/bench_agent.h"
#include "core/gv_buf.h"
#include "core/gv_event.h"
#include "core/gv_mem.h"
#include "core/gv_time.h"
#include "exporters/weave/weave.h"

static void make_record(struct gv_record *r, uint64_t i)
{
    bench_record(r, i, 10);
    snprintf(r->roles, sizeof(r->roles), "system,user");
    r->nmessages = 2;
    r->start_wall_us = 1767225600000000ull + i * 50;
    r->cost_usd = 0.00018;
    r->price_input_per_mtok = 2.5;
    r->price_output_per_mtok = 10;
    r->http_status = r->decision == GV_DECISION_BLOCKED ? 403 : 200;
}

static void feed(const char *sock, uint64_t n)
{
    struct gv_hello h;
    int fd = feed_connect(sock);

    memset(&h, 0, sizeof(h));
    h.schema_version = GV_EVENT_SCHEMA_VERSION;
    snprintf(h.instance_id, sizeof(h.instance_id), "%s", "0000000000000000000000000000beef");
    snprintf(h.pack_name, sizeof(h.pack_name), "bench-pack");
    snprintf(h.pack_version, sizeof(h.pack_version), "1");
    snprintf(h.chain, sizeof(h.chain), "prompt-injection,pii-detector,audit-logger");
    feed_events(fd, &h, 0, n, 1024, 0, make_record);
    close(fd);
}

/* The weave exporter's counters from the agent's status. */
static void weave_counts(const char *sock, uint64_t *pending, uint64_t *sent, uint64_t *failed)
{
    struct gv_buf out;
    struct json_object *j, *ex, *w, *v;

    gv_buf_init(&out, 0);
    *pending = *sent = *failed = 0;
    if (ag_status_query(sock, true, 5000, &out) == GV_OK && (j = json_tokener_parse(out.data))) {
        if (json_object_object_get_ex(j, "exporters", &ex) &&
            json_object_object_get_ex(ex, "weave", &w)) {
            if (json_object_object_get_ex(w, "pending", &v)) {
                *pending = json_object_get_uint64(v);
            }
            if (json_object_object_get_ex(w, "sent", &v)) {
                *sent = json_object_get_uint64(v);
            }
            if (json_object_object_get_ex(w, "failed", &v)) {
                *failed = json_object_get_uint64(v);
            }
        }
        json_object_put(j);
    }
    gv_buf_free(&out);
}

/* The formatting alone, on this thread: what one core can turn into upload bodies. */
static void bench_format(uint64_t n)
{
    struct gv_record rec;
    struct gv_hello h;
    struct ex_weave_call_in in;
    struct gv_buf body;
    struct timespec a, b;
    uint64_t i, bytes = 0;
    double secs;

    memset(&h, 0, sizeof(h));
    snprintf(h.pack_name, sizeof(h.pack_name), "bench-pack");
    snprintf(h.chain, sizeof(h.chain), "prompt-injection,pii-detector,audit-logger");
    gv_buf_init(&body, 0);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
    for (i = 0; i < n; i++) {
        make_record(&rec, i);
        memset(&in, 0, sizeof(in));
        in.rec = &rec;
        in.instance_id = "0000000000000000000000000000beef";
        in.seq = i + 1;
        in.hello = &h;
        in.entity = "team";
        in.project = "bench";
        in.policy_ref = "weave:///team/bench/object/kt-policy-bench-pack:abc";
        ex_weave_call_in_prepare(&in);
        if (i % 100 == 0) {
            bytes += body.len;
            gv_buf_reset(&body);
        }
        (void)ex_weave_fmt_upsert_items(&in, &body);
    }
    bytes += body.len;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
    secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    printf("format: %.1f us/call of one core's CPU (%.0f calls/s per core), %.0f bytes/call\n",
           secs * 1e6 / (double)n, (double)n / secs, (double)bytes / (double)n);
    gv_buf_free(&body);
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 100000;
    const char *batch = argc > 2 ? argv[2] : "100";
    const char *senders = argc > 3 ? argv[3] : "4";
    const char *base = getenv("WANDB_BASE_URL");
    char sock[128], cfg[160], yaml[256];
    struct bench_agent a;
    uint64_t pending, sent, failed, s0 = 0, t0 = 0, t1, limit;
    double c0 = 0, c1;
    FILE *f;
    int i;

    if (!base || !getenv("WANDB_API_KEY") || n == 0) {
        fprintf(stderr,
                "usage: WANDB_BASE_URL=<stand-in> WANDB_API_KEY=<key> %s [calls] "
                "[batch_size] [senders]\n",
                argv[0]);
        return 2;
    }
    bench_agent_init(&a, "/tmp/kt-bench-weave-XXXXXX", "weave");
    snprintf(sock, sizeof(sock), "%s/agent.sock", a.dir);
    snprintf(cfg, sizeof(cfg), "%s/agent.yaml", a.dir);
    snprintf(yaml, sizeof(yaml), "exporters:\n  weave:\n    batch_size: %s\n    senders: %s\n",
             batch, senders);
    f = fopen(cfg, "w");
    fputs(yaml, f);
    fclose(f);
    a.o.config_path = cfg;
    bench_agent_create(&a);
    bench_format(n < 50000 ? n : 50000);
    bench_agent_run(&a);
    feed(sock, n);
    for (i = 0; i < 600; i++) {
        weave_counts(sock, &pending, &sent, &failed);
        if (pending >= n) {
            break;
        }
        usleep(100000);
    }
    printf("outbox: %llu calls waiting\n", (unsigned long long)pending);
    fflush(stdout);
    limit = gv_mono_us() + 600u * 1000000u;
    for (;;) {
        weave_counts(sock, &pending, &sent, &failed);
        if (!t0 && sent > 0) {
            t0 = gv_mono_us();
            c0 = cpu_s();
            s0 = sent;
        }
        if (sent + failed >= n || gv_mono_us() > limit) {
            break;
        }
        usleep(10000);
    }
    t1 = gv_mono_us();
    c1 = cpu_s();
    printf("calls=%llu batch_size=%s senders=%s sent=%llu failed=%llu\n", (unsigned long long)n,
           batch, senders, (unsigned long long)sent, (unsigned long long)failed);
    if (t1 > t0 && sent > s0) {
        double secs = (double)(t1 - t0) / 1e6;
        printf("drain: %.0f calls/s over %.2f s; agent CPU %.1f us/call (%.0f%% of a core)\n",
               (double)(sent - s0) / secs, secs, (c1 - c0) * 1e6 / (double)(sent - s0),
               100.0 * (c1 - c0) / secs);
    }
    bench_agent_finish(&a);
    return sent == n ? 0 : 1;
}
