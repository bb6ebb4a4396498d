/*
 * handlers.c - the auth.v1.Auth RPC handlers (see handlers.h).
 *
 * Every handler has the same shape, with libs/svc's handler.h steps:
 * bound and unpack the request (exactly one __free_unpacked, after wiping
 * any password in it), establish who calls (a verified token for member
 * methods, libs/authn's authn_check_call; the envelope or body tenant for
 * anonymous ones), validate the input with field violations, do the work
 * through store.c / pwpool.c / revoker.c, and pack the answer.
 *
 * Password work (Register, CreateUser, Login) goes through the hashing
 * pool, which refuses at once when full: a handler never queues behind an
 * unbounded number of hashes, and at most the pool's admission limit of
 * RPC workers ever wait for one (pwpool.h explains the sizing).
 *
 * Login answers an unknown e-mail exactly like a wrong password - same
 * code, same message - and verifies the password against a dummy hash of
 * the same cost when the user does not exist, so the answer time does not
 * tell either. A disabled user also gets that answer, after the same
 * work. Before any of that, each attempt is charged on the account's
 * failure counter in Redis (loginlock.h), the same for accounts that do
 * not exist; a locked account is answered RESOURCE_EXHAUSTED with a
 * retry-after and no lookup or hash at all, and a correct password
 * resets the counter.
 *
 * Token times: iat and nbf are whole seconds (claims.h), and never earlier
 * than the user's tokens_valid_after rounded up to the second, the value a
 * role change or removal recorded as the user's revocation cut-off. So a
 * token issued right after a role change is not caught by the revocation
 * of the tokens that carried the old role (verifiers accept an iat up to
 * their leeway in the future).
 */
#include "services/auth/handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "libs/authn/authn_caller.h"
#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"
#include "libs/obs/log.h"
#include "libs/obs/metrics.h"
#include "libs/svc/handler.h"
#include "proto/auth/v1/auth.pb-c.h"
#include "services/auth/idem.h"
#include "services/auth/validate.h"

#define M(name) "auth.v1.Auth/" name
#define TOKEN_CAP (PASETO_TOKEN_MAX + 1)
#define BAD_LOGIN "invalid e-mail or password"
#define BAD_REFRESH "invalid refresh token"
#define LOGIN_LOCKED "too many failed logins; try later"

/* ------------------------------------------------------------ helpers --- */

static metrics_child *login_metric(const char *result) {
  const char *labels[] = {"result"};
  metrics_family *f = metrics_counter("auth_logins_total",
                                      "Login attempts by result", 1, labels);
  const char *v[] = {result};
  return metrics_child_get(f, v);
}

static metrics_child *refresh_metric(const char *result) {
  const char *labels[] = {"result"};
  metrics_family *f = metrics_counter("auth_refreshes_total",
                                      "Refresh attempts by result", 1, labels);
  const char *v[] = {result};
  return metrics_child_get(f, v);
}

static void wipe_str(char *s) {
  if (s != NULL) sodium_memzero(s, strlen(s));
}

/* The pool's answers to a password job. */
static void pw_fail(rpc_reply *reply, int rc) {
  if (rc == ERR_TOOBIG)
    rpc_reply_status(reply, RPC_RESOURCE_EXHAUSTED,
                     "too many password operations in progress, retry later");
  else if (rc == ERR_TIMEOUT)
    rpc_reply_status(reply, RPC_DEADLINE_EXCEEDED, "deadline exceeded");
  else
    handler_reply_error(reply, rc, "hash the password");
}

static void user_proto(const auth_user *u, Auth__V1__User *p) {
  auth__v1__user__init(p);
  p->id = (char *)u->id;
  p->email = (char *)u->email;
  p->name = (char *)u->name;
  p->role = (char *)u->role;
  p->created_at = (char *)u->created_at;
  p->tenant_id = (char *)u->tenant_id;
  p->phone = (char *)u->phone;
}

/* Verifies the caller's forwarded token with the role the method's
 * declaration asks for (auth_rpc.proto: any member). On failure the
 * reply is set. */
static bool caller(auth_ctx *x, const rpc_call *call, rpc_reply *reply,
                   paseto_claims *cl) {
  return authn_check_call(x->verifier, call, handler_min_rank(call), cl,
                          reply) == ERR_OK;
}

static bool is_manager(const paseto_claims *cl) {
  return authn_role_rank(cl->role) >= AUTHN_ROLE_ADMIN;
}

/* An owner or admin of the token's tenant (the declared role of the
 * methods that use it: CreateUser, ListMembers, UpdateRole, RemoveUser). */
static bool manager(auth_ctx *x, const rpc_call *call, rpc_reply *reply,
                    paseto_claims *cl) {
  return authn_check_call(x->verifier, call, handler_min_rank(call), cl,
                          reply) == ERR_OK;
}

/* The tenant of an anonymous call: the body's field, else the envelope. */
static bool anon_tenant(const rpc_call *call, const char *body_tid,
                        rpc_reply *reply, const char **out) {
  const char *t =
      body_tid != NULL && body_tid[0] != '\0' ? body_tid : call->tenant_id;
  if (t[0] == '\0' || !uuid_is_valid(t)) {
    handler_reply_field(reply, RPC_INVALID_ARGUMENT, "a tenant is required",
                        "tenant_id", "must be a tenant id");
    return false;
  }
  *out = t;
  return true;
}

static bool tenant_suspended(auth_ctx *x, const char *tid) {
  if (x->redis == NULL) return false;
  char key[96];
  snprintf(key, sizeof key, "tenant:status:%s", tid);
  char *v = NULL;
  size_t n = 0;
  bool susp = false;
  /* Fail open like the verifier: Redis holds what may be lost. */
  if (cache_get(x->redis, key, &v, &n) == ERR_OK)
    susp = n == 9 && memcmp(v, "suspended", 9) == 0;
  free(v);
  return susp;
}

static void suspended(rpc_reply *reply) {
  rpc_reply_status(reply, RPC_PERMISSION_DENIED, "tenant suspended");
}

#define PHONE_RULE "must be an international number: + and 8 to 15 digits"

/* The fields of a new user as sent. */
typedef struct new_user {
  const char *email, *name, *password, *role, *phone;
} new_user;

/* Validates the fields of a new user into u (email and phone
 * normalised); false (reply set) when any fails, naming every failed
 * field. */
static bool check_new_user(rpc_reply *reply, const new_user *in, auth_user *u) {
  vlist v;
  vlist_init(&v);
  const char *name = in->name, *password = in->password, *role = in->role;
  if (!validate_email(in->email, u->email, sizeof u->email))
    vlist_add(&v, "must be a valid e-mail address", "email");
  if (!validate_phone(in->phone, u->phone, sizeof u->phone))
    vlist_add(&v, PHONE_RULE, "phone");
  if (!validate_name(name))
    vlist_add(&v, "must be 1 to 100 characters", "name");
  if (!validate_password(password))
    vlist_add(&v, "must be 8 to 128 characters", "password");
  if (role != NULL && !validate_role(role))
    vlist_add(&v, "must be one of owner, admin, staff, customer", "role");
  if (v.n == 0) return true;
  handler_reply_invalid(reply, "invalid user", &v);
  return false;
}

