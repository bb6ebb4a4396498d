/*
 * auth_itest.c - the auth service as a separate process against a real
 * PostgreSQL and Redis (tests/harness), driven over libs/rpc, plus a
 * second process (verifyd) that verifies tokens with libs/authn the way
 * every other service does.
 *
 * main() starts PostgreSQL, Redis, auth (fast Argon2 limits so tests do
 * not wait on hashing), a second auth instance with slow hashing and a
 * tiny admission limit (for the overload test), and verifyd; Check runs
 * each test in a forked child against them. Every test works in tenants
 * of its own (random UUIDs), so tests do not see each other's users.
 *
 * Secrets: every test password contains PW_MARK, every refresh token a
 * test receives is appended to a file, and the last test greps every
 * captured log for those, for the signing key and for the password mark.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"
#include "libs/cache/cache.h"
#include "libs/db/db.h"
#include "libs/paseto/claims.h"
#include "libs/paseto/paseto.h"
#include "libs/rpc/rpc.h"
#include "proto/auth/v1/auth.pb-c.h"
#include "tests/harness/harness.h"
#include "tests/harness/rpc.h"
#include "tests/harness/service.h"
#include "tests/harness/identity.h"

#define PW_MARK "Pw-Secret-"
#define PW PW_MARK "correct-horse"
#define M(x) "auth.v1.Auth/" x

static harness_pg g_pg;
static harness_redis g_redis;
static paseto_secret_key g_sk;
static paseto_public_key g_pk;
static char g_sk_hex[PASETO_SECRET_HEX_LEN + 1];
static char g_auth_addr[64], g_slow_addr[64], g_verifyd_addr[64];
static char g_bus_url[64], g_busd_addr[64];
/* Two instances whose own Redis is stopped before the tests run: the
 * login lock's fail modes (AUTH_LOGIN_LOCK_FAIL open and closed). */
static char g_lock_open_addr[64], g_lock_closed_addr[64];
static char g_secrets_path[600];
static harness_proc *g_auth, *g_slow, *g_verifyd, *g_busd;

/* ------------------------------------------------------------ helpers --- */

static void record_secret(const char *s) {
  FILE *f = fopen(g_secrets_path, "a");
  ck_assert_ptr_nonnull(f);
  fprintf(f, "%s\n", s);
  fclose(f);
}

/* Calls carry a service identity chosen per call (call() sets it): the
 * tenants service's for what only tenants may do - DeleteTenantUsers and
 * CreateUser without a member's token - and the gateway's otherwise, as in
 * production. */
static __thread bool t_as_tenants;

static int as_service(void *arg, const char *method, char *buf, size_t cap) {
  (void)arg;
  static svcid_signer *gateway, *tenants;
  static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  pthread_mutex_lock(&mu);
  if (gateway == NULL) {
    gateway = harness_identity_signer("gateway");
    tenants = harness_identity_signer("tenants");
  }
  pthread_mutex_unlock(&mu);
  return svcid_credential(t_as_tenants ? tenants : gateway, method, buf, cap);
}

static rpc_client *client(const char *addr) {
  rpc_client *c = NULL;
  rpc_client_options o;
  rpc_client_options_init(&o);
  o.credential = as_service;
  ck_assert_int_eq(rpc_client_new(addr, &o, &c), ERR_OK);
  ck_assert_int_eq(rpc_client_wait_connected(c, 1, 10000), ERR_OK);
  return c;
}

typedef struct callopt {
  const char *token;
  const char *tenant;
  const char *key;
} callopt;

/* Calls method with msg; returns the result (caller frees). */
static rpc_result *call(rpc_client *c, const char *method,
                        const ProtobufCMessage *msg, callopt o) {
  rpc_call_options opts = RPC_CALL_OPTIONS_INIT;
  opts.deadline_ms = 20000;
  opts.token = o.token;
  opts.tenant_id = o.tenant;
  opts.idempotency_key = o.key;
  t_as_tenants = strstr(method, "/DeleteTenantUsers") != NULL ||
                 (strstr(method, "/CreateUser") != NULL &&
                  (o.token == NULL || o.token[0] == '\0'));
  rpc_result *r = NULL;
  ck_assert_int_eq(rpc_client_call_message(c, method, msg, &opts, &r), ERR_OK);
  return r;
}

static int call_code(rpc_client *c, const char *method,
                     const ProtobufCMessage *msg, callopt o) {
  rpc_result *r = call(c, method, msg, o);
  int code = r->code;
  rpc_result_free(r);
  return code;
}

static void new_tenant(char out[UUID_STR_LEN + 1]) { uuid_v7_str(out); }

static void unique_email(char *out, size_t cap, const char *who) {
  char u[UUID_STR_LEN + 1];
  uuid_v7_str(u);
  snprintf(out, cap, "%s-%.8s@example.com", who, u + 28);
}

/* Registers a customer; returns its id in id (may be NULL). */
static int do_register(rpc_client *c, const char *tenant, const char *email,
                       const char *pw, char *id) {
  Auth__V1__RegisterRequest req = AUTH__V1__REGISTER_REQUEST__INIT;
  req.email = (char *)email;
  req.password = (char *)pw;
  req.name = "Test User";
  rpc_result *r =
      call(c, M("Register"), &req.base, (callopt){.tenant = tenant});
  int code = r->code;
  if (code == RPC_OK) {
    Auth__V1__RegisterResponse *resp =
        auth__v1__register_response__unpack(NULL, r->payload_len, r->payload);
    ck_assert_ptr_nonnull(resp);
    ck_assert_str_eq(resp->user->role, "customer");
    if (id != NULL) str_copy(id, resp->user->id, UUID_STR_LEN + 1);
    auth__v1__register_response__free_unpacked(resp, NULL);
  }
  rpc_result_free(r);
  return code;
}

typedef struct session {
  char access[PASETO_TOKEN_MAX + 1];
  char refresh[64];
  char user_id[UUID_STR_LEN + 1];
  char role[16];
} session;

static int do_login(rpc_client *c, const char *tenant, const char *email,
                    const char *pw, session *s, char *msg, size_t msgcap) {
  Auth__V1__LoginRequest req = AUTH__V1__LOGIN_REQUEST__INIT;
  req.email = (char *)email;
  req.password = (char *)pw;
  rpc_result *r = call(c, M("Login"), &req.base, (callopt){.tenant = tenant});
  int code = r->code;
  if (msg != NULL) str_copy(msg, r->message, msgcap);
  if (code == RPC_OK && s != NULL) {
    Auth__V1__LoginResponse *resp =
        auth__v1__login_response__unpack(NULL, r->payload_len, r->payload);
    ck_assert_ptr_nonnull(resp);
    str_copy(s->access, resp->access_token, sizeof s->access);
    str_copy(s->refresh, resp->refresh_token, sizeof s->refresh);
    str_copy(s->user_id, resp->user->id, sizeof s->user_id);
    str_copy(s->role, resp->user->role, sizeof s->role);
    ck_assert_str_eq(resp->token_type, "Bearer");
    ck_assert_uint_eq(resp->expires_in, 900);
    record_secret(s->refresh);
    auth__v1__login_response__free_unpacked(resp, NULL);
  }
  rpc_result_free(r);
  return code;
}

static int do_refresh(rpc_client *c, const char *refresh, session *s) {
  Auth__V1__RefreshRequest req = AUTH__V1__REFRESH_REQUEST__INIT;
  req.refresh_token = (char *)refresh;
  rpc_result *r = call(c, M("Refresh"), &req.base, (callopt){0});
  int code = r->code;
  if (code == RPC_OK && s != NULL) {
    Auth__V1__RefreshResponse *resp =
        auth__v1__refresh_response__unpack(NULL, r->payload_len, r->payload);
    ck_assert_ptr_nonnull(resp);
    str_copy(s->access, resp->access_token, sizeof s->access);
    str_copy(s->refresh, resp->refresh_token, sizeof s->refresh);
    str_copy(s->user_id, resp->user->id, sizeof s->user_id);
    str_copy(s->role, resp->user->role, sizeof s->role);
    record_secret(s->refresh);
    auth__v1__refresh_response__free_unpacked(resp, NULL);
  }
  rpc_result_free(r);
  return code;
}

static int do_me(rpc_client *c, const char *token, char *msg, size_t cap) {
  Auth__V1__MeRequest req = AUTH__V1__ME_REQUEST__INIT;
  rpc_result *r = call(c, M("Me"), &req.base, (callopt){.token = token});
  int code = r->code;
  if (msg != NULL) str_copy(msg, r->message, cap);
  rpc_result_free(r);
  return code;
}

/* Verify through another process (verifyd) or through auth itself. */
static int do_verify(rpc_client *c, const char *token, char *msg, size_t cap) {
  Auth__V1__VerifyRequest req = AUTH__V1__VERIFY_REQUEST__INIT;
  req.token = (char *)token;
  rpc_result *r = call(c, M("Verify"), &req.base, (callopt){0});
  int code = r->code;
  if (msg != NULL) str_copy(msg, r->message, cap);
  rpc_result_free(r);
  return code;
}

/* Creates a user through the internal CreateUser (no token) or as the
 * holder of token. */
static int do_create(rpc_client *c, const char *token, const char *tenant,
                     const char *email, const char *role, const char *key,
                     bool issue, session *s) {
  Auth__V1__CreateUserRequest req = AUTH__V1__CREATE_USER_REQUEST__INIT;
  req.tenant_id = token == NULL ? (char *)tenant : "";
  req.email = (char *)email;
  req.name = "Member";
  req.password = PW;
  req.role = (char *)role;
  req.issue_tokens = issue;
  rpc_result *r = call(c, M("CreateUser"), &req.base,
                       (callopt){.token = token, .key = key});
  int code = r->code;
  if (code == RPC_OK && s != NULL) {
    Auth__V1__CreateUserResponse *resp = auth__v1__create_user_response__unpack(
        NULL, r->payload_len, r->payload);
    ck_assert_ptr_nonnull(resp);
    str_copy(s->user_id, resp->user->id, sizeof s->user_id);
    str_copy(s->role, resp->user->role, sizeof s->role);
    str_copy(s->access, resp->access_token, sizeof s->access);
    str_copy(s->refresh, resp->refresh_token, sizeof s->refresh);
    if (issue) record_secret(s->refresh);
    auth__v1__create_user_response__free_unpacked(resp, NULL);
  }
  rpc_result_free(r);
  return code;
}

static int do_update_role(rpc_client *c, const char *token, const char *user,
                          const char *role) {
  Auth__V1__UpdateRoleRequest req = AUTH__V1__UPDATE_ROLE_REQUEST__INIT;
  req.user_id = (char *)user;
  req.role = (char *)role;
  return call_code(c, M("UpdateRole"), &req.base, (callopt){.token = token});
}

static int do_remove(rpc_client *c, const char *token, const char *user) {
  Auth__V1__RemoveUserRequest req = AUTH__V1__REMOVE_USER_REQUEST__INIT;
  req.user_id = (char *)user;
  return call_code(c, M("RemoveUser"), &req.base, (callopt){.token = token});
}

/* Number of owners listed by token's holder (-1 on error). */
static int count_owners(rpc_client *c, const char *token) {
  Auth__V1__ListMembersRequest req = AUTH__V1__LIST_MEMBERS_REQUEST__INIT;
  req.limit = 100;
  rpc_result *r =
      call(c, M("ListMembers"), &req.base, (callopt){.token = token});
  int owners = -1;
  if (r->code == RPC_OK) {
    Auth__V1__ListMembersResponse *resp =
        auth__v1__list_members_response__unpack(NULL, r->payload_len,
                                                r->payload);
    ck_assert_ptr_nonnull(resp);
    owners = 0;
    for (size_t i = 0; i < resp->n_members; i++)
      if (strcmp(resp->members[i]->role, "owner") == 0) owners++;
    auth__v1__list_members_response__free_unpacked(resp, NULL);
  }
  rpc_result_free(r);
  return owners;
}

