/* gateway/gw_chain.c - the configured policies, run in chain order */
/* SPDX-License-Identifier: Apache-2.0 */
#include "gateway/gw_chain.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/gv_log.h"
#include "core/gv_mem.h"
#include "core/gv_time.h"
#include "gateway/policies/gw_policies.h"

/* Streamed answers with more choices than this (n > 16), or a choice with
 * more tool calls than GW_CHAIN_STREAM_CALLS, pass the extra text through
 * unfiltered rather than growing state without bound. Each choice has one
 * stream state per part: content, refusal, then each tool call's arguments. */
#define CHAIN_MAX_CHOICES 16
#define CHAIN_PARTS (GW_STREAM_CALL0 + GW_CHAIN_STREAM_CALLS)
#define CHAIN_SLOTS (CHAIN_MAX_CHOICES * CHAIN_PARTS)
/* One policy's output for one streamed piece; a piece is one SSE delta, so
 * this is far above anything legitimate and only stops runaway growth. */
#define CHAIN_STREAM_BUF_MAX (8u * 1024u * 1024u)
/* Async detection jobs waiting for a thread, all workers together; past this a
 * request's async detection is dropped (and logged) rather than memory grow. */
#define CHAIN_ASYNC_QUEUE_MAX 4096u
#define CHAIN_ASYNC_THREADS_MAX 8

struct gw_chain {
    size_t n;
    struct gw_policy *pols;
    bool *initialized; /* init succeeded, so destroy is owed */
    bool wants_response;
    bool has_stream;
    bool keeps_answer; /* some policy keeps the answer text in its record */
    bool *async;       /* per policy: runs off the request path */
    bool has_async;
    struct gw_async_pool *pool; /* detection threads, when has_async */
};

/* One request's async detection: what the job reads and what it found. */
struct gw_chain_async {
    struct gw_async_job job; /* first: gw_chain_async_from_job */
    struct gw_chain *chain;
    void *owner;
    struct gw_req req; /* the job's own view: body is a private copy */
    char *model;
    struct gw_verdict v[GV_RECORD_MAX_POLICIES];
    gv_rc rc[GV_RECORD_MAX_POLICIES];
    uint64_t start_wall_us[GV_RECORD_MAX_POLICIES];
    uint64_t duration_us[GV_RECORD_MAX_POLICIES];
    bool run[GV_RECORD_MAX_POLICIES];
};

struct gw_chain_stream {
    struct gw_chain *chain;
    struct gw_req *req;
    void **state; /* [policy][choice], allocated by each policy on first use */
    struct gv_buf a;
    struct gv_buf b;
    bool rewritten; /* some policy redacted a piece */
};

static bool implemented(const struct gw_policy_ops *ops)
{
    return ops->evaluate || ops->response_json || ops->stream_text || ops->complete || ops->price ||
           ops->stamp || ops->tags;
}

static gv_rc chain_create(const struct gw_config *cfg, const char *state_dir, bool check_only,
                          struct gw_chain **out, struct gv_cfg_err *err)
{
    struct gv_cfg_err scratch;
    struct gw_chain *chain;
    char where[96];
    char missing[512];
    size_t used = 0;
    size_t i;
    gv_rc rc = GV_OK;

