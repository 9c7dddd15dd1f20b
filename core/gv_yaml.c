/* core/gv_yaml.c - libyaml events folded into a gv_ynode tree with positions */
/* SPDX-License-Identifier: Apache-2.0 */
#include "core/gv_yaml.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <yaml.h>

#include "core/gv_buf.h"
#include "core/gv_mem.h"

/* Limits keep a hostile or broken file from costing more than a config can
 * reasonably need: nesting is bounded so the tree walkers may recurse, node
 * count is bounded so aliases cannot multiply a small file into a huge tree
 * ("billion laughs"), and the document itself is bounded in bytes. */
#define YAML_MAX_DEPTH 64
#define YAML_MAX_NODES 100000
#define YAML_MAX_BYTES (8u * 1024u * 1024u)

struct anchor {
    char *name;
    struct gv_ynode *node; /* owned by the tree; anchors only point at it */
    struct anchor *next;
};

struct frame {
    struct gv_ynode *node;
    struct gv_ynode *key; /* maps: key waiting for its value */
    char *anchor;         /* registered once the collection is complete */
};

struct builder {
    const char *path;
    const char *data;
    size_t len;
    struct gv_cfg_err *err;
    struct frame stack[YAML_MAX_DEPTH];
    int depth;
    size_t nodes;
    struct anchor *anchors;
    struct gv_ynode *root;
};

static void node_free(struct gv_ynode *n)
{
    size_t i;

    if (!n) {
        return;
    }
    for (i = 0; i < n->n; i++) {
        node_free(n->items[i]);
        if (n->keys) {
            node_free(n->keys[i]);
        }
    }
    gv_free(n->items);
    gv_free(n->keys);
    gv_free(n->scalar);
    gv_free(n);
}

static struct gv_ynode *node_new(enum gv_ynode_kind kind, const yaml_mark_t *mark)
{
    struct gv_ynode *n = gv_calloc(1, sizeof(*n));

    n->kind = kind;
    n->line = (int)mark->line + 1;
    n->col = (int)mark->column + 1;
    return n;
}

static void node_push(struct gv_ynode *n, struct gv_ynode *key, struct gv_ynode *val)
{
    /* Grow by doubling at powers of two; the node cap bounds the total. */
    if ((n->n & (n->n - 1)) == 0) {
        size_t cap = n->n ? n->n * 2 : 4;
        if (n->n == 0 || n->n >= 4) {
            n->items = gv_realloc(n->items, cap * sizeof(*n->items));
            if (n->kind == GV_Y_MAP) {
                n->keys = gv_realloc(n->keys, cap * sizeof(*n->keys));
            }
        }
    }
    n->items[n->n] = val;
    if (n->kind == GV_Y_MAP) {
        n->keys[n->n] = key;
    }
    n->n++;
}

/* Counts nodes and depth of a subtree so an alias copy can be refused before
 * it is made. */
static void subtree_measure(const struct gv_ynode *n, int depth, size_t *count, int *maxdepth)
{
    size_t i;

    (*count)++;
    if (depth > *maxdepth) {
        *maxdepth = depth;
    }
    for (i = 0; i < n->n; i++) {
        if (n->keys) {
            subtree_measure(n->keys[i], depth + 1, count, maxdepth);
        }
        subtree_measure(n->items[i], depth + 1, count, maxdepth);
    }
}

/* Copies keep the anchor's positions: errors in aliased content then point at
 * the text the user actually wrote. */
static struct gv_ynode *subtree_copy(const struct gv_ynode *n)
{
    struct gv_ynode *c = gv_calloc(1, sizeof(*c));
    size_t i;

    c->kind = n->kind;
    c->line = n->line;
    c->col = n->col;
    c->quoted = n->quoted;
    c->scalar = n->scalar ? gv_strdup(n->scalar) : NULL;
    if (n->n) {
        c->items = gv_calloc(n->n < 4 ? 4 : n->n * 2, sizeof(*c->items));
        if (n->keys) {
            c->keys = gv_calloc(n->n < 4 ? 4 : n->n * 2, sizeof(*c->keys));
        }
    }
    for (i = 0; i < n->n; i++) {
        c->items[i] = subtree_copy(n->items[i]);
        if (n->keys) {
            c->keys[i] = subtree_copy(n->keys[i]);
        }
        c->n++;
    }
    return c;
}

