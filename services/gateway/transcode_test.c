/*
 * transcode_test.c - body + path + query -> request message, and reply
 * payload -> JSON answer: every source checked the same way, errors name
 * the field, hidden fields stay out, bounds hold.
 */
#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "services/gateway/transcode.h"
#include "services/gateway/testdata/gwtest.pb-c.h"

#define REQ (&gwtest__v1__echo_request__descriptor)
#define REP (&gwtest__v1__echo_reply__descriptor)

static const char *const kHidden[] = {"tenant_id", NULL};

static const char *const kOmit[] = {"?request.cursor", "?request.name",
                                    "item.quantity", "envelope", NULL};

static const char *const kJsonText[] = {"name", NULL};
static const char *const kOmitAllButWrapped[] = {"request", "envelope", "item",
                                                 NULL};
static const char *const kUnwrap[] = {"wrapped", NULL};

static const route kRows[] = {
    {.method = "GET",
     .path = "/v1/items",
     .service = "echo",
     .rpc = "gwtest.v1.Echo/Echo",
     .request = REQ,
     .response = REP,
     .status = 200,
     .hidden = kHidden},
    {.method = "POST",
     .path = "/v1/items/{id}",
     .service = "echo",
     .rpc = "gwtest.v1.Echo/Echo",
     .request = REQ,
     .response = REP,
     .status = 201,
     .reply_field = "item",
     .hidden = kHidden,
     .login_key = "email"},
    {.method = "GET",
     .path = "/v1/items/{id}",
     .service = "echo",
     .rpc = "gwtest.v1.Echo/Echo",
     .request = REQ,
     .response = REP,
     .status = 200,
     .hidden = kHidden,
     .omit = kOmit},
    {.method = "PUT",
     .path = "/v1/items/{id}",
     .service = "echo",
     .rpc = "gwtest.v1.Echo/Echo",
     .request = REQ,
     .response = REP,
     .status = 200,
     .json_text = kJsonText},
    {.method = "GET",
     .path = "/v1/raw/{id}",
     .service = "echo",
     .rpc = "gwtest.v1.Echo/Echo",
     .request = REQ,
     .response = REP,
     .status = 200,
     .reply_field = "item",
     .json_text = kJsonText},
    {.method = "GET",
     .path = "/v1/wrapped",
     .service = "echo",
     .rpc = "gwtest.v1.Echo/Echo",
     .request = REQ,
     .response = REP,
     .status = 200,
     .omit = kOmitAllButWrapped,
     .unwrap = kUnwrap},
};

typedef struct fixture {
  route_table *t;
  arena a;
  route_match m;
  pbjson_error err;
  Gwtest__V1__EchoRequest *msg;
  json_t *fields;
} fixture;

static int run(fixture *f, const char *method, const char *path,
               const char *query, const char *body) {
  if (f->t == NULL) {
    ck_assert_int_eq(
        route_table_new(kRows, sizeof kRows / sizeof kRows[0], &f->t, NULL),
        ERR_OK);
    arena_init(&f->a, 0, 0);
  }
  ck_assert_int_eq(
      route_match_path(f->t, method, path, strlen(path), &f->a, &f->m), ERR_OK);
  ck_assert_int_eq(f->m.result, ROUTE_FOUND);
  ProtobufCMessage *m = NULL;
  json_decref(f->fields);
  f->fields = NULL;
  pbjson_free(f->msg ? &f->msg->base : NULL);
  f->msg = NULL;
  int rc = transcode_request(&f->m, query, query ? strlen(query) : 0, body,
                             body ? strlen(body) : 0, &f->a, &m, &f->fields,
                             &f->err);
  f->msg = (Gwtest__V1__EchoRequest *)m;
  if (rc == ERR_OK) {
    ck_assert_ptr_nonnull(m);
    ck_assert_ptr_nonnull(f->fields);
  } else {
    ck_assert_ptr_null(m);
    ck_assert_ptr_null(f->fields);
  }
  return rc;
}

static void done(fixture *f) {
  pbjson_free(f->msg ? &f->msg->base : NULL);
  json_decref(f->fields);
  arena_release(&f->a);
  route_table_free(f->t);
}

