/*
 * auth_test.c - unit tests of the auth service's parts that need no
 * server: input rules, signing-key configuration, the password hashing
 * pool (admission limit, deadlines, dummy hash), refresh-token
 * encoding, and the login slowdown's configuration, keys and fail modes
 * (its counting against a real Redis is in tests/auth). The handlers against
 * PostgreSQL and Redis are exercised by tests/auth.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "libs/paseto/claims.h"
#include "libs/paseto/paseto.h"
#include "services/auth/handlers.h"
#include "services/auth/keys.h"
#include "services/auth/loginlock.h"
#include "services/auth/pwpool.h"
#include "services/auth/revoker.h"
#include "services/auth/validate.h"

/* ----------------------------------------------------------- validate --- */

START_TEST(email_is_normalised_to_lower_case) {
  char out[300];
  ck_assert(validate_email("  Alice.Smith@Example.COM ", out, sizeof out));
  ck_assert_str_eq(out, "alice.smith@example.com");
}
END_TEST

START_TEST(bad_emails_are_refused) {
  char out[300];
  const char *bad[] = {"",         "plain",    "@example.com",   "a@",
                       "a@b",      "a@@b.com", "a b@c.com",      "a@.com",
                       "a@b.com.", "a@b..com", "\xc3\xa9@b.com", "a@b\x01.com"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(!validate_email(bad[i], out, sizeof out), "accepted %zu", i);
  char longmail[400];
  memset(longmail, 'a', 300);
  memcpy(longmail + 300, "@example.com", 13);
  ck_assert(!validate_email(longmail, out, sizeof out));
  char local65[100];
  memset(local65, 'a', 65);
  memcpy(local65 + 65, "@example.com", 13);
  ck_assert(!validate_email(local65, out, sizeof out));
}
END_TEST

START_TEST(password_length_counts_characters) {
  ck_assert(!validate_password("1234567"));
  ck_assert(validate_password("12345678"));
  /* 8 two-byte characters = 16 bytes but 8 characters. */
  ck_assert(validate_password(
      "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"));
  /* 4 characters of 4 bytes: 16 bytes, still too short. */
  ck_assert(!validate_password(
      "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80"));
  char p[200];
  memset(p, 'x', 128);
  p[128] = '\0';
  ck_assert(validate_password(p));
  p[128] = 'x';
  p[129] = '\0';
  ck_assert(!validate_password(p));
  ck_assert(!validate_password("abcdefg\x01h"));
  ck_assert(!validate_password("abcdefgh\xc3"));         /* truncated UTF-8 */
  ck_assert(!validate_password("abcdefgh\xc0\xaf"));     /* overlong */
  ck_assert(!validate_password("abcdefgh\xed\xa0\x80")); /* surrogate */
  ck_assert(!validate_password(NULL));
}
END_TEST

START_TEST(name_and_role_rules) {
  ck_assert(validate_name("A"));
  ck_assert(!validate_name(""));
  ck_assert(!validate_name("   "));
  char n[500];
  memset(n, 'n', 100);
  n[100] = '\0';
  ck_assert(validate_name(n));
  n[100] = 'n';
  n[101] = '\0';
  ck_assert(!validate_name(n));
  ck_assert(validate_role("owner"));
  ck_assert(validate_role("customer"));
  ck_assert(!validate_role("root"));
  ck_assert(!validate_role(NULL));
  ck_assert(validate_role("staff"));
  ck_assert(!validate_role("Owner"));
}
END_TEST

START_TEST(phone_spellings_normalise_to_one_e164_number) {
  static const char *const same[] = {"+4915112345678", "+49 151 12345678",
                                     "+49-151-123-456-78", "+49.151.1234.5678",
                                     "+49 (151) 123 456 78"};
  char out[VALIDATE_PHONE_MAX + 1];
  for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
    ck_assert_msg(validate_phone(same[i], out, sizeof out), "refused %zu", i);
    ck_assert_str_eq(out, "+4915112345678");
  }
  ck_assert(validate_phone("", out, sizeof out));
  ck_assert_str_eq(out, "");
  ck_assert(validate_phone("+12345678", out, sizeof out));        /* 8 digits */
  ck_assert(validate_phone("+123456789012345", out, sizeof out)); /* 15 */
}
END_TEST

