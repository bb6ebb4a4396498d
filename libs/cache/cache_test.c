/*
 * cache_test.c - libs/cache logic that needs no server: URL parsing,
 * SHA-1 (known answers), error-reply mapping, reply helpers (on replies
 * built by hand; cache_reply is a redisReply inside), configuration, and a
 * Redis that is not there. Everything against a real Redis is in
 * tests/cache/cache_itest.c.
 */
#include <arpa/inet.h>
#include <check.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "libs/base/timeutil.h"
#include "libs/cache/cache.h"
#include "libs/cache/cache_internal.h"

START_TEST(urls_parse_into_host_port_db_password) {
  cache_url u;
  ck_assert_int_eq(cache_parse_url("redis://127.0.0.1:6380", &u), ERR_OK);
  ck_assert_str_eq(u.host, "127.0.0.1");
  ck_assert_int_eq(u.port, 6380);
  ck_assert_int_eq(u.db, 0);
  ck_assert_str_eq(u.password, "");
  ck_assert_int_eq(cache_parse_url("redis://redis.svc", &u), ERR_OK);
  ck_assert_str_eq(u.host, "redis.svc");
  ck_assert_int_eq(u.port, 6379);
  ck_assert_int_eq(cache_parse_url("redis://:s3cr@t@h:1/2", &u), ERR_OK);
  ck_assert_str_eq(u.password, "s3cr@t");
  ck_assert_str_eq(u.host, "h");
  ck_assert_int_eq(u.port, 1);
  ck_assert_int_eq(u.db, 2);
  ck_assert_str_eq(u.user, "");
  ck_assert_int_eq(cache_parse_url("redis://user:pw@h/", &u), ERR_OK);
  ck_assert_str_eq(u.user, "user");
  ck_assert_str_eq(u.password, "pw");
  ck_assert_int_eq(u.db, 0);
  ck_assert(!u.tls);
  ck_assert_int_eq(cache_parse_url("rediss://app:p@ss@h:6380/1", &u), ERR_OK);
  ck_assert(u.tls);
  ck_assert_str_eq(u.user, "app");
  ck_assert_str_eq(u.password, "p@ss");
  ck_assert_int_eq(u.port, 6380);
  ck_assert_int_eq(cache_parse_url("redis://[::1]:7000/3", &u), ERR_OK);
  ck_assert_str_eq(u.host, "::1");
  ck_assert_int_eq(u.port, 7000);
  ck_assert_int_eq(u.db, 3);
}
END_TEST

