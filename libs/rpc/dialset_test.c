/*
 * dialset_test.c - unit tests for the dialset (dialset.h): address lists
 * become dialers, dns+tcp://localhost resolves through getaddrinfo, and
 * reconciling against real nng sockets on loopback adds and closes
 * connections as the resolution changes (a scripted resolver stands in
 * for DNS, answering 127.0.0.1 and/or 127.0.0.2: two listeners on the
 * same port, both on loopback).
 *
 * Timing: waits poll for an outcome with generous limits, so a loaded
 * machine makes them slower, not flaky.
 */
#include <check.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "libs/rpc/dialset.h"
#include "libs/rpc/rpc.h"

#define WAIT_MS 10000

static int64_t deadline_in(int ms) {
  return time_mono_ns() + (int64_t)ms * 1000000;
}

/* ---- a listener that counts its connected pipes ---- */

typedef struct peer {
  nng_socket sock;
  _Atomic int pipes;
  int port;
} peer;

static void peer_pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg) {
  (void)p;
  peer *pr = arg;
  if (ev == NNG_PIPE_EV_ADD_POST) atomic_fetch_add(&pr->pipes, 1);
  if (ev == NNG_PIPE_EV_REM_POST) atomic_fetch_sub(&pr->pipes, 1);
}

/* Listens on tcp://ip:port (port 0: any free port). */
static void peer_open(peer *pr, const char *ip, int port) {
  memset(pr, 0, sizeof(*pr));
  ck_assert_int_eq(nng_rep0_open(&pr->sock), 0);
  ck_assert_int_eq(
      nng_pipe_notify(pr->sock, NNG_PIPE_EV_ADD_POST, peer_pipe_cb, pr), 0);
  ck_assert_int_eq(
      nng_pipe_notify(pr->sock, NNG_PIPE_EV_REM_POST, peer_pipe_cb, pr), 0);
  char url[64];
  snprintf(url, sizeof(url), "tcp://%s:%d", ip, port);
  nng_listener l;
  ck_assert_int_eq(nng_listen(pr->sock, url, &l, 0), 0);
  ck_assert_int_eq(nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &pr->port),
                   0);
}

static void peer_close(peer *pr) { nng_close(pr->sock); }

/* Waits until pr has exactly n pipes. */
static bool peer_wait(peer *pr, int n) {
  for (int i = 0; i < WAIT_MS / 10; i++) {
    if (atomic_load(&pr->pipes) == n) return true;
    time_sleep_ms(10);
  }
  return false;
}

/* ---- a scripted resolver ---- */

typedef struct script {
  pthread_mutex_t mu;
  const char *ips[4]; /* the answer */
  size_t n;
  bool fail;
  int lookups;
} script;

static int script_resolve(void *arg, const char *host,
                          char (*ips)[DIALSET_IP_LEN], size_t cap, size_t *n,
                          const char **why) {
  script *sc = arg;
  ck_assert_str_eq(host, "svc");
  pthread_mutex_lock(&sc->mu);
  sc->lookups++;
  int rc = ERR_OK;
  if (sc->fail) {
    *why = "scripted failure";
    rc = ERR_UNAVAILABLE;
  } else {
    size_t k = 0;
    for (; k < sc->n && k < cap; k++)
      str_copy(ips[k], sc->ips[k], DIALSET_IP_LEN);
    *n = k;
  }
  pthread_mutex_unlock(&sc->mu);
  return rc;
}

static void script_set(script *sc, bool fail, const char *a, const char *b) {
  pthread_mutex_lock(&sc->mu);
  sc->fail = fail;
  sc->n = 0;
  if (a != NULL) sc->ips[sc->n++] = a;
  if (b != NULL) sc->ips[sc->n++] = b;
  pthread_mutex_unlock(&sc->mu);
}

static int script_lookups(script *sc) {
  pthread_mutex_lock(&sc->mu);
  int n = sc->lookups;
  pthread_mutex_unlock(&sc->mu);
  return n;
}

/* ---- helpers ---- */

static char got[8][RPC_MAX_URL_LEN];

