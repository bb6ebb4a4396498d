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

/* The content of tenant tid's file hash (malloc'd into *content, *len; the
 * caller frees it), moving its last_used_at. ERR_NOTFOUND when the tenant
 * has no such file. */
int store_file_get(store *st, const char *tid,
                   const uint8_t hash[STORE_FILE_HASH_LEN], uint8_t **content,
                   size_t *len) WARN_UNUSED;

/* Stores content[0..len) as tenant tid's file hash unless it is there
 * already (*existed true: only last_used_at moves). quota: the most bytes
 * the tenant may hold. Errors: ERR_TOOBIG when the file would take the
 * tenant over quota (nothing stored), database errors. */
int store_file_put(store *st, const char *tid,
                   const uint8_t hash[STORE_FILE_HASH_LEN],
                   const uint8_t *content, size_t len, int64_t quota,
                   bool *existed) WARN_UNUSED;

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

#endif
