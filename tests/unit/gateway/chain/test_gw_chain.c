/* tests/unit/gateway/chain/test_gw_chain.c - the chain mechanism with test-only policies */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>
#include <json-c/json.h>
#include <pthread.h>

#include "core/gv_mem.h"
#include "gateway/gw_chain.h"
#include "gateway/policies/gw_policies.h"
#include "tests/unit/gateway/test_registry.h"

/* ---- test-only policies: they exercise the chain, not any product policy ---- */

struct t_ctx {
    long n;
};

static const struct gv_cfg_map t_map[] = {
    {"n", GV_CFG_INT, offsetof(struct t_ctx, n), "1", 0, NULL, 0, 100, NULL},
    {NULL, 0, 0, NULL, 0, NULL, 0, 0, NULL},
};

static int destroyed;
static int completed;
static int freed_states;

/* What each evaluating test policy answers, by policy name. The chain zeroes
 * the verdict before each call, so copying a whole row is what setting its
 * fields one by one would do. bogus answers an action out of range. */
struct canned {
    const char *name;
    struct gw_verdict v;
    gv_rc rc;
};

static const struct canned CANNED[] = {
    {"t-pass", {.action = GW_ACTION_PASS, .score = 0.25}, GV_OK},
    {"t-mode", {.action = GW_ACTION_PASS, .score = 0.25}, GV_OK},
    {"t-flag",
     {.action = GW_ACTION_FLAG, .score = 0.5, .pii_counts = {[GV_PII_EMAIL_ADDRESS] = 2}},
     GV_OK},
    {"t-block", {.action = GW_ACTION_BLOCK, .score = 0.9}, GV_OK},
    {"t-block401",
     {.action = GW_ACTION_BLOCK, .status = 401, .code = "invalid_api_key", .message = "no key"},
     GV_OK},
    {"t-fail", {.action = GW_ACTION_PASS}, GV_EIO},
    {"t-bogus", {.action = (enum gw_action)42}, GV_OK},
};

static gv_rc canned_eval(struct gw_policy *pol, struct gw_req *req, struct gw_verdict *out)
{
    size_t i;

    for (i = 0; i < sizeof(CANNED) / sizeof(CANNED[0]); i++) {
        if (strcmp(CANNED[i].name, pol->ops->name) == 0) {
            *out = CANNED[i].v;
            return CANNED[i].rc;
        }
    }
    fail_msg("no canned verdict for %s", pol->ops->name);
    return GV_EINVAL;
}

static gv_rc fail_init(struct gw_policy *pol, const char *path, const struct gv_ynode *settings,
                       struct gv_cfg_err *err)
{
    return gv_cfg_fail(err, path, settings, "policy.t-init-fail: pattern does not compile");
}

static gv_rc silent_fail_init(struct gw_policy *pol, const char *path,
                              const struct gv_ynode *settings, struct gv_cfg_err *err)
{
    return GV_EIO;
}

static int inits_checking;
static int inits_real;

/* Counts how it was started: for real, or as `kt policy check` does. */
static gv_rc mode_init(struct gw_policy *pol, const char *path, const struct gv_ynode *settings,
                       struct gv_cfg_err *err)
{
    if (pol->check_only) {
        inits_checking++;
    }
    else {
        inits_real++;
    }
    return GV_OK;
}

static void count_destroy(struct gw_policy *pol)
{
    destroyed++;
}

/* stamp() changes the record; complete() only reads it, from the bytes the chain packed
 * after every stamp. */
static void count_stamp(struct gw_policy *pol, struct gw_req *req, struct gv_record *rec)
{
    struct t_ctx *c = pol->ctx;
    (void)req;
    rec->cost_usd += (double)c->n;
}

static double packed_cost = -1.0;

static void count_complete(struct gw_policy *pol, struct gw_req *req, struct gv_record *rec)
{
    static struct gv_record seen;
    (void)pol;
    (void)rec;
    completed++;
    if (req && req->packed) {
        gv_record_unpack(&seen, req->packed->bytes);
        packed_cost = seen.cost_usd;
    }
}

/* Upper-cases everything and marks the answer as rewritten. */
static gv_rc upper_stream(struct gw_policy *pol, struct gw_req *req, void **state, const char *text,
                          size_t len, bool final, struct gv_buf *out, struct gw_verdict *v)
{
    size_t i;
    gv_rc rc = GV_OK;

    for (i = 0; i < len && rc == GV_OK; i++) {
        char c = text[i];
        rc = gv_buf_append_char(out, (char)(c >= 'a' && c <= 'z' ? c - 32 : c));
    }
    v->action = GW_ACTION_REDACT;
    return rc;
}

/* Holds back the last byte of every piece until `final`, like a redactor that
 * waits for a token boundary. */
struct hold {
    char held;
    bool has;
};

static gv_rc hold_stream(struct gw_policy *pol, struct gw_req *req, void **state, const char *text,
                         size_t len, bool final, struct gv_buf *out, struct gw_verdict *v)
{
    struct hold *h = *state;
    gv_rc rc = GV_OK;

    if (!h) {
        h = gv_calloc(1, sizeof(*h));
        *state = h;
    }
    if (h->has && len + (final ? 1 : 0) > 0) {
        rc = gv_buf_append_char(out, h->held);
        h->has = false;
    }
    if (rc == GV_OK && len > 0) {
        if (final) {
            rc = gv_buf_append(out, text, len);
        }
        else {
            rc = gv_buf_append(out, text, len - 1);
            h->held = text[len - 1];
            h->has = true;
        }
    }
    return rc;
}

