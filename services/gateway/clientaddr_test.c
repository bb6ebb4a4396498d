/*
 * clientaddr_test.c - the client address behind trusted proxies
 * (clientaddr.h): the configuration list, and X-Forwarded-For as an
 * attacker writes it (spoofed left parts, garbage, ports, zones, brackets,
 * mapped addresses, floods of hops).
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "services/gateway/clientaddr.h"

static struct sockaddr_storage g_peer;

static const struct sockaddr *peer(const char *text) {
  memset(&g_peer, 0, sizeof g_peer);
  struct sockaddr_in *v4 = (struct sockaddr_in *)&g_peer;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&g_peer;
  if (inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
  } else {
    ck_assert_int_eq(inet_pton(AF_INET6, text, &v6->sin6_addr), 1);
    v6->sin6_family = AF_INET6;
  }
  return (const struct sockaddr *)&g_peer;
}

static clientaddr_trust *trust(const char *list) {
  clientaddr_trust *t = NULL;
  ck_assert_int_eq(clientaddr_trust_new(list, &t, NULL, 0), ERR_OK);
  return t;
}

/* The client for (peer, xff) under list. */
static const char *pick(const char *list, const char *p, const char *xff) {
  static char out[CLIENTADDR_STRLEN];
  clientaddr_trust *t = trust(list);
  clientaddr_pick(t, peer(p), xff, false, out, sizeof out);
  clientaddr_trust_free(t);
  return out;
}

START_TEST(trusted_list_parses_cidrs_of_both_families) {
  clientaddr_trust *t = trust(" 10.0.0.0/8, 192.168.1.7 ,2001:db8::/32,::1,");
  ck_assert_uint_eq(clientaddr_trust_count(t), 4);
  ck_assert(clientaddr_is_trusted(t, "10.200.3.4"));
  ck_assert(clientaddr_is_trusted(t, "::ffff:10.1.1.1")); /* mapped = v4 */
  ck_assert(clientaddr_is_trusted(t, "192.168.1.7"));
  ck_assert(!clientaddr_is_trusted(t, "192.168.1.8"));
  ck_assert(clientaddr_is_trusted(t, "2001:db8:ffff::1"));
  ck_assert(!clientaddr_is_trusted(t, "2001:db9::1"));
  ck_assert(clientaddr_is_trusted(t, "::1"));
  ck_assert(!clientaddr_is_trusted(t, "11.0.0.1"));
  clientaddr_trust_free(t);
  /* Host bits are ignored; /0 trusts everything of the family. */
  t = trust("10.1.2.3/8,0.0.0.0/0");
  ck_assert(clientaddr_is_trusted(t, "10.9.9.9"));
  ck_assert(clientaddr_is_trusted(t, "8.8.8.8"));
  ck_assert(!clientaddr_is_trusted(t, "2001:db8::1"));
  clientaddr_trust_free(t);
  t = trust(NULL);
  ck_assert_uint_eq(clientaddr_trust_count(t), 0);
  ck_assert(!clientaddr_is_trusted(t, "127.0.0.1"));
  clientaddr_trust_free(t);
}
END_TEST

START_TEST(bad_trusted_lists_are_refused_naming_the_entry) {
  const char *bad[] = {"10.0.0.0/33", "10.0.0.0/",    "10.0.0.0/x",
                       "::/129",      "example.com",  "10.0.0",
                       "1.2.3.4:80",  "fe80::1%eth0", "10.0.0.0/8/8",
                       "[1.2.3.4]"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    clientaddr_trust *t = NULL;
    char why[80];
    ck_assert_int_eq(clientaddr_trust_new(bad[i], &t, why, sizeof why),
                     ERR_INVAL);
    ck_assert_ptr_null(t);
    ck_assert_str_eq(why, bad[i]);
  }
  char many[4096] = "";
  size_t used = 0;
  for (int i = 0; i <= CLIENTADDR_MAX_NETS; i++)
    used +=
        (size_t)snprintf(many + used, sizeof many - used, "10.0.%d.0/24,", i);
  clientaddr_trust *t = NULL;
  ck_assert_int_eq(clientaddr_trust_new(many, &t, NULL, 0), ERR_TOOBIG);
}
END_TEST

START_TEST(untrusted_peer_is_the_client_whatever_the_header) {
  ck_assert_str_eq(pick("", "203.0.113.9", "1.1.1.1"), "203.0.113.9");
  ck_assert_str_eq(pick("10.0.0.0/8", "203.0.113.9", "10.0.0.5, 1.1.1.1"),
                   "203.0.113.9");
  ck_assert_str_eq(pick("10.0.0.0/8", "10.0.0.1", NULL), "10.0.0.1");
  ck_assert_str_eq(pick("::1", "::1", NULL), "::1");
}
END_TEST