    *out = NULL;
    if (!err) {
        err = &scratch;
    }
    chain = gv_calloc(1, sizeof(*chain));
    if (!cfg->pack_enabled) {
        gv_log(GV_LOG_INFO, "chain", "pack disabled: passing traffic through with no policies",
               "pack=%s", cfg->pack_name ? cfg->pack_name : "");
        goto out;
    }
    if (cfg->nchain) {
        chain->pols = gv_calloc(cfg->nchain, sizeof(*chain->pols));
        chain->initialized = gv_calloc(cfg->nchain, sizeof(*chain->initialized));
        chain->async = gv_calloc(cfg->nchain, sizeof(*chain->async));
    }
    missing[0] = '\0';
    for (i = 0; i < cfg->nchain; i++) {
        const struct gw_chain_entry *e = &cfg->chain[i];
        const struct gw_policy_ops *ops =
            gw_policy_lookup(cfg->policies ? cfg->policies : gw_policies_builtin(), e->name);
        struct gw_policy *pol = &chain->pols[i];

        if (!ops) {
            /* gw_config_load already refused unknown names; a hand-built config may not. */
            rc = gv_cfg_fail(err, cfg->path, e->name_node, "policies.chain: unknown policy '%s'",
                             e->name);
            goto out;
        }
        pol->ops = ops;
        pol->name = gv_strdup(e->name);
        pol->state_dir = state_dir ? gv_strdup(state_dir) : NULL;
        pol->check_only = check_only;
        pol->slot = (unsigned)i;
        pol->ctx = gv_calloc(1, ops->ctx_size ? ops->ctx_size : 1);
        chain->n = i + 1;
        snprintf(where, sizeof(where), "policy.%s", e->name);
        rc = gv_cfg_apply_in(ops->config_map, cfg->path, where, e->settings, pol->ctx, err);
        if (rc) {
            goto out;
        }
        if (ops->init) {
            err->msg[0] = '\0';
            rc = ops->init(pol, cfg->path, e->settings, err);
            if (rc) {
                if (!err->msg[0]) {
                    gv_cfg_fail(err, cfg->path, e->settings ? e->settings : e->name_node,
                                "policy.%s: failed to start (%s)", e->name, gv_rc_str(rc));
                }
                rc = GV_ECONFIG;
                goto out;
            }
        }
        chain->initialized[i] = true;
        if (ops->is_async && ops->evaluate && ops->is_async(pol) && i < GV_RECORD_MAX_POLICIES) {
            chain->async[i] = true;
            chain->has_async = true;
        }
        if (!implemented(ops)) {
            int n =
                snprintf(missing + used, sizeof(missing) - used, "%s%s", used ? ", " : "", e->name);
            if (n > 0 && (size_t)n < sizeof(missing) - used) {
                used += (size_t)n;
            }
        }
        if ((ops->response_json || ops->stream_text) &&
            (!ops->reads_answers || ops->reads_answers(pol))) {
            chain->wants_response = true;
            if (ops->stream_text) {
                chain->has_stream = true;
            }
        }
    }
    for (i = 0; chain->initialized && i < chain->n; i++) {
        const struct gw_policy *pol = &chain->pols[i];
        if (pol->ops->keeps_answer && pol->ops->keeps_answer(pol)) {
            chain->keeps_answer = true;
        }
    }
    if (used) {
        gv_log(GV_LOG_WARN, "chain",
               "configured but not implemented in this build; passing traffic through",
               "policies=\"%s\"", missing);
    }
    if (chain->has_async && !check_only) {
        /* Half the cores: detection must not take the workers' CPU away. */
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        unsigned nt = ncpu > 1 ? (unsigned)(ncpu / 2) : 1u;
        nt = nt > CHAIN_ASYNC_THREADS_MAX ? CHAIN_ASYNC_THREADS_MAX : nt;
        rc = gw_async_pool_create(nt, CHAIN_ASYNC_QUEUE_MAX, &chain->pool);
        if (rc) {
            gv_cfg_fail(err, cfg->path, NULL, "policies: cannot start the async detection threads");
            rc = GV_ECONFIG;
            goto out;
        }
    }
out:
    if (rc) {
        gw_chain_destroy(chain);
        chain = NULL;
    }
    *out = chain;
    return rc;
}

gv_rc gw_chain_create(const struct gw_config *cfg, const char *state_dir, struct gw_chain **out,
                      struct gv_cfg_err *err)
{
    return chain_create(cfg, state_dir, false, out, err);
}

gv_rc gw_chain_create_check(const struct gw_config *cfg, const char *state_dir,
                            struct gw_chain **out, struct gv_cfg_err *err)
{
    return chain_create(cfg, state_dir, true, out, err);
}

void gw_chain_destroy(struct gw_chain *chain)
{
    size_t i;

    if (!chain) {
        return;
    }
    /* Workers drained their jobs before they ended; this only joins threads. */
    gw_async_pool_destroy(chain->pool);
    for (i = chain->n; i-- > 0;) {
        struct gw_policy *pol = &chain->pols[i];
        /* destroy() undoes init(); after a failed init the policy cleaned up itself. */
        if (chain->initialized[i] && pol->ops->destroy) {
            pol->ops->destroy(pol);
        }
        gv_cfg_release(pol->ops->config_map, pol->ctx);
        gv_free(pol->ctx);
        gv_free((char *)pol->name);
        gv_free((char *)pol->state_dir);
    }
    gv_free(chain->pols);
    gv_free(chain->initialized);
    gv_free(chain->async);
    gv_free(chain);
}

