/* exporters/weave/weave_fmt.c - a governance record as a Weave call: pure formatting */
/* SPDX-License-Identifier: Apache-2.0 */
#include "exporters/weave/weave.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/gv_hash.h"
#include "core/gv_mem.h"
#include "core/gv_pii.h"

#define JSON_DEPTH 64

/* UUIDv7 layout over 10 hash bytes: 48-bit ms time, version 7, variant 10. */
static void uuid_v7(const unsigned char *h, uint64_t wall_us, char out[37])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    uint64_t ms = wall_us / 1000u;
    int i, o = 0;

    for (i = 0; i < 6; i++) {
        b[i] = (unsigned char)(ms >> (8 * (5 - i)));
    }
    b[6] = (unsigned char)(0x70u | (h[0] & 0x0fu));
    b[7] = h[1];
    b[8] = (unsigned char)(0x80u | (h[2] & 0x3fu));
    for (i = 9; i < 16; i++) {
        b[i] = h[i - 6];
    }
    for (i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out[o++] = '-';
        }
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 0x0fu];
    }
    out[o] = '\0';
}

static void call_ids(const char *instance_id, uint64_t seq, uint64_t wall_us, char id[37],
                     char tid[37])
{
    uint8_t md[GV_SHA256_LEN];
    char in[128];
    int n =
        snprintf(in, sizeof(in), "kt-weave-call:%s:%" PRIu64, instance_id ? instance_id : "", seq);

    (void)gv_sha256(in, (size_t)(n > 0 ? n : 0), md);
    uuid_v7(md, wall_us, id);
    uuid_v7(md + 16, wall_us, tid);
}

void ex_weave_call_id(const char *instance_id, uint64_t seq, uint64_t start_wall_us, char out[37])
{
    char tid[37];
    call_ids(instance_id, seq, start_wall_us, out, tid);
}

void ex_weave_trace_id(const char *instance_id, uint64_t seq, uint64_t start_wall_us, char out[37])
{
    char id[37];
    call_ids(instance_id, seq, start_wall_us, id, out);
}

void ex_weave_call_in_prepare(struct ex_weave_call_in *in)
{
    call_ids(in->instance_id, in->seq, in->rec->start_wall_us, in->id, in->trace_id);
}

void ex_weave_iso_time(uint64_t wall_us, char out[32])
{
    time_t secs = (time_t)(wall_us / 1000000u);
    struct tm tm;
    size_t n;

    gmtime_r(&secs, &tm);
    n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%06uZ", (unsigned)(wall_us % 1000000u));
}

gv_rc ex_weave_project_id(const char *entity, const char *project, char *out, size_t size)
{
    int n = snprintf(out, size, "%s/%s", entity, project);
    return n < 0 || (size_t)n >= size ? GV_E2BIG : GV_OK;
}

/* A double with a fixed, short text form (json-c's default prints 17 digits). */
static struct json_object *num(double v, int digits)
{
    char b[64];
    snprintf(b, sizeof(b), "%.*g", digits, v);
    return json_object_new_double_s(v, b);
}

/* Any string the server would parse as an object ref gets a visible prefix. */
static struct json_object *guard_str(const char *s, size_t n)
{
    struct json_object *o;
    char *tmp;
    size_t pl = sizeof(EX_WEAVE_REF_PREFIX) - 1, el = sizeof(EX_WEAVE_REF_ESCAPE) - 1;

    if (n < pl || memcmp(s, EX_WEAVE_REF_PREFIX, pl) != 0) {
        return json_object_new_string_len(s, (int)n);
    }
    tmp = gv_malloc(n + el + 1);
    memcpy(tmp, EX_WEAVE_REF_ESCAPE, el);
    memcpy(tmp + el, s, n);
    o = json_object_new_string_len(tmp, (int)(n + el));
    gv_free(tmp);
    return o;
}

static void guard_refs(struct json_object *j);

/* What goes in v's place: a guarded copy when v is a string the server would read as an
 * object ref, else NULL (v stays, its own strings guarded). */
static struct json_object *guard_value(struct json_object *v)
{
    size_t pl = sizeof(EX_WEAVE_REF_PREFIX) - 1;

