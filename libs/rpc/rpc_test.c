/*
 * rpc_test.c - unit tests for libs/rpc: a real server and client in one
 * process over tcp://127.0.0.1 (port 0, so tests never collide), plus raw
 * nng and raw TCP peers for the things a well-behaved client never does
 * (garbage, oversized messages, dropping the connection mid-call).
 *
 * Timing: sleeps are generous and assertions are about outcomes and
 * counts ("the handler never ran", "attempts <= max"), with wide upper
 * bounds only where a bound is the promise (retries stay within the
 * deadline), so a loaded 2-core machine does not make them flaky.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "libs/base/timeutil.h"
#include "libs/obs/metrics.h"
#include "libs/rpc/rpc.h"
#include "libs/rpc/rpc_internal.h"
#include "proto/rpc/v1/rpc.pb-c.h"

#define M_ECHO "test.v1.Test/Echo"
#define M_SLEEP "test.v1.Test/Sleep"
#define M_COUNT "test.v1.Test/Count"
#define M_VIOL "test.v1.Test/Violations"
#define M_BIG "test.v1.Test/Big"
#define M_LEFT "test.v1.Test/TimeLeft"

/* ---- handlers ---- */

static _Atomic int count_calls;
static _Atomic int running_now;
static _Atomic int running_max;
static _Atomic int sleep_started;

static void h_echo(void *arg, const rpc_call *call, rpc_reply *reply) {
  (void)arg;
  /* Echo the payload, and the metadata in the message. */
  rpc_reply_status(reply, RPC_OK, "%s|%s|%s|%s|%u", call->request_id,
                   call->tenant_id, call->token, call->idempotency_key,
                   call->attempt);
  if (rpc_reply_set_payload(reply, call->payload, call->payload_len) !=
      ERR_OK) {
    rpc_reply_status(reply, RPC_INTERNAL, "set_payload failed");
  }
}

static void h_sleep(void *arg, const rpc_call *call, rpc_reply *reply) {
  (void)arg;
  char buf[16] = {0};
  size_t n =
      call->payload_len < sizeof(buf) - 1 ? call->payload_len : sizeof(buf) - 1;
  memcpy(buf, call->payload, n);
  int now = atomic_fetch_add(&running_now, 1) + 1;
  int max = atomic_load(&running_max);
  while (now > max && !atomic_compare_exchange_weak(&running_max, &max, now)) {
  }
  atomic_fetch_add(&sleep_started, 1);
  time_sleep_ms((int)strtol(buf, NULL, 10));
  atomic_fetch_sub(&running_now, 1);
  rpc_reply_status(reply, RPC_OK, NULL);
}

static void h_count(void *arg, const rpc_call *call, rpc_reply *reply) {
  (void)arg;
  (void)call;
  atomic_fetch_add(&count_calls, 1);
  rpc_reply_status(reply, RPC_OK, NULL);
}

static void h_viol(void *arg, const rpc_call *call, rpc_reply *reply) {
  (void)arg;
  (void)call;
  rpc_reply_status(reply, RPC_INVALID_ARGUMENT, "2 fields are invalid");
  ck_assert_int_eq(
      rpc_reply_add_violation(reply, "items[3].quantity", "must be at least 1"),
      ERR_OK);
  ck_assert_int_eq(
      rpc_reply_add_violation(reply, "email", "not an e-mail address"), ERR_OK);
  rpc_reply_retry_after(reply, 1500);
}

static void h_big(void *arg, const rpc_call *call, rpc_reply *reply) {
  (void)arg;
  (void)call;
  static char big[8192];
  /* Larger than the server's max_recv_bytes in the test that uses it. */
  int rc = rpc_reply_set_payload(reply, big, sizeof(big));
  rpc_reply_status(reply, rc == ERR_TOOBIG ? RPC_RESOURCE_EXHAUSTED : RPC_OK,
                   NULL);
}

static _Atomic int64_t seen_left;

static void h_left(void *arg, const rpc_call *call, rpc_reply *reply) {
  (void)arg;
  atomic_store(&seen_left, rpc_call_time_left_ms(call));
  rpc_reply_status(reply, RPC_OK, NULL);
}

/* ---- fixtures ---- */

static rpc_server *start_server(rpc_server_options *o, char *url, size_t cap) {
  rpc_server *s = NULL;
  ck_assert_int_eq(rpc_server_new(o, &s), ERR_OK);
  ck_assert_int_eq(rpc_server_register(s, M_ECHO, h_echo, NULL), ERR_OK);
  ck_assert_int_eq(rpc_server_register(s, M_SLEEP, h_sleep, NULL), ERR_OK);
  ck_assert_int_eq(rpc_server_register(s, M_COUNT, h_count, NULL), ERR_OK);
  ck_assert_int_eq(rpc_server_register(s, M_VIOL, h_viol, NULL), ERR_OK);
  ck_assert_int_eq(rpc_server_register(s, M_BIG, h_big, NULL), ERR_OK);
  ck_assert_int_eq(rpc_server_register(s, M_LEFT, h_left, NULL), ERR_OK);
  ck_assert_int_eq(rpc_server_start(s, "tcp://127.0.0.1:0"), ERR_OK);
  ck_assert_int_gt(rpc_server_port(s), 0);
  snprintf(url, cap, "tcp://127.0.0.1:%d", rpc_server_port(s));
  return s;
}

static rpc_client *connect_client(const char *url, rpc_client_options *o) {
  rpc_client *c = NULL;
  ck_assert_int_eq(rpc_client_new(url, o, &c), ERR_OK);
  ck_assert_int_eq(rpc_client_wait_connected(c, 1, 5000), ERR_OK);
  return c;
}

/* Waits until c has no connection left (its servers are closed). */
static void wait_disconnected(rpc_client *c) {
  for (int i = 0; i < 1000 && rpc_client_connected(c) > 0; i++)
    time_sleep_ms(5);
  ck_assert_int_eq(rpc_client_connected(c), 0);
}

/* For a test that leaves late replies behind (calls that gave up before
 * their server answered): nng 1.5 can hang in nng_close when a message is
 * still arriving on the socket being closed, and a late reply is exactly
 * that. So the servers close first (rpc_server_close answers everything
 * they hold), the clients wait until they have seen every connection go
 * - after the last reply, which comes before the close on the same
 * connection - and only then close their own sockets. */
static void close_late_replies_first(rpc_server **servers, size_t nservers,
                                     rpc_client **clients, size_t nclients) {
  for (size_t i = 0; i < nservers; i++) rpc_server_close(servers[i]);
  for (size_t i = 0; i < nclients; i++) wait_disconnected(clients[i]);
  for (size_t i = 0; i < nclients; i++) rpc_client_free(clients[i]);
}

static rpc_result *call(rpc_client *c, const char *method, const char *payload,
                        const rpc_call_options *o) {
  rpc_result *r = NULL;
  ck_assert_int_eq(rpc_client_call(c, method, payload,
                                   payload != NULL ? strlen(payload) : 0, o,
                                   &r),
                   ERR_OK);
  ck_assert_ptr_nonnull(r);
  return r;
}

/* ---- guard and credential ---- */

static int give_credential(void *arg, const char *method, char *buf,
                           size_t cap) {
  ck_assert_ptr_eq(strstr(method, "test.v1.Test/"), method);
  snprintf(buf, cap, "%s", (const char *)arg);
  return ERR_OK;
}

/* Lets through only calls whose service token is "svc-token", naming the
 * caller "billing" for the handler. */
static bool guard_token(void *arg, rpc_call *call, rpc_reply *reply) {
  atomic_fetch_add((atomic_int *)arg, 1);
  if (strcmp(call->service_token, "svc-token") != 0) {
    rpc_reply_status(reply, RPC_UNAUTHENTICATED, "no service identity");
    return false;
  }
  snprintf(call->caller, sizeof call->caller, "billing");
  return true;
}

