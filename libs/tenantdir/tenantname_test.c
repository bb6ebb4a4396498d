/* tenantname_test.c - slug, host and base-domain rules. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/tenantdir/tenantname.h"

static const char *slug_why(const char *s) {
  const char *why = NULL;
  int rc = tenantname_check_slug(s, &why);
  return rc == ERR_OK ? NULL : why;
}

START_TEST(valid_slugs_pass) {
  ck_assert_ptr_null(slug_why("abc"));
  ck_assert_ptr_null(slug_why("pizza-roma"));
  ck_assert_ptr_null(slug_why("a1-b2-c3"));
  ck_assert_ptr_null(slug_why("007"));
  ck_assert_ptr_null(slug_why("abcdefghijabcdefghijabcdefghij12")); /* 32 */
  ck_assert_ptr_null(slug_why("a--b"));
}
END_TEST

START_TEST(slug_length_is_bounded) {
  ck_assert_str_eq(slug_why(""), "must be 3 to 32 characters");
  ck_assert_str_eq(slug_why("ab"), "must be 3 to 32 characters");
  ck_assert_str_eq(slug_why("abcdefghijabcdefghijabcdefghij123"),
                   "must be 3 to 32 characters");
  ck_assert_str_eq(slug_why(NULL), "is required");
}
END_TEST

START_TEST(slug_characters_are_restricted) {
  const char *msg = "may contain only a-z, 0-9 and '-'";
  ck_assert_str_eq(slug_why("Pizza"), msg);
  ck_assert_str_eq(slug_why("piz_za"), msg);
  ck_assert_str_eq(slug_why("piz za"), msg);
  ck_assert_str_eq(slug_why("pizza.roma"), msg);
  ck_assert_str_eq(slug_why("caf\xc3\xa9"), msg);
  ck_assert_str_eq(slug_why("-abc"), "must not start or end with '-'");
  ck_assert_str_eq(slug_why("abc-"), "must not start or end with '-'");
}
END_TEST

START_TEST(reserved_slugs_are_refused) {
  const char *names[] = {"www",     "api",    "admin",     "app",    "auth",
                         "static",  "assets", "mail",      "status", "help",
                         "support", "docs",   "dashboard", "billing"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    ck_assert_msg(tenantname_is_reserved(names[i]), "%s", names[i]);
    ck_assert_str_eq(slug_why(names[i]), "is reserved");
  }
  ck_assert(!tenantname_is_reserved("pizza"));
  ck_assert(!tenantname_is_reserved("admins"));
  ck_assert(!tenantname_is_reserved(NULL));
}
END_TEST

START_TEST(reserved_list_is_sorted_and_valid_syntax) {
  size_t n = 0;
  const char *const *r = tenantname_reserved(&n);
  ck_assert_uint_gt(n, 40);
  for (size_t i = 0; i < n; i++) {
    if (i > 0)
      ck_assert_msg(strcmp(r[i - 1], r[i]) < 0, "%s !< %s", r[i - 1], r[i]);
    /* every entry is reachable by bsearch */
    ck_assert_msg(tenantname_is_reserved(r[i]), "%s", r[i]);
  }
}
END_TEST

static const char *norm(const char *in, char *buf, size_t cap) {
  return tenantname_normalize_host(in, buf, cap) == ERR_OK ? buf : NULL;
}

START_TEST(hosts_are_normalised) {
  char b[TENANTNAME_HOST_MAX + 1];
  ck_assert_str_eq(norm("Pizza.Localhost", b, sizeof b), "pizza.localhost");
  ck_assert_str_eq(norm("pizza.localhost:8080", b, sizeof b),
                   "pizza.localhost");
  ck_assert_str_eq(norm("pizza.example.com.", b, sizeof b),
                   "pizza.example.com");
  ck_assert_str_eq(norm("WWW.X.IO.:443", b, sizeof b), "www.x.io");
  ck_assert_str_eq(norm("localhost", b, sizeof b), "localhost");
  ck_assert_str_eq(norm("xn--caf-dma.fr", b, sizeof b), "xn--caf-dma.fr");
}
END_TEST

