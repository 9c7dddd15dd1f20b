/* agent/ag_ids.h - the request ids the agent has counted, so a re-emitted event counts once */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef AG_IDS_H
#define AG_IDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/gv_rc.h"

/* A request id as a fixed 12-byte key: the 24 hex digits of the gateway's
 * "req_<prefix><counter>" ids, taken as they are (no collisions); any other id
 * is the first 12 bytes of its SHA-256. */
#define AG_IDS_KEY 12

struct ag_ids;

struct ag_ids *ag_ids_create(void);
void ag_ids_destroy(struct ag_ids *ids);

/* The key of request_id (never fails; "" has a key too). */
void ag_ids_key(const char *request_id, uint8_t key[AG_IDS_KEY]);
bool ag_ids_has(const struct ag_ids *ids, const uint8_t key[AG_IDS_KEY]);
/* Adds key (a no-op when present) and remembers it as not yet saved. */
void ag_ids_add(struct ag_ids *ids, const uint8_t key[AG_IDS_KEY]);
/* Takes back a key added since the last save (a batch that was not journaled). */
void ag_ids_remove(struct ag_ids *ids, const uint8_t key[AG_IDS_KEY]);
size_t ag_ids_count(const struct ag_ids *ids);

/* Reads the keys file at path (12 bytes per key; a torn tail is ignored).
 * GV_OK when absent. GV_EIO when unreadable. Keys loaded count as saved. */
gv_rc ag_ids_load(struct ag_ids *ids, const char *path);
/* Appends the keys added since the last save to path and syncs it (fsync
 * true); they then count as saved. GV_EIO on failure (they stay unsaved, and
 * a partial append is cut off). Blocking: the agent's checkpoint only. */
gv_rc ag_ids_save(struct ag_ids *ids, const char *path, bool fsync);

#endif
