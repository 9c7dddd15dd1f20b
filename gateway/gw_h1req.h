/* gateway/gw_h1req.h - HTTP/1.1 request framing on libhttp-parser: client bytes in, requests out */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GW_H1REQ_H
#define GW_H1REQ_H

/* Pure: no sockets, no clock, no logging. The connection code feeds whatever it
 * read, in any split, and gets back one event at a time. Everything a request
 * carries is copied into two capped buffers that the parser owns, so the caller
 * may reuse its read buffer as soon as gw_h1req_feed returns.
 *
 * Strict on purpose (request smuggling): a message that two HTTP implementations
 * could frame differently is refused, never guessed at. Refused with 400:
 * Content-Length together with Transfer-Encoding, more than one Content-Length
 * header (even with equal values: libhttp-parser refuses the second) or a
 * malformed value, obs-folded header lines, whitespace before a header's colon,
 * bare CR or bare LF anywhere in the head or in chunk framing, a request line
 * that is not exactly METHOD SP target SP version, bad chunk sizes, malformed
 * chunk extensions, chunk data not followed by CRLF, NUL or other control bytes
 * in the head, more than one Host header, an HTTP/1.1 request without Host, and
 * Transfer-Encoding in an HTTP/1.0 request. Transfer-Encoding other than
 * exactly "chunked" (ASCII case-insensitive; gzip, "gzip, chunked", "chunked,
 * chunked", two Transfer-Encoding headers) is 501. Legal chunk extensions
 * ("1a;ext=1", "1a;name=\"quoted\"") are accepted and ignored; trailer fields
 * are checked like header lines, then dropped. Up to max_head bytes of empty
 * lines (CRLF) before a request line are skipped. An Expect value other than
 * 100-continue in an HTTP/1.1 request is 417; HTTP/1.0 Expect is ignored.
 * Methods libhttp-parser does not know are 501, CONNECT is 501. */

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/gv_buf.h"

#define GW_H1_MAX_HDRS 64
#define GW_H1_BATCH_LINES 16 /* head lines handed to libhttp-parser in one call, at most */

struct gw_h1_limits {
    size_t max_line;    /* request line or one header line, bytes; 0: 8 KiB (431/414 past it) */
    size_t max_head;    /* the whole head, bytes; 0: 32 KiB (431 past it); at most 80 KiB,
                           libhttp-parser's own cap; also caps the trailer section */
    size_t max_headers; /* header fields; 0 or > GW_H1_MAX_HDRS: GW_H1_MAX_HDRS (431 past it) */
    size_t max_body;    /* decoded body bytes; 0: 4 MiB (413 past it) */
};

/* Borrowed views into the parser's head buffer: valid until gw_h1req_next or
 * gw_h1req_release. Not NUL-terminated; value has no leading or trailing
 * spaces or tabs. */
