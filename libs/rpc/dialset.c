/*
 * dialset.c - the dialers behind one address list, reconciled with DNS,
 * and the count of connected pipes (see dialset.h for the design).
 *
 * Locking. set_mu guards the resolution state and the dialer table: it
 * is held for a whole resolve-and-reconcile, so the resolver thread and
 * dialset_refresh never interleave (lookups are slow, but nothing else
 * waits on set_mu except dialset_dialers, a test helper). res_mu/res_cv
 * only wake the resolver for shutdown. pipe_mu/pipe_cv guard the pipe
 * ids; npipes_fast mirrors their number for lock-free readers. The pipe
 * callback runs on nng's threads and must not call into the socket.
 * Outlier state (each dialer's failure streak, the ejected URLs) is
 * under set_mu too; nfailing and next_due_ns mirror it so that the
 * calls' hot path (a good reply, nothing due) takes no lock.
 */
#include "libs/rpc/dialset.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "libs/obs/log.h"
#include "libs/rpc/rpc_internal.h"

#define DEFAULT_MAX_DIALERS 256
#define DEFAULT_RESOLVE_INTERVAL_MS 5000
#define MAX_PIPES 1024
#define SEEN_SLOTS 1024 /* last-reply times, by pipe id modulo this */
#define MAX_BLAMED 64   /* silent pipes blamed for one timeout */

/* When a pipe last brought a reply. Two relaxed atomics: a torn pair (a
 * pipe id with another pipe's time) can only make a pipe look silent or
 * alive once, which the streak of several failures absorbs. */
typedef struct seen_slot {
  _Atomic uint32_t pipe;
  _Atomic int64_t ns;
} seen_slot;

_Static_assert(DIALSET_IP_LEN == INET6_ADDRSTRLEN, "dialset.h spells it out");

/* One endpoint and its last good resolution. */
typedef struct ep_state {
  rpc_endpoint ep;
  char urls[RPC_MAX_ENDPOINTS][RPC_MAX_URL_LEN];
  size_t nurls;
  bool failing; /* last lookup failed (logged once per failure streak) */
} ep_state;

typedef struct dialer_entry {
  char url[RPC_MAX_URL_LEN];
  nng_dialer d;
  uint32_t failures; /* consecutive failed replies */
} dialer_entry;

/* A URL ejected now or before (times and ended_ns remember it). */
typedef struct eject_entry {
  char url[RPC_MAX_URL_LEN];
  int64_t until_ns; /* left out of the wanted set until then */
  int64_t ended_ns; /* when the last ejection ended (0: still on) */
  uint32_t times;   /* ejections in a row (the backoff's exponent) */
} eject_entry;

struct dialset {
  dialset_options o;
  char who[32];

  ep_state *eps;
  size_t neps;
  bool any_dns;

  nng_socket sock;
  bool attached;

  pthread_mutex_t set_mu; /* eps' resolution state and the dialers */
  dialer_entry *dialers;  /* o.max_dialers slots */
  size_t ndialers;
  eject_entry *ejected; /* o.max_dialers slots */
  size_t nejected;
  _Atomic size_t nfailing;     /* dialers with failures > 0 */
  _Atomic int64_t next_due_ns; /* earliest until_ns still ahead; 0: none */

  pthread_t resolver;
  bool resolver_started;
  pthread_mutex_t res_mu;
  pthread_cond_t res_cv;
  bool stopping; /* under res_mu */

  pthread_mutex_t pipe_mu;
  pthread_cond_t pipe_cv;
  uint32_t pipe_ids[MAX_PIPES];
  size_t npipes;
  _Atomic size_t npipes_fast; /* copy of npipes readable without the lock */

  seen_slot seen[SEEN_SLOTS]; /* each pipe's last reply (timeouts' blame) */
};

void dialset_options_init(dialset_options *o) {
  memset(o, 0, sizeof(*o));
  o->who = "dialset";
  o->max_endpoints = RPC_MAX_ENDPOINTS;
  o->max_dialers = DEFAULT_MAX_DIALERS;
  o->resolve_interval_ms = DEFAULT_RESOLVE_INTERVAL_MS;
}

