/*
 * sync_test.c - the sync service's pure parts, no servers: the
 * arguments its constructors refuse. Everything that needs PostgreSQL,
 * Redis or another service is in tests/sync/sync_itest.c.
 */
#include <check.h>
#include <stdlib.h>

#include "services/sync/handlers.h"
#include "services/sync/store.h"

START_TEST(store_refuses_a_missing_pool_and_bad_roles) {
  store *st = NULL;
  ck_assert_int_eq(store_new(NULL, "sync_app", &st), ERR_INVAL);
  ck_assert_ptr_null(st);
  /* A role is pasted into SET LOCAL ROLE: identifiers only. */
  db_pool *fake = (db_pool *)&st; /* never dereferenced: refused first */
  ck_assert_int_eq(store_new(fake, "x; DROP TABLE items", &st), ERR_INVAL);
  ck_assert_int_eq(store_new(fake, "Upper", &st), ERR_INVAL);
  ck_assert_ptr_null(st);
}
END_TEST

START_TEST(handlers_need_a_store_and_a_verifier) {
  sync *h = NULL;
  ck_assert_int_eq(sync_new(NULL, &h), ERR_INVAL);
  sync_config c = {0};
  ck_assert_int_eq(sync_new(&c, &h), ERR_INVAL);
  ck_assert_ptr_null(h);
  sync_free(NULL);
  store_free(NULL);
}
END_TEST

int main(void) {
  Suite *s = suite_create("sync");
  TCase *tc = tcase_create("sync");
  tcase_add_test(tc, store_refuses_a_missing_pool_and_bad_roles);
  tcase_add_test(tc, handlers_need_a_store_and_a_verifier);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
