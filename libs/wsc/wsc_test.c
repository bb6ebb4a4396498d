/*
 * wsc_test.c - URLs parsed strictly; messages reassembled from fragments,
 * an over-long one skipped whole and the next one read.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "libs/wsc/wsc.h"

START_TEST(urls_are_parsed_strictly) {
  char host[64], path[64];
  int port = 0;
  ck_assert_int_eq(wsc_parse_url("ws://127.0.0.1:8081", host, sizeof host,
                                 &port, path, sizeof path, "/v1/realtime"),
                   0);
  ck_assert_str_eq(host, "127.0.0.1");
  ck_assert_int_eq(port, 8081);
  ck_assert_str_eq(path, "/v1/realtime");
  ck_assert_int_eq(wsc_parse_url("ws://rt.example:80/x/y", host, sizeof host,
                                 &port, path, sizeof path, "/"),
                   0);
  ck_assert_str_eq(host, "rt.example");
  ck_assert_int_eq(port, 80);
  ck_assert_str_eq(path, "/x/y");
  const char *bad[] = {
      "http://h:1",   "wss://h:1",  "ws://h",    "ws://:80", "ws://h:0",
      "ws://h:70000", "ws://h:8x/", "ws://h:/p", "",         NULL};
  for (int i = 0; bad[i] != NULL; i++)
    ck_assert_msg(wsc_parse_url(bad[i], host, sizeof host, &port, path,
                                sizeof path, "/") != 0,
                  "%s accepted", bad[i]);
  ck_assert_int_ne(
      wsc_parse_url(NULL, host, sizeof host, &port, path, sizeof path, "/"), 0);
  char tiny[4];
  ck_assert_int_ne(wsc_parse_url("ws://hostname:1", tiny, sizeof tiny, &port,
                                 path, sizeof path, "/"),
                   0);
}
END_TEST

START_TEST(messages_are_reassembled_and_bounded) {
  static wsc_msg m;
  wsc_msg_reset(&m);
  ck_assert(!wsc_msg_add(&m, "{\"op\":", 6, false));
  ck_assert(wsc_msg_add(&m, "1}", 2, true));
  ck_assert_int_eq(m.len, 8);
  ck_assert(memcmp(m.buf, "{\"op\":1}", 8) == 0);
  /* The next message starts afresh. */
  ck_assert(wsc_msg_add(&m, "ab", 2, true));
  ck_assert_int_eq(m.len, 2);
  /* Over the cap: skipped whole, then the next one is read. */
  static char big[WSC_MSG_MAX];
  memset(big, 'x', sizeof big);
  ck_assert(!wsc_msg_add(&m, big, sizeof big, false));
  ck_assert(!wsc_msg_add(&m, "y", 1, false));
  ck_assert(!wsc_msg_add(&m, "z", 1, true));
  ck_assert(wsc_msg_add(&m, "ok", 2, true));
  ck_assert_int_eq(m.len, 2);
  ck_assert(memcmp(m.buf, "ok", 2) == 0);
  /* Exactly the cap fits. */
  ck_assert(wsc_msg_add(&m, big, sizeof big, true));
  ck_assert_int_eq(m.len, WSC_MSG_MAX);
}
END_TEST

int main(void) {
  Suite *s = suite_create("wsc");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, urls_are_parsed_strictly);
  tcase_add_test(tc, messages_are_reassembled_and_bounded);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
