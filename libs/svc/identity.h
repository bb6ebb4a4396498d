/*
 * identity.h - service identity as a running service uses it: its own
 * signer (the credential on every call it makes) and a verifier plus the
 * method table that guard every call it answers (libs/svcid,
 * docs/adr/0008-service-identity.md).
 *
 *   svc_identity *id;
 *   svc_identity_open("orders", key_file, trust_file, &id);
 *   svc_identity_guard(id, srv, &orders_v1_access);      // before start
 *   ... register handlers ...
 *   svc_identity_check_methods(id, srv);  // every method declared
 *   rpc_client_options o; rpc_client_options_init(&o);
 *   svc_identity_client(id, &o);              // calls carry our identity
 *   rpc_client_new(addr, &o, &cli);
 *
 * The guard refuses, before any handler runs:
 *   no or invalid service token        UNAUTHENTICATED "service identity
 *                                      required" (the reason is logged)
 *   a service not among the method's   PERMISSION_DENIED "service <name>
 *   declared callers                   may not call <method>"
 * and otherwise hands the handler call->caller (the verified service) and
 * call->access (its svcid_caller_rule: the user role the method asks of
 * this caller, see handler_min_rank in handler.h).
 * Metric: rpc_identity_refused_total{reason="unauthenticated"|"denied"}.
 *
 * libs/svc's runtime does all of this for svc_main services (SERVICE_KEY_FILE,
 * SERVICE_TRUST_FILE); the gateway, which has its own HTTP runtime, calls
 * these functions itself.
 */
#ifndef SVC_IDENTITY_H
#define SVC_IDENTITY_H

#include "libs/base/err.h"
#include "libs/rpc/rpc.h"
#include "libs/svcid/access.h"
#include "libs/svcid/svcid.h"

typedef struct svc_identity svc_identity;

/* Loads this service's key and the trust bundle; logs what failed (never
 * key material). Errors: ERR_INVAL (missing path, bad name or content),
 * ERR_IO, ERR_NOMEM. */
int svc_identity_open(const char *name, const char *key_file,
                      const char *trust_file, svc_identity **out) WARN_UNUSED;

/* The same from parts already loaded (tools and benchmarks that make
 * their keys in memory): takes signer (may be NULL for a server that
 * calls nobody) and verifier, also on failure. ERR_INVAL (no verifier),
 * ERR_NOMEM. */
int svc_identity_new(svcid_signer *signer, svcid_verifier *verifier,
                     svc_identity **out) WARN_UNUSED;

/* Installs the guard on srv for the methods of table (kept; static).
 * Before rpc_server_start. */
int svc_identity_guard(svc_identity *id, rpc_server *srv,
                       const svcid_access_table *table) WARN_UNUSED;

/* ERR_OK when every method registered on srv is declared in the guard's
 * table; otherwise logs each undeclared one and returns ERR_INVAL (so a
 * handler without a declaration stops the service at start-up instead of
 * being callable by nobody, or by anybody). A declared method that is not
 * registered is logged as a warning (a stand-in may serve part of a
 * contract). */
int svc_identity_check_methods(svc_identity *id,
                               const rpc_server *srv) WARN_UNUSED;

/* Sets o's credential so that every call made through a client created
 * with o carries this service's token, addressed to the service of the
 * method called (svcid_credential). ERR_INVAL. */
int svc_identity_client(svc_identity *id, rpc_client_options *o) WARN_UNUSED;

/* After every client and server using it is freed. NULL-safe. */
void svc_identity_free(svc_identity *id);

#endif