    if (json_object_is_type(v, json_type_string) &&
        strncmp(json_object_get_string(v), EX_WEAVE_REF_PREFIX, pl) == 0) {
        return guard_str(json_object_get_string(v), (size_t)json_object_get_string_len(v));
    }
    guard_refs(v);
    return NULL;
}

/* Guards every ref-like string inside j, at any depth, in place. */
static void guard_refs(struct json_object *j)
{
    struct json_object *g;
    size_t i, n;

    if (json_object_is_type(j, json_type_array)) {
        n = json_object_array_length(j);
        for (i = 0; i < n; i++) {
            g = guard_value(json_object_array_get_idx(j, i));
            if (g) {
                json_object_array_put_idx(j, i, g);
            }
        }
    }
    else if (json_object_is_type(j, json_type_object)) {
        json_object_object_foreach(j, k, v)
        {
            g = guard_value(v);
            if (g) {
                json_object_object_add(j, k, g);
            }
        }
    }
}

static const char *model_of(const struct gv_record *r)
{
    return r->model[0] ? r->model : "unknown";
}

/* The policy that stopped the request (a block, or a policy failing closed). */
static const char *blocking_policy(const struct gv_record *r)
{
    uint32_t i;

    for (i = 0; i < r->npolicies && i < GV_RECORD_MAX_POLICIES; i++) {
        if (r->policies[i].action == GV_OUTCOME_BLOCK ||
            r->policies[i].action == GV_OUTCOME_ERROR) {
            return r->policies[i].name;
        }
    }
    return r->error_code;
}

/* A comma-separated list (the hello's chain, the record's roles) as a JSON array. */
static struct json_object *csv_array(const char *csv)
{
    struct json_object *arr = json_object_new_array();
    const char *p = csv;

    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        json_object_array_add(arr, json_object_new_string_len(p, (int)n));
        if (!comma) {
            break;
        }
        p = comma + 1;
    }
    return arr;
}

struct json_object *ex_weave_fmt_pack(const struct gv_hello *hello)
{
    struct json_object *pack = json_object_new_object();

    json_object_object_add(pack, "name", json_object_new_string(hello->pack_name));
    json_object_object_add(pack, "version", json_object_new_string(hello->pack_version));
    json_object_object_add(pack, "chain", csv_array(hello->chain));
    return pack;
}

static struct json_object *kt_attributes(const struct ex_weave_call_in *in)
{
    const struct gv_record *r = in->rec;
    struct json_object *kt = json_object_new_object();
    struct json_object *pols = json_object_new_array();
    struct json_object *pii = json_object_new_object();
    uint64_t counts[GV_PII_NTYPES];
    uint32_t i;
    int t;

    memset(counts, 0, sizeof(counts));
    json_object_object_add(kt, "decision", json_object_new_string(gv_decision_str(r->decision)));
    json_object_object_add(kt, "request_id", json_object_new_string(r->request_id));
    json_object_object_add(kt, "principal", json_object_new_string(r->principal));
    json_object_object_add(kt, "team", json_object_new_string(r->team));
    json_object_object_add(kt, "status", json_object_new_int(r->http_status));
    json_object_object_add(kt, "streamed", json_object_new_boolean(r->streamed));
    json_object_object_add(kt, "target", json_object_new_string(r->target));
    if (r->error_code[0]) {
        json_object_object_add(kt, "error_code", json_object_new_string(r->error_code));
    }
    json_object_object_add(kt, "latency_us", json_object_new_uint64(r->latency_total_us));
    json_object_object_add(kt, "upstream_us", json_object_new_uint64(r->latency_upstream_us));
    json_object_object_add(kt, "overhead_us", json_object_new_uint64(r->latency_gateway_us));
    json_object_object_add(kt, "cost_usd", num(r->cost_usd, 10));
    for (i = 0; i < r->npolicies && i < GV_RECORD_MAX_POLICIES; i++) {
        const struct gv_policy_outcome *o = &r->policies[i];
        struct json_object *po = json_object_new_object();
        json_object_object_add(po, "name", json_object_new_string(o->name));
        json_object_object_add(po, "action",
                               json_object_new_string(gv_outcome_action_str(o->action)));
        json_object_object_add(po, "score", num(o->score, 6));
        json_object_array_add(pols, po);
        for (t = 0; t < GV_PII_NTYPES; t++) {
            counts[t] += o->pii_counts[t];
        }
    }
    json_object_object_add(kt, "policies", pols);
    /* Counts by entity type only: values never leave the gateway. */
    for (t = 0; t < GV_PII_NTYPES; t++) {
        if (counts[t]) {
            json_object_object_add(pii, gv_pii_name(t), json_object_new_uint64(counts[t]));
        }
    }
    json_object_object_add(kt, "pii", pii);
    json_object_object_add(kt, "gateway", json_object_new_string(in->instance_id));
    json_object_object_add(kt, "seq", json_object_new_uint64(in->seq));
    json_object_object_add(kt, "pack",
                           in->pack ? json_object_get(in->pack) : ex_weave_fmt_pack(in->hello));
    if (in->policy_ref && *in->policy_ref) {
        json_object_object_add(kt, "policy", json_object_new_string(in->policy_ref));
    }
    return kt;
}

