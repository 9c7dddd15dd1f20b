/* core/gv_trace.c - W3C trace context ids: derive, parse, format */
/* SPDX-License-Identifier: Apache-2.0 */
#include "core/gv_trace.h"

#include <string.h>

#include "core/gv_buf.h"
#include "core/gv_hash.h"

/* W3C ids may not be all zero: such an id gets its last byte set to 1. */
static void make_valid(uint8_t *id, size_t n)
{
    if (n > 0 && !gv_trace_id_valid(id, n)) {
        id[n - 1] = 1;
    }
}

void gv_trace_derive(const char *label, const void *seed, size_t seed_len, uint8_t *out, size_t n)
{
    uint8_t md[GV_SHA256_LEN];

    /* The label's NUL keeps ("ab", "c") and ("a", "bc") apart. On failure md is zero and
     * the validity fix below still gives a usable id. */
    (void)gv_sha256_2(label, strlen(label) + 1, seed, seed_len, md);
    if (n > GV_SHA256_LEN) {
        n = GV_SHA256_LEN;
    }
    memcpy(out, md, n);
    make_valid(out, n);
}

void gv_trace_derive_ids(const struct gv_record *rec, struct gv_trace_ids *ids)
{
    static const char label[] = "kt.ids";
    /* "<request id>/<start wall us>", built without printf. */
    char seed[sizeof(rec->request_id) + 1 + 24];
    size_t slen = strnlen(rec->request_id, sizeof(rec->request_id) - 1);
    uint8_t md[GV_SHA256_LEN];

    _Static_assert(sizeof(struct gv_trace_ids) == GV_SHA256_LEN, "ids are one SHA-256");
    memcpy(seed, rec->request_id, slen);
    seed[slen++] = '/';
    slen += gv_fmt_u64((unsigned long long)rec->start_wall_us, seed + slen);
    /* The label's NUL keeps it apart from the seed; on failure md is zero and
     * make_valid still gives usable ids. */
    (void)gv_sha256_2(label, sizeof(label), seed, slen, md);
    memcpy(ids->trace, md, sizeof(ids->trace));
    memcpy(ids->server, md + sizeof(ids->trace), sizeof(ids->server));
    memcpy(ids->client, md + sizeof(ids->trace) + sizeof(ids->server), sizeof(ids->client));
    make_valid(ids->trace, sizeof(ids->trace));
    make_valid(ids->server, sizeof(ids->server));
    make_valid(ids->client, sizeof(ids->client));
}

bool gv_trace_id_valid(const uint8_t *id, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (id[i]) {
            return true;
        }
    }
    return false;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1; /* upper case is invalid in traceparent */
}

static bool unhex(const char *s, uint8_t *out, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return false;
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

gv_rc gv_trace_parse(const char *value, uint8_t trace_id[GV_TRACE_ID_LEN],
                     uint8_t span_id[GV_SPAN_ID_LEN], uint8_t *flags)
{
    uint8_t ver, t[GV_TRACE_ID_LEN], s[GV_SPAN_ID_LEN], f;
    size_t len;

    if (!value) {
        return GV_EINVAL;
    }
    /* Bounded: nothing past one byte beyond the fixed part is read. */
    len = strnlen(value, GV_TRACEPARENT_LEN + 1);
    if (len < GV_TRACEPARENT_LEN || !unhex(value, &ver, 1) || ver == 0xff || value[2] != '-' ||
        value[35] != '-' || value[52] != '-' || !unhex(value + 3, t, sizeof(t)) ||
        !unhex(value + 36, s, sizeof(s)) || !unhex(value + 53, &f, 1)) {
        return GV_EINVAL;
    }
    if ((ver == 0 && len != GV_TRACEPARENT_LEN) ||
        (ver != 0 && len > GV_TRACEPARENT_LEN && value[GV_TRACEPARENT_LEN] != '-')) {
        return GV_EINVAL;
    }
    if (!gv_trace_id_valid(t, sizeof(t)) || !gv_trace_id_valid(s, sizeof(s))) {
        return GV_EINVAL;
    }
    memcpy(trace_id, t, sizeof(t));
    memcpy(span_id, s, sizeof(s));
    *flags = f;
    return GV_OK;
}

void gv_trace_format(const uint8_t trace_id[GV_TRACE_ID_LEN], const uint8_t span_id[GV_SPAN_ID_LEN],
                     uint8_t flags, char *out)
{
    out[0] = '0';
    out[1] = '0';
    out[2] = '-';
    gv_hex_encode(trace_id, GV_TRACE_ID_LEN, out + 3);
    out[35] = '-';
    gv_hex_encode(span_id, GV_SPAN_ID_LEN, out + 36);
    out[52] = '-';
    gv_hex_encode(&flags, 1, out + 53);
}