/* Logs "<who>: what" with up to two key/value pairs (k2 NULL: one). */
static void ds_log(const dialset *ds, enum log_level level, const char *what,
                   const char *k1, const char *v1, const char *k2,
                   const char *v2) {
  char msg[128];
  snprintf(msg, sizeof(msg), "%s: %s", ds->who, what);
  log_msg(level, msg, k1, v1, k2, v2, (char *)0);
}

static void abs_time(struct timespec *ts, int64_t mono_ns) {
  ts->tv_sec = (time_t)(mono_ns / 1000000000);
  ts->tv_nsec = (long)(mono_ns % 1000000000);
}

/* ---------------------------------------------------------------- */
/* Resolution                                                         */
/* ---------------------------------------------------------------- */

/* The default resolver: getaddrinfo, IPv4 and IPv6. */
static int resolve_getaddrinfo(void *arg, const char *host,
                               char (*ips)[DIALSET_IP_LEN], size_t cap,
                               size_t *n, const char **why) {
  (void)arg;
  struct addrinfo hints;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  struct addrinfo *res = NULL;
  int rv = getaddrinfo(host, NULL, &hints, &res);
  if (rv != 0) {
    *why = gai_strerror(rv);
    return ERR_UNAVAILABLE;
  }
  size_t k = 0;
  for (struct addrinfo *ai = res; ai != NULL && k < cap; ai = ai->ai_next) {
    const void *src;
    if (ai->ai_family == AF_INET) {
      src = &((struct sockaddr_in *)(void *)ai->ai_addr)->sin_addr;
    } else if (ai->ai_family == AF_INET6) {
      src = &((struct sockaddr_in6 *)(void *)ai->ai_addr)->sin6_addr;
    } else {
      continue;
    }
    if (inet_ntop(ai->ai_family, src, ips[k], DIALSET_IP_LEN) != NULL) k++;
  }
  freeaddrinfo(res);
  *n = k;
  return ERR_OK;
}

/* Resolves one dns endpoint into st->urls. Keeps the old list when the
 * lookup fails or finds nothing usable. Under set_mu. */
static void resolve_endpoint(dialset *ds, ep_state *st) {
  char ips[RPC_MAX_ENDPOINTS][DIALSET_IP_LEN];
  size_t nips = 0;
  const char *why = "lookup failed";
  int rc = ds->o.resolve(ds->o.resolve_arg, st->ep.host, ips, RPC_MAX_ENDPOINTS,
                         &nips, &why);
  if (rc != ERR_OK) {
    if (!st->failing) {
      ds_log(ds, LOG_WARN, "name did not resolve", "host", st->ep.host, "error",
             why != NULL ? why : "lookup failed");
    }
    st->failing = true;
    return;
  }
  if (st->failing) {
    ds_log(ds, LOG_INFO, "name resolves again", "host", st->ep.host, NULL,
           NULL);
  }
  st->failing = false;
  char urls[RPC_MAX_ENDPOINTS][RPC_MAX_URL_LEN];
  size_t n = 0;
  for (size_t i = 0; i < nips && i < RPC_MAX_ENDPOINTS; i++) {
    char url[RPC_MAX_URL_LEN];
    ips[i][DIALSET_IP_LEN - 1] = '\0';
    if (rpc_tcp_url(ips[i], st->ep.port, url, sizeof(url)) != ERR_OK) continue;
    bool dup = false;
    for (size_t j = 0; j < n && !dup; j++) dup = strcmp(urls[j], url) == 0;
    if (!dup) str_copy(urls[n++], url, RPC_MAX_URL_LEN);
  }
  if (n == 0) return;
  memcpy(st->urls, urls, n * RPC_MAX_URL_LEN);
  st->nurls = n;
}

/* ---------------------------------------------------------------- */
/* Dialers                                                            */
/* ---------------------------------------------------------------- */

