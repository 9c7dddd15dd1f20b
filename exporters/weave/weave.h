/* exporters/weave/weave.h - W&B Weave trace exporter: one Weave call per governed request */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef EX_WEAVE_H
#define EX_WEAVE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "core/gv_buf.h"
#include "core/gv_event.h"
#include "core/gv_rc.h"
#include "exporters/ex_exporter.h"
#include "exporters/ex_wandb_api.h"

/* The ops object (same life cycle as ex_wandb, plus events() on the ingest
 * thread and status()). init never fails for missing credentials: calls then
 * stay in <state>/weave-offline for `kt wandb sync`. */
extern const struct ex_exporter_ops ex_weave;

/* What the Weave UI reads as an OpenAI chat call (inputs.messages, output.choices,
 * summary.usage keyed by model): the op name of Weave's own OpenAI integration. */
#define EX_WEAVE_OP_NAME "openai.chat.completions.create"
#define EX_WEAVE_BATCH_MAX 1000
/* Sending threads, and so ranges claimed at once. */
#define EX_WEAVE_SENDERS_MAX 16
#define EX_WEAVE_RANGES_MAX (2 * EX_WEAVE_SENDERS_MAX)
/* The trace server's request limit is 32 MiB; its clients keep 1 MiB spare. */
#define EX_WEAVE_REQ_BYTES_DEFAULT (31u << 20)
#define EX_WEAVE_OUTBOX_MAX_DEFAULT (1024ull << 20)
/* Prefix the trace server parses as an object ref anywhere in a call. */
#define EX_WEAVE_REF_PREFIX "weave:///"
#define EX_WEAVE_REF_ESCAPE "[kt:not-a-ref] "

/* ---- pure formatting (exporters/weave/weave_fmt.c) ---- */

struct ex_weave_call_in {
    const struct gv_record *rec;
    const char *instance_id;
    uint64_t seq;
    const struct gv_hello *hello;
    const char *entity;     /* resolved: the record's, else the default, else the key's */
    const char *project;    /* resolved */
    const char *policy_ref; /* weave:///... of the pack object, or NULL */
    bool blocked_as_error;  /* a block is an exception (default: a normal call) */
    /* Optional, filled by ex_weave_call_in_prepare so the formatting of many calls
     * does not redo it: the ids, and the pack attributes of `hello` (borrowed). */
    char id[37];
    char trace_id[37];
    struct json_object *pack;
};

/* Fills in->id, in->trace_id (from instance_id, seq and the record's start). */
void ex_weave_call_in_prepare(struct ex_weave_call_in *in);
/* {"name","version","chain":[...]} of a pack, for ex_weave_call_in.pack (caller puts it). */
struct json_object *ex_weave_fmt_pack(const struct gv_hello *hello);

/* Deterministic ids from (instance, seq), shaped as UUIDv7 (the first 48 bits
 * are the request's start in ms, so they sort like the SDK's): a retry, a
 * replay or a sync writes the same call. Lowercase canonical, NUL-ended. Both
 * come from one SHA-256 of (instance, seq). */
void ex_weave_call_id(const char *instance_id, uint64_t seq, uint64_t start_wall_us, char out[37]);
void ex_weave_trace_id(const char *instance_id, uint64_t seq, uint64_t start_wall_us, char out[37]);
/* ISO-8601 UTC with microseconds and Z. */
void ex_weave_iso_time(uint64_t wall_us, char out[32]);
/* "entity/project"; GV_E2BIG when it does not fit. */
gv_rc ex_weave_project_id(const char *entity, const char *project, char *out, size_t size);

/* The call's start and end halves as new json objects (caller puts them). */
struct json_object *ex_weave_fmt_start(const struct ex_weave_call_in *in);
struct json_object *ex_weave_fmt_end(const struct ex_weave_call_in *in);
/* Appends one call to an upsert_batch "batch" array body: the start item and
 * the end item, comma-separated, no brackets. */
