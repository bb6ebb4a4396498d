/*
 * recheck.c - background re-verification of live tokens (see recheck.h).
 *
 * The registry is a map from a token's BLAKE2b-128 (hex) to its one
 * shared copy with a reference count, guarded by one mutex that the
 * WebSocket thread holds only to take or give back a reference, and the
 * recheck thread only to take a reference to every entry at the start of
 * a pass and give them back at its end. A token never changes while held,
 * so verification reads it with no lock held, BATCH tokens at a time
 * through authn_verify_batch: the tokens due for a Redis lookup cost one
 * MGET per batch instead of one each.
 *
 * Which tokens a pass checks. With a Redis (config redis), every
 * interval the thread first reads libs/authn's revocation counter
 * (revlog.h: every revocation and tenant-status record is written with
 * it, in one script). A full pass - every held token - runs when the
 * counter moved (after authn_recheck_all, so each token's state is read
 * from Redis again, not from the cache), when a bus event woke the
 * thread, when the counter cannot be read, and every full_ms
 * (REALTIME_RECHECK_FULL, 5 s) as a safety net (a record written past the
 * counter). Otherwise the pass checks only the tokens held since the previous
 * pass (`fresh`): a connection authenticates from libs/authn's cached state,
 * which may have been read before a revocation whose full pass ran before the
 * token was held; that state is older than the mark authn_recheck_all
 * left, so this pass reads Redis for it. So a revocation is seen within
 * an interval and a pass of its record, as when every pass checked every
 * token, at the cost of one GET per interval instead of re-verifying
 * every token 1000 / interval_ms times a second.
 */
#include "services/realtime/recheck.h"

#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libs/authn/revlog.h"
#include "libs/base/timeutil.h"
#include "libs/obs/metrics.h"
#include "services/realtime/strmap.h"

#define TOKEN_MAX 4096
#define BATCH 256    /* tokens per authn_verify_batch: one MGET of 768 keys */
#define KEY_BYTES 16 /* the map's key: the token's BLAKE2b-128, in hex */
#define FULL_PASS_MS 5000 /* the safety net's default period (above) */

struct recheck_token {
  size_t refs; /* under the recheck's mu */
  bool fresh;  /* held since the last pass; under mu */
  size_t len;
  char key[KEY_BYTES * 2 + 1];
  char token[]; /* NUL-terminated; never changes while held */
};

struct recheck {
  recheck_config c;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool stop, woken;
  bool joined;  /* recheck_stop has joined the thread (the caller's only) */
  strmap *live; /* key -> recheck_token*, under mu */
  metrics_child *m_pass, *m_revoked;
  int64_t seen;      /* the counter at the last full pass (thread only) */
  bool have_seen;    /* seen is valid (thread only) */
  int64_t next_full; /* monotonic ms of the safety net's pass */
};

static void free_token(recheck_token *t) {
  if (t != NULL) sodium_memzero(t->token, t->len);
  free(t);
}

static void free_entry(void *arg, const char *key, void *value) {
  (void)arg;
  (void)key;
  free_token(value);
}

/* Under mu. */
static void release_locked(recheck *r, recheck_token *t) {
  if (--t->refs > 0) return;
  strmap_del(r->live, t->key);
  free_token(t);
}

typedef struct snapshot {
  recheck_token **t;
  size_t n;
  bool all; /* every token, or only the fresh ones */
} snapshot;

static void take_ref(void *arg, const char *key, void *value) {
  (void)key;
  snapshot *s = arg;
  recheck_token *t = value;
  if (!s->all && !t->fresh) return;
  t->fresh = false;
  t->refs++;
  s->t[s->n++] = t;
}

/* Verifies t[0..n) as one batch (one Redis lookup for those due) and
 * reports the revoked ones, handing their reference to the report (NULL
 * in t[i]: nothing left to give back). */
static void verify_batch(recheck *r, recheck_token **t, size_t n) {
  const char *toks[BATCH] = {NULL};
  size_t lens[BATCH] = {0};
  int rcs[BATCH];
  enum authn_result why[BATCH];
  for (size_t i = 0; i < n; i++) {
    toks[i] = t[i]->token;
    lens[i] = t[i]->len;
  }
  if (authn_verify_batch(r->c.verifier, toks, lens, n, rcs, why) != ERR_OK)
    return; /* out of memory: the next pass tries again */
  for (size_t i = 0; i < n; i++)
    if (rcs[i] == ERR_INVAL &&
        (why[i] == AUTHN_REVOKED || why[i] == AUTHN_TENANT_SUSPENDED)) {
      metrics_inc(r->m_revoked);
      r->c.report(r->c.arg, t[i]);
      t[i] = NULL;
    }
}