/* -------------------------------------------------------------- tokens --- */

void auth_refresh_token_new(char out[AUTH_REFRESH_TOKEN_LEN + 1],
                            uint8_t hash[STORE_HASHBYTES]) {
  uint8_t raw[32];
  randombytes_buf(raw, sizeof raw);
  sodium_bin2base64(out, AUTH_REFRESH_TOKEN_LEN + 1, raw, sizeof raw,
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  crypto_hash_sha256(hash, raw, sizeof raw);
  sodium_memzero(raw, sizeof raw);
}

int auth_refresh_token_hash(const char *token, uint8_t hash[STORE_HASHBYTES]) {
  if (token == NULL ||
      strnlen(token, AUTH_REFRESH_TOKEN_LEN + 1) != AUTH_REFRESH_TOKEN_LEN)
    return ERR_INVAL;
  uint8_t raw[33];
  size_t n = 0;
  if (sodium_base642bin(raw, sizeof raw, token, AUTH_REFRESH_TOKEN_LEN, NULL,
                        &n, NULL,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
      n != 32) {
    sodium_memzero(raw, sizeof raw);
    return ERR_INVAL;
  }
  crypto_hash_sha256(hash, raw, 32);
  sodium_memzero(raw, sizeof raw);
  return ERR_OK;
}

static int sign_access(auth_ctx *x, const auth_user *u, const char *jti,
                       char *out, size_t cap) {
  paseto_claims c;
  memset(&c, 0, sizeof c);
  str_copy(c.iss, x->issuer, sizeof c.iss);
  str_copy(c.sub, u->id, sizeof c.sub);
  str_copy(c.tid, u->tenant_id, sizeof c.tid);
  str_copy(c.role, u->role, sizeof c.role);
  str_copy(c.jti, jti, sizeof c.jti);
  int64_t now = time_now_ms();
  int64_t iat_s = now / 1000;
  int64_t floor_s = revoker_user_cutoff_s(u->tokens_valid_after_ms);
  if (iat_s < floor_s) iat_s = floor_s;
  c.has_iat = c.has_nbf = c.has_exp = true;
  c.iat_ms = c.nbf_ms = iat_s * 1000;
  c.exp_ms = now + x->access_ttl_ms;
  return auth_keys_sign(x->keys, &c, out, cap, NULL);
}

/* A new session for u: a refresh family with its first token, and an
 * access token. refresh must be wiped by the caller after use. */
static int issue_session(auth_ctx *x, const auth_user *u, char *access,
                         char refresh[AUTH_REFRESH_TOKEN_LEN + 1]) {
  char jti[UUID_STR_LEN + 1];
  uuid_v7_str(jti);
  uint8_t h[STORE_HASHBYTES];
  auth_refresh_token_new(refresh, h);
  int rc = store_session_create(x->store, u->tenant_id, u->id, h, jti,
                                time_now_ms() + x->refresh_ttl_ms);
  sodium_memzero(h, sizeof h);
  if (rc == ERR_OK) rc = sign_access(x, u, jti, access, TOKEN_CAP);
  return rc;
}

static uint32_t expires_in(const auth_ctx *x) {
  return (uint32_t)(x->access_ttl_ms / 1000);
}

/* ----------------------------------------------- idempotent creation --- */

/* One user to create, possibly under an idempotency key (idem.h). */
typedef struct creation {
  const char *tid;
  const char *principal; /* scope of key */
  const char *key;       /* "" for none */
  uint8_t hash[AUTH_IDEM_HASH_LEN];
  const char *password;
  auth_user u; /* id, email, name, role */
} creation;

/* Checks an idempotency key's shape; false with the reply set. */
static bool idem_key_ok(rpc_reply *reply, const char *key) {
  size_t n = strlen(key);
  if (n <= STORE_KEY_MAX && str_is_printable(key, n)) return true;
  handler_reply_field(reply, RPC_INVALID_ARGUMENT, "invalid idempotency key",
                      "idempotency_key",
                      "must be 1 to 255 printable characters");
  return false;
}

enum found { FOUND_NONE, FOUND_REPLAY, FOUND_REPLIED };

/* The user an earlier call with this key made: FOUND_REPLAY (*stored set)
 * for the same request, FOUND_REPLIED (reply set) for another request or
 * a failure, FOUND_NONE when the key is new. */
static enum found earlier(auth_ctx *x, rpc_reply *reply, const creation *cr,
                          auth_user *stored) {
  uint8_t h[STORE_REQHASH_LEN];
  bool has_hash = false;
  int rc = store_user_by_creation_key(x->store, cr->tid, cr->principal, cr->key,
                                      stored, h, &has_hash);
  if (rc == ERR_NOTFOUND) return FOUND_NONE;
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "create user");
    return FOUND_REPLIED;
  }
  if (!has_hash || sodium_memcmp(h, cr->hash, sizeof h) == 0)
    return FOUND_REPLAY;
  handler_reply_field(reply, RPC_INVALID_ARGUMENT,
                      "idempotency key reused with a different request",
                      "idempotency_key", "was used for another request");
  return FOUND_REPLIED;
}

/* Hashes the password and inserts the user; a concurrent twin that won
 * the key is answered like a replay. */
static bool insert_new(auth_ctx *x, const rpc_call *call, rpc_reply *reply,
                       creation *cr, auth_user *stored) {
  int rc = pwpool_hash(x->pw, cr->password, strlen(cr->password),
                       call->deadline_mono_ms, cr->u.password_hash);
  if (rc != ERR_OK) {
    pw_fail(reply, rc);
    return false;
  }
  bool keyed = cr->key[0] != '\0';
  store_creation sc = {cr->principal, cr->key, cr->hash};
  rc = store_user_insert(x->store, cr->tid, &cr->u, keyed ? &sc : NULL, NULL,
                         stored);
  sodium_memzero(cr->u.password_hash, sizeof cr->u.password_hash);
  /* A twin with the same key collides on two unique indexes, the e-mail's
   * and the key's, and PostgreSQL reports whichever it checks first: look
   * the key up whatever constraint fired (the twin has committed by now).
   * Only when no call made this key is it another user's e-mail. */
  if (rc == ERR_EXISTS && keyed) {
    enum found f = earlier(x, reply, cr, stored);
    if (f != FOUND_NONE) return f == FOUND_REPLAY;
  }
  if (rc == ERR_EXISTS) {
    handler_reply_field(reply, RPC_ALREADY_EXISTS, "e-mail already registered",
                        "email", "already registered in this tenant");
    return false;
  }
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "create user");
    return false;
  }
  log_info("user created", "tenant_id", cr->tid, "user_id", stored->id, "role",
           stored->role);
  return true;
}

