/*
 * rpc_test.c - runs the rpc binary as an operator would, against a real
 * libs/rpc server started in this process on a free loopback port.
 *
 * Design: the server registers two auth methods behind the production
 * service-identity guard (libs/svc/identity.h) with a verifier for
 * audience "auth" over a trust bundle file holding keys generated here,
 * and the generated auth table for the methods' callers. The Keys handler
 * echoes what reached it (the verified caller, the tenant, whether the access
 * token matched), so a passing call proves the identity, tenant and token went
 * through the tool, not just that something answered. The tool runs as a
 * child process with stdin/stdout/stderr on temporary files (no pipe can
 * fill up); every call has a deadline, so nothing can hang.
 */
#include <check.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "libs/base/err.h"
#include "libs/base/strutil.h"
#include "libs/paseto/paseto.h"
#include "libs/rpc/rpc.h"
#include "libs/svc/identity.h"
#include "libs/svcid/access.h"
#include "libs/svcid/svcid.h"
#include "proto/auth/v1/auth.pb-c.h"
#include "proto/auth/v1/auth_access.h"

#define OUT_MAX 65536
#define ACCESS_TOKEN "tok-123"

struct run {
  int status; /* exit status, or -1 if it did not exit normally */
  char out[OUT_MAX];
  char err[OUT_MAX];
};

static char bin_path[4096];
static char tmp_dir[4096];

static void find_paths(void) {
  const char *srcdir = getenv("TEST_SRCDIR");
  const char *ws = getenv("TEST_WORKSPACE");
  const char *tmp = getenv("TEST_TMPDIR");
  if (srcdir && ws)
    snprintf(bin_path, sizeof bin_path, "%s/%s/tools/rpc/rpc", srcdir, ws);
  else
    snprintf(bin_path, sizeof bin_path, "tools/rpc/rpc");
  str_copy(tmp_dir, tmp ? tmp : "/tmp", sizeof tmp_dir);
}

static int temp_file(void) {
  char path[4200];
  snprintf(path, sizeof path, "%s/rpc_test.XXXXXX", tmp_dir);
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  unlink(path);
  return fd;
}

static void slurp(int fd, char *buf) {
  ssize_t n;
  size_t len = 0;
  lseek(fd, 0, SEEK_SET);
  while (len < OUT_MAX - 1 && (n = read(fd, buf + len, OUT_MAX - 1 - len)) > 0)
    len += (size_t)n;
  buf[len] = '\0';
  close(fd);
}

/* Runs the tool with env ("NAME=value" or NULL) added to a clean
 * environment, stdin input, and the NULL-terminated arguments. */
static void run(struct run *r, const char *env, const char *input, ...) {
  char *argv[32], *envp[3] = {NULL, NULL, NULL};
  int argc = 0, in = temp_file(), out = temp_file(), err = temp_file();
  va_list ap;
  argv[argc++] = bin_path;
  va_start(ap, input);
  for (char *a; (a = va_arg(ap, char *)) != NULL && argc < 31;)
    argv[argc++] = a;
  va_end(ap);
  argv[argc] = NULL;
  envp[0] = (char *)"PATH=/usr/bin:/bin";
  envp[1] = (char *)env;
  if (input)
    ck_assert_int_eq(write(in, input, strlen(input)), (ssize_t)strlen(input));
  lseek(in, 0, SEEK_SET);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    execve(bin_path, argv, envp);
    _exit(127);
  }
  int st = 0;
  ck_assert_int_eq(waitpid(pid, &st, 0), pid);
  close(in);
  r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  slurp(out, r->out);
  slurp(err, r->err);
}

/* ---- the server ------------------------------------------------------ */

typedef struct fixture {
  rpc_server *srv;
  svc_identity *identity; /* the production guard, as a service runs it */
  char addr[64];
  char gateway_key[4200]; /* key files: gateway (in the bundle), rogue */
  char rogue_key[4200];
  char token_file[4200];
  char gateway_hex[PASETO_SECRET_HEX_LEN + 1]; /* must never be printed */
} fixture;

static fixture fx;

