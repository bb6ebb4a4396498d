/*
 * push.c - applying one mutation through orders (see push.h for the
 * exactly-once design). The mutation's args (canonical JSON text) become
 * the orders request with libs/pbjson, so they are checked exactly as the
 * HTTP call's body would be, and a refusal is the error that call gives.
 */
#include "services/sync/push.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "libs/obs/log.h"
#include "libs/obs/metrics.h"
#include "libs/pbjson/pbjson.h"
#include "libs/rpc/rpc_status.h"
#include "proto/orders/v1/orders.pb-c.h"
#include "services/sync/hlc.h"

#define ERROR_MAX 300

static const pbjson_opts kOpts = {.enum_style = PBJSON_ENUM_SHORT_LOWER};

/* What one mutation turned into, before it is serialised. */
typedef struct outcome {
  const char *status; /* applied | rejected | conflict */
  char error[ERROR_MAX + 64];
  Orders__V1__Order *order; /* applied: the order; conflict: the server's */
  bool transient;           /* could not decide now: record nothing */
  /* The orders call to make (NULL method: refused before any call). */
  const char *method;
  ProtobufCMessage *req;
  Sync__V1__ClientChange client; /* update/cancel: what the device asked */
  char client_status[16];
} outcome;

void push_args_hash(const char *text, char out[65]) {
  uint8_t h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, (const unsigned char *)text, strlen(text));
  sodium_bin2hex(out, 65, h, sizeof h);
}

static void reject(outcome *o, const char *code, const char *msg) {
  o->status = "rejected";
  snprintf(o->error, sizeof o->error, "%s: %s", code, msg);
}

/* The first pbjson error as a rejection. */
static void reject_json(outcome *o, const pbjson_error *e) {
  char msg[ERROR_MAX];
  if (e->count > 0)
    snprintf(msg, sizeof msg, "args.%s: %s", e->errors[0].path,
             e->errors[0].description);
  else
    snprintf(msg, sizeof msg, "invalid args");
  reject(o, "INVALID_ARGUMENT", msg);
}

/* Takes the string member key of args out (it must be a string) into
 * out; false (and a rejection) when absent or not a string. */
static bool take_string(outcome *o, json_t *args, const char *key, char *out,
                        size_t cap) {
  json_t *v = json_object_get(args, key);
  if (!json_is_string(v) || json_string_length(v) >= cap) {
    char msg[96];
    snprintf(msg, sizeof msg, "args.%s: is required (a string)", key);
    reject(o, "INVALID_ARGUMENT", msg);
    return false;
  }
  str_copy(out, json_string_value(v), cap);
  json_object_del(args, key);
  return true;
}

static bool take_version(outcome *o, json_t *args, int64_t *out) {
  json_t *v = json_object_get(args, "base_version");
  if (!json_is_integer(v) || json_integer_value(v) < 1) {
    reject(o, "INVALID_ARGUMENT",
           "args.base_version: is required (an integer >= 1)");
    return false;
  }
  *out = json_integer_value(v);
  json_object_del(args, "base_version");
  return true;
}

/* createOrder: args as POST /v1/orders plus the client's order_id. */
static void build_create(outcome *o, json_t *args) {
  char id[UUID_STR_LEN + 2];
  if (json_object_get(args, "id") != NULL) {
    reject(o, "INVALID_ARGUMENT", "args.id: unknown field (use order_id)");
    return;
  }
  if (!take_string(o, args, "order_id", id, sizeof id)) return;
  pbjson_error e;
  ProtobufCMessage *m = NULL;
  if (pbjson_decode_value(&orders__v1__create_order_request__descriptor, args,
                          &kOpts, &m, &e) != ERR_OK) {
    reject_json(o, &e);
    return;
  }
  Orders__V1__CreateOrderRequest *r = (Orders__V1__CreateOrderRequest *)m;
  free(r->id == protobuf_c_empty_string ? NULL : r->id);
  r->id = strdup(id);
  if (r->id == NULL) {
    pbjson_free(m);
    o->transient = true;
    return;
  }
  o->method = "orders.v1.Orders/CreateOrder";
  o->req = m;
}

/* updateOrderStatus {order_id, status, base_version} and cancelOrder
 * {order_id, base_version}: the orders request from {id, status?,
 * version}, so enum names and bounds are checked by pbjson. */
