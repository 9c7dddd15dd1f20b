/* gateway/gw_trace.c - a request's trace context and the facts its spans need */
/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE /* memmem */
#include "gateway/gw_trace.h"

#include "gateway/gw_jscan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "core/gv_buf.h"
#include "core/gv_time.h"

/* Printable ASCII only: the value goes into events and upstream headers as is. */
static bool tracestate_ok(const char *s)
{
    size_t i, n = strnlen(s, GV_TRACESTATE_MAX + 1);

    if (n > GV_TRACESTATE_MAX) {
        return false;
    }
    for (i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e) {
            return false;
        }
    }
    return true;
}

void gw_trace_begin(struct gv_record *rec, const char *traceparent, const char *tracestate)
{
    struct gv_trace_ids ids;

    gv_trace_derive_ids(rec, &ids);
    memset(rec->parent_span_id, 0, sizeof(rec->parent_span_id));
    rec->tracestate[0] = '\0';
    if (gv_trace_parse(traceparent, rec->trace_id, rec->parent_span_id, &rec->trace_flags) ==
        GV_OK) {
        /* Flags beyond `sampled` are version-specific: only that bit travels. */
        rec->trace_flags &= 1u;
        if (tracestate && tracestate_ok(tracestate)) {
            gv_str_copy(rec->tracestate, sizeof(rec->tracestate), tracestate);
        }
    }
    else {
        memcpy(rec->trace_id, ids.trace, GV_TRACE_ID_LEN);
        rec->trace_flags = 1; /* kt's own traces are recorded */
    }
    memcpy(rec->span_id, ids.server, GV_SPAN_ID_LEN);
    memcpy(rec->upstream_span_id, ids.client, GV_SPAN_ID_LEN);
}

void gw_trace_upstream_start(struct gv_record *rec, const char *url, uint64_t wall_us)
{
    /* Every request of a target has the same URL: parse it once per worker
     * thread and target, not once per request (curl_url allocates). */
    static _Thread_local char last_url[512];
    static _Thread_local char last_host[128];
    static _Thread_local int last_port;

    rec->upstream_start_wall_us = wall_us;
    rec->upstream_first_byte_us = 0;
    if (strlen(url) >= sizeof(last_url) || strcmp(url, last_url) != 0) {
        CURLU *u = curl_url();
        char *host = NULL, *port = NULL;

        last_host[0] = '\0';
        last_port = 0;
        if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
            curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
            gv_str_copy(last_host, sizeof(last_host), host);
            if (curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK && port) {
                long v = strtol(port, NULL, 10);
                last_port = v > 0 && v < 65536 ? (int)v : 0;
            }
        }
        curl_free(host);
        curl_free(port);
        curl_url_cleanup(u);
        gv_str_copy(last_url, sizeof(last_url), strlen(url) < sizeof(last_url) ? url : "");
    }
    gv_str_copy(rec->upstream_host, sizeof(rec->upstream_host), last_host);
    rec->upstream_port = last_port;
}

void gw_trace_first_byte(struct gv_record *rec, uint64_t since_start_us)
{
    if (rec->upstream_first_byte_us == 0) {
        rec->upstream_first_byte_us = since_start_us ? since_start_us : 1;
    }
}

void gw_trace_upstream_header(const struct gv_record *rec, char *out)
{
    gv_trace_format(rec->trace_id, rec->upstream_span_id, rec->trace_flags, out);
}

static void add_reason(struct gv_record *rec, const char *r)
{
    size_t have = strlen(rec->finish_reasons), n = strlen(r);
    size_t need = n + (have ? 1 : 0);

    if (n == 0 || strchr(r, ',') || have + need >= sizeof(rec->finish_reasons)) {
        return;
    }
    if (have) {
        rec->finish_reasons[have++] = ',';
    }
    memcpy(rec->finish_reasons + have, r, n + 1);
}

