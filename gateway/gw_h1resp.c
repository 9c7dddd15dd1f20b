/* gateway/gw_h1resp.c - HTTP/1.1 response framing of upstream answers: bytes in, events out */
/* SPDX-License-Identifier: Apache-2.0 */
#include "gateway/gw_h1resp.h"

#include <string.h>

#include "core/gv_scan.h"
#include "gateway/gw_h1byte.h"

/* Events the callbacks stop the parser on (r->ev). */
enum { EV_NONE = 0, EV_HEAD, EV_BODY, EV_DONE };

static struct gw_h1resp *self(http_parser *p)
{
    return p->data;
}

static int fail(struct gw_h1resp *r, const char *why)
{
    if (!r->err) {
        r->err = why;
    }
    r->failed = true;
    return -1;
}

static void copy_value(char *dst, size_t size, const char *v, size_t n)
{
    if (n >= size) {
        n = size - 1;
    }
    memcpy(dst, v, n);
    dst[n] = '\0';
}

/* Macros over lower-case string literals, so the lengths are constants: every
 * header line of every answer is tested against most of these names. */
#define name_is(r, lit) gw_h1byte_ieq_lower((r)->name, (r)->name_len, lit, sizeof(lit) - 1)
#define name_starts(r, lit)                                                                        \
    ((r)->name_len > sizeof(lit) - 1 &&                                                            \
     gw_h1byte_ieq_lower((r)->name, sizeof(lit) - 1, lit, sizeof(lit) - 1))

/* One complete header line (r->name, r->value): keep what the gateway uses. */
static int end_header(struct gw_h1resp *r)
{
    struct gw_h1resp_head *h = &r->head;
    const char *v = r->value;
    size_t n = r->value_len;

    r->in_value = false;
    /* libhttp-parser drops leading blanks; trailing ones are ours to drop. */
    while (n > 0 && gw_h1byte_is_ws((unsigned char)v[n - 1])) {
        n--;
    }
    if (r->name_long) {
        /* No header the gateway reads has a name this long. */
    }
    else if (name_is(r, "content-length")) {
        r->ncl++;
    }
    else if (name_is(r, "transfer-encoding")) {
        r->nte++;
        if (r->value_len >= sizeof(r->value) || !gw_h1byte_ieq_lower(v, n, "chunked", 7)) {
            return fail(r, "unsupported Transfer-Encoding in the upstream answer");
        }
    }
    else if (name_is(r, "content-type")) {
        copy_value(h->content_type, sizeof(h->content_type), v, n);
    }
    else if (name_is(r, "x-request-id")) {
        copy_value(h->request_id, sizeof(h->request_id), v, n);
    }
    else if (name_is(r, "retry-after")) {
        copy_value(h->retry_after, sizeof(h->retry_after), v, n);
    }
    else if (name_starts(r, "openai-") || name_starts(r, "x-ratelimit-") ||
             name_is(r, "retry-after-ms") || name_is(r, "x-should-retry")) {
        /* Bounded: lines past the cap are dropped, not an error. A value cut at
         * the field's size is dropped too rather than passed on changed. */
        size_t mark = h->pass.len;
        if (r->value_len < sizeof(r->value) &&
            (gv_buf_append(&h->pass, r->name, r->name_len) != GV_OK ||
             gv_buf_append(&h->pass, ": ", 2) != GV_OK || gv_buf_append(&h->pass, v, n) != GV_OK ||
             gv_buf_append(&h->pass, "\r\n", 2) != GV_OK)) {
            gv_buf_truncate(&h->pass, mark);
        }
    }
    r->name_len = 0;
    r->name_long = false;
    r->value_len = 0;
    return 0;
}

