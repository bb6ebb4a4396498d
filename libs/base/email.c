/*
 * email.c - see email.h. Trimming looks at both ends of a bounded window
 * of the input; an input that does not end inside the window is refused
 * rather than trimmed inside it (otherwise "a@b.co" followed by 300
 * spaces and "x" would be read as "a@b.co").
 */
#include "libs/base/email.h"

#include <string.h>

static int is_blank(char c) { return c == ' ' || c == '\t'; }

int email_normalize(const char *in, char *out, size_t cap) {
  if (out != NULL && cap > 0) out[0] = '\0';
  if (in == NULL || out == NULL || cap == 0) return ERR_INVAL;
  size_t len = strnlen(in, EMAIL_INPUT_MAX + 1);
  if (len > EMAIL_INPUT_MAX) return ERR_TOOBIG;
  size_t start = 0;
  while (start < len && is_blank(in[start])) start++;
  while (len > start && is_blank(in[len - 1])) len--;
  size_t n = len - start;
  if (n == 0) return ERR_INVAL;
  if (n > EMAIL_MAX || n >= cap) return ERR_TOOBIG;
  for (size_t i = 0; i < n; i++) {
    char c = in[start + i];
    out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
  }
  out[n] = '\0';
  return ERR_OK;
}