static void build_change(outcome *o, json_t *args, bool cancel) {
  char id[UUID_STR_LEN + 2];
  int64_t version = 0;
  if (!take_string(o, args, "order_id", id, sizeof id) ||
      !take_version(o, args, &version))
    return;
  json_t *status = json_object_get(args, "status");
  if (!cancel)
    str_copy(o->client_status,
             json_is_string(status) ? json_string_value(status) : "",
             sizeof o->client_status);
  else
    str_copy(o->client_status, "cancelled", sizeof o->client_status);
  json_t *req = json_deep_copy(args); /* what is left: status, or nothing */
  if (req == NULL || json_object_set_new(req, "id", json_string(id)) != 0 ||
      json_object_set_new(req, "version", json_integer(version)) != 0) {
    json_decref(req);
    o->transient = true;
    return;
  }
  const ProtobufCMessageDescriptor *d =
      cancel ? &orders__v1__cancel_order_request__descriptor
             : &orders__v1__update_order_status_request__descriptor;
  pbjson_error e;
  ProtobufCMessage *m = NULL;
  int rc = pbjson_decode_value(d, req, &kOpts, &m, &e);
  json_decref(req);
  if (rc != ERR_OK) {
    reject_json(o, &e);
    return;
  }
  o->method = cancel ? "orders.v1.Orders/CancelOrder"
                     : "orders.v1.Orders/UpdateOrderStatus";
  o->req = m;
  sync__v1__client_change__init(&o->client);
  o->client.order_id = ((Orders__V1__CancelOrderRequest *)m)->id;
  o->client.status = o->client_status;
  o->client.base_version = version;
}

/* The mutation into the orders request (o->method, o->req), or a
 * rejection. */
static void build(outcome *o, const Sync__V1__Mutation *m) {
  if (m->hash[0] != '\0') {
    char want[65];
    push_args_hash(m->args, want);
    if (strlen(m->hash) != 64 || strcasecmp(m->hash, want) != 0) {
      reject(o, "INVALID_ARGUMENT",
             "hash: does not match the arguments (corrupted in transit)");
      return;
    }
  }
  json_error_t je;
  json_t *args = json_loads(m->args, JSON_REJECT_DUPLICATES, &je);
  if (!json_is_object(args)) {
    reject(o, "INVALID_ARGUMENT", "args: must be a JSON object");
  } else if (strcmp(m->name, "createOrder") == 0) {
    build_create(o, args);
  } else if (strcmp(m->name, "updateOrderStatus") == 0) {
    build_change(o, args, false);
  } else if (strcmp(m->name, "cancelOrder") == 0) {
    build_change(o, args, true);
  } else {
    reject(o, "INVALID_ARGUMENT", "name: is not a mutation this server knows");
  }
  json_decref(args);
}

static rpc_result *call_orders(const push_env *env, const char *method,
                               const ProtobufCMessage *req, const char *key) {
  rpc_call_options co = RPC_CALL_OPTIONS_INIT;
  co.deadline_ms = PUSH_ORDERS_DEADLINE_MS;
  co.idempotent = key != NULL; /* the key makes a second run a replay */
  co.tenant_id = env->tid;
  co.token = env->token;
  co.idempotency_key = key;
  rpc_result *r = NULL;
  if (rpc_client_call_message(env->orders, method, req, &co, &r) != ERR_OK)
    return NULL;
  return r;
}

static bool has_violation(const rpc_result *r, const char *field) {
  for (size_t i = 0; i < r->nviolations; i++)
    if (strcmp(r->violations[i].field, field) == 0) return true;
  return false;
}

/* Every orders answer carries {order = 1}: read it as GetOrderResponse. */
static Orders__V1__Order *order_of(const rpc_result *r) {
  Orders__V1__GetOrderResponse *g =
      orders__v1__get_order_response__unpack(NULL, r->payload_len, r->payload);
  if (g == NULL) return NULL;
  Orders__V1__Order *o = g->order;
  g->order = NULL;
  orders__v1__get_order_response__free_unpacked(g, NULL);
  return o;
}

/* sync_conflicts_total{policy, resolution}: each stale base_version
 * detected, by the tenant's policy and what came of it - "server" (the
 * server's version stands), "client" (last_write_wins: the device's later
 * clock applied over it), "manual" (kept for the conflicts API). Rare:
 * the child is looked up per conflict. */
static void count_conflict(const char *policy, const char *resolution) {
  static const char *const labels[] = {"policy", "resolution"};
  metrics_family *f = metrics_counter(
      "sync_conflicts_total",
      "pushed changes made from a stale version, by policy and resolution", 2,
      labels);
  const char *values[] = {policy, resolution};
  if (f != NULL) metrics_inc(metrics_child_get(f, values));
}

/* The server's order for a conflict's answer. */
static void conflict(const push_env *env, outcome *o, const char *id) {
  Orders__V1__GetOrderRequest g = ORDERS__V1__GET_ORDER_REQUEST__INIT;
  g.id = (char *)id;
  rpc_result *r = call_orders(env, "orders.v1.Orders/GetOrder", &g.base, NULL);
  if (r != NULL && r->code == RPC_OK) o->order = order_of(r);
  if (o->order == NULL)
    o->transient = true;
  else
    o->status = "conflict";
  rpc_result_free(r);
}