static void hold_free(struct gw_policy *pol, void *state)
{
    freed_states++;
    gv_free(state);
}

/* Passes stream text on unchanged with a FLAG verdict: seen, not rewritten. */
static gv_rc flag_stream(struct gw_policy *pol, struct gw_req *req, void **state, const char *text,
                         size_t len, bool final, struct gv_buf *out, struct gw_verdict *v)
{
    v->action = GW_ACTION_FLAG;
    return gv_buf_append(out, text, len);
}

/* Emits half of its input and then fails, like a redactor out of scratch. */
static gv_rc fail_stream(struct gw_policy *pol, struct gw_req *req, void **state, const char *text,
                         size_t len, bool final, struct gv_buf *out, struct gw_verdict *v)
{
    gv_rc rc = gv_buf_append(out, text, len / 2);
    return rc ? rc : GV_EIO;
}

/* Replaces the answer's "content" with "[x]" and says REDACT. */
static gv_rc redact_json(struct gw_policy *pol, struct gw_req *req, struct json_object *resp,
                         struct gw_verdict *out)
{
    json_object_object_add(resp, "content", json_object_new_string("[x]"));
    out->action = GW_ACTION_REDACT;
    out->pii_counts[GV_PII_PHONE_NUMBER] = 1;
    return GV_OK;
}

static gv_rc flag_json(struct gw_policy *pol, struct gw_req *req, struct json_object *resp,
                       struct gw_verdict *out)
{
    out->action = GW_ACTION_FLAG;
    return GV_OK;
}

/* Rewrites part of the answer, then fails. */
static gv_rc fail_json(struct gw_policy *pol, struct gw_req *req, struct json_object *resp,
                       struct gw_verdict *out)
{
    json_object_object_add(resp, "half", json_object_new_boolean(1));
    return GV_ENOMEM;
}

static int json_calls;

static gv_rc count_json(struct gw_policy *pol, struct gw_req *req, struct json_object *resp,
                        struct gw_verdict *out)
{
    json_calls++;
    return GV_OK;
}

static const struct gw_policy_ops t_pass = {.name = "t-pass",
                                            .config_map = t_map,
                                            .ctx_size = sizeof(struct t_ctx),
                                            .evaluate = canned_eval,
                                            .destroy = count_destroy};
static const struct gw_policy_ops t_flag = {.name = "t-flag", .evaluate = canned_eval};
static const struct gw_policy_ops t_block = {.name = "t-block", .evaluate = canned_eval};
static const struct gw_policy_ops t_block401 = {.name = "t-block401", .evaluate = canned_eval};
static const struct gw_policy_ops t_fail = {.name = "t-fail", .evaluate = canned_eval};
static const struct gw_policy_ops t_bogus = {.name = "t-bogus", .evaluate = canned_eval};
static const struct gw_policy_ops t_none = {.name = "t-none"};
static const struct gw_policy_ops t_none2 = {.name = "t-none2"};
static const struct gw_policy_ops t_init_fail = {
    .name = "t-init-fail", .init = fail_init, .destroy = count_destroy};
static const struct gw_policy_ops t_silent = {.name = "t-silent", .init = silent_fail_init};
static const struct gw_policy_ops t_count = {.name = "t-count",
                                             .config_map = t_map,
                                             .ctx_size = sizeof(struct t_ctx),
                                             .stamp = count_stamp,
                                             .complete = count_complete};
static const struct gw_policy_ops t_upper = {
    .name = "t-upper", .flags = GW_POL_RESPONSE, .stream_text = upper_stream};
static const struct gw_policy_ops t_hold = {.name = "t-hold",
                                            .flags = GW_POL_RESPONSE,
                                            .stream_text = hold_stream,
                                            .stream_free = hold_free};

static const struct gw_policy_ops t_sflag = {
    .name = "t-sflag", .flags = GW_POL_RESPONSE, .stream_text = flag_stream};
static const struct gw_policy_ops t_sfail = {
    .name = "t-sfail", .flags = GW_POL_RESPONSE, .stream_text = fail_stream};
static const struct gw_policy_ops t_jredact = {
    .name = "t-jredact", .flags = GW_POL_RESPONSE, .response_json = redact_json};
static const struct gw_policy_ops t_jflag = {
    .name = "t-jflag", .flags = GW_POL_RESPONSE, .response_json = flag_json};
static const struct gw_policy_ops t_jfail = {
    .name = "t-jfail", .flags = GW_POL_RESPONSE, .response_json = fail_json};
static const struct gw_policy_ops t_jcount = {
    .name = "t-jcount", .flags = GW_POL_RESPONSE, .response_json = count_json};

/* Run-tag hooks: one refuses the run id, one clears the entity, and an
 * evaluate() that counts, to show nothing is evaluated after a refusal. */
static int evaluated;

static gv_rc counting_eval(struct gw_policy *pol, struct gw_req *req, struct gw_verdict *out)
{
    (void)pol;
    (void)req;
    evaluated++;
    out->action = GW_ACTION_PASS;
    return GV_OK;
}

