/* agent/ag_runs.c - per-run aggregation of governance events */
/* SPDX-License-Identifier: Apache-2.0 */
#include "agent/ag_runs.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/gv_mem.h"
#include "core/gv_pii.h"

struct ag_blocked {
    char policy[48];
    uint64_t count;
};

struct ag_run {
    char *key;
    char run_id[GV_RUN_TAG_MAX + 1];
    char project[GV_RUN_TAG_MAX + 1];
    char entity[GV_RUN_TAG_MAX + 1];
    char run_group[GV_RUN_TAG_MAX + 1];
    char pack_name[128];
    char pack_version[64];
    char chain[256];
    uint64_t requests, allowed, redacted, blocked, errors;
    uint32_t nblocked;
    struct ag_blocked *blocked_by; /* grown one policy at a time, at most 16 */
    uint64_t pii[GV_PII_NTYPES];
    uint64_t tokens_prompt, tokens_completion;
    double cost_usd;
    struct ag_sketch lat, ovh;
    uint32_t interval[AG_HIST_BINS];
    uint64_t interval_requests;
    uint64_t first_seen_wall_us, last_seen_wall_us; /* from the events */
    uint64_t touched_us;                            /* agent clock, for idleness */
    bool dirty;
    uint64_t audit_head_seq; /* the highest audit chain end its events carried */
    char audit_head_hash[65];
};

struct ag_runs {
    struct lh_table *table; /* key "entity\x1fproject\x1frun_id" -> run; insertion ordered */
    uint64_t idle_us;
};

double ag_hist_edge(unsigned k)
{
    if (k == 0) {
        return 0.0;
    }
    return 1e-4 * pow(10.0, (double)(k - 1) / 8.0);
}

static unsigned hist_bin(uint64_t us)
{
    double k;

    if (us < 100) {
        return 0;
    }
    k = 1.0 + floor(8.0 * log10((double)us / 100.0) + 1e-9);
    return k >= AG_HIST_BINS - 1 ? AG_HIST_BINS - 1 : (unsigned)k;
}

