/*
 * secret.h - device secrets: made, shown once, kept only as a keyed hash.
 *
 * A device secret is 32 bytes from libsodium's randombytes, given to the
 * client as base64url without padding (43 characters). The database keeps
 * BLAKE2b-256 of the raw 32 bytes keyed with the server's pepper
 * (crypto_generichash with a key derived from SYNC_DEVICE_PEPPER), and a
 * presented secret is checked by hashing it the same way and comparing in
 * constant time (sodium_memcmp).
 *
 * Why not crypto_pwhash: it exists to slow down guessing of LOW-entropy
 * secrets (passwords). A 256-bit random secret cannot be guessed, and a
 * session exchange happens every token lifetime on every device, so a
 * deliberately slow hash would only cost CPU. The pepper adds that a
 * stolen database copy alone does not even allow an offline check of a
 * candidate secret. docs/adr/0016-sync-device-secrets.md records the choice.
 */
#ifndef SYNC_SECRET_H
#define SYNC_SECRET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"

#define SECRET_RAW_LEN 32
#define SECRET_TEXT_LEN 43 /* base64url of 32 bytes, no padding */
#define SECRET_HASH_LEN 32
#define SECRET_PEPPER_MIN 32 /* bytes of SYNC_DEVICE_PEPPER text */

typedef struct secret_key {
  uint8_t k[32]; /* BLAKE2b key derived from the pepper */
} secret_key;

/* The hashing key from the pepper text (at least SECRET_PEPPER_MIN bytes).
 * ERR_INVAL for a short or NULL pepper, ERR_INTERNAL if libsodium cannot
 * start. */
int secret_key_init(secret_key *k, const char *pepper) WARN_UNUSED;
void secret_key_wipe(secret_key *k);

/* A fresh secret as text (out, NUL-terminated) and its hash. */
int secret_new(const secret_key *k, char out[SECRET_TEXT_LEN + 1],
               uint8_t hash[SECRET_HASH_LEN]) WARN_UNUSED;

/* Whether text is a secret whose hash is `want`, in constant time for
 * well-formed input. Anything that is not exactly the base64url of 32
 * bytes is simply false. */
bool secret_matches(const secret_key *k, const char *text,
                    const uint8_t want[SECRET_HASH_LEN]);

#endif
