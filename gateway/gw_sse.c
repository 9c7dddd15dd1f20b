/* gateway/gw_sse.c - incremental server-sent-events parser for upstream streams */
/* SPDX-License-Identifier: Apache-2.0 */
#include "gateway/gw_sse.h"

#include <string.h>

#define SSE_DEFAULT_MAX (1024u * 1024u)

void gw_sse_init(struct gw_sse *p, size_t max_event)
{
    if (max_event == 0) {
        max_event = SSE_DEFAULT_MAX;
    }
    gv_buf_init(&p->raw, max_event);
    gv_buf_init(&p->data, max_event);
    gv_buf_init(&p->name, max_event);
    p->line_start = 0;
    p->has_data = false;
    p->cr = false;
    p->failed = false;
}

void gw_sse_free(struct gw_sse *p)
{
    gv_buf_free(&p->raw);
    gv_buf_free(&p->data);
    gv_buf_free(&p->name);
}

static void reset_event(struct gw_sse *p)
{
    gv_buf_reset(&p->raw);
    gv_buf_reset(&p->data);
    gv_buf_reset(&p->name);
    p->line_start = 0;
    p->has_data = false;
}

/* OpenAI's end marker: data exactly "[DONE]". */
static bool is_done(const struct gw_sse_event *ev)
{
    return ev->has_data && ev->data_len == 6 && memcmp(ev->data, "[DONE]", 6) == 0;
}

/* A field line (no terminator, not a comment): the name is up to the first
 * colon, the value after it less one leading space; no colon, all name. */
static void split_field(const char *line, size_t n, size_t *flen, const char **val, size_t *vlen)
{
    const char *colon = memchr(line, ':', n);

    *flen = colon ? (size_t)(colon - line) : n;
    *val = colon ? colon + 1 : line + n;
    *vlen = (size_t)(line + n - *val);
    if (*vlen > 0 && (*val)[0] == ' ') {
        (*val)++;
        (*vlen)--;
    }
}

static bool field_is(const char *line, size_t flen, const char *name, size_t nlen)
{
    return flen == nlen && memcmp(line, name, nlen) == 0;
}

static gv_rc dispatch(struct gw_sse *p, gw_sse_fn fn, void *arg)
{
    struct gw_sse_event ev;
    gv_rc rc;

    ev.data = p->data.data ? p->data.data : "";
    ev.data_len = p->data.len;
    ev.has_data = p->has_data;
    ev.name = p->name.data ? p->name.data : "";
    ev.raw = p->raw.data ? p->raw.data : "";
    ev.raw_len = p->raw.len;
    ev.done = is_done(&ev);
    rc = fn(arg, &ev);
    reset_event(p);
    return rc;
}

/* The line is raw[line_start..] minus its terminator. Only data: and event:
 * matter to a proxy; id: and retry: stay in the raw bytes. */
static gv_rc end_line(struct gw_sse *p, gw_sse_fn fn, void *arg)
{
    const char *line = p->raw.data + p->line_start;
    size_t n = p->raw.len - p->line_start;
    const char *val;
    size_t flen, vlen;
    gv_rc rc = GV_OK;

    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) {
        n--;
    }
    if (n == 0) {
        return dispatch(p, fn, arg);
    }
    p->line_start = p->raw.len;
    if (line[0] == ':') {
        return GV_OK;
    }
    split_field(line, n, &flen, &val, &vlen);
    if (field_is(line, flen, "data", 4)) {
        if (p->has_data) {
            rc = gv_buf_append_char(&p->data, '\n');
        }
        if (rc == GV_OK) {
            rc = gv_buf_append(&p->data, val, vlen);
        }
        p->has_data = true;
    }
    else if (field_is(line, flen, "event", 5)) {
        gv_buf_reset(&p->name);
        rc = gv_buf_append(&p->name, val, vlen);
    }
    return rc;
}

/* An event that stands whole in buf[i..len) while nothing of an earlier one is
 * held is reported from buf itself: no copy into raw and data. Only the shape
 * OpenAI-style streams have, lines ended by \n alone, at most one data line,
 * no event line; anything else (a \r, a second data line, an event name, an
 * event cut by the end of buf, one over max_event) returns false with nothing
 * done, and the copying path below takes it byte for byte the same way.
 * cr_at is where the first \r at or after i is (len: none).
 * On true, *end is the index after the event and *rc the callback's answer. */
