/*
 * bus_tracker.c - the per-source sequence state machine: deliver in
 * order, drop duplicates, hold and backfill across gaps, retry with
 * backoff, never lose an event the source can still serve.
 *
 * Design. Each source has a position `last` (the highest seq delivered or
 * deliberately skipped), `need` (the highest seq known to exist: seen
 * live, or reported by the source as its newest), and `held`, a sorted
 * array of events with seq > last + 1 that arrived before their
 * predecessors. A source is "pending" while it has held events, need >
 * last, a catch-up to do, or a retry waiting. heal() is the only loop:
 * deliver held events that have become contiguous; if something is still
 * missing, ask the backfill function for the events after `last`; feed
 * what it returns through the same path; repeat while there is progress.
 * No progress (failure, or an answer without the missing events) arms an
 * exponential backoff, and bus_tracker_poll resumes once it has passed.
 * Everything runs on the caller's thread, with time passed in, so the
 * tests drive it deterministically without sockets or sleeps.
 *
 * Delivery goes by runs: consecutive seqs from last + 1 (a backfill
 * page, held events that became contiguous) are handed to a batch
 * consumer (deliver_batch) in one call, which may take a prefix of them;
 * a per-event consumer gets them one by one. A live event in order is a
 * run of one.
 *
 * A refused delivery is held like a gap: the event stays at the head of
 * `held` and is delivered again after the backoff, so the consumer sees it
 * before anything later from that source.
 *
 * When `held` is full the event with the highest seq is dropped: the
 * lowest are needed first, and `need` still records that the dropped ones
 * exist, so a later backfill fetches them.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/strutil.h"
#include "libs/bus/bus.h"
#include "libs/bus/bus_internal.h"
#include "libs/obs/log.h"

#define STAT_ADD(t, field, n)                                                  \
  __atomic_fetch_add(&(t)->stats.field, (uint64_t)(n), __ATOMIC_RELAXED)

typedef struct src_state {
  char name[BUS_MAX_SOURCE_LEN + 1];
  bool known;    /* `last` is meaningful */
  uint64_t last; /* highest seq delivered or skipped */
  uint64_t need; /* highest seq known to exist */
  bool catchup;  /* ask until the source has nothing more */
  bool in_gap;   /* a gap was counted and has not closed yet */
  bool waiting;  /* backoff running until retry_at */
  int64_t retry_at;
  uint32_t backoff_ms;
  int64_t last_live_ms;
  int64_t last_idle_ms;
  Rpc__V1__Event **held; /* ascending seq, unique, all > last */
  size_t nheld;
  size_t held_cap;
  metrics_child *m_received, *m_gaps, *m_backfilled, *m_dups, *m_bf_fail;
} src_state;

struct bus_tracker {
  bus_tracker_options o;
  src_state **srcs;
  size_t nsrcs;
  bus_stats stats;
  atomic_bool interrupted;
  const bus_metrics *m;
};

struct bus_backfill {
  const char *source;
  uint64_t after_seq;
  uint32_t limit;
  size_t max_replay_bytes;
  const Rpc__V1__Event **ev; /* borrowed from `owned` */
  size_t n;
  size_t ev_cap;
  ProtobufCMessage **owned; /* each freed once with free_unpacked */
  size_t nowned;
  size_t owned_cap;
  uint64_t last_seq;
};

void bus_tracker_options_init(bus_tracker_options *o) {
  memset(o, 0, sizeof(*o));
  o->max_sources = BUS_DEFAULT_MAX_SOURCES;
  o->max_buffered = 1024;
  o->backfill_limit = 256;
  o->retry_min_ms = 100;
  o->retry_max_ms = 5000;
  o->idle_check_ms = 0;
  o->max_replay_bytes = 16u * 1024u * 1024u;
}

