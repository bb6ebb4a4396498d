/*
 * harness_itest.c - the harness itself, against real processes, a real
 * PostgreSQL and a real Redis.
 *
 * Check runs each test in a forked child; every test calls harness_init()
 * itself, so each gets its own directory, cleaned when its child exits.
 *
 * Also the helpers over it: service.h against a stand-in service
 * (fake_service, which prints its environment; real services are started
 * by every other integration test) and http.h against the one-thread
 * HTTP server below, with a canned HTTP-API error.
 */
#include "tests/harness/harness.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <postgresql/libpq-fe.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "libs/base/timeutil.h"
#include "tests/harness/http.h"
#include "tests/harness/identity.h"
#include "tests/harness/service.h"
#include "tests/harness/system.h"

/* Gone = no such process, or a zombie nobody reaps (a container's PID 1
 * may not reap reparented orphans). */
static bool pid_gone(pid_t pid) {
  if (kill(pid, 0) != 0 && errno == ESRCH) return true;
  char path[64], buf[256];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return true;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  const char *rp = strrchr(buf, ')');
  return rp != NULL && rp[1] == ' ' && rp[2] == 'Z';
}

static bool wait_gone(pid_t pid, int timeout_ms) {
  for (int waited = 0; waited < timeout_ms; waited += 20) {
    if (pid_gone(pid)) return true;
    time_sleep_ms(20);
  }
  return pid_gone(pid);
}

static char *read_file(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return NULL;
  static char buf[65536];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  return buf;
}

static bool dir_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Reads a pid the child wrote to a file, waiting for it to appear. */
static pid_t read_pid_file(const char *path) {
  for (int i = 0; i < 250; i++) {
    char *s = read_file(path);
    if (s != NULL && strchr(s, '\n') != NULL) {
      char *end = NULL;
      long v = strtol(s, &end, 10);
      if (end != s && v > 0) return (pid_t)v;
    }
    time_sleep_ms(20);
  }
  return -1;
}

static bool redis_ping(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = false;
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
      send(fd, "PING\r\n", 6, MSG_NOSIGNAL) == 6) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    char buf[16] = {0};
    ok = poll(&pfd, 1, 2000) == 1 && recv(fd, buf, sizeof buf - 1, 0) >= 5 &&
         memcmp(buf, "+PONG", 5) == 0;
  }
  close(fd);
  return ok;
}

START_TEST(spawn_captures_stdout_stderr_and_env) {
  harness_init();
  char *argv[] = {"/bin/sh", "-c",
                  "echo to-stdout; echo to-stderr >&2; echo \"x=$HARNESS_X\"",
                  NULL};
  char *env[] = {"HARNESS_X=hello", NULL};
  harness_proc *p = harness_spawn("echoer", argv, env);
  ck_assert_ptr_nonnull(p);
  int st = harness_wait_exit(p, 10000);
  ck_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  ck_assert(!harness_alive(p));
  char *log = read_file(harness_log_path(p));
  ck_assert_ptr_nonnull(log);
  ck_assert_ptr_nonnull(strstr(log, "to-stdout"));
  ck_assert_ptr_nonnull(strstr(log, "to-stderr"));
  ck_assert_ptr_nonnull(strstr(log, "x=hello"));
  ck_assert_ptr_nonnull(strstr(harness_log_path(p), "/echoer.log"));
  harness_stop(p, 1000);
}
END_TEST

START_TEST(wait_exit_reports_status_and_times_out) {
  harness_init();
  char *a3[] = {"/bin/sh", "-c", "exit 3", NULL};
  harness_proc *p = harness_spawn("exit3", a3, NULL);
  ck_assert_ptr_nonnull(p);
  int st = harness_wait_exit(p, 10000);
  ck_assert(WIFEXITED(st));
  ck_assert_int_eq(WEXITSTATUS(st), 3);
  harness_stop(p, 1000);

  char *asleep[] = {"/bin/sleep", "100", NULL};
  harness_proc *s = harness_spawn("sleeper", asleep, NULL);
  ck_assert_ptr_nonnull(s);
  ck_assert_int_eq(harness_wait_exit(s, 100), -1);
  ck_assert(harness_alive(s));
  harness_signal(s, SIGUSR1); /* default action: terminate */
  st = harness_wait_exit(s, 10000);
  ck_assert(WIFSIGNALED(st));
  ck_assert_int_eq(WTERMSIG(st), SIGUSR1);
  harness_stop(s, 1000);
}
END_TEST

