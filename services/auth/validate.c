/*
 * validate.c - input rules of the auth service (see validate.h).
 *
 * Lengths are counted in characters, not bytes, because that is what a
 * user means by "8 characters": libs/base's utf8_check_text, which also
 * bounds the bytes first so that counting is itself bounded.
 */
#include "services/auth/validate.h"

#include <string.h>

#include "libs/authn/authn_caller.h"
#include "libs/base/email.h"
#include "libs/base/utf8.h"

bool validate_email(const char *in, char *out, size_t cap) {
  if (in == NULL || out == NULL || cap == 0) return false;
  /* The one normalisation (libs/base/email.h), shared with the gateway's
   * login rate-limit key: the bucket and the account are the same text. */
  if (email_normalize(in, out, cap) != ERR_OK) return false;
  size_t n = strlen(out);
  size_t at = 0, nat = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)out[i];
    if (c <= 0x20 || c >= 0x7f) return false;
    if (c == '@') {
      at = i;
      nat++;
    }
  }
  if (nat != 1 || at == 0 || at > 64 || at + 1 >= n) return false;
  const char *dom = out + at + 1;
  size_t dlen = n - at - 1;
  if (memchr(dom, '.', dlen) == NULL || dom[0] == '.' || dom[dlen - 1] == '.')
    return false;
  for (size_t i = 0; i + 1 < dlen; i++)
    if (dom[i] == '.' && dom[i + 1] == '.') return false;
  return true;
}

bool validate_password(const char *pw) {
  /* Spaces only is a (weak) password, not a blank field. */
  return utf8_check_text(pw, VALIDATE_PASSWORD_MIN, VALIDATE_PASSWORD_MAX,
                         UTF8_BLANK_OK, NULL) == ERR_OK;
}

bool validate_name(const char *name) {
  return utf8_check_text(name, 1, VALIDATE_NAME_MAX, 0, NULL) == ERR_OK;
}

bool validate_role(const char *role) {
  return authn_role_rank(role) != AUTHN_ROLE_NONE;
}

/* Separators people type inside a number. */
static bool phone_separator(char c) {
  return c == ' ' || c == '-' || c == '.' || c == '(' || c == ')';
}

bool validate_phone(const char *in, char *out, size_t cap) {
  if (in == NULL || out == NULL || cap < VALIDATE_PHONE_MAX + 1) return false;
  out[0] = '\0';
  size_t n = strnlen(in, VALIDATE_PHONE_IN_MAX + 1);
  if (n > VALIDATE_PHONE_IN_MAX) return false;
  size_t len = 0;
  for (size_t i = 0; i < n; i++) {
    char c = in[i];
    if (phone_separator(c)) continue;
    bool plus = c == '+' && len == 0;
    if (!plus && (c < '0' || c > '9' || len == 0)) return false;
    if (len >= VALIDATE_PHONE_MAX) return false;
    out[len++] = c;
  }
  out[len] = '\0';
  if (len == 0) return n == 0; /* "" is no number; "  " is not one */
  /* '+', a first digit 1..9 (no country code starts with 0), 8..15 digits. */
  bool ok = len >= 9 && out[1] != '0';
  if (!ok) out[0] = '\0';
  return ok;
}
