/*
 * token_test.c - runs the token binary as a user would: keygen, sign,
 * verify, decode, and the ways a verification must fail (exit status 1
 * with the reason on stderr). Each run gets stdin/stdout/stderr through
 * temporary files, so no pipe can fill up and block.
 */
#include <check.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "libs/base/err.h"
#include "libs/paseto/paseto.h"

#define OUT_MAX 16384

/* The official 4-S key pair and vector 4-S-2 (paseto-standard/test-vectors
 * v4.json, commit d26d2dd8), replayed through the tool. */
#define VEC_SK                                                                 \
  "b4cbfb43df4ce210727d953e4a713307fa19bb7d9f85041438d9e11b942a3774"           \
  "1eb9dbbbbc047c03fd70604e0071f0987e16b28b757225c11f00415d0e20b1a2"
#define VEC_PK                                                                 \
  "1eb9dbbbbc047c03fd70604e0071f0987e16b28b757225c11f00415d0e20b1a2"
#define VEC_PAYLOAD                                                            \
  "{\"data\":\"this is a signed "                                              \
  "message\",\"exp\":\"2022-01-01T00:00:00+00:00\"}"
#define VEC_FOOTER "{\"kid\":\"zVhMiPBP9fRf2snEcT7gFTioeA9COcNy9DfgL1W60haN\"}"
#define VEC_TOKEN                                                              \
  "v4.public.eyJkYXRhIjoidGhpcyBpcyBhIHNpZ25lZCBtZXNzYWdlIiwiZXhwIjoiMjAyMi0"  \
  "wMS0wMVQwMDowMDowMCswMDowMCJ9v3Jt8mx_TdM2ceTGoqwrh4yDFn0XsHvvV_D0DtwQxVrJ"  \
  "EBMl0F2caAdgnpKlt4p7xBnx1HcO-SPo8FPp214HDw.eyJraWQiOiJ6VmhNaVBCUDlmUmYyc2"  \
  "5FY1Q3Z0ZUaW9lQTlDT2NOeTlEZmdMMVc2MGhhTiJ9"

#define CLAIMS                                                                 \
  "{\"sub\":\"u1\",\"tid\":\"t1\",\"role\":\"staff\",\"exp\":\"2099-01-01T00:" \
  "00:00Z\"}"

struct run {
  int status; /* exit status, or -1 if it did not exit normally */
  char out[OUT_MAX];
  char err[OUT_MAX];
};

static char bin_path[4096];

static void find_binary(void) {
  const char *srcdir = getenv("TEST_SRCDIR");
  const char *ws = getenv("TEST_WORKSPACE");
  if (srcdir && ws)
    snprintf(bin_path, sizeof bin_path, "%s/%s/tools/token/token", srcdir, ws);
  else
    snprintf(bin_path, sizeof bin_path, "tools/token/token");
}

static int temp_file(void) {
  const char *dir = getenv("TEST_TMPDIR");
  char path[4096];
  snprintf(path, sizeof path, "%s/token_test.XXXXXX", dir ? dir : "/tmp");
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  unlink(path);
  return fd;
}

static void slurp(int fd, char *buf) {
  ssize_t n;
  size_t len = 0;
  lseek(fd, 0, SEEK_SET);
  while (len < OUT_MAX - 1 && (n = read(fd, buf + len, OUT_MAX - 1 - len)) > 0)
    len += (size_t)n;
  buf[len] = '\0';
  close(fd);
}

/* Runs the tool with stdin input and the NULL-terminated arguments. */
static void run(struct run *r, const char *input, ...) {
  char *argv[32];
  int argc = 0, in = temp_file(), out = temp_file(), err = temp_file();
  va_list ap;
  argv[argc++] = bin_path;
  va_start(ap, input);
  for (char *a; (a = va_arg(ap, char *)) != NULL && argc < 31;)
    argv[argc++] = a;
  va_end(ap);
  argv[argc] = NULL;
  if (input)
    ck_assert_int_eq(write(in, input, strlen(input)), (ssize_t)strlen(input));
  lseek(in, 0, SEEK_SET);

  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    execv(bin_path, argv);
    _exit(127);
  }
  int st = 0;
  ck_assert_int_eq(waitpid(pid, &st, 0), pid);
  close(in);
  r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  slurp(out, r->out);
  slurp(err, r->err);
}