/* True when some error has this path and its description contains s. */
static bool has_error(const pbjson_error *e, const char *path, const char *s) {
  for (size_t i = 0; i < e->count; i++)
    if (strcmp(e->errors[i].path, path) == 0 &&
        strstr(e->errors[i].description, s) != NULL)
      return true;
  return false;
}

START_TEST(body_path_and_query_fill_one_message) {
  fixture f = {0};
  ck_assert_int_eq(run(&f, "POST", "/v1/items/it%201", NULL,
                       "{\"name\":\"n\",\"item\":{\"quantity\":3},"
                       "\"color\":\"dark_blue\",\"tags\":[\"a\",\"b\"]}"),
                   ERR_OK);
  ck_assert_str_eq(f.msg->id, "it 1");
  ck_assert_str_eq(f.msg->name, "n");
  ck_assert_int_eq(f.msg->item->quantity, 3);
  ck_assert_int_eq(f.msg->color, GWTEST__V1__COLOR__COLOR_DARK_BLUE);
  ck_assert_uint_eq(f.msg->n_tags, 2);
  ck_assert_str_eq(json_string_value(json_object_get(f.fields, "id")), "it 1");

  ck_assert_int_eq(
      run(&f, "GET", "/v1/items",
          "limit=20&cursor=abc%3D%3D&tags=x&tags=y+z&flag=true&ratio=0.5",
          NULL),
      ERR_OK);
  ck_assert_uint_eq(f.msg->limit, 20);
  ck_assert_str_eq(f.msg->cursor, "abc==");
  ck_assert_uint_eq(f.msg->n_tags, 2);
  ck_assert_str_eq(f.msg->tags[1], "y z");
  ck_assert(f.msg->flag);
  ck_assert(f.msg->ratio == 0.5);
  done(&f);
}
END_TEST

START_TEST(empty_or_blank_body_is_an_empty_object) {
  fixture f = {0};
  ck_assert_int_eq(run(&f, "POST", "/v1/items/x", NULL, NULL), ERR_OK);
  ck_assert_str_eq(f.msg->id, "x");
  ck_assert_int_eq(run(&f, "POST", "/v1/items/x", NULL, " \r\n"), ERR_OK);
  ck_assert_str_eq(f.msg->name, "");
  done(&f);
}
END_TEST

START_TEST(malformed_json_is_a_document_error) {
  fixture f = {0};
  const char *bodies[] = {"{",     "{\"name\":}",
                          "[1]",   "\"x\"",
                          "nul",   "{\"name\":\"a\",\"name\":\"b\"}",
                          "{} {}", "{\"name\":\"\xff\"}"};
  for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
    ck_assert_msg(run(&f, "POST", "/v1/items/x", NULL, bodies[i]) == ERR_INVAL,
                  "%s accepted", bodies[i]);
    ck_assert_int_eq(f.err.code, ERR_INVAL);
    ck_assert_uint_eq(f.err.count, 1);
    ck_assert_str_eq(f.err.errors[0].path, "");
    /* Error text is printable ASCII, safe in a JSON body. */
    for (const char *p = f.err.errors[0].description; *p; p++)
      ck_assert(*p >= 0x20 && *p < 0x7f);
  }
  ck_assert(has_error(&f.err, "", "malformed JSON"));
  done(&f);
}
END_TEST

START_TEST(wrong_types_and_unknown_fields_name_every_field) {
  fixture f = {0};
  ck_assert_int_eq(run(&f, "POST", "/v1/items/x", NULL,
                       "{\"name\":5,\"bogus\":1,\"item\":{\"quantity\":\"3\"},"
                       "\"limit\":-1,\"color\":\"green\"}"),
                   ERR_INVAL);
  ck_assert_uint_ge(f.err.count, 5);
  ck_assert(has_error(&f.err, "name", ""));
  ck_assert(has_error(&f.err, "bogus", "unknown field"));
  ck_assert(has_error(&f.err, "item.quantity", ""));
  ck_assert(has_error(&f.err, "limit", ""));
  ck_assert(has_error(&f.err, "color", ""));
  done(&f);
}
END_TEST

