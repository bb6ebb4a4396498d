/*
 * bus_itest.c - libs/bus across processes: bus_testpub (a publisher that
 * keeps every event and serves Replay over libs/rpc) runs as its own
 * process; this process subscribes, with backfill through
 * bus_replay_fetch.
 *
 * The losses are real: the publisher leaves seqs off the bus (but keeps
 * them), or nng drops messages for a subscriber that is too slow, or the
 * subscriber is not there yet. In every case the subscriber must deliver
 * ALL events, exactly once, in order - healed, not prevented - and the
 * counters must show that healing happened. Each test runs in Check's
 * forked child with its own harness directory and processes.
 *
 * What a test asserts must not depend on scheduling. How much nng drops
 * does, so the losses a count relies on are made by construction (left
 * off the bus, or published before the subscriber exists). The idle
 * check is on only where a test needs it: it may fire whenever a source
 * looks quiet - also while a burst is still queued behind a busy
 * subscriber - and its catch-up then fetches ahead of the live stream,
 * so which path healed a given gap is timing; that everything arrives
 * once, in order, with the left-off events from backfill, is not.
 */
#include <check.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "libs/base/timeutil.h"
#include "libs/bus/bus.h"
#include "libs/rpc/rpc.h"
#include "tests/harness/harness.h"

/* ---------------------------------------------------------------- */
/* A bus_testpub process and a client for its RPC side                */
/* ---------------------------------------------------------------- */

typedef struct source_proc {
  const char *name;
  harness_proc *proc;
  char bus_url[64];
  char rpc_url[64];
  rpc_client *cli;
} source_proc;

static void start_source(source_proc *sp, const char *name,
                         const char *send_buffer) {
  memset(sp, 0, sizeof(*sp));
  sp->name = name;
  int bus_port = harness_free_port();
  int rpc_port = harness_free_port();
  while (rpc_port == bus_port) rpc_port = harness_free_port();
  ck_assert_int_gt(bus_port, 0);
  snprintf(sp->bus_url, sizeof(sp->bus_url), "tcp://127.0.0.1:%d", bus_port);
  snprintf(sp->rpc_url, sizeof(sp->rpc_url), "tcp://127.0.0.1:%d", rpc_port);
  char bin[512];
  snprintf(bin, sizeof(bin), "%s", harness_bin_path("tests/bus/bus_testpub"));
  char *argv[] = {bin,          "--bus",         sp->bus_url,
                  "--rpc",      sp->rpc_url,     "--source",
                  (char *)name, "--send-buffer", (char *)send_buffer,
                  NULL};
  sp->proc = harness_spawn(name, argv, NULL);
  ck_assert_msg(sp->proc != NULL, "cannot start %s", bin);
  if (!harness_wait_port(rpc_port, 10000) ||
      !harness_wait_port(bus_port, 10000)) {
    harness_dump_logs();
    ck_abort_msg("source %s did not listen", name);
  }
  rpc_client_options o;
  rpc_client_options_init(&o);
  o.reconnect_min_ms = 50;
  o.reconnect_max_ms = 200;
  o.max_attempts = 1; /* one Replay call per backfill: retrying is the
                         tracker's job here, and the counts stay exact */
  ck_assert_int_eq(rpc_client_new(sp->rpc_url, &o, &sp->cli), ERR_OK);
  ck_assert_int_eq(rpc_client_wait_connected(sp->cli, 1, 10000), ERR_OK);
}

static void stop_source(source_proc *sp) {
  rpc_client_free(sp->cli);
  harness_stop(sp->proc, 5000);
}

/* Asks the source to number `count` events on topic, leaving `skip` off
 * the bus. Returns the last seq. */
static uint64_t publish(source_proc *sp, uint64_t count, const char *topic,
                        const char *skip, int pause_every) {
  char req[512];
  int n =
      snprintf(req, sizeof(req), "count=%" PRIu64 " topic=%s", count, topic);
  if (skip != NULL)
    n += snprintf(req + n, sizeof(req) - (size_t)n, " skip=%s", skip);
  if (pause_every > 0) {
    n += snprintf(req + n, sizeof(req) - (size_t)n, " pause_every=%d",
                  pause_every);
  }
  rpc_call_options o = RPC_CALL_OPTIONS_INIT;
  o.deadline_ms = 60000;
  rpc_result *r = NULL;
  ck_assert_int_eq(rpc_client_call(sp->cli, "bustest.v1.Pub/Publish", req,
                                   (size_t)n, &o, &r),
                   ERR_OK);
  if (r->code != RPC_OK) harness_dump_logs();
  ck_assert_msg(r->code == RPC_OK, "Publish: %s", r->message);
  char buf[24];
  size_t len =
      r->payload_len < sizeof(buf) - 1 ? r->payload_len : sizeof(buf) - 1;
  memcpy(buf, r->payload, len);
  buf[len] = '\0';
  rpc_result_free(r);
  char *end = NULL;
  uint64_t last = strtoull(buf, &end, 10);
  ck_assert(end != buf && *end == '\0');
  return last;
}

