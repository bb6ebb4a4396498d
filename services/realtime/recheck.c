/*
 * recheck.c - background re-verification of live tokens (see recheck.h).
 *
 * The registry is a map from the connection id (as decimal text) to its
 * token and generation, guarded by one mutex that the WebSocket thread
 * holds only to add, replace or remove one entry, and the recheck thread
 * only to copy the entries out. Verification happens with no lock held,
 * BATCH tokens at a time through authn_verify_batch, so the tokens due
 * for a Redis lookup cost one MGET per batch instead of one each.
 */
#include "services/realtime/recheck.h"

#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libs/base/timeutil.h"
#include "libs/obs/metrics.h"
#include "services/realtime/strmap.h"

#define TOKEN_MAX 4096
#define BATCH 256 /* tokens per authn_verify_batch: one MGET of 768 keys */

typedef struct entry {
  uint64_t id;
  uint32_t gen;
  size_t len;
  char token[]; /* NUL-terminated */
} entry;

struct recheck {
  recheck_config c;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool stop, woken;
  strmap *live; /* id -> entry*, under mu */
  metrics_child *m_pass, *m_revoked;
};

static void free_entry(void *arg, const char *key, void *value) {
  (void)arg;
  (void)key;
  entry *e = value;
  if (e != NULL) sodium_memzero(e->token, e->len);
  free(e);
}

typedef struct snapshot {
  entry **e;
  size_t n;
} snapshot;

static void copy_entry(void *arg, const char *key, void *value) {
  (void)key;
  snapshot *s = arg;
  entry *src = value, *e = malloc(sizeof *e + src->len + 1);
  if (e == NULL) return; /* checked at the next pass */
  memcpy(e, src, sizeof *e + src->len + 1);
  s->e[s->n++] = e;
}

/* Verifies e[0..n) as one batch (one Redis lookup for those due) and
 * reports the revoked ones. */
static void verify_batch(recheck *r, entry **e, size_t n) {
  const char *toks[BATCH] = {NULL};
  size_t lens[BATCH] = {0};
  int rcs[BATCH];
  enum authn_result why[BATCH];
  for (size_t i = 0; i < n; i++) {
    toks[i] = e[i]->token;
    lens[i] = e[i]->len;
  }
  if (authn_verify_batch(r->c.verifier, toks, lens, n, rcs, why) != ERR_OK)
    return; /* out of memory: the next pass tries again */
  for (size_t i = 0; i < n; i++)
    if (rcs[i] == ERR_INVAL &&
        (why[i] == AUTHN_REVOKED || why[i] == AUTHN_TENANT_SUSPENDED)) {
      metrics_inc(r->m_revoked);
      r->c.report(r->c.arg, e[i]->id, e[i]->gen);
    }
}

/* Verifies every entry of s in batches, reports the refused ones, frees
 * s. */
static void verify_all(recheck *r, snapshot *s) {
  for (size_t i = 0; i < s->n; i += BATCH)
    verify_batch(r, s->e + i, s->n - i < BATCH ? s->n - i : BATCH);
  for (size_t i = 0; i < s->n; i++) free_entry(NULL, NULL, s->e[i]);
  free(s->e);
}

static void pass(recheck *r) {
  int64_t t0 = time_mono_ms();
  snapshot s = {NULL, 0};
  pthread_mutex_lock(&r->mu);
  size_t n = strmap_len(r->live);
  s.e = n > 0 ? malloc(n * sizeof *s.e) : NULL;
  if (s.e != NULL) strmap_each(r->live, copy_entry, &s);
  pthread_mutex_unlock(&r->mu);
  verify_all(r, &s);
  metrics_observe(r->m_pass, (double)(time_mono_ms() - t0) / 1000.0);
}

static void *run(void *arg) {
  recheck *r = arg;
  pthread_mutex_lock(&r->mu);
  while (!r->stop) {
    if (!r->woken) {
      struct timespec until;
      clock_gettime(CLOCK_REALTIME, &until);
      int64_t ns = until.tv_nsec + (r->c.interval_ms % 1000) * 1000000;
      until.tv_sec += r->c.interval_ms / 1000 + ns / 1000000000;
      until.tv_nsec = ns % 1000000000;
      pthread_cond_timedwait(&r->cv, &r->mu, &until);
    }
    r->woken = false;
    if (r->stop) break;
    pthread_mutex_unlock(&r->mu);
    pass(r);
    pthread_mutex_lock(&r->mu);
  }
  pthread_mutex_unlock(&r->mu);
  return NULL;
}

