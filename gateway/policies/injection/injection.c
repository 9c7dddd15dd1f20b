/* gateway/policies/injection/injection.c - prompt-injection detector */
/* SPDX-License-Identifier: Apache-2.0 */
#include <pthread.h>
#include <stddef.h>
#include <string.h>

#include "core/gv_buf.h"
#include "core/gv_log.h"
#include "core/gv_mem.h"
#include "gateway/gw_policy.h"
#include "gateway/gw_req.h"
#include "gateway/policies/injection/injection.h"

enum injection_action { ACT_BLOCK = 0, ACT_FLAG, ACT_LOG };
/* What each configured action makes of a detection. */
static const enum gw_action act_verdict[] = {
    [ACT_BLOCK] = GW_ACTION_BLOCK, [ACT_FLAG] = GW_ACTION_FLAG, [ACT_LOG] = GW_ACTION_LOG};
enum injection_mode { MODE_SYNC = 0, MODE_ASYNC };

struct injection_ctx {
    double threshold;
    int action; /* index into actions[] */
    int mode;
    bool scan_tool_output;
    struct injection_model *model;
    struct injection_indirect *indirect; /* the profile for tool output */
    pthread_key_t key;                   /* per worker thread: struct worker */
    bool key_ok;
};

static const char *const actions[] = {"block", "flag", "log", NULL};
static const char *const modes[] = {"sync", "async", NULL};

static const struct gv_cfg_map config_map[] = {
    {"threshold", GV_CFG_DOUBLE, offsetof(struct injection_ctx, threshold), "0.8", 0, NULL, 0, 1,
     "detector score at or above which `action` applies"},
    {"action", GV_CFG_ENUM, offsetof(struct injection_ctx, action), "block", 0, actions, 0, 0,
     "`block` refuses with HTTP 403; `flag` lets the request through and records it as flagged; "
     "`log` only records the score"},
    {"mode", GV_CFG_ENUM, offsetof(struct injection_ctx, mode), "sync", 0, modes, 0, 0,
     "`sync` scores before the request is forwarded; `async` scores after it was forwarded, off "
     "the request path, so the request's latency does not include the detector (only `action: "
     "flag` or `log`; `block` with `async` is an error at the key's position). See "
     "[async detection](#async-detection)"},
    {"scan_tool_output", GV_CFG_BOOL, offsetof(struct injection_ctx, scan_tool_output), "true", 0,
     NULL, 0, 0,
     "scan the content of `tool` and `function` messages (tool results, retrieved documents) "
     "with the indirect-injection profile: the score plus evidence for instructions addressed "
     "to the assistant inside data (\"AI assistant: ignore ...\", \"when you read this\", "
     "\"add this to your reply\", \"New instructions:\", an HTML comment that speaks to a "
     "model); `false` leaves tool output unscanned, for agents whose tools return text the "
     "operator trusts"},
    {NULL, 0, 0, NULL, 0, NULL, 0, 0, NULL},
};

/* System prompt bytes kept for scoring user turns against it; a longer one is
 * cut (what it guards is usually stated first). */
#define SYSTEM_MAX (64u * 1024u)

/* Per worker thread: the detector's scratch and the request's system prompt. */
struct worker {
    struct injection_scratch *scratch;
    struct injection_indirect_scratch *indirect;
    struct gv_buf system;
    struct injection_guard guard; /* what `system` guards, built once per request */
};

static void worker_free(void *p)
{
    struct worker *w = p;

    if (!w) {
        return;
    }
    injection_scratch_destroy(w->scratch);
    injection_indirect_scratch_destroy(w->indirect);
    gv_buf_free(&w->system);
    gv_free(w);
}

static gv_rc init(struct gw_policy *pol, const char *path, const struct gv_ynode *settings,
                  struct gv_cfg_err *err)
{
    struct injection_ctx *ctx = pol->ctx;
    gv_rc rc;

