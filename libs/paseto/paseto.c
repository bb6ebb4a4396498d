/*
 * paseto.c - PASETO v4.public and PASERK k4 keys (see paseto.h).
 *
 * Every step follows paseto-spec Version4.md "Sign"/"Verify" literally;
 * nothing here is a variation, because a token must verify in any other
 * PASETO implementation. All cryptography and all base64/hex coding is
 * libsodium's: crypto_sign_detached / crypto_sign_verify_detached for
 * Ed25519, crypto_generichash for the BLAKE2b of PASERK ids, and
 * sodium_base642bin, whose URL-safe no-padding variant already rejects
 * padding, foreign characters and non-zero trailing bits, which is the
 * strictness Common.md asks of a decoder.
 *
 * A token is split on the first '.' after the header: base64url has no '.',
 * so anything after it is the footer, and a second '.' is simply an invalid
 * base64 character there. A decoded token lives in one allocation: the
 * struct, the payload and the footer, each NUL-terminated.
 */
#include "libs/paseto/paseto.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define B64_VARIANT sodium_base64_VARIANT_URLSAFE_NO_PADDING

#define PASERK_PUBLIC_PREFIX "k4.public."
#define PASERK_SECRET_PREFIX "k4.secret."
#define PASERK_PID_PREFIX "k4.pid."
#define PASERK_PREFIX_LEN 10 /* "k4.public." and "k4.secret." */
#define PASERK_PID_PREFIX_LEN 7
#define PASERK_PID_HASHBYTES 33 /* BLAKE2b-264 */

/* Length of the unpadded base64url encoding of n bytes. */
static size_t b64_len(size_t n) {
  return (n / 3) * 4 + (n % 3 ? n % 3 + 1 : 0);
}

/* Upper bound of the bytes n base64 characters decode to (exact for
 * canonical input). */
static size_t b64_decoded_max(size_t n) { return n / 4 * 3 + (n % 4) * 3 / 4; }

/* Writes b64url(bin) and a NUL at out; out must hold b64_len(len) + 1. */
static void b64_encode(char *out, const uint8_t *bin, size_t len) {
  sodium_bin2base64(out, b64_len(len) + 1, bin, len, B64_VARIANT);
}

/* Strict decode of exactly s[0..len) into out (capacity cap). */
static int b64_decode(const char *s, size_t len, uint8_t *out, size_t cap,
                      size_t *out_len) {
  const char *end = NULL;
  if (sodium_base642bin(out, cap, s, len, NULL, out_len, &end, B64_VARIANT) !=
          0 ||
      end != s + len)
    return ERR_INVAL;
  return ERR_OK;
}

int paseto_init(void) { return sodium_init() < 0 ? ERR_INTERNAL : ERR_OK; }

/* ---- keys ---------------------------------------------------------------- */

void paseto_keygen(paseto_secret_key *sk, paseto_public_key *pk) {
  paseto_public_key tmp;
  crypto_sign_keypair(tmp.b, sk->b);
  if (pk) *pk = tmp;
}

void paseto_secret_key_from_seed(const uint8_t seed[PASETO_SEEDBYTES],
                                 paseto_secret_key *sk, paseto_public_key *pk) {
  paseto_public_key tmp;
  crypto_sign_seed_keypair(tmp.b, sk->b, seed);
  if (pk) *pk = tmp;
}

int paseto_secret_key_from_bytes(const uint8_t *b, size_t len,
                                 paseto_secret_key *sk) {
  if (!b || !sk) return ERR_INVAL;
  if (len == PASETO_SEEDBYTES) {
    paseto_secret_key_from_seed(b, sk, NULL);
    return ERR_OK;
  }
  if (len != PASETO_SECRETKEYBYTES) return ERR_INVAL;
  /* libsodium signs with the public half stored in the key; a wrong one
   * makes signatures that, compared with correct ones, reveal the key. */
  paseto_secret_key_from_seed(b, sk, NULL);
  if (sodium_memcmp(sk->b, b, PASETO_SECRETKEYBYTES) != 0) {
    sodium_memzero(sk, sizeof *sk);
    return ERR_INVAL;
  }
  return ERR_OK;
}

void paseto_public_key_of(const paseto_secret_key *sk, paseto_public_key *pk) {
  crypto_sign_ed25519_sk_to_pk(pk->b, sk->b);
}

