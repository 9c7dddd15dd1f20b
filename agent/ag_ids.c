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

/* Keys spread over BUCKETS sorted arrays by their last two bytes (the low bits
 * of the gateway's request counter, or of a SHA-256), so an insert moves a few
 * hundred keys at most even with millions counted: 12 bytes per request, one
 * binary search per lookup. */
#define BUCKETS 65536u

struct bucket {
    uint8_t *keys;
    uint32_t n, cap;
};

struct ag_ids {
    struct bucket *b;
    size_t count;
    uint8_t *unsaved; /* keys added since the last save, in order */
    size_t nunsaved, capunsaved;
};

static struct bucket *bucket_of(const struct ag_ids *ids, const uint8_t *key)
{
    return &ids->b[(unsigned)key[AG_IDS_KEY - 2] << 8 | key[AG_IDS_KEY - 1]];
}

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

    ids->b = gv_calloc(BUCKETS, sizeof(*ids->b));
    return ids;
}

void ag_ids_destroy(struct ag_ids *ids)
{
    size_t i;

    if (!ids) {
        return;
    }
    for (i = 0; i < BUCKETS; i++) {
        gv_free(ids->b[i].keys);
    }
    gv_free(ids->b);
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
    const struct bucket *b = bucket_of(ids, key);
    bool found;

    (void)find(b->keys, b->n, key, &found);
    return found;
}

/* Adds key to its bucket; false when it was there already. */
static bool insert(struct ag_ids *ids, const uint8_t key[AG_IDS_KEY])
{
    struct bucket *b = bucket_of(ids, key);
    bool found;
    size_t at = find(b->keys, b->n, key, &found);

    if (found) {
        return false;
    }
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 4;
        b->keys = gv_realloc(b->keys, (size_t)b->cap * AG_IDS_KEY);
    }
    memmove(b->keys + (at + 1) * AG_IDS_KEY, b->keys + at * AG_IDS_KEY, (b->n - at) * AG_IDS_KEY);
    memcpy(b->keys + at * AG_IDS_KEY, key, AG_IDS_KEY);
    b->n++;
    ids->count++;
    return true;
}

void ag_ids_add(struct ag_ids *ids, const uint8_t key[AG_IDS_KEY])
{
    if (!insert(ids, key)) {
        return;
    }
    if (ids->nunsaved == ids->capunsaved) {
        ids->capunsaved = ids->capunsaved ? ids->capunsaved * 2 : 1024;
        ids->unsaved = gv_realloc(ids->unsaved, ids->capunsaved * AG_IDS_KEY);
    }
    memcpy(ids->unsaved + ids->nunsaved * AG_IDS_KEY, key, AG_IDS_KEY);
    ids->nunsaved++;
}

void ag_ids_remove(struct ag_ids *ids, const uint8_t key[AG_IDS_KEY])
{
    struct bucket *b;
    bool found;
    size_t i, at;

    for (i = ids->nunsaved; i-- > 0;) {
        if (memcmp(ids->unsaved + i * AG_IDS_KEY, key, AG_IDS_KEY) != 0) {
            continue;
        }
        memmove(ids->unsaved + i * AG_IDS_KEY, ids->unsaved + (i + 1) * AG_IDS_KEY,
                (ids->nunsaved - i - 1) * AG_IDS_KEY);
        ids->nunsaved--;
        b = bucket_of(ids, key);
        at = find(b->keys, b->n, key, &found);
        if (found) {
            memmove(b->keys + at * AG_IDS_KEY, b->keys + (at + 1) * AG_IDS_KEY,
                    (b->n - at - 1) * AG_IDS_KEY);
            b->n--;
            ids->count--;
        }
        return;
    }
}

size_t ag_ids_count(const struct ag_ids *ids)
{
    return ids->count;
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
            (void)insert(ids, buf + i);
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