START_TEST(exec_failure_exits_127) {
  harness_init();
  char *argv[] = {"/nonexistent/binary", NULL};
  harness_proc *p = harness_spawn("missing", argv, NULL);
  ck_assert_ptr_nonnull(p);
  int st = harness_wait_exit(p, 10000);
  ck_assert(WIFEXITED(st));
  ck_assert_int_eq(WEXITSTATUS(st), 127);
  harness_stop(p, 1000);
}
END_TEST

START_TEST(stop_kills_a_process_that_ignores_sigterm_and_its_group) {
  const char *dir = harness_init();
  char pidfile[600], script[800];
  snprintf(pidfile, sizeof pidfile, "%s/grandchild.pid", dir);
  snprintf(script, sizeof script,
           "trap '' TERM; sleep 100 & echo $! > %s; wait", pidfile);
  char *argv[] = {"/bin/sh", "-c", script, NULL};
  harness_proc *p = harness_spawn("stubborn", argv, NULL);
  ck_assert_ptr_nonnull(p);
  pid_t leader = harness_pid(p);
  pid_t grandchild = read_pid_file(pidfile);
  ck_assert_int_gt(grandchild, 0);
  ck_assert_int_eq(getpgid(leader), leader); /* own process group */
  ck_assert_int_eq(getpgid(grandchild), leader);
  harness_stop(p, 200);
  ck_assert(wait_gone(leader, 5000));
  ck_assert(wait_gone(grandchild, 5000));
  harness_stop(NULL, 0); /* NULL-safe */
}
END_TEST

START_TEST(child_dies_with_its_parent) {
  const char *dir = harness_init();
  char pidfile[600];
  snprintf(pidfile, sizeof pidfile, "%s/orphan.pid", dir);
  pid_t mid = fork();
  ck_assert_int_ge(mid, 0);
  if (mid == 0) {
    char *argv[] = {"/bin/sleep", "100", NULL};
    harness_proc *p = harness_spawn("orphan", argv, NULL);
    FILE *f = fopen(pidfile, "w");
    if (p == NULL || f == NULL) _exit(1);
    fprintf(f, "%d\n", (int)harness_pid(p));
    fclose(f);
    _exit(0); /* no atexit cleanup: only PR_SET_PDEATHSIG can kill it */
  }
  int st = 0;
  waitpid(mid, &st, 0);
  ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  pid_t orphan = read_pid_file(pidfile);
  ck_assert_int_gt(orphan, 0);
  ck_assert(wait_gone(orphan, 5000));
}
END_TEST

START_TEST(forked_child_exit_leaves_parents_processes_and_dir) {
  const char *dir = harness_init();
  char *argv[] = {"/bin/sleep", "100", NULL};
  harness_proc *p = harness_spawn("parents", argv, NULL);
  ck_assert_ptr_nonnull(p);
  pid_t child = fork();
  ck_assert_int_ge(child, 0);
  if (child == 0) exit(0); /* runs the inherited atexit(harness_cleanup) */
  int st = 0;
  waitpid(child, &st, 0);
  ck_assert(harness_alive(p));
  ck_assert(dir_exists(dir));
  harness_stop(p, 1000);
}
END_TEST

START_TEST(bin_path_uses_bazel_bin) {
  setenv("BAZEL_BIN", "/some/bin", 1);
  const char *a = harness_bin_path("tests/x/y");
  ck_assert_str_eq(a, "/some/bin/tests/x/y");
  unsetenv("BAZEL_BIN");
  const char *b = harness_bin_path("tests/x/z");
  ck_assert_str_eq(b, "bazel-bin/tests/x/z");
  ck_assert_str_eq(a, "/some/bin/tests/x/y"); /* still valid */
}
END_TEST

START_TEST(free_port_is_free_and_wait_port_times_out) {
  int port = harness_free_port();
  ck_assert_int_gt(port, 1024);
  ck_assert(!harness_wait_port(port, 200));
}
END_TEST

/* Ports are chosen before their processes bind them: one process never
 * gets the same number twice (the kernel may offer it again meanwhile). */
START_TEST(free_ports_are_never_handed_out_twice) {
  enum { N = 2000 };
  static int got[N];
  for (int i = 0; i < N; i++) {
    got[i] = harness_free_port();
    ck_assert_int_gt(got[i], 0);
    for (int j = 0; j < i; j++) ck_assert_int_ne(got[i], got[j]);
  }
}
END_TEST

