/* admin_test.c - the admin HTTP server over real HTTP on 127.0.0.1, with
 * libcurl as the client. */
#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "libs/base/timeutil.h"
#include "libs/obs/admin.h"
#include "libs/obs/metrics.h"

struct resp {
  long status;
  char body[65536];
  size_t len;
  char ctype[128];
  int curl_rc;
};

static size_t on_body(char *p, size_t sz, size_t n, void *ud) {
  struct resp *r = ud;
  size_t k = sz * n;
  size_t room = sizeof r->body - 1 - r->len;
  size_t c = k < room ? k : room;
  memcpy(r->body + r->len, p, c);
  r->len += c;
  r->body[r->len] = '\0';
  return k;
}

/* Performs method path on 127.0.0.1:port; fills r. */
static void http(int port, const char *method, const char *path,
                 struct resp *r) {
  memset(r, 0, sizeof *r);
  CURL *c = curl_easy_init();
  ck_assert_ptr_nonnull(c);
  char url[256];
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  if (strcmp(method, "HEAD") == 0)
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  else if (strcmp(method, "GET") != 0)
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  r->curl_rc = (int)curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
  char *ct = NULL;
  curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
  if (ct) snprintf(r->ctype, sizeof r->ctype, "%s", ct);
  curl_easy_cleanup(c);
}

static void get(int port, const char *path, struct resp *r) {
  http(port, "GET", path, r);
  ck_assert_msg(r->curl_rc == CURLE_OK, "curl: %s",
                curl_easy_strerror((CURLcode)r->curl_rc));
}

static admin *start_admin(int64_t timeout_ms) {
  admin *a = NULL;
  admin_options o = {
      .bind_addr = "127.0.0.1", .port = 0, .check_timeout_ms = timeout_ms};
  ck_assert_int_eq(admin_new(&o, &a), ERR_OK);
  ck_assert_int_eq(admin_port(a), -1);
  return a;
}

/* A check whose answer and call count the test controls. */
struct fake {
  atomic_int result;
  atomic_int calls;
  atomic_bool block; /* stay inside the check while true */
  atomic_bool inside;
};

static int fake_check(void *arg) {
  struct fake *f = arg;
  atomic_fetch_add(&f->calls, 1);
  atomic_store(&f->inside, true);
  while (atomic_load(&f->block)) time_sleep_ms(5);
  atomic_store(&f->inside, false);
  return atomic_load(&f->result);
}

START_TEST(healthz_answers_ok_and_head_works) {
  admin *a = start_admin(0);
  ck_assert_int_eq(admin_start(a), ERR_OK);
  int port = admin_port(a);
  ck_assert_int_gt(port, 0);
  struct resp r;
  get(port, "/healthz", &r);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(r.body, "ok");
  ck_assert_ptr_nonnull(strstr(r.ctype, "text/plain"));
  http(port, "HEAD", "/healthz", &r);
  ck_assert_int_eq(r.curl_rc, CURLE_OK);
  ck_assert_int_eq(r.status, 200);
  ck_assert_uint_eq(r.len, 0);
  admin_free(a);
}
END_TEST

START_TEST(unknown_paths_get_404_and_other_methods_405) {
  admin *a = start_admin(0);
  ck_assert_int_eq(admin_start(a), ERR_OK);
  struct resp r;
  get(admin_port(a), "/nope", &r);
  ck_assert_int_eq(r.status, 404);
  get(admin_port(a), "/healthzx", &r);
  ck_assert_int_eq(r.status, 404);
  get(admin_port(a), "/readyz/deeper", &r);
  ck_assert_int_eq(r.status, 404);
  http(admin_port(a), "POST", "/healthz", &r);
  ck_assert_int_eq(r.curl_rc, CURLE_OK);
  ck_assert_int_eq(r.status, 405);
  /* A query string does not change the route. */
  get(admin_port(a), "/healthz?verbose=1", &r);
  ck_assert_int_eq(r.status, 200);
  admin_free(a);
}
END_TEST

START_TEST(readyz_without_checks_is_ready) {
  admin *a = start_admin(0);
  ck_assert_int_eq(admin_start(a), ERR_OK);
  struct resp r;
  get(admin_port(a), "/readyz", &r);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(r.body, "{\"status\":\"ok\"}");
  ck_assert_ptr_nonnull(strstr(r.ctype, "application/json"));
  admin_free(a);
}
END_TEST

