/* core/gv_event.c - gv_record <-> protobuf GovernanceEvent, hello and frames */
/* SPDX-License-Identifier: Apache-2.0 */
#include "core/gv_event.h"

#include "core/gv_buf.h"

#include <stdlib.h>
#include <string.h>

#include "core/gv_mem.h"
#include "proto/gv_events.pb-c.h"

void gv_put_u32le(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

uint32_t gv_get_u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void gv_put_u64le(uint8_t *p, uint64_t v)
{
    gv_put_u32le(p, (uint32_t)v);
    gv_put_u32le(p + 4, (uint32_t)(v >> 32));
}

uint64_t gv_get_u64le(const uint8_t *p)
{
    return (uint64_t)gv_get_u32le(p) | (uint64_t)gv_get_u32le(p + 4) << 32;
}

/* protobuf-c wants char * even for fields it only reads. */
static char *str_in(const char *s)
{
    return (char *)(uintptr_t)s;
}

/* Packed straight into out: the sender's batch already has the room, so no copy. */
static gv_rc pack_append(const ProtobufCMessage *msg, struct gv_buf *out)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    gv_rc rc;

    if (n > GV_FRAME_MAX) {
        return GV_E2BIG;
    }
    rc = gv_buf_reserve(out, n);
    if (rc) {
        return rc;
    }
    protobuf_c_message_pack(msg, (uint8_t *)out->data + out->len);
    out->len += n;
    out->data[out->len] = '\0';
    return GV_OK;
}

/* weave: helpers for the telemetry fields. */

/* Whole roles only, like the hello's chain: a cut role would read as another. */
static void copy_roles(char *dst, size_t size, const char *src)
{
    size_t n = src ? strlen(src) : 0;

    if (n >= size) {
        n = size - 1;
        while (n > 0 && src[n] != ',') {
            n--;
        }
    }
    if (n) {
        memcpy(dst, src, n);
    }
    dst[n] = '\0';
}

/* Texts from the wire are cut at the same cap the gateway applies. */
static char *dup_capped(const char *s)
{
    size_t n = s ? strnlen(s, GV_CONTENT_MAX + sizeof(GV_CONTENT_TRUNCATED)) : 0;
    char *d = gv_malloc(n + 1);

    if (n) {
        memcpy(d, s, n);
    }
    d[n] = '\0';
    return d;
}

struct gv_content *gv_content_dup(const struct gv_content *c)
{
    struct gv_content *d;

    if (!c) {
        return NULL;
    }
    d = gv_calloc(1, sizeof(*d));
    d->request = gv_strdup(c->request ? c->request : "");
    d->response = gv_strdup(c->response ? c->response : "");
    d->response_len = strlen(d->response);
    d->request_truncated = c->request_truncated;
    d->response_truncated = c->response_truncated;
    return d;
}

void gv_content_free(struct gv_content *c)
{
    if (!c) {
        return;
    }
    gv_free(c->request);
    gv_free(c->response);
    gv_free(c);
}

void gv_record_release(struct gv_record *rec)
{
    if (rec) {
        gv_content_free(rec->content);
        rec->content = NULL;
    }
}
/* items joined with ',' into out[size], whole items only: the first one that does not fit
 * ends the list, since a cut name would read as a different one. */
static void join_whole(char *out, size_t size, char *const *items, size_t n)
{
    struct gv_buf b;
    size_t i;

    gv_buf_init(&b, size - 1);
    for (i = 0; i < n; i++) {
        size_t mark = b.len;
        if ((i > 0 && gv_buf_append_char(&b, ',') != GV_OK) ||
            gv_buf_append_str(&b, items[i]) != GV_OK) {
            gv_buf_truncate(&b, mark);
            break;
        }
    }
    if (b.len) {
        memcpy(out, b.data, b.len);
    }
    out[b.len] = '\0';
    gv_buf_free(&b);
}