/* The dialers as one sorted, comma-separated string. */
static const char *dialers_str(dialset *ds, char *buf, size_t cap) {
  size_t n = dialset_dialers(ds, got, 8);
  ck_assert_uint_le(n, 8);
  for (size_t i = 1; i < n; i++) { /* insertion sort: a handful of URLs */
    for (size_t j = i; j > 0 && strcmp(got[j - 1], got[j]) > 0; j--) {
      char t[RPC_MAX_URL_LEN];
      memcpy(t, got[j], sizeof(t));
      memcpy(got[j], got[j - 1], sizeof(t));
      memcpy(got[j - 1], t, sizeof(t));
    }
  }
  buf[0] = '\0';
  size_t off = 0;
  for (size_t i = 0; i < n; i++) {
    int w = snprintf(buf + off, cap - off, "%s%s", i > 0 ? "," : "", got[i]);
    ck_assert(w > 0 && (size_t)w < cap - off);
    off += (size_t)w;
  }
  return buf;
}

/* Polls until the dialers read want (the resolver thread's pace). */
static bool wait_dialers(dialset *ds, const char *want) {
  char buf[1024];
  for (int i = 0; i < WAIT_MS / 10; i++) {
    if (strcmp(dialers_str(ds, buf, sizeof(buf)), want) == 0) return true;
    time_sleep_ms(10);
  }
  return false;
}

static nng_socket req_socket(void) {
  nng_socket s;
  ck_assert_int_eq(nng_req0_open(&s), 0);
  return s;
}

/* A dialset that redials fast, resolving through sc (NULL: getaddrinfo). */
static dialset *ds_new(const char *address, script *sc, uint32_t interval_ms) {
  dialset_options o;
  dialset_options_init(&o);
  o.who = "test";
  o.reconnect_min_ms = 20;
  o.reconnect_max_ms = 100;
  o.resolve_interval_ms = interval_ms;
  o.resolve = sc != NULL ? script_resolve : NULL;
  o.resolve_arg = sc;
  dialset *ds = NULL;
  ck_assert_int_eq(dialset_new(address, &o, &ds), ERR_OK);
  return ds;
}

static void teardown(dialset *ds, nng_socket s) {
  dialset_stop(ds);
  nng_close(s);
  dialset_free(ds);
}

/* ---- tests ---- */

START_TEST(list_dials_every_url_once) {
  dialset *ds = NULL;
  ck_assert_int_eq(
      dialset_new("tcp://127.0.0.1:1, tcp://[::1]:2,tcp://127.0.0.1:1", NULL,
                  &ds),
      ERR_OK);
  ck_assert(!dialset_has_dns(ds));
  ck_assert_uint_eq(dialset_dialers(ds, got, 8), 0); /* nothing before attach */
  nng_socket s = req_socket();
  ck_assert_int_eq(dialset_attach(ds, s), ERR_OK);
  ck_assert_int_eq(dialset_attach(ds, s), ERR_INVAL);
  ck_assert_int_eq(dialset_start_resolver(ds),
                   ERR_OK); /* no names: no thread */
  char buf[1024];
  ck_assert_str_eq(dialers_str(ds, buf, sizeof(buf)),
                   "tcp://127.0.0.1:1,tcp://[::1]:2");
  ck_assert_uint_eq(dialset_connected(ds), 0); /* nobody listens there */
  ck_assert(!dialset_wait_connected(ds, 1, deadline_in(50)));
  ck_assert(dialset_wait_connected(ds, 0, deadline_in(0)));
  ck_assert_int_eq(dialset_wait_connected_ms(ds, 1, 50), ERR_TIMEOUT);
  ck_assert_int_eq(dialset_wait_connected_ms(ds, 0, 0), ERR_OK);
  ck_assert_int_eq(dialset_wait_connected_ms(ds, -1, 0), ERR_INVAL);
  ck_assert_int_eq(dialset_wait_connected_ms(NULL, 1, 0), ERR_INVAL);
  teardown(ds, s);
}
END_TEST

