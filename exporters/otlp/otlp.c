/* exporters/otlp/otlp.c - the OTLP/HTTP exporter: settings, delivery thread, HTTP */
/* SPDX-License-Identifier: Apache-2.0 */
#include "exporters/otlp/otlp.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <zlib.h>

#include "core/gv_cfg.h"
#include "core/gv_log.h"
#include "core/gv_mem.h"
#include "core/gv_thread.h"
#include "core/gv_time.h"
#include "exporters/otlp/otlp.pb-c.h"

#define MOD "otlp"
#define RESP_MAX (64u * 1024u)
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 30000
/* A Retry-After past this is capped: the queue on disk waits, the thread must not. */
#define RETRY_AFTER_MAX_MS 300000L

enum ex_otlp_temporality { TEMP_CUMULATIVE = 0, TEMP_DELTA, TEMP_LOWMEMORY };
enum ex_otlp_compression { COMP_UNSET = 0, COMP_NONE, COMP_GZIP };

static const char *const temporalities[] = {"cumulative", "delta", "lowmemory", NULL};
static const char *const compressions[] = {"", "none", "gzip", NULL};

struct ex_otlp_ctx {
    /* filled by the config map; strings belong to the config document */
    char *endpoint;
    char *traces_endpoint;
    char *metrics_endpoint;
    char *headers;
    int compression;
    char *protocol;
    long timeout_ms;
    char *service_name;
    char *resource_attributes;
    long metric_interval_ms;
    char *temporality;
    size_t queue_max;
    long batch_max;
    long batch_delay_ms;
    bool traces;
    bool metrics;
    bool fsync;
    char *dir;

    /* resolved by init */
    bool on;
    bool delta;
    bool gzip;
    char traces_url[EX_OTLP_URL_MAX];
    char metrics_url[EX_OTLP_URL_MAX];
    struct curl_slist *traces_hdrs, *metrics_hdrs;
    struct ex_otlp_resource res;
    struct ex_otlp_spool *spool;
    struct ex_otlp_metrics *metrics_agg;
    long timeout;
    long interval_ms;
    size_t batch;
    long delay_ms;
    CURL *curl;
    struct gv_buf gz, resp;
    char retry_after[64];

    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;

    _Atomic uint64_t sent, dropped, retries, exports, spans;
};

