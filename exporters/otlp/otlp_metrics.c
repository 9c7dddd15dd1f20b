/* exporters/otlp/otlp_metrics.c - GenAI client metrics and kt's governance metrics */
/* SPDX-License-Identifier: Apache-2.0 */
#include "exporters/otlp/otlp.h"

#include <pthread.h>
#include <string.h>

#include "core/gv_mem.h"
#include "core/gv_pii.h"
#include "exporters/otlp/otlp_pb.h"

/* Series per metric; a request whose attributes would make one more lands in
 * the overflow series (the OpenTelemetry cardinality-limit convention). */
#define SERIES_MAX 256
#define ATTRS_MAX 4
#define VAL_MAX 128
#define BUCKETS_MAX 16

/* Bucket boundaries the GenAI semantic conventions advise. */
static const double token_bounds[] = {1,     4,     16,     64,      256,     1024,     4096,
                                      16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864};
static const double duration_bounds[] = {0.01, 0.02, 0.04, 0.08,  0.16,  0.32,  0.64,
                                         1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92};
/* The gateway's own time per request is sub-millisecond to milliseconds. */
static const double overhead_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                         0.01,   0.025,   0.05,   0.1,   0.25};

enum metric_id {
    M_TOKENS = 0,
    M_DURATION,
    M_TTFC,
    M_REQUESTS,
    M_BLOCKS,
    M_REDACTIONS,
    M_COST,
    M_OVERHEAD,
    M_COUNT
};

enum kind { K_HIST, K_SUM_INT, K_SUM_DOUBLE };

struct mdef {
    const char *name;
    const char *desc;
    const char *unit;
    enum kind kind;
    const double *bounds;
    size_t nbounds;
};

#define NB(a) (sizeof(a) / sizeof((a)[0]))

static const struct mdef defs[M_COUNT] = {
    {"gen_ai.client.token.usage", "Number of input and output tokens used.", "{token}", K_HIST,
     token_bounds, NB(token_bounds)},
    {"gen_ai.client.operation.duration", "GenAI operation duration.", "s", K_HIST, duration_bounds,
     NB(duration_bounds)},
    {"gen_ai.client.operation.time_to_first_chunk",
     "Time to receive the first chunk of a streamed response.", "s", K_HIST, duration_bounds,
     NB(duration_bounds)},
    {"kt.governance.requests", "Chat completion requests by governance decision.", "{request}",
     K_SUM_INT, NULL, 0},
    {"kt.governance.blocks", "Requests blocked, by the policy that blocked them.", "{request}",
     K_SUM_INT, NULL, 0},
    {"kt.governance.redactions", "PII entities redacted, by entity type.", "{entity}", K_SUM_INT,
     NULL, 0},
    {"kt.cost", "Spend on upstream tokens, by requested model.", "USD", K_SUM_DOUBLE, NULL, 0},
    {"kt.gateway.overhead", "Time kt spent on a request outside the upstream call.", "s", K_HIST,
     overhead_bounds, NB(overhead_bounds)},
};

struct vals {
    uint64_t count;
    double sum;
    uint64_t buckets[BUCKETS_MAX];
};

struct series {
    size_t nattrs;
    const char *keys[ATTRS_MAX]; /* static strings */
    char values[ATTRS_MAX][VAL_MAX];
    bool overflow;
    struct vals cur, base, mark;
    double min, max;
};

struct metric {
    struct series *s;
    size_t n;
};

struct ex_otlp_metrics {
    pthread_mutex_t lock;
    bool delta;
    uint64_t start_wall_us;
    uint64_t base_wall_us, mark_wall_us;
    struct metric m[M_COUNT];
};

struct ex_otlp_metrics *ex_otlp_metrics_create(bool delta, uint64_t start_wall_us)
{
    struct ex_otlp_metrics *m = gv_calloc(1, sizeof(*m));
    size_t i;

    pthread_mutex_init(&m->lock, NULL);
    m->delta = delta;
    m->start_wall_us = start_wall_us;
    m->base_wall_us = start_wall_us;
    for (i = 0; i < M_COUNT; i++) {
        m->m[i].s = gv_calloc(SERIES_MAX + 1, sizeof(*m->m[i].s));
    }
    return m;
}

void ex_otlp_metrics_destroy(struct ex_otlp_metrics *m)
{
    size_t i;

    if (!m) {
        return;
    }
    for (i = 0; i < M_COUNT; i++) {
        gv_free(m->m[i].s);
    }
    pthread_mutex_destroy(&m->lock);
    gv_free(m);
}

