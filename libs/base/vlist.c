/*
 * vlist.c - the bounded violations list (see vlist.h). Fixed storage:
 * validation never fails for want of memory.
 */
#include "libs/base/vlist.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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
    if (strcmp(l->v[i].field, field) == 0) return true;
  return false;
}
