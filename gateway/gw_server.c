/* gateway/gw_server.c - the HTTP server: worker threads, listeners, start and stop */
/* SPDX-License-Identifier: Apache-2.0 */
#include "gateway/gw_server.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <json-c/json.h>

#include "core/gv_log.h"
#include "core/gv_mem.h"
#include "core/gv_thread.h"
#include "core/gv_time.h"
#include "gateway/gw_relay.h"
#include "gateway/gw_route.h"
#include "gateway/gw_worker.h"

#define MOD "gateway"
/* The request log line's key=value text; gv_log cuts longer ones anyway. */
#define LOGKV_MAX 4096
#define JSON_DEPTH 64
#define LISTEN_BACKLOG 4096
#define DRAIN_DEFAULT_MS 10000L
/* Descriptors kept back from client connections: upstream connections, the
 * audit log, the agent socket, spool files. Each proxied request needs one
 * upstream descriptor, so clients get at most half of what is left. */
#define FD_RESERVE 256

/* --------------------------------------------------------------- workers */

void gw_worker_maybe_exit(struct gw_worker *w)
{
    if (w->draining && w->nactive == 0 && gw_conns_count(w->conns) == 0) {
        event_base_loopexit(w->base, NULL);
    }
}

static void on_conns_empty(void *arg)
{
    gw_worker_maybe_exit(arg);
}

static void on_drain_timeout(evutil_socket_t fd, short kind, void *arg)
{
    struct gw_worker *w = arg;

    (void)fd;
    (void)kind;
    if (w->nactive > 0) {
        gv_log(GV_LOG_WARN, MOD, "drain deadline passed", "worker=%d ending=%zu", w->idx,
               w->nactive);
    }
    gw_relay_end_all(w);
    event_base_loopexit(w->base, NULL);
}

static void on_stop(evutil_socket_t fd, short kind, void *arg)
{
    struct gw_worker *w = arg;
    long ms = atomic_load(&w->srv->stop_drain_ms);
    struct timeval tv;
    uint64_t count;

    (void)fd;
    (void)kind;
    /* Level-triggered: empty the counter or this runs again every loop. */
    if (read(w->stop_fd, &count, sizeof(count)) < 0) {
        count = 0;
    }
    if (!w->draining) {
        w->draining = true;
        gw_conns_drain(w->conns); /* closes the listener and idle connections */
    }
    if (ms <= 0 || w->nactive == 0) {
        gw_relay_end_all(w);
        if (ms <= 0 || gw_conns_count(w->conns) == 0) {
            event_base_loopexit(w->base, NULL);
            return;
        }
    }
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    evtimer_add(w->drain_timer, &tv);
}

static void *worker_main(void *arg)
{
    struct gw_worker *w = arg;

    event_base_dispatch(w->base);
    /* Records still waiting for async detection are finished before the worker ends. */
    gw_relay_async_drain(w);
    return NULL;
}

static gv_rc parse_listen(const char *listen, char *host, size_t hsize, char *port, size_t psize)
{
    const char *colon;
    size_t hlen;

    if (!listen || !*listen) {
        return GV_EINVAL;
    }
    if (listen[0] == '[') {
        const char *end = strchr(listen, ']');
        if (!end || end[1] != ':') {
            return GV_EINVAL;
        }
        hlen = (size_t)(end - listen - 1);
        if (hlen >= hsize) {
            return GV_EINVAL;
        }
        memcpy(host, listen + 1, hlen);
        host[hlen] = '\0';
        colon = end + 1;
    }
    else {
        colon = strrchr(listen, ':');
        if (!colon) {
            return GV_EINVAL;
        }
        hlen = (size_t)(colon - listen);
        if (hlen >= hsize) {
            return GV_EINVAL;
        }
        memcpy(host, listen, hlen);
        host[hlen] = '\0';
    }
    if (strlen(colon + 1) == 0 || strlen(colon + 1) >= psize ||
        strspn(colon + 1, "0123456789") != strlen(colon + 1) || strlen(colon + 1) > 5) {
        return GV_EINVAL;
    }
    snprintf(port, psize, "%s", colon + 1);
    return GV_OK;
}

