/*
 * janitor.c - periodic reaping and status resync (see janitor.h). The
 * thread, its interval and prompt stop are libs/svc's periodic; this file
 * is the round.
 */
#include "services/tenants/janitor.h"

#include <stdlib.h>

#include "libs/obs/log.h"

#define SYNC_MAX 10000

static void sync_statuses(const janitor_options *o) {
  if (o->deps->cache == NULL) return;
  store_status *st = calloc(SYNC_MAX, sizeof *st);
  if (st == NULL) return;
  size_t n = 0;
  int rc = store_statuses_to_sync(o->deps->st, o->status_recent_ms, st,
                                  SYNC_MAX, &n);
  if (rc != ERR_OK) {
    log_warn("janitor: reading tenant statuses failed", "error", err_str(rc));
  } else {
    for (size_t i = 0; i < n; i++) {
      if (rescache_set_status(o->deps->cache, st[i].id, st[i].status) !=
          ERR_OK) {
        log_warn("janitor: Redis refused tenant statuses; retrying later");
        break;
      }
    }
  }
  free(st);
}

void janitor_run_once(const janitor_options *o) {
  size_t reaped = 0;
  int rc = provision_reap(o->deps, o->provisioning_max_age_ms, &reaped);
  if (rc != ERR_OK) log_warn("janitor: reaping failed", "error", err_str(rc));
  sync_statuses(o);
  /* Expired Idempotency-Keys (lookups ignore them already). */
  rc = store_expire_idempotency(o->deps->st, 1000, NULL);
  if (rc != ERR_OK)
    log_warn("janitor: expiring idempotency keys failed", "error", err_str(rc));
}

static void janitor_round(void *arg) { janitor_run_once(arg); }

int janitor_start(janitor_options *o, periodic **out) {
  *out = NULL;
  if (o == NULL || o->deps == NULL || o->interval_ms <= 0 ||
      o->provisioning_max_age_ms < 0 || o->status_recent_ms < 0)
    return ERR_INVAL;
  periodic_options po = {.name = "janitor",
                         .interval_ms = o->interval_ms,
                         .fn = janitor_round,
                         .arg = o};
  return periodic_start(&po, out);
}