static gv_rc runid_tags(struct gw_policy *pol, struct gw_req *req, struct gw_verdict *out)
{
    (void)pol;
    if (strchr(req->rec->run_id, '@')) {
        req->rec->run_id[0] = '\0';
        out->action = GW_ACTION_BLOCK;
        out->status = 400;
        out->code = "bad_tag";
        out->param = "X-Wandb-Run-Id";
        out->pii_counts[GV_PII_EMAIL_ADDRESS] = 1;
    }
    return GV_OK;
}

static gv_rc entity_tags(struct gw_policy *pol, struct gw_req *req, struct gw_verdict *out)
{
    (void)pol;
    (void)out;
    req->rec->entity[0] = '\0';
    return GV_OK;
}

static const struct gw_policy_ops t_count_eval = {.name = "t-count-eval",
                                                  .evaluate = counting_eval};
static const struct gw_policy_ops t_runid = {
    .name = "t-runid", .evaluate = counting_eval, .tags = runid_tags};
static const struct gw_policy_ops t_entity = {.name = "t-entity", .tags = entity_tags};

/* Async: evaluated off the caller's thread; says BLOCK to prove the chain
 * never lets an async verdict be more than a flag. */
static pthread_t async_thread;
static int async_calls;

static gv_rc async_eval(struct gw_policy *pol, struct gw_req *req, struct gw_verdict *out)
{
    async_thread = pthread_self();
    async_calls++;
    out->action = GW_ACTION_BLOCK;
    out->score = 0.75;
    out->pii_counts[GV_PII_EMAIL_ADDRESS] = req->body && !req->rec ? 3 : 0;
    return GV_OK;
}

static bool yes_async(const struct gw_policy *pol)
{
    return true;
}

static const struct gw_policy_ops t_async = {
    .name = "t-async", .evaluate = async_eval, .is_async = yes_async};

static const struct gw_policy_ops t_mode = {
    .name = "t-mode", .init = mode_init, .evaluate = canned_eval, .destroy = count_destroy};

static const struct gw_policy_ops *const t_all[] = {
    &t_mode,  &t_pass,   &t_flag,      &t_block,  &t_block401, &t_fail,   &t_bogus,
    &t_none,  &t_none2,  &t_init_fail, &t_silent, &t_count,    &t_upper,  &t_hold,
    &t_sflag, &t_sfail,  &t_jredact,   &t_jflag,  &t_jfail,    &t_jcount, &t_count_eval,
    &t_runid, &t_entity, &t_async,     NULL,
};

/* The chain looks policies up by name in the config's registry: the policies above first,
 * then the gateway's own. */
static const struct gw_policy_ops *t_reg[64];

static const struct gw_policy_ops *const *test_registry(void)
{
    return test_registry_with(t_all, t_reg, sizeof(t_reg) / sizeof(t_reg[0]));
}

/* ---- fixture: a config built by hand around a parsed settings document ---- */

struct fx {
    struct gv_ydoc *doc;
    struct gw_config cfg;
    struct gw_chain_entry entries[GV_RECORD_MAX_POLICIES];
    struct gv_record rec;
    struct gw_req req;
    struct gw_chain *chain;
    struct gw_chain_stream *st; /* fx_stream */
    struct gv_buf out;          /* what the stream wrote */
    struct json_object *resp;   /* fx_answer */
};

/* names: the chain; settings: YAML whose top-level keys are policy names. */
static void fx_init(struct fx *f, const char *const *names, const char *settings)
{
    struct gv_cfg_err err;
    size_t i;

    memset(f, 0, sizeof(*f));
    assert_int_equal(gv_ydoc_load_buf("c.yaml", settings, strlen(settings), &f->doc, &err), GV_OK);
    f->cfg.doc = NULL;
    f->cfg.path = "c.yaml";
    f->cfg.pack_name = "test";
    f->cfg.pack_version = "1";
    f->cfg.pack_enabled = true;
    f->cfg.policies = test_registry();
    for (i = 0; names[i]; i++) {
        f->entries[i].name = names[i];
        f->entries[i].name_node = f->doc->root ? gv_ynode_key(f->doc->root, names[i]) : NULL;
        f->entries[i].settings = f->doc->root ? gv_ynode_get(f->doc->root, names[i]) : NULL;
    }
    f->cfg.nchain = i;
    f->cfg.chain = f->entries;
    f->req.rec = &f->rec;
    destroyed = 0;
    completed = 0;
    freed_states = 0;
}

static gv_rc fx_create(struct fx *f, struct gv_cfg_err *err)
{
    return gw_chain_create(&f->cfg, "/tmp/kt-test-state", &f->chain, err);
}

static void fx_free(struct fx *f)
{
    gw_chain_stream_close(f->st);
    f->st = NULL;
    gv_buf_free(&f->out);
    json_object_put(f->resp);
    f->resp = NULL;
    gw_chain_destroy(f->chain);
    gv_ydoc_destroy(f->doc);
    f->chain = NULL;
    f->doc = NULL;
}

/* fx_init plus a create that must succeed. */
static void fx_open(struct fx *f, const char *const *names, const char *settings)
{
    struct gv_cfg_err err;

    fx_init(f, names, settings);
    assert_int_equal(fx_create(f, &err), GV_OK);
}

/* fx_open, then one evaluation of the prompt into *v. */
static void fx_eval(struct fx *f, const char *const *names, const char *settings,
                    struct gw_verdict *v)
{
    fx_open(f, names, settings);
    gw_chain_evaluate(f->chain, &f->req, v);
}

