/*
 * menupage.c - the menu in memory, cut into pages (see menupage.h).
 *
 * Lists are at most ORDERS_MAX_PRODUCTS long (1000 by default), so a
 * page is found by one linear pass: a selection of pointers into the
 * unpacked list, no copy of any product.
 */
#include "services/orders/menupage.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct menupage {
  atomic_int refs;
  int64_t gen;
  uint8_t *bytes;
  size_t len;
  Orders__V1__ListProductsResponse *msg;
};

int menupage_new(uint8_t *bytes, size_t len, int64_t gen, menupage **out) {
  *out = NULL;
  menupage *p = calloc(1, sizeof *p);
  if (p == NULL) {
    free(bytes);
    return ERR_NOMEM;
  }
  p->msg = orders__v1__list_products_response__unpack(NULL, len, bytes);
  if (p->msg == NULL) {
    free(bytes);
    free(p);
    return ERR_INVAL;
  }
  atomic_init(&p->refs, 1);
  p->gen = gen;
  p->bytes = bytes;
  p->len = len;
  *out = p;
  return ERR_OK;
}

menupage *menupage_ref(menupage *p) {
  atomic_fetch_add(&p->refs, 1);
  return p;
}

void menupage_unref(menupage *p) {
  if (p == NULL || atomic_fetch_sub(&p->refs, 1) != 1) return;
  orders__v1__list_products_response__free_unpacked(p->msg, NULL);
  free(p->bytes);
  free(p);
}

int64_t menupage_gen(const menupage *p) { return p->gen; }
size_t menupage_count(const menupage *p) { return p->msg->n_products; }

const uint8_t *menupage_bytes(const menupage *p, size_t *len) {
  *len = p->len;
  return p->bytes;
}

static bool in_category(const Orders__V1__Product *x, const char *category) {
  return category == NULL || category[0] == '\0' ||
         strcmp(x->category, category) == 0;
}

bool menupage_whole(const menupage *p, const char *category,
                    const char *after_id, size_t limit) {
  return (category == NULL || category[0] == '\0') &&
         (after_id == NULL || after_id[0] == '\0') &&
         p->msg->n_products <= limit;
}

int menupage_select(const menupage *p, const char *category,
                    const char *after_id, size_t limit, menupage_cut *cut) {
  memset(cut, 0, sizeof *cut);
  bool started = after_id == NULL || after_id[0] == '\0';
  cut->cursor_found = started;
  cut->v = malloc((limit ? limit : 1) * sizeof *cut->v);
  if (cut->v == NULL) return ERR_NOMEM;
  for (size_t i = 0; i < p->msg->n_products; i++) {
    Orders__V1__Product *x = p->msg->products[i];
    if (!in_category(x, category)) continue;
    if (!started) {
      /* The cursor counts only inside the selection: another
       * category's product is not a place in this list. */
      if (strcmp(x->id, after_id) == 0) started = cut->cursor_found = true;
      continue;
    }
    if (cut->n == limit) {
      cut->more = true;
      break;
    }
    cut->v[cut->n++] = x;
  }
  return ERR_OK;
}

void menupage_cut_free(menupage_cut *cut) {
  free(cut->v);
  memset(cut, 0, sizeof *cut);
}
