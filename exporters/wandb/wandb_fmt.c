/* exporters/wandb/wandb_fmt.c - snapshots to W&B history rows and config, no I/O */
/* SPDX-License-Identifier: Apache-2.0 */
#include "exporters/wandb/wandb.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/gv_pii.h"

/* json-c prints doubles with %.17g (0.1 -> 0.10000000000000001); W&B rows read
 * better and stay exact enough with a fixed representation we choose here. */
static struct json_object *num(double v, const char *fmt)
{
    char tmp[352];

    if (!isfinite(v)) {
        return NULL; /* JSON null: a broken aggregate must not poison the row */
    }
    /* fmt is one of "%.6g", "%.6f", "%.3f": precision and style picked apart
     * so the format string stays a literal the compiler can check. */
    if (fmt[3] == 'g') {
        snprintf(tmp, sizeof(tmp), "%.*g", fmt[2] - '0', v);
    }
    else {
        snprintf(tmp, sizeof(tmp), "%.*f", fmt[2] - '0', v);
    }
    return json_object_new_double_s(v, tmp);
}

static struct json_object *u64(uint64_t v)
{
    return json_object_new_uint64(v);
}

static void reserved_to_dash(char *s)
{
    for (; *s; s++) {
        if (strchr(":;,#?/'\"\\ \t\r\n", *s)) {
            *s = '-';
        }
    }
}

gv_rc ex_wandb_run_name(const struct ex_wandb_fmt_opts *o, const char *exp_run, const char *label,
                        char *out, size_t size)
{
    int n;

    if (o->mapping == EX_WANDB_SHARED) {
        n = snprintf(out, size, "%s", exp_run);
    }
    else if (o->per_host && label && *label) {
        n = snprintf(out, size, "%s-gov-%s", exp_run, label);
    }
    else {
        n = snprintf(out, size, "%s-gov", exp_run);
    }
    if (n < 0 || (size_t)n >= size) {
        return GV_E2BIG;
    }
    reserved_to_dash(out);
    return GV_OK;
}

/* W&B's histogram is {"_type":"histogram","values":[N counts],"bins":[N+1 edges]};
 * anything else (no bins, edges not increasing) is left out rather than sent broken. */
static struct json_object *histogram(const struct ex_run_snapshot *s)
{
    struct json_object *h;
    struct json_object *values;
    struct json_object *bins;
    uint32_t i;

    if (s->hist_nbins == 0 || s->hist_nbins > EX_HIST_MAX_BINS || s->interval_requests == 0) {
        return NULL;
    }
    for (i = 0; i <= s->hist_nbins; i++) {
        if (!isfinite(s->hist_edges[i]) || (i > 0 && s->hist_edges[i] <= s->hist_edges[i - 1])) {
            return NULL;
        }
    }
    h = json_object_new_object();
    values = json_object_new_array_ext((int)s->hist_nbins);
    bins = json_object_new_array_ext((int)s->hist_nbins + 1);
    for (i = 0; i < s->hist_nbins; i++) {
        json_object_array_add(values, u64(s->hist_counts[i]));
    }
    for (i = 0; i <= s->hist_nbins; i++) {
        json_object_array_add(bins, num(s->hist_edges[i], "%.6g"));
    }
    json_object_object_add(h, "_type", json_object_new_string("histogram"));
    json_object_object_add(h, "values", values);
    json_object_object_add(h, "bins", bins);
    return h;
}

struct json_object *ex_wandb_fmt_row(const struct ex_run_snapshot *s, uint64_t now_wall_us)
{
    struct json_object *row = json_object_new_object();
    struct json_object *h;
    char key[128];
    uint64_t start;
    uint32_t i;

    json_object_object_add(row, "governance/requests", u64(s->requests));
    json_object_object_add(row, "governance/allowed", u64(s->allowed));
    json_object_object_add(row, "governance/redacted", u64(s->redacted));
    json_object_object_add(row, "governance/blocked", u64(s->blocked));
    json_object_object_add(row, "governance/errors", u64(s->errors));
    for (i = 0; i < s->nblocked_by && i < GV_RECORD_MAX_POLICIES; i++) {
        char pol[sizeof(s->blocked_by[i].policy)];
        memcpy(pol, s->blocked_by[i].policy, sizeof(pol));
        pol[sizeof(pol) - 1] = '\0';
        if (!pol[0]) {
            continue;
        }
        snprintf(key, sizeof(key), "governance/blocked_by/%s", pol);
        json_object_object_add(row, key, u64(s->blocked_by[i].count));
    }
    /* Cumulative: once an entity was seen it stays in every row, so any row
     * alone gives the totals; never-seen entities are left out to keep rows small. */
    for (i = 0; i < GV_PII_NTYPES; i++) {
        if (s->pii[i] == 0) {
            continue;
        }
        snprintf(key, sizeof(key), "governance/pii/%s", gv_pii_name((int)i));
        json_object_object_add(row, key, u64(s->pii[i]));
    }
    json_object_object_add(row, "governance/tokens_prompt", u64(s->tokens_prompt));
    json_object_object_add(row, "governance/tokens_completion", u64(s->tokens_completion));
    json_object_object_add(row, "governance/tokens_total",
                           u64(s->tokens_prompt + s->tokens_completion));
    json_object_object_add(row, "governance/cost_usd", num(s->cost_usd, "%.6f"));
    json_object_object_add(row, "governance/latency_p50_seconds", num(s->latency_p50_s, "%.6g"));
    json_object_object_add(row, "governance/latency_p95_seconds", num(s->latency_p95_s, "%.6g"));
    json_object_object_add(row, "governance/latency_p99_seconds", num(s->latency_p99_s, "%.6g"));
    json_object_object_add(row, "governance/overhead_p99_seconds", num(s->overhead_p99_s, "%.6g"));
    if (s->audit_head_seq) {
        /* The audit chain's end, in the summary too: a value published off the
         * machine that the local audit log can later be checked against. */
        json_object_object_add(row, "governance/audit_head_seq", u64(s->audit_head_seq));
        json_object_object_add(
            row, "governance/audit_head_hash",
            json_object_new_string_len(
                s->audit_head_hash,
                (int)strnlen(s->audit_head_hash, sizeof(s->audit_head_hash) - 1)));
    }
    h = histogram(s);
    if (h) {
        json_object_object_add(row, "governance/latency_seconds", h);
    }
    start = s->first_seen_wall_us && s->first_seen_wall_us <= now_wall_us ? s->first_seen_wall_us
                                                                          : now_wall_us;
    json_object_object_add(row, "_runtime", num((double)(now_wall_us - start) / 1e6, "%.3f"));
    json_object_object_add(row, "_timestamp", num((double)now_wall_us / 1e6, "%.6f"));
    return row;
}