/* An owner of a fresh tenant (as the tenants service makes one). */
static void make_owner(rpc_client *c, const char *tenant, session *s) {
  char email[96], key[96];
  unique_email(email, sizeof email, "owner");
  snprintf(key, sizeof key, "tenant-owner:%s", tenant);
  ck_assert_int_eq(do_create(c, NULL, tenant, email, "owner", key, true, s),
                   RPC_OK);
  ck_assert_str_eq(s->role, "owner");
}

/* Signs claims with the given key as auth would (kid footer). */
static void sign_claims(const paseto_secret_key *sk, const paseto_claims *cl,
                        char *out, size_t cap) {
  char *json = NULL;
  size_t jlen = 0;
  ck_assert_int_eq(paseto_claims_to_json(cl, &json, &jlen), ERR_OK);
  paseto_public_key pk;
  paseto_public_key_of(sk, &pk);
  char pid[PASETO_PID_LEN + 1];
  paseto_pid(&pk, pid);
  char footer[PASETO_KID_FOOTER_MAX];
  size_t flen = 0;
  ck_assert_int_eq(paseto_footer_kid_json(pid, footer, sizeof footer, &flen),
                   ERR_OK);
  ck_assert_int_eq(
      paseto_sign(sk, json, jlen, footer, flen, NULL, 0, out, cap, NULL),
      ERR_OK);
  free(json);
}

static paseto_claims claims_for(const session *s, const char *tenant) {
  paseto_claims c;
  memset(&c, 0, sizeof c);
  str_copy(c.iss, "auth", sizeof c.iss);
  str_copy(c.sub, s->user_id, sizeof c.sub);
  str_copy(c.tid, tenant, sizeof c.tid);
  str_copy(c.role, s->role, sizeof c.role);
  uuid_v7_str(c.jti);
  int64_t now = time_now_ms();
  c.has_iat = c.has_nbf = c.has_exp = true;
  c.iat_ms = c.nbf_ms = now;
  c.exp_ms = now + 600000;
  return c;
}

static cache *redis(void) {
  cache_config cc = {.url = g_redis.url};
  cache *r = NULL;
  ck_assert_int_eq(cache_new(&cc, &r), ERR_OK);
  return r;
}

/* Polls fn-like condition: calls verify until the code equals want or
 * timeout passes; returns elapsed ms, or -1. */
static int64_t wait_code(rpc_client *c, const char *token, int want,
                         int64_t timeout_ms) {
  int64_t t0 = time_mono_ms();
  while (time_mono_ms() - t0 < timeout_ms) {
    if (do_verify(c, token, NULL, 0) == want) return time_mono_ms() - t0;
    time_sleep_ms(20);
  }
  return -1;
}

/* ------------------------------------------------------------- tests --- */

START_TEST(register_login_refresh_logout) {
  rpc_client *c = client(g_auth_addr);
  char t[UUID_STR_LEN + 1], email[96], id[UUID_STR_LEN + 1];
  new_tenant(t);
  unique_email(email, sizeof email, "Carol");
  ck_assert_int_eq(do_register(c, t, email, PW, id), RPC_OK);
  session s1, s2;
  ck_assert_int_eq(do_login(c, t, email, PW, &s1, NULL, 0), RPC_OK);
  ck_assert_str_eq(s1.user_id, id);
  ck_assert_int_eq(do_me(c, s1.access, NULL, 0), RPC_OK);

  /* The access token verifies and carries the claims. */
  Auth__V1__VerifyRequest vr = AUTH__V1__VERIFY_REQUEST__INIT;
  vr.token = s1.access;
  rpc_result *r = call(c, M("Verify"), &vr.base, (callopt){0});
  ck_assert_int_eq(r->code, RPC_OK);
  Auth__V1__VerifyResponse *v =
      auth__v1__verify_response__unpack(NULL, r->payload_len, r->payload);
  ck_assert_str_eq(v->claims->sub, id);
  ck_assert_str_eq(v->claims->tid, t);
  ck_assert_str_eq(v->claims->role, "customer");
  ck_assert_str_eq(v->claims->iss, "auth");
  ck_assert_int_eq(v->claims->exp_unix - v->claims->iat_unix, 900);
  ck_assert(str_has_prefix(v->claims->kid, "k4.pid."));
  auth__v1__verify_response__free_unpacked(v, NULL);
  rpc_result_free(r);

  ck_assert_int_eq(do_refresh(c, s1.refresh, &s2), RPC_OK);
  ck_assert_str_ne(s2.refresh, s1.refresh);
  ck_assert_int_eq(do_me(c, s2.access, NULL, 0), RPC_OK);

  Auth__V1__LogoutRequest lr = AUTH__V1__LOGOUT_REQUEST__INIT;
  lr.refresh_token = s2.refresh;
  ck_assert_int_eq(
      call_code(c, M("Logout"), &lr.base, (callopt){.token = s2.access}),
      RPC_OK);
  char msg[256];
  ck_assert_int_eq(do_me(c, s2.access, msg, sizeof msg), RPC_UNAUTHENTICATED);
  ck_assert_str_eq(msg, "token revoked");
  /* The older access token of the same session is revoked too. */
  ck_assert_int_eq(do_me(c, s1.access, NULL, 0), RPC_UNAUTHENTICATED);
  ck_assert_int_eq(do_refresh(c, s2.refresh, NULL), RPC_UNAUTHENTICATED);
  /* Logout needs a token. */
  ck_assert_int_eq(call_code(c, M("Logout"), &lr.base, (callopt){0}),
                   RPC_UNAUTHENTICATED);
  rpc_client_free(c);
}
END_TEST

START_TEST(logout_without_refresh_token_revokes_the_session) {
  rpc_client *c = client(g_auth_addr);
  char t[UUID_STR_LEN + 1], email[96];
  new_tenant(t);
  unique_email(email, sizeof email, "dan");
  ck_assert_int_eq(do_register(c, t, email, PW, NULL), RPC_OK);
  session s;
  ck_assert_int_eq(do_login(c, t, email, PW, &s, NULL, 0), RPC_OK);
  Auth__V1__LogoutRequest lr = AUTH__V1__LOGOUT_REQUEST__INIT;
  ck_assert_int_eq(
      call_code(c, M("Logout"), &lr.base, (callopt){.token = s.access}),
      RPC_OK);
  ck_assert_int_eq(do_me(c, s.access, NULL, 0), RPC_UNAUTHENTICATED);
  ck_assert_int_eq(do_refresh(c, s.refresh, NULL), RPC_UNAUTHENTICATED);
  rpc_client_free(c);
}
END_TEST

START_TEST(wrong_email_and_wrong_password_answer_identically) {
  rpc_client *c = client(g_auth_addr);
  char t[UUID_STR_LEN + 1], email[96], other[96];
  new_tenant(t);
  unique_email(email, sizeof email, "erin");
  unique_email(other, sizeof other, "nobody");
  ck_assert_int_eq(do_register(c, t, email, PW, NULL), RPC_OK);
  char m1[256], m2[256], m3[256];
  ck_assert_int_eq(
      do_login(c, t, email, PW_MARK "wrong-one", NULL, m1, sizeof m1),
      RPC_UNAUTHENTICATED);
  ck_assert_int_eq(do_login(c, t, other, PW, NULL, m2, sizeof m2),
                   RPC_UNAUTHENTICATED);
  ck_assert_int_eq(do_login(c, t, "not an email", PW, NULL, m3, sizeof m3),
                   RPC_UNAUTHENTICATED);
  ck_assert_str_eq(m1, m2);
  ck_assert_str_eq(m1, m3);
  /* The right e-mail in another tenant is an unknown e-mail there. */
  char t2[UUID_STR_LEN + 1];
  new_tenant(t2);
  ck_assert_int_eq(do_login(c, t2, email, PW, NULL, m2, sizeof m2),
                   RPC_UNAUTHENTICATED);
  ck_assert_str_eq(m1, m2);
  /* E-mail case does not matter. */
  char upper[96];
  str_copy(upper, email, sizeof upper);
  upper[0] = 'E';
  session s;
  ck_assert_int_eq(do_login(c, t, upper, PW, &s, NULL, 0), RPC_OK);
  rpc_client_free(c);
}
END_TEST

START_TEST(register_validates_and_names_fields) {
  rpc_client *c = client(g_auth_addr);
  char t[UUID_STR_LEN + 1];
  new_tenant(t);
  Auth__V1__RegisterRequest req = AUTH__V1__REGISTER_REQUEST__INIT;
  req.email = "no-at-sign";
  req.password = "short";
  req.name = "";
  rpc_result *r = call(c, M("Register"), &req.base, (callopt){.tenant = t});
  ck_assert_int_eq(r->code, RPC_INVALID_ARGUMENT);
  ck_assert_uint_eq(r->nviolations, 3);
  ck_assert_str_eq(r->violations[0].field, "email");
  ck_assert_str_eq(r->violations[1].field, "name");
  ck_assert_str_eq(r->violations[2].field, "password");
  rpc_result_free(r);
  /* No tenant at all. */
  char email[96];
  unique_email(email, sizeof email, "x");
  ck_assert_int_eq(do_register(c, "", email, PW, NULL), RPC_INVALID_ARGUMENT);
  ck_assert_int_eq(do_register(c, "not-a-uuid", email, PW, NULL),
                   RPC_INVALID_ARGUMENT);
  /* Garbage payload. */
  uint8_t junk[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f};
  rpc_call_options o = RPC_CALL_OPTIONS_INIT;
  o.tenant_id = t;
  ck_assert_int_eq(rpc_client_call(c, M("Register"), junk, sizeof junk, &o, &r),
                   ERR_OK);
  ck_assert_int_eq(r->code, RPC_INVALID_ARGUMENT);
  rpc_result_free(r);
  rpc_client_free(c);
}
END_TEST

START_TEST(refresh_reuse_revokes_the_whole_family) {
  rpc_client *c = client(g_auth_addr);
  char t[UUID_STR_LEN + 1], email[96];
  new_tenant(t);
  unique_email(email, sizeof email, "frank");
  ck_assert_int_eq(do_register(c, t, email, PW, NULL), RPC_OK);
  session s1, s2, s3;
  ck_assert_int_eq(do_login(c, t, email, PW, &s1, NULL, 0), RPC_OK);
  ck_assert_int_eq(do_refresh(c, s1.refresh, &s2), RPC_OK);
  ck_assert_int_eq(do_refresh(c, s2.refresh, &s3), RPC_OK);
  ck_assert_int_eq(do_me(c, s3.access, NULL, 0), RPC_OK);
  /* s1's token was spent: presenting it again is reuse. */
  ck_assert_int_eq(do_refresh(c, s1.refresh, NULL), RPC_UNAUTHENTICATED);
  /* The newest token of the family is dead too, and so are the access
   * tokens issued with the family. */
  ck_assert_int_eq(do_refresh(c, s3.refresh, NULL), RPC_UNAUTHENTICATED);
  ck_assert_int_eq(do_me(c, s3.access, NULL, 0), RPC_UNAUTHENTICATED);
  ck_assert_int_eq(do_me(c, s2.access, NULL, 0), RPC_UNAUTHENTICATED);
  /* Another session of the same user is untouched. */
  session other;
  ck_assert_int_eq(do_login(c, t, email, PW, &other, NULL, 0), RPC_OK);
  ck_assert_int_eq(do_refresh(c, other.refresh, &other), RPC_OK);
  /* Garbage refresh tokens. */
  ck_assert_int_eq(do_refresh(c, "", NULL), RPC_UNAUTHENTICATED);
  ck_assert_int_eq(
      do_refresh(c, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL),
      RPC_UNAUTHENTICATED);
  rpc_client_free(c);
}
END_TEST

