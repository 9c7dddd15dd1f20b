/* gateway/gw_policy.h - how a policy plugs into the chain */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GW_POLICY_H
#define GW_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/gv_buf.h"
#include "core/gv_cfg.h"
#include "core/gv_pii.h"
#include "core/gv_rc.h"
#include "core/gv_record.h"

struct gw_req;
struct json_object;
struct gw_policy;

/* Ordered by severity: the chain's decision is the most severe verdict. */
enum gw_action {
    GW_ACTION_PASS = 0,
    GW_ACTION_LOG,    /* record only */
    GW_ACTION_FLAG,   /* allowed, recorded as flagged */
    GW_ACTION_REDACT, /* allowed after rewriting the request */
    GW_ACTION_BLOCK   /* refused with `status` (403 unless the policy says otherwise) */
};

struct gw_verdict {
    enum gw_action action;
    uint16_t status;     /* for BLOCK: 401, 403, 503...; 0 means 403 */
    const char *code;    /* for BLOCK: OpenAI error `code`; NULL means the policy's name */
    const char *message; /* for BLOCK: static text for the client; never prompt text */
    const char *param;   /* for BLOCK: OpenAI error `param` (a header name...), or NULL */
    double score;        /* detector score, if any */
    uint32_t pii_counts[GV_PII_NTYPES];
};

/* Makes out a refusal: action BLOCK with status, code and message (borrowed, so static text:
 * never prompt text). param, score and the counts stay as they are. Any thread. */
void gw_verdict_block(struct gw_verdict *out, uint16_t status, const char *code,
                      const char *message);

/* Makes out what a detector's configured `action` says once it has found something:
 * BLOCK is a 403 refusal with code and message (as gw_verdict_block), LOG, FLAG and
 * REDACT are set as they are. Any thread. */
void gw_verdict_act(struct gw_verdict *out, enum gw_action action, const char *code,
                    const char *message);

#define GW_POL_PROMPT 0x1u   /* evaluate() on requests */
#define GW_POL_RESPONSE 0x2u /* response_json()/stream_text() on answers */
#define GW_POL_COMPLETE 0x4u /* complete() once the request is finished */