    if (ctx->mode == MODE_ASYNC && ctx->action == ACT_BLOCK) {
        rc = gv_cfg_fail(err, path, gv_ynode_get(settings, "mode"),
                         "policy.prompt-injection.mode: async needs action flag or log (the "
                         "request is forwarded before detection ends, so it cannot be blocked)");
        goto out;
    }
    rc = injection_model_create(&injection_weights_builtin, &ctx->model);
    if (rc) {
        gv_log(GV_LOG_ERROR, "policy:prompt-injection", "model does not load", "rc=%s",
               gv_rc_str(rc));
        goto out;
    }
    rc = injection_indirect_create(&ctx->indirect);
    if (rc) {
        gv_log(GV_LOG_ERROR, "policy:prompt-injection", "indirect profile does not compile",
               "rc=%s", gv_rc_str(rc));
        goto out;
    }
    if (pthread_key_create(&ctx->key, worker_free) != 0) {
        rc = GV_EIO;
        goto out;
    }
    ctx->key_ok = true;
out:
    return rc;
}

/* User turns whose own score is kept for scoring them against the system
 * prompt after the walk; a later one is scored again (the same value). */
#define USER_KEEP 256u

struct scan {
    const struct injection_ctx *ctx;
    struct worker *w;
    double best;      /* over the texts that are not user turns */
    double best_user; /* over the user turns, scored alone */
    size_t nuser;     /* user turns met so far */
    double user[USER_KEEP];
};

enum role { ROLE_OTHER = 0, ROLE_USER, ROLE_SYSTEM, ROLE_TOOL };

/* What a message role means here: "system" and "developer" set the rules,
 * "tool" and "function" return data. The first letter picks the one name to
 * compare with. */
static enum role role_of(const char *role)
{
    switch (role[0]) {
    case 'u':
        return strcmp(role, "user") == 0 ? ROLE_USER : ROLE_OTHER;
    case 's':
        return strcmp(role, "system") == 0 ? ROLE_SYSTEM : ROLE_OTHER;
    case 'd':
        return strcmp(role, "developer") == 0 ? ROLE_SYSTEM : ROLE_OTHER;
    case 't':
        return strcmp(role, "tool") == 0 ? ROLE_TOOL : ROLE_OTHER;
    case 'f':
        return strcmp(role, "function") == 0 ? ROLE_TOOL : ROLE_OTHER;
    default:
        return ROLE_OTHER;
    }
}

/* The system and developer texts, joined, so that user turns can be scored
 * against what they guard. Past SYSTEM_MAX the rest is left out. */
static void keep_system(struct scan *sc, const char *text, size_t len)
{
    struct gv_buf *b = &sc->w->system;

    if (b->len < SYSTEM_MAX) {
        size_t room = SYSTEM_MAX - b->len - (b->len ? 1 : 0);
        if (b->len) {
            (void)gv_buf_append_char(b, '\n');
        }
        (void)gv_buf_append(b, text, len < room ? len : room);
    }
}

/* The one walk most requests need: every text scored, the system texts kept.
 * A user turn's score waits for the end of the walk, when it is known whether
 * there is a system prompt to score it against (see user_against_system). */
static gv_rc scan_text(void *arg, const char *role, const char *kind, const char *text, size_t len,
                       struct gv_buf *replacement, bool *replace)
{
    struct scan *sc = arg;
    enum role r = role_of(role);
    bool tool_result = r == ROLE_TOOL && strcmp(kind, "content") == 0;
    double s;

    /* Every text the model reads counts, assistant turns included: a forged
     * earlier answer is as good a carrier as a user message. */
    (void)replacement;
    *replace = false;
    if (r == ROLE_SYSTEM) {
        keep_system(sc, text, len);
    }
    /* A tool's result is data the assistant reads, not a request: instructions
     * addressed to the assistant inside it are the indirect attack. The tool
     * call's own arguments (kind "arguments") are the assistant's words. */
    if (tool_result && !sc->ctx->scan_tool_output) {
        return GV_OK;
    }
    s = injection_score(sc->ctx->model, text, len, sc->w->scratch);
    if (tool_result) {
        s = injection_indirect_score(
            s, injection_indirect_hits(sc->ctx->indirect, text, len, sc->w->indirect));
    }
    if (r == ROLE_USER) {
        if (sc->nuser < USER_KEEP) {
            sc->user[sc->nuser] = s;
        }
        sc->nuser++;
        if (s > sc->best_user) {
            sc->best_user = s;
        }
        return GV_OK;
    }
    if (s > sc->best) {
        sc->best = s;
    }
    return GV_OK;
}

