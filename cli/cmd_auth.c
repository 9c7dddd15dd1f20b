/* cli/cmd_auth.c - kt auth login|status|logout: W&B credentials in netrc */
/* SPDX-License-Identifier: Apache-2.0 */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli_args.h"
#include "core/gv_buf.h"
#include "core/gv_file.h"
#include "exporters/ex_wandb_api.h"
#include "exporters/ex_wandb_netrc.h"

#define NETRC_MAX (1u << 20) /* a netrc file we are willing to rewrite */

struct auth_opts {
    const char *host;
    const char *key_file;
    bool relogin;
};

struct auth_ctx {
    char base[EX_WANDB_URL_MAX];
    char machine[256];
    char netrc[1024];
};

/* Who a key belongs to, from the Viewer query. */
struct who {
    char username[GV_RUN_TAG_MAX + 1];
    char entity[GV_RUN_TAG_MAX + 1];
};

static int parse(int argc, char **argv, struct auth_opts *o, const char *cmd)
{
    bool login = strcmp(cmd, "login") == 0;
    const struct cli_opt opts[] = {
        {"--host", CLI_OPT_STR, &o->host, 0, 0},
        {login ? "--relogin" : "", CLI_OPT_FLAG, &o->relogin, 0, 0},
        {login ? "--key-file" : "", CLI_OPT_STR, &o->key_file, 0, 0},
        {NULL, CLI_OPT_FLAG, NULL, 0, 0},
    };
    static const struct cli_spec specs[] = {
        {"kt auth login",
         "usage: kt auth login [--host URL] [--relogin] [--key-file FILE]\n"
         "  Reads a W&B API key (FILE, else the terminal without echo, else stdin), checks it\n"
         "  with W&B, prints who it belongs to and keeps it in $NETRC or ~/.netrc (mode 0600).\n",
         NULL, NULL, 0, 0},
        {"kt auth status",
         "usage: kt auth status [--host URL]\n"
         "  Which W&B key kt would use (WANDB_API_KEY, else netrc) and whose it is.\n",
         NULL, NULL, 0, 0},
        {"kt auth logout",
         "usage: kt auth logout [--host URL]\n"
         "  Removes the host's entry from $NETRC or ~/.netrc, keeping the others.\n",
         NULL, NULL, 0, 0},
    };
    struct cli_spec spec = specs[login ? 0 : strcmp(cmd, "status") == 0 ? 1 : 2];

    spec.opts = opts;
    return cli_args_parse(&spec, argc, argv, NULL);
}

/* Base URL (--host, WANDB_BASE_URL, the public cloud), its netrc machine and
 * the netrc file ($NETRC, else ~/.netrc), as the W&B clients find them. */
static int resolve(const struct auth_opts *o, const char *cmd, struct auth_ctx *c)
{
    const char *env = getenv("WANDB_BASE_URL");
    const char *base = o->host ? o->host : env && *env ? env : "https://api.wandb.ai";
    const char *netrc = getenv("NETRC");
    const char *home = getenv("HOME");
    size_t n;
    int w;

    if (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0) {
        fprintf(stderr, "kt auth %s: --host wants an http:// or https:// URL, got '%s'\n", cmd,
                base);
        return 2;
    }
    w = snprintf(c->base, sizeof(c->base), "%s", base);
    if (w < 0 || (size_t)w >= sizeof(c->base)) {
        fprintf(stderr, "kt auth %s: the W&B URL is too long\n", cmd);
        return 2;
    }
    n = strlen(c->base);
    while (n > 0 && c->base[n - 1] == '/') {
        c->base[--n] = '\0';
    }
    ex_wandb_netloc(c->base, c->machine, sizeof(c->machine));
    if (netrc && *netrc) {
        w = snprintf(c->netrc, sizeof(c->netrc), "%s", netrc);
    }
    else if (home && *home) {
        w = snprintf(c->netrc, sizeof(c->netrc), "%s/.netrc", home);
    }
    else {
        fprintf(stderr, "kt auth %s: neither NETRC nor HOME is set: nowhere to keep the key\n",
                cmd);
        return 2;
    }
    if (w < 0 || (size_t)w >= sizeof(c->netrc)) {
        fprintf(stderr, "kt auth %s: the netrc path is too long\n", cmd);
        return 2;
    }
    return 0;
}

