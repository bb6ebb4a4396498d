/* metrics_test.c - unit tests for the metrics registry and its Prometheus
 * text output. Each test runs in its own forked process (Check's default),
 * so every test starts from an empty registry. */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/obs/metrics.h"

static void assert_family_text(const metrics_family *f, const char *want) {
  char *got = metrics_render_family(f);
  ck_assert_ptr_nonnull(got);
  ck_assert_str_eq(got, want);
  /* The full render contains the same block. */
  char *all = metrics_render();
  ck_assert_ptr_nonnull(all);
  ck_assert_msg(strstr(all, want) != NULL, "full render lacks:\n%s\ngot:\n%s",
                want, all);
  free(all);
  free(got);
}

START_TEST(counter_with_labels_renders_exact_text) {
  const char *labels[] = {"method", "code"};
  metrics_family *f =
      metrics_counter("t_requests_total", "Requests handled.", 2, labels);
  ck_assert_ptr_nonnull(f);
  metrics_child *ok = metrics_child_get(f, (const char *[]){"Get", "OK"});
  metrics_child *err = metrics_child_get(f, (const char *[]){"Put", "ERR"});
  metrics_inc(ok);
  metrics_inc(ok);
  metrics_add(err, 2.5);
  ck_assert_ptr_eq(metrics_child_get(f, (const char *[]){"Get", "OK"}), ok);
  ck_assert(metrics_value(ok) == 2.0);
  assert_family_text(f, "# HELP t_requests_total Requests handled.\n"
                        "# TYPE t_requests_total counter\n"
                        "t_requests_total{method=\"Get\",code=\"OK\"} 2\n"
                        "t_requests_total{method=\"Put\",code=\"ERR\"} 2.5\n");
}
END_TEST

START_TEST(gauge_without_labels_starts_at_zero_and_sets_adds) {
  metrics_family *f = metrics_gauge("t_queue_depth", "Queue depth.", 0, NULL);
  ck_assert_ptr_nonnull(f);
  assert_family_text(f, "# HELP t_queue_depth Queue depth.\n"
                        "# TYPE t_queue_depth gauge\n"
                        "t_queue_depth 0\n");
  metrics_child *c = metrics_child_get(f, NULL);
  ck_assert_ptr_nonnull(c);
  metrics_set(c, 10);
  metrics_add(c, -2.5);
  metrics_inc(c);
  assert_family_text(f, "# HELP t_queue_depth Queue depth.\n"
                        "# TYPE t_queue_depth gauge\n"
                        "t_queue_depth 8.5\n");
  metrics_set(c, -0.1);
  assert_family_text(f, "# HELP t_queue_depth Queue depth.\n"
                        "# TYPE t_queue_depth gauge\n"
                        "t_queue_depth -0.1\n");
}
END_TEST

START_TEST(histogram_renders_cumulative_buckets_sum_and_count) {
  const double b[] = {0.25, 0.5, 1};
  const char *labels[] = {"method"};
  metrics_family *f =
      metrics_histogram("t_latency_seconds", "Latency.", 1, labels, b, 3);
  ck_assert_ptr_nonnull(f);
  metrics_child *c = metrics_child_get(f, (const char *[]){"Get"});
  metrics_observe(c, 0.125);
  metrics_observe(c, 0.25); /* upper bounds are inclusive */
  metrics_observe(c, 0.75);
  metrics_observe(c, 3);
  metrics_observe(c, NAN); /* ignored */
  ck_assert(metrics_value(c) == 4.0);
  assert_family_text(f,
                     "# HELP t_latency_seconds Latency.\n"
                     "# TYPE t_latency_seconds histogram\n"
                     "t_latency_seconds_bucket{method=\"Get\",le=\"0.25\"} 2\n"
                     "t_latency_seconds_bucket{method=\"Get\",le=\"0.5\"} 2\n"
                     "t_latency_seconds_bucket{method=\"Get\",le=\"1\"} 3\n"
                     "t_latency_seconds_bucket{method=\"Get\",le=\"+Inf\"} 4\n"
                     "t_latency_seconds_sum{method=\"Get\"} 4.125\n"
                     "t_latency_seconds_count{method=\"Get\"} 4\n");
}
END_TEST

