/* gateway/policies/injection/train/train.c - fit the injection model, write injection_weights.c */
/* SPDX-License-Identifier: Apache-2.0 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/gv_buf.h"
#include "core/gv_mem.h"
#include "gateway/policies/injection/injection.h"
#include "gateway/policies/injection/train/injection_data.h"

/* Logistic regression over the detector's own features (the very same code
 * the gateway runs), fitted with AdaGrad and L2. Everything is seeded, so the
 * same data gives the same weights byte for byte. */
#define EPOCHS 12
#define LR 0.2
#define L2 1e-5
#define HARD_NEG_WEIGHT 2.0
/* Benign rows weigh this much more than attacks in total: a false block
 * stops a user's work, a miss still meets the rest of the chain. */
#define BENIGN_WEIGHT 1.5
#define SEED 0x2545F4914F6CDD1DULL
/* Added to the fitted bias so that the default threshold 0.8 means fitted
 * odds of 2:1 for an attack. Even odds catch a few more attacks and flag
 * neutral prose; 4:1 misses too many (checked on the DEV split, --dev). */
#define BIAS_SHIFT 0.69314718055994530942

struct feat {
    uint32_t idx;
    float val;
};

struct sample {
    size_t off, n; /* into feats */
    uint64_t rules;
    unsigned flags;
    int label;
    double weight;
    const struct injection_row *row;
};

struct collect {
    uint32_t *b;
    int8_t *s;
    size_t n, cap;
};

static void on_ngram(void *arg, uint32_t bucket, int sign)
{
    struct collect *c = arg;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 4096;
        c->b = gv_realloc(c->b, c->cap * sizeof(*c->b));
        c->s = gv_realloc(c->s, c->cap * sizeof(*c->s));
    }
    c->b[c->n] = bucket;
    c->s[c->n] = (int8_t)sign;
    c->n++;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a & 0x7FFFFFFFu, y = *(const uint32_t *)b & 0x7FFFFFFFu;
    return x < y ? -1 : x > y;
}

static uint64_t rng_state = SEED;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

struct params {
    double *w, *gw;
    double r[64], gr[64];
    double f[INJECTION_NF_COUNT], gf[INJECTION_NF_COUNT];
    double b, gb;
};

static double raw(const struct params *p, const struct sample *s, const struct feat *fe,
                  size_t nrules)
{
    double z = p->b;
    size_t i;
    for (i = 0; i < s->n; i++) {
        z += p->w[fe[s->off + i].idx] * fe[s->off + i].val;
    }
    for (i = 0; i < nrules; i++) {
        if (s->rules & (1ULL << i)) {
            z += p->r[i];
        }
    }
    for (i = 0; i < INJECTION_NF_COUNT; i++) {
        if (s->flags & (1u << i)) {
            z += p->f[i];
        }
    }
    return z;
}

static void step(double *w, double *g, double grad, double reg)
{
    grad += reg * *w;
    *g += grad * grad;
    *w -= LR * grad / (sqrt(*g) + 1e-8);
}

static void train(struct params *p, struct sample *s, size_t ns, const struct feat *fe,
                  size_t nrules)
{
    size_t *order = gv_malloc(ns * sizeof(*order));
    size_t e, k, i, j, t;

    for (i = 0; i < ns; i++) {
        order[i] = i;
    }
    for (e = 0; e < EPOCHS; e++) {
        for (i = ns; i > 1; i--) {
            j = (size_t)(rng() % i);
            t = order[i - 1];
            order[i - 1] = order[j];
            order[j] = t;
        }
        for (k = 0; k < ns; k++) {
            const struct sample *x = &s[order[k]];
            double z = raw(p, x, fe, nrules);
            double pr = 1.0 / (1.0 + exp(-z));
            double g = (pr - x->label) * x->weight;
            for (i = 0; i < x->n; i++) {
                uint32_t b = fe[x->off + i].idx;
                step(&p->w[b], &p->gw[b], g * fe[x->off + i].val, L2);
            }
            for (i = 0; i < nrules; i++) {
                if (x->rules & (1ULL << i)) {
                    step(&p->r[i], &p->gr[i], g, L2);
                    /* Rules only add evidence: the n-grams learn benign contexts. */
                    if (p->r[i] < 0) {
                        p->r[i] = 0;
                    }
                }
            }
            for (i = 0; i < INJECTION_NF_COUNT; i++) {
                if (x->flags & (1u << i)) {
                    step(&p->f[i], &p->gf[i], g, L2);
                }
            }
            step(&p->b, &p->gb, g, 0);
        }
    }
    gv_free(order);
}