static void weave_encode(const struct gv_record *rec, Gv__V1__GovernanceEvent *ev)
{
    ev->n_messages = rec->nmessages;
    ev->roles = str_in(rec->roles);
    ev->price_input_per_mtok = rec->price_input_per_mtok;
    ev->price_output_per_mtok = rec->price_output_per_mtok;
    if (rec->content) {
        ev->has_content = true;
        ev->request_content = str_in(rec->content->request ? rec->content->request : "");
        ev->response_content = str_in(rec->content->response ? rec->content->response : "");
        ev->request_truncated = rec->content->request_truncated;
        ev->response_truncated = rec->content->response_truncated;
    }
}

static void weave_decode(const Gv__V1__GovernanceEvent *ev, struct gv_record *rec)
{
    rec->nmessages = ev->n_messages;
    copy_roles(rec->roles, sizeof(rec->roles), ev->roles);
    rec->price_input_per_mtok = ev->price_input_per_mtok;
    rec->price_output_per_mtok = ev->price_output_per_mtok;
    if (ev->has_content) {
        rec->content = gv_calloc(1, sizeof(*rec->content));
        rec->content->request = dup_capped(ev->request_content);
        rec->content->response = dup_capped(ev->response_content);
        rec->content->response_len = strlen(rec->content->response);
        rec->content->request_truncated = ev->request_truncated;
        rec->content->response_truncated = ev->response_truncated;
    }
}
/* end weave */
/* otlp: trace context and span timings. Encoding fills `ev` from the record
 * (ids only when set: an all-zero id means unknown); decoding copies them back,
 * dropping an id of the wrong length rather than trusting it. `scratch` holds
 * the finish-reason pointers for the encoder and lives as long as `ev`. */
struct otlp_scratch {
    char reasons[sizeof(((struct gv_record *)0)->finish_reasons)];
    char *reasonp[8];
};

static bool otlp_id_set(const uint8_t *id, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (id[i]) {
            return true;
        }
    }
    return false;
}

static ProtobufCBinaryData otlp_bin(const uint8_t *id, size_t n)
{
    ProtobufCBinaryData b = {0, NULL};

    if (otlp_id_set(id, n)) {
        b.len = n;
        b.data = (uint8_t *)(uintptr_t)id;
    }
    return b;
}

static void otlp_encode(const struct gv_record *rec, Gv__V1__GovernanceEvent *ev,
                        Gv__V1__PolicyOutcome *pol, uint32_t npol, struct otlp_scratch *sc)
{
    char *p, *comma;
    uint32_t i;
    size_t n = 0;

    for (i = 0; i < npol; i++) {
        pol[i].start_us = rec->policies[i].start_wall_us;
        pol[i].duration_us = rec->policies[i].duration_us;
    }
    ev->trace_id = otlp_bin(rec->trace_id, GV_TRACE_ID_LEN);
    ev->span_id = otlp_bin(rec->span_id, GV_SPAN_ID_LEN);
    ev->parent_span_id = otlp_bin(rec->parent_span_id, GV_SPAN_ID_LEN);
    ev->upstream_span_id = otlp_bin(rec->upstream_span_id, GV_SPAN_ID_LEN);
    ev->trace_flags = rec->trace_flags;
    ev->tracestate = str_in(rec->tracestate);
    ev->upstream_start_us = rec->upstream_start_wall_us;
    ev->upstream_first_byte_us = rec->upstream_first_byte_us;
    ev->upstream_host = str_in(rec->upstream_host);
    ev->upstream_port = rec->upstream_port;
    ev->response_model = str_in(rec->response_model);
    ev->response_id = str_in(rec->response_id);
    gv_str_copy(sc->reasons, sizeof(sc->reasons), rec->finish_reasons);
    p = sc->reasons;
    while (*p && n < sizeof(sc->reasonp) / sizeof(sc->reasonp[0])) {
        comma = strchr(p, ',');
        sc->reasonp[n++] = p;
        if (!comma) {
            break;
        }
        *comma = '\0';
        p = comma + 1;
    }
    ev->n_finish_reasons = n;
    ev->finish_reasons = sc->reasonp;
}

static void otlp_copy_id(uint8_t *dst, size_t n, ProtobufCBinaryData b)
{
    if (b.len == n) {
        memcpy(dst, b.data, n);
    }
}

