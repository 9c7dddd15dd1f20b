/* gateway/gw_req.c - walking the texts of a chat completion request */
/* SPDX-License-Identifier: Apache-2.0 */
#include "gateway/gw_req.h"

#include <json-c/json.h>
#include <string.h>

/* Replacement texts are bounded by the request body cap times a small factor:
 * a redaction placeholder is never much longer than what it replaces. */
#define REPLACEMENT_MAX (64u * 1024u * 1024u)

static gv_rc visit(struct gw_req *req, struct json_object *holder, const char *key,
                   struct json_object *arr, size_t idx, struct json_object *str, const char *role,
                   const char *kind, gw_text_fn fn, void *arg)
{
    struct gv_buf rep;
    bool replace = false;
    gv_rc rc;
    const char *text = json_object_get_string(str);
    size_t len = (size_t)json_object_get_string_len(str);

    gv_buf_init(&rep, REPLACEMENT_MAX);
    rc = fn(arg, role, kind, text, len, &rep, &replace);
    if (rc == GV_OK && replace) {
        struct json_object *nv = json_object_new_string_len(rep.data ? rep.data : "", (int)rep.len);
        if (arr) {
            json_object_array_put_idx(arr, idx, nv);
        }
        else {
            json_object_object_add(holder, key, nv);
        }
        req->body_modified = true;
    }
    gv_buf_free(&rep);
    return rc;
}

static gv_rc visit_content(struct gw_req *req, struct json_object *msg, struct json_object *content,
                           const char *role, gw_text_fn fn, void *arg)
{
    size_t i, n;
    gv_rc rc = GV_OK;

    if (!content) {
        return GV_OK;
    }
    if (json_object_is_type(content, json_type_string)) {
        return visit(req, msg, "content", NULL, 0, content, role, "content", fn, arg);
    }
    if (!json_object_is_type(content, json_type_array)) {
        return GV_OK;
    }
    n = json_object_array_length(content);
    for (i = 0; i < n && rc == GV_OK; i++) {
        struct json_object *part = json_object_array_get_idx(content, i);
        struct json_object *text;
        if (json_object_is_type(part, json_type_string)) {
            rc = visit(req, NULL, NULL, content, i, part, role, "content", fn, arg);
        }
        else if (json_object_is_type(part, json_type_object) &&
                 json_object_object_get_ex(part, "text", &text) &&
                 json_object_is_type(text, json_type_string)) {
            rc = visit(req, part, "text", NULL, 0, text, role, "content", fn, arg);
        }
    }
    return rc;
}

static gv_rc visit_arguments(struct gw_req *req, struct json_object *fnobj, const char *role,
                             gw_text_fn fn, void *arg)
{
    struct json_object *args;
    if (fnobj && json_object_object_get_ex(fnobj, "arguments", &args) &&
        json_object_is_type(args, json_type_string)) {
        return visit(req, fnobj, "arguments", NULL, 0, args, role, "arguments", fn, arg);
    }
    return GV_OK;
}

void gw_req_members(struct json_object *obj, const char *const *names, struct json_object **out,
                    size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        out[i] = NULL;
    }
    json_object_object_foreach(obj, key, val)
    {
        for (i = 0; i < n; i++) {
            /* The first byte first: most members are none of the names. */
            if (key[0] == names[i][0] && strcmp(key, names[i]) == 0) {
                out[i] = val;
                break;
            }
        }
    }
}

/* The members of a message the walk reads (gw_req_members). */
enum { PART_ROLE, PART_CONTENT, PART_TOOL_CALLS, PART_FUNCTION_CALL, NPARTS };
static const char *const PART_NAMES[NPARTS] = {"role", "content", "tool_calls", "function_call"};

