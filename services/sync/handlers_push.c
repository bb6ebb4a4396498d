/*
 * handlers_push.c - "sync.v1.Sync/Push", the conflicts and the settings
 * (the shape of handlers.c: unpack, check the caller, validate, store,
 * answer; one free_unpacked at `out:`).
 *
 * Push follows the contract's rules: mutation ids are per device and
 * consecutive; an id at or below last_mutation_id is a duplicate answered
 * with its first result; a first id beyond last_mutation_id + 1 is a gap,
 * refused (400) before anything is applied; each new mutation is applied
 * and recorded in order (push.c). When orders cannot answer, the push
 * stops there: the answer carries what was done (last_mutation_id tells
 * the device where to resume), or 503 when nothing was.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/authn/authn_caller.h"
#include "libs/base/vlist.h"
#include "libs/obs/log.h"
#include "libs/pbjson/pbjson.h"
#include "libs/svc/handler.h"
#include "proto/orders/v1/orders.pb-c.h"
#include "proto/sync/v1/sync.pb-c.h"
#include "services/sync/handlers_internal.h"
#include "services/sync/push.h"

#define NAME_MAX_BYTES 64

/* ------------------------------------------------------------- push --- */

/* The request on its own: 1..PUSH_MAX mutations with consecutive ids from
 * at least 1, bounded names and args. */
static void check_push(const Sync__V1__PushRequest *req, vlist *v) {
  if (req->n_mutations == 0 || req->n_mutations > PUSH_MAX) {
    vlist_add(v, "must hold 1 to 500 mutations", "mutations");
    return;
  }
  for (size_t i = 0; i < req->n_mutations; i++) {
    const Sync__V1__Mutation *m = req->mutations[i];
    if (m->id < 1 || m->id != req->mutations[0]->id + (int64_t)i)
      vlist_add(v, "must be at least 1 and one more than the one before",
                "mutations[%zu].id", i);
    if (strlen(m->name) > NAME_MAX_BYTES)
      vlist_add(v, "is too long", "mutations[%zu].name", i);
    if (strlen(m->args) > PUSH_ARGS_MAX)
      vlist_add(v, "is larger than 64 KiB", "mutations[%zu].args", i);
  }
}

/* The caller must be a device; its id into did. */
static bool device_caller(sync *h, const rpc_call *call, rpc_reply *reply,
                          paseto_claims *cl, char did[UUID_STR_LEN + 1]) {
  if (authn_check_call(h->c.verifier, call, handler_min_rank(call), cl,
                       reply) != ERR_OK)
    return false;
  if (strcmp(cl->role, AUTHN_ROLE_DEVICE_NAME) != 0) {
    rpc_reply_status(reply, RPC_PERMISSION_DENIED, "only a device pushes");
    return false;
  }
  if (uuid_canonical(cl->sub, did) != ERR_OK) {
    rpc_reply_status(reply, RPC_UNAUTHENTICATED, "not a device token");
    return false;
  }
  return true;
}

/* Answers res[0..n) with last; frees them. */
static void reply_push(rpc_reply *reply, int64_t last,
                       Sync__V1__MutationResult **res, size_t n) {
  Sync__V1__PushResponse resp = SYNC__V1__PUSH_RESPONSE__INIT;
  resp.last_mutation_id = last;
  resp.n_results = n;
  resp.results = res;
  handler_reply_message(reply, &resp.base);
}

/* A duplicate whose first result is no longer kept: its id and status. */
static Sync__V1__MutationResult *bare_duplicate(int64_t id) {
  Sync__V1__MutationResult r = SYNC__V1__MUTATION_RESULT__INIT;
  r.id = id;
  r.status = "duplicate";
  size_t len = sync__v1__mutation_result__get_packed_size(&r);
  uint8_t buf[64];
  if (len > sizeof buf) return NULL;
  sync__v1__mutation_result__pack(&r, buf);
  return sync__v1__mutation_result__unpack(NULL, len, buf);
}