static void h_caller(void *arg, const rpc_call *call, rpc_reply *reply) {
  atomic_fetch_add((atomic_int *)arg, 1);
  rpc_reply_status(reply, RPC_OK, "%s", call->caller);
}

START_TEST(server_counts_its_client_connections) {
  char url[64];
  rpc_server *s = start_server(NULL, url, sizeof(url));
  ck_assert_int_eq(rpc_server_connected(s), 0);
  ck_assert_int_eq(rpc_server_wait_disconnected(s, 10), ERR_OK);
  rpc_client *a = connect_client(url, NULL), *b = connect_client(url, NULL);
  for (int i = 0; i < 1000 && rpc_server_connected(s) < 2; i++)
    time_sleep_ms(5);
  ck_assert_int_eq(rpc_server_connected(s), 2);
  ck_assert_int_eq(rpc_server_wait_disconnected(s, 20), ERR_TIMEOUT);
  rpc_client_free(a);
  rpc_client_free(b);
  ck_assert_int_eq(rpc_server_wait_disconnected(s, 10000), ERR_OK);
  ck_assert_int_eq(rpc_server_connected(s), 0);
  rpc_server_close(s);
}
END_TEST

START_TEST(guard_runs_before_handlers_and_credential_is_sent) {
  atomic_int guarded = 0, handled = 0;
  rpc_server *s = NULL;
  ck_assert_int_eq(rpc_server_new(NULL, &s), ERR_OK);
  ck_assert_int_eq(rpc_server_register(s, M_ECHO, h_caller, &handled), ERR_OK);
  ck_assert_int_eq(rpc_server_set_guard(s, guard_token, &guarded), ERR_OK);
  ck_assert_int_eq(rpc_server_start(s, "tcp://127.0.0.1:0"), ERR_OK);
  ck_assert_int_eq(rpc_server_set_guard(s, NULL, NULL), ERR_INVAL);
  char url[64];
  snprintf(url, sizeof url, "tcp://127.0.0.1:%d", rpc_server_port(s));

  rpc_client *bare = connect_client(url, NULL);
  rpc_result *r = call(bare, M_ECHO, "x", NULL);
  ck_assert_int_eq(r->code, RPC_UNAUTHENTICATED);
  ck_assert_int_eq(atomic_load(&handled), 0);
  rpc_result_free(r);

  rpc_client_options o;
  rpc_client_options_init(&o);
  o.credential = give_credential;
  o.credential_arg = "svc-token";
  rpc_client *signed_cli = connect_client(url, &o);
  r = call(signed_cli, M_ECHO, "x", NULL);
  ck_assert_int_eq(r->code, RPC_OK);
  ck_assert_str_eq(r->message, "billing");
  ck_assert_int_eq(atomic_load(&handled), 1);
  rpc_result_free(r);

  /* Unknown methods are refused before the guard runs. */
  r = call(signed_cli, "test.v1.Test/Nope", "x", NULL);
  ck_assert_int_eq(r->code, RPC_UNIMPLEMENTED);
  ck_assert_int_eq(atomic_load(&guarded), 2);
  rpc_result_free(r);
  rpc_client_free(bare);
  rpc_client_free(signed_cli);
  rpc_server_close(s);
}
END_TEST

/* ---- status ---- */

START_TEST(status_names_match_grpc) {
  static const char *names[] = {"OK",
                                "CANCELLED",
                                "UNKNOWN",
                                "INVALID_ARGUMENT",
                                "DEADLINE_EXCEEDED",
                                "NOT_FOUND",
                                "ALREADY_EXISTS",
                                "PERMISSION_DENIED",
                                "RESOURCE_EXHAUSTED",
                                "FAILED_PRECONDITION",
                                "ABORTED",
                                "OUT_OF_RANGE",
                                "UNIMPLEMENTED",
                                "INTERNAL",
                                "UNAVAILABLE",
                                "DATA_LOSS",
                                "UNAUTHENTICATED"};
  for (int i = 0; i < RPC_CODE_COUNT; i++) {
    ck_assert_str_eq(rpc_code_name(i), names[i]);
    int code = -1;
    ck_assert_int_eq(rpc_code_parse(names[i], &code), ERR_OK);
    ck_assert_int_eq(code, i);
    /* Same numbering as the wire enum. */
    ck_assert_str_eq(rpc__v1__code__descriptor.values[i].name, names[i]);
    ck_assert_int_eq(rpc__v1__code__descriptor.values[i].value, i);
  }
  ck_assert_int_eq(RPC_INVALID_ARGUMENT, 3);
  ck_assert_int_eq(RPC_UNAVAILABLE, 14);
  ck_assert_int_eq(RPC_UNAUTHENTICATED, 16);
}
END_TEST

START_TEST(status_bad_codes_and_names) {
  ck_assert_str_eq(rpc_code_name(-1), "UNKNOWN");
  ck_assert_str_eq(rpc_code_name(17), "UNKNOWN");
  int code = 42;
  ck_assert_int_eq(rpc_code_parse("not_found", &code), ERR_INVAL);
  ck_assert_int_eq(rpc_code_parse("", &code), ERR_INVAL);
  ck_assert_int_eq(rpc_code_parse(NULL, &code), ERR_INVAL);
  ck_assert_int_eq(rpc_code_parse("NOT_FOUND ", &code), ERR_INVAL);
  ck_assert_int_eq(code, 42);
  ck_assert(!rpc_code_valid(17));
  ck_assert(rpc_code_valid(0));
}
END_TEST

START_TEST(status_from_err) {
  ck_assert_int_eq(rpc_code_from_err(ERR_OK), RPC_OK);
  ck_assert_int_eq(rpc_code_from_err(ERR_INVAL), RPC_INVALID_ARGUMENT);
  ck_assert_int_eq(rpc_code_from_err(ERR_NOTFOUND), RPC_NOT_FOUND);
  ck_assert_int_eq(rpc_code_from_err(ERR_EXISTS), RPC_ALREADY_EXISTS);
  ck_assert_int_eq(rpc_code_from_err(ERR_CONFLICT), RPC_ABORTED);
  ck_assert_int_eq(rpc_code_from_err(ERR_TIMEOUT), RPC_DEADLINE_EXCEEDED);
  ck_assert_int_eq(rpc_code_from_err(ERR_UNAVAILABLE), RPC_UNAVAILABLE);
  ck_assert_int_eq(rpc_code_from_err(ERR_CLOSED), RPC_UNAVAILABLE);
  ck_assert_int_eq(rpc_code_from_err(ERR_TOOBIG), RPC_RESOURCE_EXHAUSTED);
  ck_assert_int_eq(rpc_code_from_err(ERR_NOMEM), RPC_RESOURCE_EXHAUSTED);
  ck_assert_int_eq(rpc_code_from_err(ERR_DB), RPC_INTERNAL);
  ck_assert_int_eq(rpc_code_from_err(9999), RPC_INTERNAL);
}
END_TEST

/* ---- addresses ---- */

