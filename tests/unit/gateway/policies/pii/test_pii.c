/* tests/unit/gateway/policies/pii/test_pii.c - the pii-detector policy through its ops */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "core/gv_mem.h"
#include "core/gv_yaml.h"
#include "gateway/gw_policy.h"
#include "gateway/policies/gw_policies.h"
#include "gateway/gw_req.h"
#include "tests/unit/gateway/policies/pol_fixture.h"

struct fix {
    struct fx_pol fx;
    struct gv_cfg_err err;
};

/* The pii-detector built from YAML settings as the chain builds it. */
static gv_rc make(struct fix *f, const char *yaml)
{
    const struct gw_policy_ops *ops = gw_policy_find("pii-detector");

    assert_non_null(ops);
    return fx_open(&f->fx, ops, yaml, NULL, &f->err);
}

static void unmake(struct fix *f)
{
    fx_close(&f->fx);
    unit_tmpdir_remove(f->fx.state);
}

static const char *content0(struct json_object *body)
{
    struct json_object *m, *c;
    json_object_object_get_ex(body, "messages", &m);
    json_object_object_get_ex(json_object_array_get_idx(m, 0), "content", &c);
    return json_object_get_string(c);
}

static void eval(struct fix *f, const char *body, struct gw_verdict *v, struct json_object **out)
{
    struct gw_req req;
    struct gv_record rec;

    memset(&req, 0, sizeof(req));
    memset(&rec, 0, sizeof(rec));
    memset(v, 0, sizeof(*v));
    req.body = json_tokener_parse(body);
    assert_non_null(req.body);
    req.rec = &rec;
    assert_int_equal(f->fx.pol.ops->evaluate(&f->fx.pol, &req, v), GV_OK);
    *out = req.body;
}

static const char *body1 = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
                           "\"Hi, my name is John Smith, mail john.smith@example.com\"}]}";

/* One evaluate() call on a fresh policy: its settings, the body, and what must come back.
 * content (the first message afterwards) is checked when not NULL, a count when not -1; a
 * block must also answer 403 pii-detector with a message that repeats nothing it found. */
struct eval_row {
    const char *name;
    const char *yaml;
    const char *body;
    enum gw_action action;
    const char *content;
    int person, email;
};

static const struct eval_row EVAL_ROWS[] = {
    {"redacts person and email", "action: redact\nentities: [PERSON, EMAIL_ADDRESS]\n", NULL,
     GW_ACTION_REDACT, "Hi, my name is <PERSON>, mail <EMAIL_ADDRESS>", 1, 1},
    {"entities select", "entities: [EMAIL_ADDRESS]\n", NULL, GW_ACTION_REDACT,
     "Hi, my name is John Smith, mail <EMAIL_ADDRESS>", 0, -1},
    /* block leaves the body alone: nothing is sent anyway */
    {"blocks", "action: block\n", NULL, GW_ACTION_BLOCK,
     "Hi, my name is John Smith, mail john.smith@example.com", -1, -1},
    {"flags", "action: flag\n", NULL, GW_ACTION_FLAG, NULL, -1, -1},
    {"passes clean", "action: flag\n",
     "{\"messages\":[{\"role\":\"user\",\"content\":\"What is 2+2?\"}]}", GW_ACTION_PASS, NULL, -1,
     -1},
    {"operator mask", "operator: {EMAIL_ADDRESS: mask}\n", NULL, GW_ACTION_REDACT,
     "Hi, my name is <PERSON>, mail ****.*****@*******.***", -1, -1},
};

static void test_evaluate_rows(void **state)
{
    const struct eval_row *r;
    struct fix f;
    struct gw_verdict v;
    struct json_object *b;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(EVAL_ROWS) / sizeof(EVAL_ROWS[0]); i++) {
        r = &EVAL_ROWS[i];
        print_message("row: %s\n", r->name);
        assert_int_equal(make(&f, r->yaml), GV_OK);
        eval(&f, r->body ? r->body : body1, &v, &b);
        assert_int_equal(v.action, r->action);
        if (r->action == GW_ACTION_BLOCK) {
            assert_int_equal(v.status, 403);
            assert_string_equal(v.code, "pii-detector");
            assert_null(strstr(v.message, "john"));
        }
        if (r->content) {
            assert_string_equal(content0(b), r->content);
        }
        if (r->person >= 0) {
            assert_int_equal(v.pii_counts[GV_PII_PERSON], r->person);
        }
        if (r->email >= 0) {
            assert_int_equal(v.pii_counts[GV_PII_EMAIL_ADDRESS], r->email);
        }
        json_object_put(b);
        unmake(&f);
    }
}

