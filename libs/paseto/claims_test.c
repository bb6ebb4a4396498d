/*
 * claims_test.c - claims JSON, time checks with leeway, and the kid footer
 * read before verification.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/err.h"
#include "libs/base/timeutil.h"
#include "libs/paseto/claims.h"
#include "libs/paseto/paseto.h"

#define T0 1795341600000LL /* 2026-11-22T10:00:00Z */
#define MIN (60LL * 1000)
#define VECTOR_PID "k4.pid.9ShR3xc8-qVJ_di0tc9nx0IDIqbatdeM2mqLFBJsKRHs"

static paseto_claims sample(void) {
  paseto_claims c;
  memset(&c, 0, sizeof c);
  snprintf(c.iss, sizeof c.iss, "auth");
  snprintf(c.sub, sizeof c.sub, "0190f0a2-1c4b-7cde-8f00-123456789abc");
  snprintf(c.tid, sizeof c.tid, "t-42");
  snprintf(c.role, sizeof c.role, "staff");
  snprintf(c.jti, sizeof c.jti, "j-1");
  c.has_iat = c.has_nbf = c.has_exp = true;
  c.iat_ms = T0;
  c.nbf_ms = T0;
  c.exp_ms = T0 + 15 * MIN;
  return c;
}

static int parse(const char *json, paseto_claims *c, const char **why) {
  return paseto_claims_from_json(json, strlen(json), c, why);
}

START_TEST(claims_serialise_to_exact_compact_json) {
  paseto_claims c = sample();
  char *json = NULL;
  size_t len = 0;
  c.iat_ms = T0 + 999; /* sub-second part is dropped */
  ck_assert_int_eq(paseto_claims_to_json(&c, &json, &len), ERR_OK);
  ck_assert_str_eq(json, "{\"iss\":\"auth\",\"sub\":\"0190f0a2-1c4b-7cde-8f00-"
                         "123456789abc\",\"tid\":\"t-42\",\"role\":\"staff\","
                         "\"jti\":\"j-1\",\"iat\":\"2026-11-22T10:00:00Z\","
                         "\"nbf\":\"2026-11-22T10:00:00Z\","
                         "\"exp\":\"2026-11-22T10:15:00Z\"}");
  ck_assert_uint_eq(len, strlen(json));
  free(json);

  /* Absent claims are left out. */
  paseto_claims empty;
  memset(&empty, 0, sizeof empty);
  ck_assert_int_eq(paseto_claims_to_json(&empty, &json, NULL), ERR_OK);
  ck_assert_str_eq(json, "{}");
  free(json);

  /* Times before 1970 round down to the second. */
  empty.has_exp = true;
  empty.exp_ms = -1;
  ck_assert_int_eq(paseto_claims_to_json(&empty, &json, NULL), ERR_OK);
  ck_assert_str_eq(json, "{\"exp\":\"1969-12-31T23:59:59Z\"}");
  free(json);
}
END_TEST

START_TEST(claims_round_trip) {
  paseto_claims c = sample(), back;
  char *json = NULL;
  const char *why = NULL;
  ck_assert_int_eq(paseto_claims_to_json(&c, &json, NULL), ERR_OK);
  ck_assert_int_eq(parse(json, &back, &why), ERR_OK);
  ck_assert_str_eq(back.iss, c.iss);
  ck_assert_str_eq(back.sub, c.sub);
  ck_assert_str_eq(back.tid, c.tid);
  ck_assert_str_eq(back.role, c.role);
  ck_assert_str_eq(back.jti, c.jti);
  ck_assert_str_eq(back.aud, "");
  ck_assert(back.has_iat && back.has_nbf && back.has_exp);
  free(json);

  /* aud (service tokens) goes between sub and tid and comes back. */
  snprintf(c.aud, sizeof c.aud, "orders");
  ck_assert_int_eq(paseto_claims_to_json(&c, &json, NULL), ERR_OK);
  ck_assert_ptr_nonnull(strstr(json, "\"sub\":\"0190f0a2-1c4b-7cde-8f00-"
                                     "123456789abc\",\"aud\":\"orders\","));
  ck_assert_int_eq(parse(json, &back, &why), ERR_OK);
  ck_assert_str_eq(back.aud, "orders");
  ck_assert_int_eq(back.iat_ms, c.iat_ms);
  ck_assert_int_eq(back.exp_ms, c.exp_ms);
  free(json);

  /* The official vector payload (offset "+00:00", extra claim "data"). */
  ck_assert_int_eq(parse("{\"data\":\"this is a signed message\","
                         "\"exp\":\"2022-01-01T00:00:00+00:00\"}",
                         &back, &why),
                   ERR_OK);
  ck_assert(back.has_exp && !back.has_iat && !back.has_nbf);
  ck_assert_int_eq(back.exp_ms, 1640995200000LL);
  ck_assert_str_eq(back.sub, "");
}
END_TEST