/* Opens a stream on the open chain, writing into a fresh f->out of at most
 * max bytes. */
static void fx_stream(struct fx *f, size_t max)
{
    gv_buf_free(&f->out);
    gv_buf_init(&f->out, max);
    f->st = gw_chain_stream_open(f->chain, &f->req);
}

/* Streams text for one choice into an emptied f->out, which must succeed;
 * returns what came out. */
static const char *fx_feed(struct fx *f, int choice, const char *text, bool final)
{
    gv_buf_reset(&f->out);
    assert_int_equal(gw_chain_stream_text(f->st, choice, text, strlen(text), final, &f->out),
                     GV_OK);
    return f->out.data;
}

/* Hands the open chain the answer `json`, parsed into f->resp (the fixture frees it), and
 * returns what gw_chain_response_json said. */
static gv_rc fx_answer(struct fx *f, const char *json, bool *rewritten)
{
    json_object_put(f->resp);
    f->resp = json_tokener_parse(json);
    assert_non_null(f->resp);
    return gw_chain_response_json(f->chain, &f->req, f->resp, rewritten);
}

/* Each test gets a zeroed fixture in *state; teardown releases whatever the
 * test left in it, so a failed assertion does not leak the chain. */
static int fx_setup(void **state)
{
    *state = gv_calloc(1, sizeof(struct fx));
    return 0;
}

static int fx_teardown(void **state)
{
    fx_free(*state);
    gv_free(*state);
    return 0;
}

/* ---- tests ---- */

static void test_evaluate_all_pass(void **state)
{
    static const char *const names[] = {"t-pass", "t-flag", "t-none", NULL};
    struct gw_verdict v;
    struct fx *f = *state;

    fx_open(f, names, "t-pass: {n: 5}\n");
    assert_int_equal(gw_chain_size(f->chain), 3);
    assert_string_equal(gw_chain_name(f->chain, 1), "t-flag");
    assert_null(gw_chain_name(f->chain, 3));
    gw_chain_evaluate(f->chain, &f->req, &v);
    assert_int_equal(v.action, GW_ACTION_FLAG);
    assert_true(v.score == 0.5);
    assert_int_equal(v.pii_counts[GV_PII_EMAIL_ADDRESS], 2);
    assert_int_equal(f->rec.npolicies, 3);
    assert_string_equal(f->rec.policies[0].name, "t-pass");
    assert_int_equal(f->rec.policies[0].action, GV_OUTCOME_PASS);
    assert_true(f->rec.policies[0].score == 0.25);
    assert_int_equal(f->rec.policies[1].action, GV_OUTCOME_FLAG);
    assert_int_equal(f->rec.policies[1].pii_counts[GV_PII_EMAIL_ADDRESS], 2);
    assert_int_equal(f->rec.policies[2].action, GV_OUTCOME_PASS);
    assert_string_equal(f->rec.error_code, "");
    fx_free(f);
    assert_int_equal(destroyed, 1);
}

static void test_tags_refusal_stops_before_any_evaluate(void **state)
{
    static const char *const names[] = {"t-count-eval", "t-runid", "t-entity", NULL};
    struct gw_verdict v;
    struct fx *f = *state;

    fx_open(f, names, "{}\n");
    evaluated = 0;
    snprintf(f->rec.run_id, sizeof(f->rec.run_id), "jane@example.com");
    snprintf(f->rec.entity, sizeof(f->rec.entity), "root-team");
    gw_chain_evaluate(f->chain, &f->req, &v);
    assert_int_equal(v.action, GW_ACTION_BLOCK);
    assert_int_equal(v.status, 400);
    assert_string_equal(v.code, "bad_tag");
    assert_string_equal(v.param, "X-Wandb-Run-Id");
    assert_int_equal(v.pii_counts[GV_PII_EMAIL_ADDRESS], 1);
    /* every tags() hook ran, even after the refusal; no evaluate() did */
    assert_string_equal(f->rec.run_id, "");
    assert_string_equal(f->rec.entity, "");
    assert_int_equal(evaluated, 0);
    assert_int_equal(f->rec.policies[0].action, GV_OUTCOME_SKIPPED);
    assert_int_equal(f->rec.policies[1].action, GV_OUTCOME_BLOCK);
    assert_int_equal(f->rec.policies[2].action, GV_OUTCOME_SKIPPED);
    assert_string_equal(f->rec.error_code, "bad_tag");

    /* Tags that pass: the chain evaluates as usual. */
    memset(&f->rec, 0, sizeof(f->rec));
    f->req.tags_checked = false;
    snprintf(f->rec.run_id, sizeof(f->rec.run_id), "run-1");
    gw_chain_evaluate(f->chain, &f->req, &v);
    assert_int_equal(v.action, GW_ACTION_PASS);
    assert_int_equal(evaluated, 2);
    assert_string_equal(f->rec.run_id, "run-1");

    /* A request refused before the chain ran: complete() cleans its tags. */
    memset(&f->rec, 0, sizeof(f->rec));
    f->req.tags_checked = false;
    snprintf(f->rec.run_id, sizeof(f->rec.run_id), "jane@example.com");
    snprintf(f->rec.entity, sizeof(f->rec.entity), "root-team");
    gw_chain_complete(f->chain, &f->req, &f->rec);
    assert_string_equal(f->rec.run_id, "");
    assert_string_equal(f->rec.entity, "");
}

