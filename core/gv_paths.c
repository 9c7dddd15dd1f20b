/* core/gv_paths.c - where kt keeps its state */
/* SPDX-License-Identifier: Apache-2.0 */
#include "core/gv_paths.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

gv_rc gv_state_dir_default(char *buf, size_t size)
{
    const char *v = getenv("KT_STATE_DIR");
    int n;

    if (v && *v) {
        n = snprintf(buf, size, "%s", v);
    }
    else if ((v = getenv("XDG_STATE_HOME")) && *v) {
        n = snprintf(buf, size, "%s/kt", v);
    }
    else {
        v = getenv("HOME");
        n = snprintf(buf, size, "%s/.local/state/kt", v && *v ? v : "/tmp");
    }
    return (n < 0 || (size_t)n >= size) ? GV_E2BIG : GV_OK;
}

gv_rc gv_mkdir_p(const char *path, unsigned mode)
{
    char tmp[4096];
    size_t len = strlen(path);
    size_t i;

    if (len == 0 || len >= sizeof(tmp)) {
        errno = len ? ENAMETOOLONG : ENOENT; /* callers report strerror(errno) */
        return GV_EINVAL;
    }
    memcpy(tmp, path, len + 1);
    for (i = 1; i <= len; i++) {
        if (tmp[i] == '/' || tmp[i] == '\0') {
            char c = tmp[i];
            tmp[i] = '\0';
            if (mkdir(tmp, mode) != 0 && errno != EEXIST) {
                return GV_EIO;
            }
            tmp[i] = c;
        }
    }
    return GV_OK;
}

gv_rc gv_dir_check(const char *path)
{
    char tmp[4096];
    struct stat st;
    size_t len = strlen(path);

    if (len == 0 || len >= sizeof(tmp)) {
        errno = EINVAL;
        return GV_EINVAL;
    }
    memcpy(tmp, path, len + 1);
    for (;;) {
        if (stat(tmp, &st) == 0) {
            if (!S_ISDIR(st.st_mode)) {
                errno = ENOTDIR;
                return GV_EIO;
            }
            return access(tmp, W_OK | X_OK) == 0 ? GV_OK : GV_EIO;
        }
        if (errno != ENOENT || strcmp(tmp, ".") == 0 || strcmp(tmp, "/") == 0) {
            return GV_EIO;
        }
        /* Missing: mkdir -p would create it in its parent, so check that. */
        while (len > 1 && tmp[len - 1] == '/') {
            tmp[--len] = '\0';
        }
        while (len > 0 && tmp[len - 1] != '/') {
            tmp[--len] = '\0';
        }
        if (len == 0) {
            tmp[0] = '.';
            tmp[1] = '\0';
            len = 1;
        }
        else if (len > 1) {
            tmp[--len] = '\0';
        }
    }
}

gv_rc gv_agent_socket_default(const char *state_dir, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s/agent.sock", state_dir);
    return (n < 0 || (size_t)n >= size) ? GV_E2BIG : GV_OK;
}
