/*
 * sync_test.c - the sync service's pure parts, no servers: the
 * arguments its constructors refuse and the device secrets. Everything that
 * needs PostgreSQL, Redis or another service is in tests/sync/sync_itest.c.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "services/sync/files.h"
#include "services/sync/handlers.h"
#include "services/sync/heartbeat.h"
#include "services/sync/hlc.h"
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

static heartbeat_beat beat(const char *tid, const char *did, int64_t seen,
                           int32_t pending, const char *ver) {
  heartbeat_beat b;
  memset(&b, 0, sizeof b);
  snprintf(b.tid, sizeof b.tid, "%s", tid);
  snprintf(b.did, sizeof b.did, "%s", did);
  b.seen_ms = seen;
  b.pending = pending;
  b.has_ver = ver != NULL;
  snprintf(b.ver, sizeof b.ver, "%s", ver ? ver : "");
  return b;
}

/* The flush writes each device once: its latest time, and the latest
 * app_version and pending that a beat gave (not a later beat's "keep"). */
START_TEST(beats_fold_into_one_per_device_with_the_latest_values) {
  heartbeat_beat b[] = {
      beat("t2", "d1", 50, -1, NULL),  beat("t1", "d1", 30, 3, NULL),
      beat("t1", "d1", 10, 1, "1.0"),  beat("t1", "d2", 20, -1, NULL),
      beat("t1", "d1", 40, -1, "1.1"), beat("t1", "d1", 35, -1, NULL),
  };
  size_t n = heartbeat_coalesce(b, sizeof b / sizeof b[0]);
  ck_assert_uint_eq(n, 3);
  ck_assert_str_eq(b[0].tid, "t1");
  ck_assert_str_eq(b[0].did, "d1");
  ck_assert_int_eq(b[0].seen_ms, 40);
  ck_assert_int_eq(b[0].pending, 3);
  ck_assert(b[0].has_ver);
  ck_assert_str_eq(b[0].ver, "1.1");
  ck_assert_str_eq(b[1].did, "d2");
  ck_assert_int_eq(b[1].seen_ms, 20);
  ck_assert_int_eq(b[1].pending, -1);
  ck_assert(!b[1].has_ver);
  ck_assert_str_eq(b[2].tid, "t2");
  ck_assert_uint_eq(heartbeat_coalesce(b, 0), 0);
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

START_TEST(hlcs_order_by_wall_then_counter_then_node) {
  hlc a, b, c, d, plain;
  ck_assert_int_eq(hlc_parse("2026-12-06T10:00:00.000Z-0001-dev-a", &a),
                   ERR_OK);
  ck_assert_int_eq(hlc_parse("2026-12-06T10:00:00.000Z-000a-dev-a", &b),
                   ERR_OK);
  ck_assert_int_eq(hlc_parse("2026-12-06T10:00:00.000Z-000a-dev-b", &c),
                   ERR_OK);
  ck_assert_int_eq(hlc_parse("2026-12-06T10:00:00.001Z-0000-dev-a", &d),
                   ERR_OK);
  ck_assert_int_eq(hlc_parse("2026-12-06T10:00:00Z", &plain), ERR_OK);
  ck_assert_uint_eq(b.counter, 10);
  ck_assert_int_lt(hlc_compare(&plain, &a), 0);
  ck_assert_int_lt(hlc_compare(&a, &b), 0);
  ck_assert_int_lt(hlc_compare(&b, &c), 0);
  ck_assert_int_lt(hlc_compare(&c, &d), 0);
  ck_assert_int_gt(hlc_compare(&d, &a), 0);
  ck_assert_int_eq(hlc_compare(&a, &a), 0);
  char text[HLC_TEXT_MAX + 1];
  ck_assert_int_eq(hlc_format(&b, text), ERR_OK);
  ck_assert_str_eq(text, "2026-12-06T10:00:00.000Z-000a-dev-a");
  const char *bad[] = {"",
                       "yesterday",
                       "2026-12-06T10:00:00.000Z-01-x",
                       "2026-12-06T10:00:00.000Z-00g1-x",
                       "2026-12-06T10:00:00.000Z-0001-",
                       "2026-12-06T10:00:00.000Z-0001-a b",
                       "2026-13-06T10:00:00.000Z-0001-x"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(hlc_parse(bad[i], &a) == ERR_INVAL, "%s parsed", bad[i]);
}
END_TEST

START_TEST(file_names_are_64_lower_case_hex_digits) {
  uint8_t h[32];
  const char *ok =
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  ck_assert_int_eq(files_hash_parse(ok, h), ERR_OK);
  ck_assert_uint_eq(h[0], 0xe3);
  ck_assert_uint_eq(h[31], 0x55);
  ck_assert_int_eq(
      files_hash_parse(
          "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B"
          "7852B855",
          h),
      ERR_INVAL);
  ck_assert_int_eq(files_hash_parse("e3b0", h), ERR_INVAL);
  ck_assert_int_eq(files_hash_parse(NULL, h), ERR_INVAL);
  ck_assert_int_eq(
      files_hash_parse(
          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85g",
          h),
      ERR_INVAL);
}
END_TEST

/* files_part_check: every bad field of a PutFilePart named at once, and
 * the bounds exactly at their limits. */
START_TEST(a_file_part_is_checked_whole_before_the_store) {
  const char *hex =
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  const char *id = "0190F3A2-7B6C-7DEF-8123-456789ABCDEF";
  uint8_t h[32];
  char canon[UUID_STR_LEN + 1];
  vlist v;
  const int64_t mib = 1024 * 1024;
  vlist_init(&v);
  ck_assert_int_eq(
      files_part_check(hex, id, 25 * mib, 24 * mib, 1024 * 1024, h, canon, &v),
      ERR_OK);
  ck_assert_str_eq(canon, "0190f3a2-7b6c-7def-8123-456789abcdef");
  vlist_init(&v); /* the empty file: one empty part */
  ck_assert_int_eq(files_part_check(hex, id, 0, 0, 0, h, canon, &v), ERR_OK);
  vlist_init(&v);
  ck_assert_int_eq(files_part_check("E3B0", "x", 25 * mib + 1, -1,
                                    1024 * 1024 + 1, h, canon, &v),
                   ERR_INVAL);
  ck_assert(vlist_has(&v, "sha256") && vlist_has(&v, "upload_id") &&
            vlist_has(&v, "size") && vlist_has(&v, "offset") &&
            vlist_has(&v, "data"));
  vlist_init(&v); /* past the end */
  ck_assert_int_eq(files_part_check(hex, id, 100, 90, 11, h, canon, &v),
                   ERR_INVAL);
  ck_assert(vlist_has(&v, "data"));
  vlist_init(&v); /* empty, but the file is not */
  ck_assert_int_eq(files_part_check(hex, id, 100, 0, 0, h, canon, &v),
                   ERR_INVAL);
  ck_assert(vlist_has(&v, "data"));
  vlist_init(&v);
  ck_assert_int_eq(files_part_check(hex, NULL, 100, 0, 10, h, canon, &v),
                   ERR_INVAL);
  ck_assert(vlist_has(&v, "upload_id"));
}
END_TEST

START_TEST(the_files_module_needs_an_upload_idle_time) {
  files *f = NULL;
  store *st = (store *)&f;  /* never dereferenced: refused first */
  authn *au = (authn *)&st; /* likewise */
  files_config c = {.store = st,
                    .verifier = au,
                    .quota_bytes = 1,
                    .ttl_ms = 1000,
                    .sweep_ms = 1000,
                    .upload_idle_ms = 0};
  ck_assert_int_eq(files_new(&c, &f), ERR_INVAL);
  ck_assert_ptr_null(f);
  files_free(NULL);
}
END_TEST

int main(void) {
  Suite *s = suite_create("sync");
  TCase *tc = tcase_create("sync");
  tcase_add_test(tc, store_refuses_a_missing_pool_and_bad_roles);
  tcase_add_test(tc, handlers_need_a_store_a_verifier_auth_and_a_key);
  tcase_add_test(tc, a_secret_matches_only_its_hash_under_its_pepper);
  tcase_add_test(tc, hlcs_order_by_wall_then_counter_then_node);
  tcase_add_test(tc, file_names_are_64_lower_case_hex_digits);
  tcase_add_test(tc, a_file_part_is_checked_whole_before_the_store);
  tcase_add_test(tc, the_files_module_needs_an_upload_idle_time);
  tcase_add_test(tc, beats_fold_into_one_per_device_with_the_latest_values);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
