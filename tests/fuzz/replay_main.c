/* tests/fuzz/replay_main.c - runs a fuzz target over its seed corpus and fixed-seed mutations */
/* SPDX-License-Identifier: Apache-2.0 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/gv_buf.h"
#include "core/gv_cfg.h"
#include "core/gv_mem.h"
#include "tests/fuzz/fuzz.h"

/* Inputs bigger than this are cut: the seeds are small, and the mutations
 * should stay fast enough for every test run. */
#define REPLAY_MAX_INPUT (64u * 1024u)
#define REPLAY_MAX_SEEDS 4096u

struct seed {
    uint8_t *data;
    size_t len;
};

/* xorshift64*: a fixed seed gives the same inputs on every run and machine. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

static size_t rng_below(uint64_t *s, size_t n)
{
    return n ? (size_t)(rng_next(s) % n) : 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static gv_rc read_file(const char *path, struct seed *out)
{
    struct gv_buf b;
    char chunk[4096];
    size_t n;
    FILE *fp = fopen(path, "rb");
    gv_rc rc = GV_OK;

    if (!fp) {
        return GV_EIO;
    }
    gv_buf_init(&b, REPLAY_MAX_INPUT);
    while (rc == GV_OK && (n = fread(chunk, 1, sizeof(chunk), fp)) > 0) {
        rc = gv_buf_append(&b, chunk, n);
    }
    fclose(fp);
    if (rc == GV_E2BIG) {
        rc = GV_OK; /* keep the first REPLAY_MAX_INPUT bytes */
    }
    out->len = b.len;
    out->data = gv_malloc(b.len ? b.len : 1);
    if (b.len) {
        memcpy(out->data, b.data, b.len);
    }
    gv_buf_free(&b);
    return rc;
}

/* One random edit of buf (len bytes, room for REPLAY_MAX_INPUT): flip a bit,
 * set an interesting byte, insert or delete a run, copy a run within, or
 * splice in part of another seed. Returns the new length. */
static size_t mutate(uint64_t *s, uint8_t *buf, size_t len, const struct seed *seeds, size_t nseeds)
{
    static const uint8_t special[] = {0,   0xff, 0x7f, 0x80, '\n', '\r', ':', ' ',  '"',  '\\',
                                      '{', '[',  '-',  '#',  '&',  '*',  '@', 0xc3, 0xe2, 0xf0};
    size_t pos = rng_below(s, len + 1);
    size_t n, from;
    const struct seed *o;

    switch (rng_below(s, 7)) {
    case 0:
        if (len) {
            buf[rng_below(s, len)] ^= (uint8_t)(1u << rng_below(s, 8));
        }
        break;
    case 1:
        if (len) {
            buf[rng_below(s, len)] = special[rng_below(s, sizeof(special))];
        }
        break;
    case 2: /* insert 1..8 bytes */
        n = 1 + rng_below(s, 8);
        if (len + n <= REPLAY_MAX_INPUT) {
            memmove(buf + pos + n, buf + pos, len - pos);
            for (from = 0; from < n; from++) {
                buf[pos + from] =
                    rng_below(s, 2) ? special[rng_below(s, sizeof(special))] : (uint8_t)rng_next(s);
            }
            len += n;
        }
        break;
    case 3: /* delete a run */
        if (pos < len) {
            n = 1 + rng_below(s, len - pos);
            memmove(buf + pos, buf + pos + n, len - pos - n);
            len -= n;
        }
        break;
    case 4: /* duplicate a run of this input */
        if (len) {
            from = rng_below(s, len);
            n = 1 + rng_below(s, len - from);
            if (len + n <= REPLAY_MAX_INPUT) {
                /* The run may straddle pos: copy it out before making room. */
                uint8_t *run = gv_malloc(n);
                memcpy(run, buf + from, n);
                memmove(buf + pos + n, buf + pos, len - pos);
                memcpy(buf + pos, run, n);
                gv_free(run);
                len += n;
            }
        }
        break;
    case 5: /* cut the tail */
        len = pos;
        break;
    default: /* splice in part of another seed */
        o = &seeds[rng_below(s, nseeds)];
        if (o->len) {
            from = rng_below(s, o->len);
            n = 1 + rng_below(s, o->len - from);
            if (len + n <= REPLAY_MAX_INPUT) {
                memmove(buf + pos + n, buf + pos, len - pos);
                memcpy(buf + pos, o->data + from, n);
                len += n;
            }
        }
        break;
    }
    return len;
}

