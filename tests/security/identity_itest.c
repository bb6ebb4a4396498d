/*
 * identity_itest.c - service identity from the attacker's side: a pod on
 * the cluster network that speaks the RPC wire format itself (a raw nng
 * REQ socket and a hand-built rpc.v1.Request, no libs/rpc), and services
 * that call what they are not declared for. The real auth, tenants,
 * orders, notifications and sync processes run against a real PostgreSQL
 * and Redis.
 *
 * Every refusal is checked twice: by its status code, and by the
 * database (nothing created, nothing deleted). Each refused shape is paired
 * with the same call made with a valid identity, which must work - so the
 * test cannot pass by refusing everything or by a malformed raw request.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"
#include "libs/paseto/paseto.h"
#include "libs/svcid/svcid.h"
#include "proto/auth/v1/auth.pb-c.h"
#include "proto/rpc/v1/rpc.pb-c.h"
#include "proto/tenants/v1/tenants.pb-c.h"
#include "tests/harness/harness.h"
#include "tests/harness/identity.h"
#include "tests/harness/rpc.h"
#include "tests/harness/service.h"

static harness_pg g_pg;
static harness_redis g_redis;
static harness_service g_auth, g_tenants, g_orders, g_notif, g_sync;

static const harness_service_opts kSvc = {.pg = &g_pg, .redis = &g_redis};

/* ------------------------------------------------ the raw attacker --- */

/* One call over a fresh nng REQ socket: method, payload and the service
 * token exactly as given (NULL: none). Returns the reply's code; fails
 * the test when no reply arrives. */
static int raw_call(const char *url, const char *method,
                    const ProtobufCMessage *msg, const char *service_token) {
  nng_socket s;
  ck_assert_int_eq(nng_req0_open(&s), 0);
  ck_assert_int_eq(nng_setopt_ms(s, NNG_OPT_RECVTIMEO, 15000), 0);
  ck_assert_int_eq(nng_dial(s, url, NULL, 0), 0);
  size_t plen = protobuf_c_message_get_packed_size(msg);
  uint8_t *payload = malloc(plen + 1);
  protobuf_c_message_pack(msg, payload);
  Rpc__V1__Request req = RPC__V1__REQUEST__INIT;
  req.method = (char *)method;
  req.payload.data = payload;
  req.payload.len = plen;
  req.request_id = "attacker";
  req.deadline_ms = 10000;
  req.service_token = (char *)(service_token ? service_token : "");
  size_t len = rpc__v1__request__get_packed_size(&req);
  uint8_t *buf = malloc(len);
  rpc__v1__request__pack(&req, buf);
  ck_assert_int_eq(nng_send(s, buf, len, 0), 0);
  free(buf);
  free(payload);
  char *reply = NULL;
  size_t rlen = 0;
  ck_assert_int_eq(nng_recv(s, &reply, &rlen, NNG_FLAG_ALLOC), 0);
  Rpc__V1__Response *resp =
      rpc__v1__response__unpack(NULL, rlen, (uint8_t *)reply);
  ck_assert_ptr_nonnull(resp);
  int code = (int)resp->code;
  rpc__v1__response__free_unpacked(resp, NULL);
  nng_free(reply, rlen);
  nng_close(s);
  return code;
}

/* A token of service `as` for audience, minted now with the key of
 * key_of (the real key of that service, or of another). */
static void token_of(const char *key_of, const char *as, const char *audience,
                     int64_t at_ms, char out[SVCID_TOKEN_MAX + 1]) {
  svcid_signer *k = harness_identity_signer(key_of);
  paseto_secret_key sk;
  svcid_signer *s = NULL;
  if (strcmp(key_of, as) == 0) {
    s = k;
    k = NULL;
  } else {
    /* The key of key_of under the name as: read it back from its file. */
    FILE *f = fopen(harness_identity_key_file(key_of), "r");
    char hex[PASETO_SECRET_HEX_LEN + 2] = "";
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(hex, sizeof hex, f));
    fclose(f);
    ck_assert_int_eq(
        paseto_secret_key_from_hex(hex, PASETO_SECRET_HEX_LEN, &sk), ERR_OK);
    ck_assert_int_eq(svcid_signer_new(as, &sk, &s), ERR_OK);
    paseto_secret_key_wipe(&sk);
  }
  ck_assert_int_eq(svcid_signer_mint(s, audience, at_ms, SVCID_TTL_MS, out,
                                     SVCID_TOKEN_MAX + 1),
                   ERR_OK);
  svcid_signer_free(s);
  svcid_signer_free(k);
}

