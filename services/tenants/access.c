/*
 * access.c - the operator secret (see access.h).
 */
#include "services/tenants/access.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct access_operator {
  bool enabled;
  unsigned char digest[crypto_generichash_BYTES];
};

/* Domain-separated digest, so the stored value is useless elsewhere. */
static void digest(const char *s, size_t len, unsigned char out[32]) {
  static const unsigned char key[] = "tenants.operator.v1";
  crypto_generichash(out, 32, (const unsigned char *)s, len, key,
                     sizeof key - 1);
}

int access_operator_new(const char *secret, access_operator **out) {
  *out = NULL;
  if (sodium_init() < 0) return ERR_INTERNAL;
  size_t len = secret ? strlen(secret) : 0;
  if (len > 0 && len < ACCESS_OPERATOR_SECRET_MIN) return ERR_INVAL;
  access_operator *op = calloc(1, sizeof *op);
  if (op == NULL) return ERR_NOMEM;
  if (len > 0) {
    op->enabled = true;
    digest(secret, len, op->digest);
  }
  *out = op;
  return ERR_OK;
}

void access_operator_free(access_operator *op) {
  if (op == NULL) return;
  sodium_memzero(op, sizeof *op);
  free(op);
}

bool access_operator_enabled(const access_operator *op) {
  return op != NULL && op->enabled;
}

bool access_operator_check(const access_operator *op, const char *token) {
  if (!access_operator_enabled(op) || token == NULL) return false;
  unsigned char d[32];
  digest(token, strlen(token), d);
  bool ok = crypto_verify_32(d, op->digest) == 0;
  sodium_memzero(d, sizeof d);
  return ok;
}