START_TEST(bad_phone_numbers_are_refused) {
  static const char *const bad[] = {
      "4915112345678",     /* no + */
      "004915112345678",   /* 00 instead of + */
      "+1234567",          /* 7 digits */
      "+1234567890123456", /* 16 digits */
      "+0151123456789",    /* no country code starts with 0 */
      "+49151+12345678",   /* a second + */
      "+49 151 CALL ME",   /* letters */
      "+49/151/12345678",  /* not a separator we drop */
      "   ",               /* blank is not "none" */
      "+",                 /* nothing but the + */
      "+49\n15112345678",  /* control characters */
      "+49 151 1234 5678                   ", /* over 32 bytes as typed */
  };
  char out[VALIDATE_PHONE_MAX + 1];
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(!validate_phone(bad[i], out, sizeof out), "accepted %zu", i);
  ck_assert(!validate_phone(NULL, out, sizeof out));
  ck_assert(!validate_phone("+4915112345678", out, 8)); /* no room */
}
END_TEST

/* --------------------------------------------------------------- keys --- */

static void keygen_hex(char sk_hex[PASETO_SECRET_HEX_LEN + 1],
                       paseto_public_key *pk) {
  paseto_secret_key sk;
  paseto_keygen(&sk, pk);
  paseto_secret_key_to_hex(&sk, sk_hex);
  paseto_secret_key_wipe(&sk);
}

START_TEST(keys_list_first_signs_all_verify) {
  ck_assert_int_eq(paseto_init(), ERR_OK);
  char a[PASETO_SECRET_HEX_LEN + 1], b[PASETO_SECRET_HEX_LEN + 1];
  paseto_public_key pa, pb, pc;
  keygen_hex(a, &pa);
  keygen_hex(b, &pb);
  paseto_secret_key skc;
  paseto_keygen(&skc, &pc);
  char paserk[PASETO_PASERK_PUBLIC_LEN + 1];
  paseto_paserk_public(&pc, paserk);
  char list[1024];
  snprintf(list, sizeof list, " %s ,%s,\n%s", a, b, paserk);
  auth_keys *k = NULL;
  int bad = 99;
  ck_assert_int_eq(auth_keys_parse(list, &k, &bad), ERR_OK);
  ck_assert_int_eq(bad, -1);
  ck_assert_uint_eq(auth_keys_count(k), 3);
  ck_assert(auth_keys_is_active(k, 0));
  ck_assert(!auth_keys_is_active(k, 1));
  ck_assert(paseto_public_key_equal(auth_keys_public(k, 2), &pc));
  char pid[PASETO_PID_LEN + 1];
  paseto_pid(&pa, pid);
  ck_assert_str_eq(auth_keys_kid(k, 0), pid);

  /* A signed token verifies with the first key and names it. */
  paseto_claims c;
  memset(&c, 0, sizeof c);
  str_copy(c.sub, "u1", sizeof c.sub);
  c.has_exp = true;
  c.exp_ms = time_now_ms() + 60000;
  char tok[PASETO_TOKEN_MAX + 1];
  ck_assert_int_eq(auth_keys_sign(k, &c, tok, sizeof tok, NULL), ERR_OK);
  char kid[PASETO_PID_LEN + 1];
  ck_assert_int_eq(paseto_token_kid(tok, strlen(tok), kid, NULL), ERR_OK);
  ck_assert_str_eq(kid, pid);
  paseto_token *t = NULL;
  ck_assert_int_eq(
      paseto_verify(&pa, tok, strlen(tok), NULL, 0, NULL, 0, &t, NULL), ERR_OK);
  paseto_token_free(t);
  ck_assert_int_ne(
      paseto_verify(&pb, tok, strlen(tok), NULL, 0, NULL, 0, &t, NULL), ERR_OK);
  auth_keys_free(k);
}
END_TEST