START_TEST(address_list_parses) {
  rpc_endpoint ep[4];
  size_t n = 0;
  ck_assert_int_eq(
      rpc_address_parse(
          "tcp://10.0.0.1:7001, "
          "tcp://host-b.svc:7002,dns+tcp://orders:7003,tcp://[::1]:9",
          ep, 4, &n),
      ERR_OK);
  ck_assert_uint_eq(n, 4);
  ck_assert(!ep[0].dns);
  ck_assert_str_eq(ep[0].host, "10.0.0.1");
  ck_assert_int_eq(ep[0].port, 7001);
  ck_assert_str_eq(ep[1].host, "host-b.svc");
  ck_assert_int_eq(ep[1].port, 7002);
  ck_assert(ep[2].dns);
  ck_assert_str_eq(ep[2].host, "orders");
  ck_assert_int_eq(ep[2].port, 7003);
  ck_assert_str_eq(ep[3].host, "::1");
  ck_assert_int_eq(ep[3].port, 9);

  char url[RPC_MAX_URL_LEN];
  ck_assert_int_eq(rpc_tcp_url("::1", 9, url, sizeof(url)), ERR_OK);
  ck_assert_str_eq(url, "tcp://[::1]:9");
  ck_assert_int_eq(rpc_tcp_url("1.2.3.4", 80, url, sizeof(url)), ERR_OK);
  ck_assert_str_eq(url, "tcp://1.2.3.4:80");
  ck_assert_int_eq(rpc_tcp_url("1.2.3.4", 80, url, 8), ERR_TOOBIG);
}
END_TEST

START_TEST(address_bad_rejected) {
  static const char *bad[] = {"",
                              " ",
                              "tcp://",
                              "tcp://host",
                              "tcp://host:",
                              "tcp://host:0",
                              "tcp://host:65536",
                              "tcp://:80",
                              "udp://host:80",
                              "host:80",
                              "tcp://a:1,,tcp://b:2",
                              "tcp://a:1,",
                              ",tcp://a:1",
                              "tcp://h:80/path",
                              "tcp://h:8x0",
                              "tcp://h:-1",
                              "tcp://ho st:80",
                              "tcp://[::1:80",
                              "tcp://[]:80",
                              "tcp://::1:80",
                              "dns+tcp://name",
                              "ipc:///tmp/x",
                              "tcp://h:+80",
                              "tcp://h:80 x"};
  rpc_endpoint ep[4];
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    size_t n = 99;
    ck_assert_msg(rpc_address_parse(bad[i], ep, 4, &n) == ERR_INVAL,
                  "accepted '%s'", bad[i]);
  }
  size_t n;
  /* More endpoints than room. */
  ck_assert_int_eq(
      rpc_address_parse("tcp://a:1,tcp://b:2,tcp://c:3", ep, 2, &n), ERR_INVAL);
  char longhost[300];
  memset(longhost, 'a', sizeof(longhost));
  memcpy(longhost, "tcp://", 6);
  memcpy(longhost + 290, ":80", 4);
  ck_assert_int_eq(rpc_address_parse(longhost, ep, 4, &n), ERR_INVAL);
  /* And the client refuses them too. */
  rpc_client *c = (rpc_client *)1;
  ck_assert_int_eq(rpc_client_new("tcp://nope", NULL, &c), ERR_INVAL);
  ck_assert_ptr_null(c);
  ck_assert_int_eq(rpc_client_new(NULL, NULL, &c), ERR_INVAL);
}
END_TEST

/* ---- arena ---- */

START_TEST(arena_aligns_grows_and_resets) {
  rpc_arena a;
  rpc_arena_init(&a, 1024);
  char *p1 = rpc_arena_alloc(&a, 3);
  double *p2 = rpc_arena_alloc(&a, sizeof(double));
  ck_assert_ptr_nonnull(p1);
  ck_assert_ptr_nonnull(p2);
  ck_assert_uint_eq((uintptr_t)p2 % _Alignof(max_align_t), 0);
  *p2 = 1.5;
  char *big = rpc_arena_alloc(&a, 100000); /* own block */
  ck_assert_ptr_nonnull(big);
  memset(big, 1, 100000);
  ck_assert_str_eq(rpc_arena_strdup(&a, "abc"), "abc");
  ck_assert_str_eq(rpc_arena_strdup(&a, NULL), "");
  rpc_arena_reset(&a);
  ck_assert_ptr_nonnull(rpc_arena_alloc(&a, 10));
  rpc_arena_fini(&a);
}
END_TEST

/* ---- server + client ---- */

START_TEST(call_echoes_payload_and_metadata) {
  char url[64];
  rpc_server *s = start_server(NULL, url, sizeof(url));
  rpc_client *c = connect_client(url, NULL);

  rpc_call_options o = RPC_CALL_OPTIONS_INIT;
  o.request_id = "req-123";
  o.tenant_id = "tenant-a";
  o.token = "tok";
  o.idempotency_key = "idem-1";
  rpc_result *r = call(c, M_ECHO, "hello", &o);
  ck_assert_int_eq(r->code, RPC_OK);
  ck_assert_uint_eq(r->payload_len, 5);
  ck_assert_int_eq(memcmp(r->payload, "hello", 5), 0);
  ck_assert_str_eq(r->message, "req-123|tenant-a|tok|idem-1|1");
  ck_assert_str_eq(r->request_id, "req-123");
  ck_assert_uint_eq(r->nviolations, 0);
  ck_assert_uint_eq(r->retry_after_ms, 0);
  rpc_result_free(r);

  /* No options: a UUIDv7 request id is made; empty payload is fine. */
  r = call(c, M_ECHO, NULL, NULL);
  ck_assert_int_eq(r->code, RPC_OK);
  ck_assert_uint_eq(r->payload_len, 0);
  ck_assert_uint_eq(strlen(r->request_id), 36);
  ck_assert(strncmp(r->message, r->request_id, 36) == 0);
  rpc_result_free(r);

  rpc_server_stats st;
  rpc_server_get_stats(s, &st);
  ck_assert_uint_eq(st.handled, 2);
  rpc_client_free(c);
  rpc_server_close(s);
}
END_TEST

START_TEST(call_message_helper_packs_protobuf) {
  char url[64];
  rpc_server *s = start_server(NULL, url, sizeof(url));
  rpc_client *c = connect_client(url, NULL);
  Rpc__V1__ReplayRequest rq = RPC__V1__REPLAY_REQUEST__INIT;
  rq.after_seq = 42;
  rq.limit = 7;
  rpc_result *r = NULL;
  ck_assert_int_eq(rpc_client_call_message(c, M_ECHO, &rq.base, NULL, &r),
                   ERR_OK);
  ck_assert_int_eq(r->code, RPC_OK);
  Rpc__V1__ReplayRequest *back =
      rpc__v1__replay_request__unpack(NULL, r->payload_len, r->payload);
  ck_assert_ptr_nonnull(back);
  ck_assert_uint_eq(back->after_seq, 42);
  ck_assert_uint_eq(back->limit, 7);
  rpc__v1__replay_request__free_unpacked(back, NULL);
  rpc_result_free(r);
  rpc_client_free(c);
  rpc_server_close(s);
}
END_TEST

START_TEST(unknown_method_is_unimplemented) {
  char url[64];
  rpc_server *s = start_server(NULL, url, sizeof(url));
  rpc_client *c = connect_client(url, NULL);
  rpc_result *r = call(c, "test.v1.Test/Nope", "x", NULL);
  ck_assert_int_eq(r->code, RPC_UNIMPLEMENTED);
  ck_assert_ptr_nonnull(strstr(r->message, "test.v1.Test/Nope"));
  rpc_result_free(r);
  rpc_server_stats st;
  rpc_server_get_stats(s, &st);
  ck_assert_uint_eq(st.unknown, 1);
  ck_assert_uint_eq(st.handled, 0);
  rpc_client_free(c);
  rpc_server_close(s);
}
END_TEST

