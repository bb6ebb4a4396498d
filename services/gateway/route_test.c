/*
 * route_test.c - the route table: row checks at start-up, path matching,
 * specificity, 404/405 with Allow, parameter decoding and bounds.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "services/gateway/route.h"
#include "services/gateway/testdata/gwtest.pb-c.h"

#define REQ (&gwtest__v1__echo_request__descriptor)
#define REP (&gwtest__v1__echo_reply__descriptor)

static const char *const kHidden[] = {"tenant_id", NULL};

#define ROW(m, p)                                                              \
  {                                                                            \
    .method = m, .path = p, .service = "echo", .rpc = "gwtest.v1.Echo/Echo",   \
    .request = REQ, .response = REP, .status = 200, .hidden = kHidden          \
  }

static const route kRows[] = {
    ROW("GET", "/v1/items"),
    ROW("POST", "/v1/items"),
    ROW("GET", "/v1/items/{id}"),
    ROW("PATCH", "/v1/items/{id}"),
    ROW("DELETE", "/v1/items/{id}"),
    ROW("GET", "/v1/items/stats"),
    ROW("POST", "/v1/items/{id}/tags/{name}"),
    ROW("GET", "/v1/a/{id}/c"),
    ROW("GET", "/v1/a/b/{name}"),
};
#define NROWS (sizeof kRows / sizeof kRows[0])

static route_table *table(void) {
  route_table *t = NULL;
  size_t bad = 99;
  ck_assert_int_eq(route_table_new(kRows, NROWS, &t, &bad), ERR_OK);
  ck_assert_ptr_nonnull(t);
  return t;
}

static int match(route_table *t, arena *a, const char *method, const char *path,
                 route_match *m) {
  return route_match_path(t, method, path, strlen(path), a, m);
}

START_TEST(valid_rows_compile_and_are_listed_in_order) {
  route_table *t = table();
  ck_assert_uint_eq(route_table_count(t), NROWS);
  ck_assert_ptr_eq(route_table_row(t, 2), &kRows[2]);
  ck_assert_ptr_null(route_table_row(t, NROWS));
  route_table_free(t);
  route_table_free(NULL);
}
END_TEST

static int one_row(route r, size_t *bad) {
  route_table *t = NULL;
  route rows[2] = {ROW("GET", "/v1/ok"), r};
  int rc = route_table_new(rows, 2, &t, bad);
  if (rc == ERR_OK)
    ck_assert_ptr_nonnull(t);
  else
    ck_assert_ptr_null(t);
  route_table_free(t);
  return rc;
}

START_TEST(bad_rows_are_refused_naming_the_row) {
  const char *bad_paths[] = {
      "v1/x",            /* no leading slash */
      "/v1/x/",          /* trailing slash */
      "/v1//x",          /* empty segment */
      "/",               /* no segment */
      "/v1/{nope}",      /* not a field */
      "/v1/{item}",      /* a message field */
      "/v1/{tags}",      /* a repeated field */
      "/v1/{tenant_id}", /* hidden */
      "/v1/{id}/{id}",   /* twice */
      "/v1/{id",         /* unclosed */
      "/v1/{}",          /* empty name */
      "/v1/x y",         /* bad literal */
      "/v1/{Id}",        /* upper case name */
  };
  for (size_t i = 0; i < sizeof bad_paths / sizeof bad_paths[0]; i++) {
    size_t bad = 99;
    route r = ROW("GET", bad_paths[i]);
    ck_assert_msg(one_row(r, &bad) == ERR_INVAL, "%s accepted", bad_paths[i]);
    ck_assert_uint_eq(bad, 1);
  }
  size_t bad;
  route r = ROW("FETCH", "/v1/x");
  ck_assert_int_eq(one_row(r, &bad), ERR_INVAL);
  r = (route)ROW("GET", "/v1/x");
  r.status = 203;
  ck_assert_int_eq(one_row(r, &bad), ERR_INVAL);
  r = (route)ROW("GET", "/v1/x");
  r.reply_field = "envelope_x";
  ck_assert_int_eq(one_row(r, &bad), ERR_INVAL);
  r.reply_field = "envelope";
  ck_assert_int_eq(one_row(r, &bad), ERR_OK);
  r.min_role = 9;
  ck_assert_int_eq(one_row(r, &bad), ERR_INVAL);
  r = (route)ROW("GET", "/v1/x");
  r.login_key = "item";
  ck_assert_int_eq(one_row(r, &bad), ERR_INVAL);
  r.login_key = "email";
  ck_assert_int_eq(one_row(r, &bad), ERR_OK);
  static const char *const kBadHidden[] = {"nope", NULL};
  r.hidden = kBadHidden;
  ck_assert_int_eq(one_row(r, &bad), ERR_INVAL);
  r = (route)ROW("GET", "/v1/x");
  r.rpc = NULL;
  ck_assert_int_eq(one_row(r, &bad), ERR_INVAL);
  /* Extra calls: complete, answering a body, with a message reply_field. */
  route_extra x = {"more", "echo", "gwtest.v1.Echo/Echo", REQ, REP, "item"};
  r = (route)ROW("GET", "/v1/x");
  r.extra = &x;
  ck_assert_int_eq(one_row(r, &bad), ERR_OK);
  r.status = 204;
  ck_assert_int_eq(one_row(r, &bad), ERR_INVAL);
  r.status = 200;
  x.reply_field = "id";
  ck_assert_int_eq(one_row(r, &bad), ERR_INVAL);
  x.reply_field = NULL;
  x.key = "";
  ck_assert_int_eq(one_row(r, &bad), ERR_INVAL);
  /* Raw bytes: the fields must be bytes (raw_body, raw_reply) or bool
   * (existed_field); sync's real rows compile in gateway start-up. */
  r = (route)ROW("PUT", "/v1/x");
  r.raw_body = "name";
  ck_assert_int_eq(one_row(r, &bad), ERR_INVAL);
  r = (route)ROW("GET", "/v1/x");
  r.raw_reply = "request";
  ck_assert_int_eq(one_row(r, &bad), ERR_INVAL);
  r = (route)ROW("PUT", "/v1/x");
  r.existed_field = "request";
  ck_assert_int_eq(one_row(r, &bad), ERR_INVAL);
  r.existed_field = "nope";
  ck_assert_int_eq(one_row(r, &bad), ERR_INVAL);
  static const char *const kBadOmit[] = {"ok", "?", NULL};
  r = (route)ROW("GET", "/v1/x");
  r.omit = kBadOmit;
  ck_assert_int_eq(one_row(r, &bad), ERR_INVAL);
}
END_TEST

