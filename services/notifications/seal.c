/*
 * seal.c - webhook secrets (see seal.h), all of it libsodium: randombytes,
 * crypto_secretbox_easy, crypto_auth_hmacsha256 (streamed, so the body is
 * never copied), sodium_bin2base64 / sodium_base642bin.
 */
#include "services/notifications/seal.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define SECRET_PREFIX "whsec_"

_Static_assert(SEAL_KEY_BYTES == crypto_secretbox_KEYBYTES, "key size");
_Static_assert(SEAL_NONCE_BYTES == crypto_secretbox_NONCEBYTES, "nonce size");
_Static_assert(SEAL_MAC_BYTES == crypto_secretbox_MACBYTES, "mac size");

int seal_key_parse(const char *text, seal_key *out) {
  size_t len = 0;
  if (text == NULL ||
      sodium_base642bin(out->k, sizeof out->k, text, strlen(text), NULL, &len,
                        NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
      len != sizeof out->k) {
    sodium_memzero(out, sizeof *out);
    return ERR_INVAL;
  }
  return ERR_OK;
}

void seal_secret_new(unsigned char raw[SEAL_SECRET_BYTES],
                     char text[SEAL_SECRET_TEXT_MAX + 1]) {
  randombytes_buf(raw, SEAL_SECRET_BYTES);
  memcpy(text, SECRET_PREFIX, sizeof SECRET_PREFIX - 1);
  sodium_bin2base64(text + sizeof SECRET_PREFIX - 1,
                    SEAL_SECRET_TEXT_MAX + 1 - (sizeof SECRET_PREFIX - 1), raw,
                    SEAL_SECRET_BYTES, sodium_base64_VARIANT_ORIGINAL);
}

int seal_secret_parse(const char *text, unsigned char raw[SEAL_SECRET_BYTES]) {
  size_t len = 0;
  const size_t p = sizeof SECRET_PREFIX - 1;
  if (text == NULL || strncmp(text, SECRET_PREFIX, p) != 0 ||
      sodium_base642bin(raw, SEAL_SECRET_BYTES, text + p, strlen(text + p),
                        NULL, &len, NULL,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      len != SEAL_SECRET_BYTES) {
    sodium_memzero(raw, SEAL_SECRET_BYTES);
    return ERR_INVAL;
  }
  return ERR_OK;
}

void seal_close(const seal_key *key, const unsigned char raw[SEAL_SECRET_BYTES],
                seal_box *out) {
  randombytes_buf(out->b, SEAL_NONCE_BYTES);
  crypto_secretbox_easy(out->b + SEAL_NONCE_BYTES, raw, SEAL_SECRET_BYTES,
                        out->b, key->k);
}

int seal_open(const seal_key *key, const seal_box *box,
              unsigned char raw[SEAL_SECRET_BYTES]) {
  if (crypto_secretbox_open_easy(raw, box->b + SEAL_NONCE_BYTES,
                                 SEAL_MAC_BYTES + SEAL_SECRET_BYTES, box->b,
                                 key->k) != 0) {
    sodium_memzero(raw, SEAL_SECRET_BYTES);
    return ERR_INVAL;
  }
  return ERR_OK;
}

int seal_sign(const unsigned char raw[SEAL_SECRET_BYTES], const char *id,
              int64_t timestamp, const char *body, size_t len,
              char out[SEAL_SIGNATURE_MAX + 1]) {
  char ts[24];
  snprintf(ts, sizeof ts, "%" PRId64, timestamp);
  crypto_auth_hmacsha256_state st;
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_init(&st, raw, SEAL_SECRET_BYTES);
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)id, strlen(id));
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)ts, strlen(ts));
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, len);
  crypto_auth_hmacsha256_final(&st, mac);
  sodium_memzero(&st, sizeof st);
  memcpy(out, "v1,", 3);
  sodium_bin2base64(out + 3, SEAL_SIGNATURE_MAX + 1 - 3, mac, sizeof mac,
                    sodium_base64_VARIANT_ORIGINAL);
  return ERR_OK;
}
