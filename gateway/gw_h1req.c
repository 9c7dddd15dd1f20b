/* gateway/gw_h1req.c - HTTP/1.1 request framing on libhttp-parser: client bytes in, requests out */
/* SPDX-License-Identifier: Apache-2.0 */
#include "gateway/gw_h1req.h"

#include <string.h>

#include "gateway/gw_h1byte.h"

/* Debian builds libhttp-parser with HTTP_PARSER_STRICT=0: it takes LF-only line
 * ends, a CR followed by anything, spaces inside header names, obs-folded
 * lines, any two bytes after chunk data and anything after a chunk size up to
 * the next CR. So every byte of the head, of the chunk-size lines, of the CRLF
 * after chunk data and of the trailer section passes a raw check here first,
 * and the parser is handed only checked bytes: it never sees a byte the check
 * refused, and every refusal, ours or the parser's, happens at the first
 * offending byte, whatever the split of the input. Head lines that arrived
 * together go to the parser in one call (a call per line cost the parser's
 * setup each time); each line is still taken (stored, its framing headers
 * checked) at its end, before the parser reads on. Data bytes (a
 * Content-Length body, chunk data) go to the parser in counted runs. */

#define H1_DEF_LINE (8u * 1024u)
#define H1_DEF_HEAD (32u * 1024u)
#define H1_DEF_BODY (4u * 1024u * 1024u)

/* Which bytes come next. */
enum phase {
    PH_HEAD = 0,   /* request line and header lines */
    PH_BODY,       /* Content-Length body, r->left bytes to go */
    PH_CHUNK_LINE, /* a chunk-size line */
    PH_CHUNK_DATA, /* chunk data, r->left bytes to go */
    PH_CHUNK_CR,   /* the CR after chunk data */
    PH_CHUNK_LF,   /* the LF after chunk data */
    PH_TRAILER,    /* trailer lines up to the empty line */
    PH_DONE,
    PH_ERROR
};

/* Where the raw check is inside a line. */
enum lstate {
    LS_START = 0, /* no byte of the line yet */
    LS_CR,        /* a CR, so the next byte must be LF */
    RL_METHOD,
    RL_TARGET0, /* right after the first space */
    RL_TARGET,
    RL_VERSION0, /* right after the second space */
    RL_VERSION,
    HL_NAME,
    HL_VALUE,
    CL_HEX0, /* chunk-size line: no digit yet */
    CL_HEX,
    CL_HEX_WS,  /* whitespace after the size: only ';' may follow */
    CL_SEMI,    /* after ';': optional whitespace, then a name */
    CL_NAME,    /* extension name */
    CL_NAME_WS, /* whitespace after a name: '=' or ';' may follow */
    CL_EQ,      /* after '=': optional whitespace, then a token or a quoted string */
    CL_TOKEN,   /* token value */
    CL_QUOTED,  /* inside a quoted value */
    CL_QESC,    /* after a backslash inside it */
    CL_QEND,    /* after the closing quote */
    CL_VAL_WS,  /* whitespace after a value: only ';' may follow */
};

/* Which header part the parser callbacks are filling. */
enum part { PART_NONE = 0, PART_NAME, PART_VALUE };

/* A raw-check outcome besides a refusal. */
#define SCAN_OK 0
#define SCAN_EOL 0xff

struct refusal {
    int status;
    const char *code;
    const char *msg;
};

enum refusal_id {
    E_NONE = 0,
    E_MALFORMED,
    E_REQUEST_LINE,
    E_TARGET,
    E_HEADER_LINE,
    E_HEADER_NAME,
    E_CONTROL,
    E_BARE_CR,
    E_BARE_LF,
    E_OBS_FOLD,
    E_CL_TE,
    E_CL_DUP,
    E_CL_BAD,
    E_HOST_DUP,
    E_HOST_MISSING,
    E_TE_HTTP10,
    E_CHUNK_SIZE,
    E_CHUNK_EXT,
    E_CHUNK_LINE,
    E_CHUNK_END,
    E_BODY_LARGE,
    E_URI_LONG,
    E_EXPECT,
    E_LINE_LONG,
    E_HEAD_LONG,
    E_HDR_COUNT,
    E_TE_UNSUP,
    E_METHOD,
    E_CONNECT,
    E_VERSION,
};

