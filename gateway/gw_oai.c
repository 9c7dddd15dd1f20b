/* gateway/gw_oai.c - OpenAI chat-completion request validation: body + headers in, verdict out */
/* SPDX-License-Identifier: Apache-2.0 */
#include "gateway/gw_oai.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/gv_buf.h"
#include "gateway/gw_http.h"
#include "gateway/gw_req.h"

static bool fail(struct gw_oai_err *err, int status, const char *code, const char *param,
                 const char *message)
{
    err->status = status;
    err->code = code;
    err->param = param;
    snprintf(err->message, sizeof(err->message), "%s", message);
    return false;
}

static bool check_tag(const char *v, const char *name, char *dst, size_t size, const char *code,
                      struct gw_oai_err *err)
{
    size_t n;

    if (!v) {
        return true;
    }
    n = strlen(v);
    if (!gw_http_run_tag_valid(v, n)) {
        err->status = 400;
        err->code = code;
        err->param = name;
        snprintf(err->message, sizeof(err->message),
                 "Invalid %s header: 1 to %d characters, no whitespace, control characters "
                 "or any of :;,#?/'",
                 name, GV_RUN_TAG_MAX);
        return false;
    }
    gv_str_copy(dst, size, v);
    return true;
}

static int hex4(const char *p)
{
    int v = 0, i;

    for (i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') {
            v |= c - '0';
        }
        else if (c >= 'a' && c <= 'f') {
            v |= c - 'a' + 10;
        }
        else if (c >= 'A' && c <= 'F') {
            v |= c - 'A' + 10;
        }
        else {
            return -1;
        }
    }
    return v;
}

/* json-c turns a lone \uD800..\uDFFF escape into U+FFFD, so the tree looks
 * clean while the bytes forwarded unchanged still carry the lone surrogate.
 * Run on a body json-c accepted: in valid JSON a backslash only occurs inside
 * a string and always starts an escape, so walking the escapes is exact. */
static bool surrogate_escapes_paired(const char *p, size_t n)
{
    const char *end = p + n;
    const char *q = memchr(p, '\\', n);
    int hi, lo;

    while (q) {
        if (q + 1 < end && q[1] == 'u' && q + 6 <= end) {
            hi = hex4(q + 2);
            if (hi >= 0xdc00 && hi <= 0xdfff) {
                return false;
            }
            if (hi >= 0xd800 && hi <= 0xdbff) {
                if (q + 12 > end || q[6] != '\\' || q[7] != 'u') {
                    return false;
                }
                lo = hex4(q + 8);
                if (lo < 0xdc00 || lo > 0xdfff) {
                    return false;
                }
                q += 12;
            }
            else {
                q += 6;
            }
        }
        else {
            q += 2;
        }
        q = q < end ? memchr(q, '\\', (size_t)(end - q)) : NULL;
    }
    return true;
}

/* Each message is an object; its content, when present and not null, a string
 * or an array of content-part objects, as OpenAI requires. A message that is
 * not would otherwise be forwarded unread by every policy (they only read
 * objects' strings). */