/* The netrc file's text into b; an absent file is empty. */
static int read_netrc(const struct auth_ctx *c, const char *cmd, struct gv_buf *b)
{
    char chunk[4096];
    size_t n;
    FILE *f = fopen(c->netrc, "r");

    if (!f) {
        if (errno == ENOENT) {
            return 0;
        }
        fprintf(stderr, "kt auth %s: cannot read %s: %s\n", cmd, c->netrc, strerror(errno));
        return 1;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (gv_buf_append(b, chunk, n) != GV_OK) {
            fclose(f);
            fprintf(stderr, "kt auth %s: %s is larger than 1 MiB\n", cmd, c->netrc);
            return 1;
        }
    }
    memset(chunk, 0, sizeof(chunk));
    fclose(f);
    return 0;
}

/* Replace (or, password NULL, remove) the entry for the machine. *found says
 * whether there was one; the file is only written when something changes. */
static int edit_netrc(const struct auth_ctx *c, const char *cmd, const char *password, bool *found)
{
    struct gv_buf in, out;
    int ret;

    gv_buf_init(&in, NETRC_MAX);
    gv_buf_init(&out, NETRC_MAX + 4096);
    ret = read_netrc(c, cmd, &in);
    if (ret) {
        goto out;
    }
    if (ex_wandb_netrc_edit(in.data, in.len, c->machine, "user", password, &out, found) != GV_OK) {
        fprintf(stderr, "kt auth %s: cannot write an entry for %s into %s\n", cmd, c->machine,
                c->netrc);
        ret = 1;
        goto out;
    }
    if (!password && !*found) {
        goto out;
    }
    /* netrc holds secrets: 0600 whatever mode the file had. */
    if (gv_file_replace(c->netrc, out.data ? out.data : "", out.len) != GV_OK ||
        chmod(c->netrc, 0600) != 0) {
        fprintf(stderr, "kt auth %s: cannot write %s: %s\n", cmd, c->netrc, strerror(errno));
        ret = 1;
    }
out:
    if (in.data) {
        memset(in.data, 0, in.len);
    }
    if (out.data) {
        memset(out.data, 0, out.len);
    }
    gv_buf_free(&in);
    gv_buf_free(&out);
    return ret;
}

static struct termios saved_tty;
static volatile sig_atomic_t tty_quiet;

static void restore_tty(int sig)
{
    if (tty_quiet) {
        tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

/* One line from f into key, without its line break; false when there is none
 * or it does not fit. */
static bool read_line(FILE *f, char *key, size_t size)
{
    size_t n;

    if (!fgets(key, (int)size, f)) {
        return false;
    }
    n = strlen(key);
    if (n == size - 1 && key[n - 1] != '\n' && !feof(f)) {
        memset(key, 0, size);
        return false;
    }
    return true;
}

/* The key from --key-file, else the terminal without echo, else stdin. */
static int read_key(const struct auth_opts *o, const struct auth_ctx *c, char *key, size_t size)
{
    struct termios quiet;
    FILE *f;
    bool ok;
    size_t a, n;

    if (o->key_file) {
        f = fopen(o->key_file, "r");
        if (!f) {
            fprintf(stderr, "kt auth login: cannot read %s: %s\n", o->key_file, strerror(errno));
            return 1;
        }
        ok = read_line(f, key, size);
        fclose(f);
    }
    else if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved_tty) == 0) {
        quiet = saved_tty;
        quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
        signal(SIGINT, restore_tty);
        signal(SIGTERM, restore_tty);
        tty_quiet = 1;
        tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
        /* Echo is off before the prompt shows, so nothing typed after it is echoed. */
        fprintf(stderr,
                "W&B API key for %s (from https://wandb.ai/authorize or your server's "
                "/authorize page; not shown): ",
                c->base);
        ok = read_line(stdin, key, size);
        tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
        tty_quiet = 0;
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        fputc('\n', stderr);
    }
    else {
        ok = read_line(stdin, key, size);
    }
    /* Surrounding white space is never part of a key. */
    a = 0;
    while (ok && (key[a] == ' ' || key[a] == '\t')) {
        a++;
    }
    n = ok ? strlen(key) : 0;
    while (n > a &&
           (key[n - 1] == '\n' || key[n - 1] == '\r' || key[n - 1] == ' ' || key[n - 1] == '\t')) {
        n--;
    }
    if (ok) {
        memmove(key, key + a, n - a);
        key[n - a] = '\0';
    }
    if (!ok || !key[0]) {
        fprintf(stderr, "kt auth login: no API key given%s\n",
                o->key_file ? " in the key file" : " (one line on the terminal or stdin)");
        return 2;
    }
    return 0;
}