int bus_tracker_new(const bus_tracker_options *opts, bus_tracker **out) {
  if (out == NULL) return ERR_INVAL;
  *out = NULL;
  if (opts == NULL || (opts->deliver == NULL && opts->deliver_batch == NULL))
    return ERR_INVAL;
  bus_tracker_options o;
  bus_tracker_options_init(&o);
  o.deliver = opts->deliver;
  o.deliver_batch = opts->deliver_batch;
  o.deliver_arg = opts->deliver_arg;
  o.backfill = opts->backfill;
  o.backfill_arg = opts->backfill_arg;
  if (opts->max_sources > 4096 || opts->max_buffered > 1000000 ||
      opts->backfill_limit > BUS_MAX_BACKFILL_LIMIT ||
      opts->max_replay_bytes > (size_t)INT32_MAX) {
    return ERR_INVAL;
  }
  if (opts->max_sources) o.max_sources = opts->max_sources;
  if (opts->max_buffered) o.max_buffered = opts->max_buffered;
  if (opts->backfill_limit) o.backfill_limit = opts->backfill_limit;
  if (opts->retry_min_ms) o.retry_min_ms = opts->retry_min_ms;
  if (opts->retry_max_ms) o.retry_max_ms = opts->retry_max_ms;
  if (o.retry_max_ms < o.retry_min_ms) return ERR_INVAL;
  o.idle_check_ms = opts->idle_check_ms;
  if (opts->max_replay_bytes) o.max_replay_bytes = opts->max_replay_bytes;
  bus_tracker *t = calloc(1, sizeof(*t));
  if (t == NULL) return ERR_NOMEM;
  t->srcs = calloc(o.max_sources, sizeof(*t->srcs));
  if (t->srcs == NULL) {
    free(t);
    return ERR_NOMEM;
  }
  t->o = o;
  atomic_init(&t->interrupted, false);
  t->m = bus_metrics_get();
  *out = t;
  return ERR_OK;
}

static void src_free(src_state *s) {
  if (s == NULL) return;
  for (size_t i = 0; i < s->nheld; i++) {
    rpc__v1__event__free_unpacked(s->held[i], NULL);
  }
  free(s->held);
  free(s);
}

void bus_tracker_free(bus_tracker *t) {
  if (t == NULL) return;
  for (size_t i = 0; i < t->nsrcs; i++) src_free(t->srcs[i]);
  free(t->srcs);
  free(t);
}

void bus_tracker_interrupt(bus_tracker *t) {
  if (t != NULL) atomic_store(&t->interrupted, true);
}

static bool interrupted(const bus_tracker *t) {
  return atomic_load_explicit(&t->interrupted, memory_order_relaxed);
}

void bus_tracker_get_stats(const bus_tracker *t, bus_stats *out) {
  memset(out, 0, sizeof(*out));
  if (t == NULL) return;
#define LOAD(f) out->f = __atomic_load_n(&t->stats.f, __ATOMIC_RELAXED)
  LOAD(received);
  LOAD(delivered);
  LOAD(duplicates);
  LOAD(gaps);
  LOAD(backfilled);
  LOAD(backfill_calls);
  LOAD(backfill_failures);
  LOAD(buffer_dropped);
  LOAD(lost);
  LOAD(deliver_refused);
  LOAD(bad_frames);
  LOAD(rejected);
#undef LOAD
}

void bus_tracker_count_bad_frame(bus_tracker *t) {
  STAT_ADD(t, bad_frames, 1);
  metrics_inc(t->m->drop_bad_frame);
}

static src_state *src_find(const bus_tracker *t, const char *name) {
  for (size_t i = 0; i < t->nsrcs; i++) {
    if (strcmp(t->srcs[i]->name, name) == 0) return t->srcs[i];
  }
  return NULL;
}

/* Finds or adds; NULL with *err set when full or out of memory. */
static src_state *src_get(bus_tracker *t, const char *name, int *err) {
  src_state *s = src_find(t, name);
  if (s != NULL) return s;
  if (t->nsrcs >= t->o.max_sources) {
    *err = ERR_TOOBIG;
    return NULL;
  }
  s = calloc(1, sizeof(*s));
  if (s == NULL) {
    *err = ERR_NOMEM;
    return NULL;
  }
  str_copy(s->name, name, sizeof(s->name));
  s->m_received = bus_metrics_source(t->m->received, name);
  s->m_gaps = bus_metrics_source(t->m->gaps, name);
  s->m_backfilled = bus_metrics_source(t->m->backfilled, name);
  s->m_dups = bus_metrics_source(t->m->duplicates, name);
  s->m_bf_fail = bus_metrics_source(t->m->backfill_failures, name);
  t->srcs[t->nsrcs++] = s;
  return s;
}

static bool src_pending(const src_state *s) {
  return s->nheld > 0 || s->need > s->last || s->catchup || s->waiting;
}

/* ---------------------------------------------------------------- */
/* Held events                                                        */
/* ---------------------------------------------------------------- */

