/*
 * handler_test.c - the shared handler steps through a real in-process RPC
 * server and client: decoding (and refusing garbage and oversized
 * requests), the request id on log lines, violations, error mapping that
 * keeps details out of the reply, oversized answers, method tables.
 * Messages are rpc.v1.Event, a type every build has.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/strutil.h"
#include "libs/base/vlist.h"
#include "libs/obs/log.h"
#include "libs/svc/handler.h"
#include "proto/rpc/v1/rpc.pb-c.h"

#define M_ECHO "test.v1.Test/Echo"
#define M_SMALL "test.v1.Test/Small"
#define M_INVALID "test.v1.Test/Invalid"
#define M_FIELD "test.v1.Test/Field"
#define M_ERROR "test.v1.Test/Error"
#define M_BIG "test.v1.Test/Big"
#define M_ID "test.v1.Test/Id"
#define MAX_RECV 4096

/* Decodes an Event and echoes it, with the log request id as its type. */
static void echo(void *arg, const rpc_call *call, rpc_reply *reply) {
  HANDLER_UNPACK(Rpc__V1__Event, rpc__v1__event, ev, 0);
  const char *rid = log_request_id();
  ev->type = (char *)(rid != NULL ? rid : "");
  handler_reply_message(reply, &ev->base);
  ev->type = NULL; /* not the message's to free */
  rpc__v1__event__free_unpacked(ev, NULL);
}

/* Accepts requests of at most 16 bytes. */
static void small(void *arg, const rpc_call *call, rpc_reply *reply) {
  HANDLER_UNPACK(Rpc__V1__Event, rpc__v1__event, ev, 16);
  rpc__v1__event__free_unpacked(ev, NULL);
}

static void invalid(void *arg, const rpc_call *call, rpc_reply *reply) {
  vlist v;
  vlist_init(&v);
  vlist_add(&v, "is required", "name");
  vlist_add(&v, "must be between 1 and 99", "items[%d].quantity", 2);
  if (call->payload_len == 0) {
    handler_reply_invalid(reply, "invalid thing", &v);
  } else {
    rpc_reply_status(reply, RPC_FAILED_PRECONDITION, "not now");
    handler_add_violations(reply, &v);
  }
}

static void field(void *arg, const rpc_call *call, rpc_reply *reply) {
  handler_reply_field(reply, RPC_ALREADY_EXISTS, "host is already in use",
                      "host", "is already in use");
}

/* The error is the request's seq. */
static void error(void *arg, const rpc_call *call, rpc_reply *reply) {
  HANDLER_UNPACK(Rpc__V1__Event, rpc__v1__event, ev, 0);
  handler_reply_error(reply, (int)ev->seq, "read the thing");
  rpc__v1__event__free_unpacked(ev, NULL);
}

/* The id is the request's topic; answers the canonical form. */
static void id(void *arg, const rpc_call *call, rpc_reply *reply) {
  HANDLER_UNPACK(Rpc__V1__Event, rpc__v1__event, ev, 0);
  char out[UUID_STR_LEN + 1];
  if (handler_uuid_arg(reply, "order_id", ev->topic, out) == ERR_OK)
    rpc_reply_status(reply, RPC_OK, "%s", out);
  rpc__v1__event__free_unpacked(ev, NULL);
}

/* An answer larger than the peer accepts. */
static void big(void *arg, const rpc_call *call, rpc_reply *reply) {
  Rpc__V1__Event ev = RPC__V1__EVENT__INIT;
  static uint8_t blob[2 * MAX_RECV];
  ev.payload.data = blob;
  ev.payload.len = sizeof blob;
  handler_reply_message(reply, &ev.base);
}

typedef struct env {
  rpc_server *srv;
  rpc_client *cli;
} env;

static void env_start(env *e) {
  static const handler_method table[] = {
      {M_ECHO, echo},   {M_SMALL, small}, {M_INVALID, invalid},
      {M_FIELD, field}, {M_ERROR, error}, {M_BIG, big},
      {M_ID, id},
  };
  rpc_server_options so;
  rpc_server_options_init(&so);
  so.workers = 2;
  so.max_recv_bytes = MAX_RECV;
  ck_assert_int_eq(rpc_server_new(&so, &e->srv), ERR_OK);
  ck_assert_int_eq(
      handler_register(e->srv, table, sizeof table / sizeof table[0], NULL),
      ERR_OK);
  ck_assert_int_eq(rpc_server_start(e->srv, "tcp://127.0.0.1:0"), ERR_OK);
  char url[64];
  snprintf(url, sizeof url, "tcp://127.0.0.1:%d", rpc_server_port(e->srv));
  ck_assert_int_eq(rpc_client_new(url, NULL, &e->cli), ERR_OK);
  ck_assert_int_eq(rpc_client_wait_connected(e->cli, 1, 5000), ERR_OK);
}

