/*
 * inbox.c - events into in-app notifications (see inbox.h). The texts
 * are short English sentences built from the event; data carries the ids
 * a client needs to open the thing the notification is about.
 */
#include "services/notifications/inbox.h"

#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"
#include "proto/notifications/v1/notifications.pb-c.h"
#include "proto/orders/v1/orders.pb-c.h"
#include "services/notifications/recipients.h"

void inbox_batch_free(inbox_batch *b) {
  if (b == NULL) return;
  for (size_t i = 0; i < b->nowned; i++) free(b->owned[i]);
  free(b->owned);
  free(b->v);
  free(b->emails);
  free(b->phones);
  memset(b, 0, sizeof *b);
}

/* Takes ownership of p (NULL: ERR_NOMEM). */
static int own(inbox_batch *b, void *p) {
  if (p == NULL) return ERR_NOMEM;
  char **o = realloc(b->owned, (b->nowned + 1) * sizeof *o);
  if (o == NULL) {
    free(p);
    return ERR_NOMEM;
  }
  b->owned = o;
  b->owned[b->nowned++] = p;
  return ERR_OK;
}

/* The Notification message of item it, packed (malloc'd into *out). */
static int pack(const store_inbox_new *it, json_t *data, uint8_t **out,
                size_t *len) {
  Notifications__V1__Notification n = NOTIFICATIONS__V1__NOTIFICATION__INIT;
  size_t nd = json_object_size(data), i = 0;
  Notifications__V1__Notification__DataEntry *e =
      calloc(nd ? nd : 1, sizeof *e);
  Notifications__V1__Notification__DataEntry **ep =
      calloc(nd ? nd : 1, sizeof *ep);
  char created[RFC3339_MS_LEN + 1] = "";
  uuid u;
  if (uuid_parse(it->id, strlen(it->id), &u) == ERR_OK &&
      time_format_rfc3339(uuid_v7_time_ms(&u), created) != ERR_OK)
    created[0] = '\0';
  const char *k;
  json_t *v;
  json_object_foreach(data, k, v) {
    if (e == NULL || ep == NULL) break;
    notifications__v1__notification__data_entry__init(&e[i]);
    e[i].key = (char *)k;
    e[i].value = (char *)json_string_value(v);
    ep[i] = &e[i];
    i++;
  }
  n.id = (char *)it->id;
  n.type = (char *)it->type;
  n.title = (char *)it->title;
  n.body = (char *)it->body;
  n.n_data = i;
  n.data = ep;
  n.created_at = created;
  n.user_id = (char *)it->user_id;
  *len = notifications__v1__notification__get_packed_size(&n);
  *out = e != NULL && ep != NULL ? malloc(*len ? *len : 1) : NULL;
  if (*out != NULL) notifications__v1__notification__pack(&n, *out);
  free(e);
  free(ep);
  return *out != NULL ? ERR_OK : ERR_NOMEM;
}

/* Room for one more item in b's arrays. */
static int grow(inbox_batch *b) {
  store_inbox_new *v = realloc(b->v, (b->n + 1) * sizeof *v);
  if (v == NULL) return ERR_NOMEM;
  b->v = v;
  const char **e = realloc(b->emails, (b->n + 1) * sizeof *e);
  if (e == NULL) return ERR_NOMEM;
  b->emails = e;
  const char **p = realloc(b->phones, (b->n + 1) * sizeof *p);
  if (p == NULL) return ERR_NOMEM;
  b->phones = p;
  b->emails[b->n] = b->phones[b->n] = NULL;
  return ERR_OK;
}

/* A copy of s owned by b into *out; NULL for NULL or "". */
static int own_opt(inbox_batch *b, const char *s, const char **out) {
  *out = NULL;
  if (s == NULL || s[0] == '\0') return ERR_OK;
  char *c = strdup(s);
  int rc = own(b, c);
  if (rc == ERR_OK) *out = c;
  return rc;
}