/* One of N simultaneous refreshes of the same token. Threads make no
 * Check assertions (a failure would not be reported from a thread): each
 * records what it got and the test asserts afterwards. */
typedef struct race_arg {
  const char *refresh;
  pthread_barrier_t *start;
  int code; /* rpc code, or -1 when the call could not be made */
  char new_refresh[64];
} race_arg;

static void *race_refresh_main(void *arg) {
  race_arg *a = arg;
  a->code = -1;
  rpc_client *c = NULL;
  rpc_client_options co;
  rpc_client_options_init(&co);
  co.credential = as_service; /* as the gateway (t_as_tenants unset) */
  if (rpc_client_new(g_auth_addr, &co, &c) != ERR_OK ||
      rpc_client_wait_connected(c, 1, 10000) != ERR_OK) {
    pthread_barrier_wait(a->start);
    rpc_client_free(c);
    return NULL;
  }
  Auth__V1__RefreshRequest req = AUTH__V1__REFRESH_REQUEST__INIT;
  req.refresh_token = (char *)a->refresh;
  rpc_call_options o = RPC_CALL_OPTIONS_INIT;
  o.deadline_ms = 20000;
  rpc_result *r = NULL;
  pthread_barrier_wait(a->start); /* every client connected: go at once */
  if (rpc_client_call_message(c, M("Refresh"), &req.base, &o, &r) == ERR_OK) {
    a->code = r->code;
    if (r->code == RPC_OK) {
      Auth__V1__RefreshResponse *resp =
          auth__v1__refresh_response__unpack(NULL, r->payload_len, r->payload);
      if (resp != NULL)
        str_copy(a->new_refresh, resp->refresh_token, sizeof a->new_refresh);
      auth__v1__refresh_response__free_unpacked(resp, NULL);
    }
  }
  rpc_result_free(r);
  rpc_client_free(c);
  return NULL;
}

START_TEST(concurrent_refreshes_of_one_token_yield_at_most_one_pair) {
  /* Issue 9 item 5: N refreshes of the same token at the same moment. At
   * most one may rotate; the others are reuse of a spent token, which
   * revokes the family - so the winner's new refresh token is dead too.
   * Several rounds, because one round may happen to serialise. */
  rpc_client *c = client(g_auth_addr);
  char t[UUID_STR_LEN + 1], email[96];
  new_tenant(t);
  unique_email(email, sizeof email, "race");
  ck_assert_int_eq(do_register(c, t, email, PW, NULL), RPC_OK);
  enum { N = 6, ROUNDS = 3 };
  for (int round = 0; round < ROUNDS; round++) {
    session s;
    ck_assert_int_eq(do_login(c, t, email, PW, &s, NULL, 0), RPC_OK);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, N);
    pthread_t th[N];
    race_arg ra[N];
    for (int i = 0; i < N; i++) {
      ra[i] = (race_arg){.refresh = s.refresh, .start = &start};
      pthread_create(&th[i], NULL, race_refresh_main, &ra[i]);
    }
    int ok = 0, winner = -1;
    for (int i = 0; i < N; i++) {
      pthread_join(th[i], NULL);
      if (ra[i].code == RPC_OK) {
        ok++;
        winner = i;
        record_secret(ra[i].new_refresh);
      } else {
        ck_assert_int_eq(ra[i].code, RPC_UNAUTHENTICATED);
      }
    }
    pthread_barrier_destroy(&start);
    ck_assert_msg(ok <= 1,
                  "round %d: %d of %d simultaneous refreshes got a new pair",
                  round, ok, N);
    /* Reuse revoked the family: nothing from it works any more. */
    if (winner >= 0)
      ck_assert_int_eq(do_refresh(c, ra[winner].new_refresh, NULL),
                       RPC_UNAUTHENTICATED);
    ck_assert_int_eq(do_refresh(c, s.refresh, NULL), RPC_UNAUTHENTICATED);
    ck_assert_int_eq(do_me(c, s.access, NULL, 0), RPC_UNAUTHENTICATED);
  }
  rpc_client_free(c);
}
END_TEST

START_TEST(same_email_in_two_tenants_is_two_users) {
  rpc_client *c = client(g_auth_addr);
  char t1[UUID_STR_LEN + 1], t2[UUID_STR_LEN + 1], email[96];
  new_tenant(t1);
  new_tenant(t2);
  unique_email(email, sizeof email, "gina");
  char id1[UUID_STR_LEN + 1], id2[UUID_STR_LEN + 1];
  ck_assert_int_eq(do_register(c, t1, email, PW, id1), RPC_OK);
  ck_assert_int_eq(do_register(c, t2, email, PW_MARK "other-tenant", id2),
                   RPC_OK);
  ck_assert_str_ne(id1, id2);
  /* Unique per tenant, whatever the case. */
  char upper[96];
  str_copy(upper, email, sizeof upper);
  for (char *p = upper; *p != '@'; p++)
    if (*p >= 'a' && *p <= 'z') *p = (char)(*p - 'a' + 'A');
  Auth__V1__RegisterRequest req = AUTH__V1__REGISTER_REQUEST__INIT;
  req.email = upper;
  req.password = PW;
  req.name = "Dup";
  rpc_result *r = call(c, M("Register"), &req.base, (callopt){.tenant = t1});
  ck_assert_int_eq(r->code, RPC_ALREADY_EXISTS);
  ck_assert_uint_eq(r->nviolations, 1);
  ck_assert_str_eq(r->violations[0].field, "email");
  rpc_result_free(r);
  /* Each password belongs to its own tenant's user. */
  session s;
  ck_assert_int_eq(do_login(c, t1, email, PW, &s, NULL, 0), RPC_OK);
  ck_assert_str_eq(s.user_id, id1);
  ck_assert_int_eq(do_login(c, t2, email, PW, NULL, NULL, 0),
                   RPC_UNAUTHENTICATED);
  ck_assert_int_eq(do_login(c, t2, email, PW_MARK "other-tenant", &s, NULL, 0),
                   RPC_OK);
  ck_assert_str_eq(s.user_id, id2);
  /* A token of tenant 1 used against tenant 2 is refused. */
  ck_assert_int_eq(do_login(c, t1, email, PW, &s, NULL, 0), RPC_OK);
  Auth__V1__MeRequest me = AUTH__V1__ME_REQUEST__INIT;
  ck_assert_int_eq(call_code(c, M("Me"), &me.base,
                             (callopt){.token = s.access, .tenant = t2}),
                   RPC_PERMISSION_DENIED);
  rpc_client_free(c);
}
END_TEST

START_TEST(expired_and_not_yet_valid_tokens_are_refused) {
  rpc_client *c = client(g_auth_addr);
  char t[UUID_STR_LEN + 1], email[96];
  new_tenant(t);
  unique_email(email, sizeof email, "hal");
  ck_assert_int_eq(do_register(c, t, email, PW, NULL), RPC_OK);
  session s;
  ck_assert_int_eq(do_login(c, t, email, PW, &s, NULL, 0), RPC_OK);
  char tok[PASETO_TOKEN_MAX + 1], msg[256];
  /* A token we sign ourselves with the service's key is accepted... */
  paseto_claims cl = claims_for(&s, t);
  sign_claims(&g_sk, &cl, tok, sizeof tok);
  ck_assert_int_eq(do_me(c, tok, msg, sizeof msg), RPC_OK);
  /* ...but not once expired (beyond the 30 s leeway)... */
  cl = claims_for(&s, t);
  cl.iat_ms = cl.nbf_ms = time_now_ms() - 3600000;
  cl.exp_ms = time_now_ms() - 60000;
  sign_claims(&g_sk, &cl, tok, sizeof tok);
  ck_assert_int_eq(do_me(c, tok, msg, sizeof msg), RPC_UNAUTHENTICATED);
  ck_assert_str_eq(msg, "token expired");
  ck_assert_int_eq(do_verify(c, tok, NULL, 0), RPC_UNAUTHENTICATED);
  /* ...nor before nbf... */
  cl = claims_for(&s, t);
  cl.nbf_ms = time_now_ms() + 600000;
  cl.exp_ms = time_now_ms() + 1200000;
  sign_claims(&g_sk, &cl, tok, sizeof tok);
  ck_assert_int_eq(do_me(c, tok, msg, sizeof msg), RPC_UNAUTHENTICATED);
  ck_assert_str_eq(msg, "token not yet valid");
  /* ...nor without exp, nor from another issuer. */
  cl = claims_for(&s, t);
  cl.has_exp = false;
  sign_claims(&g_sk, &cl, tok, sizeof tok);
  ck_assert_int_eq(do_me(c, tok, NULL, 0), RPC_UNAUTHENTICATED);
  cl = claims_for(&s, t);
  str_copy(cl.iss, "evil", sizeof cl.iss);
  sign_claims(&g_sk, &cl, tok, sizeof tok);
  ck_assert_int_eq(do_me(c, tok, NULL, 0), RPC_UNAUTHENTICATED);
  /* The other process agrees. */
  rpc_client *v = client(g_verifyd_addr);
  cl = claims_for(&s, t);
  cl.exp_ms = time_now_ms() - 60000;
  cl.iat_ms = cl.nbf_ms = cl.exp_ms - 60000;
  sign_claims(&g_sk, &cl, tok, sizeof tok);
  ck_assert_int_eq(do_verify(v, tok, msg, sizeof msg), RPC_UNAUTHENTICATED);
  ck_assert_str_eq(msg, "token expired");
  rpc_client_free(v);
  rpc_client_free(c);
}
END_TEST

START_TEST(unknown_key_and_tampered_tokens_are_refused) {
  rpc_client *c = client(g_auth_addr);
  rpc_client *v = client(g_verifyd_addr);
  char t[UUID_STR_LEN + 1], email[96], msg[256];
  new_tenant(t);
  unique_email(email, sizeof email, "ivy");
  ck_assert_int_eq(do_register(c, t, email, PW, NULL), RPC_OK);
  session s;
  ck_assert_int_eq(do_login(c, t, email, PW, &s, NULL, 0), RPC_OK);
  ck_assert_int_eq(do_verify(v, s.access, NULL, 0), RPC_OK);

  paseto_secret_key other;
  paseto_keygen(&other, NULL);
  char tok[PASETO_TOKEN_MAX + 1];
  paseto_claims cl = claims_for(&s, t);
  sign_claims(&other, &cl, tok, sizeof tok);
  ck_assert_int_eq(do_me(c, tok, msg, sizeof msg), RPC_UNAUTHENTICATED);
  ck_assert_str_eq(msg, "token signed by an unknown key");
  ck_assert_int_eq(do_verify(v, tok, msg, sizeof msg), RPC_UNAUTHENTICATED);
  ck_assert_str_eq(msg, "token signed by an unknown key");

  /* Payload tampered: one character of the body changed. */
  char bad[PASETO_TOKEN_MAX + 1];
  str_copy(bad, s.access, sizeof bad);
  size_t pos = PASETO_HEADER_LEN + 20;
  bad[pos] = bad[pos] == 'A' ? 'B' : 'A';
  ck_assert_int_eq(do_me(c, bad, msg, sizeof msg), RPC_UNAUTHENTICATED);
  ck_assert_int_eq(do_verify(v, bad, NULL, 0), RPC_UNAUTHENTICATED);

  /* Footer tampered: the footer of a token signed by another key. */
  char *dot = strrchr(s.access, '.');
  char *odot = strrchr(tok, '.');
  size_t body = (size_t)(dot - s.access);
  memcpy(bad, s.access, body);
  str_copy(bad + body, odot, sizeof bad - body);
  ck_assert_int_eq(do_me(c, bad, NULL, 0), RPC_UNAUTHENTICATED);
  ck_assert_int_eq(do_verify(v, bad, NULL, 0), RPC_UNAUTHENTICATED);
  /* Footer removed. */
  memcpy(bad, s.access, body);
  bad[body] = '\0';
  ck_assert_int_eq(do_me(c, bad, msg, sizeof msg), RPC_UNAUTHENTICATED);
  ck_assert_str_eq(msg, "malformed token");
  /* Garbage and no token at all. */
  ck_assert_int_eq(do_me(c, "v4.public.%%%", NULL, 0), RPC_UNAUTHENTICATED);
  ck_assert_int_eq(do_me(c, "", msg, sizeof msg), RPC_UNAUTHENTICATED);
  ck_assert_str_eq(msg, "missing token");
  /* The genuine one still works. */
  ck_assert_int_eq(do_me(c, s.access, NULL, 0), RPC_OK);
  rpc_client_free(v);
  rpc_client_free(c);
}
END_TEST