static bool check_messages(struct json_object *messages, struct gw_oai_err *err)
{
    size_t i, j, n = json_object_array_length(messages);
    struct json_object *m, *content;

    for (i = 0; i < n; i++) {
        m = json_object_array_get_idx(messages, i);
        if (!json_object_is_type(m, json_type_object)) {
            snprintf(err->param_buf, sizeof(err->param_buf), "messages[%zu]", i);
            snprintf(err->message, sizeof(err->message),
                     "Invalid type for 'messages[%zu]': expected an object, but got %s instead.", i,
                     m ? json_type_to_name(json_object_get_type(m)) : "null");
            goto bad;
        }
        if (!json_object_object_get_ex(m, "content", &content) || !content ||
            json_object_is_type(content, json_type_string)) {
            continue;
        }
        if (json_object_is_type(content, json_type_array)) {
            for (j = 0; j < json_object_array_length(content); j++) {
                struct json_object *part = json_object_array_get_idx(content, j), *t, *text;
                if (!json_object_is_type(part, json_type_object)) {
                    snprintf(err->param_buf, sizeof(err->param_buf), "messages[%zu].content[%zu]",
                             i, j);
                    snprintf(err->message, sizeof(err->message),
                             "Invalid type for 'messages[%zu].content[%zu]': expected an "
                             "object (a content part).",
                             i, j);
                    goto bad;
                }
                /* The policies scan text parts' strings only: a text part whose text is
                 * anything else would go upstream unscanned. */
                if (json_object_object_get_ex(part, "type", &t) &&
                    json_object_is_type(t, json_type_string) &&
                    strcmp(json_object_get_string(t), "text") == 0 &&
                    (!json_object_object_get_ex(part, "text", &text) ||
                     !json_object_is_type(text, json_type_string))) {
                    snprintf(err->param_buf, sizeof(err->param_buf),
                             "messages[%zu].content[%zu].text", i, j);
                    snprintf(err->message, sizeof(err->message),
                             "Invalid type for 'messages[%zu].content[%zu].text': expected a "
                             "string.",
                             i, j);
                    goto bad;
                }
            }
            continue;
        }
        snprintf(err->param_buf, sizeof(err->param_buf), "messages[%zu].content", i);
        snprintf(err->message, sizeof(err->message),
                 "Invalid type for 'messages[%zu].content': expected one of a string or array "
                 "of objects, but got %s instead.",
                 i, json_type_to_name(json_object_get_type(content)));
        goto bad;
    }
    return true;
bad:
    err->status = 400;
    err->code = "invalid_type";
    err->param = err->param_buf;
    return false;
}

/* The body's members the checks read (gw_req_members). */
enum { TOP_MODEL, TOP_MESSAGES, TOP_STREAM, TOP_STREAM_OPTIONS, NTOP };
static const char *const TOP_NAMES[NTOP] = {"model", "messages", "stream", "stream_options"};

/* stream_options, when present and not null: an object whose include_usage,
 * when present and not null, is a boolean. OpenAI refuses anything else; kt
 * must not silently put its own object in place of the client's value. */
static bool check_stream_options(struct json_object *so, struct gw_oai_err *err)
{
    struct json_object *v;

    if (!so) {
        return true;
    }
    if (!json_object_is_type(so, json_type_object)) {
        err->status = 400;
        err->code = "invalid_type";
        err->param = "stream_options";
        snprintf(err->message, sizeof(err->message),
                 "Invalid type for 'stream_options': expected an object, but got %s instead.",
                 json_type_to_name(json_object_get_type(so)));
        return false;
    }
    if (json_object_object_get_ex(so, "include_usage", &v) && v &&
        !json_object_is_type(v, json_type_boolean)) {
        err->status = 400;
        err->code = "invalid_type";
        err->param = "stream_options.include_usage";
        snprintf(err->message, sizeof(err->message),
                 "Invalid type for 'stream_options.include_usage': expected a boolean, but got "
                 "%s instead.",
                 json_type_to_name(json_object_get_type(v)));
        return false;
    }
    return true;
}

const char *gw_oai_bearer(const char *auth)
{
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0) {
        return "";
    }
    for (auth += 7; *auth == ' '; auth++) {
    }
    return auth;
}

struct json_object *gw_oai_parse_json(json_tokener *tok, int flags, const char *p, size_t n)
{
    struct json_object *o;
    size_t end, i;

    if (n == 0 || n > (size_t)INT32_MAX) {
        return NULL;
    }
    json_tokener_reset(tok);
    json_tokener_set_flags(tok, flags);
    o = json_tokener_parse_ex(tok, p, (int)n);
    if (!o) {
        return NULL;
    }
    if (json_tokener_get_error(tok) != json_tokener_success) {
        json_object_put(o);
        return NULL;
    }
    end = json_tokener_get_parse_end(tok);
    for (i = end; i < n; i++) {
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n') {
            json_object_put(o);
            return NULL;
        }
    }
    return o;
}