/* A one-thread HTTP server answering every request with `status`, or
 * with `reply` verbatim when set; the last request's head is in `got`. */
typedef struct http_srv {
  int fd;
  int status;
  int port;
  const char *reply;
  char got[4096];
} http_srv;

static void *http_serve(void *arg) {
  http_srv *s = arg;
  for (;;) {
    int c = accept(s->fd, NULL, NULL);
    if (c < 0) return NULL;
    ssize_t n = recv(c, s->got, sizeof s->got - 1, 0);
    s->got[n > 0 ? n : 0] = '\0';
    char resp[128];
    int len = snprintf(
        resp, sizeof resp,
        "HTTP/1.0 %d X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
        s->status);
    const char *out = s->reply ? s->reply : resp;
    size_t outlen = s->reply ? strlen(s->reply) : (size_t)len;
    ssize_t w = send(c, out, outlen, MSG_NOSIGNAL);
    (void)w;
    close(c);
  }
}

static void http_start(http_srv *s, int status) {
  s->status = status;
  s->fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  ck_assert_int_eq(bind(s->fd, (struct sockaddr *)&sa, sizeof sa), 0);
  ck_assert_int_eq(listen(s->fd, 16), 0);
  ck_assert_int_eq(getsockname(s->fd, (struct sockaddr *)&sa, &len), 0);
  s->port = ntohs(sa.sin_port);
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, http_serve, s), 0);
  pthread_detach(t);
}

START_TEST(wait_http_ok_needs_a_200) {
  static http_srv ok, notfound;
  http_start(&ok, 200);
  http_start(&notfound, 404);
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/readyz", ok.port);
  ck_assert(harness_wait_http_ok(url, 5000));
  ck_assert(harness_wait_port(ok.port, 1000));
  snprintf(url, sizeof url, "http://127.0.0.1:%d/readyz", notfound.port);
  ck_assert(!harness_wait_http_ok(url, 300));
  snprintf(url, sizeof url, "http://127.0.0.1:%d/readyz", harness_free_port());
  ck_assert(!harness_wait_http_ok(url, 300));
}
END_TEST

/* ------------------------------------------------------ service.h --- */

/* The value of key in env, or NULL; fails when the key is there twice. */
static const char *env_get(char **env, const char *key) {
  const char *found = NULL;
  size_t n = strlen(key);
  for (size_t i = 0; env[i] != NULL; i++)
    if (strncmp(env[i], key, n) == 0 && env[i][n] == '=') {
      ck_assert_msg(found == NULL, "%s twice", key);
      found = env[i] + n + 1;
    }
  return found;
}

