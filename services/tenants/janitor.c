/*
 * janitor.c - periodic reaping and status resync (see janitor.h). One
 * thread; waits on a condition variable so stop is prompt.
 */
#include "services/tenants/janitor.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "libs/obs/log.h"

#define SYNC_MAX 10000

struct janitor {
  janitor_options o;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool stop;
  pthread_t thread;
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

static void *janitor_main(void *arg) {
  janitor *j = arg;
  pthread_mutex_lock(&j->mu);
  while (!j->stop) {
    pthread_mutex_unlock(&j->mu);
    janitor_run_once(&j->o);
    pthread_mutex_lock(&j->mu);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += j->o.interval_ms / 1000;
    ts.tv_nsec += (j->o.interval_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    while (!j->stop)
      if (pthread_cond_timedwait(&j->cv, &j->mu, &ts) != 0)
        break;
  }
  pthread_mutex_unlock(&j->mu);
  return NULL;
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
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_mutex_init(&j->mu, NULL);
  pthread_cond_init(&j->cv, &ca);
  pthread_condattr_destroy(&ca);
  if (pthread_create(&j->thread, NULL, janitor_main, j) != 0) {
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    free(j);
    return ERR_INTERNAL;
  }
  *out = j;
  return ERR_OK;
}

void janitor_stop(janitor *j) {
  if (j == NULL)
    return;
  pthread_mutex_lock(&j->mu);
  j->stop = true;
  pthread_cond_signal(&j->cv);
  pthread_mutex_unlock(&j->mu);
  pthread_join(j->thread, NULL);
  pthread_cond_destroy(&j->cv);
  pthread_mutex_destroy(&j->mu);
  free(j);
}
