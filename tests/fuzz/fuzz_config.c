/* tests/fuzz/fuzz_config.c - YAML tree and policy-config loader on arbitrary bytes */
/* SPDX-License-Identifier: Apache-2.0 */
#include <stdlib.h>
#include <string.h>

#include "core/gv_rc.h"
#include "core/gv_yaml.h"
#include "gateway/gw_config.h"
#include "tests/fuzz/fuzz.h"

/* A config error must be one positioned line: "name:line:col: message". */
static void check_err(const struct gv_cfg_err *err)
{
    size_t n = strnlen(err->msg, sizeof(err->msg));

    FUZZ_CHECK(n > 0 && n < sizeof(err->msg));
    FUZZ_CHECK(strncmp(err->msg, "f.yaml", 6) == 0);
    FUZZ_CHECK(memchr(err->msg, '\n', n) == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gv_cfg_err err;
    struct gv_ydoc *doc = NULL;
    struct gw_config *cfg = NULL;
    gv_rc rc;

    /* Seeds name this variable in secret_key_ref, so targets load past it. */
    setenv("KT_FUZZ_SECRET", "sk-fuzz", 0);
    memset(&err, 0, sizeof(err));
    rc = gv_ydoc_load_buf("f.yaml", (const char *)data, size, &doc, &err);
    if (rc != GV_OK) {
        FUZZ_CHECK(doc == NULL);
        check_err(&err);
    }
    gv_ydoc_destroy(doc);

    memset(&err, 0, sizeof(err));
    rc = gw_config_load_buf("f.yaml", (const char *)data, size, &cfg, &err);
    if (rc == GV_OK) {
        size_t i;
        FUZZ_CHECK(cfg != NULL);
        for (i = 0; i < cfg->ntargets; i++) {
            FUZZ_CHECK(gw_config_find_target(cfg, cfg->targets[i].id) != NULL);
        }
    }
    else {
        FUZZ_CHECK(cfg == NULL);
        FUZZ_CHECK(rc == GV_ECONFIG);
        check_err(&err);
    }
    gw_config_destroy(cfg);
    return 0;
}
