/*
 * pull.c - "sync.v1.Sync/Pull": the tenant's changes after a cursor, read
 * from orders' change log of orders, products and tables
 * (orders.v1.Orders/ListChanges, with the
 * caller's token) and answered with each entity as the message orders
 * sent (borrowed from its answer, no copy), which the gateway renders as
 * the change's "data" (its route's unwrap). No JSON is made here: an
 * earlier version sent each entity as JSON text, which cost sync a dump
 * and the gateway a parse per entity (docs/PERFORMANCE.md "Sync").
 *
 * The log keeps one row per entity with its newest seq, numbered in
 * commit order (services/orders/migrations/0002_changes.sql), so a pull
 * from 0 returns each entity once at its newest version, in order, in
 * pages of at most 1000. A cursor below what the log still keeps, or
 * beyond the tenant's newest seq (it cannot be this tenant's), is
 * answered reset: the client reloads from 0. Every read is the token's
 * tenant's: another tenant's cursor only ever numbers into this one's.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "libs/authn/authn_caller.h"
#include "libs/base/vlist.h"
#include "libs/svc/handler.h"
#include "proto/orders/v1/orders.pb-c.h"
#include "proto/sync/v1/sync.pb-c.h"
#include "services/sync/handlers_internal.h"

#define PULL_DEFAULT 100
#define PULL_MAX 1000
#define PULL_DEADLINE_MS 10000

/* The entity a change carries, set into e (borrowed from c); false for
 * a delete or a change without one. */
static bool entity_of(const Orders__V1__Change *c, Sync__V1__Entity *e) {
  sync__v1__entity__init(e);
  if (strcmp(c->op, "upsert") != 0) return false;
  if (c->order != NULL) {
    e->kind_case = SYNC__V1__ENTITY__KIND_ORDER;
    e->order = c->order;
  } else if (c->product != NULL) {
    e->kind_case = SYNC__V1__ENTITY__KIND_PRODUCT;
    e->product = c->product;
  } else if (c->table != NULL) {
    e->kind_case = SYNC__V1__ENTITY__KIND_TABLE;
    e->table = c->table;
  }
  return e->kind_case != SYNC__V1__ENTITY__KIND__NOT_SET;
}

/* The caller's last_mutation_id when it is a device (0 otherwise). */
static int device_last(sync *h, const paseto_claims *cl, int64_t *last) {
  *last = 0;
  char did[UUID_STR_LEN + 1];
  if (strcmp(cl->role, AUTHN_ROLE_DEVICE_NAME) != 0 ||
      uuid_canonical(cl->sub, did) != ERR_OK)
    return ERR_OK;
  int rc = store_last_mutation(h->c.store, cl->tid, did, last);
  return rc == ERR_NOTFOUND ? ERR_OK : rc;
}

/* ListChanges on orders as the caller; the answer, or NULL with the
 * reply set. */
static Orders__V1__ListChangesResponse *
list_changes(sync *h, const rpc_call *call, rpc_reply *reply, int64_t after,
             uint32_t limit) {
  Orders__V1__ListChangesRequest lr = ORDERS__V1__LIST_CHANGES_REQUEST__INIT;
  lr.after_seq = after;
  lr.limit = limit;
  rpc_call_options co = RPC_CALL_OPTIONS_INIT;
  co.deadline_ms = PULL_DEADLINE_MS;
  co.idempotent = true; /* a read */
  co.tenant_id = call->tenant_id;
  co.token = call->token;
  rpc_result *r = NULL;
  Orders__V1__ListChangesResponse *resp = NULL;
  int rc = rpc_client_call_message(h->c.orders, "orders.v1.Orders/ListChanges",
                                   &lr.base, &co, &r);
  if (rc == ERR_OK && r->code == RPC_OK)
    resp = orders__v1__list_changes_response__unpack(NULL, r->payload_len,
                                                     r->payload);
  if (resp == NULL) {
    if (rc == ERR_OK && r->code != RPC_OK)
      rpc_reply_status(reply, r->code, "%s", r->message);
    else
      rpc_reply_status(reply, RPC_UNAVAILABLE, "cannot read changes now");
  }
  rpc_result_free(r);
  return resp;
}

void sync_pull(void *arg, const rpc_call *call, rpc_reply *reply) {
  sync *h = arg;
  Orders__V1__ListChangesResponse *lc = NULL;
  Sync__V1__Change *cs = NULL, **ptrs = NULL;
  Sync__V1__Entity *ents = NULL;
  size_t n = 0;
  HANDLER_UNPACK(Sync__V1__PullRequest, sync__v1__pull_request, req, 0);
  paseto_claims cl;
  if (authn_check_call(h->c.verifier, call, handler_min_rank(call), &cl,
                       reply) != ERR_OK)
    goto out;
  vlist v;
  vlist_init(&v);
  uint32_t limit = req->limit == 0 ? PULL_DEFAULT : req->limit;
  if (limit > PULL_MAX) vlist_add(&v, "must be between 1 and 1000", "limit");
  if (req->cursor < 0) vlist_add(&v, "must be at least 0", "cursor");
  if (v.n > 0) {
    handler_reply_invalid(reply, "invalid pull", &v);
    goto out;
  }
  int64_t last_mutation = 0;
  int rc = device_last(h, &cl, &last_mutation);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "read the device");
    goto out;
  }
  lc = list_changes(h, call, reply, req->cursor, limit);
  if (lc == NULL) goto out;
  Sync__V1__PullResponse resp = SYNC__V1__PULL_RESPONSE__INIT;
  resp.last_mutation_id = last_mutation;
  resp.cursor = req->cursor;
  bool reset = req->cursor > lc->last_seq ||
               (req->cursor > 0 && req->cursor < lc->pruned_through);
  metrics_observe(h->m.lag,
                  (double)(reset ? lc->last_seq : lc->last_seq - req->cursor));
  if (reset) {
    resp.reset = true;
    resp.cursor = 0;
    handler_reply_message(reply, &resp.base);
    goto out;
  }
  n = lc->n_changes;
  cs = calloc(n ? n : 1, sizeof *cs);
  ptrs = calloc(n ? n : 1, sizeof *ptrs);
  ents = calloc(n ? n : 1, sizeof *ents);
  if (cs == NULL || ptrs == NULL || ents == NULL) {
    rpc_reply_status(reply, RPC_RESOURCE_EXHAUSTED, "out of memory");
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    const Orders__V1__Change *c = lc->changes[i];
    sync__v1__change__init(&cs[i]);
    cs[i].seq = c->seq;
    cs[i].entity = c->entity;
    cs[i].op = c->op;
    cs[i].id = c->id;
    cs[i].version = c->version;
    if (entity_of(c, &ents[i])) cs[i].data = &ents[i];
    ptrs[i] = &cs[i];
    resp.cursor = c->seq;
  }
  resp.n_changes = n;
  resp.changes = ptrs;
  resp.has_more = lc->has_more;
  metrics_add(h->m.pulled, (double)n);
  handler_reply_message(reply, &resp.base);
out:
  /* The entities are lc's: freed with it. */
  free(ents);
  free(cs);
  free(ptrs);
  if (lc != NULL) orders__v1__list_changes_response__free_unpacked(lc, NULL);
  sync__v1__pull_request__free_unpacked(req, NULL);
}