/* The clock of the server's order: the one sync recorded for the write
 * that made its current version, else (a write through the API) its
 * updated_at, counter 0, node "server". */
static void server_clock(const push_env *env, const Orders__V1__Order *ord,
                         hlc *out) {
  char text[HLC_TEXT_MAX + 1];
  int64_t version = 0;
  if (store_clock_get(env->st, env->tid, "order", ord->id, &version, text,
                      sizeof text) == ERR_OK &&
      version == ord->version && hlc_parse(text, out) == ERR_OK)
    return;
  memset(out, 0, sizeof *out);
  if (time_parse_rfc3339(ord->updated_at, strlen(ord->updated_at),
                         &out->wall_ms) != ERR_OK)
    out->wall_ms = INT64_MAX; /* unknown: the server keeps it */
  str_copy(out->node, "server", sizeof out->node);
}

/* last_write_wins: the device's change is later than the server's last
 * write by their clocks. A client_time that is no HLC loses. */
static bool client_later(const push_env *env, const Sync__V1__Mutation *m,
                         const Orders__V1__Order *ord) {
  hlc c, sv;
  if (hlc_parse(m->client_time, &c) != ERR_OK) return false;
  server_clock(env, ord, &sv);
  return hlc_compare(&c, &sv) > 0;
}

static void read_answer(const push_env *env, const Sync__V1__Mutation *m,
                        outcome *o, rpc_result *r, bool lww);

/* The device won by its clock: the change again on top of the server's
 * version, under a key of its own per version (a retry after a crash
 * replays it; a race with yet another write is a conflict again). */
static void apply_over(const push_env *env, const Sync__V1__Mutation *m,
                       outcome *o) {
  const ProtobufCFieldDescriptor *f =
      protobuf_c_message_descriptor_get_field_by_name(o->req->descriptor,
                                                      "version");
  if (f == NULL || f->type != PROTOBUF_C_TYPE_INT64) return; /* createOrder */
  int64_t v = o->order->version;
  *(int64_t *)((char *)o->req + f->offset) = v;
  orders__v1__order__free_unpacked(o->order, NULL);
  o->order = NULL;
  char key[128];
  snprintf(key, sizeof key, "device:%s:%lld:lww:%lld", env->did,
           (long long)m->id, (long long)v);
  read_answer(env, m, o, call_orders(env, o->method, o->req, key), true);
}

/* Calls orders and reads the answer into o. */
static void run_call(const push_env *env, const Sync__V1__Mutation *m,
                     outcome *o) {
  char key[96];
  snprintf(key, sizeof key, "device:%s:%lld", env->did, (long long)m->id);
  read_answer(env, m, o, call_orders(env, o->method, o->req, key), false);
}

/* Reads orders' answer r (freed here) into o; lww: r is the answer of
 * apply_over (a second conflict stays one). */
static void read_answer(const push_env *env, const Sync__V1__Mutation *m,
                        outcome *o, rpc_result *r, bool lww) {
  int code = r != NULL ? r->code : RPC_UNAVAILABLE;
  if (code == RPC_OK) {
    o->order = order_of(r);
    o->status = "applied";
    if (o->order == NULL) o->transient = true;
  } else if (code == RPC_ABORTED && has_violation(r, "version")) {
    conflict(env, o, o->client.order_id);
    bool manual = strcmp(env->policy, "manual") == 0;
    if (!lww && o->order != NULL &&
        strcmp(env->policy, "last_write_wins") == 0 &&
        client_later(env, m, o->order)) {
      count_conflict(env->policy, "client");
      rpc_result_free(r);
      apply_over(env, m, o);
      return;
    }
    if (!lww && o->order != NULL)
      count_conflict(env->policy, manual ? "manual" : "server");
  } else if (code == RPC_UNAVAILABLE || code == RPC_DEADLINE_EXCEEDED ||
             code == RPC_ABORTED || code == RPC_INTERNAL ||
             code == RPC_UNKNOWN || code == RPC_RESOURCE_EXHAUSTED) {
    o->transient = true; /* ABORTED here: the same key still running */
  } else {
    char msg[ERROR_MAX];
    if (r->nviolations > 0)
      snprintf(msg, sizeof msg, "%s (%s: %s)", r->message,
               r->violations[0].field, r->violations[0].description);
    else
      snprintf(msg, sizeof msg, "%s", r->message);
    reject(o, rpc_code_name(code), msg);
  }
  if (o->transient)
    log_warn("mutation not applied now", "device_id", env->did, "code",
             rpc_code_name(code));
  rpc_result_free(r);
}

