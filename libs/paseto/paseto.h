/*
 * paseto.h - PASETO v4.public tokens (Ed25519 over libsodium) and the PASERK
 * key formats k4.public, k4.secret and k4.pid.
 *
 * Access tokens in this system are PASETO v4.public: the payload travels in
 * clear, signed with Ed25519 together with the header, the footer and an
 * implicit assertion through PAE (pre-authentication encoding), exactly as
 * paseto-spec docs/01-Protocol-Versions/Version4.md and Common.md describe,
 * so tokens interoperate with every other PASETO implementation (the unit
 * tests replay the official test vectors).
 *
 *   token = "v4.public." b64url(m || sig) [ "." b64url(f) ]
 *   sig   = Ed25519(sk, PAE("v4.public.", m, f, i))
 *
 * The payload is opaque bytes here; claims.h adds the JSON claims layer.
 * The footer carries the signer's key id (PASERK k4.pid) so that verifiers
 * can pick the key without trying each one; it is signed, but readable
 * before verification (paseto_footer_unverified) for that purpose only.
 *
 * Keys are small structs (not bare byte arrays) so that a public key can
 * never be passed where a secret key is expected: the spec requires
 * implementations to prevent key-type confusion. Base64url is libsodium's
 * strict decoder (no padding, no '+' or '/', trailing bits must be zero).
 *
 * Every input is bounded: tokens by PASETO_TOKEN_MAX, footers by
 * PASETO_FOOTER_MAX, implicit assertions by PASETO_ASSERTION_MAX.
 * Call paseto_init() once before anything else.
 */
#ifndef PASETO_PASETO_H
#define PASETO_PASETO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"

#define PASETO_PUBLICKEYBYTES 32
#define PASETO_SECRETKEYBYTES 64 /* libsodium form: seed || public key */
#define PASETO_SEEDBYTES 32
#define PASETO_SIGBYTES 64

#define PASETO_HEADER "v4.public."
#define PASETO_HEADER_LEN 10

/* Upper bounds. A token longer than PASETO_TOKEN_MAX characters is refused
 * before any decoding; a buffer of PASETO_TOKEN_MAX + 1 always holds a
 * token this library signs. */
#define PASETO_TOKEN_MAX 8192
#define PASETO_FOOTER_MAX 1024    /* decoded footer bytes */
#define PASETO_ASSERTION_MAX 4096 /* implicit assertion bytes */

/* PASERK strings, without the terminating NUL. */
#define PASETO_PASERK_PUBLIC_LEN 53 /* "k4.public." + 43 */
#define PASETO_PASERK_SECRET_LEN 96 /* "k4.secret." + 86 */
#define PASETO_PID_LEN 51           /* "k4.pid." + 44 */

#define PASETO_PUBLIC_HEX_LEN (2 * PASETO_PUBLICKEYBYTES)
#define PASETO_SECRET_HEX_LEN (2 * PASETO_SECRETKEYBYTES)

typedef struct paseto_public_key {
  uint8_t b[PASETO_PUBLICKEYBYTES];
} paseto_public_key;

/* A secret key; wipe it with paseto_secret_key_wipe() when done. */
typedef struct paseto_secret_key {
  uint8_t b[PASETO_SECRETKEYBYTES];
} paseto_secret_key;

/* A decoded token: the payload m and the footer f, each followed by a NUL
 * that is not counted in the length (both may hold other NUL bytes). One
 * allocation; free it with paseto_token_free(). */
typedef struct paseto_token {
  char *payload;
  size_t payload_len;
  char *footer;
  size_t footer_len;
} paseto_token;

/* One piece of input to PAE. */
typedef struct paseto_piece {
  const void *p;
  size_t len;
} paseto_piece;

/* Initialises libsodium. Safe to call more than once, from any thread.
 * Returns ERR_INTERNAL if libsodium cannot initialise. */
int paseto_init(void) WARN_UNUSED;

