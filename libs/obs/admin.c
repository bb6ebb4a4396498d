/*
 * admin.c - the admin HTTP server: /healthz, /readyz, /metrics (see
 * admin.h), on nng's supplemental HTTP server.
 *
 * Design. nng calls a handler synchronously on one of its shared I/O
 * threads, the same threads that move every RPC and bus message of the
 * process, so a handler must never block. /healthz and /metrics are quick
 * and answer inline. /readyz runs the service's checks, which do network
 * round trips, so its handler only parks the request's aio in a bounded
 * pending list and wakes the "checker" thread. The checker runs the checks
 * on a "worker" thread and waits for it at most check_timeout_ms; then it
 * answers every request that was parked before the run began (concurrent
 * probes share one run). A worker stuck in a check is never duplicated:
 * while it runs, new probes are answered 503 at once, naming the stuck
 * check. So the admin server uses at most two threads of its own and a
 * misbehaving dependency cannot pile up threads or nng callbacks.
 *
 * A parked aio is not given a cancel function: when nng closes the
 * connection it waits for our completion (nng's own REST demo works the
 * same way), which the time bound above keeps short.
 *
 * Lifetime. nng may call a handler after nng_http_server_release returns
 * (server teardown is asynchronous), so the state handlers touch lives in
 * a reference-counted "core" that each registered handler holds through
 * its data destructor; admin_free drops the admin's reference and nng
 * drops the handlers' ones when it is really done with them.
 */
#include "libs/obs/admin.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "libs/obs/log.h"
#include "libs/obs/metrics.h"

#define METRICS_CTYPE "text/plain; version=0.0.4; charset=utf-8"
#define JSON_CTYPE "application/json"

enum { RES_PENDING = 0, RES_OK, RES_FAIL };

struct check {
  char name[ADMIN_MAX_CHECK_NAME];
  admin_check_fn fn;
  void *arg;
};

struct waiter {
  nng_aio *aio;
  uint64_t seq;
};

struct core {
  pthread_mutex_t mu;
  pthread_cond_t wake; /* checker: a probe arrived, or stop */
  pthread_cond_t done; /* worker finished (CLOCK_MONOTONIC) */
  struct check checks[ADMIN_MAX_CHECKS];
  size_t nchecks;
  int result[ADMIN_MAX_CHECKS];
  size_t run_n;   /* checks in the current or last run */
  size_t run_cur; /* the check the worker is in */
  bool worker_running;
  struct waiter pending[ADMIN_MAX_PENDING];
  size_t npending;
  uint64_t next_seq;
  bool draining, stopping;
  int64_t timeout_ms;
  atomic_int refs;
};

struct admin {
  struct core *core;
  char bind[128];
  int port;
  int bound_port;
  bool started;
  nng_http_server *srv;
  pthread_t checker;
};

/* ---- core lifetime ---- */

static void core_release(void *p) {
  struct core *c = p;
  if (!c || atomic_fetch_sub(&c->refs, 1) != 1) return;
  pthread_cond_destroy(&c->wake);
  pthread_cond_destroy(&c->done);
  pthread_mutex_destroy(&c->mu);
  free(c);
}

static int map_nng(int rv) {
  switch (rv) {
  case 0:
    return ERR_OK;
  case NNG_ENOMEM:
    return ERR_NOMEM;
  case NNG_EADDRINUSE:
    return ERR_EXISTS;
  case NNG_EINVAL:
  case NNG_EADDRINVAL:
    return ERR_INVAL;
  default:
    return ERR_IO;
  }
}

/* ---- responses ---- */

/* Completes a handler aio with a response; on allocation failure the aio
 * fails and nng drops the connection (the probe then simply fails). */
static void reply(nng_aio *aio, uint16_t status, const char *ctype,
                  const char *body, size_t len) {
  nng_http_res *res;
  if (nng_http_res_alloc(&res) != 0) {
    nng_aio_finish(aio, NNG_ENOMEM);
    return;
  }
  if (nng_http_res_set_status(res, status) != 0 ||
      nng_http_res_set_header(res, "Content-Type", ctype) != 0 ||
      nng_http_res_set_header(res, "Cache-Control", "no-store") != 0 ||
      nng_http_res_copy_data(res, body, len) != 0) {
    nng_http_res_free(res);
    nng_aio_finish(aio, NNG_ENOMEM);
    return;
  }
  nng_aio_set_output(aio, 0, res);
  nng_aio_finish(aio, 0);
}

static void reply_json(nng_aio *aio, uint16_t status, const char *json) {
  reply(aio, status, JSON_CTYPE, json, strlen(json));
}