/* The result message of o (pointers into o and m). */
static void result_of(const outcome *o, const Sync__V1__Mutation *m,
                      Sync__V1__MutationResult *res, Sync__V1__Conflict *c) {
  sync__v1__mutation_result__init(res);
  res->id = m->id;
  res->status = (char *)o->status;
  res->error = (char *)o->error;
  if (o->order != NULL && strcmp(o->status, "applied") == 0) {
    res->server_id = o->order->id;
    res->version_present_case =
        SYNC__V1__MUTATION_RESULT__VERSION_PRESENT_VERSION;
    res->version = o->order->version;
  }
  if (o->order != NULL && strcmp(o->status, "conflict") == 0) {
    sync__v1__conflict__init(c);
    c->server_version = o->order->version;
    c->server = o->order;
    res->server_id = o->order->id;
    res->conflict = c;
  }
}

/* Serialises msg (malloc'd into *buf). */
static int pack(const ProtobufCMessage *msg, uint8_t **buf, size_t *len) {
  *len = protobuf_c_message_get_packed_size(msg);
  *buf = malloc(*len ? *len : 1);
  if (*buf == NULL) return ERR_NOMEM;
  protobuf_c_message_pack(msg, *buf);
  return ERR_OK;
}

/* Records o as mutation m's result; *out the recorded result (ours, or
 * the one a concurrent push recorded first). */
static int record(const push_env *env, const Sync__V1__Mutation *m,
                  const outcome *o, Sync__V1__MutationResult **out) {
  Sync__V1__MutationResult res;
  Sync__V1__Conflict c;
  result_of(o, m, &res, &c);
  uint8_t *buf = NULL, *cbuf = NULL, *sbuf = NULL;
  size_t len = 0, clen = 0, slen = 0;
  store_conflict_new keep = {0};
  bool manual =
      strcmp(o->status, "conflict") == 0 && strcmp(env->policy, "manual") == 0;
  int rc = pack(&res.base, &buf, &len);
  if (rc == ERR_OK && manual) {
    rc = pack(&o->client.base, &cbuf, &clen);
    if (rc == ERR_OK) rc = pack(&o->order->base, &sbuf, &slen);
    keep = (store_conflict_new){.entity = "order",
                                .entity_id = o->order->id,
                                .client = cbuf,
                                .client_len = clen,
                                .server = sbuf,
                                .server_len = slen};
  }
  /* An applied change with an HLC: its clock, for later LWW decisions. */
  hlc h;
  char text[HLC_TEXT_MAX + 1];
  store_clock clock = {0};
  bool clocked = o->order != NULL && strcmp(o->status, "applied") == 0 &&
                 hlc_parse(m->client_time, &h) == ERR_OK &&
                 hlc_format(&h, text) == ERR_OK;
  if (clocked)
    clock = (store_clock){.entity = "order",
                          .entity_id = o->order->id,
                          .hlc = text,
                          .version = o->order->version};
  bool recorded = false;
  if (rc == ERR_OK)
    rc = store_mutation_record(env->st, env->tid, env->did, m->id, m->name,
                               o->status, buf, len, manual ? &keep : NULL,
                               clocked ? &clock : NULL, &recorded);
  if (rc == ERR_OK && !recorded) {
    free(buf);
    buf = NULL;
    rc = store_mutation_get(env->st, env->tid, env->did, m->id, &buf, &len);
  }
  if (rc == ERR_OK) {
    *out = sync__v1__mutation_result__unpack(NULL, len, buf);
    if (*out == NULL) rc = ERR_PROTO;
  }
  free(buf);
  free(cbuf);
  free(sbuf);
  return rc;
}

int push_apply(const push_env *env, const Sync__V1__Mutation *m,
               Sync__V1__MutationResult **out) {
  *out = NULL;
  outcome o;
  memset(&o, 0, sizeof o);
  build(&o, m);
  if (!o.transient && o.method != NULL) run_call(env, m, &o);
  int rc = o.transient ? ERR_UNAVAILABLE : record(env, m, &o, out);
  if (o.order != NULL) orders__v1__order__free_unpacked(o.order, NULL);
  pbjson_free(o.req);
  return rc;
}

int push_duplicate(const push_env *env, int64_t mid,
                   Sync__V1__MutationResult **out) {
  *out = NULL;
  uint8_t *buf = NULL;
  size_t len = 0;
  int rc = store_mutation_get(env->st, env->tid, env->did, mid, &buf, &len);
  if (rc == ERR_NOTFOUND) return ERR_OK;
  if (rc == ERR_OK) {
    *out = sync__v1__mutation_result__unpack(NULL, len, buf);
    char *dup = strdup("duplicate");
    if (*out == NULL || dup == NULL) {
      free(dup);
      if (*out != NULL) sync__v1__mutation_result__free_unpacked(*out, NULL);
      *out = NULL;
      rc = ERR_NOMEM;
    } else {
      if ((*out)->status != protobuf_c_empty_string) free((*out)->status);
      (*out)->status = dup;
    }
  }
  free(buf);
  return rc;
}