static const struct gv_cfg_map otlp_config[] = {
    {"endpoint", GV_CFG_STR, offsetof(struct ex_otlp_ctx, endpoint), NULL, 0, NULL, 0, 0,
     "base URL; `/v1/traces` and `/v1/metrics` are appended. Else "
     "`OTEL_EXPORTER_OTLP_ENDPOINT`; with no endpoint at all the exporter is off"},
    {"traces_endpoint", GV_CFG_STR, offsetof(struct ex_otlp_ctx, traces_endpoint), NULL, 0, NULL, 0,
     0,
     "full traces URL, used as is; else `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else from the base"},
    {"metrics_endpoint", GV_CFG_STR, offsetof(struct ex_otlp_ctx, metrics_endpoint), NULL, 0, NULL,
     0, 0,
     "full metrics URL, used as is; else `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`, else from the "
     "base"},
    {"headers", GV_CFG_STR, offsetof(struct ex_otlp_ctx, headers), NULL, 0, NULL, 0, 0,
     "`k=v,k2=v2`, percent-decoded, sent on every request; values are never logged. Else "
     "`OTEL_EXPORTER_OTLP_HEADERS` (and its `_TRACES_`/`_METRICS_` forms)"},
    {"compression", GV_CFG_ENUM, offsetof(struct ex_otlp_ctx, compression), "", 0, compressions, 0,
     0, "compression of each export; else `OTEL_EXPORTER_OTLP_COMPRESSION`, else `none`"},
    {"protocol", GV_CFG_STR, offsetof(struct ex_otlp_ctx, protocol), NULL, 0, NULL, 0, 0,
     "`http/protobuf`, the only one kt sends; anything else is a configuration error. Else "
     "`OTEL_EXPORTER_OTLP_PROTOCOL`"},
    {"timeout", GV_CFG_DURATION, offsetof(struct ex_otlp_ctx, timeout_ms), NULL, 0, NULL, 0, 0,
     "per export request; else `OTEL_EXPORTER_OTLP_TIMEOUT` (ms), else 10 s"},
    {"service_name", GV_CFG_STR, offsetof(struct ex_otlp_ctx, service_name), NULL, 0, NULL, 0, 0,
     "resource `service.name`; else `OTEL_SERVICE_NAME`, else `kt`"},
    {"resource_attributes", GV_CFG_STR, offsetof(struct ex_otlp_ctx, resource_attributes), NULL, 0,
     NULL, 0, 0,
     "`k=v,k2=v2`: more resource attributes, added to `OTEL_RESOURCE_ATTRIBUTES`; the key wins "
     "over the variable"},
    {"metric_export_interval", GV_CFG_DURATION, offsetof(struct ex_otlp_ctx, metric_interval_ms),
     NULL, 0, NULL, 0, 0,
     "how often metrics are exported; else `OTEL_METRIC_EXPORT_INTERVAL` (ms), else 60 s"},
    {"temporality", GV_CFG_STR, offsetof(struct ex_otlp_ctx, temporality), NULL, 0, NULL, 0, 0,
     "`cumulative`, `delta` or `lowmemory` (= delta: kt's instruments are synchronous counters "
     "and histograms); else `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`, else "
     "`cumulative`"},
    {"queue_max", GV_CFG_SIZE, offsetof(struct ex_otlp_ctx, queue_max), "256MiB", 0, NULL, 0, 0,
     "events waiting on disk; past it new ones are dropped and counted"},
    {"batch_max", GV_CFG_INT, offsetof(struct ex_otlp_ctx, batch_max), "0", 0, NULL, 0, 65536,
     "requests per trace export; `0`: `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, else 512"},
    {"batch_delay", GV_CFG_DURATION, offsetof(struct ex_otlp_ctx, batch_delay_ms), NULL, 0, NULL, 0,
     0, "longest wait for a full batch; else `OTEL_BSP_SCHEDULE_DELAY` (ms), else 1 s"},
    {"traces", GV_CFG_BOOL, offsetof(struct ex_otlp_ctx, traces), "true", 0, NULL, 0, 0,
     "export spans (`false` turns the signal off)"},
    {"metrics", GV_CFG_BOOL, offsetof(struct ex_otlp_ctx, metrics), "true", 0, NULL, 0, 0,
     "export metrics (`false` turns the signal off)"},
    {"fsync", GV_CFG_BOOL, offsetof(struct ex_otlp_ctx, fsync), "false", 0, NULL, 0, 0,
     "fdatasync the spool on every append (survives power loss, costs a sync per batch)"},
    {"dir", GV_CFG_STR, offsetof(struct ex_otlp_ctx, dir), NULL, 0, NULL, 0, 0,
     "(path) the spool directory; default `<state>/otlp`"},
    {NULL, 0, 0, NULL, 0, NULL, 0, 0, NULL},
};

/* ---- small parsers ---------------------------------------------------------------- */

static const char *setting(const char *cfg, const char *env)
{
    const char *v;

    if (cfg && cfg[0]) {
        return cfg;
    }
    v = env ? getenv(env) : NULL;
    return v && v[0] ? v : NULL;
}

static bool env_long(const char *name, long *out)
{
    const char *v = getenv(name);

    return v && v[0] && gv_cfg_parse_long(v, out) && *out >= 0;
}

static void trim(char *s)
{
    size_t n = strlen(s), i = 0;

    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t')) {
        s[--n] = '\0';
    }
    while (s[i] == ' ' || s[i] == '\t') {
        i++;
    }
    memmove(s, s + i, n - i + 1);
}

size_t ex_otlp_parse_kv_list(const char *s, struct ex_otlp_kv *out, size_t max)
{
    size_t n = 0;
    const char *p = s;

    while (p && *p && n < max) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        char *k, *v;
        int klen, vlen;

        /* curl_easy_unescape reads a length of 0 as "up to the NUL": empty parts are skipped
         * before it sees them. */
        if (eq && eq > p && (size_t)(eq - p) < sizeof(out->key) * 3 &&
            len < sizeof(out->value) * 3 && (size_t)(eq - p) + 1 < len) {
            k = curl_easy_unescape(NULL, p, (int)(eq - p), &klen);
            v = curl_easy_unescape(NULL, eq + 1, (int)(len - (size_t)(eq - p) - 1), &vlen);
            if (k && v && (size_t)klen < sizeof(out->key) && (size_t)vlen < sizeof(out->value) &&
                !memchr(k, '\0', (size_t)klen) && !memchr(v, '\0', (size_t)vlen)) {
                memcpy(out[n].key, k, (size_t)klen + 1);
                memcpy(out[n].value, v, (size_t)vlen + 1);
                trim(out[n].key);
                trim(out[n].value);
                if (out[n].key[0]) {
                    n++;
                }
            }
            curl_free(k);
            curl_free(v);
        }
        p = comma ? comma + 1 : NULL;
    }
    return n;
}