static void otlp_decode(const Gv__V1__GovernanceEvent *ev, struct gv_record *rec)
{
    size_t i;

    for (i = 0; i < ev->n_policies && i < GV_RECORD_MAX_POLICIES; i++) {
        rec->policies[i].start_wall_us = ev->policies[i]->start_us;
        rec->policies[i].duration_us = ev->policies[i]->duration_us;
    }
    otlp_copy_id(rec->trace_id, GV_TRACE_ID_LEN, ev->trace_id);
    otlp_copy_id(rec->span_id, GV_SPAN_ID_LEN, ev->span_id);
    otlp_copy_id(rec->parent_span_id, GV_SPAN_ID_LEN, ev->parent_span_id);
    otlp_copy_id(rec->upstream_span_id, GV_SPAN_ID_LEN, ev->upstream_span_id);
    rec->trace_flags = (uint8_t)ev->trace_flags;
    gv_str_copy(rec->tracestate, sizeof(rec->tracestate), ev->tracestate);
    rec->upstream_start_wall_us = ev->upstream_start_us;
    rec->upstream_first_byte_us = ev->upstream_first_byte_us;
    gv_str_copy(rec->upstream_host, sizeof(rec->upstream_host), ev->upstream_host);
    rec->upstream_port = ev->upstream_port;
    gv_str_copy(rec->response_model, sizeof(rec->response_model), ev->response_model);
    gv_str_copy(rec->response_id, sizeof(rec->response_id), ev->response_id);
    join_whole(rec->finish_reasons, sizeof(rec->finish_reasons), ev->finish_reasons,
               ev->n_finish_reasons);
}
/* otlp: end */

gv_rc gv_event_encode(const struct gv_record *rec, const char *instance_id, uint64_t seq,
                      struct gv_buf *out)
{
    Gv__V1__GovernanceEvent ev = GV__V1__GOVERNANCE_EVENT__INIT;
    Gv__V1__PolicyOutcome pol[GV_RECORD_MAX_POLICIES];
    Gv__V1__PolicyOutcome *polp[GV_RECORD_MAX_POLICIES];
    uint32_t pii[GV_RECORD_MAX_POLICIES][GV_PII_NTYPES];
    uint32_t i, j, npol = rec->npolicies;
    struct otlp_scratch otlp_sc; /* otlp: */

    if (npol > GV_RECORD_MAX_POLICIES) {
        npol = GV_RECORD_MAX_POLICIES;
    }
    ev.instance_id = str_in(instance_id);
    ev.seq = seq;
    ev.time_us = rec->start_wall_us;
    ev.request_id = str_in(rec->request_id);
    ev.run_id = str_in(rec->run_id);
    ev.project = str_in(rec->project);
    ev.entity = str_in(rec->entity);
    ev.run_group = str_in(rec->run_group);
    ev.principal = str_in(rec->principal);
    ev.team = str_in(rec->team);
    ev.model = str_in(rec->model);
    ev.target = str_in(rec->target);
    ev.decision = (Gv__V1__Decision)rec->decision;
    ev.error_code = str_in(rec->error_code);
    for (i = 0; i < npol; i++) {
        const struct gv_policy_outcome *o = &rec->policies[i];
        size_t n = GV_PII_NTYPES;

        gv__v1__policy_outcome__init(&pol[i]);
        pol[i].name = str_in(o->name);
        pol[i].action = (Gv__V1__Action)o->action;
        pol[i].score = o->score;
        /* Trailing zero counts cost bytes and say nothing. */
        while (n > 0 && o->pii_counts[n - 1] == 0) {
            n--;
        }
        for (j = 0; j < n; j++) {
            pii[i][j] = o->pii_counts[j];
        }
        pol[i].n_pii_counts = n;
        pol[i].pii_counts = pii[i];
        polp[i] = &pol[i];
    }
    ev.n_policies = npol;
    ev.policies = polp;
    ev.latency_total_us = rec->latency_total_us;
    ev.latency_upstream_us = rec->latency_upstream_us;
    ev.latency_gateway_us = rec->latency_gateway_us;
    ev.tokens_prompt = rec->tokens_prompt;
    ev.tokens_completion = rec->tokens_completion;
    ev.cost_usd = rec->cost_usd;
    ev.http_status = rec->http_status;
    ev.streamed = rec->streamed;
    ev.tokens_estimated = rec->tokens_estimated;
    weave_encode(rec, &ev);                     /* weave: */
    otlp_encode(rec, &ev, pol, npol, &otlp_sc); /* otlp: */
    ev.audit_head_seq = rec->audit_head_seq;
    ev.audit_head_hash = str_in(rec->audit_head_hash);
    return pack_append(&ev.base, out);
}