START_TEST(claims_to_json_rejects_invalid_utf8) {
  paseto_claims c = sample();
  char *json = (char *)1;
  c.sub[0] = (char)0xff;
  ck_assert_int_eq(paseto_claims_to_json(&c, &json, NULL), ERR_INVAL);
  ck_assert_ptr_null(json);
}
END_TEST

START_TEST(malformed_claims_are_rejected_with_reason) {
  static const struct {
    const char *json;
    const char *why;
  } cases[] = {
      {"[]", "claims are not a JSON object"},
      {"\"x\"", "claims are not a JSON object"},
      {"", "claims are not a JSON object"},
      {"{\"sub\":\"a\"", "claims nest too deep or have too many keys"},
      {"{\"sub\":\"a\",}", "claims are not a JSON object"},
      {"{\"sub\":1}", "claim sub is not a string of at most 128 bytes"},
      {"{\"tid\":null}", "claim tid is not a string of at most 128 bytes"},
      {"{\"role\":[\"x\"]}", "claim role is not a string of at most 128 bytes"},
      {"{\"exp\":1735689600}", "claim exp is not an RFC 3339 date-time"},
      {"{\"exp\":\"2022-01-01t00:00:00Z\"}",
       "claim exp is not an RFC 3339 date-time"},
      {"{\"exp\":\"2022-01-01T00:00:00z\"}",
       "claim exp is not an RFC 3339 date-time"},
      {"{\"nbf\":\"2022-02-30T00:00:00Z\"}",
       "claim nbf is not an RFC 3339 date-time"},
      {"{\"iat\":\"yesterday\"}", "claim iat is not an RFC 3339 date-time"},
      {"{\"exp\":\"2022-01-01T00:00:00Z\",\"exp\":\"2099-01-01T00:00:00Z\"}",
       "claims are not a JSON object"},
      {"{\"a\":[[[[1]]]]}", "claims nest too deep or have too many keys"},
      {"{\"sub\":\"a\\u0000b\"}", "claims are not a JSON object"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    paseto_claims c;
    const char *why = NULL;
    ck_assert_msg(parse(cases[i].json, &c, &why) == ERR_INVAL, "%s accepted",
                  cases[i].json);
    ck_assert_msg(strcmp(why, cases[i].why) == 0, "%s: %s", cases[i].json, why);
  }
  /* Nesting within the bound is fine for extra claims. */
  paseto_claims c;
  ck_assert_int_eq(parse("{\"x\":[[[1]]],\"s\":\"]]]]]}}}}\"}", &c, NULL),
                   ERR_OK);
}
END_TEST

START_TEST(claim_strings_and_key_count_are_bounded) {
  char json[2048];
  paseto_claims c;
  const char *why = NULL;
  char s[PASETO_CLAIM_STR_MAX + 2];
  memset(s, 'x', sizeof s);
  s[PASETO_CLAIM_STR_MAX] = '\0';
  snprintf(json, sizeof json, "{\"sub\":\"%s\"}", s);
  ck_assert_int_eq(parse(json, &c, &why), ERR_OK);
  ck_assert_uint_eq(strlen(c.sub), PASETO_CLAIM_STR_MAX);
  s[PASETO_CLAIM_STR_MAX] = 'x';
  s[PASETO_CLAIM_STR_MAX + 1] = '\0';
  snprintf(json, sizeof json, "{\"sub\":\"%s\"}", s);
  ck_assert_int_eq(parse(json, &c, &why), ERR_INVAL);

  /* PASETO_CLAIMS_MAX_KEYS keys pass, one more fails. */
  size_t pos = 0;
  json[pos++] = '{';
  for (int i = 0; i <= PASETO_CLAIMS_MAX_KEYS; i++) {
    if (i == PASETO_CLAIMS_MAX_KEYS) {
      json[pos - 1] = '}';
      json[pos] = '\0';
      ck_assert_int_eq(parse(json, &c, &why), ERR_OK);
      json[pos - 1] = ',';
    }
    pos += (size_t)snprintf(json + pos, sizeof json - pos, "\"k%d\":1,", i);
  }
  json[pos - 1] = '}';
  json[pos] = '\0';
  ck_assert_int_eq(parse(json, &c, &why), ERR_INVAL);
  ck_assert_str_eq(why, "claims nest too deep or have too many keys");
  /* A ':' inside a string value is not a key. */
  ck_assert_int_eq(parse("{\"a\":\"b\\\":\",\"c\":\"d:\"}", &c, NULL), ERR_OK);

  /* Oversized payload. */
  static char huge[PASETO_TOKEN_MAX + 2];
  memset(huge, ' ', sizeof huge);
  ck_assert_int_eq(
      paseto_claims_from_json(huge, PASETO_TOKEN_MAX + 1, &c, &why),
      ERR_TOOBIG);
}
END_TEST

START_TEST(time_claims_checked_with_leeway) {
  paseto_claims c = sample(); /* iat = nbf = T0, exp = T0 + 15 min */
  const char *why = NULL;
  const unsigned req = PASETO_CLAIMS_REQUIRE_EXP;
  ck_assert_int_eq(paseto_claims_check_time(&c, T0 + MIN, 0, req, &why),
                   ERR_OK);
  ck_assert_int_eq(paseto_claims_check_time(&c, T0, 0, req, &why), ERR_OK);

  /* Expired: at exp exactly, and after; leeway extends it. */
  ck_assert_int_eq(paseto_claims_check_time(&c, c.exp_ms, 0, req, &why),
                   ERR_INVAL);
  ck_assert_str_eq(why, "token expired");
  ck_assert_int_eq(paseto_claims_check_time(&c, c.exp_ms - 1, 0, req, &why),
                   ERR_OK);
  ck_assert_int_eq(
      paseto_claims_check_time(&c, c.exp_ms + 30000, MIN, req, &why), ERR_OK);
  ck_assert_int_eq(paseto_claims_check_time(&c, c.exp_ms + MIN, MIN, req, &why),
                   ERR_INVAL);
  ck_assert_str_eq(why, "token expired");

  /* Not yet valid. */
  c.nbf_ms = T0 + 5 * MIN;
  ck_assert_int_eq(paseto_claims_check_time(&c, T0 + MIN, 0, req, &why),
                   ERR_INVAL);
  ck_assert_str_eq(why, "token not yet valid");
  ck_assert_int_eq(paseto_claims_check_time(&c, T0 + 4 * MIN, MIN, req, &why),
                   ERR_OK);
  ck_assert_int_eq(paseto_claims_check_time(&c, T0 + 5 * MIN, 0, req, &why),
                   ERR_OK);

  /* Issued in the future. */
  c = sample();
  c.iat_ms = T0 + 2 * MIN;
  ck_assert_int_eq(paseto_claims_check_time(&c, T0, MIN, req, &why), ERR_INVAL);
  ck_assert_str_eq(why, "token issued in the future");
  ck_assert_int_eq(paseto_claims_check_time(&c, T0 + MIN, MIN, req, &why),
                   ERR_OK);

  /* Missing exp: refused only when required. */
  c = sample();
  c.has_exp = false;
  ck_assert_int_eq(paseto_claims_check_time(&c, T0, 0, req, &why), ERR_INVAL);
  ck_assert_str_eq(why, "token has no expiry");
  ck_assert_int_eq(paseto_claims_check_time(&c, T0 + 1000 * MIN, 0, 0, &why),
                   ERR_OK);

  /* Unreasonable leeway or clock. */
  ck_assert_int_eq(paseto_claims_check_time(&c, T0, -1, 0, &why), ERR_INVAL);
  ck_assert_int_eq(paseto_claims_check_time(&c, T0, 86400001, 0, &why),
                   ERR_INVAL);
  ck_assert_int_eq(paseto_claims_check_time(&c, INT64_MAX, 0, 0, &why),
                   ERR_INVAL);
}
END_TEST

START_TEST(kid_footer_builds_and_parses) {
  char footer[PASETO_KID_FOOTER_MAX + 1], kid[PASETO_PID_LEN + 1];
  size_t len = 0;
  ck_assert_int_eq(
      paseto_footer_kid_json(VECTOR_PID, footer, sizeof footer, &len), ERR_OK);
  ck_assert_str_eq(footer, "{\"kid\":\"" VECTOR_PID "\"}");
  ck_assert_uint_eq(len, strlen(footer));
  ck_assert_int_eq(paseto_footer_kid(footer, len, kid), ERR_OK);
  ck_assert_str_eq(kid, VECTOR_PID);

  ck_assert_int_eq(paseto_footer_kid_json(VECTOR_PID, footer, 20, &len),
                   ERR_TOOBIG);
  ck_assert_int_eq(
      paseto_footer_kid_json("gandalf0", footer, sizeof footer, &len),
      ERR_INVAL);
  ck_assert_int_eq(
      paseto_footer_kid_json("\"},\"x\":\"", footer, sizeof footer, &len),
      ERR_INVAL);
}
END_TEST

START_TEST(kid_footer_rejects_hostile_or_wrong_shapes) {
  char kid[PASETO_PID_LEN + 1];
  static const char *const invalid[] = {
      "not json",
      "[\"" VECTOR_PID "\"]",
      "{\"kid\":{\"kid\":\"" VECTOR_PID "\"}}",
      "{\"kid\":[\"" VECTOR_PID "\"]}",
      "{\"kid\":42}",
      "{\"kid\":\"zVhMiPBP9fRf2snEcT7gFTioeA9COcNy9DfgL1W60haN\"}",
      "{\"kid\":\"k4.lid.9ShR3xc8-qVJ_di0tc9nx0IDIqbatdeM2mqLFBJsKRHs\"}",
      "{\"kid\":\"" VECTOR_PID "\",\"kid\":\"" VECTOR_PID "\"}",
      "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,"
      "\"kid\":\"" VECTOR_PID "\"}",
      "{\"kid\":\"" VECTOR_PID "\"",
  };
  for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++)
    ck_assert_msg(paseto_footer_kid(invalid[i], strlen(invalid[i]), kid) ==
                      ERR_INVAL,
                  "%s accepted", invalid[i]);
  ck_assert_int_eq(paseto_footer_kid("{\"x\":\"y\"}", 9, kid), ERR_NOTFOUND);
  ck_assert_int_eq(paseto_footer_kid("{}", 2, kid), ERR_NOTFOUND);
  /* Extra flat keys are fine. */
  const char *ok = "{\"wpk\":\"x\",\"kid\":\"" VECTOR_PID "\"}";
  ck_assert_int_eq(paseto_footer_kid(ok, strlen(ok), kid), ERR_OK);
  /* Size bound. */
  static char big[PASETO_KID_FOOTER_MAX + 2];
  memset(big, ' ', sizeof big);
  ck_assert_int_eq(paseto_footer_kid(big, PASETO_KID_FOOTER_MAX + 1, kid),
                   ERR_TOOBIG);
}
END_TEST

