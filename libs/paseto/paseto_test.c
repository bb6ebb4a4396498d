/*
 * paseto_test.c - PASETO v4.public and PASERK k4: the official known-answer
 * vectors (testdata/vectors.h), then every way a token can be wrong.
 */
#include <check.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/err.h"
#include "libs/paseto/paseto.h"
#include "libs/paseto/testdata/vectors.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void hex_bytes(const char *hex, uint8_t *out, size_t want) {
  size_t n = 0;
  ck_assert_int_eq(sodium_hex2bin(out, want, hex, strlen(hex), NULL, &n, NULL),
                   0);
  ck_assert_uint_eq(n, want);
}

static paseto_public_key vector_pk(void) {
  paseto_public_key pk;
  ck_assert_int_eq(
      paseto_public_key_from_hex(V4_PUBLIC_KEY, strlen(V4_PUBLIC_KEY), &pk),
      ERR_OK);
  return pk;
}

static paseto_secret_key vector_sk(void) {
  paseto_secret_key sk;
  ck_assert_int_eq(
      paseto_secret_key_from_hex(V4_SECRET_KEY, strlen(V4_SECRET_KEY), &sk),
      ERR_OK);
  return sk;
}

/* Signs with a fresh key: token in buf (PASETO_TOKEN_MAX + 1). */
static void sign_fresh(paseto_secret_key *sk, paseto_public_key *pk,
                       const char *msg, const char *footer, const char *ia,
                       char *buf) {
  size_t len = 0;
  paseto_keygen(sk, pk);
  ck_assert_int_eq(paseto_sign(sk, msg, strlen(msg), footer, strlen(footer), ia,
                               strlen(ia), buf, PASETO_TOKEN_MAX + 1, &len),
                   ERR_OK);
  ck_assert_uint_eq(len, strlen(buf));
}

/* Verifies token with footer accepted as is; returns the error code. */
static int verify_rc(const paseto_public_key *pk, const char *token, size_t len,
                     const char *ia, const char **why) {
  paseto_token *t = NULL;
  int rc = paseto_verify(pk, token, len, NULL, 0, ia, strlen(ia), &t, why);
  if (rc == ERR_OK)
    ck_assert_ptr_nonnull(t);
  else
    ck_assert_ptr_null(t);
  paseto_token_free(t);
  return rc;
}

/* ---- known answers ------------------------------------------------------- */

START_TEST(pae_matches_spec_examples) {
  uint8_t out[64];
  size_t n = 0;
  static const uint8_t empty[8] = {0};
  static const uint8_t one_empty[16] = {1};
  static const uint8_t test[20] = {1, 0, 0, 0, 0, 0, 0,   0,   4,   0,
                                   0, 0, 0, 0, 0, 0, 't', 'e', 's', 't'};
  paseto_piece e = {"", 0}, t = {"test", 4};

  ck_assert_int_eq(paseto_pae(NULL, 0, out, sizeof out, &n), ERR_OK);
  ck_assert_uint_eq(n, 8);
  ck_assert_mem_eq(out, empty, 8);
  ck_assert_int_eq(paseto_pae(&e, 1, out, sizeof out, &n), ERR_OK);
  ck_assert_uint_eq(n, 16);
  ck_assert_mem_eq(out, one_empty, 16);
  ck_assert_int_eq(paseto_pae(&t, 1, out, sizeof out, &n), ERR_OK);
  ck_assert_uint_eq(n, 20);
  ck_assert_mem_eq(out, test, 20);
  ck_assert_uint_eq(paseto_pae_len(&t, 1), 20);
  ck_assert_int_eq(paseto_pae(&t, 1, out, 19, &n), ERR_TOOBIG);
}
END_TEST

START_TEST(pae_encodes_lengths_little_endian_per_piece) {
  /* Two pieces of 300 and 1 bytes: LE64(2) LE64(300) ... LE64(1) ... */
  static uint8_t a[300], out[8 + 8 + 300 + 8 + 1];
  paseto_piece p[2] = {{a, sizeof a}, {"x", 1}};
  size_t n = 0;
  memset(a, 'a', sizeof a);
  ck_assert_int_eq(paseto_pae(p, 2, out, sizeof out, &n), ERR_OK);
  ck_assert_uint_eq(n, sizeof out);
  ck_assert_int_eq(out[0], 2);
  ck_assert_int_eq(out[8], 300 & 255);
  ck_assert_int_eq(out[9], 300 >> 8);
  for (int i = 10; i < 16; i++) ck_assert_int_eq(out[i], 0);
  ck_assert_int_eq(out[16 + 300], 1);
  ck_assert_int_eq(out[16 + 300 + 8], 'x');
}
END_TEST

START_TEST(v4_public_vectors_sign_reproduces_token) {
  for (size_t i = 0; i < N(V4_PUBLIC_VECTORS); i++) {
    const struct v4_vector *v = &V4_PUBLIC_VECTORS[i];
    paseto_secret_key sk = vector_sk(), sk_seed;
    char buf[PASETO_TOKEN_MAX + 1];
    size_t len = 0;
    ck_assert_int_eq(paseto_sign(&sk, v->payload, strlen(v->payload), v->footer,
                                 strlen(v->footer), v->implicit_assertion,
                                 strlen(v->implicit_assertion), buf, sizeof buf,
                                 &len),
                     ERR_OK);
    ck_assert_msg(strcmp(buf, v->token) == 0, "%s: got %s", v->name, buf);
    ck_assert_uint_eq(len, strlen(v->token));

    /* The 32-byte seed is the same key. */
    ck_assert_int_eq(paseto_secret_key_from_hex(V4_SECRET_KEY_SEED,
                                                strlen(V4_SECRET_KEY_SEED),
                                                &sk_seed),
                     ERR_OK);
    ck_assert_mem_eq(sk_seed.b, sk.b, PASETO_SECRETKEYBYTES);
  }
}
END_TEST