#define BAD "invalid_request"
static const struct refusal REFUSALS[] = {
    [E_NONE] = {0, NULL, NULL},
    [E_MALFORMED] = {400, BAD, "The request is not valid HTTP/1.1."},
    [E_REQUEST_LINE] = {400, BAD,
                        "The request line is malformed; send METHOD, one space, the path, one "
                        "space and HTTP/1.1, ended by CRLF."},
    [E_TARGET] = {400, BAD, "The request target is not a valid path; percent-encode it."},
    [E_HEADER_LINE] = {400, BAD,
                       "A header line is malformed; send each header as name: value ended by "
                       "CRLF."},
    [E_HEADER_NAME] = {400, BAD,
                       "A header name contains a character that is not allowed, such as "
                       "whitespace before the colon."},
    [E_CONTROL] = {400, BAD, "The request head contains a NUL or other control byte; remove it."},
    [E_BARE_CR] = {400, BAD, "A line ends in a CR without LF; end every line with CRLF."},
    [E_BARE_LF] = {400, BAD, "A line ends in an LF without CR; end every line with CRLF."},
    [E_OBS_FOLD] = {400, BAD,
                    "A header line starts with whitespace (obsolete line folding); send each "
                    "header on one line."},
    [E_CL_TE] = {400, BAD,
                 "The request has both Content-Length and Transfer-Encoding; send only one "
                 "of them."},
    [E_CL_DUP] = {400, BAD,
                  "The request has more than one Content-Length header; send exactly one."},
    [E_CL_BAD] = {400, BAD, "The Content-Length header is not a valid decimal number."},
    [E_HOST_DUP] = {400, BAD, "The request has more than one Host header; send exactly one."},
    [E_HOST_MISSING] = {400, BAD, "An HTTP/1.1 request must have a Host header; add one."},
    [E_TE_HTTP10] = {400, BAD,
                     "Transfer-Encoding is not allowed in an HTTP/1.0 request; send "
                     "Content-Length or use HTTP/1.1."},
    [E_CHUNK_SIZE] = {400, BAD, "A chunk size is not a valid hexadecimal number ended by CRLF."},
    [E_CHUNK_EXT] = {400, BAD,
                     "A chunk extension is malformed; send ;name or ;name=value after the "
                     "chunk size."},
    [E_CHUNK_LINE] = {400, BAD,
                      "A chunk-size line is longer than this server accepts; drop the chunk "
                      "extensions."},
    [E_CHUNK_END] = {400, BAD,
                     "Chunk data is not followed by CRLF; check that each chunk size matches "
                     "its data."},
    [E_BODY_LARGE] = {413, "request_too_large",
                      "The request body is larger than this server accepts; send a smaller "
                      "body."},
    [E_URI_LONG] = {414, "uri_too_long",
                    "The request line is longer than this server accepts; shorten the URL."},
    [E_EXPECT] = {417, "expectation_failed",
                  "Only Expect: 100-continue is supported; remove the Expect header."},
    [E_LINE_LONG] = {431, "headers_too_large",
                     "A header line is longer than this server accepts; shorten it."},
    [E_HEAD_LONG] = {431, "headers_too_large",
                     "The request headers are larger than this server accepts; send fewer or "
                     "smaller headers."},
    [E_HDR_COUNT] = {431, "headers_too_large",
                     "The request has more header fields than this server accepts; send "
                     "fewer headers."},
    [E_TE_UNSUP] = {501, "unsupported_transfer_encoding",
                    "Only Transfer-Encoding: chunked is supported; send the body chunked or "
                    "with Content-Length."},
    [E_METHOD] = {501, "method_not_supported",
                  "The request method is not supported by this server."},
    [E_CONNECT] = {501, "method_not_supported",
                   "CONNECT is not supported; this server is not a forward proxy."},
    [E_VERSION] = {505, "http_version_not_supported",
                   "Only HTTP/1.0 and HTTP/1.1 are supported; send HTTP/1.1."},
};

/* Byte classes of the raw check, one bit each (RFC 9110 5.6.2, 5.5; RFC 9112
 * 3, 7.1). Bytes 0x80-0xff are obs-text: C_FIELD only. */
#define C_TCHAR 1 /* tchar: methods, header names, chunk extension tokens */
#define C_VCHAR 2 /* visible ASCII 0x21-0x7e: request target and version */
#define C_FIELD 4 /* a byte of a field value: HTAB, SP, VCHAR, obs-text */
#define C_HEX 8   /* HEXDIG */
/* clang-format off */
static const uint8_t CLASS[256] = {
     0,  0,  0,  0,  0,  0,  0,  0,  0,  4,  0,  0,  0,  0,  0,  0, /* 0x00 */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0, /* 0x10 */
     4,  7,  6,  7,  7,  7,  7,  7,  6,  6,  7,  7,  6,  7,  7,  6, /* 0x20 */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15,  6,  6,  6,  6,  6,  6, /* 0x30 */
     6, 15, 15, 15, 15, 15, 15,  7,  7,  7,  7,  7,  7,  7,  7,  7, /* 0x40 */
     7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  6,  6,  6,  7,  7, /* 0x50 */
     7, 15, 15, 15, 15, 15, 15,  7,  7,  7,  7,  7,  7,  7,  7,  7, /* 0x60 */
     7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  6,  7,  6,  7,  0, /* 0x70 */
     4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4, /* 0x80 */
     4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4, /* 0x90 */
     4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4, /* 0xa0 */
     4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4, /* 0xb0 */
     4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4, /* 0xc0 */
     4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4, /* 0xd0 */
     4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4, /* 0xe0 */
     4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4, /* 0xf0 */
};
/* clang-format on */

static bool has_class(unsigned char c, uint8_t cls)
{
    return (CLASS[c] & cls) != 0;
}

static bool is_tchar(unsigned char c)
{
    return has_class(c, C_TCHAR);
}

static bool is_hex(unsigned char c)
{
    return has_class(c, C_HEX);
}

/* Against a lower-case string literal. */
#define IEQ(a, alen, lit) gw_h1byte_ieq_lower(a, alen, lit, sizeof(lit) - 1)

static void refuse(struct gw_h1req *r, enum refusal_id id)
{
    if (r->err == E_NONE) {
        r->err = (uint8_t)id;
        r->err_status = REFUSALS[id].status;
        r->err_code = REFUSALS[id].code;
        r->err_msg = REFUSALS[id].msg;
    }
    r->phase = PH_ERROR;
}

/* Appends to the head buffer; false (and the request refused for why) when
 * it is full. Its cap is above what the raw limits let through, so this is
 * a second line of defence. */
static bool hput(struct gw_h1req *r, const char *p, size_t n, enum refusal_id why)
{
    if (gv_buf_append(&r->hbuf, p, n) != GV_OK) {
        refuse(r, why);
        return false;
    }
    return true;
}

