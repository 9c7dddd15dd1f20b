/* core/gv_file.c - whole-file writes that survive crashes */
/* SPDX-License-Identifier: Apache-2.0 */
#include "core/gv_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

gv_rc gv_file_write_all(int fd, const void *p, size_t n)
{
    const char *s = p;
    size_t off = 0;

    while (off < n) {
        ssize_t w = write(fd, s + off, n - off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return GV_EIO;
        }
        off += (size_t)w;
    }
    return GV_OK;
}

gv_rc gv_file_replace(const char *path, const void *data, size_t len)
{
    char tmp[4200];
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd;
    gv_rc rc;

    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        return GV_E2BIG;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        return GV_EIO;
    }
    rc = gv_file_write_all(fd, data, len);
    if (rc == GV_OK && fsync(fd) != 0) {
        rc = GV_EIO;
    }
    if (close(fd) != 0 && rc == GV_OK) {
        rc = GV_EIO;
    }
    if (rc == GV_OK && rename(tmp, path) != 0) {
        rc = GV_EIO;
    }
    if (rc) {
        unlink(tmp);
    }
    return rc;
}

gv_rc gv_file_read_all(const char *path, struct gv_buf *out)
{
    char chunk[65536];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    gv_rc rc = GV_OK;
    int saved;

    if (fd < 0) {
        return errno == ENOENT ? GV_ENOTFOUND : GV_EIO;
    }
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof(chunk));
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            rc = r < 0 ? GV_EIO : GV_OK;
            break;
        }
        rc = gv_buf_append(out, chunk, (size_t)r);
        if (rc != GV_OK) {
            break;
        }
    }
    saved = errno;
    close(fd);
    errno = saved;
    return rc;
}
