/*
 * store_attempts.c - the history of a delivery's attempts (table
 * delivery_attempts, migrations/0005_settings_attempts.sql): read with
 * the delivery (store_get_delivery) and trimmed when a retry starts a new
 * round. Rows are written by store_record, in the statement that records
 * the attempt on the delivery. Runs inside the caller's transaction
 * (tenant set, the store's role), every statement filtered on tenant_id.
 */
#include <stdlib.h>
#include <string.h>

#include "services/notifications/store_internal.h"

static int read_entry(const db_result *r, int row, store_attempt_entry *e) {
  memset(e, 0, sizeof *e);
  int64_t number = 0, code = 0;
  store_copy_col(r, row, "error", e->error, sizeof e->error);
  int rc = db_get_int64(r, row, db_col(r, "number"), &number);
  if (rc == ERR_OK) rc = db_get_int64(r, row, db_col(r, "status_code"), &code);
  if (rc == ERR_OK)
    rc = db_get_int64(r, row, db_col(r, "duration_ms"), &e->duration_ms);
  if (rc == ERR_OK) rc = store_time_col(r, row, "started_ms", e->at);
  e->number = (int)number;
  e->status_code = (int)code;
  return rc;
}

int store_list_attempts(db_conn *c, const char *tid, const char *id, size_t max,
                        store_attempt_entry **out, size_t *n) {
  *out = NULL;
  *n = 0;
  db_param ps[] = {db_text(tid), db_text(id), db_int64((int64_t)max)};
  db_result *r = NULL;
  /* The newest max, then turned oldest first. */
  int rc = db_exec(
      c,
      "SELECT * FROM (SELECT id, number, COALESCE(status_code, 0) AS "
      "status_code, COALESCE(error, '') AS error, duration_ms, "
      "floor(extract(epoch FROM started_at) * 1000)::bigint AS started_ms "
      "FROM notifications.delivery_attempts "
      "WHERE tenant_id = $1::uuid AND delivery_id = $2::uuid "
      "ORDER BY id DESC LIMIT $3) newest ORDER BY id",
      ps, DB_NPARAMS(ps), &r);
  size_t rows = rc == ERR_OK ? (size_t)db_nrows(r) : 0;
  if (rows > 0 && (*out = calloc(rows, sizeof **out)) == NULL) rc = ERR_NOMEM;
  for (size_t i = 0; rc == ERR_OK && i < rows; i++, (*n)++)
    rc = read_entry(r, (int)i, &(*out)[i]);
  db_result_free(r);
  return rc;
}

int store_trim_attempts(db_conn *c, const char *tid, const char *id,
                        size_t keep) {
  db_param ps[] = {db_text(tid), db_text(id), db_int64((int64_t)keep)};
  return db_exec(
      c,
      "DELETE FROM notifications.delivery_attempts "
      "WHERE tenant_id = $1::uuid AND delivery_id = $2::uuid "
      "AND id NOT IN (SELECT id FROM notifications.delivery_attempts "
      "WHERE tenant_id = $1::uuid AND delivery_id = $2::uuid "
      "ORDER BY id DESC LIMIT $3)",
      ps, DB_NPARAMS(ps), NULL);
}
