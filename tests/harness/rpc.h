/*
 * rpc.h - libs/rpc as integration tests use it: a client that is
 * connected before the test goes on, a call that cannot fail silently,
 * and Check assertions on a result's code and field violations.
 *
 * Tests drive services over their real RPC port with generous deadlines
 * (a loaded CI machine is slow, not broken) and fast reconnects (tests
 * restart services and want the client back at once). Every function
 * here is for Check tests: they fail the running test instead of
 * returning errors. The macros report the caller's file and line.
 */
#ifndef TESTS_HARNESS_RPC_H
#define TESTS_HARNESS_RPC_H

#include <stdbool.h>

#include "libs/rpc/rpc.h"

/* A client for url (default deadline 15 s, reconnect 50-200 ms) that has
 * connected to one replica; fails the test if none connects within 10 s.
 * Its calls carry the gateway's service identity (identity.h): most tests
 * drive a service as the gateway does. The caller frees it
 * (rpc_client_free). */
rpc_client *harness_rpc_client(const char *url);

/* The same, calling as service ("tenants", "operator", ...), or with no
 * service identity at all when service is NULL. */
rpc_client *harness_rpc_client_as(const char *url, const char *service);

/* Calls method with msg, a 20 s deadline, and the token, tenant id and
 * idempotency key given (each may be NULL). Fails the test if the call
 * could not be made at all; otherwise returns the result, whatever its
 * code, which the caller frees (rpc_result_free). */
rpc_result *harness_rpc_call(rpc_client *c, const char *method,
                             const ProtobufCMessage *msg, const char *token,
                             const char *tenant_id, const char *idem_key);

/* True when r names a violation of field. */
bool harness_rpc_has_violation(const rpc_result *r, const char *field);

/* r's code is want (an enum rpc_code); else fails with both names and
 * r's message. */
#define CK_RPC_CODE(r, want)                                                   \
  harness_rpc_check_code((r), (want), __FILE__, __LINE__)

/* r names a violation of field. */
#define CK_RPC_VIOLATION(r, field)                                             \
  harness_rpc_check_violation((r), (field), __FILE__, __LINE__)

void harness_rpc_check_code(const rpc_result *r, int want, const char *file,
                            int line);
void harness_rpc_check_violation(const rpc_result *r, const char *field,
                                 const char *file, int line);

#endif