gv_rc ex_weave_fmt_upsert_items(const struct ex_weave_call_in *in, struct gv_buf *out);
/* Appends one CompletedCallSchemaForInsert (start and end in one object). */
gv_rc ex_weave_fmt_complete_item(const struct ex_weave_call_in *in, struct gv_buf *out);
/* The policy pack object: {"obj":{"project_id","object_id","val"}}; object_id
 * is "kt-policy-<pack name>" reduced to [A-Za-z0-9_.-]. */
gv_rc ex_weave_fmt_policy_obj(const char *project_id, const struct gv_hello *hello,
                              struct gv_buf *out, char *object_id, size_t id_size);
/* The cost table row for a model: {"project_id","costs":{model:{...}}}, USD per token. */
gv_rc ex_weave_fmt_cost(const char *project_id, const char *model, double in_per_mtok,
                        double out_per_mtok, struct gv_buf *out);

/* ---- durable outbox (exporters/weave/weave_outbox.c) ----
 * <dir>/outbox holds hello and event frames (the agent wire format) in arrival
 * order, <dir>/cursor the offset up to which the trace server has everything.
 * The ingest thread appends; sending threads claim disjoint ranges and mark
 * them done (or give them back); once all is sent the file is emptied. A crash
 * re-sends from the cursor: ids make the second copy the same call. */

/* A claimed stretch of the outbox: [start, end) holding n events. */
struct ex_weave_range {
    uint64_t start, end, n;
};

struct ex_weave_outbox {
    pthread_mutex_t lock;
    int fd;
    int lock_fd; /* flock: one process per outbox (agent or kt wandb sync) */
    char path[1100];
    char cursor_path[1100];
    uint64_t size;
    uint64_t cursor;
    uint64_t max_bytes;
    bool fsync;
    /* writer side: the hellos in the file since it was last emptied */
    struct gv_hello *written;
    size_t nwritten;
    /* reader side: every hello seen, by instance (exporter thread only) */
    struct gv_hello *known;
    size_t nknown;
    char *rmem;                     /* reader scratch, READ_CHUNK bytes once used */
    _Atomic uint64_t pending_calls; /* events after the cursor */
    uint64_t read_off;              /* where the next fresh claim starts */
    struct ex_weave_range done[EX_WEAVE_RANGES_MAX]; /* past the cursor, sorted */
    size_t ndone;
    struct ex_weave_range retry[EX_WEAVE_RANGES_MAX]; /* given back, sorted */
    size_t nretry;
    uint64_t cursor_saved_us;
};

/* Opens (creating) the outbox in dir. GV_EIO when another process holds it
 * or on I/O errors; call ex_weave_outbox_close even on failure. */
gv_rc ex_weave_outbox_open(struct ex_weave_outbox *ob, const char *dir, uint64_t max_bytes,
                           bool fsync);
void ex_weave_outbox_close(struct ex_weave_outbox *ob);
/* Ingest thread: appends the events (and any hello not yet in the file).
 * GV_E2BIG when the outbox is full (nothing appended), GV_EIO on write errors. */
gv_rc ex_weave_outbox_append(struct ex_weave_outbox *ob, const struct ex_event *evs, size_t n);

/* One event read back. */
struct ex_weave_item {
    struct gv_record rec; /* owns rec.content: gv_record_release */
    struct gv_event_meta meta;
    struct gv_hello hello; /* the pack of the gateway that sent it */
};

/* Any sending thread: takes the next up to max events no other thread holds
 * (a range given back by ex_weave_outbox_retry first, else what follows the
 * last claim). *n 0 when nothing waits. Each claimed range must end in
 * ex_weave_outbox_done or ex_weave_outbox_retry. */
gv_rc ex_weave_outbox_claim(struct ex_weave_outbox *ob, struct ex_weave_item *items, size_t max,
                            size_t *n, struct ex_weave_range *r);