/* Creates cr's user, or finds the one an earlier call with the same key
 * made (same request: *replayed). While a first call with the key is
 * still running: ABORTED. false with the reply set on any refusal. */
static bool create_user(auth_ctx *x, const rpc_call *call, rpc_reply *reply,
                        creation *cr, auth_user *stored, bool *replayed) {
  *replayed = false;
  if (cr->key[0] == '\0') return insert_new(x, call, reply, cr, stored);
  auth_idem_hash(x->idem_key, call->method, call->payload, call->payload_len,
                 cr->hash);
  enum found f = earlier(x, reply, cr, stored);
  if (f != FOUND_NONE) {
    *replayed = f == FOUND_REPLAY;
    return *replayed;
  }
  bool claimed = false;
  auth_idem_claim(x->redis, cr->tid, cr->principal, cr->key, call->request_id,
                  call->attempt, call->deadline_mono_ms - time_mono_ms() + 1000,
                  &claimed);
  if (!claimed) {
    rpc_reply_status(reply, RPC_ABORTED,
                     "a request with this idempotency key is still running");
    return false;
  }
  bool ok = insert_new(x, call, reply, cr, stored);
  auth_idem_release(x->redis, cr->tid, cr->principal, cr->key);
  return ok;
}

/* ----------------------------------------------------------- Register --- */

static void h_register(void *arg, const rpc_call *call, rpc_reply *reply) {
  auth_ctx *x = arg;
  HANDLER_UNPACK(Auth__V1__RegisterRequest, auth__v1__register_request, req,
                 AUTH_MAX_REQUEST_BYTES);
  const char *tid = NULL;
  creation cr = {.principal = "register",
                 .key = call->idempotency_key,
                 .password = req->password};
  new_user in = {req->email, req->name, req->password, NULL, req->phone};
  if (!anon_tenant(call, req->tenant_id, reply, &tid) ||
      !check_new_user(reply, &in, &cr.u))
    goto out;
  if (!idem_key_ok(reply, call->idempotency_key)) goto out;
  if (tenant_suspended(x, tid)) {
    suspended(reply);
    goto out;
  }
  cr.tid = tid;
  uuid_v7_str(cr.u.id);
  str_copy(cr.u.name, req->name, sizeof cr.u.name);
  str_copy(cr.u.role, "customer", sizeof cr.u.role);
  auth_user stored;
  bool replayed = false;
  if (!create_user(x, call, reply, &cr, &stored, &replayed)) goto out;
  Auth__V1__User pu;
  user_proto(&stored, &pu);
  Auth__V1__RegisterResponse resp = AUTH__V1__REGISTER_RESPONSE__INIT;
  resp.user = &pu;
  handler_reply_message(reply, &resp.base);
  if (!replayed)
    log_info("user registered", "tenant_id", tid, "user_id", stored.id);
out:
  wipe_str(req->password);
  auth__v1__register_request__free_unpacked(req, NULL);
}

/* --------------------------------------------------------- CreateUser --- */

static void h_create_user(void *arg, const rpc_call *call, rpc_reply *reply) {
  auth_ctx *x = arg;
  HANDLER_UNPACK(Auth__V1__CreateUserRequest, auth__v1__create_user_request,
                 req, AUTH_MAX_REQUEST_BYTES);
  char access[TOKEN_CAP];
  char refresh[AUTH_REFRESH_TOKEN_LEN + 1];
  refresh[0] = '\0';
  const char *tid = NULL;
  paseto_claims cl;
  /* The token-less path is for the service declared with no user
   * (tenants, creating an owner); whoever else calls needs a manager. */
  bool internal = handler_is_internal(call);
  if (!internal) {
    /* An owner or admin adding a member to their own tenant. */
    if (!manager(x, call, reply, &cl)) goto out;
    if (req->tenant_id[0] != '\0' && strcmp(req->tenant_id, cl.tid) != 0) {
      rpc_reply_status(reply, RPC_PERMISSION_DENIED,
                       "token belongs to another tenant");
      goto out;
    }
    tid = cl.tid;
    if (strcmp(req->role, "admin") != 0 && strcmp(req->role, "staff") != 0) {
      handler_reply_field(reply, RPC_INVALID_ARGUMENT, "invalid user", "role",
                          "must be admin or staff");
      goto out;
    }
  } else if (!anon_tenant(call, req->tenant_id, reply, &tid)) {
    /* Internal (the tenants service creating an owner): no token. */
    goto out;
  }
  auth_user nu;
  memset(&nu, 0, sizeof nu);
  new_user in = {req->email, req->name, req->password, req->role, req->phone};
  if (!check_new_user(reply, &in, &nu)) goto out;
  const char *key = call->idempotency_key[0] != '\0' ? call->idempotency_key
                                                     : req->idempotency_key;
  if (!idem_key_ok(reply, key)) goto out;
  /* Keys are scoped by caller: the tenants service's (internal) and each
   * member's never meet. */
  char principal[8 + sizeof cl.sub];
  snprintf(principal, sizeof principal, "%s%s",
           internal ? "internal" : "user:", internal ? "" : cl.sub);
  creation cr = {.tid = tid,
                 .principal = principal,
                 .key = key,
                 .password = req->password,
                 .u = nu};
  uuid_v7_str(cr.u.id);
  str_copy(cr.u.name, req->name, sizeof cr.u.name);
  str_copy(cr.u.role, req->role, sizeof cr.u.role);
  auth_user stored;
  bool replayed = false;
  if (!create_user(x, call, reply, &cr, &stored, &replayed)) goto out;
  Auth__V1__User pu;
  user_proto(&stored, &pu);
  Auth__V1__CreateUserResponse resp = AUTH__V1__CREATE_USER_RESPONSE__INIT;
  resp.user = &pu;
  if (req->issue_tokens) {
    int rc = issue_session(x, &stored, access, refresh);
    if (rc != ERR_OK) {
      handler_reply_error(reply, rc, "create user session");
      goto out;
    }
    resp.access_token = access;
    resp.refresh_token = refresh;
    resp.token_type = "Bearer";
    resp.expires_in = expires_in(x);
  }
  handler_reply_message(reply, &resp.base);
out:
  sodium_memzero(refresh, sizeof refresh);
  wipe_str(req->password);
  auth__v1__create_user_request__free_unpacked(req, NULL);
}

/* -------------------------------------------------------------- Login --- */

/* The per-account slowdown (loginlock.h): charges this attempt on the
 * account, or refuses it before any user lookup or hashing. The answer is
 * the same whether the account exists. On refusal the reply is set. */
