/* bench/detectors/chain_pii.c - prompt-injection + pii-detector through the real chain, 4 KiB */
/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Usage: kt_bench_chain_pii
 * Loads a policy config with `policies.chain: [prompt-injection, pii-detector]`
 * (the product page's settings for both), builds the chain with
 * gw_chain_create and times gw_chain_evaluate on 4 KiB prompts: one with PII
 * (so the body is rewritten) and one without. Each request needs a fresh body
 * because redaction rewrites it; the copy is timed on its own and subtracted.
 * Times are thread CPU time (CLOCK_THREAD_CPUTIME_ID), so other load on a
 * shared machine does not count against the chain.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/detectors/pii_gen.h"
#include "core/gv_buf.h"
#include "core/gv_record.h"
#include "gateway/gw_chain.h"
#include "gateway/gw_config.h"
#include "gateway/gw_req.h"

/* %s: the chain entries */
#define YAML_FMT                                                                                   \
    "pack:\n"                                                                                      \
    "  name: bench\n"                                                                              \
    "  version: 1.0.0\n"                                                                           \
    "  enabled: true\n"                                                                            \
    "providers:\n"                                                                                 \
    "  targets:\n"                                                                                 \
    "    - id: experiment-llm\n"                                                                   \
    "      provider: openai:chat:gpt-4o\n"                                                         \
    "      secret_key_ref:\n"                                                                      \
    "        env: KT_BENCH_KEY\n"                                                                  \
    "policies:\n"                                                                                  \
    "  chain:\n"                                                                                   \
    "%s"                                                                                           \
    "policy:\n"                                                                                    \
    "  prompt-injection:\n"                                                                        \
    "    threshold: 0.8\n"                                                                         \
    "    action: block\n"                                                                          \
    "  pii-detector:\n"                                                                            \
    "    action: redact\n"                                                                         \
    "    entities:\n"                                                                              \
    "      - PERSON\n"                                                                             \
    "      - EMAIL_ADDRESS\n"

static double cpu_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static struct json_object *make_body(size_t bytes, int with_pii)
{
    static const char *const clean[] = {
        "Please summarize the attached quarterly report in five bullet points. ",
        "The model scored 0.8734 on the benchmark after 12000 steps of training. ",
        "Explain the difference between precision and recall with an example. ",
        "Our team wants to compare learning rates of 3e-4 and 1e-3 on the same seed. ",
    };
    struct gen_sent s;
    struct gv_buf p;
    struct json_object *body, *msgs, *msg;
    size_t k = 0;

    gen_seed(7);
    gv_buf_init(&s.text, 0);
    gv_buf_init(&p, 0);
    while (p.len < bytes) {
        if (with_pii && k % 4 == 0) {
            gen_sentence(&s);
            (void)gv_buf_append(&p, s.text.data, s.text.len);
            (void)gv_buf_append_char(&p, ' ');
        }
        else {
            (void)gv_buf_append_str(&p, clean[k % 4]);
        }
        k++;
    }
    body = json_object_new_object();
    msgs = json_object_new_array();
    msg = json_object_new_object();
    json_object_object_add(msg, "role", json_object_new_string("user"));
    json_object_object_add(msg, "content", json_object_new_string_len(p.data, (int)bytes));
    json_object_array_add(msgs, msg);
    json_object_object_add(body, "model", json_object_new_string("gpt-4o"));
    json_object_object_add(body, "messages", msgs);
    gv_buf_free(&s.text);
    gv_buf_free(&p);
    return body;
}

static void run(struct gw_chain *chain, const char *label, struct json_object *tmpl)
{
    struct gw_req req;
    struct gv_record rec;
    struct gw_verdict v;
    struct json_object *copy;
    double t0, copy_ns, chain_ns;
    long i, iters = 0;

    /* copy alone */
    t0 = cpu_ns();
    do {
        copy = NULL;
        json_object_deep_copy(tmpl, &copy, NULL);
        json_object_put(copy);
        iters++;
    } while (cpu_ns() - t0 < 2e8);
    copy_ns = (cpu_ns() - t0) / (double)iters;
    /* copy + chain */
    t0 = cpu_ns();
    for (i = 0; i < iters; i++) {
        memset(&req, 0, sizeof(req));
        memset(&rec, 0, sizeof(rec));
        memset(&v, 0, sizeof(v));
        copy = NULL;
        json_object_deep_copy(tmpl, &copy, NULL);
        req.body = copy;
        req.model = "gpt-4o";
        req.api_key = "";
        req.rec = &rec;
        gw_chain_evaluate(chain, &req, &v);
        gw_chain_complete(chain, &req, &rec);
        json_object_put(copy);
    }
    chain_ns = (cpu_ns() - t0) / (double)iters - copy_ns;
    printf("  %-34s %8.0f ns/request (chain only; body copy %.0f ns subtracted)  action=%d "
           "PERSON=%u EMAIL=%u  (%ld iterations)\n",
           label, chain_ns, copy_ns, (int)v.action, v.pii_counts[GV_PII_PERSON],
           v.pii_counts[GV_PII_EMAIL_ADDRESS], iters);
}

/* Build a chain from yaml_fmt with the given entries; NULL on failure. */
static struct gw_chain *load_chain(const char *entries, struct gw_config **cfgp)
{
    char path[] = "/tmp/kt-bench-chain-XXXXXX";
    char yaml[2048];
    struct gw_chain *chain = NULL;
    struct gv_cfg_err err;
    int fd, n;
    gv_rc rc;

    *cfgp = NULL;
    n = snprintf(yaml, sizeof(yaml), YAML_FMT, entries);
    fd = mkstemp(path);
    if (fd < 0 || n < 0 || write(fd, yaml, (size_t)n) != (ssize_t)n) {
        fprintf(stderr, "chain_pii: cannot write a temporary config\n");
        if (fd >= 0) {
            close(fd);
            unlink(path);
        }
        return NULL;
    }
    close(fd);
    rc = gw_config_load(path, cfgp, &err);
    if (rc == GV_OK) {
        rc = gw_chain_create(*cfgp, NULL, &chain, &err);
    }
    unlink(path);
    if (rc != GV_OK) {
        fprintf(stderr, "chain_pii: %s\n", err.msg);
        gw_config_destroy(*cfgp);
        *cfgp = NULL;
        return NULL;
    }
    return chain;
}

int main(void)
{
    static const struct {
        const char *label;
        const char *entries;
    } chains[] = {
        {"injection + pii", "    - prompt-injection\n    - pii-detector\n"},
        {"pii-detector alone", "    - pii-detector\n"},
        {"prompt-injection alone", "    - prompt-injection\n"},
    };
    struct json_object *pii, *clean;
    size_t i;
    char label[96];
    int failed = 0;

    setenv("KT_BENCH_KEY", "sk-bench-not-used", 1);
    printf("kt chain bench: page settings for prompt-injection and pii-detector, 4 KiB prompts, "
           "one thread\n");
    pii = make_body(4096, 1);
    clean = make_body(4096, 0);
    for (i = 0; i < sizeof(chains) / sizeof(chains[0]); i++) {
        struct gw_config *cfg;
        struct gw_chain *chain = load_chain(chains[i].entries, &cfg);
        if (!chain) {
            /* Measure the chains that do load; the exit status still says one failed. */
            printf("  %-34s skipped: the chain does not load\n", chains[i].label);
            failed = 1;
            continue;
        }
        snprintf(label, sizeof(label), "%s, PII", chains[i].label);
        run(chain, label, pii);
        snprintf(label, sizeof(label), "%s, no PII", chains[i].label);
        run(chain, label, clean);
        gw_chain_destroy(chain);
        gw_config_destroy(cfg);
    }
    json_object_put(pii);
    json_object_put(clean);
    return failed;
}
