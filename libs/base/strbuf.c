/*
 * strbuf.c - the growable text buffer (strbuf.h). Capacity doubles from
 * 64 bytes, so appending n bytes in total costs O(n) copies and
 * O(log n) reallocations.
 */
#include "libs/base/strbuf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void strbuf_reserve(strbuf *b, size_t extra) {
  if (b->oom) return;
  if (b->p != NULL && extra < b->cap - b->len) return; /* cap > len */
  if (extra > SIZE_MAX / 2 - b->len - 1) {
    b->oom = true; /* no size doubles past it */
    return;
  }
  size_t ncap = b->cap ? b->cap : 64;
  while (ncap < b->len + extra + 1) ncap *= 2;
  char *np = realloc(b->p, ncap);
  if (np == NULL) {
    b->oom = true;
    return;
  }
  if (b->p == NULL) np[0] = '\0';
  b->p = np;
  b->cap = ncap;
}

void strbuf_putn(strbuf *b, const char *s, size_t n) {
  strbuf_reserve(b, n);
  if (b->oom) return;
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

void strbuf_puts(strbuf *b, const char *s) { strbuf_putn(b, s, strlen(s)); }

void strbuf_printf(strbuf *b, const char *fmt, ...) {
  strbuf_reserve(b, 0);
  if (b->oom) return;
  /* Formatted straight into the free space; a second pass only when it
   * did not fit. */
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
  va_end(ap);
  if (n < 0) {
    b->p[b->len] = '\0';
    return;
  }
  if ((size_t)n >= b->cap - b->len) {
    strbuf_reserve(b, (size_t)n);
    if (b->oom) {
      b->p[b->len] = '\0';
      return;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
  }
  b->len += (size_t)n;
}

void strbuf_free(strbuf *b) {
  if (b == NULL) return;
  free(b->p);
  memset(b, 0, sizeof *b);
}