size_t gw_chain_size(const struct gw_chain *chain)
{
    return chain ? chain->n : 0;
}

const char *gw_chain_name(const struct gw_chain *chain, size_t i)
{
    if (!chain || i >= chain->n) {
        return NULL;
    }
    return chain->pols[i].name;
}

static void outcome_init(struct gv_policy_outcome *o, const char *name)
{
    /* Runs for every policy of every request: memcpy, not snprintf. */
    size_t n = strnlen(name, sizeof(o->name) - 1);

    memset(o, 0, sizeof(*o));
    memcpy(o->name, name, n);
}

/* Raises a recorded outcome when a later hook (answer scanning) did more
 * than the prompt hook; never lowers BLOCK/ERROR. */
static void outcome_raise(struct gw_req *req, size_t i, enum gv_outcome_action a,
                          const struct gw_verdict *v)
{
    struct gv_policy_outcome *o;
    size_t k;

    if (!req || !req->rec || i >= req->rec->npolicies) {
        return;
    }
    o = &req->rec->policies[i];
    if (o->action == GV_OUTCOME_SKIPPED || o->action == GV_OUTCOME_ERROR) {
        return;
    }
    if (a > o->action) {
        o->action = a;
    }
    if (v) {
        for (k = 0; k < GV_PII_NTYPES; k++) {
            o->pii_counts[k] += v->pii_counts[k];
        }
        if (v->score > o->score) {
            o->score = v->score;
        }
    }
}

static void set_error_code(struct gv_record *rec, const char *code)
{
    if (rec && !rec->error_code[0]) {
        snprintf(rec->error_code, sizeof(rec->error_code), "%s", code);
    }
}

/* A response hook failed: the policy's outcome is ERROR whatever its prompt
 * hook decided, and the request's error code says why the answer was refused. */
static void mark_error(struct gw_req *req, size_t i)
{
    if (req && req->rec && i < req->rec->npolicies) {
        req->rec->policies[i].action = GV_OUTCOME_ERROR;
    }
    set_error_code(req ? req->rec : NULL, "policy_error");
}

bool gw_chain_ready(struct gw_chain *chain, char *why, size_t size)
{
    size_t i;

    for (i = 0; chain && i < chain->n; i++) {
        struct gw_policy *pol = &chain->pols[i];
        if (pol->ops->ready && !pol->ops->ready(pol, why, size)) {
            return false;
        }
    }
    return true;
}

void gw_chain_authenticate(struct gw_chain *chain, struct gw_req *req, struct gw_verdict *out)
{
    size_t i;

    memset(out, 0, sizeof(*out));
    out->action = GW_ACTION_PASS;
    for (i = 0; chain && i < chain->n; i++) {
        struct gw_policy *pol = &chain->pols[i];
        struct gw_verdict v;
        gv_rc rc;

        if (!pol->ops->authenticate) {
            continue;
        }
        memset(&v, 0, sizeof(v));
        rc = pol->ops->authenticate(pol, req, &v);
        if (rc != GV_OK) {
            gv_log(GV_LOG_ERROR, "chain", "policy failed; request refused", "policy=%s rc=%s",
                   pol->name, gv_rc_str(rc));
            out->action = GW_ACTION_BLOCK;
            out->status = 500;
            out->code = "policy_error";
            out->message = "a governance policy failed; the request was refused";
            return;
        }
        if (v.action == GW_ACTION_BLOCK) {
            out->action = GW_ACTION_BLOCK;
            out->status = v.status ? v.status : 401;
            out->code = v.code ? v.code : pol->name;
            out->message = v.message ? v.message : "the request was refused by a governance policy";
            return;
        }
    }
}

/* Every tags() hook in chain order; the first refusal (or failure) is kept in
 * *first and its policy's index in *blocker (chain->n when none refused). */
