/*
 * handler.c - the common steps of RPC handlers (see handler.h). Nothing
 * here knows a service: it joins libs/rpc's reply, libs/obs's log and
 * libs/db's last error the way every service had been doing by hand.
 */
#include "libs/svc/handler.h"

#include <stdbool.h>

#include "libs/db/db.h"
#include "libs/obs/log.h"
#include "libs/authn/authn_caller.h"
#include "libs/svcid/access.h"

void *handler_begin(const rpc_call *call, rpc_reply *reply,
                    const ProtobufCMessageDescriptor *desc, size_t max_bytes) {
  log_set_request_id(call->request_id[0] != '\0' ? call->request_id : NULL);
  if (max_bytes > 0 && call->payload_len > max_bytes) {
    rpc_reply_status(reply, RPC_INVALID_ARGUMENT, "request too large");
    return NULL;
  }
  ProtobufCMessage *m =
      protobuf_c_message_unpack(desc, NULL, call->payload_len, call->payload);
  if (m == NULL)
    rpc_reply_status(reply, RPC_INVALID_ARGUMENT, "undecodable request");
  return m;
}

void handler_reply_message(rpc_reply *reply, const ProtobufCMessage *m) {
  if (rpc_reply_set_message(reply, m) != ERR_OK)
    rpc_reply_status(reply, RPC_RESOURCE_EXHAUSTED, "answer too large");
}

void handler_add_violations(rpc_reply *reply, const vlist *v) {
  /* Only past RPC_MAX_VIOLATIONS (= VLIST_MAX) can adding fail. */
  for (size_t i = 0; i < vlist_stored(v); i++)
    (void)rpc_reply_add_violation(reply, v->v[i].field, v->v[i].why);
}

void handler_reply_invalid(rpc_reply *reply, const char *message,
                           const vlist *v) {
  rpc_reply_status(reply, RPC_INVALID_ARGUMENT, "%s", message);
  handler_add_violations(reply, v);
}

void handler_reply_field(rpc_reply *reply, int code, const char *message,
                         const char *field, const char *why) {
  rpc_reply_status(reply, code, "%s", message);
  (void)rpc_reply_add_violation(reply, field, why);
}

int handler_uuid_arg(rpc_reply *reply, const char *field, const char *in,
                     char out[UUID_STR_LEN + 1]) {
  if (uuid_canonical(in, out) == ERR_OK) return ERR_OK;
  rpc_reply_status(reply, RPC_INVALID_ARGUMENT, "invalid %s", field);
  bool empty = in == NULL || in[0] == '\0';
  (void)rpc_reply_add_violation(reply, field,
                                empty ? "is required" : "must be a UUID");
  return ERR_INVAL;
}

void handler_reply_error(rpc_reply *reply, int err, const char *what) {
  if (err == ERR_NOTFOUND) {
    rpc_reply_status(reply, RPC_NOT_FOUND, "not found");
    return;
  }
  log_error("request failed", "op", what, "error", err_str(err), "detail",
            db_last_error()->message);
  rpc_reply_status(reply, rpc_code_from_err(err), "cannot %s", what);
}

int handler_register(rpc_server *srv, const handler_method *table, size_t n,
                     void *arg) {
  if (srv == NULL || table == NULL) return ERR_INVAL;
  for (size_t i = 0; i < n; i++) {
    int rc = rpc_server_register(srv, table[i].method, table[i].fn, arg);
    if (rc != ERR_OK) return rc;
  }
  return ERR_OK;
}

int handler_min_rank(const rpc_call *call) {
  const svcid_caller_rule *rule = call->access;
  if (rule == NULL) return AUTHN_ROLE_OWNER;
  int rank = svcid_user_rank(rule->user);
  return rank > AUTHN_ROLE_NONE ? rank : AUTHN_ROLE_CUSTOMER;
}

bool handler_is_internal(const rpc_call *call) {
  const svcid_caller_rule *rule = call->access;
  return rule != NULL && rule->user == SVCID_USER_NONE;
}