START_TEST(slow_handler_gives_deadline_exceeded_and_is_counted_late) {
  char url[64];
  rpc_server *s = start_server(NULL, url, sizeof(url));
  rpc_client *c = connect_client(url, NULL);
  rpc_call_options o = RPC_CALL_OPTIONS_INIT;
  o.deadline_ms = 100;
  int64_t t0 = time_mono_ms();
  rpc_result *r = call(c, M_SLEEP, "400", &o);
  int64_t took = time_mono_ms() - t0;
  ck_assert_int_eq(r->code, RPC_DEADLINE_EXCEEDED);
  ck_assert_int_ge(took, 90);
  ck_assert_int_lt(took, 390); /* did not wait for the handler */
  ck_assert_uint_eq(r->attempts, 1);
  rpc_result_free(r);
  /* The handler finishes late; the server still replies and counts it. */
  rpc_server_stats st;
  for (int i = 0; i < 200; i++) {
    rpc_server_get_stats(s, &st);
    if (st.late == 1) break;
    time_sleep_ms(10);
  }
  ck_assert_uint_eq(st.late, 1);
  ck_assert_uint_eq(st.handled, 1);
  close_late_replies_first(&s, 1, &c, 1);
}
END_TEST

START_TEST(handler_sees_time_left) {
  char url[64];
  rpc_server *s = start_server(NULL, url, sizeof(url));
  rpc_client *c = connect_client(url, NULL);
  rpc_call_options o = RPC_CALL_OPTIONS_INIT;
  o.deadline_ms = 2000;
  rpc_result *r = call(c, M_LEFT, NULL, &o);
  ck_assert_int_eq(r->code, RPC_OK);
  ck_assert_int_gt(atomic_load(&seen_left), 0);
  ck_assert_int_le(atomic_load(&seen_left), 2000);
  rpc_result_free(r);
  rpc_client_free(c);
  rpc_server_close(s);
}
END_TEST

typedef struct bg_call {
  rpc_client *c;
  const char *method;
  const char *payload;
  uint32_t deadline_ms;
  int code;
} bg_call;

static void *bg_call_main(void *arg) {
  bg_call *b = arg;
  rpc_call_options o = RPC_CALL_OPTIONS_INIT;
  o.deadline_ms = b->deadline_ms;
  rpc_result *r = NULL;
  if (rpc_client_call(b->c, b->method, b->payload, strlen(b->payload), &o,
                      &r) != ERR_OK) {
    b->code = -1;
    return NULL;
  }
  b->code = r->code;
  rpc_result_free(r);
  return NULL;
}

START_TEST(expired_request_does_not_run_handler) {
  /* One worker busy for 500 ms; a request with a 100 ms deadline waits
   * in the queue past its deadline and must be answered without running
   * its handler. */
  rpc_server_options so;
  rpc_server_options_init(&so);
  so.workers = 1;
  so.queue_depth = 4;
  char url[64];
  rpc_server *s = start_server(&so, url, sizeof(url));
  rpc_client *c = connect_client(url, NULL);
  atomic_store(&count_calls, 0);
  atomic_store(&sleep_started, 0);

  bg_call slow = {c, M_SLEEP, "500", 5000, -2};
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, bg_call_main, &slow), 0);
  for (int i = 0; i < 500 && atomic_load(&sleep_started) == 0; i++)
    time_sleep_ms(5);
  ck_assert_int_eq(atomic_load(&sleep_started), 1);

  rpc_call_options o = RPC_CALL_OPTIONS_INIT;
  o.deadline_ms = 100;
  rpc_result *r = call(c, M_COUNT, "", &o);
  ck_assert_int_eq(r->code, RPC_DEADLINE_EXCEEDED);
  rpc_result_free(r);
  pthread_join(t, NULL);
  ck_assert_int_eq(slow.code, RPC_OK);

  rpc_server_stats st;
  for (int i = 0; i < 200; i++) {
    rpc_server_get_stats(s, &st);
    if (st.expired == 1) break;
    time_sleep_ms(10);
  }
  ck_assert_uint_eq(st.expired, 1);
  ck_assert_int_eq(atomic_load(&count_calls), 0);
  /* A fresh call to the same method does run. */
  r = call(c, M_COUNT, "", NULL);
  ck_assert_int_eq(r->code, RPC_OK);
  ck_assert_int_eq(atomic_load(&count_calls), 1);
  rpc_result_free(r);
  rpc_client_free(c);
  rpc_server_close(s);
}
END_TEST

START_TEST(quick_call_does_not_wait_behind_a_blocked_worker) {
  /* Two workers, one blocked in a 3 s handler: a quick call must be
   * picked up by the other worker while the slow one still runs. */
  rpc_server_options so;
  rpc_server_options_init(&so);
  so.workers = 2;
  char url[64];
  rpc_server *s = start_server(&so, url, sizeof(url));
  rpc_client *c = connect_client(url, NULL);
  atomic_store(&sleep_started, 0);
  atomic_store(&running_now, 0);
  bg_call slow = {c, M_SLEEP, "3000", 10000, -2};
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, bg_call_main, &slow), 0);
  for (int i = 0; i < 500 && atomic_load(&sleep_started) == 0; i++)
    time_sleep_ms(5);
  ck_assert_int_eq(atomic_load(&sleep_started), 1);
  for (int i = 0; i < 5; i++) {
    rpc_result *r = call(c, M_COUNT, "", NULL);
    ck_assert_int_eq(r->code, RPC_OK);
    rpc_result_free(r);
    ck_assert_int_eq(atomic_load(&running_now), 1); /* slow one still runs */
  }
  pthread_join(t, NULL);
  ck_assert_int_eq(slow.code, RPC_OK);
  rpc_client_free(c);
  rpc_server_close(s);
}
END_TEST

START_TEST(reply_details_round_trip) {
  char url[64];
  rpc_server *s = start_server(NULL, url, sizeof(url));
  rpc_client *c = connect_client(url, NULL);
  rpc_result *r = call(c, M_VIOL, "", NULL);
  ck_assert_int_eq(r->code, RPC_INVALID_ARGUMENT);
  ck_assert_str_eq(r->message, "2 fields are invalid");
  ck_assert_uint_eq(r->nviolations, 2);
  ck_assert_str_eq(r->violations[0].field, "items[3].quantity");
  ck_assert_str_eq(r->violations[0].description, "must be at least 1");
  ck_assert_str_eq(r->violations[1].field, "email");
  ck_assert_str_eq(r->violations[1].description, "not an e-mail address");
  ck_assert_uint_eq(r->retry_after_ms, 1500);
  rpc_result_free(r);
  rpc_client_free(c);
  rpc_server_close(s);
}
END_TEST

static void h_many_viol(void *arg, const rpc_call *call, rpc_reply *reply) {
  (void)arg;
  (void)call;
  int last = ERR_OK;
  for (int i = 0; i <= RPC_MAX_VIOLATIONS; i++) {
    last = rpc_reply_add_violation(reply, "f", "d");
  }
  rpc_reply_status(reply, 99, last == ERR_TOOBIG ? "capped" : "not capped");
}

START_TEST(violations_are_capped_and_bad_codes_become_unknown) {
  rpc_server *s = NULL;
  ck_assert_int_eq(rpc_server_new(NULL, &s), ERR_OK);
  ck_assert_int_eq(rpc_server_register(s, "t/Many", h_many_viol, NULL), ERR_OK);
  ck_assert_int_eq(rpc_server_start(s, "tcp://127.0.0.1:0"), ERR_OK);
  char url[64];
  snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", rpc_server_port(s));
  rpc_client *c = connect_client(url, NULL);
  rpc_result *r = call(c, "t/Many", "", NULL);
  ck_assert_int_eq(r->code, RPC_UNKNOWN);
  ck_assert_str_eq(r->message, "capped");
  ck_assert_uint_eq(r->nviolations, RPC_MAX_VIOLATIONS);
  rpc_result_free(r);
  rpc_client_free(c);
  rpc_server_close(s);
}
END_TEST