START_TEST(readyz_runs_checks_and_names_the_failing_ones) {
  struct fake pg = {0}, redis = {0}, peer = {0};
  admin *a = start_admin(0);
  ck_assert_int_eq(admin_add_check(a, "postgres", fake_check, &pg), ERR_OK);
  ck_assert_int_eq(admin_start(a), ERR_OK);
  /* Checks may also be added after start. */
  ck_assert_int_eq(admin_add_check(a, "redis", fake_check, &redis), ERR_OK);
  ck_assert_int_eq(admin_add_check(a, "orders-rpc", fake_check, &peer), ERR_OK);
  int port = admin_port(a);
  struct resp r;
  get(port, "/readyz", &r);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(r.body, "{\"status\":\"ok\"}");
  ck_assert_int_eq(atomic_load(&pg.calls), 1);
  ck_assert_int_eq(atomic_load(&redis.calls), 1);

  atomic_store(&pg.result, ERR_UNAVAILABLE);
  atomic_store(&peer.result, -1);
  get(port, "/readyz", &r);
  ck_assert_int_eq(r.status, 503);
  ck_assert_str_eq(r.body, "{\"status\":\"unavailable\","
                           "\"failing\":[\"postgres\",\"orders-rpc\"]}");
  ck_assert_int_eq(atomic_load(&pg.calls), 2);
  ck_assert_int_eq(atomic_load(&redis.calls), 2);

  atomic_store(&pg.result, 0);
  atomic_store(&peer.result, 0);
  get(port, "/readyz", &r);
  ck_assert_int_eq(r.status, 200);
  admin_free(a);
}
END_TEST

START_TEST(draining_makes_readyz_503_without_running_checks) {
  struct fake pg = {0};
  admin *a = start_admin(0);
  ck_assert_int_eq(admin_add_check(a, "postgres", fake_check, &pg), ERR_OK);
  ck_assert_int_eq(admin_start(a), ERR_OK);
  admin_set_draining(a);
  admin_set_draining(a);
  struct resp r;
  get(admin_port(a), "/readyz", &r);
  ck_assert_int_eq(r.status, 503);
  ck_assert_str_eq(r.body, "{\"status\":\"draining\",\"failing\":[]}");
  ck_assert_int_eq(atomic_load(&pg.calls), 0);
  /* Liveness is unaffected. */
  get(admin_port(a), "/healthz", &r);
  ck_assert_int_eq(r.status, 200);
  admin_free(a);
}
END_TEST

START_TEST(metrics_serves_prometheus_text) {
  metrics_family *f = metrics_counter("admin_test_hits_total", "Hits.", 1,
                                      (const char *[]){"path"});
  metrics_add(metrics_child_get(f, (const char *[]){"/x"}), 3);
  admin *a = start_admin(0);
  ck_assert_int_eq(admin_start(a), ERR_OK);
  struct resp r;
  get(admin_port(a), "/metrics", &r);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(r.ctype, "text/plain; version=0.0.4; charset=utf-8");
  ck_assert_ptr_nonnull(strstr(r.body,
                               "# TYPE admin_test_hits_total counter\n"
                               "admin_test_hits_total{path=\"/x\"} 3\n"));
  char *want = metrics_render();
  ck_assert_str_eq(r.body, want);
  free(want);
  admin_free(a);
}
END_TEST

