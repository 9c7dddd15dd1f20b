/* core/gv_pii.h - the PII entity types kt knows, with Presidio's names */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GV_PII_H
#define GV_PII_H

/* The order is part of the event wire format (counts are indexed by it):
 * append new types at the end only. */
enum gv_pii_type {
    GV_PII_PERSON = 0,
    GV_PII_EMAIL_ADDRESS,
    GV_PII_PHONE_NUMBER,
    GV_PII_CREDIT_CARD,
    GV_PII_US_SSN,
    GV_PII_IP_ADDRESS,
    GV_PII_IBAN_CODE,
    GV_PII_URL,
    GV_PII_CRYPTO,
    GV_PII_MAC_ADDRESS,
    GV_PII_US_ITIN,
    GV_PII_UK_NHS,
    GV_PII_NTYPES
};

/* "PERSON", "EMAIL_ADDRESS", ...; NULL when out of range. */
const char *gv_pii_name(int type);
/* Type for a Presidio entity name (exact, upper case); -1 when unknown. */
int gv_pii_from_name(const char *name);

#endif
