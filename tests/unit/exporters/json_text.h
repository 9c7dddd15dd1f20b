/* tests/unit/exporters/json_text.h - a formatter's JSON object as the bytes W&B receives */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef KT_TEST_JSON_TEXT_H
#define KT_TEST_JSON_TEXT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "core/gv_buf.h"
#include "exporters/ex_wandb_api.h"

/* o serialised by ex_wandb_json_append, as the exporters send it; takes o. The caller frees
 * the text (gv_free). */
static inline char *json_text(struct json_object *o)
{
    struct gv_buf b;

    gv_buf_init(&b, 0);
    assert_int_equal(ex_wandb_json_append(&b, o), GV_OK);
    json_object_put(o);
    return gv_buf_steal(&b);
}

#endif