/* Echoes what reached the handler in a decodable KeysResponse. */
static void keys_handler(void *arg, const rpc_call *call, rpc_reply *reply) {
  Auth__V1__PublicKey key = AUTH__V1__PUBLIC_KEY__INIT;
  Auth__V1__PublicKey *keys[1] = {&key};
  Auth__V1__KeysResponse resp = AUTH__V1__KEYS_RESPONSE__INIT;
  (void)arg;
  key.kid = (char *)call->caller;
  key.alg = (char *)call->tenant_id;
  key.status = strcmp(call->token, ACCESS_TOKEN) == 0 ? "token-matched"
                                                      : "token-missing";
  resp.n_keys = 1;
  resp.keys = keys;
  if (rpc_reply_set_message(reply, &resp.base) != ERR_OK)
    rpc_reply_status(reply, RPC_INTERNAL, NULL);
}

static void write_file(char *path, size_t cap, const char *name,
                       const char *text) {
  snprintf(path, cap, "%s/%s", tmp_dir, name);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
}

/* A key pair: the secret as hex into a file, the public as PASERK. */
static void make_key(char *path, size_t cap, const char *name, char *hex,
                     char paserk[PASETO_PASERK_PUBLIC_LEN + 1]) {
  paseto_secret_key sk;
  paseto_public_key pk;
  char shex[PASETO_SECRET_HEX_LEN + 1];
  paseto_keygen(&sk, &pk);
  paseto_secret_key_to_hex(&sk, shex);
  paseto_paserk_public(&pk, paserk);
  write_file(path, cap, name, shex);
  if (hex) memcpy(hex, shex, sizeof shex);
  sodium_memzero(shex, sizeof shex);
  paseto_secret_key_wipe(&sk);
}

static void start_server(void) {
  char gw_pub[PASETO_PASERK_PUBLIC_LEN + 1], rogue_pub[sizeof gw_pub];
  char bundle_text[512], bundle_path[4200];
  svcid_bundle *bundle = NULL;
  int bad = 0;
  find_paths();
  ck_assert_int_eq(paseto_init(), ERR_OK);
  make_key(fx.gateway_key, sizeof fx.gateway_key, "gateway.key", fx.gateway_hex,
           gw_pub);
  make_key(fx.rogue_key, sizeof fx.rogue_key, "rogue.key", NULL, rogue_pub);
  /* Only the gateway's key is trusted. */
  snprintf(bundle_text, sizeof bundle_text, "# test bundle\ngateway %s\n",
           gw_pub);
  write_file(bundle_path, sizeof bundle_path, "bundle", bundle_text);
  write_file(fx.token_file, sizeof fx.token_file, "access-token",
             "  " ACCESS_TOKEN "\n");
  ck_assert_int_eq(svcid_bundle_load(bundle_path, &bundle, &bad), ERR_OK);
  svcid_verifier *verifier = NULL;
  ck_assert_int_eq(svcid_verifier_new("auth", bundle, &verifier), ERR_OK);
  ck_assert_int_eq(svc_identity_new(NULL, verifier, &fx.identity), ERR_OK);

  ck_assert_int_eq(rpc_server_new(NULL, &fx.srv), ERR_OK);
  ck_assert_int_eq(svc_identity_guard(fx.identity, fx.srv, &auth_v1_access),
                   ERR_OK);
  ck_assert_int_eq(
      rpc_server_register(fx.srv, "auth.v1.Auth/Keys", keys_handler, NULL),
      ERR_OK);
  ck_assert_int_eq(rpc_server_register(fx.srv, "auth.v1.Auth/DeleteTenantUsers",
                                       keys_handler, NULL),
                   ERR_OK);
  ck_assert_int_eq(rpc_server_start(fx.srv, "tcp://127.0.0.1:0"), ERR_OK);
  snprintf(fx.addr, sizeof fx.addr, "tcp://127.0.0.1:%d",
           rpc_server_port(fx.srv));
}

static void stop_server(void) {
  /* The tool's processes have exited; let their connections go before
   * closing (nng 1.5.2 can hang closing while one is going, ADR 0007). */
  ck_assert_int_eq(rpc_server_wait_disconnected(fx.srv, 10000), ERR_OK);
  rpc_server_close(fx.srv);
  svc_identity_free(fx.identity);
  memset(&fx, 0, sizeof fx);
}

