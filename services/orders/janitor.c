/*
 * janitor.c - periodic chores (see janitor.h). The thread, its interval
 * and prompt stop are libs/svc's periodic; this file is the round.
 */
#include "services/orders/janitor.h"

#include <stdio.h>
#include <stdlib.h>

#include "libs/base/timeutil.h"
#include "libs/obs/log.h"

#define EXPIRE_BATCH 5000
#define PRUNE_BATCH 1000

/* The change log's pruning, when its time has come. */
static void prune_changes(janitor_options *o) {
  if (o->changes_retention_ms <= 0) return;
  int64_t now = time_mono_ms();
  if (now < o->next_prune_ms) return;
  o->next_prune_ms = now + o->prune_every_ms;
  int64_t pruned = 0;
  int rc =
      store_prune_changes(o->st, o->changes_retention_ms, PRUNE_BATCH, &pruned);
  if (rc != ERR_OK)
    log_warn("janitor: pruning the change log failed", "error", err_str(rc));
  else if (pruned > 0) {
    char n[24];
    snprintf(n, sizeof n, "%lld", (long long)pruned);
    log_info("janitor: change log pruned", "rows", n);
  }
}

void janitor_run_once(janitor_options *o) {
  int64_t deleted = 0;
  int rc;
  /* Batches, so one round never holds a long transaction. */
  do {
    rc = store_expire_idempotency(o->st, EXPIRE_BATCH, &deleted);
  } while (rc == ERR_OK && deleted == EXPIRE_BATCH);
  if (rc != ERR_OK)
    log_warn("janitor: expiring idempotency keys failed", "error", err_str(rc));
  prune_changes(o);
  size_t owed = menucache_retry(o->menu);
  if (owed > 0) {
    char n[24];
    snprintf(n, sizeof n, "%zu", owed);
    log_warn("janitor: menu cache invalidations still owed", "tenants", n);
  }
}

static void janitor_round(void *arg) { janitor_run_once(arg); }

int janitor_start(janitor_options *o, periodic **out) {
  *out = NULL;
  if (o == NULL || o->st == NULL || o->interval_ms <= 0) return ERR_INVAL;
  periodic_options po = {.name = "janitor",
                         .interval_ms = o->interval_ms,
                         .fn = janitor_round,
                         .arg = o};
  return periodic_start(&po, out);
}