START_TEST(keys_seed_form_and_comments_are_accepted) {
  ck_assert_int_eq(paseto_init(), ERR_OK);
  char a[PASETO_SECRET_HEX_LEN + 1];
  paseto_public_key pa;
  keygen_hex(a, &pa);
  char list[512];
  /* The first 64 hex digits are the seed. */
  snprintf(list, sizeof list, "# dev key\n%.64s # seed only\n\n", a);
  auth_keys *k = NULL;
  ck_assert_int_eq(auth_keys_parse(list, &k, NULL), ERR_OK);
  ck_assert_uint_eq(auth_keys_count(k), 1);
  ck_assert(paseto_public_key_equal(auth_keys_public(k, 0), &pa));
  auth_keys_free(k);
}
END_TEST

START_TEST(bad_key_lists_name_the_entry) {
  ck_assert_int_eq(paseto_init(), ERR_OK);
  char a[PASETO_SECRET_HEX_LEN + 1];
  paseto_public_key pa;
  keygen_hex(a, &pa);
  char paserk[PASETO_PASERK_PUBLIC_LEN + 1];
  paseto_paserk_public(&pa, paserk);
  auth_keys *k = NULL;
  int bad = 0;
  ck_assert_int_eq(auth_keys_parse("", &k, &bad), ERR_INVAL);
  ck_assert_int_eq(auth_keys_parse("  , # nothing\n", &k, &bad), ERR_INVAL);
  ck_assert_int_eq(auth_keys_parse(paserk, &k, &bad),
                   ERR_INVAL); /* verify-only first */
  ck_assert_int_eq(bad, 0);
  char list[2048];
  snprintf(list, sizeof list, "%s,%s", a, a);
  ck_assert_int_eq(auth_keys_parse(list, &k, &bad), ERR_INVAL); /* duplicate */
  ck_assert_int_eq(bad, 1);
  snprintf(list, sizeof list, "%s,zz%s", a, a + 2);
  ck_assert_int_eq(auth_keys_parse(list, &k, &bad), ERR_INVAL);
  ck_assert_int_eq(bad, 1);
  /* A 64-byte key whose public half is not its seed's. */
  char mism[PASETO_SECRET_HEX_LEN + 1];
  memcpy(mism, a, sizeof mism);
  mism[PASETO_SECRET_HEX_LEN - 1] =
      mism[PASETO_SECRET_HEX_LEN - 1] == '0' ? '1' : '0';
  ck_assert_int_eq(auth_keys_parse(mism, &k, &bad), ERR_INVAL);
  ck_assert_ptr_null(k);
  /* More than AUTH_KEYS_MAX keys. */
  size_t off = 0;
  char *big = malloc(20 * (PASETO_SECRET_HEX_LEN + 1) + 1);
  for (int i = 0; i < AUTH_KEYS_MAX + 1; i++) {
    char h[PASETO_SECRET_HEX_LEN + 1];
    paseto_public_key p;
    keygen_hex(h, &p);
    memcpy(big + off, h, PASETO_SECRET_HEX_LEN);
    off += PASETO_SECRET_HEX_LEN;
    big[off++] = ',';
  }
  big[off] = '\0';
  ck_assert_int_eq(auth_keys_parse(big, &k, &bad), ERR_TOOBIG);
  ck_assert_int_eq(bad, AUTH_KEYS_MAX);
  free(big);
}
END_TEST

START_TEST(keys_file_is_read_and_missing_file_is_io_error) {
  ck_assert_int_eq(paseto_init(), ERR_OK);
  char a[PASETO_SECRET_HEX_LEN + 1];
  paseto_public_key pa;
  keygen_hex(a, &pa);
  char path[] = "/tmp/auth_keys_test_XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  FILE *f = fdopen(fd, "w");
  fprintf(f, "# signing key\n%s\n", a);
  fclose(f);
  auth_keys *k = NULL;
  ck_assert_int_eq(auth_keys_load_file(path, &k, NULL), ERR_OK);
  ck_assert(paseto_public_key_equal(auth_keys_public(k, 0), &pa));
  auth_keys_free(k);
  unlink(path);
  ck_assert_int_eq(auth_keys_load_file(path, &k, NULL), ERR_IO);
}
END_TEST