START_TEST(revocation_is_seen_by_another_process_within_a_second) {
  rpc_client *c = client(g_auth_addr);
  rpc_client *v = client(g_verifyd_addr);
  char t[UUID_STR_LEN + 1], email[96];
  new_tenant(t);
  unique_email(email, sizeof email, "jack");
  ck_assert_int_eq(do_register(c, t, email, PW, NULL), RPC_OK);
  session s;
  ck_assert_int_eq(do_login(c, t, email, PW, &s, NULL, 0), RPC_OK);
  /* verifyd has the token cached as valid... */
  ck_assert_int_eq(do_verify(v, s.access, NULL, 0), RPC_OK);
  ck_assert_int_eq(do_verify(v, s.access, NULL, 0), RPC_OK);
  Auth__V1__LogoutRequest lr = AUTH__V1__LOGOUT_REQUEST__INIT;
  ck_assert_int_eq(
      call_code(c, M("Logout"), &lr.base, (callopt){.token = s.access}),
      RPC_OK);
  /* ...and refuses it within a second of the logout. */
  int64_t took = wait_code(v, s.access, RPC_UNAUTHENTICATED, 5000);
  ck_assert_msg(took >= 0, "verifyd never saw the revocation");
  ck_assert_msg(took < 1000, "revocation took %lld ms to reach verifyd",
                (long long)took);
  char msg[128];
  ck_assert_int_eq(do_verify(v, s.access, msg, sizeof msg),
                   RPC_UNAUTHENTICATED);
  ck_assert_str_eq(msg, "token revoked");
  rpc_client_free(v);
  rpc_client_free(c);
}
END_TEST

START_TEST(revocation_reaches_a_bus_subscriber_without_redis_recheck) {
  /* busd re-reads Redis only once an hour: only auth's auth.revoked event
   * can make it refuse the token this fast. */
  rpc_client *c = client(g_auth_addr);
  rpc_client *v = client(g_busd_addr);
  char t[UUID_STR_LEN + 1], email[96];
  new_tenant(t);
  unique_email(email, sizeof email, "bus");
  ck_assert_int_eq(do_register(c, t, email, PW, NULL), RPC_OK);
  session s;
  ck_assert_int_eq(do_login(c, t, email, PW, &s, NULL, 0), RPC_OK);
  ck_assert_int_eq(do_verify(v, s.access, NULL, 0), RPC_OK);
  Auth__V1__LogoutRequest lr = AUTH__V1__LOGOUT_REQUEST__INIT;
  ck_assert_int_eq(
      call_code(c, M("Logout"), &lr.base, (callopt){.token = s.access}),
      RPC_OK);
  int64_t took = wait_code(v, s.access, RPC_UNAUTHENTICATED, 5000);
  ck_assert_msg(took >= 0 && took < 1000, "bus revocation took %lld ms",
                (long long)took);
  rpc_client_free(v);
  rpc_client_free(c);
}
END_TEST

START_TEST(members_and_roles) {
  rpc_client *c = client(g_auth_addr);
  rpc_client *v = client(g_verifyd_addr);
  char t[UUID_STR_LEN + 1];
  new_tenant(t);
  session owner, owner_again, admin, staff;
  make_owner(c, t, &owner);
  /* The same idempotency key never gives a second user: with another
   * body (here another e-mail) it is refused - it used to hand back the
   * first owner, tokens included, which issue 9 item 6 forbids; with the
   * same body it is the same user (create_user_key_reused_... below). */
  char email[96], key[96];
  snprintf(key, sizeof key, "tenant-owner:%s", t);
  unique_email(email, sizeof email, "other");
  ck_assert_int_eq(
      do_create(c, NULL, t, email, "owner", key, true, &owner_again),
      RPC_INVALID_ARGUMENT);
  ck_assert_int_eq(count_owners(c, owner.access), 1);

  char ea[96], es[96];
  unique_email(ea, sizeof ea, "admin");
  unique_email(es, sizeof es, "staff");
  ck_assert_int_eq(
      do_create(c, owner.access, t, ea, "admin", NULL, false, &admin), RPC_OK);
  ck_assert_int_eq(
      do_create(c, owner.access, t, es, "staff", NULL, false, &staff), RPC_OK);
  ck_assert_int_eq(do_login(c, t, ea, PW, &admin, NULL, 0), RPC_OK);
  ck_assert_int_eq(do_login(c, t, es, PW, &staff, NULL, 0), RPC_OK);
  ck_assert_str_eq(admin.role, "admin");
  /* Members cannot be owners by CreateUser with a token, nor created by
   * staff, nor with a duplicate e-mail. */
  char ex[96];
  unique_email(ex, sizeof ex, "x");
  ck_assert_int_eq(
      do_create(c, owner.access, t, ex, "owner", NULL, false, NULL),
      RPC_INVALID_ARGUMENT);
  ck_assert_int_eq(
      do_create(c, staff.access, t, ex, "staff", NULL, false, NULL),
      RPC_PERMISSION_DENIED);
  ck_assert_int_eq(
      do_create(c, admin.access, t, es, "staff", NULL, false, NULL),
      RPC_ALREADY_EXISTS);

  /* Listing: owner and admin yes, staff no. */
  ck_assert_int_eq(count_owners(c, admin.access), 1);
  ck_assert_int_eq(count_owners(c, staff.access), -1);
  Auth__V1__ListMembersRequest lm = AUTH__V1__LIST_MEMBERS_REQUEST__INIT;
  lm.limit = 2;
  rpc_result *r =
      call(c, M("ListMembers"), &lm.base, (callopt){.token = admin.access});
  ck_assert_int_eq(r->code, RPC_OK);
  Auth__V1__ListMembersResponse *page =
      auth__v1__list_members_response__unpack(NULL, r->payload_len, r->payload);
  ck_assert_uint_eq(page->n_members, 2);
  ck_assert_str_ne(page->next_cursor, "");
  lm.cursor = page->next_cursor;
  rpc_result *r2 =
      call(c, M("ListMembers"), &lm.base, (callopt){.token = admin.access});
  ck_assert_int_eq(r2->code, RPC_OK);
  Auth__V1__ListMembersResponse *page2 =
      auth__v1__list_members_response__unpack(NULL, r2->payload_len,
                                              r2->payload);
  ck_assert_uint_eq(page2->n_members, 1);
  ck_assert_str_eq(page2->next_cursor, "");
  auth__v1__list_members_response__free_unpacked(page2, NULL);
  rpc_result_free(r2);
  auth__v1__list_members_response__free_unpacked(page, NULL);
  rpc_result_free(r);

  /* The last owner can be neither demoted nor removed, not even by
   * themselves; an admin cannot touch the owner at all. */
  ck_assert_int_eq(do_update_role(c, owner.access, owner.user_id, "admin"),
                   RPC_FAILED_PRECONDITION);
  ck_assert_int_eq(do_remove(c, owner.access, owner.user_id),
                   RPC_FAILED_PRECONDITION);
  ck_assert_int_eq(do_update_role(c, admin.access, owner.user_id, "staff"),
                   RPC_PERMISSION_DENIED);
  ck_assert_int_eq(do_update_role(c, admin.access, staff.user_id, "owner"),
                   RPC_PERMISSION_DENIED);
  ck_assert_int_eq(do_update_role(c, staff.access, staff.user_id, "admin"),
                   RPC_PERMISSION_DENIED);
  ck_assert_int_eq(do_update_role(c, owner.access, staff.user_id, "emperor"),
                   RPC_INVALID_ARGUMENT);
  char ghost[UUID_STR_LEN + 1];
  uuid_v7_str(ghost);
  ck_assert_int_eq(do_update_role(c, owner.access, ghost, "staff"),
                   RPC_NOT_FOUND);
  ck_assert_int_eq(count_owners(c, owner.access), 1);

  /* A role change ends the tokens that carry the old role; refreshing
   * gives one with the new role. */
  ck_assert_int_eq(do_verify(v, staff.access, NULL, 0), RPC_OK);
  ck_assert_int_eq(do_update_role(c, admin.access, staff.user_id, "admin"),
                   RPC_OK);
  ck_assert_int_eq(do_me(c, staff.access, NULL, 0), RPC_UNAUTHENTICATED);
  ck_assert_int_ge(wait_code(v, staff.access, RPC_UNAUTHENTICATED, 5000), 0);
  session promoted;
  ck_assert_int_eq(do_refresh(c, staff.refresh, &promoted), RPC_OK);
  ck_assert_str_eq(promoted.role, "admin");
  ck_assert_int_eq(do_me(c, promoted.access, NULL, 0), RPC_OK);
  ck_assert_int_eq(count_owners(c, promoted.access), 1);

  /* A second owner makes demoting the first possible. */
  ck_assert_int_eq(do_update_role(c, owner.access, admin.user_id, "owner"),
                   RPC_OK);
  ck_assert_int_eq(count_owners(c, owner.access), 2);
  ck_assert_int_eq(do_update_role(c, owner.access, owner.user_id, "admin"),
                   RPC_OK);
  session new_owner;
  ck_assert_int_eq(do_login(c, t, ea, PW, &new_owner, NULL, 0), RPC_OK);
  ck_assert_str_eq(new_owner.role, "owner");
  ck_assert_int_eq(count_owners(c, new_owner.access), 1);

  /* Removing a member ends their tokens, here and in other processes. */
  ck_assert_int_eq(do_verify(v, promoted.access, NULL, 0), RPC_OK);
  ck_assert_int_eq(do_remove(c, new_owner.access, promoted.user_id), RPC_OK);
  ck_assert_int_eq(do_me(c, promoted.access, NULL, 0), RPC_UNAUTHENTICATED);
  int64_t took = wait_code(v, promoted.access, RPC_UNAUTHENTICATED, 5000);
  ck_assert_msg(took >= 0 && took < 1000,
                "removal reached verifyd after %lld ms", (long long)took);
  ck_assert_int_eq(do_refresh(c, promoted.refresh, NULL), RPC_UNAUTHENTICATED);
  ck_assert_int_eq(do_login(c, t, es, PW, NULL, NULL, 0), RPC_UNAUTHENTICATED);
  ck_assert_int_eq(do_remove(c, new_owner.access, promoted.user_id),
                   RPC_NOT_FOUND);
  ck_assert_int_eq(do_remove(c, new_owner.access, new_owner.user_id),
                   RPC_FAILED_PRECONDITION);

  /* GetUser: self always, others only for managers. */
  Auth__V1__GetUserRequest gu = AUTH__V1__GET_USER_REQUEST__INIT;
  gu.user_id = new_owner.user_id;
  ck_assert_int_eq(call_code(c, M("GetUser"), &gu.base,
                             (callopt){.token = new_owner.access}),
                   RPC_OK);
  gu.user_id = "not-a-uuid";
  ck_assert_int_eq(call_code(c, M("GetUser"), &gu.base,
                             (callopt){.token = new_owner.access}),
                   RPC_INVALID_ARGUMENT);
  rpc_client_free(v);
  rpc_client_free(c);
}
END_TEST

