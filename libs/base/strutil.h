/*
 * strutil.h - small bounded string helpers, so no module reaches for
 * the unbounded string functions that tools/lint/banned.sh rejects.
 */
#ifndef BASE_STRUTIL_H
#define BASE_STRUTIL_H

#include <stdbool.h>
#include <stddef.h>

/* Copies src into dst (capacity cap, cap > 0), always NUL-terminating.
 * Returns strlen(src); a result >= cap means the copy was truncated. */
size_t str_copy(char *dst, const char *src, size_t cap);

/* True when s starts with prefix. */
bool str_has_prefix(const char *s, const char *prefix);

/* True when every byte of s[0..len) is printable ASCII (0x20-0x7e). */
bool str_is_printable(const char *s, size_t len);

/* The value of the hex digit c (0-9, a-f, A-F), or -1. */
int str_hex_digit(char c);

#endif