START_TEST(v4_public_vectors_verify) {
  paseto_public_key pk = vector_pk();
  for (size_t i = 0; i < N(V4_PUBLIC_VECTORS); i++) {
    const struct v4_vector *v = &V4_PUBLIC_VECTORS[i];
    paseto_token *t = NULL;
    const char *why = NULL;
    int rc = paseto_verify(&pk, v->token, strlen(v->token), NULL, 0,
                           v->implicit_assertion, strlen(v->implicit_assertion),
                           &t, &why);
    ck_assert_msg(rc == ERR_OK, "%s: %s", v->name, why);
    ck_assert_uint_eq(t->payload_len, strlen(v->payload));
    ck_assert_str_eq(t->payload, v->payload);
    ck_assert_uint_eq(t->footer_len, strlen(v->footer));
    ck_assert_str_eq(t->footer, v->footer);
    paseto_token_free(t);

    /* With the footer given as expected, too. */
    ck_assert_int_eq(paseto_verify(&pk, v->token, strlen(v->token), v->footer,
                                   strlen(v->footer), v->implicit_assertion,
                                   strlen(v->implicit_assertion), &t, NULL),
                     ERR_OK);
    paseto_token_free(t);
  }
}
END_TEST

START_TEST(v4_fail_vectors_are_rejected) {
  paseto_public_key pk = vector_pk();
  for (size_t i = 0; i < N(V4_FAIL_VECTORS); i++) {
    const struct v4_vector *v = &V4_FAIL_VECTORS[i];
    const char *why = NULL;
    int rc =
        verify_rc(&pk, v->token, strlen(v->token), v->implicit_assertion, &why);
    ck_assert_msg(rc != ERR_OK, "%s accepted", v->name);
    ck_assert_ptr_nonnull(why);
  }
  /* 4-F-2 is well formed: it must fail on the signature itself. */
  const char *why = NULL;
  const struct v4_vector *f2 = &V4_FAIL_VECTORS[1];
  ck_assert_int_eq(verify_rc(&pk, f2->token, strlen(f2->token),
                             f2->implicit_assertion, &why),
                   ERR_INVAL);
  ck_assert_str_eq(why, "invalid signature");
  /* 4-F-1/3/4 are other versions or purposes. */
  verify_rc(&pk, V4_FAIL_VECTORS[0].token, strlen(V4_FAIL_VECTORS[0].token), "",
            &why);
  ck_assert_str_eq(why, "not a v4.public token (wrong header)");
}
END_TEST