struct gw_policy_ops {
    const char *name;                    /* the chain's name: "pii-detector" */
    const struct gv_cfg_map *config_map; /* fills ctx from policy.<name>; may be NULL */
    size_t ctx_size;                     /* chain allocates ctx zeroed, this size */
    unsigned flags;
    bool settings_required; /* chain entry without policy.<name> is an error */
    /* Compile/validate after config_map filled ctx. `settings` is policy.<name>
     * (may be NULL) for hand-parsed parts; errors go to err with positions. */
    gv_rc (*init)(struct gw_policy *pol, const char *path, const struct gv_ynode *settings,
                  struct gv_cfg_err *err);
    /* Runs on every worker thread at once: read ctx only (thread-local scratch is
     * fine). May rewrite the request body (redaction) through gw_req. A decision
     * is never an error: any rc other than GV_OK makes the chain fail closed. */
    gv_rc (*evaluate)(struct gw_policy *pol, struct gw_req *req, struct gw_verdict *out);
    /* Run tags, before any policy's evaluate(): every policy that has this hook
     * is called, in chain order, even after one blocked, so each can clear or
     * replace the tags it refuses (req->rec: run_id, project, entity,
     * run_group) before anything logs or records them. The first BLOCK refuses
     * the request; no evaluate() runs then. A request refused before the chain
     * ran (bad JSON, unknown model) gets the same call from gw_chain_complete()
     * with the verdict ignored, so its record is cleaned too. Thread rules as
     * for evaluate(); any rc other than GV_OK fails closed. */
    gv_rc (*tags)(struct gw_policy *pol, struct gw_req *req, struct gw_verdict *out);
    /* Non-streamed answer: may rewrite the parsed response in place. */
    gv_rc (*response_json)(struct gw_policy *pol, struct gw_req *req, struct json_object *resp,
                           struct gw_verdict *out);
    /* Streamed answer text, piece by piece per choice. The policy appends to `out`
     * what is safe to send now and may hold back a suffix in *state (allocated by
     * the policy on first use, freed by stream_free); `final` flushes everything. */
    gv_rc (*stream_text)(struct gw_policy *pol, struct gw_req *req, void **state, const char *text,
                         size_t len, bool final, struct gv_buf *out, struct gw_verdict *v);
    void (*stream_free)(struct gw_policy *pol, void *state);
    /* After init: does this instance, as configured, read answers at all? When
     * no policy in the chain does, the relay passes answers on without parsing
     * them (only usage is read). NULL: yes, whenever the hooks above exist. */
    bool (*reads_answers)(const struct gw_policy *pol);
    /* After init: does this instance keep the answer text (as the client got
     * it) in its record? The relay then collects it into req->answer. NULL: no. */
    bool (*keeps_answer)(const struct gw_policy *pol);
    /* After the request is finished and before any complete() hook, whatever
     * the chain order: puts the request's cost on the record (cost_usd, the
     * prices, cost_priced), so every complete() hook, the event and every
     * exporter see one cost. Must not block. */
    void (*price)(struct gw_policy *pol, struct gw_req *req, struct gv_record *rec);
    /* After every price() and before any complete(): what this policy itself puts on the
     * record (audit-logger: a list-price cost when nothing priced it, the audit chain's
     * head). The record is final after this pass: the chain packs it once
     * (req->packed), and the complete() hooks and the emitter copy those bytes. Must not
     * block. */
    void (*stamp)(struct gw_policy *pol, struct gw_req *req, struct gv_record *rec);
    /* After init: does this instance run off the request path (`mode: async`)?
     * Then the chain does not call evaluate before forwarding; it calls it on a
     * detection thread after the request went upstream, with a gw_req of its
     * own: a private copy of the body (read only: nothing may be rewritten),
     * model and target as sent, api_key "" and rec NULL. Such an instance may
     * only FLAG or LOG (init refuses the rest); its outcome reaches the record
     * before complete(). NULL: never async. */
    bool (*is_async)(const struct gw_policy *pol);
    /* After the answer was sent (or the request refused), with the record final and
     * packed (req->packed): a complete() hook reads the record and never changes it,
     * as the bytes already packed would not show the change. Must not block. */
    void (*complete)(struct gw_policy *pol, struct gw_req *req, struct gv_record *rec);
    /* Routes that run no chain (GET /v1/models): whether req->api_key names a
     * caller this policy knows. BLOCK with 401 when not; req has no model, target
     * or record. NULL: the policy does not authenticate. Same threading as evaluate. */
    gv_rc (*authenticate)(struct gw_policy *pol, struct gw_req *req, struct gw_verdict *out);
    /* For /health and /readyz, on an event loop: whether requests can be served now
     * as far as this policy knows, from state it already keeps (no I/O). false
     * with a one-line reason in why (no secrets, no prompt text). NULL: ready. */
    bool (*ready)(struct gw_policy *pol, char *why, size_t size);
    void (*destroy)(struct gw_policy *pol);
};

struct gw_policy {
    const struct gw_policy_ops *ops;
    void *ctx;             /* ops->ctx_size bytes, owned by the chain */
    const char *name;      /* chain entry name */
    const char *state_dir; /* the gateway's state dir, for policies that persist */
    /* Set for `kt policy check`: init validates settings and paths but creates
     * nothing (no directories, files, locks) and starts no threads; only
     * destroy is called afterwards, never a request hook. */
    bool check_only;
    /* This entry's index in the chain: its slot in gw_req.policy_state, where
     * it may park per-request state that its stream_free releases. */
    unsigned slot;
};

/* A registry is a NULL-terminated list of policy types. The gateway's own is
 * gw_policies_builtin() (gateway/policies/gw_policies.h), handed down to the config and the
 * chain; tests hand down their own. The type named `name`, or NULL. */
const struct gw_policy_ops *gw_policy_lookup(const struct gw_policy_ops *const *reg,
                                             const char *name);

#endif