START_TEST(service_env_is_the_standard_one_with_extras_winning) {
  harness_service s = {.rpc_port = 1001,
                       .admin_port = 1002,
                       .bus_port = 1003,
                       .http_port = 1004,
                       .rpc_url = "tcp://127.0.0.1:1001",
                       .bus_url = "tcp://127.0.0.1:1003"};
  harness_pg pg = {.url = "host=/nowhere dbname=test"};
  harness_redis redis = {.url = "redis://127.0.0.1:9"};
  harness_service_opts o = {
      .pg = &pg, .redis = &redis, .rpc_workers = 8, .db_pool_size = 4};
  char *extra[] = {"REDIS_URL=redis://127.0.0.1:9/1",
                   "BUS_LISTEN",
                   "X_ONE=first",
                   "X_ONE=second",
                   "X_TWO=2",
                   NULL};
  char **env = harness_service_env(&s, "services/foo/foo", &o, extra);
  ck_assert_ptr_nonnull(env);
  char cwd[512], mig[600];
  ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
  snprintf(mig, sizeof mig, "%s/services/foo/migrations", cwd);
  ck_assert_str_eq(env_get(env, "DATABASE_URL"), "host=/nowhere dbname=test");
  ck_assert_str_eq(env_get(env, "REDIS_URL"), "redis://127.0.0.1:9/1");
  ck_assert_str_eq(env_get(env, "RPC_LISTEN"), "tcp://127.0.0.1:1001");
  ck_assert_ptr_null(env_get(env, "BUS_LISTEN")); /* removed */
  ck_assert_str_eq(env_get(env, "ADMIN_ADDR"), "127.0.0.1");
  ck_assert_str_eq(env_get(env, "ADMIN_PORT"), "1002");
  ck_assert_str_eq(env_get(env, "HTTP_ADDR"), "127.0.0.1");
  ck_assert_str_eq(env_get(env, "HTTP_PORT"), "1004");
  ck_assert_str_eq(env_get(env, "RPC_WORKERS"), "8");
  ck_assert_str_eq(env_get(env, "DB_POOL_SIZE"), "4");
  ck_assert_str_eq(env_get(env, "MIGRATIONS_DIR"), mig);
  ck_assert_str_eq(env_get(env, "LOG_LEVEL"), "info");
  ck_assert_str_eq(env_get(env, "X_ONE"), "second"); /* the last wins */
  ck_assert_str_eq(env_get(env, "X_TWO"), "2");
  /* The identity of the binary's directory name, and the bundle. */
  ck_assert_str_eq(env_get(env, "SERVICE_KEY_FILE"),
                   harness_identity_key_file("foo"));
  ck_assert_str_eq(env_get(env, "SERVICE_TRUST_FILE"),
                   harness_identity_trust_file());
  size_t n = 0;
  while (env[n] != NULL) n++;
  ck_assert_uint_eq(n, 15);
  ck_assert_str_eq(env[n - 1], "X_TWO=2"); /* extras after the standard */
  harness_service_env_free(env);

  /* No PostgreSQL, no Redis, no workers: not set; a log level of one's own. */
  harness_service_opts bare = {.log_level = "debug"};
  env = harness_service_env(&s, "services/foo/foo", &bare, NULL);
  ck_assert_ptr_nonnull(env);
  ck_assert_ptr_null(env_get(env, "DATABASE_URL"));
  ck_assert_ptr_null(env_get(env, "REDIS_URL"));
  ck_assert_ptr_null(env_get(env, "RPC_WORKERS"));
  ck_assert_ptr_null(env_get(env, "DB_POOL_SIZE"));
  ck_assert_str_eq(env_get(env, "LOG_LEVEL"), "debug");
  ck_assert_str_eq(env_get(env, "BUS_LISTEN"), "tcp://127.0.0.1:1003");
  harness_service_env_free(env);
  harness_service_env_free(NULL);
}
END_TEST

/* ------------------------------------------------------- system.h --- */

static void fake_ports(harness_service *s, int base) {
  s->rpc_port = base;
  s->bus_port = base + 1;
  snprintf(s->rpc_url, sizeof s->rpc_url, "tcp://127.0.0.1:%d", base);
  snprintf(s->bus_url, sizeof s->bus_url, "tcp://127.0.0.1:%d", base + 1);
}

/* The wiring: each service gets the peers it reads that run, and only
 * those; a suite's entries come after it and win, "K" removes. */
