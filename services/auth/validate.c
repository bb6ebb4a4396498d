/*
 * validate.c - input rules of the auth service (see validate.h).
 *
 * Lengths are counted in characters, not bytes, because that is what a
 * user means by "8 characters"; byte caps come first so that counting is
 * itself bounded.
 */
#include "services/auth/validate.h"

#include <string.h>

bool validate_email(const char *in, char *out, size_t cap) {
  if (in == NULL || out == NULL || cap == 0)
    return false;
  out[0] = '\0';
  while (*in == ' ' || *in == '\t')
    in++;
  size_t n = strnlen(in, VALIDATE_EMAIL_MAX + 64);
  while (n > 0 && (in[n - 1] == ' ' || in[n - 1] == '\t'))
    n--;
  if (n == 0 || n > VALIDATE_EMAIL_MAX || n >= cap)
    return false;
  size_t at = 0, nat = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)in[i];
    if (c <= 0x20 || c >= 0x7f)
      return false;
    if (c == '@') {
      at = i;
      nat++;
    }
    out[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  }
  out[n] = '\0';
  if (nat != 1 || at == 0 || at > 64 || at + 1 >= n)
    return false;
  const char *dom = out + at + 1;
  size_t dlen = n - at - 1;
  if (memchr(dom, '.', dlen) == NULL || dom[0] == '.' || dom[dlen - 1] == '.')
    return false;
  for (size_t i = 0; i + 1 < dlen; i++)
    if (dom[i] == '.' && dom[i + 1] == '.')
      return false;
  return true;
}

long validate_utf8_chars(const char *s, size_t max_bytes) {
  if (s == NULL)
    return -1;
  const unsigned char *p = (const unsigned char *)s;
  long chars = 0;
  size_t i = 0;
  while (p[i] != '\0') {
    if (i >= max_bytes)
      return -1;
    unsigned char c = p[i];
    unsigned cp;
    int extra;
    if (c < 0x80) {
      if (c < 0x20 || c == 0x7f)
        return -1;
      cp = c;
      extra = 0;
    } else if ((c & 0xe0) == 0xc0) {
      cp = c & 0x1f;
      extra = 1;
    } else if ((c & 0xf0) == 0xe0) {
      cp = c & 0x0f;
      extra = 2;
    } else if ((c & 0xf8) == 0xf0) {
      cp = c & 0x07;
      extra = 3;
    } else {
      return -1;
    }
    for (int k = 1; k <= extra; k++) {
      unsigned char cc = p[i + (size_t)k];
      if ((cc & 0xc0) != 0x80)
        return -1; /* also catches the NUL */
      cp = (cp << 6) | (cc & 0x3f);
    }
    if ((extra == 1 && cp < 0x80) || (extra == 2 && cp < 0x800) ||
        (extra == 3 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp < 0xa0))
      return -1;
    i += (size_t)extra + 1;
    chars++;
  }
  return chars;
}

bool validate_password(const char *pw) {
  long n = validate_utf8_chars(pw, 4 * VALIDATE_PASSWORD_MAX);
  return n >= VALIDATE_PASSWORD_MIN && n <= VALIDATE_PASSWORD_MAX;
}

bool validate_name(const char *name) {
  long n = validate_utf8_chars(name, 4 * VALIDATE_NAME_MAX);
  if (n < 1 || n > VALIDATE_NAME_MAX)
    return false;
  for (const char *p = name; *p != '\0'; p++)
    if (*p != ' ')
      return true;
  return false;
}

int validate_role_rank(const char *role) {
  if (role == NULL)
    return 0;
  if (strcmp(role, "owner") == 0) return 4;
  if (strcmp(role, "admin") == 0) return 3;
  if (strcmp(role, "staff") == 0) return 2;
  if (strcmp(role, "customer") == 0) return 1;
  return 0;
}

bool validate_role(const char *role) { return validate_role_rank(role) > 0; }
