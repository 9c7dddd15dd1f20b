/* core/gv_cfg.c - config maps: typed rows that fill a struct from a YAML mapping */
/* SPDX-License-Identifier: Apache-2.0 */
#include "core/gv_cfg.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/gv_mem.h"

/* ---- scalar parsers ---- */

static bool word_in(const char *s, const char *const *words)
{
    size_t i;

    for (i = 0; words[i]; i++) {
        if (strcasecmp(s, words[i]) == 0) {
            return true;
        }
    }
    return false;
}

bool gv_cfg_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", NULL};
    static const char *const no[] = {"false", "no", "off", NULL};

    if (!s) {
        return false;
    }
    if (word_in(s, yes)) {
        *out = true;
        return true;
    }
    if (word_in(s, no)) {
        *out = false;
        return true;
    }
    return false;
}

/* strtol and strtod skip leading blanks; a config value with them is a typo. */
static bool number_text(const char *s)
{
    return s && *s && !isspace((unsigned char)*s);
}

/* Whether strtol/strtod consumed all of s without a range error. */
static bool number_whole(const char *s, const char *end)
{
    return errno == 0 && end != s && *end == '\0';
}

bool gv_cfg_parse_long(const char *s, long *out)
{
    char *end = NULL;
    long v;

    if (!number_text(s)) {
        return false;
    }
    errno = 0;
    v = strtol(s, &end, 10);
    if (!number_whole(s, end)) {
        return false;
    }
    *out = v;
    return true;
}

bool gv_cfg_parse_double(const char *s, double *out)
{
    char *end = NULL;
    double v;

    if (!number_text(s)) {
        return false;
    }
    /* Only decimal notation: strtod would also take hex floats, "nan" and "inf". */
    if (strpbrk(s, "xXnN")) {
        return false;
    }
    errno = 0;
    v = strtod(s, &end);
    if (!number_whole(s, end) || !isfinite(v)) {
        return false;
    }
    *out = v;
    return true;
}

/* Reads "<digits>[.<digits>]" and returns the end, or NULL. The integer part
 * must fit in uint64; the fraction is kept separately so whole numbers stay exact. */
static const char *parse_decimal(const char *s, uint64_t *ip, double *frac)
{
    const char *p = s;
    double scale = 0.1;

    *ip = 0;
    *frac = 0.0;
    if (!isdigit((unsigned char)*p)) {
        return NULL;
    }
    while (isdigit((unsigned char)*p)) {
        unsigned d = (unsigned)(*p - '0');
        if (*ip > (UINT64_MAX - d) / 10) {
            return NULL;
        }
        *ip = *ip * 10 + d;
        p++;
    }
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p)) {
            return NULL;
        }
        while (isdigit((unsigned char)*p)) {
            *frac += scale * (*p - '0');
            scale /= 10;
            p++;
        }
    }
    return p;
}

/* ip*mult + frac*mult with overflow checks; false when it exceeds max. */
static bool scale_value(uint64_t ip, double frac, uint64_t mult, uint64_t max, uint64_t *out)
{
    uint64_t v;
    uint64_t f;

    if (mult && ip > max / mult) {
        return false;
    }
    v = ip * mult;
    f = (uint64_t)(frac * (double)mult);
    if (f > max - v) {
        return false;
    }
    *out = v + f;
    return true;
}

struct unit {
    const char *name;
    uint64_t mult;
};

/* Case-insensitive unit lookup after optional blanks; an empty unit is `plain`. */
static bool unit_find(const char *p, const struct unit *units, uint64_t plain, uint64_t *mult)
{
    size_t i;

    while (*p == ' ') {
        p++;
    }
    if (!*p) {
        *mult = plain;
        return true;
    }
    for (i = 0; units[i].name; i++) {
        if (strcasecmp(p, units[i].name) == 0) {
            *mult = units[i].mult;
            return true;
        }
    }
    return false;
}

/* "<decimal>[ ]<unit>" scaled to the unit's multiple, at most max; no unit
 * is a multiple of 1. whole_plain refuses a fraction without a unit. */
static bool parse_scaled(const char *s, const struct unit *units, bool whole_plain, uint64_t max,
                         uint64_t *out)
{
    const char *p;
    uint64_t ip;
    uint64_t mult;
    double frac;

    if (!s) {
        return false;
    }
    p = parse_decimal(s, &ip, &frac);
    if (!p || !unit_find(p, units, 1, &mult)) {
        return false;
    }
    if (whole_plain && mult == 1 && frac != 0.0) {
        return false;
    }
    return scale_value(ip, frac, mult, max, out);
}