/* Value of "name=value" line in keygen output, into buf. */
static void field(const char *out, const char *name, char *buf, size_t cap) {
  char key[64];
  snprintf(key, sizeof key, "%s=", name);
  const char *p = strstr(out, key);
  ck_assert_msg(p != NULL, "no %s in: %s", name, out);
  p += strlen(key);
  size_t n = strcspn(p, "\n");
  ck_assert_uint_lt(n, cap);
  memcpy(buf, p, n);
  buf[n] = '\0';
}

/* Copies src into dst (capacity cap), which it must fit. */
static void copy_out(char *dst, size_t cap, const char *src) {
  size_t n = strlen(src);
  ck_assert_uint_lt(n, cap);
  memcpy(dst, src, n + 1);
}

static void chomp(char *s) {
  size_t n = strlen(s);
  while (n && s[n - 1] == '\n') s[--n] = '\0';
}

struct keys {
  char sk[PASETO_SECRET_HEX_LEN + 1], pk[PASETO_PUBLIC_HEX_LEN + 1];
  char pid[PASETO_PID_LEN + 1], paserk[PASETO_PASERK_PUBLIC_LEN + 1];
};

static void keygen(struct keys *k) {
  static struct run r;
  run(&r, NULL, "keygen", NULL);
  ck_assert_int_eq(r.status, 0);
  field(r.out, "secret_key", k->sk, sizeof k->sk);
  field(r.out, "public_key", k->pk, sizeof k->pk);
  field(r.out, "pid", k->pid, sizeof k->pid);
  field(r.out, "paserk_public", k->paserk, sizeof k->paserk);
}

/* Signs CLAIMS (plus options) and returns the token in tok. */
static void sign(const struct keys *k, char *tok, size_t cap) {
  static struct run r;
  run(&r, NULL, "sign", "--key", k->sk, CLAIMS, NULL);
  ck_assert_msg(r.status == 0, "sign failed: %s", r.err);
  chomp(r.out);
  copy_out(tok, cap, r.out);
}

START_TEST(keygen_prints_consistent_keys) {
  struct keys k;
  paseto_secret_key sk;
  paseto_public_key pk, derived;
  char pid[PASETO_PID_LEN + 1], paserk[PASETO_PASERK_PUBLIC_LEN + 1];
  keygen(&k);
  ck_assert_uint_eq(strlen(k.sk), PASETO_SECRET_HEX_LEN);
  ck_assert_int_eq(paseto_secret_key_from_hex(k.sk, strlen(k.sk), &sk), ERR_OK);
  ck_assert_int_eq(paseto_public_key_from_hex(k.pk, strlen(k.pk), &pk), ERR_OK);
  paseto_public_key_of(&sk, &derived);
  ck_assert(paseto_public_key_equal(&pk, &derived));
  paseto_pid(&pk, pid);
  ck_assert_str_eq(k.pid, pid);
  paseto_paserk_public(&pk, paserk);
  ck_assert_str_eq(k.paserk, paserk);
  paseto_secret_key_wipe(&sk);

  struct keys k2;
  keygen(&k2);
  ck_assert_str_ne(k.sk, k2.sk);
}
END_TEST

START_TEST(sign_then_verify_round_trips_and_never_prints_the_secret) {
  static struct run r;
  struct keys k;
  char tok[PASETO_TOKEN_MAX + 1], kid[PASETO_PID_LEN + 64];
  keygen(&k);
  run(&r, NULL, "sign", "--key", k.sk, CLAIMS, NULL);
  ck_assert_int_eq(r.status, 0);
  ck_assert_ptr_null(strstr(r.out, k.sk));
  ck_assert_ptr_null(strstr(r.err, k.sk));
  chomp(r.out);
  copy_out(tok, sizeof tok, r.out);
  ck_assert(strncmp(tok, "v4.public.", 10) == 0);

  run(&r, NULL, "verify", "--key", k.pk, tok, NULL);
  ck_assert_msg(r.status == 0, "verify failed: %s", r.err);
  ck_assert_str_eq(r.out, CLAIMS "\n");
  ck_assert_ptr_null(strstr(r.out, k.sk));

  /* The PASERK form of the public key works too. */
  run(&r, NULL, "verify", "--key", k.paserk, tok, NULL);
  ck_assert_int_eq(r.status, 0);

  /* The default footer names the key. */
  run(&r, NULL, "decode", tok, NULL);
  ck_assert_int_eq(r.status, 0);
  snprintf(kid, sizeof kid, "footer: {\"kid\":\"%s\"}", k.pid);
  ck_assert_msg(strstr(r.out, kid) != NULL, "%s", r.out);
}
END_TEST