START_TEST(system_wires_running_peers_and_the_suites_settings_win) {
  harness_init();
  static char *const orders_env[] = {"ORDERS_OUTBOX_POLL=200ms",
                                     "TENANTS_EVENTS", NULL};
  static char *const gw_env[] = {"GATEWAY_RATE_BURST=5",
                                 "AUTH_ADDR=tcp://127.0.0.1:9", NULL};
  static char *const gw_own[] = {"GATEWAY_RATE_BURST=7", NULL};
  harness_system_opts o = {
      .parts = HARNESS_WITH(HARNESS_TENANTS) | HARNESS_WITH(HARNESS_ORDERS) |
               HARNESS_WITH(HARNESS_REALTIME) | HARNESS_WITH(HARNESS_GATEWAY),
      .rpc_workers = 3,
      .env = {[HARNESS_ORDERS] = orders_env, [HARNESS_GATEWAY] = gw_env},
      .gateways = {{.name = "gw", .redis_db = 2, .env = gw_own}},
      .ws_port = 4321,
  };
  harness_system s;
  harness_system_init(&s, &o);
  snprintf(s.redis.url, sizeof s.redis.url, "redis://127.0.0.1:9");
  fake_ports(&s.auth, 1000);
  fake_ports(&s.tenants, 1010);
  fake_ports(&s.orders, 1020);

  char **env = harness_system_env(&s, HARNESS_ORDERS);
  ck_assert_ptr_nonnull(env);
  ck_assert_str_eq(env_get(env, "AUTH_ADDR"), "tcp://127.0.0.1:1000");
  ck_assert_str_eq(env_get(env, "AUTH_EVENTS"), "tcp://127.0.0.1:1001");
  ck_assert_str_eq(env_get(env, "TENANTS_ADDR"), "tcp://127.0.0.1:1010");
  ck_assert_ptr_null(env_get(env, "TENANTS_EVENTS")); /* removed */
  ck_assert_str_eq(env_get(env, "ORDERS_OUTBOX_POLL"), "200ms");
  ck_assert_str_eq(env_get(env, "RPC_WORKERS"), "3");
  ck_assert_ptr_nonnull(env_get(env, "DATABASE_URL"));
  harness_service_env_free(env);

  /* Realtime: no database, its WebSocket port, no notifications or sync
   * (they do not run). */
  env = harness_system_env(&s, HARNESS_REALTIME);
  ck_assert_ptr_nonnull(env);
  ck_assert_ptr_null(env_get(env, "DATABASE_URL"));
  ck_assert_ptr_null(env_get(env, "RPC_WORKERS"));
  ck_assert_str_eq(env_get(env, "WS_ADDR"), "127.0.0.1");
  ck_assert_str_eq(env_get(env, "WS_PORT"), "4321");
  ck_assert_str_eq(env_get(env, "ORDERS_EVENTS"), "tcp://127.0.0.1:1021");
  ck_assert_str_eq(env_get(env, "TENANTS_EVENTS"), "tcp://127.0.0.1:1011");
  ck_assert_ptr_null(env_get(env, "NOTIFICATIONS_ADDR"));
  ck_assert_ptr_null(env_get(env, "SYNC_EVENTS"));
  ck_assert_str_eq(s.ws_url, "ws://127.0.0.1:4321");
  harness_service_env_free(env);

  /* The gateway: shared settings over the wiring, its own over those,
   * its own Redis database. */
  env = harness_system_env(&s, HARNESS_GATEWAY);
  ck_assert_ptr_nonnull(env);
  ck_assert_str_eq(env_get(env, "AUTH_ADDR"), "tcp://127.0.0.1:9");
  ck_assert_str_eq(env_get(env, "ORDERS_ADDR"), "tcp://127.0.0.1:1020");
  ck_assert_str_eq(env_get(env, "TENANTS_EVENTS"), "tcp://127.0.0.1:1011");
  ck_assert_ptr_null(env_get(env, "SYNC_ADDR"));
  ck_assert_str_eq(env_get(env, "GATEWAY_RATE_BURST"), "7");
  ck_assert_str_eq(env_get(env, "REDIS_URL"), "redis://127.0.0.1:9/2");
  harness_service_env_free(env);

  /* Tenants reads auth only. */
  env = harness_system_env(&s, HARNESS_TENANTS);
  ck_assert_ptr_nonnull(env);
  ck_assert_str_eq(env_get(env, "AUTH_ADDR"), "tcp://127.0.0.1:1000");
  ck_assert_ptr_null(env_get(env, "AUTH_EVENTS"));
  ck_assert_ptr_null(env_get(env, "ORDERS_ADDR"));
  harness_service_env_free(env);
}
END_TEST

START_TEST(service_starts_when_ready_restarts_on_its_ports_and_stops) {
  harness_init();
  static const harness_service_opts o = {.log_level = "warn"};
  harness_service s = {0};
  char *extra[] = {"FAKE_MARK=hello", NULL};
  ck_assert(harness_service_start(&s, "fake", "tests/harness/fake_service", &o,
                                  extra));
  ck_assert_ptr_nonnull(s.proc);
  int ports[] = {s.rpc_port, s.admin_port, s.bus_port, s.http_port};
  for (int i = 0; i < 4; i++)
    for (int j = i + 1; j < 4; j++) ck_assert_int_ne(ports[i], ports[j]);
  char want[80];
  snprintf(want, sizeof want, "tcp://127.0.0.1:%d", s.rpc_port);
  ck_assert_str_eq(s.rpc_url, want);
  char url[128];
  snprintf(want, sizeof want, "http://127.0.0.1:%d/metrics", s.admin_port);
  ck_assert_str_eq(harness_service_admin_url(&s, "/metrics", url, sizeof url),
                   want);
  snprintf(want, sizeof want, "http://127.0.0.1:%d/healthz", s.http_port);
  ck_assert_str_eq(harness_service_http_url(&s, "/healthz", url, sizeof url),
                   want);
  char *log = read_file(harness_log_path(s.proc));
  ck_assert_ptr_nonnull(log);
  ck_assert_ptr_nonnull(strstr(log, "env FAKE_MARK=hello\n"));
  ck_assert_ptr_nonnull(strstr(log, "env LOG_LEVEL=warn\n"));
  ck_assert_ptr_nonnull(strstr(log, "/tests/harness/migrations\n"));
  snprintf(want, sizeof want, "env ADMIN_PORT=%d\n", s.admin_port);
  ck_assert_ptr_nonnull(strstr(log, want));

  /* A restart: a new process, the same ports, another environment. */
  pid_t first = harness_pid(s.proc);
  char *again[] = {"FAKE_MARK=again", NULL};
  ck_assert(harness_service_restart(&s, "fake-2", &o, again));
  ck_assert(wait_gone(first, 5000));
  ck_assert_int_ne(harness_pid(s.proc), first);
  ck_assert_int_eq(s.admin_port, ports[1]);
  ck_assert_int_eq(s.rpc_port, ports[0]);
  log = read_file(harness_log_path(s.proc));
  ck_assert_ptr_nonnull(strstr(harness_log_path(s.proc), "/fake-2.log"));
  ck_assert_ptr_nonnull(strstr(log, "env FAKE_MARK=again\n"));
  ck_assert(harness_service_ready(&s, 1000));

  pid_t second = harness_pid(s.proc);
  harness_service_stop(&s, 1000);
  ck_assert_ptr_null(s.proc);
  ck_assert(wait_gone(second, 5000));
  ck_assert(!harness_service_ready(&s, 200));
  harness_service_stop(&s, 1000); /* stopped: a no-op */
}
END_TEST

