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
 * The tenant is always the verified token's tid, never a request field; a
 * row of another tenant is NOT_FOUND, exactly like a row that does not
 * exist.
 *
 * Secrets: made and sealed here (seal.h), shown once in the answer of
 * CreateWebhook and RotateWebhookSecret, wiped from memory after.
 *
 * Idempotency-Key (CreateWebhook here, CreateCampaign in
 * campaign_handlers.c): libs/idem/once.h, in the create's transaction;
 * the saved answer - with the webhook's secret - is sealed under a key
 * derived from the request and NOTIFICATIONS_SECRET_KEY, so a replay
 * shows the same secret and the database never holds it readable.
 */
#include "services/notifications/handlers.h"

#include <sodium.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "libs/authn/authn_caller.h"
#include "libs/base/cursor.h"
#include "libs/base/utf8.h"
#include "libs/evdata/evdata.h"
#include "libs/svc/handler.h"
#include "proto/notifications/v1/notifications.pb-c.h"
#include "services/notifications/body.h"
#include "services/notifications/handlers_internal.h"
#include "services/notifications/target.h"

#define PING_MESSAGE_MAX 200 /* bytes */
#define REQUEST_MAX (64 * 1024)
#define DESCRIPTION_CHARS 500

/* ------------------------------------------------------------ rules --- */

void notifications_check_url(const char *url, bool allow_private, vlist *v) {
  target t;
  const char *why = NULL;
  if (target_parse(url, &t, &why) != ERR_OK) {
    vlist_add(v, why, "url");
    return;
  }
  /* Checked again, and pinned, at every send: a name may change. */
  if (!allow_private && target_resolve(&t, false, &why) == ERR_INVAL)
    vlist_add(v, why, "url");
}

void notifications_check_events(char *const *events, size_t n, vlist *v) {
  if (n == 0) {
    vlist_add(v, "is required", "events");
    return;
  }
  if (n > STORE_EVENTS_MAX) {
    vlist_add(v, "must have at most 16 types", "events");
    return;
  }
  for (size_t i = 0; i < n; i++) {
    /* Notification is this service's own event (for realtime), not one
     * of orders' that webhooks carry. */
    if (!evdata_known(events[i]) || strcmp(events[i], "Notification") == 0) {
      vlist_add(v, "is not an event type", "events[%zu]", i);
      continue;
    }
    for (size_t j = 0; j < i; j++)
      if (strcmp(events[i], events[j]) == 0)
        vlist_add(v, "is a duplicate", "events[%zu]", i);
  }
}

static void check_description(const char *d, vlist *v) {
  const char *why = NULL;
  if (utf8_check_text(d, 0, DESCRIPTION_CHARS, UTF8_BLANK_OK, &why) != ERR_OK)
    vlist_add(v, why, "description");
}

/* ------------------------------------------------------------ wire --- */

static void webhook_pb(const store_endpoint *e, Notifications__V1__Webhook *pb,
                       char **events) {
  notifications__v1__webhook__init(pb);
  pb->id = (char *)e->id;
  pb->url = (char *)e->url;
  for (size_t i = 0; i < e->nevents; i++) events[i] = (char *)e->events[i];
  pb->n_events = e->nevents;
  pb->events = events;
  pb->description = (char *)e->description;
  pb->active = e->active;
  pb->created_at = (char *)e->created_at;
}

static void delivery_pb(const store_delivery *d,
                        Notifications__V1__Delivery *pb) {
  notifications__v1__delivery__init(pb);
  pb->id = (char *)d->id;
  pb->event_id = (char *)d->event_id;
  pb->event_type = (char *)d->event_type;
  pb->status = (Notifications__V1__DeliveryStatus)d->status;
  pb->attempts = d->attempts;
  pb->last_status_code = d->last_status_code;
  pb->last_error = (char *)d->last_error;
  pb->next_attempt_at = (char *)d->next_attempt_at;
  pb->created_at = (char *)d->created_at;
  pb->updated_at = (char *)d->updated_at;
}