/* Chains whose evaluation refuses the request: the answer, and each policy's outcome in the
 * record, the ones after the refusal skipped. message NULL: any, as long as there is one;
 * score < 0: the refusing policy's score is not checked. */
static const struct {
    const char *name;
    const char *chain[4];
    int status;
    const char *code;
    const char *message;
    size_t refuser;
    double score;
    enum gv_outcome_action outcomes[3];
} REFUSE_ROWS[] = {
    {"block skips the rest",
     {"t-flag", "t-block", "t-pass", NULL},
     403,
     "t-block",
     NULL,
     1,
     0.9,
     {GV_OUTCOME_FLAG, GV_OUTCOME_BLOCK, GV_OUTCOME_SKIPPED}},
    {"block keeps the policy's status",
     {"t-block401", "t-block", NULL},
     401,
     "invalid_api_key",
     "no key",
     0,
     -1,
     {GV_OUTCOME_BLOCK, GV_OUTCOME_SKIPPED}},
    {"policy error fails closed",
     {"t-pass", "t-fail", "t-flag", NULL},
     500,
     "policy_error",
     NULL,
     1,
     -1,
     {GV_OUTCOME_PASS, GV_OUTCOME_ERROR, GV_OUTCOME_SKIPPED}},
    /* An out-of-range verdict is treated as a failure too. */
    {"out-of-range verdict fails closed",
     {"t-bogus", "t-pass", NULL},
     500,
     "policy_error",
     NULL,
     0,
     -1,
     {GV_OUTCOME_ERROR, GV_OUTCOME_SKIPPED}},
};

static void test_evaluate_refusals(void **state)
{
    struct gw_verdict v;
    struct fx *f = *state;
    size_t i, p;

    for (i = 0; i < sizeof(REFUSE_ROWS) / sizeof(REFUSE_ROWS[0]); i++) {
        print_message("row: %s\n", REFUSE_ROWS[i].name);
        fx_eval(f, REFUSE_ROWS[i].chain, "{}", &v);
        assert_int_equal(v.action, GW_ACTION_BLOCK);
        assert_int_equal(v.status, REFUSE_ROWS[i].status);
        assert_string_equal(v.code, REFUSE_ROWS[i].code);
        if (REFUSE_ROWS[i].message) {
            assert_string_equal(v.message, REFUSE_ROWS[i].message);
        }
        else {
            assert_non_null(v.message);
        }
        assert_string_equal(f->rec.error_code, REFUSE_ROWS[i].code);
        for (p = 0; REFUSE_ROWS[i].chain[p]; p++) {
            assert_string_equal(f->rec.policies[p].name, REFUSE_ROWS[i].chain[p]);
            assert_int_equal(f->rec.policies[p].action, REFUSE_ROWS[i].outcomes[p]);
        }
        assert_int_equal(f->rec.npolicies, p);
        if (REFUSE_ROWS[i].score >= 0) {
            assert_true(f->rec.policies[REFUSE_ROWS[i].refuser].score == REFUSE_ROWS[i].score);
        }
        fx_free(f);
    }
}

static void test_create_pack_disabled(void **state)
{
    static const char *const names[] = {"t-block", NULL};
    struct gv_cfg_err err;
    struct gw_verdict v;
    struct fx *f = *state;

    fx_init(f, names, "{}");
    f->cfg.pack_enabled = false;
    assert_int_equal(fx_create(f, &err), GV_OK);
    assert_int_equal(gw_chain_size(f->chain), 0);
    gw_chain_evaluate(f->chain, &f->req, &v);
    assert_int_equal(v.action, GW_ACTION_PASS);
    assert_int_equal(f->rec.npolicies, 0);
}

static void test_create_config_errors(void **state)
{
    static const char *const names[] = {"t-pass", NULL};
    static const char *const initf[] = {"t-pass", "t-init-fail", NULL};
    static const char *const silent[] = {"t-silent", NULL};
    static const char *const unknown[] = {"t-nope", NULL};
    struct gv_cfg_err err;
    struct fx *f = *state;

    fx_init(f, names, "t-pass: {n: 500}\n");
    assert_int_equal(fx_create(f, &err), GV_ECONFIG);
    assert_null(f->chain);
    assert_string_equal(err.msg, "c.yaml:1:13: policy.t-pass.n: 500 is out of range [0, 100]");
    fx_free(f);

    /* init's own positioned message is kept; destroy is owed only after a
     * successful init, so just t-pass is destroyed. */
    fx_init(f, initf, "t-pass: {n: 2}\nt-init-fail: {}\n");
    assert_int_equal(fx_create(f, &err), GV_ECONFIG);
    assert_string_equal(err.msg, "c.yaml:2:14: policy.t-init-fail: pattern does not compile");
    assert_int_equal(destroyed, 1);
    fx_free(f);

    fx_init(f, silent, "t-silent: {}\n");
    assert_int_equal(fx_create(f, &err), GV_ECONFIG);
    assert_string_equal(err.msg, "c.yaml:1:11: policy.t-silent: failed to start (i/o error)");
    fx_free(f);

    fx_init(f, unknown, "t-nope: {}\n");
    assert_int_equal(fx_create(f, &err), GV_ECONFIG);
    assert_string_equal(err.msg, "c.yaml:1:1: policies.chain: unknown policy 't-nope'");
}

