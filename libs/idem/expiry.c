/*
 * expiry.c - the rounds of expiry.h: batches of idem_expire on the
 * thread of a libs/svc periodic. A failed round is logged and tried again
 * at the next interval.
 */
#include "libs/idem/expiry.h"

#include <stdlib.h>
#include <string.h>

#include "libs/base/strutil.h"
#include "libs/idem/idem.h"
#include "libs/obs/log.h"
#include "libs/svc/periodic.h"

#define BATCH 1000
#define NAME_MAX_LEN 127

struct idem_expiry {
  const db_store *store;
  char table[NAME_MAX_LEN + 1];
  char setting[NAME_MAX_LEN + 1];
  periodic *timer;
};

typedef struct batch_args {
  const char *table;
  int64_t deleted;
} batch_args;

static int batch_fn(db_conn *c, void *ud) {
  batch_args *a = ud;
  return idem_expire(c, a->table, BATCH, &a->deleted);
}

int idem_expiry_run(const db_store *st, const char *table, const char *setting,
                    int64_t *deleted) {
  if (deleted != NULL) *deleted = 0;
  if (st == NULL || table == NULL || setting == NULL) return ERR_INVAL;
  db_setting set = {setting, "on"};
  db_tx_opts o = {.settings = &set, .nsettings = 1};
  batch_args a = {.table = table};
  int rc;
  do { /* short transactions: one batch each */
    a.deleted = 0;
    rc = db_store_tx(st, &o, batch_fn, &a);
    if (rc == ERR_OK && deleted != NULL) *deleted += a.deleted;
  } while (rc == ERR_OK && a.deleted == BATCH);
  return rc;
}

static void round_fn(void *arg) {
  idem_expiry *e = arg;
  int rc = idem_expiry_run(e->store, e->table, e->setting, NULL);
  if (rc != ERR_OK)
    log_warn("expiring idempotency keys failed", "table", e->table, "error",
             err_str(rc));
}

int idem_expiry_start(const idem_expiry_options *o, idem_expiry **out) {
  *out = NULL;
  if (o == NULL || o->store == NULL || o->table == NULL || o->setting == NULL ||
      o->interval_ms <= 0 || strlen(o->table) > NAME_MAX_LEN ||
      strlen(o->setting) > NAME_MAX_LEN)
    return ERR_INVAL;
  idem_expiry *e = calloc(1, sizeof *e);
  if (e == NULL) return ERR_NOMEM;
  e->store = o->store;
  str_copy(e->table, o->table, sizeof e->table);
  str_copy(e->setting, o->setting, sizeof e->setting);
  periodic_options po = {.name = "idem-expiry",
                         .interval_ms = o->interval_ms,
                         .fn = round_fn,
                         .arg = e};
  int rc = periodic_start(&po, &e->timer);
  if (rc != ERR_OK) {
    free(e);
    return rc;
  }
  *out = e;
  return ERR_OK;
}

void idem_expiry_stop(idem_expiry *e) {
  if (e == NULL) return;
  periodic_stop(e->timer);
  free(e);
}
