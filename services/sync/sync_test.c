/*
 * sync_test.c - the sync service's pure parts, no servers: the
 * arguments its constructors refuse and the device secrets. Everything that
 * needs PostgreSQL, Redis or another service is in tests/sync/sync_itest.c.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "services/sync/handlers.h"
#include "services/sync/secret.h"
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

START_TEST(handlers_need_a_store_a_verifier_auth_and_a_key) {
  sync *h = NULL;
  ck_assert_int_eq(sync_new(NULL, &h), ERR_INVAL);
  sync_config c = {0};
  ck_assert_int_eq(sync_new(&c, &h), ERR_INVAL);
  ck_assert_ptr_null(h);
  sync_free(NULL);
  store_free(NULL);
}
END_TEST

#define PEPPER "0123456789abcdef0123456789abcdef"

START_TEST(a_secret_matches_only_its_hash_under_its_pepper) {
  secret_key k, other;
  ck_assert_int_eq(secret_key_init(&k, "too short"), ERR_INVAL);
  ck_assert_int_eq(secret_key_init(&k, NULL), ERR_INVAL);
  ck_assert_int_eq(secret_key_init(&k, PEPPER), ERR_OK);
  ck_assert_int_eq(secret_key_init(&other, PEPPER "x"), ERR_OK);
  char s1[SECRET_TEXT_LEN + 1], s2[SECRET_TEXT_LEN + 1];
  uint8_t h1[SECRET_HASH_LEN], h2[SECRET_HASH_LEN];
  ck_assert_int_eq(secret_new(&k, s1, h1), ERR_OK);
  ck_assert_int_eq(secret_new(&k, s2, h2), ERR_OK);
  ck_assert_uint_eq(strlen(s1), SECRET_TEXT_LEN);
  ck_assert_str_ne(s1, s2); /* random */
  ck_assert(secret_matches(&k, s1, h1));
  ck_assert(!secret_matches(&k, s2, h1));
  ck_assert(!secret_matches(&other, s1, h1)); /* another pepper */
  /* One character changed, cut, extended, not base64url: false. */
  char bad[SECRET_TEXT_LEN + 2];
  memcpy(bad, s1, sizeof s1);
  bad[0] = bad[0] == 'A' ? 'B' : 'A';
  ck_assert(!secret_matches(&k, bad, h1));
  ck_assert(!secret_matches(&k, "", h1));
  ck_assert(!secret_matches(&k, NULL, h1));
  memcpy(bad, s1, sizeof s1);
  bad[SECRET_TEXT_LEN - 1] = '\0';
  ck_assert(!secret_matches(&k, bad, h1));
  memcpy(bad, s1, SECRET_TEXT_LEN);
  bad[SECRET_TEXT_LEN] = 'A';
  bad[SECRET_TEXT_LEN + 1] = '\0';
  ck_assert(!secret_matches(&k, bad, h1));
  memcpy(bad, s1, sizeof s1);
  bad[5] = '+';
  ck_assert(!secret_matches(&k, bad, h1));
  secret_key_wipe(&k);
  secret_key_wipe(&other);
}
END_TEST

int main(void) {
  Suite *s = suite_create("sync");
  TCase *tc = tcase_create("sync");
  tcase_add_test(tc, store_refuses_a_missing_pool_and_bad_roles);
  tcase_add_test(tc, handlers_need_a_store_a_verifier_auth_and_a_key);
  tcase_add_test(tc, a_secret_matches_only_its_hash_under_its_pepper);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