bool gw_oai_chat_check(json_tokener *tok, const struct gw_oai_hdrs *h, const char *body, size_t len,
                       size_t max_body, struct gw_oai_chat *out, struct gv_record *rec,
                       struct gw_oai_err *err)
{
    struct json_object *v, *messages, *so;
    struct json_object *top[NTOP];
    const char *auth = h->authorization;
    char msg[160];

    memset(out, 0, sizeof(*out));
    out->api_key = "";
    out->model = "";
    if (!check_tag(h->run_id, "X-Wandb-Run-Id", rec->run_id, sizeof(rec->run_id), "invalid_run_id",
                   err) ||
        !check_tag(h->project, "X-Wandb-Project", rec->project, sizeof(rec->project),
                   "invalid_header", err) ||
        !check_tag(h->entity, "X-Wandb-Entity", rec->entity, sizeof(rec->entity), "invalid_header",
                   err) ||
        !check_tag(h->run_group, "X-Wandb-Run-Group", rec->run_group, sizeof(rec->run_group),
                   "invalid_header", err)) {
        return false;
    }
    out->api_key = gw_oai_bearer(auth);
    if (len > max_body) {
        snprintf(msg, sizeof(msg), "Request body of %zu bytes exceeds the limit of %zu bytes.", len,
                 max_body);
        return fail(err, 413, "request_too_large", NULL, msg);
    }
    if (!gw_http_utf8_valid(body, len)) {
        return fail(err, 400, "invalid_json", NULL,
                    "We could not parse the JSON body of your request. The body is not valid "
                    "UTF-8 (an overlong form, an encoded surrogate, a code point past U+10FFFF "
                    "or a cut sequence).");
    }
    out->body = gw_oai_parse_json(tok, GW_OAI_JSON_UTF8_CHECKED, body, len);
    if (out->body && !surrogate_escapes_paired(body, len)) {
        return fail(err, 400, "invalid_json", NULL,
                    "We could not parse the JSON body of your request. It contains a lone "
                    "UTF-16 surrogate escape (\\uD800-\\uDFFF without its pair).");
    }
    if (!out->body) {
        return fail(err, 400, "invalid_json", NULL,
                    "We could not parse the JSON body of your request. The body must be valid "
                    "UTF-8 JSON.");
    }
    if (!json_object_is_type(out->body, json_type_object)) {
        return fail(err, 400, "invalid_json", NULL, "The request body must be a JSON object.");
    }
    gw_req_members(out->body, TOP_NAMES, top, NTOP);
    v = top[TOP_MODEL];
    if (!v) {
        return fail(err, 400, "missing_required_parameter", "model",
                    "You must provide a model parameter.");
    }
    if (!json_object_is_type(v, json_type_string) || json_object_get_string_len(v) == 0) {
        return fail(err, 400, "invalid_type", "model", "model must be a non-empty string.");
    }
    out->model = json_object_get_string(v);
    messages = top[TOP_MESSAGES];
    if (!messages) {
        return fail(err, 400, "missing_required_parameter", "messages",
                    "Missing required parameter: 'messages'.");
    }
    if (!json_object_is_type(messages, json_type_array) ||
        json_object_array_length(messages) == 0) {
        return fail(err, 400, "invalid_type", "messages",
                    "messages must be a non-empty array of message objects.");
    }
    if (!check_messages(messages, err)) {
        return false;
    }
    out->messages = messages;
    v = top[TOP_STREAM];
    if (v) {
        if (!json_object_is_type(v, json_type_boolean)) {
            return fail(err, 400, "invalid_type", "stream", "stream must be a boolean.");
        }
        out->stream = json_object_get_boolean(v);
    }
    so = top[TOP_STREAM_OPTIONS];
    if (!check_stream_options(so, err)) {
        return false;
    }
    if (out->stream && so && json_object_object_get_ex(so, "include_usage", &v) && v &&
        json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v)) {
        out->client_usage = true;
    }
    return true;
}