int inbox_batch_add(inbox_batch *b, const char *uid, const char *email,
                    const char *phone, const char *type, const char *title,
                    const char *body, const char *data) {
  json_t *d = json_loads(data, 0, NULL);
  if (d == NULL || !json_is_object(d)) {
    json_decref(d);
    return ERR_INVAL;
  }
  if (grow(b) != ERR_OK) {
    json_decref(d);
    return ERR_NOMEM;
  }
  store_inbox_new *it = &b->v[b->n];
  memset(it, 0, sizeof *it);
  uuid_v7_str(it->id);
  snprintf(it->user_id, sizeof it->user_id, "%s", uid);
  char *strs[4] = {strdup(type), strdup(title), strdup(body), strdup(data)};
  int rc = ERR_OK;
  for (int i = 0; i < 4; i++)
    if (own(b, strs[i]) != ERR_OK) rc = ERR_NOMEM;
  if (rc == ERR_OK) rc = own_opt(b, email, &b->emails[b->n]);
  if (rc == ERR_OK) rc = own_opt(b, phone, &b->phones[b->n]);
  if (rc == ERR_OK) {
    it->type = strs[0];
    it->title = strs[1];
    it->body = strs[2];
    it->data = strs[3];
    uint8_t *payload = NULL;
    rc = pack(it, d, &payload, &it->len);
    if (rc == ERR_OK) rc = own(b, payload);
    it->payload = payload;
  }
  json_decref(d);
  if (rc == ERR_OK) b->n++;
  return rc;
}

/* "confirmed" for ORDER_STATUS_CONFIRMED. */
static void status_name(int status, char *out, size_t cap) {
  const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
      &orders__v1__order_status__descriptor, status);
  const char *name = v != NULL ? v->name : "ORDER_STATUS_UNSPECIFIED";
  const char *p = strncmp(name, "ORDER_STATUS_", 13) == 0 ? name + 13 : name;
  size_t i = 0;
  for (; p[i] != '\0' && i + 1 < cap; i++)
    out[i] = (char)tolower((unsigned char)p[i]);
  out[i] = '\0';
}

/* Who: the customer's address and phone as far as ch wants them ("" when
 * none or not wanted; auth is asked only when one is wanted). */
typedef struct contact {
  char email[RECIPIENT_EMAIL_MAX + 1];
  char phone[RECIPIENT_PHONE_MAX + 1];
} contact;

/* r's address and phone into c, each only when ch wants that channel. */
static void contact_of(const recipient *r, const store_channels *ch,
                       contact *c) {
  snprintf(c->email, sizeof c->email, "%s", ch->email ? r->email : "");
  snprintf(c->phone, sizeof c->phone, "%s", ch->sms ? r->phone : "");
}

static int customer_contact(const Rpc__V1__Event *ev, rpc_client *auth,
                            const store_channels *ch, const char *uid,
                            contact *c) {
  memset(c, 0, sizeof *c);
  if (auth == NULL || (!ch->email && !ch->sms)) return ERR_OK;
  recipients r = {0};
  int rc = recipients_user(auth, ev->tenant_id, uid, &r);
  if (rc == ERR_OK && r.n == 1) contact_of(&r.v[0], ch, c);
  recipients_free(&r);
  return rc;
}

static int order_changed(const Rpc__V1__Event *ev, rpc_client *auth,
                         const store_channels *ch, inbox_batch *out) {
  Orders__V1__OrderStatusChanged *m = orders__v1__order_status_changed__unpack(
      NULL, ev->payload.len, ev->payload.data);
  if (m == NULL || m->order == NULL) {
    if (m != NULL) orders__v1__order_status_changed__free_unpacked(m, NULL);
    return ERR_PROTO;
  }
  const Orders__V1__Order *o = m->order;
  int rc = ERR_OK;
  if (uuid_is_valid(o->customer_id)) {
    char status[32], title[96], body[160];
    status_name((int)o->status, status, sizeof status);
    snprintf(title, sizeof title, "Your order is %s", status);
    snprintf(body, sizeof body, "Order of %s %s: %s.", o->total, o->currency,
             status);
    json_t *d = json_pack("{s:s, s:s}", "order_id", o->id, "status", status);
    char *data =
        d != NULL ? json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(d);
    contact c;
    rc = data == NULL ? ERR_NOMEM
                      : customer_contact(ev, auth, ch, o->customer_id, &c);
    if (rc == ERR_OK)
      rc = inbox_batch_add(out, o->customer_id, c.email, c.phone,
                           "order.status_changed", title, body, data);
    free(data);
  }
  orders__v1__order_status_changed__free_unpacked(m, NULL);
  return rc;
}