/* Response hooks alone do not make the chain read answers: the instance's
 * settings decide (pii-detector only with scan_responses), so the relay can
 * pass answers on unparsed. */
static void test_reads_answers_follows_settings(void **state)
{
    static const char *const names[] = {"pii-detector", NULL};
    struct fx *f = *state;

    fx_open(f, names, "pii-detector: {action: redact}\n");
    assert_false(gw_chain_wants_response(f->chain));
    fx_free(f);

    fx_open(f, names, "pii-detector: {action: redact, scan_responses: true}\n");
    assert_true(gw_chain_wants_response(f->chain));
}

static void test_stream_text_pipes_in_order(void **state)
{
    static const char *const names[] = {"t-pass", "t-upper", "t-hold", NULL};
    struct gw_verdict v;
    struct fx *f = *state;

    fx_open(f, names, "{}");
    assert_true(gw_chain_wants_response(f->chain));
    gw_chain_evaluate(f->chain, &f->req, &v);
    fx_stream(f, 1024);

    assert_string_equal(fx_feed(f, 0, "hello", false), "HELL");
    /* Choice 1 has its own held-back state. */
    assert_string_equal(fx_feed(f, 1, "ab", false), "A");
    assert_string_equal(fx_feed(f, 0, " world", false), "O WORL");
    assert_string_equal(fx_feed(f, 0, "", true), "D");
    /* Beyond the choice bound text passes through untouched. */
    assert_string_equal(fx_feed(f, 99, "raw", false), "raw");
    assert_string_equal(fx_feed(f, -1, "neg", true), "neg");

    /* The rewriting stream policy raised its recorded outcome. */
    assert_int_equal(f->rec.policies[1].action, GV_OUTCOME_REDACT);
    assert_int_equal(f->rec.policies[0].action, GV_OUTCOME_PASS);
    gw_chain_stream_close(f->st);
    f->st = NULL;
    assert_int_equal(freed_states, 2);
}

/* A choice's refusal and each tool call's arguments are streams of their own:
 * what one holds back never mixes with another part's text. */
static void test_stream_parts_have_their_own_state(void **state)
{
    static const char *const names[] = {"t-upper", "t-hold", NULL};
    struct gw_verdict v;
    struct fx *f = *state;

    fx_eval(f, names, "{}", &v);
    fx_stream(f, 1024);
    assert_string_equal(fx_feed(f, 0, "hello", false), "HELL");
    gv_buf_reset(&f->out);
    assert_int_equal(gw_chain_stream_part(f->st, 0, GW_STREAM_CALL0, "{\"a", 3, false, &f->out),
                     GV_OK);
    assert_string_equal(f->out.data, "{\"");
    gv_buf_reset(&f->out);
    assert_int_equal(gw_chain_stream_part(f->st, 0, GW_STREAM_CALL0 + 1, "xy", 2, false, &f->out),
                     GV_OK);
    assert_string_equal(f->out.data, "X");
    gv_buf_reset(&f->out);
    assert_int_equal(gw_chain_stream_part(f->st, 0, GW_STREAM_REFUSAL, "no", 2, true, &f->out),
                     GV_OK);
    assert_string_equal(f->out.data, "NO");
    gv_buf_reset(&f->out);
    assert_int_equal(gw_chain_stream_part(f->st, 0, GW_STREAM_CALL0, "\"}", 2, true, &f->out),
                     GV_OK);
    assert_string_equal(f->out.data, "A\"}");
    assert_string_equal(fx_feed(f, 0, "", true), "O");
    /* Past the last tool call the chain keeps state for, text passes untouched. */
    gv_buf_reset(&f->out);
    assert_int_equal(gw_chain_stream_part(f->st, 0, GW_STREAM_CALL0 + GW_CHAIN_STREAM_CALLS, "raw",
                                          3, false, &f->out),
                     GV_OK);
    assert_string_equal(f->out.data, "raw");
    gw_chain_stream_close(f->st);
    f->st = NULL;
    assert_int_equal(freed_states, 4);
}

static void test_stream_text_output_cap(void **state)
{
    static const char *const names[] = {"t-upper", NULL};
    struct fx *f = *state;

    fx_open(f, names, "{}");
    fx_stream(f, 4);
    assert_int_equal(gw_chain_stream_text(f->st, 0, "toolong", 7, false, &f->out), GV_E2BIG);
}

static void test_stream_without_stream_policies(void **state)
{
    static const char *const names[] = {"t-pass", NULL};
    struct fx *f = *state;

    fx_open(f, names, "{}");
    assert_false(gw_chain_wants_response(f->chain));
    fx_stream(f, 0);
    assert_string_equal(fx_feed(f, 0, "as is", false), "as is");
}

static void test_stream_rewritten_only_on_redact(void **state)
{
    static const char *const flag_names[] = {"t-pass", "t-sflag", NULL};
    static const char *const upper_names[] = {"t-sflag", "t-upper", NULL};
    struct gw_verdict v;
    struct fx *f = *state;

    fx_eval(f, flag_names, "{}", &v);
    fx_stream(f, 1024);
    assert_false(gw_chain_stream_rewritten(f->st));
    assert_string_equal(fx_feed(f, 0, "abc", true), "abc");
    /* A flag is recorded but the text went out as the model wrote it. */
    assert_false(gw_chain_stream_rewritten(f->st));
    assert_int_equal(f->rec.policies[1].action, GV_OUTCOME_FLAG);
    fx_free(f);

    fx_eval(f, upper_names, "{}", &v);
    fx_stream(f, 1024);
    assert_string_equal(fx_feed(f, 0, "abc", false), "ABC");
    assert_true(gw_chain_stream_rewritten(f->st));
    assert_false(gw_chain_stream_rewritten(NULL));
}

