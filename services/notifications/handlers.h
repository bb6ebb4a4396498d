/*
 * handlers.h - the notifications service's RPC handlers
 * ("notifications.v1.Notifications/...", proto/notifications/v1/
 * notifications.proto; who may call each: notifications_rpc.proto), in a
 * library so tests link them.
 *
 * The handlers decode the request (HANDLER_UNPACK), check the caller
 * (libs/authn's authn_check_call with the role the method declares for
 * the calling service, handler_min_rank), validate (one field violation
 * per bad field), call store.c and answer. The service-identity guard
 * (libs/svc/identity.h) has already refused calls without a valid service
 * identity or from an undeclared service before any of this runs.
 */
#ifndef NOTIFICATIONS_HANDLERS_H
#define NOTIFICATIONS_HANDLERS_H

#include <stdbool.h>
#include <stdint.h>

#include "libs/authn/authn.h"
#include "libs/base/err.h"
#include "libs/base/vlist.h"
#include "libs/rpc/rpc.h"
#include "services/notifications/queue.h"
#include "services/notifications/seal.h"
#include "services/notifications/settings_cache.h"
#include "services/notifications/store.h"

#define NOTIFICATIONS_METHOD(m) "notifications.v1.Notifications/" m

typedef struct notifications_config {
  store *store;             /* borrowed; must outlive the handlers */
  authn *verifier;          /* borrowed; verifies the forwarded access tokens */
  queue *queue;             /* borrowed; test sends and retries are queued */
  const seal_key *key;      /* borrowed; seals new secrets */
  bool allow_private;       /* NOTIFICATIONS_ALLOW_PRIVATE_TARGETS */
  size_t max_endpoints;     /* per tenant */
  int64_t secret_grace_ms;  /* the previous secret signs this long */
  settings_cache *settings; /* borrowed; NULL: none. UpdateSettings
                               forgets the tenant's entry */
} notifications_config;

typedef struct notifications notifications;

/* Creates the handler set. Errors: ERR_INVAL (a borrowed part missing),
 * ERR_NOMEM. *out is the caller's: notifications_free. */
int notifications_new(const notifications_config *cfg,
                      notifications **out) WARN_UNUSED;
void notifications_free(
    notifications *h); /* NULL-safe; after the server stopped */

/* Registers every method on srv. Errors as handler_register. */
int notifications_register(notifications *h, rpc_server *srv) WARN_UNUSED;

/* The rules for an endpoint's fields, shared with the unit tests: each
 * violation added to v under its field name. url may be NULL (not
 * given: PATCH). */
void notifications_check_url(const char *url, bool allow_private, vlist *v);
void notifications_check_events(char *const *events, size_t n, vlist *v);

#endif