START_TEST(histogram_default_buckets_span_100us_to_10s) {
  metrics_family *f =
      metrics_histogram("t_default_seconds", "D.", 0, NULL, NULL, 0);
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_gt(metrics_default_nbuckets, 5);
  ck_assert(metrics_default_buckets[0] == 0.0001);
  ck_assert(metrics_default_buckets[metrics_default_nbuckets - 1] == 10);
  metrics_observe(metrics_child_get(f, NULL), 0.001);
  char *s = metrics_render_family(f);
  ck_assert_ptr_nonnull(s);
  ck_assert_ptr_nonnull(
      strstr(s, "t_default_seconds_bucket{le=\"0.0001\"} 0\n"));
  ck_assert_ptr_nonnull(
      strstr(s, "t_default_seconds_bucket{le=\"0.001\"} 1\n"));
  ck_assert_ptr_nonnull(strstr(s, "t_default_seconds_bucket{le=\"10\"} 1\n"));
  ck_assert_ptr_nonnull(strstr(s, "t_default_seconds_bucket{le=\"+Inf\"} 1\n"));
  ck_assert_ptr_nonnull(strstr(s, "t_default_seconds_sum 0.001\n"));
  ck_assert_ptr_nonnull(strstr(s, "t_default_seconds_count 1\n"));
  free(s);
}
END_TEST

START_TEST(label_values_and_help_are_escaped) {
  const char *labels[] = {"path"};
  metrics_family *f = metrics_counter(
      "t_escaped_total", "Back\\slash and\nnewline \"q\".", 1, labels);
  ck_assert_ptr_nonnull(f);
  metrics_inc(metrics_child_get(f, (const char *[]){"a\\b\"c\nd"}));
  assert_family_text(
      f, "# HELP t_escaped_total Back\\\\slash and\\nnewline \"q\".\n"
         "# TYPE t_escaped_total counter\n"
         "t_escaped_total{path=\"a\\\\b\\\"c\\nd\"} 1\n");
}
END_TEST

START_TEST(children_past_the_limit_share_one_overflow_child) {
  const char *labels[] = {"user"};
  metrics_family *f = metrics_counter("t_by_user_total", "U.", 1, labels);
  ck_assert_ptr_nonnull(f);
  char v[32];
  for (int i = 0; i < METRICS_MAX_CHILDREN; i++) {
    snprintf(v, sizeof v, "u%04d", i);
    metrics_child *c = metrics_child_get(f, (const char *[]){v});
    ck_assert_ptr_nonnull(c);
    metrics_inc(c);
  }
  metrics_child *o1 = metrics_child_get(f, (const char *[]){"extra1"});
  metrics_child *o2 = metrics_child_get(f, (const char *[]){"extra2"});
  ck_assert_ptr_nonnull(o1);
  ck_assert_ptr_eq(o1, o2);
  metrics_inc(o1);
  metrics_inc(o2);
  /* Existing children are still found after the limit. */
  metrics_child *first = metrics_child_get(f, (const char *[]){"u0000"});
  ck_assert_ptr_ne(first, o1);
  ck_assert(metrics_value(first) == 1.0);
  char *s = metrics_render_family(f);
  ck_assert_ptr_nonnull(s);
  ck_assert_ptr_nonnull(strstr(s, "t_by_user_total{user=\"u1023\"} 1\n"));
  ck_assert_ptr_nonnull(strstr(s, "t_by_user_total{user=\"_overflow\"} 2\n"));
  ck_assert_ptr_null(strstr(s, "extra"));
  /* The overflow child comes last. */
  ck_assert(strstr(s, "_overflow") > strstr(s, "u1023"));
  free(s);
}
END_TEST

