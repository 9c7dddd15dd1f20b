/* gateway/policies/accounting/ledger.c - spend per run / team / principal, persisted */
/* SPDX-License-Identifier: Apache-2.0 */
#include "gateway/policies/accounting/ledger.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/gv_file.h"
#include "core/gv_log.h"
#include "core/gv_mem.h"
#include "core/gv_paths.h"
#include "core/gv_thread.h"
#include "core/gv_time.h"
#include "gateway/gw_policy.h"

struct entry {
    struct entry *next;
    char *kind;
    char *key;
    double usd;
    double held; /* reserved by requests in flight; never persisted */
};

struct gw_ledger {
    char *path;
    long flush_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct entry **buckets; /* under mu */
    size_t nbuckets;
    size_t nkeys;
    bool dirty;
    bool stop;
    bool full_logged;
    pthread_t thread;
    bool started;
};

static uint64_t fnv1a(const char *kind, const char *key)
{
    uint64_t h = 1469598103934665603ull;
    const unsigned char *p;
    for (p = (const unsigned char *)kind; *p; p++) {
        h = (h ^ *p) * 1099511628211ull;
    }
    h = (h ^ 0xff) * 1099511628211ull;
    for (p = (const unsigned char *)key; *p; p++) {
        h = (h ^ *p) * 1099511628211ull;
    }
    return h;
}

static void grow(struct gw_ledger *l)
{
    size_t n = l->nbuckets * 2, i;
    struct entry **b = gv_calloc(n, sizeof(*b));

    for (i = 0; i < l->nbuckets; i++) {
        struct entry *e = l->buckets[i];
        while (e) {
            struct entry *next = e->next;
            size_t j = fnv1a(e->kind, e->key) & (n - 1);
            e->next = b[j];
            b[j] = e;
            e = next;
        }
    }
    gv_free(l->buckets);
    l->buckets = b;
    l->nbuckets = n;
}

/* Under mu. create: add a zero entry when absent (NULL when the table is full). */
static struct entry *lookup(struct gw_ledger *l, const char *kind, const char *key, bool create)
{
    char cut[GW_LEDGER_KEY_MAX + 1];
    size_t klen = strnlen(key, GW_LEDGER_KEY_MAX);
    size_t i;
    struct entry *e;

    memcpy(cut, key, klen);
    cut[klen] = '\0';
    i = fnv1a(kind, cut) & (l->nbuckets - 1);
    for (e = l->buckets[i]; e; e = e->next) {
        if (strcmp(e->key, cut) == 0 && strcmp(e->kind, kind) == 0) {
            return e;
        }
    }
    if (!create) {
        return NULL;
    }
    if (l->nkeys >= GW_LEDGER_MAX_KEYS) {
        if (!l->full_logged) {
            gv_log(GV_LOG_ERROR, "policy:cost-tracker", "spend ledger full; new keys not counted",
                   "max_keys=%u", GW_LEDGER_MAX_KEYS);
            l->full_logged = true;
        }
        return NULL;
    }
    if (l->nkeys >= l->nbuckets) {
        grow(l);
        i = fnv1a(kind, cut) & (l->nbuckets - 1);
    }
    e = gv_calloc(1, sizeof(*e));
    e->kind = gv_strdup(kind);
    e->key = gv_strdup(cut);
    e->next = l->buckets[i];
    l->buckets[i] = e;
    l->nkeys++;
    return e;
}

double gw_ledger_get(struct gw_ledger *l, const char *kind, const char *key)
{
    struct entry *e;
    double v;

    pthread_mutex_lock(&l->mu);
    e = lookup(l, kind, key, false);
    v = e ? e->usd : 0.0;
    pthread_mutex_unlock(&l->mu);
    return v;
}

void gw_ledger_add(struct gw_ledger *l, const char *kind, const char *key, double usd)
{
    struct entry *e;

    if (!(usd > 0.0)) {
        return;
    }
    pthread_mutex_lock(&l->mu);
    e = lookup(l, kind, key, true);
    if (e) {
        e->usd += usd;
        l->dirty = true;
    }
    pthread_mutex_unlock(&l->mu);
}

