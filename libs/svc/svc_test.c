/*
 * svc_test.c - the runtime's shared pieces, through a real svc_main in
 * this process (no database; RPC and admin on ephemeral loopback ports):
 * Redis optional, opened with the service's limits and a readiness check,
 * refused when malformed; the token verifier from AUTH_ADDR/AUTH_ISSUER;
 * both freed by the runtime (LeakSanitizer would catch a leak), and a
 * failed init still exits 1 cleanly. Each test runs in its own process
 * (Check's fork mode), as svc_main expects to run once per process.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "libs/paseto/paseto.h"
#include "libs/svc/svc.h"

static const svcid_caller_rule kCallers[] = {{"gateway", SVCID_USER_NONE}};
static const svcid_method_access kMethods[] = {
    {"svctest.v1.T/Declared", kCallers, 1, NULL, NULL}};
static const svcid_access_table kAccess = {"svctest.proto", kMethods, 1};
static const char *register_method; /* init registers it when set */

typedef struct outcome {
  int redis_rc, verifier_rc, second_rc;
  cache *redis;
  rpc_client *auth;
  authn *verifier; /* freed by the time svc_main returns: compare only */
  size_t nkeys;
} outcome;

static outcome got;

static const cfg_entry config[] = {
    {.name = "REDIS_URL", .kind = CFG_STRING, .description = "test"},
    {.name = "AUTH_ADDR", .kind = CFG_STRING, .description = "test"},
    {.name = "AUTH_ISSUER",
     .kind = CFG_STRING,
     .def = "auth",
     .description = "test"},
};

static void base_env(void) {
  setenv("RPC_LISTEN", "tcp://127.0.0.1:0", 1);
  setenv("ADMIN_ADDR", "127.0.0.1", 1);
  setenv("ADMIN_PORT", "0", 1);
  setenv("RPC_WORKERS", "2", 1);
  setenv("LOG_LEVEL", "error", 1);
  unsetenv("REDIS_URL");
  unsetenv("AUTH_ADDR");
  /* This service's key and a trust bundle holding it. */
  static char key_path[] = "/tmp/svc_test_key_XXXXXX";
  static char trust_path[] = "/tmp/svc_test_trust_XXXXXX";
  paseto_secret_key sk;
  paseto_public_key pk;
  ck_assert_int_eq(paseto_init(), ERR_OK);
  paseto_keygen(&sk, &pk);
  char hex[PASETO_SECRET_HEX_LEN + 1], pub[PASETO_PUBLIC_HEX_LEN + 1];
  paseto_secret_key_to_hex(&sk, hex);
  paseto_public_key_to_hex(&pk, pub);
  int kfd = mkstemp(key_path), tfd = mkstemp(trust_path);
  ck_assert(kfd >= 0 && tfd >= 0);
  ck_assert(dprintf(kfd, "%s\n", hex) > 0);
  ck_assert(dprintf(tfd, "svctest %s\n", pub) > 0);
  close(kfd);
  close(tfd);
  setenv("SERVICE_KEY_FILE", key_path, 1);
  setenv("SERVICE_TRUST_FILE", trust_path, 1);
  register_method = NULL;
}

static void noop(void *arg, const rpc_call *call, rpc_reply *reply) {
  (void)arg;
  (void)call;
  (void)reply;
}

/* Opens what the environment names, records the outcome, stops. */
static int open_all(svc *s, void *arg) {
  if (register_method != NULL &&
      rpc_server_register(svc_rpc(s), register_method, noop, NULL) != ERR_OK)
    return ERR_INTERNAL;
  cache_config cc = {.max_conns = 2, .connect_timeout_ms = 100};
  got.redis_rc = svc_redis_open(s, &cc, "no redis in this test", &got.redis);
  got.second_rc = ERR_OK;
  if (got.redis != NULL) {
    cache *again = NULL;
    got.second_rc = svc_redis_open(s, NULL, NULL, &again);
  }
  got.verifier_rc = -1;
  const char *auth = cfg_str(svc_cfg(s), "AUTH_ADDR");
  if (auth != NULL && auth[0] != '\0')
    got.verifier_rc = svc_verifier_open(s, got.redis, &got.auth, &got.verifier);
  if (got.verifier != NULL) got.nkeys = authn_key_count(got.verifier);
  svc_stop();
  return *(const int *)arg;
}

