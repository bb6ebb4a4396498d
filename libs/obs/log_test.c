/* log_test.c - unit tests for JSON logging. stdout is redirected to a
 * temporary file around each logging call and read back line by line. */
#include <check.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libs/base/timeutil.h"
#include "libs/obs/log.h"

static FILE *cap_file;
static int saved_stdout = -1;

static void capture_start(void) {
  cap_file = tmpfile();
  ck_assert_ptr_nonnull(cap_file);
  fflush(stdout);
  saved_stdout = dup(STDOUT_FILENO);
  ck_assert_int_ge(saved_stdout, 0);
  ck_assert_int_ge(dup2(fileno(cap_file), STDOUT_FILENO), 0);
}

/* Restores stdout and returns everything logged since capture_start
 * (caller frees). */
static char *capture_end(void) {
  ck_assert_int_ge(dup2(saved_stdout, STDOUT_FILENO), 0);
  close(saved_stdout);
  /* The log writes go through the fd, not the FILE: ask the fd. */
  off_t end = lseek(fileno(cap_file), 0, SEEK_END);
  ck_assert_int_ge(end, 0);
  char *buf = malloc((size_t)end + 1);
  ck_assert_ptr_nonnull(buf);
  ck_assert_int_eq(pread(fileno(cap_file), buf, (size_t)end, 0), end);
  buf[end] = '\0';
  fclose(cap_file);
  return buf;
}

static int count_lines(const char *s) {
  int n = 0;
  for (; *s; s++) n += *s == '\n';
  return n;
}

/* Parses the idx-th line (0-based) of out as a JSON object. */
static json_t *line_json(const char *out, int idx) {
  const char *p = out;
  for (int i = 0; i < idx; i++) {
    p = strchr(p, '\n');
    ck_assert_ptr_nonnull(p);
    p++;
  }
  const char *e = strchr(p, '\n');
  ck_assert_ptr_nonnull(e);
  json_error_t err;
  json_t *j = json_loadb(p, (size_t)(e - p), 0, &err);
  ck_assert_msg(j != NULL, "line %d is not JSON (%s): %.*s", idx, err.text,
                (int)(e - p), p);
  ck_assert(json_is_object(j));
  return j;
}

static const char *jstr(json_t *j, const char *key) {
  json_t *v = json_object_get(j, key);
  return json_is_string(v) ? json_string_value(v) : NULL;
}

START_TEST(line_is_compact_json_with_standard_fields_first) {
  log_init("orders", LOG_DEBUG);
  int64_t before = time_now_ms();
  capture_start();
  log_info("call finished", "method", "Orders.Create", "code", "OK");
  char *out = capture_end();
  int64_t after = time_now_ms();
  ck_assert_int_eq(count_lines(out), 1);
  ck_assert_msg(strncmp(out, "{\"ts\":\"", 7) == 0, "got %s", out);
  ck_assert_ptr_nonnull(strstr(out, "\",\"level\":\"info\",\"svc\":\"orders\","
                                    "\"msg\":\"call finished\","
                                    "\"method\":\"Orders.Create\","
                                    "\"code\":\"OK\"}\n"));
  json_t *j = line_json(out, 0);
  const char *ts = jstr(j, "ts");
  ck_assert_ptr_nonnull(ts);
  ck_assert_uint_eq(strlen(ts), RFC3339_MS_LEN);
  int64_t ms;
  ck_assert_int_eq(time_parse_rfc3339(ts, strlen(ts), &ms), ERR_OK);
  ck_assert_int_ge(ms, before);
  ck_assert_int_le(ms, after);
  ck_assert_ptr_null(json_object_get(j, "request_id"));
  json_decref(j);
  free(out);
}
END_TEST

START_TEST(defaults_before_init_are_dash_service_and_info_level) {
  capture_start();
  log_debug("hidden");
  log_info("shown");
  char *out = capture_end();
  ck_assert_int_eq(count_lines(out), 1);
  json_t *j = line_json(out, 0);
  ck_assert_str_eq(jstr(j, "svc"), "-");
  ck_assert_str_eq(jstr(j, "msg"), "shown");
  json_decref(j);
  free(out);
}
END_TEST

