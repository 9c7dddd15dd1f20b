/* tests/fuzz/fuzz_injection.c - injection normaliser and scorer on arbitrary bytes */
/* SPDX-License-Identifier: Apache-2.0 */
#include <math.h>
#include <string.h>

#include "core/gv_buf.h"
#include "gateway/policies/injection/injection.h"
#include "tests/fuzz/fuzz.h"

/* The model is read-only after create and costly to build (PCRE2 JIT), so it
 * lives for the whole process, like in the gateway. */
static struct injection_model *model;
static struct injection_scratch *scratch;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    struct gv_buf norm;
    unsigned flags = 0;
    unsigned fam = 0;
    double score;
    gv_rc rc;

    if (!model) {
        FUZZ_CHECK(injection_model_create(&injection_weights_builtin, &model) == GV_OK);
        scratch = injection_scratch_create();
    }
    score = injection_score_ex(model, text, size, scratch, &fam);
    FUZZ_CHECK(!isnan(score) && score >= 0.0 && score <= 1.0);
    FUZZ_CHECK(fam < (1u << INJECTION_NFAMILIES));
    FUZZ_CHECK(injection_score(model, text, size, scratch) == score);

    gv_buf_init(&norm, 2 * size + 64);
    rc = injection_normalize(text, size, &norm, &flags, scratch);
    FUZZ_CHECK(rc == GV_OK);
    FUZZ_CHECK(norm.len <= 2 * size + 64);
    FUZZ_CHECK(flags < (1u << INJECTION_NF_COUNT));
    gv_buf_free(&norm);
    return 0;
}