START_TEST(bad_urls_are_rejected) {
  cache_url u;
  const char *bad[] = {
      "http://h:1",     "redis://",
      "redis://h:0",    "redis://h:65536",
      "redis://h:abc",  "redis://h:",
      "redis://h/x",    "redis://user@h",
      "redis://[::1",   "redis://:@h",
      "redis://h:1x",   "redis://h/99999999999",
      "localhost:6379", "",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(cache_parse_url(bad[i], &u) == ERR_INVAL, "accepted %s",
                  bad[i]);
  ck_assert_int_eq(cache_parse_url(NULL, &u), ERR_INVAL);
  char longhost[400] = "redis://";
  memset(longhost + 8, 'h', 300);
  longhost[308] = '\0';
  ck_assert_int_eq(cache_parse_url(longhost, &u), ERR_INVAL);
}
END_TEST

START_TEST(sha1_matches_known_answers) {
  static const struct {
    size_t n;
    const char *hex;
  } v[] = {
      {0, "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
      {55, "c1c8bbdc22796e28c0e15163d20899b65621d65a"},
      {56, "c2db330f6083854c99d4b5bfb6e8f29f201be699"},
      {64, "0098ba824b5c16427bd7a1122a5a442a25ec644d"},
      {1000, "291e9a6c66994949b57ba5e650361e98fc36b1ba"},
  };
  char a[1000];
  memset(a, 'a', sizeof a);
  char out[41];
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    cache_sha1_hex(a, v[i].n, out);
    ck_assert_str_eq(out, v[i].hex);
  }
  cache_sha1_hex("abc", 3, out);
  ck_assert_str_eq(out, "a9993e364706816aba3e25717850c26c9cd0d89d");

  cache_script *s = NULL;
  ck_assert_int_eq(cache_script_new("return 1", &s), ERR_OK);
  ck_assert_str_eq(cache_script_sha(s),
                   "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
  cache_script_free(s);
  ck_assert_int_eq(cache_script_new("", &s), ERR_INVAL);
  ck_assert_int_eq(cache_script_new(NULL, &s), ERR_INVAL);
  cache_script_free(NULL);
}
END_TEST

START_TEST(error_replies_map_to_codes) {
  const char *m;
  m = "LOADING Redis is loading the dataset in memory";
  ck_assert_int_eq(cache_err_from_reply(m, strlen(m)), ERR_UNAVAILABLE);
  m = "BUSY Redis is busy running a script";
  ck_assert_int_eq(cache_err_from_reply(m, strlen(m)), ERR_UNAVAILABLE);
  m = "READONLY You can't write against a read only replica.";
  ck_assert_int_eq(cache_err_from_reply(m, strlen(m)), ERR_UNAVAILABLE);
  m = "MASTERDOWN";
  ck_assert_int_eq(cache_err_from_reply(m, strlen(m)), ERR_UNAVAILABLE);
  m = "BUSYKEY Target key name already exists.";
  ck_assert_int_eq(cache_err_from_reply(m, strlen(m)), ERR_DB);
  m = "WRONGTYPE Operation against a key holding the wrong kind of value";
  ck_assert_int_eq(cache_err_from_reply(m, strlen(m)), ERR_DB);
  m = "NOSCRIPT No matching script.";
  ck_assert_int_eq(cache_err_from_reply(m, strlen(m)), ERR_DB);
  ck_assert_int_eq(cache_err_from_reply("", 0), ERR_DB);
}
END_TEST

static redisReply *mk(int type) {
  redisReply *r = calloc(1, sizeof *r);
  r->type = type;
  return r;
}

static redisReply *mk_str(int type, const char *s) {
  redisReply *r = mk(type);
  r->str = strdup(s);
  r->len = strlen(s);
  return r;
}

START_TEST(reply_helpers_read_ints_strings_arrays) {
  redisReply *arr = mk(REDIS_REPLY_ARRAY);
  arr->elements = 5;
  arr->element = calloc(5, sizeof *arr->element);
  arr->element[0] = mk(REDIS_REPLY_INTEGER);
  arr->element[0]->integer = -7;
  arr->element[1] = mk_str(REDIS_REPLY_STRING, "42");
  arr->element[2] = mk_str(REDIS_REPLY_STRING, "4x2");
  arr->element[3] = mk(REDIS_REPLY_NIL);
  arr->element[4] = mk_str(REDIS_REPLY_ERROR, "ERR nested");
  cache_reply *r = (cache_reply *)arr;

  ck_assert_int_eq(cache_reply_type(r), CACHE_REPLY_ARRAY);
  ck_assert_uint_eq(cache_reply_len(r), 5);
  int64_t v = 0;
  ck_assert_int_eq(cache_reply_int_at(r, 0, &v), ERR_OK);
  ck_assert_int_eq(v, -7);
  ck_assert_int_eq(cache_reply_int_at(r, 1, &v), ERR_OK);
  ck_assert_int_eq(v, 42);
  ck_assert_int_eq(cache_reply_int_at(r, 2, &v), ERR_INVAL);
  ck_assert_int_eq(cache_reply_int_at(r, 3, &v), ERR_INVAL);
  ck_assert_int_eq(cache_reply_int_at(r, 5, &v), ERR_INVAL); /* out of range */
  ck_assert_int_eq(cache_reply_int(r, &v), ERR_INVAL);       /* an array */
  ck_assert_ptr_null(cache_reply_at(r, 5));
  ck_assert_int_eq(cache_reply_type(cache_reply_at(r, 3)), CACHE_REPLY_NIL);
  ck_assert_int_eq(cache_reply_type(cache_reply_at(r, 4)), CACHE_REPLY_ERROR);
  const char *s = NULL;
  size_t len = 0;
  ck_assert_int_eq(cache_reply_str(cache_reply_at(r, 1), &s, &len), ERR_OK);
  ck_assert_uint_eq(len, 2);
  ck_assert_int_eq(memcmp(s, "42", 2), 0);
  ck_assert_int_eq(cache_reply_str(cache_reply_at(r, 0), &s, &len), ERR_INVAL);
  ck_assert_uint_eq(cache_reply_len(cache_reply_at(r, 0)), 0);
  cache_reply_free(r);
  cache_reply_free(NULL);
  ck_assert_int_eq(cache_reply_type(NULL), CACHE_REPLY_NIL);
}
END_TEST

START_TEST(config_is_validated) {
  cache *c = (cache *)1;
  ck_assert_int_eq(cache_new(NULL, &c), ERR_INVAL);
  ck_assert_ptr_null(c);
  cache_config cfg = {.url = "nope"};
  ck_assert_int_eq(cache_new(&cfg, &c), ERR_INVAL);
  cfg.url = "redis://127.0.0.1:1";
  cfg.command_timeout_ms = -1;
  ck_assert_int_eq(cache_new(&cfg, &c), ERR_INVAL);
  cfg.command_timeout_ms = 0;
  ck_assert_int_eq(cache_new(&cfg, &c), ERR_OK);
  cache_stats st;
  cache_get_stats(c, &st);
  ck_assert_int_eq(st.open, 0); /* lazy */
  cache_free(c);
  cache_free(NULL);
}
END_TEST

START_TEST(tls_urls_are_refused_with_a_clear_error) {
  cache_config cfg = {.url = "rediss://:hunter2@redis.example:6380"};
  cache *c = NULL;
  ck_assert_int_eq(cache_new(&cfg, &c), ERR_INVAL);
  ck_assert_ptr_null(c);
  const char *m = cache_last_error()->message;
  ck_assert_msg(strstr(m, "rediss://") != NULL && strstr(m, "TLS") != NULL &&
                    strstr(m, "stunnel") != NULL,
                "unclear: %s", m);
  ck_assert_ptr_null(strstr(m, "hunter2"));
}
END_TEST

static int closed_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
  close(fd);
  return ntohs(sa.sin_port);
}

START_TEST(missing_redis_is_unavailable_quickly) {
  char url[96];
  snprintf(url, sizeof url, "redis://:hunter2@127.0.0.1:%d", closed_port());
  cache_config cfg = {.url = url, .max_conns = 1, .max_value_bytes = 4};
  cache *c = NULL;
  ck_assert_int_eq(cache_new(&cfg, &c), ERR_OK);
  int64_t t0 = time_mono_ms();
  char *val = NULL;
  size_t len = 0;
  ck_assert_int_eq(cache_get(c, "k", &val, &len), ERR_UNAVAILABLE);
  ck_assert_ptr_null(val);
  ck_assert_int_eq(cache_set(c, "k", "v", 1, 0), ERR_UNAVAILABLE);
  ck_assert_int_eq(cache_ping(c), ERR_UNAVAILABLE);
  ck_assert_int_lt(time_mono_ms() - t0, 5000);
  ck_assert_int_eq(cache_last_error()->code, ERR_UNAVAILABLE);
  ck_assert(cache_last_error()->message[0] != '\0');
  ck_assert_ptr_null(strstr(cache_last_error()->message, "hunter2"));
  cache_stats st;
  cache_get_stats(c, &st);
  ck_assert_int_eq(st.in_use, 0);
  /* Argument checks happen before any network traffic. */
  ck_assert_int_eq(cache_set(c, "k", "12345", 5, 0), ERR_TOOBIG);
  ck_assert_int_eq(cache_set(c, "k", "1", 1, -5), ERR_INVAL);
  ck_assert_int_eq(cache_set(c, NULL, "1", 1, 0), ERR_INVAL);
  cache_script *s = NULL;
  ck_assert_int_eq(cache_script_new("return 1", &s), ERR_OK);
  cache_reply *r = NULL;
  ck_assert_int_eq(cache_eval(c, s, 1, NULL, 0, NULL, &r), ERR_INVAL);
  ck_assert_int_eq(cache_eval(c, s, -1, NULL, 0, NULL, &r), ERR_INVAL);
  ck_assert_int_eq(cache_eval(c, s, 0, NULL, 0, NULL, &r), ERR_UNAVAILABLE);
  ck_assert_int_eq(cache_command(c, true, 0, NULL, NULL, NULL), ERR_INVAL);
  cache_script_free(s);
  cache_free(c);
}
END_TEST

int main(void) {
  Suite *s = suite_create("cache");
  TCase *tc = tcase_create("logic");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, urls_parse_into_host_port_db_password);
  tcase_add_test(tc, bad_urls_are_rejected);
  tcase_add_test(tc, tls_urls_are_refused_with_a_clear_error);
  tcase_add_test(tc, sha1_matches_known_answers);
  tcase_add_test(tc, error_replies_map_to_codes);
  tcase_add_test(tc, reply_helpers_read_ints_strings_arrays);
  tcase_add_test(tc, config_is_validated);
  tcase_add_test(tc, missing_redis_is_unavailable_quickly);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
