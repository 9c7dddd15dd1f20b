/* gateway/gw_route.c - routing and the small routes: /health, /v1/models, errors */
/* SPDX-License-Identifier: Apache-2.0 */
#include "gateway/gw_route.h"

#include <stdio.h>
#include <string.h>

#include "core/gv_time.h"
#include "gateway/gw_oai.h"
#include "gateway/gw_relay.h"
#include "gateway/gw_req.h"

#define ERR_BODY_MAX (64u * 1024u)

static const char *or_empty(const char *s)
{
    return s ? s : "";
}

void gw_route_kt_headers(struct gv_buf *h, const char *reqid, const char *run_id,
                         enum gv_decision d, uint64_t overhead_us)
{
    char ms[32];

    gw_http_fmt_ms(overhead_us, ms, sizeof(ms));
    gv_buf_append_str(h, "x-kt-request-id: ");
    gv_buf_append_str(h, reqid);
    if (run_id && run_id[0]) {
        /* Run tags passed gw_http_run_tag_valid: no CR, LF or controls. */
        gv_buf_append_str(h, "\r\nx-kt-run-id: ");
        gv_buf_append_str(h, run_id);
    }
    gv_buf_append_str(h, "\r\nx-kt-decision: ");
    gv_buf_append_str(h, gv_decision_str(d));
    gv_buf_append_str(h, "\r\nx-kt-overhead-ms: ");
    gv_buf_append_str(h, ms);
    gv_buf_append_str(h, "\r\n");
}

void gw_route_error_body(struct gv_buf *out, int status, const char *type, const char *code,
                         const char *param, const char *message)
{
    gv_buf_reset(out);
    if (gw_http_error_body(out, message, type ? type : gw_http_error_type(status), code, param) !=
        GV_OK) {
        gv_buf_reset(out);
        gw_http_error_body(out, "error", gw_http_error_type(status), code, NULL);
    }
}

static void reply(struct gw_conn *c, const char *reqid, uint64_t t0, int status, const char *extra,
                  const char *body, size_t len, enum gv_decision d)
{
    char hb[512];
    struct gv_buf h;

    gv_buf_init(&h, sizeof(hb) * 4);
    if (extra) {
        gv_buf_append_str(&h, extra);
    }
    gw_route_kt_headers(&h, reqid, NULL, d, gv_mono_us() - t0);
    gw_conn_reply(c, status, "application/json", h.data, h.len, body, len);
    gv_buf_free(&h);
}

static void reply_error(struct gw_conn *c, const char *reqid, uint64_t t0, int status,
                        const char *extra, const char *code, const char *param, const char *message)
{
    struct gv_buf b;

    gv_buf_init(&b, ERR_BODY_MAX);
    gw_route_error_body(&b, status, NULL, code, param, message);
    reply(c, reqid, t0, status, extra, b.data, b.len, GV_DECISION_ERROR);
    gv_buf_free(&b);
}

void gw_route_refuse(void *arg, struct gw_conn *c, int status, const char *code,
                     const char *message)
{
    struct gw_worker *w = arg;
    char reqid[GW_REQID_LEN + 1];

    gw_reqid_next(&w->ids, reqid);
    gw_conn_set_close(c);
    reply_error(c, reqid, gv_mono_us(), status, NULL, code, NULL, message);
}

static const char *provider_name(enum gw_provider_kind k)
{
    return k == GW_PROVIDER_OPENAI ? "openai" : "openai-compatible";
}

/* Why chat requests would fail now, from state the workers and policies already
 * keep (no I/O on the loop): appends one JSON string per reason to b. */