typedef struct demote_arg {
  const char *token;
  const char *target;
  int code;
} demote_arg;

static void *demote_main(void *arg) {
  demote_arg *d = arg;
  rpc_client *c = client(g_auth_addr);
  d->code = do_update_role(c, d->token, d->target, "admin");
  rpc_client_free(c);
  return NULL;
}

START_TEST(two_owners_demoting_each_other_leave_one_owner) {
  rpc_client *c = client(g_auth_addr);
  for (int round = 0; round < 3; round++) {
    char t[UUID_STR_LEN + 1], eb[96];
    new_tenant(t);
    session a, b;
    make_owner(c, t, &a);
    unique_email(eb, sizeof eb, "b");
    ck_assert_int_eq(do_create(c, a.access, t, eb, "admin", NULL, false, &b),
                     RPC_OK);
    ck_assert_int_eq(do_update_role(c, a.access, b.user_id, "owner"), RPC_OK);
    ck_assert_int_eq(do_login(c, t, eb, PW, &b, NULL, 0), RPC_OK);
    ck_assert_int_eq(count_owners(c, a.access), 2);
    demote_arg da = {a.access, b.user_id, -1}, db = {b.access, a.user_id, -1};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, demote_main, &da);
    pthread_create(&tb, NULL, demote_main, &db);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    int oks = (da.code == RPC_OK) + (db.code == RPC_OK);
    ck_assert_msg(oks == 1, "round %d: codes %d and %d", round, da.code,
                  db.code);
    /* The loser was refused for a reason, not an error. */
    int lost = da.code == RPC_OK ? db.code : da.code;
    ck_assert_msg(lost == RPC_FAILED_PRECONDITION ||
                      lost == RPC_PERMISSION_DENIED ||
                      lost == RPC_UNAUTHENTICATED,
                  "loser got %d", lost);
    /* The winner is still an owner (its token untouched): one owner left. */
    const session *winner = da.code == RPC_OK ? &a : &b;
    ck_assert_int_eq(count_owners(c, winner->access), 1);
  }
  rpc_client_free(c);
}
END_TEST

START_TEST(suspended_tenant_tokens_and_logins_are_refused) {
  rpc_client *c = client(g_auth_addr);
  rpc_client *v = client(g_verifyd_addr);
  cache *rd = redis();
  char t[UUID_STR_LEN + 1], email[96], key[96], msg[128];
  new_tenant(t);
  unique_email(email, sizeof email, "kim");
  ck_assert_int_eq(do_register(c, t, email, PW, NULL), RPC_OK);
  session s;
  ck_assert_int_eq(do_login(c, t, email, PW, &s, NULL, 0), RPC_OK);
  ck_assert_int_eq(do_verify(v, s.access, NULL, 0), RPC_OK);
  ck_assert_int_eq(do_me(c, s.access, NULL, 0), RPC_OK);

  /* What the tenants service writes on Suspend. */
  snprintf(key, sizeof key, "tenant:status:%s", t);
  ck_assert_int_eq(cache_set(rd, key, "suspended", 9, 0), ERR_OK);
  int64_t took = wait_code(v, s.access, RPC_PERMISSION_DENIED, 5000);
  ck_assert_msg(took >= 0 && took < 1000,
                "suspension reached verifyd after %lld ms", (long long)took);
  ck_assert_int_eq(do_verify(v, s.access, msg, sizeof msg),
                   RPC_PERMISSION_DENIED);
  ck_assert_str_eq(msg, "tenant suspended");
  ck_assert_int_ge(wait_code(c, s.access, RPC_PERMISSION_DENIED, 5000), 0);
  ck_assert_int_eq(do_me(c, s.access, NULL, 0), RPC_PERMISSION_DENIED);
  ck_assert_int_eq(do_login(c, t, email, PW, NULL, msg, sizeof msg),
                   RPC_PERMISSION_DENIED);
  ck_assert_int_eq(do_refresh(c, s.refresh, NULL), RPC_PERMISSION_DENIED);
  char e2[96];
  unique_email(e2, sizeof e2, "late");
  ck_assert_int_eq(do_register(c, t, e2, PW, NULL), RPC_PERMISSION_DENIED);

  /* Resume: everything works again (the refresh token was not spent). */
  ck_assert_int_eq(cache_set(rd, key, "active", 6, 0), ERR_OK);
  ck_assert_int_ge(wait_code(v, s.access, RPC_OK, 5000), 0);
  ck_assert_int_ge(wait_code(c, s.access, RPC_OK, 5000), 0);
  ck_assert_int_eq(do_refresh(c, s.refresh, &s), RPC_OK);
  cache_free(rd);
  rpc_client_free(v);
  rpc_client_free(c);
}
END_TEST

START_TEST(delete_tenant_users_removes_everyone_and_their_tokens) {
  rpc_client *c = client(g_auth_addr);
  char t[UUID_STR_LEN + 1];
  new_tenant(t);
  session owner;
  make_owner(c, t, &owner);
  Auth__V1__DeleteTenantUsersRequest req =
      AUTH__V1__DELETE_TENANT_USERS_REQUEST__INIT;
  req.tenant_id = t;
  /* Never with a user's token. */
  ck_assert_int_eq(call_code(c, M("DeleteTenantUsers"), &req.base,
                             (callopt){.token = owner.access}),
                   RPC_PERMISSION_DENIED);
  rpc_result *r = call(c, M("DeleteTenantUsers"), &req.base, (callopt){0});
  ck_assert_int_eq(r->code, RPC_OK);
  Auth__V1__DeleteTenantUsersResponse *resp =
      auth__v1__delete_tenant_users_response__unpack(NULL, r->payload_len,
                                                     r->payload);
  ck_assert_uint_eq(resp->deleted, 1);
  auth__v1__delete_tenant_users_response__free_unpacked(resp, NULL);
  rpc_result_free(r);
  ck_assert_int_eq(do_me(c, owner.access, NULL, 0), RPC_UNAUTHENTICATED);
  ck_assert_int_eq(do_refresh(c, owner.refresh, NULL), RPC_UNAUTHENTICATED);
  /* Idempotent. */
  ck_assert_int_eq(
      call_code(c, M("DeleteTenantUsers"), &req.base, (callopt){0}), RPC_OK);
  /* The same owner key can then make a new owner (the tenant is reused). */
  session again;
  make_owner(c, t, &again);
  ck_assert_str_ne(again.user_id, owner.user_id);
  rpc_client_free(c);
}
END_TEST

/* ------------------------------------------------------ device tokens --- */

/* IssueDeviceToken and RevokeDevice: the sync service only, never with a
 * user's token; the token is role "device" with sub the device, and the
 * revocation refuses it. */
START_TEST(device_tokens_are_for_sync_and_revocable) {
  char t[UUID_STR_LEN + 1], dev[UUID_STR_LEN + 1];
  new_tenant(t);
  uuid_v7_str(dev);
  Auth__V1__IssueDeviceTokenRequest req =
      AUTH__V1__ISSUE_DEVICE_TOKEN_REQUEST__INIT;
  req.tenant_id = t;
  req.device_id = dev;
  /* The gateway (any other service) may not. */
  rpc_client *gw = client(g_auth_addr);
  ck_assert_int_eq(
      call_code(gw, M("IssueDeviceToken"), &req.base, (callopt){0}),
      RPC_PERMISSION_DENIED);
  rpc_client *sy = harness_rpc_client_as(g_auth_addr, "sync");
  /* Not on behalf of a user. */
  session owner;
  make_owner(gw, t, &owner);
  rpc_result *r = harness_rpc_call(sy, M("IssueDeviceToken"), &req.base,
                                   owner.access, NULL, NULL);
  CK_RPC_CODE(r, RPC_PERMISSION_DENIED);
  rpc_result_free(r);
  req.device_id = "not-a-uuid";
  r = harness_rpc_call(sy, M("IssueDeviceToken"), &req.base, NULL, NULL, NULL);
  CK_RPC_CODE(r, RPC_INVALID_ARGUMENT);
  CK_RPC_VIOLATION(r, "device_id");
  rpc_result_free(r);
  req.device_id = dev;
  r = harness_rpc_call(sy, M("IssueDeviceToken"), &req.base, NULL, NULL, NULL);
  CK_RPC_CODE(r, RPC_OK);
  Auth__V1__IssueDeviceTokenResponse *resp =
      auth__v1__issue_device_token_response__unpack(NULL, r->payload_len,
                                                    r->payload);
  ck_assert_ptr_nonnull(resp);
  char tok[PASETO_TOKEN_MAX + 1];
  str_copy(tok, resp->access_token, sizeof tok);
  ck_assert_str_eq(resp->token_type, "Bearer");
  auth__v1__issue_device_token_response__free_unpacked(resp, NULL);
  rpc_result_free(r);
  Auth__V1__VerifyRequest vr = AUTH__V1__VERIFY_REQUEST__INIT;
  vr.token = tok;
  r = call(gw, M("Verify"), &vr.base, (callopt){0});
  ck_assert_int_eq(r->code, RPC_OK);
  Auth__V1__VerifyResponse *v =
      auth__v1__verify_response__unpack(NULL, r->payload_len, r->payload);
  ck_assert_str_eq(v->claims->role, "device");
  ck_assert_str_eq(v->claims->sub, dev);
  ck_assert_str_eq(v->claims->tid, t);
  auth__v1__verify_response__free_unpacked(v, NULL);
  rpc_result_free(r);
  /* Revoked: refused at once by auth's own verifier. */
  Auth__V1__RevokeDeviceRequest rv = AUTH__V1__REVOKE_DEVICE_REQUEST__INIT;
  rv.tenant_id = t;
  rv.device_id = dev;
  ck_assert_int_eq(call_code(gw, M("RevokeDevice"), &rv.base, (callopt){0}),
                   RPC_PERMISSION_DENIED);
  r = harness_rpc_call(sy, M("RevokeDevice"), &rv.base, NULL, NULL, NULL);
  CK_RPC_CODE(r, RPC_OK);
  rpc_result_free(r);
  ck_assert_int_eq(do_verify(gw, tok, NULL, 0), RPC_UNAUTHENTICATED);
  rpc_client_free(sy);
  rpc_client_free(gw);
}
END_TEST

/* ------------------------------------------------------- idempotency --- */

/* A Register or CreateUser request under an idempotency key (envelope),
 * on the auth at addr; returns the result (caller frees). */
static rpc_result *register_keyed(rpc_client *c, const char *tenant,
                                  const char *email, const char *pw,
                                  const char *name, const char *key) {
  Auth__V1__RegisterRequest req = AUTH__V1__REGISTER_REQUEST__INIT;
  req.email = (char *)email;
  req.password = (char *)pw;
  req.name = (char *)name;
  return call(c, M("Register"), &req.base,
              (callopt){.tenant = tenant, .key = key});
}

