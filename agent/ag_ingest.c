/* agent/ag_ingest.c - the agent's socket: frames in, batches journalled, acknowledgements out */
/* SPDX-License-Identifier: Apache-2.0 */
#include "agent/ag_internal.h"

/* ---- connections --------------------------------------------------------------------- */

void ag_conn_close(struct ag_conn *c)
{
    struct ag_conn **pp;

    for (pp = &c->ag->conns; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    if (c->ag->stall_conn == c) {
        c->ag->stall_conn = NULL;
    }
    bufferevent_free(c->bev);
    gv_free(c);
}

static void send_frame(struct ag_conn *c, enum gv_frame_type type, const void *p, size_t n)
{
    uint8_t hdr[GV_FRAME_HDR];

    gv_put_u32le(hdr, (uint32_t)n);
    hdr[4] = (uint8_t)type;
    bufferevent_write(c->bev, hdr, sizeof(hdr));
    if (n) {
        bufferevent_write(c->bev, p, n);
    }
}

static void reply_status(struct ag_conn *c, bool json)
{
    struct ag_agent *ag = c->ag;
    struct ex_exporter_stats es[EX_EXPORTERS_MAX];
    size_t nes = ag_exporters_stats(ag, es, EX_EXPORTERS_MAX), i;
    struct gv_buf out;
    bool ok;

    gv_buf_init(&out, CONN_OUT_MAX);
    if (json) {
        (void)gv_buf_appendf(&out,
                             "{\"agent\":{\"events\":%llu,\"duplicates\":%llu,\"runs\":%zu,"
                             "\"connections\":%llu,\"flushes\":%llu,\"exporters\":%zu,"
                             "\"journal_stalled\":%s,\"journal_stalls\":%llu,"
                             "\"audit_head\":{\"seq\":%llu,\"hash\":\"%s\"}},",
                             (unsigned long long)atomic_load(&ag->events),
                             (unsigned long long)ag->duplicates, ag_runs_count(ag->runs),
                             (unsigned long long)ag->connections, (unsigned long long)ag->flushes,
                             ag->nexps, ag->stalled ? "true" : "false",
                             (unsigned long long)ag->stalls, (unsigned long long)ag->audit_head_seq,
                             ag->audit_head_hash);
        (void)gv_buf_append_str(&out, "\"delivery\":{");
        for (i = 0; i < nes; i++) {
            (void)gv_buf_appendf(
                &out,
                "%s\"%s\":{\"sent\":%llu,\"queued\":%llu,\"dropped\":%llu,"
                "\"retries\":%llu,\"metric_exports\":%llu}",
                i ? "," : "", es[i].name, (unsigned long long)es[i].st.sent,
                (unsigned long long)es[i].st.queued, (unsigned long long)es[i].st.dropped,
                (unsigned long long)es[i].st.retries, (unsigned long long)es[i].st.exports);
        }
        (void)gv_buf_append_str(&out, "},\"runs\":");
        ok = ag_runs_status(ag->runs, 1, &out) == GV_OK;
        if (ok) {
            ag_exporters_status(ag, true, &out);
        }
        if (!ok || gv_buf_append_str(&out, "}\n") != GV_OK) {
            gv_buf_reset(&out);
            (void)gv_buf_append_str(&out, "{\"error\":\"status too large\"}\n");
        }
    }
    else {
        (void)gv_buf_appendf(&out, "agent: events=%llu duplicates=%llu runs=%zu exporters=%zu\n",
                             (unsigned long long)atomic_load(&ag->events),
                             (unsigned long long)ag->duplicates, ag_runs_count(ag->runs),
                             ag->nexps);
        for (i = 0; i < nes; i++) {
            (void)gv_buf_appendf(
                &out,
                "exporter %s: sent=%llu queued=%llu dropped=%llu retries=%llu "
                "metric_exports=%llu\n",
                es[i].name, (unsigned long long)es[i].st.sent, (unsigned long long)es[i].st.queued,
                (unsigned long long)es[i].st.dropped, (unsigned long long)es[i].st.retries,
                (unsigned long long)es[i].st.exports);
        }
        ag_exporters_status(ag, false, &out);
        if (ag_runs_status(ag->runs, 0, &out) != GV_OK) {
            (void)gv_buf_append_str(&out, "(truncated)\n");
        }
    }
    /* Replies may exceed one frame: split, the client concatenates. */
    {
        size_t off = 0;
        while (off < out.len) {
            size_t n = out.len - off > GV_FRAME_MAX ? GV_FRAME_MAX : out.len - off;
            send_frame(c, GV_FRAME_STATUS_REPLY, out.data + off, n);
            off += n;
        }
        send_frame(c, GV_FRAME_STATUS_REPLY, NULL, 0); /* empty frame: the end */
    }
    gv_buf_free(&out);
}

/* ---- batches: journal, apply, acknowledge --------------------------------------- */

/* Puts the seq marks and ids of a batch back (newest first), as if it was
 * never read. */
static void batch_rollback(struct ag_agent *ag, size_t nrec)
{
    size_t i;

    for (i = nrec; i-- > 0;) {
        ag->rec_inst[i]->hwm = ag->rec_prev[i];
        if (ag->recs[i].request_id[0]) {
            ag_ids_remove(ag->ids, ag->rec_key[i]);
        }
    }
}

void ag_batch_release(struct ag_agent *ag, size_t nrec)
{
    size_t i;

    for (i = 0; i < nrec; i++) {
        gv_record_release(&ag->recs[i]);
    }
}

/* Counts a batch the journal holds and asks for its acknowledgement. */
static void batch_apply(struct ag_agent *ag, struct ag_conn *c, size_t nrec, bool ack)
{
    size_t i;

    for (i = 0; i < nrec; i++) {
        ag_runs_apply(ag->runs, &ag->recs[i], &ag->rec_inst[i]->hello, gv_wall_us());
        ag_note_audit_head(ag, &ag->recs[i]);
    }
    ag_batch_release(ag, nrec);
    atomic_fetch_add(&ag->events, nrec);
    if (ack && c && c->inst) {
        /* Acknowledged by commit(), after one fdatasync for everything read in
         * this loop iteration, from every connection (group commit). */
        c->ack_pending = true;
        event_active(ag->commit_ev, EV_TIMEOUT, 0);
    }
}

static void stall_arm(struct ag_agent *ag)
{
    struct timeval tv;

    tv.tv_sec = (time_t)(ag->stall_ms / 1000);
    tv.tv_usec = (suseconds_t)(ag->stall_ms % 1000) * 1000;
    event_add(ag->stall_ev, &tv);
}

/* The journal refused a batch for lack of space. The batch waits in memory,
 * its seq marks put back so no acknowledgement covers it; reading stops (the
 * gateway's spool holds what follows) and the write is retried with backoff. */
static void stall_begin(struct ag_agent *ag, struct ag_conn *c, size_t nrec, bool ack, int err)
{
    batch_rollback(ag, nrec);
    ag->stalled = true;
    ag->stall_nrec = nrec;
    ag->stall_ack = ack;
    ag->stall_conn = c;
    ag->stall_ms = STALL_MIN_MS;
    ag->stalls++;
    gv_log(GV_LOG_WARN, MOD, "journal write failed; holding acknowledgements until it succeeds",
           "errno=%d events=%zu retry_ms=%llu", err, nrec, (unsigned long long)ag->stall_ms);
    stall_arm(ag);
}

static void on_read(struct bufferevent *bev, void *arg);

void ag_on_stall_retry(evutil_socket_t fd, short what, void *arg)
{
    struct ag_agent *ag = arg;
    struct ag_conn *c, *next;
    size_t i;
    int err;

    if (!ag->stalled) {
        return;
    }
    err = ag_journal_append(ag);
    if (err && ag_journal_transient(err)) {
        ag->stall_ms = ag->stall_ms * 2 > STALL_MAX_MS ? STALL_MAX_MS : ag->stall_ms * 2;
        gv_log(GV_LOG_DEBUG, MOD, "journal still full", "errno=%d retry_ms=%llu", err,
               (unsigned long long)ag->stall_ms);
        stall_arm(ag);
        return;
    }
    ag->stalled = false;
    if (err) {
        gv_log(GV_LOG_ERROR, MOD, "journal write failed; stopping", "errno=%d", err);
        ag_batch_release(ag, ag->stall_nrec);
        ag->stall_nrec = 0;
        ag_fail(ag);
        return;
    }
    for (i = 0; i < ag->stall_nrec; i++) {
        ag->rec_inst[i]->hwm = ag->rec_seq[i];
        if (ag->recs[i].request_id[0]) {
            ag_ids_add(ag->ids, ag->rec_key[i]);
        }
    }
    gv_log(GV_LOG_INFO, MOD, "journal writable again; ingest resumes", "events=%zu",
           ag->stall_nrec);
    batch_apply(ag, ag->stall_conn, ag->stall_nrec, ag->stall_ack);
    ag->stall_nrec = 0;
    ag->stall_conn = NULL;
    /* What arrived meanwhile sits in the input buffers; no new bytes may come
     * to trigger a read callback, so read it now. */
    for (c = ag->conns; c; c = next) {
        next = c->next;
        on_read(c->bev, c);
    }
}

/* Decodes up to BATCH_MAX events, makes the new ones durable in the journal,
 * counts them, then acknowledges: the ack never runs ahead of the journal. */
static bool process_input(struct ag_conn *c)
{
    struct ag_agent *ag = c->ag;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t nrec = 0;
    bool ack = false, ok = true;

    if (!ag->stalled) {
        gv_buf_reset(&ag->jbuf); /* else it holds the batch waiting for the disk */
    }
    while (nrec < BATCH_MAX) {
        uint8_t hdr[GV_FRAME_HDR];
        size_t len = evbuffer_get_length(in), plen;
        const uint8_t *frame;
        unsigned type;

        if (len < GV_FRAME_HDR) {
            break;
        }
        evbuffer_copyout(in, hdr, GV_FRAME_HDR);
        plen = gv_get_u32le(hdr);
        if (plen > GV_FRAME_MAX) {
            ag->bad_frames++;
            gv_log(GV_LOG_WARN, MOD, "oversized frame, closing connection", "len=%zu", plen);
            ok = false;
            break;
        }
        if (len < GV_FRAME_HDR + plen) {
            break;
        }
        frame = evbuffer_pullup(in, (ev_ssize_t)(GV_FRAME_HDR + plen));
        type = frame[4];
        if (ag->stalled && type != GV_FRAME_STATUS) {
            /* Left in the buffer until the journal takes the waiting batch;
             * the read watermark then stops reading from this socket. */
            break;
        }
        if (type == GV_FRAME_HELLO) {
            if (ag_apply_hello(ag, frame + GV_FRAME_HDR, plen, &c->inst)) {
                (void)gv_buf_append(&ag->jbuf, frame, GV_FRAME_HDR + plen);
            }
            else {
                ag->bad_frames++;
            }
        }
        else if (type == GV_FRAME_EVENT) {
            struct gv_event_meta meta;
            struct ag_instance *inst;
            if (gv_event_decode(frame + GV_FRAME_HDR, plen, &ag->recs[nrec], &meta) != GV_OK) {
                ag->bad_frames++;
            }
            else {
                inst = c->inst && strcmp(c->inst->id, meta.instance_id) == 0
                           ? c->inst
                           : ag_instance_get(ag, meta.instance_id);
                if (!c->inst) {
                    c->inst = inst;
                }
                ack = true;
                memset(ag->rec_key[nrec], 0, AG_IDS_KEY);
                if (ag->recs[nrec].request_id[0]) {
                    ag_ids_key(ag->recs[nrec].request_id, ag->rec_key[nrec]);
                }
                if (meta.seq <= inst->hwm) {
                    ag->duplicates++;
                    gv_record_release(&ag->recs[nrec]);
                }
                else if (ag->recs[nrec].request_id[0] && ag_ids_has(ag->ids, ag->rec_key[nrec])) {
                    /* Counted before under another sequence: a re-emitted
                     * event (kt events reemit) or the original after one. */
                    inst->hwm = meta.seq;
                    ag->duplicates++;
                    gv_record_release(&ag->recs[nrec]);
                }
                else {
                    if (ag->recs[nrec].request_id[0]) {
                        ag_ids_add(ag->ids, ag->rec_key[nrec]);
                    }
                    /* Marked now so a replay inside this batch is a duplicate too. */
                    ag->rec_prev[nrec] = inst->hwm;
                    inst->hwm = meta.seq;
                    ag->rec_seq[nrec] = meta.seq;
                    ag->rec_inst[nrec++] = inst;
                    (void)gv_buf_append(&ag->jbuf, frame, GV_FRAME_HDR + plen);
                }
            }
        }
        else if (type == GV_FRAME_STATUS) {
            reply_status(c, plen >= 1 && frame[GV_FRAME_HDR] == 1);
        }
        evbuffer_drain(in, GV_FRAME_HDR + plen);
    }
    /* Trace exporters store each event before the journal has it: a crash in
     * between leaves it unacknowledged, the gateway resends it and the
     * exporter's deterministic ids make the second copy the same call. */
    if (ag->stalled) {
        return ok;
    }
    if (nrec > 0) {
        ag_exporters_events(ag, nrec);
    }
    if (ag->jbuf.len) {
        int err = ag_journal_append(ag);
        if (err && !ag_journal_transient(err)) {
            /* Not durable and never will be: not acknowledged, so the
             * gateway resends after a restart (the service manager's). */
            gv_log(GV_LOG_ERROR, MOD, "journal write failed; stopping", "errno=%d", err);
            batch_rollback(ag, nrec);
            ag_batch_release(ag, nrec);
            ag_fail(ag);
            return false;
        }
        if (err) {
            stall_begin(ag, c, nrec, ack, err);
            return ok;
        }
    }
    batch_apply(ag, c, nrec, ack);
    return ok;
}

/* Makes the journal durable, then acknowledges. Runs after the read callbacks
 * of a loop iteration (lower priority), so one sync covers many events. */
void ag_on_commit(evutil_socket_t fd, short what, void *arg)
{
    struct ag_agent *ag = arg;
    struct ag_conn *c;

    if (ag->journal_dirty) {
        if (ag->opts.fsync && fdatasync(ag->journal_fd) != 0) {
            /* After a failed sync the kernel may have dropped the pages: what
             * the journal holds is unknown, so only a restart (replay, then
             * the gateway's resend) is safe. Nothing here was acknowledged. */
            gv_log(GV_LOG_ERROR, MOD, "journal sync failed; stopping", "errno=%d", errno);
            ag_fail(ag);
            return;
        }
        ag->journal_dirty = false;
    }
    for (c = ag->conns; c; c = c->next) {
        if (c->ack_pending && c->inst) {
            uint8_t v[8];
            gv_put_u64le(v, c->inst->hwm);
            send_frame(c, GV_FRAME_ACK, v, sizeof(v));
        }
        c->ack_pending = false;
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct ag_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);

    for (;;) {
        size_t before = evbuffer_get_length(in);
        if (!process_input(c)) {
            ag_conn_close(c);
            return;
        }
        if (evbuffer_get_length(in) == before || evbuffer_get_length(in) < GV_FRAME_HDR) {
            return;
        }
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        ag_conn_close(arg);
    }
}

void ag_on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                  void *arg)
{
    struct ag_agent *ag = arg;
    struct ag_conn *c = gv_calloc(1, sizeof(*c));

    c->ag = ag;
    c->bev = bufferevent_socket_new(ag->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev) {
        close(fd);
        gv_free(c);
        return;
    }
    /* A bounded read buffer: a sender that outruns us waits in its own spool. */
    bufferevent_setwatermark(c->bev, EV_READ, 0, 4u * 1024u * 1024u);
    bufferevent_set_max_single_read(c->bev, 1024 * 1024);
    bufferevent_priority_set(c->bev, 0);
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->next = ag->conns;
    ag->conns = c;
    ag->connections++;
}
