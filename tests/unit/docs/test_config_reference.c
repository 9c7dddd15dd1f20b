/* tests/unit/docs/test_config_reference.c - the configuration reference, generated from the maps */
/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Every setting kt reads through a config map (struct gv_cfg_map) is documented by a Markdown
 * table generated from that map's rows: Type from the row's type, enum values and bounds,
 * Default from `def`, Meaning from `help`. In docs/ (each .md file) each table sits between
 *
 *     <!-- BEGIN generated: NAME -->
 *     <!-- END generated -->
 *
 * where NAME is a gateway section ("pack", "providers.targets[]", "gateway", "telemetry"),
 * "policy.<name>" for a policy of gw_policies_builtin() or "exporter.<name>" for an exporter of
 * ex_registry_builtin(). This test fails when a block differs from what the maps produce (a
 * row added, changed or removed; a table edited by hand) and when a map has no block;
 * KT_DOCS_WRITE=1 (scripts/gen-config-docs.sh) rewrites the blocks in place instead.
 *
 * What no map row holds stays hand-written around the blocks: the top-level key table (the
 * loader checks those keys against a plain list), and the inner structure of GV_CFG_NODE rows
 * (rbac `keys`/`roles`/`teams`, pii `operator`, cost `prices`/`budgets`), which the owners
 * parse themselves and the row's help describes.
 *
 * A GV_CFG_NODE row's help starts with its shape in parentheses, "(list) ...", which becomes
 * the Type; a GV_CFG_STR row may do the same ("(path) ...") to say what the string is.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/gv_buf.h"
#include "core/gv_cfg.h"
#include "core/gv_file.h"
#include "core/gv_mem.h"
#include "exporters/ex_registry.h"
#include "gateway/gw_config.h"
#include "gateway/gw_telemetry.h"
#include "gateway/policies/gw_policies.h"

#define MAX_SECTIONS 64
#define REGEN "scripts/gen-config-docs.sh (or KT_DOCS_WRITE=1 ctest -R docs/config_reference)"

static const char begin_mark[] = "<!-- BEGIN generated: ";
static const char begin_end[] = " -->";
static const char end_mark[] = "<!-- END generated -->";

/* The checks' own tests feed them broken documents on purpose: no diagnostics for those. */
static bool quiet;
#define say(...)                                                                                   \
    do {                                                                                           \
        if (!quiet) {                                                                              \
            print_error(__VA_ARGS__);                                                              \
        }                                                                                          \
    } while (0)

struct section {
    char name[96];
    const struct gv_cfg_map *map;
    int blocks; /* how many doc blocks hold it */
};

/* ---- rendering ---- */

/* 1048576 -> "1 MiB", 300 -> "300 B". */
static void fmt_bytes(struct gv_buf *b, double v)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    unsigned long long n = (unsigned long long)v;
    size_t u = 0;

    while (u + 1 < sizeof(units) / sizeof(units[0]) && n >= 1024 && n % 1024 == 0) {
        n /= 1024;
        u++;
    }
    assert_int_equal(gv_buf_appendf(b, "%llu %s", n, units[u]), GV_OK);
}

/* 3600000 -> "1 h", 60000 -> "1 min", 1500 -> "1500 ms". */
static void fmt_ms(struct gv_buf *b, double v)
{
    unsigned long long n = (unsigned long long)v;

    if (n > 0 && n % 3600000 == 0) {
        assert_int_equal(gv_buf_appendf(b, "%llu h", n / 3600000), GV_OK);
    }
    else if (n > 0 && n % 60000 == 0) {
        assert_int_equal(gv_buf_appendf(b, "%llu min", n / 60000), GV_OK);
    }
    else if (n > 0 && n % 1000 == 0) {
        assert_int_equal(gv_buf_appendf(b, "%llu s", n / 1000), GV_OK);
    }
    else {
        assert_int_equal(gv_buf_appendf(b, "%llu ms", n), GV_OK);
    }
}

static void fmt_bound(struct gv_buf *b, enum gv_cfg_type t, double v)
{
    if (t == GV_CFG_SIZE) {
        fmt_bytes(b, v);
    }
    else if (t == GV_CFG_DURATION) {
        fmt_ms(b, v);
    }
    else if (t == GV_CFG_INT) {
        assert_int_equal(gv_buf_appendf(b, "%.0f", v), GV_OK);
    }
    else {
        assert_int_equal(gv_buf_appendf(b, "%g", v), GV_OK);
    }
}