static bool login_admitted(auth_ctx *x, rpc_reply *reply, const char *tid,
                           const char *email) {
  if (x->login_lock == NULL) return true;
  int64_t wait_ms = 0;
  switch (loginlock_attempt(x->login_lock, tid, email, &wait_ms)) {
  case LOGINLOCK_ALLOW:
    return true;
  case LOGINLOCK_LOCKED:
    metrics_inc(login_metric("locked"));
    rpc_reply_status(reply, RPC_RESOURCE_EXHAUSTED, LOGIN_LOCKED);
    rpc_reply_retry_after(reply, wait_ms > UINT32_MAX ? UINT32_MAX
                                                      : (uint32_t)wait_ms);
    return false;
  case LOGINLOCK_UNAVAILABLE:
    break;
  }
  metrics_inc(login_metric("lock_unavailable"));
  rpc_reply_status(reply, RPC_UNAVAILABLE, "login temporarily unavailable");
  rpc_reply_retry_after(reply, 1000);
  return false;
}

static void h_login(void *arg, const rpc_call *call, rpc_reply *reply) {
  auth_ctx *x = arg;
  HANDLER_UNPACK(Auth__V1__LoginRequest, auth__v1__login_request, req,
                 AUTH_MAX_REQUEST_BYTES);
  char access[TOKEN_CAP];
  char refresh[AUTH_REFRESH_TOKEN_LEN + 1];
  refresh[0] = '\0';
  const char *tid = NULL;
  if (!anon_tenant(call, req->tenant_id, reply, &tid)) goto out;
  size_t pwlen = strlen(req->password);
  if (pwlen > 4 * VALIDATE_PASSWORD_MAX) {
    /* Says nothing about the account; bounds the hashing work. */
    handler_reply_field(reply, RPC_INVALID_ARGUMENT, "invalid request",
                        "password", "must be 8 to 128 characters");
    goto out;
  }
  if (tenant_suspended(x, tid)) {
    metrics_inc(login_metric("suspended"));
    suspended(reply);
    goto out;
  }
  char email[STORE_EMAIL_MAX + 1];
  auth_user u;
  bool found = false;
  bool valid_email = validate_email(req->email, email, sizeof email);
  if (valid_email && !login_admitted(x, reply, tid, email)) goto out;
  if (valid_email) {
    int rc = store_user_by_email(x->store, tid, email, &u);
    if (rc == ERR_OK)
      found = true;
    else if (rc != ERR_NOTFOUND) {
      handler_reply_error(reply, rc, "login");
      goto out;
    }
  }
  bool ok = false;
  int rc = pwpool_verify(x->pw, found ? u.password_hash : NULL, req->password,
                         pwlen, call->deadline_mono_ms, &ok);
  if (found) sodium_memzero(u.password_hash, sizeof u.password_hash);
  if (rc != ERR_OK) {
    metrics_inc(login_metric(rc == ERR_TOOBIG ? "busy" : "error"));
    pw_fail(reply, rc);
    goto out;
  }
  if (!found || !ok || u.disabled) {
    metrics_inc(login_metric("invalid"));
    rpc_reply_status(reply, RPC_UNAUTHENTICATED, BAD_LOGIN);
    goto out;
  }
  if (x->login_lock != NULL) loginlock_reset(x->login_lock, tid, email);
  rc = issue_session(x, &u, access, refresh);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "login session");
    goto out;
  }
  metrics_inc(login_metric("ok"));
  Auth__V1__User pu;
  user_proto(&u, &pu);
  Auth__V1__LoginResponse resp = AUTH__V1__LOGIN_RESPONSE__INIT;
  resp.access_token = access;
  resp.refresh_token = refresh;
  resp.token_type = "Bearer";
  resp.expires_in = expires_in(x);
  resp.user = &pu;
  handler_reply_message(reply, &resp.base);
out:
  sodium_memzero(refresh, sizeof refresh);
  wipe_str(req->password);
  auth__v1__login_request__free_unpacked(req, NULL);
}

/* ------------------------------------------------------------ Refresh --- */

static void revoke_jtis(auth_ctx *x, const char *tid,
                        char (*jtis)[UUID_STR_LEN + 1], size_t n) {
  for (size_t i = 0; i < n; i++) {
    int rc = revoker_jti(x->revoke, tid, jtis[i]);
    (void)rc; /* logged and counted by the revoker */
  }
}

static void h_refresh(void *arg, const rpc_call *call, rpc_reply *reply) {
  auth_ctx *x = arg;
  HANDLER_UNPACK(Auth__V1__RefreshRequest, auth__v1__refresh_request, req,
                 AUTH_MAX_REQUEST_BYTES);
  char access[TOKEN_CAP];
  char refresh[AUTH_REFRESH_TOKEN_LEN + 1];
  refresh[0] = '\0';
  uint8_t old_hash[STORE_HASHBYTES], new_hash[STORE_HASHBYTES];
  char tid[UUID_STR_LEN + 1];
  int rc = auth_refresh_token_hash(req->refresh_token, old_hash);
  if (rc == ERR_OK) rc = store_refresh_tenant(x->store, old_hash, tid);
  if (rc == ERR_INVAL || rc == ERR_NOTFOUND) {
    metrics_inc(refresh_metric("invalid"));
    rpc_reply_status(reply, RPC_UNAUTHENTICATED, BAD_REFRESH);
    goto out;
  }
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "refresh");
    goto out;
  }
  if (tenant_suspended(x, tid)) {
    metrics_inc(refresh_metric("suspended"));
    suspended(reply);
    goto out;
  }
  char jti[UUID_STR_LEN + 1];
  uuid_v7_str(jti);
  auth_refresh_token_new(refresh, new_hash);
  store_rotate r;
  memset(&r, 0, sizeof r);
  r.old_hash = old_hash;
  r.new_hash = new_hash;
  r.new_access_jti = jti;
  r.new_expires_ms = time_now_ms() + x->refresh_ttl_ms;
  r.reuse_interval_ms = x->reuse_interval_ms;
  r.access_ttl_ms = x->access_ttl_ms;
  rc = store_refresh_rotate(x->store, tid, &r);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "refresh");
    goto out;
  }
  if (r.result == STORE_REUSED) {
    revoke_jtis(x, tid, r.jtis, r.njtis);
    metrics_inc(refresh_metric("reused"));
    log_warn("refresh token reused: session revoked", "tenant_id", tid,
             "user_id", r.user.id, "family_id", r.family_id);
    rpc_reply_status(reply, RPC_UNAUTHENTICATED, BAD_REFRESH);
    goto out;
  }
  if (r.result != STORE_ROTATED) {
    metrics_inc(refresh_metric("invalid"));
    rpc_reply_status(reply, RPC_UNAUTHENTICATED, BAD_REFRESH);
    goto out;
  }
  rc = sign_access(x, &r.user, jti, access, sizeof access);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "refresh sign");
    goto out;
  }
  metrics_inc(refresh_metric("ok"));
  Auth__V1__User pu;
  user_proto(&r.user, &pu);
  Auth__V1__RefreshResponse resp = AUTH__V1__REFRESH_RESPONSE__INIT;
  resp.access_token = access;
  resp.refresh_token = refresh;
  resp.token_type = "Bearer";
  resp.expires_in = expires_in(x);
  resp.user = &pu;
  handler_reply_message(reply, &resp.base);
