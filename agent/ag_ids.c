/* agent/ag_ids.c - the request ids the agent has counted, so a re-emitted event counts once */
/* SPDX-License-Identifier: Apache-2.0 */
#include "agent/ag_ids.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "core/gv_file.h"
#include "core/gv_mem.h"

/* Two sorted arrays of keys: a large one and a small one that takes inserts
 * (a memmove of at most RECENT_MAX keys) and is merged into the large one when
 * full. 12 bytes per request, lookups are two binary searches. */
#define RECENT_MAX 4096u

struct ag_ids {
    uint8_t *main;
    size_t nmain, capmain;
    uint8_t *recent;
    size_t nrecent;
    uint8_t *unsaved; /* keys added since the last save, in order */
    size_t nunsaved, capunsaved;
};

/* Index of key in the sorted array, or of where it would go; *found tells. */
static size_t find(const uint8_t *arr, size_t n, const uint8_t *key, bool *found)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(arr + mid * AG_IDS_KEY, key, AG_IDS_KEY);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0) {
            lo = mid + 1;
        }
        else {
            hi = mid;
        }
    }
    *found = false;
    return lo;
}

struct ag_ids *ag_ids_create(void)
{
    struct ag_ids *ids = gv_calloc(1, sizeof(*ids));

    ids->recent = gv_malloc(RECENT_MAX * AG_IDS_KEY);
    return ids;
}

void ag_ids_destroy(struct ag_ids *ids)
{
    if (!ids) {
        return;
    }
    gv_free(ids->main);
    gv_free(ids->recent);
    gv_free(ids->unsaved);
    gv_free(ids);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

void ag_ids_key(const char *request_id, uint8_t key[AG_IDS_KEY])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    size_t i;

    if (strlen(request_id) == 4 + 2 * AG_IDS_KEY && memcmp(request_id, "req_", 4) == 0) {
        for (i = 0; i < AG_IDS_KEY; i++) {
            int hi = hexval(request_id[4 + 2 * i]);
            int lo = hexval(request_id[5 + 2 * i]);
            if (hi < 0 || lo < 0) {
                break;
            }
            key[i] = (uint8_t)(hi << 4 | lo);
        }
        if (i == AG_IDS_KEY) {
            return;
        }
    }
    EVP_Digest(request_id, strlen(request_id), md, &mdlen, EVP_sha256(), NULL);
    memcpy(key, md, AG_IDS_KEY);
}

bool ag_ids_has(const struct ag_ids *ids, const uint8_t key[AG_IDS_KEY])
{
    bool found;

    (void)find(ids->recent, ids->nrecent, key, &found);
    if (!found) {
        (void)find(ids->main, ids->nmain, key, &found);
    }
    return found;
}

/* Moves the recent keys into the large array: one merge from the back. */
static void merge_recent(struct ag_ids *ids)
{
    size_t i = ids->nmain, j = ids->nrecent, k = ids->nmain + ids->nrecent;

    if (k > ids->capmain) {
        ids->capmain = k * 2 > 1024 ? k * 2 : 1024;
        ids->main = gv_realloc(ids->main, ids->capmain * AG_IDS_KEY);
    }
    while (j > 0) {
        if (i > 0 && memcmp(ids->main + (i - 1) * AG_IDS_KEY, ids->recent + (j - 1) * AG_IDS_KEY,
                            AG_IDS_KEY) > 0) {
            memcpy(ids->main + (k - 1) * AG_IDS_KEY, ids->main + (i - 1) * AG_IDS_KEY, AG_IDS_KEY);
            i--;
        }
        else {
            memcpy(ids->main + (k - 1) * AG_IDS_KEY, ids->recent + (j - 1) * AG_IDS_KEY,
                   AG_IDS_KEY);
            j--;
        }
        k--;
    }
    ids->nmain += ids->nrecent;
    ids->nrecent = 0;
}

static void insert(struct ag_ids *ids, const uint8_t key[AG_IDS_KEY])
{
    bool found;
    size_t at;

    if (ag_ids_has(ids, key)) {
        return;
    }
    if (ids->nrecent == RECENT_MAX) {
        merge_recent(ids);
    }
    at = find(ids->recent, ids->nrecent, key, &found);
    memmove(ids->recent + (at + 1) * AG_IDS_KEY, ids->recent + at * AG_IDS_KEY,
            (ids->nrecent - at) * AG_IDS_KEY);
    memcpy(ids->recent + at * AG_IDS_KEY, key, AG_IDS_KEY);
    ids->nrecent++;
}

