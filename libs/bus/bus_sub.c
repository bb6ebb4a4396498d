/*
 * bus_sub.c - the subscriber: one nng sub0 socket dialling every
 * publisher, one receive thread feeding a tracker.
 *
 * Design. All endpoints are dialled on the same socket, so events of
 * every publisher (and every replica of one) arrive on one queue and a
 * single thread delivers them; ordering per source is the tracker's job,
 * not the transport's. The thread receives with a 100 ms timeout so that
 * the tracker's timed work (backfill retries, idle checks, catch-up)
 * runs even when the bus is quiet. Backfill runs on this thread too: a
 * slow source delays delivery of other sources' events, and anything
 * nng drops meanwhile is healed like any other loss.
 *
 * The receive is an nng_aio without a timeout, whose completion callback
 * only signals a condition variable; the 100 ms tick is that variable's
 * timed wait, not nng's. This is deliberate: with nng 1.5 a blocking
 * nng_recvmsg under NNG_OPT_RECVTIMEO crashes the process ("panic:
 * pthread_mutex_unlock: Invalid argument") when the socket is closed at
 * the moment the receive times out: nng's expiry thread calls into the
 * socket's freed receive state. With no nng timer on the receive, and the
 * socket closed only after the thread has stopped and the receive has
 * been stopped, nothing of nng's can still point at a closed socket.
 * (Another nng 1.5 bug is not avoidable from here: nng_close can hang
 * when a message is arriving on one of the socket's pipes at that
 * instant, so a subscriber freed while publishers are busy may, rarely,
 * not return.)
 *
 * Addresses are the RPC client's, and so is their handling: a dialset
 * (libs/rpc/dialset.h) parses the list, re-resolves dns+tcp:// names
 * every resolve_interval_ms once the subscriber is started, reconciles
 * the dialers with the answer (a failed lookup keeps the last good one)
 * and counts the connected publishers.
 *
 * Subscriptions are kept here too, because events fetched by backfill
 * bypass nng's filter: they are matched against the same list before the
 * callback sees them.
 *
 * A batch subscriber (bus_subscriber_new_batch) gets the tracker's runs
 * (a backfill page, held events) in one call, filtered the same way, so
 * a consumer can store a page of events in one transaction: catch-up
 * after downtime, and a burst faster than the consumer (nng drops what
 * overflows its queue, the gap is backfilled by the page), go at the
 * consumer's per-batch cost rather than its per-event one.
 */
#include <errno.h>
#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "libs/bus/bus.h"
#include "libs/bus/bus_internal.h"
#include "libs/obs/log.h"
#include "libs/rpc/dialset.h"

#define MAX_DIALERS 64
#define RECV_POLL_MS 100

_Static_assert(BUS_MAX_ENDPOINTS <= RPC_MAX_ENDPOINTS,
               "the dialset parses at most RPC_MAX_ENDPOINTS endpoints");

typedef struct sub_topic {
  char topic[BUS_MAX_TOPIC_LEN + 1];
  bool exact;
} sub_topic;

struct bus_subscriber {
  nng_socket sock;
  bus_tracker *trk;
  bus_event_fn fn;       /* per-event callback, or */
  bus_batch_fn batch_fn; /* the batch one (bus_subscriber_new_batch) */
  void *arg;
  const Rpc__V1__Event **matched; /* batch_cb's filtered run, */
  size_t *matched_at;             /* each one's index in the run, */
  size_t matched_cap;             /* for runs of up to this many */
  bus_subscriber_options o;

  dialset *ds; /* publishers: dialers, dns+tcp re-resolution, pipes */

  pthread_mutex_t sub_mu; /* subscriptions */
  sub_topic subs[BUS_MAX_SUBSCRIPTIONS];
  size_t nsubs;

  /* The receive thread and its one receive in flight. rx_done and
   * rx_stop are under rx_mu; rx_cv (CLOCK_MONOTONIC) wakes the thread
   * for either. */
  nng_aio *rx_aio; /* no timeout: see the design note */
  pthread_mutex_t rx_mu;
  pthread_cond_t rx_cv;
  bool rx_done; /* rx_aio completed, not yet handled */
  bool rx_stop; /* bus_subscriber_free: leave the loop */
  bool started;
  pthread_t rx;
};

void bus_subscriber_options_init(bus_subscriber_options *o) {
  memset(o, 0, sizeof(*o));
  bus_tracker_options_init(&o->tracker);
  o->max_msg_bytes = BUS_DEFAULT_MAX_MSG_BYTES;
  o->recv_buffer = 128;
  o->reconnect_min_ms = 100;
  o->reconnect_max_ms = 2000;
  o->resolve_interval_ms = 5000;
  memcpy(o->thread_name, "bus-sub", sizeof "bus-sub");
}