/* ------------------------------------------------------------- pwpool --- */

static pwpool *fast_pool(int threads, int pending) {
  pwpool_config c = {threads, pending, crypto_pwhash_OPSLIMIT_MIN,
                     crypto_pwhash_MEMLIMIT_MIN};
  pwpool *p = NULL;
  ck_assert_int_eq(pwpool_new(&c, &p), ERR_OK);
  return p;
}

/* A pool whose hashes take a while (tens of ms or more), for the tests
 * that need jobs to overlap. */
static pwpool *slow_pool(int threads, int pending) {
  pwpool_config c = {threads, pending, 4, 32u * 1024u * 1024u};
  pwpool *p = NULL;
  ck_assert_int_eq(pwpool_new(&c, &p), ERR_OK);
  return p;
}

START_TEST(hash_then_verify_round_trips) {
  pwpool *p = fast_pool(2, 4);
  char h[PWPOOL_HASH_MAX];
  int64_t dl = time_mono_ms() + 30000;
  ck_assert_int_eq(pwpool_hash(p, "correct horse", 13, dl, h), ERR_OK);
  ck_assert(strncmp(h, "$argon2id$", 10) == 0);
  bool ok = false;
  ck_assert_int_eq(pwpool_verify(p, h, "correct horse", 13, dl, &ok), ERR_OK);
  ck_assert(ok);
  ck_assert_int_eq(pwpool_verify(p, h, "correct horsf", 13, dl, &ok), ERR_OK);
  ck_assert(!ok);
  pwpool_free(p);
}
END_TEST

START_TEST(dummy_verification_never_succeeds) {
  pwpool *p = fast_pool(1, 1);
  bool ok = true;
  ck_assert_int_eq(
      pwpool_verify(p, NULL, "whatever", 8, time_mono_ms() + 30000, &ok),
      ERR_OK);
  ck_assert(!ok);
  pwpool_stats st;
  pwpool_get_stats(p, &st);
  ck_assert_uint_eq(st.done, 1); /* the dummy did cost a verification */
  pwpool_free(p);
}
END_TEST

START_TEST(bad_config_and_oversized_password_are_refused) {
  pwpool *p = NULL;
  pwpool_config c = {0, 1, crypto_pwhash_OPSLIMIT_MIN,
                     crypto_pwhash_MEMLIMIT_MIN};
  ck_assert_int_eq(pwpool_new(&c, &p), ERR_INVAL);
  c.threads = 2;
  c.max_pending = 1; /* fewer slots than threads */
  ck_assert_int_eq(pwpool_new(&c, &p), ERR_INVAL);
  c.max_pending = 2;
  c.memlimit = 1;
  ck_assert_int_eq(pwpool_new(&c, &p), ERR_INVAL);
  p = fast_pool(1, 1);
  char big[PWPOOL_PASSWORD_MAX + 1];
  memset(big, 'x', sizeof big);
  char h[PWPOOL_HASH_MAX];
  ck_assert_int_eq(pwpool_hash(p, big, sizeof big, time_mono_ms() + 1000, h),
                   ERR_TOOBIG);
  bool ok = true;
  ck_assert_int_eq(pwpool_verify(p, "not-a-hash", "password", 8,
                                 time_mono_ms() + 30000, &ok),
                   ERR_OK);
  ck_assert(!ok);
  pwpool_free(p);
  pwpool_free(NULL);
}
END_TEST

typedef struct burst_arg {
  pwpool *p;
  const char *hash;
  int rc;
} burst_arg;

static void *burst_main(void *arg) {
  burst_arg *b = arg;
  bool ok = false;
  b->rc =
      pwpool_verify(b->p, b->hash, "password", 8, time_mono_ms() + 60000, &ok);
  return NULL;
}

