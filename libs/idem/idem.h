/*
 * idem.h - Idempotency-Key for the calls that create things (HTTP-API.md,
 * "Conventions"): the same key with the same request within the key's
 * lifetime answers the first answer again (same status, same bytes,
 * nothing created twice); the same key with another request is refused;
 * a second call while the first still runs is told so.
 *
 * Design. Every service keeps its keys in its own schema, in a table of
 * this shape (created by the service's migration, with row-level
 * security like the service's other tables):
 *
 *   tenant_id uuid, principal text, key text, method text,
 *   request_hash bytea (32), response_code integer, response bytea,
 *   created_at timestamptz, expires_at timestamptz,
 *   PRIMARY KEY (tenant_id, principal, key)
 *
 * A key belongs to a scope: (tenant, principal), where the principal is
 * the caller (the token's user id) or, for an anonymous call, a scope the
 * service chooses and documents; two scopes' keys never meet. The request
 * hash (idem_hash) is BLAKE2b-256 over a per-service tag, the method and
 * the serialised request, so a key reused for another method or body is
 * told apart. Rows past expires_at count as absent.
 *
 * Two ways to use it, both inside the caller's own transactions (libs/db,
 * with the service's role and tenant settings):
 *
 *   - one transaction (the change is local to this database): idem_begin
 *     first - it takes a transaction-scoped advisory lock on the key
 *     (pg_try_advisory_xact_lock: a concurrent twin gets IDEM_BUSY at
 *     once instead of waiting) and reads the row - then the change, then
 *     idem_save with the serialised answer, then commit. The answer and
 *     the change commit together: a crash never leaves one without the
 *     other.
 *   - a saga (the change spans services, so no transaction covers it):
 *     transaction 1 is idem_begin + idem_claim (a pending row with a
 *     lease: a twin arriving meanwhile gets IDEM_BUSY); then the work;
 *     then idem_save (the answer replaces the claim) or idem_release (a
 *     failure: the key is free again). A crash leaves the claim until its
 *     lease ends; after that the key is free. A claim may carry a note
 *     (idem_claim_note), which idem_begin hands to a later caller with
 *     the same request (IDEM_BUSY, pending): a service whose saga can be
 *     resumed lets a retry of the same call take the claim over (claim
 *     again: same hash, so it renews) and carry on with what the note
 *     names, instead of waiting for a dead replica's lease.
 *
 * Around it: once.h runs the first way for a create whose answer is
 * sealed (seal.h: answers holding secrets are never readable in the
 * table); expiry.h deletes expired rows periodically.
 *
 * Only successful answers are saved: a refused request changed nothing,
 * so repeating it is harmless and lets a client fix and retry.
 *
 * Table names are not parameters in SQL: r->table must be a schema-
 * qualified identifier ([a-z_][a-z0-9_]* "." [a-z_][a-z0-9_]*), checked
 * before use (ERR_INVAL); it comes from the service's code, never from a
 * caller.
 */
#ifndef LIBS_IDEM_IDEM_H
#define LIBS_IDEM_IDEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "libs/db/db.h"

#define IDEM_HASH_LEN 32
#define IDEM_KEY_MAX_LEN 255 /* bytes, printable ASCII */
#define IDEM_PENDING (-1)    /* response_code of a saga's claim */
#define IDEM_NOTE_MAX 256    /* bytes of a claim's note */
#define IDEM_SECRET_LEN 32   /* idem_hash_keyed's key */

/* One key in one scope. Every pointer is borrowed. */
typedef struct idem_ref {
  const char *table;     /* "orders.idempotency" */
  const char *tenant_id; /* canonical UUID text */
  const char *principal; /* the caller, or the anonymous scope */
  const char *key;       /* the Idempotency-Key (idem_key_valid) */
  const char *method;    /* "orders.v1.Orders/CreateProduct" */
  const uint8_t *hash;   /* IDEM_HASH_LEN bytes (idem_hash) */
  int64_t ttl_ms;        /* lifetime of a saved answer, > 0 */
  /* The advisory lock's name is "<lock_ns>|<tenant>|<principal>|<key>";
   * NULL: the table name. (Orders keeps "orders.idem", the name its
   * CreateOrder always used, so replicas of both versions exclude each
   * other during a rolling deploy.) */
  const char *lock_ns;
} idem_ref;

enum idem_outcome {
  IDEM_NEW = 0, /* no live row: go on (and save or claim) */
  IDEM_REPLAY,  /* same request answered before: answer with found */
  IDEM_REUSED,  /* the key was used for another request */
  IDEM_BUSY,    /* the first call with this key is still running */
};

/* What idem_begin found. answer is malloc'd (the caller frees it). */
typedef struct idem_found {
  enum idem_outcome outcome;
  int code;     /* IDEM_REPLAY: the saved status (0 = OK) */
  bool pending; /* IDEM_BUSY over a live claim of this very request (same
                   hash), not just a held lock: answer is the claim's note
                   (idem_claim_note; empty for idem_claim) */
  uint8_t *answer;
  size_t len;
} idem_found;

/* out = BLAKE2b-256(tag NUL method NUL payload). payload may be NULL
 * when len is 0; tag and method NULL count as "". ERR_INTERNAL if
 * libsodium cannot initialise. */
int idem_hash(const char *tag, const char *method, const void *payload,
              size_t len, uint8_t out[IDEM_HASH_LEN]) WARN_UNUSED;