static void tags_pass(struct gw_chain *chain, struct gw_req *req, struct gw_verdict *first,
                      size_t *blocker)
{
    size_t i;

    *blocker = chain ? chain->n : 0;
    if (!req || !req->rec) {
        return; /* no record, no tags */
    }
    req->tags_checked = true;
    for (i = 0; chain && i < chain->n; i++) {
        struct gw_policy *pol = &chain->pols[i];
        struct gw_verdict v;
        gv_rc rc;

        if (!pol->ops->tags) {
            continue;
        }
        memset(&v, 0, sizeof(v));
        rc = pol->ops->tags(pol, req, &v);
        if (rc != GV_OK || v.action < GW_ACTION_PASS || v.action > GW_ACTION_BLOCK) {
            gv_log(GV_LOG_ERROR, "chain", "policy failed on run tags; request refused",
                   "req=%s policy=%s rc=%s", req && req->rec ? req->rec->request_id : "", pol->name,
                   gv_rc_str(rc ? rc : GV_EINVAL));
            memset(&v, 0, sizeof(v));
            v.action = GW_ACTION_BLOCK;
            v.status = 500;
            v.code = "policy_error";
            v.message = "a governance policy failed; the request was refused";
        }
        if (v.action == GW_ACTION_BLOCK && *blocker == chain->n) {
            *first = v;
            *blocker = i;
        }
    }
}

void gw_chain_evaluate(struct gw_chain *chain, struct gw_req *req, struct gw_verdict *out)
{
    struct gv_record *rec = req ? req->rec : NULL;
    struct gw_verdict tv;
    size_t blocker;
    bool stopped = false;
    uint64_t mono0 = 0, mono = 0, wall0 = 0;
    size_t i;
    size_t k;

    memset(out, 0, sizeof(*out));
    out->action = GW_ACTION_PASS;
    if (rec) {
        rec->npolicies = 0;
    }
    memset(&tv, 0, sizeof(tv));
    tags_pass(chain, req, &tv, &blocker);
    /* A refused tag stops the request before any policy reads it. */
    stopped = chain && blocker < chain->n;
    for (i = 0; chain && i < chain->n; i++) {
        struct gw_policy *pol = &chain->pols[i];
        struct gv_policy_outcome *o = NULL;
        struct gw_verdict v;
        uint64_t t0;
        gv_rc rc;

        if (rec && rec->npolicies < GV_RECORD_MAX_POLICIES) {
            o = &rec->policies[rec->npolicies++];
            outcome_init(o, pol->name);
        }
        if (i == blocker) {
            bool failed = tv.code && strcmp(tv.code, "policy_error") == 0;
            if (o) {
                o->action = failed ? GV_OUTCOME_ERROR : GV_OUTCOME_BLOCK;
                memcpy(o->pii_counts, tv.pii_counts, sizeof(o->pii_counts));
            }
            memcpy(out->pii_counts, tv.pii_counts, sizeof(out->pii_counts));
            out->action = GW_ACTION_BLOCK;
            out->status = tv.status ? tv.status : 403;
            out->code = tv.code ? tv.code : pol->name;
            out->message =
                tv.message ? tv.message : "the request was blocked by a governance policy";
            out->param = tv.param;
            set_error_code(rec, out->code);
            continue;
        }
        if (stopped) {
            if (o) {
                o->action = GV_OUTCOME_SKIPPED;
            }
            continue;
        }
        if (!pol->ops->evaluate || chain->async[i]) {
            continue; /* async: PASS until gw_chain_async_merge says more */
        }
        memset(&v, 0, sizeof(v));
        /* One clock pair per request, then one read per policy: a policy's end is
         * the next one's start, and its wall start (the otlp span) is the first
         * wall reading plus the monotonic time since. Each read was ~1% of a
         * request's own work. */
        if (mono0 == 0) {
            mono0 = mono = gv_mono_us();
            wall0 = gv_wall_at_mono(mono0);
        }
        t0 = mono;
        if (o) {
            o->start_wall_us = wall0 + (t0 - mono0);
        }
        rc = pol->ops->evaluate(pol, req, &v);
        mono = gv_mono_us();
        if (o) {
            o->duration_us = mono - t0;
        }
        if (rc == GV_OK && (v.action < GW_ACTION_PASS || v.action > GW_ACTION_BLOCK)) {
            /* An out-of-range verdict is a policy bug: fail closed like an error. */
            rc = GV_EINVAL;
        }
        if (rc != GV_OK) {
            gv_log(GV_LOG_ERROR, "chain", "policy failed; request refused",
                   "req=%s policy=%s rc=%s", rec ? rec->request_id : "", pol->name, gv_rc_str(rc));
            if (o) {
                o->action = GV_OUTCOME_ERROR;
            }
            memset(out, 0, sizeof(*out));
            out->action = GW_ACTION_BLOCK;
            out->status = 500;
            out->code = "policy_error";
            out->message = "a governance policy failed; the request was refused";
            set_error_code(rec, "policy_error");
            stopped = true;
            continue;
        }
        if (o) {
            /* enum gv_outcome_action mirrors enum gw_action's order. */
            o->action = (enum gv_outcome_action)v.action;
            o->score = v.score;
            memcpy(o->pii_counts, v.pii_counts, sizeof(o->pii_counts));
        }
        for (k = 0; k < GV_PII_NTYPES; k++) {
            out->pii_counts[k] += v.pii_counts[k];
        }
        if (v.action > out->action) {
            out->action = v.action;
            out->score = v.score;
        }
        if (v.action == GW_ACTION_BLOCK) {
            out->status = v.status ? v.status : 403;
            out->code = v.code ? v.code : pol->name;
            out->message = v.message ? v.message : "the request was blocked by a governance policy";
            out->param = v.param;
            set_error_code(rec, out->code);
            stopped = true;
        }
    }
}