static uint64_t received(void) {
  rpc_server_stats st;
  rpc_server_get_stats(fx.srv, &st);
  return st.received;
}

static void assert_no_secret(const struct run *r) {
  ck_assert_ptr_null(strstr(r->out, fx.gateway_hex));
  ck_assert_ptr_null(strstr(r->err, fx.gateway_hex));
  ck_assert_ptr_null(strstr(r->out, ACCESS_TOKEN));
  ck_assert_ptr_null(strstr(r->err, ACCESS_TOKEN));
}

/* ---- list and describe ---------------------------------------------- */

START_TEST(list_shows_methods_messages_and_callers) {
  struct run r;
  find_paths();
  run(&r, NULL, NULL, "list", NULL);
  ck_assert_int_eq(r.status, 0);
  ck_assert_ptr_nonnull(strstr(r.out, "auth.v1.Auth/CreateUser"));
  ck_assert_ptr_nonnull(strstr(r.out, "auth.v1.CreateUserRequest -> "
                                      "auth.v1.CreateUserResponse"));
  ck_assert_ptr_nonnull(strstr(r.out, "callers: gateway[admin] tenants[none]"));
  ck_assert_ptr_nonnull(strstr(r.out, "orders.v1.Orders/CreateOrder"));
  ck_assert_ptr_nonnull(strstr(r.out, "tenants.v1.Tenants/Suspend"));
  ck_assert_ptr_nonnull(strstr(r.out, "callers: operator[none]"));

  run(&r, NULL, NULL, "list", "auth", NULL);
  ck_assert_int_eq(r.status, 0);
  ck_assert_ptr_nonnull(strstr(r.out, "auth.v1.Auth/DeleteTenantUsers"));
  ck_assert_ptr_null(strstr(r.out, "orders.v1"));
  run(&r, NULL, NULL, "list", "orders.v1.Events", NULL);
  ck_assert_int_eq(r.status, 0);
  ck_assert_ptr_nonnull(strstr(r.out, "orders.v1.Events/Replay"));
  ck_assert_ptr_null(strstr(r.out, "orders.v1.Orders/"));

  run(&r, NULL, NULL, "list", "au", NULL); /* not a prefix match */
  ck_assert_int_eq(r.status, 2);
}
END_TEST

START_TEST(describe_shows_fields_of_request_reply_and_nested_types) {
  struct run r;
  find_paths();
  run(&r, NULL, NULL, "describe", "auth.v1.Auth/Login", NULL);
  ck_assert_int_eq(r.status, 0);
  ck_assert_ptr_nonnull(strstr(r.out, "message auth.v1.LoginRequest {"));
  ck_assert_ptr_nonnull(strstr(r.out, "  string email = 1;"));
  ck_assert_ptr_nonnull(strstr(r.out, "  string password = 2;"));
  ck_assert_ptr_nonnull(strstr(r.out, "  auth.v1.User user = 5;"));
  ck_assert_ptr_nonnull(strstr(r.out, "message auth.v1.User {"));
  ck_assert_ptr_nonnull(strstr(r.out, "callers:  gateway[anonymous]"));

  run(&r, NULL, NULL, "describe", "orders.v1.Orders/GetOrder", NULL);
  ck_assert_int_eq(r.status, 0);
  ck_assert_ptr_nonnull(strstr(r.out, "enum orders.v1.OrderStatus {"));
  ck_assert_ptr_nonnull(strstr(r.out, "  repeated orders.v1.OrderItem items"));

  run(&r, NULL, NULL, "describe", "auth.v1.Auth/Nope", NULL);
  ck_assert_int_eq(r.status, 2);
  ck_assert_ptr_nonnull(strstr(r.err, "unknown method"));
}
END_TEST

/* ---- call ------------------------------------------------------------ */