static void held_pop_front(src_state *s) {
  rpc__v1__event__free_unpacked(s->held[0], NULL);
  memmove(&s->held[0], &s->held[1], (s->nheld - 1) * sizeof(s->held[0]));
  s->nheld--;
}

/* Holds a copy of ev (seq > last). When full, the highest seq goes. */
static int hold(bus_tracker *t, src_state *s, const Rpc__V1__Event *ev) {
  size_t lo = 0, hi = s->nheld;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (s->held[mid]->seq < ev->seq) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  if (lo < s->nheld && s->held[lo]->seq == ev->seq) return ERR_OK; /* have it */
  if (s->nheld == t->o.max_buffered) {
    STAT_ADD(t, buffer_dropped, 1);
    metrics_inc(t->m->drop_buffer_full);
    if (lo == s->nheld) return ERR_OK; /* the newcomer is the highest */
    rpc__v1__event__free_unpacked(s->held[s->nheld - 1], NULL);
    s->nheld--;
  }
  if (s->nheld == s->held_cap) {
    size_t cap = s->held_cap ? s->held_cap * 2 : 16;
    if (cap > t->o.max_buffered) cap = t->o.max_buffered;
    Rpc__V1__Event **n = realloc(s->held, cap * sizeof(*n));
    if (n == NULL) return ERR_NOMEM;
    s->held = n;
    s->held_cap = cap;
  }
  Rpc__V1__Event *copy = NULL;
  int rc = bus_event_copy(ev, &copy);
  if (rc != ERR_OK) return rc;
  memmove(&s->held[lo + 1], &s->held[lo], (s->nheld - lo) * sizeof(s->held[0]));
  s->held[lo] = copy;
  s->nheld++;
  return ERR_OK;
}

/* ---------------------------------------------------------------- */
/* Delivery and healing                                               */
/* ---------------------------------------------------------------- */

static void schedule_retry(bus_tracker *t, src_state *s, int64_t now_ms) {
  if (s->backoff_ms == 0) {
    s->backoff_ms = t->o.retry_min_ms;
  } else {
    uint64_t b = (uint64_t)s->backoff_ms * 2;
    s->backoff_ms = b > t->o.retry_max_ms ? t->o.retry_max_ms : (uint32_t)b;
  }
  s->waiting = true;
  s->retry_at = now_ms + s->backoff_ms;
}

/* Counts n delivered events of s (from backfill or not). */
static void count_delivered(bus_tracker *t, src_state *s, size_t n,
                            bool from_backfill) {
  STAT_ADD(t, delivered, n);
  if (from_backfill) {
    STAT_ADD(t, backfilled, n);
    metrics_add(s->m_backfilled, (double)n);
  }
}

/* Hands the run ev[0..n) (seq last + 1, last + 2, ...) to the consumer:
 * in one call when it takes batches, else one event at a time. Returns
 * how many it took (a prefix); `last` moves past them. */
static size_t deliver_run(bus_tracker *t, src_state *s,
                          const Rpc__V1__Event *const *ev, size_t n,
                          bool from_backfill) {
  size_t took = 0;
  if (t->o.deliver_batch != NULL) {
    int rc = t->o.deliver_batch(t->o.deliver_arg, ev, n, &took);
    if (rc == ERR_OK) took = n;
    if (took > n) took = n;
  } else {
    while (took < n && t->o.deliver(t->o.deliver_arg, ev[took]) == ERR_OK)
      took++;
  }
  if (took < n) STAT_ADD(t, deliver_refused, 1);
  if (took > 0) {
    s->last = ev[took - 1]->seq;
    count_delivered(t, s, took, from_backfill);
  }
  return took;
}

/* The length of the run of consecutive seqs at the head of held (its
 * first is last + 1), at most backfill_limit. */
static size_t held_run(const bus_tracker *t, const src_state *s) {
  size_t k = 0;
  while (k < s->nheld && k < t->o.backfill_limit &&
         s->held[k]->seq == s->last + 1 + k)
    k++;
  return k;
}

static void held_pop_n(src_state *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    rpc__v1__event__free_unpacked(s->held[i], NULL);
  memmove(&s->held[0], &s->held[n], (s->nheld - n) * sizeof(s->held[0]));
  s->nheld -= n;
}

/* Delivers held events that have become contiguous. False when the
 * consumer refused one (a retry is then scheduled). */