static void pass(recheck *r, bool all) {
  int64_t t0 = time_mono_ms();
  snapshot s = {NULL, 0, all};
  pthread_mutex_lock(&r->mu);
  size_t n = strmap_len(r->live);
  s.t = n > 0 ? malloc(n * sizeof *s.t) : NULL;
  if (s.t != NULL) strmap_each(r->live, take_ref, &s);
  pthread_mutex_unlock(&r->mu);
  for (size_t i = 0; i < s.n; i += BATCH)
    verify_batch(r, s.t + i, s.n - i < BATCH ? s.n - i : BATCH);
  pthread_mutex_lock(&r->mu);
  for (size_t i = 0; i < s.n; i++)
    if (s.t[i] != NULL) release_locked(r, s.t[i]);
  pthread_mutex_unlock(&r->mu);
  free(s.t);
  if (all) metrics_observe(r->m_pass, (double)(time_mono_ms() - t0) / 1000.0);
}

/* Does this interval need a full pass (the file's comment)? Reads the
 * counter; when it moved, every cached state is due again first. */
static bool full_pass_due(recheck *r, bool woken) {
  int64_t now = time_mono_ms(), v = 0;
  if (r->c.redis == NULL || authn_revocations_read(r->c.redis, &v) != ERR_OK) {
    r->have_seen = false; /* compare afresh once it answers again */
    return true;
  }
  bool moved = !r->have_seen || v != r->seen;
  r->seen = v; /* read before the pass: a later change moves it again */
  r->have_seen = true;
  if (moved) authn_recheck_all(r->c.verifier);
  if (!moved && !woken && now < r->next_full) return false;
  r->next_full = now + (r->c.full_ms > 0 ? r->c.full_ms : FULL_PASS_MS);
  return true;
}

static void *run(void *arg) {
  recheck *r = arg;
  pthread_setname_np(pthread_self(), "rt-recheck");
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
    bool woken = r->woken;
    r->woken = false;
    if (r->stop) break;
    pthread_mutex_unlock(&r->mu);
    pass(r, full_pass_due(r, woken));
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
      metrics_counter(
          "realtime_recheck_revoked_total",
          "Live tokens found revoked (their connections closed 4003)", 0, NULL),
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

void recheck_stop(recheck *r) {
  if (r == NULL || r->joined) return;
  pthread_mutex_lock(&r->mu);
  r->stop = true;
  pthread_cond_signal(&r->cv);
  pthread_mutex_unlock(&r->mu);
  pthread_join(r->thread, NULL); /* a report in progress has returned */
  r->joined = true;
}

void recheck_free(recheck *r) {
  if (r == NULL) return;
  recheck_stop(r);
  strmap_each(r->live, free_entry, NULL);
  strmap_free(r->live);
  pthread_cond_destroy(&r->cv);
  pthread_mutex_destroy(&r->mu);
  free(r);
}

static void token_key(const char *token, size_t len,
                      char out[KEY_BYTES * 2 + 1]) {
  unsigned char h[KEY_BYTES];
  crypto_generichash(h, sizeof h, (const unsigned char *)token, len, NULL, 0);
  sodium_bin2hex(out, KEY_BYTES * 2 + 1, h, sizeof h);
}

int recheck_hold(recheck *r, const char *token, recheck_token **out) {
  *out = NULL;
  size_t len = token == NULL ? 0 : strlen(token);
  if (len == 0 || len > TOKEN_MAX) return ERR_INVAL;
  char key[KEY_BYTES * 2 + 1];
  token_key(token, len, key);
  pthread_mutex_lock(&r->mu);
  void **slot = strmap_slot(r->live, key, true);
  recheck_token *t = slot == NULL ? NULL : *slot;
  if (slot != NULL && t == NULL) {
    t = malloc(sizeof *t + len + 1);
    if (t != NULL) {
      t->refs = 0;
      t->fresh = true;
      t->len = len;
      memcpy(t->key, key, sizeof t->key);
      memcpy(t->token, token, len + 1);
      *slot = t;
    } else {
      strmap_del(r->live, key);
    }
  }
  /* Another token under the same key (a BLAKE2b-128 collision): refused,
   * never checked as the other one. */
  if (t != NULL && (t->len != len || memcmp(t->token, token, len) != 0))
    t = NULL;
  if (t != NULL) t->refs++;
  pthread_mutex_unlock(&r->mu);
  *out = t;
  return t != NULL ? ERR_OK : ERR_NOMEM;
}

void recheck_release(recheck *r, recheck_token *t) {
  if (t == NULL) return;
  pthread_mutex_lock(&r->mu);
  release_locked(r, t);
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
  snprintf(o.thread_name, sizeof o.thread_name, "rt-revocations");
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