/* The caller, checked against the method's declared role. */
static bool caller(notifications *h, const rpc_call *call, rpc_reply *reply,
                   paseto_claims *cl) {
  return authn_check_call(h->c.verifier, call, handler_min_rank(call), cl,
                          reply) == ERR_OK;
}

/* A new secret: its text into text, sealed into box. */
static void new_secret(notifications *h, char text[SEAL_SECRET_TEXT_MAX + 1],
                       seal_box *box) {
  unsigned char raw[SEAL_SECRET_BYTES];
  seal_secret_new(raw, text);
  seal_close(h->c.key, raw, box);
  sodium_memzero(raw, sizeof raw);
}

/* ----------------------------------------------------------- methods --- */

/* Public (USER_ANONYMOUS for the gateway): no token to check. */
static void ping(void *arg, const rpc_call *call, rpc_reply *reply) {
  (void)arg;
  HANDLER_UNPACK(Notifications__V1__PingRequest,
                 notifications__v1__ping_request, req, 0);
  if (strlen(req->message) > PING_MESSAGE_MAX) {
    handler_reply_field(reply, RPC_INVALID_ARGUMENT, "invalid ping", "message",
                        "is too long");
    goto out;
  }
  Notifications__V1__PingResponse resp = NOTIFICATIONS__V1__PING_RESPONSE__INIT;
  resp.message = req->message;
  resp.service = "notifications";
  handler_reply_message(reply, &resp.base);
out:
  notifications__v1__ping_request__free_unpacked(req, NULL);
}

