/*
 * seal.h - saved answers that hold secrets, sealed at rest.
 *
 * Some creates answer a secret shown only then: tokens (CreateTenant), a
 * webhook's signing secret (CreateWebhook), a device secret
 * (RegisterDevice). Their Idempotency-Key must replay that answer, so it
 * is saved - but never readable in the database. The answer is encrypted
 * (crypto_secretbox, XSalsa20-Poly1305) under a key the database does not
 * hold: BLAKE2b-256 (idem_hash_keyed) of a seal tag - different from the
 * request hash's tag - the method and the request itself, keyed with the
 * service's own secret when it has one. So only a caller presenting the
 * same body to a server holding that secret opens it. Without a secret
 * (tenants: the body carries the owner's password) the request alone is
 * the key.
 *
 * Layout: a random 24-byte nonce, then crypto_secretbox_easy of the
 * answer. A saved answer that does not open is the caller's internal
 * error, never "create again".
 *
 * Every buffer that holds an answer in clear is the caller's to wipe
 * (sodium_memzero) and free.
 */
#ifndef LIBS_IDEM_SEAL_H
#define LIBS_IDEM_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "libs/idem/idem.h"

#define IDEM_SEAL_KEY_LEN 32  /* crypto_secretbox_KEYBYTES */
#define IDEM_SEAL_OVERHEAD 40 /* nonce 24 + MAC 16 */

/* out = idem_hash_keyed(secret, seal_tag, method, payload). secret NULL:
 * unkeyed. ERR_INTERNAL if libsodium cannot initialise. */
int idem_seal_key(const uint8_t *secret, const char *seal_tag,
                  const char *method, const void *payload, size_t len,
                  uint8_t out[IDEM_SEAL_KEY_LEN]) WARN_UNUSED;

/* *out = nonce || secretbox(plain[0..n)) under key, malloc'd (the caller
 * frees), *len its size (n + IDEM_SEAL_OVERHEAD). ERR_NOMEM. */
int idem_seal(const uint8_t key[IDEM_SEAL_KEY_LEN], const uint8_t *plain,
              size_t n, uint8_t **out, size_t *len) WARN_UNUSED;

/* Opens sealed[0..len) into *out (malloc'd; the caller wipes and frees),
 * *n its size. ERR_INVAL when it was not sealed under key or was changed
 * (*out NULL), ERR_NOMEM. */
int idem_unseal(const uint8_t key[IDEM_SEAL_KEY_LEN], const uint8_t *sealed,
                size_t len, uint8_t **out, size_t *n) WARN_UNUSED;

#endif
