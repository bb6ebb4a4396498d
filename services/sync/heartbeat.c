/*
 * heartbeat.c - beats into this replica's buffer, flushed to PostgreSQL in
 * batches, and the offline sweep (see heartbeat.h for the design).
 *
 * Two buffers: beats append to `cur` under `mu`; the flush swaps `cur`
 * and `spare` (an empty one) under `mu` and then writes what it took
 * without holding it, so a slow PostgreSQL never stalls a beat. The
 * arrays are kept between rounds (no allocation per beat or per round
 * once they have grown).
 */
#include "services/sync/heartbeat.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "libs/obs/log.h"
#include "libs/obs/metrics.h"
#include "libs/svc/periodic.h"
#include "services/sync/events.h"

#define SWEEP_BATCH 1000
#define BUFFER_FIRST 1024 /* beats the buffer starts with */

typedef struct buffer {
  heartbeat_beat *b;
  size_t n, cap;
} buffer;

struct heartbeat {
  heartbeat_config c;
  pthread_mutex_t mu;       /* guards cur and full_logged */
  pthread_mutex_t flushing; /* one flush at a time (the round, tests, free) */
  buffer cur, spare;
  bool full_logged;
  periodic *round;
  metrics_child *online; /* sync_devices_online */
  int64_t counted_ms;    /* when online was last counted */
};

/* Room for one more beat in buf (growing it up to the maximum). */
static bool buffer_room(buffer *buf) {
  if (buf->n < buf->cap) return true;
  if (buf->cap >= HEARTBEAT_BUFFER_MAX) return false;
  size_t cap = buf->cap ? buf->cap * 2 : BUFFER_FIRST;
  if (cap > HEARTBEAT_BUFFER_MAX) cap = HEARTBEAT_BUFFER_MAX;
  heartbeat_beat *b = realloc(buf->b, cap * sizeof *b);
  if (b == NULL) return false;
  buf->b = b;
  buf->cap = cap;
  return true;
}

int heartbeat_record(heartbeat *h, const char *tid, const char *did,
                     const char *app_version, int32_t pending, int64_t cursor,
                     int64_t now_ms) {
  size_t vlen = app_version != NULL ? strlen(app_version) : 0;
  if (strlen(tid) > UUID_STR_LEN || strlen(did) > UUID_STR_LEN ||
      vlen > HEARTBEAT_VERSION_MAX)
    return ERR_INVAL;
  pthread_mutex_lock(&h->mu);
  if (!buffer_room(&h->cur)) {
    bool first = !h->full_logged;
    h->full_logged = true;
    pthread_mutex_unlock(&h->mu);
    if (first) log_warn("heartbeat buffer full: beats refused until a flush");
    return ERR_UNAVAILABLE;
  }
  heartbeat_beat *b = &h->cur.b[h->cur.n++];
  str_copy(b->tid, tid, sizeof b->tid);
  str_copy(b->did, did, sizeof b->did);
  b->seen_ms = now_ms;
  b->pending = pending;
  b->cursor = cursor;
  b->has_ver = app_version != NULL;
  if (b->has_ver)
    memcpy(b->ver, app_version, vlen + 1);
  else
    b->ver[0] = '\0';
  pthread_mutex_unlock(&h->mu);
  return ERR_OK;
}

static int by_device(const void *x, const void *y) {
  const heartbeat_beat *a = x, *b = y;
  int c = strcmp(a->tid, b->tid);
  if (c == 0) c = strcmp(a->did, b->did);
  if (c == 0) c = (a->seen_ms > b->seen_ms) - (a->seen_ms < b->seen_ms);
  return c;
}

size_t heartbeat_coalesce(heartbeat_beat *b, size_t n) {
  if (n == 0) return 0;
  qsort(b, n, sizeof *b, by_device);
  size_t out = 0;
  for (size_t i = 0; i < n; i++) {
    heartbeat_beat *d = out > 0 ? &b[out - 1] : NULL;
    if (d != NULL && strcmp(d->tid, b[i].tid) == 0 &&
        strcmp(d->did, b[i].did) == 0) {
      /* Sorted by time within a device: b[i] is the later beat. */
      d->seen_ms = b[i].seen_ms;
      if (b[i].pending >= 0) d->pending = b[i].pending;
      if (b[i].cursor >= 0) d->cursor = b[i].cursor;
      if (b[i].has_ver) {
        d->has_ver = true;
        memcpy(d->ver, b[i].ver, sizeof d->ver);
      }
      continue;
    }
    if (out != i) b[out] = b[i];
    out++;
  }
  return out;
}