#define SAME_LAYOUT(T)                                                         \
  _Static_assert(                                                              \
      sizeof(T) == sizeof(Notifications__V1__GetWebhookResponse) &&            \
          offsetof(T, webhook) ==                                              \
              offsetof(Notifications__V1__GetWebhookResponse, webhook),        \
      #T " differs from GetWebhookResponse")
SAME_LAYOUT(Notifications__V1__CreateWebhookResponse);
SAME_LAYOUT(Notifications__V1__UpdateWebhookResponse);

static void reply_endpoint(rpc_reply *reply, const store_endpoint *e,
                           char *secret, const ProtobufCMessageDescriptor *d) {
  char *events[STORE_EVENTS_MAX];
  Notifications__V1__Webhook pb;
  webhook_pb(e, &pb, events);
  if (secret != NULL) pb.secret = secret;
  /* Create, Get and Update answer {Webhook webhook = 1}: one C layout
   * (checked below), so one struct serves under each one's descriptor. */
  Notifications__V1__GetWebhookResponse resp =
      NOTIFICATIONS__V1__GET_WEBHOOK_RESPONSE__INIT;
  resp.base.descriptor = d;
  resp.webhook = &pb;
  handler_reply_message(reply, &resp.base);
}

bool notifications_idem_prepare(notifications *h, const rpc_call *call,
                                const char *tid, const char *sub, idem_once *k,
                                rpc_reply *reply) {
  return idem_once_prepare(k, &h->idem, call, tid, sub, reply);
}

/* CreateWebhook's answer as the key saves it: the webhook (row) with its
 * secret (arg), exactly what reply_endpoint sends. */
static int pack_created_webhook(const void *row, void *arg, uint8_t **out,
                                size_t *len) {
  char *events[STORE_EVENTS_MAX];
  Notifications__V1__Webhook pb;
  webhook_pb(row, &pb, events);
  pb.secret = arg;
  Notifications__V1__CreateWebhookResponse resp =
      NOTIFICATIONS__V1__CREATE_WEBHOOK_RESPONSE__INIT;
  resp.webhook = &pb;
  return idem_once_pack_message(&resp.base, out, len);
}

static void create_webhook(void *arg, const rpc_call *call, rpc_reply *reply) {
  notifications *h = arg;
  idem_once k = {0};
  HANDLER_UNPACK(Notifications__V1__CreateWebhookRequest,
                 notifications__v1__create_webhook_request, req, REQUEST_MAX);
  paseto_claims cl;
  if (!caller(h, call, reply, &cl)) goto out;
  vlist v;
  vlist_init(&v);
  notifications_check_url(req->url, h->c.allow_private, &v);
  notifications_check_events(req->events, req->n_events, &v);
  check_description(req->description, &v);
  if (v.n > 0) {
    handler_reply_invalid(reply, "invalid webhook", &v);
    goto out;
  }
  if (!notifications_idem_prepare(h, call, cl.tid, cl.sub, &k, reply)) goto out;
  char secret[SEAL_SECRET_TEXT_MAX + 1];
  seal_box box;
  new_secret(h, secret, &box);
  store_endpoint_in in = {.url = req->url,
                          .events = (const char *const *)req->events,
                          .nevents = req->n_events,
                          .description = req->description};
  store_endpoint e;
  k.pack = pack_created_webhook;
  k.pack_arg = secret;
  int rc = store_create_endpoint(h->c.store, cl.tid, &in, &box,
                                 h->c.max_endpoints, &k, &e);
  if (idem_once_reply(&k, rc, reply))
    ; /* replayed, refused, or the saved answer sent */
  else if (rc == ERR_TOOBIG)
    handler_reply_field(reply, RPC_FAILED_PRECONDITION, "too many webhooks",
                        "url", "the tenant has the most webhooks allowed");
  else if (rc != ERR_OK)
    handler_reply_error(reply, rc, "create the webhook");
  else
    reply_endpoint(reply, &e, secret,
                   &notifications__v1__create_webhook_response__descriptor);
  sodium_memzero(secret, sizeof secret);
out:
  idem_once_done(&k);
  notifications__v1__create_webhook_request__free_unpacked(req, NULL);
}

static void list_webhooks(void *arg, const rpc_call *call, rpc_reply *reply) {
  notifications *h = arg;
  store_endpoints l = {0};
  Notifications__V1__Webhook *pbs = NULL;
  Notifications__V1__Webhook **ptrs = NULL;
  char *(*events)[STORE_EVENTS_MAX] = NULL;
  HANDLER_UNPACK(Notifications__V1__ListWebhooksRequest,
                 notifications__v1__list_webhooks_request, req, 0);
  paseto_claims cl;
  if (!caller(h, call, reply, &cl)) goto out;
  int rc = store_list_endpoints(h->c.store, cl.tid, h->c.max_endpoints, &l);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "list the webhooks");
    goto out;
  }
  size_t n = l.n ? l.n : 1;
  pbs = calloc(n, sizeof *pbs);
  ptrs = calloc(n, sizeof *ptrs);
  events = calloc(n, sizeof *events);
  if (pbs == NULL || ptrs == NULL || events == NULL) {
    rpc_reply_status(reply, RPC_RESOURCE_EXHAUSTED, "out of memory");
    goto out;
  }
  for (size_t i = 0; i < l.n; i++) {
    webhook_pb(&l.v[i], &pbs[i], events[i]);
    ptrs[i] = &pbs[i];
  }
  Notifications__V1__ListWebhooksResponse resp =
      NOTIFICATIONS__V1__LIST_WEBHOOKS_RESPONSE__INIT;
  resp.n_webhooks = l.n;
  resp.webhooks = ptrs;
  handler_reply_message(reply, &resp.base);
out:
  free(pbs);
  free(ptrs);
  free(events);
  store_endpoints_free(&l);
  notifications__v1__list_webhooks_request__free_unpacked(req, NULL);
}