enum ex_otlp_res ex_otlp_classify(long status)
{
    if (status >= 200 && status < 300) {
        return EX_OTLP_OK;
    }
    /* The OTLP/HTTP specification's retryable answers; network errors too. */
    if (status == 0 || status == 429 || status == 502 || status == 503 || status == 504) {
        return EX_OTLP_RETRY;
    }
    return EX_OTLP_FATAL;
}

long ex_otlp_retry_after_ms(const char *value, long now_wall_s)
{
    long secs;
    time_t when;

    if (!value || !value[0]) {
        return -1;
    }
    if (gv_cfg_parse_long(value, &secs)) {
        return secs < 0 ? -1
                        : (secs > RETRY_AFTER_MAX_MS / 1000 ? RETRY_AFTER_MAX_MS : secs * 1000);
    }
    when = curl_getdate(value, NULL);
    if (when == (time_t)-1) {
        return -1;
    }
    if ((long)when <= now_wall_s) {
        return 0;
    }
    secs = (long)when - now_wall_s;
    return secs > RETRY_AFTER_MAX_MS / 1000 ? RETRY_AFTER_MAX_MS : secs * 1000;
}

/* ---- HTTP --------------------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct ex_otlp_ctx *c = arg;
    size_t len = size * n;

    /* Past the limit the rest is ignored, not an error: only the status matters. */
    (void)gv_buf_append(&c->resp, p, len);
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct ex_otlp_ctx *c = arg;
    size_t len = size * n, v;

    if (len > 12 && strncasecmp(p, "retry-after:", 12) == 0) {
        for (v = 12; v < len && (p[v] == ' ' || p[v] == '\t'); v++) {
        }
        while (len > v && (p[len - 1] == '\r' || p[len - 1] == '\n' || p[len - 1] == ' ')) {
            len--;
        }
        if (len - v < sizeof(c->retry_after)) {
            memcpy(c->retry_after, p + v, len - v);
            c->retry_after[len - v] = '\0';
        }
    }
    return size * n;
}

static gv_rc gzip_into(const struct gv_buf *in, struct gv_buf *out)
{
    unsigned char chunk[65536];
    z_stream z;
    int zr = Z_OK;
    gv_rc rc = GV_OK;

    memset(&z, 0, sizeof(z));
    /* 15 + 16: a gzip wrapper, as Content-Encoding: gzip means. */
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK) {
        return GV_EIO;
    }
    gv_buf_reset(out);
    z.next_in = (Bytef *)(uintptr_t)in->data;
    z.avail_in = (uInt)in->len;
    while (rc == GV_OK && zr != Z_STREAM_END) {
        z.next_out = chunk;
        z.avail_out = sizeof(chunk);
        zr = deflate(&z, Z_FINISH);
        if (zr != Z_OK && zr != Z_STREAM_END) {
            rc = GV_EIO;
            break;
        }
        rc = gv_buf_append(out, chunk, sizeof(chunk) - z.avail_out);
    }
    deflateEnd(&z);
    return rc;
}

