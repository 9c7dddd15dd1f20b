/* cli/cli_args.c - one argv parser for every kt command */
/* SPDX-License-Identifier: Apache-2.0 */
#include "cli/cli_args.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/gv_paths.h"

int cli_usage_error(const struct cli_spec *spec, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", spec->cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%s", spec->usage);
    return 2;
}

/* The row for "--name" or "--name=value" (name_len counts up to any '='). */
static const struct cli_opt *find_opt(const struct cli_spec *spec, const char *arg, size_t name_len)
{
    const struct cli_opt *o;

    for (o = spec->opts; o && o->name; o++) {
        if (strlen(o->name) == name_len && strncmp(o->name, arg, name_len) == 0) {
            return o;
        }
    }
    return NULL;
}

static int store(const struct cli_spec *spec, const struct cli_opt *o, const char *v)
{
    char *end = NULL;
    long n;

    if (o->kind == CLI_OPT_STR) {
        *(const char **)o->out = v;
        return CLI_ARGS_RUN;
    }
    if (o->kind == CLI_OPT_LIST) {
        struct cli_list *l = o->out;
        if (l->n >= l->max) {
            return cli_usage_error(spec, "%s given more than %d times", o->name, l->max);
        }
        l->v[l->n++] = v;
        return CLI_ARGS_RUN;
    }
    errno = 0;
    n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < o->min || n > o->max) {
        return cli_usage_error(spec, "%s wants a whole number from %ld to %ld, got '%s'", o->name,
                               o->min, o->max, v);
    }
    *(long *)o->out = n;
    return CLI_ARGS_RUN;
}

int cli_args_parse(const struct cli_spec *spec, int argc, char **argv, int *npos)
{
    int i, np = 0, rc;
    bool options = true;

    for (i = 0; i < argc; i++) {
        const char *a = argv[i];
        const struct cli_opt *o;
        const char *eq;
        size_t len;

        if (options && (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)) {
            fputs(spec->usage, stdout);
            return 0;
        }
        if (options && strcmp(a, "--") == 0) {
            options = false;
            continue;
        }
        if (!options || a[0] != '-' || a[1] == '\0') {
            if (np >= spec->pos_max) {
                return spec->pos_max == 0 ? cli_usage_error(spec, "takes no arguments, got '%s'", a)
                                          : cli_usage_error(spec, "unexpected argument '%s'", a);
            }
            if (spec->pos) {
                spec->pos[np] = a;
            }
            np++;
            continue;
        }
        eq = strchr(a, '=');
        len = eq ? (size_t)(eq - a) : strlen(a);
        o = a[1] == '-' ? find_opt(spec, a, len) : NULL;
        if (!o) {
            return cli_usage_error(spec, "unknown option '%.*s'", (int)len, a);
        }
        if (o->kind == CLI_OPT_FLAG) {
            if (eq) {
                return cli_usage_error(spec, "%s takes no value", o->name);
            }
            *(bool *)o->out = true;
            continue;
        }
        if (!eq && i + 1 >= argc) {
            return cli_usage_error(spec, "%s needs a value", o->name);
        }
        rc = store(spec, o, eq ? eq + 1 : argv[++i]);
        if (rc != CLI_ARGS_RUN) {
            return rc;
        }
    }
    if (np < spec->pos_min) {
        return cli_usage_error(spec, "missing argument%s", spec->pos_min - np > 1 ? "s" : "");
    }
    if (npos) {
        *npos = np;
    }
    return CLI_ARGS_RUN;
}

int cli_state_dir(const char *cmd, const char **state, char *buf, size_t size)
{
    if (*state) {
        return CLI_ARGS_RUN;
    }
    if (gv_state_dir_default(buf, size) != GV_OK) {
        fprintf(stderr, "%s: no usable state dir; pass --state-dir\n", cmd);
        return 2;
    }
    *state = buf;
    return CLI_ARGS_RUN;
}

int cli_agent_paths(const char *cmd, const char **state, const char **sock, struct cli_paths *buf)
{
    if (!*state) {
        if (gv_state_dir_default(buf->state, sizeof(buf->state)) != GV_OK) {
            fprintf(stderr, "%s: state dir path too long\n", cmd);
            return 2;
        }
        *state = buf->state;
    }
    if (!*sock) {
        if (gv_agent_socket_default(*state, buf->sock, sizeof(buf->sock)) != GV_OK) {
            fprintf(stderr, "%s: socket path too long\n", cmd);
            return 2;
        }
        *sock = buf->sock;
    }
    return CLI_ARGS_RUN;
}
