/*
 * rpc.c - libs/rpc clients and calls for integration tests.
 *
 * Design. Thin on purpose: the options are the ones every RPC-level test
 * had settled on (deadlines far above any healthy answer, reconnects fast
 * enough for restart tests), and each helper turns "the call could not be
 * made" into a failed Check assertion, so test bodies only deal with
 * what the service answered.
 */
#include "tests/harness/rpc.h"

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "libs/base/err.h"
#include "libs/svcid/svcid.h"
#include "tests/harness/identity.h"

#define DEFAULT_DEADLINE_MS 15000
#define CALL_DEADLINE_MS 20000
#define CONNECT_TIMEOUT_MS 10000

/* One signer per service name for the whole test process (clients keep a
 * pointer to it). */
static svcid_signer *signer_of(const char *service) {
  static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  static struct {
    char name[SVCID_NAME_MAX + 1];
    svcid_signer *s;
  } signers[16];
  svcid_signer *found = NULL;
  pthread_mutex_lock(&mu);
  for (size_t i = 0; i < 16 && found == NULL; i++) {
    if (signers[i].s == NULL) {
      signers[i].s = harness_identity_signer(service);
      snprintf(signers[i].name, sizeof signers[i].name, "%s", service);
    }
    if (strcmp(signers[i].name, service) == 0) found = signers[i].s;
  }
  pthread_mutex_unlock(&mu);
  ck_assert_ptr_nonnull(found);
  return found;
}

rpc_client *harness_rpc_client(const char *url) {
  return harness_rpc_client_as(url, "gateway");
}

rpc_client *harness_rpc_client_as(const char *url, const char *service) {
  rpc_client_options o;
  rpc_client_options_init(&o);
  if (service != NULL) {
    o.credential = svcid_credential;
    o.credential_arg = signer_of(service);
  }
  o.default_deadline_ms = DEFAULT_DEADLINE_MS;
  o.reconnect_min_ms = 50;
  o.reconnect_max_ms = 200;
  rpc_client *c = NULL;
  ck_assert_int_eq(rpc_client_new(url, &o, &c), ERR_OK);
  ck_assert_msg(rpc_client_wait_connected(c, 1, CONNECT_TIMEOUT_MS) == ERR_OK,
                "%s: not connected after %d ms", url, CONNECT_TIMEOUT_MS);
  return c;
}

rpc_result *harness_rpc_call(rpc_client *c, const char *method,
                             const ProtobufCMessage *msg, const char *token,
                             const char *tenant_id, const char *idem_key) {
  rpc_call_options o = RPC_CALL_OPTIONS_INIT;
  o.deadline_ms = CALL_DEADLINE_MS;
  o.token = token;
  o.tenant_id = tenant_id;
  o.idempotency_key = idem_key;
  rpc_result *r = NULL;
  int rc = rpc_client_call_message(c, method, msg, &o, &r);
  ck_assert_msg(rc == ERR_OK, "%s: %s", method, err_str(rc));
  return r;
}

bool harness_rpc_has_violation(const rpc_result *r, const char *field) {
  for (size_t i = 0; i < r->nviolations; i++)
    if (strcmp(r->violations[i].field, field) == 0) return true;
  return false;
}

void harness_rpc_check_code(const rpc_result *r, int want, const char *file,
                            int line) {
  ck_assert_msg(r->code == want, "%s:%d: got %s (%s), want %s", file, line,
                rpc_code_name(r->code), r->message, rpc_code_name(want));
}

void harness_rpc_check_violation(const rpc_result *r, const char *field,
                                 const char *file, int line) {
  ck_assert_msg(harness_rpc_has_violation(r, field),
                "%s:%d: no violation %s (%s)", file, line, field, r->message);
}