/* What the backend said about a 2xx request it took only in part. */
static uint64_t partial_rejected(struct ex_otlp_ctx *c, bool traces)
{
    const ProtobufCMessageDescriptor *d =
        traces ? &kt__otlp__v1__export_trace_service_response__descriptor
               : &kt__otlp__v1__export_metrics_service_response__descriptor;
    ProtobufCMessage *m;
    int64_t rejected = 0;

    if (c->resp.len == 0) {
        return 0;
    }
    m = protobuf_c_message_unpack(d, NULL, c->resp.len, (const uint8_t *)c->resp.data);
    if (!m) {
        return 0;
    }
    if (traces) {
        const Kt__Otlp__V1__ExportTraceServiceResponse *r = (const void *)m;
        rejected = r->partial_success ? r->partial_success->rejected_spans : 0;
    }
    else {
        const Kt__Otlp__V1__ExportMetricsServiceResponse *r = (const void *)m;
        rejected = r->partial_success ? r->partial_success->rejected_data_points : 0;
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return rejected > 0 ? (uint64_t)rejected : 0;
}

static enum ex_otlp_res post(struct ex_otlp_ctx *c, const char *url, struct curl_slist *hdrs,
                             const struct gv_buf *body, long *wait_ms, uint64_t *rejected,
                             bool traces)
{
    const struct gv_buf *send = body;
    long status = 0;
    CURLcode cr;
    enum ex_otlp_res res;

    *wait_ms = -1;
    *rejected = 0;
    if (c->gzip) {
        if (gzip_into(body, &c->gz) != GV_OK) {
            return EX_OTLP_FATAL;
        }
        send = &c->gz;
    }
    gv_buf_reset(&c->resp);
    c->retry_after[0] = '\0';
    curl_easy_setopt(c->curl, CURLOPT_URL, url);
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, send->data ? send->data : "");
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)send->len);
    cr = curl_easy_perform(c->curl);
    if (cr == CURLE_OK) {
        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
    }
    res = ex_otlp_classify(status);
    if (res == EX_OTLP_OK) {
        *rejected = partial_rejected(c, traces);
    }
    else if (res == EX_OTLP_RETRY) {
        *wait_ms = ex_otlp_retry_after_ms(c->retry_after, (long)(gv_wall_us() / 1000000u));
        /* The signal, not the URL: a URL may carry credentials. */
        gv_log(GV_LOG_WARN, MOD, "export failed, will retry",
               "signal=%s status=%ld curl=%d retry_after_ms=%ld", traces ? "traces" : "metrics",
               status, (int)cr, *wait_ms);
    }
    else {
        gv_log(GV_LOG_ERROR, MOD, "export refused, dropped", "signal=%s status=%ld",
               traces ? "traces" : "metrics", status);
    }
    return res;
}

static struct curl_slist *make_headers(const char *general, const char *signal_env, bool gzip)
{
    struct ex_otlp_kv kv[32];
    struct curl_slist *l = NULL, *n;
    const char *sig = getenv(signal_env);
    size_t i, cnt;
    char line[512];

    l = curl_slist_append(l, "Content-Type: application/x-protobuf");
    if (gzip && l) {
        n = curl_slist_append(l, "Content-Encoding: gzip");
        l = n ? n : l;
    }
    if (l) {
        n = curl_slist_append(l, "Expect:");
        l = n ? n : l;
    }
    for (int pass = 0; pass < 2; pass++) {
        const char *src = pass == 0 ? general : sig;
        if (!src || !src[0]) {
            continue;
        }
        cnt = ex_otlp_parse_kv_list(src, kv, sizeof(kv) / sizeof(kv[0]));
        for (i = 0; i < cnt && l; i++) {
            /* Header values are secrets (API keys): they go to libcurl, never to a log. */
            if (strpbrk(kv[i].key, ":\r\n") || strpbrk(kv[i].value, "\r\n")) {
                continue;
            }
            snprintf(line, sizeof(line), "%s: %s", kv[i].key, kv[i].value);
            n = curl_slist_append(l, line);
            l = n ? n : l;
            memset(line, 0, sizeof(line));
        }
    }
    return l;
}

/* ---- delivery thread --------------------------------------------------------------- */

static bool wait_until(struct ex_otlp_ctx *c, uint64_t deadline_mono_us)
{
    struct timespec ts;
    uint64_t now = gv_mono_us();
    bool stop;

    pthread_mutex_lock(&c->lock);
    if (!c->stop && deadline_mono_us > now) {
        gv_time_deadline(CLOCK_REALTIME, deadline_mono_us - now, &ts);
        pthread_cond_timedwait(&c->cond, &c->lock, &ts);
    }
    stop = c->stop;
    pthread_mutex_unlock(&c->lock);
    return stop;
}

static uint64_t backoff_next(uint64_t *backoff_ms, long retry_after_ms)
{
    *backoff_ms = *backoff_ms ? *backoff_ms * 2 : BACKOFF_MIN_MS;
    if (*backoff_ms > BACKOFF_MAX_MS) {
        *backoff_ms = BACKOFF_MAX_MS;
    }
    return retry_after_ms >= 0 ? (uint64_t)retry_after_ms : *backoff_ms;
}

/* One trace export if one is due. Returns true when it sent something (so
 * the loop goes again without waiting). */