/* Configs init refuses: where the message points (NULL: not checked) and what else it says.
 * Async detection runs after forwarding, so only flag and log can be async. */
static const struct {
    const char *yaml;
    const char *at;
    const char *says;
} REFUSED_ROWS[] = {
    {"entities:\n  - PERSON\n  - EMAIL\n", "policy.yaml:3:5", "EMAIL"},
    {"operator:\n  PERSON: blur\n", "policy.yaml:2:11", NULL},
    {"action: shred\n", NULL, NULL},
    {"action: redact\nmode: async\n", "policy.yaml:2:7", "async needs action flag or log"},
    {"mode: async\naction: block\n", "policy.yaml:1:7", NULL},
    {"mode: async\n", NULL, NULL}, /* action defaults to redact */
};

static void test_init_rejects_bad_config_with_position(void **state)
{
    struct fix f;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(REFUSED_ROWS) / sizeof(REFUSED_ROWS[0]); i++) {
        print_message("row: %s", REFUSED_ROWS[i].yaml);
        assert_int_equal(make(&f, REFUSED_ROWS[i].yaml), GV_ECONFIG);
        if (REFUSED_ROWS[i].at) {
            assert_non_null(strstr(f.err.msg, REFUSED_ROWS[i].at));
        }
        if (REFUSED_ROWS[i].says) {
            assert_non_null(strstr(f.err.msg, REFUSED_ROWS[i].says));
        }
        unmake(&f);
    }
}

/* The async modes init accepts, and what async does to a verdict. */
static void test_init_mode_async_with_flag_or_log(void **state)
{
    struct fix f;
    struct gw_verdict v;
    struct json_object *b;

    (void)state;
    assert_int_equal(make(&f, "action: flag\nmode: async\n"), GV_OK);
    assert_true(f.fx.pol.ops->is_async(&f.fx.pol));
    unmake(&f);
    assert_int_equal(make(&f, "action: log\nmode: async\n"), GV_OK);
    assert_true(f.fx.pol.ops->is_async(&f.fx.pol));
    eval(&f, body1, &v, &b);
    assert_int_equal(v.action, GW_ACTION_LOG);
    assert_int_equal(v.pii_counts[GV_PII_EMAIL_ADDRESS], 1);
    assert_string_equal(content0(b),
                        "Hi, my name is John Smith, mail john.smith@example.com"); /* untouched */
    json_object_put(b);
    unmake(&f);
    assert_int_equal(make(&f, "action: redact\n"), GV_OK);
    assert_false(f.fx.pol.ops->is_async(&f.fx.pol));
    unmake(&f);
}

static void test_response_json_redacts_when_asked(void **state)
{
    struct fix f;
    struct gw_verdict v;
    struct gw_req req;
    struct json_object *resp, *ch, *msg, *c;
    const char *r = "{\"choices\":[{\"message\":{\"role\":\"assistant\","
                    "\"content\":\"Write to ann.lee@corp.org\"}}]}";

    (void)state;
    memset(&req, 0, sizeof(req));
    assert_int_equal(make(&f, "scan_responses: true\n"), GV_OK);
    resp = json_tokener_parse(r);
    memset(&v, 0, sizeof(v));
    assert_int_equal(f.fx.pol.ops->response_json(&f.fx.pol, &req, resp, &v), GV_OK);
    json_object_object_get_ex(resp, "choices", &ch);
    json_object_object_get_ex(json_object_array_get_idx(ch, 0), "message", &msg);
    json_object_object_get_ex(msg, "content", &c);
    assert_string_equal(json_object_get_string(c), "Write to <EMAIL_ADDRESS>");
    assert_int_equal(v.action, GW_ACTION_REDACT);
    json_object_put(resp);
    unmake(&f);

    assert_int_equal(make(&f, "scan_responses: false\n"), GV_OK);
    resp = json_tokener_parse(r);
    memset(&v, 0, sizeof(v));
    assert_int_equal(f.fx.pol.ops->response_json(&f.fx.pol, &req, resp, &v), GV_OK);
    assert_non_null(strstr(json_object_to_json_string(resp), "ann.lee@corp.org"));
    json_object_put(resp);
    unmake(&f);
}

