/* exporters/otlp/otlp_pb.h - building OTLP protobuf-c messages: arena, attributes, packing */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef EX_OTLP_PB_H
#define EX_OTLP_PB_H

#include <stddef.h>
#include <stdint.h>

#include "core/gv_buf.h"
#include "core/gv_rc.h"
#include "exporters/otlp/otlp.h"
#include "exporters/otlp/otlp.pb-c.h"

typedef Kt__Otlp__V1__KeyValue ex_otlp_kv_pb;

/* Everything one request body is built from; freed at once. */
struct ex_otlp_arena {
    struct ex_otlp_chunk *head;
};

/* Zeroed memory that lives until ex_otlp_arena_free. Aborts on exhaustion, like gv_malloc. */
void *ex_otlp_alloc(struct ex_otlp_arena *a, size_t n);
char *ex_otlp_strdup(struct ex_otlp_arena *a, const char *s);
void ex_otlp_arena_free(struct ex_otlp_arena *a);

/* A fixed-capacity attribute list; adds past cap are ignored. */
struct ex_otlp_attrs {
    ex_otlp_kv_pb **v;
    size_t n, cap;
};

void ex_otlp_attrs_init(struct ex_otlp_arena *a, struct ex_otlp_attrs *at, size_t cap);
/* key and s are referenced, not copied: they must outlive the arena's use. */
void ex_otlp_attr_str(struct ex_otlp_arena *a, struct ex_otlp_attrs *at, const char *key,
                      const char *s);
/* Same, but only when s is not empty: a record's unset text fields add no attribute. */
void ex_otlp_attr_str_set(struct ex_otlp_arena *a, struct ex_otlp_attrs *at, const char *key,
                          const char *s);
void ex_otlp_attr_int(struct ex_otlp_arena *a, struct ex_otlp_attrs *at, const char *key,
                      int64_t v);
void ex_otlp_attr_double(struct ex_otlp_arena *a, struct ex_otlp_attrs *at, const char *key,
                         double v);
void ex_otlp_attr_bool(struct ex_otlp_arena *a, struct ex_otlp_attrs *at, const char *key, bool v);
/* A string array from a comma-separated list (copied into the arena). */
void ex_otlp_attr_csv(struct ex_otlp_arena *a, struct ex_otlp_attrs *at, const char *key,
                      const char *csv);

/* The Resource message for res. */
Kt__Otlp__V1__Resource *ex_otlp_resource_pb(struct ex_otlp_arena *a,
                                            const struct ex_otlp_resource *res);
/* The InstrumentationScope kt reports as ("kt", its version). */
Kt__Otlp__V1__InstrumentationScope *ex_otlp_scope_pb(struct ex_otlp_arena *a);

/* Appends msg's encoding to out. */
gv_rc ex_otlp_pack(const ProtobufCMessage *msg, struct gv_buf *out);

#endif
