/* gateway/gw_telemetry.c - request shape and opt-in redacted content for trace exporters */
/* SPDX-License-Identifier: Apache-2.0 */
#include "gateway/gw_telemetry.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include <json-c/json.h>

#include "core/gv_buf.h"
#include "core/gv_mem.h"
#include "gateway/gw_config.h"

#define JSON_DEPTH 64
/* Room kept for the array's punctuation, roles and the marker of the last text. */
#define SLACK 512u

struct telemetry_cfg {
    int content;
};

static const char *const content_values[] = {"none", "redacted", NULL};

static const struct gv_cfg_map telemetry_map[] = {
    {"content", GV_CFG_ENUM, offsetof(struct telemetry_cfg, content), "none", 0, content_values, 0,
     0,
     "`none`: events carry the message roles and count, never text. `redacted`: they also carry "
     "the messages exactly as forwarded upstream (after `pii-detector` and every other prompt "
     "policy) and the answer as returned to the client (after response policies), each capped "
     "at 28 KiB with a `[truncated by kt]` marker. A blocked prompt's text is never carried"},
    {NULL, 0, 0, NULL, 0, NULL, 0, 0, NULL},
};

const struct gv_cfg_map *gw_telemetry_config_map(void)
{
    return telemetry_map;
}

gv_rc gw_telemetry_config_load(struct gw_config *cfg, const struct gv_ynode *node,
                               struct gv_cfg_err *err)
{
    struct telemetry_cfg t;
    gv_rc rc;

    memset(&t, 0, sizeof(t));
    rc = gv_cfg_apply_in(telemetry_map, cfg->path, "telemetry", node, &t, err);
    if (rc) {
        return rc;
    }
    cfg->telemetry_content = t.content;
    return GV_OK;
}

void gw_telemetry_shape(struct gv_record *rec, struct json_object *body, struct json_object *msgs)
{
    struct json_object *m, *role;
    size_t i, n, len = 0;

    rec->nmessages = 0;
    rec->roles[0] = '\0';
    if (!msgs && (!body || !json_object_object_get_ex(body, "messages", &msgs))) {
        return;
    }
    if (!json_object_is_type(msgs, json_type_array)) {
        return;
    }
    n = json_object_array_length(msgs);
    rec->nmessages = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
    /* Straight into the record: this runs for every request, and a buffer of its
     * own cost an allocation each time. */
    for (i = 0; i < n; i++) {
        const char *r = "unknown";
        size_t rlen;
        m = json_object_array_get_idx(msgs, i);
        if (json_object_is_type(m, json_type_object) &&
            json_object_object_get_ex(m, "role", &role) &&
            json_object_is_type(role, json_type_string)) {
            r = json_object_get_string(role);
        }
        /* Roles are few known words; anything else is a client's own text. */
        if (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant") &&
            strcmp(r, "tool") && strcmp(r, "developer") && strcmp(r, "function")) {
            r = "unknown";
        }
        rlen = strlen(r);
        if (len + (i > 0) + rlen > sizeof(rec->roles) - 1) {
            break; /* whole roles only */
        }
        if (i > 0) {
            rec->roles[len++] = ',';
        }
        memcpy(rec->roles + len, r, rlen);
        len += rlen;
    }
    rec->roles[len] = '\0';
}

/* Length of the longest prefix of s[0..n) that is at most max bytes and does
 * not end inside a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t n, size_t max)
{
    size_t k;

    if (n <= max) {
        return n;
    }
    k = max;
    while (k > 0 && ((unsigned char)s[k] & 0xC0u) == 0x80u) {
        k--;
    }
    return k;
}

/* The text of a message's content: a string, or the "text" parts of an array. */
static void content_text(struct json_object *content, struct gv_buf *out)
{
    size_t i, n;

    if (json_object_is_type(content, json_type_string)) {
        (void)gv_buf_append(out, json_object_get_string(content),
                            (size_t)json_object_get_string_len(content));
        return;
    }
    if (!json_object_is_type(content, json_type_array)) {
        return;
    }
    n = json_object_array_length(content);
    for (i = 0; i < n; i++) {
        struct json_object *part = json_object_array_get_idx(content, i), *t;
        if (json_object_is_type(part, json_type_object) &&
            json_object_object_get_ex(part, "text", &t) &&
            json_object_is_type(t, json_type_string)) {
            (void)gv_buf_append(out, json_object_get_string(t),
                                (size_t)json_object_get_string_len(t));
        }
    }
}

/* Over the cap: each message as {"role","content"} with its text cut to what
 * is left of the budget; messages past the budget are left out. */
