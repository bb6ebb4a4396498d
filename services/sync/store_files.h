/*
 * store_files.h - SQL of the tenant's content-addressed files (tables
 * sync.files and sync.file_usage, migrations/0002_files.sql; the storage
 * choice: docs/adr/0018-sync-file-storage.md).
 *
 * A file is keyed by (tenant, SHA-256): the hash is the caller's check,
 * never a secret, so the store trusts it as given (files.c has verified
 * it against the bytes). Every call that shows a file is used - a read, a
 * repeated upload, a mention in a manifest - moves its last_used_at, and
 * the expiry deletes what was not used for ttl. Usage bytes per tenant
 * move in the transaction of each insert and delete, and the quota is
 * checked by a conditional UPDATE of that one row.
 */
#ifndef SYNC_STORE_FILES_H
#define SYNC_STORE_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "services/sync/store.h"

#define STORE_FILE_HASH_LEN 32
#define STORE_FILE_MAX ((int64_t)25 * 1024 * 1024) /* bytes of one file */
#define STORE_FILE_PART_MAX ((int64_t)1024 * 1024) /* bytes of one part */

/* A slice of tenant tid's file hash: its whole size into *size and up to
 * max bytes from offset (0 <= max <= STORE_FILE_PART_MAX) into *data,
 * *len (malloc'd; the caller frees it; empty when offset >= size: the
 * caller compares offset with *size). offset 0 moves last_used_at (a
 * download or HEAD begins: the file is used); later offsets only read.
 * ERR_NOTFOUND when the tenant has no such file, ERR_INVAL for a negative
 * offset or max out of range. */
int store_file_read(store *st, const char *tid,
                    const uint8_t hash[STORE_FILE_HASH_LEN], int64_t offset,
                    int64_t max, int64_t *size, uint8_t **data,
                    size_t *len) WARN_UNUSED;

/* For each of hashes[0..n) (STORE_FILE_HASH_LEN bytes each), whether the
 * tenant holds it (present[i]); those held count as used. n <= 1000. */
int store_files_present(store *st, const char *tid, const uint8_t *hashes,
                        size_t n, bool *present) WARN_UNUSED;

/* Deletes up to batch files of any tenant unused for ttl_ms (rows another
 * transaction holds are skipped: safe on several replicas at once) and
 * gives their bytes back to the tenants' usage. *removed, *bytes: what
 * went. */
int store_files_expire(store *st, int64_t ttl_ms, size_t batch, size_t *removed,
                       int64_t *bytes) WARN_UNUSED;

/* ---- Inside a transaction of this store (store_uploads.c shares them). */

/* Moves last_used_at of tenant tid's file hash if it exists (*hit), its
 * size into *size (may be NULL). */
int store_file_touch(db_conn *c, const char *tid,
                     const uint8_t hash[STORE_FILE_HASH_LEN], bool *hit,
                     int64_t *size) WARN_UNUSED;

/* Adds bytes to the tenant's usage only while it stays within quota: one
 * conditional UPDATE of the tenant's row, which also serialises the
 * tenant's concurrent reservations. ERR_TOOBIG when it would not fit
 * (nothing changed). */
int store_usage_reserve(db_conn *c, const char *tid, int64_t bytes,
                        int64_t quota) WARN_UNUSED;

/* Gives bytes of the tenant's usage back. */
int store_usage_release(db_conn *c, const char *tid, int64_t bytes) WARN_UNUSED;

#endif