struct attrs {
    size_t n;
    const char *keys[ATTRS_MAX];
    const char *values[ATTRS_MAX];
};

static void attr(struct attrs *a, const char *key, const char *value)
{
    if (a->n < ATTRS_MAX) {
        a->keys[a->n] = key;
        a->values[a->n] = value;
        a->n++;
    }
}

static bool same(const struct series *s, const struct attrs *a)
{
    size_t i;

    if (s->overflow || s->nattrs != a->n) {
        return false;
    }
    for (i = 0; i < a->n; i++) {
        if (s->keys[i] != a->keys[i] || strncmp(s->values[i], a->values[i], VAL_MAX - 1) != 0) {
            return false;
        }
    }
    return true;
}

/* The series for these attributes: found, made, or the overflow series. */
static struct series *series_get(struct metric *mt, const struct attrs *a)
{
    struct series *s;
    size_t i;

    for (i = 0; i < mt->n; i++) {
        if (same(&mt->s[i], a)) {
            return &mt->s[i];
        }
    }
    if (mt->n >= SERIES_MAX) {
        for (i = 0; i < mt->n; i++) {
            if (mt->s[i].overflow) {
                return &mt->s[i];
            }
        }
        s = &mt->s[mt->n++];
        s->overflow = true;
        return s;
    }
    s = &mt->s[mt->n++];
    s->nattrs = a->n;
    for (i = 0; i < a->n; i++) {
        size_t len = strnlen(a->values[i], VAL_MAX - 1);
        s->keys[i] = a->keys[i];
        memcpy(s->values[i], a->values[i], len);
        s->values[i][len] = '\0';
    }
    return s;
}

static void observe(struct ex_otlp_metrics *m, enum metric_id id, const struct attrs *a, double v)
{
    const struct mdef *d = &defs[id];
    struct series *s = series_get(&m->m[id], a);
    size_t b = 0;

    if (d->kind == K_HIST) {
        /* Bucket i holds (bounds[i-1], bounds[i]]; the last one everything above. */
        while (b < d->nbounds && v > d->bounds[b]) {
            b++;
        }
        s->cur.buckets[b]++;
        if (s->cur.count == 0 || v < s->min) {
            s->min = v;
        }
        if (s->cur.count == 0 || v > s->max) {
            s->max = v;
        }
        s->cur.count++;
        s->cur.sum += v;
    }
    else {
        s->cur.count += (uint64_t)v;
        s->cur.sum += v;
    }
}

void ex_otlp_metrics_record(struct ex_otlp_metrics *m, const struct gv_record *rec)
{
    struct attrs a;
    uint32_t i;
    int k;

    pthread_mutex_lock(&m->lock);
    memset(&a, 0, sizeof(a));
    attr(&a, "kt.decision", gv_decision_str(rec->decision));
    observe(m, M_REQUESTS, &a, 1);
    observe(m, M_OVERHEAD, &a, (double)rec->latency_gateway_us / 1e6);
    if (rec->decision == GV_DECISION_BLOCKED) {
        const char *by = rec->error_code[0] ? rec->error_code : "unknown";
        for (i = 0; i < rec->npolicies && i < GV_RECORD_MAX_POLICIES; i++) {
            if (rec->policies[i].action == GV_OUTCOME_BLOCK) {
                by = rec->policies[i].name;
                break;
            }
        }
        memset(&a, 0, sizeof(a));
        attr(&a, "kt.policy.name", by);
        observe(m, M_BLOCKS, &a, 1);
    }
    for (i = 0; i < rec->npolicies && i < GV_RECORD_MAX_POLICIES; i++) {
        if (rec->policies[i].action != GV_OUTCOME_REDACT) {
            continue;
        }
        for (k = 0; k < GV_PII_NTYPES; k++) {
            if (rec->policies[i].pii_counts[k]) {
                memset(&a, 0, sizeof(a));
                attr(&a, "kt.pii.entity_type", gv_pii_name(k));
                observe(m, M_REDACTIONS, &a, rec->policies[i].pii_counts[k]);
            }
        }
    }
    if (rec->cost_usd > 0 && rec->model[0]) {
        memset(&a, 0, sizeof(a));
        attr(&a, "gen_ai.request.model", rec->model);
        observe(m, M_COST, &a, rec->cost_usd);
    }
    if (rec->upstream_start_wall_us != 0) {
        bool failed = rec->decision == GV_DECISION_ERROR || rec->http_status >= 400;
        memset(&a, 0, sizeof(a));
        attr(&a, "gen_ai.operation.name", "chat");
        attr(&a, "gen_ai.provider.name", "openai");
        attr(&a, "gen_ai.request.model", rec->model);
        if (failed) {
            attr(&a, "error.type", rec->error_code[0] ? rec->error_code : "_OTHER");
        }
        observe(m, M_DURATION, &a, (double)rec->latency_upstream_us / 1e6);
        if (rec->streamed && rec->upstream_first_byte_us && !failed) {
            a.n = 3;
            observe(m, M_TTFC, &a, (double)rec->upstream_first_byte_us / 1e6);
        }
        if (!failed && (rec->tokens_prompt || rec->tokens_completion)) {
            a.n = 3;
            attr(&a, "gen_ai.token.type", "input");
            observe(m, M_TOKENS, &a, (double)rec->tokens_prompt);
            a.values[3] = "output";
            observe(m, M_TOKENS, &a, (double)rec->tokens_completion);
        }
    }
    pthread_mutex_unlock(&m->lock);
}

