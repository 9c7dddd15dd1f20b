/* tests/fuzz/fuzz_pii.c - PII scanner, redaction and stream cut on arbitrary bytes */
/* SPDX-License-Identifier: Apache-2.0 */
#include <string.h>

#include "core/gv_buf.h"
#include "gateway/policies/pii/pii_scan.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pii_redact_opts opts;
    struct pii_scan_buf sb;
    struct gv_buf out;
    const char *text;
    uint32_t types;
    size_t len, i, cut;
    gv_rc rc;

    if (size < 2) {
        return 0;
    }
    /* Byte 0 picks the types (0: all), byte 1 the operator of every type. */
    types = data[0] ? ((uint32_t)data[0] * 0x01010101u) & PII_ALL_TYPES : PII_ALL_TYPES;
    memset(&opts, 0, sizeof(opts));
    for (i = 0; i < GV_PII_NTYPES; i++) {
        opts.op[i] = (unsigned char)((data[1] + i) % 3);
        opts.key[i % sizeof(opts.key)] = data[1];
    }
    text = (const char *)data + 2;
    len = size - 2;

    pii_scan_buf_init(&sb);
    rc = pii_scan(text, len, types, &sb);
    FUZZ_CHECK(rc == GV_OK || rc == GV_E2BIG);
    for (i = 0; i < sb.n; i++) {
        FUZZ_CHECK(sb.spans[i].start < sb.spans[i].end && sb.spans[i].end <= len);
        FUZZ_CHECK(sb.spans[i].type >= 0 && sb.spans[i].type < GV_PII_NTYPES);
        FUZZ_CHECK(types & (1u << sb.spans[i].type));
        if (i > 0) {
            FUZZ_CHECK(sb.spans[i - 1].end <= sb.spans[i].start);
        }
    }
    gv_buf_init(&out, 0);
    FUZZ_CHECK(pii_redact(text, len, sb.spans, sb.n, &opts, &out) == GV_OK);
    /* Without findings the text is unchanged. */
    FUZZ_CHECK(sb.n > 0 || (out.len == len && (len == 0 || memcmp(out.data, text, len) == 0)));
    gv_buf_free(&out);
    /* A capped output stops with GV_E2BIG, never past the cap. */
    gv_buf_init(&out, 8 + len / 2);
    rc = pii_redact(text, len, sb.spans, sb.n, NULL, &out);
    FUZZ_CHECK(rc == GV_OK || rc == GV_E2BIG);
    FUZZ_CHECK(out.len <= 8 + len / 2);
    gv_buf_free(&out);

    cut = pii_stream_cut(text, len);
    FUZZ_CHECK(cut <= len);
    pii_scan_buf_free(&sb);

    /* The validators take any bytes of their documented shape. */
    for (i = 0; i < len && text[i] >= '0' && text[i] <= '9'; i++) {
    }
    (void)pii_luhn_ok(text, i);
    (void)pii_iban_ok(text, len < 64 ? len : 64);
    (void)pii_ipv4_ok(text, len < 63 ? len : 63);
    (void)pii_ipv6_ok(text, len < 63 ? len : 63);
    return 0;
}
