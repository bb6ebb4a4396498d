/*
 * authn_test.c - unit tests for libs/authn with locally generated keys:
 * claim and time checks, key selection by kid, the verified-token cache
 * (hits, bounds, key-set changes), revocations fed as events, Redis
 * failure handling (fail open / closed) against an unreachable Redis, the
 * batch verification (one lookup for many tokens), key
 * fetching from an in-process RPC server answering auth.v1.Auth/Keys, and
 * role ranks and the RPC caller check through an in-process handler.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "libs/authn/authn.h"
#include "libs/authn/authn_caller.h"
#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"
#include "proto/auth/v1/auth.pb-c.h"
#include "proto/rpc/v1/rpc.pb-c.h"

#define T0 1900000000000LL /* a fixed "now" (2030) in Unix ms */

static int64_t fake_now = T0;
static int64_t clock_fn(void) { return fake_now; }

static paseto_secret_key sk1, sk2;
static paseto_public_key pk1, pk2;

static void setup(void) {
  ck_assert_int_eq(paseto_init(), ERR_OK);
  paseto_keygen(&sk1, &pk1);
  paseto_keygen(&sk2, &pk2);
  fake_now = T0;
}

static paseto_claims base_claims(void) {
  paseto_claims c;
  memset(&c, 0, sizeof c);
  str_copy(c.iss, "auth", sizeof c.iss);
  uuid_v7_str(c.sub);
  uuid_v7_str(c.tid);
  str_copy(c.role, "staff", sizeof c.role);
  uuid_v7_str(c.jti);
  c.has_iat = c.has_nbf = c.has_exp = true;
  c.iat_ms = c.nbf_ms = fake_now;
  c.exp_ms = fake_now + 15 * 60 * 1000;
  return c;
}

/* Signs c with sk; the footer names kid_of's key (NULL: sk's own key;
 * "" for no footer). Returns a malloc'd token. */
static char *sign_with(const paseto_secret_key *sk, const paseto_claims *c,
                       const paseto_public_key *kid_of, const char *footer) {
  char *json = NULL;
  size_t jlen = 0;
  ck_assert_int_eq(paseto_claims_to_json(c, &json, &jlen), ERR_OK);
  char f[PASETO_KID_FOOTER_MAX];
  size_t flen = 0;
  if (footer != NULL) {
    flen = str_copy(f, footer, sizeof f);
  } else {
    paseto_public_key pk;
    if (kid_of != NULL)
      pk = *kid_of;
    else
      paseto_public_key_of(sk, &pk);
    char pid[PASETO_PID_LEN + 1];
    paseto_pid(&pk, pid);
    ck_assert_int_eq(paseto_footer_kid_json(pid, f, sizeof f, &flen), ERR_OK);
  }
  char *tok = malloc(PASETO_TOKEN_MAX + 1);
  ck_assert_ptr_nonnull(tok);
  ck_assert_int_eq(paseto_sign(sk, json, jlen, f, flen, NULL, 0, tok,
                               PASETO_TOKEN_MAX + 1, NULL),
                   ERR_OK);
  free(json);
  return tok;
}

static char *make_token(const paseto_secret_key *sk, const paseto_claims *c) {
  return sign_with(sk, c, NULL, NULL);
}

static authn *new_authn(const authn_config *cfg_in) {
  authn_config c = AUTHN_CONFIG_INIT;
  if (cfg_in != NULL) c = *cfg_in;
  c.now_ms = clock_fn;
  if (c.issuer == NULL) c.issuer = "auth";
  authn *a = NULL;
  ck_assert_int_eq(authn_new(&c, &a), ERR_OK);
  authn_key keys[2] = {{.pk = pk1, .active = true}, {.pk = pk2}};
  ck_assert_int_eq(authn_set_keys(a, keys, 2), ERR_OK);
  return a;
}

static enum authn_result verify(authn *a, const char *tok, paseto_claims *out) {
  enum authn_result why = AUTHN_OK;
  paseto_claims c;
  int rc = authn_verify(a, tok, strlen(tok), out != NULL ? out : &c, &why);
  if (why == AUTHN_OK)
    ck_assert_int_eq(rc, ERR_OK);
  else if (why == AUTHN_UNAVAILABLE)
    ck_assert_int_eq(rc, ERR_UNAVAILABLE);
  else
    ck_assert_int_eq(rc, ERR_INVAL);
  return why;
}

/* ------------------------------------------------------------- claims --- */

START_TEST(valid_token_returns_its_claims) {
  authn *a = new_authn(NULL);
  paseto_claims c = base_claims();
  char *tok = make_token(&sk1, &c);
  paseto_claims out;
  ck_assert_int_eq(verify(a, tok, &out), AUTHN_OK);
  ck_assert_str_eq(out.sub, c.sub);
  ck_assert_str_eq(out.tid, c.tid);
  ck_assert_str_eq(out.role, "staff");
  ck_assert_str_eq(out.jti, c.jti);
  ck_assert_int_eq(out.exp_ms, c.exp_ms);
  free(tok);
  authn_free(a);
}
END_TEST

START_TEST(expired_token_is_refused_and_leeway_applies) {
  authn_config cfg = AUTHN_CONFIG_INIT;
  cfg.leeway_ms = 5000;
  authn *a = new_authn(&cfg);
  paseto_claims c = base_claims();
  c.exp_ms = fake_now - 2000; /* expired 2 s ago: inside the leeway */
  c.iat_ms = c.nbf_ms = fake_now - 60000;
  char *tok = make_token(&sk1, &c);
  ck_assert_int_eq(verify(a, tok, NULL), AUTHN_OK);
  fake_now += 4000; /* now 6 s past exp */
  ck_assert_int_eq(verify(a, tok, NULL), AUTHN_EXPIRED);
  free(tok);
  authn_free(a);
}
END_TEST

START_TEST(cached_token_expires_with_the_clock) {
  authn *a = new_authn(NULL);
  paseto_claims c = base_claims();
  char *tok = make_token(&sk1, &c);
  ck_assert_int_eq(verify(a, tok, NULL), AUTHN_OK);
  ck_assert_int_eq(verify(a, tok, NULL), AUTHN_OK);
  fake_now = c.exp_ms + 31000; /* past exp + default leeway */
  ck_assert_int_eq(verify(a, tok, NULL), AUTHN_EXPIRED);
  free(tok);
  authn_free(a);
}
END_TEST

START_TEST(not_yet_valid_token_is_refused) {
  authn *a = new_authn(NULL);
  paseto_claims c = base_claims();
  c.nbf_ms = fake_now + 5 * 60 * 1000;
  c.exp_ms = fake_now + 20 * 60 * 1000;
  char *tok = make_token(&sk1, &c);
  ck_assert_int_eq(verify(a, tok, NULL), AUTHN_NOT_YET_VALID);
  free(tok);
  c = base_claims();
  c.iat_ms = fake_now + 10 * 60 * 1000; /* issued in the future */
  tok = make_token(&sk1, &c);
  ck_assert_int_eq(verify(a, tok, NULL), AUTHN_NOT_YET_VALID);
  free(tok);
  authn_free(a);
}
END_TEST