void sync_push(void *arg, const rpc_call *call, rpc_reply *reply) {
  sync *h = arg;
  Sync__V1__MutationResult **res = NULL;
  size_t k = 0;
  HANDLER_UNPACK(Sync__V1__PushRequest, sync__v1__push_request, req, 0);
  paseto_claims cl;
  char did[UUID_STR_LEN + 1];
  if (!device_caller(h, call, reply, &cl, did)) goto out;
  vlist v;
  vlist_init(&v);
  check_push(req, &v);
  if (v.n > 0) {
    handler_reply_invalid(reply, "invalid push", &v);
    goto out;
  }
  int64_t last = 0;
  char policy[STORE_POLICY_MAX + 1];
  int rc = store_last_mutation(h->c.store, cl.tid, did, &last);
  if (rc == ERR_OK) rc = store_policy_get(h->c.store, cl.tid, policy);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "read the device");
    goto out;
  }
  if (req->mutations[0]->id > last + 1) {
    char why[96];
    snprintf(why, sizeof why, "skips ids: the next one is %lld",
             (long long)(last + 1));
    handler_reply_field(reply, RPC_INVALID_ARGUMENT, "mutation ids have a gap",
                        "mutations[0].id", why);
    goto out;
  }
  res = calloc(req->n_mutations, sizeof *res);
  if (res == NULL) {
    rpc_reply_status(reply, RPC_RESOURCE_EXHAUSTED, "out of memory");
    goto out;
  }
  push_env env = {.st = h->c.store,
                  .orders = h->c.orders,
                  .tid = cl.tid,
                  .did = did,
                  .token = call->token,
                  .policy = policy};
  for (; k < req->n_mutations; k++) {
    const Sync__V1__Mutation *m = req->mutations[k];
    if (m->id <= last) {
      rc = push_duplicate(&env, m->id, &res[k]);
      if (rc == ERR_OK && res[k] == NULL) res[k] = bare_duplicate(m->id);
      if (rc == ERR_OK && res[k] == NULL) rc = ERR_NOMEM;
    } else {
      rc = push_apply(&env, m, &res[k]);
      if (rc == ERR_OK) last = m->id;
    }
    if (rc != ERR_OK) break;
  }
  for (size_t i = 0; i < k; i++) sync_count_result(h, res[i]->status);
  if (k == 0) {
    handler_reply_error(reply, rc, "apply the mutations");
  } else {
    metrics_inc(h->m.pushes);
    reply_push(reply, last, res, k);
  }
out:
  for (size_t i = 0; res != NULL && i < k; i++)
    sync__v1__mutation_result__free_unpacked(res[i], NULL);
  free(res);
  sync__v1__push_request__free_unpacked(req, NULL);
}

/* -------------------------------------------------------- conflicts --- */

/* r as a ConflictRecord; *cc and *so are unpacked (the caller frees). */
static bool conflict_pb(const store_conflict *r, Sync__V1__ConflictRecord *pb,
                        Sync__V1__ClientChange **cc, Orders__V1__Order **so) {
  *cc = sync__v1__client_change__unpack(NULL, r->client_len, r->client);
  *so = orders__v1__order__unpack(NULL, r->server_len, r->server);
  sync__v1__conflict_record__init(pb);
  pb->id = (char *)r->id;
  pb->device_id = (char *)r->device_id;
  pb->mutation_id = r->mutation_id;
  pb->entity = (char *)r->entity;
  pb->entity_id = (char *)r->entity_id;
  pb->client = *cc;
  pb->server = *so;
  pb->created_at = (char *)r->created_at;
  return *cc != NULL && *so != NULL;
}

void sync_list_conflicts(void *arg, const rpc_call *call, rpc_reply *reply) {
  sync *h = arg;
  store_conflict *rows = NULL;
  Sync__V1__ConflictRecord *pbs = NULL, **ptrs = NULL;
  Sync__V1__ClientChange **ccs = NULL;
  Orders__V1__Order **sos = NULL;
  size_t n = 0;
  HANDLER_UNPACK(Sync__V1__ListConflictsRequest,
                 sync__v1__list_conflicts_request, req, 0);
  paseto_claims cl;
  if (!sync_member(h, call, reply, &cl)) goto out;
  rows = calloc(STORE_CONFLICTS_MAX, sizeof *rows);
  pbs = calloc(STORE_CONFLICTS_MAX, sizeof *pbs);
  ptrs = calloc(STORE_CONFLICTS_MAX, sizeof *ptrs);
  ccs = calloc(STORE_CONFLICTS_MAX, sizeof *ccs);
  sos = calloc(STORE_CONFLICTS_MAX, sizeof *sos);
  if (rows == NULL || pbs == NULL || ptrs == NULL || ccs == NULL ||
      sos == NULL) {
    rpc_reply_status(reply, RPC_RESOURCE_EXHAUSTED, "out of memory");
    goto out;
  }
  int rc =
      store_conflicts_list(h->c.store, cl.tid, rows, STORE_CONFLICTS_MAX, &n);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "list the conflicts");
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    if (!conflict_pb(&rows[i], &pbs[i], &ccs[i], &sos[i])) {
      handler_reply_error(reply, ERR_PROTO, "read the conflicts");
      goto out;
    }
    ptrs[i] = &pbs[i];
  }
  Sync__V1__ListConflictsResponse resp =
      SYNC__V1__LIST_CONFLICTS_RESPONSE__INIT;
  resp.n_conflicts = n;
  resp.conflicts = ptrs;
  handler_reply_message(reply, &resp.base);
