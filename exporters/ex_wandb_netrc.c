/* exporters/ex_wandb_netrc.c - rewrite one machine's entry in a netrc file's text */
/* SPDX-License-Identifier: Apache-2.0 */
#include "exporters/ex_wandb_netrc.h"

#include <string.h>

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* A value netrc can hold as one bare token. */
static bool token_ok(const char *s)
{
    if (!s || !*s) {
        return false;
    }
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c == 0x7f || c == '"') {
            return false;
        }
    }
    return true;
}

struct lex {
    const char *p;
    size_t len;
    size_t pos;
};

/* The next token's [start, end) outside comments; false at the end. */
static bool next_token(struct lex *lx, size_t *start, size_t *end)
{
    for (;;) {
        while (lx->pos < lx->len && is_space(lx->p[lx->pos])) {
            lx->pos++;
        }
        if (lx->pos >= lx->len) {
            return false;
        }
        if (lx->p[lx->pos] != '#') {
            break;
        }
        /* A comment runs to the end of its line. */
        while (lx->pos < lx->len && lx->p[lx->pos] != '\n') {
            lx->pos++;
        }
    }
    *start = lx->pos;
    while (lx->pos < lx->len && !is_space(lx->p[lx->pos])) {
        lx->pos++;
    }
    *end = lx->pos;
    return true;
}

static bool tok_is(const struct lex *lx, size_t s, size_t e, const char *word)
{
    size_t n = strlen(word);
    return e - s == n && memcmp(lx->p + s, word, n) == 0;
}

/* A macdef's body runs to the first empty line. */
static void skip_macdef_body(struct lex *lx)
{
    while (lx->pos < lx->len && lx->p[lx->pos] != '\n') {
        lx->pos++;
    }
    while (lx->pos < lx->len) {
        if (lx->p[lx->pos] == '\n' && lx->pos + 1 < lx->len && lx->p[lx->pos + 1] == '\n') {
            lx->pos += 1;
            return;
        }
        lx->pos++;
    }
}

static gv_rc put_entry(struct gv_buf *out, const char *host, const char *login,
                       const char *password)
{
    return gv_buf_appendf(out, "machine %s\n  login %s\n  password %s\n", host, login, password);
}

gv_rc ex_wandb_netrc_edit(const char *in, size_t len, const char *host, const char *login,
                          const char *password, struct gv_buf *out, bool *found)
{
    struct lex lx = {in ? in : "", in ? len : 0, 0};
    size_t s, e, copied = 0;
    size_t ent_start = 0, ent_end = 0;
    bool in_ent = false;   /* inside an entry for host */
    bool replaced = false; /* the new entry is written */
    gv_rc rc = GV_OK;

    *found = false;
    gv_buf_reset(out);
    if (!token_ok(host) || (password && (!token_ok(login) || !token_ok(password)))) {
        return GV_EINVAL;
    }
    for (;;) {
        bool more = next_token(&lx, &s, &e);
        bool starts = more && (tok_is(&lx, s, e, "machine") || tok_is(&lx, s, e, "default") ||
                               tok_is(&lx, s, e, "macdef"));

        if (in_ent && (starts || !more)) {
            /* The entry ends after its last token and the rest of that line. */
            size_t limit = more ? s : lx.len;
            while (ent_end < limit && lx.p[ent_end] != '\n' && is_space(lx.p[ent_end])) {
                ent_end++;
            }
            if (ent_end < limit && lx.p[ent_end] == '\n') {
                ent_end++;
            }
            rc = gv_buf_append(out, lx.p + copied, ent_start - copied);
            if (!rc && password && !replaced) {
                rc = put_entry(out, host, login, password);
                replaced = true;
            }
            if (rc) {
                return rc;
            }
            copied = ent_end;
            in_ent = false;
        }
        if (!more) {
            break;
        }
        if (in_ent) {
            ent_end = e;
        }
        if (tok_is(&lx, s, e, "login") || tok_is(&lx, s, e, "password") ||
            tok_is(&lx, s, e, "account")) {
            /* The value is data, even when it reads "machine". */
            size_t vs, ve;
            if (next_token(&lx, &vs, &ve) && in_ent) {
                ent_end = ve;
            }
        }
        else if (tok_is(&lx, s, e, "machine")) {
            size_t hs, he;
            if (!next_token(&lx, &hs, &he)) {
                break;
            }
            if (he - hs == strlen(host) && memcmp(lx.p + hs, host, he - hs) == 0) {
                in_ent = true;
                *found = true;
                ent_start = s;
                ent_end = he;
            }
        }
        else if (tok_is(&lx, s, e, "macdef")) {
            skip_macdef_body(&lx);
        }
    }
    rc = gv_buf_append(out, lx.p + copied, lx.len - copied);
    if (!rc && password && !replaced) {
        if (out->len && out->data[out->len - 1] != '\n') {
            rc = gv_buf_append_char(out, '\n');
        }
        if (!rc) {
            rc = put_entry(out, host, login, password);
        }
    }
    return rc;
}
