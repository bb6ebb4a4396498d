/*
 * janitor.c - periodic chores (see janitor.h). One thread waiting on a
 * condition variable, so stop is prompt.
 */
#include "services/orders/janitor.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "libs/obs/log.h"

#define EXPIRE_BATCH 5000

struct janitor {
  janitor_options o;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool stop;
  pthread_t thread;
};

void janitor_run_once(const janitor_options *o) {
  int64_t deleted = 0;
  int rc;
  /* Batches, so one round never holds a long transaction. */
  do {
    rc = store_expire_idempotency(o->st, EXPIRE_BATCH, &deleted);
  } while (rc == ERR_OK && deleted == EXPIRE_BATCH);
  if (rc != ERR_OK)
    log_warn("janitor: expiring idempotency keys failed", "error",
             err_str(rc));
  size_t owed = menucache_retry(o->menu);
  if (owed > 0) {
    char n[24];
    snprintf(n, sizeof n, "%zu", owed);
    log_warn("janitor: menu cache invalidations still owed", "tenants", n);
  }
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

int janitor_start(const janitor_options *o, janitor **out) {
  *out = NULL;
  if (o == NULL || o->st == NULL || o->interval_ms <= 0)
    return ERR_INVAL;
  janitor *j = calloc(1, sizeof *j);
  if (j == NULL)
    return ERR_NOMEM;
  j->o = *o;
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
