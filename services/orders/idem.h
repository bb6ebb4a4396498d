/*
 * idem.h - the request hash of an idempotent call of the orders service.
 *
 * The creates (CreateOrder, CreateProduct, CreateTable) store, with the
 * thing created and in the same transaction, the caller's
 * Idempotency-Key, this hash of the request and the answer (libs/idem,
 * table orders.idempotency; store.h). A retry with the same key must send
 * the same request: the hash tells "same request" (answer again) from
 * "different request under a reused key" (INVALID_ARGUMENT). It is
 * libs/idem's BLAKE2b-256 over the tag "orders.idem.v1", the method and
 * the serialised request payload. The gateway serialises the JSON body
 * into protobuf, so two spellings of the same JSON (key order, spacing)
 * hash alike.
 */
#ifndef ORDERS_IDEM_H
#define ORDERS_IDEM_H

#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "libs/idem/idem.h"

#define ORDERS_IDEM_TAG "orders.idem.v1"
#define ORDERS_IDEM_TABLE "orders.idempotency"
/* The key's advisory lock namespace: "orders.idem|<tenant>|<user>|<key>"
 * as CreateOrder has always taken it (tests hold it to play a first call
 * still running). */
#define ORDERS_IDEM_LOCK "orders.idem"

/* out = BLAKE2b-256("orders.idem.v1" NUL method NUL payload) (libs/idem's
 * idem_hash with ORDERS_IDEM_TAG: the same bytes as before the hash moved
 * there, so keys stored by older replicas still match). payload may be
 * NULL when len is 0. ERR_INTERNAL if libsodium cannot initialise. */
int idem_request_hash(const char *method, const void *payload, size_t len,
                      uint8_t out[IDEM_HASH_LEN]) WARN_UNUSED;

#endif
