/*
 * cache_itest.c - libs/cache against a real Redis started by the harness.
 *
 * main() starts one Redis shared by the tests (each uses its own keys);
 * tests that kill, stop or restart Redis start their own, since only the
 * process that started a server can stop it and Check forks every test.
 * A small TCP proxy in this file breaks a connection on demand without
 * the client noticing beforehand, to exercise the retry-once rule.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "libs/base/timeutil.h"
#include "libs/cache/cache.h"
#include "tests/harness/harness.h"

static harness_redis g_redis;

#define OK(expr)                                                               \
  do {                                                                         \
    int rc_ = (expr);                                                          \
    ck_assert_msg(rc_ == ERR_OK, "%s: %s (%s)", #expr, err_str(rc_),           \
                  cache_last_error()->message);                                \
  } while (0)

static cache *open_cache(const char *url, int max_conns, int timeout_ms) {
  cache_config cfg = {.url = url,
                      .max_conns = max_conns,
                      .connect_timeout_ms = timeout_ms,
                      .command_timeout_ms = timeout_ms};
  cache *c = NULL;
  OK(cache_new(&cfg, &c));
  return c;
}

static int64_t command_int(cache *c, int argc, const char *const *argv) {
  cache_reply *r = NULL;
  OK(cache_command(c, false, argc, argv, NULL, &r));
  int64_t v = 0;
  OK(cache_reply_int(r, &v));
  cache_reply_free(r);
  return v;
}

static void expect_value(cache *c, const char *key, const char *want) {
  char *v = NULL;
  size_t len = 0;
  OK(cache_get(c, key, &v, &len));
  ck_assert_uint_eq(len, strlen(want));
  ck_assert_str_eq(v, want);
  free(v);
}

/* ------------------------------------------------------------ key/value --- */

START_TEST(set_get_delete_round_trip) {
  cache *c = open_cache(g_redis.url, 2, 1000);
  OK(cache_ping(c));
  OK(cache_set(c, "rt:k", "hello", 5, 0));
  expect_value(c, "rt:k", "hello");
  OK(cache_set(c, "rt:k", "again", 5, 0)); /* overwrite */
  expect_value(c, "rt:k", "again");
  bool existed = false;
  OK(cache_del(c, "rt:k", &existed));
  ck_assert(existed);
  char *v = (char *)1;
  size_t len = 99;
  ck_assert_int_eq(cache_get(c, "rt:k", &v, &len), ERR_NOTFOUND);
  ck_assert_ptr_null(v);
  ck_assert_uint_eq(len, 0);
  OK(cache_del(c, "rt:k", &existed));
  ck_assert(!existed);
  OK(cache_del(c, "rt:k", NULL));
  cache_free(c);
}
END_TEST

START_TEST(ttl_expires_keys) {
  cache *c = open_cache(g_redis.url, 1, 1000);
  OK(cache_set(c, "ttl:k", "v", 1, 300));
  const char *pttl[] = {"PTTL", "ttl:k"};
  int64_t left = command_int(c, 2, pttl);
  ck_assert_int_gt(left, 0);
  ck_assert_int_le(left, 300);
  expect_value(c, "ttl:k", "v"); /* still there right away (generous TTL) */
  int rc = ERR_OK;
  for (int i = 0; i < 100 && rc == ERR_OK; i++) { /* gone within 5 s */
    char *v = NULL;
    size_t len = 0;
    rc = cache_get(c, "ttl:k", &v, &len);
    free(v);
    if (rc == ERR_OK) time_sleep_ms(50);
  }
  ck_assert_int_eq(rc, ERR_NOTFOUND);
  /* Without a TTL the key does not expire; a later SET without PX clears one.
   */
  OK(cache_set(c, "ttl:p", "v", 1, 60000));
  OK(cache_set(c, "ttl:p", "v", 1, 0));
  const char *pttl2[] = {"PTTL", "ttl:p"};
  ck_assert_int_eq(command_int(c, 2, pttl2), -1);
  cache_free(c);
}
END_TEST