static void cfg_put(struct json_object *cfg, const char *key, struct json_object *v)
{
    struct json_object *w = json_object_new_object();
    json_object_object_add(w, "value", v);
    json_object_object_add(cfg, key, w);
}

struct json_object *ex_wandb_fmt_config(const struct ex_run_snapshot *s, const char *label)
{
    struct json_object *cfg = json_object_new_object();
    struct json_object *chain = json_object_new_array();
    struct json_object *wb = json_object_new_object();
    struct json_object *t = json_object_new_object();
    const char *p = s->chain;
    const char *end = s->chain + strnlen(s->chain, sizeof(s->chain));

    /* "a,b,c" -> ["a","b","c"]: the chain reads better as a list in W&B's config table. */
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        size_t n = comma ? (size_t)(comma - p) : (size_t)(end - p);
        while (n && (*p == ' ')) {
            p++;
            n--;
        }
        if (n) {
            json_object_array_add(chain, json_object_new_string_len(p, (int)n));
        }
        p += n + (comma ? 1 : 0);
        if (!comma) {
            break;
        }
    }
    cfg_put(cfg, "experiment_run_id", json_object_new_string(s->run_id));
    cfg_put(cfg, "pack_name", json_object_new_string(s->pack_name));
    cfg_put(cfg, "pack_version", json_object_new_string(s->pack_version));
    cfg_put(cfg, "policy_chain", chain);
    cfg_put(cfg, "agent_label", json_object_new_string(label ? label : ""));
    /* _wandb.t makes the run count as existing for the official SDK's resume. */
    json_object_object_add(t, "5", json_object_new_string(KT_VERSION));
    json_object_object_add(wb, "cli_version", json_object_new_string(KT_VERSION));
    json_object_object_add(wb, "t", t);
    json_object_object_add(wb, "m", json_object_new_array());
    cfg_put(cfg, "_wandb", wb);
    return cfg;
}

static const char *or_default(const char *v, const char *def)
{
    return v && *v ? v : (def ? def : "");
}

gv_rc ex_wandb_fmt_batch(const struct ex_wandb_fmt_opts *o, const struct ex_batch *b,
                         struct gv_buf *out)
{
    struct json_object *doc = json_object_new_object();
    struct json_object *runs = json_object_new_array();
    const char *label = or_default(o->label, b->agent_label);
    char name[GV_RUN_TAG_MAX * 2 + 64];
    char display[GV_RUN_TAG_MAX + 64];
    gv_rc rc = GV_OK;
    size_t i;

    if (!*label) {
        label = "kt-agent";
    }
    json_object_object_add(doc, "kt_wandb", json_object_new_int(1));
    json_object_object_add(doc, "seq", u64(b->seq));
    json_object_object_add(doc, "now_us", u64(b->now_wall_us));
    json_object_object_add(doc, "label", json_object_new_string(label));
    json_object_object_add(doc, "shared", json_object_new_boolean(o->mapping == EX_WANDB_SHARED));
    for (i = 0; i < b->nruns; i++) {
        const struct ex_run_snapshot *s = &b->runs[i];
        struct json_object *r;

        if (!s->run_id[0]) {
            continue;
        }
        rc = ex_wandb_run_name(o, s->run_id, label, name, sizeof(name));
        if (rc) {
            goto out;
        }
        snprintf(display, sizeof(display), "governance \xc2\xb7 %s", s->run_id);
        r = json_object_new_object();
        json_object_object_add(r, "run", json_object_new_string(name));
        json_object_object_add(r, "exp_run", json_object_new_string(s->run_id));
        json_object_object_add(r, "entity",
                               json_object_new_string(or_default(s->entity, o->entity)));
        json_object_object_add(r, "project",
                               json_object_new_string(or_default(
                                   s->project, or_default(o->project, "uncategorized"))));
        json_object_object_add(r, "group",
                               json_object_new_string(or_default(s->run_group, s->run_id)));
        json_object_object_add(r, "name", json_object_new_string(display));
        json_object_object_add(r, "job_type", json_object_new_string("governance"));
        json_object_object_add(r, "config", ex_wandb_fmt_config(s, label));
        json_object_object_add(r, "row", ex_wandb_fmt_row(s, b->now_wall_us));
        json_object_object_add(r, "final", json_object_new_boolean(s->finalized));
        json_object_array_add(runs, r);
    }
    json_object_object_add(doc, "runs", runs);
    runs = NULL;
    rc = ex_wandb_json_append(out, doc);
out:
    json_object_put(runs);
    json_object_put(doc);
    return rc;
}
