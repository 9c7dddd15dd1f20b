/* gateway/gw_oai.c - OpenAI chat-completion request validation: body + headers in, verdict out */
/* SPDX-License-Identifier: Apache-2.0 */
#include "gateway/gw_oai.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/gv_buf.h"
#include "gateway/gw_http.h"

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

struct json_object *gw_oai_parse_json(json_tokener *tok, const char *p, size_t n)
{
    struct json_object *o;
    size_t end, i;

    if (n == 0 || n > (size_t)INT32_MAX) {
        return NULL;
    }
    json_tokener_reset(tok);
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

bool gw_oai_chat_check(json_tokener *tok, const struct gw_oai_hdrs *h, const char *body,
                       size_t len, size_t max_body, struct gw_oai_chat *out,
                       struct gv_record *rec, struct gw_oai_err *err)
{
    struct json_object *v, *messages, *so;
    const char *auth = h->authorization;
    char msg[160];

    memset(out, 0, sizeof(*out));
    out->api_key = "";
    out->model = "";
    if (!check_tag(h->run_id, "X-Wandb-Run-Id", rec->run_id, sizeof(rec->run_id),
                   "invalid_run_id", err) ||
        !check_tag(h->project, "X-Wandb-Project", rec->project, sizeof(rec->project),
                   "invalid_header", err) ||
        !check_tag(h->entity, "X-Wandb-Entity", rec->entity, sizeof(rec->entity),
                   "invalid_header", err) ||
        !check_tag(h->run_group, "X-Wandb-Run-Group", rec->run_group, sizeof(rec->run_group),
                   "invalid_header", err)) {
        return false;
    }
    if (auth && strncasecmp(auth, "Bearer ", 7) == 0) {
        for (auth += 7; *auth == ' '; auth++) {
        }
        out->api_key = auth;
    }
    if (len > max_body) {
        snprintf(msg, sizeof(msg), "Request body of %zu bytes exceeds the limit of %zu bytes.", len,
                 max_body);
        return fail(err, 413, "request_too_large", NULL, msg);
    }
    out->body = gw_oai_parse_json(tok, body, len);
    if (!out->body) {
        return fail(err, 400, "invalid_json", NULL,
                    "We could not parse the JSON body of your request. The body must be valid "
                    "UTF-8 JSON.");
    }
    if (!json_object_is_type(out->body, json_type_object)) {
        return fail(err, 400, "invalid_json", NULL, "The request body must be a JSON object.");
    }
    if (!json_object_object_get_ex(out->body, "model", &v) || !v) {
        return fail(err, 400, "missing_required_parameter", "model",
                    "You must provide a model parameter.");
    }
    if (!json_object_is_type(v, json_type_string) || json_object_get_string_len(v) == 0) {
        return fail(err, 400, "invalid_type", "model", "model must be a non-empty string.");
    }
    out->model = json_object_get_string(v);
    if (!json_object_object_get_ex(out->body, "messages", &messages) || !messages) {
        return fail(err, 400, "missing_required_parameter", "messages",
                    "Missing required parameter: 'messages'.");
    }
    if (!json_object_is_type(messages, json_type_array) ||
        json_object_array_length(messages) == 0) {
        return fail(err, 400, "invalid_type", "messages",
                    "messages must be a non-empty array of message objects.");
    }
    if (json_object_object_get_ex(out->body, "stream", &v) && v) {
        if (!json_object_is_type(v, json_type_boolean)) {
            return fail(err, 400, "invalid_type", "stream", "stream must be a boolean.");
        }
        out->stream = json_object_get_boolean(v);
    }
    if (out->stream && json_object_object_get_ex(out->body, "stream_options", &so) && so &&
        json_object_object_get_ex(so, "include_usage", &v) && v &&
        json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v)) {
        out->client_usage = true;
    }
    return true;
}