START_TEST(signing_is_deterministic) {
  struct keys k;
  char a[PASETO_TOKEN_MAX + 1], b[PASETO_TOKEN_MAX + 1];
  keygen(&k);
  sign(&k, a, sizeof a);
  sign(&k, b, sizeof b);
  ck_assert_str_eq(a, b);
}
END_TEST

START_TEST(official_vector_is_reproduced) {
  static struct run r;
  run(&r, NULL, "sign", "--key", VEC_SK, "--footer", VEC_FOOTER, VEC_PAYLOAD,
      NULL);
  ck_assert_msg(r.status == 0, "%s", r.err);
  ck_assert_str_eq(r.out, VEC_TOKEN "\n");
  /* Its exp (2022) is long past: verify refuses it unless told not to
   * check the time. */
  run(&r, NULL, "verify", "--key", VEC_PK, VEC_TOKEN, NULL);
  ck_assert_int_eq(r.status, 1);
  ck_assert_str_eq(r.err, "token: invalid token: token expired\n");
  run(&r, NULL, "verify", "--no-time", "--key", VEC_PK, VEC_TOKEN, NULL);
  ck_assert_int_eq(r.status, 0);
  ck_assert_str_eq(r.out, VEC_PAYLOAD "\n");
}
END_TEST

START_TEST(tampered_token_fails_with_reason) {
  static struct run r;
  struct keys k;
  char tok[PASETO_TOKEN_MAX + 1];
  keygen(&k);
  sign(&k, tok, sizeof tok);
  tok[20] = tok[20] == 'A' ? 'B' : 'A';
  run(&r, NULL, "verify", "--key", k.pk, tok, NULL);
  ck_assert_int_eq(r.status, 1);
  ck_assert_str_eq(r.out, "");
  ck_assert_str_eq(r.err, "token: invalid token: invalid signature\n");

  run(&r, NULL, "verify", "--key", k.pk, "v4.local.abc", NULL);
  ck_assert_int_eq(r.status, 1);
  ck_assert_ptr_nonnull(strstr(r.err, "wrong header"));
  run(&r, NULL, "verify", "--key", k.pk, "garbage", NULL);
  ck_assert_int_eq(r.status, 1);
}
END_TEST

START_TEST(wrong_key_fails) {
  static struct run r;
  struct keys k, other;
  char tok[PASETO_TOKEN_MAX + 1];
  keygen(&k);
  keygen(&other);
  sign(&k, tok, sizeof tok);
  run(&r, NULL, "verify", "--key", other.pk, tok, NULL);
  ck_assert_int_eq(r.status, 1);
  ck_assert_str_eq(r.err, "token: invalid token: invalid signature\n");
}
END_TEST

START_TEST(implicit_assertion_and_footer_must_match) {
  static struct run r;
  struct keys k;
  char tok[PASETO_TOKEN_MAX + 1];
  keygen(&k);
  run(&r, NULL, "sign", "--key", k.sk, "--assertion", "tenant-1", "--footer",
      "", CLAIMS, NULL);
  ck_assert_int_eq(r.status, 0);
  chomp(r.out);
  copy_out(tok, sizeof tok, r.out);
  ck_assert_ptr_null(strchr(tok + 10, '.')); /* --footer '' means none */

  run(&r, NULL, "verify", "--key", k.pk, tok, NULL);
  ck_assert_int_eq(r.status, 1);
  run(&r, NULL, "verify", "--key", k.pk, "--assertion", "tenant-2", tok, NULL);
  ck_assert_int_eq(r.status, 1);
  run(&r, NULL, "verify", "--key", k.pk, "--assertion", "tenant-1", tok, NULL);
  ck_assert_int_eq(r.status, 0);
  run(&r, NULL, "verify", "--key", k.pk, "--assertion", "tenant-1", "--footer",
      "{}", tok, NULL);
  ck_assert_int_eq(r.status, 1);
  ck_assert_ptr_nonnull(strstr(r.err, "footer does not match"));
}
END_TEST

START_TEST(time_claims_are_checked) {
  static struct run r;
  struct keys k;
  char tok[PASETO_TOKEN_MAX + 1];
  keygen(&k);
  run(&r, NULL, "sign", "--key", k.sk,
      "{\"exp\":\"2099-01-01T00:00:00Z\","
      "\"nbf\":\"2098-01-01T00:00:00Z\"}",
      NULL);
  ck_assert_int_eq(r.status, 0);
  chomp(r.out);
  copy_out(tok, sizeof tok, r.out);
  run(&r, NULL, "verify", "--key", k.pk, tok, NULL);
  ck_assert_int_eq(r.status, 1);
  ck_assert_str_eq(r.err, "token: invalid token: token not yet valid\n");
  run(&r, NULL, "verify", "--key", k.pk, "--leeway", "-5", tok, NULL);
  ck_assert_int_eq(r.status, 2);
}
END_TEST