static void point_attrs(struct ex_otlp_arena *ar, const struct series *s,
                        Kt__Otlp__V1__KeyValue ***out, size_t *nout)
{
    struct ex_otlp_attrs at;
    size_t i;

    ex_otlp_attrs_init(ar, &at, ATTRS_MAX + 1);
    if (s->overflow) {
        ex_otlp_attr_bool(ar, &at, "otel.metric.overflow", true);
    }
    for (i = 0; i < s->nattrs; i++) {
        ex_otlp_attr_str(ar, &at, s->keys[i], s->values[i]);
    }
    *out = at.v;
    *nout = at.n;
}

/* Series s as a histogram point: what it counted since base, or since start when base is
 * NULL (cumulative). */
static Kt__Otlp__V1__HistogramDataPoint *hist_point(struct ex_otlp_arena *ar, const struct mdef *d,
                                                    const struct series *s, const struct vals *base,
                                                    uint64_t start_ns, uint64_t now_ns)
{
    Kt__Otlp__V1__HistogramDataPoint *p = ex_otlp_alloc(ar, sizeof(*p));
    size_t b;

    kt__otlp__v1__histogram_data_point__init(p);
    point_attrs(ar, s, &p->attributes, &p->n_attributes);
    p->has_start_time_unix_nano = 1;
    p->start_time_unix_nano = start_ns;
    p->has_time_unix_nano = 1;
    p->time_unix_nano = now_ns;
    p->has_count = 1;
    p->count = s->cur.count - (base ? base->count : 0);
    p->has_sum = 1;
    p->sum = s->cur.sum - (base ? base->sum : 0);
    p->n_bucket_counts = d->nbounds + 1;
    p->bucket_counts = ex_otlp_alloc(ar, p->n_bucket_counts * sizeof(uint64_t));
    for (b = 0; b <= d->nbounds; b++) {
        p->bucket_counts[b] = s->cur.buckets[b] - (base ? base->buckets[b] : 0);
    }
    p->n_explicit_bounds = d->nbounds;
    p->explicit_bounds = (double *)(uintptr_t)d->bounds;
    /* Min and max are of the whole cumulative period only. */
    if (!base && s->cur.count) {
        p->has_min = 1;
        p->min = s->min;
        p->has_max = 1;
        p->max = s->max;
    }
    return p;
}

/* Series s as a sum point (count or sum, by the metric's kind), since base like hist_point. */
static Kt__Otlp__V1__NumberDataPoint *number_point(struct ex_otlp_arena *ar, const struct mdef *d,
                                                   const struct series *s, const struct vals *base,
                                                   uint64_t start_ns, uint64_t now_ns)
{
    Kt__Otlp__V1__NumberDataPoint *p = ex_otlp_alloc(ar, sizeof(*p));

    kt__otlp__v1__number_data_point__init(p);
    point_attrs(ar, s, &p->attributes, &p->n_attributes);
    p->start_time_unix_nano = start_ns;
    p->time_unix_nano = now_ns;
    if (d->kind == K_SUM_INT) {
        p->value_case = KT__OTLP__V1__NUMBER_DATA_POINT__VALUE_AS_INT;
        p->as_int = (int64_t)(s->cur.count - (base ? base->count : 0));
    }
    else {
        p->value_case = KT__OTLP__V1__NUMBER_DATA_POINT__VALUE_AS_DOUBLE;
        p->as_double = s->cur.sum - (base ? base->sum : 0);
    }
    return p;
}