/* Under set_mu. */
static void dialer_add(dialset *ds, const char *url) {
  if (ds->ndialers >= ds->o.max_dialers) {
    ds_log(ds, LOG_WARN, "too many addresses, ignoring one", "url", url, NULL,
           NULL);
    return;
  }
  dialer_entry *de = &ds->dialers[ds->ndialers];
  if (nng_dialer_create(&de->d, ds->sock, url) != 0) {
    ds_log(ds, LOG_WARN, "cannot create dialer", "url", url, NULL, NULL);
    return;
  }
  if (ds->o.recv_max_bytes != 0) {
    (void)nng_dialer_set_size(de->d, NNG_OPT_RECVMAXSZ, ds->o.recv_max_bytes);
  }
  if (ds->o.reconnect_min_ms != 0) {
    (void)nng_dialer_set_ms(de->d, NNG_OPT_RECONNMINT,
                            (nng_duration)ds->o.reconnect_min_ms);
  }
  if (ds->o.reconnect_max_ms != 0) {
    (void)nng_dialer_set_ms(de->d, NNG_OPT_RECONNMAXT,
                            (nng_duration)ds->o.reconnect_max_ms);
  }
  /* Non-blocking: a peer that is not up yet is retried in the background
   * instead of failing the user. */
  if (nng_dialer_start(de->d, NNG_FLAG_NONBLOCK) != 0) {
    nng_dialer_close(de->d);
    ds_log(ds, LOG_WARN, "cannot start dialer", "url", url, NULL, NULL);
    return;
  }
  str_copy(de->url, url, sizeof(de->url));
  ds->ndialers++;
}

/* Closes dialer i and drops it from the table. Under set_mu. */
static void dialer_remove(dialset *ds, size_t i) {
  if (ds->dialers[i].failures > 0) atomic_fetch_sub(&ds->nfailing, 1);
  nng_dialer_close(ds->dialers[i].d);
  ds->dialers[i] = ds->dialers[--ds->ndialers];
}

static eject_entry *eject_find(dialset *ds, const char *url) {
  for (size_t i = 0; i < ds->nejected; i++)
    if (strcmp(ds->ejected[i].url, url) == 0) return &ds->ejected[i];
  return NULL;
}

/* Removes from want[0..n) the URLs ejected now, unless that would leave
 * none; returns the new n. Logs the URLs whose ejection just ended. Under
 * set_mu. */
static size_t drop_ejected(dialset *ds, char (*want)[RPC_MAX_URL_LEN],
                           size_t n) {
  int64_t now = time_mono_ns(), next = 0;
  size_t kept = 0;
  for (size_t i = 0; i < ds->nejected; i++) {
    eject_entry *e = &ds->ejected[i];
    if (e->ended_ns == 0 && e->until_ns <= now) {
      e->ended_ns = now;
      ds_log(ds, LOG_INFO, "replica re-admitted (dialled again)", "url", e->url,
             NULL, NULL);
    }
    if (e->ended_ns == 0 && (next == 0 || e->until_ns < next))
      next = e->until_ns;
  }
  atomic_store(&ds->next_due_ns, next);
  for (size_t w = 0; w < n; w++) {
    eject_entry *e = eject_find(ds, want[w]);
    if (e != NULL && e->ended_ns == 0) continue;
    if (kept != w) memcpy(want[kept], want[w], RPC_MAX_URL_LEN);
    kept++;
  }
  return kept > 0 ? kept : n;
}

/* Makes the dialers match the endpoints' current URLs. Under set_mu. */
static void reconcile(dialset *ds) {
  size_t cap = ds->o.max_dialers;
  char(*want)[RPC_MAX_URL_LEN] = calloc(cap, RPC_MAX_URL_LEN);
  if (want == NULL) return; /* try again at the next tick */
  size_t nwant = 0;
  for (size_t e = 0; e < ds->neps; e++) {
    const ep_state *st = &ds->eps[e];
    for (size_t u = 0; u < st->nurls && nwant < cap; u++) {
      bool dup = false;
      for (size_t i = 0; i < nwant && !dup; i++) {
        dup = strcmp(want[i], st->urls[u]) == 0;
      }
      if (!dup) str_copy(want[nwant++], st->urls[u], RPC_MAX_URL_LEN);
    }
  }
  nwant = drop_ejected(ds, want, nwant);
  /* Close the dialers no longer wanted. */
  for (size_t i = 0; i < ds->ndialers;) {
    bool keep = false;
    for (size_t w = 0; w < nwant && !keep; w++) {
      keep = strcmp(ds->dialers[i].url, want[w]) == 0;
    }
    if (keep) {
      i++;
      continue;
    }
    ds_log(ds, LOG_INFO, "address removed", "url", ds->dialers[i].url, NULL,
           NULL);
    dialer_remove(ds, i);
  }
  /* Open the new ones. */
  for (size_t w = 0; w < nwant; w++) {
    bool have = false;
    for (size_t i = 0; i < ds->ndialers && !have; i++) {
      have = strcmp(ds->dialers[i].url, want[w]) == 0;
    }
    if (!have) dialer_add(ds, want[w]);
  }
  free(want);
}

