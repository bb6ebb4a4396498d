/*
 * tenants_test.c - the tenants service's pure parts: tenant names and
 * currencies, the operator secret, the Redis cache with no
 * Redis, and the tenants.changed payload. Everything that needs
 * PostgreSQL, Redis or the auth service is in tests/tenants.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/tenants/v1/tenants.pb-c.h"
#include "services/tenants/access.h"
#include "services/tenants/domainverify.h"
#include "services/tenants/events.h"
#include "services/tenants/rescache.h"
#include "services/tenants/validate.h"

static const char *name_why(const char *s) {
  const char *why = NULL;
  return validate_name(s, &why) == ERR_OK ? NULL : why;
}

START_TEST(names_accept_unicode_up_to_100_characters) {
  ck_assert_ptr_null(name_why("Pizzeria Roma"));
  ck_assert_ptr_null(name_why("Caf\xc3\xa9 M\xc3\xbcller"));
  ck_assert_ptr_null(name_why("\xe5\xaf\xbf\xe5\x8f\xb8")); /* 寿司 */
  char s[500];
  /* 100 two-byte characters (200 bytes) are fine, 101 are not */
  for (int i = 0; i < 100; i++) memcpy(s + 2 * i, "\xc3\xa9", 2);
  s[200] = '\0';
  ck_assert_ptr_null(name_why(s));
  memcpy(s + 200, "\xc3\xa9", 3);
  ck_assert_str_eq(name_why(s), "must be at most 100 characters");
  /* 100 four-byte characters: 400 bytes, still 100 characters */
  for (int i = 0; i < 100; i++)
    memcpy(s + 4 * i, "\xf0\x9f\x8d\x95", 4); /* U+1F355 */
  s[400] = '\0';
  ck_assert_ptr_null(name_why(s));
  s[400] = 'x';
  s[401] = '\0';
  ck_assert_str_eq(name_why(s), "must be at most 100 characters");
}
END_TEST

START_TEST(names_refuse_empty_blank_control_and_bad_utf8) {
  ck_assert_str_eq(name_why(""), "is required");
  ck_assert_str_eq(name_why(NULL), "is required");
  ck_assert_str_eq(name_why("   "), "must not be blank");
  ck_assert_str_eq(name_why("a\nb"), "must not contain control characters");
  ck_assert_str_eq(name_why("a\x7f"), "must not contain control characters");
  ck_assert_str_eq(name_why("a\xc2\x85"),
                   "must not contain control characters");
  ck_assert_str_eq(name_why("\xc3"), "must be valid UTF-8");
  ck_assert_str_eq(name_why("\xc0\xaf"), "must be valid UTF-8"); /* overlong */
  ck_assert_str_eq(name_why("\xed\xa0\x80"),
                   "must be valid UTF-8"); /* surrogate */
  ck_assert_str_eq(name_why("\xf4\x90\x80\x80"),
                   "must be valid UTF-8"); /* > U+10FFFF */
  ck_assert_str_eq(name_why("\xff"), "must be valid UTF-8");
}
END_TEST

START_TEST(currencies_are_iso_4217_and_normalised) {
  char out[4];
  const char *why = NULL;
  ck_assert_int_eq(validate_currency("EUR", out, &why), ERR_OK);
  ck_assert_str_eq(out, "EUR");
  ck_assert_int_eq(validate_currency("usd", out, &why), ERR_OK);
  ck_assert_str_eq(out, "USD");
  ck_assert_int_eq(validate_currency("jPy", out, &why), ERR_OK);
  ck_assert_str_eq(out, "JPY");
  ck_assert_int_eq(validate_currency("ABC", out, &why), ERR_INVAL);
  ck_assert_str_eq(why, "is not an ISO 4217 currency");
  const char *not_money[] = {"XAU", "XTS", "XXX", "XDR", "BOV", "USN"};
  for (size_t i = 0; i < sizeof not_money / sizeof not_money[0]; i++)
    ck_assert_int_eq(validate_currency(not_money[i], out, &why), ERR_INVAL);
  const char *bad[] = {"", "EU", "EURO", "E1R", "\xc3\xa9UR", "EU ", NULL};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ck_assert_int_eq(validate_currency(bad[i], out, &why), ERR_INVAL);
    ck_assert_str_eq(out, "");
  }
}
END_TEST

START_TEST(currency_list_is_sorted_and_reachable) {
  size_t n = 0;
  const char *const *c = validate_currencies(&n);
  ck_assert_uint_gt(n, 150);
  for (size_t i = 0; i < n; i++) {
    ck_assert_int_eq(strlen(c[i]), 3);
    if (i > 0)
      ck_assert_msg(strcmp(c[i - 1], c[i]) < 0, "%s !< %s", c[i - 1], c[i]);
    ck_assert(validate_currency_known(c[i]));
  }
  ck_assert(!validate_currency_known(NULL));
  ck_assert(!validate_currency_known("eur"));
}
END_TEST

