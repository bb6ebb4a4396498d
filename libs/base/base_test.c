/* base_test.c - unit tests for UUIDv7, RFC 3339 and string helpers. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/err.h"
#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"

START_TEST(uuid_v7_has_version_variant_and_time) {
  uuid u;
  int64_t before = time_now_ms();
  uuid_v7(&u);
  int64_t after = time_now_ms();
  ck_assert_int_eq(u.b[6] >> 4, 7);
  ck_assert_int_eq(u.b[8] >> 6, 2);
  ck_assert_int_ge(uuid_v7_time_ms(&u), before);
  ck_assert_int_le(uuid_v7_time_ms(&u), after + 1);
}
END_TEST

START_TEST(uuid_v7_is_strictly_increasing) {
  char prev[UUID_STR_LEN + 1], cur[UUID_STR_LEN + 1];
  uuid_v7_str(prev);
  for (int i = 0; i < 100000; i++) {
    uuid_v7_str(cur);
    ck_assert_msg(strcmp(prev, cur) < 0, "%s !< %s", prev, cur);
    memcpy(prev, cur, sizeof cur);
  }
}
END_TEST

START_TEST(uuid_round_trips_and_rejects_garbage) {
  uuid u, v;
  char s[UUID_STR_LEN + 1];
  uuid_v7(&u);
  uuid_format(&u, s);
  ck_assert_int_eq(strlen(s), 36);
  ck_assert_int_eq(uuid_parse(s, strlen(s), &v), ERR_OK);
  ck_assert_mem_eq(u.b, v.b, UUID_LEN);
  ck_assert(uuid_is_valid("0190F0A2-1C4B-7CDE-8F00-123456789ABC"));
  ck_assert(!uuid_is_valid(""));
  ck_assert(!uuid_is_valid("0190f0a2-1c4b-7cde-8f00-123456789ab"));
  ck_assert(!uuid_is_valid("0190f0a2-1c4b-7cde-8f00-123456789abcd"));
  ck_assert(!uuid_is_valid("0190f0a2x1c4b-7cde-8f00-123456789abc"));
  ck_assert(!uuid_is_valid("0190f0a2-1c4b-7cde-8f00-12345678zabc"));
  ck_assert(!uuid_is_valid("{190f0a2-1c4b-7cde-8f00-123456789ab}"));
}
END_TEST

START_TEST(rfc3339_formats_utc_with_millis) {
  char s[RFC3339_MS_LEN + 1];
  ck_assert_int_eq(time_format_rfc3339(0, s), ERR_OK);
  ck_assert_str_eq(s, "1970-01-01T00:00:00.000Z");
  ck_assert_int_eq(time_format_rfc3339(1795341600123LL, s), ERR_OK);
  ck_assert_str_eq(s, "2026-11-22T10:00:00.123Z");
  ck_assert_int_eq(time_format_rfc3339(-1, s), ERR_OK);
  ck_assert_str_eq(s, "1969-12-31T23:59:59.999Z");
  ck_assert_int_eq(time_format_rfc3339(951782400000LL, s), ERR_OK);
  ck_assert_str_eq(s, "2000-02-29T00:00:00.000Z");
  ck_assert_int_eq(time_format_rfc3339(253402300800000LL, s), ERR_INVAL);
}
END_TEST

START_TEST(rfc3339_parses_offsets_and_fractions) {
  int64_t ms;
  const char *a = "2026-11-22T10:00:00.123Z";
  ck_assert_int_eq(time_parse_rfc3339(a, strlen(a), &ms), ERR_OK);
  ck_assert_int_eq(ms, 1795341600123LL);
  const char *b = "2026-11-22T12:00:00.5+02:00";
  ck_assert_int_eq(time_parse_rfc3339(b, strlen(b), &ms), ERR_OK);
  ck_assert_int_eq(ms, 1795341600500LL);
  const char *c = "2026-11-22t10:00:00.123456789z";
  ck_assert_int_eq(time_parse_rfc3339(c, strlen(c), &ms), ERR_OK);
  ck_assert_int_eq(ms, 1795341600123LL);
  const char *bad[] = {"", "2026-11-22", "2026-11-22T10:00:00",
                       "2026-13-01T00:00:00Z", "2026-02-29T00:00:00Z",
                       "2026-11-22T24:00:00Z", "2026-11-22T10:00:00.Z",
                       "2026-11-22T10:00:00Zjunk", "2026-11-22T10:00:00+0200",
                       "2026-11-22 10:00:00Z"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(time_parse_rfc3339(bad[i], strlen(bad[i]), &ms) == ERR_INVAL,
                  "accepted %s", bad[i]);
}
END_TEST

START_TEST(rfc3339_round_trips) {
  char s[RFC3339_MS_LEN + 1];
  int64_t back;
  for (int64_t t = -86400000LL * 800; t < 4102444800000LL; t += 7777777777LL) {
    ck_assert_int_eq(time_format_rfc3339(t, s), ERR_OK);
    ck_assert_int_eq(time_parse_rfc3339(s, strlen(s), &back), ERR_OK);
    ck_assert_int_eq(back, t);
  }
}
END_TEST

START_TEST(monotonic_clock_never_goes_back) {
  int64_t a = time_mono_ns(), b = time_mono_ns();
  ck_assert_int_ge(b, a);
}
END_TEST

START_TEST(str_copy_truncates_and_terminates) {
  char buf[4];
  ck_assert_uint_eq(str_copy(buf, "abcdef", sizeof buf), 6);
  ck_assert_str_eq(buf, "abc");
  ck_assert_uint_eq(str_copy(buf, "ab", sizeof buf), 2);
  ck_assert_str_eq(buf, "ab");
  ck_assert(str_has_prefix("dns+tcp://x", "dns+tcp://"));
  ck_assert(!str_has_prefix("tcp://x", "dns+tcp://"));
  ck_assert(str_is_printable("abc ~", 5));
  ck_assert(!str_is_printable("ab\n", 3));
  ck_assert_str_eq(err_str(ERR_TIMEOUT), "timed out");
  ck_assert_str_eq(err_str(9999), "unknown error");
}
END_TEST

int main(void) {
  Suite *s = suite_create("base");
  TCase *tc = tcase_create("base");
  tcase_add_test(tc, uuid_v7_has_version_variant_and_time);
  tcase_add_test(tc, uuid_v7_is_strictly_increasing);
  tcase_add_test(tc, uuid_round_trips_and_rejects_garbage);
  tcase_add_test(tc, rfc3339_formats_utc_with_millis);
  tcase_add_test(tc, rfc3339_parses_offsets_and_fractions);
  tcase_add_test(tc, rfc3339_round_trips);
  tcase_add_test(tc, monotonic_clock_never_goes_back);
  tcase_add_test(tc, str_copy_truncates_and_terminates);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
