/*
 * store_uploads.h - SQL of streamed uploads (tables sync.uploads and
 * sync.upload_parts, migrations/0006_uploads.sql; the design:
 * docs/adr/0018-sync-file-storage.md "Streaming").
 *
 * An upload is a series of parts, each applied by store_upload_part in
 * ONE transaction that locks the upload's row: the SHA-256 state after
 * the bytes so far lives in the row (libsodium's crypto_hash_sha256_state),
 * so any replica can take the next part and a process that dies between
 * two parts loses nothing. The last part finishes the hash; a match
 * stores the file (the parts joined in offset order), a mismatch drops
 * the upload and every part. Quota: the first part reserves the whole
 * size in sync.file_usage; the reservation becomes the stored file's, or
 * is given back (refused, abandoned, or the same file stored first by
 * another upload).
 */
#ifndef SYNC_STORE_UPLOADS_H
#define SYNC_STORE_UPLOADS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "services/sync/store.h"
#include "services/sync/store_files.h"

/* What became of a part (store_upload_part's *out). */
typedef enum store_part_status {
  STORE_PART_APPLIED,  /* hashed and kept; received advanced */
  STORE_PART_REPEATED, /* an exact re-send of a part already applied */
  STORE_PART_EXISTED,  /* first part of a file the tenant holds: no upload */
  STORE_PART_STORED,   /* the last part: the hash matched, the file stored */
  STORE_PART_DONE,     /* the upload had stored its file already */
  STORE_PART_GAP,      /* not at received (nor a re-send): nothing done */
  STORE_PART_OTHER,    /* the upload names another sha256 or size */
  STORE_PART_MISMATCH, /* the last part: the hash is not the name; the
                          upload, its parts and its reservation are gone */
} store_part_status;

/* One part as the caller sent it (files.c has validated it: upload_id a
 * canonical UUID, 0 <= offset, offset + len <= size <= STORE_FILE_MAX,
 * len <= STORE_FILE_PART_MAX, len 0 only when size is 0). */
typedef struct store_part {
  const char *tid;
  const uint8_t *hash; /* STORE_FILE_HASH_LEN bytes: the file's name */
  const char *upload_id;
  int64_t size, offset;
  const uint8_t *data;
  size_t len;
  int64_t quota; /* the most file bytes the tenant may hold */
} store_part;

typedef struct store_part_result {
  store_part_status status;
  int64_t received; /* the upload's bytes so far (the next offset) */
  int64_t size;     /* the file's size (the stored one for EXISTED) */
  bool existed;     /* stored already (EXISTED; or STORED by another first) */
} store_part_result;

/* Applies part p in one transaction (see the file comment and
 * files.c's PutFilePart for the rules). Errors: ERR_NOTFOUND (no such
 * upload in this tenant, and p is not a first part: offset > 0, or the
 * id is another tenant's), ERR_TOOBIG (a first part over the tenant's
 * quota: nothing reserved), ERR_INTERNAL (a stored hash state of another
 * size: another libsodium), database errors. */
int store_upload_part(store *st, const store_part *p,
                      store_part_result *out) WARN_UNUSED;

/* Deletes up to batch uploads of any tenant not advanced for idle_ms,
 * with their parts; the unfinished ones' reservations are given back.
 * Rows other transactions hold are skipped (several replicas at once).
 * *removed: uploads deleted; *released: bytes given back. */
int store_uploads_expire(store *st, int64_t idle_ms, size_t batch,
                         size_t *removed, int64_t *released) WARN_UNUSED;

#endif