static bool traces_step(struct ex_otlp_ctx *c, struct gv_record *recs, struct gv_buf *body,
                        bool stopping, uint64_t *next_try, uint64_t *backoff_ms,
                        uint64_t *pending_since)
{
    uint64_t now = gv_mono_us(), pending = ex_otlp_spool_pending(c->spool), rejected;
    size_t n = 0, i, spans = 0;
    long wait_ms;
    enum ex_otlp_res r;

    if (pending == 0) {
        *pending_since = 0;
        return false;
    }
    if (*pending_since == 0) {
        *pending_since = now;
    }
    if (now < *next_try ||
        (!stopping && pending < c->batch && now < *pending_since + (uint64_t)c->delay_ms * 1000)) {
        return false;
    }
    if (ex_otlp_spool_peek(c->spool, recs, c->batch, &n) != GV_OK || n == 0) {
        return false;
    }
    gv_buf_reset(body);
    if (ex_otlp_spans_encode(&c->res, recs, n, body) != GV_OK) {
        gv_log(GV_LOG_ERROR, MOD, "span encoding failed, batch dropped", "requests=%zu", n);
        atomic_fetch_add(&c->dropped, n);
        (void)ex_otlp_spool_ack(c->spool);
        return true;
    }
    for (i = 0; i < n; i++) {
        spans += ex_otlp_spans_count(&recs[i]);
    }
    r = post(c, c->traces_url, c->traces_hdrs, body, &wait_ms, &rejected, true);
    if (r == EX_OTLP_RETRY) {
        atomic_fetch_add(&c->retries, 1);
        *next_try = now + backoff_next(backoff_ms, wait_ms) * 1000u;
        return false;
    }
    *backoff_ms = 0;
    *pending_since = 0;
    /* The cursor moves first: whoever reads `sent` then finds the batch off the queue. */
    if (ex_otlp_spool_ack(c->spool) != GV_OK) {
        gv_log(GV_LOG_ERROR, MOD, "cannot save the spool cursor", "exporter=otlp");
    }
    if (r == EX_OTLP_OK) {
        atomic_fetch_add(&c->spans, spans - (rejected < spans ? rejected : spans));
        atomic_fetch_add(&c->sent, n);
        if (rejected) {
            gv_log(GV_LOG_WARN, MOD, "backend rejected some spans", "spans=%llu",
                   (unsigned long long)rejected);
        }
    }
    else {
        atomic_fetch_add(&c->dropped, n);
    }
    return true;
}

static void metrics_step(struct ex_otlp_ctx *c, struct gv_buf *body, uint64_t *next_try,
                         uint64_t *backoff_ms)
{
    uint64_t now = gv_mono_us(), rejected;
    long wait_ms;
    enum ex_otlp_res r;

    gv_buf_reset(body);
    if (ex_otlp_metrics_encode(c->metrics_agg, &c->res, gv_wall_us(), body) != GV_OK) {
        *next_try = now + (uint64_t)c->interval_ms * 1000u;
        return;
    }
    r = post(c, c->metrics_url, c->metrics_hdrs, body, &wait_ms, &rejected, false);
    if (r == EX_OTLP_OK) {
        ex_otlp_metrics_acked(c->metrics_agg);
        atomic_fetch_add(&c->exports, 1);
        *backoff_ms = 0;
        *next_try = now + (uint64_t)c->interval_ms * 1000u;
    }
    else if (r == EX_OTLP_RETRY) {
        /* Cumulative points carry everything so far, delta ones everything
         * since the last acknowledged export: retrying later loses nothing. */
        uint64_t w = backoff_next(backoff_ms, wait_ms);
        atomic_fetch_add(&c->retries, 1);
        *next_try = now + (w < (uint64_t)c->interval_ms ? w : (uint64_t)c->interval_ms) * 1000u;
    }
    else {
        *next_try = now + (uint64_t)c->interval_ms * 1000u;
    }
}

static void *sender_main(void *arg)
{
    struct ex_otlp_ctx *c = arg;
    struct gv_record *recs = gv_malloc(c->batch * sizeof(*recs));
    struct gv_buf body;
    uint64_t t_next = 0, t_backoff = 0, pending_since = 0;
    uint64_t m_next = gv_mono_us() + (uint64_t)c->interval_ms * 1000u, m_backoff = 0;
    bool stopping = false;

    gv_buf_init(&body, 0);
    for (;;) {
        uint64_t due;
        bool busy = false;

        if (c->spool) {
            busy = traces_step(c, recs, &body, stopping, &t_next, &t_backoff, &pending_since);
        }
        if (c->metrics_agg && (stopping || gv_mono_us() >= m_next)) {
            metrics_step(c, &body, &m_next, &m_backoff);
        }
        if (stopping) {
            /* One last pass: a batch that still fails stays in the spool for
             * the next start. */
            if (busy) {
                continue;
            }
            break;
        }
        if (busy) {
            continue;
        }
        due = m_next;
        if (c->spool) {
            uint64_t t = pending_since ? pending_since + (uint64_t)c->delay_ms * 1000u
                                       : gv_mono_us() + 200000u;
            t = t > t_next ? t : t_next;
            due = t < due ? t : due;
        }
        stopping = wait_until(c, due);
    }
    gv_buf_free(&body);
    gv_free(recs);
    return NULL;
}

