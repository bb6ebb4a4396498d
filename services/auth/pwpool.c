/*
 * pwpool.c - the password hashing pool (see pwpool.h).
 *
 * One mutex guards the queue, the counters and every job's state; each
 * job has its own condition variable that its waiter sleeps on (with the
 * monotonic clock, so a wall-clock step neither fires nor postpones a
 * deadline). A job is owned by two parties, the waiter and the pool, and
 * freed by whichever lets go last: the waiter when the job finished while
 * it waited, the hashing thread when the waiter gave up first.
 */
#include "services/auth/pwpool.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libs/base/timeutil.h"

enum job_kind { JOB_HASH, JOB_VERIFY };
enum job_state { JS_QUEUED, JS_RUNNING, JS_DONE };

typedef struct job {
  struct job *next;
  enum job_kind kind;
  enum job_state state;
  bool abandoned; /* the waiter left: the pool frees the job */
  int rc;
  bool ok;                    /* JOB_VERIFY result */
  char hash[PWPOOL_HASH_MAX]; /* JOB_HASH output / JOB_VERIFY input */
  size_t pwlen;
  pthread_cond_t cv;
  char pw[]; /* wiped when done */
} job;

struct pwpool {
  pwpool_config cfg;
  pthread_mutex_t mu;
  pthread_cond_t work_cv;
  job *head, *tail;
  int pending;
  bool closing;
  pthread_t *threads;
  int nthreads;
  char dummy[PWPOOL_HASH_MAX];
  uint64_t done, rejected, abandoned;
};

static void job_free(job *j) {
  if (j == NULL) return;
  sodium_memzero(j->pw, j->pwlen);
  sodium_memzero(j->hash, sizeof j->hash);
  pthread_cond_destroy(&j->cv);
  free(j);
}

static void run_job(pwpool *p, job *j) {
  if (j->kind == JOB_HASH) {
    j->rc = crypto_pwhash_str(j->hash, j->pw, j->pwlen, p->cfg.opslimit,
                              p->cfg.memlimit) == 0
                ? ERR_OK
                : ERR_INTERNAL;
  } else {
    j->ok = crypto_pwhash_str_verify(j->hash, j->pw, j->pwlen) == 0;
    j->rc = ERR_OK;
  }
  sodium_memzero(j->pw, j->pwlen);
}