START_TEST(values_are_binary_safe_and_keys_are_single_arguments) {
  cache *c = open_cache(g_redis.url, 1, 1000);
  unsigned char all[256];
  for (int i = 0; i < 256; i++) all[i] = (unsigned char)i;
  const char *key = "bin:a b\r\nSET x y\r\n\"'%s%b";
  OK(cache_set(c, key, all, sizeof all, 0));
  char *v = NULL;
  size_t len = 0;
  OK(cache_get(c, key, &v, &len));
  ck_assert_uint_eq(len, 256);
  ck_assert_int_eq(memcmp(v, all, 256), 0);
  ck_assert_int_eq(v[256], '\0');
  free(v);
  /* The key was one argument: no stray key "x" was set. */
  ck_assert_int_eq(cache_get(c, "x", &v, &len), ERR_NOTFOUND);
  OK(cache_set(c, "bin:empty", "", 0, 0));
  OK(cache_get(c, "bin:empty", &v, &len));
  ck_assert_uint_eq(len, 0);
  ck_assert_str_eq(v, "");
  free(v);
  cache_free(c);
}
END_TEST

START_TEST(oversized_values_and_wrong_types_are_errors) {
  cache_config cfg = {.url = g_redis.url, .max_value_bytes = 16};
  cache *small = NULL;
  OK(cache_new(&cfg, &small));
  cache *big = open_cache(g_redis.url, 1, 1000);
  char buf[17];
  memset(buf, 'x', sizeof buf);
  ck_assert_int_eq(cache_set(small, "big:k", buf, 17, 0), ERR_TOOBIG);
  OK(cache_set(big, "big:k", buf, 17, 0));
  char *v = NULL;
  size_t len = 0;
  ck_assert_int_eq(cache_get(small, "big:k", &v, &len), ERR_TOOBIG);
  ck_assert_ptr_null(v);
  OK(cache_set(small, "big:ok", buf, 16, 0));

  const char *hset[] = {"HSET", "big:h", "f", "v"};
  OK(cache_command(big, true, 4, hset, NULL, NULL));
  ck_assert_int_eq(cache_get(big, "big:h", &v, &len), ERR_DB);
  ck_assert_ptr_nonnull(strstr(cache_last_error()->message, "WRONGTYPE"));
  cache_free(small);
  cache_free(big);
}
END_TEST

/* --------------------------------------------------------------- scripts ---
 */

/* A token bucket: KEYS[1] bucket; ARGV rate per second, burst, now (ms).
 * Returns {allowed (0/1), tokens left (floored)}. */
static const char *const BUCKET =
    "local rate = tonumber(ARGV[1])\n"
    "local burst = tonumber(ARGV[2])\n"
    "local now = tonumber(ARGV[3])\n"
    "local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')\n"
    "local tokens = tonumber(b[1]) or burst\n"
    "local ts = tonumber(b[2]) or now\n"
    "tokens = math.min(burst, tokens + (now - ts) * rate / 1000)\n"
    "local allowed = 0\n"
    "if tokens >= 1 then tokens = tokens - 1; allowed = 1 end\n"
    "redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', "
    "tostring(now))\n"
    "redis.call('PEXPIRE', KEYS[1], 60000)\n"
    "return {allowed, math.floor(tokens)}\n";

static int64_t take(cache *c, const cache_script *s, const char *key,
                    const char *now, int64_t *left) {
  const char *keys[] = {key};
  const char *args[] = {"1", "3", now};
  cache_reply *r = NULL;
  OK(cache_eval(c, s, 1, keys, 3, args, &r));
  ck_assert_int_eq(cache_reply_type(r), CACHE_REPLY_ARRAY);
  ck_assert_uint_eq(cache_reply_len(r), 2);
  int64_t allowed = -1;
  OK(cache_reply_int_at(r, 0, &allowed));
  OK(cache_reply_int_at(r, 1, left));
  cache_reply_free(r);
  return allowed;
}

