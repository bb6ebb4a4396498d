/*
 * periodic.c - the background round runner (see periodic.h).
 *
 * One thread, one mutex, one condition variable on CLOCK_MONOTONIC. The
 * thread runs a round with the mutex released, then waits until the
 * deadline, a wake or a stop. `woken` is a flag rather than a counter: a
 * wake asks for "a round after now", and one round satisfies any number
 * of them. Stop sets `stop` under the mutex and signals, so the thread
 * sees it either before it waits or while it waits - never loses it.
 */
#include "libs/svc/periodic.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "libs/base/strutil.h"

struct periodic {
  periodic_options o;
  char name[16]; /* pthread names are at most 15 bytes */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool stop;
  bool woken;
  pthread_t thread;
};

/* The absolute CLOCK_MONOTONIC time ms from now. */
static struct timespec deadline_in(int64_t ms) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_sec += (time_t)(ms / 1000);
  ts.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  return ts;
}

static void *periodic_main(void *arg) {
  periodic *p = arg;
  if (p->name[0] != '\0') pthread_setname_np(pthread_self(), p->name);
  pthread_mutex_lock(&p->mu);
  while (!p->stop) {
    p->woken = false;
    pthread_mutex_unlock(&p->mu);
    p->o.fn(p->o.arg);
    pthread_mutex_lock(&p->mu);
    struct timespec until = deadline_in(p->o.interval_ms);
    while (!p->stop && !p->woken)
      if (pthread_cond_timedwait(&p->cv, &p->mu, &until) != 0)
        break; /* the interval is over */
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

int periodic_start(const periodic_options *o, periodic **out) {
  *out = NULL;
  if (o == NULL || o->fn == NULL || o->interval_ms <= 0) return ERR_INVAL;
  periodic *p = calloc(1, sizeof *p);
  if (p == NULL) return ERR_NOMEM;
  p->o = *o;
  str_copy(p->name, o->name != NULL ? o->name : "", sizeof p->name);
  p->o.name = p->name;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&p->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&p->mu, NULL);
  if (pthread_create(&p->thread, NULL, periodic_main, p) != 0) {
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
    return ERR_INTERNAL;
  }
  *out = p;
  return ERR_OK;
}

void periodic_wake(periodic *p) {
  if (p == NULL) return;
  pthread_mutex_lock(&p->mu);
  p->woken = true;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
}

void periodic_stop(periodic *p) {
  if (p == NULL) return;
  pthread_mutex_lock(&p->mu);
  p->stop = true;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
  pthread_join(p->thread, NULL);
  pthread_cond_destroy(&p->cv);
  pthread_mutex_destroy(&p->mu);
  free(p);
}
