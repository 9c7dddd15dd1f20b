/* gateway/policies/audit/audit.c - tamper-evident audit log */
/* SPDX-License-Identifier: Apache-2.0 */
#include <stdbool.h>
#include <stddef.h>

#include "gateway/gw_policy.h"

struct audit_ctx {
    bool immutable;
    long retention_days;
    bool log_all_access;
    bool store_content;
    int fsync_mode;
    long fsync_interval_ms;
    int on_failure;
};

static const char *const fsync_modes[] = {"interval", "always", "off", NULL};
static const char *const failure_modes[] = {"block", "allow", NULL};

static const struct gv_cfg_map config_map[] = {
    {"immutable", GV_CFG_BOOL, offsetof(struct audit_ctx, immutable), "true", 0, NULL, 0, 0,
     "hash-chain records and make closed segments read-only"},
    {"retention_days", GV_CFG_INT, offsetof(struct audit_ctx, retention_days), "365", 0, NULL, 1,
     36500, "delete whole segments older than this"},
    {"log_all_access", GV_CFG_BOOL, offsetof(struct audit_ctx, log_all_access), "true", 0, NULL,
     0, 0, "record every request, not only blocked/redacted/error ones"},
    {"store_content", GV_CFG_BOOL, offsetof(struct audit_ctx, store_content), "false", 0, NULL, 0,
     0, "store prompt and answer text (after redaction)"},
    {"fsync", GV_CFG_ENUM, offsetof(struct audit_ctx, fsync_mode), "interval", 0, fsync_modes, 0,
     0, "group commit: interval (default), always or off"},
    {"fsync_interval", GV_CFG_DURATION, offsetof(struct audit_ctx, fsync_interval_ms), "100ms", 0,
     NULL, 1, 60000, "group commit interval"},
    {"on_failure", GV_CFG_ENUM, offsetof(struct audit_ctx, on_failure), "block", 0, failure_modes,
     0, 0, "when the log cannot be written: block (503) or allow"},
    {NULL, 0, 0, NULL, 0, NULL, 0, 0, NULL},
};

const struct gw_policy_ops gw_policy_audit = {
    .name = "audit-logger",
    .config_map = config_map,
    .ctx_size = sizeof(struct audit_ctx),
    .flags = GW_POL_COMPLETE,
};