void gw_trace_response(struct gv_record *rec, struct json_object *o)
{
    struct json_object *v, *choices, *fin;
    size_t i, n;

    if (!o || !json_object_is_type(o, json_type_object)) {
        return;
    }
    if (json_object_object_get_ex(o, "id", &v) && json_object_is_type(v, json_type_string)) {
        gv_str_copy(rec->response_id, sizeof(rec->response_id), json_object_get_string(v));
    }
    if (json_object_object_get_ex(o, "model", &v) && json_object_is_type(v, json_type_string)) {
        gv_str_copy(rec->response_model, sizeof(rec->response_model), json_object_get_string(v));
    }
    if (!json_object_object_get_ex(o, "choices", &choices) ||
        !json_object_is_type(choices, json_type_array)) {
        return;
    }
    n = json_object_array_length(choices);
    for (i = 0; i < n; i++) {
        struct json_object *ch = json_object_array_get_idx(choices, i);
        if (json_object_is_type(ch, json_type_object) &&
            json_object_object_get_ex(ch, "finish_reason", &fin) &&
            json_object_is_type(fin, json_type_string)) {
            add_reason(rec, json_object_get_string(fin));
        }
    }
}

/* A JSON string value with no escapes, copied without its quotes; else nothing. */
static void copy_plain(char *dst, size_t size, const char *v, size_t n)
{
    if (!v || n < 2 || v[0] != '"' || v[n - 1] != '"' || memchr(v, '\\', n)) {
        return;
    }
    n -= 2;
    if (n >= size) {
        n = size - 1;
    }
    memcpy(dst, v + 1, n);
    dst[n] = '\0';
}

void gw_trace_response_spans(struct gv_record *rec, const char *id, size_t idlen, const char *model,
                             size_t mlen, const char *choices, size_t clen)
{
    static const char key[] = "\"finish_reason\"";
    const char *q = choices, *end = choices ? choices + clen : NULL;

    copy_plain(rec->response_id, sizeof(rec->response_id), id, idlen);
    copy_plain(rec->response_model, sizeof(rec->response_model), model, mlen);
    /* A quote-name-quote run is a key: inside a string the quotes would be escaped. */
    while (q && q < end && (q = memmem(q, (size_t)(end - q), key, sizeof(key) - 1)) != NULL) {
        const char *e;
        q += sizeof(key) - 1;
        while (q < end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')) {
            q++;
        }
        if (q >= end || *q != ':') {
            continue;
        }
        q++;
        while (q < end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')) {
            q++;
        }
        if (q >= end || *q != '"') {
            continue; /* null: not finished yet */
        }
        e = memchr(q + 1, '"', (size_t)(end - q - 1));
        if (!e || !gw_trace_finish_reason(rec, q + 1, (size_t)(e - q - 1))) {
            continue;
        }
        q = e + 1;
    }
}

bool gw_trace_finish_reason(struct gv_record *rec, const char *v, size_t n)
{
    char name[32];

    if (n >= sizeof(name) || memchr(v, '\\', n)) {
        return false; /* not a reason OpenAI names; an escaped one is not read */
    }
    memcpy(name, v, n);
    name[n] = '\0';
    add_reason(rec, name);
    return true;
}

void gw_trace_response_head(struct gv_record *rec, const char *p, size_t n)
{
    static const char *const keys[] = {"id", "model"};
    const char *v[2];
    size_t vlen[2];

    if (gw_jscan_members_first(p, n, keys, 2, v, vlen) == GW_JSCAN_FOUND) {
        copy_plain(rec->response_id, sizeof(rec->response_id), v[0], vlen[0]);
        copy_plain(rec->response_model, sizeof(rec->response_model), v[1], vlen[1]);
    }
}

void gw_trace_response_text(struct gv_record *rec, const char *p, size_t n)
{
    static const char *const keys[] = {"id", "model", "choices"};
    const char *v[3];
    size_t vlen[3];

    if (gw_jscan_members(p, n, keys, 3, v, vlen) == GW_JSCAN_FOUND) {
        gw_trace_response_spans(rec, v[0], vlen[0], v[1], vlen[1], v[2], vlen[2]);
    }
}