void dialset_refresh(dialset *ds) {
  if (ds == NULL || !ds->attached) return;
  pthread_mutex_lock(&ds->set_mu);
  for (size_t e = 0; e < ds->neps; e++) {
    if (ds->eps[e].ep.dns) resolve_endpoint(ds, &ds->eps[e]);
  }
  reconcile(ds);
  pthread_mutex_unlock(&ds->set_mu);
}

static void *resolver_main(void *arg) {
  dialset *ds = arg;
  pthread_mutex_lock(&ds->res_mu);
  while (!ds->stopping) {
    struct timespec until;
    abs_time(&until,
             time_mono_ns() + (int64_t)ds->o.resolve_interval_ms * 1000000);
    while (!ds->stopping &&
           pthread_cond_timedwait(&ds->res_cv, &ds->res_mu, &until) == 0) {
    }
    if (ds->stopping) break;
    pthread_mutex_unlock(&ds->res_mu);
    dialset_refresh(ds);
    pthread_mutex_lock(&ds->res_mu);
  }
  pthread_mutex_unlock(&ds->res_mu);
  return NULL;
}

size_t dialset_dialers(dialset *ds, char (*urls)[RPC_MAX_URL_LEN], size_t cap) {
  if (ds == NULL) return 0;
  pthread_mutex_lock(&ds->set_mu);
  size_t n = ds->ndialers;
  for (size_t i = 0; i < n && i < cap; i++) {
    str_copy(urls[i], ds->dialers[i].url, RPC_MAX_URL_LEN);
  }
  pthread_mutex_unlock(&ds->set_mu);
  return n;
}

/* ---------------------------------------------------------------- */
/* Outliers                                                           */
/* ---------------------------------------------------------------- */

/* The slot for url's ejection: its old one, a free one, or the one whose
 * ejection ended longest ago. Under set_mu. */
static eject_entry *eject_slot(dialset *ds, const char *url) {
  eject_entry *e = eject_find(ds, url);
  if (e != NULL) return e;
  if (ds->nejected < ds->o.max_dialers) {
    e = &ds->ejected[ds->nejected++];
  } else {
    e = NULL;
    for (size_t i = 0; i < ds->nejected; i++) {
      eject_entry *c = &ds->ejected[i];
      if (c->ended_ns != 0 && (e == NULL || c->ended_ns < e->ended_ns)) e = c;
    }
    if (e == NULL) return NULL; /* every slot ejected now: keep it */
  }
  memset(e, 0, sizeof *e);
  str_copy(e->url, url, sizeof e->url);
  return e;
}

/* At most half of the replicas are out at once, and never the last one:
 * when most replicas fail alike (a shared database down), ejecting them
 * would only pile the load on the rest. Under set_mu. */
static bool may_eject(dialset *ds) {
  size_t out = 0;
  for (size_t i = 0; i < ds->nejected; i++)
    if (ds->ejected[i].ended_ns == 0) out++;
  size_t total = ds->ndialers + out;
  return ds->ndialers > 1 && (out + 1) * 2 <= total;
}