/* hput of the NUL that ends a name, value or path: a store, no copy call. */
static bool hput_nul(struct gw_h1req *r, enum refusal_id why)
{
    if (gv_buf_append_char(&r->hbuf, '\0') != GV_OK) {
        refuse(r, why);
        return false;
    }
    return true;
}

static bool take_lines(struct gw_h1req *r, const char *at);
static bool take_due(struct gw_h1req *r, const char *at);

/* ---- parser callbacks: they only copy bytes and note what the parser saw ---- */

static int on_url(http_parser *p, const char *at, size_t n)
{
    return hput(p->data, at, n, E_URI_LONG) ? 0 : -1;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    struct gw_h1req *r = p->data;

    if (p->flags & F_TRAILING) {
        return 0; /* trailer fields are checked raw and dropped */
    }
    if (!take_lines(r, at)) {
        return -1;
    }
    if (r->part != PART_NAME) {
        r->part = PART_NAME;
        r->name_off = r->hbuf.len;
    }
    return hput(r, at, n, E_HEAD_LONG) ? 0 : -1;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    struct gw_h1req *r = p->data;

    /* An empty value is reported late, with n == 0, at the next line: the
     * line was already taken at its LF. */
    if (n == 0 || p->flags & F_TRAILING) {
        return 0;
    }
    if (!take_lines(r, at)) {
        return -1;
    }
    if (r->part != PART_VALUE) {
        r->part = PART_VALUE;
        if (!hput_nul(r, E_HEAD_LONG)) { /* the name's NUL */
            return -1;
        }
        r->value_off = r->hbuf.len;
    }
    return hput(r, at, n, E_HEAD_LONG) ? 0 : -1;
}

static void build_head(struct gw_h1req *r)
{
    struct gw_h1_head *h = &r->head;
    size_t i;

    h->target = r->hbuf.data;
    h->path = r->hbuf.data + r->path_off;
    for (i = 0; i < h->nhdrs; i++) {
        h->hdrs[i].name = r->hbuf.data + r->hdr_off[i][0];
        h->hdrs[i].value = r->hbuf.data + r->hdr_off[i][1];
    }
}

/* Every header line was taken at its LF; what is left are the checks that
 * need the whole head. libhttp-parser has already refused Content-Length
 * with Transfer-Encoding by now. */
static int on_headers_complete(http_parser *p)
{
    struct gw_h1req *r = p->data;
    struct gw_h1_head *h = &r->head;

    if (!take_lines(r, NULL)) {
        return -1;
    }
    h->chunked = (p->flags & F_CHUNKED) != 0;
    h->has_length = (p->flags & F_CONTENTLENGTH) != 0;
    h->content_length = h->has_length ? p->content_length : 0;
    h->keep_alive = http_should_keep_alive(p) != 0;
    if (r->n_te > 0 && h->has_length) {
        refuse(r, E_CL_TE);
        return -1;
    }
    if (r->n_te > 0 && h->minor == 0) {
        refuse(r, E_TE_HTTP10);
        return -1;
    }
    /* The parser and the raw value must agree that this is chunked. */
    if (r->n_te > 1 || r->te_bad || (r->n_te > 0) != h->chunked) {
        refuse(r, E_TE_UNSUP);
        return -1;
    }
    if (h->minor == 1 && r->n_host == 0) {
        refuse(r, E_HOST_MISSING);
        return -1;
    }
    if (r->expect_bad) {
        refuse(r, E_EXPECT);
        return -1;
    }
    if (h->has_length && h->content_length > r->lim.max_body) {
        refuse(r, E_BODY_LARGE);
        return -1;
    }
    build_head(r);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    struct gw_h1req *r = p->data;

    if (gv_buf_append(&r->body, at, n) != GV_OK) {
        refuse(r, E_BODY_LARGE);
        return -1;
    }
    return 0;
}

static int on_chunk_header(http_parser *p)
{
    struct gw_h1req *r = p->data;

    r->left = p->content_length;
    return 0;
}

/* Pausing keeps the parser from reading on into a pipelined request even if
 * it were ever handed one. */
static int on_message_complete(http_parser *p)
{
    struct gw_h1req *r = p->data;

    r->msg_done = true;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings SETTINGS = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_chunk_header = on_chunk_header,
};

/* Why libhttp-parser stopped, in our terms. */
static enum refusal_id from_errno(const struct gw_h1req *r, enum http_errno e)
{
    switch (e) {
    case HPE_INVALID_METHOD:
        return E_METHOD;
    case HPE_INVALID_VERSION:
    case HPE_INVALID_CONSTANT:
        return E_REQUEST_LINE;
    case HPE_INVALID_URL:
    case HPE_INVALID_HOST:
    case HPE_INVALID_PORT:
    case HPE_INVALID_PATH:
    case HPE_INVALID_QUERY_STRING:
    case HPE_INVALID_FRAGMENT:
        return E_TARGET;
    case HPE_INVALID_HEADER_TOKEN:
        return E_HEADER_LINE;
    case HPE_INVALID_CONTENT_LENGTH:
        /* Also the parser's chunk-size overflow. */
        return r->phase == PH_CHUNK_LINE ? E_CHUNK_SIZE : E_CL_BAD;
    case HPE_UNEXPECTED_CONTENT_LENGTH:
        return r->n_te > 0 ? E_CL_TE : E_CL_DUP;
    case HPE_INVALID_TRANSFER_ENCODING:
        return r->head.minor == 0 ? E_TE_HTTP10 : E_TE_UNSUP;
    case HPE_INVALID_CHUNK_SIZE:
        return E_CHUNK_SIZE;
    case HPE_HEADER_OVERFLOW:
        return E_HEAD_LONG;
    default:
        return E_MALFORMED;
    }
}

