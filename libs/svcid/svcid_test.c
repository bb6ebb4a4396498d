/*
 * svcid_test.c - service tokens: what a callee accepts and, above all,
 * what it refuses (forged, borrowed, misaddressed, stale, over-long), the
 * trust bundle format, and the access-table lookups.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libs/base/timeutil.h"
#include "libs/paseto/claims.h"
#include "libs/paseto/paseto.h"
#include "libs/svcid/access.h"
#include "libs/svcid/svcid.h"

typedef struct keys {
  paseto_secret_key gw, tn, rogue;
  char bundle[1024];
} keys;

static keys make_keys(void) {
  keys k;
  paseto_public_key pg, pt, pr;
  paseto_keygen(&k.gw, &pg);
  paseto_keygen(&k.tn, &pt);
  paseto_keygen(&k.rogue, &pr);
  char pubg[PASETO_PASERK_PUBLIC_LEN + 1], pubt[PASETO_PUBLIC_HEX_LEN + 1];
  paseto_paserk_public(&pg, pubg);
  paseto_public_key_to_hex(&pt, pubt);
  snprintf(k.bundle, sizeof k.bundle,
           "# services\n\ngateway %s\n  tenants\t%s  \n", pubg, pubt);
  return k;
}

static svcid_verifier *verifier_for(const char *self, const keys *k) {
  svcid_bundle *b = NULL;
  int bad = 0;
  ck_assert_int_eq(svcid_bundle_parse(k->bundle, strlen(k->bundle), &b, &bad),
                   ERR_OK);
  ck_assert_uint_eq(svcid_bundle_count(b), 2);
  svcid_verifier *v = NULL;
  ck_assert_int_eq(svcid_verifier_new(self, b, &v), ERR_OK);
  return v;
}

static svcid_signer *signer(const char *name, const paseto_secret_key *sk) {
  svcid_signer *s = NULL;
  ck_assert_int_eq(svcid_signer_new(name, sk, &s), ERR_OK);
  return s;
}

START_TEST(a_token_names_its_service_to_its_audience) {
  keys k = make_keys();
  svcid_verifier *auth = verifier_for("auth", &k);
  svcid_signer *gw = signer("gateway", &k.gw);
  char tok[SVCID_TOKEN_MAX + 1], again[SVCID_TOKEN_MAX + 1];
  char caller[SVCID_NAME_MAX + 1];
  const char *why = NULL;
  ck_assert_int_eq(svcid_signer_token(gw, "auth", tok, sizeof tok), ERR_OK);
  ck_assert_int_eq(svcid_verify(auth, tok, strlen(tok), caller, &why), ERR_OK);
  ck_assert_str_eq(caller, "gateway");
  /* Cached on both sides: the same token, accepted again. */
  ck_assert_int_eq(svcid_signer_token(gw, "auth", again, sizeof again), ERR_OK);
  ck_assert_str_eq(again, tok);
  ck_assert_int_eq(svcid_verify(auth, tok, strlen(tok), caller, &why), ERR_OK);
  ck_assert_str_eq(caller, "gateway");
  svcid_signer_free(gw);
  svcid_verifier_free(auth);
}
END_TEST

START_TEST(forged_borrowed_and_misaddressed_tokens_are_refused) {
  keys k = make_keys();
  svcid_verifier *auth = verifier_for("auth", &k);
  char tok[SVCID_TOKEN_MAX + 1], caller[SVCID_NAME_MAX + 1];
  const char *why = NULL;

  /* A key the bundle does not hold. */
  svcid_signer *rogue = signer("gateway", &k.rogue);
  ck_assert_int_eq(svcid_signer_token(rogue, "auth", tok, sizeof tok), ERR_OK);
  ck_assert_int_eq(svcid_verify(auth, tok, strlen(tok), caller, &why),
                   ERR_INVAL);
  ck_assert_str_eq(why, "unknown service key");
  ck_assert_str_eq(caller, "");

  /* tenants' key claiming to be the gateway. */
  svcid_signer *liar = signer("gateway", &k.tn);
  ck_assert_int_eq(svcid_signer_token(liar, "auth", tok, sizeof tok), ERR_OK);
  ck_assert_int_eq(svcid_verify(auth, tok, strlen(tok), caller, &why),
                   ERR_INVAL);
  ck_assert_str_eq(why, "service token names another service than its key");

  /* A token the gateway gave orders, replayed by orders to auth. */
  svcid_signer *gw = signer("gateway", &k.gw);
  ck_assert_int_eq(svcid_signer_token(gw, "orders", tok, sizeof tok), ERR_OK);
  ck_assert_int_eq(svcid_verify(auth, tok, strlen(tok), caller, &why),
                   ERR_INVAL);
  ck_assert_str_eq(why, "service token for another service");

  /* One flipped character of a good token. */
  ck_assert_int_eq(svcid_signer_token(gw, "auth", tok, sizeof tok), ERR_OK);
  size_t mid = strlen(tok) / 2;
  tok[mid] = tok[mid] == 'A' ? 'B' : 'A';
  ck_assert_int_eq(svcid_verify(auth, tok, strlen(tok), caller, &why),
                   ERR_INVAL);

  /* None, garbage, too long. */
  ck_assert_int_eq(svcid_verify(auth, "", 0, caller, &why), ERR_INVAL);
  ck_assert_str_eq(why, "missing service token");
  ck_assert_int_eq(svcid_verify(auth, "v4.public.xyz", 13, caller, &why),
                   ERR_INVAL);
  char big[SVCID_TOKEN_MAX + 2];
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  ck_assert_int_eq(svcid_verify(auth, big, strlen(big), caller, &why),
                   ERR_INVAL);
  ck_assert_str_eq(why, "service token too long");
  svcid_signer_free(rogue);
  svcid_signer_free(liar);
  svcid_signer_free(gw);
  svcid_verifier_free(auth);
}
END_TEST