START_TEST(token_bucket_script_runs_and_survives_script_flush) {
  cache *c = open_cache(g_redis.url, 2, 1000);
  cache_script *s = NULL;
  OK(cache_script_new(BUCKET, &s));
  OK(cache_script_load(c, s)); /* Redis agrees on the SHA-1 */
  int64_t left = 0;
  ck_assert_int_eq(take(c, s, "tb:1", "1000", &left), 1);
  ck_assert_int_eq(left, 2);
  ck_assert_int_eq(take(c, s, "tb:1", "1000", &left), 1);
  ck_assert_int_eq(take(c, s, "tb:1", "1000", &left), 1);
  ck_assert_int_eq(left, 0);
  ck_assert_int_eq(take(c, s, "tb:1", "1000", &left), 0); /* empty */

  const char *flush[] = {"SCRIPT", "FLUSH"};
  OK(cache_command(c, true, 2, flush, NULL, NULL));
  const char *exists[] = {"SCRIPT", "EXISTS", cache_script_sha(s)};
  cache_reply *r = NULL;
  OK(cache_command(c, true, 3, exists, NULL, &r));
  int64_t known = -1;
  OK(cache_reply_int_at(r, 0, &known));
  ck_assert_int_eq(known, 0);
  cache_reply_free(r);

  /* NOSCRIPT -> EVAL: still works, and the script is cached again. */
  ck_assert_int_eq(take(c, s, "tb:1", "2000", &left),
                   1); /* one token refilled */
  OK(cache_command(c, true, 3, exists, NULL, &r));
  OK(cache_reply_int_at(r, 0, &known));
  ck_assert_int_eq(known, 1);
  cache_reply_free(r);

  /* A script never loaded works the same way. */
  cache_script *fresh = NULL;
  OK(cache_script_new("return tonumber(ARGV[1]) * 2", &fresh));
  const char *args[] = {"21"};
  OK(cache_eval(c, fresh, 0, NULL, 1, args, &r));
  int64_t v = 0;
  OK(cache_reply_int(r, &v));
  ck_assert_int_eq(v, 42);
  cache_reply_free(r);
  cache_script_free(fresh);
  cache_script_free(s);
  cache_free(c);
}
END_TEST

START_TEST(script_errors_are_db_errors) {
  cache *c = open_cache(g_redis.url, 1, 1000);
  cache_script *s = NULL;
  OK(cache_script_new("return redis.error_reply('bucket misconfigured')", &s));
  cache_reply *r = NULL;
  ck_assert_int_eq(cache_eval(c, s, 0, NULL, 0, NULL, &r), ERR_DB);
  ck_assert_ptr_null(r);
  ck_assert_ptr_nonnull(
      strstr(cache_last_error()->message, "bucket misconfigured"));
  cache_script_free(s);
  OK(cache_script_new("return nosuchfunction()", &s));
  ck_assert_int_eq(cache_eval(c, s, 0, NULL, 0, NULL, &r), ERR_DB);
  cache_script_free(s);
  OK(cache_ping(c)); /* the connection is fine afterwards */
  cache_free(c);
}
END_TEST

/* ----------------------------------------------------------- concurrency ---
 */

typedef struct incr_ctx {
  cache *c;
  int failures;
} incr_ctx;

static void *incr_many(void *arg) {
  incr_ctx *x = arg;
  const char *incr[] = {"INCR", "conc:n"};
  for (int i = 0; i < 100; i++)
    if (cache_command(x->c, false, 2, incr, NULL, NULL) != ERR_OK)
      x->failures++;
  return NULL;
}

START_TEST(threads_share_a_small_pool) {
  cache_config cfg = {
      .url = g_redis.url, .max_conns = 2, .acquire_timeout_ms = 10000};
  cache *c = NULL;
  OK(cache_new(&cfg, &c));
  pthread_t t[8];
  incr_ctx x[8];
  for (int i = 0; i < 8; i++) {
    x[i] = (incr_ctx){.c = c};
    ck_assert_int_eq(pthread_create(&t[i], NULL, incr_many, &x[i]), 0);
  }
  for (int i = 0; i < 8; i++) {
    pthread_join(t[i], NULL);
    ck_assert_int_eq(x[i].failures, 0);
  }
  expect_value(c, "conc:n", "800");
  cache_stats st;
  cache_get_stats(c, &st);
  ck_assert_int_le(st.open, 2);
  ck_assert_int_eq(st.in_use, 0);
  cache_free(c);
}
END_TEST

/* ------------------------------------------------------ outages/recovery ---
 */

