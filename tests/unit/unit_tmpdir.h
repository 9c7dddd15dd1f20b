/* tests/unit/unit_tmpdir.h - a test's own temp dir: make it, remove it with all it holds */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KT_UNIT_TMPDIR_H
#define KT_UNIT_TMPDIR_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Size of the buffers below: TMPDIR plus the template fits in it. */
#define UNIT_TMPDIR_MAX 256

/* mkdtemp under $TMPDIR (or /tmp) into buf; aborts when it cannot, since no test
 * that wants a dir can go on without one. */
static inline void unit_tmpdir_make(char *buf, size_t size)
{
    const char *t = getenv("TMPDIR");
    snprintf(buf, size, "%s/kt-gov-test-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(buf)) {
        abort();
    }
}

/* rm -r of dir, in-process: no shell, so a path with a quote in it is still removed whole. */
static inline void unit_tmpdir_remove(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char p[1024];
    struct stat st;

    if (!d) {
        return;
    }
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }
        snprintf(p, sizeof(p), "%.500s/%.500s", dir, de->d_name);
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
            unit_tmpdir_remove(p);
        }
        else {
            unlink(p);
        }
    }
    closedir(d);
    rmdir(dir);
}

/* For cmocka_unit_test_setup_teardown: *state is a fresh temp dir (char *),
 * removed with all it holds after the test. */
static inline int unit_tmpdir_setup(void **state)
{
    char *dir = malloc(UNIT_TMPDIR_MAX);

    unit_tmpdir_make(dir, UNIT_TMPDIR_MAX);
    *state = dir;
    return 0;
}

static inline int unit_tmpdir_teardown(void **state)
{
    unit_tmpdir_remove(*state);
    free(*state);
    return 0;
}

/* A case of a tests[] table that runs in its own temp dir, *state. */
#define UNIT_TMPDIR_TEST(t)                                                                        \
    cmocka_unit_test_setup_teardown(t, unit_tmpdir_setup, unit_tmpdir_teardown)

#endif