START_TEST(hidden_fields_are_unknown_from_every_source) {
  fixture f = {0};
  ck_assert_int_eq(
      run(&f, "POST", "/v1/items/x", NULL, "{\"tenant_id\":\"t\",\"name\":7}"),
      ERR_INVAL);
  ck_assert(has_error(&f.err, "tenant_id", "unknown field"));
  ck_assert(has_error(&f.err, "name", "")); /* the rest is still checked */
  ck_assert_int_eq(run(&f, "GET", "/v1/items", "tenant_id=t", NULL), ERR_INVAL);
  ck_assert(has_error(&f.err, "tenant_id", "unknown field"));
  ck_assert_int_eq(run(&f, "POST", "/v1/items/x", NULL, "{\"tenant_id\":null}"),
                   ERR_INVAL);
  done(&f);
}
END_TEST

/* A json_text member reaches the backend as canonical JSON text: keys
 * sorted, no spaces, whatever the client's spelling. */
START_TEST(json_text_members_travel_as_canonical_text) {
  fixture f = {0};
  ck_assert_int_eq(run(&f, "PUT", "/v1/items/x", NULL,
                       "{\"name\": {\"b\": 1, \"a\": [1, \"\u00e9\"]}}"),
                   ERR_OK);
  ck_assert_str_eq(f.msg->name, "{\"a\":[1,\"\xc3\xa9\"],\"b\":1}");
  ck_assert_int_eq(run(&f, "PUT", "/v1/items/x", NULL, "{\"name\": 7}"),
                   ERR_OK);
  ck_assert_str_eq(f.msg->name, "7");
  ck_assert_int_eq(run(&f, "PUT", "/v1/items/x", NULL, "{\"name\": null}"),
                   ERR_OK);
  ck_assert_str_eq(f.msg->name, "");
  /* Other routes keep the string rule. */
  ck_assert_int_eq(run(&f, "POST", "/v1/items/x", NULL, "{\"name\": {}}"),
                   ERR_INVAL);
  done(&f);
}
END_TEST

START_TEST(path_parameter_and_body_must_agree) {
  fixture f = {0};
  ck_assert_int_eq(run(&f, "POST", "/v1/items/x", NULL, "{\"id\":\"x\"}"),
                   ERR_OK);
  ck_assert_int_eq(run(&f, "POST", "/v1/items/x", NULL, "{\"id\":\"y\"}"),
                   ERR_INVAL);
  ck_assert(has_error(&f.err, "id", "conflicts"));
  done(&f);
}
END_TEST

START_TEST(query_parameters_are_typed_by_the_message) {
  fixture f = {0};
  ck_assert_int_eq(
      run(&f, "GET", "/v1/items", "limit=abc&flag=yes&nope=1&item=1", NULL),
      ERR_INVAL);
  ck_assert(has_error(&f.err, "limit", ""));
  ck_assert(has_error(&f.err, "flag", ""));
  ck_assert(has_error(&f.err, "nope", "unknown field"));
  ck_assert(has_error(&f.err, "item", ""));
  ck_assert_int_eq(run(&f, "GET", "/v1/items", "limit=1&limit=2", NULL),
                   ERR_INVAL);
  ck_assert(has_error(&f.err, "limit", "conflicts"));
  ck_assert_int_eq(run(&f, "GET", "/v1/items", "limit=99999999999", NULL),
                   ERR_INVAL);
  ck_assert(has_error(&f.err, "limit", ""));
  /* A query parameter may not override a path parameter. */
  ck_assert_int_eq(run(&f, "GET", "/v1/items/a", "id=b", NULL), ERR_INVAL);
  ck_assert(has_error(&f.err, "id", "conflicts"));
  /* Empty pairs are skipped; a key without '=' has an empty value. */
  ck_assert_int_eq(run(&f, "GET", "/v1/items", "&&cursor&", NULL), ERR_OK);
  ck_assert_str_eq(f.msg->cursor, "");
  done(&f);
}
END_TEST

