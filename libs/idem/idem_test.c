/*
 * idem_test.c - libs/idem without a server: the request hash separates
 * tags, methods and payloads; key rules; a table name that is not a plain
 * schema-qualified identifier is refused before any SQL is built (the
 * connection is never touched, so NULL stands in for it).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "libs/idem/idem.h"

START_TEST(hash_separates_inputs) {
  uint8_t a[IDEM_HASH_LEN], b[IDEM_HASH_LEN], c[IDEM_HASH_LEN];
  ck_assert_int_eq(idem_hash("t", "m", "abc", 3, a), ERR_OK);
  ck_assert_int_eq(idem_hash("t", "m", "abc", 3, b), ERR_OK);
  ck_assert_mem_eq(a, b, IDEM_HASH_LEN);
  ck_assert_int_eq(idem_hash("u", "m", "abc", 3, c), ERR_OK);
  ck_assert(memcmp(a, c, IDEM_HASH_LEN) != 0);
  ck_assert_int_eq(idem_hash("t", "ma", "bc", 2, c), ERR_OK);
  ck_assert(memcmp(a, c, IDEM_HASH_LEN) != 0);
  ck_assert_int_eq(idem_hash("t", "m", "abd", 3, c), ERR_OK);
  ck_assert(memcmp(a, c, IDEM_HASH_LEN) != 0);
  ck_assert_int_eq(idem_hash(NULL, NULL, NULL, 0, c), ERR_OK);
}
END_TEST

START_TEST(key_rules) {
  ck_assert(idem_key_valid("k-1"));
  ck_assert(!idem_key_valid(""));
  ck_assert(!idem_key_valid(NULL));
  ck_assert(!idem_key_valid("tab\there"));
  char k[IDEM_KEY_MAX_LEN + 2];
  memset(k, 'x', sizeof k);
  k[IDEM_KEY_MAX_LEN] = '\0';
  ck_assert(idem_key_valid(k));
  k[IDEM_KEY_MAX_LEN] = 'x';
  k[IDEM_KEY_MAX_LEN + 1] = '\0';
  ck_assert(!idem_key_valid(k));
}
END_TEST

START_TEST(bad_tables_refused_before_sql) {
  uint8_t h[IDEM_HASH_LEN] = {0};
  static const char *const bad[] = {
      "idempotency",  "a.b.c",   "x.y; DROP TABLE z",  "Orders.idempotency",
      ".idempotency", "orders.", "orders.idem potency"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    idem_ref r = {.table = bad[i],
                  .tenant_id = "00000000-0000-0000-0000-000000000000",
                  .principal = "p",
                  .key = "k",
                  .method = "m",
                  .hash = h,
                  .ttl_ms = 1000};
    idem_found f;
    ck_assert_int_eq(idem_begin(NULL, &r, &f), ERR_INVAL);
    ck_assert_int_eq(idem_save(NULL, &r, 0, NULL, 0), ERR_INVAL);
    ck_assert_int_eq(idem_claim(NULL, &r, 1000), ERR_INVAL);
    ck_assert_int_eq(idem_release(NULL, &r), ERR_INVAL);
    int64_t n = 5;
    ck_assert_int_eq(idem_expire(NULL, bad[i], 10, &n), ERR_INVAL);
    ck_assert_int_eq(n, 0);
  }
  /* A bad key is refused the same way. */
  idem_ref r = {.table = "orders.idempotency",
                .tenant_id = "00000000-0000-0000-0000-000000000000",
                .principal = "p",
                .key = "",
                .hash = h,
                .ttl_ms = 1};
  idem_found f;
  ck_assert_int_eq(idem_begin(NULL, &r, &f), ERR_INVAL);
  /* A claim's code cannot be saved as an answer. */
  r.key = "k";
  ck_assert_int_eq(idem_save(NULL, &r, IDEM_PENDING, NULL, 0), ERR_INVAL);
  /* A claim's note is bounded, and a length needs bytes. */
  static const uint8_t note[IDEM_NOTE_MAX + 1] = {0};
  ck_assert_int_eq(idem_claim_note(NULL, &r, 1000, note, sizeof note),
                   ERR_INVAL);
  ck_assert_int_eq(idem_claim_note(NULL, &r, 1000, NULL, 3), ERR_INVAL);
}
END_TEST

int main(void) {
  Suite *s = suite_create("idem");
  TCase *tc = tcase_create("pure");
  tcase_add_test(tc, hash_separates_inputs);
  tcase_add_test(tc, key_rules);
  tcase_add_test(tc, bad_tables_refused_before_sql);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