/* The user id in an OK Register/CreateUser answer (both have user = 1). */
static void answer_user_id(const rpc_result *r, char id[UUID_STR_LEN + 1]) {
  ck_assert_int_eq(r->code, RPC_OK);
  Auth__V1__RegisterResponse *resp =
      auth__v1__register_response__unpack(NULL, r->payload_len, r->payload);
  ck_assert_ptr_nonnull(resp);
  str_copy(id, resp->user->id, UUID_STR_LEN + 1);
  auth__v1__register_response__free_unpacked(resp, NULL);
}

static long long users_with_email(const char *email) {
  return harness_pg_count(
      &g_pg, "SELECT count(*) FROM auth.users WHERE email = $1", email);
}

START_TEST(register_with_idempotency_key_replays_and_refuses_changes) {
  rpc_client *c = client(g_auth_addr);
  char t[UUID_STR_LEN + 1], email[96], key[64], id1[UUID_STR_LEN + 1],
      id2[UUID_STR_LEN + 1];
  new_tenant(t);
  unique_email(email, sizeof email, "idem");
  harness_unique(key, sizeof key, "reg");
  rpc_result *r = register_keyed(c, t, email, PW, "Ida", key);
  answer_user_id(r, id1);
  rpc_result_free(r);
  /* Same key, same body: the first answer again, nothing created twice. */
  r = register_keyed(c, t, email, PW, "Ida", key);
  answer_user_id(r, id2);
  rpc_result_free(r);
  ck_assert_str_eq(id1, id2);
  ck_assert_int_eq(users_with_email(email), 1);
  /* Same key, another body - another name, another password, another
   * address: INVALID_ARGUMENT naming the key, nothing created. */
  char other[96];
  unique_email(other, sizeof other, "idem2");
  const char *names[] = {"Ida B", "Ida", "Ida"};
  const char *pws[] = {PW, PW_MARK "another-one", PW};
  const char *emails[] = {email, email, other};
  for (int i = 0; i < 3; i++) {
    r = register_keyed(c, t, emails[i], pws[i], names[i], key);
    CK_RPC_CODE(r, RPC_INVALID_ARGUMENT);
    CK_RPC_VIOLATION(r, "idempotency_key");
    ck_assert_str_eq(r->message,
                     "idempotency key reused with a different request");
    rpc_result_free(r);
  }
  ck_assert_int_eq(users_with_email(other), 0);
  /* Without a key, or with another one, the e-mail is simply taken. */
  ck_assert_int_eq(do_register(c, t, email, PW, NULL), RPC_ALREADY_EXISTS);
  r = register_keyed(c, t, email, PW, "Ida", "another-key");
  CK_RPC_CODE(r, RPC_ALREADY_EXISTS);
  rpc_result_free(r);
  /* The same key in another tenant is another key. */
  char t2[UUID_STR_LEN + 1];
  new_tenant(t2);
  r = register_keyed(c, t2, email, PW, "Ida", key);
  answer_user_id(r, id2);
  rpc_result_free(r);
  ck_assert_str_ne(id1, id2);
  rpc_client_free(c);
}
END_TEST

static rpc_result *create_keyed(rpc_client *c, const char *token,
                                const char *tenant, const char *email,
                                const char *pw, const char *role,
                                const char *key) {
  Auth__V1__CreateUserRequest req = AUTH__V1__CREATE_USER_REQUEST__INIT;
  req.tenant_id = token == NULL ? (char *)tenant : "";
  req.email = (char *)email;
  req.name = "Member";
  req.password = (char *)pw;
  req.role = (char *)role;
  return call(c, M("CreateUser"), &req.base,
              (callopt){.token = token, .key = key});
}

START_TEST(create_user_key_reused_with_another_request_is_refused) {
  rpc_client *c = client(g_auth_addr);
  char t[UUID_STR_LEN + 1], email[96], key[96], id1[UUID_STR_LEN + 1],
      id2[UUID_STR_LEN + 1];
  new_tenant(t);
  unique_email(email, sizeof email, "own");
  snprintf(key, sizeof key, "tenant-owner:%s", t);
  rpc_result *r = create_keyed(c, NULL, t, email, PW, "owner", key);
  answer_user_id(r, id1);
  rpc_result_free(r);
  r = create_keyed(c, NULL, t, email, PW, "owner", key);
  answer_user_id(r, id2);
  rpc_result_free(r);
  ck_assert_str_eq(id1, id2);
  /* The replay that used to ignore a changed body: another password (it
   * would have handed out the owner's session with issue_tokens), another
   * address, another role. */
  char other[96];
  unique_email(other, sizeof other, "own2");
  r = create_keyed(c, NULL, t, email, PW_MARK "guessed", "owner", key);
  CK_RPC_CODE(r, RPC_INVALID_ARGUMENT);
  CK_RPC_VIOLATION(r, "idempotency_key");
  rpc_result_free(r);
  r = create_keyed(c, NULL, t, other, PW, "owner", key);
  CK_RPC_CODE(r, RPC_INVALID_ARGUMENT);
  rpc_result_free(r);
  r = create_keyed(c, NULL, t, email, PW, "admin", key);
  CK_RPC_CODE(r, RPC_INVALID_ARGUMENT);
  rpc_result_free(r);
  ck_assert_int_eq(users_with_email(other), 0);

  /* A member's keys are its own: the owner using the same key string
   * creates a staff member, and replays it. */
  session owner;
  ck_assert_int_eq(do_login(c, t, email, PW, &owner, NULL, 0), RPC_OK);
  char staff[96], sid1[UUID_STR_LEN + 1], sid2[UUID_STR_LEN + 1];
  unique_email(staff, sizeof staff, "staff");
  r = create_keyed(c, owner.access, t, staff, PW, "staff", key);
  answer_user_id(r, sid1);
  rpc_result_free(r);
  r = create_keyed(c, owner.access, t, staff, PW, "staff", key);
  answer_user_id(r, sid2);
  rpc_result_free(r);
  ck_assert_str_eq(sid1, sid2);
  ck_assert_str_ne(sid1, id1);
  r = create_keyed(c, owner.access, t, staff, PW, "admin", key);
  CK_RPC_CODE(r, RPC_INVALID_ARGUMENT);
  rpc_result_free(r);
  rpc_client_free(c);
}
END_TEST

typedef struct reg_arg {
  const char *addr, *tenant, *email, *key;
  pthread_barrier_t *start; /* NULL: go at once */
  int code;
  char id[UUID_STR_LEN + 1];
} reg_arg;

/* Registers from a thread (no Check assertions here). */
static void *register_main(void *arg) {
  reg_arg *a = arg;
  a->code = -1;
  rpc_client *c = NULL;
  rpc_client_options co;
  rpc_client_options_init(&co);
  co.credential = as_service; /* as the gateway (t_as_tenants unset) */
  bool up = rpc_client_new(a->addr, &co, &c) == ERR_OK &&
            rpc_client_wait_connected(c, 1, 10000) == ERR_OK;
  if (a->start != NULL) pthread_barrier_wait(a->start);
  Auth__V1__RegisterRequest req = AUTH__V1__REGISTER_REQUEST__INIT;
  req.email = (char *)a->email;
  req.password = PW;
  req.name = "Twin";
  rpc_call_options o = RPC_CALL_OPTIONS_INIT;
  o.deadline_ms = 20000;
  o.tenant_id = a->tenant;
  o.idempotency_key = a->key;
  rpc_result *r = NULL;
  if (up &&
      rpc_client_call_message(c, M("Register"), &req.base, &o, &r) == ERR_OK) {
    a->code = r->code;
    Auth__V1__RegisterResponse *resp =
        r->code == RPC_OK ? auth__v1__register_response__unpack(
                                NULL, r->payload_len, r->payload)
                          : NULL;
    if (resp != NULL) str_copy(a->id, resp->user->id, sizeof a->id);
    auth__v1__register_response__free_unpacked(resp, NULL);
  }
  rpc_result_free(r);
  rpc_client_free(c);
  return NULL;
}

START_TEST(same_key_at_once_creates_one_user_and_a_running_first_is_409) {
  /* N registrations with one key at the same moment: every answer is the
   * one user or ABORTED (the first still running), and one row exists. */
  char t[UUID_STR_LEN + 1], email[96], key[64];
  new_tenant(t);
  unique_email(email, sizeof email, "twin");
  harness_unique(key, sizeof key, "twin");
  enum { N = 6 };
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, N);
  pthread_t th[N];
  reg_arg ra[N];
  for (int i = 0; i < N; i++) {
    ra[i] = (reg_arg){g_auth_addr, t, email, key, &start, -1, ""};
    pthread_create(&th[i], NULL, register_main, &ra[i]);
  }
  const char *winner = NULL;
  for (int i = 0; i < N; i++) {
    pthread_join(th[i], NULL);
    ck_assert_msg(ra[i].code == RPC_OK || ra[i].code == RPC_ABORTED,
                  "twin %d answered %d", i, ra[i].code);
    if (ra[i].code != RPC_OK) continue;
    if (winner == NULL) winner = ra[i].id;
    ck_assert_str_eq(ra[i].id, winner);
  }
  pthread_barrier_destroy(&start);
  ck_assert_ptr_nonnull(winner);
  ck_assert_int_eq(users_with_email(email), 1);

  /* ABORTED while the first is running: on the slow-hashing instance a
   * first call spends a long Argon2 hash holding the key; a second one
   * sent meanwhile is refused at once. A round where the first finished
   * before the second arrived proves nothing and is tried again. */
  rpc_client *c = client(g_slow_addr);
  bool seen = false;
  for (int round = 0; round < 5 && !seen; round++) {
    unique_email(email, sizeof email, "slow");
    harness_unique(key, sizeof key, "slow");
    pthread_t first;
    reg_arg fa = {g_slow_addr, t, email, key, NULL, -1, ""};
    pthread_create(&first, NULL, register_main, &fa);
    time_sleep_ms(40);
    Auth__V1__RegisterRequest req = AUTH__V1__REGISTER_REQUEST__INIT;
    req.email = email;
    req.password = PW;
    req.name = "Twin";
    rpc_result *r =
        call(c, M("Register"), &req.base, (callopt){.tenant = t, .key = key});
    pthread_join(first, NULL);
    ck_assert_int_eq(fa.code, RPC_OK);
    ck_assert_msg(r->code == RPC_ABORTED || r->code == RPC_OK,
                  "second answered %d", r->code);
    seen = r->code == RPC_ABORTED;
    rpc_result_free(r);
    /* After the first: its answer again. */
    char id[UUID_STR_LEN + 1];
    r = call(c, M("Register"), &req.base, (callopt){.tenant = t, .key = key});
    answer_user_id(r, id);
    rpc_result_free(r);
    ck_assert_str_eq(id, fa.id);
    ck_assert_int_eq(users_with_email(email), 1);
  }
  ck_assert_msg(seen, "never saw ABORTED while the first call was running");
  rpc_client_free(c);
}
END_TEST

/* Counts auth.users rows visible as the service's role, with app.tenant_id
 * set to tenant (NULL: not set). */
static int64_t visible_users(db_pool *p, const char *tenant) {
  db_conn *c = NULL;
  ck_assert_int_eq(db_acquire(p, &c), ERR_OK);
  ck_assert_int_eq(db_begin(c, tenant), ERR_OK);
  db_param role[] = {db_text("auth_app")};
  ck_assert_int_eq(
      db_exec(c, "SELECT set_config('role', $1, true)", role, 1, NULL), ERR_OK);
  db_result *r = NULL;
  ck_assert_int_eq(db_exec(c, "SELECT count(*) FROM auth.users", NULL, 0, &r),
                   ERR_OK);
  int64_t n = -1;
  ck_assert_int_eq(db_get_int64(r, 0, 0, &n), ERR_OK);
  db_result_free(r);
  ck_assert_int_eq(db_rollback(c), ERR_OK);
  db_release(c);
  return n;
}