/* The "(shape) " prefix of a help string: its length including the space, or 0. */
static size_t shape_len(const char *help)
{
    const char *close;

    if (!help || help[0] != '(') {
        return 0;
    }
    close = strchr(help, ')');
    if (!close || close[1] != ' ') {
        return 0;
    }
    return (size_t)(close - help) + 2;
}

static const char *type_word(enum gv_cfg_type t)
{
    switch (t) {
    case GV_CFG_BOOL:
        return "boolean";
    case GV_CFG_INT:
        return "integer";
    case GV_CFG_DOUBLE:
        return "number";
    case GV_CFG_STR:
        return "string";
    case GV_CFG_ENUM:
        return "enum";
    case GV_CFG_STRLIST:
        return "list of strings";
    case GV_CFG_NODE:
        return NULL;
    case GV_CFG_SIZE:
        return "size";
    case GV_CFG_DURATION:
        return "duration";
    }
    return NULL;
}

/* Markdown table cells split at '|', even inside code spans. */
static void append_cell(struct gv_buf *b, const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (s[i] == '|') {
            assert_int_equal(gv_buf_append_char(b, '\\'), GV_OK);
        }
        assert_int_equal(gv_buf_append_char(b, s[i]), GV_OK);
    }
}

/* One row's line. A row that cannot be documented (a NODE without its shape, no help) is an
 * error naming it, so a new row cannot slip in undocumented. */
static bool render_row(const char *section, const struct gv_cfg_map *row, struct gv_buf *b)
{
    const char *help = row->help;
    size_t shape = shape_len(help);
    const char *word = type_word(row->type);
    size_t i;

    if (!help || !help[0]) {
        say("%s.%s: the row has no help text\n", section, row->key);
        return false;
    }
    if (row->type != GV_CFG_NODE && row->type != GV_CFG_STR) {
        shape = 0;
    }
    if (!word && !shape) {
        say("%s.%s: a node row's help must start with its shape, e.g. \"(mapping) \"\n", section,
            row->key);
        return false;
    }
    assert_int_equal(gv_buf_appendf(b, "| `%s` | ", row->key), GV_OK);
    if (shape) {
        append_cell(b, help + 1, shape - 3);
        help += shape;
    }
    else {
        assert_int_equal(gv_buf_append_str(b, word), GV_OK);
    }
    if (row->type == GV_CFG_ENUM && row->enum_values) {
        const char *sep = " ";
        /* "" stands for "not set" (fall back to the environment); it cannot be written */
        for (i = 0; row->enum_values[i]; i++) {
            if (row->enum_values[i][0]) {
                assert_int_equal(gv_buf_appendf(b, "%s`%s`", sep, row->enum_values[i]), GV_OK);
                sep = ", ";
            }
        }
    }
    if ((row->type == GV_CFG_INT || row->type == GV_CFG_DOUBLE || row->type == GV_CFG_SIZE ||
         row->type == GV_CFG_DURATION) &&
        row->min < row->max) {
        assert_int_equal(gv_buf_append_str(b, ", "), GV_OK);
        fmt_bound(b, row->type, row->min);
        assert_int_equal(gv_buf_append_str(b, " to "), GV_OK);
        fmt_bound(b, row->type, row->max);
    }
    assert_int_equal(gv_buf_append_str(b, " | "), GV_OK);
    if (row->def && row->def[0]) {
        assert_int_equal(gv_buf_append_char(b, '`'), GV_OK);
        append_cell(b, row->def, strlen(row->def));
        assert_int_equal(gv_buf_append_char(b, '`'), GV_OK);
    }
    else {
        assert_int_equal(
            gv_buf_append_str(b, !row->def && (row->flags & GV_CFG_REQUIRED) ? "required" : "none"),
            GV_OK);
    }
    assert_int_equal(gv_buf_append_str(b, " | "), GV_OK);
    append_cell(b, help, strlen(help));
    assert_int_equal(gv_buf_append_str(b, " |\n"), GV_OK);
    return true;
}

