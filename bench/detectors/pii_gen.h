/* bench/detectors/pii_gen.h - seeded generator of labelled PII sentences for the benches */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef PII_GEN_H
#define PII_GEN_H

/* Header-only on purpose: bench/CMakeLists.txt builds one executable per .c,
 * and pii_eval.c and chain_pii.c both need the same generator. Names and
 * values are invented here (not taken from the detector's tables), and
 * negatives carry the look-alikes a detector must leave alone: dates,
 * versions, prices, order numbers, invalid card and SSN numbers, sentence-
 * initial "Will"/"May"/"Mark", city names. */

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/gv_buf.h"
#include "core/gv_pii.h"

#define GEN_MAX_SPANS 16

struct gen_span {
    size_t start, end;
    int type;
};

struct gen_sent {
    struct gv_buf text;
    struct gen_span spans[GEN_MAX_SPANS];
    size_t n;
};

static uint64_t gen_state = 0x9e3779b97f4a7c15u;

static void gen_seed(uint64_t s)
{
    gen_state = s ? s : 1;
}

static uint32_t gen_rand(void)
{
    gen_state ^= gen_state >> 12;
    gen_state ^= gen_state << 25;
    gen_state ^= gen_state >> 27;
    return (uint32_t)((gen_state * 0x2545f4914f6cdd1du) >> 32);
}

static unsigned gen_below(unsigned n)
{
    return gen_rand() % n;
}

#define GEN_PICK(arr) (arr[gen_below((unsigned)(sizeof(arr) / sizeof(arr[0])))])

static const char *const gen_first[] = {
    "James",  "Maria",  "Olivia", "Liam",   "Sophie", "Noah",   "Emma",  "Lucas",
    "Chloe",  "Ethan",  "Hannah", "Daniel", "Grace",  "Samuel", "Laura", "Krisztián",
    "Šárka",  "Jožef",  "Ingrid", "Mateus", "Aarav",  "Chiara", "Yusuf", "Leila",
    "Björn",  "Zofia",  "Tomasz", "Anneke", "Priya",  "Kenji",  "Amara", "Sven",
    "Giulia", "Pieter", "Nadia",  "Oskar",  "Elif",   "Rafael", "Ana",   "Patrick"};
static const char *const gen_last[] = {
    "Smith",    "Johnson",  "Garcia",    "Miller",    "Davis",     "Martinez",   "Anderson",
    "Taylor",   "Moore",    "Jackson",   "Thompson",  "White",     "Harris",     "Clark",
    "Lewis",    "Szöllösy", "Novák",     "Kovačič",   "Lindqvist", "Oliveira",   "Sharma",
    "Rossi",    "Yilmaz",   "Haddad",    "Andersson", "Kowalski",  "Wiśniewski", "de Vries",
    "Patel",    "Tanaka",   "Okafor",    "Johansen",  "Bianchi",   "Jansen",     "Rahman",
    "Nieminen", "Demir",    "Fernández", "Costa",     "O'Connor"};
static const char *const gen_domains[] = {"example.com",   "mail.org",   "company.net",
                                          "uni-berlin.de", "shop.co.uk", "posteo.de"};
static const char *const gen_titles[] = {"Mr.", "Mrs.", "Ms.", "Dr.", "Prof."};

static void gen_put(struct gen_sent *s, const char *str)
{
    (void)gv_buf_append_str(&s->text, str);
}

static void gen_mark(struct gen_sent *s, size_t start, int type)
{
    if (s->n < GEN_MAX_SPANS) {
        s->spans[s->n].start = start;
        s->spans[s->n].end = s->text.len;
        s->spans[s->n].type = type;
        s->n++;
    }
}

static void gen_digits(char *out, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        out[i] = (char)('0' + gen_below(10));
    }
    out[n] = '\0';
}

