/*
 * handlers_internal.h - what handlers.c shares with the handlers of push,
 * conflicts and settings (handlers_push.c). Not for other modules.
 */
#ifndef SYNC_HANDLERS_INTERNAL_H
#define SYNC_HANDLERS_INTERNAL_H

#include <stdbool.h>

#include "libs/idem/once.h"
#include "libs/obs/metrics.h"
#include "libs/paseto/claims.h"
#include "libs/rpc/rpc.h"
#include "services/sync/handlers.h"

/* Metrics (libs/obs; NULL-safe children). */
typedef struct sync_metrics {
  metrics_child *pushes;              /* sync_pushes_total */
  metrics_child *applied, *duplicate, /* sync_mutations_total{status} */
      *rejected, *conflict;
  metrics_child *beats;  /* sync_heartbeats_total */
  metrics_child *pulled; /* sync_pull_changes_total */
  metrics_child *lag;    /* sync_pull_lag_changes */
} sync_metrics;

/* Idempotency-Key of RegisterDevice: libs/idem/once.h over this table
 * (migrations/0005_idempotency.sql). */
#define SYNC_IDEM_TABLE "sync.idempotency"

struct sync {
  sync_config c;
  sync_metrics m;
  /* Keys the seal of saved answers (they hold device secrets): derived
   * from the pepper's key, so the database alone cannot open them. */
  uint8_t idem_secret[IDEM_SECRET_LEN];
  idem_once_spec idem;
};

/* Counts one mutation result by its status. */
void sync_count_result(sync *h, const char *status);

/* authn_check_call with the declared role, and not a device (devices do
 * not manage devices, conflicts or settings even though their token
 * ranks as staff). On refusal the reply is set and false returned. */
bool sync_member(sync *h, const rpc_call *call, rpc_reply *reply,
                 paseto_claims *cl);

void sync_push(void *arg, const rpc_call *call, rpc_reply *reply);
void sync_pull(void *arg, const rpc_call *call, rpc_reply *reply);
void sync_list_conflicts(void *arg, const rpc_call *call, rpc_reply *reply);
void sync_resolve_conflict(void *arg, const rpc_call *call, rpc_reply *reply);
void sync_get_settings(void *arg, const rpc_call *call, rpc_reply *reply);
void sync_update_settings(void *arg, const rpc_call *call, rpc_reply *reply);

#endif