/* W&B's client-side check: an optional "prefix-", then 40 or more of
 * [A-Za-z0-9_]. */
static bool key_shape_ok(const char *key)
{
    const char *tail = strrchr(key, '-');
    size_t n = 0;
    const char *p;

    for (p = key; *p; p++) {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '"') {
            return false;
        }
    }
    for (p = tail ? tail + 1 : key; *p; p++, n++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_')) {
            return false;
        }
    }
    return n >= 40;
}

/* Ask W&B who the key belongs to (the Viewer query its clients send at login).
 * Returns 0, or 1 after printing why not in one line. */
static int check_key(const struct auth_ctx *c, const char *cmd, const char *key, struct who *who)
{
    struct ex_wandb_api api;
    struct json_object *vars = json_object_new_object();
    struct json_object *data = NULL;
    struct json_object *viewer = NULL;
    struct json_object *v;
    enum ex_wandb_res res;
    int ret = 1;

    memset(who, 0, sizeof(*who));
    ex_wandb_api_init(&api, c->base);
    snprintf(api.key, sizeof(api.key), "%s", key);
    api.have_key = true;
    res = ex_wandb_api_graphql(&api, "Viewer", ex_wandb_viewer_query, vars, &data);
    if (res == EX_WANDB_FATAL && (api.last_status == 401 || api.last_status == 403)) {
        fprintf(stderr, "kt auth %s: W&B at %s refused the key (HTTP %ld: %s)\n", cmd, c->base,
                api.last_status, api.last_error);
        goto out;
    }
    if (res != EX_WANDB_OK) {
        fprintf(stderr, "kt auth %s: cannot check the key with W&B at %s: %s%s\n", cmd, c->base,
                api.last_status ? "HTTP error: " : "", api.last_error);
        goto out;
    }
    if (!json_object_object_get_ex(data, "viewer", &viewer) ||
        !json_object_is_type(viewer, json_type_object) ||
        !json_object_object_get_ex(viewer, "entity", &v) ||
        !json_object_is_type(v, json_type_string)) {
        /* What W&B's own clients treat as bad credentials. */
        fprintf(stderr, "kt auth %s: W&B at %s does not know the key (no user or entity for it)\n",
                cmd, c->base);
        goto out;
    }
    snprintf(who->entity, sizeof(who->entity), "%s", json_object_get_string(v));
    if (json_object_object_get_ex(viewer, "username", &v) &&
        json_object_is_type(v, json_type_string)) {
        snprintf(who->username, sizeof(who->username), "%s", json_object_get_string(v));
    }
    else {
        snprintf(who->username, sizeof(who->username), "%s", who->entity);
    }
    ret = 0;
out:
    json_object_put(data);
    json_object_put(vars);
    ex_wandb_api_free(&api);
    return ret;
}

/* What every auth command does first: its options, then where the key lives. CLI_ARGS_RUN
 * when the command goes on, else its exit code. */
