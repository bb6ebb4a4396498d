/*
 * cursor.c - list cursors (see cursor.h), with libsodium's
 * constant-alphabet base64 (URL-safe, no padding).
 */
#include "libs/base/cursor.h"

#include <sodium.h>
#include <string.h>

int cursor_encode(const char *id, char out[CURSOR_LEN + 1]) {
  uuid u;
  if (id == NULL || uuid_parse(id, strlen(id), &u) != ERR_OK) return ERR_INVAL;
  char buf[sodium_base64_ENCODED_LEN(UUID_LEN,
                                     sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
  sodium_bin2base64(buf, sizeof buf, u.b, UUID_LEN,
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  if (strlen(buf) != CURSOR_LEN) return ERR_INTERNAL;
  memcpy(out, buf, CURSOR_LEN + 1);
  return ERR_OK;
}

int cursor_decode(const char *cursor, char id_out[UUID_STR_LEN + 1]) {
  id_out[0] = '\0';
  if (cursor == NULL || strnlen(cursor, CURSOR_LEN + 1) != CURSOR_LEN)
    return ERR_INVAL;
  uuid u;
  size_t len = 0;
  const char *end = NULL;
  if (sodium_base642bin(u.b, sizeof u.b, cursor, CURSOR_LEN, NULL, &len, &end,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
      len != UUID_LEN || end != cursor + CURSOR_LEN)
    return ERR_INVAL;
  /* Re-encode: only the canonical spelling (zero trailing bits) is ours. */
  char back[CURSOR_LEN + 1];
  uuid_format(&u, id_out);
  if (cursor_encode(id_out, back) != ERR_OK ||
      memcmp(back, cursor, CURSOR_LEN) != 0) {
    id_out[0] = '\0';
    return ERR_INVAL;
  }
  return ERR_OK;
}
