/* strutil.c - bounded string helpers (see strutil.h). */
#include "libs/base/strutil.h"

#include <string.h>

size_t str_copy(char *dst, const char *src, size_t cap) {
  size_t n = strlen(src);
  size_t k = n < cap - 1 ? n : cap - 1;
  memcpy(dst, src, k);
  dst[k] = '\0';
  return n;
}

bool str_has_prefix(const char *s, const char *prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool str_is_printable(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e) return false;
  return true;
}

int str_hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