/* The same, keyed (BLAKE2b's key) with secret: IDEM_SECRET_LEN bytes the
 * database never holds (a service's own key), or NULL for idem_hash's
 * bytes exactly. Used for the key that seals a saved answer (seal.h). */
int idem_hash_keyed(const uint8_t *secret, const char *tag, const char *method,
                    const void *payload, size_t len,
                    uint8_t out[IDEM_HASH_LEN]) WARN_UNUSED;

/* 1..IDEM_KEY_MAX_LEN printable ASCII characters. */
bool idem_key_valid(const char *key);

/* In the caller's transaction: locks the key (until the transaction
 * ends) and reads its row. An expired row is deleted (IDEM_NEW). On
 * IDEM_REPLAY out->answer holds the saved answer. Errors: libs/db's,
 * ERR_INVAL (bad table name). */
int idem_begin(db_conn *c, const idem_ref *r, idem_found *out) WARN_UNUSED;

/* In the transaction of idem_begin (or a later one): stores the answer
 * (code, answer[0..len)) for ttl_ms, replacing a claim. ERR_EXISTS when a
 * row that is not this key's claim exists (a twin won). */
int idem_save(db_conn *c, const idem_ref *r, int code, const uint8_t *answer,
              size_t len) WARN_UNUSED;

/* In the transaction of an idem_begin that gave IDEM_NEW: inserts a
 * pending claim that lives lease_ms. ERR_EXISTS as idem_save. */
int idem_claim(db_conn *c, const idem_ref *r, int64_t lease_ms) WARN_UNUSED;

/* idem_claim with a note kept in the claim (at most IDEM_NOTE_MAX
 * bytes): what a later attempt of the same request needs to take the
 * claim over and carry on with the same work (tenants: the id of the
 * tenant its saga provisions). Claiming again over this request's own
 * claim (same hash) renews the lease and replaces the note. */
int idem_claim_note(db_conn *c, const idem_ref *r, int64_t lease_ms,
                    const uint8_t *note, size_t len) WARN_UNUSED;

/* Deletes the key's pending claim (not a saved answer). ERR_OK also when
 * there was none. */
int idem_release(db_conn *c, const idem_ref *r) WARN_UNUSED;

/* Deletes up to batch expired rows of table (every tenant the
 * transaction sees); *deleted (optional) gets the count. */
int idem_expire(db_conn *c, const char *table, size_t batch,
                int64_t *deleted) WARN_UNUSED;

/* idem_expire in a transaction of its own on store st, across tenants
 * under the policy the setting scope turns on (db_store_run with no
 * tenant): a service's janitor pass over its keys. */
int idem_expire_all(const db_store *st, const char *scope, const char *table,
                    size_t batch, int64_t *deleted) WARN_UNUSED;

/* ------------------------------------------------------ in a pipeline ---
 *
 * The one-transaction steps as statements, for a caller that sends them
 * with its own in one round trip (db_exec_pipeline, db_exec_commit):
 * idem_begin_stmt (the lock and the row in one statement) and
 * idem_begin_result (judged as idem_begin judges); then, with the
 * change, idem_forget_stmt when the row was expired and idem_insert_stmt
 * with the answer. idem_begin is these on db_exec. */

#define IDEM_SQL_MAX 512
#define IDEM_LOCK_NAME_MAX (127 + 64 + 2 * 256)

/* A statement and the values it borrows: kept by the caller until the
 * statement ran. */
typedef struct idem_stmt {
  db_stmt stmt;
  db_param ps[8];
  char sql[IDEM_SQL_MAX];
  char lock_name[IDEM_LOCK_NAME_MAX];
} idem_stmt;

/* The key's lock (pg_try_advisory_xact_lock, as idem_begin) and its row.
 * Beware: the row is read in the snapshot taken when the statement
 * began, before the lock, so a twin that committed just before the lock
 * was taken is missed; the caller must then save its answer with
 * idem_insert_stmt (whose conflict on that twin's row fails the
 * transaction), never over a claim. idem_begin avoids this by taking the
 * lock in a statement of its own first. Errors: ERR_INVAL (a malformed
 * ref). */
int idem_begin_stmt(const idem_ref *r, idem_stmt *out) WARN_UNUSED;

/* Judges idem_begin_stmt's result into out as idem_begin does; *expired
 * says a dead row of the key exists (IDEM_NEW: forget it before
 * inserting). Errors: ERR_INTERNAL (not that statement's result),
 * ERR_INVAL (an unreadable cell), ERR_NOMEM. */
int idem_begin_result(const idem_ref *r, const db_result *res, idem_found *out,
                      bool *expired) WARN_UNUSED;

/* Deletes the key's row. */
int idem_forget_stmt(const idem_ref *r, idem_stmt *out) WARN_UNUSED;

/* Inserts the answer (code, answer[0..len)) for r->ttl_ms; fails with
 * ERR_EXISTS (the table's primary key) when any row of the key exists - in
 * the one-transaction use idem_begin_result found none under the lock, so
 * only a twin whose lock hashed alike can have written one, and the
 * caller's transaction then rolls back rather than commit a change
 * without its key. ERR_INVAL for a malformed ref or IDEM_PENDING. */
int idem_insert_stmt(const idem_ref *r, int code, const uint8_t *answer,
                     size_t len, idem_stmt *out) WARN_UNUSED;

/* Frees found->answer and zeroes *found. NULL-safe. */
void idem_found_clear(idem_found *found);

#endif
