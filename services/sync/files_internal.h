/*
 * files_internal.h - what files.c shares with the streamed-file handlers
 * (fileparts.c). Not for other modules.
 */
#ifndef SYNC_FILES_INTERNAL_H
#define SYNC_FILES_INTERNAL_H

#include <stdbool.h>

#include "libs/obs/metrics.h"
#include "libs/paseto/claims.h"
#include "libs/rpc/rpc.h"
#include "libs/svc/periodic.h"
#include "services/sync/files.h"

struct files {
  files_config c;
  periodic *round;
  metrics_child *stored, *removed; /* sync_file_bytes_total{op} */
  /* sync_upload_parts_total{status} */
  metrics_child *parts_applied, *parts_repeated, *parts_refused;
};

/* The caller of a files method (devices and staff+; the tenant is the
 * token's): true with *cl filled, else the reply is set. */
bool files_caller(files *f, const rpc_call *call, rpc_reply *reply,
                  paseto_claims *cl);

/* PutFilePart, GetFilePart (fileparts.c). */
void files_put_part(void *arg, const rpc_call *call, rpc_reply *reply);
void files_get_part(void *arg, const rpc_call *call, rpc_reply *reply);

#endif