static void report(const struct injection_dataset *d, const struct params *p,
                   const struct sample *s, size_t ns, const struct feat *fe, size_t nrules,
                   enum injection_split split)
{
    size_t f, k;
    printf("%-28s %6s %6s %6s %6s\n", "file", "rows", "tp", "fp", "fn");
    for (f = 0; f < d->nfiles; f++) {
        size_t n = 0, tp = 0, fp = 0, fn = 0;
        for (k = 0; k < ns; k++) {
            bool pos;
            if (s[k].row->file != f || s[k].row->split != split) {
                continue;
            }
            n++;
            /* Same decision as the gateway: sigmoid(z + BIAS_SHIFT) >= 0.8. */
            pos = raw(p, &s[k], fe, nrules) + BIAS_SHIFT >= log(4.0);
            tp += pos && s[k].label;
            fp += pos && !s[k].label;
            fn += !pos && s[k].label;
        }
        if (n) {
            printf("%-28s %6zu %6zu %6zu %6zu\n", d->files[f].name, n, tp, fp, fn);
        }
    }
}

/* Round the n-gram weights to the int8 grid the scorer uses, so the counts
 * printed below are those of the shipped model. */
static void quantize(struct params *p)
{
    double maxabs = 0, scale;
    size_t i;

    for (i = 0; i < INJECTION_NBUCKETS; i++) {
        if (fabs(p->w[i]) > maxabs) {
            maxabs = fabs(p->w[i]);
        }
    }
    scale = maxabs > 0 ? maxabs / 127.0 : 1.0;
    for (i = 0; i < INJECTION_NBUCKETS; i++) {
        p->w[i] = (double)lround(p->w[i] / scale) * scale;
    }
}

/* The trainer's own everyday-prompt generator. Its templates and vocabulary
 * differ from the evaluation set in bench/detectors/injection_everyday.c on
 * purpose: that set measures whether the model learned "ordinary requests are
 * benign", not whether it memorised the evaluation's sentences. */
#define GEN_SEED 0xD1B54A32D192ED03ULL
#define GEN_ROWS 1600u

/* Word lists, packed by hand. */
/* clang-format off */
static const char *const g_topic[] = {
    "convolutional layers", "the optimizer state", "post-training quantization",
    "knowledge distillation", "gradient clipping", "warmup steps", "perplexity",
    "precision at k", "XGBoost", "logistic regression", "PCA", "t-SNE plots", "feature scaling",
    "class imbalance", "data versioning", "model cards", "the loss spike at step 4000",
    "sparse autoencoders", "retrieval-augmented generation", "the tokenizer vocabulary",
    "the annual budget", "the team offsite agenda", "the customer feedback survey",
    "the press release", "the procurement policy", "our refund process", "the sales forecast",
    "the release notes", "the incident postmortem", "the quarterly OKRs", NULL};

static const char *const g_form[] = {"sonnet", "rap verse", "bedtime story", "slogan", "riddle",
                                     "song chorus", "acrostic poem", "fun fact", NULL};

static const char *const g_aud[] = {"students", "investors", "a small startup", "beginners",
                                    "my manager", "researchers", NULL};

static const char *const g_code[] = {
    "rename files in a folder by date", "count words in a text file",
    "merge two sorted arrays", "resize images to 224x224", "compute cosine similarity",
    "log metrics to a CSV file every epoch", "download a file and verify its checksum", NULL};

static const char *const g_sent[] = {
    "The conference room on floor two is booked until noon.",
    "Our latest run reached 91% top-1 accuracy on the held-out set.",
    "Delivery was late, but the product quality exceeded my expectations.",
    "The budget for the pilot project is 30,000 dollars over six months.",
    "Sign-ups doubled after we simplified the checkout page.",
    "The GPU cluster will be offline for maintenance on Sunday morning.",
    "I think the documentation could be clearer about installation.",
    "The restaurant was noisy and the pasta was overcooked.", NULL};

static const char *const g_role[] = {
    "a museum guide", "a career coach", "a statistics professor", "a chef",
    "a product designer", "a hiking guide", NULL};

static const char *const g_keys[] = {"id and summary", "topic, risk and owner",
                                     "score and reason", "question and answer", NULL};

static const char *const g_lang[] = {"Portuguese", "Dutch", "Korean", "English", NULL};

static const char *const g_fr[] = {"la quantification", "le budget annuel", "la normalisation",
                                   "la distillation", "ce communique de presse", NULL};
