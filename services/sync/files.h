/*
 * files.h - the tenant's content-addressed files: the handlers of the
 * streamed "sync.v1.Sync/PutFilePart" and "GetFilePart" (fileparts.c;
 * HTTP-API.md: HEAD/GET/PUT /v1/sync/files/{sha256}, through the
 * gateway's streamed routes), of "MissingFiles" (POST
 * /v1/sync/files/missing), and the
 * round that removes files unused for the configured time and uploads
 * left idle.
 */
#ifndef SYNC_FILES_H
#define SYNC_FILES_H

#include <stdint.h>

#include "libs/authn/authn.h"
#include "libs/base/err.h"
#include "libs/base/uuid.h"
#include "libs/base/vlist.h"
#include "libs/rpc/rpc.h"
#include "services/sync/store.h"

#define FILES_MAX_BYTES ((size_t)25 * 1024 * 1024) /* one file */
#define FILES_MISSING_MAX 1000                     /* hashes in a manifest */
#define FILES_PART_MAX_BYTES ((size_t)1024 * 1024) /* a part, a chunk read */
/* A PutFilePart request: its data and the envelope. */
#define FILES_PART_MAX_MESSAGE (FILES_PART_MAX_BYTES + 64 * 1024)

typedef struct files_config {
  store *store;           /* borrowed */
  authn *verifier;        /* borrowed */
  int64_t quota_bytes;    /* per tenant, >= 0 */
  int64_t ttl_ms;         /* removed when unused this long; > 0 */
  int64_t sweep_ms;       /* how often the expiry round runs; > 0 */
  int64_t upload_idle_ms; /* an upload not advanced this long goes; > 0 */
} files_config;

typedef struct files files;

/* Starts the expiry round (its own thread). Errors: ERR_INVAL, ERR_NOMEM,
 * ERR_INTERNAL. *out is the caller's: files_free. */
int files_new(const files_config *cfg, files **out) WARN_UNUSED;
void files_free(files *f); /* stops the round; NULL-safe */

/* Registers MissingFiles, PutFilePart and GetFilePart on srv. */
int files_register(files *f, rpc_server *srv) WARN_UNUSED;

/* "ab12..." (64 lower-case hex digits) -> 32 bytes. ERR_INVAL otherwise. */
int files_hash_parse(const char *hex, uint8_t out[32]) WARN_UNUSED;

/* A PutFilePart's fields, checked whole (fileparts.c): sha256 64
 * lower-case hex digits (-> hash), upload_id a UUID (-> id, canonical),
 * 0 <= size <= 25 MiB, 0 <= offset, len <= 1 MiB, offset + len <= size,
 * len 0 only for an empty file. ERR_INVAL with every violation in v. */
int files_part_check(const char *sha256, const char *upload_id, int64_t size,
                     int64_t offset, size_t len, uint8_t hash[32],
                     char id[UUID_STR_LEN + 1], vlist *v) WARN_UNUSED;

#endif
