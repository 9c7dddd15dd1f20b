/* gateway/policies/pii/pii.c - pii-detector policy: detect, count and redact PII */
/* SPDX-License-Identifier: Apache-2.0 */
#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "core/gv_log.h"
#include "core/gv_mem.h"
#include "gateway/gw_policy.h"
#include "gateway/gw_req.h"
#include "gateway/policies/pii/pii_scan.h"

/* Rewritten texts and streamed hold-back are bounded: a placeholder is at most
 * a few times longer than what it replaces, and a text is at most the body cap. */
#define OUT_MAX (64u * 1024u * 1024u)
#define STREAM_WORK_MAX (4u * 1024u * 1024u)
#define STREAM_CTX 64

enum pii_action { ACT_REDACT = 0, ACT_BLOCK, ACT_FLAG, ACT_LOG };
/* What each configured action makes of a finding. */
static const enum gw_action act_verdict[] = {[ACT_REDACT] = GW_ACTION_REDACT,
                                             [ACT_BLOCK] = GW_ACTION_BLOCK,
                                             [ACT_FLAG] = GW_ACTION_FLAG,
                                             [ACT_LOG] = GW_ACTION_LOG};
enum pii_mode { MODE_SYNC = 0, MODE_ASYNC };

struct pii_ctx {
    int action;
    int mode;
    struct gv_cfg_strlist entities;
    const struct gv_ynode *operators;
    bool scan_responses;
    const char *hash_key;
    /* filled by init */
    uint32_t types;
    struct pii_redact_opts opts;
};

/* Per streamed choice: text not yet sent, and the tail of what was sent, so a
 * cue such as "my name is " in one event still applies to the next one. */
struct pii_stream {
    struct gv_buf pending;
    struct gv_buf work;
    struct gv_buf red;
    struct pii_scan_buf sb;
    char ctx[STREAM_CTX];
    size_t ctx_len;
};

static const char *const actions[] = {"redact", "block", "flag", "log", NULL};
static const char *const modes[] = {"sync", "async", NULL};
static const char *const op_names[] = {"replace", "mask", "hash", NULL};

static const struct gv_cfg_map config_map[] = {
    {"action", GV_CFG_ENUM, offsetof(struct pii_ctx, action), "redact", 0, actions, 0, 0,
     "`redact` replaces each finding with `<ENTITY_TYPE>` before the request is forwarded; "
     "`block` refuses with HTTP 403; `flag` forwards unchanged and records the finding (the "
     "request counts as flagged); `log` forwards unchanged and only records the counts"},
    {"mode", GV_CFG_ENUM, offsetof(struct pii_ctx, mode), "sync", 0, modes, 0, 0,
     "`sync` scans before the request is forwarded; `async` scans after it was forwarded, off the "
     "request path, so the request's latency does not include the detector (only `action: flag` "
     "or `log`; `redact` or `block` with `async` is an error at the key's position). See "
     "[async detection](#async-detection)"},
    {"entities", GV_CFG_STRLIST, offsetof(struct pii_ctx, entities), NULL, 0, NULL, 0, 0,
     "Presidio entity names to detect: `PERSON`, `EMAIL_ADDRESS`, `PHONE_NUMBER`, "
     "`CREDIT_CARD`, `US_SSN`, `IP_ADDRESS`, `IBAN_CODE`, `URL`, `CRYPTO`, `MAC_ADDRESS`, "
     "`US_ITIN`, `UK_NHS`; absent: all"},
    {"operator", GV_CFG_NODE, offsetof(struct pii_ctx, operators), NULL, 0, NULL, 0, 0,
     "(string or mapping) replacement: `replace` (default), `mask` or `hash`, one for all "
     "entities or a mapping `ENTITY_TYPE: operator`; checked when the policy starts"},
    {"scan_responses", GV_CFG_BOOL, offsetof(struct pii_ctx, scan_responses), "false", 0, NULL, 0,
     0, "also redact the upstream's answer, streamed answers included"},
    {"hash_key", GV_CFG_STR, offsetof(struct pii_ctx, hash_key), NULL, 0, NULL, 0, 0,
     "secret for operator `hash` (HMAC-SHA256); absent: a random one per process"},
    {NULL, 0, 0, NULL, 0, NULL, 0, 0, NULL},
};