static bool drain_held(bus_tracker *t, src_state *s, int64_t now_ms) {
  while (s->nheld > 0) {
    Rpc__V1__Event *h = s->held[0];
    if (h->seq <= s->last) {
      /* Delivered meanwhile through backfill: this live copy repeats it. */
      STAT_ADD(t, duplicates, 1);
      metrics_inc(s->m_dups);
      held_pop_front(s);
      continue;
    }
    size_t k = held_run(t, s);
    if (k == 0) break;
    size_t took =
        deliver_run(t, s, (const Rpc__V1__Event *const *)s->held, k, false);
    held_pop_n(s, took);
    if (took < k) {
      schedule_retry(t, s, now_ms);
      return false;
    }
  }
  return true;
}

static void skip_to(bus_tracker *t, src_state *s, uint64_t to,
                    const char *why) {
  if (to <= s->last) return;
  char from_s[24], to_s[24];
  snprintf(from_s, sizeof(from_s), "%" PRIu64, s->last + 1);
  snprintf(to_s, sizeof(to_s), "%" PRIu64, to);
  log_warn("bus: events lost for good, skipping", "source", s->name, "from_seq",
           from_s, "to_seq", to_s, "reason", why);
  STAT_ADD(t, lost, to - s->last);
  metrics_add(t->m->drop_lost, (double)(to - s->last));
  s->last = to;
}

static int cmp_seq(const void *a, const void *b) {
  const Rpc__V1__Event *x = *(const Rpc__V1__Event *const *)a;
  const Rpc__V1__Event *y = *(const Rpc__V1__Event *const *)b;
  return x->seq < y->seq ? -1 : x->seq > y->seq ? 1 : 0;
}

static void batch_fini(bus_backfill *b) {
  for (size_t i = 0; i < b->nowned; i++) {
    protobuf_c_message_free_unpacked(b->owned[i], NULL);
  }
  free(b->owned);
  free(b->ev);
}

/* Feeds a successful batch through the source: each run of consecutive
 * seqs from last + 1 goes to the consumer at once (deliver_run). Returns
 * false when the consumer refused an event (it is held and a retry
 * scheduled; the rest of the batch is fetched again). *fresh counts
 * events newer than the position at the time. */
static bool apply_batch(bus_tracker *t, src_state *s, bus_backfill *b,
                        int64_t now_ms, size_t *fresh) {
  if (b->n > 1) qsort(b->ev, b->n, sizeof(b->ev[0]), cmp_seq);
  *fresh = 0;
  size_t i = 0;
  while (i < b->n) {
    const Rpc__V1__Event *e = b->ev[i];
    if (e->seq <= s->last) {
      i++;
      continue;
    }
    if (e->seq != s->last + 1) {
      /* A hole in the answer itself: keep it and ask again later. */
      (*fresh)++;
      if (e->seq > s->need) s->need = e->seq;
      (void)hold(t, s, e);
      i++;
      continue;
    }
    /* The run stops before a seq already held (a live copy, delivered
     * from held by drain_held below, as before batches existed). */
    uint64_t stop = s->nheld > 0 ? s->held[0]->seq : UINT64_MAX;
    if (e->seq >= stop) {
      if (!drain_held(t, s, now_ms)) return false;
      continue;
    }
    size_t k = 1;
    while (i + k < b->n && b->ev[i + k]->seq == e->seq + k &&
           b->ev[i + k]->seq < stop)
      k++;
    *fresh += k;
    if (b->ev[i + k - 1]->seq > s->need) s->need = b->ev[i + k - 1]->seq;
    size_t took = deliver_run(t, s, &b->ev[i], k, true);
    if (took < k) {
      (void)hold(t, s, b->ev[i + took]);
      schedule_retry(t, s, now_ms);
      return false;
    }
    i += k;
    if (!drain_held(t, s, now_ms)) return false;
  }
  return true;
}