static long long users_named(const char *email) {
  return harness_pg_count(&g_pg,
                          "SELECT count(*) FROM auth.users "
                          "WHERE email = $1",
                          email);
}

static long long users_of(const char *tenant) {
  return harness_pg_count(&g_pg,
                          "SELECT count(*) FROM auth.users "
                          "WHERE tenant_id = $1::uuid",
                          tenant);
}

/* An owner for tenant (a fresh UUID) as an attacker would ask for it. */
static Auth__V1__CreateUserRequest owner_request(const char *tenant,
                                                 char *email, size_t cap) {
  char local[64];
  harness_unique(local, sizeof local, "owner");
  snprintf(email, cap, "%s@attack.test", local);
  Auth__V1__CreateUserRequest r = AUTH__V1__CREATE_USER_REQUEST__INIT;
  r.tenant_id = (char *)tenant;
  r.email = email;
  r.name = "Mallory";
  r.password = "correct horse battery";
  r.role = "owner";
  r.issue_tokens = true;
  return r;
}

#define CREATE_USER "auth.v1.Auth/CreateUser"
#define DELETE_USERS "auth.v1.Auth/DeleteTenantUsers"

/* ------------------------------------------------------------ tests --- */

START_TEST(no_identity_creates_no_owner_and_deletes_nothing) {
  char tenant[UUID_STR_LEN + 1], email[96];
  uuid_v7_str(tenant);
  Auth__V1__CreateUserRequest cu = owner_request(tenant, email, sizeof email);

  /* Without a token, with garbage, with a user-token-shaped string. */
  ck_assert_int_eq(raw_call(g_auth.rpc_url, CREATE_USER, &cu.base, NULL),
                   RPC_UNAUTHENTICATED);
  ck_assert_int_eq(
      raw_call(g_auth.rpc_url, CREATE_USER, &cu.base, "v4.public.AAAA"),
      RPC_UNAUTHENTICATED);
  ck_assert_int_eq(users_named(email), 0);

  /* The same bytes with the tenants service's identity: created. */
  char tok[SVCID_TOKEN_MAX + 1];
  token_of("tenants", "tenants", "auth", time_now_ms(), tok);
  ck_assert_int_eq(raw_call(g_auth.rpc_url, CREATE_USER, &cu.base, tok),
                   RPC_OK);
  ck_assert_int_eq(users_named(email), 1);

  /* Deleting the tenant's users: refused without identity, rows stay. */
  Auth__V1__DeleteTenantUsersRequest du =
      AUTH__V1__DELETE_TENANT_USERS_REQUEST__INIT;
  du.tenant_id = tenant;
  ck_assert_int_eq(raw_call(g_auth.rpc_url, DELETE_USERS, &du.base, NULL),
                   RPC_UNAUTHENTICATED);
  ck_assert_int_eq(users_of(tenant), 1);
  ck_assert_int_eq(raw_call(g_auth.rpc_url, DELETE_USERS, &du.base, tok),
                   RPC_OK);
  ck_assert_int_eq(users_of(tenant), 0);
}
END_TEST

START_TEST(no_identity_reads_no_events) {
  Rpc__V1__ReplayRequest rr = RPC__V1__REPLAY_REQUEST__INIT;
  rr.after_seq = 0;
  rr.limit = 100;
  ck_assert_int_eq(
      raw_call(g_tenants.rpc_url, "tenants.v1.Events/Replay", &rr.base, NULL),
      RPC_UNAUTHENTICATED);
  ck_assert_int_eq(
      raw_call(g_orders.rpc_url, "orders.v1.Events/Replay", &rr.base, NULL),
      RPC_UNAUTHENTICATED);
  /* The subscribers that are declared may. */
  char tok[SVCID_TOKEN_MAX + 1];
  token_of("gateway", "gateway", "tenants", time_now_ms(), tok);
  ck_assert_int_eq(
      raw_call(g_tenants.rpc_url, "tenants.v1.Events/Replay", &rr.base, tok),
      RPC_OK);
  token_of("realtime", "realtime", "orders", time_now_ms(), tok);
  ck_assert_int_eq(
      raw_call(g_orders.rpc_url, "orders.v1.Events/Replay", &rr.base, tok),
      RPC_OK);
}
END_TEST

/* The services born after identity (notifications, sync) run the same
 * guard: their Replay holds every tenant's events too. */
