/* tests/unit/gateway/server/test_gw_server.c - the server in-process: routes, errors, stop */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "core/gv_buf.h"
#include "gateway/gw_chain.h"
#include "gateway/gw_config.h"
#include "gateway/gw_emit.h"
#include "gateway/gw_server.h"

struct fixture {
    char dir[64];
    char path[128];
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

/* A port on 127.0.0.1 where nothing listens: bound, then closed. */
static unsigned closed_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    unsigned port;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct gw_server_opts o;
    struct gv_cfg_err err;
    char msg[256];
    FILE *fp;

    snprintf(f->dir, sizeof(f->dir), "/tmp/kt-test-server-XXXXXX");
    if (!mkdtemp(f->dir)) {
        return -1;
    }
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
            "policies:\n  chain: []\n"
            "gateway:\n  max_body_bytes: 1KiB\n",
            closed_port());
    fclose(fp);
    setenv("KT_TEST_SERVER_SECRET", "sk-unit-secret", 1);
    if (gw_config_load(f->path, &f->cfg, &err) != GV_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    if (gw_chain_create(f->cfg, f->dir, &f->chain, &err) != GV_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    if (gw_emitter_create_noop(&f->em) != GV_OK) {
        return -1;
    }
    memset(&o, 0, sizeof(o));
    o.listen = "127.0.0.1:0";
    o.workers = 1;
    o.cfg = f->cfg;
    o.chain = f->chain;
    o.emitter = f->em;
    o.drain_ms = 2000;
    if (gw_server_create(&o, &f->srv, msg, sizeof(msg)) != GV_OK) {
        fprintf(stderr, "%s\n", msg);
        return -1;
    }
    if (gw_server_start(f->srv) != GV_OK) {
        return -1;
    }
    snprintf(f->base, sizeof(f->base), "http://%s", gw_server_addr(f->srv));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];

    gw_server_stop(f->srv, 2000);
    gw_server_join(f->srv);
    gw_server_destroy(f->srv);
    gw_emitter_destroy(f->em);
    gw_chain_destroy(f->chain);
    gw_config_destroy(f->cfg);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", f->dir);
    }
    free(f);
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
    return cmocka_run_group_tests(tests, setup, teardown);
}
