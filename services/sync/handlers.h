/*
 * handlers.h - the sync service's RPC handlers ("sync.v1.Sync/...",
 * proto/sync/v1/sync.proto; who may call each: sync_rpc.proto), in
 * a library so tests link them.
 *
 * The handlers decode the request (HANDLER_UNPACK), check the caller
 * (libs/authn's authn_check_call with the role the method declares for
 * the calling service, handler_min_rank; device tokens, which rank as
 * staff, are refused by name on the methods that manage devices),
 * validate, call store.c (and auth for device tokens) and answer. The
 * service-identity guard (libs/svc/identity.h) has already refused calls
 * without a valid service identity or from an undeclared service before
 * any of this runs.
 */
#ifndef SYNC_HANDLERS_H
#define SYNC_HANDLERS_H

#include "libs/authn/authn.h"
#include "libs/base/err.h"
#include "libs/rpc/rpc.h"
#include "services/sync/heartbeat.h"
#include "services/sync/secret.h"
#include "services/sync/store.h"

#define SYNC_METHOD(m) "sync.v1.Sync/" m
#define SYNC_AUTH_DEADLINE_MS 3000 /* IssueDeviceToken, RevokeDevice */

typedef struct sync_config {
  store *store;          /* borrowed; must outlive the handlers */
  authn *verifier;       /* borrowed; verifies the forwarded access tokens */
  rpc_client *auth;      /* borrowed; IssueDeviceToken, RevokeDevice */
  const secret_key *key; /* borrowed; device secrets' hashing key */
  heartbeat *beats;      /* borrowed; Heartbeat */
  rpc_client *orders;    /* borrowed; Push applies mutations through it */
  int64_t interval_ms;   /* the beat interval devices are told */
} sync_config;

typedef struct sync sync;

/* Creates the handler set. Errors: ERR_INVAL (no store, verifier, auth
 * client, key, heartbeats or orders client; interval_ms < 1000), ERR_NOMEM.
 * *out is the caller's: sync_free. */
int sync_new(const sync_config *cfg, sync **out) WARN_UNUSED;
void sync_free(sync *h); /* NULL-safe; after the server stopped */

/* Registers every method on srv. Errors as handler_register. */
int sync_register(sync *h, rpc_server *srv) WARN_UNUSED;

#endif