static int begin(int argc, char **argv, const char *cmd, struct auth_opts *o, struct auth_ctx *c)
{
    int ret = parse(argc, argv, o, cmd);

    if (ret != CLI_ARGS_RUN) {
        return ret;
    }
    ret = resolve(o, cmd, c);
    return ret ? ret : CLI_ARGS_RUN;
}

int cli_auth_login(int argc, char **argv)
{
    struct auth_opts o = {0};
    struct auth_ctx c;
    struct who who;
    char key[EX_WANDB_KEY_MAX];
    bool found = false;
    int ret = begin(argc, argv, "login", &o, &c);

    memset(key, 0, sizeof(key));
    if (ret != CLI_ARGS_RUN) {
        return ret;
    }
    ret = 0;
    if (!o.relogin && ex_wandb_netrc_lookup(c.netrc, c.machine, key, sizeof(key)) == GV_OK &&
        key[0]) {
        if (check_key(&c, "login", key, &who) == 0) {
            printf("Already logged in to %s as %s (default entity %s); kt auth login --relogin "
                   "replaces the key\n",
                   c.base, who.username, who.entity);
            goto out;
        }
        /* The saved key no longer works (check_key said why): ask for a new one. */
    }
    memset(key, 0, sizeof(key));
    ret = read_key(&o, &c, key, sizeof(key));
    if (ret) {
        goto out;
    }
    if (!key_shape_ok(key)) {
        fprintf(stderr, "kt auth login: that is not a W&B API key (40 or more letters, digits "
                        "or _, after an optional prefix-)\n");
        ret = 2;
        goto out;
    }
    ret = check_key(&c, "login", key, &who);
    if (ret) {
        goto out;
    }
    ret = edit_netrc(&c, "login", key, &found);
    if (ret) {
        goto out;
    }
    printf("Logged in to %s as %s (default entity %s); key %s in %s\n", c.base, who.username,
           who.entity, found ? "replaced" : "saved", c.netrc);
out:
    memset(key, 0, sizeof(key));
    return ret;
}

int cli_auth_status(int argc, char **argv)
{
    struct auth_opts o = {0};
    struct auth_ctx c;
    struct who who;
    char key[EX_WANDB_KEY_MAX];
    const char *env = getenv("WANDB_API_KEY");
    const char *from;
    int ret = begin(argc, argv, "status", &o, &c);

    memset(key, 0, sizeof(key));
    if (ret != CLI_ARGS_RUN) {
        return ret;
    }
    /* The order the agent and W&B's clients use: the environment first. */
    if (env && *env) {
        snprintf(key, sizeof(key), "%s", env);
        from = "WANDB_API_KEY";
    }
    else if (ex_wandb_netrc_lookup(c.netrc, c.machine, key, sizeof(key)) == GV_OK && key[0]) {
        from = c.netrc;
    }
    else {
        fprintf(stderr,
                "kt auth status: not logged in to %s (no WANDB_API_KEY, no entry for %s in %s); "
                "run kt auth login\n",
                c.base, c.machine, c.netrc);
        return 1;
    }
    ret = check_key(&c, "status", key, &who);
    if (ret == 0) {
        printf("Logged in to %s as %s (default entity %s); key from %s\n", c.base, who.username,
               who.entity, from);
    }
    memset(key, 0, sizeof(key));
    return ret;
}

int cli_auth_logout(int argc, char **argv)
{
    struct auth_opts o = {0};
    struct auth_ctx c;
    const char *env = getenv("WANDB_API_KEY");
    bool found = false;
    int ret = begin(argc, argv, "logout", &o, &c);

    if (ret != CLI_ARGS_RUN) {
        return ret;
    }
    ret = edit_netrc(&c, "logout", NULL, &found);
    if (ret) {
        return ret;
    }
    if (!found) {
        fprintf(stderr, "kt auth logout: not logged in to %s (no entry for %s in %s)\n", c.base,
                c.machine, c.netrc);
        return 1;
    }
    printf("Logged out of %s: removed %s from %s%s\n", c.base, c.machine, c.netrc,
           env && *env ? " (WANDB_API_KEY is still set in this environment)" : "");
    return 0;
}