START_TEST(malformed_hosts_are_refused) {
  char b[TENANTNAME_HOST_MAX + 1];
  const char *bad[] = {"",
                       ".",
                       "a..b",
                       ".a.b",
                       "-a.b",
                       "a-.b",
                       "a_b.c",
                       "a b.c",
                       "[::1]:80",
                       "::1",
                       "a.b:",
                       "a.b:0",
                       "a.b:65536",
                       "a.b:12a",
                       "a.b:123456",
                       "a.b:80:80",
                       "caf\xc3\xa9.fr",
                       "a/b.c",
                       "a.b\r\n"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(tenantname_normalize_host(bad[i], b, sizeof b) == ERR_INVAL,
                  "accepted [%s]", bad[i]);
  ck_assert_int_eq(tenantname_normalize_host(NULL, b, sizeof b), ERR_INVAL);
}
END_TEST

START_TEST(host_length_limits) {
  char b[TENANTNAME_HOST_MAX + 1];
  char label[64];
  memset(label, 'a', 63);
  label[63] = '\0';
  char host[400];
  /* 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253 */
  snprintf(host, sizeof host, "%s.%s.%s.%.*s", label, label, label, 61, label);
  ck_assert_int_eq(strlen(host), 253);
  ck_assert_int_eq(tenantname_normalize_host(host, b, sizeof b), ERR_OK);
  snprintf(host, sizeof host, "%s.%s.%s.%.*s", label, label, label, 62, label);
  ck_assert_int_eq(tenantname_normalize_host(host, b, sizeof b), ERR_INVAL);
  /* one label of 64 */
  snprintf(host, sizeof host, "%sa.com", label);
  ck_assert_int_eq(tenantname_normalize_host(host, b, sizeof b), ERR_INVAL);
  /* small output buffer */
  char small[4];
  ck_assert_int_eq(tenantname_normalize_host("abcd.e", small, sizeof small),
                   ERR_TOOBIG);
  /* a huge input is refused without being scanned to the end */
  char *huge = malloc(100000);
  memset(huge, 'a', 99999);
  huge[99999] = '\0';
  ck_assert_int_eq(tenantname_normalize_host(huge, b, sizeof b), ERR_INVAL);
  free(huge);
}
END_TEST

START_TEST(slug_comes_from_first_label_over_a_base_domain) {
  char s[TENANTNAME_SLUG_MAX + 1];
  ck_assert(
      tenantname_slug_from_host("pizza.localhost", "localhost", s, sizeof s));
  ck_assert_str_eq(s, "pizza");
  ck_assert(tenantname_slug_from_host("pizza.example.com",
                                      "localhost, example.com", s, sizeof s));
  ck_assert_str_eq(s, "pizza");
  ck_assert(!tenantname_slug_from_host("a.pizza.localhost", "localhost", s,
                                       sizeof s));
  ck_assert(!tenantname_slug_from_host("localhost", "localhost", s, sizeof s));
  ck_assert(
      !tenantname_slug_from_host("pizzalocalhost", "localhost", s, sizeof s));
  ck_assert(!tenantname_slug_from_host("pizza.example.org",
                                       "localhost,example.com", s, sizeof s));
  ck_assert(!tenantname_slug_from_host("pizza.localhost", "", s, sizeof s));
  ck_assert(!tenantname_slug_from_host("pizza.localhost", NULL, s, sizeof s));
  char tiny[3];
  ck_assert(!tenantname_slug_from_host("pizza.localhost", "localhost", tiny,
                                       sizeof tiny));
  /* the deeper of two nested bases: a.b.example.com over b.example.com */
  ck_assert(tenantname_slug_from_host(
      "a.b.example.com", "example.com,b.example.com", s, sizeof s));
  ck_assert_str_eq(s, "a");
}
END_TEST

START_TEST(custom_hosts_are_checked) {
  const char *why = NULL;
  ck_assert_int_eq(
      tenantname_check_custom_host("order.pizza.it", "localhost", &why),
      ERR_OK);
  ck_assert_int_eq(tenantname_check_custom_host("pizza", "localhost", &why),
                   ERR_INVAL);
  ck_assert_str_eq(why, "must have at least two labels");
  ck_assert_int_eq(tenantname_check_custom_host("10.0.0.1", "localhost", &why),
                   ERR_INVAL);
  ck_assert_str_eq(why, "must be a host name, not an IP address");
  ck_assert_int_eq(
      tenantname_check_custom_host("x.localhost", "localhost", &why),
      ERR_INVAL);
  ck_assert_str_eq(why, "belongs to the platform's base domain");
  ck_assert_int_eq(tenantname_check_custom_host("example.com",
                                                "localhost,example.com", &why),
                   ERR_INVAL);
  ck_assert_int_eq(
      tenantname_check_custom_host("notexample.com", "example.com", &why),
      ERR_OK);
  ck_assert_int_eq(tenantname_check_custom_host("Upper.com", "localhost", &why),
                   ERR_INVAL);
  ck_assert_str_eq(why, "must be a valid host name");
  ck_assert_int_eq(tenantname_check_custom_host(NULL, "localhost", &why),
                   ERR_INVAL);
}
END_TEST

int main(void) {
  Suite *s = suite_create("tenantname");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, valid_slugs_pass);
  tcase_add_test(tc, slug_length_is_bounded);
  tcase_add_test(tc, slug_characters_are_restricted);
  tcase_add_test(tc, reserved_slugs_are_refused);
  tcase_add_test(tc, reserved_list_is_sorted_and_valid_syntax);
  tcase_add_test(tc, hosts_are_normalised);
  tcase_add_test(tc, malformed_hosts_are_refused);
  tcase_add_test(tc, host_length_limits);
  tcase_add_test(tc, slug_comes_from_first_label_over_a_base_domain);
  tcase_add_test(tc, custom_hosts_are_checked);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