static int op_parse(const char *s)
{
    int i;

    for (i = 0; op_names[i]; i++) {
        if (strcmp(op_names[i], s) == 0) {
            return i;
        }
    }
    return -1;
}

static gv_rc init_ops(struct pii_ctx *c, const char *path, struct gv_cfg_err *err)
{
    const struct gv_ynode *n = c->operators;
    size_t i;
    int op, t;

    if (!n) {
        return GV_OK;
    }
    if (n->kind == GV_Y_SCALAR) {
        op = op_parse(n->scalar);
        if (op < 0) {
            return gv_cfg_fail(err, path, n,
                               "policy.pii-detector.operator: '%s' is not replace, mask or hash",
                               n->scalar);
        }
        memset(c->opts.op, op, sizeof(c->opts.op));
        return GV_OK;
    }
    if (n->kind != GV_Y_MAP) {
        return gv_cfg_fail(err, path, n,
                           "policy.pii-detector.operator: expected a scalar or a mapping "
                           "ENTITY_TYPE: replace|mask|hash, got a %s",
                           gv_ynode_kind_str(n->kind));
    }
    for (i = 0; i < n->n; i++) {
        const struct gv_ynode *k = n->keys[i], *v = n->items[i];
        t = gv_pii_from_name(k->scalar);
        if (t < 0) {
            return gv_cfg_fail(err, path, k, "policy.pii-detector.operator: unknown entity '%s'",
                               k->scalar);
        }
        if (v->kind != GV_Y_SCALAR || (op = op_parse(v->scalar)) < 0) {
            return gv_cfg_fail(err, path, v,
                               "policy.pii-detector.operator.%s: expected replace, mask or hash",
                               k->scalar);
        }
        c->opts.op[t] = (unsigned char)op;
    }
    return GV_OK;
}

static gv_rc pii_init(struct gw_policy *pol, const char *path, const struct gv_ynode *settings,
                      struct gv_cfg_err *err)
{
    struct pii_ctx *c = pol->ctx;
    gv_rc rc = GV_OK;
    size_t i;

    if (c->mode == MODE_ASYNC && c->action != ACT_FLAG && c->action != ACT_LOG) {
        rc = gv_cfg_fail(err, path, gv_ynode_get(settings, "mode"),
                         "policy.pii-detector.mode: async needs action flag or log (the request "
                         "is forwarded before detection ends, so it cannot be %s)",
                         actions[c->action]);
        goto out;
    }
    if (c->entities.items) {
        c->types = 0;
        for (i = 0; i < c->entities.n; i++) {
            int t = gv_pii_from_name(c->entities.items[i]);
            if (t < 0) {
                rc = gv_cfg_fail(err, path, c->entities.nodes ? c->entities.nodes[i] : NULL,
                                 "policy.pii-detector.entities: unknown entity '%s' (use "
                                 "Presidio names: PERSON, EMAIL_ADDRESS, PHONE_NUMBER, "
                                 "CREDIT_CARD, US_SSN, IP_ADDRESS, IBAN_CODE, URL, ...)",
                                 c->entities.items[i]);
                goto out;
            }
            c->types |= 1u << t;
        }
    }
    else {
        c->types = PII_ALL_TYPES;
    }
    rc = init_ops(c, path, err);
    if (rc) {
        goto out;
    }
    if (c->hash_key && c->hash_key[0]) {
        unsigned int n = 0;
        if (!EVP_Digest(c->hash_key, strlen(c->hash_key), c->opts.key, &n, EVP_sha256(), NULL)) {
            rc = GV_EINVAL;
            goto out;
        }
    }
    else if (RAND_bytes(c->opts.key, (int)sizeof(c->opts.key)) != 1) {
        rc = GV_EIO;
        goto out;
    }
out:
    return rc;
}