START_TEST(bad_addresses_and_options_are_rejected) {
  dialset *ds = (dialset *)1;
  static const char *const bad[] = {
      "",          " , ",           "udp://h:1",           "tcp://h",
      "tcp://h:0", "dns+tcp://:80", "tcp://a:1,,tcp://b:2"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    ck_assert_int_eq(dialset_new(bad[i], NULL, &ds), ERR_INVAL);
    ck_assert_ptr_null(ds);
  }
  ck_assert_int_eq(dialset_new(NULL, NULL, &ds), ERR_INVAL);
  ck_assert_int_eq(dialset_new("tcp://a:1", NULL, NULL), ERR_INVAL);

  dialset_options o;
  dialset_options_init(&o);
  o.max_endpoints = 2;
  ck_assert_int_eq(dialset_new("tcp://a:1,tcp://b:2,tcp://c:3", &o, &ds),
                   ERR_INVAL);
  ck_assert_int_eq(dialset_new("tcp://a:1,tcp://b:2", &o, &ds), ERR_OK);
  dialset_free(ds);
  o.max_endpoints = RPC_MAX_ENDPOINTS + 1;
  ck_assert_int_eq(dialset_new("tcp://a:1", &o, &ds), ERR_INVAL);
  dialset_options_init(&o);
  o.reconnect_max_ms = (uint32_t)INT32_MAX + 1u;
  ck_assert_int_eq(dialset_new("tcp://a:1", &o, &ds), ERR_INVAL);

  /* Misuse of the other calls is harmless. */
  ck_assert_int_eq(dialset_new("dns+tcp://localhost:1", NULL, &ds), ERR_OK);
  ck_assert_int_eq(dialset_start_resolver(ds), ERR_INVAL); /* not attached */
  dialset_refresh(ds);                                     /* no-op */
  ck_assert_uint_eq(dialset_dialers(ds, got, 8), 0);
  dialset_free(ds);
  dialset_free(NULL);
  dialset_stop(NULL);
  ck_assert_uint_eq(dialset_connected(NULL), 0);
}
END_TEST

START_TEST(dns_localhost_resolves_and_connects) {
  peer a;
  peer_open(&a, "127.0.0.1", 0);
  char addr[64], want[64];
  snprintf(addr, sizeof(addr), "dns+tcp://localhost:%d", a.port);
  snprintf(want, sizeof(want), "tcp://127.0.0.1:%d", a.port);
  dialset *ds = ds_new(addr, NULL, 50);
  ck_assert(dialset_has_dns(ds));
  nng_socket s = req_socket();
  ck_assert_int_eq(dialset_attach(ds, s), ERR_OK);
  ck_assert_int_eq(dialset_start_resolver(ds), ERR_OK);
  ck_assert_int_eq(dialset_start_resolver(ds), ERR_INVAL);

  /* localhost may also give ::1 (nothing listens there): 127.0.0.1 is
   * among the dialers, and that one connects. */
  size_t n = dialset_dialers(ds, got, 8);
  ck_assert_uint_ge(n, 1);
  bool found = false;
  for (size_t i = 0; i < n && i < 8; i++)
    found = found || strcmp(got[i], want) == 0;
  ck_assert_msg(found, "no dialer for %s", want);
  ck_assert_int_eq(dialset_wait_connected_ms(ds, 1, WAIT_MS), ERR_OK);
  ck_assert_uint_eq(dialset_connected(ds), 1);
  ck_assert(peer_wait(&a, 1));

  /* Re-resolution of an unchanged name keeps the connection. */
  time_sleep_ms(200);
  ck_assert_uint_eq(dialset_connected(ds), 1);
  ck_assert_uint_eq(dialset_dialers(ds, got, 8), n);
  teardown(ds, s);
  peer_close(&a);
}
END_TEST

START_TEST(unresolvable_name_is_not_an_error) {
  dialset *ds = NULL;
  ck_assert_int_eq(
      dialset_new("dns+tcp://no-such-host.invalid:7001", NULL, &ds), ERR_OK);
  nng_socket s = req_socket();
  ck_assert_int_eq(dialset_attach(ds, s), ERR_OK);
  ck_assert_uint_eq(dialset_dialers(ds, got, 8), 0);
  ck_assert_uint_eq(dialset_connected(ds), 0);
  teardown(ds, s);
}
END_TEST

