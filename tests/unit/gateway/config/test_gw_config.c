/* tests/unit/gateway/config/test_gw_config.c - policy-config.yaml loading and its errors */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "gateway/gw_config.h"
#include "tests/unit/unit_rand.h"

#define TARGET "providers:\n  targets:\n    - {id: t1, provider: 'openai:chat:gpt-4o'}\n"

static char tmp_path[64];

static int setup(void **state)
{
    (void)state;
    setenv("OPENAI_API_KEY", "sk-test-not-a-real-key", 1);
    unsetenv("OPENAI_BASE_URL");
    unsetenv("KT_TEST_EMPTY");
    unsetenv("KT_TEST_MISSING");
    return 0;
}

static void fixture(const char *name, char *buf, size_t size)
{
    const char *src = getenv("KT_SOURCE_DIR");
    snprintf(buf, size, "%s/tests/fixtures/config/%s", src ? src : ".", name);
}

/* Writes text to a temporary file and loads it; the file is removed again. */
static gv_rc load_text(const char *text, struct gw_config **cfg, struct gv_cfg_err *err)
{
    FILE *f;
    int fd;
    gv_rc rc;

    snprintf(tmp_path, sizeof(tmp_path), "/tmp/kt-cfg-test-XXXXXX");
    fd = mkstemp(tmp_path);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    fclose(f);
    rc = gw_config_load(tmp_path, cfg, err);
    unlink(tmp_path);
    return rc;
}

/* err's message is one line that names the file load_text wrote: what follows "<tmpfile>:". */
static const char *msg_after_path(const struct gv_cfg_err *err)
{
    size_t n = strlen(tmp_path);

    assert_int_equal(strncmp(err->msg, tmp_path, n), 0);
    assert_int_equal(err->msg[n], ':');
    assert_null(strchr(err->msg, '\n'));
    return err->msg + n + 1;
}

/* Loads text, which must load; a failure shows the loader's message. */
static struct gw_config *load_ok(const char *text)
{
    struct gw_config *cfg = NULL;
    struct gv_cfg_err err;

    if (load_text(text, &cfg, &err) != GV_OK) {
        fail_msg("%s", err.msg);
    }
    return cfg;
}

/* Loads text, which must be refused (GV_ECONFIG, no config); err holds the whole message and
 * the return is what follows "<tmpfile>:". */
static const char *refusal(const char *text, struct gv_cfg_err *err)
{
    struct gw_config *cfg = NULL;

    assert_int_equal(load_text(text, &cfg, err), GV_ECONFIG);
    assert_null(cfg);
    return msg_after_path(err);
}

/* Loads text, expects GV_ECONFIG and err == "<tmpfile>:" + msg. */
static void expect_error(const char *text, const char *msg)
{
    struct gv_cfg_err err;

    assert_string_equal(refusal(text, &err), msg);
}

static void check_page_config(const struct gw_config *cfg)
{
    const struct gw_target *t;

    assert_string_equal(cfg->pack_name, "wandb-governed-experiments");
    assert_string_equal(cfg->pack_version, "1.0.0");
    assert_true(cfg->pack_enabled);
    assert_int_equal(cfg->ntargets, 1);
    t = &cfg->targets[0];
    assert_string_equal(t->id, "experiment-llm");
    assert_int_equal(t->kind, GW_PROVIDER_OPENAI);
    assert_string_equal(t->model, "gpt-4o");
    assert_string_equal(t->base_url, "https://api.openai.com/v1");
    assert_string_equal(t->secret_env, "OPENAI_API_KEY");
    assert_string_equal(t->secret, "sk-test-not-a-real-key");
    assert_true(t->stream_usage);
    assert_int_equal(t->connect_timeout_ms, 10000);
    assert_int_equal(t->first_byte_timeout_ms, 120000);
    assert_int_equal(t->idle_timeout_ms, 60000);
    assert_int_equal(cfg->nchain, 3);
    assert_string_equal(cfg->chain[0].name, "prompt-injection");
    assert_string_equal(cfg->chain[1].name, "pii-detector");
    assert_string_equal(cfg->chain[2].name, "audit-logger");
    assert_int_equal(cfg->chain[1].settings->kind, GV_Y_MAP);
    assert_string_equal(gv_ynode_get(cfg->chain[1].settings, "action")->scalar, "redact");
    assert_int_equal(cfg->max_body_bytes, 4u * 1024 * 1024);
    assert_int_equal(cfg->max_response_bytes, 32u * 1024 * 1024);
    assert_ptr_equal(gw_config_find_target(cfg, "gpt-4o"), t);
    assert_ptr_equal(gw_config_find_target(cfg, "experiment-llm"), t);
    assert_null(gw_config_find_target(cfg, "gpt-3.5-turbo"));
}