START_TEST(service_start_fails_when_never_ready) {
  harness_init();
  static const harness_service_opts o = {.ready_timeout_ms = 500};
  harness_service s = {0};
  char *extra[] = {"FAKE_NOT_READY=1", NULL};
  ck_assert(!harness_service_start(&s, "unready", "tests/harness/fake_service",
                                   &o, extra));
  ck_assert_ptr_nonnull(s.proc); /* started, left to the caller */
  ck_assert(harness_alive(s.proc));
  harness_service_stop(&s, 1000);
  harness_service s2 = {0};
  ck_assert(!harness_service_start(&s2, "missing",
                                   "tests/harness/no_such_binary", &o, NULL));
}
END_TEST

/* --------------------------------------------------------- http.h --- */

START_TEST(http_call_keeps_the_final_headers_body_and_json) {
  static http_srv srv;
  srv.reply =
      "HTTP/1.1 100 Continue\r\nX-Interim: yes\r\n\r\n"
      "HTTP/1.0 400 Bad Request\r\nContent-Type: application/json\r\n"
      "X-Request-Id: rid-1\r\nx-lower-case: v  \r\nConnection: close\r\n\r\n"
      "{\"error\":{\"code\":\"INVALID_ARGUMENT\",\"message\":\"m\","
      "\"request_id\":\"rid-1\",\"details\":[{\"field\":\"items[1].quantity\","
      "\"description\":\"d\"}]}}";
  http_start(&srv, 0);
  const char *headers[] = {"X-Extra: 1", NULL};
  harness_http_resp *r =
      harness_http_call("POST", srv.port, "/v1/x?y=1", "{}", "tok-1", headers);
  CK_HTTP_STATUS(r, 400);
  CK_HTTP_ERROR(r, 400, "INVALID_ARGUMENT");
  ck_assert_str_eq(harness_http_header(r, "X-REQUEST-ID"), "rid-1");
  ck_assert_str_eq(harness_http_header(r, "X-Lower-Case"), "v  ");
  ck_assert_ptr_null(harness_http_header(r, "X-Interim"));
  ck_assert_ptr_null(harness_http_header(r, "X-Request"));
  ck_assert(harness_http_has_detail(r, "items[1].quantity"));
  ck_assert(!harness_http_has_detail(r, "items[1]"));
  ck_assert(harness_http_has_detail_prefix(r, "items[1]"));
  ck_assert(!harness_http_has_detail_prefix(r, "items[2]"));
  ck_assert_str_eq(harness_json_str(r->json, "error.code"), "INVALID_ARGUMENT");
  ck_assert_str_eq(harness_json_str(r->json, "error.nothing"), "<missing>");
  ck_assert_ptr_null(harness_json_get(r->json, "error.code.deeper"));
  ck_assert_uint_eq(json_array_size(harness_json_get(r->json, "error.details")),
                    1);
  static const char *const keys[] = {"error", NULL};
  CK_JSON_KEYS(r->json, keys);
  ck_assert_uint_eq(r->len, strlen(r->body));
  ck_assert(r->secs > 0);
  /* What went out: method, path, token, extras, the default type. */
  ck_assert_ptr_nonnull(strstr(srv.got, "POST /v1/x?y=1 HTTP/1.1\r\n"));
  ck_assert_ptr_nonnull(strstr(srv.got, "Authorization: Bearer tok-1\r\n"));
  ck_assert_ptr_nonnull(strstr(srv.got, "X-Extra: 1\r\n"));
  ck_assert_ptr_nonnull(strstr(srv.got, "Content-Type: application/json\r\n"));
  harness_http_free(r);

  /* A Content-Type of the caller's replaces the default. */
  const char *form[] = {"content-type: text/plain", NULL};
  r = harness_http_call("PUT", srv.port, "/", "a=b", NULL, form);
  ck_assert_ptr_null(strstr(srv.got, "application/json"));
  ck_assert_ptr_null(strstr(srv.got, "Authorization"));
  harness_http_free(r);
  harness_http_free(NULL);
}
END_TEST

