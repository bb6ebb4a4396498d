/*
 * authn_caller.h - who is calling an RPC: the member behind the access
 * token the gateway forwards in the envelope, and what their role allows.
 *
 * Every service method a tenant member calls starts the same way:
 *
 *   paseto_claims cl;
 *   if (authn_check_call(verifier, call, AUTHN_ROLE_ADMIN, &cl, reply)
 *       != ERR_OK)
 *     goto out;                // the reply already says why
 *   ... cl.tid is the tenant every query is scoped to, cl.sub the user ...
 *
 * The tenant always comes from the verified token, never from the request
 * body; the envelope's tenant_id (the gateway's reading of the Host or
 * X-Tenant) must agree with it, so a token of one tenant cannot be used at
 * another tenant's address. Roles rank owner > admin > staff > customer;
 * which method needs which rank is each service's decision.
 */
#ifndef LIBS_AUTHN_AUTHN_CALLER_H
#define LIBS_AUTHN_AUTHN_CALLER_H

#include "libs/authn/authn.h"
#include "libs/base/err.h"
#include "libs/paseto/claims.h"
#include "libs/rpc/rpc.h"

/* Ranks of the "role" claim. */
enum authn_role {
  AUTHN_ROLE_NONE = 0, /* not a role (and: no role required) */
  AUTHN_ROLE_CUSTOMER = 1,
  AUTHN_ROLE_STAFF = 2,
  AUTHN_ROLE_ADMIN = 3,
  AUTHN_ROLE_OWNER = 4,
};

/* The role of a sync device's token (auth.v1.Auth/IssueDeviceToken). It
 * ranks as AUTHN_ROLE_STAFF: a device works the menu, tables and orders
 * like staff and nothing above; methods that must refuse devices (managing
 * devices) compare the role name. */
#define AUTHN_ROLE_DEVICE_NAME "device"

/* The rank of a role name: "owner" -> AUTHN_ROLE_OWNER, ...; "device" ->
 * AUTHN_ROLE_STAFF; NULL or any other string -> AUTHN_ROLE_NONE. Exact,
 * lower case. */
int authn_role_rank(const char *role);

/* The name of a rank ("staff"); NULL for AUTHN_ROLE_NONE and anything out
 * of range. Static. */
const char *authn_role_name(int rank);

/* Decides whether call may proceed, checking in this order and answering
 * the first failure on reply:
 *   authn_verify accepts the   authn_result_code(why), authn_result_str(why)
 *   token                      ("missing token" when there is none);
 *                              UNAVAILABLE "cannot verify the token now";
 *                              RESOURCE_EXHAUSTED "out of memory"
 *   its tid is a UUID          UNAUTHENTICATED   "token without a tenant"
 *   the envelope's tenant_id,  PERMISSION_DENIED "the token belongs to
 *   when set, is the tid                          another tenant"
 *   its role ranks at least    PERMISSION_DENIED "requires the admin role
 *   min_rank                                      or higher"
 * (min_rank AUTHN_ROLE_NONE: any verified member). Returns ERR_OK with the
 * token's claims in *claims, or the refusal's error - ERR_INVAL (refused),
 * ERR_UNAVAILABLE, ERR_NOMEM - with reply's status set: the handler then
 * only returns. Nothing of the token is logged or copied into the reply. */
int authn_check_call(authn *a, const rpc_call *call, int min_rank,
                     paseto_claims *claims, rpc_reply *reply) WARN_UNUSED;

#endif