static int on_message_begin(http_parser *p)
{
    struct gw_h1resp *r = self(p);

    /* A new message after a 1xx: its headers replace the 1xx's. */
    r->head.content_type[0] = '\0';
    r->head.request_id[0] = '\0';
    r->head.retry_after[0] = '\0';
    gv_buf_reset(&r->head.pass);
    r->ncl = 0;
    r->nte = 0;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    struct gw_h1resp *r = self(p);

    if (r->in_value && end_header(r) != 0) {
        return -1;
    }
    if (r->name_len + n > sizeof(r->name)) {
        r->name_long = true;
        return 0;
    }
    memcpy(r->name + r->name_len, at, n);
    r->name_len += n;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    struct gw_h1resp *r = self(p);
    size_t room = sizeof(r->value) - r->value_len;

    r->in_value = true;
    /* Past the field's size value_len still counts, so end_header sees the cut. */
    memcpy(r->value + r->value_len, at, n < room ? n : room);
    r->value_len += n < room ? n : room;
    if (n > room) {
        r->value_len = sizeof(r->value);
    }
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct gw_h1resp *r = self(p);

    if (r->in_value && end_header(r) != 0) {
        return -1;
    }
    if (p->http_major != 1) {
        return fail(r, "upstream answered with an HTTP version other than 1.x");
    }
    if (p->status_code < 100) {
        return fail(r, "bad status in the upstream answer");
    }
    if (p->status_code == 101 || p->upgrade) {
        return fail(r, "upstream switched protocols unasked");
    }
    if (r->ncl > 1) {
        return fail(r, "several Content-Length headers in the upstream answer");
    }
    if (r->ncl > 0 && r->nte > 0) {
        return fail(r, "Content-Length together with Transfer-Encoding in the upstream answer");
    }
    if (r->nte > 1) {
        return fail(r, "several Transfer-Encoding headers in the upstream answer");
    }
    r->chunked = (p->flags & F_CHUNKED) != 0;
    r->ev = EV_HEAD;
    http_parser_pause(p, 1);
    /* An interim answer has no body whatever its headers say (RFC 9110 15.2). */
    return p->status_code >= 100 && p->status_code < 200 ? 1 : 0;
}

static int on_chunk_header(http_parser *p)
{
    self(p)->chunk_left = p->content_length;
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    struct gw_h1resp *r = self(p);

    if (n == 0) {
        return 0;
    }
    r->body = at;
    r->body_len = n;
    r->ev = EV_BODY;
    http_parser_pause(p, 1);
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct gw_h1resp *r = self(p);

    if (p->status_code >= 100 && p->status_code < 200) {
        return 0; /* an interim answer: the final one follows */
    }
    r->keep_alive = http_should_keep_alive(p) != 0;
    r->done = true;
    r->ev = EV_DONE;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_chunk_header = on_chunk_header,
};

/* How many bytes from p on, at most n, are visible bytes, SP, HTAB or
 * obs-text: the middle of a line, where scan_framing has nothing to check.
 * Eight at a time while a word holds no byte below 0x20 and no 0x7f (a tab
 * stops the word test, then the byte loop takes it); header lines are tens
 * of bytes, and this was the bulk of the scan. */
static size_t plain_len(const char *p, size_t n)
{
    size_t j = 0;
    uint64_t x;

    while (n - j >= 8) {
        memcpy(&x, p + j, 8);
        /* Any byte below 0x20 or equal to 0x7f: the word test of gv_scan.h. */
        if (gv_scan_ctl_bytes(x) | gv_scan_zero_bytes(x ^ (GV_SCAN_ONES * 0x7f))) {
            break;
        }
        j += 8;
    }
    while (j < n && (!gw_h1byte_is_ctl((unsigned char)p[j]) || p[j] == '\t')) {
        j++;
    }
    return j;
}

/* The bytes libhttp-parser reads leniently (it is built without its strict
 * mode): every CR is followed by LF and every LF follows a CR, no control
 * bytes but HTAB, no line starts with a blank (obs-fold), and chunk data ends
 * in CRLF. Runs over head and chunk framing bytes, never over body bytes. */