START_TEST(lines_below_the_level_are_dropped) {
  log_init("svc", LOG_WARN);
  capture_start();
  log_debug("d");
  log_info("i");
  log_warn("w");
  log_error("e", "k", "v");
  char *out = capture_end();
  ck_assert_int_eq(count_lines(out), 2);
  json_t *a = line_json(out, 0), *b = line_json(out, 1);
  ck_assert_str_eq(jstr(a, "level"), "warn");
  ck_assert_str_eq(jstr(a, "msg"), "w");
  ck_assert_str_eq(jstr(b, "level"), "error");
  ck_assert_str_eq(jstr(b, "k"), "v");
  json_decref(a);
  json_decref(b);
  free(out);
  log_init("svc", LOG_DEBUG);
  capture_start();
  log_debug("d");
  out = capture_end();
  ck_assert_int_eq(count_lines(out), 1);
  free(out);
}
END_TEST

START_TEST(level_names_parse_case_insensitively) {
  ck_assert_int_eq(log_level_parse("debug"), LOG_DEBUG);
  ck_assert_int_eq(log_level_parse("INFO"), LOG_INFO);
  ck_assert_int_eq(log_level_parse("Warn"), LOG_WARN);
  ck_assert_int_eq(log_level_parse("error"), LOG_ERROR);
  ck_assert_int_eq(log_level_parse("warning"), -1);
  ck_assert_int_eq(log_level_parse(""), -1);
  ck_assert_int_eq(log_level_parse("info "), -1);
  ck_assert_int_eq(log_level_parse(NULL), -1);
}
END_TEST

static void *thread_logs_with_own_id(void *arg) {
  (void)arg;
  if (log_request_id() != NULL)
    return (void *)1; /* not inherited from the main thread */
  log_set_request_id("req-thread");
  log_info("from thread");
  return NULL;
}

START_TEST(request_id_is_per_thread) {
  log_init("svc", LOG_INFO);
  capture_start();
  log_set_request_id("req-main");
  log_info("first");
  pthread_t t;
  void *r;
  ck_assert_int_eq(pthread_create(&t, NULL, thread_logs_with_own_id, NULL), 0);
  pthread_join(t, &r);
  log_info("second");
  log_set_request_id(NULL);
  log_info("third");
  char *out = capture_end();
  ck_assert_ptr_null(r);
  ck_assert_int_eq(count_lines(out), 4);
  json_t *j0 = line_json(out, 0), *j1 = line_json(out, 1),
         *j2 = line_json(out, 2), *j3 = line_json(out, 3);
  ck_assert_str_eq(jstr(j0, "request_id"), "req-main");
  ck_assert_str_eq(jstr(j1, "request_id"), "req-thread");
  ck_assert_str_eq(jstr(j2, "request_id"), "req-main");
  ck_assert_ptr_null(json_object_get(j3, "request_id"));
  ck_assert_ptr_null(log_request_id());
  json_decref(j0);
  json_decref(j1);
  json_decref(j2);
  json_decref(j3);
  free(out);
}
END_TEST

START_TEST(request_id_is_copied_and_bounded) {
  char id[300];
  memset(id, 'r', sizeof id - 1);
  id[sizeof id - 1] = '\0';
  log_set_request_id(id);
  id[0] = 'X'; /* the stored copy must not change */
  const char *got = log_request_id();
  ck_assert_ptr_nonnull(got);
  ck_assert_uint_eq(strlen(got), 128);
  ck_assert_int_eq(got[0], 'r');
}
END_TEST

START_TEST(values_with_quotes_newlines_and_control_chars_stay_one_line) {
  log_init("svc", LOG_INFO);
  const char *nasty = "a \"quoted\" \\ back\nnew\r\tline\x01\x1f end";
  capture_start();
  log_info("multi\nline \"msg\"", "v", nasty, "key \"q\"\n", "x");
  char *out = capture_end();
  ck_assert_int_eq(count_lines(out), 1);
  ck_assert_ptr_nonnull(strstr(out, "\\u0001"));
  ck_assert_ptr_nonnull(strstr(out, "\\n"));
  json_t *j = line_json(out, 0);
  ck_assert_str_eq(jstr(j, "msg"), "multi\nline \"msg\"");
  ck_assert_str_eq(jstr(j, "v"), nasty);
  ck_assert_str_eq(jstr(j, "key \"q\"\n"), "x");
  json_decref(j);
  free(out);
}
END_TEST