START_TEST(too_large_payloads_are_rejected) {
  rpc_server_options so;
  rpc_server_options_init(&so);
  so.max_recv_bytes = 1024;
  char url[64];
  rpc_server *s = start_server(&so, url, sizeof(url));

  /* Client-side cap: refused locally, nothing sent. */
  rpc_client_options co;
  rpc_client_options_init(&co);
  co.max_send_bytes = 2048;
  rpc_client *c = connect_client(url, &co);
  static char big[4096];
  memset(big, 'x', sizeof(big));
  rpc_result *r = NULL;
  ck_assert_int_eq(rpc_client_call(c, M_ECHO, big, sizeof(big), NULL, &r),
                   ERR_TOOBIG);
  ck_assert_ptr_null(r);

  /* Over the server's cap: nng drops the connection; a non-idempotent
   * call is not retried and reports UNAVAILABLE. */
  r = NULL;
  ck_assert_int_eq(rpc_client_call(c, M_ECHO, big, 2000, NULL, &r), ERR_OK);
  ck_assert_int_eq(r->code, RPC_UNAVAILABLE);
  ck_assert_uint_eq(r->attempts, 1);
  rpc_result_free(r);

  /* A reply over the server's cap is refused in the handler. */
  ck_assert_int_eq(rpc_client_wait_connected(c, 1, 5000), ERR_OK);
  r = call(c, M_BIG, "", NULL);
  ck_assert_int_eq(r->code, RPC_RESOURCE_EXHAUSTED);
  rpc_result_free(r);

  /* And the server still serves normal calls. */
  r = call(c, M_ECHO, "small", NULL);
  ck_assert_int_eq(r->code, RPC_OK);
  rpc_result_free(r);
  rpc_server_stats st;
  rpc_server_get_stats(s, &st);
  ck_assert_uint_eq(st.handled, 2); /* Big and the small echo only */
  rpc_client_free(c);
  rpc_server_close(s);
}
END_TEST

START_TEST(client_caps_reply_size) {
  char url[64];
  rpc_server *s = start_server(NULL, url, sizeof(url));
  rpc_client_options co;
  rpc_client_options_init(&co);
  co.max_recv_bytes = 512;
  rpc_client *c = connect_client(url, &co);
  static char big[1000];
  memset(big, 'y', sizeof(big));
  rpc_result *r = NULL;
  /* The echo comes back over the client's cap: the connection is dropped
   * by the client's nng, and the call fails instead of accepting it. */
  ck_assert_int_eq(rpc_client_call(c, M_ECHO, big, sizeof(big), NULL, &r),
                   ERR_OK);
  ck_assert_int_eq(r->code, RPC_UNAVAILABLE);
  rpc_result_free(r);
  rpc_client_free(c);
  rpc_server_close(s);
}
END_TEST

/* Raw req0 peer sending bytes that are not an envelope. */
static Rpc__V1__Response *raw_call(const char *url, const void *buf,
                                   size_t len) {
  nng_socket sock;
  ck_assert_int_eq(nng_req0_open(&sock), 0);
  ck_assert_int_eq(nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 5000), 0);
  ck_assert_int_eq(nng_dial(sock, url, NULL, 0), 0);
  ck_assert_int_eq(nng_send(sock, (void *)buf, len, 0), 0);
  nng_msg *m = NULL;
  ck_assert_int_eq(nng_recvmsg(sock, &m, 0), 0);
  Rpc__V1__Response *resp =
      rpc__v1__response__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
  nng_msg_free(m);
  nng_close(sock);
  return resp;
}

START_TEST(garbage_requests_get_invalid_argument_not_a_crash) {
  char url[64];
  rpc_server *s = start_server(NULL, url, sizeof(url));
  static const unsigned char junk1[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x01};
  static const unsigned char junk2[] = {0x0a, 0x7f, 'a'}; /* length past end */
  static const unsigned char junk3[] = {0x22, 0x05, 0x01};
  const void *bufs[] = {junk1, junk2, junk3};
  size_t lens[] = {sizeof(junk1), sizeof(junk2), sizeof(junk3)};
  for (int i = 0; i < 3; i++) {
    Rpc__V1__Response *resp = raw_call(url, bufs[i], lens[i]);
    ck_assert_ptr_nonnull(resp);
    ck_assert_int_eq(resp->code, RPC__V1__CODE__INVALID_ARGUMENT);
    rpc__v1__response__free_unpacked(resp, NULL);
  }
  /* An empty message decodes as an envelope with no method. */
  Rpc__V1__Response *resp = raw_call(url, "", 0);
  ck_assert_ptr_nonnull(resp);
  ck_assert_int_eq(resp->code, RPC__V1__CODE__UNIMPLEMENTED);
  rpc__v1__response__free_unpacked(resp, NULL);

  /* Raw TCP garbage (not even the SP handshake). */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)rpc_server_port(s))};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  static const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  ck_assert_int_gt(write(fd, http, sizeof(http) - 1), 0);
  char rb[64];
  (void)read(fd, rb, sizeof(rb)); /* the server hangs up */
  close(fd);

  rpc_server_stats st;
  rpc_server_get_stats(s, &st);
  ck_assert_uint_eq(st.malformed, 3);

  /* Still serving. */
  rpc_client *c = connect_client(url, NULL);
  rpc_result *r = call(c, M_ECHO, "ok", NULL);
  ck_assert_int_eq(r->code, RPC_OK);
  rpc_result_free(r);
  rpc_client_free(c);
  rpc_server_close(s);
}
END_TEST

static void h_where(void *arg, const rpc_call *call, rpc_reply *reply) {
  (void)arg;
  (void)call;
  char name[32] = "";
  pthread_getname_np(pthread_self(), name, sizeof(name));
  if (rpc_reply_set_payload(reply, name, strlen(name)) != ERR_OK) {
    rpc_reply_status(reply, RPC_INTERNAL, NULL);
  }
}

static char *call_where(rpc_client *c, const char *method) {
  rpc_result *r = call(c, method, "", NULL);
  ck_assert_int_eq(r->code, RPC_OK);
  char *name = strndup((const char *)r->payload, r->payload_len);
  rpc_result_free(r);
  return name;
}

START_TEST(handlers_run_on_workers_unless_registered_nonblocking) {
  rpc_server *s = NULL;
  ck_assert_int_eq(rpc_server_new(NULL, &s), ERR_OK);
  ck_assert_int_eq(rpc_server_register(s, "t/Where", h_where, NULL), ERR_OK);
  ck_assert_int_eq(
      rpc_server_register_nonblocking(s, "t/WhereNB", h_where, NULL), ERR_OK);
  ck_assert_int_eq(rpc_server_register_nonblocking(s, "t/Where", h_where, NULL),
                   ERR_EXISTS);
  ck_assert_int_eq(rpc_server_start(s, "tcp://127.0.0.1:0"), ERR_OK);
  char url[64];
  snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", rpc_server_port(s));
  rpc_client *c = connect_client(url, NULL);

  char *w = call_where(c, "t/Where");
  ck_assert_str_eq(w, "rpc-worker");
  free(w);
  w = call_where(c, "t/WhereNB");
  ck_assert_str_ne(w, "rpc-worker"); /* nng's own thread */
  ck_assert_str_ne(w, "");
  free(w);

  /* An envelope whose method is not the first field cannot be peeked:
   * it takes the worker path and is still answered correctly. */
  unsigned char buf[64];
  size_t n = 0;
  buf[n++] = 0x12; /* field 2 (payload), 1 byte */
  buf[n++] = 1;
  buf[n++] = 'x';
  buf[n++] = 0x0a; /* field 1 (method) */
  buf[n++] = 9;
  memcpy(buf + n, "t/WhereNB", 9);
  n += 9;
  Rpc__V1__Response *resp = raw_call(url, buf, n);
  ck_assert_ptr_nonnull(resp);
  ck_assert_int_eq(resp->code, RPC__V1__CODE__OK);
  ck_assert_uint_eq(resp->payload.len, strlen("rpc-worker"));
  ck_assert_int_eq(memcmp(resp->payload.data, "rpc-worker", resp->payload.len),
                   0);
  rpc__v1__response__free_unpacked(resp, NULL);

  /* A truncated method field is not peeked either (and is malformed). */
  static const unsigned char bad[] = {0x0a, 0x20, 't', '/'};
  resp = raw_call(url, bad, sizeof(bad));
  ck_assert_ptr_nonnull(resp);
  ck_assert_int_eq(resp->code, RPC__V1__CODE__INVALID_ARGUMENT);
  rpc__v1__response__free_unpacked(resp, NULL);

  rpc_server_stats st;
  rpc_server_get_stats(s, &st);
  ck_assert_uint_eq(st.handled, 3);
  ck_assert_uint_eq(st.malformed, 1);
  char *text = metrics_render();
  ck_assert_ptr_nonnull(strstr(
      text, "rpc_server_calls_total{method=\"t/WhereNB\",code=\"OK\"} 2"));
  free(text);
  rpc_client_free(c);
  rpc_server_close(s);
}
END_TEST