static bool scan_framing(struct gw_h1resp *r, const char *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];

        if (r->want == 0 && r->prev != '\r' && !r->line_start) {
            /* Fast path through the middle of a line. */
            size_t j = i + plain_len(p + i, n - i);
            if (j > i) {
                r->prev = (unsigned char)p[j - 1];
                i = j;
                if (i == n) {
                    break;
                }
                c = (unsigned char)p[i];
            }
        }
        if (r->want == 1) {
            if (c != '\r') {
                return fail(r, "chunk data not followed by CRLF in the upstream answer") == 0;
            }
            r->want = 2;
        }
        else if (r->want == 2) {
            if (c != '\n') {
                return fail(r, "chunk data not followed by CRLF in the upstream answer") == 0;
            }
            r->want = 0;
        }
        if (r->prev == '\r' && c != '\n') {
            return fail(r, "bare CR in the upstream answer's framing") == 0;
        }
        if (c == '\n' && r->prev != '\r') {
            return fail(r, "bare LF in the upstream answer's framing") == 0;
        }
        if (gw_h1byte_is_ctl(c) && c != '\r' && c != '\n' && c != '\t') {
            return fail(r, "control byte in the upstream answer's framing") == 0;
        }
        if (r->line_start && gw_h1byte_is_ws(c)) {
            return fail(r, "folded header line in the upstream answer") == 0;
        }
        r->line_start = c == '\n';
        r->prev = c;
    }
    return true;
}

void gw_h1resp_init(struct gw_h1resp *r)
{
    memset(r, 0, sizeof(*r));
    http_parser_init(&r->parser, HTTP_RESPONSE);
    r->parser.data = r;
    gv_buf_init(&r->head.pass, GW_H1RESP_PASS_MAX);
}

void gw_h1resp_free(struct gw_h1resp *r)
{
    gv_buf_free(&r->head.pass);
}

bool gw_h1resp_started(const struct gw_h1resp *r)
{
    return r->head_len > 0 || r->head_done;
}

static const char *parser_error(const http_parser *p)
{
    switch (HTTP_PARSER_ERRNO(p)) {
    case HPE_INVALID_CHUNK_SIZE:
        return "bad chunk size in the upstream answer";
    case HPE_INVALID_CONTENT_LENGTH:
    case HPE_UNEXPECTED_CONTENT_LENGTH:
        return "bad Content-Length in the upstream answer";
    case HPE_HEADER_OVERFLOW:
        return "upstream answer head too large";
    case HPE_INVALID_EOF_STATE:
        return "upstream closed the connection mid-answer";
    case HPE_CLOSED_CONNECTION:
        return "upstream sent bytes after a closing answer";
    case HPE_INVALID_VERSION:
        return "bad HTTP version in the upstream answer";
    case HPE_INVALID_STATUS:
        return "bad status in the upstream answer";
    default:
        return "malformed HTTP answer from upstream";
    }
}

enum gw_h1resp_ev gw_h1resp_feed(struct gw_h1resp *r, const char *data, size_t len, size_t *used)
{
    size_t off = 0, n, from, bstart, bend;
    enum http_errno e;

