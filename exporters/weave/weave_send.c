/* exporters/weave/weave_send.c - outbox to trace server: batches, splits, mode switch, refs */
/* SPDX-License-Identifier: Apache-2.0 */
#include "exporters/weave/weave.h"

#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/gv_hash.h"
#include "core/gv_log.h"
#include "core/gv_mem.h"
#include "core/gv_time.h"

#define MOD "exporter:weave"
#define PROJ_MAX 4096u
#define REFS_MAX 8u
#define PRICES_MAX 64u
#define REF_MAX 512

struct ex_weave_ref {
    char key[65]; /* sha256 hex of the pack's name, version and chain */
    char ref[REF_MAX];
};

struct ex_weave_price {
    char model[128];
    double in, out;
};

struct ex_weave_proj {
    char entity[GV_RUN_TAG_MAX + 1];
    char project[GV_RUN_TAG_MAX + 1];
    _Atomic bool complete_mode; /* the project refuses /call/upsert_batch */
    struct ex_weave_ref refs[REFS_MAX];
    size_t nrefs;
    struct ex_weave_price prices[PRICES_MAX];
    size_t nprices;
};

enum post_res { POST_OK = 0, POST_LATER, POST_TOO_BIG, POST_MODE, POST_REFUSED };

void ex_weave_trace_url(const char *override, const char *wandb_base, char *out, size_t size)
{
    const char *env = getenv("WF_TRACE_SERVER_URL");
    size_t n;

    if (override && *override) {
        snprintf(out, size, "%s", override);
    }
    else if (env && *env) {
        snprintf(out, size, "%s", env);
    }
    else if (wandb_base && *wandb_base && !strstr(wandb_base, "://api.wandb.ai")) {
        /* Dedicated and self-managed servers serve Weave under /traces. */
        n = strlen(wandb_base);
        while (n > 0 && wandb_base[n - 1] == '/') {
            n--;
        }
        snprintf(out, size, "%.*s/traces", (int)n, wandb_base);
    }
    else {
        snprintf(out, size, "https://trace.wandb.ai");
    }
    n = strlen(out);
    while (n > 0 && out[n - 1] == '/') {
        out[--n] = '\0';
    }
}

void ex_weave_sender_init(struct ex_weave_sender *s, const char *trace_url_override)
{
    memset(s, 0, sizeof(*s));
    ex_wandb_api_init(&s->api, NULL);
    ex_weave_trace_url(trace_url_override, getenv("WANDB_BASE_URL"), s->trace_url,
                       sizeof(s->trace_url));
    s->entity = "";
    s->project = "";
    s->batch_calls = 100;
    s->batch_bytes = EX_WEAVE_REQ_BYTES_DEFAULT;
    pthread_mutex_init(&s->err_lock, NULL);
    pthread_mutex_init(&s->proj_lock, NULL);
}

void ex_weave_sender_free(struct ex_weave_sender *s)
{
    ex_wandb_api_free(&s->api);
    gv_free(s->projs);
    s->projs = NULL;
    s->nprojs = 0;
    pthread_mutex_destroy(&s->err_lock);
    pthread_mutex_destroy(&s->proj_lock);
}