START_TEST(invalid_utf8_is_replaced_not_dropped) {
  log_init("svc", LOG_INFO);
  capture_start();
  log_info("m", "bad", "ok\xff\xc3(\xed\xa0\x80z", "good",
           "caf\xc3\xa9 \xe2\x82\xac");
  char *out = capture_end();
  ck_assert_int_eq(count_lines(out), 1);
  json_t *j = line_json(out, 0);
  ck_assert_str_eq(jstr(j, "bad"),
                   "ok\xef\xbf\xbd\xef\xbf\xbd(\xef\xbf\xbd\xef\xbf\xbd\xef"
                   "\xbf\xbdz");
  ck_assert_str_eq(jstr(j, "good"), "caf\xc3\xa9 \xe2\x82\xac");
  json_decref(j);
  free(out);
}
END_TEST

START_TEST(long_values_are_truncated) {
  log_init("svc", LOG_INFO);
  size_t n = 100000;
  char *big = malloc(n + 1);
  memset(big, 'b', n);
  big[n] = '\0';
  capture_start();
  log_info("big", "v", big);
  char *out = capture_end();
  ck_assert_int_eq(count_lines(out), 1);
  json_t *j = line_json(out, 0);
  ck_assert_uint_eq(strlen(jstr(j, "v")), 4096);
  json_decref(j);
  free(out);
  free(big);
}
END_TEST

START_TEST(null_value_ends_the_fields_and_reserved_keys_are_prefixed) {
  log_init("svc", LOG_INFO);
  capture_start();
  log_info("m", "msg", "spoof", "level", "x", "a", "1", "a", "2");
  log_info("m", "k", (const char *)NULL, "after", "never");
  char *out = capture_end();
  ck_assert_int_eq(count_lines(out), 2);
  json_t *j = line_json(out, 0);
  ck_assert_str_eq(jstr(j, "msg"), "m");
  ck_assert_str_eq(jstr(j, "_msg"), "spoof");
  ck_assert_str_eq(jstr(j, "level"), "info");
  ck_assert_str_eq(jstr(j, "_level"), "x");
  ck_assert_str_eq(jstr(j, "a"), "1");
  ck_assert_str_eq(jstr(j, "_a"), "2");
  json_decref(j);
  j = line_json(out, 1);
  ck_assert(json_is_null(json_object_get(j, "k")));
  ck_assert_ptr_null(json_object_get(j, "after"));
  json_decref(j);
  free(out);
}
END_TEST

static void *spam(void *arg) {
  char v[600];
  memset(v, 'a' + (int)(long)arg, sizeof v - 1);
  v[sizeof v - 1] = '\0';
  for (int i = 0; i < 500; i++) log_info("spam", "v", v);
  return NULL;
}

START_TEST(concurrent_lines_never_interleave) {
  log_init("svc", LOG_INFO);
  capture_start();
  enum { NT = 4 };
  pthread_t t[NT];
  for (long i = 0; i < NT; i++)
    ck_assert_int_eq(pthread_create(&t[i], NULL, spam, (void *)i), 0);
  for (int i = 0; i < NT; i++) pthread_join(t[i], NULL);
  char *out = capture_end();
  ck_assert_int_eq(count_lines(out), NT * 500);
  const char *p = out;
  for (int i = 0; i < NT * 500; i++) {
    json_t *j = line_json(p, 0);
    p = strchr(p, '\n') + 1;
    const char *v = jstr(j, "v");
    ck_assert_uint_eq(strlen(v), 599);
    char only[2] = {v[0], '\0'};
    ck_assert_uint_eq(strspn(v, only), 599);
    json_decref(j);
  }
  free(out);
}
END_TEST

int main(void) {
  Suite *s = suite_create("log");
  TCase *tc = tcase_create("log");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, line_is_compact_json_with_standard_fields_first);
  tcase_add_test(tc, defaults_before_init_are_dash_service_and_info_level);
  tcase_add_test(tc, lines_below_the_level_are_dropped);
  tcase_add_test(tc, level_names_parse_case_insensitively);
  tcase_add_test(tc, request_id_is_per_thread);
  tcase_add_test(tc, request_id_is_copied_and_bounded);
  tcase_add_test(tc,
                 values_with_quotes_newlines_and_control_chars_stay_one_line);
  tcase_add_test(tc, invalid_utf8_is_replaced_not_dropped);
  tcase_add_test(tc, long_values_are_truncated);
  tcase_add_test(tc, null_value_ends_the_fields_and_reserved_keys_are_prefixed);
  tcase_add_test(tc, concurrent_lines_never_interleave);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