out:
  sodium_memzero(refresh, sizeof refresh);
  sodium_memzero(old_hash, sizeof old_hash);
  sodium_memzero(new_hash, sizeof new_hash);
  wipe_str(req->refresh_token);
  auth__v1__refresh_request__free_unpacked(req, NULL);
}

/* ------------------------------------------------------------- Logout --- */

static void h_logout(void *arg, const rpc_call *call, rpc_reply *reply) {
  auth_ctx *x = arg;
  HANDLER_UNPACK(Auth__V1__LogoutRequest, auth__v1__logout_request, req,
                 AUTH_MAX_REQUEST_BYTES);
  paseto_claims cl;
  uint8_t h[STORE_HASHBYTES];
  if (!caller(x, call, reply, &cl)) goto out;
  /* The session: the presented refresh token's family if it is the
   * caller's, else the one this access token was issued with. */
  const uint8_t *hp = NULL;
  if (req->refresh_token[0] != '\0' &&
      auth_refresh_token_hash(req->refresh_token, h) == ERR_OK)
    hp = h;
  bool found = false;
  char jtis[STORE_MAX_JTIS][UUID_STR_LEN + 1];
  size_t n = 0;
  int rc = store_session_revoke(x->store, cl.tid, cl.sub, hp, cl.jti,
                                x->access_ttl_ms, &found, jtis, &n);
  if (rc == ERR_OK && !found && hp != NULL)
    rc = store_session_revoke(x->store, cl.tid, cl.sub, NULL, cl.jti,
                              x->access_ttl_ms, &found, jtis, &n);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "logout");
    goto out;
  }
  /* The caller's own token first: that one must stop working. */
  rc = revoker_jti(x->revoke, cl.tid, cl.jti);
  revoke_jtis(x, cl.tid, jtis, n);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "logout revocation");
    goto out;
  }
  log_info("logged out", "tenant_id", cl.tid, "user_id", cl.sub);
  Auth__V1__LogoutResponse resp = AUTH__V1__LOGOUT_RESPONSE__INIT;
  handler_reply_message(reply, &resp.base);
out:
  sodium_memzero(h, sizeof h);
  wipe_str(req->refresh_token);
  auth__v1__logout_request__free_unpacked(req, NULL);
}

/* ------------------------------------------------------ Me / GetUser --- */

enum reply_kind { REPLY_GET_USER, REPLY_ME, REPLY_UPDATE_ME };

/* User id of tid as the answer of kind: Me and UpdateMe answer for the
 * caller (gone: UNAUTHENTICATED), GetUser for anyone (NOT_FOUND). */
static void reply_user(auth_ctx *x, rpc_reply *reply, const char *tid,
                       const char *id, enum reply_kind kind) {
  bool me = kind != REPLY_GET_USER;
  auth_user u;
  int rc = store_user_by_id(x->store, tid, id, &u);
  if (rc == ERR_NOTFOUND) {
    if (me)
      rpc_reply_status(reply, RPC_UNAUTHENTICATED, "user no longer exists");
    else
      rpc_reply_status(reply, RPC_NOT_FOUND, "no such user");
    return;
  }
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "get user");
    return;
  }
  Auth__V1__User pu;
  user_proto(&u, &pu);
  if (kind == REPLY_ME) {
    Auth__V1__MeResponse resp = AUTH__V1__ME_RESPONSE__INIT;
    resp.user = &pu;
    handler_reply_message(reply, &resp.base);
  } else if (kind == REPLY_UPDATE_ME) {
    Auth__V1__UpdateMeResponse resp = AUTH__V1__UPDATE_ME_RESPONSE__INIT;
    resp.user = &pu;
    handler_reply_message(reply, &resp.base);
  } else {
    Auth__V1__GetUserResponse resp = AUTH__V1__GET_USER_RESPONSE__INIT;
    resp.user = &pu;
    handler_reply_message(reply, &resp.base);
  }
}

static void h_me(void *arg, const rpc_call *call, rpc_reply *reply) {
  auth_ctx *x = arg;
  HANDLER_UNPACK(Auth__V1__MeRequest, auth__v1__me_request, req,
                 AUTH_MAX_REQUEST_BYTES);
  paseto_claims cl;
  if (caller(x, call, reply, &cl))
    reply_user(x, reply, cl.tid, cl.sub, REPLY_ME);
  auth__v1__me_request__free_unpacked(req, NULL);
}

/* The caller's own phone: set, or removed with "". The number is never
 * logged. */
static void h_update_me(void *arg, const rpc_call *call, rpc_reply *reply) {
  auth_ctx *x = arg;
  HANDLER_UNPACK(Auth__V1__UpdateMeRequest, auth__v1__update_me_request, req,
                 AUTH_MAX_REQUEST_BYTES);
  paseto_claims cl;
  char phone[STORE_PHONE_MAX + 1];
  if (!caller(x, call, reply, &cl)) goto out;
  if (req->phone_present_case !=
      AUTH__V1__UPDATE_ME_REQUEST__PHONE_PRESENT_PHONE) {
    reply_user(x, reply, cl.tid, cl.sub, REPLY_UPDATE_ME); /* nothing to do */
    goto out;
  }
  if (!validate_phone(req->phone, phone, sizeof phone)) {
    handler_reply_field(reply, RPC_INVALID_ARGUMENT, "invalid phone", "phone",
                        PHONE_RULE);
    goto out;
  }
  auth_user u;
  int rc = store_user_set_phone(x->store, cl.tid, cl.sub, phone, &u);
  if (rc == ERR_NOTFOUND)
    rpc_reply_status(reply, RPC_UNAUTHENTICATED, "user no longer exists");
  else if (rc != ERR_OK)
    handler_reply_error(reply, rc, "update user");
  if (rc != ERR_OK) goto out;
  Auth__V1__User pu;
  user_proto(&u, &pu);
  Auth__V1__UpdateMeResponse resp = AUTH__V1__UPDATE_ME_RESPONSE__INIT;
  resp.user = &pu;
  handler_reply_message(reply, &resp.base);
  log_info("phone changed", "tenant_id", cl.tid, "user_id", cl.sub, "phone",
           phone[0] ? "set" : "removed");
out:
  auth__v1__update_me_request__free_unpacked(req, NULL);
}

static void h_get_user(void *arg, const rpc_call *call, rpc_reply *reply) {
  auth_ctx *x = arg;
  HANDLER_UNPACK(Auth__V1__GetUserRequest, auth__v1__get_user_request, req,
                 AUTH_MAX_REQUEST_BYTES);
  paseto_claims cl;
  char uid[UUID_STR_LEN + 1];
  if (!caller(x, call, reply, &cl) ||
      handler_uuid_arg(reply, "user_id", req->user_id, uid) != ERR_OK)
    goto out;
  bool self = strcasecmp(uid, cl.sub) == 0;
  if (!self && !is_manager(&cl)) {
    rpc_reply_status(reply, RPC_PERMISSION_DENIED,
                     "owner or admin role required");
    goto out;
  }
  reply_user(x, reply, cl.tid, uid, REPLY_GET_USER);
out:
  auth__v1__get_user_request__free_unpacked(req, NULL);
}