typedef struct conc_arg {
  rpc_client *c;
  _Atomic int ok;
} conc_arg;

static void *conc_main(void *arg) {
  conc_arg *a = arg;
  rpc_call_options o = RPC_CALL_OPTIONS_INIT;
  o.deadline_ms = 20000;
  rpc_result *r = NULL;
  if (rpc_client_call(a->c, M_SLEEP, "20", 2, &o, &r) == ERR_OK) {
    if (r->code == RPC_OK) atomic_fetch_add(&a->ok, 1);
    rpc_result_free(r);
  }
  return NULL;
}

START_TEST(concurrent_calls_all_complete_with_n_workers_at_once) {
  rpc_server_options so;
  rpc_server_options_init(&so);
  so.workers = 4;
  char url[64];
  rpc_server *s = start_server(&so, url, sizeof(url));
  rpc_client *c = connect_client(url, NULL);
  atomic_store(&running_max, 0);
  atomic_store(&running_now, 0);
  enum { N = 64 };
  pthread_t t[N];
  conc_arg a = {c, 0};
  for (int i = 0; i < N; i++) {
    ck_assert_int_eq(pthread_create(&t[i], NULL, conc_main, &a), 0);
  }
  for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
  ck_assert_int_eq(atomic_load(&a.ok), N);
  /* Exactly `workers` handlers ran at once: never more, and the pool was
   * used (64 queued 20 ms sleeps keep all four busy). */
  ck_assert_int_eq(atomic_load(&running_max), 4);
  rpc_server_stats st;
  rpc_server_get_stats(s, &st);
  ck_assert_uint_eq(st.handled, N);
  rpc_client_free(c);
  rpc_server_close(s);
}
END_TEST

START_TEST(retries_without_server_stay_within_deadline) {
  /* Nothing listens: every attempt fails before sending, which is safe
   * to retry even for a non-idempotent call, but never past the deadline
   * or max_attempts. */
  int port;
  {
    rpc_server *tmp = NULL;
    ck_assert_int_eq(rpc_server_new(NULL, &tmp), ERR_OK);
    ck_assert_int_eq(rpc_server_start(tmp, "tcp://127.0.0.1:0"), ERR_OK);
    port = rpc_server_port(tmp);
    rpc_server_close(tmp);
  }
  char url[64];
  snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
  rpc_client_options co;
  rpc_client_options_init(&co);
  co.connect_wait_ms = 30;
  co.max_attempts = 3;
  co.backoff_base_ms = 10;
  rpc_client *c = NULL;
  ck_assert_int_eq(rpc_client_new(url, &co, &c), ERR_OK);

  int64_t t0 = time_mono_ms();
  rpc_result *r = call(c, M_ECHO, "x", NULL);
  int64_t took = time_mono_ms() - t0;
  ck_assert_int_eq(r->code, RPC_UNAVAILABLE);
  ck_assert_uint_eq(r->attempts, 3);
  ck_assert_int_lt(took, 3000);
  rpc_result_free(r);

  /* Deadline shorter than the attempts would take: bounded by it. */
  co.max_attempts = 50;
  co.connect_wait_ms = 40;
  co.backoff_base_ms = 50;
  co.backoff_max_ms = 100;
  rpc_client *c2 = NULL;
  ck_assert_int_eq(rpc_client_new(url, &co, &c2), ERR_OK);
  rpc_call_options o = RPC_CALL_OPTIONS_INIT;
  o.deadline_ms = 400;
  t0 = time_mono_ms();
  r = call(c2, M_ECHO, "x", &o);
  took = time_mono_ms() - t0;
  ck_assert(r->code == RPC_UNAVAILABLE || r->code == RPC_DEADLINE_EXCEEDED);
  ck_assert_uint_gt(r->attempts, 1);
  ck_assert_uint_lt(r->attempts, 50);
  ck_assert_int_ge(took, 100);
  ck_assert_int_lt(took, 400 + 300); /* never sleeps past the deadline */
  rpc_result_free(r);

  char *text = metrics_render();
  ck_assert_ptr_nonnull(text);
  ck_assert_ptr_nonnull(
      strstr(text, "rpc_client_retries_total{method=\"" M_ECHO "\"}"));
  ck_assert_ptr_nonnull(strstr(text, "rpc_client_calls_total{method=\"" M_ECHO
                                     "\",code=\"UNAVAILABLE\"}"));
  free(text);
  rpc_client_free(c);
  rpc_client_free(c2);
}
END_TEST

/* A fake replica: a raw rep0 socket that drops the connection of the
 * first request it receives and answers later ones with OK "again". */
typedef struct fake_srv {
  nng_socket sock;
  int port;
  _Atomic int received;
  pthread_t thr;
} fake_srv;

static void *fake_main(void *arg) {
  fake_srv *f = arg;
  for (;;) {
    nng_msg *m = NULL;
    if (nng_recvmsg(f->sock, &m, 0) != 0) return NULL;
    int n = atomic_fetch_add(&f->received, 1) + 1;
    if (n == 1) {
      nng_pipe p = nng_msg_get_pipe(m);
      nng_msg_free(m);
      nng_pipe_close(p);
      continue;
    }
    Rpc__V1__Request *rq =
        rpc__v1__request__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
    Rpc__V1__Response resp = RPC__V1__RESPONSE__INIT;
    resp.message = "again";
    resp.request_id = rq != NULL ? rq->request_id : "";
    size_t len = rpc__v1__response__get_packed_size(&resp);
    nng_msg_clear(m);
    if (nng_msg_realloc(m, len) == 0) {
      rpc__v1__response__pack(&resp, nng_msg_body(m));
      if (nng_sendmsg(f->sock, m, 0) != 0) nng_msg_free(m);
    } else {
      nng_msg_free(m);
    }
    if (rq != NULL) rpc__v1__request__free_unpacked(rq, NULL);
  }
}

static void fake_start(fake_srv *f) {
  memset(f, 0, sizeof(*f));
  ck_assert_int_eq(nng_rep0_open(&f->sock), 0);
  nng_listener l;
  ck_assert_int_eq(nng_listen(f->sock, "tcp://127.0.0.1:0", &l, 0), 0);
  ck_assert_int_eq(nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &f->port),
                   0);
  ck_assert_int_eq(pthread_create(&f->thr, NULL, fake_main, f), 0);
}

static void fake_stop(fake_srv *f) {
  nng_close(f->sock);
  pthread_join(f->thr, NULL);
}

START_TEST(lost_connection_is_unavailable_without_retry_when_not_idempotent) {
  fake_srv f;
  fake_start(&f);
  char url[64];
  snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", f.port);
  rpc_client *c = connect_client(url, NULL);
  rpc_result *r = call(c, M_ECHO, "x", NULL);
  ck_assert_int_eq(r->code, RPC_UNAVAILABLE);
  ck_assert_uint_eq(r->attempts, 1);
  rpc_result_free(r);
  ck_assert_int_eq(atomic_load(&f.received), 1);
  rpc_client_free(c);
  fake_stop(&f);
}
END_TEST