int paseto_public_key_from_bytes(const uint8_t *b, size_t len,
                                 paseto_public_key *pk) {
  if (!b || !pk || len != PASETO_PUBLICKEYBYTES) return ERR_INVAL;
  if (!crypto_core_ed25519_is_valid_point(b)) return ERR_INVAL;
  memcpy(pk->b, b, PASETO_PUBLICKEYBYTES);
  return ERR_OK;
}

/* Decodes exactly len hex digits into out, which must receive exactly
 * want bytes. */
static int hex_decode(const char *hex, size_t len, uint8_t *out, size_t want) {
  size_t n = 0;
  const char *end = NULL;
  if (len != 2 * want) return ERR_INVAL;
  if (sodium_hex2bin(out, want, hex, len, NULL, &n, &end) != 0 ||
      end != hex + len || n != want)
    return ERR_INVAL;
  return ERR_OK;
}

int paseto_secret_key_from_hex(const char *hex, size_t len,
                               paseto_secret_key *sk) {
  uint8_t raw[PASETO_SECRETKEYBYTES];
  size_t want =
      len == 2 * PASETO_SEEDBYTES ? PASETO_SEEDBYTES : PASETO_SECRETKEYBYTES;
  int rc = ERR_INVAL;
  if (!hex || !sk) return ERR_INVAL;
  if (hex_decode(hex, len, raw, want) == ERR_OK)
    rc = paseto_secret_key_from_bytes(raw, want, sk);
  sodium_memzero(raw, sizeof raw);
  return rc;
}

int paseto_public_key_from_hex(const char *hex, size_t len,
                               paseto_public_key *pk) {
  uint8_t raw[PASETO_PUBLICKEYBYTES];
  if (!hex || !pk) return ERR_INVAL;
  if (hex_decode(hex, len, raw, sizeof raw) != ERR_OK) return ERR_INVAL;
  return paseto_public_key_from_bytes(raw, sizeof raw, pk);
}

void paseto_secret_key_to_hex(const paseto_secret_key *sk,
                              char out[PASETO_SECRET_HEX_LEN + 1]) {
  sodium_bin2hex(out, PASETO_SECRET_HEX_LEN + 1, sk->b, PASETO_SECRETKEYBYTES);
}

void paseto_public_key_to_hex(const paseto_public_key *pk,
                              char out[PASETO_PUBLIC_HEX_LEN + 1]) {
  sodium_bin2hex(out, PASETO_PUBLIC_HEX_LEN + 1, pk->b, PASETO_PUBLICKEYBYTES);
}

void paseto_secret_key_wipe(paseto_secret_key *sk) {
  if (sk) sodium_memzero(sk, sizeof *sk);
}

bool paseto_public_key_equal(const paseto_public_key *a,
                             const paseto_public_key *b) {
  return sodium_memcmp(a->b, b->b, PASETO_PUBLICKEYBYTES) == 0;
}

/* ---- PASERK ----------------------------------------------------------------
 */

void paseto_paserk_public(const paseto_public_key *pk,
                          char out[PASETO_PASERK_PUBLIC_LEN + 1]) {
  memcpy(out, PASERK_PUBLIC_PREFIX, PASERK_PREFIX_LEN);
  b64_encode(out + PASERK_PREFIX_LEN, pk->b, PASETO_PUBLICKEYBYTES);
}

void paseto_paserk_secret(const paseto_secret_key *sk,
                          char out[PASETO_PASERK_SECRET_LEN + 1]) {
  memcpy(out, PASERK_SECRET_PREFIX, PASERK_PREFIX_LEN);
  b64_encode(out + PASERK_PREFIX_LEN, sk->b, PASETO_SECRETKEYBYTES);
}

void paseto_pid(const paseto_public_key *pk, char out[PASETO_PID_LEN + 1]) {
  /* paserk operations/ID.md, versions 2 and 4: d = BLAKE2b-264(h || p),
   * h = "k4.pid.", p = the whole k4.public PASERK of the key. */
  char paserk[PASETO_PASERK_PUBLIC_LEN + 1];
  uint8_t d[PASERK_PID_HASHBYTES];
  crypto_generichash_state st;
  paseto_paserk_public(pk, paserk);
  crypto_generichash_init(&st, NULL, 0, sizeof d);
  crypto_generichash_update(&st, (const uint8_t *)PASERK_PID_PREFIX,
                            PASERK_PID_PREFIX_LEN);
  crypto_generichash_update(&st, (const uint8_t *)paserk,
                            PASETO_PASERK_PUBLIC_LEN);
  crypto_generichash_final(&st, d, sizeof d);
  memcpy(out, PASERK_PID_PREFIX, PASERK_PID_PREFIX_LEN);
  b64_encode(out + PASERK_PID_PREFIX_LEN, d, sizeof d);
}