START_TEST(a_stuck_check_times_out_and_is_not_duplicated) {
  struct fake slow = {0}, fast = {0};
  atomic_store(&slow.block, true);
  admin *a = start_admin(200);
  ck_assert_int_eq(admin_add_check(a, "fast", fake_check, &fast), ERR_OK);
  ck_assert_int_eq(admin_add_check(a, "slow", fake_check, &slow), ERR_OK);
  ck_assert_int_eq(admin_start(a), ERR_OK);
  struct resp r;
  get(admin_port(a), "/readyz", &r);
  ck_assert_int_eq(r.status, 503);
  ck_assert_str_eq(r.body, "{\"status\":\"unavailable\",\"failing\":[\"slow\"],"
                           "\"timed_out\":[\"slow\"]}");
  /* While the check is stuck, probes are answered at once, and no second
   * copy of the checks starts. */
  int64_t t0 = time_mono_ms();
  get(admin_port(a), "/readyz", &r);
  ck_assert_int_lt(time_mono_ms() - t0, 10000);
  ck_assert_int_eq(r.status, 503);
  ck_assert_ptr_nonnull(strstr(r.body, "\"timed_out\":[\"slow\"]"));
  ck_assert_int_eq(atomic_load(&slow.calls), 1);
  ck_assert_int_eq(atomic_load(&fast.calls), 1);
  /* Once it returns, the next probe runs the checks afresh. */
  atomic_store(&slow.block, false);
  while (atomic_load(&slow.inside)) time_sleep_ms(5);
  time_sleep_ms(20);
  get(admin_port(a), "/readyz", &r);
  ck_assert_int_eq(r.status, 200);
  ck_assert_int_eq(atomic_load(&slow.calls), 2);
  admin_free(a);
}
END_TEST

struct prober {
  int port;
  long status;
};

static void *probe(void *p) {
  struct prober *pr = p;
  struct resp *r = malloc(sizeof *r);
  http(pr->port, "GET", "/readyz", r);
  pr->status = r->curl_rc == CURLE_OK ? r->status : -1;
  free(r);
  return NULL;
}

static int slowish_check(void *arg) {
  atomic_fetch_add((atomic_int *)arg, 1);
  time_sleep_ms(50);
  return 0;
}

START_TEST(concurrent_probes_all_get_answers) {
  atomic_int calls = 0;
  admin *a = start_admin(5000);
  ck_assert_int_eq(admin_add_check(a, "db", slowish_check, &calls), ERR_OK);
  ck_assert_int_eq(admin_start(a), ERR_OK);
  enum { N = 8 };
  pthread_t t[N];
  struct prober pr[N];
  for (int i = 0; i < N; i++) {
    pr[i].port = admin_port(a);
    ck_assert_int_eq(pthread_create(&t[i], NULL, probe, &pr[i]), 0);
  }
  for (int i = 0; i < N; i++) {
    pthread_join(t[i], NULL);
    ck_assert_int_eq(pr[i].status, 200);
  }
  ck_assert_int_ge(atomic_load(&calls), 1);
  ck_assert_int_le(atomic_load(&calls), N);
  admin_free(a);
}
END_TEST

static void *unblock_later(void *p) {
  time_sleep_ms(200);
  atomic_store(&((struct fake *)p)->block, false);
  return NULL;
}

START_TEST(free_waits_for_a_running_check) {
  struct fake slow = {0};
  atomic_store(&slow.block, true);
  admin *a = start_admin(100);
  ck_assert_int_eq(admin_add_check(a, "slow", fake_check, &slow), ERR_OK);
  ck_assert_int_eq(admin_start(a), ERR_OK);
  struct resp r;
  get(admin_port(a), "/readyz", &r);
  ck_assert_int_eq(r.status, 503);
  ck_assert(atomic_load(&slow.inside));
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, unblock_later, &slow), 0);
  admin_free(a);
  /* The check's arg may be freed now: the check must have returned. */
  ck_assert(!atomic_load(&slow.inside));
  pthread_join(t, NULL);
}
END_TEST

static int ok_check(void *arg) {
  (void)arg;
  return 0;
}