static gv_rc fail_at(struct builder *b, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static gv_rc fail_at(struct builder *b, int line, int col, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(b->err->msg, sizeof(b->err->msg), "%s:%d:%d: %s", b->path, line, col, msg);
    return GV_ECONFIG;
}

static void anchor_add(struct builder *b, char *name, struct gv_ynode *node)
{
    struct anchor *a = gv_malloc(sizeof(*a));

    /* Newest first: YAML lets a later anchor of the same name shadow an earlier one. */
    a->name = name;
    a->node = node;
    a->next = b->anchors;
    b->anchors = a;
}

static const struct anchor *anchor_find(const struct builder *b, const char *name)
{
    const struct anchor *a;

    for (a = b->anchors; a; a = a->next) {
        if (strcmp(a->name, name) == 0) {
            return a;
        }
    }
    return NULL;
}

/* Places a finished node into its parent (or as the root). On failure the
 * node has been freed. */
static gv_rc attach(struct builder *b, struct gv_ynode *n)
{
    struct frame *top;
    size_t i;

    if (b->depth == 0) {
        b->root = n;
        return GV_OK;
    }
    top = &b->stack[b->depth - 1];
    if (top->node->kind == GV_Y_SEQ) {
        node_push(top->node, NULL, n);
        return GV_OK;
    }
    if (!top->key) {
        if (n->kind != GV_Y_SCALAR) {
            gv_rc rc = fail_at(b, n->line, n->col, "mapping keys must be scalars, got a %s",
                               gv_ynode_kind_str(n->kind));
            node_free(n);
            return rc;
        }
        for (i = 0; i < top->node->n; i++) {
            const struct gv_ynode *k = top->node->keys[i];
            if (strcmp(k->scalar, n->scalar) == 0) {
                gv_rc rc =
                    fail_at(b, n->line, n->col, "duplicate key '%.200s' (first defined at %d:%d)",
                            n->scalar, k->line, k->col);
                node_free(n);
                return rc;
            }
        }
        top->key = n;
        return GV_OK;
    }
    node_push(top->node, top->key, n);
    top->key = NULL;
    return GV_OK;
}

static gv_rc count_node(struct builder *b, const yaml_mark_t *mark, size_t add)
{
    if (add > YAML_MAX_NODES || b->nodes > YAML_MAX_NODES - add) {
        return fail_at(b, (int)mark->line + 1, (int)mark->column + 1,
                       "document too large (more than %d nodes)", YAML_MAX_NODES);
    }
    b->nodes += add;
    return GV_OK;
}

static gv_rc on_scalar(struct builder *b, yaml_event_t *ev)
{
    struct gv_ynode *n;
    const char *tag = (const char *)ev->data.scalar.tag;
    gv_rc rc;

    rc = count_node(b, &ev->start_mark, 1);
    if (rc) {
        goto out;
    }
    /* The tree hands out C strings, so an embedded NUL would silently cut a
     * value short; refuse it instead. */
    if (memchr(ev->data.scalar.value, '\0', ev->data.scalar.length)) {
        rc = fail_at(b, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
                     "scalar contains a NUL character");
        goto out;
    }
    n = node_new(GV_Y_SCALAR, &ev->start_mark);
    n->scalar = gv_strndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
    n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
                (tag && (strcmp(tag, "tag:yaml.org,2002:str") == 0 || strcmp(tag, "!") == 0));
    if (ev->data.scalar.anchor) {
        anchor_add(b, gv_strdup((const char *)ev->data.scalar.anchor), n);
    }
    rc = attach(b, n);
out:
    return rc;
}

static gv_rc on_alias(struct builder *b, yaml_event_t *ev)
{
    const char *name = (const char *)ev->data.alias.anchor;
    const struct anchor *a = anchor_find(b, name);
    size_t count = 0;
    int maxdepth = 0;
    gv_rc rc;

    /* Collections register their anchor only when complete, so an alias to an
     * enclosing collection (a cycle) is reported here as undefined. */
    if (!a) {
        rc =
            fail_at(b, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
                    "unknown anchor '%.200s' (aliases must follow a complete anchored node)", name);
        goto out;
    }
    subtree_measure(a->node, 0, &count, &maxdepth);
    if (b->depth + maxdepth >= YAML_MAX_DEPTH) {
        rc = fail_at(b, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
                     "nesting deeper than %d levels", YAML_MAX_DEPTH);
        goto out;
    }
    rc = count_node(b, &ev->start_mark, count);
    if (rc) {
        goto out;
    }
    rc = attach(b, subtree_copy(a->node));
out:
    return rc;
}

static gv_rc on_start(struct builder *b, yaml_event_t *ev, enum gv_ynode_kind kind)
{
    const yaml_char_t *anchor =
        kind == GV_Y_MAP ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
    struct frame *f;
    gv_rc rc;

    if (b->depth >= YAML_MAX_DEPTH) {
        rc = fail_at(b, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
                     "nesting deeper than %d levels", YAML_MAX_DEPTH);
        goto out;
    }
    rc = count_node(b, &ev->start_mark, 1);
    if (rc) {
        goto out;
    }
    f = &b->stack[b->depth++];
    f->node = node_new(kind, &ev->start_mark);
    f->key = NULL;
    f->anchor = anchor ? gv_strdup((const char *)anchor) : NULL;
out:
    return rc;
}

static gv_rc on_end(struct builder *b)
{
    struct frame *f = &b->stack[--b->depth];
    struct gv_ynode *n = f->node;

    /* libyaml always pairs keys with values, so f->key is NULL here. */
    if (f->anchor) {
        anchor_add(b, f->anchor, n);
    }
    f->anchor = NULL;
    f->node = NULL;
    return attach(b, n);
}

/* Turns a byte offset into 1-based line/col for reader (encoding) errors,
 * for which libyaml only reports the offset. */
static void offset_pos(const struct builder *b, size_t off, int *line, int *col)
{
    size_t i;

    *line = 1;
    *col = 1;
    for (i = 0; i < off && i < b->len; i++) {
        if (b->data[i] == '\n') {
            (*line)++;
            *col = 1;
        }
        else {
            (*col)++;
        }
    }
}

static gv_rc parser_fail(struct builder *b, const yaml_parser_t *p)
{
    int line;
    int col;
    const char *problem = p->problem ? p->problem : "invalid YAML";

    if (p->error == YAML_READER_ERROR) {
        offset_pos(b, p->problem_offset, &line, &col);
        return fail_at(b, line, col, "%s", problem);
    }
    if (p->error == YAML_MEMORY_ERROR) {
        return fail_at(b, 1, 1, "out of memory while parsing");
    }
    line = (int)p->problem_mark.line + 1;
    col = (int)p->problem_mark.column + 1;
    if (p->context) {
        return fail_at(b, line, col, "%s (%s at %d:%d)", problem, p->context,
                       (int)p->context_mark.line + 1, (int)p->context_mark.column + 1);
    }
    return fail_at(b, line, col, "%s", problem);
}

static void builder_free(struct builder *b)
{
    struct anchor *a;
    struct anchor *next;

    for (a = b->anchors; a; a = next) {
        next = a->next;
        gv_free(a->name);
        gv_free(a);
    }
    b->anchors = NULL;
    /* Unwinding after an error: free open collections innermost first. */
    while (b->depth > 0) {
        struct frame *f = &b->stack[--b->depth];
        node_free(f->key);
        node_free(f->node);
        gv_free(f->anchor);
    }
}

gv_rc gv_ydoc_load_buf(const char *name, const char *data, size_t len, struct gv_ydoc **out,
                       struct gv_cfg_err *err)
{
    struct gv_cfg_err scratch;
    struct builder b;
    yaml_parser_t parser;
    yaml_event_t ev;
    bool parser_ok = false;
    bool done = false;
    int docs = 0;
    gv_rc rc = GV_OK;

    *out = NULL;
    if (!err) {
        err = &scratch;
    }
    err->msg[0] = '\0';
    memset(&b, 0, sizeof(b));
    b.path = name ? name : "<input>";
    b.data = data;
    b.len = len;
    b.err = err;
    if (len > YAML_MAX_BYTES) {
        rc = fail_at(&b, 1, 1, "document larger than %u bytes", YAML_MAX_BYTES);
        goto out;
    }
    if (!yaml_parser_initialize(&parser)) {
        rc = fail_at(&b, 1, 1, "out of memory while parsing");
        goto out;
    }
    parser_ok = true;
    yaml_parser_set_input_string(&parser, (const unsigned char *)(data ? data : ""), len);

    while (!done) {
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = parser_fail(&b, &parser);
            goto out;
        }
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) {
                rc = fail_at(&b, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1,
                             "only one YAML document is allowed");
            }
            break;
        case YAML_SCALAR_EVENT:
            rc = on_scalar(&b, &ev);
            break;
        case YAML_ALIAS_EVENT:
            rc = on_alias(&b, &ev);
            break;
        case YAML_SEQUENCE_START_EVENT:
            rc = on_start(&b, &ev, GV_Y_SEQ);
            break;
        case YAML_MAPPING_START_EVENT:
            rc = on_start(&b, &ev, GV_Y_MAP);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            rc = on_end(&b);
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
        if (rc) {
            goto out;
        }
    }

    *out = gv_calloc(1, sizeof(**out));
    (*out)->path = gv_strdup(b.path);
    (*out)->root = b.root;
    b.root = NULL;
