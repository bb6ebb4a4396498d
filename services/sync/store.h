/*
 * store.h - the sync service's SQL, in schema "sync": devices (and, as
 * the service grows, their mutations and conflicts).
 *
 * Every function is one transaction (db_with_tx: retried as a whole on
 * serialisation failures and deadlocks), run as the store's role
 * (store_new) with app.tenant_id set to the caller's tenant, so row-level
 * security binds (migrations/0001_init.sql); every statement also filters
 * on tenant_id explicitly and every value travels as a parameter.
 *
 * Errors: ERR_OK, ERR_NOTFOUND (no such row in this tenant), ERR_EXISTS
 * (a unique key), ERR_INVAL (a malformed id or a CHECK the input broke),
 * or libs/db's infrastructure errors (ERR_UNAVAILABLE, ERR_TIMEOUT,
 * ERR_CONFLICT after retries, ERR_DB, ERR_NOMEM); db_last_error() has the
 * details, without parameter values.
 */
#ifndef SYNC_STORE_H
#define SYNC_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"
#include "libs/db/db.h"
#include "libs/idem/once.h"

#define STORE_SCHEMA "sync"
#define STORE_NAME_MAX 400     /* bytes: 100 characters of up to 4 bytes */
#define STORE_PLATFORM_MAX 200 /* bytes: 50 characters */
#define STORE_VERSION_MAX 200  /* bytes: 50 characters */
#define STORE_SECRET_HASH_LEN 32
#define STORE_DEVICES_MAX 1000 /* a tenant's devices listed at most */

typedef db_store store; /* libs/db: the pool and the role */

/* A device as stored; every string NUL-terminated. */
typedef struct store_device {
  char id[UUID_STR_LEN + 1];
  char name[STORE_NAME_MAX + 1];
  char platform[STORE_PLATFORM_MAX + 1];
  char app_version[STORE_VERSION_MAX + 1];
  char created_at[RFC3339_MS_LEN + 1];
  char last_seen_at[RFC3339_MS_LEN + 1]; /* "" = never seen */
  bool online;
  int32_t pending; /* mutations not yet pushed, as last reported */
  int64_t cursor;  /* its pull cursor, as last reported (0: none yet) */
} store_device;

/* A store over db (borrowed; must outlive it) whose transactions run as
 * role (SET LOCAL ROLE; NULL or "": the connection's own). Errors:
 * ERR_INVAL (no db, a role that is not db_ident_ok), ERR_NOMEM. *out is
 * the caller's: store_free. */
int store_new(db_pool *db, const char *role, store **out) WARN_UNUSED;
void store_free(store *st); /* NULL-safe */

/* Inserts a device of tenant tid with a fresh UUIDv7 (its time is
 * created_at) and the hash of its secret; returns it in *out. With a key
 * (NULL: none; libs/idem/once.h) the key is checked first and the answer
 * saved with the device, in its transaction; when the key decides the
 * call (idem_once_fresh false) nothing is inserted. */
int store_device_create(store *st, const char *tid, const char *name,
                        const char *platform,
                        const uint8_t hash[STORE_SECRET_HASH_LEN],
                        idem_once *key, store_device *out) WARN_UNUSED;

/* The device id (canonical UUID) of tenant tid, and the hash of its
 * secret into hash when not NULL. ERR_NOTFOUND when it does not exist in
 * that tenant. */
int store_device_get(store *st, const char *tid, const char *id,
                     store_device *out,
                     uint8_t hash[STORE_SECRET_HASH_LEN]) WARN_UNUSED;

/* The tenant's devices, newest first, at most cap (<= STORE_DEVICES_MAX)
 * into out[0..*n). */
int store_device_list(store *st, const char *tid, store_device *out, size_t cap,
                      size_t *n) WARN_UNUSED;

/* Deletes the device id of tenant tid. ERR_NOTFOUND when there is none. */
int store_device_delete(store *st, const char *tid, const char *id) WARN_UNUSED;

/* ------------------------------------------------------- heartbeats --- */

/* Called inside the transaction that changed a device's online state, to
 * write its event in the same transaction (events.c). Returns ERR_OK or
 * an error that rolls the transaction back. */
typedef int (*store_status_fn)(db_conn *c, void *arg, const char *tid,
                               const store_device *d, bool online);

/* One device's heartbeat state as flushed from a replica's buffer. */
typedef struct store_beat {
  char did[UUID_STR_LEN + 1];
  int64_t seen_ms;
  const char *app_version; /* NULL: unchanged */
  int32_t pending;         /* < 0: unchanged */
  int64_t cursor;          /* < 0: unchanged */
} store_beat;

/* Writes beats[0..n) (distinct devices) of tenant tid in one statement
 * and transaction: last_seen_at
 * (never backwards), app_version, pending and the pull cursor when
 * given, online; a
 * device that was offline gets fn(.., true) in the same transaction.
 * Devices that no longer exist are skipped. */