/* Hands data[0..n) to libhttp-parser. False when the request is refused;
 * then *used is where the parser stopped, or the end of the line whose take
 * refused it. */
static bool run_parser(struct gw_h1req *r, const char *data, size_t n, size_t *used)
{
    size_t got;
    enum http_errno e;

    if (n == 0) {
        return true;
    }
    got = http_parser_execute(&r->parser, &SETTINGS, data, n);
    /* The lines the parser passed after its last callback: each is taken
     * before what the parser found further on is looked at. */
    if (r->err == E_NONE) {
        (void)take_lines(r, data + got);
    }
    if (r->take_stop) {
        r->phase = PH_ERROR;
        *used = (size_t)(r->take_stop - data);
        return false;
    }
    e = HTTP_PARSER_ERRNO(&r->parser);
    if (e == HPE_OK && got == n) {
        return true;
    }
    /* A pause is the end of the message, and it must be the end of what the
     * raw check handed over, or the two disagree on the framing. */
    if (e == HPE_PAUSED && got == n && r->msg_done) {
        return true;
    }
    if (r->err == E_NONE) {
        refuse(r, e == HPE_OK || e == HPE_PAUSED ? E_MALFORMED : from_errno(r, e));
    }
    r->phase = PH_ERROR;
    *used = got < n ? got : n;
    return false;
}

/* The raw check stopped with s after taking data[0..n) of a line: hands what
 * it passed to the parser, and refuses the request if s is a refusal (the
 * byte it refused is not passed). False when the request is refused; *used is
 * how far the parser got. */
static bool hand_checked(struct gw_h1req *r, const char *data, size_t n, unsigned s, size_t *used)
{
    bool refused = s != SCAN_OK && s != SCAN_EOL;

    if (refused) {
        n--;
    }
    *used = n;
    if (!run_parser(r, data, n, used)) {
        return false;
    }
    if (refused) {
        refuse(r, (enum refusal_id)s);
        return false;
    }
    return true;
}

/* ---- the raw check of head and trailer lines ---- */

/* One byte of a head or trailer line: SCAN_OK, SCAN_EOL at the LF that ends
 * the line, or a refusal. */
static unsigned head_byte(struct gw_h1req *r, unsigned char c, bool trailer)
{
    bool reqline = !trailer && !r->reqline_seen;

    if (++r->head_len > r->lim.max_head) {
        return E_HEAD_LONG;
    }
    if (r->lstate == LS_CR) {
        return c == '\n' ? SCAN_EOL : E_BARE_CR;
    }
    if (c == '\n') {
        return E_BARE_LF;
    }
    if (c == '\r') {
        switch (r->lstate) {
        case LS_START:
        case HL_VALUE:
        case RL_VERSION:
            r->lstate = LS_CR;
            return SCAN_OK;
        case HL_NAME:
            return E_HEADER_LINE;
        default:
            return E_REQUEST_LINE;
        }
    }
    if (++r->line_len > r->lim.max_line) {
        return reqline ? E_URI_LONG : E_LINE_LONG;
    }
    if (r->lstate == LS_START) {
        if (reqline) {
            r->lstate = RL_METHOD;
        }
        else if (gw_h1byte_is_ws(c)) {
            return E_OBS_FOLD;
        }
        else {
            r->lstate = HL_NAME;
        }
    }
    switch (r->lstate) {
    case RL_METHOD:
        if (c == ' ' && r->line_len > 1) {
            r->lstate = RL_TARGET0;
            return SCAN_OK;
        }
        break;
    case RL_TARGET0:
    case RL_TARGET:
        /* Visible ASCII only: raw UTF-8 or spaces in a URL are for the
         * client to percent-encode. */
        if (c == ' ' && r->lstate == RL_TARGET) {
            r->lstate = RL_VERSION0;
            return SCAN_OK;
        }
        if (c > 0x20 && c < 0x7f) {
            r->lstate = RL_TARGET;
            return SCAN_OK;
        }
        return gw_h1byte_is_ctl(c) ? E_CONTROL : (c == ' ' ? E_REQUEST_LINE : E_TARGET);
    case RL_VERSION0:
    case RL_VERSION:
        if (c > 0x20 && c < 0x7f) {
            r->lstate = RL_VERSION;
            return SCAN_OK;
        }
        break;
    case HL_NAME:
        if (c == ':') {
            if (r->line_len == 1) {
                return E_HEADER_LINE;
            }
            r->lstate = HL_VALUE;
            return SCAN_OK;
        }
        if (is_tchar(c)) {
            return SCAN_OK;
        }
        return gw_h1byte_is_ctl(c) && c != '\t' ? E_CONTROL : E_HEADER_NAME;
    case HL_VALUE:
        if (c == '\t' || !gw_h1byte_is_ctl(c)) {
            return SCAN_OK; /* VCHAR, SP, HTAB and obs-text */
        }
        return E_CONTROL;
    default:
        return E_MALFORMED;
    }
    /* Method and version: tchar / visible bytes, one space between parts. */
    if (r->lstate == RL_METHOD && is_tchar(c)) {
        return SCAN_OK;
    }
    return gw_h1byte_is_ctl(c) ? E_CONTROL : E_REQUEST_LINE;
}

