/* gateway/gw_config.h - the policy-config.yaml model: pack, providers, chain, settings */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "core/gv_cfg.h"
#include "core/gv_rc.h"
#include "core/gv_yaml.h"
#include "gateway/gw_policy.h"

enum gw_provider_kind { GW_PROVIDER_OPENAI = 0, GW_PROVIDER_OPENAI_COMPATIBLE };

struct gw_target {
    const char *id; /* `id:` */
    enum gw_provider_kind kind;
    char *model;            /* MODEL of "openai:chat:MODEL" */
    char *base_url;         /* no trailing slash; target's, else OPENAI_BASE_URL, else OpenAI's */
    const char *secret_env; /* secret_key_ref.env, or NULL */
    char *secret;           /* resolved at load; NEVER logged or stored anywhere */
    bool stream_usage;      /* ask the upstream for usage on streams (default true) */
    long connect_timeout_ms;
    long first_byte_timeout_ms;
    long idle_timeout_ms; /* max gap between bytes of a streamed answer */
    const char *ca_file;  /* https: PEM CAs trusted instead of the system store, or NULL */
};

/* One entry of policies.chain with its `policy.<name>` settings (may be NULL). */
struct gw_chain_entry {
    const char *name;
    const struct gv_ynode *name_node; /* position of the chain entry */
    const struct gv_ynode *settings;  /* policy.<name>, a mapping, or NULL */
};

struct gw_config {
    struct gv_ydoc *doc; /* owns every string that points into the document */
    const char *path;
    const char *pack_name;
    const char *pack_version;
    bool pack_enabled;
    size_t ntargets;
    struct gw_target *targets;
    size_t nchain;
    struct gw_chain_entry *chain;
    const struct gw_policy_ops *const *policies; /* the registry chain names resolve in */
    /* gateway: settings (all optional; defaults in the configuration reference) */
    size_t max_body_bytes;     /* default 4 MiB */
    size_t max_response_bytes; /* non-streamed upstream answers; default 32 MiB */
    size_t max_connections;    /* 0: from the descriptor limit */
    size_t max_header_bytes;
    size_t max_header_line_bytes;
    size_t max_headers;
    long header_timeout_ms; /* slowloris: the whole head from its first byte */
    long body_timeout_ms;
    long keepalive_timeout_ms;
    long send_timeout_ms;
    /* telemetry: (gateway/gw_telemetry.h) */
    int telemetry_content; /* enum gw_telemetry_content; default none */
};

/* Load and validate a policy config. Every problem is GV_ECONFIG with err
 * "file:line:col: message" (a missing secret env var included). Policy
 * settings are validated too, through each policy's ops (gw_policy_validate).
 * On success *out belongs to the caller: gw_config_destroy. */
gv_rc gw_config_load(const char *path, struct gw_config **out, struct gv_cfg_err *err);
/* As gw_config_load, from len bytes of YAML in memory (need not be
 * NUL-terminated); `name` stands for the file in error positions and in
 * cfg->path. For tests and fuzzing; the gateway loads files. */
gv_rc gw_config_load_buf(const char *name, const char *data, size_t len, struct gw_config **out,
                         struct gv_cfg_err *err);
/* As gw_config_load, resolving policy names in reg instead of gw_policies_builtin(). */
gv_rc gw_config_load_with(const char *path, const struct gw_policy_ops *const *reg,
                          struct gw_config **out, struct gv_cfg_err *err);
void gw_config_destroy(struct gw_config *cfg);

/* Find the target for a request's `model`: a target whose model or id equals it. */
const struct gw_target *gw_config_find_target(const struct gw_config *cfg, const char *model);

/* One config map of policy-config.yaml that kt itself owns, named by where it sits in the
 * file ("pack", "providers.targets[]", "telemetry"). */
struct gw_config_section {
    const char *name;
    const struct gv_cfg_map *map;
};
/* Every such map, in the order the file is documented, ending with a NULL name: what
 * docs/configuration.md is generated from. Not here: `telemetry` (gw_telemetry_config_map) and
 * each policy's map (its ops). */
const struct gw_config_section *gw_config_sections(void);

#endif