bool gw_ledger_reserve(struct gw_ledger *l, const char *kind, const char *key, double budget,
                       double usd)
{
    struct entry *e;
    bool ok;

    pthread_mutex_lock(&l->mu);
    e = lookup(l, kind, key, true);
    if (!e) {
        /* A full table cannot track this key: admit on spend alone, as before. */
        pthread_mutex_unlock(&l->mu);
        return budget > 0.0;
    }
    /* Check and hold in one step under the lock: requests that arrive together
     * see each other's holds, so they cannot all pass on the same spend. */
    ok = e->usd + e->held < budget;
    if (ok && usd > 0.0) {
        e->held += usd;
    }
    pthread_mutex_unlock(&l->mu);
    return ok;
}

void gw_ledger_settle(struct gw_ledger *l, const char *kind, const char *key, double held,
                      double usd)
{
    struct entry *e;

    pthread_mutex_lock(&l->mu);
    e = lookup(l, kind, key, usd > 0.0);
    if (e) {
        e->held -= held > 0.0 ? held : 0.0;
        if (e->held < 1e-12) {
            e->held = 0.0; /* no drift below zero from rounding */
        }
        if (usd > 0.0) {
            e->usd += usd;
            l->dirty = true;
        }
    }
    pthread_mutex_unlock(&l->mu);
}

/* Under mu: the whole ledger as {"version":1,"spend":{kind:{key:usd}}}. */
static struct json_object *snapshot(struct gw_ledger *l)
{
    struct json_object *root = json_object_new_object();
    struct json_object *spend = json_object_new_object();
    size_t i;

    json_object_object_add(root, "version", json_object_new_int(1));
    for (i = 0; i < l->nbuckets; i++) {
        struct entry *e;
        for (e = l->buckets[i]; e; e = e->next) {
            struct json_object *k;
            char text[64];
            if (!json_object_object_get_ex(spend, e->kind, &k)) {
                k = json_object_new_object();
                json_object_object_add(spend, e->kind, k);
            }
            snprintf(text, sizeof(text), "%.10f", e->usd);
            json_object_object_add(k, e->key, json_object_new_double_s(e->usd, text));
        }
    }
    json_object_object_add(root, "spend", spend);
    return root;
}

gv_rc gw_ledger_flush(struct gw_ledger *l)
{
    struct json_object *snap;
    const char *text;
    size_t len = 0;
    gv_rc rc;

    pthread_mutex_lock(&l->mu);
    snap = snapshot(l);
    l->dirty = false;
    pthread_mutex_unlock(&l->mu);
    text = json_object_to_json_string_length(snap, JSON_C_TO_STRING_PLAIN, &len);
    rc = gv_file_replace(l->path, text, len);
    json_object_put(snap);
    if (rc) {
        /* Try again at the next interval. */
        pthread_mutex_lock(&l->mu);
        l->dirty = true;
        pthread_mutex_unlock(&l->mu);
    }
    return rc;
}