/* An origin-form target with no query or fragment ("/v1/chat/completions": nearly
 * every request) is its own path. The head's checks let only visible ASCII into a
 * target, and http_parser_parse_url's path state takes all of it but '?' and '#';
 * it would walk the target byte by byte (~700 instructions) to say the same. A
 * unit test holds the two to the same answers. */
static bool is_plain_path(const char *t, size_t n)
{
    return n > 0 && t[0] == '/' && !memchr(t, '?', n) && !memchr(t, '#', n);
}

/* The request line went through the parser whole: what it holds. */
static bool take_request_line(struct gw_h1req *r)
{
    struct gw_h1_head *h = &r->head;
    struct http_parser_url u;
    size_t poff = 0, plen = 0;
    bool ok;

    if (r->parser.method == HTTP_CONNECT) {
        refuse(r, E_CONNECT);
        return false;
    }
    if (r->parser.http_major != 1 || r->parser.http_minor > 1) {
        refuse(r, E_VERSION);
        return false;
    }
    h->minor = r->parser.http_minor;
    h->method_str = http_method_str((enum http_method)r->parser.method);
    switch (r->parser.method) {
    case HTTP_GET:
        h->method = GW_H1_METHOD_GET;
        break;
    case HTTP_HEAD:
        h->method = GW_H1_METHOD_HEAD;
        break;
    case HTTP_POST:
        h->method = GW_H1_METHOD_POST;
        break;
    default:
        h->method = GW_H1_METHOD_OTHER;
        break;
    }
    h->target_len = r->hbuf.len;
    if (is_plain_path(r->hbuf.data, h->target_len)) {
        plen = h->target_len;
    }
    else {
        http_parser_url_init(&u);
        if (h->target_len == 0 || http_parser_parse_url(r->hbuf.data, h->target_len, 0, &u) != 0) {
            refuse(r, E_TARGET);
            return false;
        }
        if (u.field_set & (1u << UF_PATH)) {
            poff = u.field_data[UF_PATH].off;
            plen = u.field_data[UF_PATH].len;
        }
    }
    /* The path is a copy after the target's NUL, so that both end in NUL:
     * NUL, path (or "/"), NUL. Room for all of it first, so the appends below
     * never move the storage the path is copied from (and the refusal is the
     * one the first append past the cap would give). */
    r->path_off = r->hbuf.len + 1;
    h->path_len = plen ? plen : 1;
    if (gv_buf_reserve(&r->hbuf, h->path_len + 2) != GV_OK) {
        refuse(r, E_URI_LONG);
        return false;
    }
    ok =
        hput_nul(r, E_URI_LONG) &&
        (plen > 0 ? hput(r, r->hbuf.data + poff, plen, E_URI_LONG) : hput(r, "/", 1, E_URI_LONG)) &&
        hput_nul(r, E_URI_LONG);
    r->reqline_done = ok;
    return ok;
}

/* A header line went through the parser whole: store it and check what
 * framing depends on. */
static bool take_header_line(struct gw_h1req *r)
{
    struct gw_h1_head *h = &r->head;
    const char *name, *value;
    size_t nlen, vlen;

    if (h->nhdrs >= r->lim.max_headers) {
        refuse(r, E_HDR_COUNT);
        return false;
    }
    if (r->part == PART_NONE) {
        refuse(r, E_HEADER_LINE);
        return false;
    }
    if (r->part == PART_NAME) { /* an empty value */
        if (!hput_nul(r, E_HEAD_LONG)) {
            return false;
        }
        r->value_off = r->hbuf.len;
    }
    if (!hput_nul(r, E_HEAD_LONG)) {
        return false;
    }
    r->part = PART_NONE;
    name = r->hbuf.data + r->name_off;
    nlen = r->value_off - 1 - r->name_off;
    value = r->hbuf.data + r->value_off;
    vlen = r->hbuf.len - 1 - r->value_off;
    /* The parser skips leading whitespace but keeps trailing whitespace. */
    while (vlen > 0 && gw_h1byte_is_ws((unsigned char)value[0])) {
        value++;
        vlen--;
        r->value_off++;
    }
    while (vlen > 0 && gw_h1byte_is_ws((unsigned char)value[vlen - 1])) {
        vlen--;
    }
    r->hdr_off[h->nhdrs][0] = (uint32_t)r->name_off;
    r->hdr_off[h->nhdrs][1] = (uint32_t)r->value_off;
    h->hdrs[h->nhdrs].name_len = nlen;
    h->hdrs[h->nhdrs].value_len = vlen;
    h->nhdrs++;
    if (IEQ(name, nlen, "transfer-encoding")) {
        r->n_te++;
        if (!IEQ(value, vlen, "chunked")) {
            r->te_bad = true;
        }
    }
    else if (IEQ(name, nlen, "host")) {
        if (++r->n_host > 1) {
            refuse(r, E_HOST_DUP);
            return false;
        }
    }
    else if (IEQ(name, nlen, "expect") && h->minor == 1) {
        /* RFC 9110 10.1.1: an HTTP/1.0 Expect is ignored. */
        if (IEQ(value, vlen, "100-continue")) {
            h->expect_continue = true;
        }
        else {
            r->expect_bad = true;
        }
    }
    return true;
}

/* Takes each line in the bytes the parser runs over that ends at or before
 * at (NULL: all of them), in order: the parser's callbacks call take_lines first,
 * so each sees the state it would after a parser call per line. False when
 * a take refused the request; take_stop is then that line's end. */