static void get_webhook(void *arg, const rpc_call *call, rpc_reply *reply) {
  notifications *h = arg;
  HANDLER_UNPACK(Notifications__V1__GetWebhookRequest,
                 notifications__v1__get_webhook_request, req, 0);
  paseto_claims cl;
  char id[UUID_STR_LEN + 1];
  if (!caller(h, call, reply, &cl) ||
      handler_uuid_arg(reply, "id", req->id, id) != ERR_OK)
    goto out;
  store_endpoint e;
  int rc = store_get_endpoint(h->c.store, cl.tid, id, &e);
  if (rc != ERR_OK)
    handler_reply_error(reply, rc, "read the webhook");
  else
    reply_endpoint(reply, &e, NULL,
                   &notifications__v1__get_webhook_response__descriptor);
out:
  notifications__v1__get_webhook_request__free_unpacked(req, NULL);
}

static void update_webhook(void *arg, const rpc_call *call, rpc_reply *reply) {
  notifications *h = arg;
  HANDLER_UNPACK(Notifications__V1__UpdateWebhookRequest,
                 notifications__v1__update_webhook_request, req, REQUEST_MAX);
  paseto_claims cl;
  char id[UUID_STR_LEN + 1];
  if (!caller(h, call, reply, &cl) ||
      handler_uuid_arg(reply, "id", req->id, id) != ERR_OK)
    goto out;
  vlist v;
  vlist_init(&v);
  bool has_url = req->url_present_case ==
                 NOTIFICATIONS__V1__UPDATE_WEBHOOK_REQUEST__URL_PRESENT_URL;
  bool has_desc =
      req->description_present_case ==
      NOTIFICATIONS__V1__UPDATE_WEBHOOK_REQUEST__DESCRIPTION_PRESENT_DESCRIPTION;
  bool has_active =
      req->active_present_case ==
      NOTIFICATIONS__V1__UPDATE_WEBHOOK_REQUEST__ACTIVE_PRESENT_ACTIVE;
  if (has_url) notifications_check_url(req->url, h->c.allow_private, &v);
  if (req->n_events > 0)
    notifications_check_events(req->events, req->n_events, &v);
  if (has_desc) check_description(req->description, &v);
  if (v.n > 0) {
    handler_reply_invalid(reply, "invalid webhook", &v);
    goto out;
  }
  bool active = req->active;
  store_endpoint_in in = {.url = has_url ? req->url : NULL,
                          .events = (const char *const *)req->events,
                          .nevents = req->n_events,
                          .description = has_desc ? req->description : NULL,
                          .active = has_active ? &active : NULL};
  store_endpoint e;
  int rc = store_update_endpoint(h->c.store, cl.tid, id, &in, &e);
  if (rc != ERR_OK)
    handler_reply_error(reply, rc, "update the webhook");
  else
    reply_endpoint(reply, &e, NULL,
                   &notifications__v1__update_webhook_response__descriptor);
out:
  notifications__v1__update_webhook_request__free_unpacked(req, NULL);
}

static void delete_webhook(void *arg, const rpc_call *call, rpc_reply *reply) {
  notifications *h = arg;
  HANDLER_UNPACK(Notifications__V1__DeleteWebhookRequest,
                 notifications__v1__delete_webhook_request, req, 0);
  paseto_claims cl;
  char id[UUID_STR_LEN + 1];
  if (!caller(h, call, reply, &cl) ||
      handler_uuid_arg(reply, "id", req->id, id) != ERR_OK)
    goto out;
  int rc = store_delete_endpoint(h->c.store, cl.tid, id);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "delete the webhook");
    goto out;
  }
  Notifications__V1__DeleteWebhookResponse resp =
      NOTIFICATIONS__V1__DELETE_WEBHOOK_RESPONSE__INIT;
  handler_reply_message(reply, &resp.base);
out:
  notifications__v1__delete_webhook_request__free_unpacked(req, NULL);
}