static void fail_replay(source_proc *sp, int times) {
  char req[16];
  int n = snprintf(req, sizeof(req), "%d", times);
  rpc_result *r = NULL;
  ck_assert_int_eq(rpc_client_call(sp->cli, "bustest.v1.Pub/FailReplay", req,
                                   (size_t)n, NULL, &r),
                   ERR_OK);
  ck_assert_int_eq(r->code, RPC_OK);
  rpc_result_free(r);
}

/* ---------------------------------------------------------------- */
/* The subscriber side                                                */
/* ---------------------------------------------------------------- */

#define MAX_GOT 20000

typedef struct sink {
  pthread_mutex_t mu;
  struct {
    char source[16];
    uint64_t seq;
    char payload[32];
  } ev[MAX_GOT];
  size_t n;
  pthread_cond_t cv; /* gate opened, or a call blocked at it */
  bool gate_closed;  /* each call records its event, then blocks until the
                        gate opens: a subscriber as slow as the test wants */
  int blocked;       /* calls blocked at the gate now */
  source_proc *sources[4];
  int nsources;
} sink;

static sink *sink_new(void) {
  sink *k = calloc(1, sizeof(*k));
  pthread_mutex_init(&k->mu, NULL);
  pthread_cond_init(&k->cv, NULL);
  return k;
}

static int on_event(void *arg, const Rpc__V1__Event *ev) {
  sink *k = arg;
  pthread_mutex_lock(&k->mu);
  if (k->n < MAX_GOT) {
    snprintf(k->ev[k->n].source, sizeof(k->ev[0].source), "%s", ev->source);
    k->ev[k->n].seq = ev->seq;
    size_t len = ev->payload.len < 31 ? ev->payload.len : 31;
    memcpy(k->ev[k->n].payload, ev->payload.data, len);
    k->ev[k->n].payload[len] = '\0';
    k->n++;
  }
  k->blocked++;
  pthread_cond_broadcast(&k->cv);
  while (k->gate_closed) pthread_cond_wait(&k->cv, &k->mu);
  k->blocked--;
  pthread_mutex_unlock(&k->mu);
  return ERR_OK;
}

static void sink_gate(sink *k, bool closed) {
  pthread_mutex_lock(&k->mu);
  k->gate_closed = closed;
  pthread_cond_broadcast(&k->cv);
  pthread_mutex_unlock(&k->mu);
}

/* True once a callback is blocked at the closed gate (waits at most
 * timeout_ms). */
static bool sink_wait_blocked(sink *k, int timeout_ms) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += timeout_ms / 1000;
  until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&k->mu);
  while (k->blocked == 0) {
    if (pthread_cond_timedwait(&k->cv, &k->mu, &until) != 0) break;
  }
  bool ok = k->blocked > 0;
  pthread_mutex_unlock(&k->mu);
  return ok;
}

static int replay_backfill(void *arg, const char *source, uint64_t after,
                           uint64_t up_to, uint32_t limit, bus_backfill *out) {
  (void)up_to;
  sink *k = arg;
  for (int i = 0; i < k->nsources; i++) {
    if (strcmp(k->sources[i]->name, source) == 0) {
      return bus_replay_fetch(k->sources[i]->cli, source, after, limit, 3000,
                              out);
    }
  }
  return ERR_NOTFOUND;
}

/* idle_check_ms 0: off (see the top of the file). */
static bus_subscriber *subscribe(const char *address, sink *k,
                                 const char *prefix, int recv_buffer,
                                 uint32_t idle_check_ms) {
  bus_subscriber_options o;
  bus_subscriber_options_init(&o);
  o.reconnect_min_ms = 50;
  o.reconnect_max_ms = 200;
  if (recv_buffer > 0) o.recv_buffer = recv_buffer;
  o.tracker.backfill = replay_backfill;
  o.tracker.backfill_arg = k;
  o.tracker.retry_min_ms = 50;
  o.tracker.retry_max_ms = 500;
  o.tracker.idle_check_ms = idle_check_ms;
  o.tracker.backfill_limit = 200;
  bus_subscriber *s = NULL;
  ck_assert_int_eq(bus_subscriber_new(address, on_event, k, &o, &s), ERR_OK);
  ck_assert_int_eq(bus_subscribe_prefix(s, prefix), ERR_OK);
  return s;
}