/* Roles only: {"role":r,"content":null} per message, which Weave's chat view
 * still renders as a conversation. */
static struct json_object *shape_messages(const struct gv_record *r)
{
    struct json_object *roles = csv_array(r->roles), *arr = json_object_new_array();
    size_t i, n = json_object_array_length(roles);

    for (i = 0; i < n; i++) {
        struct json_object *m = json_object_new_object();
        json_object_object_add(m, "role", json_object_get(json_object_array_get_idx(roles, i)));
        json_object_object_add(m, "content", NULL);
        json_object_array_add(arr, m);
    }
    json_object_put(roles);
    return arr;
}

static struct json_object *inputs(const struct gv_record *r)
{
    struct json_object *o = json_object_new_object(), *msgs = NULL;
    struct json_tokener *tok;

    json_object_object_add(o, "model", json_object_new_string(model_of(r)));
    /* A blocked prompt's text is never exported, whatever was captured. */
    if (r->content && r->content->request && r->decision != GV_DECISION_BLOCKED) {
        tok = json_tokener_new_ex(JSON_DEPTH);
        if (tok) {
            msgs =
                json_tokener_parse_ex(tok, r->content->request, (int)strlen(r->content->request));
            json_tokener_free(tok);
        }
        if (msgs && !json_object_is_type(msgs, json_type_array)) {
            json_object_put(msgs);
            msgs = NULL;
        }
        if (msgs) {
            guard_refs(msgs);
        }
    }
    json_object_object_add(o, "messages", msgs ? msgs : shape_messages(r));
    json_object_object_add(o, "n_messages", json_object_new_int64((int64_t)r->nmessages));
    if (r->content && r->content->request_truncated && r->decision != GV_DECISION_BLOCKED) {
        json_object_object_add(o, "kt_truncated", json_object_new_boolean(1));
    }
    return o;
}

static struct json_object *usage(const struct gv_record *r)
{
    struct json_object *u = json_object_new_object();

    json_object_object_add(u, "prompt_tokens", json_object_new_uint64(r->tokens_prompt));
    json_object_object_add(u, "completion_tokens", json_object_new_uint64(r->tokens_completion));
    json_object_object_add(u, "total_tokens",
                           json_object_new_uint64(r->tokens_prompt + r->tokens_completion));
    return u;
}

static struct json_object *output(const struct gv_record *r)
{
    struct json_object *o, *choices, *choice, *msg;

    if (r->decision == GV_DECISION_ERROR) {
        return NULL;
    }
    o = json_object_new_object();
    if (r->decision == GV_DECISION_BLOCKED) {
        json_object_object_add(o, "blocked", json_object_new_boolean(1));
        json_object_object_add(o, "policy", json_object_new_string(blocking_policy(r)));
        json_object_object_add(o, "code", json_object_new_string(r->error_code));
        json_object_object_add(o, "status", json_object_new_int(r->http_status));
        return o;
    }
    json_object_object_add(o, "object", json_object_new_string("chat.completion"));
    json_object_object_add(o, "model", json_object_new_string(model_of(r)));
    choices = json_object_new_array();
    choice = json_object_new_object();
    msg = json_object_new_object();
    json_object_object_add(msg, "role", json_object_new_string("assistant"));
    json_object_object_add(msg, "content",
                           r->content && r->content->response
                               ? guard_str(r->content->response, strlen(r->content->response))
                               : NULL);
    json_object_object_add(choice, "index", json_object_new_int(0));
    json_object_object_add(choice, "message", msg);
    json_object_object_add(choice, "finish_reason", NULL);
    json_object_array_add(choices, choice);
    json_object_object_add(o, "choices", choices);
    json_object_object_add(o, "usage", usage(r));
    return o;
}