/* ---- the exporter ---------------------------------------------------------------- */

static gv_rc join_url(char *out, const char *base, const char *path)
{
    size_t n = strlen(base);
    int w;

    while (n > 0 && base[n - 1] == '/') {
        n--;
    }
    w = snprintf(out, EX_OTLP_URL_MAX, "%.*s%s", (int)n, base, path);
    return w > 0 && w < EX_OTLP_URL_MAX ? GV_OK : GV_E2BIG;
}

static gv_rc resolve(struct ex_otlp_ctx *c, const char *label)
{
    const char *base = setting(c->endpoint, "OTEL_EXPORTER_OTLP_ENDPOINT");
    const char *tr = setting(c->traces_endpoint, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    const char *mt = setting(c->metrics_endpoint, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT");
    const char *proto = setting(c->protocol, "OTEL_EXPORTER_OTLP_PROTOCOL");
    const char *comp = getenv("OTEL_EXPORTER_OTLP_COMPRESSION");
    const char *temp = setting(c->temporality, "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE");
    const char *svc = setting(c->service_name, "OTEL_SERVICE_NAME");
    struct ex_otlp_kv kv[EX_OTLP_ATTRS_MAX];
    size_t i, j, n;
    long v;

    c->traces_url[0] = c->metrics_url[0] = '\0';
    if (tr && snprintf(c->traces_url, EX_OTLP_URL_MAX, "%s", tr) >= EX_OTLP_URL_MAX) {
        return GV_E2BIG;
    }
    if (!tr && base && join_url(c->traces_url, base, "/v1/traces") != GV_OK) {
        return GV_E2BIG;
    }
    if (mt && snprintf(c->metrics_url, EX_OTLP_URL_MAX, "%s", mt) >= EX_OTLP_URL_MAX) {
        return GV_E2BIG;
    }
    if (!mt && base && join_url(c->metrics_url, base, "/v1/metrics") != GV_OK) {
        return GV_E2BIG;
    }
    if (!c->traces) {
        c->traces_url[0] = '\0';
    }
    if (!c->metrics) {
        c->metrics_url[0] = '\0';
    }
    /* The standard switch that turns every OpenTelemetry SDK off. */
    if (getenv("OTEL_SDK_DISABLED") && strcasecmp(getenv("OTEL_SDK_DISABLED"), "true") == 0) {
        c->traces_url[0] = c->metrics_url[0] = '\0';
    }
    c->on = c->traces_url[0] || c->metrics_url[0];
    if (proto && strcmp(proto, "http/protobuf") != 0) {
        gv_log(GV_LOG_ERROR, MOD, "unsupported protocol (kt sends http/protobuf)", "protocol=%s",
               proto);
        return GV_ECONFIG;
    }
    if (c->compression == COMP_UNSET && comp && comp[0]) {
        if (strcmp(comp, "gzip") == 0) {
            c->compression = COMP_GZIP;
        }
        else if (strcmp(comp, "none") != 0) {
            gv_log(GV_LOG_ERROR, MOD, "unsupported compression", "value=%s", comp);
            return GV_ECONFIG;
        }
    }
    c->gzip = c->compression == COMP_GZIP;
    c->timeout = c->timeout_ms > 0
                     ? c->timeout_ms
                     : (env_long("OTEL_EXPORTER_OTLP_TIMEOUT", &v) && v > 0 ? v : 10000);
    c->interval_ms = c->metric_interval_ms > 0
                         ? c->metric_interval_ms
                         : (env_long("OTEL_METRIC_EXPORT_INTERVAL", &v) && v > 0 ? v : 60000);
    c->batch =
        c->batch_max > 0
            ? (size_t)c->batch_max
            : (env_long("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", &v) && v > 0 && v <= 65536 ? (size_t)v
                                                                                     : 512);
    c->delay_ms = c->batch_delay_ms > 0
                      ? c->batch_delay_ms
                      : (env_long("OTEL_BSP_SCHEDULE_DELAY", &v) && v > 0 ? v : 1000);
    if (temp) {
        for (i = 0; temporalities[i] && strcasecmp(temporalities[i], temp) != 0; i++) {
        }
        if (!temporalities[i]) {
            gv_log(GV_LOG_ERROR, MOD, "unknown temporality preference", "value=%s", temp);
            return GV_ECONFIG;
        }
    }
    /* The resource: service.name, then the attributes (config over env). */
    c->res.n = 0;
    n = ex_otlp_parse_kv_list(getenv("OTEL_RESOURCE_ATTRIBUTES"), kv, EX_OTLP_ATTRS_MAX);
    if (c->resource_attributes) {
        struct ex_otlp_kv more[EX_OTLP_ATTRS_MAX];
        size_t m = ex_otlp_parse_kv_list(c->resource_attributes, more, EX_OTLP_ATTRS_MAX);
        for (j = 0; j < m; j++) {
            for (i = 0; i < n && strcmp(kv[i].key, more[j].key) != 0; i++) {
            }
            if (i < n) {
                kv[i] = more[j];
            }
            else if (n < EX_OTLP_ATTRS_MAX) {
                kv[n++] = more[j];
            }
        }
    }
    snprintf(c->res.kv[0].key, sizeof(c->res.kv[0].key), "service.name");
    snprintf(c->res.kv[0].value, sizeof(c->res.kv[0].value), "%s", svc ? svc : "kt");
    c->res.n = 1;
    for (i = 0; i < n; i++) {
        if (strcmp(kv[i].key, "service.name") == 0) {
            if (!svc) {
                c->res.kv[0] = kv[i];
            }
            continue;
        }
        c->res.kv[c->res.n++] = kv[i];
    }
    if (label && label[0]) {
        for (i = 0; i < c->res.n && strcmp(c->res.kv[i].key, "service.instance.id") != 0; i++) {
        }
        if (i == c->res.n) {
            snprintf(c->res.kv[i].key, sizeof(c->res.kv[i].key), "service.instance.id");
            snprintf(c->res.kv[i].value, sizeof(c->res.kv[i].value), "%s", label);
            c->res.n++;
        }
    }
    /* Delta for lowmemory too: kt's instruments are all synchronous counters
     * and histograms, which that preference exports as delta. */
    c->delta = temp && strcasecmp(temp, "cumulative") != 0;
    return GV_OK;
}

static gv_rc otlp_init(struct ex_exporter *ex, const char *state_dir)
{
    struct ex_otlp_ctx *c = ex->ctx;
    char dir[4200], host[256];
    bool delta;
    gv_rc rc;

    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    gv_buf_init(&c->gz, 0);
    gv_buf_init(&c->resp, RESP_MAX);
    if (gethostname(host, sizeof(host) - 1) != 0) {
        host[0] = '\0';
    }
    host[sizeof(host) - 1] = '\0';
    rc = resolve(c, host);
    if (rc) {
        return rc == GV_E2BIG ? GV_ECONFIG : rc;
    }
    if (!c->on) {
        gv_log(GV_LOG_INFO, MOD, "no OTLP endpoint set; exporter off", "exporter=%s", ex->name);
        return GV_OK;
    }
    delta = c->delta;
    if (c->dir && c->dir[0]) {
        snprintf(dir, sizeof(dir), "%s", c->dir);
    }
    else {
        snprintf(dir, sizeof(dir), "%s/otlp", state_dir);
    }
    c->curl = curl_easy_init();
    if (!c->curl) {
        return GV_EIO;
    }
    curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c->curl, CURLOPT_USERAGENT, "kt/" KT_VERSION);
    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, c->timeout);
    curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, c->timeout);
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(c->curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c->curl, CURLOPT_HEADERDATA, c);
    if (c->traces_url[0]) {
        rc = ex_otlp_spool_open(dir, c->queue_max, c->fsync, &c->spool);
        if (rc) {
            gv_log(GV_LOG_ERROR, MOD, "cannot open the spool", "dir=%s", dir);
            return rc;
        }
        c->traces_hdrs = make_headers(setting(c->headers, "OTEL_EXPORTER_OTLP_HEADERS"),
                                      "OTEL_EXPORTER_OTLP_TRACES_HEADERS", c->gzip);
    }
    if (c->metrics_url[0]) {
        c->metrics_agg = ex_otlp_metrics_create(delta, gv_wall_us());
        c->metrics_hdrs = make_headers(setting(c->headers, "OTEL_EXPORTER_OTLP_HEADERS"),
                                       "OTEL_EXPORTER_OTLP_METRICS_HEADERS", c->gzip);
    }
    rc = gv_thread_start(&c->thread, "kt-agent-otlp", GV_THREAD_SERVING, sender_main, c);
    if (rc) {
        return rc;
    }
    c->started = true;
    gv_log(GV_LOG_INFO, MOD, "exporting", "traces=%s metrics=%s compression=%s temporality=%s",
           c->traces_url[0] ? "on" : "off", c->metrics_url[0] ? "on" : "off",
           c->gzip ? "gzip" : "none", delta ? "delta" : "cumulative");
    return GV_OK;
}