/* Writes one tenant's devices b[0..n) in statements of HEARTBEAT_BATCH. */
static bool write_tenant(heartbeat *h, const heartbeat_beat *b, size_t n,
                         store_beat *sb) {
  bool wrote = false;
  for (size_t i = 0; i < n; i += HEARTBEAT_BATCH) {
    size_t k = n - i < HEARTBEAT_BATCH ? n - i : HEARTBEAT_BATCH;
    for (size_t j = 0; j < k; j++) {
      const heartbeat_beat *x = &b[i + j];
      str_copy(sb[j].did, x->did, sizeof sb[j].did);
      sb[j].seen_ms = x->seen_ms;
      sb[j].app_version = x->has_ver ? x->ver : NULL;
      sb[j].pending = x->pending;
      sb[j].cursor = x->cursor;
    }
    int rc = store_beats_apply(h->c.store, b[0].tid, sb, k,
                               events_device_status, NULL);
    if (rc != ERR_OK)
      log_warn("heartbeats not flushed", "tenant_id", b[0].tid, "error",
               err_str(rc));
    else
      wrote = true;
  }
  return wrote;
}

/* Takes the buffer and writes it, one tenant at a time. */
static void flush(heartbeat *h) {
  pthread_mutex_lock(&h->flushing);
  pthread_mutex_lock(&h->mu);
  buffer taken = h->cur;
  h->cur = h->spare;
  h->cur.n = 0;
  h->full_logged = false;
  pthread_mutex_unlock(&h->mu);
  size_t n = heartbeat_coalesce(taken.b, taken.n);
  store_beat *sb = n > 0 ? calloc(HEARTBEAT_BATCH, sizeof *sb) : NULL;
  bool wrote = false;
  if (n > 0 && sb == NULL) log_warn("heartbeats not flushed: out of memory");
  for (size_t i = 0; sb != NULL && i < n;) {
    size_t j = i + 1;
    while (j < n && strcmp(taken.b[j].tid, taken.b[i].tid) == 0) j++;
    if (write_tenant(h, &taken.b[i], j - i, sb)) wrote = true;
    i = j;
  }
  free(sb);
  if (wrote) outbox_kick(h->c.events);
  taken.n = 0;
  pthread_mutex_lock(&h->mu);
  h->spare = taken; /* its array serves the next round */
  pthread_mutex_unlock(&h->mu);
  pthread_mutex_unlock(&h->flushing);
}

void heartbeat_run_once(heartbeat *h) {
  flush(h);
  size_t marked = 0;
  int rc;
  do {
    rc = store_sweep_offline(h->c.store, 2 * h->c.interval_ms, SWEEP_BATCH,
                             events_device_status, NULL, &marked);
    if (rc == ERR_OK && marked > 0) outbox_kick(h->c.events);
  } while (rc == ERR_OK && marked == SWEEP_BATCH);
  if (rc != ERR_OK) log_warn("offline sweep failed", "error", err_str(rc));
}

/* The sync_devices_online gauge, counted at most every COUNT_EVERY_MS (a
 * count of every tenant's devices is not worth a query per flush). Each
 * replica reports the same cluster-wide number: aggregate with max. */
#define COUNT_EVERY_MS 10000
static void count_online(heartbeat *h) {
  int64_t now = time_now_ms();
  if (h->counted_ms != 0 && now - h->counted_ms < COUNT_EVERY_MS) return;
  h->counted_ms = now;
  int64_t n = 0;
  int rc = store_count_online(h->c.store, &n);
  if (rc == ERR_OK)
    metrics_set(h->online, (double)n);
  else
    log_warn("counting online devices failed", "error", err_str(rc));
}

static void round_fn(void *arg) {
  heartbeat_run_once(arg);
  count_online(arg);
}

int heartbeat_new(const heartbeat_config *cfg, heartbeat **out) {
  *out = NULL;
  if (cfg == NULL || cfg->store == NULL || cfg->events == NULL ||
      cfg->interval_ms <= 0 || cfg->flush_ms <= 0)
    return ERR_INVAL;
  heartbeat *h = calloc(1, sizeof *h);
  if (h == NULL) return ERR_NOMEM;
  h->c = *cfg;
  pthread_mutex_init(&h->mu, NULL);
  pthread_mutex_init(&h->flushing, NULL);
  h->online = metrics_child_get(
      metrics_gauge("sync_devices_online",
                    "devices online now, every tenant's (the same on every "
                    "replica: aggregate with max)",
                    0, NULL),
      NULL);
  periodic_options po = {.name = "heartbeats",
                         .interval_ms = cfg->flush_ms,
                         .fn = round_fn,
                         .arg = h};
  int rc = periodic_start(&po, &h->round);
  if (rc != ERR_OK) {
    heartbeat_free(h);
    return rc;
  }
  *out = h;
  return ERR_OK;
}

void heartbeat_free(heartbeat *h) {
  if (h == NULL) return;
  periodic_stop(h->round);
  flush(h); /* what came in since the last round */
  pthread_mutex_destroy(&h->mu);
  pthread_mutex_destroy(&h->flushing);
  free(h->cur.b);
  free(h->spare.b);
  free(h);
}
