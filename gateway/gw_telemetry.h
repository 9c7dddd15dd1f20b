/* gateway/gw_telemetry.h - what a request's event carries for trace exporters (Weave) */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GW_TELEMETRY_H
#define GW_TELEMETRY_H

#include <stddef.h>

#include "core/gv_cfg.h"
#include "core/gv_rc.h"
#include "core/gv_record.h"
#include "core/gv_yaml.h"

struct json_object;
struct gw_config;

/* Policy config `telemetry: {content: none | redacted}`. */
enum gw_telemetry_content {
    GW_TELEMETRY_NONE = 0, /* roles and message count only, never text */
    GW_TELEMETRY_REDACTED  /* plus what went upstream (after redaction) and the answer sent */
};

/* Reads the top-level `telemetry:` mapping (NULL: defaults) into
 * cfg->telemetry_content. GV_ECONFIG with a positioned err for unknown keys or
 * values. */
gv_rc gw_telemetry_config_load(struct gw_config *cfg, const struct gv_ynode *node,
                               struct gv_cfg_err *err);
/* The `telemetry:` config map, for the configuration reference. */
const struct gv_cfg_map *gw_telemetry_config_map(void);

/* Message count and roles of the request (no text) into rec; body may be NULL
 * (the request never parsed). messages: body's messages array when validation
 * found it, else NULL (looked up). Any mode. */
void gw_telemetry_shape(struct gv_record *rec, struct json_object *body,
                        struct json_object *messages);

/* With content redacted: the `messages` of the body exactly as forwarded
 * upstream (`len` bytes at `body`, after every prompt policy) become
 * rec->content->request, a JSON array capped at GV_CONTENT_MAX bytes; past the
 * cap texts are cut at a UTF-8 boundary and end with GV_CONTENT_TRUNCATED.
 * Does nothing with content none. Allocates rec->content (the record owns it;
 * gv_record_release). Never fails the request: text it cannot read is left out. */
void gw_telemetry_request(const struct gw_config *cfg, struct gv_record *rec, const char *body,
                          size_t len);

/* With content redacted: appends the first choice's text of a non-streamed
 * answer (message.content) or of one streamed chunk (delta.content), as the
 * client gets it after response policies, to rec->content->response, capped
 * like the request. Does nothing with content none or before a request was
 * captured. */
void gw_telemetry_answer(const struct gw_config *cfg, struct gv_record *rec,
                         struct json_object *answer);

#endif