static void *flusher(void *arg)
{
    struct gw_ledger *l = arg;
    bool logged = false;

    pthread_mutex_lock(&l->mu);
    while (!l->stop) {
        struct timespec ts;
        gv_time_deadline(CLOCK_REALTIME, (uint64_t)l->flush_ms * 1000u, &ts);
        pthread_cond_timedwait(&l->cv, &l->mu, &ts);
        if (l->dirty && !l->stop) {
            gv_rc rc;
            pthread_mutex_unlock(&l->mu);
            rc = gw_ledger_flush(l);
            if (rc && !logged) {
                gv_log(GV_LOG_ERROR, "policy:cost-tracker", "cannot write spend ledger",
                       "path=%s err=%s", l->path, gv_rc_str(rc));
            }
            logged = rc != GV_OK;
            pthread_mutex_lock(&l->mu);
        }
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static gv_rc load(struct gw_ledger *l)
{
    struct json_object *root, *spend, *ver;
    gv_rc rc = GV_OK;

    if (access(l->path, F_OK) != 0) {
        return GV_OK;
    }
    root = json_object_from_file(l->path);
    if (!root || !json_object_is_type(root, json_type_object) ||
        !json_object_object_get_ex(root, "version", &ver) ||
        !json_object_object_get_ex(root, "spend", &spend) ||
        !json_object_is_type(spend, json_type_object)) {
        rc = GV_EPROTO;
        goto out;
    }
    {
        json_object_object_foreach(spend, kind, keys)
        {
            if (!json_object_is_type(keys, json_type_object)) {
                rc = GV_EPROTO;
                goto out;
            }
            {
                json_object_object_foreach(keys, key, val)
                {
                    struct entry *e;
                    if (!json_object_is_type(val, json_type_double) &&
                        !json_object_is_type(val, json_type_int)) {
                        rc = GV_EPROTO;
                        goto out;
                    }
                    e = lookup(l, kind, key, true);
                    if (e) {
                        e->usd = json_object_get_double(val);
                    }
                }
            }
        }
    }
out:
    json_object_put(root);
    return rc;
}

gv_rc gw_ledger_open(const char *path, long flush_ms, struct gw_ledger **out)
{
    struct gw_ledger *l = gv_calloc(1, sizeof(*l));
    gv_rc rc;

    *out = NULL;
    l->path = gv_strdup(path);
    l->flush_ms = flush_ms > 0 ? flush_ms : 1000;
    l->nbuckets = 64;
    l->buckets = gv_calloc(l->nbuckets, sizeof(*l->buckets));
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    rc = load(l);
    if (rc) {
        goto out;
    }
    if (gv_thread_start(&l->thread, "kt-cost-ledger", GV_THREAD_BACKGROUND, flusher, l) != GV_OK) {
        rc = GV_EIO;
        goto out;
    }
    l->started = true;
out:
    if (rc) {
        gw_ledger_close(l);
        l = NULL;
    }
    *out = l;
    return rc;
}

void gw_ledger_close(struct gw_ledger *l)
{
    size_t i;

    if (!l) {
        return;
    }
    if (l->started) {
        pthread_mutex_lock(&l->mu);
        l->stop = true;
        pthread_cond_signal(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
        if (l->dirty && gw_ledger_flush(l) != GV_OK) {
            gv_log(GV_LOG_ERROR, "policy:cost-tracker", "spend lost: cannot write ledger",
                   "path=%s", l->path);
        }
    }
    for (i = 0; i < l->nbuckets; i++) {
        struct entry *e = l->buckets[i];
        while (e) {
            struct entry *next = e->next;
            gv_free(e->kind);
            gv_free(e->key);
            gv_free(e);
            e = next;
        }
    }
    gv_free(l->buckets);
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    gv_free(l->path);
    gv_free(l);
}

gv_rc gw_ledger_open_for(const struct gw_policy *pol, const char *sub, long flush_ms,
                         const char *budgets, const char *path, const struct gv_ynode *settings,
                         struct gv_cfg_err *err, struct gw_ledger **out)
{
    char dir[4096], file[4200];
    gv_rc rc;
    int n;

    n = snprintf(dir, sizeof(dir), "%s/%s",
                 pol->state_dir && *pol->state_dir ? pol->state_dir : ".", sub);
    if (pol->check_only) {
        /* A dry run creates nothing and starts no ledger flusher. */
        if (n < 0 || (size_t)n >= sizeof(dir) || gv_dir_check(dir) != GV_OK) {
            return gv_cfg_fail(err, path, settings, "%s: cannot create %s: %s", pol->ops->name, dir,
                               strerror(errno));
        }
        return GV_OK;
    }
    if (n < 0 || (size_t)n >= sizeof(dir) || gv_mkdir_p(dir, 0700) != GV_OK) {
        return gv_cfg_fail(err, path, settings, "%s: cannot create %s: %s", pol->ops->name, dir,
                           strerror(errno));
    }
    snprintf(file, sizeof(file), "%s/ledger.json", dir);
    rc = gw_ledger_open(file, flush_ms, out);
    if (rc) {
        return gv_cfg_fail(err, path, settings,
                           "%s: cannot load the spend ledger %s (%s); move it away to reset %s",
                           pol->ops->name, file, gv_rc_str(rc), budgets);
    }
    return GV_OK;
}