START_TEST(same_method_and_shape_twice_is_a_duplicate) {
  route rows[] = {ROW("GET", "/v1/items/{id}"), ROW("POST", "/v1/items/{id}"),
                  ROW("GET", "/v1/items/{name}")};
  route_table *t = NULL;
  size_t bad = 99;
  ck_assert_int_eq(route_table_new(rows, 3, &t, &bad), ERR_EXISTS);
  ck_assert_uint_eq(bad, 2);
  ck_assert_ptr_null(t);
}
END_TEST

START_TEST(literal_path_matches_its_row) {
  route_table *t = table();
  arena a;
  arena_init(&a, 0, 0);
  route_match m;
  ck_assert_int_eq(match(t, &a, "GET", "/v1/items", &m), ERR_OK);
  ck_assert_int_eq(m.result, ROUTE_FOUND);
  ck_assert_ptr_eq(m.route, &kRows[0]);
  ck_assert_uint_eq(m.nparams, 0);
  ck_assert_str_eq(m.allow, "GET, POST");
  ck_assert_int_eq(match(t, &a, "POST", "/v1/items", &m), ERR_OK);
  ck_assert_ptr_eq(m.route, &kRows[1]);
  arena_release(&a);
  route_table_free(t);
}
END_TEST

START_TEST(parameters_are_captured_and_percent_decoded) {
  route_table *t = table();
  arena a;
  arena_init(&a, 0, 0);
  route_match m;
  ck_assert_int_eq(
      match(t, &a, "POST", "/v1/items/a%2Fb%20c/tags/%C3%A9t%C3%A9", &m),
      ERR_OK);
  ck_assert_int_eq(m.result, ROUTE_FOUND);
  ck_assert_ptr_eq(m.route, &kRows[6]);
  ck_assert_uint_eq(m.nparams, 2);
  ck_assert_str_eq(m.params[0].name, "id");
  ck_assert_str_eq(m.params[0].value, "a/b c");
  ck_assert_uint_eq(m.params[0].len, 5);
  ck_assert_str_eq(m.params[1].name, "name");
  ck_assert_str_eq(m.params[1].value, "\xc3\xa9t\xc3\xa9");
  arena_release(&a);
  route_table_free(t);
}
END_TEST