static void heal(bus_tracker *t, src_state *s, int64_t now_ms) {
  while (!interrupted(t)) {
    if (!drain_held(t, s, now_ms)) return;
    if (s->nheld == 0 && s->need <= s->last && !s->catchup) {
      s->in_gap = false;
      s->backoff_ms = 0;
      return;
    }
    uint64_t up_to = s->nheld > 0        ? s->held[0]->seq - 1
                     : s->need > s->last ? s->need
                                         : 0;
    if (t->o.backfill == NULL) {
      s->catchup = false;
      if (up_to > 0) skip_to(t, s, up_to, "no backfill function");
      continue;
    }
    bus_backfill b;
    memset(&b, 0, sizeof(b));
    b.source = s->name;
    b.after_seq = s->last;
    b.limit = t->o.backfill_limit;
    b.max_replay_bytes = t->o.max_replay_bytes;
    STAT_ADD(t, backfill_calls, 1);
    int rc = t->o.backfill(t->o.backfill_arg, s->name, s->last, up_to,
                           t->o.backfill_limit, &b);
    if (rc == ERR_NOTFOUND) {
      batch_fini(&b);
      s->catchup = false;
      if (up_to > 0) skip_to(t, s, up_to, "source no longer has them");
      continue;
    }
    if (rc != ERR_OK) {
      batch_fini(&b);
      STAT_ADD(t, backfill_failures, 1);
      metrics_inc(s->m_bf_fail);
      if (s->backoff_ms == 0) {
        log_warn("bus: backfill failed, will retry", "source", s->name, "error",
                 err_str(rc));
      }
      schedule_retry(t, s, now_ms);
      return;
    }
    uint64_t before = s->last;
    if (b.last_seq > s->need) s->need = b.last_seq;
    size_t fresh = 0;
    bool ok = apply_batch(t, s, &b, now_ms, &fresh);
    uint64_t reported = b.last_seq;
    batch_fini(&b);
    if (!ok) return;
    if (s->catchup && (fresh == 0 || (reported > 0 && s->last >= reported))) {
      s->catchup = false; /* the source has nothing more */
    }
    if (s->last == before) {
      if (!src_pending(s)) continue; /* loop top: healed */
      /* The source answered without what is missing (a lagging
       * replica?): not progress, so wait before asking again. */
      STAT_ADD(t, backfill_failures, 1);
      metrics_inc(s->m_bf_fail);
      schedule_retry(t, s, now_ms);
      return;
    }
    s->backoff_ms = 0;
  }
}

/* ---------------------------------------------------------------- */
/* Public entry points                                                */
/* ---------------------------------------------------------------- */

int bus_tracker_set_position(bus_tracker *t, const char *source,
                             uint64_t after_seq) {
  if (t == NULL || !bus_name_ok(source, BUS_MAX_SOURCE_LEN)) return ERR_INVAL;
  int err = ERR_OK;
  src_state *s = src_get(t, source, &err);
  if (s == NULL) return err;
  s->known = true;
  s->last = after_seq;
  if (s->need < after_seq) s->need = after_seq;
  while (s->nheld > 0 && s->held[0]->seq <= after_seq) held_pop_front(s);
  s->catchup = true;
  return ERR_OK;
}

int bus_tracker_offer(bus_tracker *t, const Rpc__V1__Event *ev,
                      int64_t now_ms) {
  if (t == NULL) return ERR_INVAL;
  if (bus_event_validate(ev) != ERR_OK) {
    STAT_ADD(t, rejected, 1);
    return ERR_INVAL;
  }
  if (interrupted(t)) return ERR_OK;
  int err = ERR_OK;
  src_state *s = src_get(t, ev->source, &err);
  if (s == NULL) {
    STAT_ADD(t, rejected, 1);
    if (err == ERR_TOOBIG) metrics_inc(t->m->drop_too_many_sources);
    return err;
  }
  STAT_ADD(t, received, 1);
  metrics_inc(s->m_received);
  s->last_live_ms = now_ms;
  if (!s->known) {
    /* No position: start from the first event seen. */
    s->known = true;
    s->last = ev->seq - 1;
    s->need = s->last;
  }
  if (ev->seq <= s->last) {
    STAT_ADD(t, duplicates, 1);
    metrics_inc(s->m_dups);
    return ERR_OK;
  }
  if (ev->seq > s->need) s->need = ev->seq;
  if (ev->seq == s->last + 1 && s->need == ev->seq && s->nheld == 0 &&
      !s->catchup && !s->waiting) {
    if (deliver_run(t, s, &ev, 1, false) == 0) {
      int rc = hold(t, s, ev);
      schedule_retry(t, s, now_ms);
      return rc;
    }
    return ERR_OK;
  }
  if (ev->seq > s->last + 1 && !s->in_gap) {
    s->in_gap = true;
    STAT_ADD(t, gaps, 1);
    metrics_inc(s->m_gaps);
  }
  int rc = hold(t, s, ev);
  if (!s->waiting) heal(t, s, now_ms);
  return rc;
}

