/*
 * store_inbox.c - the inbox's statements (see store_inbox.h). Same shape
 * as store.c: an argument struct and a static function per transaction,
 * constant SQL with $n parameters, columns read by name.
 */
#include "services/notifications/store_inbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/outbox/outbox.h"
#include "services/notifications/store_internal.h"

#define NOTIFICATION_COLS                                                      \
  "id::text AS id, type, title, body, data::text AS data, "                    \
  "floor(extract(epoch FROM read_at) * 1000)::bigint AS read_ms, "             \
  "floor(extract(epoch FROM created_at) * 1000)::bigint AS created_ms"

void store_notifications_free(store_notifications *l) {
  if (l == NULL) return;
  free(l->v);
  l->v = NULL;
  l->n = 0;
}

/* ------------------------------------------------------------ adding --- */

static int add_one(db_conn *c, const char *tid, const char *event_id,
                   const store_inbox_new *it, bool *inserted) {
  uuid u;
  int64_t ms = uuid_parse(it->id, strlen(it->id), &u) == ERR_OK
                   ? uuid_v7_time_ms(&u)
                   : 0;
  db_param ps[] = {db_text(tid),      db_text(it->id),   db_text(it->user_id),
                   db_text(event_id), db_text(it->type), db_text(it->title),
                   db_text(it->body), db_text(it->data), db_int64(ms)};
  db_result *r = NULL;
  int rc = db_exec(
      c,
      "INSERT INTO notifications.inbox (tenant_id, id, user_id, event_id, "
      "type, title, body, data, created_at) VALUES ($1::uuid, $2::uuid, "
      "$3::uuid, $4::uuid, $5, $6, $7, $8::jsonb, "
      "timestamptz 'epoch' + $9::bigint * interval '1 millisecond') "
      "ON CONFLICT (tenant_id, event_id, user_id) DO NOTHING",
      ps, DB_NPARAMS(ps), &r);
  *inserted = rc == ERR_OK && db_affected(r) == 1;
  db_result_free(r);
  return rc;
}

int store_inbox_add(db_conn *c, const char *tid, const char *event_id,
                    const store_inbox_new *items, size_t n, size_t *added) {
  *added = 0;
  for (size_t i = 0; i < n; i++) {
    bool inserted = false;
    int rc = add_one(c, tid, event_id, &items[i], &inserted);
    if (rc != ERR_OK) return rc;
    if (!inserted) continue; /* this event already notified this user */
    char topic[sizeof INBOX_TOPIC_PREFIX + UUID_STR_LEN];
    snprintf(topic, sizeof topic, INBOX_TOPIC_PREFIX "%s", items[i].user_id);
    outbox_event ev = {.topic = topic,
                       .type = "Notification",
                       .tenant_id = tid,
                       .payload = items[i].payload,
                       .len = items[i].len};
    rc = outbox_append(c, STORE_SCHEMA, &ev);
    if (rc != ERR_OK) return rc;
    (*added)++;
  }
  return ERR_OK;
}

/* ----------------------------------------------------------- reading --- */

static int read_notification(const db_result *r, int row,
                             store_notification *n) {
  memset(n, 0, sizeof *n);
  store_copy_col(r, row, "id", n->id, sizeof n->id);
  store_copy_col(r, row, "type", n->type, sizeof n->type);
  store_copy_col(r, row, "title", n->title, sizeof n->title);
  store_copy_col(r, row, "body", n->body, sizeof n->body);
  store_copy_col(r, row, "data", n->data, sizeof n->data);
  int rc = store_time_col(r, row, "read_ms", n->read_at);
  if (rc == ERR_OK) rc = store_time_col(r, row, "created_ms", n->created_at);
  return rc;
}

typedef struct list_args {
  const char *tid, *uid, *before;
  bool unread_only;
  size_t limit;
  store_notifications *out;
  bool *more;
  int64_t *unread;
} list_args;