/* Builds the /readyz body from the last run, under c->mu. finished: the
 * worker returned (else unfinished checks are reported as timed out).
 * Returns a malloc'd string or NULL. */
static char *ready_body_locked(const struct core *c, bool finished, bool *ok) {
  json_t *o = json_object(), *failing = json_array(), *timed = json_array();
  char *s = NULL;
  if (!o || !failing || !timed) goto out;
  size_t nfail = 0;
  for (size_t i = 0; i < c->run_n; i++) {
    if (c->result[i] == RES_OK) continue;
    nfail++;
    (void)json_array_append_new(failing, json_string(c->checks[i].name));
    if (!finished && i == c->run_cur)
      (void)json_array_append_new(timed, json_string(c->checks[i].name));
  }
  *ok = nfail == 0;
  (void)json_object_set_new(o, "status",
                            json_string(*ok ? "ok" : "unavailable"));
  if (!*ok) {
    (void)json_object_set(o, "failing", failing);
    if (json_array_size(timed) > 0)
      (void)json_object_set(o, "timed_out", timed);
  }
  s = json_dumps(o, JSON_COMPACT);
out:
  json_decref(o);
  json_decref(failing);
  json_decref(timed);
  return s;
}

/* ---- readiness machinery ---- */

static void *worker_main(void *p) {
  struct core *c = p;
  pthread_mutex_lock(&c->mu);
  size_t n = c->run_n;
  pthread_mutex_unlock(&c->mu);
  for (size_t i = 0; i < n; i++) {
    pthread_mutex_lock(&c->mu);
    c->run_cur = i;
    admin_check_fn fn = c->checks[i].fn;
    void *arg = c->checks[i].arg;
    pthread_mutex_unlock(&c->mu);
    int r = fn(arg);
    pthread_mutex_lock(&c->mu);
    c->result[i] = r == 0 ? RES_OK : RES_FAIL;
    pthread_mutex_unlock(&c->mu);
  }
  pthread_mutex_lock(&c->mu);
  c->run_cur = n;
  c->worker_running = false;
  pthread_cond_broadcast(&c->done);
  pthread_mutex_unlock(&c->mu);
  core_release(c);
  return NULL;
}

/* Answers, outside the lock, every parked probe with seq < upto. */
static void answer_locked(struct core *c, uint64_t upto, uint16_t status,
                          const char *body) {
  nng_aio *batch[ADMIN_MAX_PENDING];
  size_t nb = 0, keep = 0;
  for (size_t i = 0; i < c->npending; i++) {
    if (c->pending[i].seq < upto)
      batch[nb++] = c->pending[i].aio;
    else
      c->pending[keep++] = c->pending[i];
  }
  c->npending = keep;
  pthread_mutex_unlock(&c->mu);
  for (size_t i = 0; i < nb; i++) {
    if (body)
      reply_json(batch[i], status, body);
    else
      nng_aio_finish(batch[i], NNG_ENOMEM);
  }
  pthread_mutex_lock(&c->mu);
}