struct gw_h1_hdr {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* GW_H1_METHOD_*: the status below already has GW_H1_HEAD. */
enum gw_h1_method {
    GW_H1_METHOD_OTHER = 0,
    GW_H1_METHOD_GET,
    GW_H1_METHOD_HEAD,
    GW_H1_METHOD_POST
};

struct gw_h1_head {
    enum gw_h1_method method;
    const char *method_str; /* "POST", "OPTIONS", ...; NUL-terminated, static */
    const char *target;     /* the request-target as sent; NUL-terminated */
    size_t target_len;
    const char *path; /* its path, without query or fragment; NUL-terminated; "/" if empty */
    size_t path_len;
    int minor; /* HTTP/1.<minor>: 0 or 1 */
    struct gw_h1_hdr hdrs[GW_H1_MAX_HDRS];
    size_t nhdrs;
    bool keep_alive; /* the connection may carry another request after this one */
    bool chunked;    /* Transfer-Encoding: chunked */
    bool has_length; /* a Content-Length header was present */
    uint64_t content_length;
    bool expect_continue; /* Expect: 100-continue (HTTP/1.1 only) */
};

enum gw_h1_status {
    GW_H1_MORE = 0, /* every byte was taken; feed more when it arrives */
    GW_H1_HEAD,     /* the head is complete and a body follows: head is ready (send
                       100 Continue now if asked); feed the rest for the body */
    GW_H1_DONE,     /* a whole request: head and body are ready; the bytes
                       after *used belong to the next request (pipelining) */
    GW_H1_ERROR     /* refused: err_* say why; answer it, then close the connection */
};

struct gw_h1req {
    http_parser parser;
    struct gw_h1_limits lim;
    struct gw_h1_head head;
    struct gv_buf hbuf; /* head bytes: target, names and values, NUL-separated */
    struct gv_buf body; /* the decoded body (chunk framing removed) */
    /* Why the last feed returned GW_H1_ERROR. status is 400, 413, 414, 417, 431,
     * 501 or 505; code is the OpenAI-style error code ("invalid_request",
     * "request_too_large", "uri_too_long", "expectation_failed",
     * "headers_too_large", "unsupported_transfer_encoding",
     * "method_not_supported", "http_version_not_supported"); msg is one sentence
     * for the client. Static strings. */
    int err_status;
    const char *err_code;
    const char *err_msg;
    /* Internal state, for gw_h1req.c only. */
    uint8_t phase;     /* which part of the message the next byte belongs to */
    uint8_t lstate;    /* where the raw check is inside the current line */
    uint8_t part;      /* which header part the parser callbacks are filling */
    uint8_t err;       /* index of the refusal, 0 while none */
    bool reqline_seen; /* the raw check has passed the request line */
    bool reqline_done; /* the request line has been taken */
    bool msg_done;     /* on_message_complete ran */
    bool te_bad;       /* a Transfer-Encoding value other than chunked */
    bool expect_bad;   /* an Expect value other than 100-continue */
    uint16_t n_te;     /* Transfer-Encoding header lines */
    uint16_t n_host;   /* Host header lines */
    size_t line_len;   /* bytes of the current line so far, CRLF not counted */
    size_t head_len;   /* bytes of the head (or of the trailer section) so far */
    uint64_t left;     /* bytes still to come in this Content-Length body or chunk */
    size_t name_off;   /* hbuf offsets of the header being filled */
    size_t value_off;
    size_t path_off;
    uint32_t hdr_off[GW_H1_MAX_HDRS][2]; /* hbuf offsets of each name and value */
    /* Ends (past the LF) of the checked head lines in the bytes the parser is
     * running over, [next_end, n_ends) not taken yet; take_stop is where the
     * take that refused the request stopped. Valid during one feed only. */
    const char *line_end[GW_H1_BATCH_LINES];
    const char *take_stop;
    uint8_t n_ends;
    uint8_t next_end;
};

/* Ready for the first request of a connection. lim may be NULL (defaults).
 * Cannot fail; holds no heap memory until bytes arrive. */
void gw_h1req_init(struct gw_h1req *r, const struct gw_h1_limits *lim);
/* Frees the buffers. The struct may be init'ed again. */
void gw_h1req_free(struct gw_h1req *r);

/* Parses data[0..len). Stops at the first event and sets *used to the number
 * of bytes it took (all of them for GW_H1_MORE; those before the refused byte
 * for GW_H1_ERROR). After GW_H1_HEAD call again with the remaining bytes.
 * After GW_H1_DONE the request stays readable until gw_h1req_next; a feed
 * before that takes nothing and returns GW_H1_DONE again. After GW_H1_ERROR
 * every later call returns GW_H1_ERROR. */
enum gw_h1_status gw_h1req_feed(struct gw_h1req *r, const char *data, size_t len, size_t *used);

/* After GW_H1_DONE and the answer: forget the request, keep the buffers'
 * memory for the next one. */
void gw_h1req_next(struct gw_h1req *r);
/* Between requests only (nothing fed since gw_h1req_next or init): free the
 * buffers, so an idle keep-alive connection holds no heap memory. */
void gw_h1req_release(struct gw_h1req *r);

/* True when bytes of a request head have arrived but the head is not complete
 * (the connection code runs the whole-head deadline while this holds). */
bool gw_h1req_in_head(const struct gw_h1req *r);
/* True between GW_H1_HEAD and GW_H1_DONE (the body read timeout applies). */
bool gw_h1req_in_body(const struct gw_h1req *r);

/* The first header named `name` (ASCII case-insensitive), or NULL. */
const struct gw_h1_hdr *gw_h1req_header(const struct gw_h1_head *h, const char *name);
/* How many headers are named `name`. */
size_t gw_h1req_header_count(const struct gw_h1_head *h, const char *name);

#endif