static bool take_due(struct gw_h1req *r, const char *at)
{
    while (r->next_end < r->n_ends && (!at || r->line_end[r->next_end] <= at)) {
        const char *end = r->line_end[r->next_end++];
        if (!(r->reqline_done ? take_header_line(r) : take_request_line(r))) {
            r->take_stop = end;
            return false;
        }
    }
    return true;
}

/* Most callbacks find no line to take: that test stays out of take_due. */
static bool take_lines(struct gw_h1req *r, const char *at)
{
    if (r->next_end == r->n_ends || (at && r->line_end[r->next_end] > at)) {
        return true;
    }
    return take_due(r, at);
}

/* How many bytes from p on, at most n, head_byte would take in state st
 * without a change of state: the bulk of a head is values, names, the
 * target, the method and the version, and this keeps the per-byte work there
 * to one comparison. */
static size_t plain_run(unsigned char st, const unsigned char *p, size_t n)
{
    size_t k = 0;

    switch (st) {
    case HL_VALUE:
        while (k < n && CLASS[p[k]] & C_FIELD) {
            k++;
        }
        break;
    case RL_METHOD:
    case HL_NAME:
        while (k < n && CLASS[p[k]] & C_TCHAR) {
            k++;
        }
        break;
    case RL_TARGET:
    case RL_VERSION:
        while (k < n && CLASS[p[k]] & C_VCHAR) {
            k++;
        }
        break;
    default:
        break;
    }
    return k;
}

/* Head or trailer lines: check as many as the bytes hold (up to the empty
 * line that ends the section), hand them to the parser in one call, act on
 * the section's end. */
static enum gw_h1_status step_lines(struct gw_h1req *r, const char *data, size_t len, size_t *used)
{
    const unsigned char *u = (const unsigned char *)data;
    bool trailer = r->phase == PH_TRAILER, end = false;
    size_t i = 0, k;
    unsigned s = SCAN_OK;

    r->n_ends = 0;
    r->next_end = 0;
    for (;;) {
        while (i < len && s == SCAN_OK) {
            k = plain_run(r->lstate, u + i, len - i);
            if (k > 0) {
                /* Only the bytes the limits still allow in this line; the byte
                 * past them goes through head_byte, which refuses it. Most
                 * states have no run, and skip this. */
                if (r->lim.max_line - r->line_len < k) {
                    k = r->lim.max_line - r->line_len;
                }
                if (r->lim.max_head - r->head_len < k) {
                    k = r->lim.max_head - r->head_len;
                }
                r->line_len += k;
                r->head_len += k;
                i += k;
            }
            if (i < len) {
                s = head_byte(r, u[i], trailer);
                i++;
            }
        }
        if (s != SCAN_EOL) {
            break; /* a refusal, or the bytes end inside a line */
        }
        r->lstate = LS_START;
        if (r->line_len > 0) {
            r->line_len = 0;
            /* Trailer lines are only checked: nothing to take. */
            if (!trailer) {
                r->line_end[r->n_ends++] = data + i;
            }
            if (!trailer && !r->reqline_seen) {
                /* The request line goes to the parser alone: it reads a bad
                 * version leniently and may not have ended the line here
                 * ("H.1" waits for its major digit), and the line is taken
                 * as the parser stands at its end. */
                r->reqline_seen = true;
                break;
            }
        }
        else if (trailer || r->reqline_seen) {
            end = true;
            break;
        }
        /* else an empty line before the request line */
        s = SCAN_OK;
        if (r->n_ends == GW_H1_BATCH_LINES) {
            break;
        }
    }
    if (!hand_checked(r, data, i, s, used)) {
        return GW_H1_ERROR;
    }
    if (!end) {
        return GW_H1_MORE;
    }
    if (r->msg_done) {
        r->phase = PH_DONE;
        return GW_H1_DONE;
    }
    if (trailer) {
        refuse(r, E_MALFORMED); /* the parser did not end the message here */
        return GW_H1_ERROR;
    }
    if (r->head.chunked) {
        r->phase = PH_CHUNK_LINE;
        r->lstate = CL_HEX0;
    }
    else {
        r->phase = PH_BODY;
        r->left = r->head.content_length;
    }
    return GW_H1_HEAD;
}

/* ---- chunk framing ---- */

/* A byte after the size, an extension name or a value of a chunk-size line:
 * ';' opens the next extension, whitespace moves to ws (where only ';' or,
 * after a name, '=' may follow), anything else is bad. */
static unsigned chunk_sep(struct gw_h1req *r, unsigned char c, unsigned char ws, unsigned bad)
{
    if (c == ';') {
        r->lstate = CL_SEMI;
        return SCAN_OK;
    }
    if (gw_h1byte_is_ws(c)) {
        r->lstate = ws;
        return SCAN_OK;
    }
    return bad;
}

/* One byte of a chunk-size line (RFC 9112 7.1): 1*HEXDIG *(BWS ";" BWS name
 * [BWS "=" BWS (token / quoted-string)]) CRLF. Whitespace is taken only where
 * a ';' or '=' follows it: "1a junk" and "1a;x \r\n" are refused. */
