/* core/gv_event.h - governance events and frames on the gateway <-> agent wire */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GV_EVENT_H
#define GV_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "core/gv_buf.h"
#include "core/gv_rc.h"
#include "core/gv_record.h"

/* What this build writes into Hello.schema_version. Readers accept any version:
 * fields are only ever added (proto/gv_events.proto). */
/* 2: telemetry fields 30-38; 3: trace fields 40-52; 4: audit chain head 60-61 */
#define GV_EVENT_SCHEMA_VERSION 4u

/* Frames: u32 payload length (LE) | u8 type | payload. See docs/internals/agent-wire.md. */
#define GV_FRAME_HDR 5u
#define GV_FRAME_MAX (64u * 1024u)

enum gv_frame_type {
    GV_FRAME_HELLO = 1,
    GV_FRAME_EVENT = 2,
    GV_FRAME_ACK = 3,
    GV_FRAME_STATUS = 4,
    GV_FRAME_STATUS_REPLY = 5
};

#define GV_INSTANCE_ID_LEN 32 /* hex characters */

/* The envelope fields of an event that are not part of the record. */
struct gv_event_meta {
    char instance_id[GV_INSTANCE_ID_LEN + 1];
    uint64_t seq;
};

/* First frame of every gateway connection: who sends and under which policy pack. */
struct gv_hello {
    uint32_t schema_version;
    char instance_id[GV_INSTANCE_ID_LEN + 1];
    char pack_name[128];
    char pack_version[64];
    char chain[256]; /* comma-separated policy names, truncated at a name boundary */
    uint32_t pid;
};

/* Appends the protobuf encoding of rec (with instance id and seq) to out.
 * GV_E2BIG when out's cap is reached (out unchanged). Thread-safe. */
gv_rc gv_event_encode(const struct gv_record *rec, const char *instance_id, uint64_t seq,
                      struct gv_buf *out);
/* Decodes n bytes from anywhere (untrusted). Strings longer than the record's
 * fields are truncated, extra policies are dropped, unknown enum values read as
 * error. GV_EPROTO when the bytes are not a GovernanceEvent. rec and meta are
 * fully overwritten on success (rec's old content pointer is not freed); when
 * the event carries telemetry content, rec->content is allocated for the
 * caller, who frees it with gv_record_release. Thread-safe. */
gv_rc gv_event_decode(const void *p, size_t n, struct gv_record *rec, struct gv_event_meta *meta);

/* Same pair for the hello frame. */
gv_rc gv_hello_encode(const struct gv_hello *h, struct gv_buf *out);
gv_rc gv_hello_decode(const void *p, size_t n, struct gv_hello *h);

/* Appends one frame. GV_E2BIG when n > GV_FRAME_MAX or out's cap is reached. */
gv_rc gv_frame_append(struct gv_buf *out, enum gv_frame_type type, const void *payload, size_t n);
/* Looks for one complete frame at the start of p[0..n). GV_OK: *type, *payload
 * (points into p), *plen and *consumed (header + payload) are set. GV_EAGAIN:
 * more bytes needed. GV_EPROTO: the length exceeds GV_FRAME_MAX. */
gv_rc gv_frame_parse(const void *p, size_t n, unsigned *type, const uint8_t **payload, size_t *plen,
                     size_t *consumed);

/* Little-endian helpers used by the frame and spool formats. */
void gv_put_u32le(uint8_t *p, uint32_t v);
uint32_t gv_get_u32le(const uint8_t *p);
void gv_put_u64le(uint8_t *p, uint64_t v);
uint64_t gv_get_u64le(const uint8_t *p);

#endif