static void rotate_secret(void *arg, const rpc_call *call, rpc_reply *reply) {
  notifications *h = arg;
  HANDLER_UNPACK(Notifications__V1__RotateWebhookSecretRequest,
                 notifications__v1__rotate_webhook_secret_request, req, 0);
  paseto_claims cl;
  char id[UUID_STR_LEN + 1];
  if (!caller(h, call, reply, &cl) ||
      handler_uuid_arg(reply, "id", req->id, id) != ERR_OK)
    goto out;
  char secret[SEAL_SECRET_TEXT_MAX + 1];
  seal_box box;
  new_secret(h, secret, &box);
  int rc =
      store_rotate_secret(h->c.store, cl.tid, id, &box, h->c.secret_grace_ms);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "rotate the secret");
  } else {
    Notifications__V1__RotateWebhookSecretResponse resp =
        NOTIFICATIONS__V1__ROTATE_WEBHOOK_SECRET_RESPONSE__INIT;
    resp.secret = secret;
    handler_reply_message(reply, &resp.base);
  }
  sodium_memzero(secret, sizeof secret);
out:
  notifications__v1__rotate_webhook_secret_request__free_unpacked(req, NULL);
}

static void test_webhook(void *arg, const rpc_call *call, rpc_reply *reply) {
  notifications *h = arg;
  char *body = NULL;
  HANDLER_UNPACK(Notifications__V1__TestWebhookRequest,
                 notifications__v1__test_webhook_request, req, 0);
  paseto_claims cl;
  char id[UUID_STR_LEN + 1], event_id[UUID_STR_LEN + 1];
  if (!caller(h, call, reply, &cl) ||
      handler_uuid_arg(reply, "id", req->id, id) != ERR_OK)
    goto out;
  uuid u;
  uuid_v7(&u);
  uuid_format(&u, event_id);
  store_job job;
  int rc = body_for_test(event_id, cl.tid, id, uuid_v7_time_ms(&u), &body);
  if (rc == ERR_OK)
    rc = store_test_delivery(h->c.store, cl.tid, id, event_id, body, &job);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "queue the test event");
    goto out;
  }
  (void)queue_push(h->c.queue, &job, 1); /* else the sweep queues it */
  Notifications__V1__TestWebhookResponse resp =
      NOTIFICATIONS__V1__TEST_WEBHOOK_RESPONSE__INIT;
  handler_reply_message(reply, &resp.base);
out:
  free(body);
  notifications__v1__test_webhook_request__free_unpacked(req, NULL);
}

void notifications_page_args(uint32_t limit_in, const char *cursor, vlist *v,
                             size_t *limit, char before[UUID_STR_LEN + 1]) {
  *limit = limit_in == 0 ? LIST_DEFAULT : limit_in;
  if (*limit > LIST_MAX) vlist_add(v, "must be between 1 and 100", "limit");
  before[0] = '\0';
  if (cursor[0] != '\0' && cursor_decode(cursor, before) != ERR_OK)
    vlist_add(v, "is not a cursor of this list", "cursor");
}

/* The query of ListDeliveries, validated; false when the reply is set. */
static bool
deliveries_query(const Notifications__V1__ListDeliveriesRequest *req,
                 rpc_reply *reply, char before[UUID_STR_LEN + 1],
                 size_t *limit) {
  vlist v;
  vlist_init(&v);
  notifications_page_args(req->limit, req->cursor, &v, limit, before);
  if ((int)req->status < 0 || (int)req->status > STORE_DEAD)
    vlist_add(&v, "is not a delivery status", "status");
  if (v.n > 0) handler_reply_invalid(reply, "invalid request", &v);
  return v.n == 0;
}

