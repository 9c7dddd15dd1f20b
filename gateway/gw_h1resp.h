/* gateway/gw_h1resp.h - HTTP/1.1 response framing of upstream answers: bytes in, events out */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GW_H1RESP_H
#define GW_H1RESP_H

/* Pure: no sockets, no clock, no logging. The upstream client feeds whatever it
 * read, in any split, and gets back one event at a time: the final response's
 * head (1xx answers are skipped), body bytes (pointers into the caller's bytes,
 * no copy, chunk framing removed) and the end of the message. Bodies framed by
 * Content-Length, by chunked encoding (extensions and trailers accepted and
 * ignored) or by the connection's end.
 *
 * Strict on purpose: a response two implementations could frame differently is
 * an error, never guessed at, and the connection is not reused. Errors: a
 * status line other than HTTP/1.x, bare CR or bare LF in the head or in chunk
 * framing, obs-folded header lines, control bytes in the head, Content-Length
 * together with Transfer-Encoding, several Content-Length headers, a
 * Transfer-Encoding other than exactly "chunked", bad chunk sizes, chunk data
 * not followed by CRLF, 101 Switching Protocols (never asked for), a head over
 * GW_H1RESP_HEAD_MAX bytes, and anything libhttp-parser refuses. */

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/gv_buf.h"

#define GW_H1RESP_HEAD_MAX (64u * 1024u)
#define GW_H1RESP_PASS_MAX 4096u

/* The headers of the final response the gateway passes on. Values longer than
 * their field are cut; "" when absent. */
struct gw_h1resp_head {
    int status;
    int minor; /* HTTP/1.<minor> */
    char content_type[128];
    char request_id[128]; /* x-request-id */
    char retry_after[64];
    /* "name: value\r\n" lines of openai-*, x-ratelimit-*, retry-after-ms and
     * x-should-retry, as received, at most GW_H1RESP_PASS_MAX bytes (lines past
     * that are dropped). NUL-terminated (data may be NULL: none). */
    struct gv_buf pass;
};

enum gw_h1resp_ev {
    GW_H1R_MORE = 0, /* every byte was taken; feed more when it arrives */
    GW_H1R_HEAD,     /* the final response's head is ready in r->head */
    GW_H1R_BODY,     /* r->body, r->body_len: body bytes inside the fed data */
    GW_H1R_DONE,     /* the message is complete; r->keep_alive says if the
                        connection may carry another request */
    GW_H1R_ERROR     /* malformed: r->err says why (static text); stays failed */
};

struct gw_h1resp {
    http_parser parser;
    struct gw_h1resp_head head;
    const char *body; /* valid after GW_H1R_BODY, into the data given to that feed */
    size_t body_len;
    bool keep_alive; /* after GW_H1R_DONE */
    const char *err; /* after GW_H1R_ERROR */
    /* Internal state, for gw_h1resp.c only. */
    char name[48];
    size_t name_len;
    char value[256];
    size_t value_len;
    bool name_long;
    bool in_value;
    bool head_done;
    bool done;
    bool failed;
    bool chunked;
    unsigned ncl; /* Content-Length headers seen */
    unsigned nte; /* Transfer-Encoding headers seen */
    size_t head_len;
    size_t skip; /* leading bytes of the next feed the parser sees twice */
    int ev;      /* event the callbacks stopped on */
    uint64_t chunk_left;
    unsigned want;      /* framing scan: 1 = CR due after chunk data, 2 = LF due */
    unsigned char prev; /* last framing byte scanned */
    bool line_start;
};

/* Ready for the response to one request. Cannot fail; the pass buffer holds no
 * heap memory until such a header arrives. */
void gw_h1resp_init(struct gw_h1resp *r);
/* Frees what init and feed allocated. The struct may be init'ed again. */
void gw_h1resp_free(struct gw_h1resp *r);

/* Parses data[0..len). Stops at the first event and sets *used to the number
 * of bytes it took (all of them for GW_H1R_MORE). Call again with the bytes
 * from *used on after any event but GW_H1R_DONE and GW_H1R_ERROR. The body
 * pointer of GW_H1R_BODY may reach one byte past *used (libhttp-parser sees
 * the last body byte again to end the message); the caller keeps its bytes
 * until the next feed. After GW_H1R_DONE, bytes left in data belong to no
 * response: the connection must not be reused. */
enum gw_h1resp_ev gw_h1resp_feed(struct gw_h1resp *r, const char *data, size_t len, size_t *used);

/* The connection ended (the peer closed it). GW_H1R_DONE when that ends a
 * close-delimited body, GW_H1R_ERROR (r->err) when a response was cut short or
 * none began. */
enum gw_h1resp_ev gw_h1resp_eof(struct gw_h1resp *r);

/* True once a byte of the response arrived (first-byte deadline). */
bool gw_h1resp_started(const struct gw_h1resp *r);

#endif
