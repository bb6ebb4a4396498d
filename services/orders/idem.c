/*
 * idem.c - request hashes for idempotency keys (see idem.h); the storage
 * is libs/idem's, driven by store.c.
 */
#include "services/orders/idem.h"

int idem_request_hash(const char *method, const void *payload, size_t len,
                      uint8_t out[IDEM_HASH_LEN]) {
  return idem_hash(ORDERS_IDEM_TAG, method, payload, len, out);
}