static void *worker_main(void *arg) {
  pwpool *p = arg;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (p->head == NULL && !p->closing)
      pthread_cond_wait(&p->work_cv, &p->mu);
    if (p->head == NULL) break; /* closing and drained */
    job *j = p->head;
    p->head = j->next;
    if (p->head == NULL) p->tail = NULL;
    if (j->abandoned || p->closing) {
      /* Nobody waits for it (or we are stopping): skip the hash. */
      bool free_it = j->abandoned;
      j->rc = ERR_CLOSED;
      j->state = JS_DONE;
      p->pending--;
      if (free_it)
        job_free(j);
      else
        pthread_cond_signal(&j->cv);
      continue;
    }
    j->state = JS_RUNNING;
    pthread_mutex_unlock(&p->mu);
    run_job(p, j);
    pthread_mutex_lock(&p->mu);
    j->state = JS_DONE;
    p->pending--;
    p->done++;
    if (j->abandoned)
      job_free(j);
    else
      pthread_cond_signal(&j->cv);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

/* Admits, queues and waits for one job. On ERR_OK the job is done and
 * still the caller's (*out); otherwise it is gone or the pool's. */
static int submit_wait(pwpool *p, enum job_kind kind, const char *hash,
                       const char *pw, size_t len, int64_t deadline,
                       job **out) {
  *out = NULL;
  if (len > PWPOOL_PASSWORD_MAX) return ERR_TOOBIG;
  if (hash != NULL && strlen(hash) >= PWPOOL_HASH_MAX) return ERR_INVAL;
  job *j = calloc(1, sizeof *j + len + 1);
  if (j == NULL) return ERR_NOMEM;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&j->cv, &ca);
  pthread_condattr_destroy(&ca);
  j->kind = kind;
  j->pwlen = len;
  memcpy(j->pw, pw, len);
  if (hash != NULL) memcpy(j->hash, hash, strlen(hash) + 1);

  pthread_mutex_lock(&p->mu);
  if (p->closing) {
    pthread_mutex_unlock(&p->mu);
    job_free(j);
    return ERR_CLOSED;
  }
  if (p->pending >= p->cfg.max_pending) {
    p->rejected++;
    pthread_mutex_unlock(&p->mu);
    job_free(j);
    return ERR_TOOBIG;
  }
  p->pending++;
  if (p->tail != NULL)
    p->tail->next = j;
  else
    p->head = j;
  p->tail = j;
  pthread_cond_signal(&p->work_cv);

  struct timespec ts;
  int64_t left = deadline - time_mono_ms();
  if (left < 0) left = 0;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_sec += (time_t)(left / 1000);
  ts.tv_nsec += (long)(left % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  int w = 0;
  while (j->state != JS_DONE && w == 0)
    w = pthread_cond_timedwait(&j->cv, &p->mu, &ts);
  if (j->state != JS_DONE) {
    j->abandoned = true; /* the hashing thread frees it */
    p->abandoned++;
    pthread_mutex_unlock(&p->mu);
    return ERR_TIMEOUT;
  }
  pthread_mutex_unlock(&p->mu);
  int rc = j->rc;
  if (rc != ERR_OK) {
    job_free(j);
    return rc;
  }
  *out = j;
  return ERR_OK;
}

int pwpool_hash(pwpool *p, const char *password, size_t len,
                int64_t deadline_mono_ms, char out[PWPOOL_HASH_MAX]) {
  if (p == NULL || password == NULL || out == NULL) return ERR_INVAL;
  job *j = NULL;
  int rc = submit_wait(p, JOB_HASH, NULL, password, len, deadline_mono_ms, &j);
  if (rc != ERR_OK) return rc;
  memcpy(out, j->hash, PWPOOL_HASH_MAX);
  job_free(j);
  return ERR_OK;
}

int pwpool_verify(pwpool *p, const char *hash, const char *password, size_t len,
                  int64_t deadline_mono_ms, bool *ok) {
  if (ok != NULL) *ok = false;
  if (p == NULL || password == NULL || ok == NULL) return ERR_INVAL;
  job *j = NULL;
  int rc = submit_wait(p, JOB_VERIFY, hash != NULL ? hash : p->dummy, password,
                       len, deadline_mono_ms, &j);
  if (rc != ERR_OK) return rc;
  /* The dummy hash is of random bytes nobody knows; still, never let it
   * answer true. */
  *ok = j->ok && hash != NULL;
  job_free(j);
  return ERR_OK;
}

int pwpool_new(const pwpool_config *cfg, pwpool **out) {
  if (out == NULL) return ERR_INVAL;
  *out = NULL;
  if (cfg == NULL || cfg->threads < 1 || cfg->threads > 64 ||
      cfg->max_pending < cfg->threads || cfg->max_pending > 100000 ||
      cfg->opslimit < crypto_pwhash_OPSLIMIT_MIN ||
      cfg->opslimit > crypto_pwhash_OPSLIMIT_MAX ||
      cfg->memlimit < crypto_pwhash_MEMLIMIT_MIN ||
      cfg->memlimit > (size_t)4 << 30)
    return ERR_INVAL;
  if (sodium_init() < 0) return ERR_INTERNAL;
  pwpool *p = calloc(1, sizeof *p);
  if (p == NULL) return ERR_NOMEM;
  p->cfg = *cfg;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->work_cv, NULL);

  /* The dummy: a hash of 32 random bytes with the configured cost, so a
   * login for an unknown e-mail costs what a real one costs. */
  unsigned char rnd[32];
  randombytes_buf(rnd, sizeof rnd);
  int hrc = crypto_pwhash_str(p->dummy, (const char *)rnd, sizeof rnd,
                              cfg->opslimit, cfg->memlimit);
  sodium_memzero(rnd, sizeof rnd);
  if (hrc != 0) {
    pwpool_free(p);
    return ERR_INTERNAL;
  }
  p->threads = calloc((size_t)cfg->threads, sizeof *p->threads);
  if (p->threads == NULL) {
    pwpool_free(p);
    return ERR_NOMEM;
  }
  for (int i = 0; i < cfg->threads; i++) {
    if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0) {
      pwpool_free(p);
      return ERR_INTERNAL;
    }
    p->nthreads++;
  }
  *out = p;
  return ERR_OK;
}

void pwpool_free(pwpool *p) {
  if (p == NULL) return;
  pthread_mutex_lock(&p->mu);
  p->closing = true;
  pthread_cond_broadcast(&p->work_cv);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->nthreads; i++) pthread_join(p->threads[i], NULL);
  /* Without threads (start-up failure) queued jobs are still ours. */
  while (p->head != NULL) {
    job *j = p->head;
    p->head = j->next;
    job_free(j);
  }
  free(p->threads);
  pthread_cond_destroy(&p->work_cv);
  pthread_mutex_destroy(&p->mu);
  free(p);
}

void pwpool_get_stats(pwpool *p, pwpool_stats *out) {
  pthread_mutex_lock(&p->mu);
  out->pending = p->pending;
  out->done = p->done;
  out->rejected = p->rejected;
  out->abandoned = p->abandoned;
  pthread_mutex_unlock(&p->mu);
}
