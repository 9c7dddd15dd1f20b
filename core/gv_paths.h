/* core/gv_paths.h - where kt keeps its state */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GV_PATHS_H
#define GV_PATHS_H

#include <stddef.h>

#include "core/gv_rc.h"

/* The state dir every kt command agrees on: $KT_STATE_DIR, else
 * $XDG_STATE_HOME/kt, else $HOME/.local/state/kt. GV_E2BIG if it does not fit. */
gv_rc gv_state_dir_default(char *buf, size_t size);
/* mkdir -p with mode for the created directories. GV_EIO with errno from the
 * mkdir that failed; GV_EINVAL (errno ENOENT or ENAMETOOLONG) for an empty or
 * too long path. An existing path passes, whatever it is: see gv_dir_check. */
gv_rc gv_mkdir_p(const char *path, unsigned mode);
/* Whether gv_mkdir_p(path) could succeed and the directory be written to,
 * creating nothing: path is a writable, searchable directory, or its nearest
 * existing ancestor is. GV_EIO with errno set (ENOTDIR, EACCES...) otherwise;
 * GV_EINVAL for an empty or too long path. For dry runs (`kt policy check`). */
gv_rc gv_dir_check(const char *path);
/* The agent socket default: <state_dir>/agent.sock. */
gv_rc gv_agent_socket_default(const char *state_dir, char *buf, size_t size);

#endif