static const char *const g_de[] = {"die Quantisierung", "das Jahresbudget", "die Normalisierung",
                                   "die Destillation", "diese Pressemitteilung", NULL};
static const char *const g_es[] = {"la cuantización", "el presupuesto anual", "la normalización",
                                   "la destilación", "este comunicado de prensa", NULL};
static const char *const g_none[] = {"", NULL};
/* clang-format on */

struct gen_tmpl {
    const char *text; /* {A} and {B} replaced by a value of pool a and b */
    const char *const *a, *const *b;
};

static const struct gen_tmpl gen_tmpls[] = {
    {"Write a {A} on {B}.", g_form, g_topic},
    {"Compose a {A} that mentions {B}.", g_form, g_topic},
    {"Give a brief overview of {A}.", g_topic, g_none},
    {"Describe {A} in plain language.", g_topic, g_none},
    {"How does {A} work?", g_topic, g_none},
    {"Why does {A} matter for {B}?", g_topic, g_aud},
    {"Create a Python script to {A}.", g_code, g_none},
    {"Implement a JavaScript helper to {A}.", g_code, g_none},
    {"Determine whether this review is positive or negative: {A}", g_sent, g_none},
    {"Pull out the key entities in: {A}", g_sent, g_none},
    {"Convert this paragraph to {B}: {A}", g_sent, g_lang},
    {"Make this sentence shorter: {A}", g_sent, g_none},
    {"Proofread: {A}", g_sent, g_none},
    {"Pretend you are {A} and help me plan {B}.", g_role, g_topic},
    {"Imagine you're {A}; what would you tell {B}?", g_role, g_aud},
    {"Output valid JSON with the fields {A} describing {B}.", g_keys, g_topic},
    {"Format your answer as a JSON list of {A}.", g_keys, g_none},
    {"Prepare talking points on {A} for {B}.", g_topic, g_aud},
    {"Hey there!", g_none, g_none},
    {"Hello!", g_none, g_none},
    {"Good evening", g_none, g_none},
    {"Thank you so much", g_none, g_none},
    {"ok, go ahead", g_none, g_none},
    {"Can you help me?", g_none, g_none},
    {"Peux-tu décrire {A} ?", g_fr, g_none},
    {"Donne-moi un aperçu de {A}.", g_fr, g_none},
    {"Beschreibe {A} kurz.", g_de, g_none},
    {"Was ist {A}?", g_de, g_none},
    {"Describe {A} brevemente.", g_es, g_none},
    {"¿Qué es {A}?", g_es, g_none},
};

static size_t gen_len(const char *const *p)
{
    size_t n = 0;
    while (p[n]) {
        n++;
    }
    return n;
}

/* GEN_ROWS seeded draws as `0<TAB>text` lines (duplicates are dropped on load). */
static void gen_everyday(struct gv_buf *out)
{
    uint64_t st = GEN_SEED;
    size_t k;
    const char *p;

    for (k = 0; k < GEN_ROWS; k++) {
        const struct gen_tmpl *t;
        const char *a, *b;
        st ^= st << 13;
        st ^= st >> 7;
        st ^= st << 17;
        t = &gen_tmpls[st % (sizeof(gen_tmpls) / sizeof(gen_tmpls[0]))];
        a = t->a[(st >> 20) % gen_len(t->a)];
        b = t->b[(st >> 40) % gen_len(t->b)];
        (void)gv_buf_append_str(out, "0\t");
        for (p = t->text; *p; p++) {
            if (p[0] == '{' && (p[1] == 'A' || p[1] == 'B') && p[2] == '}') {
                (void)gv_buf_append_str(out, p[1] == 'A' ? a : b);
                p += 2;
            }
            else {
                (void)gv_buf_append_char(out, *p);
            }
        }
        (void)gv_buf_append_char(out, '\n');
    }
}