START_TEST(row_level_security_is_the_second_wall) {
  /* Even a query without a tenant filter sees only the transaction's
   * tenant, as the role every auth transaction switches to. */
  rpc_client *c = client(g_auth_addr);
  char t1[UUID_STR_LEN + 1], t2[UUID_STR_LEN + 1], e[96];
  new_tenant(t1);
  new_tenant(t2);
  for (int i = 0; i < 2; i++) {
    unique_email(e, sizeof e, "rls");
    ck_assert_int_eq(do_register(c, t1, e, PW, NULL), RPC_OK);
  }
  unique_email(e, sizeof e, "rls");
  ck_assert_int_eq(do_register(c, t2, e, PW, NULL), RPC_OK);
  db_config dc = {.conninfo = g_pg.url, .max_conns = 1};
  db_pool *p = NULL;
  ck_assert_int_eq(db_pool_new(&dc, &p), ERR_OK);
  ck_assert_int_eq(visible_users(p, t1), 2);
  ck_assert_int_eq(visible_users(p, t2), 1);
  ck_assert_int_eq(visible_users(p, NULL), 0);
  db_pool_free(p);
  rpc_client_free(c);
}
END_TEST

START_TEST(keys_publishes_the_signing_key) {
  rpc_client *c = client(g_auth_addr);
  Auth__V1__KeysRequest req = AUTH__V1__KEYS_REQUEST__INIT;
  rpc_result *r = call(c, M("Keys"), &req.base, (callopt){0});
  ck_assert_int_eq(r->code, RPC_OK);
  Auth__V1__KeysResponse *resp =
      auth__v1__keys_response__unpack(NULL, r->payload_len, r->payload);
  ck_assert_uint_eq(resp->n_keys, 1);
  char pid[PASETO_PID_LEN + 1];
  paseto_pid(&g_pk, pid);
  ck_assert_str_eq(resp->keys[0]->kid, pid);
  ck_assert_str_eq(resp->keys[0]->alg, "v4.public");
  ck_assert_str_eq(resp->keys[0]->status, "active");
  char b64[64];
  sodium_bin2base64(b64, sizeof b64, g_pk.b, 32,
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  ck_assert_str_eq(resp->keys[0]->public_key, b64);
  auth__v1__keys_response__free_unpacked(resp, NULL);
  rpc_result_free(r);
  rpc_client_free(c);
}
END_TEST

/* A login's code, message and retry-after (ms). */
typedef struct login_out {
  int code;
  uint32_t retry_after_ms;
  char msg[128];
} login_out;

static login_out login_ra(rpc_client *c, const char *tenant, const char *email,
                          const char *pw) {
  Auth__V1__LoginRequest req = AUTH__V1__LOGIN_REQUEST__INIT;
  req.email = (char *)email;
  req.password = (char *)pw;
  rpc_result *r = call(c, M("Login"), &req.base, (callopt){.tenant = tenant});
  login_out o = {.code = r->code, .retry_after_ms = r->retry_after_ms};
  str_copy(o.msg, r->message, sizeof o.msg);
  if (r->code == RPC_OK) {
    Auth__V1__LoginResponse *resp =
        auth__v1__login_response__unpack(NULL, r->payload_len, r->payload);
    ck_assert_ptr_nonnull(resp);
    record_secret(resp->refresh_token);
    auth__v1__login_response__free_unpacked(resp, NULL);
  }
  rpc_result_free(r);
  return o;
}

#define LOCKED_MSG "too many failed logins; try later"
#define WRONG PW_MARK "wrong-guess"

/* Five failures are free; the sixth attempt, whatever its password, is
 * refused with a retry-after and no password check. Returns the first
 * lock's retry-after. */
static uint32_t fail_until_locked(rpc_client *c, const char *t,
                                  const char *email, const char *right_pw) {
  for (int i = 0; i < 5; i++) {
    login_out o = login_ra(c, t, email, WRONG);
    ck_assert_msg(o.code == RPC_UNAUTHENTICATED, "failure %d answered %d (%s)",
                  i + 1, o.code, o.msg);
    ck_assert_uint_eq(o.retry_after_ms, 0);
  }
  login_out o = login_ra(c, t, email, WRONG);
  ck_assert_int_eq(o.code, RPC_RESOURCE_EXHAUSTED);
  ck_assert_str_eq(o.msg, LOCKED_MSG);
  ck_assert_uint_gt(o.retry_after_ms, 0);
  ck_assert_uint_le(o.retry_after_ms, 1000);
  /* The right password too, while the lock lives. */
  login_out r = login_ra(c, t, email, right_pw);
  ck_assert_int_eq(r.code, RPC_RESOURCE_EXHAUSTED);
  ck_assert_str_eq(r.msg, LOCKED_MSG);
  ck_assert_uint_gt(r.retry_after_ms, 0);
  return o.retry_after_ms;
}

START_TEST(failed_logins_lock_the_account_then_success_resets) {
  rpc_client *c = client(g_auth_addr);
  char t[UUID_STR_LEN + 1], email[96];
  new_tenant(t);
  unique_email(email, sizeof email, "lock");
  ck_assert_int_eq(do_register(c, t, email, PW, NULL), RPC_OK);
  uint32_t wait = fail_until_locked(c, t, email, PW);
  /* The same account spelt another way is the same counter (auth's
   * normalisation: case and surrounding spaces). */
  char variant[128];
  snprintf(variant, sizeof variant, "  %s ", email);
  variant[2] = (char)(variant[2] - 'a' + 'A');
  login_out v = login_ra(c, t, variant, PW);
  ck_assert_int_eq(v.code, RPC_RESOURCE_EXHAUSTED);
  /* Another account of the tenant is not slowed. */
  char other[96];
  unique_email(other, sizeof other, "other");
  ck_assert_int_eq(login_ra(c, t, other, WRONG).code, RPC_UNAUTHENTICATED);

  /* After the lock: one more failure locks again, twice as long. */
  time_sleep_ms(wait + 50);
  ck_assert_int_eq(login_ra(c, t, email, WRONG).code, RPC_UNAUTHENTICATED);
  login_out o = login_ra(c, t, email, PW);
  ck_assert_int_eq(o.code, RPC_RESOURCE_EXHAUSTED);
  ck_assert_uint_gt(o.retry_after_ms, 1000);
  ck_assert_uint_le(o.retry_after_ms, 2000);

  /* After that lock the right password works, and resets the count:
   * five failures are free again. */
  time_sleep_ms(o.retry_after_ms + 50);
  ck_assert_int_eq(login_ra(c, t, email, PW).code, RPC_OK);
  for (int i = 0; i < 5; i++)
    ck_assert_int_eq(login_ra(c, t, email, WRONG).code, RPC_UNAUTHENTICATED);
  ck_assert_int_eq(login_ra(c, t, email, PW).code, RPC_RESOURCE_EXHAUSTED);
  rpc_client_free(c);
}
END_TEST

START_TEST(unknown_email_is_locked_exactly_like_an_account) {
  /* Whether the account exists must not show: same codes, same
   * messages, same lock, for an address nobody registered. */
  rpc_client *c = client(g_auth_addr);
  char t[UUID_STR_LEN + 1], known[96], unknown[96];
  new_tenant(t);
  unique_email(known, sizeof known, "known");
  unique_email(unknown, sizeof unknown, "ghost");
  ck_assert_int_eq(do_register(c, t, known, PW, NULL), RPC_OK);
  uint32_t w1 = fail_until_locked(c, t, known, PW);
  uint32_t w2 = fail_until_locked(c, t, unknown, PW);
  ck_assert_uint_gt(w1, 0);
  ck_assert_uint_gt(w2, 0);
  login_out a = login_ra(c, t, known, WRONG);
  login_out b = login_ra(c, t, unknown, WRONG);
  ck_assert_int_eq(a.code, b.code);
  ck_assert_str_eq(a.msg, b.msg);
  /* Another tenant's account of the same address is untouched. */
  char t2[UUID_STR_LEN + 1];
  new_tenant(t2);
  ck_assert_int_eq(do_register(c, t2, known, PW, NULL), RPC_OK);
  ck_assert_int_eq(login_ra(c, t2, known, PW).code, RPC_OK);
  rpc_client_free(c);
}
END_TEST

START_TEST(redis_down_the_login_lock_fails_open_or_closed_as_configured) {
  /* The user is made through the healthy instance (one database). */
  rpc_client *c = client(g_auth_addr);
  char t[UUID_STR_LEN + 1], email[96];
  new_tenant(t);
  unique_email(email, sizeof email, "nolock");
  ck_assert_int_eq(do_register(c, t, email, PW, NULL), RPC_OK);
  rpc_client_free(c);

  /* Closed: without its counter auth decides nothing, not even the right
   * password: UNAVAILABLE with a retry-after, no session. */
  rpc_client *closed = client(g_lock_closed_addr);
  login_out o = login_ra(closed, t, email, PW);
  ck_assert_int_eq(o.code, RPC_UNAVAILABLE);
  ck_assert_uint_gt(o.retry_after_ms, 0);
  ck_assert_int_eq(login_ra(closed, t, email, WRONG).code, RPC_UNAVAILABLE);
  rpc_client_free(closed);

  /* Open (the default): logins go on, unthrottled - more failures than
   * are free, and the right password still works. */
  rpc_client *open = client(g_lock_open_addr);
  for (int i = 0; i < 7; i++)
    ck_assert_int_eq(login_ra(open, t, email, WRONG).code, RPC_UNAUTHENTICATED);
  ck_assert_int_eq(login_ra(open, t, email, PW).code, RPC_OK);
  rpc_client_free(open);
}
END_TEST

typedef struct login_arg {
  const char *tenant;
  const char *email;
  int code;
  int64_t ms;
} login_arg;

static void *slow_login_main(void *arg) {
  login_arg *l = arg;
  rpc_client *c = client(g_slow_addr);
  int64_t t0 = time_mono_ms();
  l->code = do_login(c, l->tenant, l->email, PW_MARK "wrong", NULL, NULL, 0);
  l->ms = time_mono_ms() - t0;
  rpc_client_free(c);
  return NULL;
}

START_TEST(login_overload_is_refused_fast_and_other_calls_still_served) {
  /* The slow instance: 1 hashing thread, 2 admitted password jobs, 4 RPC
   * workers, expensive Argon2. Eight logins at once must not take every
   * worker: the surplus is refused at once, and Keys is answered
   * meanwhile. */
  rpc_client *c = client(g_slow_addr);
  char t[UUID_STR_LEN + 1];
  new_tenant(t);
  enum { N = 8 };
  pthread_t th[N];
  login_arg la[N];
  for (int i = 0; i < N; i++) {
    la[i] = (login_arg){t, "nobody@example.com", -1, 0};
    pthread_create(&th[i], NULL, slow_login_main, &la[i]);
  }
  time_sleep_ms(50);
  Auth__V1__KeysRequest kr = AUTH__V1__KEYS_REQUEST__INIT;
  int64_t t0 = time_mono_ms();
  ck_assert_int_eq(call_code(c, M("Keys"), &kr.base, (callopt){0}), RPC_OK);
  int64_t keys_ms = time_mono_ms() - t0;
  int refused = 0, answered = 0;
  for (int i = 0; i < N; i++) {
    pthread_join(th[i], NULL);
    if (la[i].code == RPC_RESOURCE_EXHAUSTED) refused++;
    if (la[i].code == RPC_UNAUTHENTICATED) answered++;
  }
  ck_assert_int_eq(refused + answered, N);
  ck_assert_int_ge(refused, 1);
  ck_assert_int_ge(answered, 1);
  /* Generous bound (a loaded 2-core machine): Keys did not queue behind
   * eight Argon2 hashes of this cost. */
  ck_assert_msg(keys_ms < 2000, "Keys took %lld ms during the login burst",
                (long long)keys_ms);
  rpc_client_free(c);
}
END_TEST

/* Searches file for needle; true when found. */
static bool file_contains(const char *path, const char *needle) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return false;
  bool found = false;
  char line[16384];
  while (!found && fgets(line, sizeof line, f) != NULL)
    found = strstr(line, needle) != NULL;
  fclose(f);
  return found;
}