static void deadline_ts(int64_t ms_from_now, struct timespec *ts) {
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += (time_t)(ms_from_now / 1000);
  ts->tv_nsec += (long)(ms_from_now % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

/* One readiness run for the probes parked so far (called with c->mu held,
 * returns with it held). */
static void run_once_locked(struct core *c) {
  uint64_t upto = c->next_seq;
  if (c->draining) {
    answer_locked(c, upto, 503, "{\"status\":\"draining\",\"failing\":[]}");
    return;
  }
  if (c->nchecks == 0 && !c->worker_running) {
    answer_locked(c, upto, 200, "{\"status\":\"ok\"}");
    return;
  }
  bool started = false;
  if (!c->worker_running) {
    c->run_n = c->nchecks;
    c->run_cur = 0;
    for (size_t i = 0; i < c->run_n; i++) c->result[i] = RES_PENDING;
    c->worker_running = true;
    atomic_fetch_add(&c->refs, 1);
    pthread_t t;
    if (pthread_create(&t, NULL, worker_main, c) != 0) {
      c->worker_running = false;
      atomic_fetch_sub(&c->refs, 1);
      answer_locked(c, upto, 503,
                    "{\"status\":\"unavailable\",\"failing\":[],"
                    "\"error\":\"cannot start check thread\"}");
      return;
    }
    pthread_detach(t);
    started = true;
  }
  /* A worker left over from an earlier timed-out run is not waited for:
   * its checks are reported as they stand (the stuck one as timed out). */
  if (started) {
    struct timespec ts;
    deadline_ts(c->timeout_ms, &ts);
    while (c->worker_running && !c->stopping)
      if (pthread_cond_timedwait(&c->done, &c->mu, &ts) != 0) break;
  }
  bool finished = !c->worker_running, ok = false;
  char stuck[ADMIN_MAX_CHECK_NAME] = "";
  if (!finished && c->run_cur < c->run_n)
    str_copy(stuck, c->checks[c->run_cur].name, sizeof stuck);
  char *body = ready_body_locked(c, finished, &ok);
  answer_locked(c, upto, ok ? 200 : 503, body);
  free(body);
  if (started && !finished) {
    pthread_mutex_unlock(&c->mu);
    log_warn("readiness check timed out", "check", stuck);
    pthread_mutex_lock(&c->mu);
  }
}

static void *checker_main(void *p) {
  struct core *c = p;
  pthread_mutex_lock(&c->mu);
  while (!c->stopping) {
    if (c->npending == 0) {
      pthread_cond_wait(&c->wake, &c->mu);
      continue;
    }
    run_once_locked(c);
  }
  answer_locked(c, UINT64_MAX, 503, "{\"status\":\"stopping\",\"failing\":[]}");
  pthread_mutex_unlock(&c->mu);
  return NULL;
}

/* ---- handlers (on nng's threads: never block) ---- */

static void healthz_cb(nng_aio *aio) { reply(aio, 200, "text/plain", "ok", 2); }

static void metrics_cb(nng_aio *aio) {
  char *body = metrics_render();
  if (!body) {
    reply(aio, 500, "text/plain", "out of memory", 13);
    return;
  }
  reply(aio, 200, METRICS_CTYPE, body, strlen(body));
  free(body);
}

static void readyz_cb(nng_aio *aio) {
  nng_http_handler *h = nng_aio_get_input(aio, 1);
  struct core *c = nng_http_handler_get_data(h);
  pthread_mutex_lock(&c->mu);
  if (c->stopping) {
    pthread_mutex_unlock(&c->mu);
    reply_json(aio, 503, "{\"status\":\"stopping\",\"failing\":[]}");
    return;
  }
  if (c->draining) {
    pthread_mutex_unlock(&c->mu);
    reply_json(aio, 503, "{\"status\":\"draining\",\"failing\":[]}");
    return;
  }
  if (c->npending == ADMIN_MAX_PENDING) {
    pthread_mutex_unlock(&c->mu);
    reply_json(aio, 503, "{\"status\":\"busy\",\"failing\":[]}");
    return;
  }
  c->pending[c->npending].aio = aio;
  c->pending[c->npending].seq = c->next_seq++;
  c->npending++;
  pthread_cond_signal(&c->wake);
  pthread_mutex_unlock(&c->mu);
}

/* ---- public API ---- */

int admin_new(const admin_options *opt, admin **out) {
  if (!out) return ERR_INVAL;
  *out = NULL;
  admin_options o = {0};
  if (opt) o = *opt;
  if (o.port < 0 || o.port > 65535) return ERR_INVAL;
  const char *bind = o.bind_addr ? o.bind_addr : "127.0.0.1";
  admin *a = calloc(1, sizeof *a);
  if (!a) return ERR_NOMEM;
  if (str_copy(a->bind, bind, sizeof a->bind) >= sizeof a->bind) {
    free(a);
    return ERR_INVAL;
  }
  struct core *c = calloc(1, sizeof *c);
  if (!c) {
    free(a);
    return ERR_NOMEM;
  }
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->wake, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&c->done, &ca);
  pthread_condattr_destroy(&ca);
  c->timeout_ms = o.check_timeout_ms > 0 ? o.check_timeout_ms
                                         : ADMIN_DEFAULT_CHECK_TIMEOUT_MS;
  atomic_init(&c->refs, 1);
  a->core = c;
  a->port = o.port;
  a->bound_port = -1;
  *out = a;
  return ERR_OK;
}

static bool valid_check_name(const char *s) {
  size_t n = 0;
  for (; s[n]; n++) {
    char ch = s[n];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
          (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.'))
      return false;
  }
  return n > 0 && n < ADMIN_MAX_CHECK_NAME;
}

int admin_add_check(admin *a, const char *name, admin_check_fn fn, void *arg) {
  if (!a || !name || !fn || !valid_check_name(name)) return ERR_INVAL;
  struct core *c = a->core;
  int rc = ERR_OK;
  pthread_mutex_lock(&c->mu);
  for (size_t i = 0; i < c->nchecks; i++)
    if (strcmp(c->checks[i].name, name) == 0) rc = ERR_EXISTS;
  if (rc == ERR_OK && c->nchecks == ADMIN_MAX_CHECKS) rc = ERR_TOOBIG;
  if (rc == ERR_OK) {
    struct check *k = &c->checks[c->nchecks];
    str_copy(k->name, name, sizeof k->name);
    k->fn = fn;
    k->arg = arg;
    c->nchecks++;
  }
  pthread_mutex_unlock(&c->mu);
  return rc;
}

/* Registers one handler whose data is a counted reference to the core. */
static int add_handler(admin *a, const char *path, void (*cb)(nng_aio *)) {
  nng_http_handler *h;
  int rv = nng_http_handler_alloc(&h, path, cb);
  if (rv != 0) return rv;
  atomic_fetch_add(&a->core->refs, 1);
  if ((rv = nng_http_handler_set_data(h, a->core, core_release)) != 0) {
    atomic_fetch_sub(&a->core->refs, 1);
    nng_http_handler_free(h);
    return rv;
  }
  /* GET-only handlers must not wait for a request body. */
  if ((rv = nng_http_handler_collect_body(h, false, 0)) != 0 ||
      (rv = nng_http_server_add_handler(a->srv, h)) != 0) {
    nng_http_handler_free(h); /* runs core_release */
    return rv;
  }
  return 0;
}

static int bound_port(nng_http_server *srv) {
  nng_sockaddr sa;
  if (nng_http_server_get_addr(srv, &sa) != 0) return -1;
  if (sa.s_family == NNG_AF_INET) return ntohs(sa.s_in.sa_port);
  if (sa.s_family == NNG_AF_INET6) return ntohs(sa.s_in6.sa_port);
  return -1;
}

int admin_start(admin *a) {
  if (!a || a->started) return ERR_INVAL;
  for (const char *p = a->bind; *p; p++)
    if (*p == '/' || *p == '@' || *p == '?' || *p == '#' || *p <= ' ')
      return ERR_INVAL;
  char url[200];
  if (strchr(a->bind, ':'))
    snprintf(url, sizeof url, "http://[%s]:%d", a->bind, a->port);
  else
    snprintf(url, sizeof url, "http://%s:%d", a->bind, a->port);
  nng_url *u = NULL;
  int rv = nng_url_parse(&u, url);
  if (rv != 0) return ERR_INVAL;
  rv = nng_http_server_hold(&a->srv, u);
  nng_url_free(u);
  if (rv != 0) {
    a->srv = NULL;
    return map_nng(rv);
  }
  if ((rv = add_handler(a, "/healthz", healthz_cb)) != 0 ||
      (rv = add_handler(a, "/readyz", readyz_cb)) != 0 ||
      (rv = add_handler(a, "/metrics", metrics_cb)) != 0)
    goto err;
  /* The checker exists before the first request can arrive. */
  if (pthread_create(&a->checker, NULL, checker_main, a->core) != 0) {
    rv = NNG_ENOMEM;
    goto err;
  }
  if ((rv = nng_http_server_start(a->srv)) != 0) {
    pthread_mutex_lock(&a->core->mu);
    a->core->stopping = true;
    pthread_cond_broadcast(&a->core->wake);
    pthread_mutex_unlock(&a->core->mu);
    pthread_join(a->checker, NULL);
    /* Later admin_start calls see a fresh, non-stopping core state. */
    pthread_mutex_lock(&a->core->mu);
    a->core->stopping = false;
    pthread_mutex_unlock(&a->core->mu);
    goto err;
  }
  a->bound_port = bound_port(a->srv);
  a->started = true;
  return ERR_OK;
err:
  nng_http_server_release(a->srv);
  a->srv = NULL;
  return map_nng(rv);
}

int admin_port(const admin *a) { return a && a->started ? a->bound_port : -1; }

void admin_set_draining(admin *a) {
  if (!a) return;
  pthread_mutex_lock(&a->core->mu);
  a->core->draining = true;
  pthread_mutex_unlock(&a->core->mu);
}

void admin_free(admin *a) {
  if (!a) return;
  struct core *c = a->core;
  if (a->started) nng_http_server_stop(a->srv);
  pthread_mutex_lock(&c->mu);
  c->stopping = true;
  pthread_cond_broadcast(&c->wake);
  pthread_cond_broadcast(&c->done);
  pthread_mutex_unlock(&c->mu);
  if (a->started) pthread_join(a->checker, NULL);
  /* The checks' args are the caller's: none may run after we return. */
  pthread_mutex_lock(&c->mu);
  while (c->worker_running) pthread_cond_wait(&c->done, &c->mu);
  pthread_mutex_unlock(&c->mu);
  if (a->started) nng_http_server_release(a->srv);
  core_release(c);
  free(a);
}
