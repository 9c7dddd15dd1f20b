/* core/gv_file.h - whole-file reads, and whole-file writes that survive crashes */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GV_FILE_H
#define GV_FILE_H

#include <stddef.h>

#include "core/gv_buf.h"
#include "core/gv_rc.h"

/* Appends the whole of path to out (which may already hold bytes), reading with read(2) and
 * retrying on EINTR. GV_ENOTFOUND when path does not exist, GV_E2BIG when out's cap is reached
 * (out keeps what fit), GV_EIO on any other failure; errno then tells why. Blocking: never on
 * a request path. */
gv_rc gv_file_read_all(const char *path, struct gv_buf *out);

/* write(2) until all n bytes are written, retrying on EINTR. GV_EIO otherwise. */
gv_rc gv_file_write_all(int fd, const void *p, size_t n);

/* Replace `path` with data atomically: write "<path>.tmp" (mode 0600), fsync it,
 * rename it over path. A crash leaves either the old or the new content, never
 * a mix. GV_E2BIG when the temp name does not fit, GV_EIO on any I/O failure
 * (the temp file is removed). Blocking: never call on a request path. */
gv_rc gv_file_replace(const char *path, const void *data, size_t len);

#endif
