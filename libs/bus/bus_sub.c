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
 * Addresses are parsed by libs/rpc (rpc_address_parse), so the syntax is
 * the RPC client's. dns+tcp:// names are resolved here with getaddrinfo
 * every resolve_interval_ms and the dialers reconciled with the answer
 * (a failed lookup keeps the last good one). libs/rpc has the same loop
 * inside rpc_client.c, private to it; if a third user appears, it should
 * move to a shared "dialer set" in libs/rpc.
 *
 * Subscriptions are kept here too, because events fetched by backfill
 * bypass nng's filter: they are matched against the same list before the
 * callback sees them.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "libs/bus/bus.h"
#include "libs/bus/bus_internal.h"
#include "libs/obs/log.h"
#include "libs/rpc/rpc.h"

#define URL_LEN RPC_MAX_URL_LEN
#define MAX_DIALERS 64
#define RECV_POLL_MS 100

typedef struct ep_state {
  rpc_endpoint ep;
  char (*urls)[URL_LEN]; /* current addresses (BUS_MAX_ENDPOINTS slots) */
  size_t nurls;
} ep_state;

typedef struct dialer_entry {
  nng_dialer d;
  char url[URL_LEN];
} dialer_entry;

typedef struct sub_topic {
  char topic[BUS_MAX_TOPIC_LEN + 1];
  bool exact;
} sub_topic;

struct bus_subscriber {
  nng_socket sock;
  bus_tracker *trk;
  bus_event_fn fn;
  void *arg;
  bus_subscriber_options o;

  ep_state eps[BUS_MAX_ENDPOINTS];
  size_t neps;
  bool any_dns;
  dialer_entry dialers[MAX_DIALERS]; /* rx-independent: new + resolver */
  size_t ndialers;

  pthread_mutex_t sub_mu; /* subscriptions */
  sub_topic subs[BUS_MAX_SUBSCRIPTIONS];
  size_t nsubs;

  pthread_mutex_t pipe_mu;
  pthread_cond_t pipe_cv;
  int npipes;

  pthread_mutex_t res_mu;
  pthread_cond_t res_cv;
  bool stopping; /* under res_mu */

  atomic_bool stop_rx;
  bool started;
  pthread_t rx;
  pthread_t resolver;
  bool resolver_started;
};

void bus_subscriber_options_init(bus_subscriber_options *o) {
  memset(o, 0, sizeof(*o));
  bus_tracker_options_init(&o->tracker);
  o->max_msg_bytes = BUS_DEFAULT_MAX_MSG_BYTES;
  o->recv_buffer = 128;
  o->reconnect_min_ms = 100;
  o->reconnect_max_ms = 2000;
  o->resolve_interval_ms = 5000;
}

/* ---------------------------------------------------------------- */
/* Endpoints and dialers                                              */
/* ---------------------------------------------------------------- */

static int tcp_url(const char *host, int port, char *buf, size_t cap) {
  bool v6 = strchr(host, ':') != NULL;
  int n = snprintf(buf, cap, v6 ? "tcp://[%s]:%d" : "tcp://%s:%d", host, port);
  return (n < 0 || (size_t)n >= cap) ? ERR_TOOBIG : ERR_OK;
}

/* Resolves one dns endpoint into st->urls; keeps the old list on failure. */
static void resolve_endpoint(ep_state *st) {
  struct addrinfo hints;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  struct addrinfo *res = NULL;
  int rv = getaddrinfo(st->ep.host, NULL, &hints, &res);
  if (rv != 0) {
    log_warn("bus: name did not resolve", "host", st->ep.host, "error",
             gai_strerror(rv));
    return;
  }
  size_t n = 0;
  char(*urls)[URL_LEN] = calloc(BUS_MAX_ENDPOINTS, URL_LEN);
  if (urls == NULL) {
    freeaddrinfo(res);
    return;
  }
  for (struct addrinfo *ai = res; ai != NULL && n < BUS_MAX_ENDPOINTS;
       ai = ai->ai_next) {
    char ip[INET6_ADDRSTRLEN];
    const void *src;
    if (ai->ai_family == AF_INET) {
      src = &((struct sockaddr_in *)(void *)ai->ai_addr)->sin_addr;
    } else if (ai->ai_family == AF_INET6) {
      src = &((struct sockaddr_in6 *)(void *)ai->ai_addr)->sin6_addr;
    } else {
      continue;
    }
    if (inet_ntop(ai->ai_family, src, ip, sizeof(ip)) == NULL) continue;
    char url[URL_LEN];
    if (tcp_url(ip, st->ep.port, url, sizeof(url)) != ERR_OK) continue;
    bool dup = false;
    for (size_t i = 0; i < n && !dup; i++) dup = strcmp(urls[i], url) == 0;
    if (!dup) str_copy(urls[n++], url, URL_LEN);
  }
  freeaddrinfo(res);
  if (n > 0) {
    memcpy(st->urls, urls, (size_t)BUS_MAX_ENDPOINTS * URL_LEN);
    st->nurls = n;
  }
  free(urls);
}