static unsigned chunk_byte(struct gw_h1req *r, unsigned char c)
{
    unsigned char st = r->lstate;

    if (st == LS_CR) {
        return c == '\n' ? SCAN_EOL : E_BARE_CR;
    }
    if (c == '\n') {
        return E_BARE_LF;
    }
    if (c != '\r' && ++r->line_len > r->lim.max_line) {
        return E_CHUNK_LINE;
    }
    if (c == '\r') {
        /* The line may end after the size, a name or a value only. */
        if (st == CL_HEX || st == CL_NAME || st == CL_TOKEN || st == CL_QEND) {
            r->lstate = LS_CR;
            return SCAN_OK;
        }
        return st == CL_HEX0 || st == CL_HEX_WS ? E_CHUNK_SIZE : E_CHUNK_EXT;
    }
    switch (st) {
    case CL_HEX0:
    case CL_HEX:
        if (is_hex(c)) {
            r->lstate = CL_HEX;
            return SCAN_OK;
        }
        if (st == CL_HEX0) {
            return E_CHUNK_SIZE;
        }
        /* After the digits: what may follow a size. */
        /* fall through */
    case CL_HEX_WS:
        return chunk_sep(r, c, CL_HEX_WS, E_CHUNK_SIZE);
    case CL_SEMI:
        if (is_tchar(c)) {
            r->lstate = CL_NAME;
            return SCAN_OK;
        }
        return gw_h1byte_is_ws(c) ? SCAN_OK : E_CHUNK_EXT;
    case CL_NAME:
    case CL_NAME_WS:
        if (st == CL_NAME && is_tchar(c)) {
            return SCAN_OK;
        }
        if (c == '=') {
            r->lstate = CL_EQ;
            return SCAN_OK;
        }
        return chunk_sep(r, c, CL_NAME_WS, E_CHUNK_EXT);
    case CL_EQ:
        if (c == '"') {
            r->lstate = CL_QUOTED;
        }
        else if (is_tchar(c)) {
            r->lstate = CL_TOKEN;
        }
        else if (!gw_h1byte_is_ws(c)) {
            return E_CHUNK_EXT;
        }
        return SCAN_OK;
    case CL_TOKEN:
    case CL_QEND:
    case CL_VAL_WS:
        if (st == CL_TOKEN && is_tchar(c)) {
            return SCAN_OK;
        }
        return chunk_sep(r, c, CL_VAL_WS, E_CHUNK_EXT);
    case CL_QUOTED:
        if (c == '"') {
            r->lstate = CL_QEND;
        }
        else if (c == '\\') {
            r->lstate = CL_QESC;
        }
        else if (c != '\t' && gw_h1byte_is_ctl(c)) {
            return E_CHUNK_EXT;
        }
        return SCAN_OK;
    case CL_QESC:
        r->lstate = CL_QUOTED;
        return c == '\t' || !gw_h1byte_is_ctl(c) ? SCAN_OK : E_CHUNK_EXT;
    default:
        return E_MALFORMED;
    }
}

static enum gw_h1_status step_chunk_line(struct gw_h1req *r, const char *data, size_t len,
                                         size_t *used)
{
    size_t i;
    unsigned s = SCAN_OK;

    for (i = 0; i < len && s == SCAN_OK; i++) {
        s = chunk_byte(r, (unsigned char)data[i]);
    }
    if (!hand_checked(r, data, i, s, used)) {
        return GW_H1_ERROR;
    }
    if (s == SCAN_OK) {
        return GW_H1_MORE;
    }
    /* The parser reported the size from on_chunk_header at the LF. */
    r->line_len = 0;
    r->lstate = LS_START;
    if (r->left == 0) {
        r->phase = PH_TRAILER;
        r->head_len = 0;
        return GW_H1_MORE;
    }
    if (r->left > r->lim.max_body - r->body.len) {
        refuse(r, E_BODY_LARGE);
        return GW_H1_ERROR;
    }
    r->phase = PH_CHUNK_DATA;
    return GW_H1_MORE;
}

/* Content-Length body or chunk data: counted bytes, no raw check. */
static enum gw_h1_status step_data(struct gw_h1req *r, const char *data, size_t len, size_t *used)
{
    size_t n = r->left < len ? (size_t)r->left : len;

    *used = n;
    if (!run_parser(r, data, n, used)) {
        return GW_H1_ERROR;
    }
    r->left -= n;
    if (r->phase == PH_CHUNK_DATA) {
        if (r->left == 0) {
            r->phase = PH_CHUNK_CR;
        }
        return GW_H1_MORE;
    }
    if (r->msg_done) {
        r->phase = PH_DONE;
        return GW_H1_DONE;
    }
    if (r->left == 0) {
        refuse(r, E_MALFORMED); /* the parser did not end the body here */
        return GW_H1_ERROR;
    }
    return GW_H1_MORE;
}

/* The CRLF after chunk data: the parser takes any two bytes there. */
static enum gw_h1_status step_chunk_crlf(struct gw_h1req *r, const char *data, size_t *used)
{
    bool cr = r->phase == PH_CHUNK_CR;

    *used = 0;
    if (cr ? data[0] != '\r' : data[0] != '\n') {
        refuse(r, cr ? E_CHUNK_END : E_BARE_CR);
        return GW_H1_ERROR;
    }
    *used = 1;
    if (!run_parser(r, data, 1, used)) {
        return GW_H1_ERROR;
    }
    if (cr) {
        r->phase = PH_CHUNK_LF;
    }
    else {
        r->phase = PH_CHUNK_LINE;
        r->lstate = CL_HEX0;
    }
    return GW_H1_MORE;
}

/* ---- the API ---- */

/* Every field of the head but the header array, whose slots are read only
 * below nhdrs: zeroing its 2 KB was a `rep stos` on every request. */
_Static_assert(offsetof(struct gw_h1_head, nhdrs) ==
                   offsetof(struct gw_h1_head, hdrs) + sizeof(((struct gw_h1_head *)0)->hdrs),
               "nhdrs follows hdrs: reset_head zeroes around the array");

