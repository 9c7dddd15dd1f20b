/* gateway/gw_req.h - the request as policies see it */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GW_REQ_H
#define GW_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/gv_buf.h"
#include "core/gv_rc.h"
#include "core/gv_record.h"

struct json_object;
struct gw_target; /* the gateway's; opaque to policies, which read rec->target (its id) */

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
    /* body's messages array once validation found it (policies rewrite texts inside
     * it, never the array itself), so each walk of the texts skips a lookup; NULL:
     * looked up in body. */
    struct json_object *messages;
    struct gv_record *rec;                      /* run tags, principal, outcomes so far */
    bool tags_checked;                          /* the chain's tags() pass ran (gw_chain) */
    void *policy_state[GV_RECORD_MAX_POLICIES]; /* slot i belongs to chain entry i */
    /* rec packed once it is final (gw_chain_complete, before any complete() hook), in
     * the thread's scratch: what complete() hooks and the emitter copy; NULL before. */
    const struct gv_record_packed *packed;
    /* The first choice's answer text as the client got it (after response
     * policies), capped at GW_REQ_ANSWER_MAX; NULL unless some policy keeps it
     * (gw_chain_keeps_answer). Owned by the relay; complete() may copy it. */
    const struct gv_buf *answer;
    bool answer_truncated; /* the answer went on past the cap */
};

/* How much answer text a request keeps for policies that record it. */
#define GW_REQ_ANSWER_MAX (64u * 1024u)

/* Appends answer text to `answer` (capped at GW_REQ_ANSWER_MAX, cut at a UTF-8
 * boundary); sets *truncated once text had to be left out. Never fails. */
void gw_req_answer_append(struct gv_buf *answer, bool *truncated, const char *text, size_t len);

/* Token counts when the upstream's usage is unknown. kt has no tokenizer:
 * `estimate` is the usual ~4 bytes a token, `max` an upper bound (a byte-level
 * BPE token is never shorter than one byte). Each message adds
 * GW_REQ_TOKENS_PER_MESSAGE, the reply GW_REQ_TOKENS_REPLY (chat framing). */
#define GW_REQ_TOKENS_PER_MESSAGE 4u
#define GW_REQ_TOKENS_REPLY 3u
uint64_t gw_req_tokens_estimate(uint64_t bytes);
/* The prompt's tokens (every text gw_req_foreach_text visits, plus framing):
 * *estimate and *max as above. Pure: the body is not changed. */
void gw_req_prompt_tokens(struct gw_req *req, uint64_t *estimate, uint64_t *max);

/* The members of the JSON object obj named names[0..n), found in one walk of its
 * members: out[i] is the value of names[i], NULL when absent or null. A chat body or
 * message has a handful of members, and a hashed lookup of each name (most of them
 * usually absent) costs more than looking at them all. json-c keeps one entry per
 * name (the last of duplicates), as a lookup sees. */
void gw_req_members(struct json_object *obj, const char *const *names, struct json_object **out,
                    size_t n);

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
