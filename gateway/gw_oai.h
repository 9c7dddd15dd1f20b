/* gateway/gw_oai.h - OpenAI chat-completion request validation: body + headers in, verdict out */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GW_OAI_H
#define GW_OAI_H

/* Pure: no I/O, no clock, no config. It decides what OpenAI itself would refuse
 * (and the run-tag headers kt adds), with the status, code and param an OpenAI
 * client expects, in the order OpenAI checks them. Whether the model is
 * configured is the caller's question (it needs the config). */

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "core/gv_record.h"

/* The request headers this module reads; NULL when absent. */
struct gw_oai_hdrs {
    const char *run_id;    /* X-Wandb-Run-Id */
    const char *project;   /* X-Wandb-Project */
    const char *entity;    /* X-Wandb-Entity */
    const char *run_group; /* X-Wandb-Run-Group */
    const char *authorization;
};

struct gw_oai_chat {
    struct json_object *body;     /* the parsed body; the caller puts it (also on error) */
    const char *model;            /* borrowed from body */
    struct json_object *messages; /* borrowed from body: the checked messages array */
    const char *api_key;          /* the bearer token, borrowed from the header; "" when none */
    bool stream;
    bool client_usage; /* stream_options.include_usage: true */
};

struct gw_oai_err {
    int status;         /* 400, 413 */
    const char *code;   /* "invalid_json", "missing_required_parameter", ... */
    const char *param;  /* the offending parameter or header, or NULL; may point into param_buf */
    char param_buf[48]; /* a param naming one element: "messages[3].content" */
    char message[256];
};

/* Checks the run tags (copied into rec->run_id, project, entity, run_group),
 * the body size against max_body, then that the body is well-formed UTF-8
 * (RFC 3629: overlongs, encoded surrogates and code points past U+10FFFF are
 * refused, which json-c's own check lets through) with no lone \uD800-style
 * surrogate escape, parses it with tok (json-c, strict) and checks model,
 * messages (objects whose content is a string, an array of objects or null),
 * stream and stream_options (an object whose include_usage is a boolean).
 * true when the request may go on; false with *err filled. */
bool gw_oai_chat_check(json_tokener *tok, const struct gw_oai_hdrs *h, const char *body, size_t len,
                       size_t max_body, struct gw_oai_chat *out, struct gv_record *rec,
                       struct gw_oai_err *err);

/* The bearer token of an Authorization header value (scheme case-insensitive,
 * spaces after it skipped), borrowed from it; "" when there is none. */
const char *gw_oai_bearer(const char *authorization);

/* json-c flags for gw_oai_parse_json. Bytes kt has not checked (upstream
 * answers) are parsed strictly with json-c's own UTF-8 check. A request body
 * has passed gw_http_utf8_valid, which is stricter: json-c's check, a call on
 * every byte of the body (~0.9 us of a small request's ~3.7 us parse and
 * free), would only repeat it. */
#define GW_OAI_JSON_UNCHECKED (JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8)
#define GW_OAI_JSON_UTF8_CHECKED JSON_TOKENER_STRICT

/* Parses exactly one JSON value filling p[0..n) (trailing white space
 * allowed) with tok and json-c `flags` (one of the two above); NULL when it
 * is not one. The caller puts the result. */
struct json_object *gw_oai_parse_json(json_tokener *tok, int flags, const char *p, size_t n);

#endif