/* The page's config in each YAML style, from tests/fixtures/config/<file>: each must give
 * what check_page_config wants, and positions point into that file (the chain entry for
 * pii-detector). */
static const struct {
    const char *file;
    int line;
    int col;
} PAGE_ROWS[] = {
    {"page-flow.yaml", 8, 29},
    {"page-block.yaml", 15, 7},
};

static void test_load_page_styles(void **state)
{
    struct gw_config *cfg;
    struct gv_cfg_err err;
    char path[1024];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(PAGE_ROWS) / sizeof(PAGE_ROWS[0]); i++) {
        print_message("row: %s\n", PAGE_ROWS[i].file);
        cfg = NULL;
        fixture(PAGE_ROWS[i].file, path, sizeof(path));
        assert_int_equal(gw_config_load(path, &cfg, &err), GV_OK);
        check_page_config(cfg);
        assert_int_equal(cfg->chain[1].name_node->line, PAGE_ROWS[i].line);
        assert_int_equal(cfg->chain[1].name_node->col, PAGE_ROWS[i].col);
        gw_config_destroy(cfg);
    }
}

static void test_load_targets_and_gateway(void **state)
{
    struct gw_config *cfg;

    (void)state;
    setenv("OPENAI_BASE_URL", "http://127.0.0.1:9999/v1/", 1);
    cfg = load_ok("gateway: {max_body_bytes: 1MiB, max_response_bytes: 2MB}\n"
                  "providers:\n  targets:\n"
                  "    - id: a\n      provider: openai:chat:gpt-4o-mini\n"
                  "      stream_usage: false\n      connect_timeout: 500ms\n"
                  "      first_byte_timeout: 5m\n      idle_timeout: 1500\n"
                  "    - id: b\n      provider: openai-compatible:chat:ft:x:y\n"
                  "      base_url: https://llm.internal.example///\n"
                  "      ca_file: /dev/null\n");
    assert_string_equal(cfg->pack_name, "default");
    assert_true(cfg->pack_enabled);
    assert_int_equal(cfg->nchain, 0);
    assert_int_equal(cfg->max_body_bytes, 1024u * 1024);
    assert_int_equal(cfg->max_response_bytes, 2000000u);
    assert_int_equal(cfg->ntargets, 2);
    assert_string_equal(cfg->targets[0].base_url, "http://127.0.0.1:9999/v1");
    assert_null(cfg->targets[0].secret);
    assert_false(cfg->targets[0].stream_usage);
    assert_int_equal(cfg->targets[0].connect_timeout_ms, 500);
    assert_int_equal(cfg->targets[0].first_byte_timeout_ms, 300000);
    assert_int_equal(cfg->targets[0].idle_timeout_ms, 1500);
    assert_int_equal(cfg->targets[1].kind, GW_PROVIDER_OPENAI_COMPATIBLE);
    /* Everything after "chat:" is the model, colons included. */
    assert_string_equal(cfg->targets[1].model, "ft:x:y");
    assert_string_equal(cfg->targets[1].base_url, "https://llm.internal.example");
    assert_null(cfg->targets[0].ca_file);
    assert_string_equal(cfg->targets[1].ca_file, "/dev/null");
    assert_ptr_equal(gw_config_find_target(cfg, "b"), &cfg->targets[1]);
    gw_config_destroy(cfg);
    unsetenv("OPENAI_BASE_URL");
}

static void test_load_pack_disabled_and_unchained_settings(void **state)
{
    struct gw_config *cfg;

    (void)state;
    /* policy.<name> outside the chain is a warning, not an error. */
    cfg = load_ok("pack: {name: p, version: 2, enabled: false}\n" TARGET
                  "policy:\n  prompt-injection: {threshold: 0.5}\n");
    assert_false(cfg->pack_enabled);
    assert_string_equal(cfg->pack_version, "2");
    gw_config_destroy(cfg);
}

static void test_load_secret_env_errors(void **state)
{
    (void)state;
    expect_error("providers:\n  targets:\n    - id: t\n      provider: openai:chat:m\n"
                 "      secret_key_ref: {env: KT_TEST_MISSING}\n",
                 "5:29: providers.targets[0].secret_key_ref.env: environment variable "
                 "KT_TEST_MISSING is not set");
    setenv("KT_TEST_EMPTY", "", 1);
    expect_error("providers:\n  targets:\n    - id: t\n      provider: openai:chat:m\n"
                 "      secret_key_ref:\n        env: KT_TEST_EMPTY\n",
                 "6:14: providers.targets[0].secret_key_ref.env: environment variable "
                 "KT_TEST_EMPTY is empty");
    expect_error("providers:\n  targets:\n    - id: t\n      provider: openai:chat:m\n"
                 "      secret_key_ref: {file: /x}\n",
                 "5:24: unknown key 'file' in providers.targets[0].secret_key_ref (expected one "
                 "of: env)");
}