static int run(int init_rc) {
  svc_spec spec = {.name = "svctest",
                   .config = config,
                   .nconfig = sizeof config / sizeof config[0],
                   .init = open_all,
                   .arg = &init_rc,
                   .access = &kAccess};
  return svc_main(&spec);
}

START_TEST(redis_is_optional) {
  base_env();
  ck_assert_int_eq(run(ERR_OK), 0);
  ck_assert_int_eq(got.redis_rc, ERR_OK);
  ck_assert_ptr_null(got.redis);
}
END_TEST

START_TEST(redis_is_opened_once_and_freed_by_the_runtime) {
  base_env();
  setenv("REDIS_URL", "redis://127.0.0.1:1/0", 1); /* never connected */
  ck_assert_int_eq(run(ERR_OK), 0);
  ck_assert_int_eq(got.redis_rc, ERR_OK);
  ck_assert_ptr_nonnull(got.redis);
  ck_assert_int_eq(got.second_rc, ERR_EXISTS);
}
END_TEST

START_TEST(malformed_redis_url_is_refused) {
  base_env();
  setenv("REDIS_URL", "http://not-redis", 1);
  ck_assert_int_eq(run(ERR_OK), 0);
  ck_assert_int_eq(got.redis_rc, ERR_INVAL);
  ck_assert_ptr_null(got.redis);
}
END_TEST

START_TEST(verifier_uses_auth_addr_and_is_freed_by_the_runtime) {
  base_env();
  setenv("REDIS_URL", "redis://127.0.0.1:1/0", 1);
  setenv("AUTH_ADDR", "tcp://127.0.0.1:1", 1); /* keys fetched later */
  ck_assert_int_eq(run(ERR_OK), 0);
  ck_assert_int_eq(got.verifier_rc, ERR_OK);
  ck_assert_ptr_nonnull(got.auth);
  ck_assert_ptr_nonnull(got.verifier);
  ck_assert_uint_eq(got.nkeys, 0); /* auth unreachable: fetched later */
}
END_TEST

START_TEST(bad_auth_addr_is_refused) {
  base_env();
  setenv("AUTH_ADDR", "nonsense://x", 1);
  ck_assert_int_eq(run(ERR_OK), 0);
  ck_assert_int_eq(got.verifier_rc, ERR_INVAL);
  ck_assert_ptr_null(got.auth);
  ck_assert_ptr_null(got.verifier);
}
END_TEST

START_TEST(failed_init_still_frees_what_it_opened) {
  base_env();
  setenv("REDIS_URL", "redis://127.0.0.1:1/0", 1);
  setenv("AUTH_ADDR", "tcp://127.0.0.1:1", 1);
  ck_assert_int_eq(run(ERR_INTERNAL), 1);
  ck_assert_int_eq(got.verifier_rc, ERR_OK);
}
END_TEST

/* svc_main runs once per process (each test is forked): one run each. */
START_TEST(declared_method_starts) {
  base_env();
  register_method = "svctest.v1.T/Declared";
  ck_assert_int_eq(run(ERR_OK), 0);
}
END_TEST

START_TEST(undeclared_method_stops_start_up) {
  base_env();
  register_method = "svctest.v1.T/Undeclared";
  ck_assert_int_eq(run(ERR_OK), 1);
}
END_TEST

START_TEST(no_service_key_no_start) {
  base_env();
  unsetenv("SERVICE_KEY_FILE");
  ck_assert_int_eq(run(ERR_OK), 1);
}
END_TEST

START_TEST(unreadable_trust_bundle_no_start) {
  base_env();
  setenv("SERVICE_TRUST_FILE", "/nonexistent/trust", 1);
  ck_assert_int_eq(run(ERR_OK), 1);
}
END_TEST

int main(void) {
  Suite *s = suite_create("svc");
  TCase *tc = tcase_create("svc");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, redis_is_optional);
  tcase_add_test(tc, redis_is_opened_once_and_freed_by_the_runtime);
  tcase_add_test(tc, malformed_redis_url_is_refused);
  tcase_add_test(tc, verifier_uses_auth_addr_and_is_freed_by_the_runtime);
  tcase_add_test(tc, bad_auth_addr_is_refused);
  tcase_add_test(tc, failed_init_still_frees_what_it_opened);
  tcase_add_test(tc, declared_method_starts);
  tcase_add_test(tc, undeclared_method_stops_start_up);
  tcase_add_test(tc, no_service_key_no_start);
  tcase_add_test(tc, unreadable_trust_bundle_no_start);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_set_fork_status(sr, CK_FORK);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