static int write_weights(const char *path, const struct params *p, size_t nrules, size_t ntrain)
{
    FILE *o = fopen(path, "w");
    double maxabs = 0, scale;
    size_t i;

    if (!o) {
        perror(path);
        return 1;
    }
    for (i = 0; i < INJECTION_NBUCKETS; i++) {
        if (fabs(p->w[i]) > maxabs) {
            maxabs = fabs(p->w[i]);
        }
    }
    scale = maxabs > 0 ? maxabs / 127.0 : 1.0;
    fprintf(o, "/* gateway/policies/injection/injection_weights.c - generated by "
               "scripts/train-injection.sh */\n/* SPDX-License-Identifier: Apache-2.0 */\n");
    fprintf(o, "/* Generated data: do not edit. %zu training rows, %d epochs. */\n", ntrain,
            EPOCHS);
    fprintf(o, "#include \"gateway/policies/injection/injection.h\"\n\n");
    fprintf(o, "static const int8_t ngram[%u] = {\n", INJECTION_NBUCKETS);
    for (i = 0; i < INJECTION_NBUCKETS; i++) {
        long q = lround(p->w[i] / scale);
        fprintf(o, "%s%ld,%s", i % 20 == 0 ? "    " : "", q, (i % 20 == 19) ? "\n" : " ");
    }
    fprintf(o, "\n};\n\n/* One per rule, in injection_rules[] order. */\n");
    fprintf(o, "static const float rule[%zu] = {\n", nrules);
    for (i = 0; i < nrules; i++) {
        fprintf(o, "    %.6ff, /* %s */\n", p->r[i], injection_rule_name(i));
    }
    fprintf(o, "};\n\n/* One per INJECTION_NF_* bit. */\nstatic const float flag[%u] = {\n",
            INJECTION_NF_COUNT);
    for (i = 0; i < INJECTION_NF_COUNT; i++) {
        fprintf(o, "    %.6ff,\n", p->f[i]);
    }
    fprintf(o,
            "};\n\nconst struct injection_weights injection_weights_builtin = {\n"
            "    .ngram = ngram,\n    .ngram_scale = %.9g,\n    .rule = rule,\n"
            "    .nrules = %zu,\n    .flag = flag,\n    .bias = %.9g,\n};\n",
            scale, nrules, p->b + BIAS_SHIFT);
    if (fclose(o) != 0) {
        perror(path);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct injection_dataset *d = NULL;
    struct injection_model *m = NULL;
    struct injection_scratch *sc = NULL;
    struct collect c = {NULL, NULL, 0, 0};
    struct sample *s = NULL;
    struct feat *fe = NULL;
    struct params p;
    size_t nf = 0, capf = 0, ns = 0, i, k, nrules = injection_rule_count();
    double npos = 0, nneg = 0;
    bool dev = false;
    const char *outpath = NULL, *dir = injection_data_dir(), *synthetic = NULL;
    bool *hits = gv_calloc(nrules, sizeof(*hits));
    int ret = 1;
    gv_rc rc;

    memset(&p, 0, sizeof(p));
    for (i = 1; i < (size_t)argc; i++) {
        if (strcmp(argv[i], "--dev") == 0) {
            dev = true;
        }
        else if (strcmp(argv[i], "--data") == 0 && i + 1 < (size_t)argc) {
            dir = argv[++i];
        }
        else if (strcmp(argv[i], "--synthetic") == 0 && i + 1 < (size_t)argc) {
            synthetic = argv[++i];
        }
        else if (strcmp(argv[i], "--out") == 0 && i + 1 < (size_t)argc) {
            outpath = argv[++i];
        }
        else {
            fprintf(stderr,
                    "usage: %s [--dev] [--data DIR] [--synthetic TSV] --out injection_weights.c\n",
                    argv[0]);
            goto out;
        }
    }
    if (!outpath && !dev) {
        fprintf(stderr, "%s: --out is required (or --dev to evaluate on the dev split)\n", argv[0]);
        goto out;
    }
    if (nrules > 64) {
        fprintf(stderr, "%s: more than 64 rules\n", argv[0]);
        goto out;
    }
    rc = injection_data_load(dir, &d);
    if (rc) {
        fprintf(stderr, "%s: cannot load %s: %s\n", argv[0], dir, gv_rc_str(rc));
        goto out;
    }
    if (synthetic) {
        rc = injection_data_add_tsv(d, synthetic, "synthetic");
        if (rc) {
            fprintf(stderr, "%s: cannot load %s: %s\n", argv[0], synthetic, gv_rc_str(rc));
            goto out;
        }
    }
    {
        struct gv_buf gen;
        gv_buf_init(&gen, (size_t)GEN_ROWS * 512u);
        gen_everyday(&gen);
        injection_data_add_tsv_text(d, gen.data, gen.len, "generated-everyday");
        gv_buf_free(&gen);
    }
    rc = injection_model_create(NULL, &m);
    if (rc) {
        goto out;
    }
    sc = injection_scratch_create();
    s = gv_calloc(d->n, sizeof(*s));
    for (k = 0; k < d->n; k++) {
        const struct injection_row *r = &d->rows[k];
        struct sample *x;
        unsigned flags = 0;
        size_t nfeat = 0, j;
        uint32_t *keys;
        double norm;
        if (r->split == INJECTION_SPLIT_HELDOUT) {
            continue;
        }
        c.n = 0;
        rc = injection_features(m, r->text,
                                r->len < INJECTION_SEGMENT_MAX ? r->len : INJECTION_SEGMENT_MAX, sc,
                                on_ngram, &c, hits, &flags, &nfeat);
        if (rc) {
            goto out;
        }
        x = &s[ns++];
        x->row = r;
        x->label = r->label;
        x->flags = flags;
        x->rules = 0;
        for (j = 0; j < nrules; j++) {
            if (hits[j]) {
                x->rules |= 1ULL << j;
            }
        }
        /* Merge repeats: value = sum of signs * norm(count), as the scorer does. */
        keys = gv_malloc((c.n + 1) * sizeof(*keys));
        for (j = 0; j < c.n; j++) {
            keys[j] = c.b[j] | (c.s[j] > 0 ? 0x80000000u : 0);
        }
        qsort(keys, c.n, sizeof(*keys), cmp_u32);
        norm = injection_ngram_norm(c.n);
        x->off = nf;
        for (j = 0; j < c.n;) {
            uint32_t b = keys[j] & 0x7FFFFFFFu;
            int sum = 0;
            while (j < c.n && (keys[j] & 0x7FFFFFFFu) == b) {
                sum += (keys[j] & 0x80000000u) ? 1 : -1;
                j++;
            }
            if (sum == 0) {
                continue;
            }
            if (nf == capf) {
                capf = capf ? capf * 2 : 1u << 20;
                fe = gv_realloc(fe, capf * sizeof(*fe));
            }
            fe[nf].idx = b;
            fe[nf].val = (float)(sum * norm);
            nf++;
        }
        x->n = nf - x->off;
        gv_free(keys);
    }
    /* Class balance, and the over-defence traps count double. */
    for (k = 0; k < ns; k++) {
        if (dev && s[k].row->split == INJECTION_SPLIT_DEV) {
            continue;
        }
        if (s[k].label) {
            npos += 1;
        }
        else {
            nneg += d->files[s[k].row->file].hard_negative ? HARD_NEG_WEIGHT : 1;
        }
    }
    for (k = 0; k < ns; k++) {
        double hw = d->files[s[k].row->file].hard_negative ? HARD_NEG_WEIGHT : 1;
        s[k].weight = s[k].label ? (npos + nneg) / (2 * npos)
                                 : BENIGN_WEIGHT * hw * (npos + nneg) / (2 * nneg);
    }
    p.w = gv_calloc(INJECTION_NBUCKETS, sizeof(double));
    p.gw = gv_calloc(INJECTION_NBUCKETS, sizeof(double));
    {
        /* Train only on the rows of the training split (dev rows sorted out here). */
        struct sample *t = gv_malloc((ns ? ns : 1) * sizeof(*t));
        size_t nt = 0;
        for (k = 0; k < ns; k++) {
            if (!(dev && s[k].row->split == INJECTION_SPLIT_DEV)) {
                t[nt++] = s[k];
            }
        }
        train(&p, t, nt, fe, nrules);
        quantize(&p);
        fprintf(stderr, "trained on %zu rows (%.0f attack), %zu features\n", nt, npos, nf);
        if (dev) {
            report(d, &p, s, ns, fe, nrules, INJECTION_SPLIT_DEV);
        }
        else {
            report(d, &p, s, ns, fe, nrules, INJECTION_SPLIT_TRAIN);
        }
        for (k = 0; k < nrules; k++) {
            fprintf(stderr, "rule %-32s %.3f\n", injection_rule_name(k), p.r[k]);
        }
        for (k = 0; k < INJECTION_NF_COUNT; k++) {
            fprintf(stderr, "flag %zu %.3f\n", k, p.f[k]);
        }
        if (outpath) {
            ret = write_weights(outpath, &p, nrules, nt);
        }
        else {
            ret = 0;
        }
        gv_free(t);
    }
out:
    gv_free(p.w);
    gv_free(p.gw);
    gv_free(fe);
    gv_free(s);
    gv_free(c.b);
    gv_free(c.s);
    gv_free(hits);
    injection_scratch_destroy(sc);
    injection_model_destroy(m);
    injection_data_free(d);
    return ret;
}