static void test_load_secret_never_in_message(void **state)
{
    struct gv_cfg_err err;

    (void)state;
    setenv("KT_TEST_SECRET", "sk-secret-value-123", 1);
    refusal("providers:\n  targets:\n    - id: t\n      provider: bad\n"
            "      secret_key_ref: {env: KT_TEST_SECRET}\n",
            &err);
    assert_null(strstr(err.msg, "sk-secret-value-123"));
    unsetenv("KT_TEST_SECRET");
}

static void test_load_target_errors(void **state)
{
    (void)state;
    expect_error("pack: {name: x}\n", "1:1: providers: at least one target is required "
                                      "(providers.targets: [{id, provider}])");
    expect_error("providers: {targets: []}\n",
                 "1:22: providers.targets: at least one target is required");
    expect_error("providers:\n  targets:\n    - {id: t1, provider: 'anthropic:chat:claude'}\n",
                 "3:26: providers.targets[0].provider: expected openai:chat:MODEL or "
                 "openai-compatible:chat:MODEL, got 'anthropic:chat:claude'");
    expect_error("providers:\n  targets:\n    - {id: t1, provider: 'openai:chat:'}\n",
                 "3:26: providers.targets[0].provider: the model name after 'openai:chat:' is "
                 "empty");
    expect_error("providers:\n  targets:\n    - {id: t1, provider: 'openai-compatible:chat:m'}\n",
                 "3:7: providers.targets[0]: an openai-compatible provider needs base_url");
    expect_error("providers:\n  targets:\n    - {id: t1, provider: 'openai:chat:m', "
                 "base_url: 'ftp://x'}\n",
                 "3:53: providers.targets[0].base_url: expected an http:// or https:// URL, got "
                 "'ftp://x'");
    expect_error("providers:\n  targets:\n    - {id: a, provider: 'openai:chat:m'}\n"
                 "    - {id: a, provider: 'openai:chat:n'}\n",
                 "4:12: providers.targets[1].id: duplicate target id 'a' (first used at 3:12)");
    expect_error("providers:\n  targets:\n    - {provider: 'openai:chat:m'}\n",
                 "3:7: providers.targets[0]: missing required key 'id'");
    expect_error("providers:\n  targets:\n    - {id: a, provider: 'openai:chat:m', "
                 "idle_timeout: forever}\n",
                 "3:56: providers.targets[0].idle_timeout: expected a duration (milliseconds, or "
                 "e.g. 100ms, 30s, 5m), got 'forever'");
    expect_error("providers:\n  targets:\n    - {id: a, provider: 'openai:chat:m', "
                 "ca_file: /nonexistent/kt-ca.pem}\n",
                 "3:51: providers.targets[0].ca_file: cannot read '/nonexistent/kt-ca.pem'");
    expect_error("providers:\n  targets:\n    - a\n",
                 "3:7: providers.targets[0]: expected a mapping, got a scalar");
}

static void test_load_chain_errors(void **state)
{
    struct gv_cfg_err err;
    const char *msg;

    (void)state;
    expect_error(TARGET "policies:\n  chain: [pii-detector, nope]\n",
                 "5:25: policies.chain: unknown policy 'nope' (known: prompt-injection, "
                 "pii-detector, audit-logger, rbac, cost-tracker)");
    expect_error(TARGET "policies:\n  chain: [pii-detector, audit-logger, pii-detector]\n",
                 "5:39: policies.chain: 'pii-detector' is listed twice (first at 5:11)");
    expect_error(TARGET "policies:\n  chain:\n    - rbac\n",
                 "6:7: policies.chain: policy 'rbac' needs settings: add a policy.rbac mapping");
    expect_error(TARGET "policies:\n  chain: pii-detector\n",
                 "5:10: policies.chain: expected a sequence of strings, got a scalar");
    expect_error(TARGET "policies:\n  order: []\n",
                 "5:3: unknown key 'order' in policies (expected one of: chain)");
    expect_error(TARGET "policy:\n  nope: {}\n",
                 "5:3: policy: unknown policy 'nope' (known: prompt-injection, pii-detector, "
                 "audit-logger, rbac, cost-tracker)");
    expect_error(TARGET "policies: {chain: [prompt-injection]}\n"
                        "policy:\n  prompt-injection: {threshold: [1]}\n",
                 "6:33: policy.prompt-injection.threshold: expected a number, got a sequence");
    expect_error(TARGET "policies: {chain: [prompt-injection]}\n"
                        "policy:\n  prompt-injection: {action: redact}\n",
                 "6:30: policy.prompt-injection.action: expected one of block|flag|log, got "
                 "'redact'");
    expect_error(TARGET "policies: {chain: [pii-detector]}\n"
                        "policy:\n  pii-detector: [1]\n",
                 "6:17: policy.pii-detector: expected a mapping, got a sequence");

    /* The key list comes from the policy's own config map, so only its shape is fixed here. */
    msg = refusal(TARGET "policies: {chain: [pii-detector]}\n"
                         "policy:\n  pii-detector: {action: redact, colour: red}\n",
                  &err);
    assert_non_null(strstr(msg, "6:34: unknown key 'colour' in policy.pii-detector "
                                "(expected one of: action, "));
}

