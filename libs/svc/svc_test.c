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
#include <stdlib.h>

#include "libs/svc/svc.h"

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
    {.name = "AUTH_ISSUER", .kind = CFG_STRING, .def = "auth",
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
}

/* Opens what the environment names, records the outcome, stops. */
static int open_all(svc *s, void *arg) {
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
    got.verifier_rc = svc_verifier_open(s, got.redis, &got.auth,
                                        &got.verifier);
  if (got.verifier != NULL)
    got.nkeys = authn_key_count(got.verifier);
  svc_stop();
  return *(const int *)arg;
}

static int run(int init_rc) {
  svc_spec spec = {.name = "svctest", .config = config,
                   .nconfig = sizeof config / sizeof config[0],
                   .init = open_all, .arg = &init_rc};
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
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_set_fork_status(sr, CK_FORK);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
