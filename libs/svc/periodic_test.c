/*
 * periodic_test.c - the round runner: first round at once, repeats at the
 * interval, wakes (and several wakes during a round make one round),
 * prompt stop that still lets a running round finish, bad options.
 * Timing assertions use generous bounds: the machine is shared.
 */
#include <check.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "libs/base/timeutil.h"
#include "libs/svc/periodic.h"

#define HOUR_MS (3600LL * 1000)

typedef struct counter {
  atomic_int rounds;
  atomic_bool hold;     /* the round waits while this is true */
  atomic_bool in_round; /* a round has started and not finished */
  int64_t sleep_ms;     /* each round takes this long */
} counter;

static void round_fn(void *arg) {
  counter *c = arg;
  atomic_store(&c->in_round, true);
  while (atomic_load(&c->hold)) time_sleep_ms(1);
  if (c->sleep_ms > 0) time_sleep_ms(c->sleep_ms);
  atomic_fetch_add(&c->rounds, 1);
  atomic_store(&c->in_round, false);
}

/* Waits up to ms for at least n rounds; returns the count seen. */
static int wait_rounds(counter *c, int n, int64_t ms) {
  int64_t until = time_mono_ms() + ms;
  while (atomic_load(&c->rounds) < n && time_mono_ms() < until)
    time_sleep_ms(1);
  return atomic_load(&c->rounds);
}

/* Starts rounds of c every interval_ms. */
static periodic *start(counter *c, int64_t interval_ms) {
  periodic_options o = {.interval_ms = interval_ms, .fn = round_fn, .arg = c};
  periodic *p = NULL;
  ck_assert_int_eq(periodic_start(&o, &p), ERR_OK);
  return p;
}

START_TEST(first_round_runs_at_once) {
  counter c = {0};
  periodic_options o = {.name = "test-periodic",
                        .interval_ms = HOUR_MS,
                        .fn = round_fn,
                        .arg = &c};
  periodic *p = NULL;
  ck_assert_int_eq(periodic_start(&o, &p), ERR_OK);
  ck_assert_int_eq(wait_rounds(&c, 1, 5000), 1);
  periodic_stop(p);
}
END_TEST

START_TEST(rounds_repeat_at_the_interval) {
  counter c = {0};
  periodic *p = start(&c, 10);
  ck_assert_int_ge(wait_rounds(&c, 4, 5000), 4);
  periodic_stop(p);
}
END_TEST

START_TEST(wake_runs_a_round_early) {
  counter c = {0};
  periodic *p = start(&c, HOUR_MS);
  ck_assert_int_eq(wait_rounds(&c, 1, 5000), 1);
  periodic_wake(p);
  ck_assert_int_eq(wait_rounds(&c, 2, 5000), 2);
  periodic_wake(p);
  ck_assert_int_eq(wait_rounds(&c, 3, 5000), 3);
  periodic_stop(p);
}
END_TEST

START_TEST(wakes_during_a_round_make_one_more_round) {
  counter c = {0};
  atomic_store(&c.hold, true);
  periodic *p = start(&c, HOUR_MS);
  int64_t until = time_mono_ms() + 5000;
  while (!atomic_load(&c.in_round) && time_mono_ms() < until) time_sleep_ms(1);
  ck_assert(atomic_load(&c.in_round));
  periodic_wake(p);
  periodic_wake(p);
  periodic_wake(p);
  atomic_store(&c.hold, false);
  ck_assert_int_eq(wait_rounds(&c, 2, 5000), 2);
  time_sleep_ms(100); /* a third round would have started by now */
  ck_assert_int_eq(atomic_load(&c.rounds), 2);
  periodic_stop(p);
}
END_TEST

START_TEST(stop_is_prompt_while_waiting) {
  counter c = {0};
  periodic *p = start(&c, HOUR_MS);
  ck_assert_int_eq(wait_rounds(&c, 1, 5000), 1);
  int64_t t0 = time_mono_ms();
  periodic_stop(p);
  ck_assert_int_lt(time_mono_ms() - t0, 2000);
  ck_assert_int_eq(atomic_load(&c.rounds), 1);
}
END_TEST

START_TEST(stop_lets_a_running_round_finish) {
  counter c = {.sleep_ms = 100};
  periodic *p = start(&c, HOUR_MS);
  int64_t until = time_mono_ms() + 5000;
  while (!atomic_load(&c.in_round) && time_mono_ms() < until) time_sleep_ms(1);
  periodic_stop(p);
  /* The round was not cut short, and no other one started. */
  ck_assert_int_eq(atomic_load(&c.rounds), 1);
  ck_assert(!atomic_load(&c.in_round));
}
END_TEST

START_TEST(bad_options_are_refused) {
  counter c = {0};
  periodic *p = (periodic *)&c;
  periodic_options no_fn = {.interval_ms = 1000};
  ck_assert_int_eq(periodic_start(&no_fn, &p), ERR_INVAL);
  ck_assert_ptr_null(p);
  periodic_options zero = {.interval_ms = 0, .fn = round_fn, .arg = &c};
  ck_assert_int_eq(periodic_start(&zero, &p), ERR_INVAL);
  periodic_options negative = {.interval_ms = -5, .fn = round_fn, .arg = &c};
  ck_assert_int_eq(periodic_start(&negative, &p), ERR_INVAL);
  ck_assert_int_eq(periodic_start(NULL, &p), ERR_INVAL);
  /* A name longer than a thread name is cut, not refused. */
  periodic_options long_name = {.name = "a-very-long-thread-name-indeed",
                                .interval_ms = HOUR_MS,
                                .fn = round_fn,
                                .arg = &c};
  ck_assert_int_eq(periodic_start(&long_name, &p), ERR_OK);
  ck_assert_int_eq(wait_rounds(&c, 1, 5000), 1);
  periodic_stop(p);
  periodic_stop(NULL);
  periodic_wake(NULL);
}
END_TEST

int main(void) {
  Suite *s = suite_create("periodic");
  TCase *tc = tcase_create("periodic");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, first_round_runs_at_once);
  tcase_add_test(tc, rounds_repeat_at_the_interval);
  tcase_add_test(tc, wake_runs_a_round_early);
  tcase_add_test(tc, wakes_during_a_round_make_one_more_round);
  tcase_add_test(tc, stop_is_prompt_while_waiting);
  tcase_add_test(tc, stop_lets_a_running_round_finish);
  tcase_add_test(tc, bad_options_are_refused);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
