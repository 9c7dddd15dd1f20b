/* gateway/gw_sse.h - incremental server-sent-events parser for upstream streams */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GW_SSE_H
#define GW_SSE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/gv_buf.h"
#include "core/gv_rc.h"

/* One event as the callback sees it. Pointers are borrowed: valid during the
 * callback only. They point into the bytes handed to gw_sse_feed when the
 * event stands whole in them (the common case: no copy), else into the
 * parser's buffers; data and raw are not NUL-terminated either way. */
struct gw_sse_event {
    const char *data; /* data: lines joined with "\n", data_len bytes ("" if none) */
    size_t data_len;
    bool has_data;    /* at least one data: field (an event the spec dispatches) */
    const char *name; /* the event: field, "" if none */
    const char *raw;  /* the exact bytes of the event, blank line included */
    size_t raw_len;
    bool done; /* data is exactly "[DONE]" (OpenAI's end marker) */
};

/* Return GV_OK to go on; anything else stops gw_sse_feed, which returns it. */
typedef gv_rc (*gw_sse_fn)(void *arg, const struct gw_sse_event *ev);

/* Parser state; embed it. Lines end with \n, \r\n or \r, and may be split
 * anywhere across feeds. An event ends at a blank line. Comment-only blocks
 * (": keep-alive") are reported too, with has_data false, so a proxy can pass
 * them on. */
struct gw_sse {
    struct gv_buf raw;  /* bytes of the current event so far */
    struct gv_buf data; /* joined data: values */
    struct gv_buf name; /* event: value */
    size_t line_start;  /* offset in raw of the current, unfinished line */
    bool has_data;
    bool cr;     /* the last byte seen was \r: a following \n belongs to it */
    bool failed; /* an earlier feed failed; further feeds fail too */
};

/* max_event bounds the bytes of one event (raw); 0 means 1 MiB. Cannot fail. */
void gw_sse_init(struct gw_sse *p, size_t max_event);
void gw_sse_free(struct gw_sse *p);

/* Parses len bytes, calling fn for each complete event in order. GV_E2BIG when
 * an event grows past max_event; or fn's rc. After a failure the parser stays
 * failed (every later call returns GV_EPROTO). */
gv_rc gw_sse_feed(struct gw_sse *p, const char *buf, size_t len, gw_sse_fn fn, void *arg);

/* End of stream: an event not closed by a blank line is still reported when
 * it has data (the upstream closed right after its last data: line); a
 * trailing partial line counts as a line. GV_OK when nothing was left. */
gv_rc gw_sse_finish(struct gw_sse *p, gw_sse_fn fn, void *arg);

#endif
