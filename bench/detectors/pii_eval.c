/* bench/detectors/pii_eval.c - PII precision/recall per entity type, and ns per request */
/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Usage: kt_bench_pii_eval [DETECTORS_DIR]
 * DETECTORS_DIR defaults to $KT_DETECTORS_DIR, $KT_SHARED_DIR/data/detectors, else
 * ../shared/data/detectors. The presidio-research set is skipped (with a
 * note) when absent; the generated set and the timings always run.
 *
 * Matching: a prediction is correct when it overlaps a gold span of the same
 * type (presidio-research's DOMAIN_NAME counts as URL); "exact" also requires
 * the same start and end. Offsets in the presidio file are characters (code
 * points); the bench converts them to bytes.
 */
#include <json-c/json.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/detectors/pii_gen.h"
#include "core/gv_buf.h"
#include "core/gv_mem.h"
#include "core/gv_pii.h"
#include "gateway/policies/pii/pii_scan.h"

struct tally {
    unsigned long pred, pred_ok, pred_exact, gold, gold_ok;
};

static struct tally tal[GV_PII_NTYPES];

/* Counts one sentence's predictions against its gold spans into tal. With dump_type >= 0, the
 * misses (gold not overlapped by a prediction of its type) and the false alarms of that type
 * also go to stderr with the sentence `text`, for looking at the dev half's errors. */
static void score(const struct gen_span *gold, size_t ng, const struct pii_span *pred, size_t np,
                  const char *text, int dump_type)
{
    size_t i, j;

    for (j = 0; j < ng; j++) {
        bool ok = false;
        if (gold[j].type < 0) {
            continue;
        }
        tal[gold[j].type].gold++;
        for (i = 0; i < np && !ok; i++) {
            ok = gold[j].type == pred[i].type && pred[i].start < gold[j].end &&
                 gold[j].start < pred[i].end;
        }
        tal[gold[j].type].gold_ok += ok;
        if (!ok && gold[j].type == dump_type) {
            fprintf(stderr, "MISS [%.*s] | %s\n", (int)(gold[j].end - gold[j].start),
                    text + gold[j].start, text);
        }
    }
    for (i = 0; i < np; i++) {
        bool ok = false, exact = false;
        tal[pred[i].type].pred++;
        for (j = 0; j < ng; j++) {
            if (gold[j].type == pred[i].type && pred[i].start < gold[j].end &&
                gold[j].start < pred[i].end) {
                ok = true;
                exact = exact || (gold[j].start == pred[i].start && gold[j].end == pred[i].end);
            }
        }
        tal[pred[i].type].pred_ok += ok;
        tal[pred[i].type].pred_exact += exact;
        if (!ok && pred[i].type == dump_type) {
            fprintf(stderr, "FALSE [%.*s] | %s\n", (int)(pred[i].end - pred[i].start),
                    text + pred[i].start, text);
        }
    }
}

static void print_table(const char *title)
{
    int t;
    unsigned long P = 0, PO = 0, G = 0, GO = 0;

    printf("\n%s\n", title);
    printf("  %-14s %6s %6s %9s %9s %7s %6s\n", "entity", "gold", "pred", "precision", "recall",
           "F1", "exact");
    for (t = 0; t < GV_PII_NTYPES; t++) {
        const struct tally *x = &tal[t];
        double p, r, f;
        char ps[16], rs[16];
        if (!x->gold && !x->pred) {
            continue;
        }
        p = x->pred ? (double)x->pred_ok / (double)x->pred : 0.0;
        r = x->gold ? (double)x->gold_ok / (double)x->gold : 0.0;
        f = p + r > 0 ? 2 * p * r / (p + r) : 0.0;
        snprintf(ps, sizeof(ps), x->pred ? "%.3f" : "-", p);
        snprintf(rs, sizeof(rs), x->gold ? "%.3f" : "-", r);
        printf("  %-14s %6lu %6lu %9s %9s %7.3f %6.3f\n", gv_pii_name(t), x->gold, x->pred, ps, rs,
               f, x->pred ? (double)x->pred_exact / (double)x->pred : 0.0);
        P += x->pred;
        PO += x->pred_ok;
        G += x->gold;
        GO += x->gold_ok;
    }
    printf("  %-14s %6lu %6lu %9.3f %9.3f\n", "all", G, P, P ? (double)PO / (double)P : 0.0,
           G ? (double)GO / (double)G : 0.0);
}

static int map_gold(const char *name)
{
    if (strcmp(name, "DOMAIN_NAME") == 0) {
        return GV_PII_URL;
    }
    return gv_pii_from_name(name);
}

/* 0: dev half, 1: held-out half (first byte of SHA-256 of the text, even/odd). */
static int half_of(const char *text, size_t len)
{
    unsigned char md[SHA256_DIGEST_LENGTH];

    SHA256((const unsigned char *)text, len, md);
    return md[0] & 1;
}

/* half: -1 whole set, 0 dev half, 1 held-out half. */
static int eval_presidio(const char *dir, int half)
{
    char path[1100], title[160];
    const char *dump = getenv("KT_PII_EVAL_ERRORS");
    int dump_type = dump && half == 0 ? gv_pii_from_name(dump) : -1;
    size_t nsent = 0;
    struct json_object *root;
    struct pii_scan_buf sb;
    size_t i, n, *cp2b = NULL, cpcap = 0;

    snprintf(path, sizeof(path), "%.1000s/presidio-research-synth/synth_dataset_v2.json", dir);
    root = json_object_from_file(path);
    if (!root || !json_object_is_type(root, json_type_array)) {
        printf("\npresidio-research synthetic set: skipped (%s not readable)\n", path);
        json_object_put(root);
        return 1;
    }
    memset(tal, 0, sizeof(tal));
    pii_scan_buf_init(&sb);
    n = json_object_array_length(root);
    for (i = 0; i < n; i++) {
        struct json_object *rec = json_object_array_get_idx(root, i), *ft, *spans;
        const char *text;
        size_t len, b, ncp = 0, j, ng = 0;
        struct gen_span gold[64];

        if (!json_object_object_get_ex(rec, "full_text", &ft) ||
            !json_object_object_get_ex(rec, "spans", &spans)) {
            continue;
        }
        text = json_object_get_string(ft);
        len = (size_t)json_object_get_string_len(ft);
        if (half >= 0 && half_of(text, len) != half) {
            continue;
        }
        nsent++;
        if (cpcap < len + 2) {
            cpcap = len + 2;
            cp2b = gv_realloc(cp2b, cpcap * sizeof(*cp2b));
        }
        for (b = 0; b < len; b++) {
            if (((unsigned char)text[b] & 0xc0) != 0x80) {
                cp2b[ncp++] = b;
            }
        }
        cp2b[ncp] = len;
        for (j = 0; j < json_object_array_length(spans) && ng < 64; j++) {
            struct json_object *sp = json_object_array_get_idx(spans, j), *o;
            size_t s0, s1;
            int type;
            if (!json_object_object_get_ex(sp, "entity_type", &o)) {
                continue;
            }
            type = map_gold(json_object_get_string(o));
            json_object_object_get_ex(sp, "start_position", &o);
            s0 = (size_t)json_object_get_int(o);
            json_object_object_get_ex(sp, "end_position", &o);
            s1 = (size_t)json_object_get_int(o);
            if (s0 > ncp || s1 > ncp || s0 >= s1) {
                continue;
            }
            gold[ng].start = cp2b[s0];
            gold[ng].end = cp2b[s1];
            gold[ng].type = type; /* -1: a type kt does not detect (address, org...) */
            ng++;
        }
        if (pii_scan(text, len, PII_ALL_TYPES, &sb) != GV_OK) {
            fprintf(stderr, "pii_eval: scan failed on record %zu\n", i);
            continue;
        }
        score(gold, ng, sb.spans, sb.n, text, dump_type);
    }
    snprintf(title, sizeof(title),
             "PII on presidio-research synth_dataset_v2.json, %s (%zu sentences; overlap match)",
             half < 0    ? "whole set"
             : half == 0 ? "dev half (SHA-256 byte 0 even)"
                         : "held-out half (SHA-256 byte 0 odd)",
             nsent);
    print_table(title);
    pii_scan_buf_free(&sb);
    gv_free(cp2b);
    json_object_put(root);
    return 0;
}

static void eval_generated(unsigned long seed, size_t count)
{
    struct gen_sent s;
    struct pii_scan_buf sb;
    size_t i;
    char title[128];

    memset(tal, 0, sizeof(tal));
    gen_seed(seed);
    gv_buf_init(&s.text, 1 << 16);
    pii_scan_buf_init(&sb);
    for (i = 0; i < count; i++) {
        gen_sentence(&s);
        if (pii_scan(s.text.data, s.text.len, PII_ALL_TYPES, &sb) == GV_OK) {
            score(s.spans, s.n, sb.spans, sb.n, s.text.data, -1);
        }
    }
    snprintf(title, sizeof(title),
             "PII on the generated set (%zu sentences, seed %lu; overlap match)", count, seed);
    print_table(title);
    pii_scan_buf_free(&sb);
    gv_buf_free(&s.text);
}

/* PHONE_NUMBER findings in gsm8k's questions and worked answers, which hold no
 * phone numbers but many number pairs ("1200-1000=200", "500-1000 words"):
 * every finding is a false alarm. Skipped when the file is absent. */
static void eval_phone_free_text(const char *dir)
{
    char path[1100], line[16384];
    static const char *const keys[] = {"question", "answer"};
    struct pii_scan_buf sb;
    unsigned long texts = 0, found = 0;
    FILE *f;
    size_t i, k;

    snprintf(path, sizeof(path), "%.1000s/gsm8k-test/test.jsonl", dir);
    f = fopen(path, "r");
    if (!f) {
        printf("\nPHONE_NUMBER on gsm8k: skipped (%s not readable)\n", path);
        return;
    }
    pii_scan_buf_init(&sb);
    while (fgets(line, sizeof(line), f)) {
        struct json_object *rec = json_tokener_parse(line), *o;
        for (k = 0; rec && k < 2; k++) {
            if (!json_object_object_get_ex(rec, keys[k], &o)) {
                continue;
            }
            texts++;
            if (pii_scan(json_object_get_string(o), (size_t)json_object_get_string_len(o),
                         1u << GV_PII_PHONE_NUMBER, &sb) == GV_OK) {
                for (i = 0; i < sb.n; i++) {
                    found += sb.spans[i].type == GV_PII_PHONE_NUMBER;
                }
            }
        }
        json_object_put(rec);
    }
    fclose(f);
    pii_scan_buf_free(&sb);
    printf("\nPHONE_NUMBER on gsm8k test questions and answers (%lu texts, no phone numbers in "
           "them): %lu findings, all false\n",
           texts, found);
}

static double now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Prose for the "typical" prompts: a generated sentence (PII or a
 * look-alike) every `every` sentences, the rest plain requests. */
static const char *const prose[] = {
    "Please summarize the attached quarterly report in five bullet points. ",
    "The model scored 0.8734 on the benchmark after 12000 steps of training. ",
    "Explain the difference between precision and recall with an example. ",
    "Our team wants to compare learning rates of 3e-4 and 1e-3 on the same seed. ",
};

static void bench_size(size_t kib, unsigned every)
{
    struct gen_sent s;
    struct gv_buf prompt, out;
    struct pii_scan_buf sb;
    size_t iters = 0, spans = 0;
    double t0, t1;

    gen_seed(42);
    gv_buf_init(&s.text, 1 << 16);
    gv_buf_init(&prompt, 0);
    gv_buf_init(&out, 0);
    pii_scan_buf_init(&sb);
    while (prompt.len < kib * 1024) {
        if (iters++ % every == 0) {
            gen_sentence(&s);
            (void)gv_buf_append(&prompt, s.text.data, s.text.len);
            (void)gv_buf_append_char(&prompt, ' ');
        }
        else {
            (void)gv_buf_append_str(&prompt, prose[iters % 4]);
        }
    }
    iters = 0;
    prompt.len = kib * 1024;
    prompt.data[prompt.len] = '\0';
    t0 = now_ns();
    do {
        gv_buf_reset(&out);
        (void)pii_scan(prompt.data, prompt.len, PII_ALL_TYPES, &sb);
        (void)pii_redact(prompt.data, prompt.len, sb.spans, sb.n, NULL, &out);
        spans = sb.n;
        iters++;
        t1 = now_ns();
    } while (t1 - t0 < 3e8);
    printf("  %3zu KiB  %10.0f ns/request  %7.0f ns/KiB  %6.1f MB/s  (%zu spans, %zu iterations)\n",
           kib, (t1 - t0) / (double)iters, (t1 - t0) / (double)iters / (double)kib,
           (double)prompt.len * (double)iters / ((t1 - t0) / 1e9) / 1e6, spans, iters);
    pii_scan_buf_free(&sb);
    gv_buf_free(&s.text);
    gv_buf_free(&prompt);
    gv_buf_free(&out);
}

int main(int argc, char **argv)
{
    char dflt[1024];
    const char *dir = argc > 1 ? argv[1] : NULL;
    const char *shared = getenv("KT_SHARED_DIR");

    if (!dir) {
        dir = getenv("KT_DETECTORS_DIR"); /* what bench/detectors/run.sh sets */
    }
    if (!dir && shared) {
        snprintf(dflt, sizeof(dflt), "%s/data/detectors", shared);
        dir = dflt;
    }
    if (!dir) {
        dir = "../shared/data/detectors";
    }
    printf("kt pii-detector bench (scan + redact, all entity types, one thread)\n");
    if (eval_presidio(dir, 0) == 0 && eval_presidio(dir, 1) == 0) {
        eval_presidio(dir, -1);
    }
    eval_phone_free_text(dir);
    eval_generated(20261127, 5000);
    printf("\nPII scan + redact, thread CPU time per request, all types\n");
    printf(" dense: every sentence generated (PII or look-alike, ~1 span per 75 bytes)\n");
    bench_size(1, 1);
    bench_size(8, 1);
    bench_size(64, 1);
    printf(" typical: one generated sentence in eight, the rest plain prose\n");
    bench_size(1, 8);
    bench_size(8, 8);
    bench_size(64, 8);
    return 0;
}