static gv_rc readiness(struct gw_worker *w, struct gv_buf *b, size_t *nreasons, size_t *conns)
{
    struct gw_server *s = w->srv;
    char why[256];
    int err = 0;
    int i;
    gv_rc rc = GV_OK;

    *nreasons = 0;
    *conns = 0;
    for (i = 0; i < s->nworkers; i++) {
        int e = gw_conns_accept_errno(s->workers[i].conns);
        *conns += gw_conns_count(s->workers[i].conns);
        err = err ? err : e;
    }
    if (w->draining) {
        rc = gv_buf_append_json_str(b, "the gateway is shutting down", 28);
        ++*nreasons;
    }
    if (rc == GV_OK && !gw_chain_ready(s->chain, why, sizeof(why))) {
        rc = gv_buf_append_str(b, *nreasons ? "," : "");
        rc = rc ? rc : gv_buf_append_json_str(b, why, strlen(why));
        ++*nreasons;
    }
    if (rc == GV_OK && err) {
        snprintf(why, sizeof(why), "cannot accept connections (%s)", strerror(err));
        rc = gv_buf_append_str(b, *nreasons ? "," : "");
        rc = rc ? rc : gv_buf_append_json_str(b, why, strlen(why));
        ++*nreasons;
    }
    if (rc == GV_OK && s->max_conns > 0 && *conns >= s->max_conns) {
        snprintf(why, sizeof(why), "at the connection cap (%zu of gateway.max_connections %zu)",
                 *conns, s->max_conns);
        rc = gv_buf_append_str(b, *nreasons ? "," : "");
        rc = rc ? rc : gv_buf_append_json_str(b, why, strlen(why));
        ++*nreasons;
    }
    return rc;
}

/* /livez: the process serves HTTP; nothing else is looked at, so a supervisor
 * does not restart a gateway that only waits for its disk. */
static void handle_livez(struct gw_worker *w, struct gw_conn *c, const char *reqid, uint64_t t0)
{
    static const char body[] = "{\"status\":\"ok\"}";

    (void)w;
    reply(c, reqid, t0, 200, NULL, body, sizeof(body) - 1, GV_DECISION_ALLOWED);
}

/* /health and /readyz: readiness. 503 with status "degraded" and the reasons
 * while chat requests would be refused, so a load balancer stops sending. */
static void handle_health(struct gw_worker *w, struct gw_conn *c, const char *reqid, uint64_t t0)
{
    struct gw_server *s = w->srv;
    const struct gw_config *cfg = s->cfg;
    unsigned long long dropped = 0, pending = 0, held = 0;
    uint64_t up = (gv_mono_us() - s->start_mono) / 1000000u;
    struct gv_buf b, reasons;
    size_t i, n, nreasons = 0, conns = 0;
    gv_rc rc;

    if (s->em && s->em->ops && s->em->ops->stats) {
        s->em->ops->stats(s->em, &dropped, &pending);
    }
    if (s->em && s->em->ops && s->em->ops->held) {
        held = s->em->ops->held(s->em);
    }
    gv_buf_init(&b, 0);
    gv_buf_init(&reasons, ERR_BODY_MAX);
    rc = readiness(w, &reasons, &nreasons, &conns);
    rc = rc ? rc
            : gv_buf_appendf(&b,
                             "{\"status\":\"%s\",\"reasons\":[%s],\"version\":\"%s\","
                             "\"pack\":{\"name\":",
                             nreasons ? "degraded" : "ok", reasons.data ? reasons.data : "",
                             KT_VERSION);
    rc =
        rc ? rc
           : gv_buf_append_json_str(&b, or_empty(cfg->pack_name), strlen(or_empty(cfg->pack_name)));
    rc = rc ? rc : gv_buf_append_str(&b, ",\"version\":");
    rc = rc ? rc
            : gv_buf_append_json_str(&b, or_empty(cfg->pack_version),
                                     strlen(or_empty(cfg->pack_version)));
    rc = rc ? rc
            : gv_buf_appendf(&b, ",\"enabled\":%s},\"targets\":[",
                             cfg->pack_enabled ? "true" : "false");
    for (i = 0; rc == GV_OK && i < cfg->ntargets; i++) {
        const struct gw_target *t = &cfg->targets[i];
        rc = gv_buf_append_str(&b, i ? ",{\"id\":" : "{\"id\":");
        rc = rc ? rc : gv_buf_append_json_str(&b, or_empty(t->id), strlen(or_empty(t->id)));
        rc =
            rc ? rc : gv_buf_appendf(&b, ",\"provider\":\"%s\",\"model\":", provider_name(t->kind));
        rc = rc ? rc : gv_buf_append_json_str(&b, or_empty(t->model), strlen(or_empty(t->model)));
        rc = rc ? rc : gv_buf_append_char(&b, '}');
    }
    rc = rc ? rc : gv_buf_append_str(&b, "],\"chain\":[");
    n = s->chain ? gw_chain_size(s->chain) : 0;
    for (i = 0; rc == GV_OK && i < n; i++) {
        const char *name = or_empty(gw_chain_name(s->chain, i));
        rc = i ? gv_buf_append_char(&b, ',') : GV_OK;
        rc = rc ? rc : gv_buf_append_json_str(&b, name, strlen(name));
    }
    rc = rc ? rc
            : gv_buf_appendf(&b,
                             "],\"uptime_s\":%llu,\"uptime\":%llu,\"workers\":%d,"
                             "\"connections\":{\"open\":%zu,\"max\":%zu},"
                             "\"events\":{\"dropped\":%llu,\"pending\":%llu,\"held\":%llu}}",
                             (unsigned long long)up, (unsigned long long)up, s->nworkers, conns,
                             s->max_conns, dropped, pending, held);
    if (rc != GV_OK) {
        reply_error(c, reqid, t0, 500, NULL, "internal_error", NULL,
                    "could not build health report");
    }
    else if (nreasons) {
        reply(c, reqid, t0, 503, "Retry-After: 1\r\nCache-Control: no-store\r\n", b.data, b.len,
              GV_DECISION_ERROR);
    }
    else {
        reply(c, reqid, t0, 200, "Cache-Control: no-store\r\n", b.data, b.len, GV_DECISION_ALLOWED);
    }
    gv_buf_free(&reasons);
    gv_buf_free(&b);
}

