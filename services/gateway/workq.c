/*
 * workq.c - a mutex, two condition variables and a ring buffer. Jobs are
 * short-lived and few (one per request in flight), so a single lock is
 * not the bottleneck; the RPC behind each job is.
 */
#include "services/gateway/workq.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

typedef struct job {
  workq_fn fn;
  void *arg;
} job;

struct workq {
  pthread_mutex_t mu;
  pthread_cond_t nonempty;
  job *ring;
  size_t depth, head, count;
  size_t running;
  bool closing;
  int nthreads;
  pthread_t *threads;
};

static void *worker(void *arg) {
  workq *q = arg;
  pthread_mutex_lock(&q->mu);
  for (;;) {
    while (q->count == 0 && !q->closing)
      pthread_cond_wait(&q->nonempty, &q->mu);
    if (q->count == 0) break; /* closing and drained */
    job j = q->ring[q->head];
    q->head = (q->head + 1) % q->depth;
    q->count--;
    q->running++;
    pthread_mutex_unlock(&q->mu);
    j.fn(j.arg);
    pthread_mutex_lock(&q->mu);
    q->running--;
  }
  pthread_mutex_unlock(&q->mu);
  return NULL;
}

int workq_new(int threads, size_t depth, workq **out) {
  *out = NULL;
  if (threads < 1 || threads > 1024 || depth < 1 || depth > 1000000)
    return ERR_INVAL;
  workq *q = calloc(1, sizeof *q);
  if (q == NULL) return ERR_NOMEM;
  q->ring = calloc(depth, sizeof *q->ring);
  q->threads = calloc((size_t)threads, sizeof *q->threads);
  if (q->ring == NULL || q->threads == NULL) {
    free(q->ring);
    free(q->threads);
    free(q);
    return ERR_NOMEM;
  }
  q->depth = depth;
  pthread_mutex_init(&q->mu, NULL);
  pthread_cond_init(&q->nonempty, NULL);
  for (int i = 0; i < threads; i++) {
    if (pthread_create(&q->threads[i], NULL, worker, q) != 0) {
      q->nthreads = i;
      workq_free(q);
      return ERR_INTERNAL;
    }
  }
  q->nthreads = threads;
  *out = q;
  return ERR_OK;
}

int workq_submit(workq *q, workq_fn fn, void *arg) {
  pthread_mutex_lock(&q->mu);
  int rc = ERR_OK;
  if (q->closing) {
    rc = ERR_CLOSED;
  } else if (q->count == q->depth) {
    rc = ERR_TOOBIG;
  } else {
    q->ring[(q->head + q->count) % q->depth] = (job){fn, arg};
    q->count++;
    pthread_cond_signal(&q->nonempty);
  }
  pthread_mutex_unlock(&q->mu);
  return rc;
}

void workq_close(workq *q) {
  pthread_mutex_lock(&q->mu);
  q->closing = true;
  pthread_cond_broadcast(&q->nonempty);
  int n = q->nthreads;
  q->nthreads = 0; /* joined below, once */
  pthread_mutex_unlock(&q->mu);
  for (int i = 0; i < n; i++) pthread_join(q->threads[i], NULL);
}

void workq_free(workq *q) {
  if (q == NULL) return;
  workq_close(q);
  pthread_cond_destroy(&q->nonempty);
  pthread_mutex_destroy(&q->mu);
  free(q->ring);
  free(q->threads);
  free(q);
}