START_TEST(later_services_are_guarded_alike) {
  Rpc__V1__ReplayRequest rr = RPC__V1__REPLAY_REQUEST__INIT;
  rr.after_seq = 0;
  rr.limit = 100;
  const struct {
    const char *url, *method, *audience;
  } src[] = {
      {g_notif.rpc_url, "notifications.v1.Events/Replay", "notifications"},
      {g_sync.rpc_url, "sync.v1.Events/Replay", "sync"},
  };
  char tok[SVCID_TOKEN_MAX + 1];
  for (size_t i = 0; i < sizeof src / sizeof src[0]; i++) {
    ck_assert_int_eq(raw_call(src[i].url, src[i].method, &rr.base, NULL),
                     RPC_UNAUTHENTICATED);
    /* A compromised orders pod: a valid identity, not a declared caller. */
    token_of("orders", "orders", src[i].audience, time_now_ms(), tok);
    ck_assert_int_eq(raw_call(src[i].url, src[i].method, &rr.base, tok),
                     RPC_PERMISSION_DENIED);
    token_of("realtime", "realtime", src[i].audience, time_now_ms(), tok);
    ck_assert_int_eq(raw_call(src[i].url, src[i].method, &rr.base, tok),
                     RPC_OK);
  }
}
END_TEST

START_TEST(public_methods_need_an_identity_too) {
  /* Login straight at auth would skip the gateway's limits. */
  Auth__V1__LoginRequest lr = AUTH__V1__LOGIN_REQUEST__INIT;
  lr.email = "nobody@attack.test";
  lr.password = "whatever-whatever";
  ck_assert_int_eq(
      raw_call(g_auth.rpc_url, "auth.v1.Auth/Login", &lr.base, NULL),
      RPC_UNAUTHENTICATED);
  Auth__V1__VerifyRequest vr = AUTH__V1__VERIFY_REQUEST__INIT;
  ck_assert_int_eq(
      raw_call(g_auth.rpc_url, "auth.v1.Auth/Verify", &vr.base, NULL),
      RPC_UNAUTHENTICATED);
}
END_TEST

START_TEST(forged_borrowed_and_stale_identities_are_refused) {
  char tenant[UUID_STR_LEN + 1], email[96], tok[SVCID_TOKEN_MAX + 1];
  uuid_v7_str(tenant);
  Auth__V1__CreateUserRequest cu = owner_request(tenant, email, sizeof email);
  int64_t now = time_now_ms();

  /* A key the cluster does not trust, calling itself tenants. */
  paseto_secret_key rogue;
  paseto_keygen(&rogue, NULL);
  svcid_signer *s = NULL;
  ck_assert_int_eq(svcid_signer_new("tenants", &rogue, &s), ERR_OK);
  ck_assert_int_eq(svcid_signer_token(s, "auth", tok, sizeof tok), ERR_OK);
  svcid_signer_free(s);
  paseto_secret_key_wipe(&rogue);
  ck_assert_int_eq(raw_call(g_auth.rpc_url, CREATE_USER, &cu.base, tok),
                   RPC_UNAUTHENTICATED);

  /* A compromised orders pod signing as tenants with its own key. */
  token_of("orders", "tenants", "auth", now, tok);
  ck_assert_int_eq(raw_call(g_auth.rpc_url, CREATE_USER, &cu.base, tok),
                   RPC_UNAUTHENTICATED);

  /* tenants' real token, but addressed to orders (replayed to auth). */
  token_of("tenants", "tenants", "orders", now, tok);
  ck_assert_int_eq(raw_call(g_auth.rpc_url, CREATE_USER, &cu.base, tok),
                   RPC_UNAUTHENTICATED);

  /* tenants' real token for auth, but 20 minutes old. */
  token_of("tenants", "tenants", "auth", now - 20 * 60 * 1000, tok);
  ck_assert_int_eq(raw_call(g_auth.rpc_url, CREATE_USER, &cu.base, tok),
                   RPC_UNAUTHENTICATED);
  ck_assert_int_eq(users_named(email), 0);
}
END_TEST

