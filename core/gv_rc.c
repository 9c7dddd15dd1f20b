/* core/gv_rc.c - result code names */
/* SPDX-License-Identifier: Apache-2.0 */
#include "core/gv_rc.h"

static const char *const names[GV_RC_LAST] = {
    [GV_OK] = "ok",
    [GV_EINVAL] = "invalid argument",
    [GV_ENOMEM] = "out of memory",
    [GV_E2BIG] = "too large",
    [GV_EIO] = "i/o error",
    [GV_ETIMEDOUT] = "timed out",
    [GV_EPROTO] = "protocol error",
    [GV_ECONFIG] = "configuration error",
    [GV_EUPSTREAM] = "upstream error",
    [GV_ENOTFOUND] = "not found",
    [GV_EAGAIN] = "try again",
};

const char *gv_rc_str(gv_rc rc)
{
    if ((unsigned)rc >= GV_RC_LAST) {
        return "unknown error";
    }
    return names[rc];
}