START_TEST(operator_secret_is_checked_exactly) {
  access_operator *op = NULL;
  ck_assert_int_eq(access_operator_new("0123456789abcdef-operator", &op),
                   ERR_OK);
  ck_assert(access_operator_enabled(op));
  ck_assert(access_operator_check(op, "0123456789abcdef-operator"));
  ck_assert(!access_operator_check(op, "0123456789abcdef-operato"));
  ck_assert(!access_operator_check(op, "0123456789abcdef-operatorX"));
  ck_assert(!access_operator_check(op, ""));
  ck_assert(!access_operator_check(op, NULL));
  access_operator_free(op);
}
END_TEST

START_TEST(operator_calls_are_off_without_a_secret) {
  access_operator *op = NULL;
  ck_assert_int_eq(access_operator_new(NULL, &op), ERR_OK);
  ck_assert(!access_operator_enabled(op));
  ck_assert(!access_operator_check(op, ""));
  ck_assert(!access_operator_check(op, "anything"));
  access_operator_free(op);
  ck_assert_int_eq(access_operator_new("", &op), ERR_OK);
  ck_assert(!access_operator_check(op, ""));
  access_operator_free(op);
  ck_assert(!access_operator_enabled(NULL));
  ck_assert(!access_operator_check(NULL, "x"));
  access_operator_free(NULL);
}
END_TEST

START_TEST(short_operator_secrets_are_refused) {
  access_operator *op = (access_operator *)1;
  ck_assert_int_eq(access_operator_new("short", &op), ERR_INVAL);
  ck_assert_ptr_null(op);
  ck_assert_int_eq(access_operator_new("0123456789abcde", &op),
                   ERR_INVAL); /* 15 */
  ck_assert_int_eq(access_operator_new("0123456789abcdef", &op),
                   ERR_OK); /* 16 */
  access_operator_free(op);
}
END_TEST

START_TEST(cache_without_redis_always_misses) {
  rescache *rc = NULL;
  ck_assert_int_eq(rescache_new(NULL, 0, &rc), ERR_INVAL);
  ck_assert_int_eq(rescache_new(NULL, 1000, &rc), ERR_OK);
  store_resolved r = {.tenant_id = "0190f0a2-1c4b-7cde-8f00-00000000000a",
                      .slug = "pizza",
                      .status = "active",
                      .version = 7};
  rescache_put(rc, false, "pizza", &r);
  rescache_put_gone(rc, true, "a.example.com", 8);
  store_resolved out;
  ck_assert_int_eq(rescache_get(rc, false, "pizza", &out), RESCACHE_MISS);
  ck_assert_int_eq(rescache_set_status(rc, r.tenant_id, "suspended"),
                   ERR_UNAVAILABLE);
  ck_assert_int_eq(rescache_set_status(rc, "not-a-uuid", "suspended"),
                   ERR_INVAL);
  char key[64];
  rescache_status_key(r.tenant_id, key, sizeof key);
  ck_assert_str_eq(key, "tenant:status:0190f0a2-1c4b-7cde-8f00-00000000000a");
  rescache_free(rc);
  rescache_free(NULL);
  ck_assert_int_eq(rescache_get(NULL, false, "x", &out), RESCACHE_MISS);
}
END_TEST

START_TEST(cache_with_unreachable_redis_degrades_quickly) {
  cache_config cc = {.url = "redis://127.0.0.1:1",
                     .connect_timeout_ms = 200,
                     .command_timeout_ms = 200};
  cache *redis = NULL;
  ck_assert_int_eq(cache_new(&cc, &redis), ERR_OK);
  rescache *rc = NULL;
  ck_assert_int_eq(rescache_new(redis, 1000, &rc), ERR_OK);
  store_resolved out;
  ck_assert_int_eq(rescache_get(rc, true, "a.example.com", &out),
                   RESCACHE_MISS);
  store_resolved r = {.tenant_id = "0190f0a2-1c4b-7cde-8f00-00000000000a",
                      .slug = "pizza",
                      .status = "active",
                      .version = 7};
  rescache_put(rc, false, "pizza", &r); /* no crash, no error surfaced */
  ck_assert_int_eq(rescache_set_status(rc, r.tenant_id, "active"),
                   ERR_UNAVAILABLE);
  rescache_free(rc);
  cache_free(redis);
}
END_TEST

START_TEST(changed_event_round_trips) {
  const char *hosts[] = {"a.example.com", "b.example.com"};
  store_event ev;
  ck_assert_int_eq(events_changed("domain_added",
                                  "0190f0a2-1c4b-7cde-8f00-00000000000a",
                                  "pizza", "active", hosts, 2, &ev),
                   ERR_OK);
  ck_assert_str_eq(ev.type, "TenantChanged");
  Tenants__V1__TenantChanged *tc =
      tenants__v1__tenant_changed__unpack(NULL, ev.len, ev.payload);
  ck_assert_ptr_nonnull(tc);
  ck_assert_str_eq(tc->tenant_id, "0190f0a2-1c4b-7cde-8f00-00000000000a");
  ck_assert_str_eq(tc->slug, "pizza");
  ck_assert_str_eq(tc->status, "active");
  ck_assert_str_eq(tc->change, "domain_added");
  ck_assert_uint_eq(tc->n_hosts, 2);
  ck_assert_str_eq(tc->hosts[1], "b.example.com");
  tenants__v1__tenant_changed__free_unpacked(tc, NULL);
  events_clear(&ev);
  ck_assert_ptr_null(ev.payload);
  events_clear(NULL);
  /* no hosts, no slug */
  ck_assert_int_eq(events_changed("suspended",
                                  "0190f0a2-1c4b-7cde-8f00-00000000000a", NULL,
                                  NULL, NULL, 0, &ev),
                   ERR_OK);
  tc = tenants__v1__tenant_changed__unpack(NULL, ev.len, ev.payload);
  ck_assert_ptr_nonnull(tc);
  ck_assert_str_eq(tc->slug, "");
  ck_assert_uint_eq(tc->n_hosts, 0);
  tenants__v1__tenant_changed__free_unpacked(tc, NULL);
  events_clear(&ev);
}
END_TEST

