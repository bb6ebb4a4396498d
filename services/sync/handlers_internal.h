/*
 * handlers_internal.h - what handlers.c shares with the handlers of push,
 * conflicts and settings (handlers_push.c). Not for other modules.
 */
#ifndef SYNC_HANDLERS_INTERNAL_H
#define SYNC_HANDLERS_INTERNAL_H

#include <stdbool.h>

#include "libs/paseto/claims.h"
#include "libs/rpc/rpc.h"
#include "services/sync/handlers.h"

struct sync {
  sync_config c;
};

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