START_TEST(missing_required_claims_are_refused) {
  authn *a = new_authn(NULL);
  const char *which[] = {"sub", "tid", "jti", "exp", "iss"};
  for (size_t i = 0; i < sizeof which / sizeof which[0]; i++) {
    paseto_claims c = base_claims();
    if (i == 0) c.sub[0] = '\0';
    if (i == 1) c.tid[0] = '\0';
    if (i == 2) c.jti[0] = '\0';
    if (i == 3) c.has_exp = false;
    if (i == 4) str_copy(c.iss, "someone-else", sizeof c.iss);
    char *tok = make_token(&sk1, &c);
    enum authn_result r = verify(a, tok, NULL);
    ck_assert_msg(r == AUTHN_BAD_CLAIMS, "%s: got %s", which[i],
                  authn_result_str(r));
    free(tok);
  }
  authn_free(a);
}
END_TEST

START_TEST(empty_and_garbage_tokens_are_refused) {
  authn *a = new_authn(NULL);
  enum authn_result why;
  ck_assert_int_eq(authn_verify(a, "", 0, NULL, &why), ERR_INVAL);
  ck_assert_int_eq(why, AUTHN_MISSING);
  ck_assert_int_eq(verify(a, "v4.public.garbage", NULL), AUTHN_MALFORMED);
  ck_assert_int_eq(verify(a, "v2.local.abc.def", NULL), AUTHN_MALFORMED);
  char *huge = malloc(PASETO_TOKEN_MAX + 10);
  memset(huge, 'A', PASETO_TOKEN_MAX + 9);
  huge[PASETO_TOKEN_MAX + 9] = '\0';
  ck_assert_int_eq(verify(a, huge, NULL), AUTHN_MALFORMED);
  free(huge);
  authn_free(a);
}
END_TEST

/* ---------------------------------------------------------------- keys --- */

START_TEST(key_is_selected_by_kid) {
  authn *a = new_authn(NULL);
  paseto_claims c = base_claims();
  char *t1 = make_token(&sk1, &c);
  char *t2 = make_token(&sk2, &c);
  ck_assert_int_eq(verify(a, t1, NULL), AUTHN_OK);
  ck_assert_int_eq(verify(a, t2, NULL), AUTHN_OK);
  /* Signed by key 2 but naming key 1: verified with key 1, and fails. */
  char *t3 = sign_with(&sk2, &c, &pk1, NULL);
  ck_assert_int_eq(verify(a, t3, NULL), AUTHN_BAD_SIGNATURE);
  free(t1);
  free(t2);
  free(t3);
  authn_free(a);
}
END_TEST

START_TEST(unknown_kid_and_missing_footer_are_refused) {
  authn *a = new_authn(NULL);
  paseto_claims c = base_claims();
  paseto_secret_key sk3;
  paseto_public_key pk3;
  paseto_keygen(&sk3, &pk3);
  char *t = make_token(&sk3, &c);
  ck_assert_int_eq(verify(a, t, NULL), AUTHN_UNKNOWN_KEY);
  free(t);
  t = sign_with(&sk1, &c, NULL, "");
  ck_assert_int_eq(verify(a, t, NULL), AUTHN_MALFORMED);
  free(t);
  t = sign_with(&sk1, &c, NULL, "{\"kid\":\"nope\"}");
  ck_assert_int_eq(verify(a, t, NULL), AUTHN_MALFORMED);
  free(t);
  authn_free(a);
}
END_TEST

START_TEST(no_key_set_yet_is_unavailable) {
  authn_config cfg = AUTHN_CONFIG_INIT;
  authn *a = NULL;
  ck_assert_int_eq(authn_new(&cfg, &a), ERR_OK);
  paseto_claims c = base_claims();
  char *t = make_token(&sk1, &c);
  ck_assert_int_eq(verify(a, t, NULL), AUTHN_UNAVAILABLE);
  ck_assert_int_eq(authn_result_code(AUTHN_UNAVAILABLE), RPC_UNAVAILABLE);
  free(t);
  authn_free(a);
}
END_TEST

START_TEST(tampered_payload_and_footer_are_refused) {
  authn *a = new_authn(NULL);
  paseto_claims c = base_claims();
  char *t = make_token(&sk1, &c);
  /* Flip a character inside the body (after "v4.public."). */
  char *t2 = strdup(t);
  t2[PASETO_HEADER_LEN + 5] = t2[PASETO_HEADER_LEN + 5] == 'A' ? 'B' : 'A';
  ck_assert_int_eq(verify(a, t2, NULL), AUTHN_BAD_SIGNATURE);
  free(t2);
  /* Same payload, another (valid, known) kid in the footer: the footer is
   * signed, so the signature no longer matches. */
  char *t3 = sign_with(&sk1, &c, &pk2, NULL);
  const char *dot = strrchr(t, '.');
  const char *dot3 = strrchr(t3, '.');
  size_t body = (size_t)(dot - t);
  char *t4 = malloc(strlen(t) + strlen(dot3) + 1);
  memcpy(t4, t, body);
  memcpy(t4 + body, dot3, strlen(dot3) + 1);
  ck_assert_int_eq(verify(a, t4, NULL), AUTHN_BAD_SIGNATURE);
  free(t3);
  free(t4);
  ck_assert_int_eq(verify(a, t, NULL), AUTHN_OK);
  free(t);
  authn_free(a);
}
END_TEST

/* --------------------------------------------------------------- cache --- */

START_TEST(second_verification_is_a_cache_hit) {
  authn *a = new_authn(NULL);
  paseto_claims c = base_claims();
  char *t = make_token(&sk1, &c);
  for (int i = 0; i < 5; i++) ck_assert_int_eq(verify(a, t, NULL), AUTHN_OK);
  authn_stats st;
  authn_get_stats(a, &st);
  ck_assert_uint_eq(st.misses, 1);
  ck_assert_uint_eq(st.hits, 4);
  authn_cache_clear(a);
  ck_assert_int_eq(verify(a, t, NULL), AUTHN_OK);
  authn_get_stats(a, &st);
  ck_assert_uint_eq(st.misses, 2);
  free(t);
  authn_free(a);
}
END_TEST

/* The cache keeps claims compactly; what a hit returns is what the
 * verification returned, every field. */
