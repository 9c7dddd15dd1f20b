/* agent/ag_agent.c - kt agent: create, run, stop; the status client */
/* SPDX-License-Identifier: Apache-2.0 */
#include "agent/ag_internal.h"

/* ---- lifecycle ----------------------------------------------------------------------- */

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct ag_agent *ag = arg;
    gv_log(GV_LOG_INFO, MOD, "stopping", "signal=%d", (int)sig);
    event_base_loopexit(ag->base, NULL);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    struct ag_agent *ag = arg;
    if (atomic_load(&ag->stop_requested)) {
        event_base_loopexit(ag->base, NULL);
    }
}

/* Refuses to take over a socket another agent is serving; removes a stale one. */
static gv_rc prepare_socket_path(const char *path)
{
    struct sockaddr_un sa;
    struct stat st;
    int fd;

    if (lstat(path, &st) != 0) {
        return GV_OK;
    }
    if (!S_ISSOCK(st.st_mode)) {
        gv_log(GV_LOG_ERROR, MOD, "socket path exists and is not a socket", "path=%s", path);
        return GV_EIO;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        close(fd);
        gv_log(GV_LOG_ERROR, MOD, "another agent is listening", "socket=%s", path);
        return GV_EIO;
    }
    if (fd >= 0) {
        close(fd);
    }
    unlink(path);
    return GV_OK;
}

static gv_rc listen_socket(struct ag_agent *ag)
{
    struct sockaddr_un sa;
    mode_t old;
    gv_rc rc;

    rc = prepare_socket_path(ag->sock_path);
    if (rc) {
        return rc;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, ag->sock_path, strlen(ag->sock_path) + 1);
    /* umask at bind time: the socket is never world-accessible, not even briefly. */
    old = umask(0177);
    ag->listener = evconnlistener_new_bind(ag->base, ag_on_accept, ag,
                                           LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 128,
                                           (struct sockaddr *)&sa, (int)sizeof(sa));
    umask(old);
    if (!ag->listener) {
        gv_log(GV_LOG_ERROR, MOD, "cannot listen", "socket=%s errno=%d", ag->sock_path, errno);
        return GV_EIO;
    }
    if (ag->opts.socket_group) {
        struct group *g = getgrnam(ag->opts.socket_group);
        if (!g || chown(ag->sock_path, (uid_t)-1, g->gr_gid) != 0 ||
            chmod(ag->sock_path, 0660) != 0) {
            gv_log(GV_LOG_ERROR, MOD, "cannot give the socket to the group", "group=%s",
                   ag->opts.socket_group);
            return GV_EIO;
        }
    }
    return GV_OK;
}