static struct json_object *exception(const struct ex_weave_call_in *in)
{
    const struct gv_record *r = in->rec;
    char b[160];

    if (r->decision == GV_DECISION_ERROR) {
        snprintf(b, sizeof(b), "kt.UpstreamError: %s (HTTP %d)",
                 r->error_code[0] ? r->error_code : "error", r->http_status);
        return json_object_new_string(b);
    }
    if (r->decision == GV_DECISION_BLOCKED && in->blocked_as_error) {
        snprintf(b, sizeof(b), "kt.Blocked: %s", blocking_policy(r));
        return json_object_new_string(b);
    }
    return NULL;
}

static struct json_object *summary(const struct gv_record *r)
{
    struct json_object *s = json_object_new_object();
    struct json_object *by_model = json_object_new_object();
    struct json_object *u = usage(r);
    struct json_object *row = json_object_new_object();

    /* requests first, like the SDK's LLMUsageSchema rows. */
    json_object_object_add(row, "requests", json_object_new_int(1));
    json_object_object_foreach(u, k, v)
    {
        json_object_object_add(row, k, json_object_get(v));
    }
    json_object_put(u);
    json_object_object_add(by_model, model_of(r), row);
    json_object_object_add(s, "usage", by_model);
    return s;
}

static void ids(const struct ex_weave_call_in *in, char *pid, size_t psize, char id[37],
                char tid[37])
{
    if (ex_weave_project_id(in->entity, in->project, pid, psize) != GV_OK) {
        pid[0] = '\0';
    }
    if (in->id[0] && in->trace_id[0]) {
        memcpy(id, in->id, 37);
        memcpy(tid, in->trace_id, 37);
    }
    else {
        call_ids(in->instance_id, in->seq, in->rec->start_wall_us, id, tid);
    }
}

struct json_object *ex_weave_fmt_start(const struct ex_weave_call_in *in)
{
    const struct gv_record *r = in->rec;
    struct json_object *o = json_object_new_object(), *attrs = json_object_new_object();
    char pid[2 * GV_RUN_TAG_MAX + 2], id[37], tid[37], ts[32], name[256];
    char run[3 * GV_RUN_TAG_MAX + 3];

    ids(in, pid, sizeof(pid), id, tid);
    ex_weave_iso_time(r->start_wall_us, ts);
    snprintf(name, sizeof(name), "%s \xc2\xb7 %s", model_of(r), gv_decision_str(r->decision));
    json_object_object_add(o, "project_id", json_object_new_string(pid));
    json_object_object_add(o, "id", json_object_new_string(id));
    json_object_object_add(o, "trace_id", json_object_new_string(tid));
    json_object_object_add(o, "op_name", json_object_new_string(EX_WEAVE_OP_NAME));
    json_object_object_add(o, "display_name", json_object_new_string(name));
    json_object_object_add(o, "started_at", json_object_new_string(ts));
    json_object_object_add(attrs, "kt", kt_attributes(in));
    json_object_object_add(o, "attributes", attrs);
    json_object_object_add(o, "inputs", inputs(r));
    if (r->run_id[0]) {
        snprintf(run, sizeof(run), "%s/%s/%s", in->entity, in->project, r->run_id);
        json_object_object_add(o, "wb_run_id", json_object_new_string(run));
    }
    return o;
}

struct json_object *ex_weave_fmt_end(const struct ex_weave_call_in *in)
{
    const struct gv_record *r = in->rec;
    struct json_object *o = json_object_new_object();
    char pid[2 * GV_RUN_TAG_MAX + 2], id[37], tid[37], ts[32];

    ids(in, pid, sizeof(pid), id, tid);
    ex_weave_iso_time(r->start_wall_us + r->latency_total_us, ts);
    json_object_object_add(o, "project_id", json_object_new_string(pid));
    json_object_object_add(o, "id", json_object_new_string(id));
    json_object_object_add(o, "ended_at", json_object_new_string(ts));
    json_object_object_add(o, "exception", exception(in));
    json_object_object_add(o, "output", output(r));
    json_object_object_add(o, "summary", summary(r));
    return o;
}