static int bind_one(const struct sockaddr *sa, socklen_t len, bool reuseport)
{
    int one = 1;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
        close(fd);
        return -1;
    }
    if (bind(fd, sa, len) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static void set_port(struct sockaddr_storage *ss, unsigned port)
{
    if (ss->ss_family == AF_INET6) {
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    }
    else {
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    }
}

static unsigned get_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET6) {
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    }
    return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

/* All workers listen on the same address through SO_REUSEPORT. A plain bind
 * first proves the port is free, so two gateways never silently share one. */
static gv_rc open_listeners(struct gw_server *s, const char *listen, int *fds, char *err,
                            size_t errsize)
{
    struct addrinfo hints, *ai = NULL;
    struct sockaddr_storage ss;
    socklen_t sslen;
    char host[256], port[16], shown[300];
    int probe, i, gai;
    gv_rc rc = GV_OK;

    if (parse_listen(listen, host, sizeof(host), port, sizeof(port)) != GV_OK ||
        strtol(port, NULL, 10) > 65535) {
        snprintf(err, errsize, "invalid --listen '%s': want HOST:PORT", listen ? listen : "");
        return GV_EINVAL;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
    if (gai != 0 || !ai) {
        snprintf(err, errsize, "invalid --listen host '%s': %s", host, gai_strerror(gai));
        rc = GV_EINVAL;
        goto out;
    }
    memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    sslen = (socklen_t)ai->ai_addrlen;
    probe = bind_one((struct sockaddr *)&ss, sslen, false);
    if (probe < 0) {
        snprintf(err, errsize, "cannot listen on %s: %s", listen, strerror(errno));
        rc = GV_EIO;
        goto out;
    }
    getsockname(probe, (struct sockaddr *)&ss, &sslen);
    close(probe);
    for (i = 0; i < s->nworkers; i++) {
        fds[i] = bind_one((struct sockaddr *)&ss, sslen, true);
        if (fds[i] < 0) {
            snprintf(err, errsize, "cannot listen on %s: %s", listen, strerror(errno));
            rc = GV_EIO;
            goto out;
        }
    }
    if (ss.ss_family == AF_INET6) {
        char a[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, a, sizeof(a));
        snprintf(shown, sizeof(shown), "[%s]:%u", a, get_port(&ss));
    }
    else {
        char a[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, a, sizeof(a));
        snprintf(shown, sizeof(shown), "%s:%u", a, get_port(&ss));
    }
    snprintf(s->addr, sizeof(s->addr), "%s", shown);
    set_port(&ss, get_port(&ss));
out:
    if (ai) {
        freeaddrinfo(ai);
    }
    return rc;
}

static gv_rc worker_init(struct gw_server *s, struct gw_worker *w, int idx, int fd)
{
    struct event_config *ecfg;
    size_t i;
    struct gw_conns_opts co;

    w->srv = s;
    w->idx = idx;
    w->listen_fd = fd;
    gw_reqid_init(&w->ids);
    ecfg = event_config_new();
    if (ecfg) {
        /* No EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST: it defers epoll_ctl to the next
         * dispatch, after a closed connection's fd may already belong to another worker's
         * new connection (ThreadSanitizer saw the DEL land on it). Events change rarely
         * here (EV_WRITE only after EAGAIN), so folding them saved little. */
        /* Only this worker's thread touches its base (gw_server_stop goes through stop_fd),
         * so no lock around every event_add and event_del. */
        event_config_set_flag(ecfg, EVENT_BASE_FLAG_NOLOCK);
        w->base = event_base_new_with_config(ecfg);
        event_config_free(ecfg);
    }
    if (!w->base) {
        return GV_EIO;
    }
    w->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->stop_fd < 0) {
        return GV_EIO;
    }
    w->stop_ev = event_new(w->base, w->stop_fd, EV_READ | EV_PERSIST, on_stop, w);
    if (w->stop_ev && event_add(w->stop_ev, NULL) != 0) {
        return GV_EIO;
    }
    w->drain_timer = evtimer_new(w->base, on_drain_timeout, w);
    w->tok = json_tokener_new_ex(JSON_DEPTH);
    gv_buf_init(&w->logkv, LOGKV_MAX);
    if (!w->stop_ev || !w->drain_timer || !w->tok) {
        return GV_EIO;
    }
    if (gw_upstream_create(w->base, &w->up) != GV_OK) {
        return GV_EIO;
    }
    for (i = 0; i < s->cfg->ntargets; i++) {
        const struct gw_target *t = &s->cfg->targets[i];
        /* Certificate files are read here, not on the first request's loop turn. A
         * store that cannot load is left to the request, whose 502 says why. */
        if (t->base_url && strncmp(t->base_url, "https://", 8) == 0 &&
            gw_upstream_prepare_tls(w->up, t->ca_file) != GV_OK) {
            gv_log(GV_LOG_WARN, MOD, "cannot load the trust store for a target", "target=%s",
                   t->id ? t->id : "-");
        }
    }
    memset(&co, 0, sizeof(co));
    co.base = w->base;
    co.listen_fd = fd;
    co.lim = s->lim;
    co.lim.max_conns = (s->max_conns + (size_t)s->nworkers - 1) / (size_t)s->nworkers;
    co.dispatch = gw_route_dispatch;
    co.refuse = gw_route_refuse;
    co.on_empty = on_conns_empty;
    co.arg = w;
    co.worker = idx;
    w->listen_fd = -1; /* gw_conns owns it now, even when it fails */
    return gw_conns_create(&co, &w->conns);
}

