/* exporters/otlp/otlp_pb.c - building OTLP protobuf-c messages: arena, attributes, packing */
/* SPDX-License-Identifier: Apache-2.0 */
#include "exporters/otlp/otlp_pb.h"

#include <string.h>

#include "core/gv_mem.h"

#define CHUNK_MIN (64u * 1024u)

struct ex_otlp_chunk {
    struct ex_otlp_chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

void *ex_otlp_alloc(struct ex_otlp_arena *a, size_t n)
{
    struct ex_otlp_chunk *c = a->head;
    size_t need = (n + 15u) & ~(size_t)15u;
    void *p;

    if (!c || c->cap - c->used < need) {
        size_t cap = need > CHUNK_MIN ? need : CHUNK_MIN;
        c = gv_malloc(sizeof(*c) + cap);
        c->used = 0;
        c->cap = cap;
        c->next = a->head;
        a->head = c;
    }
    p = c->data + c->used;
    c->used += need;
    memset(p, 0, n);
    return p;
}

char *ex_otlp_strdup(struct ex_otlp_arena *a, const char *s)
{
    size_t n = strlen(s);
    char *d = ex_otlp_alloc(a, n + 1);

    memcpy(d, s, n);
    return d;
}

void ex_otlp_arena_free(struct ex_otlp_arena *a)
{
    while (a->head) {
        struct ex_otlp_chunk *n = a->head->next;
        gv_free(a->head);
        a->head = n;
    }
}

void ex_otlp_attrs_init(struct ex_otlp_arena *a, struct ex_otlp_attrs *at, size_t cap)
{
    at->v = ex_otlp_alloc(a, cap * sizeof(*at->v));
    at->n = 0;
    at->cap = cap;
}

/* protobuf-c wants char * even for fields it only reads. */
static char *str_in(const char *s)
{
    return (char *)(uintptr_t)s;
}

/* A new attribute key holding a value of kind vc; NULL when at is full. */
static Kt__Otlp__V1__AnyValue *add(struct ex_otlp_arena *a, struct ex_otlp_attrs *at,
                                   const char *key, Kt__Otlp__V1__AnyValue__ValueCase vc)
{
    ex_otlp_kv_pb *kv;
    Kt__Otlp__V1__AnyValue *v;

    if (at->n >= at->cap) {
        return NULL;
    }
    kv = ex_otlp_alloc(a, sizeof(*kv));
    v = ex_otlp_alloc(a, sizeof(*v));
    kt__otlp__v1__key_value__init(kv);
    kt__otlp__v1__any_value__init(v);
    v->value_case = vc;
    kv->key = str_in(key);
    kv->value = v;
    at->v[at->n++] = kv;
    return v;
}

void ex_otlp_attr_str(struct ex_otlp_arena *a, struct ex_otlp_attrs *at, const char *key,
                      const char *s)
{
    Kt__Otlp__V1__AnyValue *v = add(a, at, key, KT__OTLP__V1__ANY_VALUE__VALUE_STRING_VALUE);

    if (v) {
        v->string_value = str_in(s);
    }
}

void ex_otlp_attr_str_set(struct ex_otlp_arena *a, struct ex_otlp_attrs *at, const char *key,
                          const char *s)
{
    if (s[0]) {
        ex_otlp_attr_str(a, at, key, s);
    }
}

void ex_otlp_attr_int(struct ex_otlp_arena *a, struct ex_otlp_attrs *at, const char *key,
                      int64_t val)
{
    Kt__Otlp__V1__AnyValue *v = add(a, at, key, KT__OTLP__V1__ANY_VALUE__VALUE_INT_VALUE);

    if (v) {
        v->int_value = val;
    }
}

void ex_otlp_attr_double(struct ex_otlp_arena *a, struct ex_otlp_attrs *at, const char *key,
                         double val)
{
    Kt__Otlp__V1__AnyValue *v = add(a, at, key, KT__OTLP__V1__ANY_VALUE__VALUE_DOUBLE_VALUE);

    if (v) {
        v->double_value = val;
    }
}

void ex_otlp_attr_bool(struct ex_otlp_arena *a, struct ex_otlp_attrs *at, const char *key, bool val)
{
    Kt__Otlp__V1__AnyValue *v = add(a, at, key, KT__OTLP__V1__ANY_VALUE__VALUE_BOOL_VALUE);

    if (v) {
        v->bool_value = val;
    }
}

void ex_otlp_attr_csv(struct ex_otlp_arena *a, struct ex_otlp_attrs *at, const char *key,
                      const char *csv)
{
    Kt__Otlp__V1__AnyValue *v = add(a, at, key, KT__OTLP__V1__ANY_VALUE__VALUE_ARRAY_VALUE);
    Kt__Otlp__V1__ArrayValue *arr;
    char *copy, *p, *comma;
    size_t n = 1, i = 0;

    if (!v) {
        return;
    }
    for (p = str_in(csv); *p; p++) {
        n += *p == ',';
    }
    arr = ex_otlp_alloc(a, sizeof(*arr));
    kt__otlp__v1__array_value__init(arr);
    arr->values = ex_otlp_alloc(a, n * sizeof(*arr->values));
    copy = ex_otlp_strdup(a, csv);
    for (p = copy; p && i < n; p = comma ? comma + 1 : NULL) {
        Kt__Otlp__V1__AnyValue *e = ex_otlp_alloc(a, sizeof(*e));
        comma = strchr(p, ',');
        if (comma) {
            *comma = '\0';
        }
        kt__otlp__v1__any_value__init(e);
        e->value_case = KT__OTLP__V1__ANY_VALUE__VALUE_STRING_VALUE;
        e->string_value = p;
        arr->values[i++] = e;
    }
    arr->n_values = i;
    v->array_value = arr;
}

Kt__Otlp__V1__Resource *ex_otlp_resource_pb(struct ex_otlp_arena *a,
                                            const struct ex_otlp_resource *res)
{
    Kt__Otlp__V1__Resource *r = ex_otlp_alloc(a, sizeof(*r));
    struct ex_otlp_attrs at;
    size_t i;

    kt__otlp__v1__resource__init(r);
    ex_otlp_attrs_init(a, &at, res->n);
    for (i = 0; i < res->n; i++) {
        ex_otlp_attr_str(a, &at, res->kv[i].key, res->kv[i].value);
    }
    r->attributes = at.v;
    r->n_attributes = at.n;
    return r;
}

Kt__Otlp__V1__InstrumentationScope *ex_otlp_scope_pb(struct ex_otlp_arena *a)
{
    Kt__Otlp__V1__InstrumentationScope *s = ex_otlp_alloc(a, sizeof(*s));

    kt__otlp__v1__instrumentation_scope__init(s);
    s->name = str_in("kt");
    s->version = str_in(KT_VERSION);
    return s;
}

gv_rc ex_otlp_pack(const ProtobufCMessage *msg, struct gv_buf *out)
{
    size_t n = protobuf_c_message_get_packed_size(msg), mark = out->len;
    char *scratch;

    /* One flat pack into memory sized once: packing to a ProtobufCBuffer costs a call per
     * field, and this body has tens of fields per span. */
    scratch = gv_malloc(n ? n : 1);
    if (protobuf_c_message_pack(msg, (uint8_t *)scratch) != n) {
        gv_free(scratch);
        return GV_EIO;
    }
    if (gv_buf_append(out, scratch, n) != GV_OK) {
        gv_buf_truncate(out, mark);
        gv_free(scratch);
        return GV_E2BIG;
    }
    gv_free(scratch);
    return GV_OK;
}
