/*
 * validate.c - the orders service's input rules (see validate.h).
 *
 * Text is decoded as UTF-8 once, counting code points and refusing
 * malformed sequences (overlong forms, surrogates, > U+10FFFF) and
 * control characters; byte lengths are bounded first (4 bytes per
 * character at most), so a huge string is refused without being walked.
 */
#include "services/orders/validate.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "libs/base/strutil.h"
#include "libs/base/uuid.h"

/* ---------------------------------------------------------- violations --- */

void vlist_init(vlist *l) { memset(l, 0, sizeof *l); }

void vlist_add(vlist *l, const char *why, const char *fmt, ...) {
  if (l->n < VLIST_MAX) {
    vviolation *v = &l->v[l->n];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->field, sizeof v->field, fmt, ap);
    va_end(ap);
    v->why = why;
  }
  l->n++;
}

size_t vlist_stored(const vlist *l) {
  return l->n < VLIST_MAX ? l->n : VLIST_MAX;
}

bool vlist_has(const vlist *l, const char *field) {
  for (size_t i = 0; i < vlist_stored(l); i++)
    if (strcmp(l->v[i].field, field) == 0)
      return true;
  return false;
}

/* --------------------------------------------------------------- text --- */

/* Decodes one UTF-8 sequence at s[0..n); returns its length, or 0 when it
 * is malformed (overlong, surrogate, above U+10FFFF, truncated). */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp) {
  unsigned char c = s[0];
  size_t len;
  uint32_t min;
  if (c < 0x80) {
    *cp = c;
    return 1;
  } else if ((c & 0xE0) == 0xC0) {
    len = 2, min = 0x80, *cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3, min = 0x800, *cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4, min = 0x10000, *cp = c & 0x07;
  } else {
    return 0;
  }
  if (n < len)
    return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80)
      return 0;
    *cp = (*cp << 6) | (s[i] & 0x3F);
  }
  if (*cp < min || *cp > 0x10FFFF || (*cp >= 0xD800 && *cp <= 0xDFFF))
    return 0;
  return len;
}

long validate_utf8_chars(const char *s, size_t max_bytes) {
  if (s == NULL)
    return 0;
  size_t n = strnlen(s, max_bytes + 1);
  if (n > max_bytes)
    return -2;
  const unsigned char *u = (const unsigned char *)s;
  long chars = 0;
  for (size_t i = 0; i < n;) {
    uint32_t cp = 0;
    size_t len = utf8_next(u + i, n - i, &cp);
    if (len == 0)
      return -1;
    i += len;
    chars++;
  }
  return chars;
}

int validate_text(const char *s, size_t min_chars, size_t max_chars,
                  bool multiline, const char **why) {
  const char *dummy;
  if (why == NULL)
    why = &dummy;
  if (s == NULL)
    s = "";
  if (s[0] == '\0') {
    if (min_chars > 0) {
      *why = "is required";
      return ERR_INVAL;
    }
    return ERR_OK;
  }
  /* max_chars characters take at most 4 * max_chars bytes. */
  size_t n = strnlen(s, 4 * max_chars + 1);
  const unsigned char *u = (const unsigned char *)s;
  size_t chars = 0, i = 0;
  bool blank = true;
  while (i < n) {
    uint32_t cp = 0;
    size_t len = utf8_next(u + i, n - i, &cp);
    if (len == 0) {
      *why = "must be valid UTF-8";
      return ERR_INVAL;
    }
    bool allowed_ws = multiline && (cp == '\n' || cp == '\r' || cp == '\t');
    if (!allowed_ws && (cp < 0x20 || (cp >= 0x7F && cp < 0xA0) ||
                        cp == 0x2028 || cp == 0x2029)) {
      *why = "must not contain control characters";
      return ERR_INVAL;
    }
    if (cp != ' ' && !allowed_ws)
      blank = false;
    chars++;
    i += len;
  }
  if (chars > max_chars || s[n] != '\0') {
    *why = "is too long";
    return ERR_INVAL;
  }
  if (min_chars > 0 && blank) {
    *why = "must not be blank";
    return ERR_INVAL;
  }
  if (chars < min_chars) {
    *why = "is too short";
    return ERR_INVAL;
  }
  return ERR_OK;
}

/* ------------------------------------------------------------ products --- */

static bool text_rule(vlist *l, const char *field, const char *s,
                      size_t min, size_t max, bool multiline,
                      const char *too_long) {
  const char *why = NULL;
  if (validate_text(s, min, max, multiline, &why) == ERR_OK)
    return true;
  vlist_add(l, strcmp(why, "is too long") == 0 ? too_long : why, "%s", field);
  return false;
}

bool validate_product_name(vlist *l, const char *field, const char *name) {
  return text_rule(l, field, name, 1, PRODUCT_NAME_MAX, false,
                   "must be at most 200 characters");
}

bool validate_product_description(vlist *l, const char *field,
                                  const char *s) {
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
  if (cents >= 0 && cents <= PRODUCT_PRICE_MAX)
    return true;
  vlist_add(l, "must be between 0 and 100000000", "%s", field);
  return false;
}

bool validate_stock(vlist *l, const char *field, int64_t stock) {
  if (stock >= 0 && stock <= PRODUCT_STOCK_MAX)
    return true;
  vlist_add(l, "must be between 0 and 1000000", "%s", field);
  return false;
}

bool validate_threshold(vlist *l, const char *field, int64_t v) {
  if (v >= 0 && v <= PRODUCT_THRESHOLD_MAX)
    return true;
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
  if (key == NULL)
    return false;
  size_t n = strnlen(key, IDEM_KEY_MAX + 1);
  return n >= 1 && n <= IDEM_KEY_MAX && str_is_printable(key, n);
}
