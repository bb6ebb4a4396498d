/*
 * store.h - the sync service's SQL, in schema "sync": items, the
 * example tenant-owned resource (replace it with the service's own).
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

#include "libs/base/err.h"
#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"
#include "libs/db/db.h"

#define STORE_SCHEMA "sync"
#define STORE_NAME_MAX 400 /* bytes: 100 characters of up to 4 bytes */

typedef db_store store; /* libs/db: the pool and the role */

/* An item as stored; every string NUL-terminated. */
typedef struct store_item {
  char id[UUID_STR_LEN + 1];
  char name[STORE_NAME_MAX + 1];
  char created_at[RFC3339_MS_LEN + 1];
} store_item;

/* A store over db (borrowed; must outlive it) whose transactions run as
 * role (SET LOCAL ROLE; NULL or "": the connection's own). Errors:
 * ERR_INVAL (no db, a role that is not db_ident_ok), ERR_NOMEM. *out is
 * the caller's: store_free. */
int store_new(db_pool *db, const char *role, store **out) WARN_UNUSED;
void store_free(store *st); /* NULL-safe */

/* Inserts an item of tenant tid named name with a fresh UUIDv7 (its time
 * is created_at) and returns it in *out. */
int store_create_item(store *st, const char *tid, const char *name,
                      store_item *out) WARN_UNUSED;

/* The item id (canonical UUID) of tenant tid. ERR_NOTFOUND when it does
 * not exist in that tenant. */
int store_get_item(store *st, const char *tid, const char *id,
                   store_item *out) WARN_UNUSED;

#endif
