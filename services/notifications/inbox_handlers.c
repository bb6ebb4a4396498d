/*
 * inbox_handlers.c - the in-app inbox's methods (handlers.h, same shape as
 * handlers.c): ListNotifications, MarkNotificationRead,
 * MarkAllNotificationsRead. Any member, own inbox only: the user is the
 * verified token's sub and the tenant its tid, never request fields; a
 * notification of another user is NOT_FOUND, like one that does not
 * exist.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "libs/authn/authn_caller.h"
#include "libs/base/cursor.h"
#include "proto/notifications/v1/notifications.pb-c.h"
#include "services/notifications/handlers_internal.h"
#include "services/notifications/store_inbox.h"

#define DATA_ENTRIES_MAX 32

static bool member(notifications *h, const rpc_call *call, rpc_reply *reply,
                   paseto_claims *cl) {
  return authn_check_call(h->c.verifier, call, handler_min_rank(call), cl,
                          reply) == ERR_OK;
}

/* The wire form of n; data's entries point into *data (a parsed copy of
 * n->data, the caller's to json_decref) and e/ep (DATA_ENTRIES_MAX). */
static void notification_pb(const store_notification *n,
                            Notifications__V1__Notification *pb, json_t **data,
                            Notifications__V1__Notification__DataEntry *e,
                            Notifications__V1__Notification__DataEntry **ep) {
  notifications__v1__notification__init(pb);
  pb->id = (char *)n->id;
  pb->type = (char *)n->type;
  pb->title = (char *)n->title;
  pb->body = (char *)n->body;
  pb->read_at = (char *)n->read_at;
  pb->created_at = (char *)n->created_at;
  *data = json_loads(n->data, 0, NULL);
  const char *k;
  json_t *v;
  size_t i = 0;
  json_object_foreach(*data, k, v) {
    if (i == DATA_ENTRIES_MAX || !json_is_string(v)) continue;
    notifications__v1__notification__data_entry__init(&e[i]);
    e[i].key = (char *)k;
    e[i].value = (char *)json_string_value(v);
    ep[i] = &e[i];
    i++;
  }
  pb->n_data = i;
  pb->data = ep;
}

/* The query, validated; false when the reply is set. */
static bool list_query(const Notifications__V1__ListNotificationsRequest *req,
                       rpc_reply *reply, char before[UUID_STR_LEN + 1],
                       size_t *limit) {
  vlist v;
  vlist_init(&v);
  notifications_page_args(req->limit, req->cursor, &v, limit, before);
  if (v.n > 0) handler_reply_invalid(reply, "invalid request", &v);
  return v.n == 0;
}

typedef struct wire_list {
  Notifications__V1__Notification *pbs;
  Notifications__V1__Notification **ptrs;
  json_t **datas;
  Notifications__V1__Notification__DataEntry (*entries)[DATA_ENTRIES_MAX];
  Notifications__V1__Notification__DataEntry *(*eptrs)[DATA_ENTRIES_MAX];
  size_t n;
} wire_list;

static void wire_free(wire_list *w) {
  for (size_t i = 0; w->datas != NULL && i < w->n; i++)
    json_decref(w->datas[i]);
  free(w->pbs);
  free(w->ptrs);
  free(w->datas);
  free(w->entries);
  free(w->eptrs);
}

static int wire_make(const store_notifications *l, wire_list *w) {
  size_t n = l->n ? l->n : 1;
  w->pbs = calloc(n, sizeof *w->pbs);
  w->ptrs = calloc(n, sizeof *w->ptrs);
  w->datas = calloc(n, sizeof *w->datas);
  w->entries = calloc(n, sizeof *w->entries);
  w->eptrs = calloc(n, sizeof *w->eptrs);
  if (!w->pbs || !w->ptrs || !w->datas || !w->entries || !w->eptrs)
    return ERR_NOMEM;
  for (size_t i = 0; i < l->n; i++, w->n++) {
    notification_pb(&l->v[i], &w->pbs[i], &w->datas[i], w->entries[i],
                    w->eptrs[i]);
    w->ptrs[i] = &w->pbs[i];
  }
  return ERR_OK;
}

