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
#include "core/gv_buf.h"
#include "core/gv_event.h"
#include "core/gv_mem.h"
#include "core/gv_time.h"
#include "exporters/weave/weave.h"

static void make_record(struct gv_record *r, uint64_t i)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->request_id, sizeof(r->request_id), "req-%llu", (unsigned long long)i);
    snprintf(r->run_id, sizeof(r->run_id), "run-%llu", (unsigned long long)(i % 10));
    snprintf(r->project, sizeof(r->project), "bench");
    snprintf(r->entity, sizeof(r->entity), "team");
    snprintf(r->model, sizeof(r->model), "gpt-4o");
    snprintf(r->roles, sizeof(r->roles), "system,user");
    r->nmessages = 2;
    r->decision = (enum gv_decision)(i % 4 == 3 ? GV_DECISION_BLOCKED : GV_DECISION_ALLOWED);
    r->npolicies = 3;
    snprintf(r->policies[0].name, sizeof(r->policies[0].name), "prompt-injection");
    snprintf(r->policies[1].name, sizeof(r->policies[1].name), "pii-detector");
    snprintf(r->policies[2].name, sizeof(r->policies[2].name), "audit-logger");
    if (r->decision == GV_DECISION_BLOCKED) {
        r->policies[0].action = GV_OUTCOME_BLOCK;
    }
    r->start_wall_us = 1767225600000000ull + i * 50;
    r->latency_total_us = 5000 + (i * 7919) % 200000;
    r->latency_gateway_us = 40 + i % 50;
    r->tokens_prompt = 30;
    r->tokens_completion = 12;
    r->cost_usd = 0.00018;
    r->price_input_per_mtok = 2.5;
    r->price_output_per_mtok = 10;
    r->http_status = r->decision == GV_DECISION_BLOCKED ? 403 : 200;
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

static void feed(const char *sock, uint64_t n)
{
    struct sockaddr_un sa;
    struct gv_buf frames, payload;
    struct gv_record rec;
    struct gv_hello h;
    const char *id = "0000000000000000000000000000beef";
    char sink[65536];
    uint64_t i;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        perror("connect");
        exit(1);
    }
    memset(&h, 0, sizeof(h));
    h.schema_version = GV_EVENT_SCHEMA_VERSION;
    snprintf(h.instance_id, sizeof(h.instance_id), "%s", id);
    snprintf(h.pack_name, sizeof(h.pack_name), "bench-pack");
    snprintf(h.pack_version, sizeof(h.pack_version), "1");
    snprintf(h.chain, sizeof(h.chain), "prompt-injection,pii-detector,audit-logger");
    gv_buf_init(&frames, 0);
    gv_buf_init(&payload, 0);
    gv_hello_encode(&h, &payload);
    gv_frame_append(&frames, GV_FRAME_HELLO, payload.data, payload.len);
    send_all(fd, frames.data, frames.len);
    for (i = 0; i < n;) {
        uint64_t k;
        gv_buf_reset(&frames);
        for (k = 0; k < 1024 && i < n; k++, i++) {
            make_record(&rec, i);
            gv_buf_reset(&payload);
            gv_event_encode(&rec, id, i + 1, &payload);
            gv_frame_append(&frames, GV_FRAME_EVENT, payload.data, payload.len);
        }
        send_all(fd, frames.data, frames.len);
        while (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0) {
        }
    }
    gv_buf_free(&frames);
    gv_buf_free(&payload);
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

static void *agent_main(void *arg)
{
    ag_agent_run(arg, false);
    return NULL;
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 100000;
    const char *batch = argc > 2 ? argv[2] : "100";
    const char *senders = argc > 3 ? argv[3] : "4";
    const char *base = getenv("WANDB_BASE_URL");
    char dir[] = "/tmp/kt-bench-weave-XXXXXX", sock[128], cfg[160], yaml[256], cmd[160];
    struct ag_opts o;
    struct ag_agent *ag;
    pthread_t thr;
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
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(sock, sizeof(sock), "%s/agent.sock", dir);
    snprintf(cfg, sizeof(cfg), "%s/agent.yaml", dir);
    snprintf(yaml, sizeof(yaml), "exporters:\n  weave:\n    batch_size: %s\n    senders: %s\n",
             batch, senders);
    f = fopen(cfg, "w");
    fputs(yaml, f);
    fclose(f);
    memset(&o, 0, sizeof(o));
    o.state_dir = dir;
    o.flush_ms = 1000;
    o.label = "bench";
    o.exporters = "weave";
    o.config_path = cfg;
    if (ag_agent_create(&o, &ag) != GV_OK) {
        fprintf(stderr, "agent create failed\n");
        return 1;
    }
    bench_format(n < 50000 ? n : 50000);
    pthread_create(&thr, NULL, agent_main, ag);
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
    ag_agent_stop(ag);
    pthread_join(thr, NULL);
    ag_agent_destroy(ag);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", dir);
    }
    return sent == n ? 0 : 1;
}
