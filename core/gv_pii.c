/* core/gv_pii.c - PII entity type names */
/* SPDX-License-Identifier: Apache-2.0 */
#include "core/gv_pii.h"

#include <string.h>

static const char *const names[GV_PII_NTYPES] = {
    "PERSON",    "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN",  "IP_ADDRESS",
    "IBAN_CODE", "URL",           "CRYPTO",       "MAC_ADDRESS", "US_ITIN", "UK_NHS",
};

const char *gv_pii_name(int type)
{
    if (type < 0 || type >= GV_PII_NTYPES) {
        return NULL;
    }
    return names[type];
}

int gv_pii_from_name(const char *name)
{
    int i;
    for (i = 0; i < GV_PII_NTYPES; i++) {
        if (strcmp(names[i], name) == 0) {
            return i;
        }
    }
    return -1;
}