START_TEST(overflow_child_is_hidden_until_used_and_null_values_use_it) {
  const char *labels[] = {"k"};
  metrics_family *f = metrics_gauge("t_hidden_overflow", "H.", 1, labels);
  ck_assert_ptr_nonnull(f);
  char *s = metrics_render_family(f);
  ck_assert_str_eq(s, "# HELP t_hidden_overflow H.\n"
                      "# TYPE t_hidden_overflow gauge\n");
  free(s);
  metrics_set(metrics_child_get(f, NULL), 3);
  s = metrics_render_family(f);
  ck_assert_ptr_nonnull(strstr(s, "t_hidden_overflow{k=\"_overflow\"} 3\n"));
  free(s);
  /* A NULL single value is the empty string, not overflow. */
  metrics_child *e = metrics_child_get(f, (const char *[]){NULL});
  metrics_child *e2 = metrics_child_get(f, (const char *[]){""});
  ck_assert_ptr_eq(e, e2);
}
END_TEST

START_TEST(long_label_values_are_truncated) {
  const char *labels[] = {"k"};
  metrics_family *f = metrics_counter("t_long_total", "L.", 1, labels);
  char big[1000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  metrics_child *a = metrics_child_get(f, (const char *[]){big});
  big[900] = 'y'; /* differs only past the bound: the same child */
  ck_assert_ptr_eq(metrics_child_get(f, (const char *[]){big}), a);
  metrics_inc(a);
  char *s = metrics_render_family(f);
  char want[300] = "t_long_total{k=\"";
  size_t n = strlen(want);
  memset(want + n, 'x', 256);
  want[n + 256] = '\0';
  size_t m = strlen(want);
  snprintf(want + m, sizeof want - m, "\"} 1\n");
  ck_assert_ptr_nonnull(strstr(s, want));
  free(s);
}
END_TEST

struct race_arg {
  metrics_family *counter, *gauge, *hist;
  int iterations;
};

static void *race_worker(void *p) {
  struct race_arg *a = p;
  /* Look children up concurrently too: creation must be race-free. */
  metrics_child *c = metrics_child_get(a->counter, (const char *[]){"shared"});
  metrics_child *g = metrics_child_get(a->gauge, (const char *[]){"shared"});
  metrics_child *h = metrics_child_get(a->hist, NULL);
  for (int i = 0; i < a->iterations; i++) {
    metrics_inc(c);
    metrics_add(g, 0.5);
    metrics_observe(h, (i % 2) ? 0.5 : 2.0);
  }
  return c;
}

START_TEST(concurrent_updates_give_exact_totals) {
  const char *labels[] = {"k"};
  struct race_arg a = {
      .counter = metrics_counter("t_race_total", "R.", 1, labels),
      .gauge = metrics_gauge("t_race_gauge", "R.", 1, labels),
      .hist = metrics_histogram("t_race_seconds", "R.", 0, NULL,
                                (const double[]){1}, 1),
      .iterations = 100000,
  };
  ck_assert_ptr_nonnull(a.counter);
  ck_assert_ptr_nonnull(a.gauge);
  ck_assert_ptr_nonnull(a.hist);
  enum { NT = 8 };
  pthread_t t[NT];
  for (int i = 0; i < NT; i++)
    ck_assert_int_eq(pthread_create(&t[i], NULL, race_worker, &a), 0);
  void *first = NULL;
  for (int i = 0; i < NT; i++) {
    void *r;
    pthread_join(t[i], &r);
    if (i == 0) first = r;
    ck_assert_ptr_eq(r, first); /* every thread got the same child */
  }
  char *s = metrics_render();
  ck_assert_ptr_nonnull(strstr(s, "t_race_total{k=\"shared\"} 800000\n"));
  ck_assert_ptr_nonnull(strstr(s, "t_race_gauge{k=\"shared\"} 400000\n"));
  ck_assert_ptr_nonnull(strstr(s, "t_race_seconds_bucket{le=\"1\"} 400000\n"));
  ck_assert_ptr_nonnull(
      strstr(s, "t_race_seconds_bucket{le=\"+Inf\"} 800000\n"));
  ck_assert_ptr_nonnull(strstr(s, "t_race_seconds_sum 1000000\n"));
  ck_assert_ptr_nonnull(strstr(s, "t_race_seconds_count 800000\n"));
  free(s);
}
END_TEST

static void *create_worker(void *p) {
  (void)p;
  char v[16];
  for (int i = 0; i < 200; i++) {
    snprintf(v, sizeof v, "v%d", i);
    metrics_family *f =
        metrics_counter("t_create_race_total", "C.", 1, (const char *[]){"k"});
    metrics_inc(metrics_child_get(f, (const char *[]){v}));
  }
  return NULL;
}

START_TEST(concurrent_family_and_child_creation_is_safe) {
  enum { NT = 6 };
  pthread_t t[NT];
  for (int i = 0; i < NT; i++)
    ck_assert_int_eq(pthread_create(&t[i], NULL, create_worker, NULL), 0);
  for (int i = 0; i < NT; i++) pthread_join(t[i], NULL);
  metrics_family *f =
      metrics_counter("t_create_race_total", "C.", 1, (const char *[]){"k"});
  for (int i = 0; i < 200; i++) {
    char v[16];
    snprintf(v, sizeof v, "v%d", i);
    ck_assert(metrics_value(metrics_child_get(f, (const char *[]){v})) == NT);
  }
}
END_TEST

START_TEST(bad_names_and_labels_are_rejected) {
  ck_assert_ptr_null(metrics_counter(NULL, "x", 0, NULL));
  ck_assert_ptr_null(metrics_counter("", "x", 0, NULL));
  ck_assert_ptr_null(metrics_counter("1abc", "x", 0, NULL));
  ck_assert_ptr_null(metrics_counter("a-b", "x", 0, NULL));
  ck_assert_ptr_null(metrics_counter("a b", "x", 0, NULL));
  ck_assert_ptr_null(metrics_counter("a\"b", "x", 0, NULL));
  ck_assert_ptr_null(metrics_gauge("caf\xc3\xa9", "x", 0, NULL));
  ck_assert_ptr_nonnull(metrics_counter("ok:name_1", "x", 0, NULL));
  ck_assert_ptr_nonnull(metrics_counter("_Ok", "x", 0, NULL));
  /* labels */
  ck_assert_ptr_null(metrics_counter("t_l1", "x", 1, (const char *[]){"__x"}));
  ck_assert_ptr_null(metrics_counter("t_l2", "x", 1, (const char *[]){"1x"}));
  ck_assert_ptr_null(metrics_counter("t_l3", "x", 1, (const char *[]){"a:b"}));
  ck_assert_ptr_null(metrics_counter("t_l4", "x", 1, (const char *[]){""}));
  ck_assert_ptr_null(metrics_counter("t_l5", "x", 1, NULL));
  ck_assert_ptr_null(
      metrics_counter("t_l6", "x", 2, (const char *[]){"a", "a"}));
  ck_assert_ptr_null(metrics_counter(
      "t_l7", "x", METRICS_MAX_LABELS + 1,
      (const char *[]){"a", "b", "c", "d", "e", "f", "g", "h"}));
  ck_assert_ptr_nonnull(metrics_counter("t_l8", "x", METRICS_MAX_LABELS,
                                        (const char *[]){"a", "b", "c", "d"}));
  ck_assert_ptr_null(
      metrics_histogram("t_h1", "x", 1, (const char *[]){"le"}, NULL, 0));
  ck_assert_ptr_nonnull(
      metrics_counter("t_le_ok", "x", 1, (const char *[]){"le"}));
  /* buckets */
  ck_assert_ptr_null(
      metrics_histogram("t_h2", "x", 0, NULL, (const double[]){1, 1}, 2));
  ck_assert_ptr_null(
      metrics_histogram("t_h3", "x", 0, NULL, (const double[]){2, 1}, 2));
  ck_assert_ptr_null(
      metrics_histogram("t_h4", "x", 0, NULL, (const double[]){NAN}, 1));
  metrics_family *inf =
      metrics_histogram("t_h5", "x", 0, NULL, (const double[]){1, INFINITY}, 2);
  ck_assert_ptr_nonnull(inf);
  char *s = metrics_render_family(inf);
  ck_assert_ptr_nonnull(strstr(
      s, "t_h5_bucket{le=\"1\"} 0\nt_h5_bucket{le=\"+Inf\"} 0\nt_h5_sum"));
  free(s);
  /* Rejected names never appear in the output. */
  s = metrics_render();
  ck_assert_ptr_null(strstr(s, "t_l1"));
  ck_assert_ptr_null(strstr(s, "a-b"));
  free(s);
}
END_TEST

START_TEST(reregistering_returns_same_family_and_clashes_give_null) {
  const char *labels[] = {"a", "b"};
  metrics_family *f = metrics_counter("t_same_total", "S.", 2, labels);
  ck_assert_ptr_nonnull(f);
  ck_assert_ptr_eq(metrics_counter("t_same_total", "other help", 2, labels), f);
  ck_assert_ptr_null(metrics_gauge("t_same_total", "S.", 2, labels));
  ck_assert_ptr_null(
      metrics_histogram("t_same_total", "S.", 2, labels, NULL, 0));
  ck_assert_ptr_null(metrics_counter("t_same_total", "S.", 1, labels));
  ck_assert_ptr_null(
      metrics_counter("t_same_total", "S.", 2, (const char *[]){"b", "a"}));
  /* Only one copy is rendered, with the first help text. */
  char *s = metrics_render();
  const char *p = strstr(s, "# TYPE t_same_total counter");
  ck_assert_ptr_nonnull(p);
  ck_assert_ptr_null(strstr(p + 1, "# TYPE t_same_total"));
  ck_assert_ptr_nonnull(strstr(s, "# HELP t_same_total S.\n"));
  free(s);
}
END_TEST

START_TEST(updates_that_do_not_fit_the_kind_are_ignored) {
  metrics_child *c =
      metrics_child_get(metrics_counter("t_k_total", "K.", 0, NULL), NULL);
  metrics_child *g =
      metrics_child_get(metrics_gauge("t_k_gauge", "K.", 0, NULL), NULL);
  metrics_child *h = metrics_child_get(
      metrics_histogram("t_k_seconds", "K.", 0, NULL, NULL, 0), NULL);
  metrics_add(c, -1);
  metrics_add(c, NAN);
  metrics_set(c, 100);
  metrics_observe(c, 1);
  ck_assert(metrics_value(c) == 0);
  metrics_observe(g, 1);
  ck_assert(metrics_value(g) == 0);
  metrics_inc(h);
  metrics_add(h, 1);
  metrics_set(h, 1);
  ck_assert(metrics_value(h) == 0);
  /* NULL-safe */
  metrics_inc(NULL);
  metrics_add(NULL, 1);
  metrics_set(NULL, 1);
  metrics_observe(NULL, 1);
  ck_assert_ptr_null(metrics_child_get(NULL, NULL));
  ck_assert_ptr_null(metrics_render_family(NULL));
  ck_assert(metrics_value(NULL) == 0);
}
END_TEST

START_TEST(output_order_is_sorted_and_stable) {
  const char *labels[] = {"k"};
  metrics_family *z = metrics_counter("t_order_z", "Z.", 1, labels);
  metrics_family *a = metrics_counter("t_order_a", "A.", 1, labels);
  metrics_inc(metrics_child_get(z, (const char *[]){"b"}));
  metrics_inc(metrics_child_get(z, (const char *[]){"a"}));
  metrics_inc(metrics_child_get(z, (const char *[]){"c"}));
  metrics_inc(metrics_child_get(a, (const char *[]){"x"}));
  char *s1 = metrics_render();
  char *s2 = metrics_render();
  ck_assert_str_eq(s1, s2);
  ck_assert(strstr(s1, "# HELP t_order_a") < strstr(s1, "# HELP t_order_z"));
  ck_assert_ptr_nonnull(strstr(s1, "t_order_z{k=\"a\"} 1\n"
                                   "t_order_z{k=\"b\"} 1\n"
                                   "t_order_z{k=\"c\"} 1\n"));
  free(s1);
  free(s2);
}
END_TEST

START_TEST(values_use_the_shortest_exact_decimal) {
  metrics_child *g =
      metrics_child_get(metrics_gauge("t_fmt", "F.", 0, NULL), NULL);
  struct {
    double v;
    const char *want;
  } cases[] = {
      {0.1, "t_fmt 0.1\n"},
      {1e-4, "t_fmt 0.0001\n"},
      {123456789, "t_fmt 123456789\n"},
      {1e21, "t_fmt 1e+21\n"},
      {INFINITY, "t_fmt +Inf\n"},
      {-INFINITY, "t_fmt -Inf\n"},
      {NAN, "t_fmt NaN\n"},
      {1.0 / 3, "t_fmt 0.3333333333333333\n"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    metrics_set(g, cases[i].v);
    char *s = metrics_render();
    ck_assert_msg(strstr(s, cases[i].want) != NULL, "want %s in %s",
                  cases[i].want, s);
    free(s);
  }
}
END_TEST

START_TEST(process_metrics_report_memory_and_fds) {
  ck_assert_int_eq(metrics_register_process(), ERR_OK);
  ck_assert_int_eq(metrics_register_process(), ERR_OK);
  char *s = metrics_render();
  ck_assert_ptr_nonnull(
      strstr(s, "# TYPE process_resident_memory_bytes gauge\n"));
  const char *p = strstr(s, "\nprocess_resident_memory_bytes ");
  ck_assert_ptr_nonnull(p);
  ck_assert(strtod(p + strlen("\nprocess_resident_memory_bytes "), NULL) > 0);
  p = strstr(s, "\nprocess_open_fds ");
  ck_assert_ptr_nonnull(p);
  ck_assert(strtod(p + strlen("\nprocess_open_fds "), NULL) >= 3);
  p = strstr(s, "\nprocess_start_time_seconds ");
  ck_assert_ptr_nonnull(p);
  ck_assert(strtod(p + strlen("\nprocess_start_time_seconds "), NULL) > 1.5e9);
  free(s);
}
END_TEST

int main(void) {
  Suite *s = suite_create("metrics");
  TCase *tc = tcase_create("metrics");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, counter_with_labels_renders_exact_text);
  tcase_add_test(tc, gauge_without_labels_starts_at_zero_and_sets_adds);
  tcase_add_test(tc, histogram_renders_cumulative_buckets_sum_and_count);
  tcase_add_test(tc, histogram_default_buckets_span_100us_to_10s);
  tcase_add_test(tc, label_values_and_help_are_escaped);
  tcase_add_test(tc, children_past_the_limit_share_one_overflow_child);
  tcase_add_test(tc,
                 overflow_child_is_hidden_until_used_and_null_values_use_it);
  tcase_add_test(tc, long_label_values_are_truncated);
  tcase_add_test(tc, concurrent_updates_give_exact_totals);
  tcase_add_test(tc, concurrent_family_and_child_creation_is_safe);
  tcase_add_test(tc, bad_names_and_labels_are_rejected);
  tcase_add_test(tc, reregistering_returns_same_family_and_clashes_give_null);
  tcase_add_test(tc, updates_that_do_not_fit_the_kind_are_ignored);
  tcase_add_test(tc, output_order_is_sorted_and_stable);
  tcase_add_test(tc, values_use_the_shortest_exact_decimal);
  tcase_add_test(tc, process_metrics_report_memory_and_fds);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