static void gen_lower_ascii(char *dst, size_t cap, const char *src)
{
    size_t k = 0;

    for (; *src && k + 1 < cap; src++) {
        unsigned char c = (unsigned char)*src;
        if (c >= 'A' && c <= 'Z') {
            dst[k++] = (char)(c + 32);
        }
        else if (c >= 'a' && c <= 'z') {
            dst[k++] = (char)c;
        }
    }
    dst[k] = '\0';
}

static void gen_person(struct gen_sent *s, int form)
{
    size_t st = s->text.len;

    if (form == 0) {
        gen_put(s, GEN_PICK(gen_first));
    }
    else if (form == 1) {
        gen_put(s, GEN_PICK(gen_last));
    }
    else {
        gen_put(s, GEN_PICK(gen_first));
        gen_put(s, " ");
        gen_put(s, GEN_PICK(gen_last));
    }
    gen_mark(s, st, GV_PII_PERSON);
}

static void gen_email(struct gen_sent *s)
{
    char a[32], b[32];
    size_t st = s->text.len;

    gen_lower_ascii(a, sizeof(a), GEN_PICK(gen_first));
    gen_lower_ascii(b, sizeof(b), GEN_PICK(gen_last));
    if (gen_below(2)) {
        (void)gv_buf_appendf(&s->text, "%s.%s@%s", a, b, GEN_PICK(gen_domains));
    }
    else {
        (void)gv_buf_appendf(&s->text, "%s%s%u@%s", a, b, gen_below(100), GEN_PICK(gen_domains));
    }
    gen_mark(s, st, GV_PII_EMAIL_ADDRESS);
}

static void gen_phone(struct gen_sent *s)
{
    char a[8], b[8], c[8];
    size_t st = s->text.len;
    unsigned f = gen_below(6);

    gen_digits(a, 3);
    gen_digits(b, 3);
    gen_digits(c, 4);
    a[0] = (char)('2' + gen_below(8));
    b[0] = (char)('2' + gen_below(8));
    switch (f) {
    case 0:
        (void)gv_buf_appendf(&s->text, "(%s) %s-%s", a, b, c);
        break;
    case 1:
        (void)gv_buf_appendf(&s->text, "+1-%s-%s-%s", a, b, c);
        break;
    case 2:
        (void)gv_buf_appendf(&s->text, "%s.%s.%s", a, b, c);
        break;
    case 3:
        (void)gv_buf_appendf(&s->text, "+44 20 %s %s", c, c);
        break;
    case 4:
        (void)gv_buf_appendf(&s->text, "07700 9%s%s", a, b + 1);
        break;
    default:
        (void)gv_buf_appendf(&s->text, "%s-%s-%s", a, b, c);
        break;
    }
    gen_mark(s, st, GV_PII_PHONE_NUMBER);
}

static void gen_luhn_complete(char *d, size_t n)
{
    unsigned sum = 0;
    size_t i;
    int dbl = 1;

    for (i = n - 1; i-- > 0;) {
        unsigned v = (unsigned)(d[i] - '0');
        if (dbl) {
            v *= 2;
            if (v > 9) {
                v -= 9;
            }
        }
        sum += v;
        dbl = !dbl;
    }
    d[n - 1] = (char)('0' + (10 - sum % 10) % 10);
}

/* valid=0 makes a wrong check digit: a negative. */
static void gen_card(struct gen_sent *s, int valid)
{
    char d[20];
    size_t st = s->text.len, n = 16, i;
    unsigned f = gen_below(4);

    gen_digits(d, 19);
    if (f == 0) {
        d[0] = '4';
    }
    else if (f == 1) {
        d[0] = '5';
        d[1] = (char)('1' + gen_below(5));
    }
    else if (f == 2) {
        d[0] = '3';
        d[1] = gen_below(2) ? '4' : '7';
        n = 15;
    }
    else {
        memcpy(d, "6011", 4);
    }
    d[n] = '\0';
    gen_luhn_complete(d, n);
    if (!valid) {
        d[n - 1] = (char)('0' + (d[n - 1] - '0' + 1 + gen_below(9)) % 10);
    }
    if (n == 16 && gen_below(2)) {
        for (i = 0; i < 16; i += 4) {
            (void)gv_buf_appendf(&s->text, "%s%.4s", i ? (f == 3 ? "-" : " ") : "", d + i);
        }
    }
    else {
        gen_put(s, d);
    }
    if (valid) {
        gen_mark(s, st, GV_PII_CREDIT_CARD);
    }
}