gv_rc gw_req_foreach_text(struct gw_req *req, gw_text_fn fn, void *arg)
{
    struct json_object *messages;
    size_t i, n;
    gv_rc rc = GV_OK;

    messages = req->messages;
    if (!messages && (!req->body || !json_object_object_get_ex(req->body, "messages", &messages))) {
        return GV_OK;
    }
    if (!json_object_is_type(messages, json_type_array)) {
        return GV_OK;
    }
    n = json_object_array_length(messages);
    for (i = 0; i < n && rc == GV_OK; i++) {
        struct json_object *msg = json_object_array_get_idx(messages, i);
        struct json_object *calls;
        struct json_object *parts[NPARTS];
        const char *role = "user";
        size_t j, m;

        if (!json_object_is_type(msg, json_type_object)) {
            continue;
        }
        /* Visiting the content may replace it in msg; the other parts are
         * other entries and stay. */
        gw_req_members(msg, PART_NAMES, parts, NPARTS);
        if (json_object_is_type(parts[PART_ROLE], json_type_string)) {
            role = json_object_get_string(parts[PART_ROLE]);
        }
        rc = visit_content(req, msg, parts[PART_CONTENT], role, fn, arg);
        calls = parts[PART_TOOL_CALLS];
        if (rc == GV_OK && json_object_is_type(calls, json_type_array)) {
            m = json_object_array_length(calls);
            for (j = 0; j < m && rc == GV_OK; j++) {
                struct json_object *call = json_object_array_get_idx(calls, j);
                struct json_object *f = NULL;
                if (json_object_is_type(call, json_type_object) &&
                    json_object_object_get_ex(call, "function", &f)) {
                    rc = visit_arguments(req, f, role, fn, arg);
                }
            }
        }
        if (rc == GV_OK && parts[PART_FUNCTION_CALL]) {
            rc = visit_arguments(req, parts[PART_FUNCTION_CALL], role, fn, arg);
        }
    }
    return rc;
}

void gw_req_answer_append(struct gv_buf *answer, bool *truncated, const char *text, size_t len)
{
    size_t room, keep;

    if (!answer || len == 0 || *truncated) {
        return;
    }
    room = answer->len < GW_REQ_ANSWER_MAX ? GW_REQ_ANSWER_MAX - answer->len : 0;
    keep = len;
    if (keep > room) {
        keep = room;
        /* Never end inside a UTF-8 sequence: the kept text stays valid. */
        while (keep > 0 && ((unsigned char)text[keep] & 0xC0u) == 0x80u) {
            keep--;
        }
        *truncated = true;
    }
    if (keep > 0 && gv_buf_append(answer, text, keep) != GV_OK) {
        *truncated = true;
    }
}

uint64_t gw_req_tokens_estimate(uint64_t bytes)
{
    return (bytes + 3u) / 4u;
}

struct prompt_count {
    uint64_t bytes;
    uint64_t estimate;
};

static gv_rc count_text(void *arg, const char *role, const char *kind, const char *text, size_t len,
                        struct gv_buf *replacement, bool *replace)
{
    struct prompt_count *pc = arg;

    (void)role;
    (void)kind;
    (void)text;
    (void)replacement;
    *replace = false;
    pc->bytes += len;
    /* Per text, as a tokenizer would see them: separate texts never share a token. */
    pc->estimate += gw_req_tokens_estimate(len);
    return GV_OK;
}

void gw_req_prompt_tokens(struct gw_req *req, uint64_t *estimate, uint64_t *max)
{
    struct prompt_count pc = {0, 0};
    struct json_object *messages;
    uint64_t framing = GW_REQ_TOKENS_REPLY;

    if (req->body && json_object_object_get_ex(req->body, "messages", &messages) &&
        json_object_is_type(messages, json_type_array)) {
        framing += (uint64_t)json_object_array_length(messages) * GW_REQ_TOKENS_PER_MESSAGE;
    }
    (void)gw_req_foreach_text(req, count_text, &pc);
    *estimate = pc.estimate + framing;
    *max = pc.bytes + framing;
}