bool gw_chain_has_async(const struct gw_chain *chain)
{
    return chain && chain->has_async;
}

/* On a detection thread: each async policy over the job's own copy. */
static void async_run(struct gw_async_job *job)
{
    struct gw_chain_async *a = (struct gw_chain_async *)job;
    struct gw_chain *chain = a->chain;
    size_t i;

    for (i = 0; i < chain->n && i < GV_RECORD_MAX_POLICIES; i++) {
        struct gw_policy *pol = &chain->pols[i];
        uint64_t t0;

        if (!a->run[i]) {
            continue;
        }
        t0 = gv_mono_us();
        a->start_wall_us[i] = gv_wall_us();
        a->rc[i] = pol->ops->evaluate(pol, &a->req, &a->v[i]);
        a->duration_us[i] = gv_mono_us() - t0;
    }
}

struct gw_chain_async *gw_chain_async_start(struct gw_chain *chain, struct gw_req *req,
                                            struct gw_async_inbox *inbox, void *owner)
{
    struct gv_record *rec = req->rec;
    struct gw_chain_async *a;
    bool any = false;
    size_t i;

    if (!chain || !chain->has_async || !chain->pool || !req->body) {
        return NULL;
    }
    a = gv_calloc(1, sizeof(*a));
    for (i = 0; i < chain->n && i < GV_RECORD_MAX_POLICIES; i++) {
        /* Only the ones the chain reached: an earlier BLOCK skipped the rest. */
        if (chain->async[i] && rec && i < rec->npolicies &&
            rec->policies[i].action == GV_OUTCOME_PASS) {
            a->run[i] = true;
            any = true;
        }
    }
    if (!any) {
        gv_free(a);
        return NULL;
    }
    a->chain = chain;
    a->owner = owner;
    a->job.run = async_run;
    a->job.inbox = inbox;
    /* A copy: the loop keeps using (and later frees) the request's own body. */
    if (json_object_deep_copy(req->body, &a->req.body, NULL) != 0) {
        a->req.body = NULL;
    }
    a->model = gv_strdup(req->model ? req->model : "");
    a->req.model = a->model;
    a->req.target = req->target;
    a->req.api_key = "";
    a->req.stream = req->stream;
    if (!a->req.body || !inbox || gw_async_submit(chain->pool, &a->job) != GV_OK) {
        gv_log(GV_LOG_WARN, "chain", "async detection queue full; request not scanned", "req=%s",
               rec ? rec->request_id : "");
        for (i = 0; rec && i < chain->n && i < rec->npolicies; i++) {
            if (a->run[i]) {
                rec->policies[i].action = GV_OUTCOME_SKIPPED;
            }
        }
        json_object_put(a->req.body);
        gv_free(a->model);
        gv_free(a);
        return NULL;
    }
    return a;
}

struct gw_chain_async *gw_chain_async_from_job(struct gw_async_job *job)
{
    return (struct gw_chain_async *)job;
}

void *gw_chain_async_owner(const struct gw_chain_async *a)
{
    return a->owner;
}

