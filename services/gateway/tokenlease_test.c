/*
 * tokenlease_test.c - leased rate-limit tokens without Redis: a lease
 * grants exactly what was leased and no more, ends on time, refusals last
 * until their retry time, buckets do not share tokens, a slot collision
 * only loses a lease, and concurrent takers never over-grant.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "services/gateway/tokenlease.h"

static tokenlease *fresh(size_t slots) {
  tokenlease *t = NULL;
  ck_assert_int_eq(tokenlease_new(slots, &t), ERR_OK);
  return t;
}

static int takes(tokenlease *t, const char *key, int64_t now) {
  int n = 0;
  int64_t r = 0;
  while (tokenlease_take(t, key, now, &r) == TOKENLEASE_TAKEN) n++;
  return n;
}

START_TEST(nothing_leased_means_ask_redis) {
  tokenlease *t = fresh(64);
  int64_t r = -1;
  ck_assert_int_eq(tokenlease_take(t, "rl:c:{a}:u", 0, &r), TOKENLEASE_ASK);
  ck_assert_int_eq(r, 0);
  /* No table at all, or keys it cannot hold: ask too. */
  ck_assert_int_eq(tokenlease_take(NULL, "k", 0, &r), TOKENLEASE_ASK);
  char longkey[TOKENLEASE_KEY_MAX + 2];
  memset(longkey, 'k', sizeof longkey - 1);
  longkey[sizeof longkey - 1] = '\0';
  tokenlease_grant(t, longkey, 10, 0, 1000);
  ck_assert_int_eq(tokenlease_take(t, longkey, 1, &r), TOKENLEASE_ASK);
  ck_assert_int_eq(tokenlease_take(t, "", 1, &r), TOKENLEASE_ASK);
  tokenlease_free(t);
  tokenlease_free(NULL);
  ck_assert_int_eq(tokenlease_new(0, &t), ERR_INVAL);
}
END_TEST

START_TEST(a_lease_grants_what_was_leased_then_asks_again) {
  tokenlease *t = fresh(64);
  tokenlease_grant(t, "k", 5, 1000, 1000);
  ck_assert_int_eq(takes(t, "k", 1500), 5);
  int64_t r = 0;
  ck_assert_int_eq(tokenlease_take(t, "k", 1500, &r), TOKENLEASE_ASK);
  /* A second grant adds to what is left and renews the lease. */
  tokenlease_grant(t, "k", 2, 1600, 1000);
  tokenlease_grant(t, "k", 3, 1700, 1000);
  ck_assert_int_eq(takes(t, "k", 2650), 5);
  /* Nothing or less granted changes nothing. */
  tokenlease_grant(t, "k", 0, 2700, 1000);
  tokenlease_grant(t, "k", -3, 2700, 1000);
  ck_assert_int_eq(tokenlease_take(t, "k", 2700, &r), TOKENLEASE_ASK);
  tokenlease_free(t);
}
END_TEST

START_TEST(a_lease_ends_on_time_unused_tokens_are_lost) {
  tokenlease *t = fresh(64);
  tokenlease_grant(t, "k", 10, 1000, 500);
  int64_t r = 0;
  ck_assert_int_eq(tokenlease_take(t, "k", 1499, &r), TOKENLEASE_TAKEN);
  ck_assert_int_eq(tokenlease_take(t, "k", 1500, &r), TOKENLEASE_ASK);
  ck_assert_int_eq(tokenlease_take(t, "k", 99999, &r), TOKENLEASE_ASK);
  /* A grant after the end does not revive the lost tokens. */
  tokenlease_grant(t, "k", 1, 2000, 500);
  ck_assert_int_eq(takes(t, "k", 2001), 1);
  tokenlease_free(t);
}
END_TEST

