/* gateway/gw_req.h - the request as policies see it */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GW_REQ_H
#define GW_REQ_H

#include <stdbool.h>
#include <stddef.h>

#include "core/gv_buf.h"
#include "core/gv_rc.h"
#include "core/gv_record.h"
#include "gateway/gw_config.h"

struct json_object;

/* The part of a request that policies may read and change. The server embeds
 * it in its own per-request state; everything here lives until the request is
 * finished. Strings are NUL-terminated and never NULL (empty when absent). */
struct gw_req {
    struct json_object *body;       /* parsed request; policies may rewrite it */
    bool body_modified;             /* set by a policy that rewrote body */
    const char *model;              /* the request's `model` */
    const struct gw_target *target; /* where it goes */
    const char *api_key;            /* client's bearer token; "" if none; never log */
    bool stream;
    struct gv_record *rec;          /* run tags, principal, outcomes so far */
    bool tags_checked;              /* the chain's tags() pass ran (gw_chain) */
    void *policy_state[GV_RECORD_MAX_POLICIES]; /* slot i belongs to chain entry i */
};

/* Called for each text the model will read. `role` is the message role
 * ("user", "system", "developer", "tool", "assistant", "function") and `kind`
 * says where the text sits: "content" or "arguments" (tool/function call
 * arguments). To rewrite the text, fill `replacement` and set *replace. */
typedef gv_rc (*gw_text_fn)(void *arg, const char *role, const char *kind, const char *text,
                            size_t len, struct gv_buf *replacement, bool *replace);

/* Visits messages[].content (string or content-part arrays, "text" parts),
 * messages[].tool_calls[].function.arguments and messages[].function_call.arguments,
 * in order. Replacements are written back into req->body (body_modified set).
 * Stops at and returns the first non-OK rc from fn. */
gv_rc gw_req_foreach_text(struct gw_req *req, gw_text_fn fn, void *arg);

#endif