/* Decodes the data of a PASERK "<prefix><b64>" of exactly total_len
 * characters into out (want bytes). */
static int paserk_decode(const char *s, size_t len, const char *prefix,
                         size_t prefix_len, size_t total_len, uint8_t *out,
                         size_t want) {
  size_t n = 0;
  if (!s || len != total_len || memcmp(s, prefix, prefix_len) != 0)
    return ERR_INVAL;
  if (b64_decode(s + prefix_len, len - prefix_len, out, want, &n) != ERR_OK ||
      n != want)
    return ERR_INVAL;
  return ERR_OK;
}

int paseto_paserk_public_parse(const char *s, size_t len,
                               paseto_public_key *pk) {
  uint8_t raw[PASETO_PUBLICKEYBYTES];
  if (!pk) return ERR_INVAL;
  if (paserk_decode(s, len, PASERK_PUBLIC_PREFIX, PASERK_PREFIX_LEN,
                    PASETO_PASERK_PUBLIC_LEN, raw, sizeof raw) != ERR_OK)
    return ERR_INVAL;
  return paseto_public_key_from_bytes(raw, sizeof raw, pk);
}

int paseto_paserk_secret_parse(const char *s, size_t len,
                               paseto_secret_key *sk) {
  uint8_t raw[PASETO_SECRETKEYBYTES];
  int rc = ERR_INVAL;
  if (!sk) return ERR_INVAL;
  if (paserk_decode(s, len, PASERK_SECRET_PREFIX, PASERK_PREFIX_LEN,
                    PASETO_PASERK_SECRET_LEN, raw, sizeof raw) == ERR_OK)
    rc = paseto_secret_key_from_bytes(raw, sizeof raw, sk);
  sodium_memzero(raw, sizeof raw);
  return rc;
}

bool paseto_pid_is_valid(const char *s, size_t len) {
  uint8_t raw[PASERK_PID_HASHBYTES];
  return paserk_decode(s, len, PASERK_PID_PREFIX, PASERK_PID_PREFIX_LEN,
                       PASETO_PID_LEN, raw, sizeof raw) == ERR_OK;
}

/* ---- PAE ----------------------------------------------------------------- */

/* Little-endian 64-bit with the most significant bit cleared (Common.md:
 * for languages without unsigned integers). */
static void le64(uint8_t out[8], uint64_t n) {
  for (int i = 0; i < 8; i++) {
    if (i == 7) n &= 127;
    out[i] = (uint8_t)(n & 255);
    n >>= 8;
  }
}

size_t paseto_pae_len(const paseto_piece *pieces, size_t n) {
  size_t total = 8;
  for (size_t i = 0; i < n; i++) total += 8 + pieces[i].len;
  return total;
}

int paseto_pae(const paseto_piece *pieces, size_t n, uint8_t *out, size_t cap,
               size_t *out_len) {
  size_t pos = 0;
  if ((n && !pieces) || !out) return ERR_INVAL;
  if (paseto_pae_len(pieces, n) > cap) return ERR_TOOBIG;
  le64(out, n);
  pos = 8;
  for (size_t i = 0; i < n; i++) {
    le64(out + pos, pieces[i].len);
    pos += 8;
    if (pieces[i].len) memcpy(out + pos, pieces[i].p, pieces[i].len);
    pos += pieces[i].len;
  }
  if (out_len) *out_len = pos;
  return ERR_OK;
}

/* PAE(h, m, f, i) in a new buffer (*out, free()). */
static int pae4(const void *m, size_t m_len, const void *f, size_t f_len,
                const void *i, size_t i_len, uint8_t **out, size_t *out_len) {
  paseto_piece pieces[4] = {
      {PASETO_HEADER, PASETO_HEADER_LEN},
      {m, m_len},
      {f, f_len},
      {i, i_len},
  };
  size_t len = paseto_pae_len(pieces, 4);
  uint8_t *buf = malloc(len);
  if (!buf) return ERR_NOMEM;
  if (paseto_pae(pieces, 4, buf, len, out_len) != ERR_OK) {
    free(buf);
    return ERR_INTERNAL;
  }
  *out = buf;
  return ERR_OK;
}

