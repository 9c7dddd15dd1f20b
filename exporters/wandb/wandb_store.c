/* exporters/wandb/wandb_store.c - durable per-run history, summary and upload state */
/* SPDX-License-Identifier: Apache-2.0 */
#include "exporters/wandb/wandb.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/gv_file.h"
#include "core/gv_mem.h"
#include "core/gv_paths.h"

void ex_wandb_safe_name(const char *in, char *out, size_t size)
{
    size_t i;

    if (size == 0) {
        return;
    }
    for (i = 0; in[i] && i + 1 < size; i++) {
        char c = in[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '_' || (c == '.' && i > 0);
        out[i] = ok ? c : '_';
    }
    out[i] = '\0';
    if (i == 0 && size > 1) {
        out[0] = '_';
        out[1] = '\0';
    }
}

gv_rc ex_wandb_write_file(const char *path, const char *data, size_t len)
{
    return gv_file_replace(path, data, len);
}

static gv_rc write_json(const char *dir, const char *file, struct json_object *j)
{
    char path[1100];
    struct gv_buf b;
    gv_rc rc;
    int n = snprintf(path, sizeof(path), "%s/%s", dir, file);

    if (n < 0 || (size_t)n >= sizeof(path)) {
        return GV_E2BIG;
    }
    gv_buf_init(&b, 0);
    rc = ex_wandb_json_append(&b, j);
    if (!rc) {
        rc = gv_buf_append_char(&b, '\n');
    }
    if (!rc) {
        rc = ex_wandb_write_file(path, b.data, b.len);
    }
    gv_buf_free(&b);
    return rc;
}

static struct json_object *read_json(const char *dir, const char *file)
{
    char path[1100];
    int n = snprintf(path, sizeof(path), "%s/%s", dir, file);

    if (n < 0 || (size_t)n >= sizeof(path)) {
        return NULL;
    }
    return json_object_from_file(path);
}

static uint64_t get_u64(struct json_object *o, const char *key)
{
    struct json_object *v;
    if (!json_object_object_get_ex(o, key, &v)) {
        return 0;
    }
    return json_object_get_uint64(v);
}

static void get_str(struct json_object *o, const char *key, char *out, size_t size)
{
    snprintf(out, size, "%s", ex_wandb_json_str(o, key));
}

static bool get_bool(struct json_object *o, const char *key)
{
    struct json_object *v;
    return json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

/* state.json (append state) and sync.json (upload state) are flat objects of run members:
 * one row per key says which file and which member it is, so saving and loading cannot
 * disagree on a name. */
enum field_type { FIELD_U64, FIELD_BOOL, FIELD_STR };

struct field {
    const char *file;
    const char *key;
    enum field_type type;
    size_t off;  /* offsetof(struct ex_wandb_run, member) */
    size_t size; /* FIELD_STR: the member's array size */
};

#define RUN_FIELD(file, key, type, member)                                                         \
    {                                                                                              \
        file, key, type, offsetof(struct ex_wandb_run, member),                                    \
            sizeof(((struct ex_wandb_run *)0)->member)                                             \
    }

static const struct field run_fields[] = {
    RUN_FIELD("state.json", "base", FIELD_U64, base),
    RUN_FIELD("state.json", "lines", FIELD_U64, lines),
    RUN_FIELD("state.json", "next_step", FIELD_U64, next_step),
    RUN_FIELD("state.json", "last_seq", FIELD_U64, last_seq),
    RUN_FIELD("state.json", "last_now_us", FIELD_U64, last_now_us),
    RUN_FIELD("state.json", "final", FIELD_BOOL, final),
    RUN_FIELD("sync.json", "synced", FIELD_U64, synced),
    RUN_FIELD("sync.json", "synced_bytes", FIELD_U64, synced_bytes),
    RUN_FIELD("sync.json", "storage_id", FIELD_STR, storage_id),
    RUN_FIELD("sync.json", "entity", FIELD_STR, entity_c),
    RUN_FIELD("sync.json", "project", FIELD_STR, project_c),
    RUN_FIELD("sync.json", "complete_sent", FIELD_BOOL, complete_sent),
    RUN_FIELD("sync.json", "parked", FIELD_STR, parked),
    RUN_FIELD("sync.json", "config_sent", FIELD_STR, config_sent),
};

#define NFIELDS (sizeof(run_fields) / sizeof(run_fields[0]))

static gv_rc save_fields(struct ex_wandb_run *run, const char *file)
{
    struct json_object *j = json_object_new_object();
    gv_rc rc;
    size_t i;

    for (i = 0; i < NFIELDS; i++) {
        const struct field *f = &run_fields[i];
        const void *m = (const char *)run + f->off;
        struct json_object *v;
        if (strcmp(f->file, file) != 0) {
            continue;
        }
        switch (f->type) {
        case FIELD_U64:
            v = json_object_new_uint64(*(const uint64_t *)m);
            break;
        case FIELD_BOOL:
            v = json_object_new_boolean(*(const bool *)m);
            break;
        default:
            v = json_object_new_string(m);
            break;
        }
        json_object_object_add(j, f->key, v);
    }
    rc = write_json(run->dir, file, j);
    json_object_put(j);
    return rc;
}

/* A file that is missing or unreadable leaves its members as they are (zero after open). */
static void load_fields(struct ex_wandb_run *run, const char *file)
{
    struct json_object *j = read_json(run->dir, file);
    size_t i;

    if (!j) {
        return;
    }
    for (i = 0; i < NFIELDS; i++) {
        const struct field *f = &run_fields[i];
        void *m = (char *)run + f->off;
        if (strcmp(f->file, file) != 0) {
            continue;
        }
        switch (f->type) {
        case FIELD_U64:
            *(uint64_t *)m = get_u64(j, f->key);
            break;
        case FIELD_BOOL:
            *(bool *)m = get_bool(j, f->key);
            break;
        default:
            get_str(j, f->key, m, f->size);
            break;
        }
    }
    json_object_put(j);
}

gv_rc ex_wandb_store_save_state(struct ex_wandb_run *run)
{
    return save_fields(run, "state.json");
}

gv_rc ex_wandb_store_save_sync(struct ex_wandb_run *run)
{
    return save_fields(run, "sync.json");
}

static gv_rc history_path(const struct ex_wandb_run *run, char *path, size_t size)
{
    int n = snprintf(path, size, "%s/history.jsonl", run->dir);
    return (n < 0 || (size_t)n >= size) ? GV_E2BIG : GV_OK;
}

gv_rc ex_wandb_store_line_offset(struct ex_wandb_run *run, uint64_t idx, uint64_t *bytes)
{
    char path[1100];
    FILE *f = NULL;
    uint64_t line = 0;
    uint64_t pos = 0;
    gv_rc rc = history_path(run, path, sizeof(path));
    int c;

    *bytes = 0;
    if (rc || idx == 0) {
        return rc;
    }
    f = fopen(path, "rb");
    if (!f) {
        return errno == ENOENT ? GV_OK : GV_EIO;
    }
    while ((c = getc(f)) != EOF) {
        pos++;
        if (c == '\n' && ++line == idx) {
            break;
        }
    }
    *bytes = pos;
    fclose(f);
    return GV_OK;
}

/* A crash between appending a line and saving state.json leaves lines nobody
 * counted: cut the file back so offsets and the file agree again. */
static gv_rc trim_history(struct ex_wandb_run *run)
{
    char path[1100];
    struct stat st;
    uint64_t bytes;
    gv_rc rc = history_path(run, path, sizeof(path));

    if (rc) {
        return rc;
    }
    if (stat(path, &st) != 0) {
        return GV_OK;
    }
    rc = ex_wandb_store_line_offset(run, run->lines, &bytes);
    if (rc) {
        return rc;
    }
    if ((uint64_t)st.st_size > bytes && truncate(path, (off_t)bytes) != 0) {
        return GV_EIO;
    }
    return GV_OK;
}

gv_rc ex_wandb_store_open(const char *dir, struct ex_wandb_run *run)
{
    int n;

    memset(run, 0, sizeof(*run));
    n = snprintf(run->dir, sizeof(run->dir), "%s", dir);
    if (n < 0 || (size_t)n >= sizeof(run->dir)) {
        return GV_E2BIG;
    }
    run->meta = read_json(dir, "run.json");
    if (!run->meta || !json_object_is_type(run->meta, json_type_object)) {
        json_object_put(run->meta);
        run->meta = NULL;
        return GV_ENOTFOUND;
    }
    load_fields(run, "state.json");
    load_fields(run, "sync.json");
    if (run->synced > run->lines) {
        run->synced = run->lines;
        run->synced_bytes = 0;
    }
    return trim_history(run);
}

void ex_wandb_store_close(struct ex_wandb_run *run)
{
    json_object_put(run->meta);
    run->meta = NULL;
}

gv_rc ex_wandb_store_read_lines(struct ex_wandb_run *run, uint64_t from, uint64_t start_bytes,
                                size_t max_bytes, struct json_object *arr, uint64_t *n,
                                uint64_t *end_bytes)
{
    char path[1100];
    FILE *f = NULL;
    struct gv_buf line;
    size_t total = 0;
    uint64_t idx = from;
    uint64_t pos;
    gv_rc rc = history_path(run, path, sizeof(path));
    int c;

    *n = 0;
    *end_bytes = start_bytes;
    gv_buf_init(&line, EX_WANDB_LINE_MAX);
    if (rc) {
        goto out;
    }
    if (from > 0 && start_bytes == 0) {
        rc = ex_wandb_store_line_offset(run, from, &start_bytes);
        if (rc) {
            goto out;
        }
    }
    pos = start_bytes;
    f = fopen(path, "rb");
    if (!f) {
        rc = run->lines > from ? GV_EIO : GV_OK;
        goto out;
    }
    if (fseeko(f, (off_t)start_bytes, SEEK_SET) != 0) {
        rc = GV_EIO;
        goto out;
    }
    while (idx < run->lines) {
        gv_buf_reset(&line);
        while ((c = getc(f)) != EOF && c != '\n') {
            rc = gv_buf_append_char(&line, (char)c);
            if (rc) {
                goto out;
            }
        }
        if (c == EOF) {
            rc = GV_EIO; /* state.json counts more lines than the file has */
            goto out;
        }
        if (*n > 0 && total + line.len > max_bytes) {
            break;
        }
        total += line.len;
        pos += line.len + 1;
        json_object_array_add(
            arr, json_object_new_string_len(line.data ? line.data : "", (int)line.len));
        idx++;
        (*n)++;
        *end_bytes = pos;
    }
out:
    if (f) {
        fclose(f);
    }
    gv_buf_free(&line);
    return rc;
}

char *ex_wandb_store_summary(struct ex_wandb_run *run)
{
    char path[1100];
    struct gv_buf b;
    int n = snprintf(path, sizeof(path), "%s/summary.json", run->dir);

    if (n < 0 || (size_t)n >= sizeof(path)) {
        return NULL;
    }
    gv_buf_init(&b, EX_WANDB_LINE_MAX);
    if (gv_file_read_all(path, &b) != GV_OK) {
        gv_buf_free(&b);
        return NULL;
    }
    while (b.len && (b.data[b.len - 1] == '\n')) {
        b.data[--b.len] = '\0';
    }
    if (b.len == 0) {
        gv_buf_free(&b);
        return NULL;
    }
    return gv_buf_steal(&b);
}

static gv_rc append_line(struct ex_wandb_run *run, const char *s, size_t len)
{
    char path[1100];
    int fd;
    gv_rc rc = history_path(run, path, sizeof(path));

    if (rc) {
        return rc;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        return GV_EIO;
    }
    rc = gv_file_write_all(fd, s, len);
    if (!rc && fsync(fd) != 0) {
        rc = GV_EIO;
    }
    close(fd);
    return rc;
}

gv_rc ex_wandb_store_append(const char *root, struct json_object *entry, uint64_t seq,
                            uint64_t now_us, bool shared, char *dir_out, size_t dir_size)
{
    struct ex_wandb_run run;
    struct json_object *row = NULL;
    struct json_object *meta = NULL;
    struct json_object *summary = NULL;
    struct json_object *wb;
    struct json_object *v;
    char ent[GV_RUN_TAG_MAX + 2], proj[GV_RUN_TAG_MAX + 2], name[GV_RUN_TAG_MAX * 2 + 64];
    struct gv_buf line;
    bool opened = false;
    gv_rc rc;
    int n;

    memset(&run, 0, sizeof(run));
    gv_buf_init(&line, EX_WANDB_LINE_MAX);
    ex_wandb_safe_name(ex_wandb_json_str(entry, "entity"), ent, sizeof(ent));
    ex_wandb_safe_name(ex_wandb_json_str(entry, "project"), proj, sizeof(proj));
    ex_wandb_safe_name(ex_wandb_json_str(entry, "run"), name, sizeof(name));
    n = snprintf(dir_out, dir_size, "%s/%s/%s/%s", root, ent, proj, name);
    if (n < 0 || (size_t)n >= dir_size) {
        rc = GV_E2BIG;
        goto out;
    }
    rc = gv_mkdir_p(dir_out, 0700);
    if (rc) {
        goto out;
    }
    rc = ex_wandb_store_open(dir_out, &run);
    if (rc == GV_ENOTFOUND) {
        rc = GV_OK;
    }
    if (rc) {
        goto out;
    }
    opened = true;
    /* The agent hands the same payload again after a RETRY: its rows are
     * already here. An older payload than the last one would send _step back. */
    if (run.last_now_us &&
        (now_us < run.last_now_us || (now_us == run.last_now_us && seq == run.last_seq))) {
        goto out;
    }
    /* run.json: identity and config, refreshed so a config change is upserted. */
    meta = json_object_new_object();
    json_object_object_foreach(entry, k, val)
    {
        if (strcmp(k, "row") != 0 && strcmp(k, "final") != 0) {
            json_object_object_add(meta, k, json_object_get(val));
        }
    }
    json_object_object_add(meta, "shared", json_object_new_boolean(shared));
    n = snprintf(run.dir, sizeof(run.dir), "%s", dir_out);
    rc = write_json(dir_out, "run.json", meta);
    if (rc) {
        goto out;
    }
    if (!json_object_object_get_ex(entry, "row", &v) || !json_object_is_type(v, json_type_object)) {
        rc = GV_EINVAL;
        goto out;
    }
    if (json_object_deep_copy(v, &row, NULL) != 0) {
        rc = GV_EINVAL;
        goto out;
    }
    /* Shared mode leaves _step out: the backend numbers the lines of all writers. */
    if (!shared) {
        json_object_object_add(row, "_step", json_object_new_uint64(run.next_step));
    }
    rc = ex_wandb_json_append(&line, row);
    if (!rc) {
        rc = gv_buf_append_char(&line, '\n');
    }
    if (rc) {
        goto out;
    }
    rc = append_line(&run, line.data, line.len);
    if (rc) {
        goto out;
    }
    /* The summary is the full last row plus _wandb.runtime, re-sent at line 0. */
    if (json_object_deep_copy(row, &summary, NULL) != 0) {
        rc = GV_EINVAL;
        goto out;
    }
    wb = json_object_new_object();
    if (json_object_object_get_ex(row, "_runtime", &v)) {
        json_object_object_add(wb, "runtime",
                               json_object_new_int64((int64_t)json_object_get_double(v)));
    }
    json_object_object_add(summary, "_wandb", wb);
    rc = write_json(dir_out, "summary.json", summary);
    if (rc) {
        goto out;
    }
    run.lines++;
    run.next_step++;
    run.last_seq = seq;
    run.last_now_us = now_us;
    if (json_object_object_get_ex(entry, "final", &v) && json_object_get_boolean(v)) {
        run.final = true;
    }
    else if (run.final) {
        /* Traffic again after finalising: the run goes on, so W&B must see it
         * reopen (complete is sent again at the next finalisation). */
        run.final = false;
        run.complete_sent = false;
        rc = ex_wandb_store_save_sync(&run);
        if (rc) {
            goto out;
        }
    }
    rc = ex_wandb_store_save_state(&run);
out:
    if (opened) {
        ex_wandb_store_close(&run);
    }
    json_object_put(meta);
    json_object_put(row);
    json_object_put(summary);
    gv_buf_free(&line);
    return rc;
}

static gv_rc walk_level(const char *dir, int depth, gv_rc (*fn)(const char *, void *), void *arg)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char sub[1100];
    gv_rc rc = GV_OK;
    struct stat st;
    int n;

    if (!d) {
        return errno == ENOENT ? GV_ENOTFOUND : GV_EIO;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        n = snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name);
        if (n < 0 || (size_t)n >= sizeof(sub) || stat(sub, &st) != 0 || !S_ISDIR(st.st_mode)) {
            continue;
        }
        rc = depth == 2 ? fn(sub, arg) : walk_level(sub, depth + 1, fn, arg);
        if (rc) {
            break;
        }
    }
    closedir(d);
    return rc;
}

gv_rc ex_wandb_store_walk(const char *root, gv_rc (*fn)(const char *dir, void *arg), void *arg)
{
    return walk_level(root, 0, fn, arg);
}
