/* tests/unit/gateway/policies/pol_fixture.h - build a policy the way the chain does */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TEST_POL_FIXTURE_H
#define TEST_POL_FIXTURE_H

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/gv_cfg.h"
#include "core/gv_mem.h"
#include "core/gv_record.h"
#include "core/gv_yaml.h"
#include "gateway/gw_policy.h"
#include "gateway/gw_req.h"
#include "tests/unit/unit_tmpdir.h"

/* One policy instance plus the document its config strings point into. */
struct fx_pol {
    struct gw_policy pol;
    struct gv_ydoc *doc;
    char state[256];
};

/* A request for `model` and the record it fills, wired the way the chain hands them to a
 * policy; a test sets what else its policy reads (key, run id, target) afterwards. */
struct fx_call {
    struct gw_req req;
    struct gv_record rec;
};

static inline void fx_call_init(struct fx_call *c, const char *model, const char *entity)
{
    memset(c, 0, sizeof(*c));
    c->req.model = model;
    c->req.rec = &c->rec;
    snprintf(c->rec.model, sizeof(c->rec.model), "%s", model);
    snprintf(c->rec.entity, sizeof(c->rec.entity), "%s", entity);
}

/* True when dir holds no entries (or does not exist). */
static inline bool fx_dir_empty(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    bool empty = true;

    if (!d) {
        return true;
    }
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            empty = false;
        }
    }
    closedir(d);
    return empty;
}

static inline gv_rc fx_open_mode(struct fx_pol *fx, const struct gw_policy_ops *ops,
                                 const char *yaml, const char *state_dir, bool check_only,
                                 struct gv_cfg_err *err);

/* Parse `yaml` (the policy.<name> mapping), apply the config map, call init.
 * Returns init's rc (or the config map's); err holds the message. state_dir
 * NULL makes a fresh temp dir. */
static inline gv_rc fx_open(struct fx_pol *fx, const struct gw_policy_ops *ops, const char *yaml,
                            const char *state_dir, struct gv_cfg_err *err)
{
    return fx_open_mode(fx, ops, yaml, state_dir, false, err);
}

/* fx_open with gw_policy.check_only set, as `kt policy check` starts policies. */
static inline gv_rc fx_open_check(struct fx_pol *fx, const struct gw_policy_ops *ops,
                                  const char *yaml, const char *state_dir, struct gv_cfg_err *err)
{
    return fx_open_mode(fx, ops, yaml, state_dir, true, err);
}

static inline gv_rc fx_open_mode(struct fx_pol *fx, const struct gw_policy_ops *ops,
                                 const char *yaml, const char *state_dir, bool check_only,
                                 struct gv_cfg_err *err)
{
    gv_rc rc;

    memset(fx, 0, sizeof(*fx));
    if (state_dir) {
        snprintf(fx->state, sizeof(fx->state), "%s", state_dir);
    }
    else {
        unit_tmpdir_make(fx->state, sizeof(fx->state));
    }
    rc = gv_ydoc_load_buf("policy.yaml", yaml, strlen(yaml), &fx->doc, err);
    if (rc) {
        return rc;
    }
    fx->pol.ops = ops;
    fx->pol.ctx = gv_calloc(1, ops->ctx_size);
    fx->pol.name = ops->name;
    fx->pol.state_dir = fx->state;
    fx->pol.check_only = check_only;
    rc = gv_cfg_apply(ops->config_map, "policy.yaml", fx->doc->root, fx->pol.ctx, err);
    if (rc == GV_OK && ops->init) {
        rc = ops->init(&fx->pol, "policy.yaml", fx->doc->root, err);
    }
    return rc;
}

/* Destroy the instance; the state dir stays (unit_tmpdir_remove it). */
static inline void fx_close(struct fx_pol *fx)
{
    if (fx->pol.ops && fx->pol.ctx) {
        if (fx->pol.ops->destroy) {
            fx->pol.ops->destroy(&fx->pol);
        }
        gv_cfg_release(fx->pol.ops->config_map, fx->pol.ctx);
    }
    gv_free(fx->pol.ctx);
    fx->pol.ctx = NULL;
    gv_ydoc_destroy(fx->doc);
    fx->doc = NULL;
}

/* For cmocka_unit_test_setup_teardown: a test's own instance, opened by the
 * test or its setup, is closed and its state dir removed whatever the test did. */
static inline int fx_pol_alloc(void **state)
{
    *state = gv_calloc(1, sizeof(struct fx_pol));
    return 0;
}

static inline int fx_pol_teardown(void **state)
{
    struct fx_pol *fx = *state;

    fx_close(fx);
    if (fx->state[0]) {
        unit_tmpdir_remove(fx->state);
    }
    gv_free(fx);
    return 0;
}

/* One call of a policy's verdict hook (its evaluate or tags), which must succeed: the verdict
 * it filled. */
static inline struct gw_verdict fx_verdict(gv_rc (*hook)(struct gw_policy *, struct gw_req *,
                                                         struct gw_verdict *),
                                           struct fx_pol *fx, struct fx_call *c)
{
    struct gw_verdict v;
    memset(&v, 0, sizeof(v));
    assert_int_equal(hook(&fx->pol, &c->req, &v), GV_OK);
    return v;
}

/* `yaml` must be refused as config (GV_ECONFIG); the instance is closed and its
 * temp dir removed, and err keeps the message for the caller to check. */
static inline void fx_assert_refused(const struct gw_policy_ops *ops, const char *yaml,
                                     struct gv_cfg_err *err)
{
    struct fx_pol fx;

    assert_int_equal(fx_open(&fx, ops, yaml, NULL, err), GV_ECONFIG);
    fx_close(&fx);
    unit_tmpdir_remove(fx.state);
}

/* `kt policy check` must leave a state dir as it found it: the policy built in
 * check-only mode with `yaml` creates nothing in a dir that exists or one that
 * does not yet, and under a regular file it fails the way a real start would,
 * naming `<state>/<subdir>`. */
static inline void fx_assert_check_only_creates_nothing(const struct gw_policy_ops *ops,
                                                        const char *yaml, const char *subdir)
{
    struct fx_pol fx;
    struct gv_cfg_err err;
    char root[256], st[400], file[400];
    FILE *f;

    unit_tmpdir_make(root, sizeof(root));
    assert_int_equal(fx_open_check(&fx, ops, yaml, root, &err), GV_OK);
    fx_close(&fx);
    assert_true(fx_dir_empty(root));
    snprintf(st, sizeof(st), "%s/not/yet", root);
    assert_int_equal(fx_open_check(&fx, ops, yaml, st, &err), GV_OK);
    fx_close(&fx);
    assert_true(fx_dir_empty(root));
    snprintf(file, sizeof(file), "%s/file", root);
    f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(st, sizeof(st), "%s/state", file);
    assert_int_equal(fx_open_check(&fx, ops, yaml, st, &err), GV_ECONFIG);
    assert_non_null(strstr(err.msg, "cannot create"));
    assert_non_null(strstr(err.msg, subdir));
    fx_close(&fx);
    unlink(file);
    assert_true(fx_dir_empty(root));
    unit_tmpdir_remove(root);
}

#endif