/* Its own failures are counted here (dropped), never the agent's: always GV_OK. */
static gv_rc otlp_events(struct ex_exporter *ex, const struct ex_event *evs, size_t n)
{
    struct ex_otlp_ctx *c = ex->ctx;
    size_t i, dropped = 0;

    if (!c->on) {
        return GV_OK;
    }
    if (c->spool) {
        if (ex_otlp_spool_append(c->spool, evs, n, &dropped) != GV_OK || dropped) {
            atomic_fetch_add(&c->dropped, dropped);
        }
        if (ex_otlp_spool_pending(c->spool) >= c->batch) {
            pthread_mutex_lock(&c->lock);
            pthread_cond_signal(&c->cond);
            pthread_mutex_unlock(&c->lock);
        }
    }
    if (c->metrics_agg) {
        for (i = 0; i < n; i++) {
            ex_otlp_metrics_record(c->metrics_agg, evs[i].rec);
        }
    }
    return GV_OK;
}

/* Per-run snapshots are not what OTLP carries: per-request data arrives
 * through events and leaves on the exporter's own thread. */
static gv_rc otlp_format(struct ex_exporter *ex, const struct ex_batch *batch, struct gv_buf *out)
{
    (void)ex;
    (void)batch;
    (void)out;
    return GV_OK;
}

