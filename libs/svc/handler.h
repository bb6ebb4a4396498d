/*
 * handler.h - the steps every RPC handler of every service takes, written
 * once: decode the request, refuse bad input with field violations, turn
 * a failed dependency into a status without leaking its details, send the
 * answer, and register a table of methods.
 *
 *   static void get_thing(void *arg, const rpc_call *call, rpc_reply *reply) {
 *     HANDLER_UNPACK(Things__V1__GetThingRequest,
 *                    things__v1__get_thing_request, req, 0);
 *     ... authn_check_call, validation into a vlist ...
 *     if (v.n > 0) {
 *       handler_reply_invalid(reply, "invalid thing", &v);
 *       goto out;
 *     }
 *     int rc = store_get_thing(...);
 *     if (rc != ERR_OK) {
 *       handler_reply_error(reply, rc, "read the thing");
 *       goto out;
 *     }
 *     handler_reply_message(reply, &resp.base);
 *   out:
 *     things__v1__get_thing_request__free_unpacked(req, NULL);
 *   }
 *
 * Messages go to the caller (through the gateway, to the public), so they
 * are fixed, generic and never carry values, SQL or library errors; the
 * details go to the log (db_last_error never holds parameter values).
 * Codes come from rpc_code_from_err, the one ERR_* -> RPC mapping.
 */
#ifndef SVC_HANDLER_H
#define SVC_HANDLER_H

#include <stdbool.h>
#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include "libs/base/err.h"
#include "libs/base/uuid.h"
#include "libs/base/vlist.h"
#include "libs/rpc/rpc.h"

/* The start of a handler: tags this thread's log lines with the call's
 * request id, then decodes the call's payload as a message of desc.
 * Returns the message - the caller frees it exactly once, with its type's
 * __free_unpacked - or NULL with the reply set to INVALID_ARGUMENT:
 * "request too large" when max_bytes > 0 and the payload is longer,
 * "undecodable request" when it does not decode. */
void *handler_begin(const rpc_call *call, rpc_reply *reply,
                    const ProtobufCMessageDescriptor *desc, size_t max_bytes);

/* handler_begin in a handler whose parameters are named call and reply:
 * declares `T *var` for the message type T whose protobuf-c prefix is
 * prefix (things__v1__get_thing_request), and returns from the handler
 * when the request was refused. */
#define HANDLER_UNPACK(T, prefix, var, max_bytes)                              \
  T *var = handler_begin(call, reply, &prefix##__descriptor, (max_bytes));     \
  if (var == NULL) return

/* Serialises m as the reply's payload; RESOURCE_EXHAUSTED "answer too
 * large" when it cannot (larger than a peer accepts, out of memory). m
 * stays the caller's. */
void handler_reply_message(rpc_reply *reply, const ProtobufCMessage *m);

/* Adds v's violations to the reply (code unchanged: for answers such as
 * FAILED_PRECONDITION or ALREADY_EXISTS that name fields). */
void handler_add_violations(rpc_reply *reply, const vlist *v);

/* INVALID_ARGUMENT with message and every violation of v. */
void handler_reply_invalid(rpc_reply *reply, const char *message,
                           const vlist *v);

/* Status code with message and one violation of field (why) - the answer
 * that names the one field at fault ("invalid host" / host: "must be a
 * valid host name"; ALREADY_EXISTS "e-mail already registered" / email). */
void handler_reply_field(rpc_reply *reply, int code, const char *message,
                         const char *field, const char *why);

/* An id taken from the request, field naming it in the answer: copies the
 * UUID in into out in canonical lower case (uuid_canonical: the spelling
 * ids are compared, stored and logged in) and returns ERR_OK. Otherwise
 * answers INVALID_ARGUMENT "invalid <field>" with field: "is required"
 * (empty or NULL) or "must be a UUID", and returns ERR_INVAL. */
int handler_uuid_arg(rpc_reply *reply, const char *field, const char *in,
                     char out[UUID_STR_LEN + 1]) WARN_UNUSED;

/* A failed call to the database or another dependency, err an ERR_*:
 * ERR_NOTFOUND answers NOT_FOUND "not found"; anything else is logged
 * (op what, the error, db_last_error's message) and answered with
 * rpc_code_from_err(err) and "cannot <what>" ("cannot read the order"). */
void handler_reply_error(rpc_reply *reply, int err, const char *what);

/* The user the method's access declaration asks for (its
 * (rpc.v1.access) option in proto/<service>/v1/<service>_rpc.proto, as the
 * service-identity guard matched it for the calling service; see
 * libs/svc/identity.h). Handlers take roles from here, never from
 * constants of their own, so the .proto stays the one declaration.
 *
 * handler_min_rank: the libs/authn rank to pass to authn_check_call
 * (AUTHN_ROLE_CUSTOMER .. AUTHN_ROLE_OWNER). A call that reached a handler
 * without the guard (none installed) asks for AUTHN_ROLE_OWNER: refusing
 * by default.
 * handler_is_internal: the caller is a service calling for itself
 * (USER_NONE), such as tenants creating a tenant's owner; false without
 * the guard. */
int handler_min_rank(const rpc_call *call);
bool handler_is_internal(const rpc_call *call);

/* One row of a service's method table. */
typedef struct handler_method {
  const char *method; /* "orders.v1.Orders/GetOrder" */
  rpc_handler_fn fn;
} handler_method;

/* Registers table[0..n) on srv, each with arg. Errors: ERR_INVAL (NULL
 * srv or table), rpc_server_register's (a duplicate method, ...). */
int handler_register(rpc_server *srv, const handler_method *table, size_t n,
                     void *arg) WARN_UNUSED;

#endif