START_TEST(killed_redis_is_unavailable_fast_and_restarted_redis_works) {
  harness_redis own;
  ck_assert_int_eq(harness_redis_start(&own), 0);
  cache *c = open_cache(own.url, 2, 300);
  cache_script *s = NULL;
  OK(cache_script_new(BUCKET, &s));
  int64_t left = 0;
  ck_assert_int_eq(take(c, s, "out:tb", "1000", &left), 1);
  OK(cache_set(c, "out:k", "v", 1, 0));

  harness_signal(own.proc, SIGKILL);
  ck_assert_int_ne(harness_wait_exit(own.proc, 5000), -1);
  int64_t t0 = time_mono_ms();
  char *v = NULL;
  size_t len = 0;
  ck_assert_int_eq(cache_get(c, "out:k", &v, &len), ERR_UNAVAILABLE);
  ck_assert_int_eq(cache_set(c, "out:k", "v", 1, 0), ERR_UNAVAILABLE);
  cache_reply *r = NULL;
  const char *keys[] = {"out:tb"};
  const char *args[] = {"1", "3", "1000"};
  ck_assert_int_eq(cache_eval(c, s, 1, keys, 3, args, &r), ERR_UNAVAILABLE);
  ck_assert_int_eq(cache_ping(c), ERR_UNAVAILABLE);
  ck_assert_int_lt(time_mono_ms() - t0, 5000); /* four calls, none hung */

  ck_assert_int_eq(harness_redis_restart(&own), 0);
  ck_assert_int_eq(cache_get(c, "out:k", &v, &len),
                   ERR_NOTFOUND); /* fresh server */
  OK(cache_set(c, "out:k", "back", 4, 0));
  expect_value(c, "out:k", "back");
  /* The new server never saw the script: NOSCRIPT -> EVAL. */
  ck_assert_int_eq(take(c, s, "out:tb", "1000", &left), 1);
  cache_stats st;
  cache_get_stats(c, &st);
  ck_assert_uint_ge(st.reconnects, 1);
  cache_script_free(s);
  cache_free(c);
  harness_redis_stop(&own);
}
END_TEST

START_TEST(frozen_redis_times_out_instead_of_hanging) {
  harness_redis own;
  ck_assert_int_eq(harness_redis_start(&own), 0);
  cache *c = open_cache(own.url, 1, 300);
  OK(cache_set(c, "frz:k", "v", 1, 0));
  harness_signal(own.proc, SIGSTOP); /* accepts nothing, answers nothing */
  int64_t t0 = time_mono_ms();
  char *v = NULL;
  size_t len = 0;
  ck_assert_int_eq(cache_get(c, "frz:k", &v, &len), ERR_UNAVAILABLE);
  int64_t took = time_mono_ms() - t0;
  ck_assert_ptr_nonnull(strstr(cache_last_error()->message, "timed out"));
  ck_assert_int_ge(took, 250);
  ck_assert_int_lt(took, 5000);
  cache_stats st;
  cache_get_stats(c, &st);
  ck_assert_uint_eq(st.retries, 0); /* a timeout is not retried */
  harness_signal(own.proc, SIGCONT);
  expect_value(c, "frz:k", "v");
  cache_free(c);
  harness_redis_stop(&own);
}
END_TEST

START_TEST(restart_between_commands_is_invisible) {
  harness_redis own;
  ck_assert_int_eq(harness_redis_start(&own), 0);
  cache *c = open_cache(own.url, 1, 1000);
  OK(cache_set(c, "rs:k", "v", 1, 0)); /* the connection is now idle */
  ck_assert_int_eq(harness_redis_restart(&own), 0);
  char *v = NULL;
  size_t len = 0;
  ck_assert_int_eq(cache_get(c, "rs:k", &v, &len), ERR_NOTFOUND);
  cache_free(c);
  harness_redis_stop(&own);
}
END_TEST

/* A TCP proxy to g_redis. When break_next is set, the next bytes a client
 * sends are swallowed and that client's connection is closed: the client
 * sees EOF only after it has sent a command. */
static int g_break_next;

typedef struct pipe_pair {
  int client, upstream;
} pipe_pair;

static void *pump(void *arg) {
  pipe_pair pp = *(pipe_pair *)arg;
  free(arg);
  char buf[16384];
  for (;;) {
    struct pollfd pfd[2] = {{.fd = pp.client, .events = POLLIN},
                            {.fd = pp.upstream, .events = POLLIN}};
    if (poll(pfd, 2, -1) < 0) break;
    if (pfd[0].revents) {
      if (__atomic_exchange_n(&g_break_next, 0, __ATOMIC_SEQ_CST)) break;
      ssize_t n = recv(pp.client, buf, sizeof buf, 0);
      if (n <= 0 || send(pp.upstream, buf, (size_t)n, MSG_NOSIGNAL) != n) break;
    }
    if (pfd[1].revents) {
      ssize_t n = recv(pp.upstream, buf, sizeof buf, 0);
      if (n <= 0 || send(pp.client, buf, (size_t)n, MSG_NOSIGNAL) != n) break;
    }
  }
  close(pp.client);
  close(pp.upstream);
  return NULL;
}

