/* exporters/ex_wandb_api.c - W&B settings, GraphQL and file_stream over libcurl */
/* SPDX-License-Identifier: Apache-2.0 */
#include "exporters/ex_wandb_api.h"

#include <curl/curl.h>
#include <openssl/rand.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/gv_log.h"
#include "core/gv_mem.h"
#include "core/gv_time.h"

#define MOD "exporter:wandb"

enum ex_wandb_res ex_wandb_classify(long status)
{
    if (status >= 200 && status < 300) {
        return EX_WANDB_OK;
    }
    switch (status) {
    case 400:
    case 401:
    case 403:
    case 404:
    case 409:
    case 410:
    case 413:
    case 422:
    case 501:
        return EX_WANDB_FATAL;
    default:
        return EX_WANDB_RETRY; /* 0 (network), 429, other 4xx, 5xx */
    }
}

gv_rc ex_wandb_json_append(struct gv_buf *out, struct json_object *j)
{
    size_t len = 0;
    const char *s = json_object_to_json_string_length(
        j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    return gv_buf_append(out, s, len);
}

const char *ex_wandb_json_str(struct json_object *o, const char *key)
{
    struct json_object *v;
    if (json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)) {
        return json_object_get_string(v);
    }
    return "";
}

/* netrc is whitespace-separated tokens: machine/default, login, password,
 * account, macdef (whose body runs to an empty line, which we skip). */
gv_rc ex_wandb_netrc_lookup(const char *path, const char *host, char *key, size_t size)
{
    FILE *f = fopen(path, "r");
    char tok[512];
    bool in_machine = false;
    gv_rc rc = GV_ENOTFOUND;

    if (!f) {
        return GV_ENOTFOUND;
    }
    while (fscanf(f, "%511s", tok) == 1) {
        if (strcmp(tok, "machine") == 0) {
            if (fscanf(f, "%511s", tok) != 1) {
                break;
            }
            in_machine = strcmp(tok, host) == 0;
        }
        else if (strcmp(tok, "default") == 0) {
            in_machine = false;
        }
        else if (strcmp(tok, "password") == 0) {
            if (fscanf(f, "%511s", tok) != 1) {
                break;
            }
            if (in_machine) {
                int n = snprintf(key, size, "%s", tok);
                rc = (n < 0 || (size_t)n >= size) ? GV_E2BIG : GV_OK;
                break;
            }
        }
    }
    memset(tok, 0, sizeof(tok));
    fclose(f);
    return rc;
}

void ex_wandb_netloc(const char *url, char *out, size_t size)
{
    const char *p = strstr(url, "://");
    size_t n;

    p = p ? p + 3 : url;
    n = strcspn(p, "/?#");
    if (n >= size) {
        n = size - 1;
    }
    memcpy(out, p, n);
    out[n] = '\0';
}