static int stock_low(const Rpc__V1__Event *ev, rpc_client *auth,
                     const store_channels *ch, inbox_batch *out) {
  static const char *const kRoles[] = {"owner", "admin"};
  Orders__V1__StockLow *m =
      orders__v1__stock_low__unpack(NULL, ev->payload.len, ev->payload.data);
  if (m == NULL) return ERR_PROTO;
  recipients who = {0};
  int rc = recipients_by_role(auth, ev->tenant_id, kRoles, 2,
                              INBOX_RECIPIENTS_MAX, &who);
  char title[INBOX_TITLE_MAX / 2], body[INBOX_TITLE_MAX], stock[24];
  snprintf(title, sizeof title, "Low stock: %.150s", m->name);
  snprintf(body, sizeof body, "%.150s has %" PRId64 " left.", m->name,
           m->stock);
  snprintf(stock, sizeof stock, "%" PRId64, m->stock);
  json_t *d =
      json_pack("{s:s, s:s}", "product_id", m->product_id, "stock", stock);
  char *data = d != NULL ? json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  json_decref(d);
  if (rc == ERR_OK && data == NULL) rc = ERR_NOMEM;
  for (size_t i = 0; rc == ERR_OK && i < who.n; i++) {
    contact c;
    contact_of(&who.v[i], ch, &c);
    rc = inbox_batch_add(out, who.v[i].id, c.email, c.phone, "stock.low", title,
                         body, data);
  }
  free(data);
  recipients_free(&who);
  orders__v1__stock_low__free_unpacked(m, NULL);
  return rc;
}

static bool is_order_update(const Rpc__V1__Event *ev) {
  return strcmp(ev->type, "OrderStatusChanged") == 0;
}
static bool is_staff_alert(const Rpc__V1__Event *ev) {
  return strcmp(ev->type, "StockLow") == 0;
}

int inbox_channels(store *st, settings_cache *settings,
                   const Rpc__V1__Event *ev, bool email_on, bool sms_on,
                   store_channels *out) {
  memset(out, 0, sizeof *out);
  if (!is_order_update(ev) && !is_staff_alert(ev)) return ERR_OK;
  store_settings s;
  int rc = settings_cache_get(settings, st, ev->tenant_id, &s);
  if (rc != ERR_OK) return rc;
  *out = is_order_update(ev) ? s.order : s.staff;
  out->email = out->email && email_on;
  out->sms = out->sms && sms_on;
  return ERR_OK;
}

int inbox_for_event(const Rpc__V1__Event *ev, rpc_client *auth,
                    const store_channels *ch, inbox_batch *out) {
  memset(out, 0, sizeof *out);
  out->in_app = ch->in_app;
  if (!ch->in_app && !ch->email && !ch->sms) return ERR_OK;
  int rc = ERR_OK;
  if (is_order_update(ev))
    rc = order_changed(ev, auth, ch, out);
  else if (is_staff_alert(ev) && auth != NULL)
    rc = stock_low(ev, auth, ch, out);
  if (rc != ERR_OK) inbox_batch_free(out);
  return rc;
}

int inbox_messages(const inbox_batch *b, store_message **out, size_t *n) {
  *out = NULL;
  *n = 0;
  if (b->n == 0) return ERR_OK;
  if ((*out = calloc(2 * b->n, sizeof **out)) == NULL) return ERR_NOMEM;
  for (size_t i = 0; i < b->n; i++) {
    const char *to[2] = {b->emails[i], b->phones[i]};
    for (int k = 0; k < 2; k++) {
      if (to[k] == NULL) continue;
      store_message *m = &(*out)[(*n)++];
      m->kind = k == 0 ? STORE_KIND_EMAIL : STORE_KIND_SMS;
      memcpy(m->user_id, b->v[i].user_id, sizeof m->user_id);
      m->address = to[k];
      m->subject = k == 0 ? b->v[i].title : "";
      m->body = b->v[i].body;
    }
  }
  return ERR_OK;
}
