/* lifecycle_test.c - unit tests for signal-driven shutdown. Each test runs
 * in its own forked process (Check's default), so signals sent here reach
 * only the test. */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "libs/base/timeutil.h"
#include "libs/obs/lifecycle.h"

START_TEST(raised_sigterm_is_caught_not_fatal) {
  ck_assert_int_eq(lifecycle_init(), ERR_OK);
  ck_assert(!lifecycle_stopping());
  raise(SIGTERM); /* arrives before anyone waits: must stay pending */
  int sig = 0;
  ck_assert_int_eq(lifecycle_wait_for_stop(5000, &sig), ERR_OK);
  ck_assert_int_eq(sig, SIGTERM);
  ck_assert(lifecycle_stopping());
}
END_TEST

static void *send_sigint_later(void *arg) {
  (void)arg;
  time_sleep_ms(50);
  kill(getpid(), SIGINT);
  return NULL;
}

START_TEST(sigint_from_another_thread_wakes_the_waiter) {
  ck_assert_int_eq(lifecycle_init(), ERR_OK);
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, send_sigint_later, NULL), 0);
  int sig = 0;
  ck_assert_int_eq(lifecycle_wait_for_stop(-1, &sig), ERR_OK);
  ck_assert_int_eq(sig, SIGINT);
  pthread_join(t, NULL);
}
END_TEST

START_TEST(wait_times_out_without_a_signal) {
  ck_assert_int_eq(lifecycle_init(), ERR_OK);
  int64_t t0 = time_mono_ms();
  int sig = 12345;
  ck_assert_int_eq(lifecycle_wait_for_stop(100, &sig), ERR_TIMEOUT);
  ck_assert_int_ge(time_mono_ms() - t0, 100);
  ck_assert_int_eq(sig, 12345);
  ck_assert_int_eq(lifecycle_wait_for_stop(0, NULL), ERR_TIMEOUT);
  ck_assert(!lifecycle_stopping());
}
END_TEST

static void *request_stop_later(void *arg) {
  (void)arg;
  time_sleep_ms(30);
  lifecycle_request_stop();
  return NULL;
}

START_TEST(request_stop_wakes_the_waiter_with_sigterm) {
  ck_assert_int_eq(lifecycle_init(), ERR_OK);
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, request_stop_later, NULL), 0);
  int sig = 0;
  ck_assert_int_eq(lifecycle_wait_for_stop(10000, &sig), ERR_OK);
  ck_assert_int_eq(sig, SIGTERM);
  pthread_join(t, NULL);
}
END_TEST

START_TEST(init_ignores_sigpipe) {
  ck_assert_int_eq(lifecycle_init(), ERR_OK);
  ck_assert_int_eq(lifecycle_init(), ERR_OK); /* idempotent */
  int fds[2];
  ck_assert_int_eq(pipe(fds), 0);
  close(fds[0]);
  ck_assert_int_eq(write(fds[1], "x", 1), -1); /* EPIPE, not death */
  close(fds[1]);
}
END_TEST

struct drain_ctl {
  atomic_bool release; /* lets a slow drain finish */
  atomic_bool finished;
  int result;
  int sleep_ms;
};

static int drain_fn(void *p) {
  struct drain_ctl *c = p;
  if (c->sleep_ms) time_sleep_ms(c->sleep_ms);
  while (c->sleep_ms == 0 && !atomic_load(&c->release)) time_sleep_ms(5);
  atomic_store(&c->finished, true);
  return c->result;
}

START_TEST(drain_that_finishes_in_time_returns_its_result) {
  ck_assert_int_eq(lifecycle_init(), ERR_OK);
  struct drain_ctl c = {.result = ERR_UNAVAILABLE, .sleep_ms = 20};
  int res = -1;
  ck_assert_int_eq(lifecycle_drain(10000, drain_fn, &c, &res), ERR_OK);
  ck_assert_int_eq(res, ERR_UNAVAILABLE);
  ck_assert(atomic_load(&c.finished));
}
END_TEST