static gv_rc append_model(struct gv_buf *b, bool *first, const char *id, const char *owner,
                          uint64_t created)
{
    gv_rc rc = gv_buf_append_str(b, *first ? "{\"id\":" : ",{\"id\":");

    *first = false;
    rc = rc ? rc : gv_buf_append_json_str(b, id, strlen(id));
    rc = rc ? rc
            : gv_buf_appendf(b, ",\"object\":\"model\",\"created\":%llu,\"owned_by\":",
                             (unsigned long long)created);
    rc = rc ? rc : gv_buf_append_json_str(b, owner, strlen(owner));
    rc = rc ? rc : gv_buf_append_char(b, '}');
    return rc;
}

char *gw_route_models_json(const struct gw_config *cfg, uint64_t created)
{
    struct gv_buf b;
    bool first = true;
    size_t i, j;
    gv_rc rc;

    gv_buf_init(&b, 0);
    rc = gv_buf_append_str(&b, "{\"object\":\"list\",\"data\":[");
    for (i = 0; rc == GV_OK && i < cfg->ntargets; i++) {
        const struct gw_target *t = &cfg->targets[i];
        bool dup = false;
        for (j = 0; j < i; j++) {
            dup = dup || (t->model && cfg->targets[j].model &&
                          strcmp(t->model, cfg->targets[j].model) == 0);
        }
        if (t->model && !dup) {
            rc = append_model(&b, &first, t->model, or_empty(t->id), created);
        }
    }
    for (i = 0; rc == GV_OK && i < cfg->ntargets; i++) {
        const struct gw_target *t = &cfg->targets[i];
        bool dup = false;
        for (j = 0; j < cfg->ntargets; j++) {
            dup = dup ||
                  (t->id && cfg->targets[j].model && strcmp(t->id, cfg->targets[j].model) == 0);
        }
        if (t->id && !dup) {
            rc = append_model(&b, &first, t->id, t->id, created);
        }
    }
    if (rc == GV_OK) {
        rc = gv_buf_append_str(&b, "]}");
    }
    return gv_buf_steal(&b);
}