/* ---------------------------------------------------------------- */
/* Delivery                                                           */
/* ---------------------------------------------------------------- */

static bool topic_matches(bus_subscriber *s, const char *topic) {
  bool hit = false;
  pthread_mutex_lock(&s->sub_mu);
  for (size_t i = 0; i < s->nsubs && !hit; i++) {
    const sub_topic *st = &s->subs[i];
    hit = st->exact ? strcmp(topic, st->topic) == 0
                    : str_has_prefix(topic, st->topic);
  }
  pthread_mutex_unlock(&s->sub_mu);
  return hit;
}

static int deliver_cb(void *arg, const Rpc__V1__Event *ev) {
  bus_subscriber *s = arg;
  /* Backfilled events of topics nobody here asked for only move the
   * position forward. */
  if (!topic_matches(s, ev->topic)) return ERR_OK;
  return s->fn(s->arg, ev);
}

/* The tracker's run, without the events of topics nobody here asked for
 * (they only move the position), to the batch callback. *taken maps the
 * callback's count back onto the run: every event before the first one
 * it did not take. */
static int batch_cb(void *arg, const Rpc__V1__Event *const *ev, size_t n,
                    size_t *taken) {
  bus_subscriber *s = arg;
  if (n > s->matched_cap) { /* receive thread only: no lock needed */
    const Rpc__V1__Event **mv = realloc(s->matched, n * sizeof(*mv));
    if (mv != NULL) s->matched = mv;
    size_t *at = realloc(s->matched_at, n * sizeof(*at));
    if (at != NULL) s->matched_at = at;
    if (mv == NULL || at == NULL) return ERR_NOMEM;
    s->matched_cap = n;
  }
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    if (!topic_matches(s, ev[i]->topic)) continue;
    s->matched[m] = ev[i];
    s->matched_at[m++] = i;
  }
  if (m == 0) return ERR_OK;
  size_t took = 0;
  int rc = s->batch_fn(s->arg, s->matched, m, &took);
  if (rc != ERR_OK) *taken = took < m ? s->matched_at[took] : n;
  return rc;
}

/* Completion of rx_aio, on an nng thread: only hands it to rx_main. */
static void rx_aio_cb(void *arg) {
  bus_subscriber *s = arg;
  pthread_mutex_lock(&s->rx_mu);
  s->rx_done = true;
  pthread_cond_signal(&s->rx_cv);
  pthread_mutex_unlock(&s->rx_mu);
}

/* Waits at most RECV_POLL_MS for rx_aio to complete. Returns true when it
 * has (and clears rx_done); *stop tells whether free has begun. */
static bool rx_wait(bus_subscriber *s, bool *stop) {
  int64_t until_ns = time_mono_ns() + (int64_t)RECV_POLL_MS * 1000000;
  struct timespec until = {.tv_sec = (time_t)(until_ns / 1000000000),
                           .tv_nsec = (long)(until_ns % 1000000000)};
  pthread_mutex_lock(&s->rx_mu);
  while (!s->rx_done && !s->rx_stop) {
    if (pthread_cond_timedwait(&s->rx_cv, &s->rx_mu, &until) == ETIMEDOUT)
      break;
  }
  bool done = s->rx_done;
  s->rx_done = false;
  *stop = s->rx_stop;
  pthread_mutex_unlock(&s->rx_mu);
  return done;
}

static void handle_msg(bus_subscriber *s, nng_msg *m) {
  Rpc__V1__Event *ev = NULL;
  if (bus_frame_decode(nng_msg_body(m), nng_msg_len(m), s->o.max_msg_bytes,
                       &ev) != ERR_OK) {
    bus_tracker_count_bad_frame(s->trk);
    return;
  }
  int rc = bus_tracker_offer(s->trk, ev, time_mono_ms());
  if (rc != ERR_OK && rc != ERR_TOOBIG) {
    log_warn("bus: event not taken", "source", ev->source, "error",
             err_str(rc));
  }
  rpc__v1__event__free_unpacked(ev, NULL);
}

static void *rx_main(void *arg) {
  bus_subscriber *s = arg;
  pthread_setname_np(pthread_self(), s->o.thread_name);
  bus_tracker_poll(s->trk, time_mono_ms());
  nng_recv_aio(s->sock, s->rx_aio);
  for (;;) {
    bool stop = false;
    if (rx_wait(s, &stop)) {
      int rv = nng_aio_result(s->rx_aio);
      if (rv == 0) {
        nng_msg *m = nng_aio_get_msg(s->rx_aio);
        nng_aio_set_msg(s->rx_aio, NULL);
        if (!stop) handle_msg(s, m);
        nng_msg_free(m);
      }
      /* Any other error (none is expected) re-arms too: without a
       * receive in flight nothing would ever arrive again. */
      if (rv == NNG_ECLOSED || stop) break;
      nng_recv_aio(s->sock, s->rx_aio);
    } else if (stop) {
      break;
    }
    bus_tracker_poll(s->trk, time_mono_ms());
  }
  return NULL;
}