/* protobuf-c allocates every string and sub-message separately; decoding into a
 * stack arena makes that one pointer bump each, and freeing a no-op. Anything
 * past the arena falls back to the heap. */
struct arena {
    _Alignas(16) unsigned char buf[16384];
    size_t used;
};

static void *arena_alloc(void *data, size_t size)
{
    struct arena *a = data;
    size_t need = (size + 15u) & ~(size_t)15u;

    if (need >= size && need <= sizeof(a->buf) - a->used) {
        void *p = a->buf + a->used;
        a->used += need;
        return p;
    }
    return gv_malloc(size);
}

static void arena_free(void *data, void *p)
{
    struct arena *a = data;

    if ((unsigned char *)p < a->buf || (unsigned char *)p >= a->buf + sizeof(a->buf)) {
        gv_free(p);
    }
}

gv_rc gv_event_decode(const void *p, size_t n, struct gv_record *rec, struct gv_event_meta *meta)
{
    Gv__V1__GovernanceEvent *ev;
    struct arena arena;
    ProtobufCAllocator alloc = {arena_alloc, arena_free, &arena};
    size_t i, j;

    arena.used = 0;
    ev = gv__v1__governance_event__unpack(&alloc, n, p);
    if (!ev) {
        return GV_EPROTO;
    }
    memset(rec, 0, sizeof(*rec));
    gv_str_copy(meta->instance_id, sizeof(meta->instance_id), ev->instance_id);
    meta->seq = ev->seq;
    rec->start_wall_us = ev->time_us;
    gv_str_copy(rec->request_id, sizeof(rec->request_id), ev->request_id);
    gv_str_copy(rec->run_id, sizeof(rec->run_id), ev->run_id);
    gv_str_copy(rec->project, sizeof(rec->project), ev->project);
    gv_str_copy(rec->entity, sizeof(rec->entity), ev->entity);
    gv_str_copy(rec->run_group, sizeof(rec->run_group), ev->run_group);
    gv_str_copy(rec->principal, sizeof(rec->principal), ev->principal);
    gv_str_copy(rec->team, sizeof(rec->team), ev->team);
    gv_str_copy(rec->model, sizeof(rec->model), ev->model);
    gv_str_copy(rec->target, sizeof(rec->target), ev->target);
    /* A decision this build does not know (a newer gateway) counts as an error
     * rather than silently as allowed. */
    if ((int)ev->decision >= 0 && (int)ev->decision <= GV_DECISION_ERROR) {
        rec->decision = (enum gv_decision)ev->decision;
    }
    else {
        rec->decision = GV_DECISION_ERROR;
    }
    gv_str_copy(rec->error_code, sizeof(rec->error_code), ev->error_code);
    /* A head is a seq with a whole SHA-256: anything else is not published. */
    if (ev->audit_head_seq && ev->audit_head_hash &&
        strlen(ev->audit_head_hash) == sizeof(rec->audit_head_hash) - 1 &&
        strspn(ev->audit_head_hash, "0123456789abcdef") == sizeof(rec->audit_head_hash) - 1) {
        rec->audit_head_seq = ev->audit_head_seq;
        memcpy(rec->audit_head_hash, ev->audit_head_hash, sizeof(rec->audit_head_hash));
    }
    for (i = 0; i < ev->n_policies && i < GV_RECORD_MAX_POLICIES; i++) {
        const Gv__V1__PolicyOutcome *o = ev->policies[i];
        struct gv_policy_outcome *d = &rec->policies[i];

        gv_str_copy(d->name, sizeof(d->name), o->name);
        if ((int)o->action >= 0 && (int)o->action <= GV_OUTCOME_ERROR) {
            d->action = (enum gv_outcome_action)o->action;
        }
        else {
            d->action = GV_OUTCOME_ERROR;
        }
        d->score = o->score;
        for (j = 0; j < o->n_pii_counts && j < GV_PII_NTYPES; j++) {
            d->pii_counts[j] = o->pii_counts[j];
        }
    }
    rec->npolicies = (uint32_t)i;
    rec->latency_total_us = ev->latency_total_us;
    rec->latency_upstream_us = ev->latency_upstream_us;
    rec->latency_gateway_us = ev->latency_gateway_us;
    rec->tokens_prompt = ev->tokens_prompt;
    rec->tokens_completion = ev->tokens_completion;
    rec->cost_usd = ev->cost_usd;
    rec->http_status = ev->http_status;
    rec->streamed = ev->streamed;
    rec->tokens_estimated = ev->tokens_estimated;
    weave_decode(ev, rec); /* weave: */
    otlp_decode(ev, rec);  /* otlp: */
    gv__v1__governance_event__free_unpacked(ev, &alloc);
    return GV_OK;
}

