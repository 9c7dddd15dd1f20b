/* exporters/ex_wandb_netrc.h - rewrite one machine's entry in a netrc file's text */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef EX_WANDB_NETRC_H
#define EX_WANDB_NETRC_H

#include <stdbool.h>
#include <stddef.h>

#include "core/gv_buf.h"
#include "core/gv_rc.h"

/* The netrc text `in` (len bytes, need not end in NUL) with every entry for
 * `machine host` replaced by
 *     machine <host>
 *       login <login>
 *       password <password>
 * (the first one in place, the others removed; appended when there was none), or,
 * with password NULL, removed. Every other entry, comment and macdef is kept
 * byte for byte. *found says whether the text had an entry for host.
 * Pure: no I/O. GV_EINVAL when host, login or password is empty or holds
 * whitespace, a control byte or '"' (netrc has no way to write those);
 * GV_E2BIG when out's cap is reached. out is reset first. */
gv_rc ex_wandb_netrc_edit(const char *in, size_t len, const char *host, const char *login,
                          const char *password, struct gv_buf *out, bool *found);

#endif