START_TEST(stale_future_and_long_lived_tokens_are_refused) {
  keys k = make_keys();
  svcid_verifier *auth = verifier_for("auth", &k);
  svcid_signer *gw = signer("gateway", &k.gw);
  char tok[SVCID_TOKEN_MAX + 1], caller[SVCID_NAME_MAX + 1];
  const char *why = NULL;
  int64_t now = time_now_ms();

  ck_assert_int_eq(svcid_signer_mint(gw, "auth", now - 20 * 60 * 1000,
                                     SVCID_TTL_MS, tok, sizeof tok),
                   ERR_OK);
  ck_assert_int_eq(svcid_verify(auth, tok, strlen(tok), caller, &why),
                   ERR_INVAL);
  ck_assert_str_eq(why, "token expired");

  ck_assert_int_eq(svcid_signer_mint(gw, "auth", now + 10 * 60 * 1000,
                                     SVCID_TTL_MS, tok, sizeof tok),
                   ERR_OK);
  ck_assert_int_eq(svcid_verify(auth, tok, strlen(tok), caller, &why),
                   ERR_INVAL);

  ck_assert_int_eq(
      svcid_signer_mint(gw, "auth", now, 24 * 3600 * 1000LL, tok, sizeof tok),
      ERR_OK);
  ck_assert_int_eq(svcid_verify(auth, tok, strlen(tok), caller, &why),
                   ERR_INVAL);
  ck_assert_str_eq(why, "service token lives too long");

  /* A cached token stops working when it expires. */
  ck_assert_int_eq(
      svcid_signer_mint(gw, "auth", now, SVCID_TTL_MS, tok, sizeof tok),
      ERR_OK);
  ck_assert_int_eq(svcid_verify(auth, tok, strlen(tok), caller, &why), ERR_OK);
  ck_assert_int_eq(svcid_verify_at(auth, tok, strlen(tok),
                                   now + SVCID_TTL_MS + SVCID_LEEWAY_MS + 1,
                                   caller, &why),
                   ERR_INVAL);
  svcid_signer_free(gw);
  svcid_verifier_free(auth);
}
END_TEST

START_TEST(a_user_access_token_is_not_a_service_token) {
  /* Signed with a bundle key but without the service assertion, as an
   * access token is: refused, whatever its claims say. */
  keys k = make_keys();
  svcid_verifier *auth = verifier_for("auth", &k);
  paseto_claims c;
  memset(&c, 0, sizeof c);
  snprintf(c.iss, sizeof c.iss, "gateway");
  snprintf(c.sub, sizeof c.sub, "gateway");
  snprintf(c.aud, sizeof c.aud, "auth");
  c.has_iat = c.has_nbf = c.has_exp = true;
  c.iat_ms = c.nbf_ms = time_now_ms();
  c.exp_ms = c.iat_ms + 60000;
  char *json = NULL;
  size_t len = 0;
  ck_assert_int_eq(paseto_claims_to_json(&c, &json, &len), ERR_OK);
  paseto_public_key pk;
  paseto_public_key_of(&k.gw, &pk);
  char pid[PASETO_PID_LEN + 1], footer[128], tok[SVCID_TOKEN_MAX + 1];
  paseto_pid(&pk, pid);
  size_t flen = 0;
  ck_assert_int_eq(paseto_footer_kid_json(pid, footer, sizeof footer, &flen),
                   ERR_OK);
  ck_assert_int_eq(paseto_sign(&k.gw, json, len, footer, flen, NULL, 0, tok,
                               sizeof tok, NULL),
                   ERR_OK);
  free(json);
  char caller[SVCID_NAME_MAX + 1];
  const char *why = NULL;
  ck_assert_int_eq(svcid_verify(auth, tok, strlen(tok), caller, &why),
                   ERR_INVAL);
  ck_assert_str_eq(why, "bad service token signature");
  svcid_verifier_free(auth);
}
END_TEST