static enum ex_flush otlp_flush(struct ex_exporter *ex, const struct gv_buf *payload)
{
    (void)ex;
    (void)payload;
    return EX_FLUSH_OK;
}

static void otlp_stats(struct ex_exporter *ex, struct ex_stats *out)
{
    struct ex_otlp_ctx *c = ex->ctx;

    memset(out, 0, sizeof(*out));
    out->sent = atomic_load(&c->sent);
    out->dropped = atomic_load(&c->dropped);
    out->retries = atomic_load(&c->retries);
    out->exports = atomic_load(&c->exports);
    out->queued = c->spool ? ex_otlp_spool_pending(c->spool) : 0;
}

static void otlp_destroy(struct ex_exporter *ex)
{
    struct ex_otlp_ctx *c = ex->ctx;

    if (c->started) {
        pthread_mutex_lock(&c->lock);
        c->stop = true;
        pthread_cond_signal(&c->cond);
        pthread_mutex_unlock(&c->lock);
        pthread_join(c->thread, NULL);
        c->started = false;
        gv_log(GV_LOG_INFO, MOD, "stopped", "requests=%llu spans=%llu dropped=%llu queued=%llu",
               (unsigned long long)atomic_load(&c->sent),
               (unsigned long long)atomic_load(&c->spans),
               (unsigned long long)atomic_load(&c->dropped),
               (unsigned long long)(c->spool ? ex_otlp_spool_pending(c->spool) : 0));
    }
    ex_otlp_spool_close(c->spool);
    c->spool = NULL;
    ex_otlp_metrics_destroy(c->metrics_agg);
    c->metrics_agg = NULL;
    curl_slist_free_all(c->traces_hdrs);
    curl_slist_free_all(c->metrics_hdrs);
    c->traces_hdrs = c->metrics_hdrs = NULL;
    if (c->curl) {
        curl_easy_cleanup(c->curl);
        c->curl = NULL;
    }
    gv_buf_free(&c->gz);
    gv_buf_free(&c->resp);
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->lock);
}

const struct ex_exporter_ops ex_otlp = {
    .name = "otlp",
    .config_map = otlp_config,
    .ctx_size = sizeof(struct ex_otlp_ctx),
    .init = otlp_init,
    .format = otlp_format,
    .flush = otlp_flush,
    .destroy = otlp_destroy,
    .events = otlp_events,
    .stats = otlp_stats,
};
