/*
 * authn_caller.c - role ranks and the check at the start of every member
 * method (see authn_caller.h). The messages are fixed strings: a refusal
 * tells the caller what is missing, never anything about the token.
 */
#include "libs/authn/authn_caller.h"

#include <string.h>

#include "libs/base/uuid.h"

static const char *const role_names[] = {
    [AUTHN_ROLE_CUSTOMER] = "customer",
    [AUTHN_ROLE_STAFF] = "staff",
    [AUTHN_ROLE_ADMIN] = "admin",
    [AUTHN_ROLE_OWNER] = "owner",
};
#define NROLES (sizeof role_names / sizeof role_names[0])

int authn_role_rank(const char *role) {
  if (role == NULL) return AUTHN_ROLE_NONE;
  /* A sync device (services/sync): staff for menu, tables and orders,
   * nothing above; the sync service tells it from staff by the name. */
  if (strcmp(role, AUTHN_ROLE_DEVICE_NAME) == 0) return AUTHN_ROLE_STAFF;
  for (size_t r = AUTHN_ROLE_CUSTOMER; r < NROLES; r++)
    if (strcmp(role, role_names[r]) == 0) return (int)r;
  return AUTHN_ROLE_NONE;
}

const char *authn_role_name(int rank) {
  if (rank <= AUTHN_ROLE_NONE || (size_t)rank >= NROLES) return NULL;
  return role_names[rank];
}

static int refuse(rpc_reply *reply, int err, int code, const char *msg) {
  rpc_reply_status(reply, code, "%s", msg);
  return err;
}

int authn_check_call(authn *a, const rpc_call *call, int min_rank,
                     paseto_claims *claims, rpc_reply *reply) {
  memset(claims, 0, sizeof *claims);
  enum authn_result why = AUTHN_OK;
  int rc = authn_verify(a, call->token, strlen(call->token), claims, &why);
  if (rc == ERR_INVAL)
    return refuse(reply, rc, authn_result_code(why), authn_result_str(why));
  if (rc == ERR_NOMEM)
    return refuse(reply, rc, RPC_RESOURCE_EXHAUSTED, "out of memory");
  if (rc != ERR_OK)
    return refuse(reply, rc, RPC_UNAVAILABLE, "cannot verify the token now");
  if (!uuid_is_valid(claims->tid))
    return refuse(reply, ERR_INVAL, RPC_UNAUTHENTICATED,
                  "token without a tenant");
  if (call->tenant_id[0] != '\0' && strcmp(call->tenant_id, claims->tid) != 0)
    return refuse(reply, ERR_INVAL, RPC_PERMISSION_DENIED,
                  "the token belongs to another tenant");
  int rank = authn_role_rank(claims->role);
  if (min_rank > AUTHN_ROLE_NONE && rank < min_rank) {
    const char *need = authn_role_name(min_rank);
    rpc_reply_status(reply, RPC_PERMISSION_DENIED, "requires the %s role%s",
                     need != NULL ? need : "owner",
                     min_rank < AUTHN_ROLE_OWNER ? " or higher" : "");
    return ERR_INVAL;
  }
  return ERR_OK;
}