START_TEST(full_pool_refuses_at_once) {
  pwpool *p = slow_pool(1, 1);
  char h[PWPOOL_HASH_MAX];
  ck_assert_int_eq(pwpool_hash(p, "password", 8, time_mono_ms() + 60000, h),
                   ERR_OK);
  enum { N = 4 };
  pthread_t th[N];
  burst_arg args[N];
  for (int i = 0; i < N; i++) {
    args[i] = (burst_arg){p, h, -1};
    pthread_create(&th[i], NULL, burst_main, &args[i]);
  }
  int ok = 0, full = 0;
  for (int i = 0; i < N; i++) {
    pthread_join(th[i], NULL);
    if (args[i].rc == ERR_OK) ok++;
    if (args[i].rc == ERR_TOOBIG) full++;
  }
  ck_assert_int_ge(ok, 1);
  ck_assert_int_ge(full, 1); /* one slot, four at once: refused, not queued */
  ck_assert_int_eq(ok + full, N);
  pwpool_stats st;
  pwpool_get_stats(p, &st);
  ck_assert_uint_eq(st.rejected, (uint64_t)full);
  ck_assert_int_eq(st.pending, 0);
  pwpool_free(p);
}
END_TEST

START_TEST(waiter_gives_up_at_its_deadline_and_slot_is_freed_later) {
  pwpool *p = slow_pool(1, 4);
  char h[PWPOOL_HASH_MAX];
  ck_assert_int_eq(pwpool_hash(p, "password", 8, time_mono_ms() + 60000, h),
                   ERR_OK);
  pthread_t th;
  burst_arg a = {p, h, -1};
  pthread_create(&th, NULL, burst_main, &a);
  /* Wait until the long job is admitted, then queue behind it with a
   * deadline that cannot be met. */
  for (int i = 0; i < 1000; i++) {
    pwpool_stats st;
    pwpool_get_stats(p, &st);
    if (st.pending >= 1) break;
    time_sleep_ms(1);
  }
  bool ok = true;
  int rc = pwpool_verify(p, h, "password", 8, time_mono_ms() + 1, &ok);
  ck_assert_int_eq(rc, ERR_TIMEOUT);
  ck_assert(!ok);
  pthread_join(th, NULL);
  ck_assert_int_eq(a.rc, ERR_OK);
  /* The abandoned job is skipped or finished by the pool; its slot frees. */
  pwpool_stats st;
  for (int i = 0; i < 10000; i++) {
    pwpool_get_stats(p, &st);
    if (st.pending == 0) break;
    time_sleep_ms(1);
  }
  ck_assert_int_eq(st.pending, 0);
  ck_assert_uint_eq(st.abandoned, 1);
  pwpool_free(p);
}
END_TEST

/* ----------------------------------------------------- refresh tokens --- */

START_TEST(refresh_tokens_are_random_and_hash_consistently) {
  ck_assert_int_ge(sodium_init(), 0);
  char t1[AUTH_REFRESH_TOKEN_LEN + 1], t2[AUTH_REFRESH_TOKEN_LEN + 1];
  uint8_t h1[STORE_HASHBYTES], h2[STORE_HASHBYTES], h3[STORE_HASHBYTES];
  auth_refresh_token_new(t1, h1);
  auth_refresh_token_new(t2, h2);
  ck_assert_uint_eq(strlen(t1), AUTH_REFRESH_TOKEN_LEN);
  ck_assert_str_ne(t1, t2);
  ck_assert_int_eq(auth_refresh_token_hash(t1, h3), ERR_OK);
  ck_assert_int_eq(memcmp(h1, h3, sizeof h1), 0);
  ck_assert_int_ne(memcmp(h1, h2, sizeof h1), 0);
  /* Only the exact base64url form of 32 bytes is accepted. */
  char bad[64];
  ck_assert_int_eq(auth_refresh_token_hash("", h3), ERR_INVAL);
  ck_assert_int_eq(auth_refresh_token_hash(NULL, h3), ERR_INVAL);
  snprintf(bad, sizeof bad, "%s=", t1);
  ck_assert_int_eq(auth_refresh_token_hash(bad, h3), ERR_INVAL);
  snprintf(bad, sizeof bad, "%.42s", t1);
  ck_assert_int_eq(auth_refresh_token_hash(bad, h3), ERR_INVAL);
  snprintf(bad, sizeof bad, "%s", t1);
  bad[5] = '+';
  ck_assert_int_eq(auth_refresh_token_hash(bad, h3), ERR_INVAL);
}
END_TEST

