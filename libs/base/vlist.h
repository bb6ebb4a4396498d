/*
 * vlist.h - a bounded list of field violations ("items[3].quantity":
 * "must be between 1 and 99"), the way every service reports bad input:
 * validation collects one entry per bad field, so a client can fix them
 * all at once, and the handler turns the list into the reply's field
 * violations (libs/svc's handler_reply_invalid).
 *
 * The list lives on the stack and never allocates. Fields are formatted
 * into the entry (they are often built: "items[%zu].product_id");
 * reasons are static strings. Past VLIST_MAX entries further violations
 * are counted but not kept, so "any violation?" (n > 0) stays true.
 */
#ifndef BASE_VLIST_H
#define BASE_VLIST_H

#include <stdbool.h>
#include <stddef.h>

#define VLIST_MAX 64       /* as many as an RPC reply carries */
#define VLIST_FIELD_MAX 48 /* bytes of a field name, NUL included */

typedef struct vviolation {
  char field[VLIST_FIELD_MAX]; /* cut to fit */
  const char *why;             /* static string */
} vviolation;

typedef struct vlist {
  size_t n; /* violations added, kept or not */
  vviolation v[VLIST_MAX];
} vlist;

/* Empties l. */
void vlist_init(vlist *l);

/* Adds a violation: why (static, not copied) for the field named by
 * printf(fmt, ...). */
void vlist_add(vlist *l, const char *why, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The number of entries kept: min(n, VLIST_MAX). */
size_t vlist_stored(const vlist *l);

/* True when field is one of the kept violations. */
bool vlist_has(const vlist *l, const char *field);

#endif