gv_rc ag_agent_create(const struct ag_opts *opts, struct ag_agent **out)
{
    struct ag_agent *ag = gv_calloc(1, sizeof(*ag));
    char dir[4128];
    char sock[4096];
    struct timeval tv;
    gv_rc rc;

    *out = NULL;
    ag->opts = *opts;
    ag->lock_fd = -1;
    pthread_mutex_init(&ag->jlock, NULL);
    pthread_cond_init(&ag->jcond, NULL);
    ag->journal_fd = -1;
    gv_buf_init(&ag->jbuf, 0);
    snprintf(ag->state_dir, sizeof(ag->state_dir), "%s", opts->state_dir);
    if (opts->label) {
        snprintf(ag->label, sizeof(ag->label), "%s", opts->label);
    }
    else if (gethostname(ag->label, sizeof(ag->label) - 1) != 0) {
        snprintf(ag->label, sizeof(ag->label), "kt-agent");
    }
    if (opts->socket_path) {
        snprintf(sock, sizeof(sock), "%s", opts->socket_path);
    }
    else if (gv_agent_socket_default(ag->state_dir, sock, sizeof(sock)) != GV_OK) {
        rc = GV_E2BIG;
        goto out;
    }
    if (strlen(sock) >= sizeof(ag->sock_path)) {
        gv_log(GV_LOG_ERROR, MOD, "socket path too long", "max=%zu", sizeof(ag->sock_path) - 1);
        rc = GV_E2BIG;
        goto out;
    }
    memcpy(ag->sock_path, sock, strlen(sock) + 1);
    snprintf(dir, sizeof(dir), "%s/agent", ag->state_dir);
    /* An existing directory on a read-only file system passes mkdir -p (EEXIST):
     * check that it can be written, so the error names the real cause. An
     * unusable state dir is the operator's to fix, like a bad option: exit 2. */
    if (gv_mkdir_p(dir, 0700) != GV_OK || gv_dir_check(dir) != GV_OK) {
        gv_log(GV_LOG_ERROR, MOD, "cannot use state dir", "path=%s err=\"%s\"", dir,
               strerror(errno));
        rc = GV_ECONFIG;
        goto out;
    }
    snprintf(ag->journal_path, sizeof(ag->journal_path), "%s/journal", dir);
    snprintf(ag->state_path, sizeof(ag->state_path), "%s/state.json", dir);
    snprintf(ag->ids_path, sizeof(ag->ids_path), "%s/ids", dir);
    {
        char lock[4160];
        snprintf(lock, sizeof(lock), "%s/lock", dir);
        ag->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (ag->lock_fd < 0) {
            gv_log(GV_LOG_ERROR, MOD, "cannot open the state dir's lock file", "path=%s err=\"%s\"",
                   lock, strerror(errno));
            rc = GV_ECONFIG;
            goto out;
        }
        if (flock(ag->lock_fd, LOCK_EX | LOCK_NB) != 0) {
            if (errno == EWOULDBLOCK) {
                gv_log(GV_LOG_ERROR, MOD, "another agent uses this state dir", "path=%s", dir);
            }
            else {
                gv_log(GV_LOG_ERROR, MOD, "cannot lock the state dir", "path=%s err=\"%s\"", lock,
                       strerror(errno));
            }
            rc = GV_EIO;
            goto out;
        }
    }
    ag->runs = ag_runs_create(opts->idle_ms);
    ag->instances = lh_kchar_table_new(16, ag_instance_free_entry);
    ag->recs = gv_malloc(BATCH_MAX * sizeof(*ag->recs));
    ag->rec_inst = gv_malloc(BATCH_MAX * sizeof(*ag->rec_inst));
    ag->rec_seq = gv_malloc(BATCH_MAX * sizeof(*ag->rec_seq));
    ag->rec_prev = gv_malloc(BATCH_MAX * sizeof(*ag->rec_prev));
    ag->rec_key = gv_malloc(BATCH_MAX * sizeof(*ag->rec_key));
    ag->ids = ag_ids_create();
    rc = ag_ids_load(ag->ids, ag->ids_path);
    if (rc) {
        gv_log(GV_LOG_ERROR, MOD, "counted request ids unreadable", "path=%s", ag->ids_path);
        goto out;
    }
    ag->evs = gv_malloc(BATCH_MAX * sizeof(*ag->evs));
    rc = ag_state_load(ag);
    if (rc) {
        gv_log(GV_LOG_ERROR, MOD, "state file unreadable", "path=%s rc=%s", ag->state_path,
               gv_rc_str(rc));
        goto out;
    }
    rc = ag_journal_replay(ag);
    if (rc) {
        gv_log(GV_LOG_ERROR, MOD, "journal unreadable", "path=%s", ag->journal_path);
        goto out;
    }
    ag->journal_fd = open(ag->journal_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (ag->journal_fd < 0) {
        rc = GV_EIO;
        goto out;
    }
    ag->base = event_base_new();
    /* Two priorities: reads first, then the group commit that acknowledges them. */
    if (!ag->base || event_base_priority_init(ag->base, 2) != 0) {
        rc = GV_EIO;
        goto out;
    }
    rc = listen_socket(ag);
    if (rc) {
        goto out;
    }
    rc = ag_exporters_start(ag);
    if (rc) {
        goto out;
    }
    ag->commit_ev = event_new(ag->base, -1, 0, ag_on_commit, ag);
    event_priority_set(ag->commit_ev, 1);
    ag->stall_ev = evtimer_new(ag->base, ag_on_stall_retry, ag);
    ag->flush_ev = event_new(ag->base, -1, EV_PERSIST, ag_on_flush, ag);
    tv.tv_sec = (time_t)(opts->flush_ms / 1000);
    tv.tv_usec = (suseconds_t)(opts->flush_ms % 1000) * 1000;
    event_add(ag->flush_ev, &tv);
    ag->stop_ev = event_new(ag->base, -1, EV_PERSIST, on_stop, ag);
    tv.tv_sec = 0;
    tv.tv_usec = 100000;
    event_add(ag->stop_ev, &tv);
    gv_log(GV_LOG_INFO, MOD, "listening", "socket=%s state=%s events=%llu runs=%zu", ag->sock_path,
           ag->state_dir, (unsigned long long)atomic_load(&ag->events), ag_runs_count(ag->runs));
    *out = ag;
    ag = NULL;
out:
    ag_agent_destroy(ag);
    return rc;
}

gv_rc ag_agent_run(struct ag_agent *ag, bool handle_signals)
{
    if (handle_signals) {
        signal(SIGPIPE, SIG_IGN);
        ag->sigterm_ev = evsignal_new(ag->base, SIGTERM, on_signal, ag);
        ag->sigint_ev = evsignal_new(ag->base, SIGINT, on_signal, ag);
        evsignal_add(ag->sigterm_ev, NULL);
        evsignal_add(ag->sigint_ev, NULL);
    }
    event_base_dispatch(ag->base);
    ag_flush_now(ag, true);
    /* The exporters get the last batch and one final attempt at what is queued. */
    ag_jobs_stop(ag);
    gv_log(ag->failed ? GV_LOG_ERROR : GV_LOG_INFO, MOD, "stopped",
           "events=%llu runs=%zu failed=%d", (unsigned long long)atomic_load(&ag->events),
           ag_runs_count(ag->runs), ag->failed ? 1 : 0);
    return ag->failed ? GV_EIO : GV_OK;
}

void ag_agent_stop(struct ag_agent *ag)
{
    atomic_store(&ag->stop_requested, 1);
}

uint64_t ag_agent_events(struct ag_agent *ag)
{
    return atomic_load(&ag->events);
}

/* event_free for the events a failed start may not have made. */
static void event_drop(struct event *ev)
{
    if (ev) {
        event_free(ev);
    }
}

void ag_agent_destroy(struct ag_agent *ag)
{
    if (!ag) {
        return;
    }
    while (ag->conns) {
        ag_conn_close(ag->conns);
    }
    ag_exporters_stop(ag);
    if (ag->listener) {
        evconnlistener_free(ag->listener);
        unlink(ag->sock_path);
    }
    event_drop(ag->flush_ev);
    event_drop(ag->stop_ev);
    event_drop(ag->commit_ev);
    event_drop(ag->stall_ev);
    if (ag->stalled) {
        ag_batch_release(ag, ag->stall_nrec); /* never acknowledged: the gateway resends */
    }
    event_drop(ag->sigterm_ev);
    event_drop(ag->sigint_ev);
    if (ag->base) {
        event_base_free(ag->base);
    }
    if (ag->journal_fd >= 0) {
        close(ag->journal_fd);
    }
    if (ag->lock_fd >= 0) {
        close(ag->lock_fd);
    }
    ag_runs_destroy(ag->runs);
    gv_ydoc_destroy(ag->cfg_doc);
    pthread_mutex_destroy(&ag->jlock);
    pthread_cond_destroy(&ag->jcond);
    if (ag->instances) {
        lh_table_free(ag->instances);
    }
    gv_free(ag->recs);
    gv_free(ag->rec_inst);
    gv_free(ag->rec_seq);
    gv_free(ag->rec_prev);
    gv_free(ag->rec_key);
    ag_ids_destroy(ag->ids);
    gv_free(ag->evs);
    gv_buf_free(&ag->jbuf);
    gv_free(ag);
}

/* ---- status client ------------------------------------------------------------------- */

gv_rc ag_status_query(const char *socket_path, bool json, int timeout_ms, struct gv_buf *out)
{
    struct sockaddr_un sa;
    struct gv_buf in;
    uint8_t req[GV_FRAME_HDR + 1];
    uint64_t deadline = gv_mono_us() + (uint64_t)timeout_ms * 1000;
    int fd = -1;
    gv_rc rc = GV_OK;

    if (strlen(socket_path) >= sizeof(sa.sun_path)) {
        return GV_E2BIG;
    }
    gv_buf_init(&in, CONN_OUT_MAX + GV_FRAME_MAX);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, socket_path, strlen(socket_path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        rc = GV_EIO;
        goto out;
    }
    gv_put_u32le(req, 1);
    req[4] = GV_FRAME_STATUS;
    req[5] = json ? 1 : 0;
    if (send(fd, req, sizeof(req), MSG_NOSIGNAL) != (ssize_t)sizeof(req)) {
        rc = GV_EIO;
        goto out;
    }
    for (;;) {
        char tmp[65536];
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        uint64_t now = gv_mono_us();
        ssize_t r;
        size_t off = 0;
        bool done = false;

        if (now >= deadline) {
            rc = GV_ETIMEDOUT;
            goto out;
        }
        if (poll(&pfd, 1, (int)((deadline - now) / 1000) + 1) <= 0) {
            continue;
        }
        r = recv(fd, tmp, sizeof(tmp), 0);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            rc = GV_EIO;
            goto out;
        }
        rc = gv_buf_append(&in, tmp, (size_t)r);
        if (rc) {
            goto out;
        }
        for (;;) {
            unsigned type;
            const uint8_t *p;
            size_t plen, used;
            if (gv_frame_parse(in.data + off, in.len - off, &type, &p, &plen, &used) != GV_OK) {
                break;
            }
            if (type == GV_FRAME_STATUS_REPLY) {
                if (plen == 0) {
                    done = true;
                }
                else {
                    rc = gv_buf_append(out, p, plen);
                    if (rc) {
                        goto out;
                    }
                }
            }
            off += used;
        }
        gv_buf_consume(&in, off);
        if (done) {
            break;
        }
    }
out:
    if (fd >= 0) {
        close(fd);
    }
    gv_buf_free(&in);
    return rc;
}