/* -------------------------------------------------------- ListMembers --- */

static void h_list_members(void *arg, const rpc_call *call, rpc_reply *reply) {
  auth_ctx *x = arg;
  HANDLER_UNPACK(Auth__V1__ListMembersRequest, auth__v1__list_members_request,
                 req, AUTH_MAX_REQUEST_BYTES);
  auth_user *users = NULL;
  Auth__V1__User *pu = NULL;
  Auth__V1__User **pp = NULL;
  paseto_claims cl;
  if (!manager(x, call, reply, &cl)) goto out;
  int limit = req->limit == 0 ? AUTH_LIST_DEFAULT : (int)req->limit;
  if (req->limit > AUTH_LIST_MAX) {
    handler_reply_field(reply, RPC_INVALID_ARGUMENT, "invalid limit", "limit",
                        "must be between 1 and 100");
    goto out;
  }
  if (req->cursor[0] != '\0' && !uuid_is_valid(req->cursor)) {
    handler_reply_field(reply, RPC_INVALID_ARGUMENT, "invalid cursor", "cursor",
                        "must be a next_cursor value");
    goto out;
  }
  users = calloc((size_t)limit, sizeof *users);
  pu = calloc((size_t)limit, sizeof *pu);
  pp = calloc((size_t)limit, sizeof *pp);
  if (users == NULL || pu == NULL || pp == NULL) {
    rpc_reply_status(reply, RPC_RESOURCE_EXHAUSTED, "out of memory");
    goto out;
  }
  int n = 0;
  bool more = false;
  int rc = store_users_list(x->store, cl.tid, req->include_customers,
                            req->cursor, limit, users, &n, &more);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "list members");
    goto out;
  }
  for (int i = 0; i < n; i++) {
    user_proto(&users[i], &pu[i]);
    pp[i] = &pu[i];
  }
  Auth__V1__ListMembersResponse resp = AUTH__V1__LIST_MEMBERS_RESPONSE__INIT;
  resp.members = pp;
  resp.n_members = (size_t)n;
  resp.next_cursor = more && n > 0 ? users[n - 1].id : "";
  handler_reply_message(reply, &resp.base);
out:
  free(pp);
  free(pu);
  free(users);
  auth__v1__list_members_request__free_unpacked(req, NULL);
}

/* ------------------------------------------------ UpdateRole / Remove --- */

static void refusal_reply(rpc_reply *reply, enum store_refusal r, bool remove) {
  switch (r) {
  case STORE_NOT_FOUND:
    rpc_reply_status(reply, RPC_NOT_FOUND, "no such user");
    break;
  case STORE_FORBIDDEN:
    rpc_reply_status(reply, RPC_PERMISSION_DENIED,
                     "only an owner can change an owner or grant the owner "
                     "role (and the acting user must still be owner or admin)");
    break;
  case STORE_LAST_OWNER:
    rpc_reply_status(reply, RPC_FAILED_PRECONDITION,
                     remove ? "the last owner cannot be removed"
                            : "the last owner cannot be demoted");
    break;
  case STORE_DONE:
    break;
  }
}

static void h_update_role(void *arg, const rpc_call *call, rpc_reply *reply) {
  auth_ctx *x = arg;
  HANDLER_UNPACK(Auth__V1__UpdateRoleRequest, auth__v1__update_role_request,
                 req, AUTH_MAX_REQUEST_BYTES);
  paseto_claims cl;
  char uid[UUID_STR_LEN + 1];
  if (!manager(x, call, reply, &cl) ||
      handler_uuid_arg(reply, "user_id", req->user_id, uid) != ERR_OK)
    goto out;
  if (!validate_role(req->role)) {
    handler_reply_field(reply, RPC_INVALID_ARGUMENT, "invalid role", "role",
                        "must be one of owner, admin, staff, customer");
    goto out;
  }
  enum store_refusal refusal = STORE_DONE;
  bool changed = false;
  auth_user u;
  int rc = store_user_set_role(x->store, cl.tid, uid, req->role, cl.sub,
                               &refusal, &changed, &u);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "update role");
    goto out;
  }
  if (refusal != STORE_DONE) {
    refusal_reply(reply, refusal, false);
    goto out;
  }
  if (changed) {
    /* Tokens carrying the old role stop working; the user's refresh
     * token gets new ones with the new role. */
    rc = revoker_user(x->revoke, cl.tid, u.id, u.tokens_valid_after_ms);
    (void)rc; /* logged; the role change itself is committed */
    log_info("role changed", "tenant_id", cl.tid, "user_id", u.id, "role",
             u.role, "by", cl.sub);
  }
  Auth__V1__User pu;
  user_proto(&u, &pu);
  Auth__V1__UpdateRoleResponse resp = AUTH__V1__UPDATE_ROLE_RESPONSE__INIT;
  resp.user = &pu;
  handler_reply_message(reply, &resp.base);
out:
  auth__v1__update_role_request__free_unpacked(req, NULL);
}

static void h_remove_user(void *arg, const rpc_call *call, rpc_reply *reply) {
  auth_ctx *x = arg;
  HANDLER_UNPACK(Auth__V1__RemoveUserRequest, auth__v1__remove_user_request,
                 req, AUTH_MAX_REQUEST_BYTES);
  paseto_claims cl;
  char uid[UUID_STR_LEN + 1];
  if (!manager(x, call, reply, &cl) ||
      handler_uuid_arg(reply, "user_id", req->user_id, uid) != ERR_OK)
    goto out;
  enum store_refusal refusal = STORE_DONE;
  auth_user u;
  int rc = store_user_delete(x->store, cl.tid, uid, cl.sub, &refusal, &u);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "remove user");
    goto out;
  }
  if (refusal != STORE_DONE) {
    refusal_reply(reply, refusal, true);
    goto out;
  }
  /* Past every iat this user's tokens can carry (up to a second ahead of
   * tokens_valid_after, see sign_access). */
  int64_t cut = time_now_ms();
  if (u.tokens_valid_after_ms + 1000 > cut)
    cut = u.tokens_valid_after_ms + 1000;
  rc = revoker_user(x->revoke, cl.tid, u.id, cut);
  log_info("user removed", "tenant_id", cl.tid, "user_id", u.id, "by", cl.sub);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "remove user revocation");
    goto out;
  }
  Auth__V1__RemoveUserResponse resp = AUTH__V1__REMOVE_USER_RESPONSE__INIT;
  handler_reply_message(reply, &resp.base);
out:
  auth__v1__remove_user_request__free_unpacked(req, NULL);
}

/* --------------------------------------------------------------- Keys --- */