START_TEST(decode_shows_unverified_contents_without_a_key) {
  static struct run r;
  run(&r, NULL, "decode", VEC_TOKEN, NULL);
  ck_assert_int_eq(r.status, 0);
  ck_assert_str_eq(
      r.out, "UNVERIFIED: signature not checked; do not trust these "
             "contents\npayload: " VEC_PAYLOAD "\nfooter: " VEC_FOOTER "\n");
  run(&r, NULL, "decode", "v4.public.AAAA", NULL);
  ck_assert_int_eq(r.status, 1);
  ck_assert_ptr_nonnull(strstr(r.err, "too short"));
}
END_TEST

START_TEST(stdin_and_key_file_inputs) {
  static struct run r;
  struct keys k;
  static char tok[OUT_MAX];
  char path[4096];
  const char *dir = getenv("TEST_TMPDIR");
  keygen(&k);
  snprintf(path, sizeof path, "%s/sk.hex", dir ? dir : "/tmp");
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fprintf(f, "%s\n", k.sk);
  fclose(f);

  run(&r, CLAIMS "\n", "sign", "--key-file", path, "-", NULL);
  ck_assert_msg(r.status == 0, "%s", r.err);
  memcpy(tok, r.out, sizeof tok); /* keeps the newline */
  run(&r, tok, "verify", "--key", k.pk, "-", NULL);
  ck_assert_int_eq(r.status, 0);
  ck_assert_str_eq(r.out, CLAIMS "\n");
  unlink(path);
}
END_TEST

START_TEST(usage_errors_exit_2) {
  static struct run r;
  struct keys k;
  keygen(&k);
  run(&r, NULL, NULL);
  ck_assert_int_eq(r.status, 2);
  run(&r, NULL, "frobnicate", NULL);
  ck_assert_int_eq(r.status, 2);
  run(&r, NULL, "sign", CLAIMS, NULL);
  ck_assert_int_eq(r.status, 2);
  run(&r, NULL, "sign", "--key", "abcd", CLAIMS, NULL);
  ck_assert_int_eq(r.status, 2);
  run(&r, NULL, "sign", "--key", k.pk, "--bogus", CLAIMS, NULL);
  ck_assert_int_eq(r.status, 2);
  run(&r, NULL, "verify", "--key", k.sk, "v4.public.x", NULL);
  ck_assert_int_eq(r.status, 2);
  run(&r, NULL, "verify", "--key", k.pk, NULL);
  ck_assert_int_eq(r.status, 2);
  /* A secret key given as --key is never echoed back. */
  run(&r, NULL, "verify", "--key", k.sk, "v4.public.x", NULL);
  ck_assert_ptr_null(strstr(r.err, k.sk));
}
END_TEST

START_TEST(bad_claims_are_refused) {
  static struct run r;
  struct keys k;
  keygen(&k);
  run(&r, NULL, "sign", "--key", k.sk, "[1,2]", NULL);
  ck_assert_int_eq(r.status, 1);
  ck_assert_str_eq(r.err, "token: bad claims: claims are not a JSON object\n");
  run(&r, NULL, "sign", "--key", k.sk, "{\"exp\":12}", NULL);
  ck_assert_int_eq(r.status, 1);
  ck_assert_str_eq(r.out, "");
}
END_TEST

static Suite *token_suite(void) {
  Suite *s = suite_create("token");
  TCase *tc = tcase_create("cli");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, keygen_prints_consistent_keys);
  tcase_add_test(tc, sign_then_verify_round_trips_and_never_prints_the_secret);
  tcase_add_test(tc, signing_is_deterministic);
  tcase_add_test(tc, official_vector_is_reproduced);
  tcase_add_test(tc, tampered_token_fails_with_reason);
  tcase_add_test(tc, wrong_key_fails);
  tcase_add_test(tc, implicit_assertion_and_footer_must_match);
  tcase_add_test(tc, time_claims_are_checked);
  tcase_add_test(tc, decode_shows_unverified_contents_without_a_key);
  tcase_add_test(tc, stdin_and_key_file_inputs);
  tcase_add_test(tc, usage_errors_exit_2);
  tcase_add_test(tc, bad_claims_are_refused);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  if (paseto_init() != ERR_OK) return 1;
  find_binary();
  SRunner *sr = srunner_create(token_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