out:
    builder_free(&b);
    node_free(b.root);
    if (parser_ok) {
        yaml_parser_delete(&parser);
    }
    return rc;
}

gv_rc gv_ydoc_load_file(const char *path, struct gv_ydoc **out, struct gv_cfg_err *err)
{
    struct gv_cfg_err scratch;
    struct gv_buf buf;
    char chunk[8192];
    FILE *f = NULL;
    size_t n;
    gv_rc rc = GV_OK;

    *out = NULL;
    if (!err) {
        err = &scratch;
    }
    gv_buf_init(&buf, YAML_MAX_BYTES);
    f = fopen(path, "rb");
    if (!f) {
        snprintf(err->msg, sizeof(err->msg), "%s: cannot open: %s", path, strerror(errno));
        rc = GV_EIO;
        goto out;
    }
    for (;;) {
        n = fread(chunk, 1, sizeof(chunk), f);
        if (n > 0) {
            rc = gv_buf_append(&buf, chunk, n);
            if (rc) {
                snprintf(err->msg, sizeof(err->msg), "%s: file larger than %u bytes", path,
                         YAML_MAX_BYTES);
                rc = GV_ECONFIG;
                goto out;
            }
        }
        if (n < sizeof(chunk)) {
            break;
        }
    }
    if (ferror(f)) {
        snprintf(err->msg, sizeof(err->msg), "%s: read error", path);
        rc = GV_EIO;
        goto out;
    }
    rc = gv_ydoc_load_buf(path, buf.data, buf.len, out, err);
out:
    if (f) {
        fclose(f);
    }
    gv_buf_free(&buf);
    return rc;
}