/* Ejects dialer i (see dialset.h). Under set_mu. */
static void eject(dialset *ds, size_t i, const dialset_outlier *o) {
  eject_entry *e = eject_slot(ds, ds->dialers[i].url);
  if (e == NULL) return;
  int64_t now = time_mono_ns();
  int64_t max_ns = (int64_t)o->max_ms * 1000000;
  if (e->ended_ns != 0 && now - e->ended_ns > max_ns) e->times = 0;
  uint64_t ms = (uint64_t)o->base_ms << (e->times < 16 ? e->times : 16);
  if (ms > o->max_ms) ms = o->max_ms;
  e->times++;
  e->until_ns = now + (int64_t)ms * 1000000;
  e->ended_ns = 0;
  int64_t due = atomic_load(&ds->next_due_ns);
  if (due == 0 || e->until_ns < due)
    atomic_store(&ds->next_due_ns, e->until_ns);
  char for_ms[24];
  snprintf(for_ms, sizeof for_ms, "%llu", (unsigned long long)ms);
  ds_log(ds, LOG_WARN, "replica ejected after consecutive failures", "url",
         e->url, "ms", for_ms);
  dialer_remove(ds, i);
}

/* Counts a success or failure on the replica dialled by dialer did.
 * Under set_mu. */
static void count_outcome(dialset *ds, int did, bool ok,
                          const dialset_outlier *o) {
  for (size_t i = 0; i < ds->ndialers; i++) {
    dialer_entry *de = &ds->dialers[i];
    if (nng_dialer_id(de->d) != did) continue;
    if (ok) {
      if (de->failures > 0) atomic_fetch_sub(&ds->nfailing, 1);
      de->failures = 0;
    } else {
      if (de->failures++ == 0) atomic_fetch_add(&ds->nfailing, 1);
      if (de->failures >= o->failures && may_eject(ds)) eject(ds, i, o);
    }
    return;
  }
}

void dialset_report(dialset *ds, nng_pipe p, bool ok,
                    const dialset_outlier *o) {
  if (ds == NULL || o == NULL || o->failures == 0) return;
  uint32_t pid = nng_pipe_id(p);
  if (pid > 0) { /* it answered: alive, whatever it said */
    seen_slot *sl = &ds->seen[pid % SEEN_SLOTS];
    atomic_store_explicit(&sl->pipe, pid, memory_order_relaxed);
    atomic_store_explicit(&sl->ns, time_mono_ns(), memory_order_relaxed);
  }
  if (ok && atomic_load_explicit(&ds->nfailing, memory_order_relaxed) == 0)
    return;
  int did = nng_dialer_id(nng_pipe_dialer(p));
  if (did <= 0) return; /* not one of ours (or gone) */
  pthread_mutex_lock(&ds->set_mu);
  count_outcome(ds, did, ok, o);
  pthread_mutex_unlock(&ds->set_mu);
}

/* True when pipe pid brought a reply at or after since_ns. */
static bool replied_since(dialset *ds, uint32_t pid, int64_t since_ns) {
  seen_slot *sl = &ds->seen[pid % SEEN_SLOTS];
  return atomic_load_explicit(&sl->pipe, memory_order_relaxed) == pid &&
         atomic_load_explicit(&sl->ns, memory_order_relaxed) >= since_ns;
}

void dialset_report_timeout(dialset *ds, int64_t sent_ns,
                            const dialset_outlier *o) {
  if (ds == NULL || o == NULL || o->failures == 0) return;
  uint32_t silent[MAX_BLAMED];
  size_t nsilent = 0, alive = 0;
  pthread_mutex_lock(&ds->pipe_mu);
  for (size_t i = 0; i < ds->npipes; i++) {
    if (replied_since(ds, ds->pipe_ids[i], sent_ns))
      alive++;
    else if (nsilent < MAX_BLAMED)
      silent[nsilent++] = ds->pipe_ids[i];
  }
  pthread_mutex_unlock(&ds->pipe_mu);
  if (alive == 0 || nsilent == 0) return; /* nothing told apart */
  int dids[MAX_BLAMED];
  for (size_t i = 0; i < nsilent; i++) {
    nng_pipe p = NNG_PIPE_INITIALIZER;
    p.id = silent[i];
    dids[i] = nng_dialer_id(nng_pipe_dialer(p)); /* -1: gone meanwhile */
  }
  pthread_mutex_lock(&ds->set_mu);
  for (size_t i = 0; i < nsilent; i++)
    if (dids[i] > 0) count_outcome(ds, dids[i], false, o);
  pthread_mutex_unlock(&ds->set_mu);
}

