/* core/gv_rc.h - the one result type shared by every kt module */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GV_RC_H
#define GV_RC_H

typedef enum gv_rc {
    GV_OK = 0,
    GV_EINVAL,    /* bad argument or malformed input */
    GV_ENOMEM,    /* reserved: gv_malloc aborts instead */
    GV_E2BIG,     /* input-sized growth hit its cap */
    GV_EIO,       /* read/write/socket failure */
    GV_ETIMEDOUT, /* a deadline passed */
    GV_EPROTO,    /* peer spoke the protocol wrongly */
    GV_ECONFIG,   /* configuration rejected */
    GV_EUPSTREAM, /* upstream unreachable or invalid */
    GV_ENOTFOUND, /* no such thing */
    GV_EAGAIN,    /* try again later (would block, queue full) */
    GV_RC_LAST
} gv_rc;

/* A short constant description of rc; never NULL, also for out-of-range values. */
const char *gv_rc_str(gv_rc rc);

#endif