void gv_ydoc_destroy(struct gv_ydoc *doc)
{
    if (!doc) {
        return;
    }
    node_free(doc->root);
    gv_free(doc->path);
    gv_free(doc);
}

/* The index of key in map, or map->n when map is not a mapping or lacks it. */
static size_t key_index(const struct gv_ynode *map, const char *key)
{
    size_t i;

    if (!map || map->kind != GV_Y_MAP || !key) {
        return map ? map->n : 0;
    }
    for (i = 0; i < map->n; i++) {
        if (strcmp(map->keys[i]->scalar, key) == 0) {
            return i;
        }
    }
    return map->n;
}

const struct gv_ynode *gv_ynode_key(const struct gv_ynode *map, const char *key)
{
    size_t i = key_index(map, key);

    return map && i < map->n ? map->keys[i] : NULL;
}

const struct gv_ynode *gv_ynode_get(const struct gv_ynode *map, const char *key)
{
    size_t i = key_index(map, key);

    return map && i < map->n ? map->items[i] : NULL;
}

const char *gv_ynode_kind_str(enum gv_ynode_kind kind)
{
    switch (kind) {
    case GV_Y_SCALAR:
        return "scalar";
    case GV_Y_SEQ:
        return "sequence";
    case GV_Y_MAP:
        return "mapping";
    }
    return "node";
}

gv_rc gv_cfg_fail(struct gv_cfg_err *err, const char *path, const struct gv_ynode *node,
                  const char *fmt, ...)
{
    char msg[640];
    va_list ap;

    size_t i;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* Messages quote config values, which may hold any byte ("a\nb" in a
     * quoted scalar): keep the error one printable line, so it cannot fake
     * further log or terminal lines. */
    for (i = 0; msg[i]; i++) {
        if ((unsigned char)msg[i] < 0x20 || msg[i] == 0x7f) {
            msg[i] = '?';
        }
    }
    if (err) {
        snprintf(err->msg, sizeof(err->msg), "%s:%d:%d: %s", path ? path : "<input>",
                 node ? node->line : 1, node ? node->col : 1, msg);
    }
    return GV_ECONFIG;
}