/* Key rotation: two keys, the kid from the unverified footer selects the
 * one that verifies. */
START_TEST(token_kid_selects_the_signing_key) {
  paseto_secret_key sk[2];
  paseto_public_key pk[2];
  char pid[2][PASETO_PID_LEN + 1], footer[PASETO_KID_FOOTER_MAX + 1];
  char token[PASETO_TOKEN_MAX + 1], kid[PASETO_PID_LEN + 1];
  size_t flen = 0, tlen = 0;
  const char *why = NULL;
  paseto_token *t = NULL;
  for (int i = 0; i < 2; i++) {
    paseto_keygen(&sk[i], &pk[i]);
    paseto_pid(&pk[i], pid[i]);
  }
  ck_assert_int_eq(paseto_footer_kid_json(pid[1], footer, sizeof footer, &flen),
                   ERR_OK);
  ck_assert_int_eq(paseto_sign(&sk[1], "{}", 2, footer, flen, NULL, 0, token,
                               sizeof token, &tlen),
                   ERR_OK);
  ck_assert_int_eq(paseto_token_kid(token, tlen, kid, &why), ERR_OK);
  ck_assert_str_eq(kid, pid[1]);
  int chosen = strcmp(kid, pid[0]) == 0 ? 0 : strcmp(kid, pid[1]) == 0 ? 1 : -1;
  ck_assert_int_eq(chosen, 1);
  ck_assert_int_eq(
      paseto_verify(&pk[chosen], token, tlen, footer, flen, NULL, 0, &t, &why),
      ERR_OK);
  paseto_token_free(t);
  for (int i = 0; i < 2; i++) paseto_secret_key_wipe(&sk[i]);
}
END_TEST