static void reset_head(struct gw_h1_head *h)
{
    memset(h, 0, offsetof(struct gw_h1_head, hdrs));
    memset(&h->nhdrs, 0, sizeof(*h) - offsetof(struct gw_h1_head, nhdrs));
}

static void reset_request(struct gw_h1req *r)
{
    reset_head(&r->head);
    http_parser_init(&r->parser, HTTP_REQUEST);
    r->parser.data = r;
    r->err_status = 0;
    r->err_code = NULL;
    r->err_msg = NULL;
    r->phase = PH_HEAD;
    r->lstate = LS_START;
    r->part = PART_NONE;
    r->err = E_NONE;
    r->reqline_seen = false;
    r->reqline_done = false;
    r->msg_done = false;
    r->te_bad = false;
    r->expect_bad = false;
    r->n_te = 0;
    r->n_host = 0;
    r->line_len = 0;
    r->head_len = 0;
    r->left = 0;
    r->name_off = 0;
    r->value_off = 0;
    r->path_off = 0;
    r->take_stop = NULL;
    r->n_ends = 0;
    r->next_end = 0;
}

void gw_h1req_init(struct gw_h1req *r, const struct gw_h1_limits *lim)
{
    memset(r, 0, sizeof(*r));
    if (lim) {
        r->lim = *lim;
    }
    if (r->lim.max_line == 0) {
        r->lim.max_line = H1_DEF_LINE;
    }
    if (r->lim.max_head == 0) {
        r->lim.max_head = H1_DEF_HEAD;
    }
    /* libhttp-parser refuses heads past HTTP_MAX_HEADER_SIZE anyway, and the
     * header offsets are 32-bit. */
    if (r->lim.max_head > HTTP_MAX_HEADER_SIZE) {
        r->lim.max_head = HTTP_MAX_HEADER_SIZE;
    }
    if (r->lim.max_line > r->lim.max_head) {
        r->lim.max_line = r->lim.max_head;
    }
    if (r->lim.max_headers == 0 || r->lim.max_headers > GW_H1_MAX_HDRS) {
        r->lim.max_headers = GW_H1_MAX_HDRS;
    }
    if (r->lim.max_body == 0) {
        r->lim.max_body = H1_DEF_BODY;
    }
    /* hbuf holds the head's target, names and values (fewer bytes than the
     * head) plus a copy of the path (shorter than the request line). */
    gv_buf_init(&r->hbuf, r->lim.max_head + r->lim.max_line);
    gv_buf_init(&r->body, r->lim.max_body);
    reset_request(r);
}

void gw_h1req_free(struct gw_h1req *r)
{
    gv_buf_free(&r->hbuf);
    gv_buf_free(&r->body);
}

enum gw_h1_status gw_h1req_feed(struct gw_h1req *r, const char *data, size_t len, size_t *used)
{
    enum gw_h1_status st = GW_H1_MORE;
    size_t off = 0, n = 0;

    while (off < len && st == GW_H1_MORE) {
        switch (r->phase) {
        case PH_HEAD:
        case PH_TRAILER:
            st = step_lines(r, data + off, len - off, &n);
            break;
        case PH_CHUNK_LINE:
            st = step_chunk_line(r, data + off, len - off, &n);
            break;
        case PH_BODY:
        case PH_CHUNK_DATA:
            st = step_data(r, data + off, len - off, &n);
            break;
        case PH_CHUNK_CR:
        case PH_CHUNK_LF:
            st = step_chunk_crlf(r, data + off, &n);
            break;
        case PH_DONE:
            st = GW_H1_DONE;
            n = 0;
            break;
        default:
            st = GW_H1_ERROR;
            n = 0;
            break;
        }
        off += n;
    }
    if (off == len && st == GW_H1_MORE) {
        /* Also for len 0: an event already reached is reported again. */
        if (r->phase == PH_DONE) {
            st = GW_H1_DONE;
        }
        else if (r->phase == PH_ERROR) {
            st = GW_H1_ERROR;
        }
    }
    *used = off;
    return st;
}

void gw_h1req_next(struct gw_h1req *r)
{
    gv_buf_reset(&r->hbuf);
    gv_buf_reset(&r->body);
    reset_request(r);
}

void gw_h1req_release(struct gw_h1req *r)
{
    size_t hmax = r->hbuf.max, bmax = r->body.max;

    gv_buf_free(&r->hbuf);
    gv_buf_free(&r->body);
    gv_buf_init(&r->hbuf, hmax);
    gv_buf_init(&r->body, bmax);
}

bool gw_h1req_in_head(const struct gw_h1req *r)
{
    return r->phase == PH_HEAD && r->head_len > 0;
}

bool gw_h1req_in_body(const struct gw_h1req *r)
{
    return r->phase >= PH_BODY && r->phase <= PH_TRAILER;
}

const struct gw_h1_hdr *gw_h1req_header(const struct gw_h1_head *h, const char *name)
{
    size_t i, nlen = strlen(name);

    for (i = 0; i < h->nhdrs; i++) {
        if (gw_h1byte_ieq(h->hdrs[i].name, h->hdrs[i].name_len, name, nlen)) {
            return &h->hdrs[i];
        }
    }
    return NULL;
}

size_t gw_h1req_header_count(const struct gw_h1_head *h, const char *name)
{
    size_t i, n = 0, nlen = strlen(name);

    for (i = 0; i < h->nhdrs; i++) {
        if (gw_h1byte_ieq(h->hdrs[i].name, h->hdrs[i].name_len, name, nlen)) {
            n++;
        }
    }
    return n;
}