static void *proxy_accept(void *arg) {
  int lfd = *(int *)arg;
  for (;;) {
    int cfd = accept(lfd, NULL, NULL);
    if (cfd < 0) return NULL;
    int ufd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)g_redis.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(ufd, (struct sockaddr *)&sa, sizeof sa) != 0) {
      close(cfd);
      close(ufd);
      continue;
    }
    pipe_pair *pp = malloc(sizeof *pp);
    pp->client = cfd;
    pp->upstream = ufd;
    pthread_t t;
    pthread_create(&t, NULL, pump, pp);
    pthread_detach(t);
  }
}

static int start_proxy(void) {
  static int lfd;
  lfd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
  ck_assert_int_eq(listen(lfd, 16), 0);
  ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, proxy_accept, &lfd), 0);
  pthread_detach(t);
  return ntohs(sa.sin_port);
}

START_TEST(broken_connection_retries_idempotent_commands_only) {
  char url[64];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", start_proxy());
  cache *c = open_cache(url, 1, 1000);
  OK(cache_set(c, "brk:k", "v", 1, 0));

  __atomic_store_n(&g_break_next, 1, __ATOMIC_SEQ_CST);
  expect_value(c, "brk:k", "v"); /* GET broke, reconnected, retried */
  cache_stats st;
  cache_get_stats(c, &st);
  ck_assert_uint_eq(st.retries, 1);

  __atomic_store_n(&g_break_next, 1, __ATOMIC_SEQ_CST);
  const char *incr[] = {"INCR", "brk:n"};
  ck_assert_int_eq(cache_command(c, false, 2, incr, NULL, NULL),
                   ERR_UNAVAILABLE);
  cache_get_stats(c, &st);
  ck_assert_uint_eq(st.retries, 1); /* not retried */
  char *v = NULL;
  size_t len = 0;
  ck_assert_int_eq(cache_get(c, "brk:n", &v, &len),
                   ERR_NOTFOUND); /* never ran */
  OK(cache_command(c, false, 2, incr, NULL,
                   NULL)); /* fine on a fresh connection */
  expect_value(c, "brk:n", "1");
  cache_free(c);
}
END_TEST

/* ------------------------------------------------------------- AUTH --- */

#define REDIS_PW "Redis-Secret-7f3a"
#define ACL_PW "Acl-Secret-91bc"

/* A Redis of this test's own that requires REDIS_PW for the default user
 * and knows an ACL user "app" with ACL_PW; its port. */
static int start_protected_redis(harness_proc **proc) {
  int port = harness_free_port();
  char sport[16], dir[600], acl[96];
  snprintf(sport, sizeof sport, "%d", port);
  snprintf(dir, sizeof dir, "%s", harness_init());
  snprintf(acl, sizeof acl, ">%s", ACL_PW);
  const char *exe = access("/usr/bin/redis-server", X_OK) == 0
                        ? "/usr/bin/redis-server"
                        : "/usr/local/bin/redis-server";
  char *argv[] = {(char *)exe, "--port", sport, "--bind",
                  "127.0.0.1", "--save", "",    "--appendonly",
                  "no",        "--dir",  dir,   "--requirepass",
                  REDIS_PW,    "--user", "app", "on",
                  acl,         "~*",     "&*",  "+@all",
                  NULL};
  *proc = harness_spawn("redis-auth", argv, NULL);
  ck_assert_ptr_nonnull(*proc);
  ck_assert(harness_wait_port(port, 20000));
  return port;
}

/* A cache for url; its first PING's result into *rc. */
static cache *try_url(const char *url, int *rc) {
  cache *c = open_cache(url, 2, 2000);
  *rc = cache_ping(c);
  return c;
}

