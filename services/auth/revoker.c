/*
 * revoker.c - records revocations in Redis, tells the local verifier and
 * publishes them (see revoker.h).
 */
#include "services/auth/revoker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/authn/revlog.h"
#include "libs/base/timeutil.h"
#include "libs/obs/log.h"
#include "libs/obs/metrics.h"
#include "proto/auth/v1/auth.pb-c.h"

#define KEY_MAX 200

struct revoker {
  cache *redis;
  int64_t ttl_ms;
  authn *local;
  revoker_publish_fn publish;
  void *publish_arg;
  metrics_child *m_ok, *m_redis_fail, *m_pub_fail;
};

int64_t revoker_user_cutoff_s(int64_t at_ms) {
  return at_ms <= 0 ? 0 : (at_ms + 999) / 1000;
}

int revoker_new(cache *redis, int64_t ttl_ms, authn *local,
                revoker_publish_fn publish, void *publish_arg, revoker **out) {
  if (out == NULL) return ERR_INVAL;
  *out = NULL;
  if (ttl_ms <= 0) return ERR_INVAL;
  revoker *r = calloc(1, sizeof *r);
  if (r == NULL) return ERR_NOMEM;
  r->redis = redis;
  r->ttl_ms = ttl_ms;
  r->local = local;
  r->publish = publish;
  r->publish_arg = publish_arg;
  const char *labels[] = {"result"};
  metrics_family *f = metrics_counter(
      "auth_revocations_total", "Revocations recorded, by outcome", 1, labels);
  const char *ok[] = {"ok"}, *rf[] = {"redis_failed"},
             *pf[] = {"publish_failed"};
  r->m_ok = metrics_child_get(f, ok);
  r->m_redis_fail = metrics_child_get(f, rf);
  r->m_pub_fail = metrics_child_get(f, pf);
  *out = r;
  return ERR_OK;
}

void revoker_free(revoker *r) { free(r); }

static int record(revoker *r, const char *key, int64_t value_s) {
  if (r->redis == NULL) return ERR_OK;
  char v[24];
  snprintf(v, sizeof v, "%lld", (long long)value_s);
  /* Through libs/authn's writer: the record and the change counter that
   * verifiers keeping tokens alive (realtime) poll, in one step
   * (libs/authn/revlog.h). */
  int rc = authn_record_state(r->redis, key, v, r->ttl_ms);
  if (rc != ERR_OK) {
    metrics_inc(r->m_redis_fail);
    log_error("revocation not recorded in Redis", "error", err_str(rc));
    return ERR_UNAVAILABLE;
  }
  return ERR_OK;
}

static void announce(revoker *r, const char *tenant, const char *jti,
                     const char *user, int64_t at_s) {
  if (r->publish == NULL) return;
  Auth__V1__Revoked ev = AUTH__V1__REVOKED__INIT;
  ev.jti = (char *)(jti != NULL ? jti : "");
  ev.user_id = (char *)(user != NULL ? user : "");
  ev.tenant_id = (char *)(tenant != NULL ? tenant : "");
  ev.revoked_at_unix = at_s;
  ev.expires_at_unix = at_s + r->ttl_ms / 1000 + 1;
  uint8_t buf[512];
  size_t n = auth__v1__revoked__get_packed_size(&ev);
  if (n > sizeof buf) return; /* ids are bounded; cannot happen */
  auth__v1__revoked__pack(&ev, buf);
  if (r->publish(r->publish_arg, AUTHN_TOPIC_REVOKED, "TokenRevoked", tenant,
                 buf, n) != ERR_OK) {
    metrics_inc(r->m_pub_fail);
    log_warn("revocation event not published (Redis still has it)");
  }
}

int revoker_jti(revoker *r, const char *tenant_id, const char *jti) {
  if (r == NULL || jti == NULL || jti[0] == '\0' || strlen(jti) > 128)
    return ERR_INVAL;
  int64_t now_s = time_now_ms() / 1000;
  char key[KEY_MAX];
  snprintf(key, sizeof key, "revoked:jti:%s", jti);
  int rc = record(r, key, now_s);
  if (r->local != NULL) authn_revoke_jti(r->local, jti);
  announce(r, tenant_id, jti, NULL, now_s);
  if (rc == ERR_OK) metrics_inc(r->m_ok);
  return rc;
}

int revoker_user(revoker *r, const char *tenant_id, const char *user_id,
                 int64_t at_ms) {
  if (r == NULL || user_id == NULL || user_id[0] == '\0' ||
      strlen(user_id) > 128)
    return ERR_INVAL;
  int64_t cut = revoker_user_cutoff_s(at_ms);
  char key[KEY_MAX];
  snprintf(key, sizeof key, "revoked:user:%s", user_id);
  int rc = record(r, key, cut);
  if (r->local != NULL) authn_revoke_user(r->local, user_id, cut);
  announce(r, tenant_id, NULL, user_id, cut);
  if (rc == ERR_OK) metrics_inc(r->m_ok);
  return rc;
}