static bool render_table(const char *section, const struct gv_cfg_map *map, struct gv_buf *b)
{
    size_t r;
    bool ok = true;

    assert_int_equal(
        gv_buf_append_str(b, "| Key | Type | Default | Meaning |\n|---|---|---|---|\n"), GV_OK);
    for (r = 0; map[r].key; r++) {
        ok = render_row(section, &map[r], b) && ok;
    }
    return ok;
}

/* ---- the maps ---- */

static void add_section(struct section *s, size_t *n, const char *prefix, const char *name,
                        const struct gv_cfg_map *map)
{
    if (!map) {
        return;
    }
    assert_true(*n < MAX_SECTIONS);
    snprintf(s[*n].name, sizeof(s[*n].name), "%s%s", prefix, name);
    s[*n].map = map;
    s[*n].blocks = 0;
    (*n)++;
}

/* Every map kt has: the gateway's own, each policy's, each exporter's. */
static size_t collect(struct section *s)
{
    const struct gw_config_section *g = gw_config_sections();
    const struct gw_policy_ops *const *pol = gw_policies_builtin();
    const struct ex_exporter_ops *const *ex = ex_registry_builtin();
    size_t n = 0;
    size_t i;

    for (i = 0; g[i].name; i++) {
        add_section(s, &n, "", g[i].name, g[i].map);
    }
    add_section(s, &n, "", "telemetry", gw_telemetry_config_map());
    for (i = 0; pol[i]; i++) {
        add_section(s, &n, "policy.", pol[i]->name, pol[i]->config_map);
    }
    for (i = 0; ex[i]; i++) {
        add_section(s, &n, "exporter.", ex[i]->name, ex[i]->config_map);
    }
    return n;
}

static struct section *find_section(struct section *s, size_t n, const char *name, size_t len)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (strlen(s[i].name) == len && memcmp(s[i].name, name, len) == 0) {
            return &s[i];
        }
    }
    return NULL;
}

/* ---- the documents ---- */

/* Copies `doc` to `out` with every generated block rebuilt from the maps. A block naming a
 * policy or exporter this build lacks is copied unchanged; any other unknown name, a BEGIN
 * without END and a map that cannot be rendered are errors (false, after print_error). */
static bool regenerate(const char *file, const char *doc, struct section *s, size_t n,
                       struct gv_buf *out)
{
    const char *p = doc;
    size_t line = 0;
    bool ok = true;

    while (*p) {
        const char *ln = p;
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        size_t blen = sizeof(begin_mark) - 1;
        size_t elen = sizeof(begin_end) - 1;
        const char *name;
        size_t name_len;
        struct section *sec;
        const char *q;

        line++;
        assert_int_equal(gv_buf_append(out, p, nl ? len + 1 : len), GV_OK);
        p += nl ? len + 1 : len;
        if (len <= blen + elen || memcmp(ln, begin_mark, blen) != 0) {
            continue;
        }
        name = ln + blen;
        name_len = len - blen - elen;
        if (memcmp(name + name_len, begin_end, elen) != 0) {
            continue;
        }
        /* find the END line; the text between is replaced */
        q = p;
        while (*q && strncmp(q, end_mark, sizeof(end_mark) - 1) != 0) {
            if (strncmp(q, begin_mark, blen) == 0) {
                break;
            }
            q += strcspn(q, "\n");
            q += *q ? 1 : 0;
        }
        if (strncmp(q, end_mark, sizeof(end_mark) - 1) != 0) {
            say("%s:%zu: BEGIN generated: %.*s without its END line\n", file, line, (int)name_len,
                name);
            return false;
        }
        sec = find_section(s, n, name, name_len);
        if (!sec) {
            if ((name_len > 7 && memcmp(name, "policy.", 7) == 0) ||
                (name_len > 9 && memcmp(name, "exporter.", 9) == 0)) {
                /* not compiled into this build: leave the block as it is */
                continue;
            }
            say("%s:%zu: no config map is named '%.*s'\n", file, line, (int)name_len, name);
            return false;
        }
        sec->blocks++;
        ok = render_table(sec->name, sec->map, out) && ok;
        for (; p < q; p++) {
            if (*p == '\n') {
                line++;
            }
        }
    }
    return ok;
}