START_TEST(drain_past_the_grace_period_times_out) {
  ck_assert_int_eq(lifecycle_init(), ERR_OK);
  struct drain_ctl c = {.result = ERR_OK};
  int res = -1;
  int64_t t0 = time_mono_ms();
  ck_assert_int_eq(lifecycle_drain(100, drain_fn, &c, &res), ERR_TIMEOUT);
  ck_assert_int_ge(time_mono_ms() - t0, 100);
  ck_assert_int_eq(res, -1);
  ck_assert(!atomic_load(&c.finished));
  /* Let the detached drain thread end before the test's stack goes. */
  atomic_store(&c.release, true);
  while (!atomic_load(&c.finished)) time_sleep_ms(5);
  time_sleep_ms(20);
}
END_TEST

START_TEST(second_signal_cuts_the_drain_short) {
  ck_assert_int_eq(lifecycle_init(), ERR_OK);
  struct drain_ctl c = {.result = ERR_OK};
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, send_sigint_later, NULL), 0);
  int res = -1;
  ck_assert_int_eq(lifecycle_drain(60000, drain_fn, &c, &res), ERR_CLOSED);
  ck_assert_int_eq(res, -1);
  pthread_join(t, NULL);
  atomic_store(&c.release, true);
  while (!atomic_load(&c.finished)) time_sleep_ms(5);
  time_sleep_ms(20);
}
END_TEST

START_TEST(drain_without_function_is_invalid) {
  ck_assert_int_eq(lifecycle_drain(100, NULL, NULL, NULL), ERR_INVAL);
}
END_TEST

/* Runs body in a child process and returns its exit status (or -1 if it
 * was still running after 5 s: then it is killed). */
static int child_status(void (*body)(void)) {
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    body();
    _exit(99);
  }
  int64_t deadline = time_mono_ms() + 5000;
  int st = 0;
  while (waitpid(pid, &st, WNOHANG) == 0) {
    if (time_mono_ms() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      return -1;
    }
    time_sleep_ms(10);
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : -2;
}

static void hung_cleanup(void) {
  if (lifecycle_exit_watchdog(100) != ERR_OK) _exit(98);
  time_sleep_ms(10000); /* stands for an nng_close that never returns */
}

static void finished_cleanup(void) {
  if (lifecycle_exit_watchdog(100) != ERR_OK) _exit(98);
  lifecycle_exit_watchdog_cancel();
  time_sleep_ms(400);
  _exit(7);
}

START_TEST(watchdog_ends_a_hung_cleanup_with_status_zero) {
  int64_t t0 = time_mono_ms();
  ck_assert_int_eq(child_status(hung_cleanup), 0);
  ck_assert_int_lt(time_mono_ms() - t0, 4000);
}
END_TEST

START_TEST(cancelled_watchdog_leaves_the_process_alone) {
  ck_assert_int_eq(child_status(finished_cleanup), 7);
}
END_TEST

int main(void) {
  Suite *s = suite_create("lifecycle");
  TCase *tc = tcase_create("lifecycle");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, raised_sigterm_is_caught_not_fatal);
  tcase_add_test(tc, sigint_from_another_thread_wakes_the_waiter);
  tcase_add_test(tc, wait_times_out_without_a_signal);
  tcase_add_test(tc, request_stop_wakes_the_waiter_with_sigterm);
  tcase_add_test(tc, init_ignores_sigpipe);
  tcase_add_test(tc, drain_that_finishes_in_time_returns_its_result);
  tcase_add_test(tc, drain_past_the_grace_period_times_out);
  tcase_add_test(tc, second_signal_cuts_the_drain_short);
  tcase_add_test(tc, drain_without_function_is_invalid);
  tcase_add_test(tc, watchdog_ends_a_hung_cleanup_with_status_zero);
  tcase_add_test(tc, cancelled_watchdog_leaves_the_process_alone);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