START_TEST(a_refusal_lasts_until_its_retry_time) {
  tokenlease *t = fresh(64);
  tokenlease_deny(t, "k", 1000, 3000);
  int64_t r = 0;
  ck_assert_int_eq(tokenlease_take(t, "k", 1000, &r), TOKENLEASE_DENIED);
  ck_assert_int_eq(r, 3000);
  ck_assert_int_eq(tokenlease_take(t, "k", 3999, &r), TOKENLEASE_DENIED);
  ck_assert_int_eq(r, 1);
  ck_assert_int_eq(tokenlease_take(t, "k", 4000, &r), TOKENLEASE_ASK);
  /* Another bucket is not refused. */
  ck_assert_int_eq(tokenlease_take(t, "other", 1000, &r), TOKENLEASE_ASK);
  /* A grant ends a refusal; a refusal does not take leased tokens back
   * (another caller of the replica was granted them first). */
  tokenlease_deny(t, "k", 5000, 3000);
  tokenlease_grant(t, "k", 2, 5001, 1000);
  ck_assert_int_eq(takes(t, "k", 5002), 2);
  tokenlease_grant(t, "k", 1, 6000, 1000);
  tokenlease_deny(t, "k", 6000, 3000);
  ck_assert_int_eq(tokenlease_take(t, "k", 6001, &r), TOKENLEASE_TAKEN);
  /* A zero retry is no refusal. */
  tokenlease_deny(t, "z", 6000, 0);
  ck_assert_int_eq(tokenlease_take(t, "z", 6000, &r), TOKENLEASE_ASK);
  tokenlease_free(t);
}
END_TEST

START_TEST(buckets_never_share_tokens_even_in_one_slot) {
  tokenlease *t = fresh(1); /* every key collides */
  tokenlease_grant(t, "rl:c:{a}:alice", 5, 0, 1000);
  int64_t r = 0;
  ck_assert_int_eq(tokenlease_take(t, "rl:c:{a}:mallory", 1, &r),
                   TOKENLEASE_ASK);
  ck_assert_int_eq(tokenlease_take(t, "rl:c:{b}:alice", 1, &r), TOKENLEASE_ASK);
  /* mallory's grant evicts alice's lease: alice asks Redis again. */
  tokenlease_grant(t, "rl:c:{a}:mallory", 1, 2, 1000);
  ck_assert_int_eq(tokenlease_take(t, "rl:c:{a}:alice", 3, &r), TOKENLEASE_ASK);
  ck_assert_int_eq(takes(t, "rl:c:{a}:mallory", 3), 1);
  tokenlease_free(t);

  /* With room, many buckets keep their own leases. */
  t = fresh(4096);
  char k[32];
  for (int i = 0; i < 100; i++) {
    snprintf(k, sizeof k, "rl:c:{t}:%d", i);
    tokenlease_grant(t, k, i % 7 + 1, 0, 1000);
  }
  int kept = 0;
  for (int i = 0; i < 100; i++) {
    snprintf(k, sizeof k, "rl:c:{t}:%d", i);
    int n = takes(t, k, 1);
    ck_assert_int_le(n, i % 7 + 1); /* never more than its own */
    kept += n == i % 7 + 1;
  }
  ck_assert_int_ge(kept, 90); /* a few may have collided */
  tokenlease_free(t);
}
END_TEST

#define THREADS 8
static tokenlease *g_t;
static int g_taken[THREADS];

static void *taker(void *arg) {
  int i = (int)(intptr_t)arg;
  int64_t r = 0;
  for (int k = 0; k < 100000; k++)
    if (tokenlease_take(g_t, "hot", 10, &r) == TOKENLEASE_TAKEN) g_taken[i]++;
  return NULL;
}

START_TEST(concurrent_takers_never_over_grant) {
  g_t = fresh(16);
  tokenlease_grant(g_t, "hot", 50000, 0, 1000000);
  pthread_t th[THREADS];
  for (int i = 0; i < THREADS; i++)
    ck_assert_int_eq(pthread_create(&th[i], NULL, taker, (void *)(intptr_t)i),
                     0);
  int total = 0;
  for (int i = 0; i < THREADS; i++) {
    pthread_join(th[i], NULL);
    total += g_taken[i];
  }
  ck_assert_int_eq(total, 50000);
  tokenlease_free(g_t);
}
END_TEST

int main(void) {
  Suite *s = suite_create("tokenlease");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, nothing_leased_means_ask_redis);
  tcase_add_test(tc, a_lease_grants_what_was_leased_then_asks_again);
  tcase_add_test(tc, a_lease_ends_on_time_unused_tokens_are_lost);
  tcase_add_test(tc, a_refusal_lasts_until_its_retry_time);
  tcase_add_test(tc, buckets_never_share_tokens_even_in_one_slot);
  tcase_add_test(tc, concurrent_takers_never_over_grant);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