out:
  for (size_t i = 0; i < n; i++) {
    if (ccs != NULL && ccs[i] != NULL)
      sync__v1__client_change__free_unpacked(ccs[i], NULL);
    if (sos != NULL && sos[i] != NULL)
      orders__v1__order__free_unpacked(sos[i], NULL);
  }
  store_conflicts_free(rows, n);
  free(rows);
  free(pbs);
  free(ptrs);
  free(ccs);
  free(sos);
  sync__v1__list_conflicts_request__free_unpacked(req, NULL);
}

/* Calls orders' method with req as the resolving member (their token). */
static rpc_result *orders_call(sync *h, const rpc_call *call,
                               const char *method,
                               const ProtobufCMessage *req) {
  rpc_call_options co = RPC_CALL_OPTIONS_INIT;
  co.deadline_ms = PUSH_ORDERS_DEADLINE_MS;
  co.tenant_id = call->tenant_id;
  co.token = call->token;
  rpc_result *r = NULL;
  if (rpc_client_call_message(h->c.orders, method, req, &co, &r) != ERR_OK)
    return NULL;
  return r;
}

/* The order in orders' answer r (freed here; every order call answers
 * {order}, as GetOrderResponse), or NULL with the reply set: orders' own
 * error, or UNAVAILABLE with message when orders did not answer. */
static Orders__V1__Order *order_of(rpc_result *r, rpc_reply *reply,
                                   const char *message) {
  Orders__V1__Order *o = NULL;
  if (r != NULL && r->code == RPC_OK) {
    Orders__V1__GetOrderResponse *gr = orders__v1__get_order_response__unpack(
        NULL, r->payload_len, r->payload);
    if (gr != NULL) {
      o = gr->order;
      gr->order = NULL;
      orders__v1__get_order_response__free_unpacked(gr, NULL);
    }
  }
  if (o == NULL) {
    if (r != NULL && r->code != RPC_OK)
      rpc_reply_status(reply, r->code, "%s", r->message);
    else
      rpc_reply_status(reply, RPC_UNAVAILABLE, "%s", message);
  }
  rpc_result_free(r);
  return o;
}

/* The order now (GetOrder), or NULL with the reply set. */
static Orders__V1__Order *current_order(sync *h, const rpc_call *call,
                                        rpc_reply *reply, const char *id) {
  Orders__V1__GetOrderRequest g = ORDERS__V1__GET_ORDER_REQUEST__INIT;
  g.id = (char *)id;
  rpc_result *r = orders_call(h, call, "orders.v1.Orders/GetOrder", &g.base);
  return order_of(r, reply, "cannot read the order now");
}

/* Applies status to order id from version (the client's or merged
 * choice): UpdateOrderStatus, or CancelOrder for "cancelled". The new
 * order, or NULL with the reply set (orders' refusal passed on). */
static Orders__V1__Order *apply_choice(sync *h, const rpc_call *call,
                                       rpc_reply *reply, const char *id,
                                       const char *status, int64_t version) {
  bool cancel = strcmp(status, "cancelled") == 0;
  json_t *j = json_pack("{s:s, s:I}", "id", id, "version", (json_int_t)version);
  if (j != NULL && !cancel)
    json_object_set_new(j, "status", json_string(status));
  const pbjson_opts opts = {.enum_style = PBJSON_ENUM_SHORT_LOWER};
  ProtobufCMessage *m = NULL;
  pbjson_error e;
  int rc =
      j != NULL
          ? pbjson_decode_value(
                cancel ? &orders__v1__cancel_order_request__descriptor
                       : &orders__v1__update_order_status_request__descriptor,
                j, &opts, &m, &e)
          : ERR_NOMEM;
  json_decref(j);
  if (rc != ERR_OK) {
    handler_reply_field(reply, RPC_INVALID_ARGUMENT, "invalid resolution",
                        "merged.status", "is not an order status");
    return NULL;
  }
  rpc_result *r = orders_call(h, call,
                              cancel ? "orders.v1.Orders/CancelOrder"
                                     : "orders.v1.Orders/UpdateOrderStatus",
                              m);
  pbjson_free(m);
  return order_of(r, reply, "cannot change the order now");
}

