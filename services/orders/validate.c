/*
 * validate.c - the orders service's input rules (see validate.h). Text
 * goes through libs/base's utf8_check_text; this file adds the bounds
 * and the messages that name them.
 */
#include "services/orders/validate.h"

#include <string.h>

#include "libs/base/strutil.h"
#include "libs/base/utf8.h"
#include "libs/base/uuid.h"

/* ------------------------------------------------------------ products --- */

static bool text_rule(vlist *l, const char *field, const char *s, size_t min,
                      size_t max, bool multiline, const char *too_long) {
  const char *why = NULL;
  if (utf8_check_text(s, min, max, multiline ? UTF8_MULTILINE : 0, &why) ==
      ERR_OK)
    return true;
  vlist_add(l, strcmp(why, "is too long") == 0 ? too_long : why, "%s", field);
  return false;
}

bool validate_product_name(vlist *l, const char *field, const char *name) {
  return text_rule(l, field, name, 1, PRODUCT_NAME_MAX, false,
                   "must be at most 200 characters");
}

bool validate_product_description(vlist *l, const char *field, const char *s) {
  return text_rule(l, field, s, 0, PRODUCT_DESCRIPTION_MAX, true,
                   "must be at most 2000 characters");
}

bool validate_product_category(vlist *l, const char *field, const char *s) {
  return text_rule(l, field, s, 0, PRODUCT_CATEGORY_MAX, false,
                   "must be at most 100 characters");
}

bool validate_table_label(vlist *l, const char *field, const char *label) {
  return text_rule(l, field, label, 1, TABLE_LABEL_MAX, false,
                   "must be at most 50 characters");
}

bool validate_price(vlist *l, const char *field, int64_t cents) {
  if (cents >= 0 && cents <= PRODUCT_PRICE_MAX) return true;
  vlist_add(l, "must be between 0 and 100000000", "%s", field);
  return false;
}

bool validate_stock(vlist *l, const char *field, int64_t stock) {
  if (stock >= 0 && stock <= PRODUCT_STOCK_MAX) return true;
  vlist_add(l, "must be between 0 and 1000000", "%s", field);
  return false;
}

bool validate_threshold(vlist *l, const char *field, int64_t v) {
  if (v >= 0 && v <= PRODUCT_THRESHOLD_MAX) return true;
  vlist_add(l, "must be between 0 and 1000000", "%s", field);
  return false;
}

bool validate_id(vlist *l, const char *field, const char *id) {
  if (id == NULL || id[0] == '\0') {
    vlist_add(l, "is required", "%s", field);
    return false;
  }
  if (!uuid_is_valid(id)) {
    vlist_add(l, "must be a UUID", "%s", field);
    return false;
  }
  return true;
}

/* -------------------------------------------------------------- orders --- */

bool validate_order_request(vlist *l, size_t nlines,
                            const char *const *product_ids,
                            const int32_t *quantities, const char *table_id,
                            const char *notes, const char *customer_id) {
  size_t before = l->n;
  if (nlines == 0)
    vlist_add(l, "must have at least one line", "items");
  else if (nlines > ORDER_LINES_MAX)
    vlist_add(l, "must have at most 50 lines", "items");
  size_t n = nlines > ORDER_LINES_MAX ? 0 : nlines;
  uuid ids[ORDER_LINES_MAX];
  bool ok[ORDER_LINES_MAX];
  for (size_t i = 0; i < n; i++) {
    const char *p = product_ids[i] ? product_ids[i] : "";
    ok[i] = false;
    if (p[0] == '\0')
      vlist_add(l, "is required", "items[%zu].product_id", i);
    else if (uuid_parse(p, strlen(p), &ids[i]) != ERR_OK)
      vlist_add(l, "must be a UUID", "items[%zu].product_id", i);
    else
      ok[i] = true;
    for (size_t j = 0; ok[i] && j < i; j++) {
      if (ok[j] && memcmp(ids[i].b, ids[j].b, UUID_LEN) == 0) {
        vlist_add(l, "appears more than once in the order",
                  "items[%zu].product_id", i);
        break;
      }
    }
    if (quantities[i] < 1 || quantities[i] > ORDER_QTY_MAX)
      vlist_add(l, "must be between 1 and 99", "items[%zu].quantity", i);
  }
  if (table_id != NULL && table_id[0] != '\0' && !uuid_is_valid(table_id))
    vlist_add(l, "must be a UUID", "table_id");
  if (customer_id != NULL && customer_id[0] != '\0' &&
      !uuid_is_valid(customer_id))
    vlist_add(l, "must be a UUID", "customer_id");
  text_rule(l, "notes", notes, 0, ORDER_NOTES_MAX, true,
            "must be at most 500 characters");
  return l->n == before;
}

bool validate_idempotency_key(const char *key) {
  if (key == NULL) return false;
  size_t n = strnlen(key, IDEM_KEY_MAX + 1);
  return n >= 1 && n <= IDEM_KEY_MAX && str_is_printable(key, n);
}