static void worker_free(struct gw_worker *w)
{
    if (w->base) {
        gw_relay_end_all(w);
    }
    gw_conns_destroy(w->conns);
    w->conns = NULL;
    if (w->listen_fd >= 0) {
        close(w->listen_fd);
    }
    gw_upstream_destroy(w->up);
    if (w->stop_ev) {
        event_free(w->stop_ev);
    }
    if (w->stop_fd >= 0) {
        close(w->stop_fd);
    }
    if (w->drain_timer) {
        event_free(w->drain_timer);
    }
    if (w->tok) {
        json_tokener_free(w->tok);
    }
    gv_buf_free(&w->logkv);
    gw_relay_free_pool(w);
    if (w->base) {
        event_base_free(w->base);
    }
}

/* The connection cap: the configured one, else what the descriptor limit
 * allows after the reserve. */
static size_t conn_cap(const struct gw_config *cfg)
{
    struct rlimit rl;
    size_t fit = 0;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        fit = rl.rlim_cur > FD_RESERVE * 2 ? (size_t)(rl.rlim_cur - FD_RESERVE) / 2
                                           : (size_t)rl.rlim_cur / 4;
        if (fit == 0) {
            fit = 1;
        }
    }
    if (cfg->max_connections > 0 && (fit == 0 || cfg->max_connections < fit)) {
        return cfg->max_connections;
    }
    return fit;
}

