/* gateway/policies/injection/injection_norm.c - text normalisation before matching */
/* SPDX-License-Identifier: Apache-2.0 */
#include "gateway/policies/injection/injection.h"
#include "gateway/policies/injection/injection_internal.h"

#include <openssl/evp.h>
#include <string.h>

/* Base64 runs shorter than this are ordinary tokens (hashes, ids, words). */
#define B64_MIN_RUN 20u
/* At most this many base64 characters per run and runs per text are decoded,
 * which bounds the work an attacker can ask for. */
#define B64_MAX_RUN (16u * 1024u)
#define B64_MAX_RUNS 8u

/* Base letters of U+00C0..U+00FF ('\0': keep the code point; '*' two letters). */
static const char latin1_fold[64] = "aaaaaa*ceeeeiiiidnooooo\0ouuuuy**"
                                    "aaaaaa*ceeeeiiiidnooooo\0ouuuuy*y";

/* Base letters of U+0100..U+017F, in code point order. */
static const char latin_ext_a_fold[128] = "aaaaaaccccccccddddeeeeeeeeeegggggggghhhhiiiiiiiiii"
                                          "iijjkkkllllllllllnnnnnnnnnoooooooorrrrrrssssssss"
                                          "ttttttuuuuuuuuuuuuwwyyyzzzzzzs";

/* Byte classes, one table load instead of chains of range tests in the
 * per-byte loops (the normaliser touches every byte three times). */
#define CL_ALNUM 0x01u /* [a-z0-9] */
#define CL_WORD 0x02u  /* [a-z0-9] and every byte >= 0x80 */
#define CL_TOK 0x04u   /* [a-z0-9@$]: a token put_token may map */
#define CL_B64 0x08u   /* standard or URL-safe base64 alphabet */
#define CL_SEP 0x10u   /* separators of spaced-out letters */
static const unsigned char byte_class[256] = {
    ['0' ... '9'] = CL_ALNUM | CL_WORD | CL_TOK | CL_B64,
    ['a' ... 'z'] = CL_ALNUM | CL_WORD | CL_TOK | CL_B64,
    ['A' ... 'Z'] = CL_B64,
    ['@'] = CL_TOK,
    ['$'] = CL_TOK,
    ['+'] = CL_B64 | CL_SEP,
    ['/'] = CL_B64 | CL_SEP,
    ['-'] = CL_B64 | CL_SEP,
    ['_'] = CL_B64 | CL_SEP,
    [' '] = CL_SEP,
    ['.'] = CL_SEP,
    ['*'] = CL_SEP,
    ['|'] = CL_SEP,
    [','] = CL_SEP,
    [0x80 ... 0xFF] = CL_WORD,
};

/* ASCII folded for matching: A-Z lowercased, control characters and DEL to a
 * space, everything else itself (stage A's ASCII path). */
static const unsigned char ascii_fold[128] = {
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x2B, 0x2C, 0x2D, 0x2E, 0x2F,
    0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x3B, 0x3C, 0x3D, 0x3E, 0x3F,
    0x40, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x6B, 0x6C, 0x6D, 0x6E, 0x6F,
    0x70, 0x71, 0x72, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x5B, 0x5C, 0x5D, 0x5E, 0x5F,
    0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x6B, 0x6C, 0x6D, 0x6E, 0x6F,
    0x70, 0x71, 0x72, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x7B, 0x7C, 0x7D, 0x7E, 0x20,
};

static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    uint32_t c = s[0];
    size_t need, i;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        c &= 0x1F;
    }
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        c &= 0x0F;
    }
    else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        c &= 0x07;
    }
    else {
        *cp = 0xFFFD;
        return 1;
    }
    if (need >= n) {
        *cp = 0xFFFD;
        return 1;
    }
    for (i = 1; i <= need; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = 0xFFFD;
            return 1;
        }
        c = (c << 6) | (s[i] & 0x3Fu);
    }
    /* Overlong forms and surrogates are invalid: treat them as one bad byte. */
    if ((need == 2 && c < 0x800) || (need == 3 && (c < 0x10000 || c > 0x10FFFF)) ||
        (c >= 0xD800 && c <= 0xDFFF)) {
        *cp = 0xFFFD;
        return 1;
    }
    *cp = c;
    return need + 1;
}

