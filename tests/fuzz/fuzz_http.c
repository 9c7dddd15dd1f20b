/* tests/fuzz/fuzz_http.c - run-tag validation and OpenAI error bodies on arbitrary bytes */
/* SPDX-License-Identifier: Apache-2.0 */
#include <string.h>

#include <json-c/json.h>

#include "core/gv_buf.h"
#include "core/gv_mem.h"
#include "core/gv_record.h"
#include "gateway/gw_http.h"
#include "tests/fuzz/fuzz.h"

static bool tag_valid_ref(const uint8_t *s, size_t len)
{
    static const char refused[] = ":;,#?/'\\\"";
    size_t i;

    if (len == 0 || len > GV_RUN_TAG_MAX) {
        return false;
    }
    for (i = 0; i < len; i++) {
        if (s[i] <= 0x20 || s[i] == 0x7f || memchr(refused, s[i], sizeof(refused) - 1)) {
            return false;
        }
    }
    return true;
}

static bool ascii(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s >= 0x80) {
            return false;
        }
    }
    return true;
}

/* The error body must parse as JSON with the four OpenAI keys and be valid
 * UTF-8, whatever bytes the message holds: clients parse it blindly. ASCII
 * messages come back unchanged (others may carry U+FFFD replacements). */
static void check_body(const struct gv_buf *b, const char *message, bool has_code)
{
    struct json_object *o, *err, *v;
    json_tokener *tok = json_tokener_new();

    json_tokener_set_flags(tok, JSON_TOKENER_VALIDATE_UTF8);
    o = json_tokener_parse_ex(tok, b->data, (int)b->len);
    FUZZ_CHECK(o != NULL);
    FUZZ_CHECK(json_tokener_get_parse_end(tok) == b->len);
    FUZZ_CHECK(json_object_object_get_ex(o, "error", &err));
    FUZZ_CHECK(json_object_object_get_ex(err, "message", &v));
    FUZZ_CHECK(json_object_is_type(v, json_type_string));
    FUZZ_CHECK(!ascii(message) || strcmp(json_object_get_string(v), message) == 0);
    FUZZ_CHECK(json_object_object_get_ex(err, "type", &v));
    FUZZ_CHECK(json_object_object_get_ex(err, "code", &v));
    FUZZ_CHECK(has_code ? json_object_is_type(v, json_type_string) : v == NULL);
    FUZZ_CHECK(json_object_object_get_ex(err, "param", &v));
    json_object_put(o);
    json_tokener_free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gv_buf b;
    char *msg;
    char ms[32];
    uint64_t us = 0;
    int status;
    size_t i;
    gv_rc rc;

    FUZZ_CHECK(gw_http_run_tag_valid((const char *)data, size) == tag_valid_ref(data, size));
    if (size < 2) {
        return 0;
    }
    status = data[0] * 3;
    FUZZ_CHECK(gw_http_error_type(status) != NULL);
    for (i = 0; i < 8 && i < size; i++) {
        us = us << 8 | data[i];
    }
    gw_http_fmt_ms(us, ms, sizeof(ms));
    FUZZ_CHECK(strnlen(ms, sizeof(ms)) < sizeof(ms));

    /* The message is the input up to its first NUL, as a C string. */
    msg = gv_malloc(size);
    memcpy(msg, data + 1, size - 1);
    msg[size - 1] = '\0';
    gv_buf_init(&b, 0);
    rc = gw_http_error_body(&b, msg, gw_http_error_type(status), data[0] & 1 ? msg : NULL, NULL);
    FUZZ_CHECK(rc == GV_OK);
    check_body(&b, msg, data[0] & 1);
    gv_buf_free(&b);

    /* A capped buffer gives GV_E2BIG with a prefix, never an overflow. */
    gv_buf_init(&b, 16 + (size_t)data[0] % 64);
    rc = gw_http_error_body(&b, msg, "server_error", NULL, msg);
    FUZZ_CHECK(rc == GV_OK || rc == GV_E2BIG);
    if (rc == GV_OK) {
        check_body(&b, msg, false);
    }
    gv_buf_free(&b);
    gv_free(msg);
    return 0;
}
