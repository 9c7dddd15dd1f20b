/* core/gv_cfg.h - config maps: typed rows that fill a struct from a YAML mapping */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GV_CFG_H
#define GV_CFG_H

#include <stdbool.h>
#include <stddef.h>

#include "core/gv_rc.h"
#include "core/gv_yaml.h"

enum gv_cfg_type {
    GV_CFG_BOOL,    /* bool field; true/false (yes/no/on/off accepted) */
    GV_CFG_INT,     /* long field; integer within [min, max] */
    GV_CFG_DOUBLE,  /* double field; number within [min, max] */
    GV_CFG_STR,     /* char * field; any scalar; points into the document */
    GV_CFG_ENUM,    /* int field; index into enum_values */
    GV_CFG_STRLIST, /* struct gv_cfg_strlist field; scalar sequence */
    GV_CFG_NODE,    /* const struct gv_ynode * field; any node, checked by the owner */
    GV_CFG_SIZE,    /* size_t field; integer bytes or "4MiB", "512KiB", "1GB" */
    GV_CFG_DURATION /* long field in milliseconds; integer ms or "30s", "100ms", "5m" */
};

#define GV_CFG_REQUIRED 0x1u

struct gv_cfg_strlist {
    size_t n;
    const char **items;            /* point into the document; array owned by the map */
    const struct gv_ynode **nodes; /* each item's node, for positioned errors */
};

/* One row: the key in YAML, its type, where it goes in the ctx struct. `def`
 * is the default as YAML text (NULL: leave zero). A row with key NULL ends a map. */
struct gv_cfg_map {
    const char *key;
    enum gv_cfg_type type;
    size_t offset;
    const char *def;
    unsigned flags;
    const char *const *enum_values; /* NULL-terminated, for GV_CFG_ENUM */
    double min;                     /* for INT/DOUBLE when min < max */
    double max;
    const char *help; /* Meaning in the generated docs (internals/conventions.md) */
};

/* Fill ctx from `mapping` (may be NULL: defaults only). Unknown keys, wrong
 * types, values out of range or not in enum_values, and missing REQUIRED keys are
 * GV_ECONFIG with err = "path:line:col: ...". Strings and lists point into the
 * document, which must outlive ctx; lists are allocated and freed by
 * gv_cfg_release(map, ctx). */
gv_rc gv_cfg_apply(const struct gv_cfg_map *map, const char *path, const struct gv_ynode *mapping,
                   void *ctx, struct gv_cfg_err *err);
/* Same, naming the mapping in messages: `where` is e.g. "policy.pii-detector"
 * (NULL: "settings"), giving "unknown key 'x' in policy.pii-detector (...)". */
gv_rc gv_cfg_apply_in(const struct gv_cfg_map *map, const char *path, const char *where,
                      const struct gv_ynode *mapping, void *ctx, struct gv_cfg_err *err);
void gv_cfg_release(const struct gv_cfg_map *map, void *ctx);

/* Scalar parsers shared with hand-written config code. */
bool gv_cfg_parse_bool(const char *s, bool *out);
bool gv_cfg_parse_long(const char *s, long *out);
bool gv_cfg_parse_double(const char *s, double *out);
bool gv_cfg_parse_size(const char *s, size_t *out);
bool gv_cfg_parse_duration_ms(const char *s, long *out);

#endif