START_TEST(a_cache_hit_returns_the_same_claims) {
  authn *a = new_authn(NULL);
  paseto_claims c = base_claims();
  char *t = make_token(&sk1, &c);
  paseto_claims first, again;
  ck_assert_int_eq(verify(a, t, &first), AUTHN_OK);
  ck_assert_int_eq(verify(a, t, &again), AUTHN_OK);
  authn_stats st;
  authn_get_stats(a, &st);
  ck_assert_uint_eq(st.hits, 1);
  ck_assert_str_eq(again.iss, first.iss);
  ck_assert_str_eq(again.aud, first.aud);
  ck_assert_str_eq(again.sub, first.sub);
  ck_assert_str_eq(again.tid, first.tid);
  ck_assert_str_eq(again.role, first.role);
  ck_assert_str_eq(again.jti, first.jti);
  ck_assert_int_eq(again.has_iat, first.has_iat);
  ck_assert_int_eq(again.has_nbf, first.has_nbf);
  ck_assert_int_eq(again.has_exp, first.has_exp);
  ck_assert_int_eq(again.iat_ms, first.iat_ms);
  ck_assert_int_eq(again.nbf_ms, first.nbf_ms);
  ck_assert_int_eq(again.exp_ms, first.exp_ms);
  free(t);
  authn_free(a);
}
END_TEST

/* Claims longer than a cache slot holds (auth issues UUIDs and short
 * words; this is not one of its tokens' shapes): the token is never
 * cached, so it is verified on every call, with its claims whole. */
START_TEST(claims_too_long_for_a_slot_are_verified_every_time) {
  authn *a = new_authn(NULL);
  paseto_claims c = base_claims();
  memset(c.role, 'r', 40);
  c.role[40] = '\0';
  char *t = make_token(&sk1, &c);
  paseto_claims out;
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(verify(a, t, &out), AUTHN_OK);
    ck_assert_str_eq(out.role, c.role);
  }
  authn_stats st;
  authn_get_stats(a, &st);
  ck_assert_uint_eq(st.hits, 0);
  ck_assert_uint_eq(st.misses, 3);
  free(t);
  authn_free(a);
}
END_TEST

START_TEST(bad_signatures_are_not_cached) {
  authn *a = new_authn(NULL);
  paseto_claims c = base_claims();
  char *t = sign_with(&sk2, &c, &pk1, NULL);
  for (int i = 0; i < 3; i++)
    ck_assert_int_eq(verify(a, t, NULL), AUTHN_BAD_SIGNATURE);
  authn_stats st;
  authn_get_stats(a, &st);
  ck_assert_uint_eq(st.hits, 0);
  ck_assert_uint_eq(st.refused, 3);
  free(t);
  authn_free(a);
}
END_TEST

START_TEST(cache_is_bounded_and_evicts) {
  authn_config cfg = AUTHN_CONFIG_INIT;
  cfg.cache_entries = 8;
  authn *a = new_authn(&cfg);
  enum { N = 64 };
  char *toks[N];
  for (int i = 0; i < N; i++) {
    paseto_claims c = base_claims();
    toks[i] = make_token(&sk1, &c);
    ck_assert_int_eq(verify(a, toks[i], NULL), AUTHN_OK);
  }
  authn_stats st;
  authn_get_stats(a, &st);
  ck_assert_uint_ge(st.evictions, N - 8);
  /* Evicted tokens are still valid: verified again. */
  for (int i = 0; i < N; i++) {
    ck_assert_int_eq(verify(a, toks[i], NULL), AUTHN_OK);
    free(toks[i]);
  }
  authn_get_stats(a, &st);
  ck_assert_uint_ge(st.misses, N + 1);
  authn_free(a);
}
END_TEST

START_TEST(key_set_change_reverifies_cached_tokens) {
  authn *a = new_authn(NULL);
  paseto_claims c = base_claims();
  char *t = make_token(&sk2, &c);
  ck_assert_int_eq(verify(a, t, NULL), AUTHN_OK);
  /* Same set again: still a hit. */
  authn_key keys[2] = {{.pk = pk1, .active = true}, {.pk = pk2}};
  ck_assert_int_eq(authn_set_keys(a, keys, 2), ERR_OK);
  ck_assert_int_eq(verify(a, t, NULL), AUTHN_OK);
  authn_stats st;
  authn_get_stats(a, &st);
  ck_assert_uint_eq(st.hits, 1);
  /* Key 2 retired: its cached token must not survive. */
  ck_assert_int_eq(authn_set_keys(a, keys, 1), ERR_OK);
  ck_assert_uint_eq(authn_key_count(a), 1);
  ck_assert_int_eq(verify(a, t, NULL), AUTHN_UNKNOWN_KEY);
  authn_key many[AUTHN_MAX_KEYS + 1];
  for (size_t i = 0; i <= AUTHN_MAX_KEYS; i++) many[i] = keys[0];
  ck_assert_int_eq(authn_set_keys(a, many, AUTHN_MAX_KEYS + 1), ERR_TOOBIG);
  ck_assert_int_eq(authn_set_keys(a, NULL, 1), ERR_INVAL);
  free(t);
  authn_free(a);
}
END_TEST

/* --------------------------------------------------------- revocations --- */

START_TEST(revoked_jti_refuses_only_that_token) {
  authn *a = new_authn(NULL);
  paseto_claims c1 = base_claims(), c2 = base_claims();
  char *t1 = make_token(&sk1, &c1), *t2 = make_token(&sk1, &c2);
  ck_assert_int_eq(verify(a, t1, NULL), AUTHN_OK);
  ck_assert_int_eq(verify(a, t2, NULL), AUTHN_OK);
  authn_revoke_jti(a, c1.jti);
  ck_assert_int_eq(verify(a, t1, NULL), AUTHN_REVOKED);
  ck_assert_int_eq(verify(a, t2, NULL), AUTHN_OK);
  ck_assert_int_eq(authn_result_code(AUTHN_REVOKED), RPC_UNAUTHENTICATED);
  free(t1);
  free(t2);
  authn_free(a);
}
END_TEST

START_TEST(revoked_user_refuses_tokens_issued_before) {
  authn *a = new_authn(NULL);
  paseto_claims old = base_claims();
  paseto_claims other = base_claims(); /* another user */
  char *t_old = make_token(&sk1, &old), *t_other = make_token(&sk1, &other);
  ck_assert_int_eq(verify(a, t_old, NULL), AUTHN_OK);
  ck_assert_int_eq(verify(a, t_other, NULL), AUTHN_OK);
  int64_t rev_s = fake_now / 1000 + 1; /* auth rounds up */
  authn_revoke_user(a, old.sub, rev_s);
  ck_assert_int_eq(verify(a, t_old, NULL), AUTHN_REVOKED);
  ck_assert_int_eq(verify(a, t_other, NULL), AUTHN_OK);
  /* A token of the same user issued at/after the revocation is fine. */
  paseto_claims fresh = old;
  uuid_v7_str(fresh.jti);
  fresh.iat_ms = rev_s * 1000;
  char *t_fresh = make_token(&sk1, &fresh);
  ck_assert_int_eq(verify(a, t_fresh, NULL), AUTHN_OK);
  authn_revoke_user(a, old.sub, rev_s);
  ck_assert_int_eq(verify(a, t_fresh, NULL), AUTHN_OK);
  free(t_old);
  free(t_other);
  free(t_fresh);
  authn_free(a);
}
END_TEST