START_TEST(token_kid_errors) {
  paseto_secret_key sk;
  paseto_public_key pk;
  char token[PASETO_TOKEN_MAX + 1], kid[PASETO_PID_LEN + 1];
  static char footer[PASETO_KID_FOOTER_MAX + 10];
  size_t tlen = 0;
  const char *why = NULL;
  paseto_keygen(&sk, &pk);

  ck_assert_int_eq(
      paseto_sign(&sk, "{}", 2, NULL, 0, NULL, 0, token, sizeof token, &tlen),
      ERR_OK);
  ck_assert_int_eq(paseto_token_kid(token, tlen, kid, &why), ERR_NOTFOUND);
  ck_assert_str_eq(why, "token has no footer");

  ck_assert_int_eq(paseto_sign(&sk, "{}", 2, "plain", 5, NULL, 0, token,
                               sizeof token, &tlen),
                   ERR_OK);
  ck_assert_int_eq(paseto_token_kid(token, tlen, kid, &why), ERR_INVAL);

  ck_assert_int_eq(paseto_sign(&sk, "{}", 2, "{\"v\":1}", 7, NULL, 0, token,
                               sizeof token, &tlen),
                   ERR_OK);
  ck_assert_int_eq(paseto_token_kid(token, tlen, kid, &why), ERR_NOTFOUND);
  ck_assert_str_eq(why, "footer has no kid");

  /* Footer over the kid bound (but under the token's). */
  memset(footer, ' ', sizeof footer);
  footer[0] = '{';
  footer[sizeof footer - 1] = '}';
  ck_assert_int_eq(paseto_sign(&sk, "{}", 2, footer, sizeof footer, NULL, 0,
                               token, sizeof token, &tlen),
                   ERR_OK);
  ck_assert_int_eq(paseto_token_kid(token, tlen, kid, &why), ERR_TOOBIG);

  ck_assert_int_eq(paseto_token_kid("v4.local.xxx", 12, kid, &why), ERR_INVAL);
  ck_assert_int_eq(paseto_token_kid("v4.public.x.**", 14, kid, &why),
                   ERR_INVAL);
}
END_TEST

static Suite *claims_suite(void) {
  Suite *s = suite_create("claims");
  TCase *tc = tcase_create("claims");
  tcase_add_test(tc, claims_serialise_to_exact_compact_json);
  tcase_add_test(tc, claims_round_trip);
  tcase_add_test(tc, claims_to_json_rejects_invalid_utf8);
  tcase_add_test(tc, malformed_claims_are_rejected_with_reason);
  tcase_add_test(tc, claim_strings_and_key_count_are_bounded);
  tcase_add_test(tc, time_claims_checked_with_leeway);
  suite_add_tcase(s, tc);
  TCase *kid = tcase_create("kid");
  tcase_add_test(kid, kid_footer_builds_and_parses);
  tcase_add_test(kid, kid_footer_rejects_hostile_or_wrong_shapes);
  tcase_add_test(kid, token_kid_selects_the_signing_key);
  tcase_add_test(kid, token_kid_errors);
  suite_add_tcase(s, kid);
  return s;
}

int main(void) {
  if (paseto_init() != ERR_OK) return 1;
  SRunner *sr = srunner_create(claims_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
