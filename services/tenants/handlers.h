/*
 * handlers.h - the tenants service's RPC handlers ("tenants.v1.Tenants/...",
 * proto/tenants/v1/tenants.proto), in a library so tests link them.
 *
 * The handlers validate input (field violations "name", "slug",
 * "currency", "host", "owner.<field>"), check the caller (access tokens
 * through libs/authn; the operator secret for Suspend/Resume), and call
 * store.c, provision.c and rescache.c. See services/tenants/README.md for
 * the behaviour of each method.
 */
#ifndef TENANTS_HANDLERS_H
#define TENANTS_HANDLERS_H

#include <stdint.h>

#include "libs/authn/authn.h"
#include "libs/base/err.h"
#include "libs/rpc/rpc.h"
#include "services/tenants/access.h"
#include "services/tenants/domainverify.h"
#include "services/tenants/provision.h"

#define TENANTS_METHOD(m) "tenants.v1.Tenants/" m

typedef struct tenants_config {
  provision_deps deps;          /* db, auth client, cache, events */
  authn *verifier;              /* borrowed; verifies member tokens */
  const access_operator *op;    /* borrowed; Suspend/Resume */
  const char *base_domains;     /* "localhost,example.com" (copied) */
  const char *default_currency; /* "EUR" (copied; must be valid) */
  domainverify_options verify;  /* VerifyDomain's fetch (connect_to
                                   borrowed: must outlive the handlers) */
  int64_t idem_ttl_ms;          /* Idempotency-Key lifetime; 0 -> 24 h */
} tenants_config;

typedef struct tenants tenants;

/* Creates the handler set. Errors: ERR_INVAL (missing db, auth client,
 * verifier or operator object, invalid default currency), ERR_NOMEM. */
int tenants_new(const tenants_config *cfg, tenants **out) WARN_UNUSED;
void tenants_free(tenants *t); /* NULL-safe; after the server stopped */

/* Registers every method on srv. Errors as rpc_server_register. */
int tenants_register(tenants *t, rpc_server *srv) WARN_UNUSED;

#endif
