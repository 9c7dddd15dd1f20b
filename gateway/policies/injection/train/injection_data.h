/* gateway/policies/injection/train/injection_data.h - labelled detector data and its splits */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef INJECTION_DATA_H
#define INJECTION_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/gv_rc.h"

/* Where a row goes. HELDOUT rows are never trained or tuned on: whole held-out
 * files plus one fifth of every other file by SHA-256 of the row text. DEV is
 * another fifth the trainer may use to check itself (--dev); the final model
 * trains on TRAIN and DEV. */
enum injection_split { INJECTION_SPLIT_TRAIN = 0, INJECTION_SPLIT_DEV, INJECTION_SPLIT_HELDOUT };

struct injection_file {
    const char *name;   /* short name printed in tables */
    const char *path;   /* relative to the data directory */
    bool hard_negative; /* an over-defence trap: its false-positive rate is reported apart */
    bool heldout;       /* the whole file is held out */
    size_t rows;        /* rows kept (after removing duplicates of earlier rows) */
    size_t dups;        /* rows dropped as exact duplicates */
};

struct injection_row {
    char *text;
    size_t len;
    int label;   /* 1 attack, 0 benign */
    size_t file; /* index into files */
    enum injection_split split;
    char *lang;   /* owned; the file's language field (CyberSecEval's multilingual file
                   * has speaking_language), NULL when the file gives none */
    char *system; /* owned; the system prompt (test_case_prompt) of a CyberSecEval
                   * user turn or judge question, NULL for every other row */
    char *method; /* owned; the attack technique when the file names it (jailbreakbench's
                   * method: GCG, PAIR, JBC), NULL otherwise */
};

struct injection_dataset {
    struct injection_file *files;
    size_t nfiles;
    struct injection_row *rows;
    size_t n;
};

/* Load every file of the detector data set under `dir` (the shared
 * detectors folder). GV_ENOTFOUND when the directory or its README is absent
 * (callers skip cleanly), GV_EPROTO when a file is not in the expected shape.
 * Held-out files load first so a text seen in one is never trained on. */
gv_rc injection_data_load(const char *dir, struct injection_dataset **out);
void injection_data_free(struct injection_dataset *d);

/* Append the rows of a `label<TAB>text` file (lines starting with '#' are
 * comments) as one more file named `name`, all in the TRAIN split: hand-written
 * material that is trained on and never reported. GV_ENOTFOUND when absent. */
gv_rc injection_data_add_tsv(struct injection_dataset *d, const char *path, const char *name);

/* As injection_data_add_tsv, from memory (`len` bytes of `label<TAB>text`
 * lines): rows a generator composed. `name` is borrowed and must outlive d. */
void injection_data_add_tsv_text(struct injection_dataset *d, const char *text, size_t len,
                                 const char *name);

/* The data directory: $KT_DETECTORS_DIR, else ../shared/data/detectors
 * relative to $KT_SOURCE_DIR or the current directory. Never NULL; the result
 * is a static buffer. */
const char *injection_data_dir(void);

#endif