void gw_chain_async_merge(struct gw_chain_async *a, struct gw_req *req)
{
    struct gv_record *rec = req ? req->rec : NULL;
    size_t i;

    for (i = 0; rec && i < a->chain->n && i < rec->npolicies; i++) {
        struct gv_policy_outcome *o = &rec->policies[i];
        const struct gw_verdict *v = &a->v[i];

        if (!a->run[i]) {
            continue;
        }
        o->start_wall_us = a->start_wall_us[i];
        o->duration_us = a->duration_us[i];
        if (a->rc[i] != GV_OK) {
            /* Too late to refuse anything: the outcome says the scan failed. */
            gv_log(GV_LOG_ERROR, "chain", "async policy failed", "req=%s policy=%s rc=%s",
                   rec->request_id, a->chain->pols[i].name, gv_rc_str(a->rc[i]));
            o->action = GV_OUTCOME_ERROR;
            continue;
        }
        /* The request went out as it was: at most a flag, whatever came back. */
        o->action = v->action >= GW_ACTION_FLAG  ? GV_OUTCOME_FLAG
                    : v->action == GW_ACTION_LOG ? GV_OUTCOME_LOG
                                                 : GV_OUTCOME_PASS;
        o->score = v->score;
        memcpy(o->pii_counts, v->pii_counts, sizeof(o->pii_counts));
    }
    json_object_put(a->req.body);
    gv_free(a->model);
    gv_free(a);
}

bool gw_chain_wants_response(const struct gw_chain *chain)
{
    return chain && chain->wants_response;
}

bool gw_chain_keeps_answer(const struct gw_chain *chain)
{
    return chain && chain->keeps_answer;
}

gv_rc gw_chain_response_json(struct gw_chain *chain, struct gw_req *req, struct json_object *resp,
                             bool *rewritten)
{
    size_t i;
    gv_rc rc = GV_OK;

    if (rewritten) {
        *rewritten = false;
    }
    for (i = 0; chain && i < chain->n; i++) {
        struct gw_policy *pol = &chain->pols[i];
        struct gw_verdict v;

        if (!pol->ops->response_json) {
            continue;
        }
        memset(&v, 0, sizeof(v));
        rc = pol->ops->response_json(pol, req, resp, &v);
        if (rc == GV_OK && (v.action < GW_ACTION_PASS || v.action > GW_ACTION_BLOCK)) {
            /* An out-of-range verdict is a policy bug: fail closed like an error. */
            rc = GV_EINVAL;
        }
        if (rc != GV_OK) {
            /* The answer may be half rewritten and the later policies have not
             * seen it: the caller refuses it rather than send it unchecked. */
            gv_log(GV_LOG_ERROR, "chain", "response policy failed; answer withheld",
                   "req=%s policy=%s rc=%s", req && req->rec ? req->rec->request_id : "", pol->name,
                   gv_rc_str(rc));
            mark_error(req, i);
            goto out;
        }
        outcome_raise(req, i, (enum gv_outcome_action)v.action, &v);
        if (v.action == GW_ACTION_REDACT && rewritten) {
            *rewritten = true;
        }
    }
out:
    return rc;
}

struct gw_chain_stream *gw_chain_stream_open(struct gw_chain *chain, struct gw_req *req)
{
    struct gw_chain_stream *st = gv_calloc(1, sizeof(*st));

    st->chain = chain;
    st->req = req;
    if (chain && chain->has_stream && chain->n) {
        st->state = gv_calloc(chain->n * CHAIN_SLOTS, sizeof(*st->state));
    }
    gv_buf_init(&st->a, CHAIN_STREAM_BUF_MAX);
    gv_buf_init(&st->b, CHAIN_STREAM_BUF_MAX);
    return st;
}

gv_rc gw_chain_stream_text(struct gw_chain_stream *st, int choice, const char *text, size_t len,
                           bool final, struct gv_buf *out)
{
    return gw_chain_stream_part(st, choice, GW_STREAM_CONTENT, text, len, final, out);
}