static void test_stream_text_policy_error_fails_closed(void **state)
{
    static const char *const names[] = {"t-pass", "t-sfail", "t-upper", NULL};
    struct gw_verdict v;
    struct fx *f = *state;

    fx_eval(f, names, "{}", &v);
    assert_int_equal(v.action, GW_ACTION_PASS);
    fx_stream(f, 1024);
    assert_int_equal(gw_chain_stream_text(f->st, 0, "secret", 6, false, &f->out), GV_EIO);
    /* Nothing of the failed piece reaches out, not even what the failing
     * policy emitted before it failed; the later policy never saw it. */
    assert_int_equal(f->out.len, 0);
    assert_false(gw_chain_stream_rewritten(f->st));
    assert_int_equal(f->rec.policies[1].action, GV_OUTCOME_ERROR);
    assert_int_equal(f->rec.policies[2].action, GV_OUTCOME_PASS);
    assert_string_equal(f->rec.error_code, "policy_error");
}

static void test_response_json_reports_rewrite(void **state)
{
    static const char *const names[] = {"t-pass", "t-jflag", "t-jredact", NULL};
    struct gw_verdict v;
    bool rewritten = true;
    struct fx *f = *state;

    fx_open(f, names, "{}");
    assert_true(gw_chain_wants_response(f->chain));
    gw_chain_evaluate(f->chain, &f->req, &v);
    assert_int_equal(fx_answer(f, "{\"content\":\"call 555-0100\"}", &rewritten), GV_OK);
    assert_true(rewritten);
    assert_string_equal(json_object_to_json_string_ext(f->resp, JSON_C_TO_STRING_PLAIN),
                        "{\"content\":\"[x]\"}");
    assert_int_equal(f->rec.policies[1].action, GV_OUTCOME_FLAG);
    assert_int_equal(f->rec.policies[2].action, GV_OUTCOME_REDACT);
    assert_int_equal(f->rec.policies[2].pii_counts[GV_PII_PHONE_NUMBER], 1);
    /* NULL is allowed for callers that do not care. */
    assert_int_equal(gw_chain_response_json(f->chain, &f->req, f->resp, NULL), GV_OK);
}

static void test_response_json_flag_is_not_rewrite(void **state)
{
    static const char *const names[] = {"t-jflag", NULL};
    struct gw_verdict v;
    bool rewritten = true;
    struct fx *f = *state;

    fx_eval(f, names, "{}", &v);
    assert_int_equal(fx_answer(f, "{}", &rewritten), GV_OK);
    assert_false(rewritten);
}

static void test_response_json_policy_error_fails_closed(void **state)
{
    static const char *const names[] = {"t-jredact", "t-jfail", "t-jcount", NULL};
    struct gw_verdict v;
    bool rewritten = false;
    struct fx *f = *state;

    fx_eval(f, names, "{}", &v);
    json_calls = 0;
    assert_int_equal(fx_answer(f, "{}", &rewritten), GV_ENOMEM);
    /* The walk stopped at the failure: the later policy never saw the answer. */
    assert_int_equal(json_calls, 0);
    assert_int_equal(f->rec.policies[0].action, GV_OUTCOME_REDACT);
    assert_int_equal(f->rec.policies[1].action, GV_OUTCOME_ERROR);
    assert_string_equal(f->rec.error_code, "policy_error");
}

static void test_complete_in_order(void **state)
{
    static const char *const names[] = {"t-count", "t-pass", "t-hold", NULL};
    struct fx *f = *state;
    void *parked;

    fx_open(f, names, "t-count: {n: 7}\n");
    parked = gv_calloc(1, sizeof(struct hold));
    f->req.policy_state[2] = parked;
    packed_cost = -1.0;
    gw_chain_complete(f->chain, &f->req, &f->rec);
    assert_int_equal(completed, 1);
    assert_true(f->rec.cost_usd == 7.0);
    /* complete() read the record packed once it was final: the stamp is in it. */
    assert_non_null(f->req.packed);
    assert_true(packed_cost == 7.0);
    /* Per-request state parked by a policy is released through its hook. */
    assert_null(f->req.policy_state[2]);
    assert_int_equal(freed_states, 1);
}

static void test_create_check_sets_check_only(void **state)
{
    static const char *const names[] = {"t-mode", "t-mode", NULL};
    struct gv_cfg_err err;
    struct fx *f = *state;

    fx_init(f, names, "t-mode: {}\n");
    inits_checking = 0;
    inits_real = 0;
    assert_int_equal(gw_chain_create_check(&f->cfg, "/tmp/kt-test-state", &f->chain, &err), GV_OK);
    assert_int_equal(gw_chain_size(f->chain), 2);
    assert_int_equal(inits_checking, 2);
    assert_int_equal(inits_real, 0);
    gw_chain_destroy(f->chain);
    assert_int_equal(destroyed, 2);
    f->chain = NULL;
    /* The ordinary create never sets it. */
    assert_int_equal(fx_create(f, &err), GV_OK);
    assert_int_equal(inits_checking, 2);
    assert_int_equal(inits_real, 2);
}