static size_t pack_event(const char *tenant, const Auth__V1__Revoked *r,
                         uint8_t *buf, size_t cap) {
  uint8_t inner[512];
  size_t ilen = 0;
  if (r != NULL) {
    ilen = auth__v1__revoked__get_packed_size(r);
    ck_assert_uint_le(ilen, sizeof inner);
    auth__v1__revoked__pack(r, inner);
  }
  Rpc__V1__Event ev = RPC__V1__EVENT__INIT;
  ev.type = "TokenRevoked";
  ev.tenant_id = (char *)tenant;
  ev.payload.data = inner;
  ev.payload.len = ilen;
  size_t n = rpc__v1__event__get_packed_size(&ev);
  ck_assert_uint_le(n, cap);
  rpc__v1__event__pack(&ev, buf);
  return n;
}

START_TEST(revocation_events_apply_to_cached_tokens) {
  authn *a = new_authn(NULL);
  paseto_claims c = base_claims();
  char *t = make_token(&sk1, &c);
  ck_assert_int_eq(verify(a, t, NULL), AUTHN_OK);
  Auth__V1__Revoked r = AUTH__V1__REVOKED__INIT;
  r.jti = c.jti;
  r.tenant_id = c.tid;
  uint8_t buf[1024];
  size_t n = pack_event(c.tid, &r, buf, sizeof buf);
  /* Another topic is ignored. */
  ck_assert_int_eq(authn_handle_event(a, "orders.x", buf, n), ERR_OK);
  ck_assert_int_eq(verify(a, t, NULL), AUTHN_OK);
  ck_assert_int_eq(authn_handle_event(a, AUTHN_TOPIC_REVOKED, buf, n), ERR_OK);
  ck_assert_int_eq(verify(a, t, NULL), AUTHN_REVOKED);
  /* Garbage is reported, not applied. */
  uint8_t junk[] = {0xff, 0xff, 0xff, 0x01};
  ck_assert_int_eq(
      authn_handle_event(a, AUTHN_TOPIC_REVOKED, junk, sizeof junk), ERR_PROTO);
  ck_assert_int_eq(authn_handle_event(a, NULL, buf, n), ERR_INVAL);
  free(t);
  authn_free(a);
}
END_TEST

START_TEST(user_revocation_event_applies) {
  authn *a = new_authn(NULL);
  paseto_claims c = base_claims();
  char *t = make_token(&sk1, &c);
  ck_assert_int_eq(verify(a, t, NULL), AUTHN_OK);
  Auth__V1__Revoked r = AUTH__V1__REVOKED__INIT;
  r.user_id = c.sub;
  r.revoked_at_unix = fake_now / 1000 + 1;
  uint8_t buf[1024];
  size_t n = pack_event(c.tid, &r, buf, sizeof buf);
  ck_assert_int_eq(authn_handle_event(a, AUTHN_TOPIC_REVOKED, buf, n), ERR_OK);
  ck_assert_int_eq(verify(a, t, NULL), AUTHN_REVOKED);
  free(t);
  authn_free(a);
}
END_TEST

START_TEST(bus_subscription_applies_published_revocations) {
  bus_publisher *pub = NULL;
  ck_assert_int_eq(
      bus_publisher_new("tcp://127.0.0.1:0", "auth-test", 0, NULL, &pub),
      ERR_OK);
  char url[64];
  snprintf(url, sizeof url, "tcp://127.0.0.1:%d", bus_publisher_port(pub));
  authn *a = new_authn(NULL);
  bus_subscriber *sub = NULL;
  ck_assert_int_eq(authn_subscribe(a, "not a url", &sub), ERR_INVAL);
  ck_assert_int_eq(authn_subscribe(a, url, &sub), ERR_OK);
  ck_assert_int_eq(bus_subscriber_wait_connected(sub, 1, 5000), ERR_OK);
  paseto_claims c = base_claims();
  char *t = make_token(&sk1, &c);
  ck_assert_int_eq(verify(a, t, NULL), AUTHN_OK);
  Auth__V1__Revoked r = AUTH__V1__REVOKED__INIT;
  r.jti = c.jti;
  uint8_t buf[256];
  size_t n = auth__v1__revoked__get_packed_size(&r);
  auth__v1__revoked__pack(&r, buf);
  /* A subscription may take a moment to reach the publisher: publish
   * until the revocation lands (generous bound, loaded machine). */
  enum authn_result got = AUTHN_OK;
  for (int i = 0; i < 100 && got == AUTHN_OK; i++) {
    ck_assert_int_eq(bus_publish(pub, AUTHN_TOPIC_REVOKED, "TokenRevoked",
                                 c.tid, buf, n, NULL),
                     ERR_OK);
    time_sleep_ms(50);
    got = verify(a, t, NULL);
  }
  ck_assert_int_eq(got, AUTHN_REVOKED);
  bus_subscriber_free(sub);
  free(t);
  authn_free(a);
  bus_publisher_free(pub);
}
END_TEST

/* --------------------------------------------------------------- redis --- */

static cache *dead_redis(void) {
  /* Port 1 on loopback: connection refused at once. */
  cache_config cc = {.url = "redis://127.0.0.1:1",
                     .connect_timeout_ms = 200,
                     .command_timeout_ms = 200};
  cache *r = NULL;
  ck_assert_int_eq(cache_new(&cc, &r), ERR_OK);
  return r;
}

START_TEST(redis_down_fails_open_by_default) {
  cache *r = dead_redis();
  authn_config cfg = AUTHN_CONFIG_INIT;
  cfg.redis = r;
  cfg.recheck_ms = 60000;
  authn *a = new_authn(&cfg);
  paseto_claims c = base_claims();
  char *t = make_token(&sk1, &c);
  ck_assert_int_eq(verify(a, t, NULL), AUTHN_OK);
  ck_assert_int_eq(verify(a, t, NULL), AUTHN_OK);
  authn_stats st;
  authn_get_stats(a, &st);
  /* One failed lookup, not one per call. */
  ck_assert_uint_eq(st.redis_checks, 1);
  ck_assert_uint_eq(st.redis_errors, 1);
  /* A tenants.changed event forces the next call to look again. */
  uint8_t buf[256];
  size_t n = pack_event(c.tid, NULL, buf, sizeof buf);
  ck_assert_int_eq(authn_handle_event(a, AUTHN_TOPIC_TENANTS, buf, n), ERR_OK);
  ck_assert_int_eq(verify(a, t, NULL), AUTHN_OK);
  authn_get_stats(a, &st);
  ck_assert_uint_eq(st.redis_checks, 2);
  free(t);
  authn_free(a);
  cache_free(r);
}
END_TEST

START_TEST(redis_down_refuses_when_fail_closed) {
  cache *r = dead_redis();
  authn_config cfg = AUTHN_CONFIG_INIT;
  cfg.redis = r;
  cfg.fail_closed = true;
  authn *a = new_authn(&cfg);
  paseto_claims c = base_claims();
  char *t = make_token(&sk1, &c);
  ck_assert_int_eq(verify(a, t, NULL), AUTHN_UNAVAILABLE);
  free(t);
  authn_free(a);
  cache_free(r);
}
END_TEST