START_TEST(services_may_call_only_what_they_are_declared_for) {
  char tenant[UUID_STR_LEN + 1], email[96];
  uuid_v7_str(tenant);
  Auth__V1__CreateUserRequest cu = owner_request(tenant, email, sizeof email);

  rpc_client *as_orders = harness_rpc_client_as(g_auth.rpc_url, "orders");
  rpc_result *r =
      harness_rpc_call(as_orders, CREATE_USER, &cu.base, NULL, NULL, NULL);
  CK_RPC_CODE(r, RPC_PERMISSION_DENIED);
  rpc_result_free(r);
  ck_assert_int_eq(users_named(email), 0);

  /* The gateway may create members only with an admin's token: the
   * internal, token-less path is the tenants service's alone. */
  rpc_client *as_gateway = harness_rpc_client(g_auth.rpc_url);
  Auth__V1__DeleteTenantUsersRequest du =
      AUTH__V1__DELETE_TENANT_USERS_REQUEST__INIT;
  du.tenant_id = tenant;
  r = harness_rpc_call(as_gateway, DELETE_USERS, &du.base, NULL, NULL, NULL);
  CK_RPC_CODE(r, RPC_PERMISSION_DENIED);
  rpc_result_free(r);
  r = harness_rpc_call(as_gateway, CREATE_USER, &cu.base, NULL, NULL, NULL);
  ck_assert_int_ne(r->code, RPC_OK);
  rpc_result_free(r);
  ck_assert_int_eq(users_named(email), 0);

  /* Suspending a tenant is for operators. */
  rpc_client *as_realtime =
      harness_rpc_client_as(g_tenants.rpc_url, "realtime");
  Tenants__V1__SuspendRequest sr = TENANTS__V1__SUSPEND_REQUEST__INIT;
  sr.tenant_id = tenant;
  r = harness_rpc_call(as_realtime, "tenants.v1.Tenants/Suspend", &sr.base,
                       NULL, NULL, NULL);
  CK_RPC_CODE(r, RPC_PERMISSION_DENIED);
  rpc_result_free(r);
  rpc_client_free(as_orders);
  rpc_client_free(as_gateway);
  rpc_client_free(as_realtime);
}
END_TEST

static bool start_all(void) {
  /* Every caller's key in the trust bundle before a service reads it. */
  (void)harness_identity_key_file("realtime");
  (void)harness_identity_key_file("notifications");
  (void)harness_identity_key_file("sync");
  if (harness_pg_start(&g_pg) != 0 || harness_redis_start(&g_redis) != 0)
    return false;
  if (!harness_service_start_auth(&g_auth, "auth", &kSvc, NULL)) return false;
  char auth_addr[96], tenants_addr[96];
  snprintf(auth_addr, sizeof auth_addr, "AUTH_ADDR=%s", g_auth.rpc_url);
  char *te[] = {auth_addr, "TENANTS_OPERATOR_SECRET=itest-operator-secret-1",
                NULL};
  if (!harness_service_start(&g_tenants, "tenants", "services/tenants/tenants",
                             &kSvc, te))
    return false;
  snprintf(tenants_addr, sizeof tenants_addr, "TENANTS_ADDR=%s",
           g_tenants.rpc_url);
  char *oe[] = {auth_addr, tenants_addr, NULL};
  if (!harness_service_start(&g_orders, "orders", "services/orders/orders",
                             &kSvc, oe))
    return false;
  char orders_addr[96], orders_events[96];
  snprintf(orders_addr, sizeof orders_addr, "ORDERS_ADDR=%s", g_orders.rpc_url);
  snprintf(orders_events, sizeof orders_events, "ORDERS_EVENTS=%s",
           g_orders.bus_url);
  char *ne[] = {auth_addr, orders_addr, orders_events,
                "NOTIFICATIONS_SECRET_KEY="
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
                NULL};
  char *se[] = {auth_addr, orders_addr,
                "SYNC_DEVICE_PEPPER=itest-pepper-not-secret-0123456789abcdef",
                NULL};
  return harness_service_start(&g_notif, "notifications",
                               "services/notifications/notifications", &kSvc,
                               ne) &&
         harness_service_start(&g_sync, "sync", "services/sync/sync", &kSvc,
                               se);
}

int main(void) {
  harness_init();
  if (paseto_init() != ERR_OK || !start_all()) {
    harness_dump_logs();
    fprintf(stderr, "cannot start the services\n");
    return EXIT_FAILURE;
  }
  Suite *s = suite_create("identity_itest");
  TCase *tc = tcase_create("identity");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, no_identity_creates_no_owner_and_deletes_nothing);
  tcase_add_test(tc, no_identity_reads_no_events);
  tcase_add_test(tc, later_services_are_guarded_alike);
  tcase_add_test(tc, public_methods_need_an_identity_too);
  tcase_add_test(tc, forged_borrowed_and_stale_identities_are_refused);
  tcase_add_test(tc, services_may_call_only_what_they_are_declared_for);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  if (failed != 0) harness_dump_logs();
  harness_service_stop(&g_sync, 15000);
  harness_service_stop(&g_notif, 15000);
  harness_service_stop(&g_orders, 15000);
  harness_service_stop(&g_tenants, 15000);
  harness_service_stop(&g_auth, 15000);
  harness_redis_stop(&g_redis);
  harness_pg_stop(&g_pg);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