static int unread_count(db_conn *c, const list_args *a) {
  db_param ps[] = {db_text(a->tid), db_text(a->uid)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT count(*) AS n FROM notifications.inbox "
                   "WHERE tenant_id = $1::uuid AND user_id = $2::uuid "
                   "AND read_at IS NULL",
                   ps, DB_NPARAMS(ps), &r);
  if (rc == ERR_OK) rc = db_get_int64(r, 0, db_col(r, "n"), a->unread);
  db_result_free(r);
  return rc;
}

static int list_fn(db_conn *c, void *ud) {
  list_args *a = ud;
  store_notifications_free(a->out);
  *a->more = false;
  *a->unread = 0;
  db_param ps[] = {db_text(a->tid), db_text(a->uid), db_bool(a->unread_only),
                   db_text(a->before), db_int64((int64_t)a->limit + 1)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT " NOTIFICATION_COLS " FROM notifications.inbox "
                   "WHERE tenant_id = $1::uuid AND user_id = $2::uuid "
                   "AND (NOT $3 OR read_at IS NULL) "
                   "AND ($4::uuid IS NULL OR id < $4::uuid) "
                   "ORDER BY id DESC LIMIT $5",
                   ps, DB_NPARAMS(ps), &r);
  size_t n = rc == ERR_OK ? db_page_rows(r, a->limit, a->more) : 0;
  if (n > 0 && (a->out->v = calloc(n, sizeof *a->out->v)) == NULL)
    rc = ERR_NOMEM;
  for (size_t i = 0; rc == ERR_OK && i < n; i++, a->out->n++)
    rc = read_notification(r, (int)i, &a->out->v[i]);
  db_result_free(r);
  return rc == ERR_OK ? unread_count(c, a) : rc;
}

int store_list_inbox(store *st, const char *tid, const char *uid,
                     bool unread_only, const char *before_id, size_t limit,
                     store_notifications *out, bool *more, int64_t *unread) {
  memset(out, 0, sizeof *out);
  list_args a = {.tid = tid,
                 .uid = uid,
                 .before = before_id,
                 .unread_only = unread_only,
                 .limit = limit,
                 .out = out,
                 .more = more,
                 .unread = unread};
  int rc = store_run(st, tid, true, list_fn, &a);
  if (rc != ERR_OK) store_notifications_free(out);
  return rc;
}

/* ----------------------------------------------------------- marking --- */

typedef struct read_args {
  const char *tid, *uid, *id;
} read_args;

static int read_fn(db_conn *c, void *ud) {
  read_args *a = ud;
  db_param ps[] = {db_text(a->tid), db_text(a->uid), db_text(a->id)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "UPDATE notifications.inbox "
                   "SET read_at = COALESCE(read_at, now()) "
                   "WHERE tenant_id = $1::uuid AND user_id = $2::uuid "
                   "AND id = $3::uuid",
                   ps, DB_NPARAMS(ps), &r);
  if (rc == ERR_OK && db_affected(r) != 1) rc = ERR_NOTFOUND;
  db_result_free(r);
  return rc;
}

int store_read_notification(store *st, const char *tid, const char *uid,
                            const char *id) {
  read_args a = {.tid = tid, .uid = uid, .id = id};
  return store_run(st, tid, false, read_fn, &a);
}

static int read_all_fn(db_conn *c, void *ud) {
  read_args *a = ud;
  db_param ps[] = {db_text(a->tid), db_text(a->uid)};
  return db_exec(c,
                 "UPDATE notifications.inbox SET read_at = now() "
                 "WHERE tenant_id = $1::uuid AND user_id = $2::uuid "
                 "AND read_at IS NULL",
                 ps, DB_NPARAMS(ps), NULL);
}

int store_read_all(store *st, const char *tid, const char *uid) {
  read_args a = {.tid = tid, .uid = uid};
  return store_run(st, tid, false, read_all_fn, &a);
}