/* Write c as UTF-8 at o; returns the bytes written (1..4). */
static size_t put_utf8(unsigned char *o, uint32_t c)
{
    if (c < 0x80) {
        o[0] = (unsigned char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (unsigned char)(0xC0 | (c >> 6));
        o[1] = (unsigned char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (c >> 12));
        o[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (c >> 18));
    o[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (c & 0x3F));
    return 4;
}

/* Make room for n more bytes so a stage can write through a pointer: every
 * stage's output is bounded by its input (see injection_normalize), so one
 * check up front replaces a check per byte. */
static gv_rc reserve(struct gv_buf *b, const void *any, size_t n)
{
    gv_rc rc;

    /* Scratch buffers keep their storage between calls: usually no work. */
    if (n <= b->max - b->len && b->len + n + 1 <= b->cap) {
        return GV_OK;
    }
    rc = gv_buf_append(b, any, n);
    if (rc == GV_OK) {
        b->len -= n;
    }
    return rc;
}

static bool is_invisible(uint32_t c)
{
    return c == 0xAD || c == 0x34F || c == 0x61C || c == 0x115F || c == 0x1160 || c == 0x17B4 ||
           c == 0x17B5 || (c >= 0x180B && c <= 0x180E) || (c >= 0x200B && c <= 0x200F) ||
           (c >= 0x202A && c <= 0x202E) || (c >= 0x2060 && c <= 0x206F) ||
           (c >= 0xFE00 && c <= 0xFE0F) || c == 0xFEFF || (c >= 0xE0100 && c <= 0xE01EF);
}

static bool is_space_cp(uint32_t c)
{
    return c < 0x20 || c == 0x7F || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000 || c == 0xFFFD;
}

/* Lowercase Cyrillic/Greek look-alikes of Latin letters; 0 when none. */
static uint32_t confusable(uint32_t c)
{
    switch (c) {
    case 0x430:
    case 0x3B1:
        return 'a';
    case 0x432:
    case 0x3B2:
        return 'b';
    case 0x441:
    case 0x3F2:
        return 'c';
    case 0x501:
        return 'd';
    case 0x435:
    case 0x451:
    case 0x3B5:
        return 'e';
    case 0x261:
        return 'g';
    case 0x43D:
    case 0x4BB:
        return 'h';
    case 0x456:
    case 0x3B9:
        return 'i';
    case 0x458:
    case 0x3F3:
        return 'j';
    case 0x43A:
    case 0x3BA:
        return 'k';
    case 0x43C:
        return 'm';
    case 0x3B7:
        return 'n';
    case 0x43E:
    case 0x3BF:
        return 'o';
    case 0x440:
    case 0x3C1:
        return 'p';
    case 0x455:
        return 's';
    case 0x442:
    case 0x3C4:
        return 't';
    case 0x3C5:
        return 'u';
    case 0x3BD:
        return 'v';
    case 0x3C9:
        return 'w';
    case 0x445:
    case 0x3C7:
        return 'x';
    case 0x443:
    case 0x4AF:
    case 0x3B3:
        return 'y';
    default:
        return 0;
    }
}

/* Map one code point: up to 3 output code points, 0 to drop it. Handles case,
 * compatibility forms, diacritics and invisible characters. */
static size_t map_cp(uint32_t c, uint32_t o[3], unsigned *flags)
{
    uint32_t r;

    if (c < 0x80) {
        o[0] = (c >= 'A' && c <= 'Z') ? c + 32 : (is_space_cp(c) ? ' ' : c);
        return 1;
    }
    if (is_space_cp(c)) {
        o[0] = ' ';
        return 1;
    }
    if (is_invisible(c)) {
        *flags |= INJECTION_NF_ZERO_WIDTH;
        return 0;
    }
    if (c >= 0x300 && c <= 0x36F) { /* combining marks: decomposed accents */
        return 0;
    }
    if (c >= 0xE0000 && c <= 0xE007F) { /* tag characters smuggle invisible ASCII */
        *flags |= INJECTION_NF_TAGS;
        if (c >= 0xE0020 && c <= 0xE007E) {
            return map_cp(c - 0xE0000, o, flags);
        }
        return 0;
    }
    if (c >= 0xC0 && c <= 0xFF) {
        char f = latin1_fold[c - 0xC0];
        if (f == '*') {
            if (c == 0xC6 || c == 0xE6) {
                o[0] = 'a';
                o[1] = 'e';
            }
            else if (c == 0xDE || c == 0xFE) {
                o[0] = 't';
                o[1] = 'h';
            }
            else {
                o[0] = 's';
                o[1] = 's';
            }
            return 2;
        }
        o[0] = f ? (uint32_t)f : c;
        return 1;
    }
    if (c >= 0x100 && c <= 0x17F) {
        o[0] = (uint32_t)latin_ext_a_fold[c - 0x100];
        return 1;
    }
    if (c >= 0xFF01 && c <= 0xFF5E) {
        /* Fullwidth punctuation is ordinary in CJK text; only letters and
         * digits are evidence of an evasion. */
        r = c - 0xFEE0;
        if ((r >= 'A' && r <= 'Z') || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9')) {
            *flags |= INJECTION_NF_COMPAT;
        }
        return map_cp(r, o, flags);
    }
    if (c >= 0x1D400 && c <= 0x1D6A3) {
        r = (c - 0x1D400) % 52;
        *flags |= INJECTION_NF_COMPAT;
        o[0] = r < 26 ? 'a' + r : 'a' + r - 26;
        return 1;
    }
    if (c >= 0x1D7CE && c <= 0x1D7FF) {
        *flags |= INJECTION_NF_COMPAT;
        o[0] = '0' + (c - 0x1D7CE) % 10;
        return 1;
    }
    if ((c >= 0x24B6 && c <= 0x24CF) || (c >= 0x24D0 && c <= 0x24E9) ||
        (c >= 0x249C && c <= 0x24B5)) {
        *flags |= INJECTION_NF_COMPAT;
        o[0] = 'a' + (c >= 0x24D0 ? c - 0x24D0 : (c >= 0x24B6 ? c - 0x24B6 : c - 0x249C));
        return 1;
    }
    if ((c >= 0x1F130 && c <= 0x1F149) || (c >= 0x1F150 && c <= 0x1F169) ||
        (c >= 0x1F170 && c <= 0x1F189)) {
        *flags |= INJECTION_NF_COMPAT;
        o[0] = 'a' + (c - 0x1F130) % 32;
        return 1;
    }
    if (c >= 0x1F1E6 && c <= 0x1F1FF) { /* regional indicators: also real flags */
        o[0] = 'a' + (c - 0x1F1E6);
        return 1;
    }
    if (c >= 0xFB00 && c <= 0xFB06) {
        static const char *const lig[] = {"ff", "fi", "fl", "ffi", "ffl", "st", "st"};
        const char *l = lig[c - 0xFB00];
        size_t i;
        for (i = 0; l[i]; i++) {
            o[i] = (uint32_t)l[i];
        }
        return i;
    }
    if (c == 0x2018 || c == 0x2019 || c == 0x201B || c == 0x2032) {
        o[0] = '\'';
        return 1;
    }
    if (c == 0x201C || c == 0x201D || c == 0x201F || c == 0x2033) {
        o[0] = '"';
        return 1;
    }
    if (c >= 0x2010 && c <= 0x2015) {
        o[0] = '-';
        return 1;
    }
    if (c >= 0x410 && c <= 0x42F) {
        c += 0x20;
    }
    else if (c >= 0x400 && c <= 0x40F) {
        c += 0x50;
    }
    else if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) {
        c += 0x20;
    }
    o[0] = c;
    return 1;
}

static bool is_word_cp(uint32_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c >= 0xC0 && c != 0xD7 && c != 0xF7);
}

