/* core/gv_yaml.h - YAML documents as a small node tree that remembers positions */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GV_YAML_H
#define GV_YAML_H

#include <stdbool.h>
#include <stddef.h>

#include "core/gv_rc.h"

enum gv_ynode_kind { GV_Y_SCALAR = 0, GV_Y_SEQ, GV_Y_MAP };

/* One node of a parsed document. Positions are 1-based, as editors show them.
 * For maps, keys[i] (always scalars) pairs with items[i]. Anchors and aliases
 * are resolved by copying the reference; merge keys are not supported. */
struct gv_ynode {
    enum gv_ynode_kind kind;
    int line;
    int col;
    char *scalar;            /* GV_Y_SCALAR: the text, NUL-terminated */
    bool quoted;             /* scalar was single/double quoted or block literal */
    size_t n;                /* number of items (and keys for maps) */
    struct gv_ynode **items; /* SEQ elements or MAP values */
    struct gv_ynode **keys;  /* MAP keys, NULL for SEQ */
};

/* A parsed document owns every node in it. */
struct gv_ydoc {
    char *path;            /* as given, used in error messages */
    struct gv_ynode *root; /* NULL for an empty document */
};

/* Error text ready to print: "file:line:col: message". */
struct gv_cfg_err {
    char msg[768];
};

/* Parse a file / a buffer. Syntax errors are GV_ECONFIG with err filled with
 * file:line:col. On success *out is owned by the caller (gv_ydoc_destroy). */
gv_rc gv_ydoc_load_file(const char *path, struct gv_ydoc **out, struct gv_cfg_err *err);
gv_rc gv_ydoc_load_buf(const char *name, const char *data, size_t len, struct gv_ydoc **out,
                       struct gv_cfg_err *err);
void gv_ydoc_destroy(struct gv_ydoc *doc);

/* Borrowed lookup of a map member; NULL when absent or node is not a map. */
const struct gv_ynode *gv_ynode_get(const struct gv_ynode *map, const char *key);
/* The key node of a map member (for positions of "unknown key" errors). */
const struct gv_ynode *gv_ynode_key(const struct gv_ynode *map, const char *key);
/* Kind name for messages: "scalar", "sequence", "mapping". */
const char *gv_ynode_kind_str(enum gv_ynode_kind kind);

/* Fills err with "path:line:col: <fmt>" for node (or 1:1 when node is NULL)
 * and returns GV_ECONFIG, so callers can `return gv_cfg_fail(...)`. */
gv_rc gv_cfg_fail(struct gv_cfg_err *err, const char *path, const struct gv_ynode *node,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
