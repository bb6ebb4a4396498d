/*
 * store_inbox.h - the in-app inbox's SQL (schema "notifications", table
 * inbox, migrations/0002_inbox.sql), with the same transaction rules as
 * store.h: one transaction per function, as the store's role, app.tenant_id
 * set, every statement filtered on tenant_id - and here on user_id too:
 * a member reads and marks only their own notifications; another user's
 * is ERR_NOTFOUND, exactly like one that does not exist.
 *
 * New notifications are added in the fan-out's transaction
 * (store_fanout_in.inbox): each inserted one also appends its
 * "Notification" event to the outbox (libs/outbox) in that transaction,
 * so realtime hears of exactly the notifications that exist.
 */
#ifndef NOTIFICATIONS_STORE_INBOX_H
#define NOTIFICATIONS_STORE_INBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"
#include "services/notifications/store.h"

#define INBOX_TYPE_MAX 64
#define INBOX_TITLE_MAX 800 /* bytes: 200 characters of up to 4 */
#define INBOX_BODY_MAX 8000 /* bytes: 2000 characters of up to 4 */
#define INBOX_DATA_MAX 4096 /* bytes of the data object's JSON */
#define INBOX_TOPIC_PREFIX "private.user."

/* A notification to add: id minted by the caller (UUIDv7: its time is
 * created_at), the payload its packed notifications.v1.Notification (the
 * event realtime gets). Strings borrowed. */
typedef struct store_inbox_new {
  char id[UUID_STR_LEN + 1];
  char user_id[UUID_STR_LEN + 1];
  const char *type, *title, *body;
  const char *data; /* a JSON object's text */
  const void *payload;
  size_t len;
} store_inbox_new;

/* A notification as stored; strings NUL-terminated. */
typedef struct store_notification {
  char id[UUID_STR_LEN + 1];
  char type[INBOX_TYPE_MAX + 1];
  char title[INBOX_TITLE_MAX + 1];
  char body[INBOX_BODY_MAX + 1];
  char data[INBOX_DATA_MAX + 1];
  char read_at[RFC3339_MS_LEN + 1]; /* "" while unread */
  char created_at[RFC3339_MS_LEN + 1];
} store_notification;

typedef struct store_notifications {
  store_notification *v;
  size_t n;
} store_notifications;

void store_notifications_free(store_notifications *l); /* NULL-safe */

/* Inside the caller's transaction on c (tenant tid): adds items[0..n)
 * for event event_id, each unless that (event, user) already has one, and
 * appends an outbox event for each one added; *added counts them. */
int store_inbox_add(db_conn *c, const char *tid, const char *event_id,
                    const store_inbox_new *items, size_t n,
                    size_t *added) WARN_UNUSED;

/* User uid's notifications, newest first: only unread ones when
 * unread_only, before before_id (NULL: from the newest), at most limit;
 * *more when others follow; *unread the user's whole unread count. */
int store_list_inbox(store *st, const char *tid, const char *uid,
                     bool unread_only, const char *before_id, size_t limit,
                     store_notifications *out, bool *more,
                     int64_t *unread) WARN_UNUSED;

/* Marks uid's notification id read (kept as it was when already read).
 * ERR_NOTFOUND when it is not uid's. */
int store_read_notification(store *st, const char *tid, const char *uid,
                            const char *id) WARN_UNUSED;

/* Marks every unread notification of uid read. */
int store_read_all(store *st, const char *tid, const char *uid) WARN_UNUSED;

#endif