/* One decoder for paths and queries: '+' is a space only in a query. */
START_TEST(percent_decoding_keeps_plus_in_paths_only) {
  arena a;
  arena_init(&a, 0, 0);
  char *out = NULL;
  size_t n = 0;
  ck_assert_int_eq(route_pct_decode("a+b%2B", 6, false, &a, &out, &n), ERR_OK);
  ck_assert_str_eq(out, "a+b+");
  ck_assert_int_eq(route_pct_decode("a+b%2B", 6, true, &a, &out, &n), ERR_OK);
  ck_assert_str_eq(out, "a b+");
  ck_assert_uint_eq(n, 4);
  ck_assert_int_eq(route_pct_decode("%4", 2, true, &a, &out, &n), ERR_INVAL);
  ck_assert_int_eq(route_pct_decode("%zz", 3, false, &a, &out, &n), ERR_INVAL);
  ck_assert_int_eq(route_pct_decode("a%00", 4, true, &a, &out, &n), ERR_INVAL);
  arena_release(&a);
}
END_TEST

START_TEST(literal_beats_parameter_from_the_left) {
  route_table *t = table();
  arena a;
  arena_init(&a, 0, 0);
  route_match m;
  ck_assert_int_eq(match(t, &a, "GET", "/v1/items/stats", &m), ERR_OK);
  ck_assert_ptr_eq(m.route, &kRows[5]);
  ck_assert_int_eq(match(t, &a, "GET", "/v1/items/other", &m), ERR_OK);
  ck_assert_ptr_eq(m.route, &kRows[2]);
  ck_assert_str_eq(m.params[0].value, "other");
  /* /v1/a/{id}/c and /v1/a/b/{name} both match /v1/a/b/c: the literal in
   * the earlier segment wins. */
  ck_assert_int_eq(match(t, &a, "GET", "/v1/a/b/c", &m), ERR_OK);
  ck_assert_ptr_eq(m.route, &kRows[8]);
  /* A method only the parameter row has still reaches it. */
  ck_assert_int_eq(match(t, &a, "DELETE", "/v1/items/stats", &m), ERR_OK);
  ck_assert_int_eq(m.result, ROUTE_FOUND);
  ck_assert_ptr_eq(m.route, &kRows[4]);
  ck_assert_str_eq(m.params[0].value, "stats");
  arena_release(&a);
  route_table_free(t);
}
END_TEST

START_TEST(wrong_method_is_405_with_every_matching_method) {
  route_table *t = table();
  arena a;
  arena_init(&a, 0, 0);
  route_match m;
  ck_assert_int_eq(match(t, &a, "PUT", "/v1/items/42", &m), ERR_OK);
  ck_assert_int_eq(m.result, ROUTE_METHOD_NOT_ALLOWED);
  ck_assert_ptr_null(m.route);
  ck_assert_str_eq(m.allow, "GET, PATCH, DELETE");
  ck_assert_int_eq(match(t, &a, "DELETE", "/v1/items", &m), ERR_OK);
  ck_assert_int_eq(m.result, ROUTE_METHOD_NOT_ALLOWED);
  ck_assert_str_eq(m.allow, "GET, POST");
  ck_assert_int_eq(match(t, &a, "BREW", "/v1/items", &m), ERR_OK);
  ck_assert_int_eq(m.result, ROUTE_METHOD_NOT_ALLOWED);
  arena_release(&a);
  route_table_free(t);
}
END_TEST

START_TEST(head_is_matched_as_get) {
  route_table *t = table();
  arena a;
  arena_init(&a, 0, 0);
  route_match m;
  ck_assert_int_eq(match(t, &a, "HEAD", "/v1/items/1", &m), ERR_OK);
  ck_assert_int_eq(m.result, ROUTE_FOUND);
  ck_assert_ptr_eq(m.route, &kRows[2]);
  arena_release(&a);
  route_table_free(t);
}
END_TEST

START_TEST(unknown_and_malformed_paths_are_not_found) {
  route_table *t = table();
  arena a;
  arena_init(&a, 0, 0);
  route_match m;
  const char *paths[] = {
      "/v1/nothing",   "/v1/items/",        "/v1//items",    "",
      "v1/items",      "/v1/items/1/tags/", "/v1/items/1/x", "/",
      "/v1/items?x=1", "/V1/items"};
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
    ck_assert_int_eq(match(t, &a, "GET", paths[i], &m), ERR_OK);
    ck_assert_msg(m.result == ROUTE_NOT_FOUND, "%s found", paths[i]);
    ck_assert_str_eq(m.allow, "");
  }
  arena_release(&a);
  route_table_free(t);
}
END_TEST

START_TEST(bad_escapes_in_a_parameter_name_the_field) {
  route_table *t = table();
  arena a;
  arena_init(&a, 0, 0);
  route_match m;
  const char *paths[] = {"/v1/items/%zz", "/v1/items/%4", "/v1/items/a%",
                         "/v1/items/a%00b"};
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
    ck_assert_msg(match(t, &a, "GET", paths[i], &m) == ERR_INVAL, "%s",
                  paths[i]);
    ck_assert_str_eq(m.bad_param, "id");
  }
  arena_release(&a);
  route_table_free(t);
}
END_TEST