static void list_notifications(void *arg, const rpc_call *call,
                               rpc_reply *reply) {
  notifications *h = arg;
  store_notifications l = {0};
  wire_list w = {0};
  HANDLER_UNPACK(Notifications__V1__ListNotificationsRequest,
                 notifications__v1__list_notifications_request, req, 0);
  paseto_claims cl;
  char before[UUID_STR_LEN + 1];
  size_t limit = 0;
  if (!member(h, call, reply, &cl) || !list_query(req, reply, before, &limit))
    goto out;
  bool more = false;
  int64_t unread = 0;
  int rc =
      store_list_inbox(h->c.store, cl.tid, cl.sub, req->unread,
                       before[0] ? before : NULL, limit, &l, &more, &unread);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "list the notifications");
    goto out;
  }
  if (wire_make(&l, &w) != ERR_OK) {
    rpc_reply_status(reply, RPC_RESOURCE_EXHAUSTED, "out of memory");
    goto out;
  }
  char next[CURSOR_LEN + 1] = "";
  if (more && l.n > 0 && cursor_encode(l.v[l.n - 1].id, next) != ERR_OK)
    next[0] = '\0';
  Notifications__V1__ListNotificationsResponse resp =
      NOTIFICATIONS__V1__LIST_NOTIFICATIONS_RESPONSE__INIT;
  resp.n_notifications = l.n;
  resp.notifications = w.ptrs;
  resp.next_cursor = next;
  resp.unread_count = unread;
  handler_reply_message(reply, &resp.base);
out:
  wire_free(&w);
  store_notifications_free(&l);
  notifications__v1__list_notifications_request__free_unpacked(req, NULL);
}

static void mark_read(void *arg, const rpc_call *call, rpc_reply *reply) {
  notifications *h = arg;
  HANDLER_UNPACK(Notifications__V1__MarkNotificationReadRequest,
                 notifications__v1__mark_notification_read_request, req, 0);
  paseto_claims cl;
  char id[UUID_STR_LEN + 1];
  if (!member(h, call, reply, &cl) ||
      handler_uuid_arg(reply, "id", req->id, id) != ERR_OK)
    goto out;
  int rc = store_read_notification(h->c.store, cl.tid, cl.sub, id);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "mark the notification read");
    goto out;
  }
  Notifications__V1__MarkNotificationReadResponse resp =
      NOTIFICATIONS__V1__MARK_NOTIFICATION_READ_RESPONSE__INIT;
  handler_reply_message(reply, &resp.base);
out:
  notifications__v1__mark_notification_read_request__free_unpacked(req, NULL);
}

static void mark_all_read(void *arg, const rpc_call *call, rpc_reply *reply) {
  notifications *h = arg;
  HANDLER_UNPACK(Notifications__V1__MarkAllNotificationsReadRequest,
                 notifications__v1__mark_all_notifications_read_request, req,
                 0);
  paseto_claims cl;
  if (!member(h, call, reply, &cl)) goto out;
  int rc = store_read_all(h->c.store, cl.tid, cl.sub);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "mark the notifications read");
    goto out;
  }
  Notifications__V1__MarkAllNotificationsReadResponse resp =
      NOTIFICATIONS__V1__MARK_ALL_NOTIFICATIONS_READ_RESPONSE__INIT;
  handler_reply_message(reply, &resp.base);
out:
  notifications__v1__mark_all_notifications_read_request__free_unpacked(req,
                                                                        NULL);
}

const handler_method notifications_inbox_methods[] = {
    {NOTIFICATIONS_METHOD("ListNotifications"), list_notifications},
    {NOTIFICATIONS_METHOD("MarkNotificationRead"), mark_read},
    {NOTIFICATIONS_METHOD("MarkAllNotificationsRead"), mark_all_read},
};
const size_t notifications_ninbox_methods =
    sizeof notifications_inbox_methods / sizeof notifications_inbox_methods[0];
