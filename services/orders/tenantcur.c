/*
 * tenantcur.c - tenant currencies with a TTL (see tenantcur.h).
 *
 * The table is libs/base/slotcache (fixed slots hashed by tenant, a
 * collision evicts, bounded memory); a currency fetched while a forget
 * happened (tenants.changed) is not stored, so it cannot outlive it.
 */
#include "services/orders/tenantcur.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/slotcache.h"
#include "libs/base/uuid.h"
#include "proto/tenants/v1/tenants.pb-c.h"

struct tenantcur {
  rpc_client *client;
  uint32_t deadline_ms;
  slotcache *slots; /* char[4] values */
};

static bool currency_ok(const char *c) {
  if (c == NULL || strlen(c) != 3) return false;
  for (int i = 0; i < 3; i++)
    if (c[i] < 'A' || c[i] > 'Z') return false;
  return true;
}

int tenantcur_new(rpc_client *client, int64_t ttl_ms, uint32_t deadline_ms,
                  tenantcur **out) {
  *out = NULL;
  if (ttl_ms <= 0) return ERR_INVAL;
  tenantcur *t = calloc(1, sizeof *t);
  if (t == NULL) return ERR_NOMEM;
  int rc = slotcache_new(TENANTCUR_SLOTS, 4, ttl_ms, &t->slots);
  if (rc != ERR_OK) {
    free(t);
    return rc;
  }
  t->client = client;
  t->deadline_ms = deadline_ms ? deadline_ms : 2000;
  *out = t;
  return ERR_OK;
}

void tenantcur_free(tenantcur *t) {
  if (t == NULL) return;
  slotcache_free(t->slots);
  free(t);
}

static void put_at(tenantcur *t, const char *tid, const char *cur,
                   uint64_t epoch) {
  if (t == NULL || !uuid_is_valid(tid) || !currency_ok(cur)) return;
  slotcache_put(t->slots, tid, cur, epoch);
}

void tenantcur_put(tenantcur *t, const char *tid, const char *cur) {
  if (t != NULL) put_at(t, tid, cur, slotcache_epoch(t->slots));
}

void tenantcur_forget(tenantcur *t, const char *tid) {
  if (t != NULL && tid != NULL) slotcache_forget(t->slots, tid);
}

int tenantcur_get(tenantcur *t, const char *tid, const char *token,
                  int64_t time_left_ms, char out[4]) {
  out[0] = '\0';
  if (t == NULL || !uuid_is_valid(tid)) return ERR_INVAL;
  if (slotcache_get(t->slots, tid, out)) return ERR_OK;
  uint64_t epoch = slotcache_epoch(t->slots); /* before the question */
  if (t->client == NULL) return ERR_UNAVAILABLE;
  int64_t budget = time_left_ms < (int64_t)t->deadline_ms
                       ? time_left_ms
                       : (int64_t)t->deadline_ms;
  if (budget <= 0) return ERR_UNAVAILABLE;
  Tenants__V1__GetTenantRequest req = TENANTS__V1__GET_TENANT_REQUEST__INIT;
  req.id = (char *)tid;
  rpc_call_options o = RPC_CALL_OPTIONS_INIT;
  o.deadline_ms = (uint32_t)budget;
  o.idempotent = true; /* a read */
  o.token = token;
  o.tenant_id = tid;
  rpc_result *res = NULL;
  int rc =
      rpc_client_call_message(t->client, TENANTCUR_METHOD, &req.base, &o, &res);
  if (rc != ERR_OK) return rc == ERR_NOMEM ? ERR_NOMEM : ERR_UNAVAILABLE;
  if (res->code != RPC_OK) {
    int code = res->code;
    rpc_result_free(res);
    return code == RPC_NOT_FOUND || code == RPC_PERMISSION_DENIED ||
                   code == RPC_UNAUTHENTICATED
               ? ERR_NOTFOUND
               : ERR_UNAVAILABLE;
  }
  Tenants__V1__GetTenantResponse *resp =
      tenants__v1__get_tenant_response__unpack(NULL, res->payload_len,
                                               res->payload);
  rpc_result_free(res);
  if (resp == NULL) return ERR_PROTO;
  rc = ERR_PROTO;
  if (resp->tenant != NULL && strcmp(resp->tenant->id, tid) == 0 &&
      currency_ok(resp->tenant->currency)) {
    memcpy(out, resp->tenant->currency, 4);
    rc = ERR_OK;
  }
  tenants__v1__get_tenant_response__free_unpacked(resp, NULL);
  if (rc == ERR_OK) put_at(t, tid, out, epoch);
  return rc;
}
