/*
 * menupage.h - one audience's menu held in memory, unpacked once and cut
 * into pages (ListProducts' limit, cursor and category).
 *
 * A menupage is immutable after menupage_new and reference-counted: the
 * menu cache keeps one per tenant and audience (menucache.h) and every
 * reader that got it from there holds a reference while it builds its
 * answer, so a newer menu replacing it frees nothing under a reader.
 *
 * Paging follows the list's order (category, name, id: the order the
 * database gave, kept as is). A cursor names the last product of the page
 * before; the next page starts after that product's place in this list.
 * A cursor whose product is not in this list (another tenant's, another
 * category's, a product deleted or hidden since) is "not found" here: the
 * caller decides (orders asks the database for the product's place).
 */
#ifndef ORDERS_MENUPAGE_H
#define ORDERS_MENUPAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "proto/orders/v1/orders.pb-c.h"

typedef struct menupage menupage;

/* Takes ownership of bytes (malloc'd, a serialised
 * ListProductsResponse) and unpacks them; gen is the cache generation
 * they were read under. ERR_INVAL when the bytes do not unpack (bytes are
 * freed then too), ERR_NOMEM. *out holds one reference. */
int menupage_new(uint8_t *bytes, size_t len, int64_t gen,
                 menupage **out) WARN_UNUSED;
menupage *menupage_ref(menupage *p);
void menupage_unref(menupage *p); /* NULL-safe; frees with the last one */

int64_t menupage_gen(const menupage *p);
size_t menupage_count(const menupage *p);
/* The serialised whole list (valid while a reference is held). */
const uint8_t *menupage_bytes(const menupage *p, size_t *len);

typedef struct menupage_cut {
  Orders__V1__Product **v; /* borrowed from the page; malloc'd array */
  size_t n;
  bool more;         /* products of the selection remain after v[n-1] */
  bool cursor_found; /* false: after_id given but not in the selection */
} menupage_cut;

/* The products of category ("" = all) after the product after_id (NULL
 * or "" = from the first), at most limit (>= 1). ERR_OK (even when the
 * cursor is not found: then cut->n == 0 and cursor_found false),
 * ERR_NOMEM. Free with menupage_cut_free; the products stay the page's. */
int menupage_select(const menupage *p, const char *category,
                    const char *after_id, size_t limit,
                    menupage_cut *cut) WARN_UNUSED;
void menupage_cut_free(menupage_cut *cut);

/* True when the whole list is the answer as it is (no category, no
 * cursor, everything fits in limit): the bytes can be sent unchanged. */
bool menupage_whole(const menupage *p, const char *category,
                    const char *after_id, size_t limit);

#endif
