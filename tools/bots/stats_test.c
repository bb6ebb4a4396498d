/*
 * stats_test.c - the bots' numbers: exact nearest-rank percentiles,
 * failures grouped by status, the JSON shape the report prints.
 */
#include <check.h>
#include <stdlib.h>

#include "tools/bots/stats.h"

START_TEST(percentiles_are_nearest_rank) {
  stats_op s = {.name = "x"};
  ck_assert_double_eq(stats_quantile(&s, 0.5), 0);
  for (int i = 100; i >= 1; i--) stats_add(&s, 200, 1, (double)i);
  ck_assert_double_eq(stats_quantile(&s, 0.50), 50);
  ck_assert_double_eq(stats_quantile(&s, 0.90), 90);
  ck_assert_double_eq(stats_quantile(&s, 0.99), 99);
  ck_assert_double_eq(stats_quantile(&s, 1.0), 100);
  stats_add(&s, 200, 1, 1000);
  ck_assert_double_eq(stats_quantile(&s, 1.0), 1000);
  stats_free(&s);
}
END_TEST

START_TEST(failures_are_grouped_by_status) {
  stats_op s = {.name = "x"};
  stats_add(&s, 201, 1, 1);
  stats_add(&s, 503, 0, 1);
  stats_add(&s, 0, 0, 1);
  stats_add(&s, 503, 0, 1);
  ck_assert_int_eq(s.count, 4);
  ck_assert_int_eq(s.ok, 1);
  ck_assert_int_eq(stats_failures(&s), 3);
  json_t *j = stats_json(&s);
  ck_assert_int_eq(json_integer_value(
                       json_object_get(json_object_get(j, "failures"), "503")),
                   2);
  ck_assert_int_eq(
      json_integer_value(json_object_get(json_object_get(j, "failures"), "0")),
      1);
  ck_assert_int_eq(json_integer_value(json_object_get(j, "failed")), 3);
  ck_assert_ptr_nonnull(
      json_object_get(json_object_get(j, "latency_ms"), "p99"));
  json_decref(j);
  stats_free(&s);
}
END_TEST

START_TEST(distinct_codes_beyond_the_table_are_counted_as_other) {
  stats_op s = {.name = "x"};
  for (int i = 0; i < STATS_MAX_CODES + 3; i++) stats_add(&s, 400 + i, 0, 1);
  ck_assert_int_eq(s.ncodes, STATS_MAX_CODES);
  ck_assert_int_eq(s.other_failures, 3);
  ck_assert_int_eq(stats_failures(&s), STATS_MAX_CODES + 3);
  stats_free(&s);
}
END_TEST

int main(void) {
  Suite *s = suite_create("bots_stats");
  TCase *tc = tcase_create("stats");
  tcase_add_test(tc, percentiles_are_nearest_rank);
  tcase_add_test(tc, failures_are_grouped_by_status);
  tcase_add_test(tc, distinct_codes_beyond_the_table_are_counted_as_other);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