static void list_deliveries(void *arg, const rpc_call *call, rpc_reply *reply) {
  notifications *h = arg;
  store_deliveries l = {0};
  Notifications__V1__Delivery *pbs = NULL;
  Notifications__V1__Delivery **ptrs = NULL;
  HANDLER_UNPACK(Notifications__V1__ListDeliveriesRequest,
                 notifications__v1__list_deliveries_request, req, 0);
  paseto_claims cl;
  char id[UUID_STR_LEN + 1], before[UUID_STR_LEN + 1];
  size_t limit = 0;
  if (!caller(h, call, reply, &cl) ||
      handler_uuid_arg(reply, "webhook_id", req->webhook_id, id) != ERR_OK ||
      !deliveries_query(req, reply, before, &limit))
    goto out;
  bool more = false;
  int rc = store_list_deliveries(h->c.store, cl.tid, id, (int)req->status,
                                 before[0] ? before : NULL, limit, &l, &more);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "list the deliveries");
    goto out;
  }
  pbs = calloc(l.n ? l.n : 1, sizeof *pbs);
  ptrs = calloc(l.n ? l.n : 1, sizeof *ptrs);
  if (pbs == NULL || ptrs == NULL) {
    rpc_reply_status(reply, RPC_RESOURCE_EXHAUSTED, "out of memory");
    goto out;
  }
  for (size_t i = 0; i < l.n; i++) {
    delivery_pb(&l.v[i], &pbs[i]);
    ptrs[i] = &pbs[i];
  }
  char next[CURSOR_LEN + 1] = "";
  if (more && l.n > 0 && cursor_encode(l.v[l.n - 1].id, next) != ERR_OK)
    next[0] = '\0';
  Notifications__V1__ListDeliveriesResponse resp =
      NOTIFICATIONS__V1__LIST_DELIVERIES_RESPONSE__INIT;
  resp.n_deliveries = l.n;
  resp.deliveries = ptrs;
  resp.next_cursor = next;
  handler_reply_message(reply, &resp.base);
out:
  free(pbs);
  free(ptrs);
  store_deliveries_free(&l);
  notifications__v1__list_deliveries_request__free_unpacked(req, NULL);
}

static void attempt_pb(const store_attempt_entry *e,
                       Notifications__V1__DeliveryAttempt *pb) {
  notifications__v1__delivery_attempt__init(pb);
  pb->number = e->number;
  pb->at = (char *)e->at;
  pb->status_code = e->status_code;
  pb->error = (char *)e->error;
  pb->duration_ms = e->duration_ms;
}

/* One delivery of the caller's tenant with its attempts (another
 * tenant's: NOT_FOUND, like a missing one). */
static void get_delivery(void *arg, const rpc_call *call, rpc_reply *reply) {
  notifications *h = arg;
  store_attempt_entry *entries = NULL;
  Notifications__V1__DeliveryAttempt *pbs = NULL;
  Notifications__V1__DeliveryAttempt **ptrs = NULL;
  HANDLER_UNPACK(Notifications__V1__GetDeliveryRequest,
                 notifications__v1__get_delivery_request, req, 0);
  paseto_claims cl;
  char id[UUID_STR_LEN + 1];
  store_delivery d;
  size_t n = 0;
  if (!caller(h, call, reply, &cl) ||
      handler_uuid_arg(reply, "id", req->id, id) != ERR_OK)
    goto out;
  int rc = store_get_delivery(h->c.store, cl.tid, id, &d, &entries, &n);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "read the delivery");
    goto out;
  }
  pbs = calloc(n ? n : 1, sizeof *pbs);
  ptrs = calloc(n ? n : 1, sizeof *ptrs);
  if (pbs == NULL || ptrs == NULL) {
    rpc_reply_status(reply, RPC_RESOURCE_EXHAUSTED, "out of memory");
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    attempt_pb(&entries[i], &pbs[i]);
    ptrs[i] = &pbs[i];
  }
  Notifications__V1__Delivery dpb;
  delivery_pb(&d, &dpb);
  Notifications__V1__GetDeliveryResponse resp =
      NOTIFICATIONS__V1__GET_DELIVERY_RESPONSE__INIT;
  resp.delivery = &dpb;
  resp.n_attempts = n;
  resp.attempts = ptrs;
  handler_reply_message(reply, &resp.base);
out:
  free(pbs);
  free(ptrs);
  free(entries);
  notifications__v1__get_delivery_request__free_unpacked(req, NULL);
}