struct visit {
    struct gw_policy *pol;
    const struct pii_ctx *c;
    struct gw_req *req;
    struct pii_scan_buf sb;
    uint32_t counts[GV_PII_NTYPES];
    bool found;
    bool rewrite;
};

/* Never the matched text: type, byte offsets and the text's role only. */
static void log_spans(const struct visit *v, const char *where, const struct pii_scan_buf *sb)
{
    size_t i;

    if (GV_LOG_DEBUG > gv_log_level_current) {
        return;
    }
    for (i = 0; i < sb->n; i++) {
        gv_log(GV_LOG_DEBUG, "policy:pii-detector", "pii found",
               "inst=%s req=%s where=%s type=%s "
               "start=%zu end=%zu",
               v->pol->name, v->req && v->req->rec ? v->req->rec->request_id : "", where,
               gv_pii_name(sb->spans[i].type), sb->spans[i].start, sb->spans[i].end);
    }
}

/* One scan buffer per thread, kept between requests. The PERSON tokenizer's word
 * array passes 1 KiB at once, and glibc consolidates its fast bins on every
 * allocation that large: that was once a request. The thread's holder lends its
 * arrays to a scan and gets them back after; a scan inside a scan finds the holder
 * empty and starts from nothing. Arrays grown past SCAN_KEEP_BYTES are freed
 * rather than kept. */
#define SCAN_KEEP_BYTES (64u * 1024u)

static pthread_key_t scan_key;
static pthread_once_t scan_once = PTHREAD_ONCE_INIT;
static bool scan_key_ok;

static void scan_holder_free(void *p)
{
    pii_scan_buf_free(p);
    gv_free(p);
}

static void scan_key_make(void)
{
    scan_key_ok = pthread_key_create(&scan_key, scan_holder_free) == 0;
}

static void scan_buf_take(struct pii_scan_buf *b)
{
    struct pii_scan_buf *h;

    pii_scan_buf_init(b);
    pthread_once(&scan_once, scan_key_make);
    if (scan_key_ok && (h = pthread_getspecific(scan_key)) != NULL) {
        *b = *h;
        pii_scan_buf_init(h);
    }
}

static void scan_buf_give(struct pii_scan_buf *b)
{
    struct pii_scan_buf *h = scan_key_ok ? pthread_getspecific(scan_key) : NULL;

    if (scan_key_ok && !h) {
        h = gv_malloc(sizeof(*h));
        pii_scan_buf_init(h);
        if (pthread_setspecific(scan_key, h) != 0) {
            gv_free(h);
            h = NULL;
        }
    }
    if (h && !h->spans && !h->words &&
        b->cap * sizeof(*b->spans) + b->wcap * PII_SCAN_WORD_BYTES <= SCAN_KEEP_BYTES) {
        *h = *b;
        h->n = 0;
        pii_scan_buf_init(b);
        return;
    }
    pii_scan_buf_free(b);
}

static gv_rc scan_text(struct visit *v, const char *where, const char *text, size_t len,
                       struct gv_buf *rep, bool *replace)
{
    size_t i;
    gv_rc rc;

    rc = pii_scan(text, len, v->c->types, &v->sb);
    if (rc != GV_OK || v->sb.n == 0) {
        goto out;
    }
    log_spans(v, where, &v->sb);
    v->found = true;
    for (i = 0; i < v->sb.n; i++) {
        v->counts[v->sb.spans[i].type]++;
    }
    if (v->rewrite) {
        rc = pii_redact(text, len, v->sb.spans, v->sb.n, &v->c->opts, rep);
        *replace = rc == GV_OK;
    }
out:
    return rc;
}

static gv_rc on_text(void *arg, const char *role, const char *kind, const char *text, size_t len,
                     struct gv_buf *replacement, bool *replace)
{
    (void)kind;
    return scan_text(arg, role, text, len, replacement, replace);
}