static void gen_ssn(struct gen_sent *s, int valid)
{
    unsigned area = 1 + gen_below(899), group = 1 + gen_below(99), serial = 1 + gen_below(9999);
    size_t st = s->text.len;

    if (area == 666) {
        area = 667;
    }
    if (!valid) {
        unsigned k = gen_below(3);
        area = k == 0 ? 0 : k == 1 ? 666 : area;
        group = k == 2 ? 0 : group;
    }
    (void)gv_buf_appendf(&s->text, "%03u-%02u-%04u", area, group, serial);
    if (valid) {
        gen_mark(s, st, GV_PII_US_SSN);
    }
}

static void gen_ip(struct gen_sent *s)
{
    size_t st = s->text.len;

    if (gen_below(4) == 0) {
        (void)gv_buf_appendf(&s->text, "2001:db8:%x:%x::%x", gen_below(65536), gen_below(65536),
                             1 + gen_below(4095));
    }
    else {
        (void)gv_buf_appendf(&s->text, "%u.%u.%u.%u", 1 + gen_below(223), gen_below(256),
                             gen_below(256), 1 + gen_below(254));
    }
    gen_mark(s, st, GV_PII_IP_ADDRESS);
}

static void gen_iban(struct gen_sent *s)
{
    static const struct {
        const char *cc;
        size_t letters, digits;
    } fmt[] = {{"GB", 4, 14}, {"DE", 0, 18}, {"FR", 0, 23},
               {"NL", 4, 10}, {"ES", 0, 20}, {"IT", 1, 22}};
    char bban[40], num[100], out[64];
    size_t k = gen_below(6), i, nl = fmt[k].letters, nd = fmt[k].digits, m = 0, st = s->text.len;
    unsigned rem = 0;

    for (i = 0; i < nl; i++) {
        bban[i] = (char)('A' + gen_below(26));
    }
    gen_digits(bban + nl, nd);
    /* check digits: BBAN + country (letters as numbers) + "00", 98 - mod 97 */
    for (i = 0; i < nl + nd; i++) {
        m += (size_t)snprintf(num + m, sizeof(num) - m, bban[i] >= 'A' ? "%d" : "%c",
                              bban[i] >= 'A' ? bban[i] - 'A' + 10 : bban[i]);
    }
    m += (size_t)snprintf(num + m, sizeof(num) - m, "%d%d00", fmt[k].cc[0] - 'A' + 10,
                          fmt[k].cc[1] - 'A' + 10);
    for (i = 0; i < m; i++) {
        rem = (rem * 10 + (unsigned)(num[i] - '0')) % 97;
    }
    snprintf(out, sizeof(out), "%s%02u%s", fmt[k].cc, 98 - rem, bban);
    if (gen_below(2)) {
        size_t olen = strlen(out);
        for (i = 0; i < olen; i += 4) {
            (void)gv_buf_appendf(&s->text, "%s%.4s", i ? " " : "", out + i);
        }
    }
    else {
        gen_put(s, out);
    }
    gen_mark(s, st, GV_PII_IBAN_CODE);
}

static void gen_url(struct gen_sent *s)
{
    static const char *const urls[] = {"https://www.example.com/account?id=42",
                                       "http://intranet.company.net/wiki/Runbook",
                                       "https://github.com/org/repo/issues/17",
                                       "www.shop.co.uk/item/5521", "https://docs.example.org/"};
    size_t st = s->text.len;

    gen_put(s, GEN_PICK(urls));
    gen_mark(s, st, GV_PII_URL);
}

