/*
 * identity.c - see identity.h.
 */
#include "libs/svc/identity.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/strutil.h"
#include "libs/obs/log.h"
#include "libs/obs/metrics.h"

struct svc_identity {
  svcid_signer *signer;
  svcid_verifier *verifier;
  const svcid_access_table *table;
  metrics_child *refused_unauthenticated, *refused_denied;
};

static void init_metrics(svc_identity *id) {
  static const char *const labels[] = {"reason"};
  metrics_family *f = metrics_counter(
      "rpc_identity_refused_total",
      "RPC calls refused by the service-identity guard, by reason.", 1, labels);
  const char *v1[] = {"unauthenticated"}, *v2[] = {"denied"};
  id->refused_unauthenticated = metrics_child_get(f, v1);
  id->refused_denied = metrics_child_get(f, v2);
}

int svc_identity_new(svcid_signer *signer, svcid_verifier *verifier,
                     svc_identity **out) {
  *out = NULL;
  svc_identity *id = verifier != NULL ? calloc(1, sizeof *id) : NULL;
  if (id == NULL) {
    svcid_signer_free(signer);
    svcid_verifier_free(verifier);
    return verifier == NULL ? ERR_INVAL : ERR_NOMEM;
  }
  id->signer = signer;
  id->verifier = verifier;
  init_metrics(id);
  *out = id;
  return ERR_OK;
}

int svc_identity_open(const char *name, const char *key_file,
                      const char *trust_file, svc_identity **out) {
  *out = NULL;
  if (key_file == NULL || key_file[0] == '\0' || trust_file == NULL ||
      trust_file[0] == '\0') {
    log_error("SERVICE_KEY_FILE and SERVICE_TRUST_FILE are required "
              "(docs/adr/0008-service-identity.md)");
    return ERR_INVAL;
  }
  svcid_signer *signer = NULL;
  int rc = svcid_signer_load(name, key_file, &signer);
  if (rc != ERR_OK) {
    log_error("cannot load the service key", "file", key_file, "error",
              err_str(rc));
    return rc;
  }
  svcid_bundle *b = NULL;
  svcid_verifier *verifier = NULL;
  int bad = 0;
  rc = svcid_bundle_load(trust_file, &b, &bad);
  if (rc == ERR_OK) {
    if (svcid_bundle_service_of(b, svcid_signer_kid(signer)) == NULL)
      log_warn("this service's own key is not in the trust bundle", "kid",
               svcid_signer_kid(signer));
    rc = svcid_verifier_new(name, b, &verifier);
  }
  if (rc != ERR_OK) {
    char line[16];
    snprintf(line, sizeof line, "%d", bad);
    log_error("cannot load the service trust bundle", "file", trust_file,
              "line", line, "error", err_str(rc));
    svcid_signer_free(signer);
    return rc;
  }
  log_info("service identity", "service", name, "kid",
           svcid_signer_kid(signer));
  return svc_identity_new(signer, verifier, out);
}

static bool guard(void *arg, rpc_call *call, rpc_reply *reply) {
  svc_identity *id = arg;
  const svcid_method_access *m = svcid_access_find(id->table, call->method);
  const char *why = "method not declared";
  int rc = m == NULL
               ? ERR_INVAL
               : svcid_verify(id->verifier, call->service_token,
                              strlen(call->service_token), call->caller, &why);
  if (rc == ERR_NOMEM) {
    rpc_reply_status(reply, RPC_RESOURCE_EXHAUSTED, "out of memory");
    return false;
  }
  if (rc != ERR_OK) {
    metrics_inc(id->refused_unauthenticated);
    log_info("call refused: no valid service identity", "method", call->method,
             "why", why);
    rpc_reply_status(reply, RPC_UNAUTHENTICATED, "service identity required");
    return false;
  }
  const svcid_caller_rule *rule = svcid_access_caller(m, call->caller);
  if (rule == NULL) {
    metrics_inc(id->refused_denied);
    log_info("call refused: caller not allowed", "method", call->method,
             "caller", call->caller);
    rpc_reply_status(reply, RPC_PERMISSION_DENIED, "service %s may not call %s",
                     call->caller, call->method);
    return false;
  }
  call->access = rule;
  return true;
}

int svc_identity_guard(svc_identity *id, rpc_server *srv,
                       const svcid_access_table *table) {
  if (id == NULL || srv == NULL || table == NULL) return ERR_INVAL;
  id->table = table;
  return rpc_server_set_guard(srv, guard, id);
}

typedef struct method_check {
  const svcid_access_table *table;
  int undeclared;
} method_check;

static void check_one(void *arg, const char *method) {
  method_check *mc = arg;
  if (svcid_access_find(mc->table, method) != NULL) return;
  log_error("RPC method without an access declaration", "method", method,
            "declarations", mc->table->source);
  mc->undeclared++;
}

typedef struct served_check {
  const char *method;
  bool served;
} served_check;

static void mark_served(void *arg, const char *method) {
  served_check *sc = arg;
  if (strcmp(sc->method, method) == 0) sc->served = true;
}

int svc_identity_check_methods(svc_identity *id, const rpc_server *srv) {
  if (id == NULL || id->table == NULL) return ERR_INVAL;
  method_check mc = {id->table, 0};
  rpc_server_each_method(srv, check_one, &mc);
  /* The converse only warns: a stand-in may serve part of a contract. */
  for (size_t i = 0; i < id->table->n; i++) {
    served_check sc = {id->table->methods[i].method, false};
    rpc_server_each_method(srv, mark_served, &sc);
    if (!sc.served)
      log_warn("declared RPC method not served", "method", sc.method);
  }
  return mc.undeclared == 0 ? ERR_OK : ERR_INVAL;
}

int svc_identity_client(svc_identity *id, rpc_client_options *o) {
  if (id == NULL || o == NULL) return ERR_INVAL;
  o->credential = svcid_credential;
  o->credential_arg = id->signer;
  return ERR_OK;
}

void svc_identity_free(svc_identity *id) {
  if (id == NULL) return;
  svcid_signer_free(id->signer);
  svcid_verifier_free(id->verifier);
  free(id);
}