gv_rc gw_server_create(const struct gw_server_opts *opts, struct gw_server **out, char *err,
                       size_t errsize)
{
    struct gw_server *s = gv_calloc(1, sizeof(*s));
    const struct gw_config *cfg = opts->cfg;
    int *fds = NULL;
    int i, n = opts->workers;
    gv_rc rc;

    *out = NULL;
    err[0] = '\0';
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)c : 1;
    }
    if (n > 256) {
        n = 256;
    }
    evthread_use_pthreads();
    s->cfg = cfg;
    s->chain = opts->chain;
    s->em = opts->emitter;
    s->nworkers = n;
    s->start_mono = gv_mono_us();
    s->start_wall = gv_wall_us();
    s->lim.h1.max_line = cfg->max_header_line_bytes;
    s->lim.h1.max_head = cfg->max_header_bytes;
    s->lim.h1.max_headers = cfg->max_headers;
    s->lim.h1.max_body = cfg->max_body_bytes ? cfg->max_body_bytes : 4u << 20;
    s->lim.header_timeout_ms = cfg->header_timeout_ms;
    s->lim.body_timeout_ms = cfg->body_timeout_ms;
    s->lim.keepalive_timeout_ms = cfg->keepalive_timeout_ms;
    s->lim.send_timeout_ms = cfg->send_timeout_ms;
    s->max_conns = conn_cap(cfg);
    atomic_store(&s->stop_drain_ms, opts->drain_ms > 0 ? opts->drain_ms : DRAIN_DEFAULT_MS);
    s->models_json = gw_route_models_json(s->cfg, s->start_wall / 1000000u);
    s->workers = gv_calloc((size_t)n, sizeof(*s->workers));
    fds = gv_calloc((size_t)n, sizeof(*fds));
    for (i = 0; i < n; i++) {
        fds[i] = -1;
        s->workers[i].listen_fd = -1;
        s->workers[i].stop_fd = -1;
    }
    rc = open_listeners(s, opts->listen, fds, err, errsize);
    for (i = 0; rc == GV_OK && i < n; i++) {
        rc = worker_init(s, &s->workers[i], i, fds[i]);
        fds[i] = -1;
        if (rc != GV_OK) {
            snprintf(err, errsize, "cannot set up event loop %d", i);
        }
    }
    for (i = 0; i < n; i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
        }
    }
    gv_free(fds);
    if (rc != GV_OK) {
        s->joined = true;
        gw_server_destroy(s);
        return rc;
    }
    gv_log(GV_LOG_DEBUG, MOD, "connection cap", "max_connections=%zu workers=%d", s->max_conns, n);
    *out = s;
    return GV_OK;
}

const char *gw_server_addr(const struct gw_server *srv)
{
    return srv->addr;
}

int gw_server_workers(const struct gw_server *srv)
{
    return srv->nworkers;
}

gv_rc gw_server_start(struct gw_server *srv)
{
    int i;

    for (i = 0; i < srv->nworkers; i++) {
        struct gw_worker *w = &srv->workers[i];
        char name[16];
        snprintf(name, sizeof(name), "kt-worker-%d", i);
        if (gv_thread_start(&w->thread, name, GV_THREAD_SERVING, worker_main, w) != GV_OK) {
            gw_server_stop(srv, 0);
            gw_server_join(srv);
            return GV_EIO;
        }
        w->started = true;
    }
    return GV_OK;
}

void gw_server_stop(struct gw_server *srv, long drain_ms)
{
    int i;

    if (!srv) {
        return;
    }
    atomic_store(&srv->stop_drain_ms, drain_ms);
    for (i = 0; i < srv->nworkers; i++) {
        if (srv->workers[i].stop_fd >= 0) {
            uint64_t one = 1;
            ssize_t n = write(srv->workers[i].stop_fd, &one, sizeof(one));
            (void)n; /* only fails when the counter is saturated: a stop is pending anyway */
        }
    }
}

void gw_server_join(struct gw_server *srv)
{
    int i;

    for (i = 0; srv && i < srv->nworkers; i++) {
        if (srv->workers[i].started) {
            pthread_join(srv->workers[i].thread, NULL);
            srv->workers[i].started = false;
        }
    }
    if (srv) {
        srv->joined = true;
    }
}

void gw_server_destroy(struct gw_server *srv)
{
    int i;

    if (!srv) {
        return;
    }
    if (!srv->joined) {
        gw_server_stop(srv, 0);
        gw_server_join(srv);
    }
    for (i = 0; srv->workers && i < srv->nworkers; i++) {
        worker_free(&srv->workers[i]);
    }
    gv_free(srv->workers);
    gv_free(srv->models_json);
    gv_free(srv);
}
