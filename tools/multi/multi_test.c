/*
 * multi_test.c - runs the multi binary as a user would, where no server
 * is needed: every usage error exits 2 before anything is sent, and
 * servers that refuse connections are reported by name with exit 1 (the
 * engine's retry and report paths, with nothing listening). Behaviour
 * against real gateways is //tests/clients:multi_itest.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_bin[4096], g_out[65536];

static void find_binary(void) {
  const char *srcdir = getenv("TEST_SRCDIR"), *ws = getenv("TEST_WORKSPACE");
  if (srcdir && ws)
    snprintf(g_bin, sizeof g_bin, "%s/%s/tools/multi/multi", srcdir, ws);
  else
    snprintf(g_bin, sizeof g_bin, "tools/multi/multi");
}

/* Runs "MULTI_PASSWORD=pw multi args" (stdout kept in g_out); exit code. */
static int run(const char *args) {
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "MULTI_PASSWORD=pw %s %s 2>/dev/null", g_bin, args);
  FILE *f = popen(cmd, "r");
  ck_assert_ptr_nonnull(f);
  size_t n = fread(g_out, 1, sizeof g_out - 1, f);
  g_out[n] = '\0';
  int st = pclose(f);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A loopback port nothing listens on (bound, then released). */
static int closed_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  close(fd);
  return ntohs(a.sin_port);
}

#define CREDS "--tenant t --email e@x.test "
#define SRV "--server http://127.0.0.1:1 "

START_TEST(usage_errors_exit_2) {
  ck_assert_int_eq(run(CREDS "read /v1/orders"), 2); /* no server */
  ck_assert_int_eq(run(SRV CREDS "--mode fastest write /v1/x '{}'"), 2);
  ck_assert_int_eq(run(SRV CREDS "write /v1/x '{not json'"), 2);
  ck_assert_int_eq(run(SRV CREDS "read v1/no-slash"), 2);
  ck_assert_int_eq(run(SRV CREDS "read '/v1/with space'"), 2);
  ck_assert_int_eq(run(SRV CREDS "--retries 11 read /v1/x"), 2);
  ck_assert_int_eq(run(SRV CREDS "--timeout 5 read /v1/x"), 2);
  ck_assert_int_eq(run(SRV CREDS "--mode most read /v1/x"), 2);
  ck_assert_int_eq(run(SRV CREDS "--method GET write /v1/x '{}'"), 2);
  ck_assert_int_eq(run("--server ftp://x " CREDS "read /v1/x"), 2);
  ck_assert_int_eq(run("--server http://x/ " CREDS "read /v1/x"), 2);
  ck_assert_int_eq(run(SRV "--email e read /v1/x"), 2); /* no tenant */
  char key[300], args[4096];
  memset(key, 'k', 256);
  key[256] = '\0';
  snprintf(args, sizeof args, SRV CREDS "--idempotency-key %s write /v1/x '{}'",
           key);
  ck_assert_int_eq(run(args), 2);
  char many[2048] = "";
  size_t used = 0;
  for (int i = 0; i < 17; i++)
    used += (size_t)snprintf(many + used, sizeof many - used, "%s", SRV);
  snprintf(args, sizeof args, "%s" CREDS "read /v1/x", many);
  ck_assert_int_eq(run(args), 2);
  /* No password anywhere. */
  char cmd[8192];
  snprintf(cmd, sizeof cmd,
           "env -u MULTI_PASSWORD %s " SRV CREDS "read /v1/x >/dev/null 2>&1",
           g_bin);
  int st = system(cmd);
  ck_assert_int_eq(WEXITSTATUS(st), 2);
}
END_TEST

START_TEST(unreachable_servers_are_named_and_exit_1) {
  int p1 = closed_port(), p2 = closed_port();
  char args[512];
  snprintf(args, sizeof args,
           "--server http://127.0.0.1:%d --server http://127.0.0.1:%d "
           "--retries 1 " CREDS "write /v1/products '{\"name\":\"x\"}'",
           p1, p2);
  ck_assert_int_eq(run(args), 1);
  char name[64];
  snprintf(name, sizeof name, "http://127.0.0.1:%d (login:", p1);
  ck_assert_ptr_nonnull(strstr(g_out, name));
  snprintf(name, sizeof name, "http://127.0.0.1:%d (login:", p2);
  ck_assert_ptr_nonnull(strstr(g_out, name));
  ck_assert_ptr_nonnull(strstr(g_out, "result: all FAILED: 0/2 accepted"));

  snprintf(args, sizeof args,
           "--json --retries 0 --server http://127.0.0.1:%d " CREDS
           "read /v1/orders",
           p1);
  ck_assert_int_eq(run(args), 1);
  ck_assert_ptr_nonnull(strstr(g_out, "\"outcome\":\"login_failed\""));
  ck_assert_ptr_nonnull(strstr(g_out, "\"ok\":false"));
  ck_assert_ptr_null(strstr(g_out, "\"pw\""));
}
END_TEST

int main(void) {
  find_binary();
  Suite *s = suite_create("multi");
  TCase *tc = tcase_create("cli");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, usage_errors_exit_2);
  tcase_add_test(tc, unreachable_servers_are_named_and_exit_1);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