static void handle_model_get(struct gw_worker *w, struct gw_conn *c, const char *reqid, uint64_t t0,
                             const char *id)
{
    const struct gw_target *t = gw_config_find_target(w->srv->cfg, id);
    struct gv_buf b;
    bool first = true;

    if (!t) {
        reply_error(c, reqid, t0, 404, NULL, "model_not_found", "model",
                    "The model does not exist or is not configured on this gateway.");
        return;
    }
    gv_buf_init(&b, ERR_BODY_MAX);
    /* append_model writes one object; no list framing. */
    append_model(&b, &first, id, or_empty(t->id), w->srv->start_wall / 1000000u);
    reply(c, reqid, t0, 200, NULL, b.data, b.len, GV_DECISION_ALLOWED);
    gv_buf_free(&b);
}

/* The model list says which models a key may reach: with rbac on, it needs a
 * key like the chat route does. */
static bool models_allowed(struct gw_worker *w, struct gw_conn *c, const char *reqid, uint64_t t0,
                           const struct gw_h1_head *h)
{
    const struct gw_h1_hdr *a = gw_h1req_header(h, "authorization");
    char auth[1024];
    struct gw_req req;
    struct gw_verdict v;
    size_t n;

    auth[0] = '\0';
    if (a) {
        n = a->value_len < sizeof(auth) - 1 ? a->value_len : sizeof(auth) - 1;
        memcpy(auth, a->value, n);
        auth[n] = '\0';
    }
    memset(&req, 0, sizeof(req));
    req.model = "";
    req.api_key = gw_oai_bearer(auth);
    gw_chain_authenticate(w->srv->chain, &req, &v);
    if (v.action != GW_ACTION_BLOCK) {
        return true;
    }
    reply_error(c, reqid, t0, v.status, NULL, v.code, NULL, v.message);
    return false;
}

void gw_route_dispatch(void *arg, struct gw_conn *c, const struct gw_conn_req *rq)
{
    struct gw_worker *w = arg;
    const struct gw_h1_head *h = rq->head;
    const char *path = h->path;
    uint64_t t0 = rq->t_start;
    char reqid[GW_REQID_LEN + 1];

    gw_reqid_next(&w->ids, reqid);
    if (strcmp(path, "/v1/chat/completions") == 0) {
        if (h->method != GW_H1_METHOD_POST) {
            reply_error(c, reqid, t0, 405, "Allow: POST\r\n", "method_not_allowed", NULL,
                        "Method not allowed for this URL.");
            return;
        }
        gw_relay_chat(w, c, rq, reqid);
        return;
    }
    if (strcmp(path, "/health") == 0 || strcmp(path, "/readyz") == 0 ||
        strcmp(path, "/livez") == 0 || strcmp(path, "/v1/models") == 0 ||
        strncmp(path, "/v1/models/", 11) == 0) {
        if (h->method != GW_H1_METHOD_GET && h->method != GW_H1_METHOD_HEAD) {
            reply_error(c, reqid, t0, 405, "Allow: GET, HEAD\r\n", "method_not_allowed", NULL,
                        "Method not allowed for this URL.");
            return;
        }
        if (path[1] == 'l') {
            handle_livez(w, c, reqid, t0);
        }
        else if (path[1] == 'h' || path[1] == 'r') {
            handle_health(w, c, reqid, t0);
        }
        else if (!models_allowed(w, c, reqid, t0, h)) {
            return;
        }
        else if (path[10] == '/') {
            handle_model_get(w, c, reqid, t0, path + 11);
        }
        else {
            reply(c, reqid, t0, 200, NULL, w->srv->models_json, strlen(w->srv->models_json),
                  GV_DECISION_ALLOWED);
        }
        return;
    }
    reply_error(c, reqid, t0, 404, NULL, "unknown_url", NULL,
                "Unknown request URL. This gateway serves POST /v1/chat/completions, "
                "GET /v1/models, GET /health (/readyz) and GET /livez.");
}