START_TEST(logs_never_contain_secrets) {
  const char *logs[] = {harness_log_path(g_auth), harness_log_path(g_slow),
                        harness_log_path(g_verifyd), harness_log_path(g_busd)};
  /* The logs are not empty: the services did log about this run. */
  ck_assert(file_contains(logs[0], "\"msg\":\"user registered\""));
  ck_assert(file_contains(logs[0], "AUTH_SIGNING_KEYS"));
  char pk_hex[PASETO_PUBLIC_HEX_LEN + 1];
  paseto_public_key_to_hex(&g_pk, pk_hex);
  for (size_t i = 0; i < sizeof logs / sizeof logs[0]; i++) {
    ck_assert_msg(!file_contains(logs[i], PW_MARK), "password in %s", logs[i]);
    ck_assert_msg(!file_contains(logs[i], g_sk_hex), "secret key in %s",
                  logs[i]);
    /* The seed half alone, too. */
    char seed[65];
    str_copy(seed, g_sk_hex, sizeof seed);
    ck_assert_msg(!file_contains(logs[i], seed), "key seed in %s", logs[i]);
    ck_assert_msg(!file_contains(logs[i], "$argon2id$"), "hash in %s", logs[i]);
    FILE *f = fopen(g_secrets_path, "r");
    ck_assert_ptr_nonnull(f);
    char tok[128];
    int n = 0;
    while (fgets(tok, sizeof tok, f) != NULL) {
      tok[strcspn(tok, "\n")] = '\0';
      if (tok[0] == '\0') continue;
      n++;
      ck_assert_msg(!file_contains(logs[i], tok), "refresh token in %s",
                    logs[i]);
    }
    fclose(f);
    ck_assert_int_gt(n, 10);
  }
}
END_TEST

/* ------------------------------------------------------------- set-up --- */

/* Every auth instance of this test; slow hashing may take a while to
 * start. */
static const harness_service_opts kAuth = {.pg = &g_pg,
                                           .redis = &g_redis,
                                           .log_level = "debug",
                                           .ready_timeout_ms = 60000};

/* An auth instance with extra (its signing key among them); its RPC
 * address into addr. */
static harness_proc *start_auth(harness_service *s, const char *name,
                                char *addr, size_t cap, char *const *extra) {
  if (!harness_service_start(s, name, "services/auth/auth", &kAuth, extra))
    return NULL;
  snprintf(addr, cap, "%s", s->rpc_url);
  return s->proc;
}

static harness_proc *start_verifyd(const char *name, const char *bus,
                                   char *addr, size_t cap) {
  int port = harness_free_port(), admin = harness_free_port();
  char e[10][300];
  snprintf(e[0], sizeof e[0], "AUTH_ADDR=%s", g_auth_addr);
  snprintf(e[1], sizeof e[1], "REDIS_URL=%s", g_redis.url);
  snprintf(e[2], sizeof e[2], "RPC_LISTEN=tcp://127.0.0.1:%d", port);
  snprintf(e[3], sizeof e[3], "ADMIN_ADDR=127.0.0.1");
  snprintf(e[4], sizeof e[4], "ADMIN_PORT=%d", admin);
  snprintf(e[5], sizeof e[5], "LOG_LEVEL=debug");
  snprintf(e[6], sizeof e[6], "AUTH_BUS=%s", bus != NULL ? bus : "");
  snprintf(e[7], sizeof e[7], "VERIFY_RECHECK=%s",
           bus != NULL ? "1h" : "500ms");
  snprintf(e[8], sizeof e[8], "SERVICE_KEY_FILE=%s",
           harness_identity_key_file("auth"));
  snprintf(e[9], sizeof e[9], "SERVICE_TRUST_FILE=%s",
           harness_identity_trust_file());
  char *envp[] = {e[0], e[1], e[2], e[3], e[4], e[5],
                  e[6], e[7], e[8], e[9], NULL};
  char *argv[] = {(char *)harness_bin_path("tests/auth/verifyd"), NULL};
  harness_proc *p = harness_spawn(name, argv, envp);
  if (p == NULL) return NULL;
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/readyz", admin);
  if (!harness_wait_http_ok(url, 30000)) return NULL;
  snprintf(addr, cap, "tcp://127.0.0.1:%d", port);
  return p;
}

int main(void) {
  const char *dir = harness_init();
  if (paseto_init() != ERR_OK) return EXIT_FAILURE;
  paseto_keygen(&g_sk, &g_pk);
  paseto_secret_key_to_hex(&g_sk, g_sk_hex);
  snprintf(g_secrets_path, sizeof g_secrets_path, "%s/refresh_tokens.txt", dir);
  /* sync's key in the trust bundle before auth reads it (device tokens). */
  (void)harness_identity_key_file("sync");
  if (harness_pg_start(&g_pg) != 0 || harness_redis_start(&g_redis) != 0) {
    harness_dump_logs();
    fprintf(stderr, "cannot start PostgreSQL/Redis\n");
    return EXIT_FAILURE;
  }
  char keys[32 + PASETO_SECRET_HEX_LEN + 1];
  snprintf(keys, sizeof keys, "AUTH_SIGNING_KEYS=%s", g_sk_hex);
  /* The fast one publishes auth.revoked (verifyd-bus follows it); the
   * slow one, for the overload test, publishes nothing. */
  char *fast[] = {keys, "AUTH_PWHASH_OPSLIMIT=1", "AUTH_PWHASH_MEMLIMIT_KIB=8",
                  "RPC_WORKERS=8", NULL};
  char *slow[] = {keys, "AUTH_PWHASH_OPSLIMIT=3",
                  "AUTH_PWHASH_MEMLIMIT_KIB=65536", "AUTH_HASH_THREADS=1",
                  "AUTH_HASH_MAX_PENDING=2", "RPC_WORKERS=4",
                  /* Its overload test is about the hashing pool, not the
                   * per-account slowdown: keep the latter out of it. */
                  "AUTH_LOGIN_FAILURES_FREE=1000", "BUS_LISTEN", NULL};
  static harness_service auth_svc, slow_svc;
  g_auth = start_auth(&auth_svc, "auth", g_auth_addr, sizeof g_auth_addr, fast);
  snprintf(g_bus_url, sizeof g_bus_url, "%s", auth_svc.bus_url);
  g_slow = g_auth != NULL ? start_auth(&slow_svc, "auth-slow", g_slow_addr,
                                       sizeof g_slow_addr, slow)
                          : NULL;
  g_verifyd = g_slow != NULL ? start_verifyd("verifyd", NULL, g_verifyd_addr,
                                             sizeof g_verifyd_addr)
                             : NULL;
  g_busd = g_verifyd != NULL ? start_verifyd("verifyd-bus", g_bus_url,
                                             g_busd_addr, sizeof g_busd_addr)
                             : NULL;
  /* The lock's fail modes: two instances on a Redis of their own, which
   * is stopped once they are ready. */
  static harness_redis lock_redis;
  static harness_service open_svc, closed_svc;
  char lock_url[160];
  bool lock_ok = g_busd != NULL && harness_redis_start(&lock_redis) == 0;
  snprintf(lock_url, sizeof lock_url, "REDIS_URL=%s", lock_redis.url);
  char *lock_open[] = {keys, lock_url, "AUTH_LOGIN_LOCK_FAIL=open",
                       "BUS_LISTEN", NULL};
  char *lock_closed[] = {keys, lock_url, "AUTH_LOGIN_LOCK_FAIL=closed",
                         "BUS_LISTEN", NULL};
  lock_ok = lock_ok &&
            start_auth(&open_svc, "auth-lock-open", g_lock_open_addr,
                       sizeof g_lock_open_addr, lock_open) != NULL &&
            start_auth(&closed_svc, "auth-lock-closed", g_lock_closed_addr,
                       sizeof g_lock_closed_addr, lock_closed) != NULL;
  sodium_memzero(keys, sizeof keys);
  if (lock_ok) harness_redis_stop(&lock_redis);
  if (g_busd == NULL || !lock_ok) {
    harness_dump_logs();
    fprintf(stderr, "cannot start auth/verifyd\n");
    return EXIT_FAILURE;
  }

  Suite *s = suite_create("auth_itest");
  TCase *tc = tcase_create("sessions");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, register_login_refresh_logout);
  tcase_add_test(tc, logout_without_refresh_token_revokes_the_session);
  tcase_add_test(tc, wrong_email_and_wrong_password_answer_identically);
  tcase_add_test(tc, register_validates_and_names_fields);
  tcase_add_test(tc, refresh_reuse_revokes_the_whole_family);
  tcase_add_test(tc, concurrent_refreshes_of_one_token_yield_at_most_one_pair);
  tcase_add_test(tc, same_email_in_two_tenants_is_two_users);
  tcase_add_test(tc, row_level_security_is_the_second_wall);
  suite_add_tcase(s, tc);

  tc = tcase_create("tokens");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, expired_and_not_yet_valid_tokens_are_refused);
  tcase_add_test(tc, unknown_key_and_tampered_tokens_are_refused);
  tcase_add_test(tc, revocation_is_seen_by_another_process_within_a_second);
  tcase_add_test(tc, revocation_reaches_a_bus_subscriber_without_redis_recheck);
  tcase_add_test(tc, keys_publishes_the_signing_key);
  tcase_add_test(tc, suspended_tenant_tokens_and_logins_are_refused);
  suite_add_tcase(s, tc);

  tc = tcase_create("members");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, members_and_roles);
  tcase_add_test(tc, two_owners_demoting_each_other_leave_one_owner);
  tcase_add_test(tc, delete_tenant_users_removes_everyone_and_their_tokens);
  tcase_add_test(tc, device_tokens_are_for_sync_and_revocable);
  suite_add_tcase(s, tc);

  tc = tcase_create("idempotency");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, register_with_idempotency_key_replays_and_refuses_changes);
  tcase_add_test(tc, create_user_key_reused_with_another_request_is_refused);
  tcase_add_test(tc,
                 same_key_at_once_creates_one_user_and_a_running_first_is_409);
  suite_add_tcase(s, tc);

  tc = tcase_create("lockout");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, failed_logins_lock_the_account_then_success_resets);
  tcase_add_test(tc, unknown_email_is_locked_exactly_like_an_account);
  tcase_add_test(tc,
                 redis_down_the_login_lock_fails_open_or_closed_as_configured);
  suite_add_tcase(s, tc);

  tc = tcase_create("overload");
  tcase_set_timeout(tc, 180);
  tcase_add_test(tc,
                 login_overload_is_refused_fast_and_other_calls_still_served);
  suite_add_tcase(s, tc);

  /* Last: after every other test has produced logs. */
  tc = tcase_create("secrets");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, logs_never_contain_secrets);
  suite_add_tcase(s, tc);

  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  if (failed != 0) harness_dump_logs();
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