static void h_keys(void *arg, const rpc_call *call, rpc_reply *reply) {
  auth_ctx *x = arg;
  HANDLER_UNPACK(Auth__V1__KeysRequest, auth__v1__keys_request, req,
                 AUTH_MAX_REQUEST_BYTES);
  size_t n = auth_keys_count(x->keys);
  Auth__V1__PublicKey pk[AUTH_KEYS_MAX];
  Auth__V1__PublicKey *pp[AUTH_KEYS_MAX];
  char b64[AUTH_KEYS_MAX][64];
  for (size_t i = 0; i < n; i++) {
    auth__v1__public_key__init(&pk[i]);
    sodium_bin2base64(b64[i], sizeof b64[i], auth_keys_public(x->keys, i)->b,
                      PASETO_PUBLICKEYBYTES,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    pk[i].kid = (char *)auth_keys_kid(x->keys, i);
    pk[i].alg = "v4.public";
    pk[i].public_key = b64[i];
    pk[i].status = auth_keys_is_active(x->keys, i) ? "active" : "verify-only";
    pp[i] = &pk[i];
  }
  Auth__V1__KeysResponse resp = AUTH__V1__KEYS_RESPONSE__INIT;
  resp.keys = pp;
  resp.n_keys = n;
  handler_reply_message(reply, &resp.base);
  auth__v1__keys_request__free_unpacked(req, NULL);
}

/* ------------------------------------------------------------- Verify --- */

static void h_verify(void *arg, const rpc_call *call, rpc_reply *reply) {
  auth_ctx *x = arg;
  HANDLER_UNPACK(Auth__V1__VerifyRequest, auth__v1__verify_request, req,
                 AUTH_MAX_REQUEST_BYTES);
  paseto_claims cl;
  enum authn_result why = AUTHN_OK;
  int rc = authn_verify(x->verifier, req->token, strlen(req->token), &cl, &why);
  if (rc != ERR_OK) {
    rpc_reply_status(reply,
                     rc == ERR_NOMEM ? RPC_RESOURCE_EXHAUSTED
                                     : authn_result_code(why),
                     "%s", authn_result_str(why));
  } else {
    char kid[PASETO_PID_LEN + 1] = "";
    if (paseto_token_kid(req->token, strlen(req->token), kid, NULL) != ERR_OK)
      kid[0] = '\0';
    Auth__V1__Claims c = AUTH__V1__CLAIMS__INIT;
    c.sub = cl.sub;
    c.tid = cl.tid;
    c.role = cl.role;
    c.jti = cl.jti;
    c.iss = cl.iss;
    c.iat_unix = cl.iat_ms / 1000;
    c.nbf_unix = cl.nbf_ms / 1000;
    c.exp_unix = cl.exp_ms / 1000;
    c.kid = kid;
    Auth__V1__VerifyResponse resp = AUTH__V1__VERIFY_RESPONSE__INIT;
    resp.claims = &c;
    handler_reply_message(reply, &resp.base);
  }
  auth__v1__verify_request__free_unpacked(req, NULL);
}

/* -------------------------------------------------- DeleteTenantUsers --- */

#define DELETE_REVOKE_MAX 64

static void h_delete_tenant_users(void *arg, const rpc_call *call,
                                  rpc_reply *reply) {
  auth_ctx *x = arg;
  HANDLER_UNPACK(Auth__V1__DeleteTenantUsersRequest,
                 auth__v1__delete_tenant_users_request, req,
                 AUTH_MAX_REQUEST_BYTES);
  const char *tid = NULL;
  if (!handler_is_internal(call) || call->token[0] != '\0') {
    /* Internal only (the guard admits only tenants): never on behalf of
     * a user, whose forwarded token would mean a confused caller. */
    rpc_reply_status(reply, RPC_PERMISSION_DENIED, "internal method");
    goto out;
  }
  if (!anon_tenant(call, req->tenant_id, reply, &tid)) goto out;
  char ids[DELETE_REVOKE_MAX][UUID_STR_LEN + 1];
  size_t n = 0;
  int rc = store_tenant_delete_users(x->store, tid, ids, DELETE_REVOKE_MAX, &n);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "delete tenant users");
    goto out;
  }
  /* Generous: these users are gone, and a role change may have pushed
   * their newest iat up to a second ahead. */
  int64_t now = time_now_ms() + 2000;
  for (size_t i = 0; i < n && i < DELETE_REVOKE_MAX; i++) {
    rc = revoker_user(x->revoke, tid, ids[i], now);
    (void)rc; /* logged by the revoker; the users are gone either way */
  }
  char count[24];
  snprintf(count, sizeof count, "%zu", n);
  log_info("tenant users deleted", "tenant_id", tid, "count", count);
  Auth__V1__DeleteTenantUsersResponse resp =
      AUTH__V1__DELETE_TENANT_USERS_RESPONSE__INIT;
  resp.deleted = (uint32_t)n;
  handler_reply_message(reply, &resp.base);
out:
  auth__v1__delete_tenant_users_request__free_unpacked(req, NULL);
}

/* ------------------------------------- IssueDeviceToken, RevokeDevice --- */

/* The tenant and device of an internal device call (sync only: the guard
 * admits nobody else, and a forwarded user token would mean a confused
 * caller). On failure the reply is set. */
static bool device_call(const rpc_call *call, rpc_reply *reply,
                        const char *tid_in, const char *did_in, char *tid,
                        char *did) {
  if (!handler_is_internal(call) || call->token[0] != '\0') {
    rpc_reply_status(reply, RPC_PERMISSION_DENIED, "internal method");
    return false;
  }
  const char *t = NULL;
  if (!anon_tenant(call, tid_in, reply, &t)) return false;
  if (uuid_canonical(t, tid) != ERR_OK) {
    handler_reply_field(reply, RPC_INVALID_ARGUMENT, "a tenant is required",
                        "tenant_id", "must be a tenant id");
    return false;
  }
  return handler_uuid_arg(reply, "device_id", did_in, did) == ERR_OK;
}

/* An access token for a device whose secret sync has checked: role
 * "device", sub = the device id, no refresh token (the device asks sync
 * for a new session with its secret). */
static void h_issue_device_token(void *arg, const rpc_call *call,
                                 rpc_reply *reply) {
  auth_ctx *x = arg;
  HANDLER_UNPACK(Auth__V1__IssueDeviceTokenRequest,
                 auth__v1__issue_device_token_request, req,
                 AUTH_MAX_REQUEST_BYTES);
  auth_user d;
  memset(&d, 0, sizeof d);
  if (!device_call(call, reply, req->tenant_id, req->device_id, d.tenant_id,
                   d.id))
    goto out;
  str_copy(d.role, "device", sizeof d.role);
  char jti[UUID_STR_LEN + 1], access[TOKEN_CAP];
  uuid_v7_str(jti);
  int rc = sign_access(x, &d, jti, access, sizeof access);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "sign the device token");
    goto out;
  }
  Auth__V1__IssueDeviceTokenResponse resp =
      AUTH__V1__ISSUE_DEVICE_TOKEN_RESPONSE__INIT;
  resp.access_token = access;
  resp.token_type = "Bearer";
  resp.expires_in = expires_in(x);
  handler_reply_message(reply, &resp.base);
  sodium_memzero(access, sizeof access);