gv_rc gw_chain_stream_part(struct gw_chain_stream *st, int choice, int part, const char *text,
                           size_t len, bool final, struct gv_buf *out)
{
    struct gw_chain *chain = st->chain;
    struct gv_buf *in_buf = NULL;
    struct gv_buf *next;
    const char *cur = text;
    size_t curlen = len;
    size_t i, slot;
    gv_rc rc = GV_OK;

    if (!st->state || choice < 0 || choice >= CHAIN_MAX_CHOICES || part < 0 ||
        part >= CHAIN_PARTS) {
        return gv_buf_append(out, text, len);
    }
    slot = (size_t)choice * CHAIN_PARTS + (size_t)part;
    for (i = 0; i < chain->n; i++) {
        struct gw_policy *pol = &chain->pols[i];
        struct gw_verdict v;

        if (!pol->ops->stream_text) {
            continue;
        }
        /* Ping-pong between two buffers: one holds this policy's input, the
         * other receives its output, which becomes the next policy's input. */
        next = in_buf == &st->a ? &st->b : &st->a;
        gv_buf_reset(next);
        memset(&v, 0, sizeof(v));
        rc = pol->ops->stream_text(pol, st->req, &st->state[i * CHAIN_SLOTS + slot], cur, curlen,
                                   final, next, &v);
        if (rc != GV_OK) {
            gv_log(GV_LOG_ERROR, "chain", "stream policy failed", "req=%s policy=%s rc=%s",
                   st->req && st->req->rec ? st->req->rec->request_id : "", pol->name,
                   gv_rc_str(rc));
            mark_error(st->req, i);
            goto out;
        }
        if (v.action >= GW_ACTION_PASS && v.action <= GW_ACTION_BLOCK) {
            outcome_raise(st->req, i, (enum gv_outcome_action)v.action, &v);
        }
        if (v.action == GW_ACTION_REDACT) {
            st->rewritten = true;
        }
        in_buf = next;
        cur = next->data ? next->data : "";
        curlen = next->len;
    }
    rc = gv_buf_append(out, cur, curlen);
out:
    return rc;
}

bool gw_chain_stream_rewritten(const struct gw_chain_stream *st)
{
    return st && st->rewritten;
}

void gw_chain_stream_close(struct gw_chain_stream *st)
{
    size_t i;
    size_t c;

    if (!st) {
        return;
    }
    for (i = 0; st->state && i < st->chain->n; i++) {
        struct gw_policy *pol = &st->chain->pols[i];
        for (c = 0; c < CHAIN_SLOTS; c++) {
            void **slot = &st->state[i * CHAIN_SLOTS + c];
            if (*slot && pol->ops->stream_free) {
                pol->ops->stream_free(pol, *slot);
            }
            *slot = NULL;
        }
    }
    gv_free(st->state);
    gv_buf_free(&st->a);
    gv_buf_free(&st->b);
    gv_free(st);
}

void gw_chain_complete(struct gw_chain *chain, struct gw_req *req, struct gv_record *rec)
{
    struct gw_verdict ignored;
    size_t blocker;
    size_t i;

    if (req && req->rec && !req->tags_checked) {
        /* Refused before the chain ran: its tags are still cleaned. */
        tags_pass(chain, req, &ignored, &blocker);
    }

    /* Cost first, whatever the chain order: an audit-logger listed before
     * cost-tracker must record the same cost the ledger is charged. */
    for (i = 0; chain && i < chain->n; i++) {
        struct gw_policy *pol = &chain->pols[i];
        if (pol->ops->price) {
            pol->ops->price(pol, req, rec);
        }
    }
    for (i = 0; chain && i < chain->n; i++) {
        struct gw_policy *pol = &chain->pols[i];
        if (pol->ops->stamp) {
            pol->ops->stamp(pol, req, rec);
        }
    }
    /* The record is final: packed once here for every copy made of it (the audit
     * node, the emitter's slot), where each used to pack it again. */
    if (req && rec) {
        req->packed = gv_record_pack_scratch(rec);
    }
    for (i = 0; chain && i < chain->n; i++) {
        struct gw_policy *pol = &chain->pols[i];
        if (pol->ops->complete) {
            pol->ops->complete(pol, req, rec);
        }
    }
    /* Per-request state a policy parked in its slot is released through the
     * same hook that frees its stream state. */
    for (i = 0; req && chain && i < chain->n && i < GV_RECORD_MAX_POLICIES; i++) {
        struct gw_policy *pol = &chain->pols[i];
        if (req->policy_state[i] && pol->ops->stream_free) {
            pol->ops->stream_free(pol, req->policy_state[i]);
            req->policy_state[i] = NULL;
        }
    }
}