/* ---- keys ---------------------------------------------------------------- */

/* Generates a fresh key pair from the OS random source. pk may be NULL. */
void paseto_keygen(paseto_secret_key *sk, paseto_public_key *pk);

/* Derives the key pair of a 32-byte Ed25519 seed (RFC 8032 private key).
 * pk may be NULL. */
void paseto_secret_key_from_seed(const uint8_t seed[PASETO_SEEDBYTES],
                                 paseto_secret_key *sk, paseto_public_key *pk);

/* Loads a secret key from 64 bytes (seed || public key, libsodium form) or
 * 32 bytes (seed). A 64-byte key whose public half does not belong to its
 * seed is refused: signing with it would leak the key. ERR_INVAL for any
 * other length or a mismatched key; sk is wiped on failure. */
int paseto_secret_key_from_bytes(const uint8_t *b, size_t len,
                                 paseto_secret_key *sk) WARN_UNUSED;

/* The public key of sk. */
void paseto_public_key_of(const paseto_secret_key *sk, paseto_public_key *pk);

/* Loads a 32-byte public key. ERR_INVAL for another length or for bytes
 * that are not a usable Ed25519 point (non-canonical, small order). */
int paseto_public_key_from_bytes(const uint8_t *b, size_t len,
                                 paseto_public_key *pk) WARN_UNUSED;

/* Hex forms (lower case out; either case in, no separators). A secret key
 * is 128 hex digits (64 bytes) or 64 hex digits (a seed); a public key is
 * 64 hex digits. ERR_INVAL for bad digits, lengths or keys (as above). */
int paseto_secret_key_from_hex(const char *hex, size_t len,
                               paseto_secret_key *sk) WARN_UNUSED;
int paseto_public_key_from_hex(const char *hex, size_t len,
                               paseto_public_key *pk) WARN_UNUSED;
void paseto_secret_key_to_hex(const paseto_secret_key *sk,
                              char out[PASETO_SECRET_HEX_LEN + 1]);
void paseto_public_key_to_hex(const paseto_public_key *pk,
                              char out[PASETO_PUBLIC_HEX_LEN + 1]);

/* Overwrites the key with zeros (sodium_memzero). NULL is ignored. */
void paseto_secret_key_wipe(paseto_secret_key *sk);

/* True when both public keys are equal (constant time). */
bool paseto_public_key_equal(const paseto_public_key *a,
                             const paseto_public_key *b);

/* ---- PASERK ----------------------------------------------------------------
 */

/* "k4.public." || b64url(pk), NUL-terminated. */
void paseto_paserk_public(const paseto_public_key *pk,
                          char out[PASETO_PASERK_PUBLIC_LEN + 1]);

/* "k4.secret." || b64url(sk, 64 bytes), NUL-terminated. A secret: wipe the
 * buffer (sodium_memzero) after use. */
void paseto_paserk_secret(const paseto_secret_key *sk,
                          char out[PASETO_PASERK_SECRET_LEN + 1]);

/* The PASERK id of a public key (paserk operations/ID.md, versions 2/4):
 *   "k4.pid." || b64url(BLAKE2b-264("k4.pid." || "k4.public." || b64url(pk)))
 * NUL-terminated. This is the "kid" of the token footer. */
void paseto_pid(const paseto_public_key *pk, char out[PASETO_PID_LEN + 1]);

/* Parse "k4.public.…" / "k4.secret.…" of exactly the right length. Other
 * versions or types ("k3.public.", "k4.local."), padding or bad characters
 * give ERR_INVAL, as do keys refused by the _from_bytes loaders. */
int paseto_paserk_public_parse(const char *s, size_t len,
                               paseto_public_key *pk) WARN_UNUSED;
int paseto_paserk_secret_parse(const char *s, size_t len,
                               paseto_secret_key *sk) WARN_UNUSED;

