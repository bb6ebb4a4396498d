/*
 * notifications_test.c - the parts of the notifications service that need
 * no server: secrets (sealing, parsing, the Standard Webhooks signature
 * against a value computed independently with Python's hmac), the target
 * rules (URLs, private addresses), the retry backoff, webhook bodies and
 * the endpoint field rules, the channel-settings cache (TTL, eviction,
 * invalidation). tests/notifications has the integration test.
 */
#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/timeutil.h"
#include "libs/base/vlist.h"
#include "services/notifications/body.h"
#include "libs/base/cursor.h"
#include "services/notifications/handlers.h"
#include "services/notifications/handlers_internal.h"
#include "services/notifications/store_settings.h"
#include "services/notifications/inbox.h"
#include "services/notifications/mailer.h"
#include "services/notifications/queue.h"
#include "services/notifications/seal.h"
#include "services/notifications/sender.h"
#include "services/notifications/settings_cache.h"
#include "services/notifications/target.h"

START_TEST(a_secret_is_whsec_base64_and_parses_back) {
  unsigned char raw[SEAL_SECRET_BYTES], back[SEAL_SECRET_BYTES];
  char text[SEAL_SECRET_TEXT_MAX + 1];
  seal_secret_new(raw, text);
  ck_assert(strncmp(text, "whsec_", 6) == 0);
  ck_assert_int_eq(seal_secret_parse(text, back), ERR_OK);
  ck_assert(memcmp(raw, back, sizeof raw) == 0);
  ck_assert_int_eq(seal_secret_parse("whsec_", back), ERR_INVAL);
  ck_assert_int_eq(
      seal_secret_parse("sk_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX", back),
      ERR_INVAL);
}
END_TEST

START_TEST(a_sealed_secret_opens_only_with_its_key_and_unchanged) {
  seal_key k1, k2;
  ck_assert_int_eq(
      seal_key_parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", &k1),
      ERR_OK);
  ck_assert_int_eq(
      seal_key_parse("AQECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", &k2),
      ERR_OK);
  ck_assert_int_eq(seal_key_parse("c2hvcnQ=", &k2), ERR_INVAL);
  ck_assert_int_eq(
      seal_key_parse("AQECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", &k2),
      ERR_OK);
  unsigned char raw[SEAL_SECRET_BYTES], out[SEAL_SECRET_BYTES];
  char text[SEAL_SECRET_TEXT_MAX + 1];
  seal_secret_new(raw, text);
  seal_box box;
  seal_close(&k1, raw, &box);
  ck_assert(memmem(box.b, sizeof box.b, raw, sizeof raw) == NULL);
  ck_assert_int_eq(seal_open(&k1, &box, out), ERR_OK);
  ck_assert(memcmp(raw, out, sizeof raw) == 0);
  ck_assert_int_eq(seal_open(&k2, &box, out), ERR_INVAL);
  box.b[SEAL_BOX_BYTES - 1] ^= 1;
  ck_assert_int_eq(seal_open(&k1, &box, out), ERR_INVAL);
}
END_TEST

START_TEST(the_signature_is_standard_webhooks_v1) {
  unsigned char raw[SEAL_SECRET_BYTES];
  ck_assert_int_eq(
      seal_secret_parse("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX", raw), ERR_OK);
  char sig[SEAL_SIGNATURE_MAX + 1];
  const char *body = "{\"a\":1}";
  ck_assert_int_eq(seal_sign(raw, "msg_1", 1700000000, body, strlen(body), sig),
                   ERR_OK);
  /* python3: base64(hmac.new(bytes(range(24)), b'msg_1.1700000000.{"a":1}',
   * sha256).digest()) */
  ck_assert_str_eq(sig, "v1,YOREwC5BRUvI4ezImQEgEteB7JbPr/Iy2YCZe049/5g=");
}
END_TEST

static bool private4(const char *a) {
  struct sockaddr_in s = {.sin_family = AF_INET};
  ck_assert_int_eq(inet_pton(AF_INET, a, &s.sin_addr), 1);
  return target_addr_private((struct sockaddr *)&s);
}

static bool private6(const char *a) {
  struct sockaddr_in6 s = {.sin6_family = AF_INET6};
  ck_assert_int_eq(inet_pton(AF_INET6, a, &s.sin6_addr), 1);
  return target_addr_private((struct sockaddr *)&s);
}

