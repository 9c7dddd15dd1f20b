/* tests/fuzz/fuzz_req.c - the request-text walker over arbitrary JSON, rewriting as it goes */
/* SPDX-License-Identifier: Apache-2.0 */
#include <string.h>

#include <json-c/json.h>

#include "core/gv_buf.h"
#include "gateway/gw_req.h"
#include "tests/fuzz/fuzz.h"

struct walk {
    size_t calls;
    unsigned mode; /* from the input: which texts get replaced, and how */
};

/* Replaces some texts (chosen by mode and position) with a marker, an empty
 * string or the text doubled, and fails on one call when mode says so, so
 * the walker's write-back and early-stop paths both run. */
static gv_rc on_text(void *arg, const char *role, const char *kind, const char *text, size_t len,
                     struct gv_buf *replacement, bool *replace)
{
    struct walk *w = arg;
    size_t k = w->calls++;
    gv_rc rc = GV_OK;

    FUZZ_CHECK(role && kind && text);
    FUZZ_CHECK(strcmp(kind, "content") == 0 || strcmp(kind, "arguments") == 0);
    FUZZ_CHECK(text[len] == '\0');
    if ((w->mode & 0x40) && k == (w->mode & 7)) {
        return GV_EIO;
    }
    switch ((w->mode + k) % 4) {
    case 0:
        break;
    case 1:
        rc = gv_buf_append_str(replacement, "<REDACTED>");
        *replace = rc == GV_OK;
        break;
    case 2:
        *replace = true; /* empty replacement */
        break;
    default:
        rc = gv_buf_append(replacement, text, len);
        if (rc == GV_OK) {
            rc = gv_buf_append(replacement, text, len);
        }
        *replace = rc == GV_OK;
        break;
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gv_record rec;
    struct gw_req req;
    struct walk w;
    json_tokener *tok;
    size_t before;
    gv_rc rc;

    if (size < 1 || size > 1024 * 1024) {
        return 0;
    }
    memset(&w, 0, sizeof(w));
    w.mode = data[0];
    tok = json_tokener_new();
    memset(&req, 0, sizeof(req));
    memset(&rec, 0, sizeof(rec));
    req.rec = &rec;
    req.model = "";
    req.api_key = "";
    req.body = json_tokener_parse_ex(tok, (const char *)data + 1, (int)(size - 1));
    rc = gw_req_foreach_text(&req, on_text, &w);
    FUZZ_CHECK(rc == GV_OK || rc == GV_EIO || rc == GV_E2BIG);
    before = w.calls;
    if (req.body) {
        /* The rewritten body serializes and parses back. */
        const char *s = json_object_to_json_string_ext(req.body, JSON_C_TO_STRING_PLAIN);
        struct json_object *again = json_tokener_parse(s);
        FUZZ_CHECK(again != NULL);
        json_object_put(again);
        /* A second walk visits the same texts (replacements keep the shape). */
        if (rc == GV_OK) {
            w.mode = 0;
            w.calls = 0;
            FUZZ_CHECK(gw_req_foreach_text(&req, on_text, &w) == GV_OK);
            FUZZ_CHECK(w.calls == before);
        }
        json_object_put(req.body);
    }
    json_tokener_free(tok);
    return 0;
}