START_TEST(lost_connection_is_retried_when_idempotent) {
  fake_srv f;
  fake_start(&f);
  char url[64];
  snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", f.port);
  rpc_client_options co;
  rpc_client_options_init(&co);
  co.reconnect_min_ms = 10;
  co.reconnect_max_ms = 50;
  rpc_client *c = connect_client(url, &co);
  rpc_call_options o = RPC_CALL_OPTIONS_INIT;
  o.idempotent = true;
  o.deadline_ms = 5000;
  rpc_result *r = call(c, M_ECHO, "x", &o);
  ck_assert_int_eq(r->code, RPC_OK);
  ck_assert_str_eq(r->message, "again");
  ck_assert_uint_eq(r->attempts, 2);
  rpc_result_free(r);
  ck_assert_int_eq(atomic_load(&f.received), 2);
  rpc_client_free(c);
  fake_stop(&f);
}
END_TEST

/* The client-wide attempt timeout is for reads: a keyed write slower
 * than it is not sent a second time while the first attempt still runs
 * (it would run twice, or take its own key's claim over). */
START_TEST(client_attempt_timeout_spares_keyed_writes) {
  char url[64];
  rpc_server *s = start_server(NULL, url, sizeof(url));
  rpc_client_options co;
  rpc_client_options_init(&co);
  co.attempt_timeout_ms = 100;
  rpc_client *c = connect_client(url, &co);
  rpc_call_options o = RPC_CALL_OPTIONS_INIT;
  o.idempotent = true;
  o.deadline_ms = 5000;
  o.idempotency_key = "slow-create-1";
  rpc_result *r = call(c, M_SLEEP, "400", &o);
  ck_assert_int_eq(r->code, RPC_OK);
  ck_assert_uint_eq(r->attempts, 1);
  rpc_result_free(r);
  rpc_client_free(c);
  rpc_server_close(s);
}
END_TEST

START_TEST(attempt_timeout_retries_idempotent_call) {
  /* Replica A hangs (1 worker busy sleeping), replica B is free: an
   * idempotent call with a short attempt timeout that lands on A moves
   * on to B. Run several calls so at least one lands on A. */
  rpc_server_options so;
  rpc_server_options_init(&so);
  so.workers = 1;
  char url_a[64], url_b[64];
  rpc_server *a = start_server(&so, url_a, sizeof(url_a));
  rpc_server *b = start_server(NULL, url_b, sizeof(url_b));
  char both[160];
  snprintf(both, sizeof(both), "%s,%s", url_a, url_b);
  rpc_client *c = NULL;
  ck_assert_int_eq(rpc_client_new(both, NULL, &c), ERR_OK);
  ck_assert_int_eq(rpc_client_wait_connected(c, 2, 5000), ERR_OK);

  rpc_client *direct = connect_client(url_a, NULL);
  atomic_store(&sleep_started, 0);
  bg_call hog = {direct, M_SLEEP, "1500", 5000, -2};
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, bg_call_main, &hog), 0);
  for (int i = 0; i < 500 && atomic_load(&sleep_started) == 0; i++)
    time_sleep_ms(5);

  int retried = 0;
  for (int i = 0; i < 4; i++) {
    rpc_call_options o = RPC_CALL_OPTIONS_INIT;
    o.idempotent = true;
    o.deadline_ms = 5000;
    o.attempt_timeout_ms = 100;
    rpc_result *r = call(c, M_ECHO, "x", &o);
    ck_assert_int_eq(r->code, RPC_OK);
    if (r->attempts > 1) retried++;
    rpc_result_free(r);
  }
  ck_assert_int_ge(retried, 1);
  pthread_join(t, NULL);
  /* A still owes c the answers to the attempts c gave up on. */
  rpc_server *servers[] = {a, b};
  rpc_client *clients[] = {direct, c};
  close_late_replies_first(servers, 2, clients, 2);
}
END_TEST

START_TEST(both_replicas_receive_load) {
  char url_a[64], url_b[64];
  rpc_server *a = start_server(NULL, url_a, sizeof(url_a));
  rpc_server *b = start_server(NULL, url_b, sizeof(url_b));
  char both[160];
  snprintf(both, sizeof(both), "%s, %s", url_a, url_b);
  rpc_client *c = NULL;
  ck_assert_int_eq(rpc_client_new(both, NULL, &c), ERR_OK);
  ck_assert_int_eq(rpc_client_wait_connected(c, 2, 5000), ERR_OK);
  for (int i = 0; i < 20; i++) {
    rpc_result *r = call(c, M_ECHO, "x", NULL);
    ck_assert_int_eq(r->code, RPC_OK);
    rpc_result_free(r);
  }
  rpc_server_stats sa, sb;
  rpc_server_get_stats(a, &sa);
  rpc_server_get_stats(b, &sb);
  ck_assert_uint_eq(sa.handled + sb.handled, 20);
  ck_assert_uint_gt(sa.handled, 0);
  ck_assert_uint_gt(sb.handled, 0);
  rpc_client_free(c);
  rpc_server_close(a);
  rpc_server_close(b);
}
END_TEST

START_TEST(dns_name_resolves_and_unknown_name_is_unavailable) {
  char url[64];
  rpc_server *s = start_server(NULL, url, sizeof(url));
  char dns[64];
  snprintf(dns, sizeof(dns), "dns+tcp://localhost:%d", rpc_server_port(s));
  rpc_client_options co;
  rpc_client_options_init(&co);
  co.resolve_interval_ms = 100;
  rpc_client *c = connect_client(dns, &co);
  rpc_result *r = call(c, M_ECHO, "x", NULL);
  ck_assert_int_eq(r->code, RPC_OK);
  rpc_result_free(r);
  time_sleep_ms(250); /* a couple of re-resolutions keep the same dialers */
  r = call(c, M_ECHO, "x", NULL);
  ck_assert_int_eq(r->code, RPC_OK);
  rpc_result_free(r);
  rpc_client_free(c);

  /* .invalid never resolves (RFC 6761): not an error at creation. */
  co.connect_wait_ms = 50;
  co.max_attempts = 2;
  ck_assert_int_eq(
      rpc_client_new("dns+tcp://no-such-host.invalid:7001", &co, &c), ERR_OK);
  ck_assert_int_eq(rpc_client_connected(c), 0);
  r = call(c, M_ECHO, "x", NULL);
  ck_assert_int_eq(r->code, RPC_UNAVAILABLE);
  rpc_result_free(r);
  rpc_client_free(c);
  rpc_server_close(s);
}
END_TEST

START_TEST(close_lets_in_flight_call_finish) {
  char url[64];
  rpc_server *s = start_server(NULL, url, sizeof(url));
  rpc_client *c = connect_client(url, NULL);
  atomic_store(&sleep_started, 0);
  bg_call slow = {c, M_SLEEP, "300", 5000, -2};
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, bg_call_main, &slow), 0);
  for (int i = 0; i < 500 && atomic_load(&sleep_started) == 0; i++)
    time_sleep_ms(5);
  ck_assert_int_eq(atomic_load(&sleep_started), 1);
  rpc_server_close(s); /* waits for the handler and sends its reply */
  pthread_join(t, NULL);
  ck_assert_int_eq(slow.code, RPC_OK);

  /* Gone now: a new call fails fast with UNAVAILABLE. */
  rpc_client_options co;
  rpc_client_options_init(&co);
  co.connect_wait_ms = 50;
  co.max_attempts = 2;
  rpc_client *c2 = NULL;
  ck_assert_int_eq(rpc_client_new(url, &co, &c2), ERR_OK);
  rpc_result *r = call(c2, M_ECHO, "x", NULL);
  ck_assert_int_eq(r->code, RPC_UNAVAILABLE);
  rpc_result_free(r);
  rpc_client_free(c2);
  rpc_client_free(c);
}
END_TEST