void dialset_tick(dialset *ds) {
  if (ds == NULL || !ds->attached) return;
  int64_t due = atomic_load_explicit(&ds->next_due_ns, memory_order_relaxed);
  if (due == 0 || time_mono_ns() < due) return;
  pthread_mutex_lock(&ds->set_mu);
  reconcile(ds); /* re-dials what is due, and sets next_due_ns again */
  pthread_mutex_unlock(&ds->set_mu);
}

/* ---------------------------------------------------------------- */
/* Pipes                                                              */
/* ---------------------------------------------------------------- */

/* Runs on nng's threads; must not call into the socket. */
static void pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg) {
  dialset *ds = arg;
  uint32_t id = nng_pipe_id(p);
  pthread_mutex_lock(&ds->pipe_mu);
  if (ev == NNG_PIPE_EV_ADD_POST) {
    if (ds->npipes < MAX_PIPES) ds->pipe_ids[ds->npipes++] = id;
    atomic_store(&ds->npipes_fast, ds->npipes);
    pthread_cond_broadcast(&ds->pipe_cv);
  } else if (ev == NNG_PIPE_EV_REM_POST) {
    /* REM_POST also fires for pipes rejected before ADD_POST: only
     * count down pipes that were counted up. */
    for (size_t i = 0; i < ds->npipes; i++) {
      if (ds->pipe_ids[i] == id) {
        ds->pipe_ids[i] = ds->pipe_ids[--ds->npipes];
        atomic_store(&ds->npipes_fast, ds->npipes);
        break;
      }
    }
  }
  pthread_mutex_unlock(&ds->pipe_mu);
}

size_t dialset_connected(dialset *ds) {
  if (ds == NULL) return 0;
  return atomic_load(&ds->npipes_fast);
}

bool dialset_wait_connected(dialset *ds, size_t n, int64_t deadline_ns) {
  if (ds == NULL) return false;
  /* Fast path without the lock: the common case is "connected". */
  if (atomic_load_explicit(&ds->npipes_fast, memory_order_relaxed) >= n) {
    return true;
  }
  struct timespec until;
  abs_time(&until, deadline_ns);
  pthread_mutex_lock(&ds->pipe_mu);
  while (ds->npipes < n) {
    if (pthread_cond_timedwait(&ds->pipe_cv, &ds->pipe_mu, &until) != 0) break;
  }
  bool ok = ds->npipes >= n;
  pthread_mutex_unlock(&ds->pipe_mu);
  return ok;
}

int dialset_wait_connected_ms(dialset *ds, int n, uint32_t timeout_ms) {
  if (ds == NULL || n < 0) return ERR_INVAL;
  int64_t deadline = time_mono_ns() + (int64_t)timeout_ms * 1000000;
  return dialset_wait_connected(ds, (size_t)n, deadline) ? ERR_OK : ERR_TIMEOUT;
}

/* ---------------------------------------------------------------- */
/* Life cycle                                                         */
/* ---------------------------------------------------------------- */