static void env_stop(env *e) {
  rpc_client_free(e->cli);
  rpc_server_close(e->srv);
}

static rpc_result *call(env *e, const char *method, const void *req, size_t len,
                        const char *request_id) {
  rpc_call_options o = RPC_CALL_OPTIONS_INIT;
  o.deadline_ms = 5000;
  o.request_id = request_id;
  rpc_result *res = NULL;
  ck_assert_int_eq(rpc_client_call(e->cli, method, req, len, &o, &res), ERR_OK);
  return res;
}

static rpc_result *call_event(env *e, const char *method,
                              const Rpc__V1__Event *ev,
                              const char *request_id) {
  uint8_t buf[512];
  size_t n = rpc__v1__event__get_packed_size(ev);
  ck_assert_uint_le(n, sizeof buf);
  rpc__v1__event__pack(ev, buf);
  return call(e, method, buf, n, request_id);
}

START_TEST(requests_are_decoded_and_answers_sent) {
  env e;
  env_start(&e);
  Rpc__V1__Event ev = RPC__V1__EVENT__INIT;
  ev.topic = "orders.t1";
  ev.seq = 42;
  rpc_result *res = call_event(&e, M_ECHO, &ev, "req-123");
  ck_assert_int_eq(res->code, RPC_OK);
  Rpc__V1__Event *back =
      rpc__v1__event__unpack(NULL, res->payload_len, res->payload);
  ck_assert_ptr_nonnull(back);
  ck_assert_str_eq(back->topic, "orders.t1");
  ck_assert_uint_eq(back->seq, 42);
  /* The handler's log lines carried the caller's request id. */
  ck_assert_str_eq(back->type, "req-123");
  rpc__v1__event__free_unpacked(back, NULL);
  rpc_result_free(res);
  env_stop(&e);
}
END_TEST

START_TEST(garbage_and_oversized_requests_are_refused) {
  env e;
  env_start(&e);
  static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
  rpc_result *res = call(&e, M_ECHO, garbage, sizeof garbage, NULL);
  ck_assert_int_eq(res->code, RPC_INVALID_ARGUMENT);
  ck_assert_str_eq(res->message, "undecodable request");
  rpc_result_free(res);

  Rpc__V1__Event ev = RPC__V1__EVENT__INIT;
  ev.topic = "x";
  res = call_event(&e, M_SMALL, &ev, NULL);
  ck_assert_int_eq(res->code, RPC_OK);
  rpc_result_free(res);
  ev.topic = "a topic well over sixteen bytes";
  res = call_event(&e, M_SMALL, &ev, NULL);
  ck_assert_int_eq(res->code, RPC_INVALID_ARGUMENT);
  ck_assert_str_eq(res->message, "request too large");
  rpc_result_free(res);
  env_stop(&e);
}
END_TEST

START_TEST(violations_name_every_field) {
  env e;
  env_start(&e);
  rpc_result *res = call(&e, M_INVALID, NULL, 0, NULL);
  ck_assert_int_eq(res->code, RPC_INVALID_ARGUMENT);
  ck_assert_str_eq(res->message, "invalid thing");
  ck_assert_uint_eq(res->nviolations, 2);
  ck_assert_str_eq(res->violations[0].field, "name");
  ck_assert_str_eq(res->violations[0].description, "is required");
  ck_assert_str_eq(res->violations[1].field, "items[2].quantity");
  rpc_result_free(res);

  /* The same list under another code. */
  res = call(&e, M_INVALID, "x", 1, NULL);
  ck_assert_int_eq(res->code, RPC_FAILED_PRECONDITION);
  ck_assert_str_eq(res->message, "not now");
  ck_assert_uint_eq(res->nviolations, 2);
  rpc_result_free(res);

  res = call(&e, M_FIELD, NULL, 0, NULL);
  ck_assert_int_eq(res->code, RPC_ALREADY_EXISTS);
  ck_assert_str_eq(res->message, "host is already in use");
  ck_assert_uint_eq(res->nviolations, 1);
  ck_assert_str_eq(res->violations[0].field, "host");
  ck_assert_str_eq(res->violations[0].description, "is already in use");
  rpc_result_free(res);
  env_stop(&e);
}
END_TEST