/* The range reached the trace server (or was dropped): the cursor moves over
 * every range done without a gap before it; all sent empties the file. */
gv_rc ex_weave_outbox_done(struct ex_weave_outbox *ob, const struct ex_weave_range *r);
/* The range could not be sent now: the next claim takes it again. */
void ex_weave_outbox_retry(struct ex_weave_outbox *ob, const struct ex_weave_range *r);
/* Bytes not yet sent. Any thread. */
uint64_t ex_weave_outbox_pending(struct ex_weave_outbox *ob);

/* ---- sending (exporters/weave/weave_send.c) ---- */

struct ex_weave_proj; /* per-project memory: calls-complete mode, pack refs, pushed prices */

struct ex_weave_sender {
    struct ex_wandb_api api; /* key + W&B base URL; the single-threaded caller's client */
    char trace_url[EX_WANDB_URL_MAX];
    const char *entity;  /* default entity ("" = the key's) */
    const char *project; /* default project */
    bool blocked_as_error;
    size_t batch_calls;
    size_t batch_bytes;
    pthread_mutex_t proj_lock; /* the project table, shared by the sending threads */
    struct ex_weave_proj *projs;
    size_t nprojs;
    _Atomic uint64_t not_before_us; /* Retry-After, for every sending thread */
    /* counters, read by status() from any thread */
    _Atomic uint64_t sent, failed, requests, splits, retries;
    pthread_mutex_t err_lock;
    char last_error[256];
};

void ex_weave_sender_init(struct ex_weave_sender *s, const char *trace_url_override);
void ex_weave_sender_free(struct ex_weave_sender *s);
/* The trace server: override, else WF_TRACE_SERVER_URL, else <WANDB_BASE_URL>/traces
 * when WANDB_BASE_URL names a dedicated or self-managed server, else
 * https://trace.wandb.ai. No trailing slash. */
void ex_weave_trace_url(const char *override, const char *wandb_base, char *out, size_t size);

enum ex_weave_send { EX_WEAVE_SENT = 0, EX_WEAVE_LATER };
/* Sends what the outbox holds, batch by batch, until it is empty or the
 * server asks to wait (429/5xx/network: EX_WEAVE_LATER, the batch goes back).
 * A batch refused as too large is split; calls refused as invalid are counted
 * as failed and skipped. max_batches 0 means no limit. Several threads may run
 * it at once on the same sender and outbox, each with its own api (HTTP client
 * and Viewer); NULL api means s->api. */
enum ex_weave_send ex_weave_send_outbox(struct ex_weave_sender *s, struct ex_wandb_api *api,
                                        struct ex_weave_outbox *ob, size_t max_batches);

/* ---- the exporter instance (exporters/weave/weave.c) ---- */

struct ex_weave_ctx {
    bool enabled;
    char *base_url; /* trace server; else WF_TRACE_SERVER_URL, ... */
    char *entity;
    char *project;
    long batch_calls;
    size_t batch_bytes;
    bool blocked_as_error;
    bool offline;
    char *dir;
    size_t outbox_max;

    struct ex_weave_sender snd;
    struct ex_weave_outbox ob;
    long senders;
    /* the sending threads: batches of up to batch_calls, or what came in a second */
    pthread_t threads[EX_WEAVE_SENDERS_MAX];
    struct ex_wandb_api apis[EX_WEAVE_SENDERS_MAX];
    struct ex_weave_thread_arg {
        struct ex_weave_ctx *c;
        struct ex_wandb_api *api;
    } args[EX_WEAVE_SENDERS_MAX];
    size_t nthreads;
    bool thread_started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
    uint64_t since_wake; /* events appended since the thread was last woken */
    char root[1024];
    char entity_env[GV_RUN_TAG_MAX + 1];
    char project_env[GV_RUN_TAG_MAX + 1];
    bool online;
    bool started;
    _Atomic uint64_t stored, store_failed;
};

#endif