void ag_ids_add(struct ag_ids *ids, const uint8_t key[AG_IDS_KEY])
{
    if (ag_ids_has(ids, key)) {
        return;
    }
    insert(ids, key);
    if (ids->nunsaved == ids->capunsaved) {
        ids->capunsaved = ids->capunsaved ? ids->capunsaved * 2 : 1024;
        ids->unsaved = gv_realloc(ids->unsaved, ids->capunsaved * AG_IDS_KEY);
    }
    memcpy(ids->unsaved + ids->nunsaved * AG_IDS_KEY, key, AG_IDS_KEY);
    ids->nunsaved++;
}

/* Removes key from a sorted array if present. */
static bool erase(uint8_t *arr, size_t *n, const uint8_t *key)
{
    bool found;
    size_t at = find(arr, *n, key, &found);

    if (found) {
        memmove(arr + at * AG_IDS_KEY, arr + (at + 1) * AG_IDS_KEY, (*n - at - 1) * AG_IDS_KEY);
        (*n)--;
    }
    return found;
}

void ag_ids_remove(struct ag_ids *ids, const uint8_t key[AG_IDS_KEY])
{
    size_t i;

    for (i = ids->nunsaved; i-- > 0;) {
        if (memcmp(ids->unsaved + i * AG_IDS_KEY, key, AG_IDS_KEY) == 0) {
            memmove(ids->unsaved + i * AG_IDS_KEY, ids->unsaved + (i + 1) * AG_IDS_KEY,
                    (ids->nunsaved - i - 1) * AG_IDS_KEY);
            ids->nunsaved--;
            if (!erase(ids->recent, &ids->nrecent, key)) {
                (void)erase(ids->main, &ids->nmain, key);
            }
            return;
        }
    }
}

size_t ag_ids_count(const struct ag_ids *ids)
{
    return ids->nmain + ids->nrecent;
}

gv_rc ag_ids_load(struct ag_ids *ids, const char *path)
{
    uint8_t buf[AG_IDS_KEY * 1024];
    size_t have = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    gv_rc rc = GV_OK;

    if (fd < 0) {
        return errno == ENOENT ? GV_OK : GV_EIO;
    }
    for (;;) {
        ssize_t r = read(fd, buf + have, sizeof(buf) - have);
        size_t i, whole;
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            rc = GV_EIO;
            break;
        }
        if (r == 0) {
            break;
        }
        have += (size_t)r;
        whole = have / AG_IDS_KEY * AG_IDS_KEY;
        for (i = 0; i < whole; i += AG_IDS_KEY) {
            insert(ids, buf + i);
        }
        memmove(buf, buf + whole, have - whole);
        have -= whole;
    }
    close(fd);
    return rc;
}

gv_rc ag_ids_save(struct ag_ids *ids, const char *path, bool fsync)
{
    struct stat st;
    int fd;
    gv_rc rc = GV_OK;

    if (ids->nunsaved == 0) {
        return GV_OK;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0 || fstat(fd, &st) != 0) {
        rc = GV_EIO;
        goto out;
    }
    /* A torn key from an earlier failure is cut, so keys stay 12-byte aligned. */
    if (st.st_size % AG_IDS_KEY != 0) {
        st.st_size -= st.st_size % AG_IDS_KEY;
        if (ftruncate(fd, st.st_size) != 0) {
            rc = GV_EIO;
            goto out;
        }
    }
    if (gv_file_write_all(fd, ids->unsaved, ids->nunsaved * AG_IDS_KEY) != GV_OK ||
        (fsync && fdatasync(fd) != 0)) {
        rc = GV_EIO;
        /* Best effort: a torn tail is also cut at the next save and ignored at load. */
        if (ftruncate(fd, st.st_size) != 0) {
            goto out;
        }
        goto out;
    }
    ids->nunsaved = 0;
out:
    if (fd >= 0) {
        close(fd);
    }
    return rc;
}