static void retry_delivery(void *arg, const rpc_call *call, rpc_reply *reply) {
  notifications *h = arg;
  HANDLER_UNPACK(Notifications__V1__RetryDeliveryRequest,
                 notifications__v1__retry_delivery_request, req, 0);
  paseto_claims cl;
  store_job job;
  if (!caller(h, call, reply, &cl) ||
      handler_uuid_arg(reply, "id", req->id, job.id) != ERR_OK)
    goto out;
  bool was_dead = false;
  int rc = store_retry_delivery(h->c.store, cl.tid, job.id, &was_dead);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "retry the delivery");
    goto out;
  }
  if (!was_dead) {
    handler_reply_field(reply, RPC_FAILED_PRECONDITION, "delivery is not dead",
                        "status", "must be dead");
    goto out;
  }
  uuid_canonical(cl.tid, job.tid);
  (void)queue_push(h->c.queue, &job, 1); /* else the sweep queues it */
  Notifications__V1__RetryDeliveryResponse resp =
      NOTIFICATIONS__V1__RETRY_DELIVERY_RESPONSE__INIT;
  handler_reply_message(reply, &resp.base);
out:
  notifications__v1__retry_delivery_request__free_unpacked(req, NULL);
}

/* ------------------------------------------------------------- set-up --- */

int notifications_new(const notifications_config *cfg, notifications **out) {
  *out = NULL;
  if (cfg == NULL || cfg->store == NULL || cfg->verifier == NULL ||
      cfg->queue == NULL || cfg->key == NULL || cfg->max_endpoints == 0)
    return ERR_INVAL;
  notifications *h = calloc(1, sizeof *h);
  if (h == NULL) return ERR_NOMEM;
  h->c = *cfg;
  /* A key of its own for the seals of saved answers, not the secrets'. */
  if (idem_hash_keyed(cfg->key->k, "notifications.idem.secret.v1", NULL, NULL,
                      0, h->idem_secret) != ERR_OK) {
    free(h);
    return ERR_INTERNAL;
  }
  h->idem = (idem_once_spec){.table = NOTIFICATIONS_IDEM_TABLE,
                             .tag = "notifications.idem.v1",
                             .seal_tag = "notifications.idem.seal.v1",
                             .secret = h->idem_secret};
  *out = h;
  return ERR_OK;
}

void notifications_free(notifications *h) {
  if (h == NULL) return;
  sodium_memzero(h->idem_secret, sizeof h->idem_secret);
  free(h);
}

int notifications_register(notifications *h, rpc_server *srv) {
  static const handler_method table[] = {
      {NOTIFICATIONS_METHOD("Ping"), ping},
      {NOTIFICATIONS_METHOD("CreateWebhook"), create_webhook},
      {NOTIFICATIONS_METHOD("ListWebhooks"), list_webhooks},
      {NOTIFICATIONS_METHOD("GetWebhook"), get_webhook},
      {NOTIFICATIONS_METHOD("UpdateWebhook"), update_webhook},
      {NOTIFICATIONS_METHOD("DeleteWebhook"), delete_webhook},
      {NOTIFICATIONS_METHOD("RotateWebhookSecret"), rotate_secret},
      {NOTIFICATIONS_METHOD("TestWebhook"), test_webhook},
      {NOTIFICATIONS_METHOD("ListDeliveries"), list_deliveries},
      {NOTIFICATIONS_METHOD("RetryDelivery"), retry_delivery},
      {NOTIFICATIONS_METHOD("GetDelivery"), get_delivery},
  };
  int rc = handler_register(srv, table, sizeof table / sizeof table[0], h);
  if (rc == ERR_OK)
    rc = handler_register(srv, notifications_inbox_methods,
                          notifications_ninbox_methods, h);
  if (rc == ERR_OK)
    rc = handler_register(srv, notifications_campaign_methods,
                          notifications_ncampaign_methods, h);
  if (rc == ERR_OK)
    rc = handler_register(srv, notifications_settings_methods,
                          notifications_nsettings_methods, h);
  return rc;
}