static void dialer_add(bus_subscriber *s, const char *url) {
  if (s->ndialers >= MAX_DIALERS) {
    log_warn("bus: too many publisher addresses, ignoring one", "url", url);
    return;
  }
  dialer_entry *de = &s->dialers[s->ndialers];
  if (nng_dialer_create(&de->d, s->sock, url) != 0) {
    log_warn("bus: cannot create dialer", "url", url);
    return;
  }
  (void)nng_dialer_set_size(de->d, NNG_OPT_RECVMAXSZ, s->o.max_msg_bytes);
  (void)nng_dialer_set_ms(de->d, NNG_OPT_RECONNMINT,
                          (nng_duration)s->o.reconnect_min_ms);
  (void)nng_dialer_set_ms(de->d, NNG_OPT_RECONNMAXT,
                          (nng_duration)s->o.reconnect_max_ms);
  /* Non-blocking: a publisher that is not up yet is retried in the
   * background instead of failing the subscriber. */
  if (nng_dialer_start(de->d, NNG_FLAG_NONBLOCK) != 0) {
    nng_dialer_close(de->d);
    log_warn("bus: cannot start dialer", "url", url);
    return;
  }
  str_copy(de->url, url, sizeof(de->url));
  s->ndialers++;
}

/* Makes the dialers match the endpoints' current URLs. */
static void reconcile(bus_subscriber *s) {
  char(*want)[URL_LEN] = calloc(MAX_DIALERS, URL_LEN);
  if (want == NULL) return;
  size_t nwant = 0;
  for (size_t e = 0; e < s->neps; e++) {
    for (size_t u = 0; u < s->eps[e].nurls && nwant < MAX_DIALERS; u++) {
      bool dup = false;
      for (size_t i = 0; i < nwant && !dup; i++) {
        dup = strcmp(want[i], s->eps[e].urls[u]) == 0;
      }
      if (!dup) str_copy(want[nwant++], s->eps[e].urls[u], URL_LEN);
    }
  }
  for (size_t i = 0; i < s->ndialers;) {
    bool keep = false;
    for (size_t w = 0; w < nwant && !keep; w++) {
      keep = strcmp(s->dialers[i].url, want[w]) == 0;
    }
    if (keep) {
      i++;
      continue;
    }
    log_info("bus: publisher address removed", "url", s->dialers[i].url);
    nng_dialer_close(s->dialers[i].d);
    s->dialers[i] = s->dialers[--s->ndialers];
  }
  for (size_t w = 0; w < nwant; w++) {
    bool have = false;
    for (size_t i = 0; i < s->ndialers && !have; i++) {
      have = strcmp(s->dialers[i].url, want[w]) == 0;
    }
    if (!have) dialer_add(s, want[w]);
  }
  free(want);
}

static void abs_time(struct timespec *ts, int64_t mono_ms) {
  ts->tv_sec = (time_t)(mono_ms / 1000);
  ts->tv_nsec = (long)(mono_ms % 1000) * 1000000L;
}

static void *resolver_main(void *arg) {
  bus_subscriber *s = arg;
  pthread_mutex_lock(&s->res_mu);
  while (!s->stopping) {
    struct timespec until;
    abs_time(&until, time_mono_ms() + (int64_t)s->o.resolve_interval_ms);
    while (!s->stopping &&
           pthread_cond_timedwait(&s->res_cv, &s->res_mu, &until) == 0) {
    }
    if (s->stopping) break;
    pthread_mutex_unlock(&s->res_mu);
    for (size_t e = 0; e < s->neps; e++) {
      if (s->eps[e].ep.dns) resolve_endpoint(&s->eps[e]);
    }
    reconcile(s);
    pthread_mutex_lock(&s->res_mu);
  }
  pthread_mutex_unlock(&s->res_mu);
  return NULL;
}

