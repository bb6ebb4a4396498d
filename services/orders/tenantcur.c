/*
 * tenantcur.c - tenant currencies with a TTL (see tenantcur.h).
 *
 * A fixed table of slots indexed by a hash of the tenant id: a tenant
 * that collides with another simply evicts it (asked for again next
 * time), so memory is bounded without any eviction bookkeeping.
 */
#include "services/orders/tenantcur.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"
#include "proto/tenants/v1/tenants.pb-c.h"

typedef struct slot {
  char tid[UUID_STR_LEN + 1];
  char cur[4];
  int64_t expires_ms; /* monotonic */
} slot;

struct tenantcur {
  rpc_client *client;
  int64_t ttl_ms;
  uint32_t deadline_ms;
  pthread_mutex_t mu;
  slot slots[TENANTCUR_SLOTS];
};

static size_t slot_of(const char *tid) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  for (const unsigned char *p = (const unsigned char *)tid; *p; p++)
    h = (h ^ *p) * 1099511628211ULL;
  return (size_t)(h % TENANTCUR_SLOTS);
}

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
  t->client = client;
  t->ttl_ms = ttl_ms;
  t->deadline_ms = deadline_ms ? deadline_ms : 2000;
  pthread_mutex_init(&t->mu, NULL);
  *out = t;
  return ERR_OK;
}

void tenantcur_free(tenantcur *t) {
  if (t == NULL) return;
  pthread_mutex_destroy(&t->mu);
  free(t);
}

void tenantcur_put(tenantcur *t, const char *tid, const char *cur) {
  if (t == NULL || !uuid_is_valid(tid) || !currency_ok(cur)) return;
  pthread_mutex_lock(&t->mu);
  slot *s = &t->slots[slot_of(tid)];
  memcpy(s->tid, tid, UUID_STR_LEN + 1);
  memcpy(s->cur, cur, 4);
  s->expires_ms = time_mono_ms() + t->ttl_ms;
  pthread_mutex_unlock(&t->mu);
}

void tenantcur_forget(tenantcur *t, const char *tid) {
  if (t == NULL || tid == NULL) return;
  pthread_mutex_lock(&t->mu);
  slot *s = &t->slots[slot_of(tid)];
  if (strcmp(s->tid, tid) == 0) memset(s, 0, sizeof *s);
  pthread_mutex_unlock(&t->mu);
}

static bool lookup(tenantcur *t, const char *tid, char out[4]) {
  bool hit = false;
  pthread_mutex_lock(&t->mu);
  slot *s = &t->slots[slot_of(tid)];
  if (strcmp(s->tid, tid) == 0 && s->expires_ms > time_mono_ms()) {
    memcpy(out, s->cur, 4);
    hit = true;
  }
  pthread_mutex_unlock(&t->mu);
  return hit;
}

int tenantcur_get(tenantcur *t, const char *tid, const char *token,
                  int64_t time_left_ms, char out[4]) {
  out[0] = '\0';
  if (t == NULL || !uuid_is_valid(tid)) return ERR_INVAL;
  if (lookup(t, tid, out)) return ERR_OK;
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
  if (rc == ERR_OK) tenantcur_put(t, tid, out);
  return rc;
}