int dialset_new(const char *address, const dialset_options *opts,
                dialset **out) {
  if (out == NULL) return ERR_INVAL;
  *out = NULL;
  if (address == NULL) return ERR_INVAL;
  dialset_options o;
  dialset_options_init(&o);
  if (opts != NULL) {
    if (opts->max_endpoints > RPC_MAX_ENDPOINTS ||
        opts->recv_max_bytes > (size_t)INT32_MAX ||
        opts->reconnect_min_ms > INT32_MAX ||
        opts->reconnect_max_ms > INT32_MAX) {
      return ERR_INVAL;
    }
    if (opts->who != NULL) o.who = opts->who;
    if (opts->max_endpoints) o.max_endpoints = opts->max_endpoints;
    if (opts->max_dialers) o.max_dialers = opts->max_dialers;
    o.recv_max_bytes = opts->recv_max_bytes;
    o.reconnect_min_ms = opts->reconnect_min_ms;
    o.reconnect_max_ms = opts->reconnect_max_ms;
    if (opts->resolve_interval_ms)
      o.resolve_interval_ms = opts->resolve_interval_ms;
    o.resolve = opts->resolve;
    o.resolve_arg = opts->resolve_arg;
  }
  if (o.resolve == NULL) o.resolve = resolve_getaddrinfo;

  rpc_endpoint eps[RPC_MAX_ENDPOINTS];
  size_t neps = 0;
  if (rpc_address_parse(address, eps, o.max_endpoints, &neps) != ERR_OK) {
    return ERR_INVAL;
  }

  dialset *ds = calloc(1, sizeof(*ds));
  if (ds == NULL) return ERR_NOMEM;
  ds->eps = calloc(neps, sizeof(*ds->eps));
  ds->dialers = calloc(o.max_dialers, sizeof(*ds->dialers));
  ds->ejected = calloc(o.max_dialers, sizeof(*ds->ejected));
  if (ds->eps == NULL || ds->dialers == NULL || ds->ejected == NULL) {
    free(ds->eps);
    free(ds->dialers);
    free(ds->ejected);
    free(ds);
    return ERR_NOMEM;
  }
  ds->o = o;
  str_copy(ds->who, o.who, sizeof(ds->who));
  ds->o.who = ds->who;
  ds->neps = neps;
  for (size_t i = 0; i < neps; i++) {
    ep_state *st = &ds->eps[i];
    st->ep = eps[i];
    if (eps[i].dns) {
      ds->any_dns = true;
    } else if (rpc_tcp_url(eps[i].host, eps[i].port, st->urls[0],
                           RPC_MAX_URL_LEN) == ERR_OK) {
      st->nurls = 1;
    }
  }
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* time_mono_ns() */
  pthread_mutex_init(&ds->set_mu, NULL);
  pthread_mutex_init(&ds->res_mu, NULL);
  pthread_cond_init(&ds->res_cv, &ca);
  pthread_mutex_init(&ds->pipe_mu, NULL);
  pthread_cond_init(&ds->pipe_cv, &ca);
  pthread_condattr_destroy(&ca);
  atomic_init(&ds->npipes_fast, 0);
  atomic_init(&ds->nfailing, 0);
  atomic_init(&ds->next_due_ns, 0);
  *out = ds;
  return ERR_OK;
}

bool dialset_has_dns(const dialset *ds) { return ds != NULL && ds->any_dns; }

int dialset_attach(dialset *ds, nng_socket sock) {
  if (ds == NULL || ds->attached) return ERR_INVAL;
  if (nng_pipe_notify(sock, NNG_PIPE_EV_ADD_POST, pipe_cb, ds) != 0 ||
      nng_pipe_notify(sock, NNG_PIPE_EV_REM_POST, pipe_cb, ds) != 0) {
    (void)nng_pipe_notify(sock, NNG_PIPE_EV_ADD_POST, NULL, NULL);
    return ERR_INTERNAL;
  }
  ds->sock = sock;
  ds->attached = true;
  dialset_refresh(ds); /* a name may find nothing yet: retried */
  return ERR_OK;
}

int dialset_start_resolver(dialset *ds) {
  if (ds == NULL || !ds->attached || ds->resolver_started) return ERR_INVAL;
  if (!ds->any_dns) return ERR_OK;
  if (pthread_create(&ds->resolver, NULL, resolver_main, ds) != 0) {
    return ERR_INTERNAL;
  }
  ds->resolver_started = true;
  return ERR_OK;
}

void dialset_stop(dialset *ds) {
  if (ds == NULL || !ds->resolver_started) return;
  pthread_mutex_lock(&ds->res_mu);
  ds->stopping = true;
  pthread_cond_broadcast(&ds->res_cv);
  pthread_mutex_unlock(&ds->res_mu);
  pthread_join(ds->resolver, NULL);
  ds->resolver_started = false;
}

void dialset_free(dialset *ds) {
  if (ds == NULL) return;
  dialset_stop(ds);
  pthread_mutex_destroy(&ds->set_mu);
  pthread_mutex_destroy(&ds->res_mu);
  pthread_cond_destroy(&ds->res_cv);
  pthread_mutex_destroy(&ds->pipe_mu);
  pthread_cond_destroy(&ds->pipe_cv);
  free(ds->eps);
  free(ds->dialers);
  free(ds->ejected);
  free(ds);
}