/* True when s[0..len) has the shape of a k4.pid (prefix, 44 base64url
 * characters that decode to 33 bytes). It says nothing of which key. */
bool paseto_pid_is_valid(const char *s, size_t len);

/* ---- PAE ----------------------------------------------------------------- */

/* Bytes PAE(pieces) takes: 8 + sum(8 + len). */
size_t paseto_pae_len(const paseto_piece *pieces, size_t n);

/* Pre-authentication encoding (Common.md): LE64(n), then for each piece
 * LE64(len) || piece, the top bit of every LE64 cleared. Writes into
 * out (capacity cap); ERR_TOOBIG if cap < paseto_pae_len(). */
int paseto_pae(const paseto_piece *pieces, size_t n, uint8_t *out, size_t cap,
               size_t *out_len) WARN_UNUSED;

/* ---- tokens -------------------------------------------------------------- */

/* Signs msg into a v4.public token with footer f and implicit assertion i
 * (either may be empty: NULL with length 0). Deterministic: the same
 * inputs always give the same token. Writes the token and a NUL into out
 * (capacity out_cap); *out_len (may be NULL) gets its length.
 * Errors: ERR_INVAL (NULL arguments), ERR_TOOBIG (footer or assertion over
 * their bounds, token over PASETO_TOKEN_MAX, or out_cap too small),
 * ERR_NOMEM. The caller keeps ownership of everything. */
int paseto_sign(const paseto_secret_key *sk, const void *msg, size_t msg_len,
                const void *footer, size_t footer_len, const void *assertion,
                size_t assertion_len, char *out, size_t out_cap,
                size_t *out_len) WARN_UNUSED;

/* Verifies a v4.public token with public key pk and implicit assertion i
 * (NULL/0 for none). If expected_footer is not NULL the token's footer must
 * equal it byte for byte (constant-time compare; an empty expected footer
 * means "no footer"); if it is NULL any footer is accepted, and returned.
 * Strict: the header must be exactly "v4.public.", the base64url canonical
 * and unpadded, a present footer section non-empty, the decoded body at
 * least 64 bytes.
 * On success *out is a new token (free with paseto_token_free) holding the
 * payload and footer. On failure *out is NULL and *why (if why is not NULL)
 * points to a static, human-readable reason.
 * Errors: ERR_TOOBIG (token over PASETO_TOKEN_MAX, footer over
 * PASETO_FOOTER_MAX, assertion over PASETO_ASSERTION_MAX), ERR_INVAL
 * (malformed token, footer mismatch, bad signature), ERR_NOMEM. */
int paseto_verify(const paseto_public_key *pk, const char *token,
                  size_t token_len, const void *expected_footer,
                  size_t expected_footer_len, const void *assertion,
                  size_t assertion_len, paseto_token **out,
                  const char **why) WARN_UNUSED;

/* Decodes a v4.public token WITHOUT verifying it: the payload (signature
 * stripped) and footer are attacker-controlled until paseto_verify accepts
 * the token. Same format checks, bounds, errors and ownership as
 * paseto_verify. For diagnostics and tools only. */
int paseto_decode_unverified(const char *token, size_t token_len,
                             paseto_token **out, const char **why) WARN_UNUSED;

/* Decodes only the footer of a v4.public token, WITHOUT verifying it, into
 * out (capacity cap, NUL-terminated; *out_len gets the length, 0 for no
 * footer). Meant for reading the key id before verification. Checks the
 * header, the token and footer bounds and the footer's base64url (not the
 * body). Errors: ERR_INVAL (malformed), ERR_TOOBIG (token or footer over
 * its bound, or footer does not fit in cap). */
int paseto_footer_unverified(const char *token, size_t token_len, char *out,
                             size_t cap, size_t *out_len) WARN_UNUSED;

/* Frees a token from paseto_verify/paseto_decode_unverified. NULL-safe. */
void paseto_token_free(paseto_token *t);

#endif