START_TEST(private_loopback_and_link_local_addresses_are_private) {
  const char *priv4[] = {"127.0.0.1",      "10.1.2.3",    "172.16.0.1",
                         "172.31.255.255", "192.168.1.1", "169.254.169.254",
                         "100.64.0.1",     "0.0.0.0",     "224.0.0.1",
                         "255.255.255.255"};
  for (size_t i = 0; i < sizeof priv4 / sizeof priv4[0]; i++)
    ck_assert_msg(private4(priv4[i]), "%s", priv4[i]);
  ck_assert(!private4("93.184.216.34"));
  ck_assert(!private4("172.32.0.1"));
  ck_assert(!private4("8.8.8.8"));
  const char *priv6[] = {"::1",
                         "::",
                         "fe80::1",
                         "fd00::1",
                         "fc00::1",
                         "ff02::1",
                         "::ffff:127.0.0.1",
                         "::ffff:10.0.0.1",
                         "64:ff9b::a9fe:a9fe",
                         "2001:db8::1"};
  for (size_t i = 0; i < sizeof priv6 / sizeof priv6[0]; i++)
    ck_assert_msg(private6(priv6[i]), "%s", priv6[i]);
  ck_assert(!private6("2606:4700:4700::1111"));
  ck_assert(!private6("::ffff:8.8.8.8"));
}
END_TEST

START_TEST(urls_must_be_http_with_a_host_and_no_credentials) {
  target t;
  const char *why = NULL;
  ck_assert_int_eq(target_parse("https://example.com/hook", &t, &why), ERR_OK);
  ck_assert_str_eq(t.host, "example.com");
  ck_assert_int_eq(t.port, 443);
  ck_assert_int_eq(target_parse("http://[::1]:8080/x", &t, &why), ERR_OK);
  ck_assert_str_eq(t.host, "::1");
  ck_assert_int_eq(t.port, 8080);
  const char *bad[] = {"",
                       "ftp://example.com/",
                       "file:///etc/passwd",
                       "gopher://example.com/",
                       "https://user:pw@example.com/",
                       "not a url",
                       "https://",
                       "http://example.com:99999/"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(target_parse(bad[i], &t, &why) == ERR_INVAL, "%s", bad[i]);
  char long_url[2100] = "https://example.com/";
  memset(long_url + 20, 'a', sizeof long_url - 21);
  long_url[sizeof long_url - 1] = '\0';
  ck_assert_int_eq(target_parse(long_url, &t, &why), ERR_INVAL);
}
END_TEST

START_TEST(a_loopback_target_is_refused_unless_allowed) {
  target t;
  const char *why = NULL;
  ck_assert_int_eq(target_parse("http://127.0.0.1:9/", &t, &why), ERR_OK);
  ck_assert_int_eq(target_resolve(&t, false, &why), ERR_INVAL);
  ck_assert_int_eq(target_parse("http://localhost:9/", &t, &why), ERR_OK);
  ck_assert_int_eq(target_resolve(&t, false, &why), ERR_INVAL);
  ck_assert_int_eq(target_resolve(&t, true, &why), ERR_OK);
  ck_assert(strcmp(t.addr, "127.0.0.1") == 0 || strcmp(t.addr, "::1") == 0);
}
END_TEST

START_TEST(the_sender_refuses_a_private_target_before_connecting) {
  sender_config c = {.timeout_ms = 2000, .max_response = 1024};
  sender_result r;
  const char *const hdrs[] = {"webhook-id: x", NULL};
  const char *urls[] = {"http://127.0.0.1:9/hook", "http://localhost:9/",
                        "http://[::1]:9/", "http://169.254.169.254/latest"};
  for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
    ck_assert_int_eq(sender_post(&c, urls[i], hdrs, "{}", 2, &r), ERR_OK);
    ck_assert(!r.ok);
    ck_assert_int_eq(r.status_code, 0);
    ck_assert_msg(strstr(r.error, "private") != NULL, "%s: %s", urls[i],
                  r.error);
  }
  ck_assert_int_eq(sender_post(&c, "gopher://example.com/", hdrs, "{}", 2, &r),
                   ERR_OK);
  ck_assert(!r.ok);
}
END_TEST

START_TEST(backoff_doubles_from_the_base_with_jitter) {
  for (int i = 0; i < 200; i++) {
    int64_t d1 = queue_backoff_ms(5000, 1), d2 = queue_backoff_ms(5000, 2);
    ck_assert(d1 >= 4000 && d1 < 6000);
    ck_assert(d2 >= 8000 && d2 < 12000);
  }
  ck_assert(queue_backoff_ms(5000, 60) <= 3600 * 1000 * 12 / 10);
  ck_assert_int_eq(queue_backoff_ms(0, 3), 0);
}
END_TEST

