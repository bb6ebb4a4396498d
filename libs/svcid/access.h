/*
 * access.h - who may call which RPC method, as declared once in the
 * method's .proto (option (rpc.v1.access), proto/rpc/v1/access.proto).
 *
 * tools/protoaccess turns each service's declarations into a table of
 * these rows at build time (proto_access in bazel/defs.bzl), and every
 * consumer reads the same table: the RPC server's guard (libs/svc/guard.h:
 * the calling service must be listed), the handlers (the minimum user
 * role), the gateway (the role a route needs) and docs/RPC-ACCESS.md.
 *
 * A method lists its callers: a service name, or "*" for any service with
 * a valid identity, each with what it must show of the user on whose
 * behalf it calls:
 *   SVCID_USER_NONE       nothing (a service-to-service call)
 *   SVCID_USER_ANONYMOUS  nothing required (public, e.g. login)
 *   SVCID_USER_CUSTOMER.. a user access token of at least that role
 */
#ifndef LIBS_SVCID_ACCESS_H
#define LIBS_SVCID_ACCESS_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

/* Numbered as rpc.v1.User in access.proto. */
enum svcid_user {
  SVCID_USER_NONE = 0,
  SVCID_USER_ANONYMOUS = 1,
  SVCID_USER_CUSTOMER = 2,
  SVCID_USER_STAFF = 3,
  SVCID_USER_ADMIN = 4,
  SVCID_USER_OWNER = 5,
};

typedef struct svcid_caller_rule {
  const char *service; /* "gateway", or "*" */
  int user;            /* enum svcid_user */
} svcid_caller_rule;

typedef struct svcid_method_access {
  const char *method; /* "auth.v1.Auth/CreateUser" */
  const svcid_caller_rule *callers;
  size_t ncallers;
  const ProtobufCMessageDescriptor *input;  /* the request message */
  const ProtobufCMessageDescriptor *output; /* the reply message */
} svcid_method_access;

typedef struct svcid_access_table {
  const char *source; /* the .proto it was generated from */
  const svcid_method_access *methods;
  size_t n;
} svcid_access_table;

/* The declaration of method in table, or NULL. */
const svcid_method_access *svcid_access_find(const svcid_access_table *t,
                                             const char *method);

/* The rule that lets service call m: its own row first, else a "*" row;
 * NULL when service may not call m. */
const svcid_caller_rule *svcid_access_caller(const svcid_method_access *m,
                                             const char *service);

/* "none", "anonymous", "customer", "staff", "admin", "owner"; "?" else. */
const char *svcid_user_name(int user);

/* The libs/authn role rank a user level asks for (AUTHN_ROLE_CUSTOMER
 * = 1 .. AUTHN_ROLE_OWNER = 4), 0 for NONE and ANONYMOUS (no token). */
int svcid_user_rank(int user);

#endif