START_TEST(query_on_a_body_route_is_refused) {
  fixture f = {0};
  ck_assert_int_eq(run(&f, "POST", "/v1/items/x", "name=a", "{}"), ERR_INVAL);
  ck_assert(has_error(&f.err, "name", "not accepted"));
  done(&f);
}
END_TEST

START_TEST(query_escapes_and_bounds) {
  fixture f = {0};
  ck_assert_int_eq(run(&f, "GET", "/v1/items", "cursor=%zz", NULL), ERR_INVAL);
  ck_assert(has_error(&f.err, "cursor", "percent"));
  ck_assert_int_eq(run(&f, "GET", "/v1/items", "cursor=a%00b", NULL),
                   ERR_INVAL);
  ck_assert_int_eq(run(&f, "GET", "/v1/items", "cursor=%c3%28", NULL),
                   ERR_INVAL);
  ck_assert(has_error(&f.err, "cursor", ""));
  char q[TRANSCODE_MAX_QUERY_PARAMS * 4 + 16] = "";
  for (int i = 0; i <= TRANSCODE_MAX_QUERY_PARAMS; i++)
    strcat(q, "&t=1"); /* banned-ok: test, sized */
  ck_assert_int_eq(run(&f, "GET", "/v1/items", q, NULL), ERR_INVAL);
  ck_assert(has_error(&f.err, "", "too many"));
  char *big = malloc(TRANSCODE_MAX_QUERY + 10);
  memcpy(big, "cursor=", 7);
  memset(big + 7, 'a', TRANSCODE_MAX_QUERY);
  big[TRANSCODE_MAX_QUERY + 7] = '\0';
  ck_assert_int_eq(run(&f, "GET", "/v1/items", big, NULL), ERR_INVAL);
  free(big);
  done(&f);
}
END_TEST

static int count_pairs(void *arg, const char *k, size_t kl, const char *v,
                       size_t vl) {
  int *n = arg;
  (*n)++;
  if (strcmp(k, "stop") == 0) return ERR_CONFLICT;
  ck_assert_uint_eq(strlen(k), kl);
  ck_assert_uint_eq(strlen(v), vl);
  return ERR_OK;
}

START_TEST(query_walk_reports_callback_errors) {
  arena a;
  arena_init(&a, 0, 0);
  int n = 0;
  const char *q = "a=1&b&stop=1&c=2";
  ck_assert_int_eq(
      transcode_query_each(q, strlen(q), &a, count_pairs, &n, NULL, NULL),
      ERR_CONFLICT);
  ck_assert_int_eq(n, 3);
  arena_release(&a);
}
END_TEST

static uint8_t *pack_reply(size_t *len, bool with_item) {
  Gwtest__V1__EchoReply r = GWTEST__V1__ECHO_REPLY__INIT;
  Gwtest__V1__Item it = GWTEST__V1__ITEM__INIT;
  it.id = "i1";
  it.name = "caf\xc3\xa9";
  it.quantity = 2;
  if (with_item) r.item = &it;
  *len = gwtest__v1__echo_reply__get_packed_size(&r);
  uint8_t *b = malloc(*len + 1);
  gwtest__v1__echo_reply__pack(&r, b);
  return b;
}

/* In answers, a json_text member's text becomes JSON again. */
START_TEST(json_text_members_of_answers_become_json) {
  const char *names[] = {"{\"a\":[1,2]}", "", "not json"};
  const char *want[] = {"{\"id\":\"i1\",\"name\":{\"a\":[1,2]},\"quantity\":2}",
                        "{\"id\":\"i1\",\"name\":null,\"quantity\":2}",
                        "{\"id\":\"i1\",\"name\":\"not json\",\"quantity\":2}"};
  for (size_t i = 0; i < 3; i++) {
    Gwtest__V1__EchoReply r = GWTEST__V1__ECHO_REPLY__INIT;
    Gwtest__V1__Item it = GWTEST__V1__ITEM__INIT;
    it.id = "i1";
    it.name = (char *)names[i];
    it.quantity = 2;
    r.item = &it;
    size_t len = gwtest__v1__echo_reply__get_packed_size(&r);
    uint8_t *b = malloc(len + 1);
    gwtest__v1__echo_reply__pack(&r, b);
    char *json;
    size_t jlen;
    ck_assert_int_eq(
        transcode_reply(&kRows[4], b, len, NULL, NULL, &json, &jlen), ERR_OK);
    ck_assert_str_eq(json, want[i]);
    free(json);
    free(b);
  }
}
END_TEST