/* ---- tokens -------------------------------------------------------------- */

int paseto_sign(const paseto_secret_key *sk, const void *msg, size_t msg_len,
                const void *footer, size_t footer_len, const void *assertion,
                size_t assertion_len, char *out, size_t out_cap,
                size_t *out_len) {
  uint8_t *body = NULL, *m2 = NULL;
  size_t m2_len = 0, tlen, pos;
  int rc;

  if (!sk || !out || (msg_len && !msg) || (footer_len && !footer) ||
      (assertion_len && !assertion))
    return ERR_INVAL;
  if (footer_len > PASETO_FOOTER_MAX || assertion_len > PASETO_ASSERTION_MAX ||
      msg_len > PASETO_TOKEN_MAX)
    return ERR_TOOBIG;
  tlen = PASETO_HEADER_LEN + b64_len(msg_len + PASETO_SIGBYTES) +
         (footer_len ? 1 + b64_len(footer_len) : 0);
  if (tlen > PASETO_TOKEN_MAX || tlen + 1 > out_cap) return ERR_TOOBIG;

  body = malloc(msg_len + PASETO_SIGBYTES);
  if (!body) return ERR_NOMEM;
  if (msg_len) memcpy(body, msg, msg_len);
  rc = pae4(msg, msg_len, footer, footer_len, assertion, assertion_len, &m2,
            &m2_len);
  if (rc != ERR_OK) goto err;
  /* Ed25519 (RFC 8032) is deterministic: same key and m2, same signature. */
  if (crypto_sign_detached(body + msg_len, NULL, m2, m2_len, sk->b) != 0) {
    rc = ERR_INTERNAL;
    goto err;
  }

  memcpy(out, PASETO_HEADER, PASETO_HEADER_LEN);
  pos = PASETO_HEADER_LEN;
  b64_encode(out + pos, body, msg_len + PASETO_SIGBYTES);
  pos += b64_len(msg_len + PASETO_SIGBYTES);
  if (footer_len) {
    out[pos++] = '.';
    b64_encode(out + pos, footer, footer_len);
    pos += b64_len(footer_len);
  }
  out[pos] = '\0';
  if (out_len) *out_len = pos;
  rc = ERR_OK;
err:
  free(m2);
  free(body);
  return rc;
}

/* The base64url sections of a token. */
struct parts {
  const char *body;
  size_t body_len;
  const char *foot; /* NULL: no footer section */
  size_t foot_len;
};

static int fail(const char **why, const char *reason, int rc) {
  if (why) *why = reason;
  return rc;
}

/* Checks the bounds and the header and splits off the footer section. */
static int split_token(const char *t, size_t len, struct parts *p,
                       const char **why) {
  const char *rest, *dot;
  size_t rest_len;
  if (!t) return fail(why, "no token", ERR_INVAL);
  if (len > PASETO_TOKEN_MAX)
    return fail(why, "token longer than the maximum", ERR_TOOBIG);
  if (len < PASETO_HEADER_LEN || memcmp(t, PASETO_HEADER, PASETO_HEADER_LEN))
    return fail(why, "not a v4.public token (wrong header)", ERR_INVAL);
  rest = t + PASETO_HEADER_LEN;
  rest_len = len - PASETO_HEADER_LEN;
  dot = memchr(rest, '.', rest_len);
  p->body = rest;
  p->body_len = dot ? (size_t)(dot - rest) : rest_len;
  p->foot = dot ? dot + 1 : NULL;
  p->foot_len = dot ? rest_len - p->body_len - 1 : 0;
  /* The spec appends "." only for a non-empty footer; "body." is not a
   * token any signer produces. */
  if (dot && p->foot_len == 0)
    return fail(why, "empty footer section", ERR_INVAL);
  if (b64_decoded_max(p->foot_len) > PASETO_FOOTER_MAX)
    return fail(why, "footer longer than the maximum", ERR_TOOBIG);
  return ERR_OK;
}

/* Decodes a token into a new paseto_token (payload without the signature)
 * and copies the signature to sig. */