/* The first line where a and b differ, both shown, with the way back to agreement. */
static void report_diff(const char *file, const char *have, const char *want)
{
    size_t line = 1;
    const char *a = have;
    const char *b = want;
    const char *la = have;
    const char *lb = want;

    while (*a && *a == *b) {
        if (*a == '\n') {
            line++;
            la = a + 1;
            lb = b + 1;
        }
        a++;
        b++;
    }
    say("%s:%zu: differs from the config maps\n  doc:  %.*s\n  maps: %.*s\n"
        "regenerate with: %s\n",
        file, line, (int)strcspn(la, "\n"), la, (int)strcspn(lb, "\n"), lb, REGEN);
}

/* Checks (or, with write, rewrites) one file; false when it differs or is broken. */
static bool sync_file(const char *path, const char *shown, struct section *s, size_t n, bool write)
{
    struct gv_buf have;
    struct gv_buf want;
    bool ok;

    gv_buf_init(&have, 0);
    gv_buf_init(&want, 0);
    assert_int_equal(gv_file_read_all(path, &have), GV_OK);
    ok = regenerate(shown, have.data ? have.data : "", s, n, &want);
    if (ok && strcmp(have.data ? have.data : "", want.data ? want.data : "") != 0) {
        if (write) {
            assert_int_equal(gv_file_replace(path, want.data, want.len), GV_OK);
            assert_int_equal(chmod(path, 0644), 0);
            if (!quiet) {
                print_message("rewrote %s\n", shown);
            }
        }
        else {
            report_diff(shown, have.data, want.data);
            ok = false;
        }
    }
    gv_buf_free(&have);
    gv_buf_free(&want);
    return ok;
}

/* ---- tests ---- */

/* The project's docs agree with the maps, and every map has a table. */
static void test_docs_match_maps(void **state)
{
    struct section s[MAX_SECTIONS];
    const char *src = getenv("KT_SOURCE_DIR");
    const char *w = getenv("KT_DOCS_WRITE");
    bool write = w && strcmp(w, "1") == 0;
    char dir[4096];
    char path[4096];
    char shown[512];
    struct dirent *de;
    size_t n = collect(s);
    size_t i;
    bool ok = true;
    DIR *d;

    (void)state;
    quiet = false;
    if (!src) {
        say("KT_SOURCE_DIR is not set: run this through ctest\n");
    }
    assert_non_null(src);
    snprintf(dir, sizeof(dir), "%s/docs", src);
    d = opendir(dir);
    assert_non_null(d);
    for (de = readdir(d); de; de = readdir(d)) {
        size_t len = strlen(de->d_name);
        if (len < 4 || strcmp(de->d_name + len - 3, ".md") != 0) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        snprintf(shown, sizeof(shown), "docs/%s", de->d_name);
        ok = sync_file(path, shown, s, n, write) && ok;
    }
    closedir(d);
    for (i = 0; i < n; i++) {
        if (s[i].blocks == 0) {
            say("config map '%s' has no table in docs/ (any .md file): add\n  %s%s%s\n  %s\n"
                "where it belongs, then run %s\n",
                s[i].name, begin_mark, s[i].name, begin_end, end_mark, REGEN);
            ok = false;
        }
    }
    assert_true(ok);
}

static const char *const modes[] = {"fast", "slow", NULL};

struct demo_ctx {
    double ratio;
    int mode;
    size_t cap;
    long wait;
    const void *rules;
};

static const struct gv_cfg_map demo_map[] = {
    {"ratio", GV_CFG_DOUBLE, offsetof(struct demo_ctx, ratio), "0.5", 0, NULL, 0, 1,
     "share of the traffic"},
    {"mode", GV_CFG_ENUM, offsetof(struct demo_ctx, mode), "fast", 0, modes, 0, 0, "a|b"},
    {"cap", GV_CFG_SIZE, offsetof(struct demo_ctx, cap), "1MiB", 0, NULL, 4096, 1073741824.0,
     "largest"},
    {"wait", GV_CFG_DURATION, offsetof(struct demo_ctx, wait), NULL, 0, NULL, 1, 3600000,
     "longest wait"},
    {"rules", GV_CFG_NODE, offsetof(struct demo_ctx, rules), NULL, GV_CFG_REQUIRED, NULL, 0, 0,
     "(list) the rules"},
    {NULL, 0, 0, NULL, 0, NULL, 0, 0, NULL},
};

