/*
 * notifications_test.c - the notifications service's pure parts, no servers: the
 * arguments its constructors refuse. Everything that needs PostgreSQL,
 * Redis or another service is in tests/notifications/notifications_itest.c.
 */
#include <check.h>
#include <stdlib.h>

#include "services/notifications/handlers.h"
#include "services/notifications/store.h"

START_TEST(store_refuses_a_missing_pool_and_bad_roles) {
  store *st = NULL;
  ck_assert_int_eq(store_new(NULL, "notifications_app", &st), ERR_INVAL);
  ck_assert_ptr_null(st);
  /* A role is pasted into SET LOCAL ROLE: identifiers only. */
  db_pool *fake = (db_pool *)&st; /* never dereferenced: refused first */
  ck_assert_int_eq(store_new(fake, "x; DROP TABLE items", &st), ERR_INVAL);
  ck_assert_int_eq(store_new(fake, "Upper", &st), ERR_INVAL);
  ck_assert_ptr_null(st);
}
END_TEST

START_TEST(handlers_need_a_store_and_a_verifier) {
  notifications *h = NULL;
  ck_assert_int_eq(notifications_new(NULL, &h), ERR_INVAL);
  notifications_config c = {0};
  ck_assert_int_eq(notifications_new(&c, &h), ERR_INVAL);
  ck_assert_ptr_null(h);
  notifications_free(NULL);
  store_free(NULL);
}
END_TEST

int main(void) {
  Suite *s = suite_create("notifications");
  TCase *tc = tcase_create("notifications");
  tcase_add_test(tc, store_refuses_a_missing_pool_and_bad_roles);
  tcase_add_test(tc, handlers_need_a_store_and_a_verifier);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