/* In answers, an unwrap member (a oneof of messages) is the selected
 * message itself; nothing selected, or no message, is null. */
START_TEST(unwrap_members_answer_the_selected_message) {
  Gwtest__V1__Item it = GWTEST__V1__ITEM__INIT;
  it.id = "i1";
  it.quantity = 2;
  Gwtest__V1__Envelope env = GWTEST__V1__ENVELOPE__INIT;
  env.tenant_id = "t1";
  Gwtest__V1__Wrapped w[3] = {GWTEST__V1__WRAPPED__INIT,
                              GWTEST__V1__WRAPPED__INIT,
                              GWTEST__V1__WRAPPED__INIT};
  w[0].kind_case = GWTEST__V1__WRAPPED__KIND_ITEM;
  w[0].item = &it;
  w[1].kind_case = GWTEST__V1__WRAPPED__KIND_ENVELOPE;
  w[1].envelope = &env;
  const char *want[] = {
      "{\"wrapped\":{\"id\":\"i1\",\"name\":\"\",\"quantity\":2}}",
      "{\"wrapped\":{\"tenant_id\":\"t1\",\"request_id\":\"\","
      "\"has_token\":false,\"idempotency_key\":\"\",\"token\":\"\"}}",
      "{\"wrapped\":null}", "{\"wrapped\":null}"};
  for (size_t i = 0; i < 4; i++) {
    Gwtest__V1__EchoReply r = GWTEST__V1__ECHO_REPLY__INIT;
    r.wrapped = i < 3 ? &w[i] : NULL;
    size_t len = gwtest__v1__echo_reply__get_packed_size(&r);
    uint8_t *b = malloc(len + 1);
    gwtest__v1__echo_reply__pack(&r, b);
    char *json;
    size_t jlen;
    ck_assert_int_eq(
        transcode_reply(&kRows[5], b, len, NULL, NULL, &json, &jlen), ERR_OK);
    ck_assert_str_eq(json, want[i]);
    free(json);
    free(b);
  }
}
END_TEST

START_TEST(reply_becomes_json_whole_or_one_member) {
  size_t len;
  uint8_t *b = pack_reply(&len, true);
  char *json;
  size_t jlen;
  ck_assert_int_eq(transcode_reply(&kRows[1], b, len, NULL, NULL, &json, &jlen),
                   ERR_OK);
  ck_assert_str_eq(json,
                   "{\"id\":\"i1\",\"name\":\"caf\xc3\xa9\",\"quantity\":2}");
  ck_assert_uint_eq(jlen, strlen(json));
  free(json);
  ck_assert_int_eq(transcode_reply(&kRows[0], b, len, NULL, NULL, &json, &jlen),
                   ERR_OK);
  ck_assert_ptr_nonnull(strstr(json, "\"request\":null"));
  ck_assert_ptr_nonnull(strstr(json, "\"item\":{\"id\":\"i1\""));
  free(json);
  json_t *extra = json_pack("{s:s}", "slug", "acme");
  ck_assert_int_eq(
      transcode_reply(&kRows[1], b, len, "tenant", extra, &json, &jlen),
      ERR_OK);
  ck_assert_ptr_nonnull(strstr(json, "\"tenant\":{\"slug\":\"acme\"}"));
  free(json);
  json_decref(extra);
  free(b);
  /* An unset member answers {}. */
  b = pack_reply(&len, false);
  ck_assert_int_eq(transcode_reply(&kRows[1], b, len, NULL, NULL, &json, &jlen),
                   ERR_OK);
  ck_assert_str_eq(json, "{}");
  free(json);
  free(b);
}
END_TEST