START_TEST(right_most_untrusted_entry_is_the_client) {
  const char *l = "10.0.0.0/8";
  ck_assert_str_eq(pick(l, "10.0.0.1", "198.51.100.7"), "198.51.100.7");
  /* The client's own spoofed entries sit left of the real one. */
  ck_assert_str_eq(pick(l, "10.0.0.1", "6.6.6.6, 198.51.100.7"),
                   "198.51.100.7");
  ck_assert_str_eq(pick(l, "10.0.0.1", "6.6.6.6,198.51.100.7, 10.0.0.9"),
                   "198.51.100.7");
  /* A client claiming to be a trusted proxy is skipped only when the
   * claim is to the right of every untrusted entry - which only a
   * trusted proxy can write. */
  ck_assert_str_eq(pick(l, "10.0.0.1", "10.0.0.7, 198.51.100.7"),
                   "198.51.100.7");
  /* Every entry trusted: the left-most. */
  ck_assert_str_eq(pick(l, "10.0.0.1", "10.0.0.3, 10.0.0.2"), "10.0.0.3");
  /* IPv6, brackets, mapped addresses, canonical output. */
  ck_assert_str_eq(pick("2001:db8::/32", "2001:db8::1", "[2001:DB8:0:0::99]"),
                   "2001:db8::99");
  ck_assert_str_eq(pick("::1, 127.0.0.0/8", "::1", "::ffff:198.51.100.7"),
                   "198.51.100.7");
  ck_assert_str_eq(pick(l, "::ffff:10.0.0.1", "2001:db8::5"), "2001:db8::5");
}
END_TEST

START_TEST(malformed_entries_stop_at_the_last_trusted_hop) {
  const char *l = "10.0.0.0/8";
  /* Garbage right after the proxy: the proxy itself. */
  const char *bad[] = {"unknown",
                       "",
                       " ",
                       "198.51.100.7:4711",
                       "fe80::1%eth0",
                       "example.com",
                       "1.2.3",
                       "01.2.3.4",
                       "1.2.3.4 5.6.7.8",
                       "[1.2.3.4]",
                       "198.51.100.7,",
                       "999.1.1.1",
                       "\x01"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(strcmp(pick(l, "10.0.0.1", bad[i]), "10.0.0.1") == 0,
                  "entry %zu gave %s", i, pick(l, "10.0.0.1", bad[i]));
  /* Garbage left of the real client does not matter. */
  ck_assert_str_eq(pick(l, "10.0.0.1", "junk, 198.51.100.7"), "198.51.100.7");
  /* Garbage between two trusted hops: the nearer trusted hop. */
  ck_assert_str_eq(pick(l, "10.0.0.1", "198.51.100.7, junk, 10.0.0.2"),
                   "10.0.0.2");
  /* An over-long entry. */
  char longe[200];
  memset(longe, '1', sizeof longe - 1);
  longe[sizeof longe - 1] = '\0';
  ck_assert_str_eq(pick(l, "10.0.0.1", longe), "10.0.0.1");
}
END_TEST

START_TEST(hop_floods_and_truncated_headers_are_bounded) {
  /* More trusted hops than are walked: the last one walked. */
  char xff[CLIENTADDR_XFF_MAX + 64] = "198.51.100.7";
  size_t used = strlen(xff);
  for (int i = 0; i < CLIENTADDR_MAX_HOPS + 5; i++)
    used += (size_t)snprintf(xff + used, sizeof xff - used, ", 10.0.0.2");
  ck_assert_str_eq(pick("10.0.0.0/8", "10.0.0.1", xff), "10.0.0.2");
  /* A header the server had to cut: the peer. */
  char out[CLIENTADDR_STRLEN];
  clientaddr_trust *t = trust("10.0.0.0/8");
  ck_assert(!clientaddr_pick(t, peer("10.0.0.1"), "198.51.100.7", true, out,
                             sizeof out));
  ck_assert_str_eq(out, "10.0.0.1");
  ck_assert(clientaddr_pick(t, peer("10.0.0.1"), "198.51.100.7", false, out,
                            sizeof out));
  ck_assert_str_eq(out, "198.51.100.7");
  /* No peer, no room. */
  ck_assert(!clientaddr_pick(t, NULL, "1.1.1.1", false, out, sizeof out));
  ck_assert_str_eq(out, "-");
  char tiny[8];
  ck_assert(
      !clientaddr_pick(t, peer("10.0.0.1"), NULL, false, tiny, sizeof tiny));
  ck_assert_str_eq(tiny, "-");
  clientaddr_trust_free(t);
}
END_TEST

int main(void) {
  Suite *s = suite_create("clientaddr");
  TCase *tc = tcase_create("clientaddr");
  tcase_add_test(tc, trusted_list_parses_cidrs_of_both_families);
  tcase_add_test(tc, bad_trusted_lists_are_refused_naming_the_entry);
  tcase_add_test(tc, untrusted_peer_is_the_client_whatever_the_header);
  tcase_add_test(tc, right_most_untrusted_entry_is_the_client);
  tcase_add_test(tc, malformed_entries_stop_at_the_last_trusted_hop);
  tcase_add_test(tc, hop_floods_and_truncated_headers_are_bounded);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