static void init_metrics(recheck *r) {
  static const double buckets[] = {0.0001, 0.001, 0.01, 0.05, 0.1,
                                   0.25,   0.5,   1,    2.5};
  r->m_pass = metrics_child_get(
      metrics_histogram("realtime_recheck_pass_seconds",
                        "One pass re-verifying every live token", 0, NULL,
                        buckets, sizeof buckets / sizeof buckets[0]),
      NULL);
  r->m_revoked = metrics_child_get(
      metrics_counter("realtime_recheck_revoked_total",
                      "Live connections found revoked (closed 4003)", 0, NULL),
      NULL);
}

int recheck_start(const recheck_config *c, recheck **out) {
  *out = NULL;
  if (c == NULL || c->verifier == NULL || c->interval_ms < 1 ||
      c->report == NULL)
    return ERR_INVAL;
  recheck *r = calloc(1, sizeof *r);
  if (r == NULL) return ERR_NOMEM;
  r->c = *c;
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cv, NULL);
  init_metrics(r);
  int rc = strmap_new(&r->live);
  if (rc == ERR_OK && pthread_create(&r->thread, NULL, run, r) != 0)
    rc = ERR_INTERNAL;
  if (rc != ERR_OK) {
    strmap_free(r->live);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
    return rc;
  }
  *out = r;
  return ERR_OK;
}

void recheck_free(recheck *r) {
  if (r == NULL) return;
  pthread_mutex_lock(&r->mu);
  r->stop = true;
  pthread_cond_signal(&r->cv);
  pthread_mutex_unlock(&r->mu);
  pthread_join(r->thread, NULL);
  strmap_each(r->live, free_entry, NULL);
  strmap_free(r->live);
  pthread_cond_destroy(&r->cv);
  pthread_mutex_destroy(&r->mu);
  free(r);
}

int recheck_put(recheck *r, uint64_t id, uint32_t gen, const char *token) {
  size_t len = token == NULL ? 0 : strlen(token);
  if (len == 0 || len > TOKEN_MAX) return ERR_INVAL;
  entry *e = malloc(sizeof *e + len + 1);
  if (e == NULL) return ERR_NOMEM;
  e->id = id;
  e->gen = gen;
  e->len = len;
  memcpy(e->token, token, len + 1);
  char key[24];
  snprintf(key, sizeof key, "%" PRIu64, id);
  pthread_mutex_lock(&r->mu);
  void **slot = strmap_slot(r->live, key, true);
  if (slot != NULL) {
    free_entry(NULL, NULL, *slot);
    *slot = e;
  }
  pthread_mutex_unlock(&r->mu);
  if (slot == NULL) {
    free_entry(NULL, NULL, e);
    return ERR_NOMEM;
  }
  return ERR_OK;
}

void recheck_drop(recheck *r, uint64_t id) {
  char key[24];
  snprintf(key, sizeof key, "%" PRIu64, id);
  pthread_mutex_lock(&r->mu);
  void **slot = strmap_slot(r->live, key, false);
  if (slot != NULL) {
    free_entry(NULL, NULL, *slot);
    strmap_del(r->live, key);
  }
  pthread_mutex_unlock(&r->mu);
}

void recheck_wake(recheck *r) {
  pthread_mutex_lock(&r->mu);
  r->woken = true;
  pthread_cond_signal(&r->cv);
  pthread_mutex_unlock(&r->mu);
}

static int on_event(void *arg, const Rpc__V1__Event *ev) {
  recheck *r = arg;
  /* A bad payload is the publisher's problem: never hold the stream. */
  int rc = authn_apply_event(r->c.verifier, ev);
  (void)rc;
  recheck_wake(r);
  return ERR_OK;
}

int recheck_subscribe(recheck *r, const char *address, bus_subscriber **out) {
  *out = NULL;
  bus_subscriber_options o;
  bus_subscriber_options_init(&o);
  bus_subscriber *s = NULL;
  int rc = bus_subscriber_new(address, on_event, r, &o, &s);
  if (rc == ERR_OK) rc = bus_subscribe_exact(s, AUTHN_TOPIC_REVOKED);
  if (rc == ERR_OK) rc = bus_subscribe_exact(s, AUTHN_TOPIC_TENANTS);
  if (rc == ERR_OK) rc = bus_subscriber_start(s);
  if (rc != ERR_OK) {
    bus_subscriber_free(s);
    return rc;
  }
  *out = s;
  return ERR_OK;
}