/* A word just written at [w, *o) mixes Latin letters with look-alikes from
 * other scripts: rewrite the look-alikes in place (each shrinks to 1 byte). */
static void fix_word(unsigned char *w, unsigned char **o, unsigned *flags)
{
    unsigned char *r = w, *end = *o;
    uint32_t cp, l;

    *flags |= INJECTION_NF_CONFUSABLE;
    while (r < end) {
        size_t k = utf8_decode(r, (size_t)(end - r), &cp);
        r += k;
        l = confusable(cp);
        w += put_utf8(w, l ? l : cp);
    }
    *o = w;
}

/* Stage A: code points -> folded lowercase UTF-8 (spaces kept, not collapsed).
 * Look-alike letters are mapped only inside words that also hold Latin
 * letters, so Russian or Greek text itself stays as it is. */
static gv_rc stage_fold(const char *text, size_t len, struct gv_buf *out, unsigned *flags)
{
    const unsigned char *s = (const unsigned char *)text;
    unsigned char *o, *o0, *w = NULL;
    bool latin = false, conf = false;
    size_t i = 0, k, m;
    uint32_t cp, oc[3];
    gv_rc rc;

    rc = reserve(out, text, len);
    if (rc) {
        return rc;
    }
    o = o0 = (unsigned char *)out->data + out->len;
    while (i < len) {
        unsigned char c = s[i];
        if (c < 0x80 && !(w && conf)) {
            /* No look-alike waits in the current word, and ASCII brings none:
             * map the whole run, then set the word state its end leaves (the
             * trailing letters and digits, which may continue a word begun
             * before the run). */
            unsigned char *r = o, *p;
            /* A copy of o: fix_word takes o's address, which keeps o in memory. */
            unsigned char *q = o;
            uint64_t x;
            /* Eight bytes at a time while none has the high bit set. */
            while (i + 8 <= len) {
                memcpy(&x, s + i, 8);
                if (x & 0x8080808080808080ULL) {
                    break;
                }
#pragma GCC unroll 8
                for (k = 0; k < 8; k++) {
                    q[k] = ascii_fold[s[i + k]];
                }
                q += 8;
                i += 8;
            }
            while (i < len && s[i] < 0x80) {
                *q++ = ascii_fold[s[i++]];
            }
            o = q;
            for (p = o; p > r && (byte_class[p[-1]] & CL_ALNUM); p--) {
            }
            if (p == o) {
                w = NULL;
                continue;
            }
            if (p > r || !w) {
                w = p;
                latin = conf = false;
            }
            for (; p < o; p++) {
                latin |= *p >= 'a';
            }
            continue;
        }
        if (c < 0x80) {
            c = ascii_fold[c];
            i++;
            if (byte_class[c] & CL_ALNUM) {
                if (!w) {
                    w = o;
                    latin = conf = false;
                }
                latin |= c >= 'a';
                *o++ = c;
                continue;
            }
            if (w && latin && conf) {
                fix_word(w, &o, flags);
            }
            w = NULL;
            *o++ = c;
            continue;
        }
        i += utf8_decode(s + i, len - i, &cp);
        m = map_cp(cp, oc, flags);
        for (k = 0; k < m; k++) {
            if (is_word_cp(oc[k])) {
                if (!w) {
                    w = o;
                    latin = conf = false;
                }
                if (oc[k] >= 'a' && oc[k] <= 'z') {
                    latin = true;
                }
                else if (confusable(oc[k])) {
                    conf = true;
                }
            }
            else {
                if (w && latin && conf) {
                    fix_word(w, &o, flags);
                }
                w = NULL;
            }
            o += put_utf8(o, oc[k]);
        }
    }
    if (w && latin && conf) {
        fix_word(w, &o, flags);
    }
    out->len += (size_t)(o - o0);
    out->data[out->len] = '\0';
    return GV_OK;
}