    *used = 0;
    if (r->failed) {
        return GW_H1R_ERROR;
    }
    if (r->done) {
        return GW_H1R_DONE;
    }
    while (off < len) {
        r->ev = EV_NONE;
        n = http_parser_execute(&r->parser, &settings, data + off, len - off);
        e = HTTP_PARSER_ERRNO(&r->parser);
        if (e == HPE_PAUSED) {
            http_parser_pause(&r->parser, 0);
        }
        else if (e != HPE_OK) {
            fail(r, parser_error(&r->parser));
            *used = off + n;
            return GW_H1R_ERROR;
        }
        if (r->failed) {
            *used = off + n;
            return GW_H1R_ERROR;
        }
        /* Check the framing bytes libhttp-parser took, leaving out body bytes and the
         * byte it sees twice (r->skip). */
        from = off + r->skip;
        r->skip = 0;
        if (!r->head_done) {
            size_t head_end = off + n;
            if (r->ev == EV_HEAD) {
                /* It stops on the head's last LF and reads that byte again. */
                head_end = off + n + 1 <= len ? off + n + 1 : len;
                r->skip = head_end - (off + n);
            }
            r->head_len += head_end > from ? head_end - from : 0;
            if (r->head_len > GW_H1RESP_HEAD_MAX) {
                fail(r, "upstream answer head too large");
                *used = off + n;
                return GW_H1R_ERROR;
            }
            if (head_end > from && !scan_framing(r, data + from, head_end - from)) {
                *used = off + n;
                return GW_H1R_ERROR;
            }
        }
        else if (r->chunked) {
            bstart = off + n;
            bend = off + n;
            if (r->ev == EV_BODY) {
                bstart = (size_t)(r->body - data);
                bend = bstart + r->body_len;
            }
            if (bstart > from && !scan_framing(r, data + from, bstart - from)) {
                *used = off + n;
                return GW_H1R_ERROR;
            }
            if (r->ev == EV_BODY) {
                r->chunk_left -= r->body_len <= r->chunk_left ? r->body_len : r->chunk_left;
                if (r->chunk_left == 0) {
                    r->want = 1;
                }
                if (off + n > bend && !scan_framing(r, data + bend, off + n - bend)) {
                    *used = off + n;
                    return GW_H1R_ERROR;
                }
            }
        }
        if (r->ev == EV_BODY && (size_t)(r->body - data) + r->body_len > off + n) {
            /* The last body byte of a Content-Length body: fed again to end the message. */
            r->skip = (size_t)(r->body - data) + r->body_len - (off + n);
        }
        off += n;
        *used = off;
        if (r->ev == EV_HEAD && r->parser.status_code >= 100 && r->parser.status_code < 200) {
            continue; /* an interim answer: parse on to the final one */
        }
        if (r->ev == EV_HEAD) {
            r->head_done = true;
            r->head.status = r->parser.status_code;
            r->head.minor = r->parser.http_minor;
            return GW_H1R_HEAD;
        }
        if (r->ev == EV_BODY) {
            return GW_H1R_BODY;
        }
        if (r->ev == EV_DONE) {
            if (r->chunked && r->want != 0) {
                fail(r, "chunk data not followed by CRLF in the upstream answer");
                return GW_H1R_ERROR;
            }
            return GW_H1R_DONE;
        }
        if (n == 0) {
            /* No progress without an event or an error cannot happen; refuse to spin. */
            fail(r, "malformed HTTP answer from upstream");
            return GW_H1R_ERROR;
        }
    }
    return GW_H1R_MORE;
}

enum gw_h1resp_ev gw_h1resp_eof(struct gw_h1resp *r)
{
    if (r->failed) {
        return GW_H1R_ERROR;
    }
    if (r->done) {
        return GW_H1R_DONE;
    }
    if (!r->head_done) {
        fail(r, r->head_len == 0 ? "upstream closed the connection without answering"
                                 : "upstream closed the connection mid-answer");
        return GW_H1R_ERROR;
    }
    r->ev = EV_NONE;
    http_parser_execute(&r->parser, &settings, NULL, 0);
    if (HTTP_PARSER_ERRNO(&r->parser) == HPE_PAUSED) {
        http_parser_pause(&r->parser, 0);
    }
    else if (HTTP_PARSER_ERRNO(&r->parser) != HPE_OK) {
        fail(r, "upstream closed the connection mid-answer");
        return GW_H1R_ERROR;
    }
    if (r->ev == EV_DONE) {
        r->keep_alive = false;
        return GW_H1R_DONE;
    }
    fail(r, "upstream closed the connection mid-answer");
    return GW_H1R_ERROR;
}
