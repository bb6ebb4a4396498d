/*
 * store_changes.c - pruning orders' change log (the sync service's pull;
 * migrations/0002_changes.sql, 0003_changes_prune.sql).
 *
 * What may go: the log row of an entity that is finished - an order
 * delivered or cancelled, a product deleted - whose last change is older
 * than the retention. What stays: every live entity's row however old,
 * so a client told to reset and reloading from cursor 0 gets everything
 * it needs. Dropping a row raises the tenant's pruned_through to the
 * highest seq dropped; ListChanges reports it and sync answers an older
 * cursor with reset.
 *
 * Replicas: each tenant is pruned in a transaction of its own that first
 * takes a try-advisory lock on the tenant (another replica holding it is
 * pruning that tenant now: skip it), then locks the tenant's change_seq
 * row - the order writers take (change_seq, then changes), so the two can
 * never wait on each other in a cycle - and deletes a batch.
 */
#include <stdlib.h>
#include <string.h>

#include "libs/base/strutil.h"
#include "services/orders/store.h"
#include "services/orders/store_internal.h"

/* The prunable rows of one tenant ($1), older than $2 ms: a condition
 * shared by the look and the delete. */
#define PRUNABLE                                                               \
  "c.tenant_id = $1::uuid AND c.changed_at < now() - $2::bigint * "            \
  "interval '1 millisecond' AND (c.op = 'delete' OR (c.entity = 'order' AND "  \
  "EXISTS (SELECT 1 FROM orders.orders o WHERE o.tenant_id = $1::uuid AND "    \
  "o.id = c.entity_id AND o.status IN ('delivered', 'cancelled'))))"

typedef struct tenants_args {
  int64_t older_ms;
  char (*tids)[UUID_STR_LEN + 1];
  size_t cap, *n;
} tenants_args;

/* Across tenants (the janitor's scope): tenants with old rows that may be
 * prunable (their orders' status is checked in the tenant's own
 * transaction). */
static int tenants_fn(db_conn *c, void *ud) {
  tenants_args *a = ud;
  db_param ps[] = {db_int64(a->older_ms), db_int64((int64_t)a->cap)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT DISTINCT tenant_id::text FROM orders.changes "
                   "WHERE changed_at < now() - $1::bigint * "
                   "interval '1 millisecond' AND (op = 'delete' OR "
                   "entity = 'order') LIMIT $2",
                   ps, DB_NPARAMS(ps), &r);
  for (int i = 0; rc == ERR_OK && i < db_nrows(r); i++)
    str_copy(a->tids[(*a->n)++], db_get(r, i, 0), UUID_STR_LEN + 1);
  db_result_free(r);
  return rc;
}

typedef struct prune_args {
  const char *tid;
  int64_t older_ms;
  size_t batch;
  int64_t *pruned;
} prune_args;

static int prune_fn(db_conn *c, void *ud) {
  prune_args *a = ud;
  db_param lk[] = {db_text(a->tid)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT pg_try_advisory_xact_lock(hashtextextended("
                   "'orders.changes-prune:' || $1, 0))",
                   lk, DB_NPARAMS(lk), &r);
  bool got = rc == ERR_OK && db_nrows(r) == 1 && db_get(r, 0, 0) != NULL &&
             db_get(r, 0, 0)[0] == 't';
  db_result_free(r);
  if (rc != ERR_OK || !got) return rc;
  rc = db_exec(c,
               "SELECT 1 FROM orders.change_seq WHERE tenant_id = $1::uuid "
               "FOR UPDATE",
               lk, DB_NPARAMS(lk), NULL);
  if (rc != ERR_OK) return rc;
  db_param ps[] = {db_text(a->tid), db_int64(a->older_ms),
                   db_int64((int64_t)a->batch)};
  rc = db_exec(c,
               "WITH gone AS (DELETE FROM orders.changes d USING ("
               "  SELECT c.entity, c.entity_id FROM orders.changes c "
               "  WHERE " PRUNABLE " ORDER BY c.seq LIMIT $3) p "
               "  WHERE d.tenant_id = $1::uuid AND d.entity = p.entity AND "
               "  d.entity_id = p.entity_id RETURNING d.seq), "
               "up AS (UPDATE orders.change_seq SET pruned_through = "
               "  greatest(pruned_through, (SELECT max(seq) FROM gone)) "
               "  WHERE tenant_id = $1::uuid AND EXISTS (SELECT 1 FROM gone)) "
               "SELECT count(*) FROM gone",
               ps, DB_NPARAMS(ps), &r);
  if (rc == ERR_OK && db_nrows(r) == 1) rc = db_get_int64(r, 0, 0, a->pruned);
  db_result_free(r);
  return rc;
}

int store_prune_changes(store *st, int64_t older_ms, size_t batch,
                        int64_t *pruned) {
  *pruned = 0;
  enum { TENANTS = 100 };
  char(*tids)[UUID_STR_LEN + 1] = calloc(TENANTS, sizeof *tids);
  if (tids == NULL) return ERR_NOMEM;
  size_t n = 0;
  tenants_args ta = {
      .older_ms = older_ms, .tids = tids, .cap = TENANTS, .n = &n};
  int rc = store_run_tx(st, NULL, true, tenants_fn, &ta);
  for (size_t i = 0; rc == ERR_OK && i < n; i++) {
    int64_t k = 0;
    prune_args pa = {.tid = tids[i],
                     .older_ms = older_ms,
                     .batch = batch ? batch : 1000,
                     .pruned = &k};
    /* A tenant's batches until it has no more, each its own
     * transaction (short locks on its change_seq row). */
    do {
      k = 0;
      rc = store_run_tx(st, tids[i], false, prune_fn, &pa);
      *pruned += k;
    } while (rc == ERR_OK && k == (int64_t)pa.batch);
  }
  free(tids);
  return rc;
}