/* Feed `pieces` one by one, then flush; return everything emitted. */
static char *stream(struct fix *f, const char *const *pieces, uint32_t *email_count)
{
    struct gw_req req;
    struct gv_buf out;
    struct gw_verdict v;
    void *st = NULL;
    size_t i;

    memset(&req, 0, sizeof(req));
    gv_buf_init(&out, 0);
    *email_count = 0;
    for (i = 0; pieces[i]; i++) {
        memset(&v, 0, sizeof(v));
        assert_int_equal(f->fx.pol.ops->stream_text(&f->fx.pol, &req, &st, pieces[i],
                                                    strlen(pieces[i]), false, &out, &v),
                         GV_OK);
        *email_count += v.pii_counts[GV_PII_EMAIL_ADDRESS];
        /* nothing of the address may have left before it was complete */
        assert_null(strstr(out.data ? out.data : "", "bob"));
    }
    memset(&v, 0, sizeof(v));
    assert_int_equal(f->fx.pol.ops->stream_text(&f->fx.pol, &req, &st, "", 0, true, &out, &v),
                     GV_OK);
    *email_count += v.pii_counts[GV_PII_EMAIL_ADDRESS];
    f->fx.pol.ops->stream_free(&f->fx.pol, st);
    return gv_buf_steal(&out);
}

static void test_stream_text_catches_split_spans(void **state)
{
    struct fix f;
    uint32_t n;
    char *s;
    const char *const p1[] = {"Sure, mail bo", "b.ma",     "rley@exam", "ple.com today, or ",
                              "call",          " 415 555", " 0123.",    NULL};
    const char *const p2[] = {"No personal data here. ", "Just text.", NULL};

    (void)state;
    assert_int_equal(make(&f, "scan_responses: true\n"), GV_OK);
    s = stream(&f, p1, &n);
    assert_string_equal(s, "Sure, mail <EMAIL_ADDRESS> today, or call <PHONE_NUMBER>.");
    assert_int_equal(n, 1);
    gv_free(s);
    s = stream(&f, p2, &n);
    assert_string_equal(s, "No personal data here. Just text.");
    gv_free(s);
    unmake(&f);
}

/* Run tags are judged by the structured recognisers whatever `entities`
 * says; one holding PII is cleared and the request refused with 400. */
static void test_tags_refuse_pii(void **state)
{
    static const struct {
        size_t off;
        const char *value;
        const char *param;
    } bad[] = {
        {offsetof(struct gv_record, run_id), "jane.doe@example.com", "X-Wandb-Run-Id"},
        {offsetof(struct gv_record, project), "+1-415-555-0132", "X-Wandb-Project"},
        {offsetof(struct gv_record, entity), "4111-1111-1111-1111", "X-Wandb-Entity"},
        {offsetof(struct gv_record, run_group), "DE89370400440532013000", "X-Wandb-Run-Group"},
        {offsetof(struct gv_record, run_id), "536-22-8174", "X-Wandb-Run-Id"},
    };
    static const char *const good[] = {"exp-2026-12-02-001",  "bert-base-lr3e-4",    "jane-doe-nlp",
                                       "sweep-17-trial-0042", "run-20261202-123456", "3kx9m2ab"};
    struct fix f;
    struct gw_req req;
    struct gv_record rec;
    struct gw_verdict v;
    size_t i;

    (void)state;
    assert_int_equal(make(&f, "entities: [PERSON]\n"), GV_OK);
    memset(&req, 0, sizeof(req));
    req.rec = &rec;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&rec, 0, sizeof(rec));
        snprintf(rec.run_group, sizeof(rec.run_group), "group-1");
        snprintf((char *)&rec + bad[i].off, GV_RUN_TAG_MAX + 1, "%s", bad[i].value);
        assert_int_equal(f.fx.pol.ops->tags(&f.fx.pol, &req, &v), GV_OK);
        assert_int_equal(v.action, GW_ACTION_BLOCK);
        assert_int_equal(v.status, 400);
        assert_string_equal(v.code, "pii_in_run_tag");
        assert_string_equal(v.param, bad[i].param);
        assert_string_equal((char *)&rec + bad[i].off, "");
    }
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        memset(&rec, 0, sizeof(rec));
        snprintf(rec.run_id, sizeof(rec.run_id), "%s", good[i]);
        snprintf(rec.project, sizeof(rec.project), "%s", good[i]);
        assert_int_equal(f.fx.pol.ops->tags(&f.fx.pol, &req, &v), GV_OK);
        if (v.action != GW_ACTION_PASS) {
            fail_msg("run tag '%s' was refused", good[i]);
        }
        assert_string_equal(rec.run_id, good[i]);
    }
    unmake(&f);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_evaluate_rows),
    cmocka_unit_test(test_tags_refuse_pii),
    cmocka_unit_test(test_init_rejects_bad_config_with_position),
    cmocka_unit_test(test_init_mode_async_with_flag_or_log),
    cmocka_unit_test(test_response_json_redacts_when_asked),
    cmocka_unit_test(test_stream_text_catches_split_spans),
};

#include "tests/unit/unit_main.h"