int store_beats_apply(store *st, const char *tid, const store_beat *beats,
                      size_t n, store_status_fn fn, void *arg) WARN_UNUSED;

/* Marks offline up to batch devices of every tenant that are online with
 * a last heartbeat older than stale_ms, each with fn(.., false) in the
 * same transaction; *marked (may be NULL) gets their number. One
 * replica at a time does it (a transaction-scoped advisory lock; the
 * others return at once with *marked 0); rows are locked SKIP LOCKED, so
 * no device is marked or announced twice. */
int store_sweep_offline(store *st, int64_t stale_ms, size_t batch,
                        store_status_fn fn, void *arg,
                        size_t *marked) WARN_UNUSED;

/* The devices of every tenant that are online now (read across tenants
 * under the sweeper's policy): the sync_devices_online gauge. */
int store_count_online(store *st, int64_t *n) WARN_UNUSED;

/* ------------------------------------------- push (store_push.c) --- */

#define STORE_POLICY_MAX 16
#define STORE_CONFLICTS_MAX 100

/* The device's last_mutation_id. ERR_NOTFOUND: no such device. */
int store_last_mutation(store *st, const char *tid, const char *did,
                        int64_t *last) WARN_UNUSED;

/* The first result of mutation mid of device did (malloc'd into *result,
 * the caller frees it). ERR_NOTFOUND when none is kept. */
int store_mutation_get(store *st, const char *tid, const char *did, int64_t mid,
                       uint8_t **result, size_t *len) WARN_UNUSED;

/* A conflict to keep (manual policy), recorded with the mutation. */
typedef struct store_conflict_new {
  const char *entity, *entity_id;
  const uint8_t *client, *server; /* serialised ClientChange, Order */
  size_t client_len, server_len;
} store_conflict_new;

/* The clock of an applied write (entity_clocks; hlc.h's text). */
typedef struct store_clock {
  const char *entity, *entity_id, *hlc;
  int64_t version; /* the version the write produced */
} store_clock;

/* One mutation's record: advances last_mutation_id from mid - 1 to mid
 * and stores the result (and the conflict, and the entity's clock, when
 * not NULL) in ONE transaction. *recorded false: another request recorded
 * mid first (nothing written; read its result with store_mutation_get). */
int store_mutation_record(store *st, const char *tid, const char *did,
                          int64_t mid, const char *name, const char *status,
                          const uint8_t *result, size_t len,
                          const store_conflict_new *conflict,
                          const store_clock *clock, bool *recorded) WARN_UNUSED;

/* Deletes up to batch mutation records, of every tenant, older than
 * older_ms (the retention round; replicas share the work: SKIP LOCKED).
 * *deleted gets the count. */
int store_prune_mutations(store *st, int64_t older_ms, size_t batch,
                          int64_t *deleted) WARN_UNUSED;

/* The last clock recorded for entity id: its version and hlc text
 * (out[cap]). ERR_NOTFOUND when none. */
int store_clock_get(store *st, const char *tid, const char *entity,
                    const char *id, int64_t *version, char *out,
                    size_t cap) WARN_UNUSED;

/* The tenant's conflict policy ("server_wins" when never set) into out. */
int store_policy_get(store *st, const char *tid,
                     char out[STORE_POLICY_MAX + 1]) WARN_UNUSED;
/* Sets it (a value the settings CHECK allows, else ERR_INVAL). */
int store_policy_set(store *st, const char *tid,
                     const char *policy) WARN_UNUSED;

/* A kept conflict; client and server are malloc'd serialised messages. */
typedef struct store_conflict {
  char id[UUID_STR_LEN + 1];
  char device_id[UUID_STR_LEN + 1];
  int64_t mutation_id;
  char entity[16];
  char entity_id[UUID_STR_LEN + 1];
  uint8_t *client, *server;
  size_t client_len, server_len;
  char created_at[RFC3339_MS_LEN + 1];
} store_conflict;
void store_conflicts_free(store_conflict *v, size_t n); /* the buffers */

/* Unresolved conflicts of the tenant, oldest first, at most cap (<=
 * STORE_CONFLICTS_MAX) into out[0..*n). */
int store_conflicts_list(store *st, const char *tid, store_conflict *out,
                         size_t cap, size_t *n) WARN_UNUSED;

/* One unresolved conflict. ERR_NOTFOUND (none, or resolved already). */
int store_conflict_get(store *st, const char *tid, const char *id,
                       store_conflict *out) WARN_UNUSED;

/* Marks it resolved with how. ERR_NOTFOUND when it is not open. */
int store_conflict_resolve(store *st, const char *tid, const char *id,
                           const char *how) WARN_UNUSED;

#endif