void sync_resolve_conflict(void *arg, const rpc_call *call, rpc_reply *reply) {
  sync *h = arg;
  store_conflict c = {0};
  Sync__V1__ClientChange *cc = NULL;
  Orders__V1__Order *now = NULL, *done = NULL;
  HANDLER_UNPACK(Sync__V1__ResolveConflictRequest,
                 sync__v1__resolve_conflict_request, req, 0);
  paseto_claims cl;
  char id[UUID_STR_LEN + 1];
  if (!sync_member(h, call, reply, &cl) ||
      handler_uuid_arg(reply, "id", req->id, id) != ERR_OK)
    goto out;
  const char *choice = req->choice;
  bool merged = strcmp(choice, "merged") == 0;
  if (strcmp(choice, "server") != 0 && strcmp(choice, "client") != 0 &&
      !merged) {
    handler_reply_field(reply, RPC_INVALID_ARGUMENT, "invalid resolution",
                        "choice", "must be server, client or merged");
    goto out;
  }
  if (merged && (req->merged == NULL || req->merged->status[0] == '\0')) {
    handler_reply_field(reply, RPC_INVALID_ARGUMENT, "invalid resolution",
                        "merged.status", "is required with merged");
    goto out;
  }
  int rc = store_conflict_get(h->c.store, cl.tid, id, &c);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "read the conflict");
    goto out;
  }
  cc = sync__v1__client_change__unpack(NULL, c.client_len, c.client);
  if (cc == NULL) {
    handler_reply_error(reply, ERR_PROTO, "read the conflict");
    goto out;
  }
  now = current_order(h, call, reply, c.entity_id);
  if (now == NULL) goto out;
  if (strcmp(choice, "server") != 0) {
    done =
        apply_choice(h, call, reply, c.entity_id,
                     merged ? req->merged->status : cc->status, now->version);
    if (done == NULL) goto out;
  }
  rc = store_conflict_resolve(h->c.store, cl.tid, id, choice);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "resolve the conflict");
    goto out;
  }
  log_info("conflict resolved", "tenant_id", cl.tid, "conflict_id", id,
           "choice", choice, "by", cl.sub);
  Sync__V1__ResolveConflictResponse resp =
      SYNC__V1__RESOLVE_CONFLICT_RESPONSE__INIT;
  resp.order = done != NULL ? done : now;
  handler_reply_message(reply, &resp.base);
out:
  if (cc != NULL) sync__v1__client_change__free_unpacked(cc, NULL);
  if (now != NULL) orders__v1__order__free_unpacked(now, NULL);
  if (done != NULL) orders__v1__order__free_unpacked(done, NULL);
  store_conflicts_free(&c, 1);
  sync__v1__resolve_conflict_request__free_unpacked(req, NULL);
}

/* --------------------------------------------------------- settings --- */

static void reply_settings(rpc_reply *reply, const char *policy, bool update) {
  Sync__V1__Settings s = SYNC__V1__SETTINGS__INIT;
  s.conflict_policy = (char *)policy;
  if (update) {
    Sync__V1__UpdateSettingsResponse resp =
        SYNC__V1__UPDATE_SETTINGS_RESPONSE__INIT;
    resp.settings = &s;
    handler_reply_message(reply, &resp.base);
  } else {
    Sync__V1__GetSettingsResponse resp = SYNC__V1__GET_SETTINGS_RESPONSE__INIT;
    resp.settings = &s;
    handler_reply_message(reply, &resp.base);
  }
}

void sync_get_settings(void *arg, const rpc_call *call, rpc_reply *reply) {
  sync *h = arg;
  HANDLER_UNPACK(Sync__V1__GetSettingsRequest, sync__v1__get_settings_request,
                 req, 0);
  paseto_claims cl;
  char policy[STORE_POLICY_MAX + 1];
  if (!sync_member(h, call, reply, &cl)) goto out;
  int rc = store_policy_get(h->c.store, cl.tid, policy);
  if (rc != ERR_OK)
    handler_reply_error(reply, rc, "read the settings");
  else
    reply_settings(reply, policy, false);
out:
  sync__v1__get_settings_request__free_unpacked(req, NULL);
}

void sync_update_settings(void *arg, const rpc_call *call, rpc_reply *reply) {
  sync *h = arg;
  HANDLER_UNPACK(Sync__V1__UpdateSettingsRequest,
                 sync__v1__update_settings_request, req, 0);
  paseto_claims cl;
  if (!sync_member(h, call, reply, &cl)) goto out;
  const char *p = req->conflict_policy;
  if (strcmp(p, "server_wins") != 0 && strcmp(p, "last_write_wins") != 0 &&
      strcmp(p, "manual") != 0) {
    handler_reply_field(reply, RPC_INVALID_ARGUMENT, "invalid settings",
                        "conflict_policy",
                        "must be server_wins, last_write_wins or manual");
    goto out;
  }
  int rc = store_policy_set(h->c.store, cl.tid, p);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "update the settings");
    goto out;
  }
  log_info("sync settings changed", "tenant_id", cl.tid, "conflict_policy", p,
           "by", cl.sub);
  reply_settings(reply, p, true);
out:
  sync__v1__update_settings_request__free_unpacked(req, NULL);
}