/* Second walk, only with a system prompt: a user turn asking for what the
 * system prompt guards is stronger evidence than its words alone ("Where
 * does the user live now?"). The turns come in the order of the first walk. */
static gv_rc user_against_system(void *arg, const char *role, const char *kind, const char *text,
                                 size_t len, struct gv_buf *replacement, bool *replace)
{
    struct scan *sc = arg;
    double s;

    (void)kind;
    (void)replacement;
    *replace = false;
    if (role_of(role) != ROLE_USER) {
        return GV_OK;
    }
    s = sc->nuser < USER_KEEP ? sc->user[sc->nuser]
                              : injection_score(sc->ctx->model, text, len, sc->w->scratch);
    sc->nuser++;
    s = injection_conversation_score(s, injection_guard_overlap(&sc->w->guard, text, len));
    if (s > sc->best_user) {
        sc->best_user = s;
    }
    return GV_OK;
}

static gv_rc evaluate(struct gw_policy *pol, struct gw_req *req, struct gw_verdict *out)
{
    struct injection_ctx *ctx = pol->ctx;
    struct scan sc;
    gv_rc rc;

    sc.ctx = ctx;
    sc.best = sc.best_user = 0.0;
    sc.nuser = 0;

    sc.w = pthread_getspecific(ctx->key);
    if (!sc.w) {
        sc.w = gv_calloc(1, sizeof(*sc.w));
        sc.w->scratch = injection_scratch_create();
        sc.w->indirect = injection_indirect_scratch_create();
        gv_buf_init(&sc.w->system, SYSTEM_MAX);
        if (pthread_setspecific(ctx->key, sc.w) != 0) {
            worker_free(sc.w);
            rc = GV_EIO;
            goto out;
        }
    }
    gv_buf_reset(&sc.w->system);
    rc = gw_req_foreach_text(req, scan_text, &sc);
    if (rc) {
        goto out;
    }
    if (sc.w->system.len > 0) {
        /* The user turns count only as scored against the system prompt. */
        injection_guard_build(sc.w->system.data, sc.w->system.len, &sc.w->guard);
        sc.best_user = 0.0;
        sc.nuser = 0;
        rc = gw_req_foreach_text(req, user_against_system, &sc);
        if (rc) {
            goto out;
        }
    }
    if (sc.best_user > sc.best) {
        sc.best = sc.best_user;
    }
    out->score = sc.best;
    out->action = GW_ACTION_PASS;
    if (sc.best >= ctx->threshold) {
        gw_verdict_act(out, act_verdict[ctx->action], "prompt-injection",
                       "request blocked by policy prompt-injection");
    }
out:
    return rc;
}

static bool is_async(const struct gw_policy *pol)
{
    const struct injection_ctx *ctx = pol->ctx;

    return ctx->mode == MODE_ASYNC;
}

static void destroy(struct gw_policy *pol)
{
    struct injection_ctx *ctx = pol->ctx;

    if (ctx->key_ok) {
        /* Workers' scratch went with their threads; this thread's is freed here. */
        worker_free(pthread_getspecific(ctx->key));
        (void)pthread_setspecific(ctx->key, NULL);
        pthread_key_delete(ctx->key);
        ctx->key_ok = false;
    }
    injection_model_destroy(ctx->model);
    ctx->model = NULL;
    injection_indirect_destroy(ctx->indirect);
    ctx->indirect = NULL;
}

const struct gw_policy_ops gw_policy_injection = {
    .name = "prompt-injection",
    .config_map = config_map,
    .ctx_size = sizeof(struct injection_ctx),
    .flags = GW_POL_PROMPT,
    .init = init,
    .evaluate = evaluate,
    .is_async = is_async,
    .destroy = destroy,
};