static size_t count_of(sink *k, const char *source) {
  size_t c = 0;
  pthread_mutex_lock(&k->mu);
  for (size_t i = 0; i < k->n; i++) c += strcmp(k->ev[i].source, source) == 0;
  pthread_mutex_unlock(&k->mu);
  return c;
}

static void wait_for(sink *k, const char *source, size_t want, int timeout_ms) {
  int64_t end = time_mono_ms() + timeout_ms;
  while (count_of(k, source) < want && time_mono_ms() < end) time_sleep_ms(20);
  if (count_of(k, source) < want) harness_dump_logs();
  ck_assert_msg(count_of(k, source) >= want, "%s: delivered %zu of %zu", source,
                count_of(k, source), want);
}

/* Delivered events of source are exactly 1..n in order, each with the
 * payload the source made for that seq. */
static void assert_all_once_in_order(sink *k, const char *source, uint64_t n) {
  time_sleep_ms(400); /* nothing more may arrive */
  pthread_mutex_lock(&k->mu);
  uint64_t want = 1;
  for (size_t i = 0; i < k->n; i++) {
    if (strcmp(k->ev[i].source, source) != 0) continue;
    ck_assert_msg(k->ev[i].seq == want,
                  "%s: delivery %zu has seq %" PRIu64 ", want %" PRIu64, source,
                  i, k->ev[i].seq, want);
    char p[32];
    snprintf(p, sizeof(p), "payload-%" PRIu64, want);
    ck_assert_str_eq(k->ev[i].payload, p);
    want++;
  }
  pthread_mutex_unlock(&k->mu);
  ck_assert_msg(want == n + 1, "%s: delivered %" PRIu64 ", want %" PRIu64,
                source, want - 1, n);
}

/* ---------------------------------------------------------------- */
/* Tests                                                              */
/* ---------------------------------------------------------------- */

START_TEST(events_left_off_the_bus_are_backfilled_from_the_source) {
  harness_init();
  source_proc a;
  start_source(&a, "orders", "16");
  sink *k = sink_new();
  k->sources[k->nsources++] = &a;
  /* The idle check finds the hole at the very end. */
  bus_subscriber *s = subscribe(a.bus_url, k, "orders.", 0, 200);
  ck_assert_int_eq(bus_subscriber_set_position(s, "orders", 0), ERR_OK);
  ck_assert_int_eq(bus_subscriber_start(s), ERR_OK);
  ck_assert_int_eq(bus_subscriber_wait_connected(s, 1, 10000), ERR_OK);
  /* Holes at the start, in the middle, a long one, and at the very end
   * (found only by the idle check). Whether a hole is found by the live
   * event after it or by an idle check's catch-up is timing (see the top
   * of the file): what counts is that every left-off event came from
   * backfill. */
  const uint64_t n = 1000;
  ck_assert_uint_eq(
      publish(&a, n, "orders.t1", "1-3,100,400-520,777,995-1000", 50), n);
  wait_for(k, "orders", n, 60000);
  assert_all_once_in_order(k, "orders", n);
  bus_stats st;
  bus_subscriber_get_stats(s, &st);
  ck_assert_uint_ge(st.backfilled, 3 + 1 + 121 + 1 + 6);
  ck_assert_uint_le(st.received, n - (3 + 1 + 121 + 1 + 6));
  ck_assert_uint_eq(st.lost, 0);
  ck_assert_uint_eq(st.delivered, n);
  bus_subscriber_free(s);
  stop_source(&a);
  free(k);
}
END_TEST