static inline bool alnum(unsigned char c)
{
    return byte_class[c] & CL_ALNUM;
}

static inline bool wordbyte(unsigned char c)
{
    return byte_class[c] & CL_WORD;
}

static inline bool spaced_sep(unsigned char c)
{
    return byte_class[c] & CL_SEP;
}

static int leet_letter(unsigned char c)
{
    switch (c) {
    case '0':
        return 'o';
    case '1':
        return 'i';
    case '3':
        return 'e';
    case '4':
        return 'a';
    case '5':
        return 's';
    case '7':
        return 't';
    case '@':
        return 'a';
    case '$':
        return 's';
    default:
        return 0;
    }
}

/* A single ASCII letter or digit standing alone at t[j]. */
static bool single_at(const unsigned char *t, size_t n, size_t j)
{
    return j < n && alnum(t[j]) && (j + 1 == n || !wordbyte(t[j + 1])) &&
           (j == 0 || !wordbyte(t[j - 1]));
}

/* Write one token t[a..b) of [a-z0-9@$] with leetspeak mapped when it is a word
 * with digits inside it ("1gn0r3", "h4ck"), not a number or a name like mp3. */
static unsigned char *put_token(unsigned char *o, const unsigned char *t, size_t a, size_t b,
                                unsigned *flags)
{
    size_t i, letters = 0, other = 0;
    bool interior = false, leet_digit = false;

    /* Most tokens are plain lowercase words: copy them without classifying. */
    for (i = a; i < b && t[i] >= 'a' && t[i] <= 'z'; i++) {
        *o++ = t[i];
    }
    if (i == b) {
        return o;
    }
    o -= i - a;
    for (i = a; i < b; i++) {
        if (t[i] >= 'a' && t[i] <= 'z') {
            letters++;
        }
        else if (leet_letter(t[i])) {
            if (t[i] != '@' && t[i] != '$') {
                leet_digit = true;
            }
            if (i > a && i + 1 < b &&
                !(t[i - 1] >= '0' && t[i - 1] <= '9' && t[i + 1] >= '0' && t[i + 1] <= '9')) {
                interior = true;
            }
        }
        else {
            other++;
        }
    }
    /* A leading digit on an all-letter word counts too ("4ll"), except ordinals. */
    if (!interior && leet_digit && t[a] >= '0' && t[a] <= '9' && letters == b - a - 1 &&
        !(b - a == 3 && (memcmp(t + a + 1, "st", 2) == 0 || memcmp(t + a + 1, "nd", 2) == 0 ||
                         memcmp(t + a + 1, "rd", 2) == 0 || memcmp(t + a + 1, "th", 2) == 0))) {
        interior = true;
    }
    if (letters >= 2 && other == 0 && interior && leet_digit) {
        *flags |= INJECTION_NF_LEET;
        for (i = a; i < b; i++) {
            int l = leet_letter(t[i]);
            *o++ = (unsigned char)(l ? l : t[i]);
        }
        return o;
    }
    memcpy(o, t + a, b - a);
    return o + (b - a);
}

