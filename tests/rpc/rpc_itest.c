/*
 * rpc_itest.c - libs/rpc across real processes: rpc_testd replicas
 * started by the harness, killed with SIGKILL or stopped with SIGTERM,
 * and a client in this process.
 *
 * What in-process unit tests cannot show is shown here: a replica that
 * dies mid-call (the kernel closes its sockets, no reply ever comes), a
 * second replica taking the retry, load spread over separate processes,
 * and a graceful SIGTERM that still answers the call in flight. Each
 * test runs in Check's forked child with its own harness directory.
 */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "libs/base/timeutil.h"
#include "libs/rpc/rpc.h"
#include "tests/harness/harness.h"

#define M_ECHO "test.v1.Testd/Echo"
#define M_WHO "test.v1.Testd/WhoAmI"
#define M_SLEEP "test.v1.Testd/Sleep"
#define M_CRASH "test.v1.Testd/Crash"

typedef struct replica {
  harness_proc *proc;
  int port;
  char url[64];
} replica;

static void start_replica(replica *r, const char *id) {
  r->port = harness_free_port();
  ck_assert_int_gt(r->port, 0);
  snprintf(r->url, sizeof(r->url), "tcp://127.0.0.1:%d", r->port);
  char bin[512];
  snprintf(bin, sizeof(bin), "%s", harness_bin_path("tests/rpc/rpc_testd"));
  char *argv[] = {bin,        "--listen",  r->url, "--id",
                  (char *)id, "--workers", "16",   NULL};
  r->proc = harness_spawn(id, argv, NULL);
  ck_assert_msg(r->proc != NULL, "cannot start %s", bin);
  if (!harness_wait_port(r->port, 10000)) {
    harness_dump_logs();
    ck_abort_msg("replica %s did not listen", id);
  }
}

static rpc_client *client_for(const char *address, int connected) {
  rpc_client_options o;
  rpc_client_options_init(&o);
  o.reconnect_min_ms = 50;
  o.reconnect_max_ms = 200;
  o.resolve_interval_ms = 500;
  rpc_client *c = NULL;
  ck_assert_int_eq(rpc_client_new(address, &o, &c), ERR_OK);
  if (connected > 0) {
    ck_assert_int_eq(rpc_client_wait_connected(c, connected, 10000), ERR_OK);
  }
  return c;
}

typedef struct bg {
  rpc_client *c;
  const char *method;
  const char *payload;
  rpc_call_options opt;
  int code;
  uint32_t attempts;
  char who[32];
  int64_t took_ms;
} bg;

static void *bg_main(void *arg) {
  bg *b = arg;
  int64_t t0 = time_mono_ms();
  rpc_result *r = NULL;
  if (rpc_client_call(b->c, b->method, b->payload, strlen(b->payload), &b->opt,
                      &r) != ERR_OK) {
    b->code = -1;
    return NULL;
  }
  b->took_ms = time_mono_ms() - t0;
  b->code = r->code;
  b->attempts = r->attempts;
  size_t n =
      r->payload_len < sizeof(b->who) - 1 ? r->payload_len : sizeof(b->who) - 1;
  memcpy(b->who, r->payload, n);
  b->who[n] = '\0';
  rpc_result_free(r);
  return NULL;
}

START_TEST(deadline_exceeded_across_processes) {
  harness_init();
  replica a;
  start_replica(&a, "a");
  rpc_client *c = client_for(a.url, 1);
  rpc_call_options o = RPC_CALL_OPTIONS_INIT;
  o.deadline_ms = 300;
  int64_t t0 = time_mono_ms();
  rpc_result *r = NULL;
  ck_assert_int_eq(rpc_client_call(c, M_SLEEP, "3000", 4, &o, &r), ERR_OK);
  int64_t took = time_mono_ms() - t0;
  ck_assert_int_eq(r->code, RPC_DEADLINE_EXCEEDED);
  ck_assert_int_ge(took, 290);
  ck_assert_int_lt(took, 2500);
  rpc_result_free(r);
  /* The replica is fine afterwards. */
  ck_assert_int_eq(rpc_client_call(c, M_WHO, NULL, 0, NULL, &r), ERR_OK);
  ck_assert_int_eq(r->code, RPC_OK);
  rpc_result_free(r);
  rpc_client_free(c);
  harness_stop(a.proc, 5000);
}
END_TEST