static char *messages_capped(struct json_object *msgs)
{
    struct json_object *arr = json_object_new_array();
    struct gv_buf text;
    size_t budget = GV_CONTENT_MAX - SLACK, i, n = json_object_array_length(msgs);
    char *out;

    gv_buf_init(&text, 0);
    for (i = 0; i < n && budget > 0; i++) {
        struct json_object *m = json_object_array_get_idx(msgs, i), *role = NULL, *c = NULL, *o;
        size_t keep;
        bool cut;

        if (!json_object_is_type(m, json_type_object)) {
            continue;
        }
        gv_buf_reset(&text);
        if (json_object_object_get_ex(m, "content", &c)) {
            content_text(c, &text);
        }
        keep = utf8_cut(text.data ? text.data : "", text.len, budget);
        cut = keep < text.len;
        o = json_object_new_object();
        json_object_object_get_ex(m, "role", &role);
        json_object_object_add(o, "role",
                               json_object_is_type(role, json_type_string)
                                   ? json_object_get(role)
                                   : json_object_new_string("unknown"));
        if (cut) {
            text.len = keep;
            (void)gv_buf_append_str(&text, GV_CONTENT_TRUNCATED);
        }
        json_object_object_add(
            o, "content", json_object_new_string_len(text.data ? text.data : "", (int)text.len));
        json_object_array_add(arr, o);
        /* Escapes can grow the text; the JSON-encoded length is what counts. */
        budget = budget > keep * 2 + 64 ? budget - keep * 2 - 64 : 0;
    }
    out = gv_strdup(json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN |
                                                            JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(arr);
    gv_buf_free(&text);
    if (strlen(out) > GV_CONTENT_MAX) {
        /* Pathological escaping: an empty list is better than a broken one. */
        gv_free(out);
        out = gv_strdup("[]");
    }
    return out;
}

void gw_telemetry_request(const struct gw_config *cfg, struct gv_record *rec, const char *body,
                          size_t len)
{
    struct json_tokener *tok;
    struct json_object *o = NULL, *msgs;
    const char *s;
    struct gv_content *c;

    if (!cfg || cfg->telemetry_content != GW_TELEMETRY_REDACTED || !body || len > INT32_MAX) {
        return;
    }
    gv_record_release(rec);
    tok = json_tokener_new_ex(JSON_DEPTH);
    if (tok) {
        o = json_tokener_parse_ex(tok, body, (int)len);
        json_tokener_free(tok);
    }
    c = gv_calloc(1, sizeof(*c));
    if (o && json_object_object_get_ex(o, "messages", &msgs) &&
        json_object_is_type(msgs, json_type_array)) {
        s = json_object_to_json_string_ext(msgs,
                                           JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        if (strlen(s) <= GV_CONTENT_MAX) {
            c->request = gv_strdup(s);
        }
        else {
            c->request = messages_capped(msgs);
            c->request_truncated = true;
        }
    }
    else {
        c->request = gv_strdup("[]");
    }
    c->response = gv_strdup("");
    rec->content = c;
    json_object_put(o);
}

void gw_telemetry_answer(const struct gw_config *cfg, struct gv_record *rec,
                         struct json_object *answer)
{
    struct json_object *choices, *ch, *msg = NULL, *content, *idx;
    struct gv_content *c = rec->content;
    size_t have, add, keep, cap = GV_CONTENT_MAX;
    const char *text;
    char *grown;

    if (!cfg || cfg->telemetry_content != GW_TELEMETRY_REDACTED || !c || c->response_truncated ||
        !answer || !json_object_object_get_ex(answer, "choices", &choices) ||
        !json_object_is_type(choices, json_type_array) || json_object_array_length(choices) < 1) {
        return;
    }
    ch = json_object_array_get_idx(choices, 0);
    if (!json_object_is_type(ch, json_type_object)) {
        return;
    }
    /* The first choice only: a stream's chunk may carry another one first. */
    if (json_object_object_get_ex(ch, "index", &idx) && json_object_get_int64(idx) != 0) {
        return;
    }
    if (!json_object_object_get_ex(ch, "message", &msg)) {
        json_object_object_get_ex(ch, "delta", &msg);
    }
    if (!msg || !json_object_object_get_ex(msg, "content", &content) ||
        !json_object_is_type(content, json_type_string)) {
        return;
    }
    text = json_object_get_string(content);
    add = (size_t)json_object_get_string_len(content);
    have = c->response ? c->response_len : 0;
    keep = have >= cap ? 0 : utf8_cut(text, add, cap - have);
    if (keep == 0 && add == 0) {
        return;
    }
    grown = gv_realloc(c->response, have + keep + sizeof(GV_CONTENT_TRUNCATED));
    memcpy(grown + have, text, keep);
    have += keep;
    if (keep < add) {
        memcpy(grown + have, GV_CONTENT_TRUNCATED, sizeof(GV_CONTENT_TRUNCATED) - 1);
        have += sizeof(GV_CONTENT_TRUNCATED) - 1;
        c->response_truncated = true;
    }
    grown[have] = '\0';
    c->response = grown;
    c->response_len = have;
}