START_TEST(a_test_body_has_the_contract_keys) {
  char *body = NULL;
  ck_assert_int_eq(body_for_test("0190a5d0-0000-7000-8000-000000000001",
                                 "0190a5d0-0000-7000-8000-000000000002",
                                 "0190a5d0-0000-7000-8000-000000000003",
                                 1700000000123, &body),
                   ERR_OK);
  json_t *o = json_loads(body, 0, NULL);
  ck_assert_ptr_nonnull(o);
  ck_assert_str_eq(json_string_value(json_object_get(o, "type")),
                   "webhook.test");
  ck_assert_str_eq(json_string_value(json_object_get(o, "created_at")),
                   "2023-11-14T22:13:20.123Z");
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(o, "data"),
                                                     "webhook_id")),
                   "0190a5d0-0000-7000-8000-000000000003");
  ck_assert_int_eq(json_object_size(o), 5);
  json_decref(o);
  free(body);
}
END_TEST

START_TEST(event_types_must_be_known_and_distinct) {
  vlist v;
  vlist_init(&v);
  char *ok[] = {"OrderCreated", "OrderStatusChanged"};
  notifications_check_events(ok, 2, &v);
  ck_assert_int_eq(v.n, 0);
  char *bad[] = {"OrderCreated", "order.created", "OrderCreated"};
  notifications_check_events(bad, 3, &v);
  ck_assert(vlist_has(&v, "events[1]"));
  ck_assert(vlist_has(&v, "events[2]"));
  vlist_init(&v);
  notifications_check_events(NULL, 0, &v);
  ck_assert(vlist_has(&v, "events"));
}
END_TEST

START_TEST(an_email_header_cannot_be_injected) {
  char *m = NULL;
  ck_assert_int_eq(mailer_message("from@example.com", "to@example.com",
                                  "Hi\r\nBcc: victim@example.com",
                                  "line 1\nline 2", "01a2", 0, &m),
                   ERR_OK);
  ck_assert(strstr(m, "Subject: Hi\r\n") != NULL);
  ck_assert(strstr(m, "Bcc:") == NULL);
  ck_assert(strstr(m, "\r\n\r\nline 1\r\nline 2\r\n") != NULL);
  ck_assert(strstr(m, "Message-ID: <01a2@notifications>\r\n") != NULL);
  free(m);
  ck_assert_int_eq(mailer_message("f@example.com", "t@example.com",
                                  "Bestellung f\xc3\xbcr Sie", "x", "1", 0, &m),
                   ERR_OK);
  ck_assert(strstr(m, "Subject: =?UTF-8?B?") != NULL);
  free(m);
}
END_TEST

START_TEST(only_plain_addresses_are_mailed) {
  ck_assert(mailer_address_ok("a.b+c@example.com"));
  ck_assert(!mailer_address_ok("a@b@example.com"));
  ck_assert(!mailer_address_ok("a b@example.com"));
  ck_assert(!mailer_address_ok("a@example.com>\r\nRCPT TO:<x@y.z"));
  ck_assert(!mailer_address_ok("<a@example.com>"));
  ck_assert(!mailer_address_ok("@example.com"));
  ck_assert(!mailer_address_ok(""));
}
END_TEST

START_TEST(a_notification_packs_its_data_and_recipient) {
  inbox_batch b = {0};
  ck_assert_int_eq(inbox_batch_add(&b, "01a24da2-102b-7542-b8bb-0a95a9872f02",
                                   NULL, NULL, "stock.low", "Low", "Body",
                                   "{\"stock\":\"1\"}"),
                   ERR_OK);
  ck_assert_int_eq(inbox_batch_add(&b, "01a24da2-102b-7542-b8bb-0a95a9872f02",
                                   NULL, NULL, "x", "t", "b", "[1]"),
                   ERR_INVAL); /* data must be an object */
  ck_assert_uint_eq(b.n, 1);
  ck_assert_ptr_null(b.emails[0]);
  ck_assert(b.v[0].len > 0);
  inbox_batch_free(&b);
}
END_TEST