START_TEST(auth_password_acl_user_and_db_from_the_url) {
  harness_proc *p = NULL;
  int port = start_protected_redis(&p);
  char url[160];
  int rc = -1;
  /* Right password, db 2: works once Redis is up. */
  snprintf(url, sizeof url, "redis://:%s@127.0.0.1:%d/2", REDIS_PW, port);
  cache *c = NULL;
  for (int i = 0; i < 100; i++) {
    cache_free(c);
    c = try_url(url, &rc);
    if (rc == ERR_OK) break;
    time_sleep_ms(50);
  }
  OK(rc);
  OK(cache_set(c, "auth:k", "v2", 2, 0));
  expect_value(c, "auth:k", "v2");
  /* ACL user, db 0: another database, so the key is not there. */
  snprintf(url, sizeof url, "redis://app:%s@127.0.0.1:%d", ACL_PW, port);
  cache *acl = try_url(url, &rc);
  OK(rc);
  char *v = NULL;
  size_t len = 0;
  ck_assert_int_eq(cache_get(acl, "auth:k", &v, &len), ERR_NOTFOUND);
  OK(cache_set(acl, "auth:k0", "v0", 2, 0));
  expect_value(acl, "auth:k0", "v0");

  /* Every reconnect authenticates and selects again: kill the clients,
   * the next command goes through on a fresh connection. */
  const char *kill[] = {"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"};
  OK(cache_command(acl, false, 6, kill, NULL, NULL));
  time_sleep_ms(50);
  expect_value(c, "auth:k", "v2");
  cache_stats st;
  cache_get_stats(c, &st);
  ck_assert_uint_ge(st.reconnects, 1);
  cache_free(acl);
  cache_free(c);
  harness_stop(p, 5000);
}
END_TEST

START_TEST(wrong_or_missing_password_fails_clearly_without_the_password) {
  harness_proc *p = NULL;
  int port = start_protected_redis(&p);
  char url[160];
  int rc = -1;
  snprintf(url, sizeof url, "redis://:%s@127.0.0.1:%d", REDIS_PW, port);
  cache *ok = NULL;
  for (int i = 0; i < 100 && rc != ERR_OK; i++) {
    cache_free(ok);
    ok = try_url(url, &rc);
    if (rc != ERR_OK) time_sleep_ms(50);
  }
  OK(rc);
  cache_free(ok);
  const char *bad[] = {"redis://:Wrong-Guess-5e1d@127.0.0.1:%d",
                       "redis://app:Wrong-Guess-5e1d@127.0.0.1:%d",
                       "redis://nobody:" ACL_PW "@127.0.0.1:%d"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    snprintf(url, sizeof url, bad[i], port);
    cache *c = try_url(url, &rc);
    ck_assert_int_eq(rc, ERR_UNAVAILABLE);
    const char *m = cache_last_error()->message;
    ck_assert_msg(strstr(m, "AUTH") != NULL && strstr(m, "WRONGPASS") != NULL,
                  "unclear: %s", m);
    ck_assert_ptr_null(strstr(m, "Wrong-Guess"));
    ck_assert_ptr_null(strstr(m, ACL_PW));
    cache_free(c);
  }
  /* No password at all: Redis says so on the first command. */
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
  cache *c = try_url(url, &rc);
  ck_assert_int_ne(rc, ERR_OK);
  ck_assert_ptr_nonnull(strstr(cache_last_error()->message, "NOAUTH"));
  cache_free(c);
  harness_stop(p, 5000);
}
END_TEST

int main(void) {
  signal(SIGPIPE, SIG_DFL); /* prove the library keeps SIGPIPE away itself */
  harness_init();
  if (harness_redis_start(&g_redis) != 0) {
    harness_dump_logs();
    fprintf(stderr, "cannot start Redis\n");
    return EXIT_FAILURE;
  }
  Suite *s = suite_create("cache_itest");
  TCase *kv = tcase_create("kv");
  tcase_set_timeout(kv, 60);
  tcase_add_test(kv, set_get_delete_round_trip);
  tcase_add_test(kv, ttl_expires_keys);
  tcase_add_test(kv, values_are_binary_safe_and_keys_are_single_arguments);
  tcase_add_test(kv, oversized_values_and_wrong_types_are_errors);
  tcase_add_test(kv, token_bucket_script_runs_and_survives_script_flush);
  tcase_add_test(kv, script_errors_are_db_errors);
  tcase_add_test(kv, threads_share_a_small_pool);
  suite_add_tcase(s, kv);

  TCase *out = tcase_create("outages");
  tcase_set_timeout(out, 60);
  tcase_add_test(out,
                 killed_redis_is_unavailable_fast_and_restarted_redis_works);
  tcase_add_test(out, frozen_redis_times_out_instead_of_hanging);
  tcase_add_test(out, restart_between_commands_is_invisible);
  tcase_add_test(out, broken_connection_retries_idempotent_commands_only);
  suite_add_tcase(s, out);

  TCase *au = tcase_create("auth");
  tcase_set_timeout(au, 60);
  tcase_add_test(au, auth_password_acl_user_and_db_from_the_url);
  tcase_add_test(au,
                 wrong_or_missing_password_fails_clearly_without_the_password);
  suite_add_tcase(s, au);

  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  if (failed != 0) harness_dump_logs();
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
