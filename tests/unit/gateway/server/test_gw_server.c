/* tests/unit/gateway/server/test_gw_server.c - the server in-process: routes, errors, stop */
/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>

#include "core/gv_buf.h"
#include "gateway/gw_chain.h"
#include "gateway/gw_config.h"
#include "gateway/gw_emit.h"
#include "gateway/gw_policy.h"
#include "gateway/gw_server.h"
#include "gateway/policies/gw_policies.h"
#include "tests/unit/gateway/test_registry.h"
#include "tests/unit/unit_net.h"
#include "tests/unit/unit_tmpdir.h"

struct fixture {
    char dir[UNIT_TMPDIR_MAX];
    char path[UNIT_TMPDIR_MAX + 32];
    struct gw_config *cfg;
    struct gw_chain *chain;
    struct gw_emitter *em;
    struct gw_server *srv;
    char base[160];
};

struct reply {
    long status;
    struct gv_buf body;
    struct gv_buf headers;
    struct json_object *json;
};

/* Writes a config whose one target is http://127.0.0.1:up_port/v1 and whose remaining
 * sections are `rest`, then starts a one-worker server on it that emits to `em`; policy names
 * resolve in reg (NULL: the gateway's own). Returns -1 after saying why on stderr. */
static int fx_start(struct fixture *f, unsigned up_port, const char *rest, struct gw_emitter *em,
                    const struct gw_policy_ops *const *reg)
{
    struct gw_server_opts o;
    struct gv_cfg_err err;
    char msg[256];
    FILE *fp;

    unit_tmpdir_make(f->dir, sizeof(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/policy-config.yaml", f->dir);
    fp = fopen(f->path, "w");
    if (!fp) {
        return -1;
    }
    fprintf(fp,
            "pack:\n  name: unit-pack\n  version: 1.2.3\n  enabled: true\n"
            "providers:\n  targets:\n    - id: experiment-llm\n"
            "      provider: openai:chat:gpt-4o\n"
            "      secret_key_ref:\n        env: KT_TEST_SERVER_SECRET\n"
            "      base_url: http://127.0.0.1:%u/v1\n      connect_timeout: 2s\n"
            "%s",
            up_port, rest);
    fclose(fp);
    setenv("KT_TEST_SERVER_SECRET", "sk-unit-secret", 1);
    if (gw_config_load_with(f->path, reg ? reg : gw_policies_builtin(), &f->cfg, &err) != GV_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    if (gw_chain_create(f->cfg, f->dir, &f->chain, &err) != GV_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    memset(&o, 0, sizeof(o));
    o.listen = "127.0.0.1:0";
    o.workers = 1;
    o.cfg = f->cfg;
    o.chain = f->chain;
    o.emitter = em;
    o.drain_ms = 2000;
    if (gw_server_create(&o, &f->srv, msg, sizeof(msg)) != GV_OK) {
        fprintf(stderr, "%s\n", msg);
        return -1;
    }
    if (gw_server_start(f->srv) != GV_OK) {
        return -1;
    }
    snprintf(f->base, sizeof(f->base), "http://%s", gw_server_addr(f->srv));
    return 0;
}

/* Undoes fx_start, and destroys f->em if the fixture made one. */
static void fx_stop(struct fixture *f)
{
    gw_server_stop(f->srv, 2000);
    gw_server_join(f->srv);
    gw_server_destroy(f->srv);
    gw_emitter_destroy(f->em);
    gw_chain_destroy(f->chain);
    gw_config_destroy(f->cfg);
    unit_tmpdir_remove(f->dir);
}

/* No upstream listens: every proxied request fails to connect. */
static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (gw_emitter_create_noop(&f->em) != GV_OK) {
        return -1;
    }
    if (fx_start(f, unit_closed_port(),
                 "policies:\n  chain: []\n"
                 "gateway:\n  max_body_bytes: 1KiB\n",
                 f->em, NULL) != 0) {
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_stop(*state);
    free(*state);
    return 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    return gv_buf_append(arg, p, size * n) == GV_OK ? size * n : 0;
}

static void request(struct fixture *f, const char *method, const char *path, const char *body,
                    size_t len, const char *header, struct reply *r)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    char url[256];

    memset(r, 0, sizeof(*r));
    gv_buf_init(&r->body, 0);
    gv_buf_init(&r->headers, 0);
    if (header) {
        h = curl_slist_append(h, header);
    }
    snprintf(url, sizeof(url), "%s%s", f->base, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r->headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    r->json = r->body.data ? json_tokener_parse(r->body.data) : NULL;
}

static void reply_free(struct reply *r)
{
    if (r->json) {
        json_object_put(r->json);
    }
    gv_buf_free(&r->body);
    gv_buf_free(&r->headers);
}

static const char *get_str(struct json_object *o, const char *key)
{
    struct json_object *v;

    if (!o || !json_object_object_get_ex(o, key, &v) || !v) {
        return NULL;
    }
    return json_object_get_string(v);
}

/* The error object of an OpenAI-shaped body; all four keys present. */
static struct json_object *openai_error(struct reply *r)
{
    struct json_object *err, *v;

    assert_non_null(r->json);
    assert_true(json_object_object_get_ex(r->json, "error", &err));
    assert_true(json_object_object_get_ex(err, "message", &v));
    assert_true(json_object_object_get_ex(err, "type", &v));
    assert_true(json_object_object_get_ex(err, "code", &v));
    assert_true(json_object_object_get_ex(err, "param", &v));
    assert_non_null(strstr(r->headers.data, "x-kt-request-id: req_"));
    assert_non_null(strstr(r->headers.data, "x-kt-decision: error"));
    return err;
}

static void test_health_reports_pack_targets_workers(void **state)
{
    struct fixture *f = *state;
    struct json_object *pack, *targets, *v;
    struct reply r;

    request(f, "GET", "/health", NULL, 0, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(get_str(r.json, "status"), "ok");
    assert_true(json_object_object_get_ex(r.json, "pack", &pack));
    assert_string_equal(get_str(pack, "name"), "unit-pack");
    assert_string_equal(get_str(pack, "version"), "1.2.3");
    assert_true(json_object_object_get_ex(r.json, "targets", &targets));
    assert_string_equal(get_str(json_object_array_get_idx(targets, 0), "id"), "experiment-llm");
    assert_true(json_object_object_get_ex(r.json, "workers", &v));
    assert_int_equal(json_object_get_int(v), 1);
    assert_true(json_object_object_get_ex(r.json, "events", &v));
    assert_null(strstr(r.body.data, "sk-unit-secret"));
    assert_non_null(strstr(r.headers.data, "x-kt-overhead-ms: "));
    reply_free(&r);
}

static void test_models_lists_model_and_target_id(void **state)
{
    struct fixture *f = *state;
    struct json_object *data;
    struct reply r;

    request(f, "GET", "/v1/models", NULL, 0, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(get_str(r.json, "object"), "list");
    assert_true(json_object_object_get_ex(r.json, "data", &data));
    assert_int_equal(json_object_array_length(data), 2);
    assert_string_equal(get_str(json_object_array_get_idx(data, 0), "id"), "gpt-4o");
    assert_string_equal(get_str(json_object_array_get_idx(data, 1), "id"), "experiment-llm");
    reply_free(&r);

    request(f, "GET", "/v1/models/experiment-llm", NULL, 0, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(get_str(r.json, "object"), "model");
    reply_free(&r);
}

static void test_unknown_path_and_wrong_method(void **state)
{
    struct fixture *f = *state;
    struct reply r;

    request(f, "GET", "/v2/chat/completions", NULL, 0, NULL, &r);
    assert_int_equal(r.status, 404);
    openai_error(&r);
    reply_free(&r);

    request(f, "GET", "/v1/chat/completions", NULL, 0, NULL, &r);
    assert_int_equal(r.status, 405);
    openai_error(&r);
    assert_non_null(strstr(r.headers.data, "Allow: POST"));
    reply_free(&r);

    request(f, "DELETE", "/health", NULL, 0, NULL, &r);
    assert_int_equal(r.status, 405);
    reply_free(&r);
}

static void test_chat_rejects_bad_bodies(void **state)
{
    static const char binary[] = {(char)0xff, (char)0xfe, 0x00, 0x7b, (char)0x80, 0x0a};
    static const char no_messages[] = "{\"model\":\"gpt-4o\"}";
    static const char trailing[] = "{\"model\":\"gpt-4o\",\"messages\":[{}]} x";
    struct fixture *f = *state;
    struct json_object *err;
    struct reply r;
    char deep[400];
    size_t i;

    request(f, "POST", "/v1/chat/completions", "{\"model\": ", 10, NULL, &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(get_str(openai_error(&r), "code"), "invalid_json");
    reply_free(&r);

    request(f, "POST", "/v1/chat/completions", binary, sizeof(binary), NULL, &r);
    assert_int_equal(r.status, 400);
    openai_error(&r);
    reply_free(&r);

    request(f, "POST", "/v1/chat/completions", trailing, sizeof(trailing) - 1, NULL, &r);
    assert_int_equal(r.status, 400);
    reply_free(&r);

    /* Nesting past the tokener's depth limit is malformed, not a crash. */
    for (i = 0; i < 200; i++) {
        deep[i] = '[';
        deep[200 + i] = ']';
    }
    request(f, "POST", "/v1/chat/completions", deep, sizeof(deep), NULL, &r);
    assert_int_equal(r.status, 400);
    reply_free(&r);

    request(f, "POST", "/v1/chat/completions", no_messages, sizeof(no_messages) - 1, NULL, &r);
    assert_int_equal(r.status, 400);
    err = openai_error(&r);
    assert_string_equal(get_str(err, "param"), "messages");
    reply_free(&r);
}

static void test_chat_unknown_model_bad_run_id_too_large(void **state)
{
    static const char unknown[] = "{\"model\":\"gpt-nope\",\"messages\":[{\"role\":\"user\","
                                  "\"content\":\"hi\"}]}";
    static const char ok[] = "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\","
                             "\"content\":\"hi\"}]}";
    struct fixture *f = *state;
    struct json_object *err;
    struct reply r;
    char big[2048];

    request(f, "POST", "/v1/chat/completions", unknown, sizeof(unknown) - 1, NULL, &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(get_str(openai_error(&r), "code"), "model_not_found");
    reply_free(&r);

    request(f, "POST", "/v1/chat/completions", ok, sizeof(ok) - 1, "X-Wandb-Run-Id: runs/abc", &r);
    assert_int_equal(r.status, 400);
    err = openai_error(&r);
    assert_string_equal(get_str(err, "code"), "invalid_run_id");
    assert_string_equal(get_str(err, "param"), "X-Wandb-Run-Id");
    reply_free(&r);

    /* Over max_body_bytes (1 KiB) but under libevent's hard cap: our own 413. */
    memset(big, ' ', sizeof(big));
    memcpy(big, ok, sizeof(ok) - 1);
    request(f, "POST", "/v1/chat/completions", big, sizeof(big), NULL, &r);
    assert_int_equal(r.status, 413);
    openai_error(&r);
    reply_free(&r);
}

static void test_chat_upstream_down_is_502(void **state)
{
    static const char ok[] = "{\"model\":\"experiment-llm\",\"stream\":true,\"messages\":"
                             "[{\"role\":\"user\",\"content\":\"hi\"}]}";
    struct fixture *f = *state;
    struct reply r;

    request(f, "POST", "/v1/chat/completions", ok, sizeof(ok) - 1, "X-Wandb-Run-Id: run-1", &r);
    assert_int_equal(r.status, 502);
    assert_string_equal(get_str(openai_error(&r), "code"), "upstream_error");
    assert_non_null(strstr(r.headers.data, "x-kt-run-id: run-1"));
    reply_free(&r);
}

/* ---- answers: response policies against a mock upstream ---- */

/* A response policy for these tests only: it fails on answers that contain
 * FAIL-NOW, the way a real policy fails when it runs out of scratch. */
static gv_rc rfail_json(struct gw_policy *pol, struct gw_req *req, struct json_object *resp,
                        struct gw_verdict *out)
{
    const char *s = json_object_to_json_string(resp);
    return strstr(s, "FAIL-NOW") ? GV_EIO : GV_OK;
}

static gv_rc rfail_stream(struct gw_policy *pol, struct gw_req *req, void **state, const char *text,
                          size_t len, bool final, struct gv_buf *out, struct gw_verdict *v)
{
    if (memmem(text, len, "FAIL-NOW", 8)) {
        return GV_EIO;
    }
    return gv_buf_append(out, text, len);
}

static const struct gw_policy_ops t_rfail = {.name = "t-rfail",
                                             .flags = GW_POL_RESPONSE,
                                             .response_json = rfail_json,
                                             .stream_text = rfail_stream};

/* The answer tests load their config with a registry of the gateway's own policies and the
 * failing one. */
static const struct gw_policy_ops *t_reg[16];

static const struct gw_policy_ops *const *test_registry(void)
{
    static const struct gw_policy_ops *const extras[] = {&t_rfail, NULL};

    return test_registry_with(extras, t_reg, sizeof(t_reg) / sizeof(t_reg[0]));
}

/* The mock upstream: answers every request with `mock_body`, as one JSON body
 * or, when mock_chunks is set, as an SSE stream sent chunk by chunk. */
static const char *mock_body;
static const char *const *mock_chunks;

static void mock_cb(struct evhttp_request *req, void *arg)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    struct evbuffer *b = evbuffer_new();
    size_t i;

    (void)arg;
    if (mock_chunks) {
        evhttp_add_header(h, "Content-Type", "text/event-stream");
        evhttp_send_reply_start(req, 200, "OK");
        for (i = 0; mock_chunks[i]; i++) {
            evbuffer_add(b, mock_chunks[i], strlen(mock_chunks[i]));
            evhttp_send_reply_chunk(req, b);
        }
        evhttp_send_reply_end(req);
    }
    else {
        evhttp_add_header(h, "Content-Type", "application/json");
        evbuffer_add(b, mock_body, strlen(mock_body));
        evhttp_send_reply(req, 200, "OK", b);
    }
    evbuffer_free(b);
}

/* Records the gateway emits, so a test can read the decision it recorded. */
static pthread_mutex_t em_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t em_cv = PTHREAD_COND_INITIALIZER;
static struct gv_record em_last;
static unsigned em_count;
/* The last record came as the bytes the chain packed once it was final (and is
 * read back from them), not as a record for the emitter to pack. */
static bool em_last_packed;

/* With em_gate set, an emit waits (at most 5 s) until the test has read the answer: a
 * gateway that records a request before its answer leaves would never send it while
 * waiting, so the wait would run out and em_gate_ran_out say so. */
static bool em_gate, em_answer_read, em_gate_ran_out;

static gv_rc cap_emit(struct gw_emitter *em, const struct gv_record *rec,
                      const struct gv_record_packed *packed)
{
    struct timespec ts;
    int rc = 0;

    (void)em;
    pthread_mutex_lock(&em_mu);
    if (em_gate) {
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 5;
        while (!em_answer_read && rc != ETIMEDOUT) {
            rc = pthread_cond_timedwait(&em_cv, &em_mu, &ts);
        }
        em_gate_ran_out = !em_answer_read;
    }
    em_last_packed = packed != NULL;
    if (packed) {
        gv_record_unpack(&em_last, packed->bytes);
    }
    else {
        em_last = *rec;
    }
    em_count++;
    pthread_cond_broadcast(&em_cv);
    pthread_mutex_unlock(&em_mu);
    return GV_OK;
}

static const struct gw_emitter_ops cap_ops = {.name = "capture", .emit = cap_emit};
static struct gw_emitter cap_em = {.ops = &cap_ops, .ctx = NULL};

/* The record of the request after `before` records: the gateway emits it
 * right after the answer's last byte, so wait for it (bounded, not timed). */
static struct gv_record wait_record(unsigned before)
{
    struct timespec ts;
    struct gv_record rec;
    int rc = 0;
    bool got, packed;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    pthread_mutex_lock(&em_mu);
    while (em_count == before && rc != ETIMEDOUT) {
        rc = pthread_cond_timedwait(&em_cv, &em_mu, &ts);
    }
    got = em_count > before;
    packed = em_last_packed;
    rec = em_last;
    pthread_mutex_unlock(&em_mu);
    /* Outside the lock: a failed assertion leaves the test, and the next one takes it. */
    assert_true(got);
    assert_true(packed);
    return rec;
}

static unsigned records_so_far(void)
{
    unsigned n;

    pthread_mutex_lock(&em_mu);
    n = em_count;
    pthread_mutex_unlock(&em_mu);
    return n;
}

struct afixture {
    struct fixture f;
    struct event_base *base;
    struct evhttp *http;
    pthread_t th;
};

static void *mock_main(void *arg)
{
    struct afixture *a = arg;
    event_base_loop(a->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

/* A mock upstream on its own thread, and a one-worker server in front of it whose
 * config ends with `rest` (policies and the like), capturing records. */
static int setup_mock(void **state, const char *rest)
{
    struct afixture *a = calloc(1, sizeof(*a));
    struct evhttp_bound_socket *bs;
    struct sockaddr_in sa;
    socklen_t salen = sizeof(sa);

    evthread_use_pthreads();
    a->base = event_base_new();
    a->http = evhttp_new(a->base);
    evhttp_set_gencb(a->http, mock_cb, NULL);
    bs = evhttp_bind_socket_with_handle(a->http, "127.0.0.1", 0);
    if (!bs || getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sa, &salen) != 0) {
        return -1;
    }
    if (pthread_create(&a->th, NULL, mock_main, a) != 0) {
        return -1;
    }
    if (fx_start(&a->f, (unsigned)ntohs(sa.sin_port), rest, &cap_em, test_registry()) != 0) {
        return -1;
    }
    *state = a;
    return 0;
}

static int setup_answers(void **state)
{
    return setup_mock(
        state, "policies:\n  chain: [pii-detector, t-rfail]\n"
               "policy:\n  pii-detector:\n    action: redact\n    entities: [EMAIL_ADDRESS]\n"
               "    scan_responses: true\n");
}

/* No policy reads the answer: stream chunks pass as they came. */
static int setup_passthrough(void **state)
{
    return setup_mock(state, "policies:\n  chain: []\n");
}

static int teardown_answers(void **state)
{
    struct afixture *a = *state;

    if (!a) {
        return 0; /* setup failed and said why */
    }
    fx_stop(&a->f);
    event_base_loopbreak(a->base);
    pthread_join(a->th, NULL);
    evhttp_free(a->http);
    event_base_free(a->base);
    free(a);
    return 0;
}

static const char chat_req[] = "{\"model\":\"experiment-llm\",\"messages\":"
                               "[{\"role\":\"user\",\"content\":\"hi\"}]}";
static const char chat_stream_req[] = "{\"model\":\"experiment-llm\",\"stream\":true,\"messages\":"
                                      "[{\"role\":\"user\",\"content\":\"hi\"}]}";

/* A chat.completion from gpt-4o whose one choice says `content` and stops, in buf. */
static const char *completion(char *buf, size_t size, const char *id, const char *content)
{
    snprintf(buf, size,
             "{\"id\":\"%s\",\"object\":\"chat.completion\",\"model\":\"gpt-4o\",\"choices\":"
             "[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"%s\"},"
             "\"finish_reason\":\"stop\"}]}",
             id, content);
    return buf;
}

/* Sends a chat request while the mock upstream answers `body` as JSON or, when chunks is
 * set, streams chunks (and the request asks for a stream); the reply lands in *r and the
 * record the gateway emitted for the request is returned. */
static struct gv_record ask(struct afixture *a, const char *body, const char *const *chunks,
                            struct reply *r)
{
    unsigned before = records_so_far();

    mock_body = body;
    mock_chunks = chunks;
    if (chunks) {
        request(&a->f, "POST", "/v1/chat/completions", chat_stream_req, sizeof(chat_stream_req) - 1,
                NULL, r);
    }
    else {
        request(&a->f, "POST", "/v1/chat/completions", chat_req, sizeof(chat_req) - 1, NULL, r);
    }
    mock_chunks = NULL;
    return wait_record(before);
}

static void test_answer_redacted_json_says_redacted(void **state)
{
    struct afixture *a = *state;
    struct gv_record rec;
    struct reply r;
    char answer[512];

    rec =
        ask(a, completion(answer, sizeof(answer), "c1", "write to jane.doe@example.com"), NULL, &r);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body.data, "jane.doe@example.com"));
    assert_non_null(strstr(r.body.data, "EMAIL_ADDRESS"));
    assert_non_null(strstr(r.headers.data, "x-kt-decision: redacted"));
    assert_int_equal(rec.decision, GV_DECISION_REDACTED);
    assert_int_equal(rec.policies[0].action, GV_OUTCOME_REDACT);
    reply_free(&r);

    /* An answer with nothing to redact stays allowed. */
    rec = ask(a, completion(answer, sizeof(answer), "c2", "hello"), NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.headers.data, "x-kt-decision: allowed"));
    assert_int_equal(rec.decision, GV_DECISION_ALLOWED);
    reply_free(&r);
}

/* The record, the complete hooks, the emit and the log line of a request run after its
 * answer was written, so they are not part of the client's wait. */
static void test_answer_leaves_before_its_record(void **state)
{
    struct afixture *a = *state;
    struct gv_record rec;
    struct reply r;
    char answer[512];
    unsigned before = records_so_far();
    bool ran_out;

    pthread_mutex_lock(&em_mu);
    em_gate = true;
    em_answer_read = false;
    em_gate_ran_out = false;
    pthread_mutex_unlock(&em_mu);
    mock_body = completion(answer, sizeof(answer), "c9", "hello");
    request(&a->f, "POST", "/v1/chat/completions", chat_req, sizeof(chat_req) - 1, NULL, &r);
    pthread_mutex_lock(&em_mu);
    em_answer_read = true;
    pthread_cond_broadcast(&em_cv);
    pthread_mutex_unlock(&em_mu);
    rec = wait_record(before);
    pthread_mutex_lock(&em_mu);
    em_gate = false;
    ran_out = em_gate_ran_out;
    pthread_mutex_unlock(&em_mu);
    assert_false(ran_out); /* the answer waited for its own record */
    assert_int_equal(r.status, 200);
    assert_string_equal(rec.response_id, "c9");
    reply_free(&r);
}

static void test_answer_policy_failure_json_is_500(void **state)
{
    struct afixture *a = *state;
    struct gv_record rec;
    struct reply r;
    char answer[512];

    rec = ask(a, completion(answer, sizeof(answer), "c3", "FAIL-NOW unchecked secret text"), NULL,
              &r);
    assert_int_equal(r.status, 500);
    assert_string_equal(get_str(openai_error(&r), "code"), "policy_error");
    assert_null(strstr(r.body.data, "unchecked secret text"));
    assert_int_equal(rec.decision, GV_DECISION_ERROR);
    assert_string_equal(rec.error_code, "policy_error");
    assert_int_equal(rec.policies[1].action, GV_OUTCOME_ERROR);
    reply_free(&r);
}

/* One SSE event of stream `id` from gpt-4o: a chat.completion.chunk whose one choice has
 * `choice` (its members after the index) in it. */
#define CHUNK(id, choice)                                                                          \
    "data: {\"id\":\"" id "\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\","          \
    "\"choices\":[{\"index\":0," choice "}]}\n\n"

static void test_answer_redacted_stream_records_redacted(void **state)
{
    static const char *const chunks[] = {
        CHUNK("s1", "\"delta\":{\"content\":\"write to jane.doe@\"}"),
        CHUNK("s1", "\"delta\":{\"content\":\"example.com today\"}"),
        CHUNK("s1", "\"delta\":{},\"finish_reason\":\"stop\""),
        "data: [DONE]\n\n",
        NULL,
    };
    struct afixture *a = *state;
    struct gv_record rec;
    struct reply r;

    rec = ask(a, NULL, chunks, &r);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body.data, "jane.doe"));
    assert_non_null(strstr(r.body.data, "EMAIL_ADDRESS"));
    assert_non_null(strstr(r.body.data, "data: [DONE]"));
    /* The header went out before the answer was seen; the record says it. */
    assert_non_null(strstr(r.headers.data, "x-kt-decision: allowed"));
    assert_int_equal(rec.decision, GV_DECISION_REDACTED);
    reply_free(&r);
}

static void test_answer_policy_failure_stream_ends_with_error(void **state)
{
    static const char *const chunks[] = {
        CHUNK("s2", "\"delta\":{\"content\":\"first part. \"}"),
        CHUNK("s2", "\"delta\":{\"content\":\"FAIL-NOW unchecked\"}"),
        CHUNK("s2", "\"delta\":{\"content\":\" after\"}"),
        "data: [DONE]\n\n",
        NULL,
    };
    struct afixture *a = *state;
    struct gv_record rec;
    struct reply r;
    const char *ev;

    rec = ask(a, NULL, chunks, &r);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body.data, "unchecked"));
    assert_null(strstr(r.body.data, "after"));
    assert_null(strstr(r.body.data, "[DONE]"));
    /* The last event is the OpenAI-shaped error. */
    ev = strstr(r.body.data, "data: {\"error\"");
    assert_non_null(ev);
    assert_non_null(strstr(ev, "\"code\":\"policy_error\""));
    assert_string_equal(ev + strlen(ev) - 2, "\n\n");
    assert_null(strstr(ev + 1, "data: "));
    assert_int_equal(rec.decision, GV_DECISION_ERROR);
    assert_string_equal(rec.error_code, "policy_error");
    reply_free(&r);
}

/* The chunks below as one upstream write: A passes as it came, the usage-only chunk U
 * is dropped (the client did not ask for usage), C passes, B loses its usage member (so
 * it is written anew), and [DONE] passes. What passes unchanged is written from the
 * upstream's bytes and what was rewritten from the relay's own; the client must get
 * them in order, and nothing of U. */
#define PASS_A CHUNK("p1", "\"delta\":{\"content\":\"one \"}")
#define PASS_B                                                                                     \
    "data: {\"id\":\"p1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\","              \
    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"two \"}}],"                                \
    "\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\n"
#define PASS_C CHUNK("p1", "\"delta\":{\"content\":\"three\"},\"finish_reason\":\"stop\"")
#define PASS_U                                                                                     \
    "data: {\"id\":\"p1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\","              \
    "\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\n"
#define PASS_DONE "data: [DONE]\n\n"

static void test_passthrough_keeps_order_around_rewritten_chunks(void **state)
{
    static const char *const chunks[] = {PASS_A PASS_U PASS_C PASS_B PASS_DONE, NULL};
    struct afixture *a = *state;
    const char *pa, *pb, *pc, *pd;
    struct gv_record rec;
    struct reply r;

    rec = ask(a, NULL, chunks, &r);
    assert_int_equal(r.status, 200);
    pa = strstr(r.body.data, PASS_A);
    pb = strstr(r.body.data, "\"two \"");
    pc = strstr(r.body.data, PASS_C);
    pd = strstr(r.body.data, PASS_DONE);
    assert_true(pa == r.body.data);
    assert_non_null(pb);
    assert_non_null(pc);
    assert_non_null(pd);
    assert_true(pa < pc && pc < pb && pb < pd);
    assert_true(pc == pa + strlen(PASS_A));
    assert_null(strstr(r.body.data, "usage"));
    assert_string_equal(pd, PASS_DONE);
    assert_int_equal(rec.tokens_prompt, 3);
    assert_int_equal(rec.tokens_completion, 4);
    reply_free(&r);
}

/* Events split across upstream writes anywhere: what passes unchanged arrives byte for
 * byte, whether it came whole in one write or was put together from two. */
static void test_passthrough_split_events_arrive_whole(void **state)
{
    static const char whole[] = PASS_A PASS_C PASS_DONE;
    struct afixture *a = *state;
    struct reply r;
    size_t cut;

    for (cut = 1; cut < sizeof(whole) - 1; cut += 7) {
        char first[sizeof(whole)], second[sizeof(whole)];
        const char *chunks[3] = {first, second, NULL};

        memcpy(first, whole, cut);
        first[cut] = '\0';
        memcpy(second, whole + cut, sizeof(whole) - cut);
        (void)ask(a, NULL, chunks, &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body.data, whole);
        reply_free(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health_reports_pack_targets_workers),
        cmocka_unit_test(test_models_lists_model_and_target_id),
        cmocka_unit_test(test_unknown_path_and_wrong_method),
        cmocka_unit_test(test_chat_rejects_bad_bodies),
        cmocka_unit_test(test_chat_unknown_model_bad_run_id_too_large),
        cmocka_unit_test(test_chat_upstream_down_is_502),
    };
    const struct CMUnitTest answers[] = {
        cmocka_unit_test(test_answer_redacted_json_says_redacted),
        cmocka_unit_test(test_answer_leaves_before_its_record),
        cmocka_unit_test(test_answer_policy_failure_json_is_500),
        cmocka_unit_test(test_answer_redacted_stream_records_redacted),
        cmocka_unit_test(test_answer_policy_failure_stream_ends_with_error),
    };
    const struct CMUnitTest passthrough[] = {
        cmocka_unit_test(test_passthrough_keeps_order_around_rewritten_chunks),
        cmocka_unit_test(test_passthrough_split_events_arrive_whole),
    };
    int failed = cmocka_run_group_tests(tests, setup, teardown);

    failed += cmocka_run_group_tests(answers, setup_answers, teardown_answers);
    return failed + cmocka_run_group_tests(passthrough, setup_passthrough, teardown_answers);
}