START_TEST(server_api_misuse_is_rejected) {
  rpc_server *s = NULL;
  rpc_server_options so;
  rpc_server_options_init(&so);
  so.workers = -1;
  ck_assert_int_eq(rpc_server_new(&so, &s), ERR_INVAL);
  ck_assert_int_eq(rpc_server_new(NULL, &s), ERR_OK);
  ck_assert_int_eq(rpc_server_register(s, "", h_echo, NULL), ERR_INVAL);
  ck_assert_int_eq(rpc_server_register(s, "a\nb", h_echo, NULL), ERR_INVAL);
  ck_assert_int_eq(rpc_server_register(s, "x/Y", NULL, NULL), ERR_INVAL);
  char longname[RPC_MAX_METHOD_LEN + 2];
  memset(longname, 'm', sizeof(longname) - 1);
  longname[sizeof(longname) - 1] = '\0';
  ck_assert_int_eq(rpc_server_register(s, longname, h_echo, NULL), ERR_INVAL);
  /* Many methods: the table grows. */
  for (int i = 0; i < 100; i++) {
    char m[32];
    snprintf(m, sizeof(m), "svc.v1.S/M%d", i);
    ck_assert_int_eq(rpc_server_register(s, m, h_echo, NULL), ERR_OK);
  }
  ck_assert_int_eq(rpc_server_register(s, "svc.v1.S/M7", h_echo, NULL),
                   ERR_EXISTS);
  ck_assert_int_eq(rpc_server_start(s, "bogus://x"), ERR_INVAL);
  ck_assert_int_eq(rpc_server_start(s, "tcp://127.0.0.1:0"),
                   ERR_INVAL); /* once */
  rpc_server_close(s);

  /* Port in use. */
  rpc_server *a = NULL, *b = NULL;
  ck_assert_int_eq(rpc_server_new(NULL, &a), ERR_OK);
  ck_assert_int_eq(rpc_server_start(a, "tcp://127.0.0.1:0"), ERR_OK);
  char url[64];
  snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", rpc_server_port(a));
  ck_assert_int_eq(rpc_server_new(NULL, &b), ERR_OK);
  ck_assert_int_eq(rpc_server_register(b, "x/Y", h_echo, NULL), ERR_OK);
  ck_assert_int_eq(rpc_server_start(b, url), ERR_UNAVAILABLE);
  ck_assert_int_eq(rpc_server_register(b, "x/Z", h_echo, NULL), ERR_INVAL);
  rpc_server_close(b);
  rpc_server_close(a);
  rpc_server_close(NULL);
  rpc_client_free(NULL);
  rpc_result_free(NULL);
}
END_TEST

START_TEST(client_api_misuse_is_rejected) {
  char url[64];
  rpc_server *s = start_server(NULL, url, sizeof(url));
  rpc_client *c = connect_client(url, NULL);
  rpc_result *r = (rpc_result *)1;
  ck_assert_int_eq(rpc_client_call(c, "", "x", 1, NULL, &r), ERR_INVAL);
  ck_assert_ptr_null(r);
  ck_assert_int_eq(rpc_client_call(c, NULL, "x", 1, NULL, &r), ERR_INVAL);
  ck_assert_int_eq(rpc_client_call(c, M_ECHO, NULL, 3, NULL, &r), ERR_INVAL);
  ck_assert_int_eq(rpc_client_call(c, "bad\x01method", NULL, 0, NULL, &r),
                   ERR_INVAL);
  rpc_client_free(c);
  rpc_server_close(s);
}
END_TEST

START_TEST(metrics_count_server_calls_by_method_and_code) {
  char url[64];
  rpc_server *s = start_server(NULL, url, sizeof(url));
  rpc_client *c = connect_client(url, NULL);
  rpc_result *r = call(c, M_VIOL, "", NULL);
  rpc_result_free(r);
  r = call(c, "test.v1.Test/Missing", "", NULL);
  rpc_result_free(r);
  char *text = metrics_render();
  ck_assert_ptr_nonnull(text);
  ck_assert_ptr_nonnull(strstr(text, "rpc_server_calls_total{method=\"" M_VIOL
                                     "\",code=\"INVALID_ARGUMENT\"} 1"));
  ck_assert_ptr_nonnull(strstr(
      text,
      "rpc_server_calls_total{method=\"_unknown\",code=\"UNIMPLEMENTED\"} 1"));
  ck_assert_ptr_nonnull(strstr(
      text, "rpc_server_duration_seconds_count{method=\"" M_VIOL "\"} 1"));
  ck_assert_ptr_nonnull(strstr(text, "rpc_client_calls_total{method=\"" M_VIOL
                                     "\",code=\"INVALID_ARGUMENT\"} 1"));
  ck_assert_ptr_nonnull(strstr(text, "rpc_server_in_flight 0"));
  free(text);
  rpc_client_free(c);
  rpc_server_close(s);
}
END_TEST

static Suite *rpc_suite(void) {
  Suite *s = suite_create("rpc");
  TCase *tc = tcase_create("status");
  tcase_add_test(tc, status_names_match_grpc);
  tcase_add_test(tc, status_bad_codes_and_names);
  tcase_add_test(tc, status_from_err);
  suite_add_tcase(s, tc);

  tc = tcase_create("address");
  tcase_add_test(tc, address_list_parses);
  tcase_add_test(tc, address_bad_rejected);
  tcase_add_test(tc, arena_aligns_grows_and_resets);
  suite_add_tcase(s, tc);

  tc = tcase_create("calls");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, call_echoes_payload_and_metadata);
  tcase_add_test(tc, call_message_helper_packs_protobuf);
  tcase_add_test(tc, unknown_method_is_unimplemented);
  tcase_add_test(tc, slow_handler_gives_deadline_exceeded_and_is_counted_late);
  tcase_add_test(tc, handler_sees_time_left);
  tcase_add_test(tc, expired_request_does_not_run_handler);
  tcase_add_test(tc, quick_call_does_not_wait_behind_a_blocked_worker);
  tcase_add_test(tc, reply_details_round_trip);
  tcase_add_test(tc, guard_runs_before_handlers_and_credential_is_sent);
  tcase_add_test(tc, server_counts_its_client_connections);
  tcase_add_test(tc, violations_are_capped_and_bad_codes_become_unknown);
  tcase_add_test(tc, too_large_payloads_are_rejected);
  tcase_add_test(tc, client_caps_reply_size);
  tcase_add_test(tc, garbage_requests_get_invalid_argument_not_a_crash);
  tcase_add_test(tc, handlers_run_on_workers_unless_registered_nonblocking);
  tcase_add_test(tc, concurrent_calls_all_complete_with_n_workers_at_once);
  tcase_add_test(tc, close_lets_in_flight_call_finish);
  tcase_add_test(tc, server_api_misuse_is_rejected);
  tcase_add_test(tc, client_api_misuse_is_rejected);
  tcase_add_test(tc, metrics_count_server_calls_by_method_and_code);
  suite_add_tcase(s, tc);

  tc = tcase_create("retries");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, retries_without_server_stay_within_deadline);
  tcase_add_test(
      tc, lost_connection_is_unavailable_without_retry_when_not_idempotent);
  tcase_add_test(tc, lost_connection_is_retried_when_idempotent);
  tcase_add_test(tc, attempt_timeout_retries_idempotent_call);
  tcase_add_test(tc, client_attempt_timeout_spares_keyed_writes);
  tcase_add_test(tc, both_replicas_receive_load);
  tcase_add_test(tc, dns_name_resolves_and_unknown_name_is_unavailable);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(rpc_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
