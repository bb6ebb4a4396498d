/*
 * strbuf.h - a growable, always NUL-terminated text buffer for output
 * whose size is not known in advance (the metrics page, redacted
 * configuration values).
 *
 * An allocation failure does not return an error from every append: it
 * sets oom, after which appends do nothing; the builder checks oom once at
 * the end (and then frees p). p is NULL until the first append or
 * reserve; once set it always holds len bytes and a NUL.
 */
#ifndef BASE_STRBUF_H
#define BASE_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct strbuf {
  char *p;    /* malloc'd text (the caller's: free it), or NULL */
  size_t len; /* bytes of text, not counting the NUL */
  size_t cap; /* bytes allocated */
  bool oom;   /* an allocation failed; the text is incomplete */
} strbuf;

/* Room for extra more bytes (and the NUL) without another allocation; also
 * makes p non-NULL (an empty string) when nothing was appended yet. */
void strbuf_reserve(strbuf *b, size_t extra);

/* Appends n bytes of s / the string s / printf's output. */
void strbuf_putn(strbuf *b, const char *s, size_t n);
void strbuf_puts(strbuf *b, const char *s);
__attribute__((format(printf, 2, 3))) void strbuf_printf(strbuf *b,
                                                         const char *fmt, ...);

/* Frees the text and empties the buffer (reusable). NULL-safe. */
void strbuf_free(strbuf *b);

#endif