/* Every test runs on its own fresh fixture. */
#define FX_TEST(t) cmocka_unit_test_setup_teardown(t, fx_setup, fx_teardown)

static struct gw_async_job *came_back;

static void on_back(struct gw_async_job *job, void *arg)
{
    came_back = job;
    event_base_loopbreak(arg);
}

static void test_async_runs_after_evaluate_on_another_thread(void **state)
{
    static const char *const names[] = {"t-pass", "t-async", NULL};
    struct gv_cfg_err err;
    struct gw_verdict v;
    struct gw_async_inbox *inbox = NULL;
    struct gw_chain_async *a;
    struct event_base *base = event_base_new();
    int owner;
    struct fx f;

    (void)state;
    fx_init(&f, names, "{}");
    assert_int_equal(fx_create(&f, &err), GV_OK);
    assert_true(gw_chain_has_async(f.chain));
    async_calls = 0;
    f.req.body = json_tokener_parse("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}");
    gw_chain_evaluate(f.chain, &f.req, &v);
    /* Before forwarding: not run, PASS, nothing found yet. */
    assert_int_equal(async_calls, 0);
    assert_int_equal(v.action, GW_ACTION_PASS);
    assert_int_equal(f.rec.npolicies, 2);
    assert_int_equal(f.rec.policies[1].action, GV_OUTCOME_PASS);
    assert_int_equal(gw_async_inbox_create(base, on_back, base, &inbox), GV_OK);
    came_back = NULL;
    a = gw_chain_async_start(f.chain, &f.req, inbox, &owner);
    assert_non_null(a);
    assert_int_equal(gw_async_inbox_pending(inbox), 1);
    while (!came_back) {
        event_base_loop(base, EVLOOP_ONCE);
    }
    assert_ptr_equal(gw_chain_async_from_job(came_back), a);
    assert_ptr_equal(gw_chain_async_owner(a), &owner);
    assert_int_equal(gw_async_inbox_pending(inbox), 0);
    assert_int_equal(async_calls, 1);
    assert_false(pthread_equal(async_thread, pthread_self()));
    gw_chain_async_merge(a, &f.req);
    assert_int_equal(f.rec.policies[1].action, GV_OUTCOME_FLAG);
    assert_true(f.rec.policies[1].score == 0.75);
    assert_int_equal(f.rec.policies[1].pii_counts[GV_PII_EMAIL_ADDRESS], 3);
    assert_string_equal(f.rec.error_code, "");
    gw_async_inbox_drain_destroy(inbox);
    event_base_free(base);
    json_object_put(f.req.body);
    fx_free(&f);
}

static void test_async_skipped_after_block(void **state)
{
    static const char *const names[] = {"t-block", "t-async", NULL};
    struct gv_cfg_err err;
    struct gw_verdict v;
    struct fx f;

    (void)state;
    fx_init(&f, names, "{}");
    assert_int_equal(fx_create(&f, &err), GV_OK);
    f.req.body = json_object_new_object();
    gw_chain_evaluate(f.chain, &f.req, &v);
    assert_int_equal(f.rec.policies[1].action, GV_OUTCOME_SKIPPED);
    assert_null(gw_chain_async_start(f.chain, &f.req, NULL, NULL));
    json_object_put(f.req.body);
    fx_free(&f);
}

/* A check-only chain starts no threads, async or not. */
static void test_async_check_only_starts_nothing(void **state)
{
    static const char *const names[] = {"t-async", NULL};
    struct gv_cfg_err err;
    struct fx f;

    (void)state;
    fx_init(&f, names, "{}");
    assert_int_equal(gw_chain_create_check(&f.cfg, "/tmp/kt-test-state", &f.chain, &err), GV_OK);
    f.req.body = json_object_new_object();
    assert_null(gw_chain_async_start(f.chain, &f.req, NULL, NULL));
    json_object_put(f.req.body);
    fx_free(&f);
}

static const struct CMUnitTest tests[] = {
    FX_TEST(test_evaluate_all_pass),
    FX_TEST(test_tags_refusal_stops_before_any_evaluate),
    FX_TEST(test_create_check_sets_check_only),
    FX_TEST(test_evaluate_refusals),
    FX_TEST(test_create_pack_disabled),
    FX_TEST(test_create_config_errors),
    FX_TEST(test_reads_answers_follows_settings),
    FX_TEST(test_stream_text_pipes_in_order),
    FX_TEST(test_stream_parts_have_their_own_state),
    FX_TEST(test_stream_text_output_cap),
    FX_TEST(test_stream_without_stream_policies),
    FX_TEST(test_stream_rewritten_only_on_redact),
    FX_TEST(test_stream_text_policy_error_fails_closed),
    FX_TEST(test_response_json_reports_rewrite),
    FX_TEST(test_response_json_flag_is_not_rewrite),
    FX_TEST(test_response_json_policy_error_fails_closed),
    FX_TEST(test_complete_in_order),
    cmocka_unit_test(test_async_runs_after_evaluate_on_another_thread),
    cmocka_unit_test(test_async_skipped_after_block),
    cmocka_unit_test(test_async_check_only_starts_nothing),
};

#include "tests/unit/unit_main.h"