/* ------------------------------------------------------------ offline --- */

static enum authn_result offline(authn *a, const char *tok) {
  enum authn_result why = AUTHN_OK;
  int rc = authn_verify_offline(a, tok, tok ? strlen(tok) : 0, &why);
  if (why == AUTHN_OK)
    ck_assert_int_eq(rc, ERR_OK);
  else if (why == AUTHN_UNAVAILABLE)
    ck_assert_int_eq(rc, ERR_UNAVAILABLE);
  else
    ck_assert_int_eq(rc, ERR_INVAL);
  return why;
}

/* What the gateway checks before reading a body: signature and time,
 * never Redis or a Keys fetch; a token it accepts is cached for the full
 * verification. */
START_TEST(batch_answers_as_one_by_one_with_one_lookup) {
  cache *r = dead_redis();
  authn_config cfg = AUTHN_CONFIG_INIT;
  cfg.redis = r;
  cfg.recheck_ms = 60000;
  authn *a = new_authn(&cfg);
  paseto_claims c1 = base_claims(), c2 = base_claims(), c3 = base_claims(),
                old = base_claims();
  old.exp_ms = fake_now - 60 * 60 * 1000;
  old.iat_ms = old.nbf_ms = old.exp_ms - 15 * 60 * 1000;
  char *t1 = make_token(&sk1, &c1), *t2 = make_token(&sk1, &c2),
       *t3 = make_token(&sk1, &c3), *t4 = make_token(&sk1, &old);
  authn_revoke_jti(a, c3.jti); /* not cached yet: needs its lookup */
  ck_assert_int_eq(verify(a, t3, NULL), AUTHN_OK); /* Redis down: open */
  authn_revoke_jti(a, c3.jti);                     /* now cached: revoked */
  authn_stats st;
  authn_get_stats(a, &st);
  uint64_t before = st.redis_checks;
  const char *toks[] = {t1, t2, t3, t4, "garbage"};
  size_t lens[5];
  for (size_t i = 0; i < 5; i++) lens[i] = strlen(toks[i]);
  int rcs[5];
  enum authn_result why[5];
  ck_assert_int_eq(authn_verify_batch(a, toks, lens, 5, rcs, why), ERR_OK);
  ck_assert_int_eq(rcs[0], ERR_OK);
  ck_assert_int_eq(why[0], AUTHN_OK);
  ck_assert_int_eq(rcs[1], ERR_OK);
  ck_assert_int_eq(rcs[2], ERR_INVAL);
  ck_assert_int_eq(why[2], AUTHN_REVOKED);
  ck_assert_int_eq(rcs[3], ERR_INVAL);
  ck_assert_int_eq(why[3], AUTHN_EXPIRED);
  ck_assert_int_eq(rcs[4], ERR_INVAL);
  ck_assert_int_eq(why[4], AUTHN_MALFORMED);
  authn_get_stats(a, &st);
  /* t1 and t2 were due: one MGET for both (it failed: open). */
  ck_assert_uint_eq(st.redis_checks, before + 1);
  /* Their outcome is cached like authn_verify's: no lookup now. */
  ck_assert_int_eq(verify(a, t1, NULL), AUTHN_OK);
  authn_get_stats(a, &st);
  ck_assert_uint_eq(st.redis_checks, before + 1);
  ck_assert_int_eq(authn_verify_batch(a, toks, lens, 0, rcs, why), ERR_OK);
  ck_assert_int_eq(
      authn_verify_batch(a, toks, lens, AUTHN_BATCH_MAX + 1, rcs, why),
      ERR_INVAL);
  free(t1);
  free(t2);
  free(t3);
  free(t4);
  authn_free(a);
  cache_free(r);
}
END_TEST

/* authn_recheck_all: states read before it are due again, once. */
START_TEST(recheck_all_makes_every_cached_state_due_once) {
  cache *r = dead_redis();
  authn_config cfg = AUTHN_CONFIG_INIT;
  cfg.redis = r;
  cfg.recheck_ms = 60000;
  authn *a = new_authn(&cfg);
  paseto_claims c = base_claims();
  char *t = make_token(&sk1, &c);
  ck_assert_int_eq(verify(a, t, NULL), AUTHN_OK); /* looked up (open) */
  authn_stats st;
  authn_get_stats(a, &st);
  uint64_t n = st.redis_checks;
  ck_assert_int_eq(verify(a, t, NULL), AUTHN_OK); /* within recheck_ms */
  authn_get_stats(a, &st);
  ck_assert_uint_eq(st.redis_checks, n);
  authn_recheck_all(a);
  time_sleep_ms(2); /* the next lookup is stamped after the mark */
  ck_assert_int_eq(verify(a, t, NULL), AUTHN_OK);
  authn_get_stats(a, &st);
  ck_assert_uint_eq(st.redis_checks, n + 1);
  ck_assert_int_eq(verify(a, t, NULL), AUTHN_OK); /* fresh again */
  authn_get_stats(a, &st);
  ck_assert_uint_eq(st.redis_checks, n + 1);
  authn_recheck_all(NULL); /* NULL-safe */
  free(t);
  authn_free(a);
  cache_free(r);
}
END_TEST

START_TEST(offline_check_verifies_signature_and_time_only) {
  cache *r = dead_redis();
  authn_config cfg = AUTHN_CONFIG_INIT;
  cfg.redis = r;
  cfg.fail_closed = true;
  authn *a = new_authn(&cfg);
  paseto_claims c = base_claims();
  char *t = make_token(&sk1, &c);
  ck_assert_int_eq(offline(a, t), AUTHN_OK);
  authn_stats st;
  authn_get_stats(a, &st);
  ck_assert_uint_eq(st.redis_checks, 0); /* Redis is dead and not asked */
  ck_assert_uint_eq(st.misses, 1);
  /* The full verification reuses the cached signature check and does
   * the Redis part (fail closed here: unavailable). */
  ck_assert_int_eq(verify(a, t, NULL), AUTHN_UNAVAILABLE);
  authn_get_stats(a, &st);
  ck_assert_uint_eq(st.misses, 1);
  ck_assert_uint_eq(st.hits, 1);
  ck_assert_uint_eq(st.redis_checks, 1);
  /* Garbage, a bad signature, expiry, no token. */
  ck_assert_int_eq(offline(a, "v4.public.AAAA"), AUTHN_MALFORMED);
  ck_assert_int_eq(offline(a, NULL), AUTHN_MISSING);
  char *t2 = strdup(t);
  t2[PASETO_HEADER_LEN + 5] = t2[PASETO_HEADER_LEN + 5] == 'A' ? 'B' : 'A';
  ck_assert_int_eq(offline(a, t2), AUTHN_BAD_SIGNATURE);
  fake_now += 3600 * 1000;
  ck_assert_int_eq(offline(a, t), AUTHN_EXPIRED);
  free(t);
  free(t2);
  authn_free(a);
  cache_free(r);
}
END_TEST