static void test_load_top_level_errors(void **state)
{
    struct gw_config *cfg = NULL;
    struct gv_cfg_err err;

    (void)state;
    expect_error(TARGET "polices: {}\n",
                 "4:1: unknown top-level key 'polices' (expected one of: pack, providers, "
                 "policies, policy, gateway, telemetry)");
    expect_error("", "1:1: the configuration is empty");
    expect_error("- a\n", "1:1: expected a mapping at the top level, got a sequence");
    expect_error(TARGET "gateway: {max_body_bytes: 10}\n",
                 "4:27: gateway.max_body_bytes: 10 bytes is out of range [1024, 1.07374e+09]");
    expect_error(TARGET "pack: {name: a, enabled: maybe}\n",
                 "4:26: pack.enabled: expected a boolean (true or false), got 'maybe'");
    expect_error(TARGET "pack: {name: a\n", "5:1: did not find expected ',' or '}' (while "
                                            "parsing a flow mapping at 4:7)");
    assert_int_equal(gw_config_load("/nonexistent/policy.yaml", &cfg, &err), GV_EIO);
    assert_null(cfg);
    assert_string_equal(err.msg, "/nonexistent/policy.yaml: cannot open: No such file or "
                                 "directory");
}

static void test_load_mutated_page_never_crashes(void **state)
{
    /* Small random edits of the page's config must give either a config or
     * one positioned line, and never the secret's value. */
    static const char alphabet[] = "{}[]:,-&*'\"# \n?abz019.~";
    static const char page[] =
        "pack: {name: wandb-governed-experiments, version: 1.0.0, enabled: true}\n"
        "providers:\n"
        "  targets:\n"
        "    - id: experiment-llm\n"
        "      provider: openai:chat:gpt-4o\n"
        "      secret_key_ref: {env: OPENAI_API_KEY}\n"
        "policies:\n"
        "  chain: [prompt-injection, pii-detector, audit-logger]\n"
        "policy:\n"
        "  prompt-injection: {threshold: 0.8, action: block}\n"
        "  pii-detector: {action: redact, entities: [PERSON, EMAIL_ADDRESS]}\n"
        "  audit-logger: {immutable: true, retention_days: 365, log_all_access: true}\n";
    char text[sizeof(page)];
    uint32_t seed = 99;
    int round;
    int edit;
    int ok = 0;
    int bad = 0;

    (void)state;
    for (round = 0; round < 1500; round++) {
        struct gw_config *cfg = NULL;
        struct gv_cfg_err err;
        const char *msg;
        size_t n;
        gv_rc rc;

        memcpy(text, page, sizeof(page));
        for (edit = 0; edit < 1 + round % 3; edit++) {
            unit_lcg(&seed);
            n = (seed >> 8) % (sizeof(page) - 1);
            unit_lcg(&seed);
            text[n] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
        }
        rc = load_text(text, &cfg, &err);
        if (rc == GV_OK) {
            ok++;
            assert_non_null(cfg);
            gw_config_destroy(cfg);
            continue;
        }
        bad++;
        assert_int_equal(rc, GV_ECONFIG);
        assert_null(cfg);
        msg = msg_after_path(&err);
        assert_true(msg[0] >= '1' && msg[0] <= '9'); /* a line number */
        assert_null(strstr(err.msg, "sk-test-not-a-real-key"));
    }
    assert_true(ok > 0);
    assert_true(bad > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_page_styles),
        cmocka_unit_test(test_load_targets_and_gateway),
        cmocka_unit_test(test_load_pack_disabled_and_unchained_settings),
        cmocka_unit_test(test_load_secret_env_errors),
        cmocka_unit_test(test_load_secret_never_in_message),
        cmocka_unit_test(test_load_target_errors),
        cmocka_unit_test(test_load_chain_errors),
        cmocka_unit_test(test_load_top_level_errors),
        cmocka_unit_test(test_load_mutated_page_never_crashes),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
