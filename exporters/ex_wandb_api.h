/* exporters/ex_wandb_api.h - the W&B HTTP client the W&B and Weave exporters and kt auth share */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef EX_WANDB_API_H
#define EX_WANDB_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "core/gv_buf.h"
#include "core/gv_rc.h"
#include "core/gv_record.h"

/* Result of one W&B round trip, the way the Go client classifies it. */
enum ex_wandb_res {
    EX_WANDB_OK = 0,
    EX_WANDB_RETRY, /* 429, 5xx, other 4xx, network error: same body again later */
    EX_WANDB_FATAL  /* 400/401/403/404/409/410/413/422/501: do not retry */
};

#define EX_WANDB_URL_MAX 512
#define EX_WANDB_KEY_MAX 256
#define EX_WANDB_REQ_MAX (8u << 20)  /* one file_stream request, bytes of JSON */
#define EX_WANDB_RESP_MAX (4u << 20) /* any W&B response body we read */
#define EX_WANDB_LINE_MAX 10383360u  /* W&B drops longer history lines */

/* Where W&B is and who we are: WANDB_BASE_URL, WANDB_API_KEY or the netrc
 * entry for the base URL's host[:port] ($NETRC, else ~/.netrc). The key lives
 * only here and in libcurl's Basic auth; it is never logged. */
struct ex_wandb_api {
    char base_url[EX_WANDB_URL_MAX];
    char key[EX_WANDB_KEY_MAX];
    bool have_key;
    bool shared;             /* shared-mode headers on every request */
    char client_id[33];      /* shared mode: this process's 32-char id */
    void *curl;              /* CURL *, reused */
    uint64_t not_before_us;  /* monotonic: honour Retry-After before the next request */
    uint64_t retry_after_ms; /* what the last RETRY asked for (0: none) */
    /* When set (the exporter), a RETRY without Retry-After waits too, like
     * W&B's Go client: 2 s * 2^failures * (1 + U[0, 0.25)), at most 60 s. */
    bool backoff;
    unsigned failures;    /* RETRY answers in a row */
    long last_status;     /* HTTP status of the last request, 0 for network errors */
    char last_error[256]; /* W&B's error text (or curl's) of the last failure */
    char viewer_entity[GV_RUN_TAG_MAX + 1];
    bool viewer_done;
    bool dead;               /* credentials rejected: nothing more goes out */
    unsigned long nrequests; /* requests sent (tests count them) */
};

/* Resolve settings from the environment (base_url_override wins over
 * WANDB_BASE_URL when non-NULL and non-empty). Cannot fail: have_key false when
 * no key is found. Free with ex_wandb_api_free. */
void ex_wandb_api_init(struct ex_wandb_api *api, const char *base_url_override);
void ex_wandb_api_free(struct ex_wandb_api *api);
/* An entity or project for W&B data: configured when non-NULL and non-empty, else the
 * environment variable env (WANDB_ENTITY, WANDB_PROJECT) copied into copy, "" when that is
 * unset or empty. Returns configured or copy, borrowed from whichever it is. Reads the
 * environment: call at init, from one thread. */
const char *ex_wandb_setting(const char *configured, const char *env, char *copy, size_t size);
/* The netrc machine name for a base URL: its netloc, host or host:port. */
void ex_wandb_netloc(const char *url, char *out, size_t size);
/* Find the password of `machine <host>` in a netrc file. GV_ENOTFOUND when
 * absent or the file is unreadable. */
gv_rc ex_wandb_netrc_lookup(const char *path, const char *host, char *key, size_t size);

/* POST {base}/graphql with {"query","variables","operationName"}. Takes a
 * reference on nothing: `vars` stays the caller's. On OK *data is the "data"
 * object (caller puts it). On failure api->last_status/last_error tell why. */
enum ex_wandb_res ex_wandb_api_graphql(struct ex_wandb_api *api, const char *op, const char *query,
                                       struct json_object *vars, struct json_object **data);
/* POST {base}/files/{entity}/{project}/{run}/file_stream with body. */
enum ex_wandb_res ex_wandb_api_file_stream(struct ex_wandb_api *api, const char *entity,
                                           const char *project, const char *run,
                                           const struct gv_buf *body);
/* POST a JSON body to any URL with the api's Basic auth (the Weave trace
 * server shares W&B's key). Retry-After is honoured as for W&B requests; the
 * response body (capped at EX_WANDB_RESP_MAX) goes to out when non-NULL.
 * api->last_status tells the HTTP status, 0 for network errors. */
enum ex_wandb_res ex_wandb_api_post(struct ex_wandb_api *api, const char *url, const char *body,
                                    size_t len, struct gv_buf *out);
/* The Viewer query W&B's clients send (operation "Viewer"): who the key belongs
 * to and the default entity. */
extern const char ex_wandb_viewer_query[];
/* Viewer once per process; fills api->viewer_entity. FATAL marks api->dead. */
enum ex_wandb_res ex_wandb_api_viewer(struct ex_wandb_api *api);
/* Classify an HTTP status (0 = network error). */
enum ex_wandb_res ex_wandb_classify(long status);
/* The wait before retrying after `failures` earlier RETRY answers in a row
 * (0 for the first retry): 2 s * 2^failures, plus (rnd % 250) per mille of
 * that as jitter, at most 60 s. Pure. */
uint64_t ex_wandb_backoff_ms(unsigned failures, uint32_t rnd);

/* Serialise j without spaces or escaped slashes (the bytes W&B sees). */
gv_rc ex_wandb_json_append(struct gv_buf *out, struct json_object *j);

/* o's member key when it is a string, else "" (absent, null or another type). Borrowed from
 * o. */
const char *ex_wandb_json_str(struct json_object *o, const char *key);

#endif