START_TEST(offline_check_refuses_unknown_kids_and_known_revocations) {
  authn *a = new_authn(NULL);
  paseto_secret_key sk3;
  paseto_public_key pk3;
  paseto_keygen(&sk3, &pk3);
  paseto_claims c = base_claims();
  char *t3 = make_token(&sk3, &c);
  ck_assert_int_eq(offline(a, t3), AUTHN_UNKNOWN_KEY);
  paseto_claims c1 = base_claims();
  char *t1 = make_token(&sk1, &c1);
  ck_assert_int_eq(verify(a, t1, NULL), AUTHN_OK);
  authn_revoke_jti(a, c1.jti);
  ck_assert_int_eq(offline(a, t1), AUTHN_REVOKED);
  free(t1);
  free(t3);
  authn_free(a);
  /* No key set yet: cannot tell offline. */
  authn_config cfg = AUTHN_CONFIG_INIT;
  ck_assert_int_eq(authn_new(&cfg, &a), ERR_OK);
  char *t = make_token(&sk1, &c);
  ck_assert_int_eq(offline(a, t), AUTHN_UNAVAILABLE);
  free(t);
  authn_free(a);
}
END_TEST

START_TEST(fail_mode_setting_parses_open_and_closed_only) {
  bool closed = true;
  ck_assert_int_eq(authn_fail_mode_parse(NULL, &closed), ERR_OK);
  ck_assert(!closed);
  ck_assert_int_eq(authn_fail_mode_parse("CLOSED", &closed), ERR_OK);
  ck_assert(closed);
  ck_assert_int_eq(authn_fail_mode_parse("open", &closed), ERR_OK);
  ck_assert(!closed);
  ck_assert_int_eq(authn_fail_mode_parse("", &closed), ERR_OK);
  ck_assert(!closed);
  ck_assert_int_eq(authn_fail_mode_parse("shut", &closed), ERR_INVAL);
  ck_assert(!closed);
}
END_TEST

/* --------------------------------------------------- keys over libs/rpc --- */

static paseto_public_key served[2];
static size_t nserved;
static bool serve_bad_kid;
static int keys_calls;

