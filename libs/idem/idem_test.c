/*
 * idem_test.c - libs/idem without a server: the request hash separates
 * tags, methods and payloads; key rules; a table name that is not a plain
 * schema-qualified identifier is refused before any SQL is built (the
 * connection is never touched, so NULL stands in for it); sealed answers
 * (seal.h) open with their key only.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "libs/idem/idem.h"
#include "libs/idem/seal.h"

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

/* The seal key: unkeyed it is the request hash under the seal tag (the
 * bytes tenants always used); a service secret changes it. */
START_TEST(seal_key_is_keyed_by_the_secret) {
  uint8_t secret[IDEM_SECRET_LEN], a[IDEM_SEAL_KEY_LEN], b[IDEM_HASH_LEN];
  memset(secret, 7, sizeof secret);
  ck_assert_int_eq(idem_seal_key(NULL, "s", "m", "abc", 3, a), ERR_OK);
  ck_assert_int_eq(idem_hash("s", "m", "abc", 3, b), ERR_OK);
  ck_assert_mem_eq(a, b, IDEM_HASH_LEN);
  ck_assert_int_eq(idem_seal_key(secret, "s", "m", "abc", 3, a), ERR_OK);
  ck_assert(memcmp(a, b, IDEM_HASH_LEN) != 0);
  secret[0] ^= 1;
  ck_assert_int_eq(idem_seal_key(secret, "s", "m", "abc", 3, b), ERR_OK);
  ck_assert(memcmp(a, b, IDEM_HASH_LEN) != 0);
}
END_TEST

/* Sealed answers open with their key only, and not once changed; the
 * clear text is nowhere in the sealed bytes. */
START_TEST(sealed_answers_open_only_with_their_key) {
  uint8_t key[IDEM_SEAL_KEY_LEN], other[IDEM_SEAL_KEY_LEN];
  memset(key, 1, sizeof key);
  memset(other, 2, sizeof other);
  const char *plain = "whsec_secret-answer";
  size_t n = strlen(plain), len = 0, m = 0;
  uint8_t *box = NULL, *open = NULL;
  ck_assert_int_eq(idem_seal(key, (const uint8_t *)plain, n, &box, &len),
                   ERR_OK);
  ck_assert_uint_eq(len, n + IDEM_SEAL_OVERHEAD);
  for (size_t i = 0; i + 6 <= len; i++)
    ck_assert(memcmp(box + i, "whsec_", 6) != 0);
  ck_assert_int_eq(idem_unseal(key, box, len, &open, &m), ERR_OK);
  ck_assert_uint_eq(m, n);
  ck_assert_mem_eq(open, plain, n);
  free(open);
  ck_assert_int_eq(idem_unseal(other, box, len, &open, &m), ERR_INVAL);
  ck_assert_ptr_null(open);
  box[len - 1] ^= 1;
  ck_assert_int_eq(idem_unseal(key, box, len, &open, &m), ERR_INVAL);
  ck_assert_int_eq(idem_unseal(key, box, IDEM_SEAL_OVERHEAD - 1, &open, &m),
                   ERR_INVAL);
  free(box);
  /* An empty answer seals and opens too. */
  ck_assert_int_eq(idem_seal(key, NULL, 0, &box, &len), ERR_OK);
  ck_assert_int_eq(idem_unseal(key, box, len, &open, &m), ERR_OK);
  ck_assert_uint_eq(m, 0);
  free(open);
  free(box);
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
  tcase_add_test(tc, seal_key_is_keyed_by_the_secret);
  tcase_add_test(tc, sealed_answers_open_only_with_their_key);
  tcase_add_test(tc, bad_tables_refused_before_sql);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