static void random_id(char *out, size_t n)
{
    static const char al[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char raw[64];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    size_t i;
    ssize_t got = -1;

    if (fd >= 0) {
        got = read(fd, raw, n < sizeof(raw) ? n : sizeof(raw));
        close(fd);
    }
    for (i = 0; i < n && i < sizeof(raw); i++) {
        unsigned v = got == (ssize_t)n ? raw[i] : (unsigned)(gv_mono_us() >> (i % 32)) + i;
        out[i] = al[v % (sizeof(al) - 1)];
    }
    out[i] = '\0';
}

void ex_wandb_api_init(struct ex_wandb_api *api, const char *base_url_override)
{
    const char *base =
        base_url_override && *base_url_override ? base_url_override : getenv("WANDB_BASE_URL");
    const char *key = getenv("WANDB_API_KEY");
    char host[256];
    char path[1024];
    const char *home;
    size_t len;

    memset(api, 0, sizeof(*api));
    snprintf(api->base_url, sizeof(api->base_url), "%s",
             base && *base ? base : "https://api.wandb.ai");
    len = strlen(api->base_url);
    while (len > 0 && api->base_url[len - 1] == '/') {
        api->base_url[--len] = '\0';
    }
    if (key && *key && strlen(key) < sizeof(api->key)) {
        snprintf(api->key, sizeof(api->key), "%s", key);
        api->have_key = true;
    }
    else {
        ex_wandb_netloc(api->base_url, host, sizeof(host));
        if (getenv("NETRC") && *getenv("NETRC")) {
            snprintf(path, sizeof(path), "%s", getenv("NETRC"));
        }
        else {
            home = getenv("HOME");
            snprintf(path, sizeof(path), "%s/.netrc", home && *home ? home : "/");
        }
        api->have_key =
            ex_wandb_netrc_lookup(path, host, api->key, sizeof(api->key)) == GV_OK && api->key[0];
    }
    random_id(api->client_id, 32);
}

const char *ex_wandb_setting(const char *configured, const char *env, char *copy, size_t size)
{
    const char *v;

    if (configured && *configured) {
        return configured;
    }
    v = getenv(env);
    snprintf(copy, size, "%s", v && *v ? v : "");
    return copy;
}

void ex_wandb_api_free(struct ex_wandb_api *api)
{
    if (api->curl) {
        curl_easy_cleanup(api->curl);
        api->curl = NULL;
    }
    /* The key must not linger in freed memory. */
    memset(api->key, 0, sizeof(api->key));
}

struct resp {
    struct gv_buf body;
    uint64_t retry_after_ms;
};

static size_t on_body(char *p, size_t sz, size_t nm, void *ud)
{
    struct resp *r = ud;
    if (gv_buf_append(&r->body, p, sz * nm)) {
        return 0; /* over the cap: libcurl fails the transfer */
    }
    return sz * nm;
}

static size_t on_header(char *p, size_t sz, size_t nm, void *ud)
{
    struct resp *r = ud;
    size_t n = sz * nm;
    char val[64];
    size_t i = 12;
    double secs;
    char *end;

    if (n > 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
        while (i < n && (p[i] == ' ' || p[i] == '\t')) {
            i++;
        }
        if (n - i >= sizeof(val)) {
            return n;
        }
        memcpy(val, p + i, n - i);
        val[n - i] = '\0';
        secs = strtod(val, &end);
        if (end != val && secs >= 0 && secs < 86400) {
            r->retry_after_ms = (uint64_t)(secs * 1000.0);
        }
        else {
            time_t t = curl_getdate(val, NULL);
            time_t now = time(NULL);
            if (t > now && t - now < 86400) {
                r->retry_after_ms = (uint64_t)(t - now) * 1000u;
            }
        }
    }
    return n;
}

/* W&B error text lives in {"error":"…"}, {"error":{"message":"…"}} or
 * {"errors":[{"message":"…"}]}; keep the first one, bounded. */
static void error_text(struct ex_wandb_api *api, const char *body, size_t len)
{
    struct json_tokener *tok = json_tokener_new();
    struct json_object *j = json_tokener_parse_ex(tok, body, (int)(len > 65536 ? 65536 : len));
    struct json_object *e = NULL;
    struct json_object *m = NULL;
    const char *s = NULL;
    char *end;

    json_tokener_free(tok);
    if (j && json_object_object_get_ex(j, "error", &e)) {
        if (json_object_is_type(e, json_type_string)) {
            s = json_object_get_string(e);
        }
        else if (json_object_object_get_ex(e, "message", &m)) {
            s = json_object_get_string(m);
        }
    }
    else if (j && json_object_object_get_ex(j, "errors", &e) &&
             json_object_is_type(e, json_type_array) && json_object_array_length(e) > 0 &&
             json_object_object_get_ex(json_object_array_get_idx(e, 0), "message", &m)) {
        s = json_object_get_string(m);
    }
    if (s) {
        snprintf(api->last_error, sizeof(api->last_error), "%s", s);
    }
    else {
        snprintf(api->last_error, sizeof(api->last_error), "HTTP %ld", api->last_status);
    }
    /* The text goes into a quoted log value: no quotes or line breaks. */
    for (end = api->last_error; *end; end++) {
        if (*end == '"' || *end == '\\' || (unsigned char)*end < 0x20) {
            *end = '\'';
        }
    }
    json_object_put(j);
}

#define RETRY_MIN_MS 2000u
#define RETRY_MAX_MS 60000u

/* The next request waits for Retry-After when the server sent one, else (with
 * api->backoff) for 2 s doubling per failure in a row, plus up to 25 % jitter
 * so many agents do not come back in step; never more than 60 s. */
uint64_t ex_wandb_backoff_ms(unsigned failures, uint32_t rnd)
{
    uint64_t ms = RETRY_MIN_MS;
    unsigned i;

    for (i = 0; i < failures && ms < RETRY_MAX_MS; i++) {
        ms *= 2;
    }
    ms += ms * (rnd % 250u) / 1000u;
    return ms > RETRY_MAX_MS ? RETRY_MAX_MS : ms;
}

static void retry_wait(struct ex_wandb_api *api, uint64_t retry_after_ms)
{
    uint32_t rnd = 0;
    uint64_t ms = retry_after_ms;

    if (!ms && api->backoff) {
        if (RAND_bytes((unsigned char *)&rnd, sizeof(rnd)) != 1) {
            rnd = 125; /* no randomness: the middle of the jitter range */
        }
        ms = ex_wandb_backoff_ms(api->failures, rnd);
    }
    api->failures++;
    if (ms) {
        api->retry_after_ms = ms;
        api->not_before_us = gv_mono_us() + ms * 1000u;
    }
}

static enum ex_wandb_res post(struct ex_wandb_api *api, const char *url, const char *body,
                              size_t len, struct resp *r)
{
    struct curl_slist *h = NULL;
    CURLcode cc;
    enum ex_wandb_res res;
    char hdr[128];
    uint64_t now = gv_mono_us();

    api->last_status = 0;
    api->last_error[0] = '\0';
    api->retry_after_ms = 0;
    if (api->dead) {
        snprintf(api->last_error, sizeof(api->last_error), "credentials were rejected earlier");
        return EX_WANDB_FATAL;
    }
    /* Retry-After is a promise not to come back sooner: keep it even when the
     * agent's own backoff calls again earlier. */
    if (now < api->not_before_us) {
        api->retry_after_ms = (api->not_before_us - now + 999) / 1000;
        snprintf(api->last_error, sizeof(api->last_error), "waiting for Retry-After");
        return EX_WANDB_RETRY;
    }
    if (!api->curl) {
        api->curl = curl_easy_init();
        if (!api->curl) {
            snprintf(api->last_error, sizeof(api->last_error), "curl_easy_init failed");
            return EX_WANDB_RETRY;
        }
    }
    curl_easy_reset(api->curl);
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "User-Agent: kt-agent/" KT_VERSION);
    h = curl_slist_append(h, "Expect:");
    if (api->shared) {
        h = curl_slist_append(h, "X-WANDB-USE-ASYNC-FILESTREAM: true");
        snprintf(hdr, sizeof(hdr), "%s: %s",
                 strstr(url, "/file_stream") ? "X-WANDB-ASYNC-CLIENT-ID" : "X-WANDB-CLIENT-ID",
                 api->client_id);
        h = curl_slist_append(h, hdr);
    }
    curl_easy_setopt(api->curl, CURLOPT_URL, url);
    curl_easy_setopt(api->curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(api->curl, CURLOPT_POST, 1L);
    curl_easy_setopt(api->curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(api->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    /* Basic auth api:<key>, only to the base URL: no redirects to follow. */
    curl_easy_setopt(api->curl, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(api->curl, CURLOPT_USERNAME, "api");
    curl_easy_setopt(api->curl, CURLOPT_PASSWORD, api->key);
    curl_easy_setopt(api->curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(api->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(api->curl, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(api->curl, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(api->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(api->curl, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(api->curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(api->curl, CURLOPT_HEADERDATA, r);
    api->nrequests++;
    cc = curl_easy_perform(api->curl);
    curl_slist_free_all(h);
    if (cc != CURLE_OK) {
        snprintf(api->last_error, sizeof(api->last_error), "%s", curl_easy_strerror(cc));
        retry_wait(api, 0);
        return EX_WANDB_RETRY;
    }
    curl_easy_getinfo(api->curl, CURLINFO_RESPONSE_CODE, &api->last_status);
    res = ex_wandb_classify(api->last_status);
    if (res != EX_WANDB_OK) {
        error_text(api, r->body.data ? r->body.data : "", r->body.len);
    }
    if (res == EX_WANDB_RETRY) {
        retry_wait(api, r->retry_after_ms);
    }
    else {
        api->failures = 0;
    }
    return res;
}

enum ex_wandb_res ex_wandb_api_post(struct ex_wandb_api *api, const char *url, const char *body,
                                    size_t len, struct gv_buf *out)
{
    struct resp r;
    enum ex_wandb_res res;

    memset(&r, 0, sizeof(r));
    gv_buf_init(&r.body, EX_WANDB_RESP_MAX);
    res = post(api, url, body, len, &r);
    if (out) {
        gv_buf_reset(out);
        if (r.body.len) {
            (void)gv_buf_append(out, r.body.data, r.body.len);
        }
    }
    gv_buf_free(&r.body);
    return res;
}

enum ex_wandb_res ex_wandb_api_graphql(struct ex_wandb_api *api, const char *op, const char *query,
                                       struct json_object *vars, struct json_object **data)
{
    struct json_object *req = json_object_new_object();
    struct json_object *resp = NULL;
    struct json_object *d = NULL;
    struct json_object *errs = NULL;
    struct json_tokener *tok = NULL;
    struct gv_buf body;
    struct resp r;
    char url[EX_WANDB_URL_MAX + 16];
    enum ex_wandb_res res;

    *data = NULL;
    gv_buf_init(&body, EX_WANDB_REQ_MAX);
    gv_buf_init(&r.body, EX_WANDB_RESP_MAX);
    r.retry_after_ms = 0;
    json_object_object_add(req, "query", json_object_new_string(query));
    json_object_object_add(req, "variables", json_object_get(vars));
    json_object_object_add(req, "operationName", json_object_new_string(op));
    if (ex_wandb_json_append(&body, req)) {
        snprintf(api->last_error, sizeof(api->last_error), "request too large");
        res = EX_WANDB_FATAL;
        goto out;
    }
    snprintf(url, sizeof(url), "%s/graphql", api->base_url);
    res = post(api, url, body.data, body.len, &r);
    if (res != EX_WANDB_OK) {
        goto out;
    }
    tok = json_tokener_new();
    resp = json_tokener_parse_ex(tok, r.body.data ? r.body.data : "", (int)r.body.len);
    if (!resp || !json_object_is_type(resp, json_type_object)) {
        snprintf(api->last_error, sizeof(api->last_error), "GraphQL answer is not JSON");
        res = EX_WANDB_RETRY;
        goto out;
    }
    if (json_object_object_get_ex(resp, "errors", &errs) &&
        json_object_is_type(errs, json_type_array) && json_object_array_length(errs) > 0) {
        error_text(api, r.body.data, r.body.len);
        res = EX_WANDB_FATAL;
        goto out;
    }
    if (!json_object_object_get_ex(resp, "data", &d) || !json_object_is_type(d, json_type_object)) {
        snprintf(api->last_error, sizeof(api->last_error), "GraphQL answer has no data");
        res = EX_WANDB_RETRY;
        goto out;
    }
    *data = json_object_get(d);
out:
    if (tok) {
        json_tokener_free(tok);
    }
    json_object_put(resp);
    json_object_put(req);
    gv_buf_free(&body);
    gv_buf_free(&r.body);
    return res;
}

enum ex_wandb_res ex_wandb_api_file_stream(struct ex_wandb_api *api, const char *entity,
                                           const char *project, const char *run,
                                           const struct gv_buf *body)
{
    char url[EX_WANDB_URL_MAX + 3 * 3 * (GV_RUN_TAG_MAX * 2 + 64) + 32];
    char *e = curl_easy_escape(NULL, entity, 0);
    char *p = curl_easy_escape(NULL, project, 0);
    char *n = curl_easy_escape(NULL, run, 0);
    struct resp r;
    enum ex_wandb_res res = EX_WANDB_FATAL;

    gv_buf_init(&r.body, EX_WANDB_RESP_MAX);
    r.retry_after_ms = 0;
    if (!e || !p || !n) {
        snprintf(api->last_error, sizeof(api->last_error), "cannot escape the run path");
        goto out;
    }
    snprintf(url, sizeof(url), "%s/files/%s/%s/%s/file_stream", api->base_url, e, p, n);
    res = post(api, url, body->data ? body->data : "{}", body->data ? body->len : 2, &r);
out:
    curl_free(e);
    curl_free(p);
    curl_free(n);
    gv_buf_free(&r.body);
    return res;
}

const char ex_wandb_viewer_query[] =
    "query Viewer { viewer { id entity username email flags teams { edges { node { name } } } } }";

enum ex_wandb_res ex_wandb_api_viewer(struct ex_wandb_api *api)
{
    struct json_object *vars = json_object_new_object();
    struct json_object *data = NULL;
    struct json_object *viewer;
    struct json_object *ent;
    enum ex_wandb_res res;

    if (api->viewer_done) {
        json_object_put(vars);
        return EX_WANDB_OK;
    }
    res = ex_wandb_api_graphql(api, "Viewer", ex_wandb_viewer_query, vars, &data);
    if (res == EX_WANDB_OK) {
        if (json_object_object_get_ex(data, "viewer", &viewer) &&
            json_object_object_get_ex(viewer, "entity", &ent) &&
            json_object_is_type(ent, json_type_string)) {
            snprintf(api->viewer_entity, sizeof(api->viewer_entity), "%s",
                     json_object_get_string(ent));
            api->viewer_done = true;
        }
        else {
            /* The Go client treats a viewer without entity as bad credentials. */
            snprintf(api->last_error, sizeof(api->last_error),
                     "W&B did not name a default entity for this key");
            res = EX_WANDB_FATAL;
        }
    }
    if (res == EX_WANDB_FATAL && !api->dead) {
        api->dead = true;
        gv_log(GV_LOG_ERROR, MOD, "W&B rejected the credentials; uploads stop, data stays on disk",
               "base_url=%s status=%ld error=\"%s\" retry_with=\"kt wandb sync\"", api->base_url,
               api->last_status, api->last_error);
    }
    json_object_put(data);
    json_object_put(vars);
    return res;
}