START_TEST(reconcile_adds_and_closes_dialers_as_resolution_changes) {
  peer a, b;
  peer_open(&a, "127.0.0.1", 0);
  peer_open(&b, "127.0.0.2", a.port);
  char addr[64], url_a[64], url_b[64], both[160];
  snprintf(addr, sizeof(addr), "dns+tcp://svc:%d", a.port);
  snprintf(url_a, sizeof(url_a), "tcp://127.0.0.1:%d", a.port);
  snprintf(url_b, sizeof(url_b), "tcp://127.0.0.2:%d", a.port);
  snprintf(both, sizeof(both), "%s,%s", url_a, url_b);
  script sc = {.mu = PTHREAD_MUTEX_INITIALIZER};
  char buf[1024];

  script_set(&sc, false, "127.0.0.1", NULL);
  dialset *ds = ds_new(addr, &sc, 60000); /* no ticks: refresh drives it */
  nng_socket s = req_socket();
  ck_assert_int_eq(dialset_attach(ds, s), ERR_OK);
  ck_assert_int_eq(script_lookups(&sc), 1);
  ck_assert_str_eq(dialers_str(ds, buf, sizeof(buf)), url_a);
  ck_assert(dialset_wait_connected(ds, 1, deadline_in(WAIT_MS)));
  ck_assert(peer_wait(&a, 1));

  /* A second address appears: dialled, the first one untouched. */
  script_set(&sc, false, "127.0.0.2", "127.0.0.1");
  dialset_refresh(ds);
  ck_assert_str_eq(dialers_str(ds, buf, sizeof(buf)), both);
  ck_assert(dialset_wait_connected(ds, 2, deadline_in(WAIT_MS)));
  ck_assert(peer_wait(&b, 1));
  ck_assert_int_eq(atomic_load(&a.pipes), 1);

  /* The first one vanishes: its dialer and connection are closed. */
  script_set(&sc, false, "127.0.0.2", NULL);
  dialset_refresh(ds);
  ck_assert_str_eq(dialers_str(ds, buf, sizeof(buf)), url_b);
  ck_assert(peer_wait(&a, 0));
  ck_assert_int_eq(atomic_load(&b.pipes), 1);
  for (int i = 0; i < WAIT_MS / 10 && dialset_connected(ds) != 1; i++)
    time_sleep_ms(10);
  ck_assert_uint_eq(dialset_connected(ds), 1);

  /* A failed lookup, or one without addresses, keeps the last good
   * answer: a DNS blip does not disconnect. */
  script_set(&sc, true, NULL, NULL);
  dialset_refresh(ds);
  dialset_refresh(ds);
  ck_assert_str_eq(dialers_str(ds, buf, sizeof(buf)), url_b);
  script_set(&sc, false, NULL, NULL);
  dialset_refresh(ds);
  ck_assert_str_eq(dialers_str(ds, buf, sizeof(buf)), url_b);
  ck_assert_int_eq(atomic_load(&b.pipes), 1);

  /* Back to the first: swapped over. */
  script_set(&sc, false, "127.0.0.1", NULL);
  dialset_refresh(ds);
  ck_assert_str_eq(dialers_str(ds, buf, sizeof(buf)), url_a);
  ck_assert(peer_wait(&a, 1));
  ck_assert(peer_wait(&b, 0));
  ck_assert_int_eq(script_lookups(&sc), 7);

  teardown(ds, s);
  ck_assert(peer_wait(&a, 0));
  peer_close(&a);
  peer_close(&b);
}
END_TEST