/* One sentence. Returns it in s (reset first). */
static void gen_sentence(struct gen_sent *s)
{
    static const char *const negatives[] = {
        "The release v2.3.1 shipped on 2024-03-15 at 10:30:45 with 1,299 fixes.",
        "May I ask whether the new policy applies to all teams?",
        "Will this work on Python 3.11 or should we pin 3.9?",
        "Mark the box if the total exceeds $1,250.00 or 15% of revenue.",
        "Order #48213 was split into 3 parcels weighing 2.5 kg each.",
        "Paris and London both reported growth of 4.2 percent in 2023.",
        "The model scored 0.8734 on the benchmark after 12000 steps.",
        "Call the function with a batch size of 64 and 8 workers.",
        "Grace periods of 30 days apply to invoices dated 12/05/2023.",
        "Our Q3 report covers 1999 2000 and 2001 in the appendix.",
        "Use port 8080 and a timeout of 2500 ms for the health check.",
        "The Summer Festival in Berlin drew 120000 visitors.",
        "Please summarize the attached quarterly report in five bullet points.",
        "Set learning_rate=3e-4 and warmup=500 before epoch 2.",
    };
    unsigned k = gen_below(24);

    gv_buf_reset(&s->text);
    s->n = 0;
    switch (k) {
    case 0:
        gen_put(s, "Hi, my name is ");
        gen_person(s, 2);
        gen_put(s, " and my email is ");
        gen_email(s);
        gen_put(s, ".");
        break;
    case 1:
        gen_put(s, "Please call me at ");
        gen_phone(s);
        gen_put(s, " after 5pm.");
        break;
    case 2:
        gen_put(s, "My card number is ");
        gen_card(s, 1);
        gen_put(s, ", expiring 09/27.");
        break;
    case 3:
        gen_put(s, "Her SSN is ");
        gen_ssn(s, 1);
        gen_put(s, " according to the form.");
        break;
    case 4:
        gen_put(s, "The server at ");
        gen_ip(s);
        gen_put(s, " keeps timing out.");
        break;
    case 5:
        gen_put(s, "Wire the refund to ");
        gen_iban(s);
        gen_put(s, " please.");
        break;
    case 6:
        gen_put(s, "Dear ");
        gen_person(s, 0);
        gen_put(s, ",\nthe logs are at ");
        gen_url(s);
        gen_put(s, " for review.");
        break;
    case 7:
        gen_put(s, GEN_PICK(gen_titles));
        gen_put(s, " ");
        gen_person(s, 1);
        gen_put(s, " will review the draft tomorrow.");
        break;
    case 8:
        gen_put(s, "I met ");
        gen_person(s, 2);
        gen_put(s, " at the conference and we talked about ");
        gen_person(s, 2);
        gen_put(s, "'s paper.");
        break;
    case 9:
        gen_put(s, "Thanks for the update.\n\nBest regards,\n");
        gen_person(s, 2);
        break;
    case 10:
        gen_put(s, "cc: ");
        gen_person(s, 2);
        gen_put(s, ", ");
        gen_email(s);
        break;
    case 11:
        gen_person(s, 2);
        gen_put(s, " said the test card ");
        gen_card(s, 0);
        gen_put(s, " was declined.");
        break;
    case 12:
        gen_put(s, "The form rejected ");
        gen_ssn(s, 0);
        gen_put(s, " as an invalid number.");
        break;
    case 13:
        gen_put(s, "Contact ");
        gen_person(s, 2);
        gen_put(s, " on ");
        gen_phone(s);
        gen_put(s, " or ");
        gen_email(s);
        gen_put(s, ".");
        break;
    case 14:
        gen_put(s, "Ask ");
        gen_person(s, 0);
        gen_put(s, " to reset the password for host ");
        gen_ip(s);
        gen_put(s, ".");
        break;
    default:
        gen_put(s, negatives[gen_below((unsigned)(sizeof(negatives) / sizeof(negatives[0])))]);
        break;
    }
}

#endif