static void keys_handler(void *arg, const rpc_call *call, rpc_reply *reply) {
  __atomic_add_fetch(&keys_calls, 1, __ATOMIC_SEQ_CST);
  Auth__V1__PublicKey k[2];
  Auth__V1__PublicKey *kp[2];
  char kid[2][PASETO_PID_LEN + 1];
  char b64[2][64];
  for (size_t i = 0; i < nserved; i++) {
    auth__v1__public_key__init(&k[i]);
    paseto_pid(&served[i], kid[i]);
    if (serve_bad_kid) paseto_pid(&served[(i + 1) % 2], kid[i]);
    sodium_bin2base64(b64[i], sizeof b64[i], served[i].b, 32,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    k[i].kid = kid[i];
    k[i].alg = "v4.public";
    k[i].public_key = b64[i];
    k[i].status = i == 0 ? "active" : "verify-only";
    kp[i] = &k[i];
  }
  Auth__V1__KeysResponse resp = AUTH__V1__KEYS_RESPONSE__INIT;
  resp.keys = kp;
  resp.n_keys = nserved;
  if (rpc_reply_set_message(reply, &resp.base) != ERR_OK)
    rpc_reply_status(reply, RPC_INTERNAL, "pack");
}

typedef struct keys_env {
  rpc_server *srv;
  rpc_client *cli;
} keys_env;

/* An in-process server answering method with fn, and a connected
 * client. */
static void serve_start(keys_env *e, const char *method, rpc_handler_fn fn) {
  rpc_server_options so;
  rpc_server_options_init(&so);
  so.workers = 2;
  ck_assert_int_eq(rpc_server_new(&so, &e->srv), ERR_OK);
  ck_assert_int_eq(rpc_server_register(e->srv, method, fn, NULL), ERR_OK);
  ck_assert_int_eq(rpc_server_start(e->srv, "tcp://127.0.0.1:0"), ERR_OK);
  char url[64];
  snprintf(url, sizeof url, "tcp://127.0.0.1:%d", rpc_server_port(e->srv));
  ck_assert_int_eq(rpc_client_new(url, NULL, &e->cli), ERR_OK);
  ck_assert_int_eq(rpc_client_wait_connected(e->cli, 1, 5000), ERR_OK);
}

static void keys_env_start(keys_env *e) {
  serve_start(e, AUTHN_KEYS_METHOD, keys_handler);
}

static void keys_env_stop(keys_env *e) {
  rpc_client_free(e->cli);
  rpc_server_close(e->srv);
}

START_TEST(keys_are_fetched_and_unknown_kid_refetches_rate_limited) {
  keys_env env;
  served[0] = pk1;
  nserved = 1;
  serve_bad_kid = false;
  keys_calls = 0;
  keys_env_start(&env);
  authn_config cfg = AUTHN_CONFIG_INIT;
  cfg.keys_client = env.cli;
  cfg.now_ms = clock_fn;
  cfg.unknown_kid_interval_ms = 60000; /* only one triggered fetch */
  authn *a = NULL;
  ck_assert_int_eq(authn_new(&cfg, &a), ERR_OK);
  ck_assert_uint_eq(authn_key_count(a), 1);
  paseto_claims c = base_claims();
  char *t1 = make_token(&sk1, &c);
  char *t2 = make_token(&sk2, &c);
  ck_assert_int_eq(verify(a, t1, NULL), AUTHN_OK);
  /* Key 2 rotated in on the server: the unknown kid triggers a fetch. */
  served[1] = pk2;
  nserved = 2;
  int before = __atomic_load_n(&keys_calls, __ATOMIC_SEQ_CST);
  ck_assert_int_eq(verify(a, t2, NULL), AUTHN_OK);
  ck_assert_int_eq(__atomic_load_n(&keys_calls, __ATOMIC_SEQ_CST), before + 1);
  /* Another unknown kid within the interval: no second fetch. */
  paseto_secret_key sk3;
  paseto_public_key pk3;
  paseto_keygen(&sk3, &pk3);
  char *t3 = make_token(&sk3, &c);
  ck_assert_int_eq(verify(a, t3, NULL), AUTHN_UNKNOWN_KEY);
  ck_assert_int_eq(verify(a, t3, NULL), AUTHN_UNKNOWN_KEY);
  ck_assert_int_eq(__atomic_load_n(&keys_calls, __ATOMIC_SEQ_CST), before + 1);
  free(t1);
  free(t2);
  free(t3);
  authn_free(a);
  keys_env_stop(&env);
}
END_TEST

START_TEST(key_answer_with_wrong_kid_is_refused_whole) {
  keys_env env;
  served[0] = pk1;
  served[1] = pk2;
  nserved = 2;
  serve_bad_kid = true;
  keys_env_start(&env);
  authn_config cfg = AUTHN_CONFIG_INIT;
  cfg.keys_client = env.cli;
  authn *a = NULL;
  ck_assert_int_eq(authn_new(&cfg, &a), ERR_OK);
  ck_assert_uint_eq(authn_key_count(a), 0);
  ck_assert_int_eq(authn_refresh_keys(a), ERR_PROTO);
  authn_stats st;
  authn_get_stats(a, &st);
  ck_assert_uint_ge(st.key_fetch_errors, 2);
  serve_bad_kid = false;
  ck_assert_int_eq(authn_refresh_keys(a), ERR_OK);
  ck_assert_uint_eq(authn_key_count(a), 2);
  authn_free(a);
  keys_env_stop(&env);
}
END_TEST

START_TEST(keys_server_down_is_unavailable_not_fatal) {
  rpc_client_options co;
  rpc_client_options_init(&co);
  co.connect_wait_ms = 100;
  rpc_client *cli = NULL;
  int port = 1; /* nothing listens there */
  char url[64];
  snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
  ck_assert_int_eq(rpc_client_new(url, &co, &cli), ERR_OK);
  authn_config cfg = AUTHN_CONFIG_INIT;
  cfg.keys_client = cli;
  cfg.keys_deadline_ms = 300;
  authn *a = NULL;
  ck_assert_int_eq(authn_new(&cfg, &a), ERR_OK);
  ck_assert_int_eq(authn_refresh_keys(a), ERR_UNAVAILABLE);
  paseto_claims c = base_claims();
  c.iat_ms = c.nbf_ms = time_now_ms();
  c.exp_ms = c.iat_ms + 60000;
  char *t = make_token(&sk1, &c);
  enum authn_result why;
  ck_assert_int_eq(authn_verify(a, t, strlen(t), NULL, &why), ERR_UNAVAILABLE);
  ck_assert_int_eq(why, AUTHN_UNAVAILABLE);
  free(t);
  authn_free(a);
  rpc_client_free(cli);
}
END_TEST

START_TEST(bad_config_is_refused) {
  authn *a = NULL;
  ck_assert_int_eq(authn_new(NULL, &a), ERR_INVAL);
  authn_config cfg = AUTHN_CONFIG_INIT;
  cfg.cache_entries = (size_t)1 << 30;
  ck_assert_int_eq(authn_new(&cfg, &a), ERR_INVAL);
  ck_assert_ptr_null(a);
  ck_assert_int_eq(authn_refresh_keys(NULL), ERR_INVAL);
  authn_free(NULL);
  ck_assert_str_eq(authn_result_str(AUTHN_TENANT_SUSPENDED),
                   "tenant suspended");
  ck_assert_int_eq(authn_result_code(AUTHN_TENANT_SUSPENDED),
                   RPC_PERMISSION_DENIED);
  ck_assert_int_eq(authn_result_code(AUTHN_OK), RPC_OK);
}
END_TEST

/* -------------------------------------------------------------- caller --- */

START_TEST(roles_rank_owner_admin_staff_customer) {
  ck_assert_int_eq(authn_role_rank("owner"), AUTHN_ROLE_OWNER);
  ck_assert_int_eq(authn_role_rank("admin"), AUTHN_ROLE_ADMIN);
  ck_assert_int_eq(authn_role_rank("staff"), AUTHN_ROLE_STAFF);
  ck_assert_int_eq(authn_role_rank("customer"), AUTHN_ROLE_CUSTOMER);
  /* A sync device ranks as staff, nothing above. */
  ck_assert_int_eq(authn_role_rank("device"), AUTHN_ROLE_STAFF);
  ck_assert_int_eq(authn_role_rank("Device"), AUTHN_ROLE_NONE);
  ck_assert_int_gt(AUTHN_ROLE_OWNER, AUTHN_ROLE_ADMIN);
  ck_assert_int_gt(AUTHN_ROLE_ADMIN, AUTHN_ROLE_STAFF);
  ck_assert_int_gt(AUTHN_ROLE_STAFF, AUTHN_ROLE_CUSTOMER);
  ck_assert_int_eq(authn_role_rank("Owner"), AUTHN_ROLE_NONE);
  ck_assert_int_eq(authn_role_rank("root"), AUTHN_ROLE_NONE);
  ck_assert_int_eq(authn_role_rank(""), AUTHN_ROLE_NONE);
  ck_assert_int_eq(authn_role_rank(NULL), AUTHN_ROLE_NONE);
  for (int r = AUTHN_ROLE_CUSTOMER; r <= AUTHN_ROLE_OWNER; r++)
    ck_assert_int_eq(authn_role_rank(authn_role_name(r)), r);
  ck_assert_ptr_null(authn_role_name(AUTHN_ROLE_NONE));
  ck_assert_ptr_null(authn_role_name(5));
  ck_assert_ptr_null(authn_role_name(-1));
}
END_TEST

#define CHECK_METHOD "test.v1.Test/Check"

/* The handler under test: the check, then the caller's sub as message. */
static authn *check_authn;
static int check_min_rank;
static void check_handler(void *arg, const rpc_call *call, rpc_reply *reply) {
  paseto_claims cl;
  if (authn_check_call(check_authn, call, check_min_rank, &cl, reply) != ERR_OK)
    return;
  rpc_reply_status(reply, RPC_OK, "%s", cl.sub);
}

/* Calls CHECK_METHOD with token and envelope tenant; returns the code and
 * copies the message. */
static int call_check(rpc_client *cli, const char *token, const char *tenant,
                      char *msg, size_t cap) {
  rpc_call_options o = RPC_CALL_OPTIONS_INIT;
  o.token = token;
  o.tenant_id = tenant;
  o.deadline_ms = 5000;
  rpc_result *res = NULL;
  ck_assert_int_eq(rpc_client_call(cli, CHECK_METHOD, NULL, 0, &o, &res),
                   ERR_OK);
  int code = res->code;
  str_copy(msg, res->message, cap);
  rpc_result_free(res);
  return code;
}

START_TEST(check_call_refuses_in_order_and_names_the_need) {
  keys_env env;
  serve_start(&env, CHECK_METHOD, check_handler);
  rpc_client *cli = env.cli;
  check_authn = new_authn(NULL);
  char msg[256];

  paseto_claims c = base_claims(); /* a staff member */
  char *staff = make_token(&sk1, &c);
  check_min_rank = AUTHN_ROLE_STAFF;
  ck_assert_int_eq(call_check(cli, staff, NULL, msg, sizeof msg), RPC_OK);
  ck_assert_str_eq(msg, c.sub);
  ck_assert_int_eq(call_check(cli, staff, c.tid, msg, sizeof msg), RPC_OK);
  check_min_rank = AUTHN_ROLE_NONE;
  ck_assert_int_eq(call_check(cli, staff, NULL, msg, sizeof msg), RPC_OK);

  /* Missing and bad tokens. */
  ck_assert_int_eq(call_check(cli, NULL, NULL, msg, sizeof msg),
                   RPC_UNAUTHENTICATED);
  ck_assert_str_eq(msg, "missing token");
  ck_assert_int_eq(call_check(cli, "v4.public.garbage", NULL, msg, sizeof msg),
                   RPC_UNAUTHENTICATED);
  ck_assert_str_eq(msg, authn_result_str(AUTHN_MALFORMED));

  /* Another tenant's address. */
  char other[UUID_STR_LEN + 1];
  uuid_v7_str(other);
  ck_assert_int_eq(call_check(cli, staff, other, msg, sizeof msg),
                   RPC_PERMISSION_DENIED);
  ck_assert_str_eq(msg, "the token belongs to another tenant");

  /* Rank: staff is not admin; owner is the top. */
  check_min_rank = AUTHN_ROLE_ADMIN;
  ck_assert_int_eq(call_check(cli, staff, c.tid, msg, sizeof msg),
                   RPC_PERMISSION_DENIED);
  ck_assert_str_eq(msg, "requires the admin role or higher");
  check_min_rank = AUTHN_ROLE_OWNER;
  ck_assert_int_eq(call_check(cli, staff, NULL, msg, sizeof msg),
                   RPC_PERMISSION_DENIED);
  ck_assert_str_eq(msg, "requires the owner role");
  paseto_claims oc = base_claims();
  str_copy(oc.role, "owner", sizeof oc.role);
  char *owner = make_token(&sk1, &oc);
  ck_assert_int_eq(call_check(cli, owner, NULL, msg, sizeof msg), RPC_OK);

  /* An unknown role ranks below every role, but passes "any member". */
  paseto_claims rc = base_claims();
  str_copy(rc.role, "root", sizeof rc.role);
  char *root = make_token(&sk1, &rc);
  check_min_rank = AUTHN_ROLE_CUSTOMER;
  ck_assert_int_eq(call_check(cli, root, NULL, msg, sizeof msg),
                   RPC_PERMISSION_DENIED);
  check_min_rank = AUTHN_ROLE_NONE;
  ck_assert_int_eq(call_check(cli, root, NULL, msg, sizeof msg), RPC_OK);

  /* A tid that is not a UUID cannot scope a query. */
  paseto_claims tc = base_claims();
  str_copy(tc.tid, "acme", sizeof tc.tid);
  char *bad_tid = make_token(&sk1, &tc);
  ck_assert_int_eq(call_check(cli, bad_tid, NULL, msg, sizeof msg),
                   RPC_UNAUTHENTICATED);
  ck_assert_str_eq(msg, "token without a tenant");

  free(staff);
  free(owner);
  free(root);
  free(bad_tid);
  keys_env_stop(&env);
  authn_free(check_authn);
  check_authn = NULL;
}
END_TEST

START_TEST(check_call_without_keys_is_unavailable) {
  keys_env env;
  serve_start(&env, CHECK_METHOD, check_handler);
  rpc_client *cli = env.cli;
  authn_config cfg = AUTHN_CONFIG_INIT;
  cfg.now_ms = clock_fn;
  ck_assert_int_eq(authn_new(&cfg, &check_authn), ERR_OK); /* no keys */
  check_min_rank = AUTHN_ROLE_NONE;
  paseto_claims c = base_claims();
  char *t = make_token(&sk1, &c);
  char msg[256];
  ck_assert_int_eq(call_check(cli, t, NULL, msg, sizeof msg), RPC_UNAVAILABLE);
  ck_assert_str_eq(msg, "cannot verify the token now");
  free(t);
  keys_env_stop(&env);
  authn_free(check_authn);
  check_authn = NULL;
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("authn");
  TCase *tc = tcase_create("claims");
  tcase_add_checked_fixture(tc, setup, NULL);
  tcase_add_test(tc, valid_token_returns_its_claims);
  tcase_add_test(tc, expired_token_is_refused_and_leeway_applies);
  tcase_add_test(tc, cached_token_expires_with_the_clock);
  tcase_add_test(tc, not_yet_valid_token_is_refused);
  tcase_add_test(tc, missing_required_claims_are_refused);
  tcase_add_test(tc, empty_and_garbage_tokens_are_refused);
  suite_add_tcase(s, tc);

  tc = tcase_create("keys");
  tcase_add_checked_fixture(tc, setup, NULL);
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, key_is_selected_by_kid);
  tcase_add_test(tc, unknown_kid_and_missing_footer_are_refused);
  tcase_add_test(tc, no_key_set_yet_is_unavailable);
  tcase_add_test(tc, tampered_payload_and_footer_are_refused);
  tcase_add_test(tc, keys_are_fetched_and_unknown_kid_refetches_rate_limited);
  tcase_add_test(tc, key_answer_with_wrong_kid_is_refused_whole);
  tcase_add_test(tc, keys_server_down_is_unavailable_not_fatal);
  tcase_add_test(tc, bad_config_is_refused);
  suite_add_tcase(s, tc);

  tc = tcase_create("cache");
  tcase_add_checked_fixture(tc, setup, NULL);
  tcase_add_test(tc, second_verification_is_a_cache_hit);
  tcase_add_test(tc, a_cache_hit_returns_the_same_claims);
  tcase_add_test(tc, claims_too_long_for_a_slot_are_verified_every_time);
  tcase_add_test(tc, bad_signatures_are_not_cached);
  tcase_add_test(tc, cache_is_bounded_and_evicts);
  tcase_add_test(tc, key_set_change_reverifies_cached_tokens);
  suite_add_tcase(s, tc);

  tc = tcase_create("revocation");
  tcase_add_checked_fixture(tc, setup, NULL);
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, revoked_jti_refuses_only_that_token);
  tcase_add_test(tc, revoked_user_refuses_tokens_issued_before);
  tcase_add_test(tc, revocation_events_apply_to_cached_tokens);
  tcase_add_test(tc, user_revocation_event_applies);
  tcase_add_test(tc, bus_subscription_applies_published_revocations);
  tcase_add_test(tc, redis_down_fails_open_by_default);
  tcase_add_test(tc, redis_down_refuses_when_fail_closed);
  tcase_add_test(tc, batch_answers_as_one_by_one_with_one_lookup);
  tcase_add_test(tc, recheck_all_makes_every_cached_state_due_once);
  tcase_add_test(tc, offline_check_verifies_signature_and_time_only);
  tcase_add_test(tc, offline_check_refuses_unknown_kids_and_known_revocations);
  tcase_add_test(tc, fail_mode_setting_parses_open_and_closed_only);
  suite_add_tcase(s, tc);

  tc = tcase_create("caller");
  tcase_add_checked_fixture(tc, setup, NULL);
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, roles_rank_owner_admin_staff_customer);
  tcase_add_test(tc, check_call_refuses_in_order_and_names_the_need);
  tcase_add_test(tc, check_call_without_keys_is_unavailable);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