START_TEST(resolver_thread_follows_the_name) {
  peer a, b;
  peer_open(&a, "127.0.0.1", 0);
  peer_open(&b, "127.0.0.2", a.port);
  char addr[64], url_a[64], url_b[64];
  snprintf(addr, sizeof(addr), "dns+tcp://svc:%d", a.port);
  snprintf(url_a, sizeof(url_a), "tcp://127.0.0.1:%d", a.port);
  snprintf(url_b, sizeof(url_b), "tcp://127.0.0.2:%d", a.port);
  script sc = {.mu = PTHREAD_MUTEX_INITIALIZER};

  /* Not resolvable at first: nothing dialled, not an error. */
  script_set(&sc, true, NULL, NULL);
  dialset *ds = ds_new(addr, &sc, 30);
  nng_socket s = req_socket();
  ck_assert_int_eq(dialset_attach(ds, s), ERR_OK);
  ck_assert_uint_eq(dialset_dialers(ds, got, 8), 0);
  ck_assert_int_eq(dialset_start_resolver(ds), ERR_OK);

  script_set(&sc, false, "127.0.0.1", NULL);
  ck_assert(wait_dialers(ds, url_a));
  ck_assert(peer_wait(&a, 1));
  script_set(&sc, false, "127.0.0.2", NULL);
  ck_assert(wait_dialers(ds, url_b));
  ck_assert(peer_wait(&b, 1));
  ck_assert(peer_wait(&a, 0));

  /* After stop the set no longer changes. */
  dialset_stop(ds);
  int lookups = script_lookups(&sc);
  script_set(&sc, false, "127.0.0.1", NULL);
  time_sleep_ms(150);
  ck_assert_int_eq(script_lookups(&sc), lookups);
  char buf[1024];
  ck_assert_str_eq(dialers_str(ds, buf, sizeof(buf)), url_b);

  teardown(ds, s);
  peer_close(&a);
  peer_close(&b);
}
END_TEST

START_TEST(literal_and_resolved_duplicates_share_a_dialer_and_cap_holds) {
  peer a;
  peer_open(&a, "127.0.0.1", 0);
  char addr[128], url_a[64];
  snprintf(addr, sizeof(addr), "tcp://127.0.0.1:%d,dns+tcp://svc:%d", a.port,
           a.port);
  snprintf(url_a, sizeof(url_a), "tcp://127.0.0.1:%d", a.port);
  script sc = {.mu = PTHREAD_MUTEX_INITIALIZER};
  script_set(&sc, false, "127.0.0.1", NULL);
  dialset *ds = ds_new(addr, &sc, 60000);
  nng_socket s = req_socket();
  ck_assert_int_eq(dialset_attach(ds, s), ERR_OK);
  char buf[1024];
  ck_assert_str_eq(dialers_str(ds, buf, sizeof(buf)), url_a);
  ck_assert(peer_wait(&a, 1));
  time_sleep_ms(100);
  ck_assert_int_eq(atomic_load(&a.pipes), 1); /* one connection, not two */
  teardown(ds, s);

  /* max_dialers: further addresses are ignored (and logged). */
  dialset_options o;
  dialset_options_init(&o);
  o.max_dialers = 1;
  ck_assert_int_eq(dialset_new("tcp://127.0.0.1:1,tcp://127.0.0.1:2", &o, &ds),
                   ERR_OK);
  s = req_socket();
  ck_assert_int_eq(dialset_attach(ds, s), ERR_OK);
  ck_assert_uint_eq(dialset_dialers(ds, got, 8), 1);
  teardown(ds, s);
  peer_close(&a);
}
END_TEST

static Suite *dialset_suite(void) {
  Suite *s = suite_create("dialset");
  TCase *tc = tcase_create("dialset");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, list_dials_every_url_once);
  tcase_add_test(tc, bad_addresses_and_options_are_rejected);
  tcase_add_test(tc, dns_localhost_resolves_and_connects);
  tcase_add_test(tc, unresolvable_name_is_not_an_error);
  tcase_add_test(tc, reconcile_adds_and_closes_dialers_as_resolution_changes);
  tcase_add_test(tc, resolver_thread_follows_the_name);
  tcase_add_test(tc,
                 literal_and_resolved_duplicates_share_a_dialer_and_cap_holds);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(dialset_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
