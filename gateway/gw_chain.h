/* gateway/gw_chain.h - the configured policies, run in chain order */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GW_CHAIN_H
#define GW_CHAIN_H

#include <stdbool.h>
#include <stddef.h>

#include "core/gv_buf.h"
#include "core/gv_rc.h"
#include "core/gv_record.h"
#include "gateway/gw_async.h"
#include "gateway/gw_config.h"
#include "gateway/gw_policy.h"
#include "gateway/gw_req.h"

struct json_object;
struct gw_chain;
struct gw_chain_stream;

/* Instantiate every policy of cfg->chain (none when pack.enabled is false):
 * allocate ctx, apply the config map, call init. Errors are GV_ECONFIG with
 * err positioned in the config file. Logs one warning naming the policies that
 * are configured but have no implementation in this build (they pass traffic
 * through) and one line when the pack is disabled.
 * Thread-safety: the chain is read-only after create; share it between workers. */
gv_rc gw_chain_create(const struct gw_config *cfg, const char *state_dir, struct gw_chain **out,
                      struct gv_cfg_err *err);
/* Like gw_chain_create, but every policy is started with check_only set: the
 * same settings and paths are validated, same errors, and nothing is created
 * in state_dir. The chain must not serve requests; only gw_chain_size,
 * gw_chain_name and gw_chain_destroy may be called on it. */
gv_rc gw_chain_create_check(const struct gw_config *cfg, const char *state_dir,
                            struct gw_chain **out, struct gv_cfg_err *err);
void gw_chain_destroy(struct gw_chain *chain);

/* Number of policies and their names, in order (for /health). */
size_t gw_chain_size(const struct gw_chain *chain);
const char *gw_chain_name(const struct gw_chain *chain, size_t i);

/* Run authenticate() of each policy that has it, in order, for a route with no
 * model (GET /v1/models). *out is PASS, the first BLOCK (status 401 unless the
 * policy says otherwise), or a 500 "policy_error" BLOCK when a policy fails. */
void gw_chain_authenticate(struct gw_chain *chain, struct gw_req *req, struct gw_verdict *out);

/* Asks each policy's ready() in order; false with the first reason in why.
 * No I/O: safe on an event loop. */
bool gw_chain_ready(struct gw_chain *chain, char *why, size_t size);

/* Run evaluate() of each prompt policy in order. Records each policy's
 * outcome in req->rec->policies (the ones after a BLOCK are SKIPPED). *out is the
 * most severe verdict; for a BLOCK, code/status/message are the blocker's
 * (code defaults to the policy name, status to 403). A policy that fails (rc)
 * makes the chain BLOCK with status 500 and code "policy_error"; the rc is
 * not returned: the chain always decides. */
void gw_chain_evaluate(struct gw_chain *chain, struct gw_req *req, struct gw_verdict *out);

/* ---- policies in `mode: async` (see gw_policy_ops.is_async) ----
 * gw_chain_evaluate records their outcome slot as PASS and does not run them.
 * Once the request is forwarded, gw_chain_async_start copies the body and
 * queues one detection job on the chain's thread pool; the job comes back to
 * `inbox` on the worker's loop, where gw_chain_async_merge writes the findings
 * (action, score, PII counts, duration) into the request's record. The caller
 * holds the record open until then, without waiting: the answer never does. */
struct gw_chain_async;

/* True when some policy of the chain runs async. */
bool gw_chain_has_async(const struct gw_chain *chain);
/* Start the request's async detection. NULL when there is none to do (no
 * async policy, or all were skipped). When the pool's queue is full the
 * async policies' outcomes become SKIPPED, a warning is logged and NULL is
 * returned: detection is dropped, never the request. `owner` is the caller's,
 * handed back by gw_chain_async_owner. Event-loop thread only. */
struct gw_chain_async *gw_chain_async_start(struct gw_chain *chain, struct gw_req *req,
                                            struct gw_async_inbox *inbox, void *owner);
/* The job's embedded gw_async_job (what the inbox's on_done receives) and back. */
struct gw_chain_async *gw_chain_async_from_job(struct gw_async_job *job);
void *gw_chain_async_owner(const struct gw_chain_async *a);
/* On the loop, after the job came back: findings into req->rec, then frees a. */
void gw_chain_async_merge(struct gw_chain_async *a, struct gw_req *req);

/* True when some policy wants to see answers (scan_responses). */
bool gw_chain_wants_response(const struct gw_chain *chain);

/* True when some policy keeps the answer text in its record (audit-logger's
 * store_content): the relay then collects it into req->answer. */
bool gw_chain_keeps_answer(const struct gw_chain *chain);

/* Non-streamed answer: let response policies rewrite it in place. *rewritten
 * (may be NULL) is set to whether some policy redacted the answer (a REDACT
 * verdict), so the caller can report the request as redacted. A policy that
 * fails stops the walk: its outcome becomes ERROR, rec->error_code
 * "policy_error", and its rc is returned. The answer may then be half
 * rewritten and was not fully checked, so the caller must not send it (fail
 * closed: 500 policy_error). */
gv_rc gw_chain_response_json(struct gw_chain *chain, struct gw_req *req, struct json_object *resp,
                             bool *rewritten);

/* Streamed answers: one stream state per request, text fed per choice index in
 * arrival order. stream_text appends to out what may be sent now (possibly
 * rewritten); final=true flushes what was held back for that choice. A non-OK
 * rc (a policy failed: outcome ERROR, error_code "policy_error"; or out's cap
 * was reached) means this piece was not checked by every policy: the caller
 * discards out, ends the stream with an error and sends nothing more (fail
 * closed). */
struct gw_chain_stream *gw_chain_stream_open(struct gw_chain *chain, struct gw_req *req);
gv_rc gw_chain_stream_text(struct gw_chain_stream *st, int choice, const char *text, size_t len,
                           bool final, struct gv_buf *out);
/* The parts of a streamed choice that carry answer text, each fed as its own
 * stream (an entity held back in one part never mixes with another's text):
 * delta.content, delta.refusal, and delta.tool_calls[k].function.arguments as
 * GW_STREAM_CALL0 + k for k < GW_CHAIN_STREAM_CALLS (later calls pass through
 * unchecked, like choices past the 16th). */
enum { GW_STREAM_CONTENT = 0, GW_STREAM_REFUSAL = 1, GW_STREAM_CALL0 = 2 };
#define GW_CHAIN_STREAM_CALLS 16
/* gw_chain_stream_text for one part of a choice; the same contract. */
gv_rc gw_chain_stream_part(struct gw_chain_stream *st, int choice, int part, const char *text,
                           size_t len, bool final, struct gv_buf *out);
/* True once some stream policy redacted text of this stream (a REDACT verdict). */
bool gw_chain_stream_rewritten(const struct gw_chain_stream *st);
void gw_chain_stream_close(struct gw_chain_stream *st);

/* After the request is finished: price() hooks first (cost-tracker puts the
 * one cost on the record, whatever its place in the chain), then stamp() hooks
 * (audit-logger's head); the record is then final and packed once into
 * req->packed (the thread's scratch, valid until the thread packs another), and
 * complete() hooks run in chain order (ledgers, audit). Never blocks. Frees
 * per-request policy state. */
void gw_chain_complete(struct gw_chain *chain, struct gw_req *req, struct gv_record *rec);

#endif
