/*
 * store_retention.c - the retention round's SQL (retention.h): one batch
 * of finished deliveries older than the retention (their attempts go by
 * the foreign key's cascade), or of inbox notifications read longer ago
 * than theirs, deleted across tenants under the sweep setting
 * (migrations/0007_retention.sql has the policies).
 */
#include "services/notifications/store.h"
#include "services/notifications/store_internal.h"

typedef struct prune_args {
  const char *sql; /* $1 older_ms, $2 batch; one row: the count */
  int64_t older_ms, batch, *deleted;
} prune_args;

static int prune_fn(db_conn *c, void *ud) {
  prune_args *a = ud;
  db_param ps[] = {db_int64(a->older_ms), db_int64(a->batch)};
  db_result *r = NULL;
  int rc = db_exec(c, a->sql, ps, DB_NPARAMS(ps), &r);
  if (rc == ERR_OK && db_nrows(r) == 1) rc = db_get_int64(r, 0, 0, a->deleted);
  db_result_free(r);
  return rc;
}

static int prune(store *st, const char *sql, int64_t older_ms, size_t batch,
                 int64_t *deleted) {
  *deleted = 0;
  if (older_ms <= 0 || batch == 0) return ERR_INVAL;
  prune_args a = {sql, older_ms, (int64_t)batch, deleted};
  return db_store_run(st, NULL, "app.notifications_sweep", false, prune_fn, &a);
}

/* The status test is repeated in the DELETE: a row a retry turned back
 * to pending between the choice and the lock is left alone. */
static const char kPruneDeliveries[] =
    "WITH gone AS (DELETE FROM notifications.deliveries d "
    "  USING (SELECT tenant_id, id FROM notifications.deliveries "
    "         WHERE status IN ('succeeded', 'dead') "
    "         AND updated_at < now() - $1::bigint * interval '1 millisecond' "
    "         LIMIT $2 FOR UPDATE SKIP LOCKED) old "
    "  WHERE d.tenant_id = old.tenant_id AND d.id = old.id "
    "  AND d.status IN ('succeeded', 'dead') RETURNING 1) "
    "SELECT count(*) FROM gone";

/* Read only: read_at is tested again in the DELETE for the same reason
 * (a notification is never unread again, but the rule stays local). */
static const char kPruneInbox[] =
    "WITH gone AS (DELETE FROM notifications.inbox n "
    "  USING (SELECT tenant_id, id FROM notifications.inbox "
    "         WHERE read_at IS NOT NULL "
    "         AND read_at < now() - $1::bigint * interval '1 millisecond' "
    "         LIMIT $2 FOR UPDATE SKIP LOCKED) old "
    "  WHERE n.tenant_id = old.tenant_id AND n.id = old.id "
    "  AND n.read_at IS NOT NULL RETURNING 1) "
    "SELECT count(*) FROM gone";

int store_prune_deliveries(store *st, int64_t older_ms, size_t batch,
                           int64_t *deleted) {
  return prune(st, kPruneDeliveries, older_ms, batch, deleted);
}

int store_prune_inbox(store *st, int64_t older_ms, size_t batch,
                      int64_t *deleted) {
  return prune(st, kPruneInbox, older_ms, batch, deleted);
}