START_TEST(bundle_and_names_are_checked) {
  svcid_bundle *b = NULL;
  int bad = 0;
  const char *cases[] = {
      "gateway\n",                /* no key */
      "Gateway 00\n",             /* bad name, bad key */
      "gateway k4.public.AAAA\n", /* short PASERK */
      "# ok\nauth zz\n",          /* bad hex, line 2 */
  };
  const int lines[] = {1, 1, 1, 2};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ck_assert_int_eq(svcid_bundle_parse(cases[i], strlen(cases[i]), &b, &bad),
                     ERR_INVAL);
    ck_assert_int_eq(bad, lines[i]);
  }
  ck_assert(svcid_name_ok("notifications"));
  ck_assert(svcid_name_ok("a1-b"));
  ck_assert(!svcid_name_ok(""));
  ck_assert(!svcid_name_ok("*"));
  ck_assert(!svcid_name_ok("1abc"));
  ck_assert(!svcid_name_ok("Auth"));
  ck_assert(!svcid_name_ok("abcdefghijabcdefghijabcdefghijabc")); /* 33 */
  ck_assert_int_eq(svcid_bundle_load("/nonexistent/trust", &b, &bad), ERR_IO);
}
END_TEST

START_TEST(signer_loads_its_key_from_a_file) {
  paseto_secret_key sk;
  paseto_public_key pk;
  paseto_keygen(&sk, &pk);
  char hex[PASETO_SECRET_HEX_LEN + 1], path[] = "/tmp/svcid_test_XXXXXX";
  paseto_secret_key_to_hex(&sk, hex);
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(write(fd, hex, strlen(hex)), (ssize_t)strlen(hex));
  ck_assert_int_eq(write(fd, "\n", 1), 1);
  close(fd);
  svcid_signer *s = NULL;
  ck_assert_int_eq(svcid_signer_load("orders", path, &s), ERR_OK);
  char pid[PASETO_PID_LEN + 1];
  paseto_pid(&pk, pid);
  ck_assert_str_eq(svcid_signer_kid(s), pid);
  ck_assert_str_eq(svcid_signer_name(s), "orders");
  svcid_signer_free(s);
  ck_assert_int_eq(svcid_signer_load("BAD", path, &s), ERR_INVAL);
  unlink(path);
  ck_assert_int_eq(svcid_signer_load("orders", path, &s), ERR_IO);
}
END_TEST

START_TEST(access_rules_find_the_caller) {
  static const svcid_caller_rule callers[] = {{"gateway", SVCID_USER_ADMIN},
                                              {"*", SVCID_USER_NONE}};
  static const svcid_method_access methods[] = {
      {"a.v1.A/One", callers, 1, NULL, NULL},
      {"a.v1.A/Two", callers, 2, NULL, NULL}};
  const svcid_access_table t = {"a.proto", methods, 2};
  const svcid_method_access *one = svcid_access_find(&t, "a.v1.A/One");
  ck_assert_ptr_eq(one, &methods[0]);
  ck_assert_ptr_null(svcid_access_find(&t, "a.v1.A/Three"));
  ck_assert_int_eq(svcid_access_caller(one, "gateway")->user, SVCID_USER_ADMIN);
  ck_assert_ptr_null(svcid_access_caller(one, "orders"));
  ck_assert_ptr_null(svcid_access_caller(one, ""));
  const svcid_method_access *two = svcid_access_find(&t, "a.v1.A/Two");
  ck_assert_str_eq(svcid_access_caller(two, "orders")->service, "*");
  ck_assert_str_eq(svcid_access_caller(two, "gateway")->service, "gateway");
  ck_assert_int_eq(svcid_user_rank(SVCID_USER_ANONYMOUS), 0);
  ck_assert_int_eq(svcid_user_rank(SVCID_USER_CUSTOMER), 1);
  ck_assert_int_eq(svcid_user_rank(SVCID_USER_OWNER), 4);
  ck_assert_str_eq(svcid_user_name(SVCID_USER_STAFF), "staff");
}
END_TEST

int main(void) {
  if (paseto_init() != ERR_OK) return EXIT_FAILURE;
  Suite *s = suite_create("svcid");
  TCase *tc = tcase_create("svcid");
  tcase_add_test(tc, a_token_names_its_service_to_its_audience);
  tcase_add_test(tc, forged_borrowed_and_misaddressed_tokens_are_refused);
  tcase_add_test(tc, stale_future_and_long_lived_tokens_are_refused);
  tcase_add_test(tc, a_user_access_token_is_not_a_service_token);
  tcase_add_test(tc, bundle_and_names_are_checked);
  tcase_add_test(tc, signer_loads_its_key_from_a_file);
  tcase_add_test(tc, access_rules_find_the_caller);
  suite_add_tcase(s, tc);
  SRunner *r = srunner_create(s);
  srunner_run_all(r, CK_NORMAL);
  int failed = srunner_ntests_failed(r);
  srunner_free(r);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