static void copy_str(char *dst, size_t size, const char *src)
{
    size_t n = strnlen(src, size - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void run_free_entry(struct lh_entry *e)
{
    struct ag_run *r = (struct ag_run *)lh_entry_v(e);

    ag_sketch_free(&r->lat);
    ag_sketch_free(&r->ovh);
    gv_free(r->blocked_by);
    gv_free(r->key);
    gv_free(r);
}

struct ag_runs *ag_runs_create(uint64_t idle_ms)
{
    struct ag_runs *runs = gv_calloc(1, sizeof(*runs));

    runs->table = lh_kchar_table_new(256, run_free_entry);
    if (!runs->table) {
        gv_free(runs);
        return NULL;
    }
    runs->idle_us = idle_ms * 1000;
    return runs;
}

void ag_runs_destroy(struct ag_runs *runs)
{
    if (!runs) {
        return;
    }
    lh_table_free(runs->table);
    gv_free(runs);
}

/* "entity\x1fproject\x1frun_id" into buf (fields are bounded, so it fits). */
static void make_key(char *buf, size_t size, const char *entity, const char *project,
                     const char *run_id)
{
    snprintf(buf, size, "%.*s\x1f%.*s\x1f%.*s", GV_RUN_TAG_MAX, entity, GV_RUN_TAG_MAX, project,
             GV_RUN_TAG_MAX, run_id);
}

static struct ag_run *run_get(struct ag_runs *runs, const char *entity, const char *project,
                              const char *run_id)
{
    char key[3 * GV_RUN_TAG_MAX + 3];
    void *v = NULL;
    struct ag_run *r;

    make_key(key, sizeof(key), entity, project, run_id);
    if (lh_table_lookup_ex(runs->table, key, &v)) {
        return v;
    }
    r = gv_calloc(1, sizeof(*r));
    r->key = gv_strdup(key);
    copy_str(r->run_id, sizeof(r->run_id), run_id);
    copy_str(r->project, sizeof(r->project), project);
    copy_str(r->entity, sizeof(r->entity), entity);
    ag_sketch_init(&r->lat);
    ag_sketch_init(&r->ovh);
    if (lh_table_insert(runs->table, r->key, r) != 0) {
        /* json-c only fails here on allocation failure: same policy as gv_malloc. */
        abort();
    }
    return r;
}

static void count_block(struct ag_run *r, const char *policy)
{
    uint32_t i;

    for (i = 0; i < r->nblocked; i++) {
        if (strcmp(r->blocked_by[i].policy, policy) == 0) {
            r->blocked_by[i].count++;
            return;
        }
    }
    if (r->nblocked >= GV_RECORD_MAX_POLICIES) {
        return;
    }
    r->blocked_by = gv_realloc(r->blocked_by, (r->nblocked + 1) * sizeof(*r->blocked_by));
    memset(&r->blocked_by[r->nblocked], 0, sizeof(r->blocked_by[0]));
    copy_str(r->blocked_by[r->nblocked].policy, sizeof(r->blocked_by[0].policy), policy);
    r->blocked_by[r->nblocked].count = 1;
    r->nblocked++;
}

void ag_runs_apply(struct ag_runs *runs, const struct gv_record *rec, const struct gv_hello *pack,
                   uint64_t now_wall_us)
{
    const char *run_id = rec->run_id[0] ? rec->run_id : AG_RUN_UNTAGGED;
    struct ag_run *r = run_get(runs, rec->entity, rec->project, run_id);
    const char *blocker = NULL;
    uint32_t i, j;

    r->requests++;
    switch (rec->decision) {
    case GV_DECISION_ALLOWED:
        r->allowed++;
        break;
    case GV_DECISION_REDACTED:
        r->redacted++;
        break;
    case GV_DECISION_BLOCKED:
        r->blocked++;
        break;
    default:
        r->errors++;
        break;
    }
    for (i = 0; i < rec->npolicies && i < GV_RECORD_MAX_POLICIES; i++) {
        const struct gv_policy_outcome *o = &rec->policies[i];
        if (o->action == GV_OUTCOME_BLOCK && !blocker) {
            blocker = o->name;
        }
        /* PII that went upstream: redacted, or only flagged or logged (a
         * flag/log or async pii-detector); a blocked request's never left. */
        if (o->action == GV_OUTCOME_REDACT || o->action == GV_OUTCOME_FLAG ||
            o->action == GV_OUTCOME_LOG) {
            for (j = 0; j < GV_PII_NTYPES; j++) {
                r->pii[j] += o->pii_counts[j];
            }
        }
    }
    if (rec->decision == GV_DECISION_BLOCKED) {
        if (!blocker) {
            blocker = rec->error_code[0] ? rec->error_code : "unknown";
        }
        count_block(r, blocker);
    }
    r->tokens_prompt += rec->tokens_prompt;
    r->tokens_completion += rec->tokens_completion;
    r->cost_usd += rec->cost_usd;
    ag_sketch_add(&r->lat, rec->latency_total_us);
    ag_sketch_add(&r->ovh, rec->latency_gateway_us);
    r->interval[hist_bin(rec->latency_total_us)]++;
    r->interval_requests++;
    if (rec->run_group[0]) {
        copy_str(r->run_group, sizeof(r->run_group), rec->run_group);
    }
    /* A sender without a pack (kt events reemit) leaves the run's as it is. */
    if (pack && pack->pack_name[0]) {
        copy_str(r->pack_name, sizeof(r->pack_name), pack->pack_name);
        copy_str(r->pack_version, sizeof(r->pack_version), pack->pack_version);
        copy_str(r->chain, sizeof(r->chain), pack->chain);
    }
    if (r->first_seen_wall_us == 0 || rec->start_wall_us < r->first_seen_wall_us) {
        r->first_seen_wall_us = rec->start_wall_us;
    }
    if (rec->audit_head_seq > r->audit_head_seq) {
        r->audit_head_seq = rec->audit_head_seq;
        memcpy(r->audit_head_hash, rec->audit_head_hash, sizeof(r->audit_head_hash));
    }
    if (rec->start_wall_us > r->last_seen_wall_us) {
        r->last_seen_wall_us = rec->start_wall_us;
    }
    r->touched_us = now_wall_us;
    r->dirty = true;
}

static void fill_snapshot(const struct ag_run *r, struct ex_run_snapshot *s)
{
    unsigned lo = AG_HIST_BINS, hi = 0, k;

    memset(s, 0, sizeof(*s));
    memcpy(s->run_id, r->run_id, sizeof(s->run_id));
    memcpy(s->project, r->project, sizeof(s->project));
    memcpy(s->entity, r->entity, sizeof(s->entity));
    memcpy(s->run_group, r->run_group, sizeof(s->run_group));
    memcpy(s->pack_name, r->pack_name, sizeof(s->pack_name));
    memcpy(s->pack_version, r->pack_version, sizeof(s->pack_version));
    memcpy(s->chain, r->chain, sizeof(s->chain));
    s->requests = r->requests;
    s->allowed = r->allowed;
    s->redacted = r->redacted;
    s->blocked = r->blocked;
    s->errors = r->errors;
    s->nblocked_by = r->nblocked;
    for (k = 0; k < r->nblocked; k++) {
        memcpy(s->blocked_by[k].policy, r->blocked_by[k].policy, sizeof(s->blocked_by[k].policy));
        s->blocked_by[k].count = r->blocked_by[k].count;
    }
    memcpy(s->pii, r->pii, sizeof(s->pii));
    s->tokens_prompt = r->tokens_prompt;
    s->tokens_completion = r->tokens_completion;
    s->cost_usd = r->cost_usd;
    s->latency_p50_s = ag_sketch_quantile(&r->lat, 0.50) / 1e6;
    s->latency_p95_s = ag_sketch_quantile(&r->lat, 0.95) / 1e6;
    s->latency_p99_s = ag_sketch_quantile(&r->lat, 0.99) / 1e6;
    s->overhead_p99_s = ag_sketch_quantile(&r->ovh, 0.99) / 1e6;
    s->interval_requests = r->interval_requests;
    for (k = 0; k < AG_HIST_BINS; k++) {
        if (r->interval[k]) {
            lo = k < lo ? k : lo;
            hi = k;
        }
    }
    if (lo < AG_HIST_BINS) {
        s->hist_nbins = hi - lo + 1;
        for (k = lo; k <= hi; k++) {
            s->hist_edges[k - lo] = ag_hist_edge(k);
            s->hist_counts[k - lo] = r->interval[k];
        }
        /* The open-ended last bin gets the grid's next edge as its top. */
        s->hist_edges[hi - lo + 1] = hi + 1 <= AG_HIST_BINS ? ag_hist_edge(hi + 1) : 0;
    }
    s->first_seen_wall_us = r->first_seen_wall_us;
    s->last_seen_wall_us = r->last_seen_wall_us;
    s->audit_head_seq = r->audit_head_seq;
    memcpy(s->audit_head_hash, r->audit_head_hash, sizeof(s->audit_head_hash));
}

size_t ag_runs_collect(struct ag_runs *runs, uint64_t now_wall_us, struct ex_run_snapshot **out)
{
    struct lh_entry *e, *tmp;
    size_t n = 0, cap = 0;
    struct ex_run_snapshot *v = NULL;

    lh_foreach_safe(runs->table, e, tmp)
    {
        struct ag_run *r = (struct ag_run *)lh_entry_v(e);
        bool idle = runs->idle_us && now_wall_us > r->touched_us &&
                    now_wall_us - r->touched_us >= runs->idle_us;

        if (!r->dirty && !idle) {
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            v = gv_realloc(v, cap * sizeof(*v));
        }
        fill_snapshot(r, &v[n]);
        v[n].finalized = idle;
        n++;
        r->dirty = false;
        memset(r->interval, 0, sizeof(r->interval));
        r->interval_requests = 0;
        if (idle) {
            lh_table_delete(runs->table, r->key);
        }
    }
    *out = v;
    return n;
}

size_t ag_runs_count(const struct ag_runs *runs)
{
    return (size_t)lh_table_length(runs->table);
}

uint64_t ag_runs_mem(const struct ag_runs *runs)
{
    struct lh_entry *e;
    uint64_t m = 0;

    lh_foreach(runs->table, e)
    {
        const struct ag_run *r = (const struct ag_run *)lh_entry_v(e);
        m += sizeof(*r) + strlen(r->key) + 1 + r->nblocked * sizeof(*r->blocked_by);
        m += ag_sketch_mem(&r->lat) + ag_sketch_mem(&r->ovh);
        m += sizeof(struct lh_entry);
    }
    return m;
}

/* ---- status -------------------------------------------------------------------------- */

static void add_str(struct json_object *o, const char *k, const char *v)
{
    json_object_object_add(o, k, json_object_new_string(v));
}

static void add_u64(struct json_object *o, const char *k, uint64_t v)
{
    json_object_object_add(o, k, json_object_new_uint64(v));
}

/* What a run is and its request counts, the same keys in `kt agent status --json` and in the
 * saved state (which ag_runs_from_json reads back by key, so their order there is free). */
static void add_run_head(struct json_object *o, const struct ag_run *r)
{
    add_str(o, "run_id", r->run_id);
    add_str(o, "entity", r->entity);
    add_str(o, "project", r->project);
    add_str(o, "run_group", r->run_group);
    add_str(o, "pack_name", r->pack_name);
    add_str(o, "pack_version", r->pack_version);
    add_str(o, "chain", r->chain);
    add_u64(o, "requests", r->requests);
    add_u64(o, "allowed", r->allowed);
    add_u64(o, "redacted", r->redacted);
    add_u64(o, "blocked", r->blocked);
    add_u64(o, "errors", r->errors);
}

static struct json_object *run_status_json(const struct ag_run *r)
{
    struct json_object *o = json_object_new_object();
    struct json_object *lat = json_object_new_object();
    struct json_object *tok = json_object_new_object();
    struct json_object *blk = json_object_new_object();
    struct json_object *pii = json_object_new_object();
    uint32_t i;

    add_run_head(o, r);
    for (i = 0; i < r->nblocked; i++) {
        json_object_object_add(blk, r->blocked_by[i].policy,
                               json_object_new_uint64(r->blocked_by[i].count));
    }
    json_object_object_add(o, "blocked_by", blk);
    for (i = 0; i < GV_PII_NTYPES; i++) {
        if (r->pii[i]) {
            json_object_object_add(pii, gv_pii_name((int)i), json_object_new_uint64(r->pii[i]));
        }
    }
    json_object_object_add(o, "pii_redacted", pii);
    json_object_object_add(tok, "prompt", json_object_new_uint64(r->tokens_prompt));
    json_object_object_add(tok, "completion", json_object_new_uint64(r->tokens_completion));
    json_object_object_add(tok, "total",
                           json_object_new_uint64(r->tokens_prompt + r->tokens_completion));
    json_object_object_add(o, "tokens", tok);
    json_object_object_add(o, "cost_usd", json_object_new_double(r->cost_usd));
    json_object_object_add(lat, "p50",
                           json_object_new_double(ag_sketch_quantile(&r->lat, 0.5) / 1e6));
    json_object_object_add(lat, "p95",
                           json_object_new_double(ag_sketch_quantile(&r->lat, 0.95) / 1e6));
    json_object_object_add(lat, "p99",
                           json_object_new_double(ag_sketch_quantile(&r->lat, 0.99) / 1e6));
    json_object_object_add(lat, "overhead_p99",
                           json_object_new_double(ag_sketch_quantile(&r->ovh, 0.99) / 1e6));
    json_object_object_add(o, "latency_s", lat);
    json_object_object_add(o, "first_seen_us", json_object_new_uint64(r->first_seen_wall_us));
    json_object_object_add(o, "last_seen_us", json_object_new_uint64(r->last_seen_wall_us));
    if (r->audit_head_seq) {
        struct json_object *h = json_object_new_object();
        json_object_object_add(h, "seq", json_object_new_uint64(r->audit_head_seq));
        json_object_object_add(h, "hash", json_object_new_string(r->audit_head_hash));
        json_object_object_add(o, "audit_head", h);
    }
    return o;
}

gv_rc ag_runs_status(const struct ag_runs *runs, int json, struct gv_buf *out)
{
    struct lh_entry *e;
    gv_rc rc = GV_OK;

    if (json) {
        struct json_object *arr = json_object_new_array();
        lh_foreach(runs->table, e)
        {
            json_object_array_add(arr, run_status_json((const struct ag_run *)lh_entry_v(e)));
        }
        rc = gv_buf_append_str(out, json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN));
        json_object_put(arr);
        return rc;
    }
    rc = gv_buf_appendf(out, "%-24s %-16s %8s %8s %8s %8s %6s %9s %9s %9s %10s %10s\n", "RUN",
                        "PROJECT", "REQS", "ALLOWED", "REDACTED", "BLOCKED", "ERRORS", "P50_MS",
                        "P95_MS", "P99_MS", "TOKENS", "COST_USD");
    lh_foreach(runs->table, e)
    {
        const struct ag_run *r = (const struct ag_run *)lh_entry_v(e);
        if (rc) {
            break;
        }
        rc = gv_buf_appendf(
            out,
            "%-24.128s %-16.128s %8llu %8llu %8llu %8llu %6llu %9.2f %9.2f %9.2f "
            "%10llu %10.4f\n",
            r->run_id, r->project[0] ? r->project : "-", (unsigned long long)r->requests,
            (unsigned long long)r->allowed, (unsigned long long)r->redacted,
            (unsigned long long)r->blocked, (unsigned long long)r->errors,
            ag_sketch_quantile(&r->lat, 0.5) / 1e3, ag_sketch_quantile(&r->lat, 0.95) / 1e3,
            ag_sketch_quantile(&r->lat, 0.99) / 1e3,
            (unsigned long long)(r->tokens_prompt + r->tokens_completion), r->cost_usd);
    }
    return rc;
}

/* ---- state file ---------------------------------------------------------------------- */

static struct json_object *sketch_json(const struct ag_sketch *s)
{
    struct json_object *o = json_object_new_object();
    struct json_object *bins = json_object_new_array_ext((int)s->nbins);
    uint32_t i;

    json_object_object_add(o, "lo", json_object_new_int(s->lo));
    json_object_object_add(o, "zeros", json_object_new_uint64(s->zeros));
    for (i = 0; i < s->nbins; i++) {
        json_object_array_add(bins, json_object_new_uint64(s->bins[i]));
    }
    json_object_object_add(o, "bins", bins);
    return o;
}

static gv_rc sketch_from_json(struct ag_sketch *s, struct json_object *o)
{
    struct json_object *lo, *zeros, *bins;
    uint32_t counts[AG_SKETCH_MAX_BINS];
    size_t i, n;

    if (!json_object_object_get_ex(o, "lo", &lo) ||
        !json_object_object_get_ex(o, "zeros", &zeros) ||
        !json_object_object_get_ex(o, "bins", &bins) ||
        !json_object_is_type(bins, json_type_array)) {
        return GV_EPROTO;
    }
    n = json_object_array_length(bins);
    if (n > AG_SKETCH_MAX_BINS) {
        return GV_EPROTO;
    }
    for (i = 0; i < n; i++) {
        counts[i] = (uint32_t)json_object_get_uint64(json_object_array_get_idx(bins, i));
    }
    return ag_sketch_load(s, json_object_get_int(lo), counts, (uint32_t)n,
                          json_object_get_uint64(zeros));
}

struct json_object *ag_runs_to_json(const struct ag_runs *runs)
{
    struct json_object *arr = json_object_new_array();
    struct lh_entry *e;
    uint32_t i;

    lh_foreach(runs->table, e)
    {
        const struct ag_run *r = (const struct ag_run *)lh_entry_v(e);
        struct json_object *o = json_object_new_object();
        struct json_object *blk = json_object_new_array();
        struct json_object *pii = json_object_new_array();
        struct json_object *iv = json_object_new_array();

        add_run_head(o, r);
        for (i = 0; i < r->nblocked; i++) {
            struct json_object *b = json_object_new_object();
            add_str(b, "policy", r->blocked_by[i].policy);
            add_u64(b, "count", r->blocked_by[i].count);
            json_object_array_add(blk, b);
        }
        json_object_object_add(o, "blocked_by", blk);
        for (i = 0; i < GV_PII_NTYPES; i++) {
            json_object_array_add(pii, json_object_new_uint64(r->pii[i]));
        }
        json_object_object_add(o, "pii", pii);
        add_u64(o, "tokens_prompt", r->tokens_prompt);
        add_u64(o, "tokens_completion", r->tokens_completion);
        json_object_object_add(o, "cost_usd", json_object_new_double(r->cost_usd));
        json_object_object_add(o, "lat", sketch_json(&r->lat));
        json_object_object_add(o, "ovh", sketch_json(&r->ovh));
        for (i = 0; i < AG_HIST_BINS; i++) {
            json_object_array_add(iv, json_object_new_uint64(r->interval[i]));
        }
        json_object_object_add(o, "interval", iv);
        add_u64(o, "interval_requests", r->interval_requests);
        add_u64(o, "first_seen_us", r->first_seen_wall_us);
        add_u64(o, "last_seen_us", r->last_seen_wall_us);
        add_u64(o, "touched_us", r->touched_us);
        json_object_object_add(o, "dirty", json_object_new_boolean(r->dirty));
        if (r->audit_head_seq) {
            add_u64(o, "audit_head_seq", r->audit_head_seq);
            add_str(o, "audit_head_hash", r->audit_head_hash);
        }
        json_object_array_add(arr, o);
    }
    return arr;
}

static const char *get_str(struct json_object *o, const char *k)
{
    struct json_object *v;
    return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : "";
}

static uint64_t get_u64(struct json_object *o, const char *k)
{
    struct json_object *v;
    return json_object_object_get_ex(o, k, &v) ? json_object_get_uint64(v) : 0;
}

gv_rc ag_runs_from_json(struct ag_runs *runs, struct json_object *arr)
{
    size_t i, j, n;
    struct json_object *v;

    if (!json_object_is_type(arr, json_type_array)) {
        return GV_EPROTO;
    }
    n = json_object_array_length(arr);
    for (i = 0; i < n; i++) {
        struct json_object *o = json_object_array_get_idx(arr, i);
        struct ag_run *r;

        if (!json_object_is_type(o, json_type_object)) {
            return GV_EPROTO;
        }
        r = run_get(runs, get_str(o, "entity"), get_str(o, "project"), get_str(o, "run_id"));
        copy_str(r->run_group, sizeof(r->run_group), get_str(o, "run_group"));
        copy_str(r->pack_name, sizeof(r->pack_name), get_str(o, "pack_name"));
        copy_str(r->pack_version, sizeof(r->pack_version), get_str(o, "pack_version"));
        copy_str(r->chain, sizeof(r->chain), get_str(o, "chain"));
        r->requests = get_u64(o, "requests");
        r->allowed = get_u64(o, "allowed");
        r->redacted = get_u64(o, "redacted");
        r->blocked = get_u64(o, "blocked");
        r->errors = get_u64(o, "errors");
        if (json_object_object_get_ex(o, "blocked_by", &v) &&
            json_object_is_type(v, json_type_array)) {
            for (j = 0; j < json_object_array_length(v); j++) {
                struct json_object *b = json_object_array_get_idx(v, j);
                uint64_t c = get_u64(b, "count");
                count_block(r, get_str(b, "policy"));
                r->blocked_by[r->nblocked - 1].count = c;
            }
        }
        if (json_object_object_get_ex(o, "pii", &v) && json_object_is_type(v, json_type_array)) {
            for (j = 0; j < json_object_array_length(v) && j < GV_PII_NTYPES; j++) {
                r->pii[j] = json_object_get_uint64(json_object_array_get_idx(v, j));
            }
        }
        r->tokens_prompt = get_u64(o, "tokens_prompt");
        r->tokens_completion = get_u64(o, "tokens_completion");
        if (json_object_object_get_ex(o, "cost_usd", &v)) {
            r->cost_usd = json_object_get_double(v);
        }
        if (!json_object_object_get_ex(o, "lat", &v) || sketch_from_json(&r->lat, v) != GV_OK ||
            !json_object_object_get_ex(o, "ovh", &v) || sketch_from_json(&r->ovh, v) != GV_OK) {
            return GV_EPROTO;
        }
        if (json_object_object_get_ex(o, "interval", &v) &&
            json_object_is_type(v, json_type_array)) {
            for (j = 0; j < json_object_array_length(v) && j < AG_HIST_BINS; j++) {
                r->interval[j] = (uint32_t)json_object_get_uint64(json_object_array_get_idx(v, j));
            }
        }
        r->interval_requests = get_u64(o, "interval_requests");
        r->first_seen_wall_us = get_u64(o, "first_seen_us");
        r->last_seen_wall_us = get_u64(o, "last_seen_us");
        r->touched_us = get_u64(o, "touched_us");
        r->dirty = json_object_object_get_ex(o, "dirty", &v) && json_object_get_boolean(v);
        r->audit_head_seq = get_u64(o, "audit_head_seq");
        if (json_object_object_get_ex(o, "audit_head_hash", &v)) {
            snprintf(r->audit_head_hash, sizeof(r->audit_head_hash), "%s",
                     json_object_get_string(v));
        }
    }
    return GV_OK;
}
