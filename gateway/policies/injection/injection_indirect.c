/* gateway/policies/injection/injection_indirect.c - the profile for tool output and documents */
/* SPDX-License-Identifier: Apache-2.0 */
#include "gateway/policies/injection/injection.h"

#include <math.h>
#include <stdbool.h>

#include "core/gv_buf.h"
#include "core/gv_mem.h"
#include "gateway/policies/injection/injection_internal.h"

/* Instructions addressed to the assistant inside data. A user may tell the
 * assistant how to answer; a web page, an e-mail or a tool result has no
 * business doing so, so in tool output these phrases are strong evidence even
 * where the direct model, trained on user turns, weighs them lightly. Matched
 * case-insensitively on the raw text (the direct model still scores the
 * normalised text, which undoes obfuscation). */
static const char *const indirect_patterns[] = {
    /* "AI assistant: ignore ...", "Note to the LLM, please say ..." */
    "\\b(?:ai|llm|assistant|chatbot|language model|gpt|chatgpt|agent|bot)s?\\s*[:,-]\\s*"
    "(?:please\\s+)?(?:ignore|disregard|forget|do not|don't|you must|you should|you will|"
    "instead|stop|tell|say|respond|reply|output|print|include|add|send|visit|open|call|"
    "summari[sz]e|translate|write)\\b",
    /* "when you read this", "if you are summarizing this page" */
    "\\b(?:when|if|once|after|while) you(?: are| were)? (?:read|see|process|summari[sz]|pars|"
    "encounter|reach|analy[sz]|scan)\\w*\\s+(?:this|these|the following|that)\\b",
    /* "Add X to your reply", "Encode your response in Base64": the answer's content
     * is the assistant's business, not the document's. Verbs that users put in
     * their own prompts to shape an answer ("begin your response with", "format
     * your response as") are left out: in the training negatives (wildguard's
     * prompts) they were all the false alarms. Inserting needs a preposition
     * before "your", so an e-mail's "please include your answer by Friday" is
     * not one. */
    "\\b(?:add|include|insert|integrate|incorporate|append|embed|mention)\\b[^.!?\\n]{1,100}?"
    "\\b(?:in|into|to|within|throughout|of) your (?:response|answer|reply|output)\\b",
    "\\b(?:encode|encrypt|translate|reverse|rewrite|represent)\\s+(?:\\w+\\s+){0,3}?"
    "your (?:response|answer|reply|output)\\b",
    /* "New instructions:", "IMPORTANT SYSTEM PROMPT:" */
    "\\b(?:new|updated|important|additional|hidden|secret|real|true) (?:system )?"
    "(?:instructions?|task|directives?|system prompt|prompt)\\s*:",
    /* An HTML comment that speaks to a model. */
    "<!--[^>]{0,300}?\\b(?:ignore|instructions?|assistant|ai|model|prompt|you must|"
    "respond|reply|answer)\\b",
};
#define NPATTERNS (sizeof(indirect_patterns) / sizeof(indirect_patterns[0]))

struct injection_indirect {
    pcre2_code *re[NPATTERNS];
};

/* The JIT's vector loads may read up to 16 bytes past the subject's end; a
 * request's strings end where json-c's allocation ends, so each text is
 * matched from a copy with PAD zero bytes after it, in chunks of at most CHUNK
 * bytes that overlap by OVERLAP (longer than any pattern's reach). */
#define CHUNK (64u * 1024u)
#define OVERLAP 512u
#define PAD 64u

struct injection_indirect_scratch {
    pcre2_match_data *md;
    struct gv_buf copy;
};

gv_rc injection_indirect_create(struct injection_indirect **out)
{
    struct injection_indirect *ind = gv_calloc(1, sizeof(*ind));
    PCRE2_SIZE erroff;
    size_t i;
    int err;
    gv_rc rc = GV_OK;

    for (i = 0; i < NPATTERNS; i++) {
        ind->re[i] = pcre2_compile((PCRE2_SPTR)indirect_patterns[i], PCRE2_ZERO_TERMINATED,
                                   PCRE2_CASELESS, &err, &erroff, NULL);
        if (!ind->re[i]) {
            rc = GV_ECONFIG; /* a build defect: the patterns are constants */
            goto out;
        }
        (void)pcre2_jit_compile(ind->re[i], PCRE2_JIT_COMPLETE);
    }
out:
    if (rc) {
        injection_indirect_destroy(ind);
        ind = NULL;
    }
    *out = ind;
    return rc;
}

void injection_indirect_destroy(struct injection_indirect *ind)
{
    size_t i;

    if (!ind) {
        return;
    }
    for (i = 0; i < NPATTERNS; i++) {
        pcre2_code_free(ind->re[i]);
    }
    gv_free(ind);
}

struct injection_indirect_scratch *injection_indirect_scratch_create(void)
{
    struct injection_indirect_scratch *s = gv_calloc(1, sizeof(*s));
    pcre2_general_context *gc = injection_pcre_context();

    /* One pair of offsets is all a yes/no match needs. */
    s->md = pcre2_match_data_create(1, gc);
    pcre2_general_context_free(gc);
    gv_buf_init(&s->copy, CHUNK + PAD);
    return s;
}

void injection_indirect_scratch_destroy(struct injection_indirect_scratch *s)
{
    if (!s) {
        return;
    }
    pcre2_match_data_free(s->md);
    gv_buf_free(&s->copy);
    gv_free(s);
}

size_t injection_indirect_hits(const struct injection_indirect *ind, const char *text, size_t len,
                               struct injection_indirect_scratch *s)
{
    static const char zeros[PAD];
    bool hit[NPATTERNS] = {false};
    size_t i, hits = 0, off = 0, take;

    do {
        take = len - off < CHUNK ? len - off : CHUNK;
        gv_buf_reset(&s->copy);
        /* Both fit: CHUNK + PAD is the buffer's cap. */
        (void)gv_buf_append(&s->copy, text + off, take);
        (void)gv_buf_append(&s->copy, zeros, PAD);
        for (i = 0; i < NPATTERNS; i++) {
            hit[i] = hit[i] || pcre2_match(ind->re[i], (PCRE2_SPTR)s->copy.data, take, 0, 0, s->md,
                                           NULL) >= 0;
        }
        off += take;
        if (off < len) {
            off -= OVERLAP;
        }
    } while (off < len);
    for (i = 0; i < NPATTERNS; i++) {
        hits += hit[i];
    }
    return hits;
}

double injection_indirect_score(double score, size_t hits)
{
    double p = score;

    if (hits == 0) {
        return score;
    }
    if (hits > INJECTION_INDIRECT_CAP) {
        hits = INJECTION_INDIRECT_CAP;
    }
    p = p < 1e-9 ? 1e-9 : p > 1.0 - 1e-9 ? 1.0 - 1e-9 : p;
    return 1.0 / (1.0 + exp(-(log(p / (1.0 - p)) + INJECTION_INDIRECT_WEIGHT * (double)hits)));
}
