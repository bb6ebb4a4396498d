/*
 * handlers.c - "notifications.v1.Notifications/..." (see handlers.h).
 *
 * Every handler has the same shape, with libs/svc's handler.h steps:
 * unpack the request (exactly one free_unpacked on every path, through
 * the single `out:` label), check the caller (authn_check_call with
 * handler_min_rank: the role comes from the method's (rpc.v1.access)
 * declaration, never from a constant here), validate, call the store,
 * answer. Input errors become INVALID_ARGUMENT with one field violation
 * per bad field, so a client fixes them all at once. Database failures
 * become the status of rpc_code_from_err with a generic message
 * (handler_reply_error): the detail goes to the log, never to the caller.
 * The tenant is always the verified token's tid, never a request field.
 */
#include "services/notifications/handlers.h"

#include <stdlib.h>
#include <string.h>

#include "libs/authn/authn_caller.h"
#include "libs/base/utf8.h"
#include "libs/base/vlist.h"
#include "libs/svc/handler.h"
#include "proto/notifications/v1/notifications.pb-c.h"

#define PING_MESSAGE_MAX 200 /* bytes */

struct notifications {
  notifications_config c;
};

static void item_pb(const store_item *s, Notifications__V1__Item *pb) {
  notifications__v1__item__init(pb);
  pb->id = (char *)s->id;
  pb->name = (char *)s->name;
  pb->created_at = (char *)s->created_at;
}

/* ----------------------------------------------------------- methods --- */

/* Public (USER_ANONYMOUS for the gateway): no token to check. */
static void ping(void *arg, const rpc_call *call, rpc_reply *reply) {
  (void)arg;
  HANDLER_UNPACK(Notifications__V1__PingRequest, notifications__v1__ping_request, req, 0);
  if (strlen(req->message) > PING_MESSAGE_MAX) {
    handler_reply_field(reply, RPC_INVALID_ARGUMENT, "invalid ping",
                        "message", "is too long");
    goto out;
  }
  Notifications__V1__PingResponse resp = NOTIFICATIONS__V1__PING_RESPONSE__INIT;
  resp.message = req->message;
  resp.service = "notifications";
  handler_reply_message(reply, &resp.base);
out:
  notifications__v1__ping_request__free_unpacked(req, NULL);
}

static void create_item(void *arg, const rpc_call *call, rpc_reply *reply) {
  notifications *h = arg;
  HANDLER_UNPACK(Notifications__V1__CreateItemRequest,
                 notifications__v1__create_item_request, req, 0);
  paseto_claims cl;
  if (authn_check_call(h->c.verifier, call, handler_min_rank(call), &cl,
                       reply) != ERR_OK)
    goto out;
  vlist v;
  vlist_init(&v);
  const char *why = NULL;
  if (utf8_check_text(req->name, 1, 100, 0, &why) != ERR_OK)
    vlist_add(&v, why, "name");
  if (v.n > 0) {
    handler_reply_invalid(reply, "invalid item", &v);
    goto out;
  }
  store_item s;
  int rc = store_create_item(h->c.store, cl.tid, req->name, &s);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "create the item");
    goto out;
  }
  Notifications__V1__Item pb;
  item_pb(&s, &pb);
  Notifications__V1__CreateItemResponse resp =
      NOTIFICATIONS__V1__CREATE_ITEM_RESPONSE__INIT;
  resp.item = &pb;
  handler_reply_message(reply, &resp.base);
out:
  notifications__v1__create_item_request__free_unpacked(req, NULL);
}

static void get_item(void *arg, const rpc_call *call, rpc_reply *reply) {
  notifications *h = arg;
  HANDLER_UNPACK(Notifications__V1__GetItemRequest, notifications__v1__get_item_request,
                 req, 0);
  paseto_claims cl;
  if (authn_check_call(h->c.verifier, call, handler_min_rank(call), &cl,
                       reply) != ERR_OK)
    goto out;
  char id[UUID_STR_LEN + 1];
  if (handler_uuid_arg(reply, "id", req->id, id) != ERR_OK)
    goto out;
  store_item s;
  int rc = store_get_item(h->c.store, cl.tid, id, &s);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "read the item");
    goto out;
  }
  Notifications__V1__Item pb;
  item_pb(&s, &pb);
  Notifications__V1__GetItemResponse resp = NOTIFICATIONS__V1__GET_ITEM_RESPONSE__INIT;
  resp.item = &pb;
  handler_reply_message(reply, &resp.base);
out:
  notifications__v1__get_item_request__free_unpacked(req, NULL);
}

/* ------------------------------------------------------------- set-up --- */

int notifications_new(const notifications_config *cfg, notifications **out) {
  *out = NULL;
  if (cfg == NULL || cfg->store == NULL || cfg->verifier == NULL)
    return ERR_INVAL;
  notifications *h = calloc(1, sizeof *h);
  if (h == NULL)
    return ERR_NOMEM;
  h->c = *cfg;
  *out = h;
  return ERR_OK;
}

void notifications_free(notifications *h) { free(h); }

int notifications_register(notifications *h, rpc_server *srv) {
  static const handler_method table[] = {
      {NOTIFICATIONS_METHOD("Ping"), ping},
      {NOTIFICATIONS_METHOD("CreateItem"), create_item},
      {NOTIFICATIONS_METHOD("GetItem"), get_item},
  };
  return handler_register(srv, table, sizeof table / sizeof table[0], h);
}