START_TEST(killed_server_gives_unavailable_for_non_idempotent_call) {
  harness_init();
  replica a;
  start_replica(&a, "a");
  rpc_client *c = client_for(a.url, 1);
  bg b = {.c = c,
          .method = M_SLEEP,
          .payload = "5000",
          .opt = RPC_CALL_OPTIONS_INIT};
  b.opt.deadline_ms = 10000;
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, bg_main, &b), 0);
  time_sleep_ms(300); /* the call is in the handler */
  harness_signal(a.proc, SIGKILL);
  pthread_join(t, NULL);
  ck_assert_int_eq(b.code, RPC_UNAVAILABLE);
  ck_assert_uint_eq(b.attempts, 1);
  ck_assert_int_lt(b.took_ms, 4000); /* failed when the peer died */
  rpc_client_free(c);
  harness_stop(a.proc, 1000);
}
END_TEST

START_TEST(killed_server_idempotent_retry_lands_on_second_replica) {
  harness_init();
  replica a, b;
  start_replica(&a, "a");
  /* B's address is known to the client from the start but B is not up
   * yet, so the first attempt can only go to A. */
  b.port = harness_free_port();
  snprintf(b.url, sizeof(b.url), "tcp://127.0.0.1:%d", b.port);
  char both[160];
  snprintf(both, sizeof(both), "%s,%s", a.url, b.url);
  rpc_client *c = client_for(both, 1);

  bg call = {.c = c,
             .method = M_SLEEP,
             .payload = "3000",
             .opt = RPC_CALL_OPTIONS_INIT};
  call.opt.deadline_ms = 15000;
  call.opt.idempotent = true;
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, bg_main, &call), 0);
  time_sleep_ms(200);

  char bin[512];
  snprintf(bin, sizeof(bin), "%s", harness_bin_path("tests/rpc/rpc_testd"));
  char *argv[] = {bin, "--listen", b.url, "--id", "b", NULL};
  b.proc = harness_spawn("b", argv, NULL);
  ck_assert_ptr_nonnull(b.proc);
  ck_assert(harness_wait_port(b.port, 10000));
  ck_assert_int_eq(rpc_client_wait_connected(c, 2, 10000), ERR_OK);

  harness_signal(a.proc, SIGKILL); /* mid-call */
  pthread_join(t, NULL);
  if (call.code != RPC_OK) harness_dump_logs();
  ck_assert_int_eq(call.code, RPC_OK);
  ck_assert_str_eq(call.who, "b");
  ck_assert_uint_eq(call.attempts, 2);

  /* And the dead replica is routed around from then on. */
  for (int i = 0; i < 5; i++) {
    rpc_result *r = NULL;
    ck_assert_int_eq(rpc_client_call(c, M_WHO, NULL, 0, NULL, &r), ERR_OK);
    ck_assert_int_eq(r->code, RPC_OK);
    ck_assert_int_eq(memcmp(r->payload, "b", 1), 0);
    rpc_result_free(r);
  }
  rpc_client_free(c);
  harness_stop(a.proc, 1000);
  harness_stop(b.proc, 5000);
}
END_TEST

START_TEST(crash_mid_call_is_unavailable_not_a_hang) {
  harness_init();
  replica a;
  start_replica(&a, "a");
  rpc_client *c = client_for(a.url, 1);
  rpc_result *r = NULL;
  rpc_call_options o = RPC_CALL_OPTIONS_INIT;
  o.deadline_ms = 10000;
  int64_t t0 = time_mono_ms();
  ck_assert_int_eq(rpc_client_call(c, M_CRASH, NULL, 0, &o, &r), ERR_OK);
  ck_assert_int_eq(r->code, RPC_UNAVAILABLE);
  ck_assert_int_lt(time_mono_ms() - t0, 5000);
  rpc_result_free(r);
  int st = harness_wait_exit(a.proc, 5000);
  ck_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 3);
  rpc_client_free(c);
  harness_stop(a.proc, 1000);
}
END_TEST

START_TEST(two_replicas_both_receive_load) {
  harness_init();
  replica a, b;
  start_replica(&a, "a");
  start_replica(&b, "b");
  char both[160];
  snprintf(both, sizeof(both), "%s,%s", a.url, b.url);
  rpc_client *c = client_for(both, 2);
  int na = 0, nb = 0;
  for (int i = 0; i < 40; i++) {
    rpc_result *r = NULL;
    ck_assert_int_eq(rpc_client_call(c, M_WHO, NULL, 0, NULL, &r), ERR_OK);
    ck_assert_int_eq(r->code, RPC_OK);
    ck_assert_uint_eq(r->payload_len, 1);
    if (r->payload[0] == 'a') na++;
    if (r->payload[0] == 'b') nb++;
    rpc_result_free(r);
  }
  ck_assert_int_eq(na + nb, 40);
  ck_assert_int_gt(na, 0);
  ck_assert_int_gt(nb, 0);
  rpc_client_free(c);
  harness_stop(a.proc, 5000);
  harness_stop(b.proc, 5000);
}
END_TEST