START_TEST(omitted_members_leave_the_answer) {
  Gwtest__V1__EchoReply r = GWTEST__V1__ECHO_REPLY__INIT;
  Gwtest__V1__EchoRequest q = GWTEST__V1__ECHO_REQUEST__INIT;
  Gwtest__V1__Item it = GWTEST__V1__ITEM__INIT;
  q.name = "kept"; /* "?request.name": only dropped when empty */
  it.id = "i";
  r.request = &q;
  r.item = &it;
  size_t len = gwtest__v1__echo_reply__get_packed_size(&r);
  uint8_t *b = malloc(len + 1);
  gwtest__v1__echo_reply__pack(&r, b);
  char *json;
  size_t jlen;
  ck_assert_int_eq(transcode_reply(&kRows[2], b, len, NULL, NULL, &json, &jlen),
                   ERR_OK);
  json_t *v = json_loads(json, 0, NULL);
  ck_assert_ptr_nonnull(v);
  json_t *req = json_object_get(v, "request");
  ck_assert_ptr_null(json_object_get(req, "cursor"));
  ck_assert_str_eq(json_string_value(json_object_get(req, "name")), "kept");
  ck_assert_ptr_nonnull(json_object_get(req, "id"));
  ck_assert_ptr_null(json_object_get(json_object_get(v, "item"), "quantity"));
  ck_assert_ptr_nonnull(json_object_get(json_object_get(v, "item"), "id"));
  ck_assert_ptr_null(json_object_get(v, "envelope"));
  json_decref(v);
  free(json);
  free(b);
}
END_TEST

START_TEST(undecodable_reply_is_a_protocol_error) {
  const uint8_t junk[] = {0x0a, 0xff, 0xff, 0xff};
  char *json = (char *)1;
  size_t jlen;
  ck_assert_int_eq(
      transcode_reply(&kRows[0], junk, sizeof junk, NULL, NULL, &json, &jlen),
      ERR_PROTO);
  ck_assert_ptr_null(json);
}
END_TEST

START_TEST(added_errors_are_bounded_and_safe) {
  pbjson_error e;
  memset(&e, 0, sizeof e);
  char longp[400];
  memset(longp, 'p', sizeof longp);
  transcode_add_error(&e, ERR_INVAL, longp, sizeof longp, "d\x01\xff");
  ck_assert_int_eq(e.code, ERR_INVAL);
  ck_assert_uint_lt(strlen(e.errors[0].path), PBJSON_PATH_MAX);
  ck_assert_str_eq(e.errors[0].description, "d??");
  for (int i = 0; i < PBJSON_MAX_ERRORS + 3; i++)
    transcode_add_error(&e, ERR_TOOBIG, "x", 1, "y");
  ck_assert_uint_eq(e.count, PBJSON_MAX_ERRORS);
  ck_assert(e.truncated);
  ck_assert_int_eq(e.code, ERR_INVAL);
}
END_TEST

int main(void) {
  Suite *s = suite_create("transcode");
  TCase *tc = tcase_create("transcode");
  tcase_add_test(tc, body_path_and_query_fill_one_message);
  tcase_add_test(tc, empty_or_blank_body_is_an_empty_object);
  tcase_add_test(tc, malformed_json_is_a_document_error);
  tcase_add_test(tc, wrong_types_and_unknown_fields_name_every_field);
  tcase_add_test(tc, hidden_fields_are_unknown_from_every_source);
  tcase_add_test(tc, path_parameter_and_body_must_agree);
  tcase_add_test(tc, json_text_members_travel_as_canonical_text);
  tcase_add_test(tc, json_text_members_of_answers_become_json);
  tcase_add_test(tc, unwrap_members_answer_the_selected_message);
  tcase_add_test(tc, query_parameters_are_typed_by_the_message);
  tcase_add_test(tc, query_on_a_body_route_is_refused);
  tcase_add_test(tc, query_escapes_and_bounds);
  tcase_add_test(tc, query_walk_reports_callback_errors);
  tcase_add_test(tc, reply_becomes_json_whole_or_one_member);
  tcase_add_test(tc, omitted_members_leave_the_answer);
  tcase_add_test(tc, undecodable_reply_is_a_protocol_error);
  tcase_add_test(tc, added_errors_are_bounded_and_safe);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