void bus_tracker_poll(bus_tracker *t, int64_t now_ms) {
  if (t == NULL) return;
  for (size_t i = 0; i < t->nsrcs && !interrupted(t); i++) {
    src_state *s = t->srcs[i];
    if (s->waiting) {
      if (now_ms < s->retry_at) continue;
      s->waiting = false;
      heal(t, s, now_ms);
    } else if (src_pending(s)) {
      heal(t, s, now_ms);
    } else if (t->o.idle_check_ms > 0 && t->o.backfill != NULL && s->known &&
               now_ms - s->last_live_ms >= (int64_t)t->o.idle_check_ms &&
               now_ms - s->last_idle_ms >= (int64_t)t->o.idle_check_ms) {
      s->last_idle_ms = now_ms;
      s->catchup = true;
      heal(t, s, now_ms);
    }
  }
}

int bus_tracker_position(const bus_tracker *t, const char *source,
                         uint64_t *last_seq) {
  if (t == NULL || source == NULL || last_seq == NULL) return ERR_INVAL;
  const src_state *s = src_find(t, source);
  if (s == NULL || !s->known) return ERR_NOTFOUND;
  *last_seq = s->last;
  return ERR_OK;
}

bool bus_tracker_pending(const bus_tracker *t, const char *source) {
  if (t == NULL || source == NULL) return false;
  const src_state *s = src_find(t, source);
  return s != NULL && src_pending(s);
}

/* ---------------------------------------------------------------- */
/* Backfill batches                                                   */
/* ---------------------------------------------------------------- */

static int owned_push(bus_backfill *b, ProtobufCMessage *m) {
  if (b->nowned == b->owned_cap) {
    size_t cap = b->owned_cap ? b->owned_cap * 2 : 8;
    ProtobufCMessage **n = realloc(b->owned, cap * sizeof(*n));
    if (n == NULL) return ERR_NOMEM;
    b->owned = n;
    b->owned_cap = cap;
  }
  b->owned[b->nowned++] = m;
  return ERR_OK;
}

static bool batch_wants(const bus_backfill *b, const Rpc__V1__Event *ev) {
  return b->n < b->limit && bus_event_validate(ev) == ERR_OK &&
         strcmp(ev->source, b->source) == 0 && ev->seq > b->after_seq;
}

static int ev_push(bus_backfill *b, const Rpc__V1__Event *ev) {
  if (b->n == b->ev_cap) {
    size_t cap = b->ev_cap ? b->ev_cap * 2 : 32;
    if (cap > b->limit) cap = b->limit;
    const Rpc__V1__Event **n = realloc(b->ev, cap * sizeof(*n));
    if (n == NULL) return ERR_NOMEM;
    b->ev = n;
    b->ev_cap = cap;
  }
  b->ev[b->n++] = ev;
  return ERR_OK;
}

int bus_backfill_add(bus_backfill *b, const Rpc__V1__Event *ev) {
  if (b == NULL || ev == NULL) return ERR_INVAL;
  if (!batch_wants(b, ev)) return ERR_OK;
  Rpc__V1__Event *copy = NULL;
  int rc = bus_event_copy(ev, &copy);
  if (rc != ERR_OK) return rc;
  rc = owned_push(b, &copy->base);
  if (rc != ERR_OK) {
    rpc__v1__event__free_unpacked(copy, NULL);
    return rc;
  }
  return ev_push(b, copy);
}

int bus_backfill_add_replay(bus_backfill *b, const void *data, size_t len) {
  if (b == NULL || (data == NULL && len > 0)) return ERR_INVAL;
  if (len > b->max_replay_bytes) return ERR_TOOBIG;
  Rpc__V1__ReplayResponse *r =
      rpc__v1__replay_response__unpack(NULL, len, data);
  if (r == NULL) return ERR_PROTO;
  int rc = owned_push(b, &r->base);
  if (rc != ERR_OK) {
    rpc__v1__replay_response__free_unpacked(r, NULL);
    return rc;
  }
  for (size_t i = 0; i < r->n_events; i++) {
    if (!batch_wants(b, r->events[i])) continue;
    rc = ev_push(b, r->events[i]);
    if (rc != ERR_OK) return rc;
  }
  bus_backfill_set_last_seq(b, r->last_seq);
  return ERR_OK;
}

void bus_backfill_set_last_seq(bus_backfill *b, uint64_t last_seq) {
  if (b != NULL && last_seq > b->last_seq) b->last_seq = last_seq;
}