START_TEST(each_address_and_phone_of_a_batch_makes_one_message) {
  inbox_batch b = {0};
  ck_assert_int_eq(inbox_batch_add(&b, "01a24da2-102b-7542-b8bb-0a95a9872f02",
                                   "a@example.com", "+4915112345678", "t",
                                   "Title", "Body", "{}"),
                   ERR_OK);
  ck_assert_int_eq(inbox_batch_add(&b, "01a24da2-102b-7542-b8bb-0a95a9872f03",
                                   "", "+4915112345679", "t", "Title", "Body",
                                   "{}"),
                   ERR_OK);
  ck_assert_int_eq(inbox_batch_add(&b, "01a24da2-102b-7542-b8bb-0a95a9872f04",
                                   NULL, NULL, "t", "Title", "Body", "{}"),
                   ERR_OK);
  store_message *m = NULL;
  size_t n = 0;
  ck_assert_int_eq(inbox_messages(&b, &m, &n), ERR_OK);
  ck_assert_uint_eq(n, 3);
  ck_assert_int_eq(m[0].kind, STORE_KIND_EMAIL);
  ck_assert_str_eq(m[0].address, "a@example.com");
  ck_assert_str_eq(m[0].subject, "Title");
  ck_assert_int_eq(m[1].kind, STORE_KIND_SMS);
  ck_assert_str_eq(m[1].address, "+4915112345678");
  ck_assert_str_eq(m[1].subject, "");
  ck_assert_int_eq(m[2].kind, STORE_KIND_SMS);
  ck_assert_str_eq(m[2].user_id, "01a24da2-102b-7542-b8bb-0a95a9872f03");
  free(m);
  inbox_batch_free(&b);
}
END_TEST

START_TEST(the_default_channels_are_in_app_and_email_not_sms) {
  store_settings d;
  memset(&d, 0xff, sizeof d);
  store_settings_defaults(&d);
  ck_assert(d.order.in_app && d.order.email && !d.order.sms);
  ck_assert(d.staff.in_app && d.staff.email && !d.staff.sms);
  ck_assert_str_eq(d.updated_at, "");
}
END_TEST

/* Settings that differ from the defaults, to tell a hit from nothing. */
static store_settings sms_only(void) {
  store_settings s;
  memset(&s, 0, sizeof s);
  s.order.sms = true;
  s.staff.sms = true;
  return s;
}

START_TEST(the_settings_cache_hits_within_the_ttl_and_expires_after) {
  settings_cache *c = NULL;
  ck_assert_int_eq(settings_cache_new(0, &c), ERR_INVAL);
  ck_assert_int_eq(settings_cache_new(60000, &c), ERR_OK);
  char tid[UUID_STR_LEN + 1], other[UUID_STR_LEN + 1];
  uuid_v7_str(tid);
  uuid_v7_str(other);
  store_settings in = sms_only(), out;
  ck_assert(!settings_cache_lookup(c, tid, &out));
  settings_cache_put(c, tid, &in, settings_cache_epoch(c));
  memset(&out, 0xff, sizeof out);
  ck_assert(settings_cache_lookup(c, tid, &out));
  ck_assert(memcmp(&in, &out, sizeof in) == 0);
  ck_assert(!settings_cache_lookup(c, other, &out)); /* per tenant */
  ck_assert(!settings_cache_lookup(c, "", &out));
  settings_cache_free(c);

  /* A 1 ms TTL: 20 ms later the entry can only have expired. */
  ck_assert_int_eq(settings_cache_new(1, &c), ERR_OK);
  settings_cache_put(c, tid, &in, settings_cache_epoch(c));
  time_sleep_ms(20);
  ck_assert(!settings_cache_lookup(c, tid, &out));
  settings_cache_free(c);
  settings_cache_free(NULL);
}
END_TEST

START_TEST(a_forget_drops_the_tenant_and_refuses_an_older_read) {
  settings_cache *c = NULL;
  ck_assert_int_eq(settings_cache_new(60000, &c), ERR_OK);
  char tid[UUID_STR_LEN + 1], other[UUID_STR_LEN + 1];
  uuid_v7_str(tid);
  uuid_v7_str(other);
  store_settings in = sms_only(), out;
  settings_cache_put(c, tid, &in, settings_cache_epoch(c));
  settings_cache_put(c, other, &in, settings_cache_epoch(c));
  uint64_t before = settings_cache_epoch(c); /* a read starts */
  settings_cache_forget(c, tid);             /* a PATCH commits */
  ck_assert(!settings_cache_lookup(c, tid, &out));
  /* Another tenant is unaffected, unless it shares the slot. */
  ck_assert(settings_cache_lookup(c, other, &out));
  /* The read that started before the forget may hold the old settings:
   * it is not stored. One that starts after it is. */
  settings_cache_put(c, tid, &in, before);
  ck_assert(!settings_cache_lookup(c, tid, &out));
  settings_cache_put(c, tid, &in, settings_cache_epoch(c));
  ck_assert(settings_cache_lookup(c, tid, &out));
  settings_cache_forget(NULL, tid); /* no cache: nothing to do */
  settings_cache_free(c);
}
END_TEST