START_TEST(paths_over_the_bounds_are_not_found) {
  route_table *t = table();
  arena a;
  arena_init(&a, 0, 0);
  route_match m;
  size_t n = ROUTE_MAX_PATH + 10;
  char *p = malloc(n + 1);
  memcpy(p, "/v1/items/", 10);
  memset(p + 10, 'x', n - 10);
  p[n] = '\0';
  ck_assert_int_eq(match(t, &a, "GET", p, &m), ERR_OK);
  ck_assert_int_eq(m.result, ROUTE_NOT_FOUND);
  /* Exactly at the bound it still matches. */
  p[ROUTE_MAX_PATH] = '\0';
  ck_assert_int_eq(match(t, &a, "GET", p, &m), ERR_OK);
  ck_assert_int_eq(m.result, ROUTE_FOUND);
  ck_assert_uint_eq(m.params[0].len, ROUTE_MAX_PATH - 10);
  /* Too many segments. */
  char segs[ROUTE_MAX_SEGMENTS * 2 + 8];
  size_t k = 0;
  for (int i = 0; i < ROUTE_MAX_SEGMENTS + 1; i++) {
    segs[k++] = '/';
    segs[k++] = 'a';
  }
  segs[k] = '\0';
  ck_assert_int_eq(match(t, &a, "GET", segs, &m), ERR_OK);
  ck_assert_int_eq(m.result, ROUTE_NOT_FOUND);
  free(p);
  arena_release(&a);
  route_table_free(t);
}
END_TEST

START_TEST(roles_parse_and_name) {
  ck_assert_int_eq(route_role_parse("owner"), ROUTE_OWNER);
  ck_assert_int_eq(route_role_parse("admin"), ROUTE_ADMIN);
  ck_assert_int_eq(route_role_parse("staff"), ROUTE_STAFF);
  ck_assert_int_eq(route_role_parse("customer"), ROUTE_CUSTOMER);
  ck_assert_int_eq(route_role_parse("device"), ROUTE_STAFF); /* sync */
  ck_assert_int_eq(route_role_parse("anyone"), -1);
  ck_assert_int_eq(route_role_parse("Owner"), -1);
  ck_assert_int_eq(route_role_parse(NULL), -1);
  ck_assert_str_eq(route_role_name(ROUTE_ANYONE), "anyone");
  ck_assert_str_eq(route_role_name(ROUTE_ADMIN), "admin");
  ck_assert_str_eq(route_role_name(7), "?");
  ck_assert(ROUTE_OWNER > ROUTE_ADMIN && ROUTE_ADMIN > ROUTE_STAFF &&
            ROUTE_STAFF > ROUTE_CUSTOMER && ROUTE_CUSTOMER > ROUTE_ANYONE);
}
END_TEST

START_TEST(arena_limit_and_big_blocks) {
  arena a;
  arena_init(&a, 256, 4096);
  ck_assert_ptr_nonnull(arena_alloc(&a, 100));
  char *big = arena_alloc(&a, 2000);
  ck_assert_ptr_nonnull(big);
  memset(big, 1, 2000);
  ck_assert_ptr_nonnull(arena_alloc(&a, 50));
  ck_assert_ptr_null(arena_alloc(&a, 4096));
  char *s = arena_strndup(&a, "hello world", 5);
  ck_assert_str_eq(s, "hello");
  arena_release(&a);
  arena_release(&a);
  arena_release(NULL);
  ck_assert_ptr_nonnull(arena_alloc(&a, 4000));
  arena_release(&a);
}
END_TEST

int main(void) {
  Suite *s = suite_create("route");
  TCase *tc = tcase_create("route");
  tcase_add_test(tc, valid_rows_compile_and_are_listed_in_order);
  tcase_add_test(tc, bad_rows_are_refused_naming_the_row);
  tcase_add_test(tc, same_method_and_shape_twice_is_a_duplicate);
  tcase_add_test(tc, literal_path_matches_its_row);
  tcase_add_test(tc, parameters_are_captured_and_percent_decoded);
  tcase_add_test(tc, percent_decoding_keeps_plus_in_paths_only);
  tcase_add_test(tc, literal_beats_parameter_from_the_left);
  tcase_add_test(tc, wrong_method_is_405_with_every_matching_method);
  tcase_add_test(tc, head_is_matched_as_get);
  tcase_add_test(tc, unknown_and_malformed_paths_are_not_found);
  tcase_add_test(tc, bad_escapes_in_a_parameter_name_the_field);
  tcase_add_test(tc, paths_over_the_bounds_are_not_found);
  tcase_add_test(tc, roles_parse_and_name);
  tcase_add_test(tc, arena_limit_and_big_blocks);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