static void verdict_from(const struct visit *v, int action, struct gw_verdict *out)
{
    memcpy(out->pii_counts, v->counts, sizeof(out->pii_counts));
    if (!v->found) {
        out->action = GW_ACTION_PASS;
        return;
    }
    gw_verdict_act(
        out, action >= ACT_REDACT && action <= ACT_LOG ? act_verdict[action] : GW_ACTION_REDACT,
        "pii-detector", "The request contains personal data (PII) and was refused by policy.");
}

static gv_rc pii_evaluate(struct gw_policy *pol, struct gw_req *req, struct gw_verdict *out)
{
    const struct pii_ctx *c = pol->ctx;
    struct visit v;
    gv_rc rc;

    memset(&v, 0, sizeof(v));
    v.pol = pol;
    v.c = c;
    v.req = req;
    v.rewrite = c->action == ACT_REDACT;
    scan_buf_take(&v.sb);
    rc = gw_req_foreach_text(req, on_text, &v);
    if (rc == GV_OK) {
        verdict_from(&v, c->action, out);
    }
    scan_buf_give(&v.sb);
    return rc;
}

/* Run tags are names, not prose: only the recognisers that check a
 * structure (and a checksum where there is one) judge them, so a run called
 * "bert-base" is never taken for a person. */
#define TAG_TYPES                                                                                  \
    ((1u << GV_PII_EMAIL_ADDRESS) | (1u << GV_PII_PHONE_NUMBER) | (1u << GV_PII_CREDIT_CARD) |     \
     (1u << GV_PII_US_SSN) | (1u << GV_PII_IBAN_CODE) | (1u << GV_PII_US_ITIN) |                   \
     (1u << GV_PII_UK_NHS))

struct tag_field {
    size_t off;         /* in struct gv_record */
    const char *header; /* as the client sent it */
    const char *message;
};

/* The message names the header; the literal is put together at compile time so the
 * verdict can point at it. */
#define TAG_FIELD(member, header)                                                                  \
    {                                                                                              \
        offsetof(struct gv_record, member), header,                                                \
            "The " header " header contains personal data (an e-mail address, phone number, "      \
            "card or account number); W&B run tags must not (pii-detector)."                       \
    }

static const struct tag_field tag_fields[] = {
    TAG_FIELD(run_id, "X-Wandb-Run-Id"),
    TAG_FIELD(project, "X-Wandb-Project"),
    TAG_FIELD(entity, "X-Wandb-Entity"),
    TAG_FIELD(run_group, "X-Wandb-Run-Group"),
};

/* A run tag becomes a W&B run name, an audit field, a ledger key and a log
 * field, none of which can be redacted afterwards: a tag holding PII is
 * cleared from the record and the request refused, whatever `action` and
 * `entities` say (those choose what to do with prompt text). */
static gv_rc pii_tags(struct gw_policy *pol, struct gw_req *req, struct gw_verdict *out)
{
    struct pii_scan_buf sb;
    size_t i, j;
    gv_rc rc = GV_OK;

    memset(out, 0, sizeof(*out));
    out->action = GW_ACTION_PASS;
    if (!req->rec) {
        return GV_OK;
    }
    scan_buf_take(&sb);
    for (i = 0; i < sizeof(tag_fields) / sizeof(tag_fields[0]); i++) {
        char *tag = (char *)req->rec + tag_fields[i].off;
        if (!tag[0]) {
            continue;
        }
        rc = pii_scan(tag, strlen(tag), TAG_TYPES, &sb);
        if (rc) {
            break;
        }
        if (sb.n == 0) {
            continue;
        }
        for (j = 0; j < sb.n; j++) {
            out->pii_counts[sb.spans[j].type]++;
            gv_log(GV_LOG_INFO, "policy:pii-detector", "run tag holds PII; request refused",
                   "inst=%s req=%s tag=%s type=%s", pol->name, req->rec->request_id,
                   tag_fields[i].header, gv_pii_name(sb.spans[j].type));
        }
        tag[0] = '\0';
        if (out->action != GW_ACTION_BLOCK) {
            gw_verdict_block(out, 400, "pii_in_run_tag", tag_fields[i].message);
            out->param = tag_fields[i].header;
        }
    }
    scan_buf_give(&sb);
    return rc;
}

