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
  int32_t pending;
} store_device;

/* A store over db (borrowed; must outlive it) whose transactions run as
 * role (SET LOCAL ROLE; NULL or "": the connection's own). Errors:
 * ERR_INVAL (no db, a role that is not db_ident_ok), ERR_NOMEM. *out is
 * the caller's: store_free. */
int store_new(db_pool *db, const char *role, store **out) WARN_UNUSED;
void store_free(store *st); /* NULL-safe */

/* Inserts a device of tenant tid with a fresh UUIDv7 (its time is
 * created_at) and the hash of its secret; returns it in *out. */
int store_device_create(store *st, const char *tid, const char *name,
                        const char *platform,
                        const uint8_t hash[STORE_SECRET_HASH_LEN],
                        store_device *out) WARN_UNUSED;

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

#endif