gv_rc gv_hello_encode(const struct gv_hello *h, struct gv_buf *out)
{
    Gv__V1__Hello m = GV__V1__HELLO__INIT;
    char chain[sizeof(h->chain)];
    char *names[GV_RECORD_MAX_POLICIES * 2];
    size_t n = 0;
    char *p, *comma;

    m.schema_version = h->schema_version;
    m.instance_id = str_in(h->instance_id);
    m.pack_name = str_in(h->pack_name);
    m.pack_version = str_in(h->pack_version);
    m.pid = h->pid;
    gv_str_copy(chain, sizeof(chain), h->chain);
    p = chain;
    while (*p && n < sizeof(names) / sizeof(names[0])) {
        comma = strchr(p, ',');
        names[n++] = p;
        if (!comma) {
            break;
        }
        *comma = '\0';
        p = comma + 1;
    }
    m.n_chain = n;
    m.chain = names;
    return pack_append(&m.base, out);
}

gv_rc gv_hello_decode(const void *p, size_t n, struct gv_hello *h)
{
    Gv__V1__Hello *m = gv__v1__hello__unpack(NULL, n, p);

    if (!m) {
        return GV_EPROTO;
    }
    memset(h, 0, sizeof(*h));
    h->schema_version = m->schema_version;
    gv_str_copy(h->instance_id, sizeof(h->instance_id), m->instance_id);
    gv_str_copy(h->pack_name, sizeof(h->pack_name), m->pack_name);
    gv_str_copy(h->pack_version, sizeof(h->pack_version), m->pack_version);
    h->pid = m->pid;
    join_whole(h->chain, sizeof(h->chain), m->chain, m->n_chain);
    gv__v1__hello__free_unpacked(m, NULL);
    return GV_OK;
}

gv_rc gv_frame_append(struct gv_buf *out, enum gv_frame_type type, const void *payload, size_t n)
{
    uint8_t hdr[GV_FRAME_HDR];
    size_t mark = out->len;
    gv_rc rc;

    if (n > GV_FRAME_MAX) {
        return GV_E2BIG;
    }
    gv_put_u32le(hdr, (uint32_t)n);
    hdr[4] = (uint8_t)type;
    rc = gv_buf_append(out, hdr, sizeof(hdr));
    if (rc == GV_OK && n) {
        rc = gv_buf_append(out, payload, n);
    }
    if (rc) {
        gv_buf_truncate(out, mark);
    }
    return rc;
}

gv_rc gv_frame_parse(const void *p, size_t n, unsigned *type, const uint8_t **payload, size_t *plen,
                     size_t *consumed)
{
    const uint8_t *b = p;
    uint32_t len;

    if (n < GV_FRAME_HDR) {
        return GV_EAGAIN;
    }
    len = gv_get_u32le(b);
    if (len > GV_FRAME_MAX) {
        return GV_EPROTO;
    }
    if (n - GV_FRAME_HDR < len) {
        return GV_EAGAIN;
    }
    *type = b[4];
    *payload = b + GV_FRAME_HDR;
    *plen = len;
    *consumed = GV_FRAME_HDR + (size_t)len;
    return GV_OK;
}