/* Appends objs to out, comma-separated, and drops them. All or nothing: when one does not
 * fit, out is cut back to where it was, so an item is never sent in part. */
static gv_rc append_objs(struct gv_buf *out, struct json_object *const *objs, size_t n)
{
    size_t mark = out->len, i;
    gv_rc rc = GV_OK;

    for (i = 0; i < n && rc == GV_OK; i++) {
        if (i > 0) {
            rc = gv_buf_append_char(out, ',');
        }
        if (rc == GV_OK) {
            rc = ex_wandb_json_append(out, objs[i]);
        }
    }
    if (rc) {
        gv_buf_truncate(out, mark);
    }
    for (i = 0; i < n; i++) {
        json_object_put(objs[i]);
    }
    return rc;
}

gv_rc ex_weave_fmt_upsert_items(const struct ex_weave_call_in *in, struct gv_buf *out)
{
    struct json_object *st = json_object_new_object(), *sreq = json_object_new_object();
    struct json_object *en = json_object_new_object(), *ereq = json_object_new_object();
    struct json_object *const items[] = {st, en};

    json_object_object_add(sreq, "start", ex_weave_fmt_start(in));
    json_object_object_add(st, "mode", json_object_new_string("start"));
    json_object_object_add(st, "req", sreq);
    json_object_object_add(ereq, "end", ex_weave_fmt_end(in));
    json_object_object_add(en, "mode", json_object_new_string("end"));
    json_object_object_add(en, "req", ereq);
    return append_objs(out, items, 2);
}

gv_rc ex_weave_fmt_complete_item(const struct ex_weave_call_in *in, struct gv_buf *out)
{
    struct json_object *o = ex_weave_fmt_start(in), *e = ex_weave_fmt_end(in);

    json_object_object_foreach(e, k, v)
    {
        if (strcmp(k, "project_id") != 0 && strcmp(k, "id") != 0) {
            json_object_object_add(o, k, json_object_get(v));
        }
    }
    json_object_put(e);
    return append_objs(out, &o, 1);
}

gv_rc ex_weave_fmt_policy_obj(const char *project_id, const struct gv_hello *hello,
                              struct gv_buf *out, char *object_id, size_t id_size)
{
    struct json_object *root = json_object_new_object(), *obj = json_object_new_object();
    struct json_object *val = json_object_new_object();
    size_t i, o = 0;

    o = (size_t)snprintf(object_id, id_size, "kt-policy-");
    for (i = 0; hello->pack_name[i] && o + 1 < id_size && o < 128; i++) {
        char c = hello->pack_name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '-';
        object_id[o++] = ok ? c : '-';
    }
    object_id[o] = '\0';
    json_object_object_add(val, "kind", json_object_new_string("kt.policy_pack"));
    json_object_object_add(val, "name", json_object_new_string(hello->pack_name));
    json_object_object_add(val, "version", json_object_new_string(hello->pack_version));
    json_object_object_add(val, "chain", csv_array(hello->chain));
    json_object_object_add(obj, "project_id", json_object_new_string(project_id));
    json_object_object_add(obj, "object_id", json_object_new_string(object_id));
    json_object_object_add(obj, "val", val);
    json_object_object_add(root, "obj", obj);
    return append_objs(out, &root, 1);
}

gv_rc ex_weave_fmt_cost(const char *project_id, const char *model, double in_per_mtok,
                        double out_per_mtok, struct gv_buf *out)
{
    struct json_object *root = json_object_new_object(), *costs = json_object_new_object();
    struct json_object *row = json_object_new_object();

    json_object_object_add(row, "prompt_token_cost", num(in_per_mtok / 1e6, 12));
    json_object_object_add(row, "completion_token_cost", num(out_per_mtok / 1e6, 12));
    json_object_object_add(row, "prompt_token_cost_unit", json_object_new_string("USD"));
    json_object_object_add(row, "completion_token_cost_unit", json_object_new_string("USD"));
    json_object_object_add(row, "provider_id", json_object_new_string("kt"));
    json_object_object_add(costs, model, row);
    json_object_object_add(root, "project_id", json_object_new_string(project_id));
    json_object_object_add(root, "costs", costs);
    return append_objs(out, &root, 1);
}