START_TEST(ids_are_canonical_or_refused) {
  env e;
  env_start(&e);
  Rpc__V1__Event ev = RPC__V1__EVENT__INIT;
  ev.topic = "01890A5D-AC96-774B-BCCE-B302099A8057";
  rpc_result *res = call_event(&e, M_ID, &ev, NULL);
  ck_assert_int_eq(res->code, RPC_OK);
  ck_assert_str_eq(res->message, "01890a5d-ac96-774b-bcce-b302099a8057");
  rpc_result_free(res);
  ev.topic = "not-an-id";
  res = call_event(&e, M_ID, &ev, NULL);
  ck_assert_int_eq(res->code, RPC_INVALID_ARGUMENT);
  ck_assert_str_eq(res->message, "invalid order_id");
  ck_assert_uint_eq(res->nviolations, 1);
  ck_assert_str_eq(res->violations[0].field, "order_id");
  ck_assert_str_eq(res->violations[0].description, "must be a UUID");
  rpc_result_free(res);
  ev.topic = "";
  res = call_event(&e, M_ID, &ev, NULL);
  ck_assert_int_eq(res->code, RPC_INVALID_ARGUMENT);
  ck_assert_str_eq(res->violations[0].description, "is required");
  rpc_result_free(res);
  env_stop(&e);
}
END_TEST

START_TEST(errors_map_to_codes_without_details) {
  env e;
  env_start(&e);
  static const struct {
    int err, code;
    const char *message;
  } cases[] = {
      {ERR_NOTFOUND, RPC_NOT_FOUND, "not found"},
      {ERR_CONFLICT, RPC_ABORTED, "cannot read the thing"},
      {ERR_UNAVAILABLE, RPC_UNAVAILABLE, "cannot read the thing"},
      {ERR_TIMEOUT, RPC_DEADLINE_EXCEEDED, "cannot read the thing"},
      {ERR_DB, RPC_INTERNAL, "cannot read the thing"},
      {ERR_TOOBIG, RPC_RESOURCE_EXHAUSTED, "cannot read the thing"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    Rpc__V1__Event ev = RPC__V1__EVENT__INIT;
    ev.seq = (uint64_t)cases[i].err;
    rpc_result *res = call_event(&e, M_ERROR, &ev, NULL);
    ck_assert_int_eq(res->code, cases[i].code);
    ck_assert_str_eq(res->message, cases[i].message);
    ck_assert_uint_eq(res->nviolations, 0);
    rpc_result_free(res);
  }
  env_stop(&e);
}
END_TEST

START_TEST(answers_too_large_are_resource_exhausted) {
  env e;
  env_start(&e);
  rpc_result *res = call(&e, M_BIG, NULL, 0, NULL);
  ck_assert_int_eq(res->code, RPC_RESOURCE_EXHAUSTED);
  ck_assert_str_eq(res->message, "answer too large");
  ck_assert_uint_eq(res->payload_len, 0);
  rpc_result_free(res);
  env_stop(&e);
}
END_TEST

START_TEST(method_tables_register_or_refuse) {
  rpc_server *srv = NULL;
  ck_assert_int_eq(rpc_server_new(NULL, &srv), ERR_OK);
  static const handler_method twice[] = {{M_ECHO, echo}, {M_ECHO, echo}};
  ck_assert_int_eq(handler_register(NULL, twice, 1, NULL), ERR_INVAL);
  ck_assert_int_eq(handler_register(srv, NULL, 1, NULL), ERR_INVAL);
  ck_assert_int_eq(handler_register(srv, twice, 0, NULL), ERR_OK);
  ck_assert_int_ne(handler_register(srv, twice, 2, NULL), ERR_OK);
  rpc_server_close(srv);
}
END_TEST

int main(void) {
  log_init("handler_test", LOG_ERROR); /* the error cases log; keep quiet */
  Suite *s = suite_create("handler");
  TCase *tc = tcase_create("handler");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, requests_are_decoded_and_answers_sent);
  tcase_add_test(tc, garbage_and_oversized_requests_are_refused);
  tcase_add_test(tc, violations_name_every_field);
  tcase_add_test(tc, ids_are_canonical_or_refused);
  tcase_add_test(tc, errors_map_to_codes_without_details);
  tcase_add_test(tc, answers_too_large_are_resource_exhausted);
  tcase_add_test(tc, method_tables_register_or_refuse);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