START_TEST(user_cutoff_rounds_up_to_the_second) {
  ck_assert_int_eq(revoker_user_cutoff_s(1000), 1);
  ck_assert_int_eq(revoker_user_cutoff_s(1001), 2);
  ck_assert_int_eq(revoker_user_cutoff_s(1999), 2);
  ck_assert_int_eq(revoker_user_cutoff_s(0), 0);
}
END_TEST

START_TEST(revoker_without_redis_tells_the_local_verifier) {
  ck_assert_int_eq(paseto_init(), ERR_OK);
  paseto_secret_key sk;
  paseto_public_key pk;
  paseto_keygen(&sk, &pk);
  authn_config ac = AUTHN_CONFIG_INIT;
  authn *v = NULL;
  ck_assert_int_eq(authn_new(&ac, &v), ERR_OK);
  authn_key key = {.pk = pk, .active = true};
  ck_assert_int_eq(authn_set_keys(v, &key, 1), ERR_OK);
  char hex[PASETO_SECRET_HEX_LEN + 1];
  paseto_secret_key_to_hex(&sk, hex);
  auth_keys *k = NULL;
  ck_assert_int_eq(auth_keys_parse(hex, &k, NULL), ERR_OK);
  paseto_claims c;
  memset(&c, 0, sizeof c);
  str_copy(c.sub, "user-1", sizeof c.sub);
  str_copy(c.tid, "tenant-1", sizeof c.tid);
  str_copy(c.jti, "jti-1", sizeof c.jti);
  c.has_iat = c.has_exp = true;
  c.iat_ms = time_now_ms() - 5000;
  c.exp_ms = time_now_ms() + 60000;
  char tok[PASETO_TOKEN_MAX + 1];
  ck_assert_int_eq(auth_keys_sign(k, &c, tok, sizeof tok, NULL), ERR_OK);
  ck_assert_int_eq(authn_verify(v, tok, strlen(tok), NULL, NULL), ERR_OK);

  int published = 0;
  revoker *r = NULL;
  ck_assert_int_eq(revoker_new(NULL, 0, v, NULL, NULL, &r), ERR_INVAL);
  ck_assert_int_eq(revoker_new(NULL, 60000, v, NULL, &published, &r), ERR_OK);
  ck_assert_int_eq(revoker_user(r, "tenant-1", "user-1", time_now_ms()),
                   ERR_OK);
  enum authn_result why;
  ck_assert_int_eq(authn_verify(v, tok, strlen(tok), NULL, &why), ERR_INVAL);
  ck_assert_int_eq(why, AUTHN_REVOKED);
  ck_assert_int_eq(revoker_jti(r, "tenant-1", ""), ERR_INVAL);
  revoker_free(r);
  auth_keys_free(k);
  authn_free(v);
  paseto_secret_key_wipe(&sk);
}
END_TEST

/* ---------------------------------------------------------- loginlock --- */

static const loginlock_config kLock = {
    .free_failures = 5, .window_ms = 60000, .base_ms = 1000, .max_ms = 900000};

START_TEST(loginlock_config_is_checked) {
  loginlock *l = NULL;
  loginlock_config c = kLock;
  c.free_failures = 0;
  ck_assert_int_eq(loginlock_new(NULL, &c, &l), ERR_INVAL);
  c = kLock;
  c.max_ms = c.base_ms - 1;
  ck_assert_int_eq(loginlock_new(NULL, &c, &l), ERR_INVAL);
  ck_assert_ptr_null(l);
  ck_assert_int_eq(loginlock_new(NULL, &kLock, &l), ERR_OK);
  loginlock_free(l);
  loginlock_free(NULL);
}
END_TEST