static bool event_in_place(struct gw_sse *p, const char *buf, size_t i, size_t len, size_t cr_at,
                           gw_sse_fn fn, void *arg, size_t *end, gv_rc *rc)
{
    struct gw_sse_event ev;
    size_t at = i, max = p->raw.max ? p->raw.max : SSE_DEFAULT_MAX;
    size_t stop = len - i > max ? i + max : len;

    memset(&ev, 0, sizeof(ev));
    ev.data = "";
    ev.name = "";
    while (at < stop) {
        const char *line = buf + at;
        const char *nl = memchr(line, '\n', stop - at);
        const char *val;
        size_t n, flen, vlen;

        if (!nl) {
            return false; /* cut short, or over max_event: the copying path decides */
        }
        n = (size_t)(nl - line);
        if (cr_at < at + n) {
            return false; /* the line holds a \r (none lies between i and at) */
        }
        at += n + 1;
        if (n == 0) {
            ev.raw = buf + i;
            ev.raw_len = at - i;
            ev.done = is_done(&ev);
            *end = at;
            *rc = fn(arg, &ev);
            return true;
        }
        if (line[0] == ':') {
            continue;
        }
        split_field(line, n, &flen, &val, &vlen);
        if (field_is(line, flen, "data", 4)) {
            if (ev.has_data) {
                return false; /* two data: lines are joined with \n: a copy */
            }
            ev.has_data = true;
            ev.data = val;
            ev.data_len = vlen;
        }
        else if (field_is(line, flen, "event", 5)) {
            return false; /* a name to keep, NUL-terminated: the copying path */
        }
    }
    return false;
}

/* Where the first \r at or after `from` is in buf[0..len), or len. */
static size_t next_cr(const char *buf, size_t from, size_t len)
{
    const char *cr = memchr(buf + from, '\r', len - from);

    return cr ? (size_t)(cr - buf) : len;
}

gv_rc gw_sse_feed(struct gw_sse *p, const char *buf, size_t len, gw_sse_fn fn, void *arg)
{
    size_t i = 0, j, cr_at;
    gv_rc rc = GV_OK;

    if (p->failed) {
        return GV_EPROTO;
    }
    /* Where the next \r is, looked for once a read rather than once a line: OpenAI's
     * streams end lines with \n alone, so one pass says no line of the read has one.
     * It is looked for again only once the parser has passed it. */
    cr_at = next_cr(buf, 0, len);
    while (i < len && rc == GV_OK) {
        if (p->raw.len == 0 && !p->cr) {
            if (cr_at < i) {
                cr_at = next_cr(buf, i, len);
            }
            if (event_in_place(p, buf, i, len, cr_at, fn, arg, &j, &rc)) {
                i = j;
                continue;
            }
        }
        if (p->cr) {
            /* A \r ended the last line; a \n right after it is part of it. */
            p->cr = false;
            if (buf[i] == '\n') {
                rc = gv_buf_append_char(&p->raw, '\n');
                i++;
            }
            if (rc == GV_OK) {
                rc = end_line(p, fn, arg);
            }
            continue;
        }
        {
            /* Two memchr (vectorised in libc) instead of a byte loop: events are
             * long JSON lines and this runs for every byte of every stream. */
            const char *nl = memchr(buf + i, '\n', len - i);
            const char *cr = memchr(buf + i, '\r', (nl ? (size_t)(nl - buf) : len) - i);
            j = cr ? (size_t)(cr - buf) : nl ? (size_t)(nl - buf) : len;
        }
        if (j == len) {
            rc = gv_buf_append(&p->raw, buf + i, len - i);
            break;
        }
        rc = gv_buf_append(&p->raw, buf + i, j + 1 - i);
        i = j + 1;
        if (rc != GV_OK) {
            break;
        }
        if (buf[j] == '\r') {
            p->cr = true;
        }
        else {
            rc = end_line(p, fn, arg);
        }
    }
    if (rc != GV_OK) {
        p->failed = true;
    }
    return rc;
}

gv_rc gw_sse_finish(struct gw_sse *p, gw_sse_fn fn, void *arg)
{
    gv_rc rc = GV_OK;

    if (p->failed) {
        return GV_EPROTO;
    }
    if (p->cr) {
        p->cr = false;
        rc = end_line(p, fn, arg);
    }
    if (rc == GV_OK && p->raw.len > p->line_start) {
        rc = end_line(p, fn, arg);
    }
    if (rc == GV_OK && p->raw.len > 0) {
        rc = dispatch(p, fn, arg);
    }
    if (rc != GV_OK) {
        p->failed = true;
    }
    return rc;
}