/* An answer cannot be refused after the fact: block redacts it too; flag and
 * log only record. */
static int answer_action(const struct pii_ctx *c)
{
    return c->action == ACT_FLAG || c->action == ACT_LOG ? c->action : ACT_REDACT;
}

/* Rewrite one string member of obj in place when it holds PII. */
static gv_rc redact_member(struct visit *v, struct json_object *obj, const char *key)
{
    struct json_object *s;
    struct gv_buf rep;
    bool replace = false;
    gv_rc rc;

    if (!json_object_object_get_ex(obj, key, &s) || !json_object_is_type(s, json_type_string)) {
        return GV_OK;
    }
    gv_buf_init(&rep, OUT_MAX);
    rc = scan_text(v, "response", json_object_get_string(s), (size_t)json_object_get_string_len(s),
                   &rep, &replace);
    if (rc == GV_OK && replace) {
        json_object_object_add(obj, key,
                               json_object_new_string_len(rep.data ? rep.data : "", (int)rep.len));
    }
    gv_buf_free(&rep);
    return rc;
}

static bool pii_is_async(const struct gw_policy *pol)
{
    const struct pii_ctx *c = pol->ctx;

    return c->mode == MODE_ASYNC;
}

/* Answers are read only with scan_responses: true. */
static bool pii_reads_answers(const struct gw_policy *pol)
{
    const struct pii_ctx *c = pol->ctx;

    return c->scan_responses;
}

static gv_rc pii_response_json(struct gw_policy *pol, struct gw_req *req, struct json_object *resp,
                               struct gw_verdict *out)
{
    const struct pii_ctx *c = pol->ctx;
    struct json_object *choices;
    struct visit v;
    size_t i, j, n;
    gv_rc rc = GV_OK;

    if (!c->scan_responses || !json_object_object_get_ex(resp, "choices", &choices) ||
        !json_object_is_type(choices, json_type_array)) {
        return GV_OK;
    }
    memset(&v, 0, sizeof(v));
    v.pol = pol;
    v.c = c;
    v.req = req;
    v.rewrite = answer_action(c) == ACT_REDACT;
    scan_buf_take(&v.sb);
    n = json_object_array_length(choices);
    for (i = 0; i < n && rc == GV_OK; i++) {
        struct json_object *ch = json_object_array_get_idx(choices, i);
        struct json_object *msg, *calls;
        if (!json_object_is_type(ch, json_type_object)) {
            continue;
        }
        rc = redact_member(&v, ch, "text");
        if (rc != GV_OK || !json_object_object_get_ex(ch, "message", &msg) ||
            !json_object_is_type(msg, json_type_object)) {
            continue;
        }
        rc = redact_member(&v, msg, "content");
        if (rc == GV_OK && json_object_object_get_ex(msg, "tool_calls", &calls) &&
            json_object_is_type(calls, json_type_array)) {
            for (j = 0; j < json_object_array_length(calls) && rc == GV_OK; j++) {
                struct json_object *fn;
                if (json_object_object_get_ex(json_object_array_get_idx(calls, j), "function",
                                              &fn) &&
                    json_object_is_type(fn, json_type_object)) {
                    rc = redact_member(&v, fn, "arguments");
                }
            }
        }
    }
    if (rc == GV_OK) {
        verdict_from(&v, answer_action(c), out);
    }
    scan_buf_give(&v.sb);
    return rc;
}

static gv_rc pii_stream_text(struct gw_policy *pol, struct gw_req *req, void **state,
                             const char *text, size_t len, bool final, struct gv_buf *out,
                             struct gw_verdict *vd)
{
    const struct pii_ctx *c = pol->ctx;
    struct pii_stream *st = *state;
    struct visit v;
    size_t base, cut, i, k, keep;
    gv_rc rc;