bool gv_cfg_parse_size(const char *s, size_t *out)
{
    /* KB/MB/GB are decimal (SI) and KiB/MiB/GiB binary, as the units say; the
     * bare letters follow the nginx habit of meaning binary. */
    static const struct unit units[] = {
        {"b", 1},
        {"k", 1024ull},
        {"kb", 1000ull},
        {"kib", 1024ull},
        {"m", 1024ull * 1024},
        {"mb", 1000ull * 1000},
        {"mib", 1024ull * 1024},
        {"g", 1024ull * 1024 * 1024},
        {"gb", 1000ull * 1000 * 1000},
        {"gib", 1024ull * 1024 * 1024},
        {"t", 1024ull * 1024 * 1024 * 1024},
        {"tb", 1000ull * 1000 * 1000 * 1000},
        {"tib", 1024ull * 1024 * 1024 * 1024},
        {NULL, 0},
    };
    uint64_t v;

    /* A plain byte count with a fraction makes no sense. */
    if (!parse_scaled(s, units, true, SIZE_MAX, &v)) {
        return false;
    }
    *out = (size_t)v;
    return true;
}

bool gv_cfg_parse_duration_ms(const char *s, long *out)
{
    static const struct unit units[] = {
        {"ms", 1},      {"s", 1000},    {"sec", 1000}, {"m", 60000},
        {"min", 60000}, {"h", 3600000}, {NULL, 0},
    };
    uint64_t v;

    if (!parse_scaled(s, units, false, LONG_MAX, &v)) {
        return false;
    }
    *out = (long)v;
    return true;
}

/* ---- config maps ---- */

/* A plain empty, "~" or "null" scalar is YAML's null. */
static bool node_is_null(const struct gv_ynode *n)
{
    return n->kind == GV_Y_SCALAR && !n->quoted &&
           (n->scalar[0] == '\0' || strcmp(n->scalar, "~") == 0 ||
            strcasecmp(n->scalar, "null") == 0);
}

static const char *type_expect(enum gv_cfg_type type)
{
    switch (type) {
    case GV_CFG_BOOL:
        return "a boolean (true or false)";
    case GV_CFG_INT:
        return "an integer";
    case GV_CFG_DOUBLE:
        return "a number";
    case GV_CFG_STR:
        return "a string";
    case GV_CFG_ENUM:
        return "a string";
    case GV_CFG_STRLIST:
        return "a sequence of strings";
    case GV_CFG_NODE:
        return "a value";
    case GV_CFG_SIZE:
        return "a size (bytes, or e.g. 512KiB, 4MiB, 1GB)";
    case GV_CFG_DURATION:
        return "a duration (milliseconds, or e.g. 100ms, 30s, 5m)";
    }
    return "a value";
}

/* Appends item to buf[0..size), after sep unless it is the first; false once
 * it no longer fits (snprintf leaves a cut item then). */
static bool list_add(char *buf, size_t size, size_t *used, bool first, const char *sep,
                     const char *item)
{
    int n = snprintf(buf + *used, size - *used, "%s%s", first ? "" : sep, item);

    if (n < 0 || (size_t)n >= size - *used) {
        return false;
    }
    *used += (size_t)n;
    return true;
}

static void enum_list(const struct gv_cfg_map *row, char *buf, size_t size)
{
    size_t used = 0;
    size_t i;

    buf[0] = '\0';
    for (i = 0; row->enum_values && row->enum_values[i]; i++) {
        if (!list_add(buf, size, &used, i == 0, "|", row->enum_values[i])) {
            break;
        }
    }
}

static void key_list(const struct gv_cfg_map *map, char *buf, size_t size)
{
    size_t used = 0;
    size_t i;

    buf[0] = '\0';
    for (i = 0; map[i].key; i++) {
        if (!list_add(buf, size, &used, i == 0, ", ", map[i].key)) {
            break;
        }
    }
}

/* Whether v lies outside the row's [min, max]; a row whose min is not below its max has no
 * range. */
static bool out_of_range(const struct gv_cfg_map *row, double v)
{
    return row->min < row->max && (v < row->min || v > row->max);
}

/* Writes one scalar value (from the document or a row default) into ctx.
 * `node` is NULL for defaults and is used for positions otherwise. */
