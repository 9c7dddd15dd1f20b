/* cli/cmd_wandb.c - kt dashboards push|render and the W&B half of kt wandb sync */
/* SPDX-License-Identifier: Apache-2.0 */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli_args.h"
#include "core/gv_cfg.h"
#include "core/gv_log.h"
#include "core/gv_paths.h"
#include "core/gv_time.h"
#include "exporters/wandb/wandb.h"

struct opts {
    const char *entity;
    const char *project;
    const char *state_dir;
};

/* dashboards push and render read the same options. */
static int parse_dash(int argc, char **argv, struct opts *o, bool push)
{
    const struct cli_opt opts[] = {
        {"--entity", CLI_OPT_STR, &o->entity, 0, 0},
        {"--project", CLI_OPT_STR, &o->project, 0, 0},
        {push ? "--state-dir" : "", CLI_OPT_STR, &o->state_dir, 0, 0},
        {NULL, CLI_OPT_FLAG, NULL, 0, 0},
    };
    const struct cli_spec push_spec = {
        .cmd = "kt dashboards push",
        .usage =
            "usage: kt dashboards push [--entity E] [--project P] [--state-dir DIR]\n"
            "  Creates or updates the governance workspace and report in W&B (credentials from\n"
            "  WANDB_API_KEY or netrc; E defaults to WANDB_ENTITY, else the key's entity; P to\n"
            "  WANDB_PROJECT).\n",
        .opts = opts,
    };
    const struct cli_spec render_spec = {
        .cmd = "kt dashboards render",
        .usage = "usage: kt dashboards render [--entity E] [--project P]\n"
                 "  Prints both dashboard specs, names resolved, as one JSON document.\n",
        .opts = opts,
    };

    return cli_args_parse(push ? &push_spec : &render_spec, argc, argv, NULL);
}

static const char *env_or(const char *v, const char *env, const char *def)
{
    const char *e = getenv(env);
    if (v && *v) {
        return v;
    }
    return e && *e ? e : def;
}

/* Entity: --entity, WANDB_ENTITY, else the key's default entity (Viewer). */
static int resolve_entity(struct ex_wandb_api *api, struct opts *o, const char *cmd,
                          const char **entity)
{
    *entity = env_or(o->entity, "WANDB_ENTITY", NULL);
    if (*entity) {
        return 0;
    }
    if (!api->have_key) {
        fprintf(stderr,
                "kt %s: no entity: pass --entity, set WANDB_ENTITY or provide W&B "
                "credentials (WANDB_API_KEY or netrc)\n",
                cmd);
        return 2;
    }
    if (ex_wandb_api_viewer(api) != EX_WANDB_OK) {
        fprintf(stderr, "kt %s: W&B at %s did not accept the credentials: %s\n", cmd, api->base_url,
                api->last_error);
        return 1;
    }
    *entity = api->viewer_entity;
    return 0;
}

/* One rendered view as W&B stores it: its type, where it lives, its name and its spec
 * (taken over). */
static struct json_object *view_doc(const char *type, const char *entity, const char *project,
                                    const char *name, struct json_object *spec)
{
    struct json_object *v = json_object_new_object();

    json_object_object_add(v, "type", json_object_new_string(type));
    json_object_object_add(v, "entityName", json_object_new_string(entity));
    json_object_object_add(v, "projectName", json_object_new_string(project));
    json_object_object_add(v, "displayName", json_object_new_string(name));
    json_object_object_add(v, "spec", spec);
    return v;
}

int cli_dashboards_render(int argc, char **argv)
{
    struct opts o = {0};
    struct ex_wandb_api api;
    struct json_object *ws = NULL, *rp = NULL, *doc = NULL;
    const char *entity = NULL;
    const char *project;
    int ret = parse_dash(argc, argv, &o, false);

    if (ret != CLI_ARGS_RUN) {
        return ret;
    }
    ex_wandb_api_init(&api, NULL);
    ret = resolve_entity(&api, &o, "dashboards render", &entity);
    if (ret) {
        goto out;
    }
    project = env_or(o.project, "WANDB_PROJECT", "uncategorized");
    if (ex_wandb_dash_render(entity, project, "", &ws, &rp) != GV_OK) {
        fprintf(stderr, "kt dashboards render: the built-in specs do not parse\n");
        ret = 1;
        goto out;
    }
    doc = json_object_new_object();
    json_object_object_add(doc, "workspace",
                           view_doc("project-view", entity, project, "kt governance", ws));
    ws = NULL;
    json_object_object_add(doc, "report",
                           view_doc("runs", entity, project, "kt governance report", rp));
    rp = NULL;
    printf("%s\n",
           json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                   JSON_C_TO_STRING_NOSLASHESCAPE));
out:
    json_object_put(doc);
    json_object_put(ws);
    json_object_put(rp);
    ex_wandb_api_free(&api);
    return ret;
}

static int state_subdir(struct opts *o, const char *sub, char *out, size_t size)
{
    char state[900];
    int n;

    if (o->state_dir) {
        n = snprintf(state, sizeof(state), "%s", o->state_dir);
        if (n < 0 || (size_t)n >= sizeof(state)) {
            return 2;
        }
    }
    else if (gv_state_dir_default(state, sizeof(state)) != GV_OK) {
        return 2;
    }
    n = snprintf(out, size, "%s/%s", state, sub);
    return (n < 0 || (size_t)n >= size) ? 2 : 0;
}