START_TEST(what_nng_drops_for_a_slow_subscriber_is_healed) {
  harness_init();
  source_proc a;
  start_source(&a, "kitchen", "1"); /* one message queued per subscriber */
  sink *k = sink_new();
  k->sources[k->nsources++] = &a;
  bus_subscriber *s = subscribe(a.bus_url, k, "kitchen.", 1, 0);
  ck_assert_int_eq(bus_subscriber_set_position(s, "kitchen", 0), ERR_OK);
  ck_assert_int_eq(bus_subscriber_start(s), ERR_OK);
  ck_assert_int_eq(bus_subscriber_wait_connected(s, 1, 10000), ERR_OK);
  /* Stall the subscriber: events go out until one reaches the callback,
   * which then blocks with its receive thread. */
  sink_gate(k, true);
  uint64_t first = 0;
  bool stalled = false;
  int64_t end = time_mono_ms() + 10000;
  while (!stalled && time_mono_ms() < end) {
    first = publish(&a, 1, "kitchen.t0", NULL, 0);
    stalled = sink_wait_blocked(k, 50);
  }
  ck_assert(stalled);
  /* A burst into one-message queues while nothing is read: nng drops
   * nearly all of it. How much is up to the scheduler, so three seqs are
   * also left off the bus, for gaps that do not depend on it. The last
   * one is sent, and queues that drop the oldest keep it: it arrives
   * live and reveals what is missing before it. */
  const uint64_t burst = 3000;
  char skip[96];
  snprintf(skip, sizeof(skip), "%" PRIu64 ",%" PRIu64 "-%" PRIu64, first + 1000,
           first + 2000, first + 2001);
  const uint64_t n = first + burst;
  ck_assert_uint_eq(publish(&a, burst, "kitchen.t1", skip, 0), n);
  sink_gate(k, false);
  wait_for(k, "kitchen", n, 120000);
  assert_all_once_in_order(k, "kitchen", n);
  bus_stats st;
  bus_subscriber_get_stats(s, &st);
  ck_assert_uint_le(st.received, n - 3);
  ck_assert_uint_ge(st.gaps, 1);
  ck_assert_uint_ge(st.backfilled, n - st.received);
  ck_assert_uint_eq(st.delivered, n);
  ck_assert_uint_eq(st.lost, 0);
  bus_subscriber_free(s);
  stop_source(&a);
  free(k);
}
END_TEST

START_TEST(a_late_subscriber_catches_up_from_zero_then_follows_live) {
  harness_init();
  source_proc a;
  start_source(&a, "auth", "16");
  ck_assert_uint_eq(publish(&a, 700, "auth.revoked", NULL, 0), 700);
  sink *k = sink_new();
  k->sources[k->nsources++] = &a;
  bus_subscriber *s = subscribe(a.bus_url, k, "auth.", 0, 0);
  ck_assert_int_eq(bus_subscriber_set_position(s, "auth", 0), ERR_OK);
  ck_assert_int_eq(bus_subscriber_start(s), ERR_OK);
  wait_for(k, "auth", 700, 30000);
  ck_assert_int_eq(bus_subscriber_wait_connected(s, 1, 10000), ERR_OK);
  ck_assert_uint_eq(publish(&a, 300, "auth.revoked", NULL, 10), 1000);
  wait_for(k, "auth", 1000, 30000);
  assert_all_once_in_order(k, "auth", 1000);
  bus_stats st;
  bus_subscriber_get_stats(s, &st);
  ck_assert_uint_ge(st.backfilled, 700);
  ck_assert_uint_gt(st.received, 0); /* the later ones came live */
  bus_subscriber_free(s);
  stop_source(&a);
  free(k);
}
END_TEST

START_TEST(a_source_whose_replay_is_down_for_a_while_loses_nothing) {
  harness_init();
  source_proc a;
  start_source(&a, "tenants", "16");
  sink *k = sink_new();
  k->sources[k->nsources++] = &a;
  bus_subscriber *s = subscribe(a.bus_url, k, "tenants.", 0, 0);
  ck_assert_int_eq(bus_subscriber_set_position(s, "tenants", 0), ERR_OK);
  fail_replay(&a, 6); /* the catch-up and the first retries fail */
  ck_assert_int_eq(bus_subscriber_start(s), ERR_OK);
  ck_assert_int_eq(bus_subscriber_wait_connected(s, 1, 10000), ERR_OK);
  ck_assert_uint_eq(publish(&a, 500, "tenants.changed", "10-40,300", 20), 500);
  wait_for(k, "tenants", 500, 60000);
  assert_all_once_in_order(k, "tenants", 500);
  bus_stats st;
  bus_subscriber_get_stats(s, &st);
  ck_assert_uint_ge(st.backfill_failures, 6);
  ck_assert_uint_eq(st.lost, 0);
  bus_subscriber_free(s);
  stop_source(&a);
  free(k);
}
END_TEST