/* ---------------------------------------------------------------- */
/* Public API                                                         */
/* ---------------------------------------------------------------- */

/* The constructor of both kinds: exactly one of fn and batch_fn. */
static int subscriber_new(const char *address, bus_event_fn fn,
                          bus_batch_fn batch_fn, void *arg,
                          const bus_subscriber_options *opts,
                          bus_subscriber **out) {
  if (out == NULL) return ERR_INVAL;
  *out = NULL;
  if (address == NULL || (fn == NULL) == (batch_fn == NULL)) return ERR_INVAL;
  bus_subscriber_options o;
  bus_subscriber_options_init(&o);
  if (opts != NULL) {
    if (opts->max_msg_bytes > (size_t)INT32_MAX || opts->recv_buffer < 0 ||
        opts->recv_buffer > 8192 || opts->reconnect_min_ms > INT32_MAX ||
        opts->reconnect_max_ms > INT32_MAX) {
      return ERR_INVAL;
    }
    o.tracker = opts->tracker;
    if (opts->max_msg_bytes) o.max_msg_bytes = opts->max_msg_bytes;
    if (opts->recv_buffer) o.recv_buffer = opts->recv_buffer;
    if (opts->reconnect_min_ms) o.reconnect_min_ms = opts->reconnect_min_ms;
    if (opts->reconnect_max_ms) o.reconnect_max_ms = opts->reconnect_max_ms;
    if (opts->resolve_interval_ms)
      o.resolve_interval_ms = opts->resolve_interval_ms;
    if (opts->thread_name[0] != '\0') /* kept NUL-terminated */
      snprintf(o.thread_name, sizeof o.thread_name, "%.*s",
               (int)sizeof o.thread_name - 1, opts->thread_name);
  }
  /* The publishers (zero fields: the dialset's defaults). */
  const dialset_options dso = {.who = "bus",
                               .max_endpoints = BUS_MAX_ENDPOINTS,
                               .max_dialers = MAX_DIALERS,
                               .recv_max_bytes = o.max_msg_bytes,
                               .reconnect_min_ms = o.reconnect_min_ms,
                               .reconnect_max_ms = o.reconnect_max_ms,
                               .resolve_interval_ms = o.resolve_interval_ms};
  dialset *ds = NULL;
  int err = dialset_new(address, &dso, &ds);
  if (err != ERR_OK) return err; /* ERR_INVAL (syntax), ERR_NOMEM */

  bus_subscriber *s = calloc(1, sizeof(*s));
  if (s == NULL) {
    dialset_free(ds);
    return ERR_NOMEM;
  }
  s->fn = fn;
  s->batch_fn = batch_fn;
  s->arg = arg;
  s->o = o;
  s->ds = ds;
  pthread_mutex_init(&s->sub_mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* time_mono_ns() */
  pthread_mutex_init(&s->rx_mu, NULL);
  pthread_cond_init(&s->rx_cv, &ca);
  pthread_condattr_destroy(&ca);

  bus_tracker_options to = o.tracker;
  to.deliver = fn != NULL ? deliver_cb : NULL;
  to.deliver_batch = batch_fn != NULL ? batch_cb : NULL;
  to.deliver_arg = s;
  err = bus_tracker_new(&to, &s->trk);
  if (err != ERR_OK) goto err;
  err = ERR_INTERNAL;
  if (nng_aio_alloc(&s->rx_aio, rx_aio_cb, s) != 0) goto err;
  nng_aio_set_timeout(s->rx_aio, NNG_DURATION_INFINITE);
  if (nng_sub0_open(&s->sock) != 0) goto err;
  (void)nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, o.max_msg_bytes);
  (void)nng_socket_set_int(s->sock, NNG_OPT_RECVBUF, o.recv_buffer);
  /* Resolves the names once (one may find nothing yet: retried after
   * bus_subscriber_start) and dials every publisher address. */
  if (dialset_attach(ds, s->sock) != ERR_OK) goto err_sock;
  *out = s;
  return ERR_OK;
err_sock:
  nng_close(s->sock);
err:
  if (s->rx_aio != NULL) nng_aio_free(s->rx_aio); /* never started */
  dialset_free(ds);
  bus_tracker_free(s->trk);
  pthread_mutex_destroy(&s->sub_mu);
  pthread_mutex_destroy(&s->rx_mu);
  pthread_cond_destroy(&s->rx_cv);
  free(s);
  return err;
}

int bus_subscriber_new(const char *address, bus_event_fn fn, void *arg,
                       const bus_subscriber_options *opts,
                       bus_subscriber **out) {
  return subscriber_new(address, fn, NULL, arg, opts, out);
}