START_TEST(http_request_without_a_server_has_no_answer) {
  static http_srv ok;
  http_start(&ok, 204);
  harness_http_resp *r =
      harness_http_request("GET", harness_free_port(), "/", NULL, NULL, NULL);
  ck_assert_int_eq(r->status, 0);
  ck_assert_int_ne(r->curl_rc, CURLE_OK);
  ck_assert_str_eq(r->body, "");
  ck_assert_ptr_null(r->json);
  ck_assert_uint_eq(r->nheaders, 0);
  harness_http_free(r);
  r = harness_http_request("HEAD", ok.port, "/readyz", NULL, NULL, NULL);
  ck_assert_int_eq(r->status, 204);
  ck_assert_uint_eq(r->len, 0);
  ck_assert_ptr_nonnull(strstr(ok.got, "HEAD /readyz"));
  harness_http_free(r);
}
END_TEST

static PGconn *pg_connect(const harness_pg *pg) {
  PGconn *c = PQconnectdb(pg->url);
  ck_assert_msg(PQstatus(c) == CONNECTION_OK, "connect: %s", PQerrorMessage(c));
  return c;
}

static void pg_exec_ok(PGconn *c, const char *sql, const char *expect_value) {
  PGresult *r = PQexec(c, sql);
  ExecStatusType st = PQresultStatus(r);
  ck_assert_msg(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", sql,
                PQerrorMessage(c));
  if (expect_value != NULL) ck_assert_str_eq(PQgetvalue(r, 0, 0), expect_value);
  PQclear(r);
}

START_TEST(postgres_starts_answers_restarts_and_stops) {
  harness_init();
  harness_pg pg;
  int rc = harness_pg_start(&pg);
  if (rc != 0) harness_dump_logs();
  ck_assert_int_eq(rc, 0);
  ck_assert_ptr_nonnull(pg.proc);
  PGconn *c = pg_connect(&pg);
  pg_exec_ok(c, "SELECT current_database()", "test");
  pg_exec_ok(c, "SHOW fsync", "off");
  pg_exec_ok(c, "CREATE TABLE t (v text)", NULL);
  pg_exec_ok(c, "INSERT INTO t VALUES ('kept')", NULL);
  PQfinish(c);

  int port = pg.port;
  ck_assert_int_eq(harness_pg_restart(&pg), 0);
  ck_assert_int_eq(pg.port, port);
  c = pg_connect(&pg);
  pg_exec_ok(c, "SELECT v FROM t", "kept");
  ck_assert_int_eq(
      harness_pg_count(&pg, "SELECT count(*) FROM t WHERE v = $1", "kept"), 1);
  ck_assert_int_eq(harness_pg_count(&pg, "SELECT 41 + 1", NULL), 42);
  ck_assert_int_eq(harness_pg_count(&pg, "SELECT v FROM t", NULL), -1);
  ck_assert_int_eq(harness_pg_count(&pg, "SELECT nonsense", NULL), -1);

  harness_pg_stop(&pg); /* fast shutdown even with a client connected */
  ck_assert_ptr_null(pg.proc);
  ck_assert_int_eq(PQping(pg.url), PQPING_NO_RESPONSE);
  PQfinish(c);
}
END_TEST

START_TEST(redis_starts_answers_ping_and_stops) {
  harness_init();
  harness_redis r;
  ck_assert_int_eq(harness_redis_start(&r), 0);
  char want[64];
  snprintf(want, sizeof want, "redis://127.0.0.1:%d", r.port);
  ck_assert_str_eq(r.url, want);
  ck_assert(redis_ping(r.port));
  ck_assert_int_eq(harness_redis_restart(&r), 0);
  ck_assert(redis_ping(r.port));
  pid_t pid = harness_pid(r.proc);
  harness_redis_stop(&r);
  ck_assert_ptr_null(r.proc);
  ck_assert(wait_gone(pid, 5000));
  ck_assert(!harness_wait_port(r.port, 200));
}
END_TEST

