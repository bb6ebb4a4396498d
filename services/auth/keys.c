/*
 * keys.c - signing keys from configuration (see keys.h).
 *
 * The parser walks the list once, copying each token into a small stack
 * buffer that is wiped after use, so the only long-lived copies of a
 * secret are the paseto_secret_key structs inside the set (wiped on free).
 */
#include "services/auth/keys.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "libs/base/strutil.h"

#define TOKEN_MAX 160 /* longest entry: 128 hex digits / a 53-char PASERK */

typedef struct slot {
  bool has_secret;
  paseto_secret_key sk;
  paseto_public_key pk;
  char kid[PASETO_PID_LEN + 1];
} slot;

struct auth_keys {
  slot s[AUTH_KEYS_MAX];
  size_t n;
};

static bool is_sep(char c) {
  return c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Loads one entry into sl. */
static int parse_one(const char *tok, size_t len, slot *sl) {
  memset(sl, 0, sizeof *sl);
  if (len > 10 && memcmp(tok, "k4.public.", 10) == 0) {
    if (paseto_paserk_public_parse(tok, len, &sl->pk) != ERR_OK)
      return ERR_INVAL;
  } else if (len == PASETO_SECRET_HEX_LEN || len == 2 * PASETO_SEEDBYTES) {
    if (paseto_secret_key_from_hex(tok, len, &sl->sk) != ERR_OK)
      return ERR_INVAL;
    sl->has_secret = true;
    paseto_public_key_of(&sl->sk, &sl->pk);
  } else {
    return ERR_INVAL;
  }
  paseto_pid(&sl->pk, sl->kid);
  return ERR_OK;
}

int auth_keys_parse(const char *list, auth_keys **out, int *bad_index) {
  int bad_local = -1;
  int *bad = bad_index != NULL ? bad_index : &bad_local;
  *bad = -1;
  if (out == NULL) return ERR_INVAL;
  *out = NULL;
  if (list == NULL) return ERR_INVAL;
  if (paseto_init() != ERR_OK) return ERR_INTERNAL;
  auth_keys *k = calloc(1, sizeof *k);
  if (k == NULL) return ERR_NOMEM;
  int rc = ERR_OK;
  const char *p = list;
  char tok[TOKEN_MAX + 1];
  while (*p != '\0') {
    if (is_sep(*p)) {
      p++;
      continue;
    }
    if (*p == '#') {
      while (*p != '\0' && *p != '\n') p++;
      continue;
    }
    size_t len = 0;
    while (p[len] != '\0' && !is_sep(p[len]) && p[len] != '#') len++;
    int idx = (int)k->n;
    if (k->n == AUTH_KEYS_MAX) {
      rc = ERR_TOOBIG;
      *bad = idx;
      break;
    }
    if (len > TOKEN_MAX) {
      rc = ERR_INVAL;
      *bad = idx;
      break;
    }
    memcpy(tok, p, len);
    tok[len] = '\0';
    rc = parse_one(tok, len, &k->s[k->n]);
    sodium_memzero(tok, sizeof tok);
    if (rc == ERR_OK && k->n == 0 && !k->s[0].has_secret)
      rc = ERR_INVAL; /* the first key signs: it must be a secret */
    for (size_t i = 0; rc == ERR_OK && i < k->n; i++)
      if (strcmp(k->s[i].kid, k->s[k->n].kid) == 0) rc = ERR_INVAL;
    if (rc != ERR_OK) {
      *bad = idx;
      break;
    }
    k->n++;
    p += len;
  }
  if (rc == ERR_OK && k->n == 0) rc = ERR_INVAL;
  if (rc != ERR_OK) {
    auth_keys_free(k);
    return rc;
  }
  *out = k;
  return ERR_OK;
}

int auth_keys_load_file(const char *path, auth_keys **out, int *bad_index) {
  if (bad_index != NULL) *bad_index = -1;
  if (out == NULL) return ERR_INVAL;
  *out = NULL;
  if (path == NULL) return ERR_INVAL;
  FILE *f = fopen(path, "re");
  if (f == NULL) return ERR_IO;
  char *buf = malloc(AUTH_KEYS_FILE_MAX + 2);
  if (buf == NULL) {
    fclose(f);
    return ERR_NOMEM;
  }
  size_t n = fread(buf, 1, AUTH_KEYS_FILE_MAX + 1, f);
  int rd_err = ferror(f);
  fclose(f);
  int rc;
  if (rd_err)
    rc = ERR_IO;
  else if (n > AUTH_KEYS_FILE_MAX)
    rc = ERR_TOOBIG;
  else if (memchr(buf, '\0', n) != NULL)
    rc = ERR_INVAL;
  else {
    buf[n] = '\0';
    rc = auth_keys_parse(buf, out, bad_index);
  }
  sodium_memzero(buf, AUTH_KEYS_FILE_MAX + 2);
  free(buf);
  return rc;
}

void auth_keys_free(auth_keys *k) {
  if (k == NULL) return;
  sodium_memzero(k, sizeof *k);
  free(k);
}

size_t auth_keys_count(const auth_keys *k) { return k->n; }

const char *auth_keys_kid(const auth_keys *k, size_t i) {
  return i < k->n ? k->s[i].kid : NULL;
}

const paseto_public_key *auth_keys_public(const auth_keys *k, size_t i) {
  return i < k->n ? &k->s[i].pk : NULL;
}

bool auth_keys_is_active(const auth_keys *k, size_t i) {
  return i == 0 && k->n > 0;
}

int auth_keys_sign(const auth_keys *k, const paseto_claims *claims, char *out,
                   size_t cap, size_t *len) {
  if (k == NULL || k->n == 0 || !k->s[0].has_secret || claims == NULL ||
      out == NULL)
    return ERR_INVAL;
  char *json = NULL;
  size_t jlen = 0;
  int rc = paseto_claims_to_json(claims, &json, &jlen);
  if (rc != ERR_OK) return rc;
  char footer[PASETO_KID_FOOTER_MAX];
  size_t flen = 0;
  rc = paseto_footer_kid_json(k->s[0].kid, footer, sizeof footer, &flen);
  if (rc == ERR_OK)
    rc = paseto_sign(&k->s[0].sk, json, jlen, footer, flen, NULL, 0, out, cap,
                     len);
  free(json);
  return rc;
}

int auth_keys_derive(const auth_keys *k, const char *context, uint8_t out[32]) {
  if (k == NULL || k->n == 0 || !k->s[0].has_secret || context == NULL)
    return ERR_INVAL;
  /* The first 32 bytes of a libsodium Ed25519 secret key are its seed. */
  crypto_generichash(out, 32, (const unsigned char *)context, strlen(context),
                     k->s[0].sk.b, 32);
  return ERR_OK;
}