int cli_dashboards_push(int argc, char **argv)
{
    struct opts o = {0};
    struct ex_wandb_api api;
    const char *entity = NULL;
    const char *project;
    char root[1024];
    enum ex_wandb_res res;
    int ret = parse_dash(argc, argv, &o, true);

    if (ret != CLI_ARGS_RUN) {
        return ret;
    }
    ex_wandb_api_init(&api, NULL);
    if (!api.have_key) {
        fprintf(stderr, "kt dashboards push: no W&B credentials: set WANDB_API_KEY or add "
                        "a netrc entry for the API host\n");
        ret = 1;
        goto out;
    }
    ret = resolve_entity(&api, &o, "dashboards push", &entity);
    if (ret) {
        goto out;
    }
    project = env_or(o.project, "WANDB_PROJECT", "uncategorized");
    ret = state_subdir(&o, "wandb", root, sizeof(root));
    if (ret || gv_mkdir_p(root, 0700) != GV_OK) {
        fprintf(stderr, "kt dashboards push: cannot use the state directory\n");
        ret = 1;
        goto out;
    }
    res = ex_wandb_dash_push(&api, root, entity, project);
    if (res != EX_WANDB_OK && (api.last_status < 200 || api.last_status >= 300)) {
        fprintf(stderr, "kt dashboards push: W&B answered HTTP %ld: %s\n", api.last_status,
                api.last_error);
        ret = 1;
        goto out;
    }
    if (res != EX_WANDB_OK) {
        /* W&B said yes, but not what the push needs (no project to point the report at). */
        fprintf(stderr, "kt dashboards push: %s\n", api.last_error);
        ret = 1;
        goto out;
    }
    printf("dashboards upserted to %s/%s (ids in %s/views.json)\n", entity, project, root);
out:
    ex_wandb_api_free(&api);
    return ret;
}

struct sync_state {
    struct ex_wandb_session *sess;
    long attempts;
    unsigned runs, done, failed;
};

/* An explicit sync is the operator's retry: parked runs get another go. */
static void unpark(const char *dir)
{
    struct ex_wandb_run run;

    if (ex_wandb_store_open(dir, &run) != GV_OK) {
        return;
    }
    if (run.parked[0]) {
        run.parked[0] = '\0';
        (void)ex_wandb_store_save_sync(&run);
    }
    ex_wandb_store_close(&run);
}

static gv_rc sync_one(const char *dir, void *arg)
{
    struct sync_state *st = arg;
    uint64_t wait_ms = 2000;
    enum ex_wandb_sync r = EX_WANDB_SYNC_RETRY;
    long attempt;

    st->runs++;
    unpark(dir);
    for (attempt = 0; attempt < st->attempts; attempt++) {
        r = ex_wandb_sync_dir(st->sess, dir, gv_mono_us(), true);
        if (r != EX_WANDB_SYNC_RETRY) {
            break;
        }
        if (attempt + 1 < st->attempts) {
            /* Retry-After when W&B gave one, else 2 s doubling to 60 s. */
            uint64_t ms = st->sess->api->retry_after_ms ? st->sess->api->retry_after_ms : wait_ms;
            struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
            wait_ms = wait_ms * 2 > 60000 ? 60000 : wait_ms * 2;
        }
    }
    if (r == EX_WANDB_SYNC_DONE) {
        st->done++;
    }
    else {
        st->failed++;
        fprintf(stderr, "kt wandb sync: %s not uploaded: %s\n", dir,
                st->sess->api->last_error[0] ? st->sess->api->last_error : "gave up");
    }
    return st->sess->api->dead ? GV_EUPSTREAM : GV_OK;
}

int cli_wandb_sync_runs(const char *dir, long attempts)
{
    struct ex_wandb_api api;
    struct ex_wandb_session sess;
    struct sync_state st;
    char root[1024];
    gv_rc rc;
    int ret;

    if (snprintf(root, sizeof(root), "%s", dir) >= (int)sizeof(root)) {
        fprintf(stderr, "kt wandb sync: path too long: %s\n", dir);
        return 2;
    }
    ex_wandb_api_init(&api, NULL);
    ex_wandb_session_init(&sess, &api, root);
    memset(&st, 0, sizeof(st));
    st.sess = &sess;
    st.attempts = attempts;
    if (!api.have_key) {
        fprintf(stderr,
                "kt wandb sync: no W&B credentials: set WANDB_API_KEY or add a netrc "
                "entry for %s\n",
                api.base_url);
        ret = 1;
        goto out;
    }
    rc = ex_wandb_store_walk(root, sync_one, &st);
    if (rc == GV_ENOTFOUND) {
        fprintf(stderr, "kt wandb sync: %s does not exist\n", root);
        ret = 1;
        goto out;
    }
    if (api.dead) {
        fprintf(stderr, "kt wandb sync: W&B at %s rejected the credentials: %s\n", api.base_url,
                api.last_error);
        ret = 1;
        goto out;
    }
    printf("kt wandb sync: %u run(s) in %s: %u uploaded, %u failed (W&B at %s)\n", st.runs, root,
           st.done, st.failed, api.base_url);
    ret = (rc == GV_OK && st.failed == 0) ? 0 : 1;
out:
    ex_wandb_session_free(&sess);
    ex_wandb_api_free(&api);
    return ret;
}