START_TEST(k4_pid_vectors) {
  for (size_t i = 0; i < N(K4_PID_VECTORS); i++) {
    paseto_public_key pk;
    char pid[PASETO_PID_LEN + 1];
    hex_bytes(K4_PID_VECTORS[i].key, pk.b, sizeof pk.b);
    paseto_pid(&pk, pid);
    ck_assert_msg(strcmp(pid, K4_PID_VECTORS[i].paserk) == 0, "%s: got %s",
                  K4_PID_VECTORS[i].name, pid);
    ck_assert(paseto_pid_is_valid(pid, strlen(pid)));
  }
  /* The id of the 4-S key, cross-checked against the pid computed from
   * the PASERK string spelled out by hand. */
  paseto_public_key pk = vector_pk();
  char pid[PASETO_PID_LEN + 1], paserk[PASETO_PASERK_PUBLIC_LEN + 1];
  uint8_t d[33];
  char b64[45], expect[PASETO_PID_LEN + 1];
  crypto_generichash_state st;
  paseto_pid(&pk, pid);
  paseto_paserk_public(&pk, paserk);
  crypto_generichash_init(&st, NULL, 0, sizeof d);
  crypto_generichash_update(&st, (const uint8_t *)"k4.pid.", 7);
  crypto_generichash_update(&st, (const uint8_t *)paserk, strlen(paserk));
  crypto_generichash_final(&st, d, sizeof d);
  sodium_bin2base64(b64, sizeof b64, d, sizeof d,
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  ck_assert_int_eq(snprintf(expect, sizeof expect, "k4.pid.%s", b64),
                   PASETO_PID_LEN);
  ck_assert_str_eq(pid, expect);
}
END_TEST

START_TEST(k4_pid_fail_vectors_keys_are_refused) {
  uint8_t raw[64];
  paseto_public_key pk;
  /* fail-1: a 31-byte key cannot be loaded, so it has no id. */
  hex_bytes(K4_PID_FAIL_1_KEY, raw, 31);
  ck_assert_int_eq(paseto_public_key_from_bytes(raw, 31, &pk), ERR_INVAL);
  ck_assert_int_eq(paseto_public_key_from_hex(K4_PID_FAIL_1_KEY,
                                              strlen(K4_PID_FAIL_1_KEY), &pk),
                   ERR_INVAL);
  /* fail-2: a k3 (P-384, 49-byte) key is not a k4 key. */
  hex_bytes(K4_PID_FAIL_2_KEY, raw, 49);
  ck_assert_int_eq(paseto_public_key_from_bytes(raw, 49, &pk), ERR_INVAL);
  ck_assert_int_eq(paseto_public_key_from_hex(K4_PID_FAIL_2_KEY,
                                              strlen(K4_PID_FAIL_2_KEY), &pk),
                   ERR_INVAL);
}
END_TEST

START_TEST(k4_public_vectors) {
  for (size_t i = 0; i < N(K4_PUBLIC_VECTORS); i++) {
    paseto_public_key pk;
    char s[PASETO_PASERK_PUBLIC_LEN + 1];
    hex_bytes(K4_PUBLIC_VECTORS[i].key, pk.b, sizeof pk.b);
    paseto_paserk_public(&pk, s);
    ck_assert_str_eq(s, K4_PUBLIC_VECTORS[i].paserk);
  }
  /* Parsing round-trips a real key. */
  paseto_public_key pk = vector_pk(), back;
  char s[PASETO_PASERK_PUBLIC_LEN + 1];
  paseto_paserk_public(&pk, s);
  ck_assert_int_eq(paseto_paserk_public_parse(s, strlen(s), &back), ERR_OK);
  ck_assert(paseto_public_key_equal(&pk, &back));
}
END_TEST

START_TEST(k4_secret_vectors) {
  for (size_t i = 0; i < N(K4_SECRET_VECTORS); i++) {
    uint8_t seed[32], full[64];
    paseto_secret_key sk, parsed;
    paseto_public_key pk, expect_pk;
    char s[PASETO_PASERK_SECRET_LEN + 1];
    hex_bytes(K4_SECRET_VECTORS[i].seed, seed, sizeof seed);
    hex_bytes(K4_SECRET_VECTORS[i].key, full, sizeof full);
    hex_bytes(K4_SECRET_VECTORS[i].public_key, expect_pk.b, 32);
    paseto_secret_key_from_seed(seed, &sk, &pk);
    ck_assert_mem_eq(sk.b, full, 64);
    ck_assert_mem_eq(pk.b, expect_pk.b, 32);
    paseto_paserk_secret(&sk, s);
    ck_assert_msg(strcmp(s, K4_SECRET_VECTORS[i].paserk) == 0, "%s: got %s",
                  K4_SECRET_VECTORS[i].name, s);
    ck_assert_int_eq(paseto_paserk_secret_parse(s, strlen(s), &parsed), ERR_OK);
    ck_assert_mem_eq(parsed.b, full, 64);
    ck_assert_int_eq(paseto_secret_key_from_bytes(full, 64, &parsed), ERR_OK);
    ck_assert_int_eq(paseto_secret_key_from_bytes(seed, 32, &parsed), ERR_OK);
    ck_assert_mem_eq(parsed.b, full, 64);
  }
}
END_TEST

START_TEST(paserk_parse_rejects_other_versions_types_and_encodings) {
  paseto_public_key pk = vector_pk(), out;
  paseto_secret_key sk = vector_sk(), sout;
  char s[PASETO_PASERK_PUBLIC_LEN + 1], ss[PASETO_PASERK_SECRET_LEN + 1];
  char bad[PASETO_PASERK_SECRET_LEN + 8];
  paseto_paserk_public(&pk, s);
  paseto_paserk_secret(&sk, ss);

  memcpy(bad, s, sizeof s);
  bad[1] = '3'; /* k3.public. */
  ck_assert_int_eq(paseto_paserk_public_parse(bad, strlen(bad), &out),
                   ERR_INVAL);
  snprintf(bad, sizeof bad, "k4.local.%s", s + 10);
  ck_assert_int_eq(paseto_paserk_public_parse(bad, strlen(bad), &out),
                   ERR_INVAL);
  snprintf(bad, sizeof bad, "%s=", s); /* padding */
  ck_assert_int_eq(paseto_paserk_public_parse(bad, strlen(bad), &out),
                   ERR_INVAL);
  ck_assert_int_eq(paseto_paserk_public_parse(s, strlen(s) - 1, &out),
                   ERR_INVAL);
  /* A secret PASERK is not a public one, and the other way round. */
  ck_assert_int_eq(paseto_paserk_public_parse(ss, strlen(ss), &out), ERR_INVAL);
  ck_assert_int_eq(paseto_paserk_secret_parse(s, strlen(s), &sout), ERR_INVAL);
  /* A secret PASERK whose public half is not its seed's. */
  memcpy(bad, ss, sizeof ss);
  bad[PASETO_PASERK_SECRET_LEN - 5] =
      bad[PASETO_PASERK_SECRET_LEN - 5] == 'A' ? 'B' : 'A';
  ck_assert_int_eq(paseto_paserk_secret_parse(bad, strlen(bad), &sout),
                   ERR_INVAL);
  sodium_memzero(ss, sizeof ss);
}
END_TEST

/* ---- keys ---------------------------------------------------------------- */

START_TEST(secret_key_with_foreign_public_half_is_refused) {
  uint8_t raw[64];
  paseto_secret_key sk;
  hex_bytes(V4_SECRET_KEY, raw, sizeof raw);
  raw[63] ^= 1;
  ck_assert_int_eq(paseto_secret_key_from_bytes(raw, 64, &sk), ERR_INVAL);
  for (size_t i = 0; i < sizeof sk.b; i++) ck_assert_int_eq(sk.b[i], 0);
  ck_assert_int_eq(paseto_secret_key_from_bytes(raw, 63, &sk), ERR_INVAL);
  ck_assert_int_eq(paseto_secret_key_from_bytes(raw, 33, &sk), ERR_INVAL);
}
END_TEST

START_TEST(hex_keys_round_trip_and_reject_garbage) {
  paseto_secret_key sk = vector_sk(), sk2;
  paseto_public_key pk = vector_pk(), pk2;
  char shex[PASETO_SECRET_HEX_LEN + 1], phex[PASETO_PUBLIC_HEX_LEN + 1];
  char bad[PASETO_SECRET_HEX_LEN + 2];
  paseto_secret_key_to_hex(&sk, shex);
  paseto_public_key_to_hex(&pk, phex);
  ck_assert_str_eq(shex, V4_SECRET_KEY);
  ck_assert_str_eq(phex, V4_PUBLIC_KEY);
  ck_assert_int_eq(paseto_secret_key_from_hex(shex, strlen(shex), &sk2),
                   ERR_OK);
  ck_assert_mem_eq(sk.b, sk2.b, 64);

  /* Upper case is accepted. */
  for (char *c = phex; *c; c++)
    if (*c >= 'a' && *c <= 'f') *c = (char)(*c - 'a' + 'A');
  ck_assert_int_eq(paseto_public_key_from_hex(phex, strlen(phex), &pk2),
                   ERR_OK);
  ck_assert(paseto_public_key_equal(&pk, &pk2));

  memcpy(bad, V4_PUBLIC_KEY, 65);
  bad[10] = 'g';
  ck_assert_int_eq(paseto_public_key_from_hex(bad, 64, &pk2), ERR_INVAL);
  ck_assert_int_eq(paseto_public_key_from_hex(V4_PUBLIC_KEY, 63, &pk2),
                   ERR_INVAL);
  ck_assert_int_eq(paseto_public_key_from_hex(V4_PUBLIC_KEY, 62, &pk2),
                   ERR_INVAL);
  memcpy(bad, V4_PUBLIC_KEY, 65);
  bad[10] = ' ';
  ck_assert_int_eq(paseto_public_key_from_hex(bad, 64, &pk2), ERR_INVAL);
  memcpy(bad, V4_SECRET_KEY, 129);
  bad[127] = 'x';
  ck_assert_int_eq(paseto_secret_key_from_hex(bad, 128, &sk2), ERR_INVAL);
  ck_assert_int_eq(paseto_secret_key_from_hex(V4_SECRET_KEY, 100, &sk2),
                   ERR_INVAL);
  /* Neither a seed nor a full key. */
  ck_assert_int_eq(paseto_secret_key_from_hex("00", 2, &sk2), ERR_INVAL);
}
END_TEST

START_TEST(public_key_that_is_not_a_usable_point_is_refused) {
  uint8_t zero[32] = {0}, ident[32] = {1};
  paseto_public_key pk;
  ck_assert_int_eq(paseto_public_key_from_bytes(zero, 32, &pk), ERR_INVAL);
  ck_assert_int_eq(paseto_public_key_from_bytes(ident, 32, &pk), ERR_INVAL);
  ck_assert_int_eq(
      paseto_paserk_public_parse(K4_PUBLIC_VECTORS[0].paserk,
                                 strlen(K4_PUBLIC_VECTORS[0].paserk), &pk),
      ERR_INVAL);
}
END_TEST

START_TEST(keygen_gives_distinct_matching_pairs) {
  paseto_secret_key a, b;
  paseto_public_key pa, pb, derived;
  paseto_keygen(&a, &pa);
  paseto_keygen(&b, &pb);
  ck_assert(!paseto_public_key_equal(&pa, &pb));
  paseto_public_key_of(&a, &derived);
  ck_assert(paseto_public_key_equal(&pa, &derived));
  paseto_secret_key_wipe(&a);
  for (size_t i = 0; i < sizeof a.b; i++) ck_assert_int_eq(a.b[i], 0);
  paseto_secret_key_wipe(NULL);
}
END_TEST

START_TEST(pid_shape_check) {
  ck_assert(paseto_pid_is_valid(K4_PID_VECTORS[1].paserk, PASETO_PID_LEN));
  ck_assert(!paseto_pid_is_valid(K4_PID_VECTORS[1].paserk, PASETO_PID_LEN - 1));
  ck_assert(!paseto_pid_is_valid(
      "k4.lid.9ShR3xc8-qVJ_di0tc9nx0IDIqbatdeM2mqLFBJsKRHs", PASETO_PID_LEN));
  ck_assert(!paseto_pid_is_valid(
      "k4.pid.9ShR3xc8+qVJ_di0tc9nx0IDIqbatdeM2mqLFBJsKRHs", PASETO_PID_LEN));
  ck_assert(
      !paseto_pid_is_valid("zVhMiPBP9fRf2snEcT7gFTioeA9COcNy9DfgL1W60haN", 44));
  ck_assert(!paseto_pid_is_valid(NULL, 0));
}
END_TEST

/* ---- tokens -------------------------------------------------------------- */

START_TEST(sign_is_deterministic_and_round_trips) {
  paseto_secret_key sk;
  paseto_public_key pk;
  char a[PASETO_TOKEN_MAX + 1], b[PASETO_TOKEN_MAX + 1];
  paseto_token *t = NULL;
  sign_fresh(&sk, &pk, "{\"sub\":\"u1\"}", "{\"kid\":\"x\"}", "tenant-1", a);
  ck_assert_int_eq(paseto_sign(&sk, "{\"sub\":\"u1\"}", 12, "{\"kid\":\"x\"}",
                               11, "tenant-1", 8, b, sizeof b, NULL),
                   ERR_OK);
  ck_assert_str_eq(a, b);
  ck_assert(strncmp(a, "v4.public.", 10) == 0);
  ck_assert_int_eq(
      paseto_verify(&pk, a, strlen(a), NULL, 0, "tenant-1", 8, &t, NULL),
      ERR_OK);
  ck_assert_str_eq(t->payload, "{\"sub\":\"u1\"}");
  ck_assert_str_eq(t->footer, "{\"kid\":\"x\"}");
  paseto_token_free(t);
}
END_TEST

START_TEST(empty_payload_and_binary_payload_round_trip) {
  paseto_secret_key sk;
  paseto_public_key pk;
  char buf[PASETO_TOKEN_MAX + 1];
  paseto_token *t = NULL;
  static const uint8_t bin[5] = {0, 1, 0, 255, 0};
  sign_fresh(&sk, &pk, "", "", "", buf);
  ck_assert_int_eq(
      paseto_verify(&pk, buf, strlen(buf), "", 0, NULL, 0, &t, NULL), ERR_OK);
  ck_assert_uint_eq(t->payload_len, 0);
  ck_assert_uint_eq(t->footer_len, 0);
  paseto_token_free(t);
  ck_assert_int_eq(paseto_sign(&sk, bin, sizeof bin, NULL, 0, NULL, 0, buf,
                               sizeof buf, NULL),
                   ERR_OK);
  ck_assert_int_eq(
      paseto_verify(&pk, buf, strlen(buf), NULL, 0, NULL, 0, &t, NULL), ERR_OK);
  ck_assert_uint_eq(t->payload_len, sizeof bin);
  ck_assert_mem_eq(t->payload, bin, sizeof bin);
  paseto_token_free(t);
}
END_TEST

START_TEST(wrong_key_is_rejected) {
  paseto_secret_key sk, other;
  paseto_public_key pk, other_pk;
  char buf[PASETO_TOKEN_MAX + 1];
  const char *why = NULL;
  sign_fresh(&sk, &pk, "{}", "", "", buf);
  paseto_keygen(&other, &other_pk);
  ck_assert_int_eq(verify_rc(&other_pk, buf, strlen(buf), "", &why), ERR_INVAL);
  ck_assert_str_eq(why, "invalid signature");
  ck_assert_int_eq(verify_rc(&pk, buf, strlen(buf), "", &why), ERR_OK);
}
END_TEST

START_TEST(tampered_payload_or_signature_is_rejected) {
  paseto_secret_key sk;
  paseto_public_key pk;
  char buf[PASETO_TOKEN_MAX + 1], bad[PASETO_TOKEN_MAX + 1];
  size_t len;
  sign_fresh(&sk, &pk, "{\"role\":\"staff\",\"sub\":\"u1\"}", "", "", buf);
  len = strlen(buf);
  /* Change each base64 character in turn (payload and signature alike);
   * none of the results may verify. */
  for (size_t i = PASETO_HEADER_LEN; i < len; i++) {
    memcpy(bad, buf, len + 1);
    bad[i] = bad[i] == 'A' ? 'B' : 'A';
    ck_assert_msg(verify_rc(&pk, bad, len, "", NULL) == ERR_INVAL,
                  "change at %zu accepted", i);
  }
}
END_TEST

START_TEST(tampered_footer_header_or_assertion_is_rejected) {
  paseto_secret_key sk;
  paseto_public_key pk;
  char buf[PASETO_TOKEN_MAX + 1], bad[PASETO_TOKEN_MAX + 1];
  char other[PASETO_TOKEN_MAX + 1];
  const char *why = NULL;
  paseto_token *t = NULL;
  size_t len, olen;
  sign_fresh(&sk, &pk, "{\"sub\":\"u1\"}", "{\"kid\":\"a\"}", "tenant-1", buf);
  len = strlen(buf);

  /* Footer replaced by another (validly encoded) footer. */
  ck_assert_int_eq(paseto_sign(&sk, "{\"sub\":\"u1\"}", 12, "{\"kid\":\"b\"}",
                               11, "tenant-1", 8, other, sizeof other, &olen),
                   ERR_OK);
  const char *dot = strchr(buf + PASETO_HEADER_LEN, '.');
  const char *odot = strchr(other + PASETO_HEADER_LEN, '.');
  snprintf(bad, sizeof bad, "%.*s%s", (int)(dot - buf), buf, odot);
  ck_assert_int_eq(verify_rc(&pk, bad, strlen(bad), "tenant-1", &why),
                   ERR_INVAL);
  ck_assert_str_eq(why, "invalid signature");
  /* Footer removed. */
  ck_assert_int_eq(verify_rc(&pk, buf, (size_t)(dot - buf), "tenant-1", &why),
                   ERR_INVAL);

  /* Header variants. */
  static const char *const headers[] = {"v4.local.",  "v3.public.",
                                        "V4.public.", "v4.publi.",
                                        "v4.public:", "v4public.."};
  for (size_t i = 0; i < N(headers); i++) {
    size_t hl = strlen(headers[i]);
    snprintf(bad, sizeof bad, "%s%s", headers[i], buf + PASETO_HEADER_LEN);
    ck_assert_msg(verify_rc(&pk, bad, len - PASETO_HEADER_LEN + hl, "tenant-1",
                            &why) == ERR_INVAL,
                  "header %s accepted", headers[i]);
  }

  /* Implicit assertion: different, missing, extended. */
  ck_assert_int_eq(verify_rc(&pk, buf, len, "tenant-2", &why), ERR_INVAL);
  ck_assert_str_eq(why, "invalid signature");
  ck_assert_int_eq(verify_rc(&pk, buf, len, "", &why), ERR_INVAL);
  ck_assert_int_eq(verify_rc(&pk, buf, len, "tenant-10", &why), ERR_INVAL);

  /* Expected footer: mismatch and match. */
  ck_assert_int_eq(paseto_verify(&pk, buf, len, "{\"kid\":\"b\"}", 11,
                                 "tenant-1", 8, &t, &why),
                   ERR_INVAL);
  ck_assert_str_eq(why, "footer does not match the expected footer");
  ck_assert_int_eq(paseto_verify(&pk, buf, len, "", 0, "tenant-1", 8, &t, &why),
                   ERR_INVAL);
  ck_assert_int_eq(paseto_verify(&pk, buf, len, "{\"kid\":\"a\"}", 11,
                                 "tenant-1", 8, &t, &why),
                   ERR_OK);
  paseto_token_free(t);
}
END_TEST

START_TEST(noncanonical_base64_is_rejected) {
  paseto_public_key pk = vector_pk();
  const struct v4_vector *v = &V4_PUBLIC_VECTORS[1]; /* has '-', '_' */
  char bad[PASETO_TOKEN_MAX + 1];
  const char *why = NULL;
  paseto_token *t = NULL;
  size_t len = strlen(v->token);
  const char *dot = strchr(v->token + PASETO_HEADER_LEN, '.');
  size_t body_end = (size_t)(dot - v->token);

  /* '+' and '/' (the non-URL alphabet) in place of '-' and '_'. */
  memcpy(bad, v->token, len + 1);
  char *dash = strchr(bad + PASETO_HEADER_LEN, '-');
  ck_assert_ptr_nonnull(dash);
  *dash = '+';
  ck_assert_int_eq(verify_rc(&pk, bad, len, "", &why), ERR_INVAL);
  ck_assert_str_eq(why, "payload is not canonical unpadded base64url");
  memcpy(bad, v->token, len + 1);
  char *us = strchr(bad + PASETO_HEADER_LEN, '_');
  ck_assert_ptr_nonnull(us);
  *us = '/';
  ck_assert_int_eq(verify_rc(&pk, bad, len, "", &why), ERR_INVAL);

  /* '=' padding after the body (its length is 2 mod 4... any '=' is out)
   * and after the footer. */
  snprintf(bad, sizeof bad, "%.*s=%s", (int)body_end, v->token, dot);
  ck_assert_int_eq(verify_rc(&pk, bad, strlen(bad), "", &why), ERR_INVAL);
  snprintf(bad, sizeof bad, "%.*s==%s", (int)body_end, v->token, dot);
  ck_assert_int_eq(verify_rc(&pk, bad, strlen(bad), "", &why), ERR_INVAL);
  snprintf(bad, sizeof bad, "%s=", v->token);
  ck_assert_int_eq(verify_rc(&pk, bad, strlen(bad), "", &why), ERR_INVAL);
  ck_assert_str_eq(why, "footer is not canonical unpadded base64url");

  /* Non-zero trailing bits: 4-S-1's body is 133 bytes (1 mod 3), so its
   * last character carries 4 unused bits; "A" -> "B" sets one. The decoder
   * alone must refuse it (no key involved). */
  const char *s1 = V4_PUBLIC_VECTORS[0].token;
  size_t l1 = strlen(s1);
  ck_assert_int_eq(s1[l1 - 1], 'A');
  memcpy(bad, s1, l1 + 1);
  bad[l1 - 1] = 'B';
  ck_assert_int_eq(paseto_decode_unverified(bad, l1, &t, &why), ERR_INVAL);
  ck_assert_ptr_null(t);
  ck_assert_str_eq(why, "payload is not canonical unpadded base64url");

  /* A stray character, whitespace, NUL, a second '.'. */
  static const char strays[] = {' ', '\n', '\0', '.', '*', '~'};
  for (size_t i = 0; i < sizeof strays; i++) {
    memcpy(bad, v->token, len + 1);
    bad[PASETO_HEADER_LEN + 5] = strays[i];
    ck_assert_int_eq(verify_rc(&pk, bad, len, "", NULL), ERR_INVAL);
    memcpy(bad, v->token, len + 1);
    bad[len - 3] = strays[i];
    ck_assert_int_eq(verify_rc(&pk, bad, len, "", NULL), ERR_INVAL);
  }
  /* Empty footer section after a trailing '.'. */
  snprintf(bad, sizeof bad, "%s.", V4_PUBLIC_VECTORS[0].token);
  ck_assert_int_eq(verify_rc(&pk, bad, strlen(bad), "", &why), ERR_INVAL);
  ck_assert_str_eq(why, "empty footer section");
}
END_TEST

START_TEST(truncated_tokens_are_rejected) {
  paseto_public_key pk = vector_pk();
  const char *why = NULL;
  for (size_t i = 0; i < N(V4_PUBLIC_VECTORS); i++) {
    const struct v4_vector *v = &V4_PUBLIC_VECTORS[i];
    size_t len = strlen(v->token);
    for (size_t cut = 0; cut < len; cut++)
      ck_assert_msg(
          verify_rc(&pk, v->token, cut, v->implicit_assertion, NULL) != ERR_OK,
          "%s cut at %zu accepted", v->name, cut);
  }
  /* A body shorter than a signature: 63 bytes of 'A'. */
  char shorty[PASETO_HEADER_LEN + 84 + 1];
  memcpy(shorty, PASETO_HEADER, PASETO_HEADER_LEN);
  memset(shorty + PASETO_HEADER_LEN, 'A', 84);
  shorty[sizeof shorty - 1] = '\0';
  ck_assert_int_eq(verify_rc(&pk, shorty, strlen(shorty), "", &why), ERR_INVAL);
  ck_assert_str_eq(why, "token too short to hold a signature");
  ck_assert_int_eq(verify_rc(&pk, PASETO_HEADER, PASETO_HEADER_LEN, "", &why),
                   ERR_INVAL);
}
END_TEST

START_TEST(oversized_tokens_footers_and_assertions_are_refused) {
  paseto_secret_key sk;
  paseto_public_key pk;
  static char big[PASETO_TOKEN_MAX + 64], buf[PASETO_TOKEN_MAX + 1];
  static char msg[PASETO_TOKEN_MAX];
  const char *why = NULL;
  paseto_token *t = NULL;
  size_t len = 0;
  paseto_keygen(&sk, &pk);

  /* The largest message that fits: (8192 - 10) / 4 * 3 - 64 = 6072 bytes
   * makes a token of exactly PASETO_TOKEN_MAX characters. */
  memset(msg, 'm', sizeof msg);
  ck_assert_int_eq(
      paseto_sign(&sk, msg, 6072, NULL, 0, NULL, 0, buf, sizeof buf, &len),
      ERR_OK);
  ck_assert_uint_eq(len, PASETO_TOKEN_MAX);
  ck_assert_int_eq(paseto_verify(&pk, buf, len, NULL, 0, NULL, 0, &t, NULL),
                   ERR_OK);
  paseto_token_free(t);
  ck_assert_int_eq(
      paseto_sign(&sk, msg, 6073, NULL, 0, NULL, 0, buf, sizeof buf, &len),
      ERR_TOOBIG);
  /* Output buffer too small for the token. */
  ck_assert_int_eq(paseto_sign(&sk, msg, 100, NULL, 0, NULL, 0, buf, 100, &len),
                   ERR_TOOBIG);

  /* A token over the bound is refused before decoding. */
  memcpy(big, PASETO_HEADER, PASETO_HEADER_LEN);
  memset(big + PASETO_HEADER_LEN, 'A',
         PASETO_TOKEN_MAX + 1 - PASETO_HEADER_LEN);
  ck_assert_int_eq(verify_rc(&pk, big, PASETO_TOKEN_MAX + 1, "", &why),
                   ERR_TOOBIG);
  ck_assert_int_eq(
      paseto_decode_unverified(big, PASETO_TOKEN_MAX + 1, &t, &why),
      ERR_TOOBIG);

  /* Footer bound, in signing and in verifying. */
  ck_assert_int_eq(paseto_sign(&sk, "{}", 2, msg, PASETO_FOOTER_MAX + 1, NULL,
                               0, buf, sizeof buf, NULL),
                   ERR_TOOBIG);
  ck_assert_int_eq(paseto_sign(&sk, "{}", 2, msg, PASETO_FOOTER_MAX, NULL, 0,
                               buf, sizeof buf, &len),
                   ERR_OK);
  ck_assert_int_eq(verify_rc(&pk, buf, len, "", NULL), ERR_OK);
  snprintf(big, sizeof big, "%s", buf);
  memset(big + len, 'A', 4); /* 1027 decoded footer bytes */
  big[len + 4] = '\0';
  ck_assert_int_eq(verify_rc(&pk, big, len + 4, "", &why), ERR_TOOBIG);
  ck_assert_str_eq(why, "footer longer than the maximum");

  /* Implicit assertion bound. */
  ck_assert_int_eq(paseto_sign(&sk, "{}", 2, NULL, 0, msg,
                               PASETO_ASSERTION_MAX + 1, buf, sizeof buf, NULL),
                   ERR_TOOBIG);
  ck_assert_int_eq(paseto_verify(&pk, buf, len, NULL, 0, msg,
                                 PASETO_ASSERTION_MAX + 1, &t, &why),
                   ERR_TOOBIG);
}
END_TEST

START_TEST(null_arguments_are_refused) {
  paseto_secret_key sk;
  paseto_public_key pk;
  char buf[PASETO_TOKEN_MAX + 1];
  paseto_token *t = NULL;
  paseto_keygen(&sk, &pk);
  ck_assert_int_eq(
      paseto_sign(NULL, "", 0, NULL, 0, NULL, 0, buf, sizeof buf, NULL),
      ERR_INVAL);
  ck_assert_int_eq(
      paseto_sign(&sk, NULL, 3, NULL, 0, NULL, 0, buf, sizeof buf, NULL),
      ERR_INVAL);
  ck_assert_int_eq(paseto_sign(&sk, "", 0, NULL, 0, NULL, 0, NULL, 0, NULL),
                   ERR_INVAL);
  ck_assert_int_eq(
      paseto_verify(NULL, "v4.public.", 10, NULL, 0, NULL, 0, &t, NULL),
      ERR_INVAL);
  ck_assert_int_eq(paseto_verify(&pk, NULL, 0, NULL, 0, NULL, 0, &t, NULL),
                   ERR_INVAL);
  ck_assert_int_eq(paseto_verify(&pk, "x", 1, NULL, 0, NULL, 0, NULL, NULL),
                   ERR_INVAL);
  paseto_token_free(NULL);
}
END_TEST

START_TEST(decode_unverified_reads_payload_and_footer_without_key) {
  const struct v4_vector *v = &V4_PUBLIC_VECTORS[2];
  paseto_token *t = NULL;
  char footer[PASETO_FOOTER_MAX + 1];
  size_t n = 99;
  ck_assert_int_eq(
      paseto_decode_unverified(v->token, strlen(v->token), &t, NULL), ERR_OK);
  ck_assert_str_eq(t->payload, v->payload);
  ck_assert_str_eq(t->footer, v->footer);
  paseto_token_free(t);

  ck_assert_int_eq(paseto_footer_unverified(v->token, strlen(v->token), footer,
                                            sizeof footer, &n),
                   ERR_OK);
  ck_assert_uint_eq(n, strlen(v->footer));
  ck_assert_str_eq(footer, v->footer);
  /* A footer that does not fit the caller's buffer. */
  ck_assert_int_eq(
      paseto_footer_unverified(v->token, strlen(v->token), footer, 20, &n),
      ERR_TOOBIG);
  /* No footer: empty, not an error. */
  const char *s1 = V4_PUBLIC_VECTORS[0].token;
  ck_assert_int_eq(
      paseto_footer_unverified(s1, strlen(s1), footer, sizeof footer, &n),
      ERR_OK);
  ck_assert_uint_eq(n, 0);
  ck_assert_str_eq(footer, "");
  /* Wrong header. */
  ck_assert_int_eq(paseto_footer_unverified(V4_FAIL_VECTORS[0].token,
                                            strlen(V4_FAIL_VECTORS[0].token),
                                            footer, sizeof footer, &n),
                   ERR_INVAL);
}
END_TEST

static Suite *paseto_suite(void) {
  Suite *s = suite_create("paseto");
  TCase *kat = tcase_create("known_answers");
  tcase_add_test(kat, pae_matches_spec_examples);
  tcase_add_test(kat, pae_encodes_lengths_little_endian_per_piece);
  tcase_add_test(kat, v4_public_vectors_sign_reproduces_token);
  tcase_add_test(kat, v4_public_vectors_verify);
  tcase_add_test(kat, v4_fail_vectors_are_rejected);
  tcase_add_test(kat, k4_pid_vectors);
  tcase_add_test(kat, k4_pid_fail_vectors_keys_are_refused);
  tcase_add_test(kat, k4_public_vectors);
  tcase_add_test(kat, k4_secret_vectors);
  tcase_add_test(kat, paserk_parse_rejects_other_versions_types_and_encodings);
  suite_add_tcase(s, kat);

  TCase *keys = tcase_create("keys");
  tcase_add_test(keys, secret_key_with_foreign_public_half_is_refused);
  tcase_add_test(keys, hex_keys_round_trip_and_reject_garbage);
  tcase_add_test(keys, public_key_that_is_not_a_usable_point_is_refused);
  tcase_add_test(keys, keygen_gives_distinct_matching_pairs);
  tcase_add_test(keys, pid_shape_check);
  suite_add_tcase(s, keys);

  TCase *tok = tcase_create("tokens");
  tcase_set_timeout(tok, 60);
  tcase_add_test(tok, sign_is_deterministic_and_round_trips);
  tcase_add_test(tok, empty_payload_and_binary_payload_round_trip);
  tcase_add_test(tok, wrong_key_is_rejected);
  tcase_add_test(tok, tampered_payload_or_signature_is_rejected);
  tcase_add_test(tok, tampered_footer_header_or_assertion_is_rejected);
  tcase_add_test(tok, noncanonical_base64_is_rejected);
  tcase_add_test(tok, truncated_tokens_are_rejected);
  tcase_add_test(tok, oversized_tokens_footers_and_assertions_are_refused);
  tcase_add_test(tok, null_arguments_are_refused);
  tcase_add_test(tok, decode_unverified_reads_payload_and_footer_without_key);
  suite_add_tcase(s, tok);
  return s;
}

int main(void) {
  if (paseto_init() != ERR_OK) return 1;
  SRunner *sr = srunner_create(paseto_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
