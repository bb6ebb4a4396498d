/*
 * seal.h - webhook secrets: made, sealed at rest, and used to sign.
 *
 * A secret is SEAL_SECRET_BYTES random bytes, shown to the tenant once as
 * "whsec_" + base64 (Standard Webhooks, as Svix shows it). At rest it is
 * sealed with libsodium's crypto_secretbox (XSalsa20-Poly1305) under the
 * service's key (NOTIFICATIONS_SECRET_KEY): a seal_box is the nonce, then
 * the MAC and ciphertext, fixed size. A signature is
 * "v1," + base64(HMAC-SHA256(secret, "<id>.<timestamp>.<body>")) with
 * crypto_auth_hmacsha256, the webhook-signature header of Standard
 * Webhooks; several are separated by a space (rotation, store.h).
 *
 * Pure: no I/O. Every buffer holding a secret in clear is the caller's
 * and should be wiped (sodium_memzero) when done; these functions wipe
 * their own temporaries.
 */
#ifndef NOTIFICATIONS_SEAL_H
#define NOTIFICATIONS_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"

#define SEAL_KEY_BYTES 32    /* crypto_secretbox_KEYBYTES */
#define SEAL_SECRET_BYTES 24 /* raw webhook secret */
#define SEAL_NONCE_BYTES 24  /* crypto_secretbox_NONCEBYTES */
#define SEAL_MAC_BYTES 16    /* crypto_secretbox_MACBYTES */
#define SEAL_BOX_BYTES (SEAL_NONCE_BYTES + SEAL_MAC_BYTES + SEAL_SECRET_BYTES)
#define SEAL_SECRET_TEXT_MAX 48 /* "whsec_" + 32 base64 characters */
#define SEAL_SIGNATURE_MAX 48   /* "v1," + 44 base64 characters */

typedef struct seal_key {
  unsigned char k[SEAL_KEY_BYTES];
} seal_key;

typedef struct seal_box {
  unsigned char b[SEAL_BOX_BYTES];
} seal_box;

/* The key from its configuration text: standard base64 of exactly
 * SEAL_KEY_BYTES bytes. ERR_INVAL otherwise (the text is not echoed). */
int seal_key_parse(const char *text, seal_key *out) WARN_UNUSED;

/* A fresh secret: raw bytes into raw, its "whsec_..." text into text. */
void seal_secret_new(unsigned char raw[SEAL_SECRET_BYTES],
                     char text[SEAL_SECRET_TEXT_MAX + 1]);

/* The raw bytes of a "whsec_..." text. ERR_INVAL for anything else. */
int seal_secret_parse(const char *text,
                      unsigned char raw[SEAL_SECRET_BYTES]) WARN_UNUSED;

/* Seals raw under key with a random nonce. */
void seal_close(const seal_key *key, const unsigned char raw[SEAL_SECRET_BYTES],
                seal_box *out);

/* Opens box into raw. ERR_INVAL when it was not sealed under key or was
 * changed (raw is then zeroed). */
int seal_open(const seal_key *key, const seal_box *box,
              unsigned char raw[SEAL_SECRET_BYTES]) WARN_UNUSED;

/* "v1,<base64 HMAC-SHA256 over id.timestamp.body>" into out. ERR_NOMEM. */
int seal_sign(const unsigned char raw[SEAL_SECRET_BYTES], const char *id,
              int64_t timestamp, const char *body, size_t len,
              char out[SEAL_SIGNATURE_MAX + 1]) WARN_UNUSED;

#endif