START_TEST(a_tenant_in_the_same_slot_evicts_the_other) {
  settings_cache *c = NULL;
  ck_assert_int_eq(settings_cache_new(60000, &c), ERR_OK);
  char a[UUID_STR_LEN + 1], b[UUID_STR_LEN + 1];
  uuid_v7_str(a);
  store_settings in = sms_only(), out;
  bool evicted = false;
  /* SETTINGS_CACHE_SLOTS slots: a colliding id turns up in ~1,000 tries. */
  for (int i = 0; i < 200000 && !evicted; i++) {
    settings_cache_put(c, a, &in, settings_cache_epoch(c));
    uuid_v7_str(b);
    settings_cache_put(c, b, &in, settings_cache_epoch(c));
    evicted = !settings_cache_lookup(c, a, &out);
  }
  ck_assert(evicted);
  ck_assert(settings_cache_lookup(c, b, &out)); /* the newer one stays */
  settings_cache_free(c);
}
END_TEST

START_TEST(a_page_is_1_to_100_with_a_cursor_of_ours) {
  vlist v;
  size_t limit = 0;
  char before[UUID_STR_LEN + 1], cur[CURSOR_LEN + 1];
  vlist_init(&v);
  notifications_page_args(0, "", &v, &limit, before);
  ck_assert_uint_eq(v.n, 0);
  ck_assert_uint_eq(limit, 20);
  ck_assert_str_eq(before, "");
  ck_assert_int_eq(cursor_encode("01a24da2-102b-7542-b8bb-0a95a9872f02", cur),
                   ERR_OK);
  notifications_page_args(100, cur, &v, &limit, before);
  ck_assert_uint_eq(v.n, 0);
  ck_assert_uint_eq(limit, 100);
  ck_assert_str_eq(before, "01a24da2-102b-7542-b8bb-0a95a9872f02");
  notifications_page_args(101, "01a24da2-102b-7542-b8bb-0a95a9872f02", &v,
                          &limit, before);
  ck_assert_uint_eq(v.n, 2); /* limit, and a raw id is not a cursor */
}
END_TEST

int main(void) {
  if (sodium_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != 0) return 1;

  Suite *s = suite_create("notifications");
  TCase *tc = tcase_create("pure");
  tcase_add_test(tc, a_secret_is_whsec_base64_and_parses_back);
  tcase_add_test(tc, a_sealed_secret_opens_only_with_its_key_and_unchanged);
  tcase_add_test(tc, the_signature_is_standard_webhooks_v1);
  tcase_add_test(tc, private_loopback_and_link_local_addresses_are_private);
  tcase_add_test(tc, urls_must_be_http_with_a_host_and_no_credentials);
  tcase_add_test(tc, a_loopback_target_is_refused_unless_allowed);
  tcase_add_test(tc, the_sender_refuses_a_private_target_before_connecting);
  tcase_add_test(tc, backoff_doubles_from_the_base_with_jitter);
  tcase_add_test(tc, a_test_body_has_the_contract_keys);
  tcase_add_test(tc, event_types_must_be_known_and_distinct);
  tcase_add_test(tc, an_email_header_cannot_be_injected);
  tcase_add_test(tc, only_plain_addresses_are_mailed);
  tcase_add_test(tc, a_notification_packs_its_data_and_recipient);
  tcase_add_test(tc, each_address_and_phone_of_a_batch_makes_one_message);
  tcase_add_test(tc, the_default_channels_are_in_app_and_email_not_sms);
  tcase_add_test(tc, a_page_is_1_to_100_with_a_cursor_of_ours);
  tcase_add_test(tc, the_settings_cache_hits_within_the_ttl_and_expires_after);
  tcase_add_test(tc, a_forget_drops_the_tenant_and_refuses_an_older_read);
  tcase_add_test(tc, a_tenant_in_the_same_slot_evicts_the_other);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