static void set_error(struct ex_weave_sender *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_error(struct ex_weave_sender *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    pthread_mutex_lock(&s->err_lock);
    vsnprintf(s->last_error, sizeof(s->last_error), fmt, ap);
    pthread_mutex_unlock(&s->err_lock);
    va_end(ap);
}

static struct ex_weave_proj *proj_get(struct ex_weave_sender *s, const char *entity,
                                      const char *project)
{
    struct ex_weave_proj *p;
    size_t i;

    for (i = 0; i < s->nprojs; i++) {
        if (strcmp(s->projs[i].entity, entity) == 0 && strcmp(s->projs[i].project, project) == 0) {
            return &s->projs[i];
        }
    }
    if (!s->projs) {
        s->projs = gv_calloc(PROJ_MAX, sizeof(*s->projs));
    }
    if (s->nprojs == PROJ_MAX) {
        return NULL; /* the caller uses a scratch entry for this batch */
    }
    p = &s->projs[s->nprojs++];
    memset(p, 0, sizeof(*p));
    snprintf(p->entity, sizeof(p->entity), "%s", entity);
    snprintf(p->project, sizeof(p->project), "%s", project);
    return p;
}

/* The trace server's error: {"error_code","reason"} or FastAPI's {"detail"}. */
static void server_error(struct ex_weave_sender *s, struct ex_wandb_api *api,
                         const struct gv_buf *body, bool *mode)
{
    struct json_tokener *tok = json_tokener_new();
    struct json_object *j = NULL, *v;
    const char *text = NULL;
    char clean[200];
    size_t i;

    *mode = false;
    if (tok && body->len && body->len < 65536) {
        j = json_tokener_parse_ex(tok, body->data, (int)body->len);
    }
    if (tok) {
        json_tokener_free(tok);
    }
    if (j && json_object_object_get_ex(j, "error_code", &v) &&
        json_object_is_type(v, json_type_string) &&
        strcmp(json_object_get_string(v), "CALLS_COMPLETE_MODE_REQUIRED") == 0) {
        *mode = true;
    }
    if (j && json_object_object_get_ex(j, "reason", &v)) {
        text = json_object_get_string(v);
    }
    else if (j && json_object_object_get_ex(j, "detail", &v)) {
        text = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
    }
    snprintf(clean, sizeof(clean), "%s", text ? text : "no error text");
    for (i = 0; clean[i]; i++) {
        if (clean[i] == '"' || clean[i] == '\\' || (unsigned char)clean[i] < 0x20) {
            clean[i] = '\'';
        }
    }
    set_error(s, "%s (HTTP %ld)", clean, api->last_status);
    json_object_put(j);
}

static enum post_res post(struct ex_weave_sender *s, struct ex_wandb_api *api, const char *url,
                          const struct gv_buf *body, struct gv_buf *resp)
{
    long st;
    bool mode = false;
    uint64_t nb = atomic_load(&s->not_before_us);

    if (nb > gv_mono_us()) {
        return POST_LATER; /* another thread was told to wait */
    }
    atomic_fetch_add(&s->requests, 1);
    (void)ex_wandb_api_post(api, url, body->data, body->len, resp);
    st = api->last_status;
    if (api->not_before_us > atomic_load(&s->not_before_us)) {
        atomic_store(&s->not_before_us, api->not_before_us);
    }
    if (st >= 200 && st < 300) {
        return POST_OK;
    }
    if (st == 0) {
        set_error(s, "%s (HTTP 0)", api->last_error);
        return POST_LATER;
    }
    server_error(s, api, resp, &mode);
    if (st == 400 && mode) {
        return POST_MODE;
    }
    if (st == 413) {
        return POST_TOO_BIG;
    }
    /* Rate limits, server errors and credentials W&B may yet accept: the calls
     * stay in the outbox. Anything else is a call the server will never take. */
    if (st == 429 || st >= 500 || st == 401 || st == 403 || st == 408) {
        return POST_LATER;
    }
    return POST_REFUSED;
}

/* Room for a trace server path: the longest is calls/complete with the escaped entity and
 * project (each byte escaped to three). */
#define PATH_MAX_LEN (2 * GV_RUN_TAG_MAX * 3 + 64)

/* POST body to the trace server's path. A body whose formatting failed (fmt_rc) is refused
 * without a request. */
static enum post_res post_to(struct ex_weave_sender *s, struct ex_wandb_api *api, const char *path,
                             gv_rc fmt_rc, const struct gv_buf *body, struct gv_buf *resp)
{
    char url[EX_WANDB_URL_MAX + PATH_MAX_LEN];

    if (fmt_rc != GV_OK) {
        return POST_REFUSED;
    }
    snprintf(url, sizeof(url), "%s%s", s->trace_url, path);
    return post(s, api, url, body, resp);
}

static void pack_key(const struct gv_hello *h, char out[65])
{
    char in[sizeof(h->pack_name) + sizeof(h->pack_version) + sizeof(h->chain) + 4];
    int n = snprintf(in, sizeof(in), "%s\n%s\n%s", h->pack_name, h->pack_version, h->chain);

    (void)gv_sha256_hex(in, (size_t)(n > 0 ? n : 0), out);
}

/* The pack's object ref for this project, publishing it the first time. */
static enum post_res policy_ref(struct ex_weave_sender *s, struct ex_wandb_api *api,
                                struct ex_weave_proj *p, const struct gv_hello *h, const char **ref)
{
    struct gv_buf body, resp;
    struct json_tokener *tok;
    struct json_object *j = NULL, *d;
    char key[65], pid[2 * GV_RUN_TAG_MAX + 2], oid[160];
    enum post_res r;
    size_t i;

    *ref = NULL;
    if (!h->pack_name[0]) {
        return POST_OK;
    }
    pack_key(h, key);
    for (i = 0; i < p->nrefs; i++) {
        if (strcmp(p->refs[i].key, key) == 0) {
            *ref = p->refs[i].ref[0] ? p->refs[i].ref : NULL;
            return POST_OK;
        }
    }
    if (ex_weave_project_id(p->entity, p->project, pid, sizeof(pid)) != GV_OK) {
        return POST_REFUSED;
    }
    gv_buf_init(&body, 0);
    gv_buf_init(&resp, 0);
    r = post_to(s, api, "/obj/create", ex_weave_fmt_policy_obj(pid, h, &body, oid, sizeof(oid)),
                &body, &resp);
    if (r == POST_LATER) {
        goto out;
    }
    if (p->nrefs == REFS_MAX) {
        p->nrefs = 0;
    }
    snprintf(p->refs[p->nrefs].key, sizeof(p->refs[p->nrefs].key), "%s", key);
    p->refs[p->nrefs].ref[0] = '\0';
    tok = json_tokener_new();
    if (r == POST_OK && tok && resp.len < 65536) {
        j = json_tokener_parse_ex(tok, resp.data ? resp.data : "", (int)resp.len);
    }
    if (tok) {
        json_tokener_free(tok);
    }
    if (j && json_object_object_get_ex(j, "digest", &d) &&
        json_object_is_type(d, json_type_string)) {
        /* Formatted aside: entity and project live in the same struct as the ref. */
        char ref_text[REF_MAX];
        snprintf(ref_text, sizeof(ref_text), "weave:///%s/%s/object/%s:%s", p->entity, p->project,
                 oid, json_object_get_string(d));
        memcpy(p->refs[p->nrefs].ref, ref_text, sizeof(ref_text));
    }
    else {
        /* Calls still go out, without the ref. */
        gv_log(GV_LOG_WARN, MOD, "policy pack object not created", "project=%s/%s", p->entity,
               p->project);
    }
    *ref = p->refs[p->nrefs].ref[0] ? p->refs[p->nrefs].ref : NULL;
    p->nrefs++;
    r = POST_OK;
    json_object_put(j);
out:
    gv_buf_free(&body);
    gv_buf_free(&resp);
    return r;
}

/* kt's price for the model in the project's cost table, once per price. */
static enum post_res push_price(struct ex_weave_sender *s, struct ex_wandb_api *api,
                                struct ex_weave_proj *p, const struct gv_record *rec)
{
    struct gv_buf body, resp;
    char pid[2 * GV_RUN_TAG_MAX + 2];
    enum post_res r;
    size_t i;

    if (rec->price_input_per_mtok <= 0 && rec->price_output_per_mtok <= 0) {
        return POST_OK;
    }
    for (i = 0; i < p->nprices; i++) {
        if (strcmp(p->prices[i].model, rec->model) == 0 &&
            p->prices[i].in == rec->price_input_per_mtok &&
            p->prices[i].out == rec->price_output_per_mtok) {
            return POST_OK;
        }
    }
    if (ex_weave_project_id(p->entity, p->project, pid, sizeof(pid)) != GV_OK) {
        return POST_REFUSED;
    }
    gv_buf_init(&body, 0);
    gv_buf_init(&resp, 0);
    r = post_to(s, api, "/cost/create",
                ex_weave_fmt_cost(pid, rec->model, rec->price_input_per_mtok,
                                  rec->price_output_per_mtok, &body),
                &body, &resp);
    gv_buf_free(&body);
    gv_buf_free(&resp);
    if (r == POST_LATER) {
        return r;
    }
    if (r != POST_OK) {
        gv_log(GV_LOG_WARN, MOD, "model price not pushed", "project=%s/%s", p->entity, p->project);
    }
    if (p->nprices == PRICES_MAX) {
        p->nprices = 0;
    }
    snprintf(p->prices[p->nprices].model, sizeof(p->prices[0].model), "%s", rec->model);
    p->prices[p->nprices].in = rec->price_input_per_mtok;
    p->prices[p->nprices].out = rec->price_output_per_mtok;
    p->nprices++;
    return POST_OK;
}

struct group {
    struct ex_weave_proj *proj;
    struct ex_weave_call_in *in; /* the calls, in outbox order */
    size_t n;
};

static enum post_res post_calls(struct ex_weave_sender *s, struct ex_wandb_api *api,
                                struct group *g, size_t from, size_t k)
{
    struct gv_buf body, resp;
    char path[PATH_MAX_LEN];
    enum post_res r = POST_OK;
    size_t i;
    gv_rc rc = GV_OK;

    gv_buf_init(&body, 0);
    gv_buf_init(&resp, 0);
    if (g->proj->complete_mode) {
        char *e = curl_easy_escape(NULL, g->proj->entity, 0);
        char *p = curl_easy_escape(NULL, g->proj->project, 0);
        snprintf(path, sizeof(path), "/v2/%s/%s/calls/complete", e ? e : "", p ? p : "");
        curl_free(e);
        curl_free(p);
    }
    else {
        snprintf(path, sizeof(path), "/call/upsert_batch");
    }
    rc = gv_buf_append_str(&body, "{\"batch\":[");
    for (i = from; i < from + k && rc == GV_OK; i++) {
        if (i > from) {
            rc = gv_buf_append_char(&body, ',');
        }
        if (rc == GV_OK) {
            rc = g->proj->complete_mode ? ex_weave_fmt_complete_item(&g->in[i], &body)
                                        : ex_weave_fmt_upsert_items(&g->in[i], &body);
        }
    }
    if (rc == GV_OK) {
        rc = gv_buf_append_str(&body, "]}");
    }
    if (rc == GV_OK && body.len > s->batch_bytes && k > 1) {
        r = POST_TOO_BIG;
    }
    else {
        r = post_to(s, api, path, rc, &body, &resp);
    }
    gv_buf_free(&body);
    gv_buf_free(&resp);
    if (r == POST_MODE) {
        /* The project was written through calls/complete (maybe by the user's own
         * SDK): from now on it only takes that endpoint. */
        gv_log(GV_LOG_INFO, MOD, "project is in calls-complete mode; switching endpoint",
               "project=%s/%s", g->proj->entity, g->proj->project);
        g->proj->complete_mode = true;
        return post_calls(s, api, g, from, k);
    }
    if (r == POST_TOO_BIG && k > 1) {
        atomic_fetch_add(&s->splits, 1);
        r = post_calls(s, api, g, from, k / 2);
        if (r == POST_OK) {
            r = post_calls(s, api, g, from + k / 2, k - k / 2);
        }
        return r;
    }
    if (r == POST_OK) {
        atomic_fetch_add(&s->sent, k);
    }
    else if (r == POST_TOO_BIG || r == POST_REFUSED) {
        atomic_fetch_add(&s->failed, k);
        gv_log(GV_LOG_WARN, MOD, "trace server refused calls; dropped", "project=%s/%s calls=%zu",
               g->proj->entity, g->proj->project, k);
        r = POST_OK; /* dropped: the outbox moves on */
    }
    return r;
}

/* Entity and project of an item: the request's, else the defaults, else the key's. */
static enum post_res resolve(struct ex_weave_sender *s, struct ex_wandb_api *api,
                             const struct gv_record *rec, const char **entity, const char **project)
{
    enum ex_wandb_res v;

    *project = rec->project[0] ? rec->project : (s->project[0] ? s->project : "uncategorized");
    if (rec->entity[0]) {
        *entity = rec->entity;
        return POST_OK;
    }
    if (s->entity[0]) {
        *entity = s->entity;
        return POST_OK;
    }
    if (!api->viewer_done) {
        v = ex_wandb_api_viewer(api);
        if (v != EX_WANDB_OK) {
            set_error(s, "W&B Viewer failed: %s (HTTP %ld)", api->last_error, api->last_status);
            return POST_LATER;
        }
    }
    *entity = api->viewer_entity;
    return POST_OK;
}

static enum post_res send_items(struct ex_weave_sender *s, struct ex_wandb_api *api,
                                struct ex_weave_item *items, size_t n)
{
    struct ex_weave_call_in *in = gv_calloc(n, sizeof(*in));
    struct ex_weave_proj **projs = gv_calloc(n, sizeof(*projs));
    struct ex_weave_proj **scratch = gv_calloc(n, sizeof(*scratch));
    char(*refs)[REF_MAX] = gv_calloc(n, sizeof(*refs));
    bool *done = gv_calloc(n, sizeof(*done));
    struct group g;
    enum post_res r = POST_OK;
    size_t i, j;

    g.in = gv_calloc(n, sizeof(*g.in));
    for (i = 0; i < n && r == POST_OK; i++) {
        const char *e, *p;
        r = resolve(s, api, &items[i].rec, &e, &p);
        if (r != POST_OK) {
            break;
        }
        pthread_mutex_lock(&s->proj_lock);
        projs[i] = proj_get(s, e, p);
        pthread_mutex_unlock(&s->proj_lock);
        if (!projs[i]) {
            /* Past the table's size: this batch remembers it on its own. */
            scratch[i] = gv_calloc(1, sizeof(*scratch[i]));
            snprintf(scratch[i]->entity, sizeof(scratch[i]->entity), "%s", e);
            snprintf(scratch[i]->project, sizeof(scratch[i]->project), "%s", p);
            for (j = 0; j < i && !projs[i]; j++) {
                if (scratch[j] && strcmp(scratch[j]->entity, e) == 0 &&
                    strcmp(scratch[j]->project, p) == 0) {
                    projs[i] = scratch[j];
                }
            }
            projs[i] = projs[i] ? projs[i] : scratch[i];
        }
        in[i].rec = &items[i].rec;
        in[i].instance_id = items[i].meta.instance_id;
        in[i].seq = items[i].meta.seq;
        in[i].hello = &items[i].hello;
        in[i].blocked_as_error = s->blocked_as_error;
        ex_weave_call_in_prepare(&in[i]);
        /* One pack object per gateway in the batch, shared by its calls. */
        for (j = 0; j < i && !in[i].pack; j++) {
            if (strcmp(items[j].hello.instance_id, items[i].hello.instance_id) == 0 &&
                strcmp(items[j].hello.pack_name, items[i].hello.pack_name) == 0 &&
                strcmp(items[j].hello.pack_version, items[i].hello.pack_version) == 0 &&
                strcmp(items[j].hello.chain, items[i].hello.chain) == 0) {
                in[i].pack = json_object_get(in[j].pack);
            }
        }
        if (!in[i].pack) {
            in[i].pack = ex_weave_fmt_pack(&items[i].hello);
        }
    }
    for (i = 0; i < n && r == POST_OK; i++) {
        if (done[i]) {
            continue;
        }
        g.proj = projs[i];
        g.n = 0;
        for (j = i; j < n && r == POST_OK; j++) {
            const char *ref = NULL;
            if (done[j] || projs[j] != g.proj) {
                continue;
            }
            /* The table's refs and prices change under the lock only; the
             * call keeps its own copy of the ref. */
            pthread_mutex_lock(&s->proj_lock);
            r = policy_ref(s, api, g.proj, in[j].hello, &ref);
            if (r == POST_OK) {
                r = push_price(s, api, g.proj, in[j].rec);
            }
            snprintf(refs[j], REF_MAX, "%s", ref ? ref : "");
            pthread_mutex_unlock(&s->proj_lock);
            in[j].entity = g.proj->entity;
            in[j].project = g.proj->project;
            in[j].policy_ref = refs[j][0] ? refs[j] : NULL;
            g.in[g.n++] = in[j];
            done[j] = true;
        }
        if (r == POST_OK) {
            r = post_calls(s, api, &g, 0, g.n);
        }
    }
    for (i = 0; i < n; i++) {
        json_object_put(in[i].pack);
        gv_free(scratch[i]);
    }
    gv_free(g.in);
    gv_free(done);
    gv_free(refs);
    gv_free(scratch);
    gv_free(projs);
    gv_free(in);
    return r;
}

enum ex_weave_send ex_weave_send_outbox(struct ex_weave_sender *s, struct ex_wandb_api *api,
                                        struct ex_weave_outbox *ob, size_t max_batches)
{
    size_t cap = s->batch_calls ? s->batch_calls : 100;
    struct ex_weave_item *items = gv_calloc(cap, sizeof(*items));
    enum ex_weave_send res = EX_WEAVE_SENT;
    struct ex_weave_range range;
    size_t batches = 0, n, i;

    if (!api) {
        api = &s->api;
    }
    for (;;) {
        enum post_res r;
        if (max_batches && batches >= max_batches) {
            break;
        }
        if (atomic_load(&s->not_before_us) > gv_mono_us()) {
            res = EX_WEAVE_LATER; /* Retry-After: nothing is claimed meanwhile */
            break;
        }
        if (ex_weave_outbox_claim(ob, items, cap, &n, &range) != GV_OK) {
            set_error(s, "cannot read the outbox");
            res = EX_WEAVE_LATER;
            break;
        }
        if (n == 0) {
            if (range.end > range.start) {
                (void)ex_weave_outbox_done(ob, &range); /* hellos only */
                continue;
            }
            break;
        }
        r = send_items(s, api, items, n);
        for (i = 0; i < n; i++) {
            gv_record_release(&items[i].rec);
        }
        if (r != POST_OK) {
            ex_weave_outbox_retry(ob, &range);
            atomic_fetch_add(&s->retries, 1);
            res = EX_WEAVE_LATER;
            break;
        }
        if (ex_weave_outbox_done(ob, &range) != GV_OK) {
            set_error(s, "cannot save the outbox cursor");
            res = EX_WEAVE_LATER;
            break;
        }
        batches++;
    }
    gv_free(items);
    return res;
}