int bus_subscriber_new_batch(const char *address, bus_batch_fn fn, void *arg,
                             const bus_subscriber_options *opts,
                             bus_subscriber **out) {
  return subscriber_new(address, NULL, fn, arg, opts, out);
}

static int subscribe(bus_subscriber *s, const char *topic, bool exact) {
  if (s == NULL || topic == NULL) return ERR_INVAL;
  size_t n = strnlen(topic, BUS_MAX_TOPIC_LEN + 1);
  if (n > BUS_MAX_TOPIC_LEN || !str_is_printable(topic, n) ||
      (exact && n == 0)) {
    return ERR_INVAL;
  }
  int rc = ERR_OK;
  pthread_mutex_lock(&s->sub_mu);
  for (size_t i = 0; i < s->nsubs; i++) {
    if (s->subs[i].exact == exact && strcmp(s->subs[i].topic, topic) == 0)
      goto out;
  }
  if (s->nsubs == BUS_MAX_SUBSCRIPTIONS) {
    rc = ERR_TOOBIG;
    goto out;
  }
  /* The filter for an exact topic includes the frame's NUL, so that
   * "orders.abc" does not also match "orders.abcd". */
  char filt[BUS_MAX_TOPIC_LEN + 1];
  memcpy(filt, topic, n);
  filt[n] = '\0';
  int rv =
      nng_socket_set(s->sock, NNG_OPT_SUB_SUBSCRIBE, filt, exact ? n + 1 : n);
  if (rv != 0) {
    rc = rv == NNG_ENOMEM ? ERR_NOMEM : ERR_INTERNAL;
    goto out;
  }
  str_copy(s->subs[s->nsubs].topic, topic, sizeof(s->subs[0].topic));
  s->subs[s->nsubs].exact = exact;
  s->nsubs++;
out:
  pthread_mutex_unlock(&s->sub_mu);
  return rc;
}

int bus_subscribe_exact(bus_subscriber *s, const char *topic) {
  return subscribe(s, topic, true);
}

int bus_subscribe_prefix(bus_subscriber *s, const char *prefix) {
  return subscribe(s, prefix, false);
}

int bus_subscriber_set_position(bus_subscriber *s, const char *source,
                                uint64_t after_seq) {
  if (s == NULL || s->started) return ERR_INVAL;
  return bus_tracker_set_position(s->trk, source, after_seq);
}

int bus_subscriber_start(bus_subscriber *s) {
  if (s == NULL || s->started) return ERR_INVAL;
  if (pthread_create(&s->rx, NULL, rx_main, s) != 0) return ERR_INTERNAL;
  s->started = true;
  if (dialset_start_resolver(s->ds) != ERR_OK) {
    log_warn("bus: cannot start resolver thread; addresses stay as resolved");
  }
  return ERR_OK;
}

int bus_subscriber_connected(bus_subscriber *s) {
  return s != NULL ? (int)dialset_connected(s->ds) : 0;
}

int bus_subscriber_wait_connected(bus_subscriber *s, int n,
                                  uint32_t timeout_ms) {
  return s != NULL ? dialset_wait_connected_ms(s->ds, n, timeout_ms)
                   : ERR_INVAL;
}

void bus_subscriber_get_stats(bus_subscriber *s, bus_stats *out) {
  if (s == NULL) {
    memset(out, 0, sizeof(*out));
    return;
  }
  bus_tracker_get_stats(s->trk, out);
}

/* Order matters (see the design note): the thread stops first, then
 * the receive it may have left in flight (nng_aio_stop also waits for
 * rx_aio_cb, which touches rx_mu), and only then is the socket closed. */
void bus_subscriber_free(bus_subscriber *s) {
  if (s == NULL) return;
  dialset_stop(s->ds); /* no more dialling on a socket about to close */
  bus_tracker_interrupt(s->trk);
  pthread_mutex_lock(&s->rx_mu);
  s->rx_stop = true;
  pthread_cond_signal(&s->rx_cv);
  pthread_mutex_unlock(&s->rx_mu);
  if (s->started) pthread_join(s->rx, NULL);
  nng_aio_stop(s->rx_aio);
  /* A receive that completed after the thread left still owns its
   * message. */
  if (nng_aio_result(s->rx_aio) == 0 && nng_aio_get_msg(s->rx_aio) != NULL) {
    nng_msg_free(nng_aio_get_msg(s->rx_aio));
    nng_aio_set_msg(s->rx_aio, NULL);
  }
  nng_close(s->sock);
  nng_aio_free(s->rx_aio);
  dialset_free(s->ds);
  bus_tracker_free(s->trk);
  pthread_mutex_destroy(&s->sub_mu);
  pthread_mutex_destroy(&s->rx_mu);
  pthread_cond_destroy(&s->rx_cv);
  free(s->matched);
  free(s->matched_at);
  free(s);
}