static Kt__Otlp__V1__Metric *metric_pb(struct ex_otlp_metrics *m, struct ex_otlp_arena *ar,
                                       enum metric_id id, uint64_t now_wall_us)
{
    const struct mdef *d = &defs[id];
    struct metric *mt = &m->m[id];
    Kt__Otlp__V1__Metric *pm = ex_otlp_alloc(ar, sizeof(*pm));
    Kt__Otlp__V1__Histogram *h = NULL;
    Kt__Otlp__V1__Sum *sum = NULL;
    uint64_t start = (m->delta ? m->base_wall_us : m->start_wall_us) * 1000u;
    int temporality =
        m->delta ? KT__OTLP__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_DELTA
                 : KT__OTLP__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_CUMULATIVE;
    size_t i;

    kt__otlp__v1__metric__init(pm);
    pm->name = (char *)(uintptr_t)d->name;
    pm->description = (char *)(uintptr_t)d->desc;
    pm->unit = (char *)(uintptr_t)d->unit;
    if (d->kind == K_HIST) {
        h = ex_otlp_alloc(ar, sizeof(*h));
        kt__otlp__v1__histogram__init(h);
        h->aggregation_temporality = temporality;
        h->data_points = ex_otlp_alloc(ar, mt->n * sizeof(*h->data_points));
        h->n_data_points = mt->n;
        pm->data_case = KT__OTLP__V1__METRIC__DATA_HISTOGRAM;
        pm->histogram = h;
    }
    else {
        sum = ex_otlp_alloc(ar, sizeof(*sum));
        kt__otlp__v1__sum__init(sum);
        sum->aggregation_temporality = temporality;
        sum->is_monotonic = 1;
        sum->data_points = ex_otlp_alloc(ar, mt->n * sizeof(*sum->data_points));
        sum->n_data_points = mt->n;
        pm->data_case = KT__OTLP__V1__METRIC__DATA_SUM;
        pm->sum = sum;
    }
    for (i = 0; i < mt->n; i++) {
        struct series *s = &mt->s[i];
        const struct vals *base = m->delta ? &s->base : NULL;
        if (h) {
            h->data_points[i] = hist_point(ar, d, s, base, start, now_wall_us * 1000u);
        }
        else {
            sum->data_points[i] = number_point(ar, d, s, base, start, now_wall_us * 1000u);
        }
        s->mark = s->cur;
    }
    return pm;
}

gv_rc ex_otlp_metrics_encode(struct ex_otlp_metrics *m, const struct ex_otlp_resource *res,
                             uint64_t now_wall_us, struct gv_buf *out)
{
    struct ex_otlp_arena ar = {NULL};
    Kt__Otlp__V1__ExportMetricsServiceRequest req =
        KT__OTLP__V1__EXPORT_METRICS_SERVICE_REQUEST__INIT;
    Kt__Otlp__V1__ResourceMetrics rm = KT__OTLP__V1__RESOURCE_METRICS__INIT;
    Kt__Otlp__V1__ScopeMetrics sm = KT__OTLP__V1__SCOPE_METRICS__INIT;
    Kt__Otlp__V1__ResourceMetrics *rmp = &rm;
    Kt__Otlp__V1__ScopeMetrics *smp = &sm;
    Kt__Otlp__V1__Metric *list[M_COUNT];
    size_t i, n = 0;
    gv_rc rc;

    pthread_mutex_lock(&m->lock);
    for (i = 0; i < M_COUNT; i++) {
        /* A metric without a single point is left out, not sent empty. */
        if (m->m[i].n > 0) {
            list[n++] = metric_pb(m, &ar, (enum metric_id)i, now_wall_us);
        }
    }
    m->mark_wall_us = now_wall_us;
    sm.metrics = list;
    sm.n_metrics = n;
    sm.scope = ex_otlp_scope_pb(&ar);
    rm.resource = ex_otlp_resource_pb(&ar, res);
    rm.n_scope_metrics = 1;
    rm.scope_metrics = &smp;
    req.n_resource_metrics = n ? 1 : 0;
    req.resource_metrics = &rmp;
    rc = ex_otlp_pack(&req.base, out);
    pthread_mutex_unlock(&m->lock);
    ex_otlp_arena_free(&ar);
    return rc;
}

void ex_otlp_metrics_acked(struct ex_otlp_metrics *m)
{
    size_t i, j;

    pthread_mutex_lock(&m->lock);
    for (i = 0; i < M_COUNT; i++) {
        for (j = 0; j < m->m[i].n; j++) {
            m->m[i].s[j].base = m->m[i].s[j].mark;
        }
    }
    m->base_wall_us = m->mark_wall_us;
    pthread_mutex_unlock(&m->lock);
}