/* Writes the input about to run to path, so that the one that crashed is on
 * disk afterwards (KT_FUZZ_DUMP=file). */
static void dump(const char *path, const uint8_t *p, size_t n)
{
    FILE *fp = fopen(path, "wb");

    if (fp) {
        if (fwrite(p, 1, n, fp) != n) {
            fprintf(stderr, "%s: short write\n", path);
        }
        fclose(fp);
    }
}

/* Usage: <target> CORPUS_DIR [MUTATIONS [SEED]]. Runs every file of the
 * directory, then MUTATIONS (default 2000) mutated inputs. Exit 0 when every
 * input ran; a crash or failed invariant aborts (the seed's name is on
 * stderr; with KT_FUZZ_DUMP=file a mutated input is saved there first). */
int main(int argc, char **argv)
{
    struct seed *seeds = NULL;
    char **names = NULL;
    size_t nseeds = 0, nnames = 0, i, k;
    size_t mutations = 2000;
    uint64_t state = 0x6b74667a7a21ULL;
    const char *dump_path = getenv("KT_FUZZ_DUMP");
    uint8_t *buf;
    struct dirent *de;
    DIR *d;
    int ret = 1;

    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR [MUTATIONS [SEED]]\n", argv[0]);
        return 2;
    }
    if (argc > 2 && !gv_cfg_parse_size(argv[2], &mutations)) {
        fprintf(stderr, "bad mutation count '%s'\n", argv[2]);
        return 2;
    }
    if (argc > 3) {
        size_t v;
        if (!gv_cfg_parse_size(argv[3], &v)) {
            fprintf(stderr, "bad seed '%s'\n", argv[3]);
            return 2;
        }
        state ^= (uint64_t)v;
    }
    d = opendir(argv[1]);
    if (!d) {
        fprintf(stderr, "%s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    names = gv_calloc(REPLAY_MAX_SEEDS, sizeof(*names));
    while ((de = readdir(d)) != NULL && nnames < REPLAY_MAX_SEEDS) {
        if (de->d_name[0] != '.') {
            names[nnames++] = gv_strdup(de->d_name);
        }
    }
    closedir(d);
    qsort(names, nnames, sizeof(*names), cmp_names);
    seeds = gv_calloc(nnames ? nnames : 1, sizeof(*seeds));
    for (i = 0; i < nnames; i++) {
        struct gv_buf path;
        gv_buf_init(&path, 0);
        gv_buf_appendf(&path, "%s/%s", argv[1], names[i]);
        if (read_file(path.data, &seeds[nseeds]) != GV_OK) {
            fprintf(stderr, "%s: cannot read\n", path.data);
            gv_buf_free(&path);
            goto out;
        }
        fprintf(stderr, "seed %s (%zu bytes)\n", names[i], seeds[nseeds].len);
        LLVMFuzzerTestOneInput(seeds[nseeds].data, seeds[nseeds].len);
        nseeds++;
        gv_buf_free(&path);
    }
    if (nseeds == 0) {
        fprintf(stderr, "%s: no seeds\n", argv[1]);
        goto out;
    }
    buf = gv_malloc(REPLAY_MAX_INPUT);
    for (k = 0; k < mutations; k++) {
        const struct seed *base = &seeds[rng_below(&state, nseeds)];
        size_t len = base->len, edits = 1 + rng_below(&state, 4), e;
        memcpy(buf, base->data, len);
        for (e = 0; e < edits; e++) {
            len = mutate(&state, buf, len, seeds, nseeds);
        }
        if (dump_path) {
            dump(dump_path, buf, len);
        }
        LLVMFuzzerTestOneInput(buf, len);
    }
    gv_free(buf);
    fprintf(stderr, "ran %zu seeds and %zu mutations\n", nseeds, mutations);
    ret = 0;
out:
    for (i = 0; i < nseeds; i++) {
        gv_free(seeds[i].data);
    }
    for (i = 0; i < nnames; i++) {
        gv_free(names[i]);
    }
    gv_free(seeds);
    gv_free(names);
    return ret;
}
