/* tests/unit/exporters/wandb/test_wandb_api.c - credentials, netrc, retry classes */
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

#include "exporters/wandb/wandb.h"

static char netrc[256];

static int setup(void **state)
{
    int fd;
    snprintf(netrc, sizeof(netrc), "/tmp/kt-wandb-netrc-XXXXXX");
    fd = mkstemp(netrc);
    return fd >= 0 && close(fd) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    unlink(netrc);
    unsetenv("NETRC");
    unsetenv("WANDB_API_KEY");
    unsetenv("WANDB_BASE_URL");
    return 0;
}

static void write_netrc(const char *text)
{
    FILE *f = fopen(netrc, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_netrc_lookup_matches_host_and_port(void **state)
{
    char key[64];

    write_netrc("machine api.wandb.ai\n  login user\n  password aaaa\n"
                "machine 127.0.0.1:8080 login user password bbbb\n"
                "default login x password zzzz\n");
    assert_int_equal(ex_wandb_netrc_lookup(netrc, "127.0.0.1:8080", key, sizeof(key)), GV_OK);
    assert_string_equal(key, "bbbb");
    assert_int_equal(ex_wandb_netrc_lookup(netrc, "api.wandb.ai", key, sizeof(key)), GV_OK);
    assert_string_equal(key, "aaaa");
    assert_int_equal(ex_wandb_netrc_lookup(netrc, "127.0.0.1", key, sizeof(key)), GV_ENOTFOUND);
    assert_int_equal(ex_wandb_netrc_lookup("/nonexistent/netrc", "x", key, sizeof(key)),
                     GV_ENOTFOUND);
    assert_int_equal(ex_wandb_netrc_lookup(netrc, "api.wandb.ai", key, 3), GV_E2BIG);
}

/* The configured entity wins; else the environment's, copied; else "". */
static void test_setting_config_then_env(void **state)
{
    char copy[16];

    (void)state;
    setenv("KT_TEST_WANDB_ENTITY", "team-env", 1);
    assert_string_equal(ex_wandb_setting("team-cfg", "KT_TEST_WANDB_ENTITY", copy, sizeof(copy)),
                        "team-cfg");
    assert_ptr_equal(ex_wandb_setting("", "KT_TEST_WANDB_ENTITY", copy, sizeof(copy)), copy);
    assert_string_equal(copy, "team-env");
    assert_ptr_equal(ex_wandb_setting(NULL, "KT_TEST_WANDB_ENTITY", copy, sizeof(copy)), copy);
    assert_string_equal(copy, "team-env");
    setenv("KT_TEST_WANDB_ENTITY", "", 1);
    assert_string_equal(ex_wandb_setting(NULL, "KT_TEST_WANDB_ENTITY", copy, sizeof(copy)), "");
    unsetenv("KT_TEST_WANDB_ENTITY");
    assert_string_equal(ex_wandb_setting("", "KT_TEST_WANDB_ENTITY", copy, sizeof(copy)), "");
}

static void test_api_init_env_then_netrc(void **state)
{
    struct ex_wandb_api api;

    write_netrc("machine 127.0.0.1:9 login user password fromnetrc\n");
    setenv("NETRC", netrc, 1);
    setenv("WANDB_BASE_URL", "http://127.0.0.1:9///", 1);
    ex_wandb_api_init(&api, NULL);
    assert_string_equal(api.base_url, "http://127.0.0.1:9");
    assert_true(api.have_key);
    assert_string_equal(api.key, "fromnetrc");
    assert_int_equal(strlen(api.client_id), 32);
    ex_wandb_api_free(&api);
    assert_int_equal(api.key[0], '\0');

    setenv("WANDB_API_KEY", "fromenv", 1);
    ex_wandb_api_init(&api, "http://127.0.0.1:10");
    assert_string_equal(api.base_url, "http://127.0.0.1:10");
    assert_string_equal(api.key, "fromenv");
    ex_wandb_api_free(&api);

    unsetenv("WANDB_API_KEY");
    unsetenv("WANDB_BASE_URL");
    ex_wandb_api_init(&api, NULL);
    assert_string_equal(api.base_url, "https://api.wandb.ai");
    assert_false(api.have_key); /* the netrc names another host */
    ex_wandb_api_free(&api);
}

static void test_classify_like_the_go_client(void **state)
{
    assert_int_equal(ex_wandb_classify(200), EX_WANDB_OK);
    assert_int_equal(ex_wandb_classify(204), EX_WANDB_OK);
    assert_int_equal(ex_wandb_classify(0), EX_WANDB_RETRY);
    assert_int_equal(ex_wandb_classify(429), EX_WANDB_RETRY);
    assert_int_equal(ex_wandb_classify(408), EX_WANDB_RETRY);
    assert_int_equal(ex_wandb_classify(500), EX_WANDB_RETRY);
    assert_int_equal(ex_wandb_classify(503), EX_WANDB_RETRY);
    assert_int_equal(ex_wandb_classify(400), EX_WANDB_FATAL);
    assert_int_equal(ex_wandb_classify(401), EX_WANDB_FATAL);
    assert_int_equal(ex_wandb_classify(403), EX_WANDB_FATAL);
    assert_int_equal(ex_wandb_classify(404), EX_WANDB_FATAL);
    assert_int_equal(ex_wandb_classify(409), EX_WANDB_FATAL);
    assert_int_equal(ex_wandb_classify(501), EX_WANDB_FATAL);
}

/* Rows: failures in a row, random draw, expected wait. */
static void test_backoff_ms_doubles_with_jitter_and_cap(void **state)
{
    static const struct {
        unsigned failures;
        uint32_t rnd;
        uint64_t ms;
    } rows[] = {
        {0, 0, 2000},    {0, 249, 2498}, {0, 250, 2000},   {1, 0, 4000},      {1, 125, 4500},
        {2, 0, 8000},    {3, 0, 16000},  {4, 0, 32000},    {4, 249, 39968},   {5, 0, 60000},
        {5, 249, 60000}, {40, 7, 60000}, {1000, 0, 60000}, {~0u, 249, 60000},
    };
    size_t i;

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        assert_int_equal(ex_wandb_backoff_ms(rows[i].failures, rows[i].rnd), rows[i].ms);
    }
}

/* Only a string member is a string; anything else reads as "". */
static void test_json_str_only_strings(void **state)
{
    struct json_object *o = json_tokener_parse("{\"s\":\"x\",\"n\":1,\"z\":null,\"o\":{}}");

    (void)state;
    assert_string_equal(ex_wandb_json_str(o, "s"), "x");
    assert_string_equal(ex_wandb_json_str(o, "n"), "");
    assert_string_equal(ex_wandb_json_str(o, "z"), "");
    assert_string_equal(ex_wandb_json_str(o, "o"), "");
    assert_string_equal(ex_wandb_json_str(o, "missing"), "");
    json_object_put(o);
}

static void test_network_error_is_retry(void **state)
{
    struct ex_wandb_api api;
    struct json_object *vars = json_object_new_object();
    struct json_object *data = NULL;

    setenv("WANDB_API_KEY", "k", 1);
    /* Port 9 (discard) on loopback: nothing listens, the connect fails fast. */
    ex_wandb_api_init(&api, "http://127.0.0.1:9");
    assert_int_equal(
        ex_wandb_api_graphql(&api, "Viewer", "query Viewer { viewer { id } }", vars, &data),
        EX_WANDB_RETRY);
    assert_null(data);
    assert_int_equal(api.last_status, 0);
    assert_true(api.last_error[0] != '\0');
    json_object_put(vars);
    ex_wandb_api_free(&api);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_netrc_lookup_matches_host_and_port, setup, teardown),
    cmocka_unit_test_setup_teardown(test_api_init_env_then_netrc, setup, teardown),
    cmocka_unit_test(test_setting_config_then_env),
    cmocka_unit_test(test_classify_like_the_go_client),
    cmocka_unit_test(test_backoff_ms_doubles_with_jitter_and_cap),
    cmocka_unit_test(test_json_str_only_strings),
    cmocka_unit_test_setup_teardown(test_network_error_is_retry, setup, teardown),
};

#include "tests/unit/unit_main.h"