static const char demo_table[] = "| Key | Type | Default | Meaning |\n"
                                 "|---|---|---|---|\n"
                                 "| `ratio` | number, 0 to 1 | `0.5` | share of the traffic |\n"
                                 "| `mode` | enum `fast`, `slow` | `fast` | a\\|b |\n"
                                 "| `cap` | size, 4 KiB to 1 GiB | `1MiB` | largest |\n"
                                 "| `wait` | duration, 1 ms to 1 h | none | longest wait |\n"
                                 "| `rules` | list | required | the rules |\n";

/* Type, bounds, default and meaning of each kind of row. */
static void test_render_rows(void **state)
{
    struct gv_buf b;

    (void)state;
    gv_buf_init(&b, 0);
    assert_true(render_table("demo", demo_map, &b));
    assert_string_equal(b.data, demo_table);
    gv_buf_free(&b);
}

/* Writes text to a scratch file; the caller removes it. */
static void scratch(char *path, size_t size, const char *text)
{
    FILE *f;
    int fd;

    snprintf(path, size, "/tmp/kt-docs-test-XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    fclose(f);
}

/* A block that is current passes; a hand edit, a missing row and an unknown name fail; write
 * mode brings the block back to what the map says. */
static void test_block_checks(void **state)
{
    struct section s[1];
    struct gv_buf doc;
    struct gv_buf back;
    char path[64];

    (void)state;
    quiet = true;
    snprintf(s[0].name, sizeof(s[0].name), "demo");
    s[0].map = demo_map;
    gv_buf_init(&doc, 0);
    assert_int_equal(gv_buf_appendf(&doc,
                                    "# Demo\n\n<!-- BEGIN generated: demo -->\n%s"
                                    "<!-- END generated -->\n\nprose\n",
                                    demo_table),
                     GV_OK);

    scratch(path, sizeof(path), doc.data);
    s[0].blocks = 0;
    assert_true(sync_file(path, "demo.md", s, 1, false));
    assert_int_equal(s[0].blocks, 1);
    unlink(path);

    /* edited by hand */
    {
        char *edited = gv_strdup(doc.data);
        char *at = strstr(edited, "share of the traffic");
        memcpy(at, "SHARE", 5);
        scratch(path, sizeof(path), edited);
        assert_false(sync_file(path, "demo.md", s, 1, false));
        assert_true(sync_file(path, "demo.md", s, 1, true));
        gv_buf_init(&back, 0);
        assert_int_equal(gv_file_read_all(path, &back), GV_OK);
        assert_string_equal(back.data, doc.data);
        gv_buf_free(&back);
        unlink(path);
        gv_free(edited);
    }

    /* a row the doc does not have yet (the map gained `wait` after the doc was written) */
    {
        char *old = gv_strdup(doc.data);
        char *row = strstr(old, "| `wait`");
        char *end = strchr(row, '\n');
        memmove(row, end + 1, strlen(end + 1) + 1);
        scratch(path, sizeof(path), old);
        assert_false(sync_file(path, "demo.md", s, 1, false));
        unlink(path);
        gv_free(old);
    }

    /* a block naming no map, and one without its END */
    scratch(path, sizeof(path), "<!-- BEGIN generated: nosuch -->\n<!-- END generated -->\n");
    assert_false(sync_file(path, "demo.md", s, 1, false));
    unlink(path);
    scratch(path, sizeof(path), "<!-- BEGIN generated: demo -->\n| x |\n");
    assert_false(sync_file(path, "demo.md", s, 1, false));
    unlink(path);
    gv_buf_free(&doc);
    quiet = false;
}

/* A node row without its shape cannot be documented. */
static void test_node_needs_shape(void **state)
{
    static const struct gv_cfg_map bad[] = {
        {"rules", GV_CFG_NODE, 0, NULL, 0, NULL, 0, 0, "the rules"},
        {NULL, 0, 0, NULL, 0, NULL, 0, 0, NULL},
    };
    struct gv_buf b;

    (void)state;
    quiet = true;
    gv_buf_init(&b, 0);
    assert_false(render_table("bad", bad, &b));
    gv_buf_free(&b);
    quiet = false;
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_render_rows),
    cmocka_unit_test(test_block_checks),
    cmocka_unit_test(test_node_needs_shape),
    cmocka_unit_test(test_docs_match_maps),
};

#include "tests/unit/unit_main.h"
