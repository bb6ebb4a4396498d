/*
 * push.h - one pushed mutation applied through the orders service, and
 * its result (HTTP-API.md "Offline sync and devices", push rules).
 *
 * Exactly once across crashes. A mutation's effect happens in orders and
 * its record (devices.last_mutation_id, mutations.result) in sync: two
 * databases' transactions, which no single commit can cover. So the
 * effect is made idempotent instead: every call to orders carries the
 * Idempotency-Key "device:<device id>:<mutation id>", which orders stores
 * with its answer IN THE TRANSACTION OF THE ORDER CHANGE (libs/idem). If
 * sync dies after orders committed and before its own record, the
 * device's retry finds last_mutation_id unchanged, calls orders again
 * with the same key, gets the first answer replayed (nothing applied
 * twice), and records it. The record itself advances last_mutation_id
 * only from mid - 1 (store_mutation_record), so two concurrent pushes of
 * one device record each id once. Orders keeps keys 24 h
 * (ORDERS_IDEMPOTENCY_TTL): a device that retries a crashed push later
 * than that could apply it twice.
 *
 * Conflicts: orders refuses a change whose base_version is not the
 * order's version (ABORTED with the violation "version"); the result is
 * then "conflict" with the server's order. Under the manual policy the
 * conflict is kept (conflicts table) in the transaction of the record.
 * Under last_write_wins the device's change wins when its hybrid logical
 * clock (client_time, hlc.h) is later than the clock of the server's last
 * write (sync's record of it, or the order's updated_at when that write
 * came through the API): it is applied again on top of the server's
 * version under the key "device:<id>:<mid>:lww:<version>".
 */
#ifndef SYNC_PUSH_H
#define SYNC_PUSH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "libs/rpc/rpc.h"
#include "proto/sync/v1/sync.pb-c.h"
#include "services/sync/store.h"

#define PUSH_MAX 500                /* mutations in one push */
#define PUSH_ARGS_MAX (64u * 1024u) /* bytes of one mutation's args */
#define PUSH_ORDERS_DEADLINE_MS 5000

typedef struct push_env {
  store *st;
  rpc_client *orders;
  const char *tid, *did; /* the device (canonical UUIDs) */
  const char *token;     /* the device's access token, forwarded */
  const char *policy;    /* the tenant's conflict policy */
} push_env;

/* Applies the new mutation m (its id is last_mutation_id + 1) and records
 * it. On ERR_OK *out is its result (the caller frees it with
 * sync__v1__mutation_result__free_unpacked) - applied, rejected or
 * conflict, or the first result when a concurrent push recorded it
 * first. ERR_UNAVAILABLE: orders or the database could not answer now
 * (nothing recorded; the device retries the mutation). */
int push_apply(const push_env *env, const Sync__V1__Mutation *m,
               Sync__V1__MutationResult **out) WARN_UNUSED;

/* The first result of mutation mid, answered as "duplicate". ERR_OK with
 * *out NULL when none is kept. */
int push_duplicate(const push_env *env, int64_t mid,
                   Sync__V1__MutationResult **out) WARN_UNUSED;

/* The hex SHA-256 of text (65 bytes with the NUL). */
void push_args_hash(const char *text, char out[65]);

#endif