static inline bool tokbyte(unsigned char c)
{
    return byte_class[c] & CL_TOK;
}

/* Stage B: collapse spaces, join spaced-out letters, map leetspeak. Appends
 * (after one space when out already holds text). t is stage A's gv_buf:
 * t[n] is its NUL. */
static gv_rc stage_shape(const unsigned char *t, size_t n, struct gv_buf *out, unsigned *flags)
{
    unsigned char *o, *o0;
    size_t i = 0, j, k;
    bool space = out->len > 0, joined = false;
    gv_rc rc;

    /* Room for n bytes plus the separating space plus the terminator: reserve
     * n, then one more past them (len is moved over the reserved bytes so
     * that the append checks the right end, and moved back). */
    rc = reserve(out, t, n);
    if (rc == GV_OK) {
        out->len += n;
        rc = gv_buf_append_char(out, ' ');
        out->len -= n + (rc == GV_OK ? 1 : 0);
    }
    if (rc) {
        return rc;
    }
    o = o0 = (unsigned char *)out->data + out->len;
    while (i < n) {
        if (t[i] == ' ') {
            space = true;
            i++;
            continue;
        }
        if (space) {
            if (o > o0 || out->len) {
                *o++ = ' ';
            }
            space = false;
        }
        if (i + 1 < n && spaced_sep(t[i + 1]) && t[i] >= 'a' && single_at(t, n, i)) {
            /* Letters (not digits: "1 2 3 4" is a list) with one and the same
             * separator: "i g n o r e", "i.g.n.o.r.e". */
            unsigned char sep = t[i + 1];
            j = i;
            k = 1;
            while (j + 2 < n && t[j + 1] == sep && single_at(t, n, j + 2) &&
                   (t[j + 2] >= 'a' || leet_letter(t[j + 2]))) {
                j += 2;
                k++;
            }
            /* Four letters make a run; after a run, short words ("a l l") too. */
            if (k >= 4 || (k >= 2 && joined)) {
                *flags |= INJECTION_NF_SPACED;
                joined = true;
                for (; i <= j; i += 2) {
                    int l = leet_letter(t[i]);
                    *o++ = (unsigned char)(l ? l : t[i]);
                }
                i = j + 1;
                continue;
            }
        }
        joined = false;
        if (alnum(t[i])) {
            /* Most tokens are plain lowercase words: copy one while finding
             * its end and finish when nothing put_token maps follows (the
             * NUL at t[n] ends the last word). */
            for (j = i; t[j] >= 'a' && t[j] <= 'z'; j++) {
                o[j - i] = t[j];
            }
            if (!(byte_class[t[j]] & (CL_TOK | CL_WORD))) {
                o += j - i;
                i = j;
                continue;
            }
            j = i;
            while (j < n && tokbyte(t[j])) {
                j++;
            }
            /* A token glued to non-ASCII letters is left alone. */
            if (j < n && t[j] >= 0x80) {
                while (j < n && wordbyte(t[j])) {
                    j++;
                }
                memcpy(o, t + i, j - i);
                o += j - i;
            }
            else {
                o = put_token(o, t, i, j, flags);
            }
            i = j;
            continue;
        }
        *o++ = t[i++];
    }
    out->len += (size_t)(o - o0);
    out->data[out->len] = '\0';
    return GV_OK;
}

static inline bool b64char(unsigned char c)
{
    return byte_class[c] & CL_B64;
}

