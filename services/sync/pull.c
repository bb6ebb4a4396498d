/*
 * pull.c - "sync.v1.Sync/Pull": the tenant's changes after a cursor, read
 * from orders' change log of orders, products and tables
 * (orders.v1.Orders/ListChanges, with the
 * caller's token) and answered with each entity as JSON text, which the
 * gateway turns back into JSON (its route's json_text).
 *
 * The log keeps one row per entity with its newest seq, numbered in
 * commit order (services/orders/migrations/0002_changes.sql), so a pull
 * from 0 returns each entity once at its newest version, in order, in
 * pages of at most 1000. A cursor below what the log still keeps, or
 * beyond the tenant's newest seq (it cannot be this tenant's), is
 * answered reset: the client reloads from 0. Every read is the token's
 * tenant's: another tenant's cursor only ever numbers into this one's.
 */
#include <stdlib.h>
#include <string.h>

#include "libs/authn/authn_caller.h"
#include "libs/base/vlist.h"
#include "libs/pbjson/pbjson.h"
#include "libs/svc/handler.h"
#include "proto/orders/v1/orders.pb-c.h"
#include "proto/sync/v1/sync.pb-c.h"
#include "services/sync/handlers_internal.h"

#define PULL_DEFAULT 100
#define PULL_MAX 1000
#define PULL_DEADLINE_MS 10000

/* The JSON text of an entity message, in the API's JSON conventions
 * (enums as short lower-case names, like the gateway's answers).
 * malloc'd. */
static char *entity_json(const ProtobufCMessage *m) {
  const pbjson_opts opts = {.enum_style = PBJSON_ENUM_SHORT_LOWER,
                            .real_precision = 15};
  char *text = NULL;
  size_t len = 0;
  if (pbjson_encode_string(m, &opts, &text, &len, NULL) != ERR_OK) return NULL;
  return text;
}

/* The entity a change carries (NULL for a delete or none). */
static const ProtobufCMessage *entity_of(const Orders__V1__Change *c) {
  if (strcmp(c->op, "upsert") != 0) return NULL;
  if (c->order != NULL) return &c->order->base;
  if (c->product != NULL) return &c->product->base;
  if (c->table != NULL) return &c->table->base;
  return NULL;
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
  if (req->cursor > lc->last_seq ||
      (req->cursor > 0 && req->cursor < lc->pruned_through)) {
    resp.reset = true;
    resp.cursor = 0;
    handler_reply_message(reply, &resp.base);
    goto out;
  }
  n = lc->n_changes;
  cs = calloc(n ? n : 1, sizeof *cs);
  ptrs = calloc(n ? n : 1, sizeof *ptrs);
  if (cs == NULL || ptrs == NULL) {
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
    const ProtobufCMessage *ent = entity_of(c);
    cs[i].data = ent != NULL ? entity_json(ent) : NULL;
    if (ent != NULL && cs[i].data == NULL) {
      rpc_reply_status(reply, RPC_INTERNAL, "cannot encode a change");
      goto out;
    }
    if (cs[i].data == NULL) cs[i].data = (char *)protobuf_c_empty_string;
    ptrs[i] = &cs[i];
    resp.cursor = c->seq;
  }
  resp.n_changes = n;
  resp.changes = ptrs;
  resp.has_more = lc->has_more;
  metrics_add(h->m.pulled, (double)n);
  handler_reply_message(reply, &resp.base);
out:
  for (size_t i = 0; cs != NULL && i < n; i++)
    if (cs[i].data != NULL && cs[i].data != protobuf_c_empty_string)
      free(cs[i].data);
  free(cs);
  free(ptrs);
  if (lc != NULL) orders__v1__list_changes_response__free_unpacked(lc, NULL);
  sync__v1__pull_request__free_unpacked(req, NULL);
}