static int decode_token(const char *token, size_t len, paseto_token **out,
                        uint8_t sig[PASETO_SIGBYTES], const char **why) {
  struct parts p;
  paseto_token *t;
  size_t body_cap, foot_cap, n = 0, fn = 0;
  uint8_t *area;
  int rc = split_token(token, len, &p, why);
  if (rc != ERR_OK) return rc;

  body_cap = b64_decoded_max(p.body_len);
  foot_cap = b64_decoded_max(p.foot_len);
  t = malloc(sizeof *t + body_cap + 1 + foot_cap + 1);
  if (!t) return fail(why, "out of memory", ERR_NOMEM);
  area = (uint8_t *)(t + 1);
  if (b64_decode(p.body, p.body_len, area, body_cap, &n) != ERR_OK) {
    free(t);
    return fail(why, "payload is not canonical unpadded base64url", ERR_INVAL);
  }
  if (n < PASETO_SIGBYTES) {
    free(t);
    return fail(why, "token too short to hold a signature", ERR_INVAL);
  }
  memcpy(sig, area + n - PASETO_SIGBYTES, PASETO_SIGBYTES);
  t->payload = (char *)area;
  t->payload_len = n - PASETO_SIGBYTES;
  t->payload[t->payload_len] = '\0';

  t->footer = (char *)area + body_cap + 1;
  if (p.foot && b64_decode(p.foot, p.foot_len, (uint8_t *)t->footer, foot_cap,
                           &fn) != ERR_OK) {
    free(t);
    return fail(why, "footer is not canonical unpadded base64url", ERR_INVAL);
  }
  t->footer_len = fn;
  t->footer[fn] = '\0';
  *out = t;
  return ERR_OK;
}

int paseto_verify(const paseto_public_key *pk, const char *token,
                  size_t token_len, const void *expected_footer,
                  size_t expected_footer_len, const void *assertion,
                  size_t assertion_len, paseto_token **out, const char **why) {
  paseto_token *t = NULL;
  uint8_t sig[PASETO_SIGBYTES];
  uint8_t *m2 = NULL;
  size_t m2_len = 0;
  int rc;

  if (out) *out = NULL;
  if (!pk || !out || (assertion_len && !assertion) ||
      (expected_footer_len && !expected_footer))
    return fail(why, "invalid arguments", ERR_INVAL);
  if (assertion_len > PASETO_ASSERTION_MAX)
    return fail(why, "implicit assertion longer than the maximum", ERR_TOOBIG);
  rc = decode_token(token, token_len, &t, sig, why);
  if (rc != ERR_OK) return rc;

  /* Version4.md Verify step 1: compare an expected footer in constant
   * time (its length is not secret). */
  if (expected_footer &&
      (t->footer_len != expected_footer_len ||
       (expected_footer_len &&
        sodium_memcmp(t->footer, expected_footer, expected_footer_len) != 0))) {
    rc = fail(why, "footer does not match the expected footer", ERR_INVAL);
    goto err;
  }
  rc = pae4(t->payload, t->payload_len, t->footer, t->footer_len, assertion,
            assertion_len, &m2, &m2_len);
  if (rc != ERR_OK) {
    fail(why, "out of memory", rc);
    goto err;
  }
  if (crypto_sign_verify_detached(sig, m2, m2_len, pk->b) != 0) {
    rc = fail(why, "invalid signature", ERR_INVAL);
    goto err;
  }
  free(m2);
  *out = t;
  return ERR_OK;
err:
  free(m2);
  free(t);
  return rc;
}

int paseto_decode_unverified(const char *token, size_t token_len,
                             paseto_token **out, const char **why) {
  uint8_t sig[PASETO_SIGBYTES];
  if (!out) return fail(why, "invalid arguments", ERR_INVAL);
  *out = NULL;
  return decode_token(token, token_len, out, sig, why);
}

int paseto_footer_unverified(const char *token, size_t token_len, char *out,
                             size_t cap, size_t *out_len) {
  struct parts p;
  size_t n = 0;
  int rc;
  if (!out || cap == 0) return ERR_INVAL;
  rc = split_token(token, token_len, &p, NULL);
  if (rc != ERR_OK) return rc;
  if (b64_decoded_max(p.foot_len) + 1 > cap) return ERR_TOOBIG;
  if (p.foot &&
      b64_decode(p.foot, p.foot_len, (uint8_t *)out, cap - 1, &n) != ERR_OK)
    return ERR_INVAL;
  out[n] = '\0';
  if (out_len) *out_len = n;
  return ERR_OK;
}

void paseto_token_free(paseto_token *t) { free(t); }
