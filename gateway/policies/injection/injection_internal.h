/* gateway/policies/injection/injection_internal.h - detector internals shared by its files */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef INJECTION_INTERNAL_H
#define INJECTION_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/gv_buf.h"
#include "gateway/policies/injection/injection.h"

struct injection_rule {
    const char *name;
    enum injection_family family;
    const char *pattern; /* matched against normalised (lowercase, folded) text */
};

extern const struct injection_rule injection_rules[];
extern const size_t injection_nrules;

struct injection_model {
    const struct injection_weights *w; /* NULL: features only */
    pcre2_code **re;                   /* injection_nrules compiled rules */
};

struct injection_scratch {
    struct gv_buf fold;  /* stage A output */
    struct gv_buf norm;  /* normalised text */
    struct gv_buf b64;   /* base64 run and its decoding */
    pcre2_match_data *md;
    bool *hits;          /* injection_nrules */
};

#endif