static gv_rc set_scalar(const struct gv_cfg_map *row, const char *path, const char *where,
                        const struct gv_ynode *node, const char *text, void *ctx,
                        struct gv_cfg_err *err)
{
    char *field = (char *)ctx + row->offset;
    char list[256];
    bool b;
    long l;
    double d;
    size_t sz;
    size_t i;

    switch (row->type) {
    case GV_CFG_BOOL:
        if (!gv_cfg_parse_bool(text, &b)) {
            goto bad;
        }
        *(bool *)field = b;
        return GV_OK;
    case GV_CFG_INT:
        if (!gv_cfg_parse_long(text, &l)) {
            goto bad;
        }
        if (out_of_range(row, (double)l)) {
            return gv_cfg_fail(err, path, node, "%s.%s: %ld is out of range [%g, %g]", where,
                               row->key, l, row->min, row->max);
        }
        *(long *)field = l;
        return GV_OK;
    case GV_CFG_DOUBLE:
        if (!gv_cfg_parse_double(text, &d)) {
            goto bad;
        }
        if (out_of_range(row, d)) {
            return gv_cfg_fail(err, path, node, "%s.%s: %g is out of range [%g, %g]", where,
                               row->key, d, row->min, row->max);
        }
        *(double *)field = d;
        return GV_OK;
    case GV_CFG_STR:
        *(const char **)field = text;
        return GV_OK;
    case GV_CFG_ENUM:
        for (i = 0; row->enum_values && row->enum_values[i]; i++) {
            if (strcmp(text, row->enum_values[i]) == 0) {
                *(int *)field = (int)i;
                return GV_OK;
            }
        }
        enum_list(row, list, sizeof(list));
        return gv_cfg_fail(err, path, node, "%s.%s: expected one of %s, got '%.100s'", where,
                           row->key, list, text);
    case GV_CFG_SIZE:
        if (!gv_cfg_parse_size(text, &sz)) {
            goto bad;
        }
        if (out_of_range(row, (double)sz)) {
            return gv_cfg_fail(err, path, node, "%s.%s: %zu bytes is out of range [%g, %g]", where,
                               row->key, sz, row->min, row->max);
        }
        *(size_t *)field = sz;
        return GV_OK;
    case GV_CFG_DURATION:
        if (!gv_cfg_parse_duration_ms(text, &l)) {
            goto bad;
        }
        if (out_of_range(row, (double)l)) {
            return gv_cfg_fail(err, path, node, "%s.%s: %ld ms is out of range [%g, %g]", where,
                               row->key, l, row->min, row->max);
        }
        *(long *)field = l;
        return GV_OK;
    case GV_CFG_STRLIST:
    case GV_CFG_NODE:
        break;
    }
    return GV_OK;
bad:
    return gv_cfg_fail(err, path, node, "%s.%s: expected %s, got '%.100s'", where, row->key,
                       type_expect(row->type), text);
}

static gv_rc set_strlist(const struct gv_cfg_map *row, const char *path, const char *where,
                         const struct gv_ynode *node, void *ctx, struct gv_cfg_err *err)
{
    struct gv_cfg_strlist *l = (struct gv_cfg_strlist *)((char *)ctx + row->offset);
    size_t i;

    if (node->kind != GV_Y_SEQ) {
        return gv_cfg_fail(err, path, node, "%s.%s: expected a sequence of strings, got a %s",
                           where, row->key,
                           node_is_null(node) ? "null" : gv_ynode_kind_str(node->kind));
    }
    for (i = 0; i < node->n; i++) {
        const struct gv_ynode *it = node->items[i];
        if (it->kind != GV_Y_SCALAR || node_is_null(it)) {
            return gv_cfg_fail(err, path, it, "%s.%s[%zu]: expected a string, got a %s", where,
                               row->key, i,
                               it->kind == GV_Y_SCALAR ? "null" : gv_ynode_kind_str(it->kind));
        }
    }
    /* A key given twice cannot happen (the parser rejects it), so l is empty. */
    l->n = node->n;
    l->items = node->n ? gv_calloc(node->n, sizeof(*l->items)) : NULL;
    l->nodes = node->n ? gv_calloc(node->n, sizeof(*l->nodes)) : NULL;
    for (i = 0; i < node->n; i++) {
        l->items[i] = node->items[i]->scalar;
        l->nodes[i] = node->items[i];
    }
    return GV_OK;
}

