/*
 * janitor.c - periodic reaping and status resync (see janitor.h). The
 * thread, its interval and prompt stop are libs/svc's periodic; this file
 * is the round.
 */
#include "services/tenants/janitor.h"

#include <stdlib.h>

#include "libs/obs/log.h"
#include "libs/svc/periodic.h"

#define SYNC_MAX 10000

struct janitor {
  janitor_options o;
  periodic *thread;
};

static void sync_statuses(const janitor_options *o) {
  if (o->deps->cache == NULL)
    return;
  store_status *st = calloc(SYNC_MAX, sizeof *st);
  if (st == NULL)
    return;
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
  if (rc != ERR_OK)
    log_warn("janitor: reaping failed", "error", err_str(rc));
  sync_statuses(o);
}

static void janitor_round(void *arg) {
  const janitor *j = arg;
  janitor_run_once(&j->o);
}

int janitor_start(const janitor_options *opts, janitor **out) {
  *out = NULL;
  if (opts == NULL || opts->deps == NULL || opts->interval_ms <= 0 ||
      opts->provisioning_max_age_ms < 0 || opts->status_recent_ms < 0)
    return ERR_INVAL;
  janitor *j = calloc(1, sizeof *j);
  if (j == NULL)
    return ERR_NOMEM;
  j->o = *opts;
  periodic_options po = {.name = "janitor",
                         .interval_ms = j->o.interval_ms,
                         .fn = janitor_round,
                         .arg = j};
  int rc = periodic_start(&po, &j->thread);
  if (rc != ERR_OK) {
    free(j);
    return rc;
  }
  *out = j;
  return ERR_OK;
}

void janitor_stop(janitor *j) {
  if (j == NULL)
    return;
  periodic_stop(j->thread);
  free(j);
}
