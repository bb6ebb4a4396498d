/*
 * secret.c - device secrets (see secret.h for why a keyed BLAKE2b and not
 * a password hash). Every buffer that held a raw secret is wiped.
 */
#include "services/sync/secret.h"

#include <sodium.h>
#include <stdbool.h>
#include <string.h>

#define PEPPER_TAG "sync.device-secret.v1"

int secret_key_init(secret_key *k, const char *pepper) {
  memset(k, 0, sizeof *k);
  if (pepper == NULL || strlen(pepper) < SECRET_PEPPER_MIN) return ERR_INVAL;
  if (sodium_init() < 0) return ERR_INTERNAL;
  /* The key is BLAKE2b-256 of the pepper keyed by nothing, with a tag
   * first so the same pepper text used elsewhere gives another key. */
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, sizeof k->k);
  crypto_generichash_update(&st, (const unsigned char *)PEPPER_TAG,
                            sizeof PEPPER_TAG);
  crypto_generichash_update(&st, (const unsigned char *)pepper, strlen(pepper));
  crypto_generichash_final(&st, k->k, sizeof k->k);
  sodium_memzero(&st, sizeof st);
  return ERR_OK;
}

void secret_key_wipe(secret_key *k) { sodium_memzero(k, sizeof *k); }

static void hash_raw(const secret_key *k, const uint8_t raw[SECRET_RAW_LEN],
                     uint8_t out[SECRET_HASH_LEN]) {
  crypto_generichash(out, SECRET_HASH_LEN, raw, SECRET_RAW_LEN, k->k,
                     sizeof k->k);
}

int secret_new(const secret_key *k, char out[SECRET_TEXT_LEN + 1],
               uint8_t hash[SECRET_HASH_LEN]) {
  uint8_t raw[SECRET_RAW_LEN];
  randombytes_buf(raw, sizeof raw);
  sodium_bin2base64(out, SECRET_TEXT_LEN + 1, raw, sizeof raw,
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  hash_raw(k, raw, hash);
  sodium_memzero(raw, sizeof raw);
  return ERR_OK;
}

bool secret_matches(const secret_key *k, const char *text,
                    const uint8_t want[SECRET_HASH_LEN]) {
  if (text == NULL || strlen(text) != SECRET_TEXT_LEN) return false;
  uint8_t raw[SECRET_RAW_LEN], got[SECRET_HASH_LEN];
  size_t n = 0;
  if (sodium_base642bin(raw, sizeof raw, text, SECRET_TEXT_LEN, NULL, &n, NULL,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
      n != SECRET_RAW_LEN) {
    sodium_memzero(raw, sizeof raw);
    return false;
  }
  hash_raw(k, raw, got);
  bool ok = sodium_memcmp(got, want, SECRET_HASH_LEN) == 0;
  sodium_memzero(raw, sizeof raw);
  sodium_memzero(got, sizeof got);
  return ok;
}