out:
  auth__v1__issue_device_token_request__free_unpacked(req, NULL);
}

/* Every token of a deleted device refused: the user revocation, which
 * every verifier reads from Redis within its recheck (500 ms) or at once
 * from the bus. A second past now, as for a removed user: the newest
 * token's iat is at most now's second. */
static void h_revoke_device(void *arg, const rpc_call *call, rpc_reply *reply) {
  auth_ctx *x = arg;
  HANDLER_UNPACK(Auth__V1__RevokeDeviceRequest, auth__v1__revoke_device_request,
                 req, AUTH_MAX_REQUEST_BYTES);
  char tid[UUID_STR_LEN + 1], did[UUID_STR_LEN + 1];
  if (!device_call(call, reply, req->tenant_id, req->device_id, tid, did))
    goto out;
  int rc = revoker_user(x->revoke, tid, did, time_now_ms() + 1000);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "revoke the device");
    goto out;
  }
  log_info("device revoked", "tenant_id", tid, "device_id", did);
  Auth__V1__RevokeDeviceResponse resp = AUTH__V1__REVOKE_DEVICE_RESPONSE__INIT;
  handler_reply_message(reply, &resp.base);
out:
  auth__v1__revoke_device_request__free_unpacked(req, NULL);
}

/* --------------------------------------------------- ListRecipients --- */

#define RECIPIENTS_DEFAULT 100
#define RECIPIENTS_MAX 1000

/* roles as a text[] literal ("{owner,admin}"); false (reply set) when one
 * is not a role. */
static bool recipient_roles(const Auth__V1__ListRecipientsRequest *req,
                            rpc_reply *reply, char *out, size_t cap) {
  static const char *const kRoles[] = {"owner", "admin", "staff", "customer"};
  size_t len = 0;
  out[len++] = '{';
  for (size_t i = 0; i < req->n_roles; i++) {
    bool known = false;
    for (size_t k = 0; k < sizeof kRoles / sizeof kRoles[0]; k++)
      known = known || strcmp(req->roles[i], kRoles[k]) == 0;
    if (!known || i >= 4) {
      handler_reply_field(reply, RPC_INVALID_ARGUMENT, "invalid roles", "roles",
                          "must be owner, admin, staff or customer");
      return false;
    }
    int n = snprintf(out + len, cap - len, "%s%s", i ? "," : "", req->roles[i]);
    len += (size_t)n;
  }
  snprintf(out + len, cap - len, "}");
  return true;
}

/* Internal (notifications): who a notification goes to, with e-mail. */
static void h_list_recipients(void *arg, const rpc_call *call,
                              rpc_reply *reply) {
  auth_ctx *x = arg;
  HANDLER_UNPACK(Auth__V1__ListRecipientsRequest,
                 auth__v1__list_recipients_request, req,
                 AUTH_MAX_REQUEST_BYTES);
  auth_user *users = NULL;
  Auth__V1__User *pu = NULL;
  Auth__V1__User **pp = NULL;
  const char *tid = NULL;
  char roles[64], uid[UUID_STR_LEN + 1];
  if (!handler_is_internal(call) || call->token[0] != '\0') {
    rpc_reply_status(reply, RPC_PERMISSION_DENIED, "internal method");
    goto out;
  }
  if (!anon_tenant(call, req->tenant_id, reply, &tid)) goto out;
  int limit = req->limit == 0 ? RECIPIENTS_DEFAULT : (int)req->limit;
  if (req->limit > RECIPIENTS_MAX ||
      (req->cursor[0] != '\0' && !uuid_is_valid(req->cursor))) {
    handler_reply_field(reply, RPC_INVALID_ARGUMENT, "invalid page",
                        req->limit > RECIPIENTS_MAX ? "limit" : "cursor",
                        "out of range");
    goto out;
  }
  bool one = req->user_id[0] != '\0';
  if (one && handler_uuid_arg(reply, "user_id", req->user_id, uid) != ERR_OK)
    goto out;
  if (!one && !recipient_roles(req, reply, roles, sizeof roles)) goto out;
  users = calloc((size_t)limit, sizeof *users);
  pu = calloc((size_t)limit, sizeof *pu);
  pp = calloc((size_t)limit, sizeof *pp);
  if (users == NULL || pu == NULL || pp == NULL) {
    rpc_reply_status(reply, RPC_RESOURCE_EXHAUSTED, "out of memory");
    goto out;
  }
  int n = 0, rc = ERR_OK;
  bool more = false;
  if (one) {
    rc = store_user_by_id(x->store, tid, uid, &users[0]);
    n = rc == ERR_OK && !users[0].disabled ? 1 : 0;
    if (rc == ERR_NOTFOUND) rc = ERR_OK;
  } else {
    rc = store_users_by_role(x->store, tid, roles, req->cursor, limit, users,
                             &n, &more);
  }
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "list recipients");
    goto out;
  }
  for (int i = 0; i < n; i++) {
    user_proto(&users[i], &pu[i]);
    pp[i] = &pu[i];
  }
  Auth__V1__ListRecipientsResponse resp =
      AUTH__V1__LIST_RECIPIENTS_RESPONSE__INIT;
  resp.users = pp;
  resp.n_users = (size_t)n;
  resp.next_cursor = more && n > 0 ? users[n - 1].id : "";
  handler_reply_message(reply, &resp.base);
out:
  free(pp);
  free(pu);
  free(users);
  auth__v1__list_recipients_request__free_unpacked(req, NULL);
}

/* ----------------------------------------------------------- register --- */

int auth_handlers_register(rpc_server *srv, auth_ctx *ctx) {
  static const handler_method table[] = {
      {M("Register"), h_register},
      {M("CreateUser"), h_create_user},
      {M("Login"), h_login},
      {M("Refresh"), h_refresh},
      {M("Logout"), h_logout},
      {M("Me"), h_me},
      {M("UpdateMe"), h_update_me},
      {M("GetUser"), h_get_user},
      {M("ListMembers"), h_list_members},
      {M("UpdateRole"), h_update_role},
      {M("RemoveUser"), h_remove_user},
      {M("Keys"), h_keys},
      {M("Verify"), h_verify},
      {M("ListRecipients"), h_list_recipients},
      {M("DeleteTenantUsers"), h_delete_tenant_users},
      {M("IssueDeviceToken"), h_issue_device_token},
      {M("RevokeDevice"), h_revoke_device},
  };
  if (ctx == NULL) return ERR_INVAL;
  return handler_register(srv, table, sizeof table / sizeof table[0], ctx);
}
