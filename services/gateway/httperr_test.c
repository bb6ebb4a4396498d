/*
 * httperr_test.c - the error body and status table of HTTP-API.md, plus
 * the request id and CORS origin rules that go on every answer.
 */
#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "services/gateway/cors.h"
#include "services/gateway/httperr.h"
#include "services/gateway/reqid.h"

START_TEST(status_table_is_grpc_gateways) {
  static const struct {
    int code, status;
  } t[] = {{RPC_OK, 200},
           {RPC_INVALID_ARGUMENT, 400},
           {RPC_FAILED_PRECONDITION, 400},
           {RPC_OUT_OF_RANGE, 400},
           {RPC_UNAUTHENTICATED, 401},
           {RPC_PERMISSION_DENIED, 403},
           {RPC_NOT_FOUND, 404},
           {RPC_ALREADY_EXISTS, 409},
           {RPC_ABORTED, 409},
           {RPC_RESOURCE_EXHAUSTED, 429},
           {RPC_CANCELLED, 499},
           {RPC_UNIMPLEMENTED, 501},
           {RPC_UNAVAILABLE, 503},
           {RPC_DEADLINE_EXCEEDED, 504},
           {RPC_INTERNAL, 500},
           {RPC_UNKNOWN, 500},
           {RPC_DATA_LOSS, 500},
           {99, 500},
           {-1, 500}};
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    ck_assert_int_eq(httperr_status(t[i].code), t[i].status);
}
END_TEST

START_TEST(error_body_has_the_contract_shape) {
  rpc_violation v[] = {{"items[3].quantity", "must be between 1 and 99"},
                       {"email", "invalid"}};
  size_t len = 0;
  char *s =
      httperr_body(RPC_INVALID_ARGUMENT, "bad order", "rid-1", v, 2, &len);
  ck_assert_ptr_nonnull(s);
  ck_assert_uint_eq(len, strlen(s));
  ck_assert_str_eq(
      s,
      "{\"error\":{\"code\":\"INVALID_ARGUMENT\",\"message\":\"bad order\","
      "\"request_id\":\"rid-1\",\"details\":[{\"field\":\"items[3].quantity\","
      "\"description\":\"must be between 1 and 99\"},{\"field\":\"email\","
      "\"description\":\"invalid\"}]}}");
  free(s);
  s = httperr_body(RPC_NOT_FOUND, NULL, NULL, NULL, 0, NULL);
  ck_assert_str_eq(
      s, "{\"error\":{\"code\":\"NOT_FOUND\",\"message\":\"not found\","
         "\"request_id\":\"\",\"details\":[]}}");
  free(s);
}
END_TEST

START_TEST(server_errors_never_carry_backend_text) {
  rpc_violation v[] = {{"sql", "relation users does not exist"}};
  char *s =
      httperr_body(RPC_INTERNAL, "ERROR: relation \"users\" at /srv/x.c:12",
                   "r", v, 1, NULL);
  ck_assert_ptr_null(strstr(s, "relation"));
  ck_assert_ptr_null(strstr(s, "/srv"));
  ck_assert_ptr_nonnull(strstr(s, "\"message\":\"internal error\""));
  ck_assert_ptr_nonnull(strstr(s, "\"details\":[]"));
  free(s);
  ck_assert_str_eq(httperr_message(RPC_UNAVAILABLE, "pg down at 10.0.0.3"),
                   "service unavailable, try again");
  ck_assert_str_eq(httperr_message(RPC_DEADLINE_EXCEEDED, "x"),
                   "the request took too long");
  ck_assert_str_eq(httperr_message(RPC_NOT_FOUND, "no such user"),
                   "no such user");
  ck_assert_str_eq(httperr_message(RPC_NOT_FOUND, ""), "not found");
  s = httperr_body(77, "x", "r", NULL, 0, NULL);
  ck_assert_ptr_nonnull(strstr(s, "\"code\":\"UNKNOWN\""));
  free(s);
}
END_TEST