    if (!c->scan_responses) {
        return gv_buf_append(out, text, len);
    }
    if (!st) {
        st = gv_calloc(1, sizeof(*st));
        gv_buf_init(&st->pending, STREAM_WORK_MAX);
        gv_buf_init(&st->work, STREAM_WORK_MAX);
        gv_buf_init(&st->red, OUT_MAX);
        pii_scan_buf_init(&st->sb);
        *state = st;
    }
    memset(&v, 0, sizeof(v));
    v.pol = pol;
    v.c = c;
    v.req = req;
    gv_buf_reset(&st->work);
    rc = gv_buf_append(&st->work, st->ctx, st->ctx_len);
    if (rc == GV_OK) {
        rc = gv_buf_append(&st->work, st->pending.data ? st->pending.data : "", st->pending.len);
    }
    if (rc == GV_OK) {
        rc = gv_buf_append(&st->work, text ? text : "", len);
    }
    if (rc) {
        goto out;
    }
    base = st->ctx_len;
    rc = pii_scan(st->work.data, st->work.len, c->types, &st->sb);
    if (rc) {
        goto out;
    }
    cut = final ? st->work.len : pii_stream_cut(st->work.data, st->work.len);
    if (cut < base) {
        cut = base;
    }
    /* A finding that crosses the cut is held back whole. */
    for (i = 0; i < st->sb.n; i++) {
        if (st->sb.spans[i].start < cut && st->sb.spans[i].end > cut) {
            cut = st->sb.spans[i].start > base ? st->sb.spans[i].start : base;
            break;
        }
    }
    /* Keep the findings inside [base, cut), shifted to the emitted text; one
     * that began in the already-sent context is redacted from base on. */
    for (i = 0, k = 0; i < st->sb.n; i++) {
        struct pii_span sp = st->sb.spans[i];
        if (sp.end <= base || sp.start >= cut || sp.end > cut) {
            continue;
        }
        sp.start = (sp.start > base ? sp.start : base) - base;
        sp.end -= base;
        st->sb.spans[k++] = sp;
        v.counts[sp.type]++;
        v.found = true;
    }
    st->sb.n = k;
    log_spans(&v, "stream", &st->sb);
    gv_buf_reset(&st->red);
    rc = pii_redact(st->work.data + base, cut - base, st->sb.spans,
                    answer_action(c) == ACT_REDACT ? k : 0, &c->opts, &st->red);
    if (rc == GV_OK) {
        rc = gv_buf_append(out, st->red.data ? st->red.data : "", st->red.len);
    }
    if (rc) {
        goto out;
    }
    keep = cut < STREAM_CTX ? cut : STREAM_CTX;
    memcpy(st->ctx, st->work.data + cut - keep, keep);
    st->ctx_len = keep;
    gv_buf_reset(&st->pending);
    rc = gv_buf_append(&st->pending, st->work.data + cut, st->work.len - cut);
    verdict_from(&v, answer_action(c), vd);
out:
    return rc;
}

static void pii_stream_free(struct gw_policy *pol, void *state)
{
    struct pii_stream *st = state;

    (void)pol;
    if (!st) {
        return;
    }
    gv_buf_free(&st->pending);
    gv_buf_free(&st->work);
    gv_buf_free(&st->red);
    pii_scan_buf_free(&st->sb);
    gv_free(st);
}

const struct gw_policy_ops gw_policy_pii = {
    .name = "pii-detector",
    .config_map = config_map,
    .ctx_size = sizeof(struct pii_ctx),
    .flags = GW_POL_PROMPT | GW_POL_RESPONSE,
    .init = pii_init,
    .evaluate = pii_evaluate,
    .tags = pii_tags,
    .response_json = pii_response_json,
    .stream_text = pii_stream_text,
    .reads_answers = pii_reads_answers,
    .is_async = pii_is_async,
    .stream_free = pii_stream_free,
};