START_TEST(one_subscriber_follows_two_source_processes_independently) {
  harness_init();
  source_proc a, b;
  start_source(&a, "alpha", "16");
  start_source(&b, "beta", "16");
  sink *k = sink_new();
  k->sources[k->nsources++] = &a;
  k->sources[k->nsources++] = &b;
  char addr[160];
  snprintf(addr, sizeof(addr), "%s,%s", a.bus_url, b.bus_url);
  bus_subscriber *s = subscribe(addr, k, "", 0, 0);
  ck_assert_int_eq(bus_subscriber_set_position(s, "alpha", 0), ERR_OK);
  ck_assert_int_eq(bus_subscriber_set_position(s, "beta", 0), ERR_OK);
  ck_assert_int_eq(bus_subscriber_start(s), ERR_OK);
  ck_assert_int_eq(bus_subscriber_wait_connected(s, 2, 10000), ERR_OK);
  /* beta's Replay is down while alpha's gaps heal. */
  fail_replay(&b, 4);
  ck_assert_uint_eq(publish(&a, 400, "orders.a", "50-60", 20), 400);
  ck_assert_uint_eq(publish(&b, 400, "orders.b", "1-5,200", 20), 400);
  wait_for(k, "alpha", 400, 60000);
  wait_for(k, "beta", 400, 60000);
  assert_all_once_in_order(k, "alpha", 400);
  assert_all_once_in_order(k, "beta", 400);
  bus_subscriber_free(s);
  stop_source(&a);
  stop_source(&b);
  free(k);
}
END_TEST

START_TEST(a_dead_source_leaves_the_gap_open_and_the_subscriber_stoppable) {
  harness_init();
  source_proc a;
  start_source(&a, "dying", "16");
  sink *k = sink_new();
  k->sources[k->nsources++] = &a;
  bus_subscriber *s = subscribe(a.bus_url, k, "dying.", 0, 0);
  ck_assert_int_eq(bus_subscriber_start(s), ERR_OK);
  ck_assert_int_eq(bus_subscriber_wait_connected(s, 1, 10000), ERR_OK);
  /* No position: the subscriber starts from the first event it sees.
   * Publish until one arrives (the first may race the connection). */
  int64_t end = time_mono_ms() + 10000;
  uint64_t last = 0;
  while (count_of(k, "dying") == 0 && time_mono_ms() < end) {
    last = publish(&a, 1, "dying.t", NULL, 0);
    time_sleep_ms(50);
  }
  wait_for(k, "dying", 1, 1000);
  size_t before = count_of(k, "dying");
  /* Replay goes down for good, a hole opens, then the process dies. */
  fail_replay(&a, 1000000);
  char skip[64];
  snprintf(skip, sizeof(skip), "%" PRIu64 "-%" PRIu64, last + 1, last + 3);
  ck_assert_uint_eq(publish(&a, 5, "dying.t", skip, 0), last + 5);
  time_sleep_ms(500);
  harness_signal(a.proc, SIGKILL);
  ck_assert_int_ne(harness_wait_exit(a.proc, 5000), -1);
  time_sleep_ms(1000);
  /* The events after the hole are held, not delivered out of order, and
   * nothing was given up on. */
  ck_assert_uint_eq(count_of(k, "dying"), before);
  bus_stats st;
  bus_subscriber_get_stats(s, &st);
  ck_assert_uint_eq(st.lost, 0);
  ck_assert_uint_ge(st.gaps, 1);
  ck_assert_uint_ge(st.backfill_failures, 1);
  int64_t t0 = time_mono_ms();
  bus_subscriber_free(s);
  ck_assert_int_lt(time_mono_ms() - t0, 10000);
  rpc_client_free(a.cli);
  harness_stop(a.proc, 1000);
  free(k);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("bus_itest");
  TCase *tc = tcase_create("bus");
  tcase_set_timeout(tc, 180);
  tcase_add_test(tc, events_left_off_the_bus_are_backfilled_from_the_source);
  tcase_add_test(tc, what_nng_drops_for_a_slow_subscriber_is_healed);
  tcase_add_test(tc, a_late_subscriber_catches_up_from_zero_then_follows_live);
  tcase_add_test(tc, a_source_whose_replay_is_down_for_a_while_loses_nothing);
  tcase_add_test(tc, one_subscriber_follows_two_source_processes_independently);
  tcase_add_test(
      tc, a_dead_source_leaves_the_gap_open_and_the_subscriber_stoppable);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
