/* agent/ag_internal.h - what the agent's modules share: the agent, its connections and exporters */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef AG_INTERNAL_H
#define AG_INTERNAL_H

#include "agent/ag_agent.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <json-c/json.h>

#include "agent/ag_ids.h"
#include "agent/ag_runs.h"
#include "core/gv_file.h"
#include "core/gv_cfg.h"
#include "core/gv_event.h"
#include "core/gv_log.h"
#include "core/gv_mem.h"
#include "core/gv_paths.h"
#include "core/gv_thread.h"
#include "core/gv_time.h"
#include "core/gv_yaml.h"
#include "exporters/ex_exporter.h"
#include "exporters/ex_registry.h"

#define MOD "agent"
/* Events decoded before one journal write + sync + ack. */
#define BATCH_MAX 1024
#define STATE_VERSION 1
#define EXP_QUEUE_MAX 8
/* Batches waiting for the exporter thread. */
#define AG_JOBS_MAX 4
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000
/* Journal writes refused for lack of space are retried this often, doubling. */
#define STALL_MIN_MS 200
#define STALL_MAX_MS 10000
/* A status request is small; anything else from a client is an event stream. */
#define CONN_OUT_MAX (8u * 1024u * 1024u)

struct ag_job;

struct ag_instance {
    char id[GV_INSTANCE_ID_LEN + 1];
    uint64_t hwm; /* highest seq applied: anything <= is a duplicate */
    struct gv_hello hello;
};

struct ag_conn {
    struct ag_agent *ag;
    struct bufferevent *bev;
    struct ag_instance *inst; /* from this connection's hello */
    bool ack_pending;
    struct ag_conn *next;
};

struct ag_exp {
    struct ex_exporter ex;
    struct gv_ydoc *doc;
    struct gv_buf queue[EXP_QUEUE_MAX]; /* formatted payloads waiting for a retry */
    size_t nqueue;
    uint64_t next_try_us;
    uint64_t backoff_ms;
    unsigned long long dropped_payloads;
};

struct ag_agent {
    struct ag_opts opts;
    char state_dir[4096];
    char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char journal_path[4160];
    char state_path[4160];
    char ids_path[4160];
    char label[256];
    int lock_fd;
    int journal_fd;
    uint64_t journal_bytes;
    struct ag_runs *runs;
    struct ag_ids *ids; /* request ids counted: a re-emitted event counts once */
    struct lh_table *instances;
    struct event_base *base;
    struct evconnlistener *listener;
    struct event *flush_ev, *sigterm_ev, *sigint_ev, *stop_ev, *commit_ev;
    bool journal_dirty;
    struct ag_conn *conns;
    struct ag_exp *exps;
    size_t nexps;
    uint64_t flush_seq;
    /* batch scratch */
    struct gv_record *recs;
    struct ag_instance **rec_inst;
    uint64_t *rec_seq;
    uint64_t *rec_prev;             /* the instance's seq mark before rec i was marked */
    uint8_t (*rec_key)[AG_IDS_KEY]; /* rec i's request id key; all zero: none */
    struct ex_event *evs;
    struct gv_buf jbuf;
    /* counters */
    _Atomic uint64_t events;
    uint64_t duplicates, bad_frames, connections, flushes;
    _Atomic uint64_t exporter_retries, exporter_drops;
    /* exporter thread */
    pthread_t jthread;
    bool jthread_started;
    pthread_mutex_t jlock;
    pthread_cond_t jcond;
    struct ag_job *jobs[AG_JOBS_MAX];
    size_t njobs;
    bool jstop;
    struct gv_ydoc *cfg_doc;
    _Atomic int stop_requested;
    /* Disk full: one decoded batch waits for the journal to take it. Nothing
     * more is read and nothing is acknowledged until it does, so the gateway
     * keeps the events in its spool meanwhile. */
    bool stalled;
    size_t stall_nrec;
    bool stall_ack;
    struct ag_conn *stall_conn; /* NULL once that connection is gone */
    uint64_t stall_ms;
    uint64_t stalls;
    struct event *stall_ev;
    /* The highest audit chain end any event carried, and what was logged. */
    uint64_t audit_head_seq, audit_head_logged;
    char audit_head_hash[65];
    /* Set when the agent cannot go on (a failed sync, an unwritable journal):
     * ag_agent_run then returns an error, so a service manager restarts it. */
    bool failed;
};

/* ---- state and journal (ag_state.c) ---- */
struct ag_instance *ag_instance_get(struct ag_agent *ag, const char *id);
/* Keeps the furthest audit chain end the gateways reported. */
void ag_note_audit_head(struct ag_agent *ag, const struct gv_record *rec);
void ag_instance_free_entry(struct lh_entry *e);
/* A hello frame from the journal (recovery) or the wire: the instance it names, created on
 * first sight, into *inst (may be NULL). False when the frame does not decode. */
bool ag_apply_hello(struct ag_agent *ag, const uint8_t *p, size_t n, struct ag_instance **inst);
/* Recovery: the journal holds hello and event frames written after the state
 * file; the seq marks skip what the state file already counted. A torn tail
 * (the agent died mid-write, so it was never acknowledged) is cut. */
gv_rc ag_journal_replay(struct ag_agent *ag);
gv_rc ag_state_load(struct ag_agent *ag);
/* Checkpoint: state.json is replaced atomically, then the journal it covers is
 * emptied. A crash between the two replays a journal whose events the seq marks
 * in the new state already cover, so nothing counts twice. */
gv_rc ag_state_save(struct ag_agent *ag);
/* The agent cannot go on: stop, and make ag_agent_run report it. */
void ag_fail(struct ag_agent *ag);
/* A full disk or quota passes once space is freed; other errors do not. */
bool ag_journal_transient(int err);
/* Appends jbuf to the journal: 0, or the errno of the failure. A partial
 * append is cut off again, so the journal stays whole frames and a later
 * append lands where this one began. */
int ag_journal_append(struct ag_agent *ag);

/* ---- connections and batches (ag_ingest.c) ---- */
void ag_conn_close(struct ag_conn *c);
void ag_batch_release(struct ag_agent *ag, size_t nrec);
void ag_on_stall_retry(evutil_socket_t fd, short what, void *arg);
/* Makes the journal durable, then acknowledges. Runs after the read callbacks
 * of a loop iteration (lower priority), so one sync covers many events. */
void ag_on_commit(evutil_socket_t fd, short what, void *arg);
void ag_on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                  void *arg);

/* ---- exporters (ag_export.c) ---- */
void ag_jobs_stop(struct ag_agent *ag);
void ag_flush_now(struct ag_agent *ag, bool final);
void ag_on_flush(evutil_socket_t fd, short what, void *arg);
gv_rc ag_exporters_start(struct ag_agent *ag);
/* Delivery counters of the exporters that keep them, for status and /metrics. */
size_t ag_exporters_stats(struct ag_agent *ag, struct ex_exporter_stats *out, size_t max);
void ag_exporters_stop(struct ag_agent *ag);
/* Hands the batch's new events to the exporters that take them one by one. */
void ag_exporters_events(struct ag_agent *ag, size_t nrec);
/* Each exporter's own status line or object, after the agent's. */
void ag_exporters_status(struct ag_agent *ag, bool json, struct gv_buf *out);

#endif