START_TEST(cleanup_leaves_no_process_and_no_directory) {
  char dir[600];
  snprintf(dir, sizeof dir, "%s", harness_init());
  char *argv[] = {"/bin/sleep", "100", NULL};
  harness_proc *s = harness_spawn("sleeper", argv, NULL);
  ck_assert_ptr_nonnull(s);
  harness_redis r;
  ck_assert_int_eq(harness_redis_start(&r), 0);
  harness_pg pg;
  ck_assert_int_eq(harness_pg_start(&pg), 0);
  /* A connected client means a backend process outside the leader. */
  PGconn *c = pg_connect(&pg);
  PGresult *res = PQexec(c, "SELECT pg_backend_pid()");
  ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
  pid_t backend = (pid_t)strtol(PQgetvalue(res, 0, 0), NULL, 10);
  PQclear(res);
  char pgdir[512];
  snprintf(pgdir, sizeof pgdir, "%s", pg.dir);
  pid_t pids[] = {harness_pid(s), harness_pid(r.proc), harness_pid(pg.proc),
                  backend};

  harness_cleanup();
  for (size_t i = 0; i < sizeof pids / sizeof pids[0]; i++)
    ck_assert_msg(wait_gone(pids[i], 5000), "pid %d still there", (int)pids[i]);
  ck_assert(!dir_exists(dir));
  ck_assert(!dir_exists(pgdir));
  ck_assert(!harness_alive(s));
  harness_stop(s, 100); /* still a valid handle after cleanup */
  PQfinish(c);

  /* The harness can be initialised again afterwards. */
  const char *again = harness_init();
  ck_assert(dir_exists(again));
}
END_TEST

START_TEST(harness_keep_leaves_the_directory) {
  char dir[600];
  snprintf(dir, sizeof dir, "%s", harness_init());
  setenv("HARNESS_KEEP", "1", 1);
  harness_cleanup();
  unsetenv("HARNESS_KEEP");
  ck_assert(dir_exists(dir));
  char cmd[700];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  ck_assert_int_eq(system(cmd), 0);
}
END_TEST

int main(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  Suite *s = suite_create("harness");
  TCase *procs = tcase_create("processes");
  tcase_set_timeout(procs, 60);
  tcase_add_test(procs, spawn_captures_stdout_stderr_and_env);
  tcase_add_test(procs, wait_exit_reports_status_and_times_out);
  tcase_add_test(procs, exec_failure_exits_127);
  tcase_add_test(procs,
                 stop_kills_a_process_that_ignores_sigterm_and_its_group);
  tcase_add_test(procs, child_dies_with_its_parent);
  tcase_add_test(procs, forked_child_exit_leaves_parents_processes_and_dir);
  tcase_add_test(procs, bin_path_uses_bazel_bin);
  tcase_add_test(procs, free_port_is_free_and_wait_port_times_out);
  tcase_add_test(procs, free_ports_are_never_handed_out_twice);
  tcase_add_test(procs, wait_http_ok_needs_a_200);
  tcase_add_test(procs, harness_keep_leaves_the_directory);
  suite_add_tcase(s, procs);

  TCase *helpers = tcase_create("helpers");
  tcase_set_timeout(helpers, 60);
  tcase_add_test(helpers, service_env_is_the_standard_one_with_extras_winning);
  tcase_add_test(helpers,
                 system_wires_running_peers_and_the_suites_settings_win);
  tcase_add_test(helpers,
                 service_starts_when_ready_restarts_on_its_ports_and_stops);
  tcase_add_test(helpers, service_start_fails_when_never_ready);
  tcase_add_test(helpers, http_call_keeps_the_final_headers_body_and_json);
  tcase_add_test(helpers, http_request_without_a_server_has_no_answer);
  suite_add_tcase(s, helpers);

  TCase *servers = tcase_create("servers");
  tcase_set_timeout(servers, 180);
  tcase_add_test(servers, postgres_starts_answers_restarts_and_stops);
  tcase_add_test(servers, redis_starts_answers_ping_and_stops);
  tcase_add_test(servers, cleanup_leaves_no_process_and_no_directory);
  suite_add_tcase(s, servers);

  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