/* Decoded bytes look like text a model would read: mostly printable, some spaces. */
static bool looks_textual(const unsigned char *d, size_t n)
{
    size_t i, good = 0, spaces = 0;

    if (n < 12) {
        return false;
    }
    for (i = 0; i < n; i++) {
        if (d[i] == ' ') {
            spaces++;
        }
        if ((d[i] >= 0x20 && d[i] < 0x7F) || d[i] == '\n' || d[i] == '\t' || d[i] >= 0x80) {
            good++;
        }
    }
    return spaces >= 1 && good * 100 >= n * 95;
}

/* Stage C: find base64 runs in the original text and append their decoded,
 * normalised text. Case matters for base64, so this reads the raw input. */
static gv_rc stage_base64(const char *text, size_t len, struct gv_buf *out, unsigned *flags,
                          struct injection_scratch *s)
{
    const unsigned char *t = (const unsigned char *)text;
    size_t i = 0, j, probe, runs = 0, n, k, pad;
    unsigned char *enc;
    int dn;
    gv_rc rc = GV_OK;

    while (i < len && runs < B64_MAX_RUNS && rc == GV_OK) {
        /* Here i == 0 or t[i - 1] is not base64. A run of at least
         * B64_MIN_RUN characters starting in [i, probe] covers probe, so one
         * test skips B64_MIN_RUN bytes of prose; on a hit, back up to the
         * start of the run holding probe (never before i) and take it whole. */
        probe = i + B64_MIN_RUN - 1;
        if (probe >= len) {
            break;
        }
        if (!b64char(t[probe])) {
            i = probe + 1;
            continue;
        }
        while (probe > i && b64char(t[probe - 1])) {
            probe--;
        }
        i = probe;
        j = probe + 1;
        while (j < len && b64char(t[j])) {
            j++;
        }
        n = j - i;
        if (n < B64_MIN_RUN) {
            i = j;
            continue;
        }
        if (n > B64_MAX_RUN) {
            n = B64_MAX_RUN;
        }
        /* Complete the last quantum with padding; one stray character cannot
         * encode a byte and is dropped. */
        if (n % 4 == 1) {
            n--;
        }
        pad = (4 - n % 4) % 4;
        gv_buf_reset(&s->b64);
        rc = gv_buf_append(&s->b64, t + i, n);
        if (rc == GV_OK && pad) {
            rc = gv_buf_append(&s->b64, "==", pad);
        }
        if (rc) {
            break;
        }
        n += pad;
        enc = (unsigned char *)s->b64.data;
        for (k = 0; k < n; k++) {
            if (enc[k] == '-') {
                enc[k] = '+';
            }
            else if (enc[k] == '_') {
                enc[k] = '/';
            }
        }
        /* Room for the decoding after the encoded text (it needs 3/4 of it).
         * The filler comes from the input, never from the buffer itself, which
         * may move while growing. */
        rc = gv_buf_append(&s->b64, t + i, n - pad);
        if (rc == GV_OK && pad) {
            rc = gv_buf_append(&s->b64, "==", pad);
        }
        if (rc) {
            break;
        }
        enc = (unsigned char *)s->b64.data;
        dn = EVP_DecodeBlock(enc + n, enc, (int)n);
        /* EVP_DecodeBlock counts the padding as zero bytes; drop them. */
        if (dn > 0) {
            size_t p = 0;
            while (p < 2 && n - p > 0 && enc[n - 1 - p] == '=') {
                p++;
            }
            dn -= (int)p;
        }
        i = j;
        if (dn <= 0 || !looks_textual(enc + n, (size_t)dn)) {
            continue;
        }
        runs++;
        *flags |= INJECTION_NF_BASE64;
        gv_buf_reset(&s->fold);
        rc = stage_fold((const char *)enc + n, (size_t)dn, &s->fold, flags);
        if (rc == GV_OK) {
            rc = stage_shape((const unsigned char *)s->fold.data, s->fold.len, out, flags);
        }
    }
    return rc;
}

gv_rc injection_normalize(const char *text, size_t len, struct gv_buf *out, unsigned *flags,
                          struct injection_scratch *s)
{
    gv_rc rc;

    *flags = 0;
    gv_buf_reset(out);
    gv_buf_reset(&s->fold);
    rc = stage_fold(text, len, &s->fold, flags);
    if (rc) {
        goto out;
    }
    rc = stage_shape((const unsigned char *)s->fold.data, s->fold.len, out, flags);
    if (rc) {
        goto out;
    }
    rc = stage_base64(text, len, out, flags, s);
out:
    return rc;
}
