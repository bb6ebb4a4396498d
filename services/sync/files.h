/*
 * files.h - the tenant's content-addressed files: the handlers of
 * "sync.v1.Sync/GetFile", "PutFile" and "MissingFiles" (HTTP-API.md:
 * HEAD/GET/PUT /v1/sync/files/{sha256}, POST /v1/sync/files/missing) and
 * the expiry round that removes files unused for the configured time.
 */
#ifndef SYNC_FILES_H
#define SYNC_FILES_H

#include <stdint.h>

#include "libs/authn/authn.h"
#include "libs/base/err.h"
#include "libs/rpc/rpc.h"
#include "services/sync/store.h"

#define FILES_MAX_BYTES ((size_t)25 * 1024 * 1024) /* one file */
#define FILES_MISSING_MAX 1000                     /* hashes in a manifest */
/* A PutFile request: the content and a little envelope. The RPC server of
 * sync and the gateway's client take messages this large. */
#define FILES_MAX_MESSAGE (FILES_MAX_BYTES + 64 * 1024)

typedef struct files_config {
  store *store;        /* borrowed */
  authn *verifier;     /* borrowed */
  int64_t quota_bytes; /* per tenant, >= 0 */
  int64_t ttl_ms;      /* removed when unused this long; > 0 */
  int64_t sweep_ms;    /* how often the expiry round runs; > 0 */
} files_config;

typedef struct files files;

/* Starts the expiry round (its own thread). Errors: ERR_INVAL, ERR_NOMEM,
 * ERR_INTERNAL. *out is the caller's: files_free. */
int files_new(const files_config *cfg, files **out) WARN_UNUSED;
void files_free(files *f); /* stops the round; NULL-safe */

/* Registers GetFile, PutFile and MissingFiles on srv. */
int files_register(files *f, rpc_server *srv) WARN_UNUSED;

/* "ab12..." (64 lower-case hex digits) -> 32 bytes. ERR_INVAL otherwise. */
int files_hash_parse(const char *hex, uint8_t out[32]) WARN_UNUSED;

#endif