typedef struct many {
  rpc_client *c;
  _Atomic int ok;
  _Atomic int bad;
} many;

static void *many_main(void *arg) {
  many *m = arg;
  for (int i = 0; i < 4; i++) {
    rpc_call_options o = RPC_CALL_OPTIONS_INIT;
    o.deadline_ms = 30000;
    char payload[32];
    int n = snprintf(payload, sizeof(payload), "call-%d", i);
    rpc_result *r = NULL;
    if (rpc_client_call(m->c, M_ECHO, payload, (size_t)n, &o, &r) != ERR_OK) {
      atomic_fetch_add(&m->bad, 1);
      continue;
    }
    if (r->code == RPC_OK && r->payload_len == (size_t)n &&
        memcmp(r->payload, payload, (size_t)n) == 0) {
      atomic_fetch_add(&m->ok, 1);
    } else {
      atomic_fetch_add(&m->bad, 1);
    }
    rpc_result_free(r);
  }
  return NULL;
}

START_TEST(hundreds_of_concurrent_calls_all_succeed) {
  harness_init();
  replica a, b;
  start_replica(&a, "a");
  start_replica(&b, "b");
  char both[160];
  snprintf(both, sizeof(both), "%s,%s", a.url, b.url);
  rpc_client *c = client_for(both, 2);
  enum { THREADS = 256 };
  static pthread_t t[THREADS];
  many m = {c, 0, 0};
  for (int i = 0; i < THREADS; i++) {
    ck_assert_int_eq(pthread_create(&t[i], NULL, many_main, &m), 0);
  }
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  ck_assert_int_eq(atomic_load(&m.bad), 0);
  ck_assert_int_eq(atomic_load(&m.ok), THREADS * 4);
  rpc_client_free(c);
  harness_stop(a.proc, 5000);
  harness_stop(b.proc, 5000);
}
END_TEST

START_TEST(dns_tcp_localhost_resolves) {
  harness_init();
  replica a;
  start_replica(&a, "a");
  char dns[64];
  snprintf(dns, sizeof(dns), "dns+tcp://localhost:%d", a.port);
  rpc_client *c = client_for(dns, 1);
  rpc_result *r = NULL;
  ck_assert_int_eq(rpc_client_call(c, M_WHO, NULL, 0, NULL, &r), ERR_OK);
  ck_assert_int_eq(r->code, RPC_OK);
  ck_assert_int_eq(memcmp(r->payload, "a", 1), 0);
  rpc_result_free(r);
  rpc_client_free(c);
  harness_stop(a.proc, 5000);
}
END_TEST

START_TEST(sigterm_answers_call_in_flight_then_exits_zero) {
  harness_init();
  replica a;
  start_replica(&a, "a");
  rpc_client *c = client_for(a.url, 1);
  bg call = {.c = c,
             .method = M_SLEEP,
             .payload = "800",
             .opt = RPC_CALL_OPTIONS_INIT};
  call.opt.deadline_ms = 10000;
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, bg_main, &call), 0);
  time_sleep_ms(200);
  harness_signal(a.proc, SIGTERM);
  pthread_join(t, NULL);
  ck_assert_int_eq(call.code, RPC_OK);
  ck_assert_str_eq(call.who, "a");
  int st = harness_wait_exit(a.proc, 10000);
  ck_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  rpc_client_free(c);
  harness_stop(a.proc, 1000);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("rpc_itest");
  TCase *tc = tcase_create("processes");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, deadline_exceeded_across_processes);
  tcase_add_test(tc, killed_server_gives_unavailable_for_non_idempotent_call);
  tcase_add_test(tc, killed_server_idempotent_retry_lands_on_second_replica);
  tcase_add_test(tc, crash_mid_call_is_unavailable_not_a_hang);
  tcase_add_test(tc, two_replicas_both_receive_load);
  tcase_add_test(tc, hundreds_of_concurrent_calls_all_succeed);
  tcase_add_test(tc, dns_tcp_localhost_resolves);
  tcase_add_test(tc, sigterm_answers_call_in_flight_then_exits_zero);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