START_TEST(check_registration_is_validated) {
  admin *a = start_admin(0);
  ck_assert_int_eq(admin_add_check(a, "postgres", ok_check, NULL), ERR_OK);
  ck_assert_int_eq(admin_add_check(a, "postgres", ok_check, NULL), ERR_EXISTS);
  ck_assert_int_eq(admin_add_check(a, "", ok_check, NULL), ERR_INVAL);
  ck_assert_int_eq(admin_add_check(a, "a b", ok_check, NULL), ERR_INVAL);
  ck_assert_int_eq(admin_add_check(a, "q\"uote", ok_check, NULL), ERR_INVAL);
  ck_assert_int_eq(admin_add_check(a, NULL, ok_check, NULL), ERR_INVAL);
  ck_assert_int_eq(admin_add_check(a, "x", NULL, NULL), ERR_INVAL);
  ck_assert_int_eq(admin_add_check(NULL, "x", ok_check, NULL), ERR_INVAL);
  char longname[ADMIN_MAX_CHECK_NAME + 1];
  memset(longname, 'n', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  ck_assert_int_eq(admin_add_check(a, longname, ok_check, NULL), ERR_INVAL);
  for (int i = 1; i < ADMIN_MAX_CHECKS; i++) {
    char n[16];
    snprintf(n, sizeof n, "c%d", i);
    ck_assert_int_eq(admin_add_check(a, n, ok_check, NULL), ERR_OK);
  }
  ck_assert_int_eq(admin_add_check(a, "onemore", ok_check, NULL), ERR_TOOBIG);
  admin_free(a);
  admin_free(NULL);
  admin_set_draining(NULL);
  ck_assert_int_eq(admin_port(NULL), -1);
}
END_TEST

START_TEST(bad_options_and_busy_ports_are_errors) {
  admin *a = (admin *)1;
  ck_assert_int_eq(admin_new(&(admin_options){.port = 70000}, &a), ERR_INVAL);
  ck_assert_ptr_null(a);
  ck_assert_int_eq(admin_new(&(admin_options){.port = -1}, &a), ERR_INVAL);
  ck_assert_int_eq(admin_new(NULL, NULL), ERR_INVAL);

  ck_assert_int_eq(admin_new(&(admin_options){.bind_addr = "127.0.0.1/x"}, &a),
                   ERR_OK);
  ck_assert_int_eq(admin_start(a), ERR_INVAL);
  admin_free(a);

  /* A port some other socket holds. */
  int s = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(s, 0);
  struct sockaddr_in sin = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  ck_assert_int_eq(bind(s, (struct sockaddr *)&sin, sizeof sin), 0);
  ck_assert_int_eq(listen(s, 1), 0);
  socklen_t sl = sizeof sin;
  ck_assert_int_eq(getsockname(s, (struct sockaddr *)&sin, &sl), 0);
  int busy = ntohs(sin.sin_port);
  ck_assert_int_eq(
      admin_new(&(admin_options){.bind_addr = "127.0.0.1", .port = busy}, &a),
      ERR_OK);
  ck_assert_int_eq(admin_start(a), ERR_EXISTS);
  ck_assert_int_eq(admin_port(a), -1);
  admin_free(a);
  close(s);

  /* Starting twice is refused; the first start keeps serving. */
  a = start_admin(0);
  ck_assert_int_eq(admin_start(a), ERR_OK);
  ck_assert_int_eq(admin_start(a), ERR_INVAL);
  struct resp r;
  get(admin_port(a), "/healthz", &r);
  ck_assert_int_eq(r.status, 200);
  admin_free(a);
}
END_TEST

START_TEST(server_stops_listening_after_free) {
  admin *a = start_admin(0);
  ck_assert_int_eq(admin_start(a), ERR_OK);
  int port = admin_port(a);
  admin_free(a);
  struct resp r;
  http(port, "GET", "/healthz", &r);
  ck_assert_int_ne(r.curl_rc, CURLE_OK);
}
END_TEST

int main(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  Suite *s = suite_create("admin");
  TCase *tc = tcase_create("admin");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, healthz_answers_ok_and_head_works);
  tcase_add_test(tc, unknown_paths_get_404_and_other_methods_405);
  tcase_add_test(tc, readyz_without_checks_is_ready);
  tcase_add_test(tc, readyz_runs_checks_and_names_the_failing_ones);
  tcase_add_test(tc, draining_makes_readyz_503_without_running_checks);
  tcase_add_test(tc, metrics_serves_prometheus_text);
  tcase_add_test(tc, a_stuck_check_times_out_and_is_not_duplicated);
  tcase_add_test(tc, concurrent_probes_all_get_answers);
  tcase_add_test(tc, free_waits_for_a_running_check);
  tcase_add_test(tc, check_registration_is_validated);
  tcase_add_test(tc, bad_options_and_busy_ports_are_errors);
  tcase_add_test(tc, server_stops_listening_after_free);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  curl_global_cleanup();
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