/* -------------------------------------------------- domain verification --- */

static bool v4_public(const char *ip) {
  struct sockaddr_in sa = {.sin_family = AF_INET};
  ck_assert_int_eq(inet_pton(AF_INET, ip, &sa.sin_addr), 1);
  return domainverify_address_public((const struct sockaddr *)&sa);
}

static bool v6_public(const char *ip) {
  struct sockaddr_in6 sa = {.sin6_family = AF_INET6};
  ck_assert_int_eq(inet_pton(AF_INET6, ip, &sa.sin6_addr), 1);
  return domainverify_address_public((const struct sockaddr *)&sa);
}

/* The fetch may not reach the cluster network or the cloud metadata. */
START_TEST(verification_fetch_reaches_public_addresses_only) {
  ck_assert(v4_public("93.184.216.34"));
  ck_assert(v4_public("8.8.8.8"));
  static const char *const v4_private[] = {
      "127.0.0.1",   "10.1.2.3",        "172.16.0.1", "172.31.255.255",
      "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
      "224.0.0.1",   "255.255.255.255"};
  for (size_t i = 0; i < sizeof v4_private / sizeof v4_private[0]; i++)
    ck_assert_msg(!v4_public(v4_private[i]), "%s", v4_private[i]);
  ck_assert(v4_public("172.32.0.1"));
  ck_assert(v6_public("2606:2800:220:1::1"));
  static const char *const v6_private[] = {"::1",
                                           "::",
                                           "fe80::1",
                                           "fd00::1",
                                           "ff02::1",
                                           "::ffff:10.0.0.1",
                                           "::ffff:127.0.0.1"};
  for (size_t i = 0; i < sizeof v6_private / sizeof v6_private[0]; i++)
    ck_assert_msg(!v6_public(v6_private[i]), "%s", v6_private[i]);
}
END_TEST

START_TEST(verification_settings_and_url) {
  ck_assert(domainverify_connect_to_valid(NULL));
  ck_assert(domainverify_connect_to_valid(""));
  ck_assert(domainverify_connect_to_valid("127.0.0.1:8080"));
  ck_assert(domainverify_connect_to_valid("egress.internal:80"));
  ck_assert(domainverify_connect_to_valid("[::1]:80"));
  ck_assert(!domainverify_connect_to_valid("127.0.0.1"));
  ck_assert(!domainverify_connect_to_valid("host:0"));
  ck_assert(!domainverify_connect_to_valid("host:70000"));
  ck_assert(!domainverify_connect_to_valid(":80"));
  ck_assert(!domainverify_connect_to_valid("a b:80"));
  char url[DOMAINVERIFY_URL_MAX];
  ck_assert_int_eq(domainverify_url("shop.example.com", "tok", url), ERR_OK);
  ck_assert_str_eq(url, "http://shop.example.com"
                        "/.well-known/restaurant-domain-verification/tok");
  /* Nothing listens on port 1: a fetch fails as "could not connect". */
  domainverify_options o = {.connect_to = "127.0.0.1:1", .timeout_ms = 2000};
  const char *why = NULL;
  ck_assert_int_eq(domainverify_check(&o, "shop.example.com", "tok", &why),
                   ERR_UNAVAILABLE);
  ck_assert_ptr_nonnull(why);
}
END_TEST

int main(void) {
  Suite *s = suite_create("tenants");
  TCase *tc = tcase_create("pure");
  tcase_add_test(tc, names_accept_unicode_up_to_100_characters);
  tcase_add_test(tc, names_refuse_empty_blank_control_and_bad_utf8);
  tcase_add_test(tc, currencies_are_iso_4217_and_normalised);
  tcase_add_test(tc, currency_list_is_sorted_and_reachable);
  tcase_add_test(tc, operator_secret_is_checked_exactly);
  tcase_add_test(tc, operator_calls_are_off_without_a_secret);
  tcase_add_test(tc, short_operator_secrets_are_refused);
  tcase_add_test(tc, cache_without_redis_always_misses);
  tcase_add_test(tc, cache_with_unreachable_redis_degrades_quickly);
  tcase_add_test(tc, changed_event_round_trips);
  tcase_add_test(tc, verification_fetch_reaches_public_addresses_only);
  tcase_add_test(tc, verification_settings_and_url);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