static gv_rc set_value(const struct gv_cfg_map *row, const char *path, const char *where,
                       const struct gv_ynode *node, void *ctx, struct gv_cfg_err *err)
{
    if (row->type == GV_CFG_NODE) {
        *(const struct gv_ynode **)((char *)ctx + row->offset) = node;
        return GV_OK;
    }
    if (row->type == GV_CFG_STRLIST) {
        return set_strlist(row, path, where, node, ctx, err);
    }
    if (node->kind != GV_Y_SCALAR) {
        char list[256];
        if (row->type == GV_CFG_ENUM) {
            enum_list(row, list, sizeof(list));
            return gv_cfg_fail(err, path, node, "%s.%s: expected one of %s, got a %s", where,
                               row->key, list, gv_ynode_kind_str(node->kind));
        }
        return gv_cfg_fail(err, path, node, "%s.%s: expected %s, got a %s", where, row->key,
                           type_expect(row->type), gv_ynode_kind_str(node->kind));
    }
    if (node_is_null(node)) {
        return gv_cfg_fail(err, path, node, "%s.%s: expected %s, got null", where, row->key,
                           row->type == GV_CFG_ENUM ? "a value" : type_expect(row->type));
    }
    return set_scalar(row, path, where, node, node->scalar, ctx, err);
}

gv_rc gv_cfg_apply_in(const struct gv_cfg_map *map, const char *path, const char *where,
                      const struct gv_ynode *mapping, void *ctx, struct gv_cfg_err *err)
{
    struct gv_cfg_err scratch;
    const struct gv_ynode *val;
    char keys[512];
    size_t i;
    size_t r;
    gv_rc rc = GV_OK;

    if (!err) {
        err = &scratch;
    }
    if (!where) {
        where = "settings";
    }
    if (mapping && node_is_null(mapping)) {
        mapping = NULL;
    }
    if (mapping && mapping->kind != GV_Y_MAP) {
        rc = gv_cfg_fail(err, path, mapping, "%s: expected a mapping, got a %s", where,
                         gv_ynode_kind_str(mapping->kind));
        goto out;
    }
    if (mapping) {
        for (i = 0; i < mapping->n; i++) {
            const char *k = mapping->keys[i]->scalar;
            for (r = 0; map && map[r].key; r++) {
                if (strcmp(map[r].key, k) == 0) {
                    break;
                }
            }
            if (!map || !map[r].key) {
                if (map && map[0].key) {
                    key_list(map, keys, sizeof(keys));
                    rc = gv_cfg_fail(err, path, mapping->keys[i],
                                     "unknown key '%.100s' in %s (expected one of: %s)", k, where,
                                     keys);
                }
                else {
                    rc = gv_cfg_fail(err, path, mapping->keys[i],
                                     "unknown key '%.100s' in %s (it takes no settings)", k, where);
                }
                goto out;
            }
        }
    }
    for (r = 0; map && map[r].key; r++) {
        const struct gv_cfg_map *row = &map[r];
        val = gv_ynode_get(mapping, row->key);
        if (val) {
            rc = set_value(row, path, where, val, ctx, err);
        }
        else if (row->flags & GV_CFG_REQUIRED) {
            rc = gv_cfg_fail(err, path, mapping, "%s: missing required key '%s'", where, row->key);
        }
        else if (row->def && row->type != GV_CFG_NODE && row->type != GV_CFG_STRLIST) {
            /* Defaults are program text: a bad one is reported like user input so
             * the mistake is visible in the first test that loads the map. */
            rc = set_scalar(row, path, where, mapping, row->def, ctx, err);
        }
        if (rc) {
            goto out;
        }
    }
out:
    if (rc) {
        gv_cfg_release(map, ctx);
    }
    return rc;
}

gv_rc gv_cfg_apply(const struct gv_cfg_map *map, const char *path, const struct gv_ynode *mapping,
                   void *ctx, struct gv_cfg_err *err)
{
    return gv_cfg_apply_in(map, path, NULL, mapping, ctx, err);
}

void gv_cfg_release(const struct gv_cfg_map *map, void *ctx)
{
    size_t r;

    if (!map || !ctx) {
        return;
    }
    for (r = 0; map[r].key; r++) {
        if (map[r].type == GV_CFG_STRLIST) {
            struct gv_cfg_strlist *l = (struct gv_cfg_strlist *)((char *)ctx + map[r].offset);
            gv_free((void *)l->items);
            gv_free((void *)l->nodes);
            l->items = NULL;
            l->nodes = NULL;
            l->n = 0;
        }
    }
}
