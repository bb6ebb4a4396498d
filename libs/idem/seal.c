/*
 * seal.c - sealing saved answers (see seal.h), with libsodium's
 * crypto_secretbox; the key derivation is idem.c's hash, keyed.
 */
#include "libs/idem/seal.h"

#include <sodium.h>
#include <stdlib.h>

_Static_assert(IDEM_SEAL_KEY_LEN == crypto_secretbox_KEYBYTES, "seal key size");
_Static_assert(IDEM_SEAL_OVERHEAD ==
                   crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES,
               "seal overhead");
_Static_assert(IDEM_SEAL_KEY_LEN == IDEM_HASH_LEN, "seal key from the hash");

int idem_seal_key(const uint8_t *secret, const char *seal_tag,
                  const char *method, const void *payload, size_t len,
                  uint8_t out[IDEM_SEAL_KEY_LEN]) {
  return idem_hash_keyed(secret, seal_tag, method, payload, len, out);
}

int idem_seal(const uint8_t key[IDEM_SEAL_KEY_LEN], const uint8_t *plain,
              size_t n, uint8_t **out, size_t *len) {
  *out = NULL;
  *len = 0;
  if (sodium_init() < 0) return ERR_INTERNAL;
  uint8_t *box = malloc(n + IDEM_SEAL_OVERHEAD);
  if (box == NULL) return ERR_NOMEM;
  randombytes_buf(box, crypto_secretbox_NONCEBYTES);
  crypto_secretbox_easy(box + crypto_secretbox_NONCEBYTES, plain, n, box, key);
  *out = box;
  *len = n + IDEM_SEAL_OVERHEAD;
  return ERR_OK;
}

int idem_unseal(const uint8_t key[IDEM_SEAL_KEY_LEN], const uint8_t *sealed,
                size_t len, uint8_t **out, size_t *n) {
  *out = NULL;
  *n = 0;
  if (sealed == NULL || len < IDEM_SEAL_OVERHEAD) return ERR_INVAL;
  size_t plain_len = len - IDEM_SEAL_OVERHEAD;
  uint8_t *plain = malloc(plain_len ? plain_len : 1);
  if (plain == NULL) return ERR_NOMEM;
  if (crypto_secretbox_open_easy(plain, sealed + crypto_secretbox_NONCEBYTES,
                                 len - crypto_secretbox_NONCEBYTES, sealed,
                                 key) != 0) {
    free(plain);
    return ERR_INVAL;
  }
  *out = plain;
  *n = plain_len;
  return ERR_OK;
}
