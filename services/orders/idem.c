/*
 * idem.c - request hashes for idempotency keys (see idem.h).
 */
#include "services/orders/idem.h"

#include <sodium.h>
#include <string.h>

int idem_request_hash(const char *method, const void *payload, size_t len,
                      uint8_t out[IDEM_HASH_LEN]) {
  if (sodium_init() < 0)
    return ERR_INTERNAL;
  static const char tag[] = "orders.idem.v1";
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, IDEM_HASH_LEN);
  crypto_generichash_update(&st, (const unsigned char *)tag, sizeof tag);
  const char *m = method ? method : "";
  crypto_generichash_update(&st, (const unsigned char *)m, strlen(m) + 1);
  if (len > 0)
    crypto_generichash_update(&st, payload, len);
  crypto_generichash_final(&st, out, IDEM_HASH_LEN);
  return ERR_OK;
}