START_TEST(loginlock_keys_hide_the_email_and_separate_accounts) {
  char a[LOGINLOCK_KEY_MAX], b[LOGINLOCK_KEY_MAX], c[LOGINLOCK_KEY_MAX];
  const char *t = "0190a000-0000-7000-8000-000000000001";
  loginlock_key(t, "alice@example.com", a);
  loginlock_key(t, "bob@example.com", b);
  loginlock_key("0190a000-0000-7000-8000-000000000002", "alice@example.com", c);
  ck_assert_ptr_null(strstr(a, "alice"));
  ck_assert(str_has_prefix(a, "auth:login:{0190a000-"));
  ck_assert_str_ne(a, b);
  ck_assert_str_ne(a, c);
  char again[LOGINLOCK_KEY_MAX];
  loginlock_key(t, "alice@example.com", again);
  ck_assert_str_eq(a, again);
}
END_TEST

static int closed_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
  close(fd);
  return ntohs(sa.sin_port);
}

START_TEST(loginlock_redis_down_fails_open_or_closed_as_configured) {
  char url[96];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", closed_port());
  cache_config cc = {.url = url, .max_conns = 1};
  cache *down = NULL;
  ck_assert_int_eq(cache_new(&cc, &down), ERR_OK);
  const char *t = "0190a000-0000-7000-8000-000000000001";
  int64_t wait = -1;
  loginlock *open = NULL, *closed = NULL, *none = NULL;
  loginlock_config c = kLock;
  ck_assert_int_eq(loginlock_new(down, &c, &open), ERR_OK);
  c.fail_closed = true;
  ck_assert_int_eq(loginlock_new(down, &c, &closed), ERR_OK);
  ck_assert_int_eq(loginlock_new(NULL, &c, &none), ERR_OK);
  for (int i = 0; i < 10; i++) /* never counts, never locks */
    ck_assert_int_eq(loginlock_attempt(open, t, "a@b.com", &wait),
                     LOGINLOCK_ALLOW);
  ck_assert_int_eq(wait, 0);
  ck_assert_int_eq(loginlock_attempt(closed, t, "a@b.com", &wait),
                   LOGINLOCK_UNAVAILABLE);
  ck_assert_int_eq(loginlock_attempt(none, t, "a@b.com", &wait),
                   LOGINLOCK_UNAVAILABLE);
  loginlock_reset(open, t, "a@b.com"); /* logged, not fatal */
  loginlock_free(open);
  loginlock_free(closed);
  loginlock_free(none);
  cache_free(down);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("auth");
  TCase *tc = tcase_create("validate");
  tcase_add_test(tc, email_is_normalised_to_lower_case);
  tcase_add_test(tc, bad_emails_are_refused);
  tcase_add_test(tc, password_length_counts_characters);
  tcase_add_test(tc, name_and_role_rules);
  tcase_add_test(tc, phone_spellings_normalise_to_one_e164_number);
  tcase_add_test(tc, bad_phone_numbers_are_refused);
  suite_add_tcase(s, tc);

  tc = tcase_create("keys");
  tcase_add_test(tc, keys_list_first_signs_all_verify);
  tcase_add_test(tc, keys_seed_form_and_comments_are_accepted);
  tcase_add_test(tc, bad_key_lists_name_the_entry);
  tcase_add_test(tc, keys_file_is_read_and_missing_file_is_io_error);
  suite_add_tcase(s, tc);

  tc = tcase_create("pwpool");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, hash_then_verify_round_trips);
  tcase_add_test(tc, dummy_verification_never_succeeds);
  tcase_add_test(tc, bad_config_and_oversized_password_are_refused);
  tcase_add_test(tc, full_pool_refuses_at_once);
  tcase_add_test(tc, waiter_gives_up_at_its_deadline_and_slot_is_freed_later);
  suite_add_tcase(s, tc);

  tc = tcase_create("tokens");
  tcase_add_test(tc, refresh_tokens_are_random_and_hash_consistently);
  tcase_add_test(tc, user_cutoff_rounds_up_to_the_second);
  tcase_add_test(tc, revoker_without_redis_tells_the_local_verifier);
  suite_add_tcase(s, tc);

  tc = tcase_create("loginlock");
  tcase_add_test(tc, loginlock_config_is_checked);
  tcase_add_test(tc, loginlock_keys_hide_the_email_and_separate_accounts);
  tcase_add_test(tc, loginlock_redis_down_fails_open_or_closed_as_configured);
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
