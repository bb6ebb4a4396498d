/*
 * verifyd.c - a minimal service that verifies tokens with libs/authn, run
 * by the auth integration tests as "another process": it fetches the
 * public keys from auth's Keys RPC (AUTH_ADDR), reads revocations and
 * tenant status from Redis (REDIS_URL) and answers
 * "auth.v1.Auth/Verify" itself, exactly as any service verifying
 * offline would. Built on libs/svc like every service (RPC_LISTEN,
 * ADMIN_PORT, /readyz).
 */
#include <stdlib.h>
#include <string.h>

#include "libs/authn/authn.h"
#include "libs/cache/cache.h"
#include "libs/obs/log.h"
#include "libs/svc/svc.h"
#include "proto/auth/v1/auth.pb-c.h"
#include "proto/auth/v1/auth_access.h"

static const cfg_entry config[] = {
    {.name = "AUTH_ADDR",
     .kind = CFG_STRING,
     .required = true,
     .description = "auth RPC address (Keys)"},
    {.name = "REDIS_URL",
     .kind = CFG_URL,
     .required = true,
     .description = "Redis (revocations, tenant status)"},
    {.name = "VERIFY_RECHECK",
     .kind = CFG_DURATION_MS,
     .def = "500ms",
     .min = 1,
     .max = 3600000,
     .description = "authn recheck_ms"},
    {.name = "AUTH_BUS",
     .kind = CFG_STRING,
     .description = "bus publishers to follow (auth's BUS_LISTEN)"},
};

typedef struct app {
  rpc_client *auth;
  cache *redis;
  authn *verifier;
  bus_subscriber *sub;
} app;

static void h_verify(void *arg, const rpc_call *call, rpc_reply *reply) {
  app *a = arg;
  Auth__V1__VerifyRequest *req =
      auth__v1__verify_request__unpack(NULL, call->payload_len, call->payload);
  if (req == NULL) {
    rpc_reply_status(reply, RPC_INVALID_ARGUMENT, "malformed request");
    return;
  }
  paseto_claims cl;
  enum authn_result why = AUTHN_OK;
  if (authn_verify(a->verifier, req->token, strlen(req->token), &cl, &why) !=
      ERR_OK) {
    rpc_reply_status(reply, authn_result_code(why), "%s",
                     authn_result_str(why));
  } else {
    Auth__V1__Claims c = AUTH__V1__CLAIMS__INIT;
    c.sub = cl.sub;
    c.tid = cl.tid;
    c.role = cl.role;
    c.jti = cl.jti;
    c.iss = cl.iss;
    c.exp_unix = cl.exp_ms / 1000;
    Auth__V1__VerifyResponse resp = AUTH__V1__VERIFY_RESPONSE__INIT;
    resp.claims = &c;
    if (rpc_reply_set_message(reply, &resp.base) != ERR_OK)
      rpc_reply_status(reply, RPC_INTERNAL, "internal error");
  }
  auth__v1__verify_request__free_unpacked(req, NULL);
}

static int init(svc *s, void *arg) {
  app *a = arg;
  const cfg *c = svc_cfg(s);
  int rc = svc_rpc_client_new(s, cfg_str(c, "AUTH_ADDR"), NULL, &a->auth);
  if (rc != ERR_OK) return rc;
  cache_config cc = {.url = cfg_str(c, "REDIS_URL")};
  rc = cache_new(&cc, &a->redis);
  if (rc != ERR_OK) return rc;
  authn_config ac = AUTHN_CONFIG_INIT;
  ac.issuer = "auth";
  ac.redis = a->redis;
  ac.keys_client = a->auth;
  ac.recheck_ms = cfg_duration_ms(c, "VERIFY_RECHECK");
  rc = authn_new(&ac, &a->verifier);
  if (rc != ERR_OK) return rc;
  const char *bus = cfg_str(c, "AUTH_BUS");
  if (bus != NULL && bus[0] != '\0') {
    rc = authn_subscribe(a->verifier, bus, &a->sub);
    if (rc != ERR_OK) return rc;
  }
  return rpc_server_register(svc_rpc(s), "auth.v1.Auth/Verify", h_verify, a);
}

static void fini(svc *s, void *arg) {
  app *a = arg;
  bus_subscriber_free(a->sub);
  a->sub = NULL;
  authn_free(a->verifier);
  a->verifier = NULL;
}

int main(void) {
  static app a;
  /* It answers auth's Verify, so it carries auth's name and identity (the
   * test gives it auth's key): callers address auth.v1 methods to "auth". */
  svc_spec spec = {.name = "auth",
                   .access = &auth_v1_access,
                   .config = config,
                   .nconfig = sizeof config / sizeof config[0],
                   .init = init,
                   .fini = fini,
                   .arg = &a};
  int st = svc_main(&spec);
  cache_free(a.redis);
  rpc_client_free(a.auth);
  return st;
}