START_TEST(call_without_identity_is_refused) {
  struct run r;
  start_server();
  run(&r, NULL, NULL, "call", "--addr", fx.addr, "--deadline-ms", "5000",
      "auth.v1.Auth/Keys", "{}", NULL);
  ck_assert_int_eq(r.status, 1);
  ck_assert_msg(strstr(r.err, "UNAUTHENTICATED: service identity required"),
                "stderr: %s", r.err);
  ck_assert_str_eq(r.out, "");
  ck_assert_uint_eq(received(), 1);

  /* A key the bundle does not hold, under a trusted service's name. */
  run(&r, NULL, NULL, "call", "--addr", fx.addr, "--as", "gateway",
      "--key-file", fx.rogue_key, "auth.v1.Auth/Keys", NULL);
  ck_assert_int_eq(r.status, 1);
  ck_assert_msg(strstr(r.err, "UNAUTHENTICATED: service identity required"),
                "stderr: %s", r.err);
  stop_server();
}
END_TEST

START_TEST(call_with_identity_prints_the_reply) {
  struct run r;
  char env[128];
  start_server();
  /* The address from AUTH_ADDR, the token from a file. */
  snprintf(env, sizeof env, "AUTH_ADDR=%s", fx.addr);
  run(&r, env, "{}", "call", "--as", "gateway", "--key-file", fx.gateway_key,
      "--tenant", "t-42", "--token-file", fx.token_file, "auth.v1.Auth/Keys",
      "-", NULL);
  ck_assert_msg(r.status == 0, "status %d stderr: %s", r.status, r.err);
  ck_assert_ptr_nonnull(strstr(r.out, "\"keys\": ["));
  ck_assert_ptr_nonnull(strstr(r.out, "\"kid\": \"gateway\""));
  ck_assert_ptr_nonnull(strstr(r.out, "\"alg\": \"t-42\""));
  ck_assert_ptr_nonnull(strstr(r.out, "\"status\": \"token-matched\""));
  assert_no_secret(&r);

  /* Identified, but not among DeleteTenantUsers' callers. */
  run(&r, env, NULL, "call", "--as", "gateway", "--key-file", fx.gateway_key,
      "auth.v1.Auth/DeleteTenantUsers", "{\"tenant_id\":\"t-42\"}", NULL);
  ck_assert_int_eq(r.status, 1);
  ck_assert_msg(
      strstr(r.err, "PERMISSION_DENIED: service gateway may not call"),
      "stderr: %s", r.err);
  assert_no_secret(&r);
  stop_server();
}
END_TEST

START_TEST(bad_json_is_refused_before_any_call) {
  struct run r;
  start_server();
  run(&r, NULL, NULL, "call", "--addr", fx.addr, "--as", "gateway",
      "--key-file", fx.gateway_key, "auth.v1.Auth/Login",
      "{\"email\": 3, \"bogus\": true}", NULL);
  ck_assert_int_eq(r.status, 2);
  ck_assert_ptr_nonnull(strstr(r.err, "not a valid auth.v1.LoginRequest"));
  ck_assert_ptr_nonnull(strstr(r.err, "email: must be a string"));
  ck_assert_ptr_nonnull(strstr(r.err, "bogus: unknown field"));

  run(&r, NULL, "{\"email\":", "call", "--addr", fx.addr, "auth.v1.Auth/Login",
      "-", NULL);
  ck_assert_int_eq(r.status, 2);
  ck_assert_ptr_nonnull(strstr(r.err, "invalid JSON"));

  run(&r, NULL, NULL, "call", "--addr", fx.addr, "auth.v1.Auth/Nope", NULL);
  ck_assert_int_eq(r.status, 2);
  /* --as without the key file: usage, and no key on argv ever. */
  run(&r, NULL, NULL, "call", "--addr", fx.addr, "--as", "gateway",
      "auth.v1.Auth/Keys", NULL);
  ck_assert_int_eq(r.status, 2);
  ck_assert_uint_eq(received(), 0);
  stop_server();
}
END_TEST

int main(void) {
  Suite *s = suite_create("rpc tool");
  TCase *tc = tcase_create("cli");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, list_shows_methods_messages_and_callers);
  tcase_add_test(tc, describe_shows_fields_of_request_reply_and_nested_types);
  tcase_add_test(tc, call_without_identity_is_refused);
  tcase_add_test(tc, call_with_identity_prints_the_reply);
  tcase_add_test(tc, bad_json_is_refused_before_any_call);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
