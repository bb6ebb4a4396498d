/*
 * harness_itest.c - the harness itself, against real processes, a real
 * PostgreSQL and a real Redis.
 *
 * Check runs each test in a forked child; every test calls harness_init()
 * itself, so each gets its own directory, cleaned when its child exits.
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

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

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
    sleep_ms(20);
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
    sleep_ms(20);
  }
  return -1;
}

static bool redis_ping(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
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
  char *argv[] = {"/bin/sh", "-c", "echo to-stdout; echo to-stderr >&2; echo \"x=$HARNESS_X\"", NULL};
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
  ck_assert_int_eq(getpgid(leader), leader);  /* own process group */
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

/* A one-thread HTTP server answering every request with `status`. */
typedef struct http_srv {
  int fd;
  int status;
  int port;
} http_srv;

static void *http_serve(void *arg) {
  http_srv *s = arg;
  for (;;) {
    int c = accept(s->fd, NULL, NULL);
    if (c < 0) return NULL;
    char buf[2048];
    ssize_t n = recv(c, buf, sizeof buf, 0);
    (void)n;
    char resp[128];
    int len = snprintf(resp, sizeof resp,
                       "HTTP/1.0 %d X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                       s->status);
    ssize_t w = send(c, resp, (size_t)len, MSG_NOSIGNAL);
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
  pid_t pids[] = {harness_pid(s), harness_pid(r.proc), harness_pid(pg.proc), backend};

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
  Suite *s = suite_create("harness");
  TCase *procs = tcase_create("processes");
  tcase_set_timeout(procs, 60);
  tcase_add_test(procs, spawn_captures_stdout_stderr_and_env);
  tcase_add_test(procs, wait_exit_reports_status_and_times_out);
  tcase_add_test(procs, exec_failure_exits_127);
  tcase_add_test(procs, stop_kills_a_process_that_ignores_sigterm_and_its_group);
  tcase_add_test(procs, child_dies_with_its_parent);
  tcase_add_test(procs, forked_child_exit_leaves_parents_processes_and_dir);
  tcase_add_test(procs, bin_path_uses_bazel_bin);
  tcase_add_test(procs, free_port_is_free_and_wait_port_times_out);
  tcase_add_test(procs, wait_http_ok_needs_a_200);
  tcase_add_test(procs, harness_keep_leaves_the_directory);
  suite_add_tcase(s, procs);

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
