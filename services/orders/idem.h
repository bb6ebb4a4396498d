/*
 * idem.h - the request hash of an idempotent call.
 *
 * CreateOrder stores, with the order and in the same transaction, the
 * caller's Idempotency-Key, this hash of the request and the answer
 * (store.h). A retry with the same key must send the same request: the
 * hash tells "same request" (answer again) from "different request under
 * a reused key" (INVALID_ARGUMENT). It is BLAKE2b-256 (libsodium
 * crypto_generichash) over a domain tag, the method and the serialised
 * request payload. The gateway serialises the JSON body into protobuf,
 * so two spellings of the same JSON (key order, spacing) hash alike.
 */
#ifndef ORDERS_IDEM_H
#define ORDERS_IDEM_H

#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"

#define IDEM_HASH_LEN 32

/* out = BLAKE2b-256("orders.idem.v1" NUL method NUL payload).
 * payload may be NULL when len is 0. ERR_INTERNAL if libsodium cannot
 * initialise. */
int idem_request_hash(const char *method, const void *payload, size_t len,
                      uint8_t out[IDEM_HASH_LEN]) WARN_UNUSED;

#endif