static void pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg) {
  (void)p;
  bus_subscriber *s = arg;
  pthread_mutex_lock(&s->pipe_mu);
  if (ev == NNG_PIPE_EV_ADD_POST) {
    s->npipes++;
  } else if (ev == NNG_PIPE_EV_REM_POST && s->npipes > 0) {
    s->npipes--;
  }
  pthread_cond_broadcast(&s->pipe_cv);
  pthread_mutex_unlock(&s->pipe_mu);
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

static void *rx_main(void *arg) {
  bus_subscriber *s = arg;
  bus_tracker_poll(s->trk, time_mono_ms());
  while (!atomic_load(&s->stop_rx)) {
    nng_msg *m = NULL;
    int rv = nng_recvmsg(s->sock, &m, 0);
    if (rv == NNG_ECLOSED) break;
    if (rv == 0) {
      Rpc__V1__Event *ev = NULL;
      if (bus_frame_decode(nng_msg_body(m), nng_msg_len(m), s->o.max_msg_bytes,
                           &ev) != ERR_OK) {
        bus_tracker_count_bad_frame(s->trk);
      } else {
        int rc = bus_tracker_offer(s->trk, ev, time_mono_ms());
        if (rc != ERR_OK && rc != ERR_TOOBIG) {
          log_warn("bus: event not taken", "source", ev->source, "error",
                   err_str(rc));
        }
        rpc__v1__event__free_unpacked(ev, NULL);
      }
      nng_msg_free(m);
    }
    bus_tracker_poll(s->trk, time_mono_ms());
  }
  return NULL;
}

/* ---------------------------------------------------------------- */
/* Public API                                                         */
/* ---------------------------------------------------------------- */

int bus_subscriber_new(const char *address, bus_event_fn fn, void *arg,
                       const bus_subscriber_options *opts,
                       bus_subscriber **out) {
  if (out == NULL) return ERR_INVAL;
  *out = NULL;
  if (address == NULL || fn == NULL) return ERR_INVAL;
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
    if (opts->resolve_interval_ms) o.resolve_interval_ms = opts->resolve_interval_ms;
  }
  rpc_endpoint eps[BUS_MAX_ENDPOINTS];
  size_t neps = 0;
  if (rpc_address_parse(address, eps, BUS_MAX_ENDPOINTS, &neps) != ERR_OK) {
    return ERR_INVAL;
  }

  bus_subscriber *s = calloc(1, sizeof(*s));
  if (s == NULL) return ERR_NOMEM;
  s->fn = fn;
  s->arg = arg;
  s->o = o;
  atomic_init(&s->stop_rx, false);
  pthread_mutex_init(&s->sub_mu, NULL);
  pthread_mutex_init(&s->pipe_mu, NULL);
  pthread_mutex_init(&s->res_mu, NULL);
  /* Both waits are on the monotonic clock (time_mono_ms), so a clock
   * step cannot stretch them. */
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s->pipe_cv, &ca);
  pthread_cond_init(&s->res_cv, &ca);
  pthread_condattr_destroy(&ca);

  int err = ERR_INTERNAL;
  bus_tracker_options to = o.tracker;
  to.deliver = deliver_cb;
  to.deliver_arg = s;
  err = bus_tracker_new(&to, &s->trk);
  if (err != ERR_OK) goto err;
  err = ERR_INTERNAL;
  if (nng_sub0_open(&s->sock) != 0) goto err;
  (void)nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, o.max_msg_bytes);
  (void)nng_socket_set_int(s->sock, NNG_OPT_RECVBUF, o.recv_buffer);
  (void)nng_socket_set_ms(s->sock, NNG_OPT_RECVTIMEO, RECV_POLL_MS);
  if (nng_pipe_notify(s->sock, NNG_PIPE_EV_ADD_POST, pipe_cb, s) != 0 ||
      nng_pipe_notify(s->sock, NNG_PIPE_EV_REM_POST, pipe_cb, s) != 0) {
    goto err_sock;
  }
  for (size_t e = 0; e < neps; e++) {
    ep_state *st = &s->eps[s->neps++];
    st->ep = eps[e];
    st->urls = calloc(BUS_MAX_ENDPOINTS, URL_LEN);
    if (st->urls == NULL) {
      err = ERR_NOMEM;
      goto err_sock;
    }
    if (st->ep.dns) {
      s->any_dns = true;
      resolve_endpoint(st); /* may find nothing yet: retried */
    } else if (tcp_url(st->ep.host, st->ep.port, st->urls[0], URL_LEN) == ERR_OK) {
      st->nurls = 1;
    }
  }
  reconcile(s);
  *out = s;
  return ERR_OK;
