/*
 * store_settings.c - the settings' statements (see store_settings.h).
 * Same shape as store.c: an argument struct and a static function per
 * transaction, constant SQL with $n parameters, columns read by name.
 */
#include "services/notifications/store_settings.h"

#include <string.h>

#include "services/notifications/store_internal.h"

#define SETTINGS_COLS                                                          \
  "order_in_app, order_email, order_sms, staff_in_app, staff_email, "          \
  "staff_sms, floor(extract(epoch FROM updated_at) * 1000)::bigint AS "        \
  "updated_ms"

void store_settings_defaults(store_settings *out) {
  memset(out, 0, sizeof *out);
  store_channels d = {.in_app = SETTINGS_DEFAULT_IN_APP,
                      .email = SETTINGS_DEFAULT_EMAIL,
                      .sms = SETTINGS_DEFAULT_SMS};
  out->order = d;
  out->staff = d;
}

static int read_bool(const db_result *r, const char *name, bool *out) {
  return db_get_bool(r, 0, db_col(r, name), out);
}

/* Row 0 of a SETTINGS_COLS result into *out. */
static int read_settings(const db_result *r, store_settings *out) {
  struct {
    const char *name;
    bool *dst;
  } cols[] = {{"order_in_app", &out->order.in_app},
              {"order_email", &out->order.email},
              {"order_sms", &out->order.sms},
              {"staff_in_app", &out->staff.in_app},
              {"staff_email", &out->staff.email},
              {"staff_sms", &out->staff.sms}};
  int rc = ERR_OK;
  for (size_t i = 0; rc == ERR_OK && i < sizeof cols / sizeof cols[0]; i++)
    rc = read_bool(r, cols[i].name, cols[i].dst);
  return rc == ERR_OK ? store_time_col(r, 0, "updated_ms", out->updated_at)
                      : rc;
}

typedef struct settings_args {
  const char *tid;
  const store_settings_in *in;
  store_settings *out;
} settings_args;

static int get_fn(db_conn *c, void *ud) {
  settings_args *a = ud;
  store_settings_defaults(a->out);
  db_param ps[] = {db_text(a->tid)};
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT " SETTINGS_COLS " FROM notifications.settings "
                   "WHERE tenant_id = $1::uuid",
                   ps, DB_NPARAMS(ps), &r);
  if (rc == ERR_OK && db_nrows(r) == 1) rc = read_settings(r, a->out);
  db_result_free(r);
  return rc;
}

int store_get_settings(store *st, const char *tid, store_settings *out) {
  settings_args a = {.tid = tid, .out = out};
  return store_run(st, tid, true, get_fn, &a);
}

/* "true", "false" or NULL (unchanged) for a ::boolean parameter. */
static db_param opt_bool(const bool *b) {
  return db_text(b == NULL ? NULL : *b ? "true" : "false");
}

static int insert_defaults(db_conn *c, const char *tid) {
  store_settings d;
  store_settings_defaults(&d);
  db_param ps[] = {
      db_text(tid),         db_bool(d.order.in_app), db_bool(d.order.email),
      db_bool(d.order.sms), db_bool(d.staff.in_app), db_bool(d.staff.email),
      db_bool(d.staff.sms)};
  return db_exec(c,
                 "INSERT INTO notifications.settings (tenant_id, order_in_app, "
                 "order_email, order_sms, staff_in_app, staff_email, "
                 "staff_sms, updated_at) VALUES ($1::uuid, $2, $3, $4, $5, "
                 "$6, $7, now()) ON CONFLICT (tenant_id) DO NOTHING",
                 ps, DB_NPARAMS(ps), NULL);
}

static int update_fn(db_conn *c, void *ud) {
  settings_args *a = ud;
  const store_settings_in *in = a->in;
  int rc = insert_defaults(c, a->tid);
  db_param ps[] = {db_text(a->tid),
                   opt_bool(in->order.in_app),
                   opt_bool(in->order.email),
                   opt_bool(in->order.sms),
                   opt_bool(in->staff.in_app),
                   opt_bool(in->staff.email),
                   opt_bool(in->staff.sms)};
  db_result *r = NULL;
  if (rc == ERR_OK)
    rc = db_exec(c,
                 "UPDATE notifications.settings SET "
                 "order_in_app = COALESCE($2::boolean, order_in_app), "
                 "order_email = COALESCE($3::boolean, order_email), "
                 "order_sms = COALESCE($4::boolean, order_sms), "
                 "staff_in_app = COALESCE($5::boolean, staff_in_app), "
                 "staff_email = COALESCE($6::boolean, staff_email), "
                 "staff_sms = COALESCE($7::boolean, staff_sms), "
                 "updated_at = now() WHERE tenant_id = $1::uuid "
                 "RETURNING " SETTINGS_COLS,
                 ps, DB_NPARAMS(ps), &r);
  if (rc == ERR_OK && db_nrows(r) != 1) rc = ERR_DB;
  if (rc == ERR_OK) rc = read_settings(r, a->out);
  db_result_free(r);
  return rc;
}

int store_update_settings(store *st, const char *tid,
                          const store_settings_in *in, store_settings *out) {
  settings_args a = {.tid = tid, .in = in, .out = out};
  store_settings_defaults(out);
  return store_run(st, tid, false, update_fn, &a);
}