START_TEST(invalid_utf8_in_an_error_is_blanked) {
  rpc_violation v[] = {{"a\xff", "b\xfe"}};
  char *s = httperr_body(RPC_INVALID_ARGUMENT, "m\xc3", "r\xff", v, 1, NULL);
  ck_assert_ptr_nonnull(s);
  json_error_t je;
  json_t *j = json_loads(s, 0, &je);
  ck_assert_ptr_nonnull(j);
  ck_assert_str_eq(json_string_value(
                       json_object_get(json_object_get(j, "error"), "message")),
                   "");
  json_decref(j);
  free(s);
}
END_TEST

START_TEST(request_id_is_echoed_only_when_usable) {
  char out[REQID_MAX + 1];
  reqid_choose("abc-123", out);
  ck_assert_str_eq(out, "abc-123");
  char max[REQID_MAX + 2];
  memset(max, 'x', sizeof max);
  max[REQID_MAX] = '\0';
  ck_assert(reqid_valid(max));
  reqid_choose(max, out);
  ck_assert_str_eq(out, max);
  max[REQID_MAX] = 'x';
  max[REQID_MAX + 1] = '\0';
  ck_assert(!reqid_valid(max));
  const char *bad[] = {NULL, "", "a\nb", "caf\xc3\xa9", "a\tb", max};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ck_assert(!reqid_valid(bad[i]));
    reqid_choose(bad[i], out);
    ck_assert_uint_eq(strlen(out), 36); /* a fresh UUIDv7 */
    ck_assert_int_eq(out[14], '7');
  }
  char other[REQID_MAX + 1];
  reqid_choose(NULL, other);
  ck_assert_str_ne(out, other);
}
END_TEST

START_TEST(cors_allows_configured_origins_only) {
  cors *c = NULL;
  ck_assert_int_eq(
      cors_new(" https://App.example.com , http://localhost:3000,", &c),
      ERR_OK);
  ck_assert(cors_allowed(c, "https://app.example.com"));
  ck_assert(cors_allowed(c, "https://APP.example.com"));
  ck_assert(cors_allowed(c, "http://localhost:3000"));
  ck_assert(!cors_allowed(c, "http://localhost:3001"));
  ck_assert(!cors_allowed(c, "https://app.example.com.evil.net"));
  ck_assert(!cors_allowed(c, "null"));
  ck_assert(!cors_allowed(c, NULL));
  ck_assert(!cors_allowed(c, ""));
  cors_free(c);
  ck_assert_int_eq(cors_new("*", &c), ERR_OK);
  ck_assert(cors_allowed(c, "https://anything.example"));
  ck_assert(!cors_allowed(c, "not an origin"));
  cors_free(c);
  ck_assert_int_eq(cors_new("", &c), ERR_OK);
  ck_assert(!cors_allowed(c, "https://app.example.com"));
  cors_free(c);
  ck_assert_int_eq(cors_new(NULL, &c), ERR_OK);
  cors_free(c);
  cors_free(NULL);
  const char *bad[] = {"app.example.com", "https://", "https://a/b", "://x",
                       "https://a b"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    c = (cors *)1;
    ck_assert_msg(cors_new(bad[i], &c) == ERR_INVAL, "%s", bad[i]);
    ck_assert_ptr_null(c);
  }
}
END_TEST

int main(void) {
  Suite *s = suite_create("httperr");
  TCase *tc = tcase_create("httperr");
  tcase_add_test(tc, status_table_is_grpc_gateways);
  tcase_add_test(tc, error_body_has_the_contract_shape);
  tcase_add_test(tc, server_errors_never_carry_backend_text);
  tcase_add_test(tc, invalid_utf8_in_an_error_is_blanked);
  tcase_add_test(tc, request_id_is_echoed_only_when_usable);
  tcase_add_test(tc, cors_allows_configured_origins_only);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
