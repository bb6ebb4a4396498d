/*
 * utf8.c - text checks (see utf8.h).
 *
 * One pass: decode a sequence, classify the code point, count it. The
 * count is checked before each character is decoded, so text longer than
 * max_chars is "too long" as soon as the first extra character starts,
 * even when the byte bound cut that character in half.
 */
#include "libs/base/utf8.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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
  if (n < len) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    *cp = (*cp << 6) | (s[i] & 0x3F);
  }
  if (*cp < min || *cp > 0x10FFFF || (*cp >= 0xD800 && *cp <= 0xDFFF)) return 0;
  return len;
}

size_t utf8_seq_len(const char *s, size_t n) {
  uint32_t cp;
  return utf8_next((const unsigned char *)s, n, &cp);
}

bool utf8_valid(const char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    size_t k = utf8_seq_len(s + i, n - i);
    if (k == 0) return false;
    i += k;
  }
  return true;
}

static bool is_control(uint32_t cp) {
  return cp < 0x20 || (cp >= 0x7F && cp < 0xA0) || cp == 0x2028 || cp == 0x2029;
}

int utf8_check_text(const char *s, size_t min_chars, size_t max_chars,
                    unsigned flags, const char **why) {
  const char *dummy;
  if (why == NULL) why = &dummy;
  if (s == NULL) s = "";
  if (s[0] == '\0' && min_chars > 0) {
    *why = "is required";
    return ERR_INVAL;
  }
  bool multiline = (flags & UTF8_MULTILINE) != 0;
  size_t cap = max_chars < PTRDIFF_MAX / 4 ? 4 * max_chars + 1 : PTRDIFF_MAX;
  size_t n = strnlen(s, cap);
  const unsigned char *u = (const unsigned char *)s;
  size_t chars = 0;
  bool blank = true;
  for (size_t i = 0; i < n; chars++) {
    if (chars == max_chars) {
      *why = "is too long";
      return ERR_INVAL;
    }
    uint32_t cp = 0;
    size_t len = utf8_next(u + i, n - i, &cp);
    if (len == 0) {
      *why = "must be valid UTF-8";
      return ERR_INVAL;
    }
    bool allowed_ws = multiline && (cp == '\n' || cp == '\r' || cp == '\t');
    if (!allowed_ws && is_control(cp)) {
      *why = "must not contain control characters";
      return ERR_INVAL;
    }
    if (cp != ' ' && !allowed_ws) blank = false;
    i += len;
  }
  if (min_chars > 0 && blank && (flags & UTF8_BLANK_OK) == 0) {
    *why = "must not be blank";
    return ERR_INVAL;
  }
  if (chars < min_chars) {
    *why = "is too short";
    return ERR_INVAL;
  }
  return ERR_OK;
}