err_sock:
  nng_close(s->sock);
err:
  bus_tracker_free(s->trk);
  for (size_t e = 0; e < s->neps; e++) free(s->eps[e].urls);
  pthread_mutex_destroy(&s->sub_mu);
  pthread_mutex_destroy(&s->pipe_mu);
  pthread_cond_destroy(&s->pipe_cv);
  pthread_mutex_destroy(&s->res_mu);
  pthread_cond_destroy(&s->res_cv);
  free(s);
  return err;
}

static int subscribe(bus_subscriber *s, const char *topic, bool exact) {
  if (s == NULL || topic == NULL) return ERR_INVAL;
  size_t n = strnlen(topic, BUS_MAX_TOPIC_LEN + 1);
  if (n > BUS_MAX_TOPIC_LEN || !str_is_printable(topic, n) || (exact && n == 0)) {
    return ERR_INVAL;
  }
  int rc = ERR_OK;
  pthread_mutex_lock(&s->sub_mu);
  for (size_t i = 0; i < s->nsubs; i++) {
    if (s->subs[i].exact == exact && strcmp(s->subs[i].topic, topic) == 0) goto out;
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
  int rv = nng_socket_set(s->sock, NNG_OPT_SUB_SUBSCRIBE, filt, exact ? n + 1 : n);
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
  if (s->any_dns) {
    if (pthread_create(&s->resolver, NULL, resolver_main, s) != 0) {
      log_warn("bus: cannot start resolver thread; addresses stay as resolved");
    } else {
      s->resolver_started = true;
    }
  }
  return ERR_OK;
}

int bus_subscriber_connected(bus_subscriber *s) {
  if (s == NULL) return 0;
  pthread_mutex_lock(&s->pipe_mu);
  int n = s->npipes;
  pthread_mutex_unlock(&s->pipe_mu);
  return n;
}

int bus_subscriber_wait_connected(bus_subscriber *s, int n, uint32_t timeout_ms) {
  if (s == NULL || n < 0) return ERR_INVAL;
  int64_t deadline = time_mono_ms() + timeout_ms;
  struct timespec until;
  abs_time(&until, deadline);
  pthread_mutex_lock(&s->pipe_mu);
  while (s->npipes < n) {
    if (pthread_cond_timedwait(&s->pipe_cv, &s->pipe_mu, &until) != 0) break;
  }
  bool ok = s->npipes >= n;
  pthread_mutex_unlock(&s->pipe_mu);
  return ok ? ERR_OK : ERR_TIMEOUT;
}

void bus_subscriber_get_stats(bus_subscriber *s, bus_stats *out) {
  if (s == NULL) {
    memset(out, 0, sizeof(*out));
    return;
  }
  bus_tracker_get_stats(s->trk, out);
}

void bus_subscriber_free(bus_subscriber *s) {
  if (s == NULL) return;
  if (s->resolver_started) {
    pthread_mutex_lock(&s->res_mu);
    s->stopping = true;
    pthread_cond_broadcast(&s->res_cv);
    pthread_mutex_unlock(&s->res_mu);
    pthread_join(s->resolver, NULL);
  }
  atomic_store(&s->stop_rx, true);
  bus_tracker_interrupt(s->trk);
  nng_close(s->sock);
  if (s->started) pthread_join(s->rx, NULL);
  bus_tracker_free(s->trk);
  for (size_t e = 0; e < s->neps; e++) free(s->eps[e].urls);
  pthread_mutex_destroy(&s->sub_mu);
  pthread_mutex_destroy(&s->pipe_mu);
  pthread_cond_destroy(&s->pipe_cv);
  pthread_mutex_destroy(&s->res_mu);
  pthread_cond_destroy(&s->res_cv);
  free(s);
}
