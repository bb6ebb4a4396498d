/*
 * bench_auth.c - auth benchmarks: verified-token throughput (libs/authn in
 * process, cached and uncached, with raw paseto_verify as the reference in
 * the same run) and logins per second against a running auth service
 * (started here with tests/harness on a throwaway PostgreSQL and Redis,
 * with the production Argon2id limits), with the bare Argon2id verification
 * rate on this machine as the ceiling.
 *
 *   bench_auth [--secs S] [--tokens N] [--clients C]
 *
 * Run through tools/bench/auth/run.sh (builds, sets BAZEL_BIN). Not a test:
 * it prints numbers and exits 0 unless something failed to run.
 */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "libs/authn/authn.h"
#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"
#include "libs/paseto/claims.h"
#include "libs/paseto/paseto.h"
#include "libs/rpc/rpc.h"
#include "proto/auth/v1/auth.pb-c.h"
#include "libs/svcid/svcid.h"
#include "tests/harness/harness.h"
#include "tests/harness/identity.h"

static int g_secs = 3;
static int g_tokens = 20000;
static int g_clients = 4;

static paseto_secret_key g_sk;
static paseto_public_key g_pk;

static void die(const char *what) {
  fprintf(stderr, "bench_auth: %s\n", what);
  exit(1);
}

static char *make_token(void) {
  paseto_claims c;
  memset(&c, 0, sizeof c);
  str_copy(c.iss, "auth", sizeof c.iss);
  uuid_v7_str(c.sub);
  uuid_v7_str(c.tid);
  str_copy(c.role, "staff", sizeof c.role);
  uuid_v7_str(c.jti);
  int64_t now = time_now_ms();
  c.has_iat = c.has_nbf = c.has_exp = true;
  c.iat_ms = c.nbf_ms = now;
  c.exp_ms = now + 900000;
  char *json = NULL;
  size_t jlen = 0;
  if (paseto_claims_to_json(&c, &json, &jlen) != ERR_OK) die("claims");
  char pid[PASETO_PID_LEN + 1], footer[128];
  size_t flen = 0;
  paseto_pid(&g_pk, pid);
  if (paseto_footer_kid_json(pid, footer, sizeof footer, &flen) != ERR_OK)
    die("footer");
  char *tok = malloc(PASETO_TOKEN_MAX + 1);
  if (tok == NULL || paseto_sign(&g_sk, json, jlen, footer, flen, NULL, 0, tok,
                                 PASETO_TOKEN_MAX + 1, NULL) != ERR_OK)
    die("sign");
  free(json);
  return tok;
}

/* ------------------------------------------------------- verification --- */

typedef struct vjob {
  authn *a;
  char **toks;
  int ntoks;
  int64_t stop_ms;
  uint64_t n;
  bool raw; /* paseto_verify only */
} vjob;

static void *verify_main(void *arg) {
  vjob *j = arg;
  uint64_t n = 0;
  int i = 0;
  while ((n & 63) != 0 || time_mono_ms() < j->stop_ms) {
    const char *t = j->toks[i];
    size_t len = strlen(t);
    if (j->raw) {
      paseto_token *pt = NULL;
      if (paseto_verify(&g_pk, t, len, NULL, 0, NULL, 0, &pt, NULL) != ERR_OK)
        die("raw verify");
      paseto_token_free(pt);
    } else if (authn_verify(j->a, t, len, NULL, NULL) != ERR_OK) {
      die("authn verify");
    }
    n++;
    if (++i == j->ntoks) i = 0;
  }
  j->n = n;
  return NULL;
}

/* Verifications per second over g_secs with `threads` threads. */
static double run_verify(authn *a, char **toks, int ntoks, int threads,
                         bool raw) {
  pthread_t th[8];
  vjob jobs[8];
  int64_t t0 = time_mono_ms();
  for (int i = 0; i < threads; i++) {
    /* Threads start at different offsets so they do not verify the same
     * token at the same moment. */
    int off = ntoks > 1 ? (ntoks / threads) * i : 0;
    jobs[i] = (vjob){a, toks + off, ntoks - off, t0 + g_secs * 1000, 0, raw};
    pthread_create(&th[i], NULL, verify_main, &jobs[i]);
  }
  uint64_t total = 0;
  for (int i = 0; i < threads; i++) {
    pthread_join(th[i], NULL);
    total += jobs[i].n;
  }
  double secs = (double)(time_mono_ms() - t0) / 1000.0;
  return (double)total / secs;
}

static void bench_verify(void) {
  char **toks = calloc((size_t)g_tokens, sizeof *toks);
  for (int i = 0; i < g_tokens; i++) toks[i] = make_token();
  authn_key key = {.pk = g_pk, .active = true};

  printf("== token verification, libs/authn in-process (%d distinct tokens)\n",
         g_tokens);
  printf("%-44s %14s %14s\n", "case", "1 thread/s", "2 threads/s");
  for (int pass = 0; pass < 3; pass++) {
    double r[2];
    for (int t = 1; t <= 2; t++) {
      authn_config cfg = AUTHN_CONFIG_INIT;
      /* Uncached: a cache too small for the working set; every call is a
       * miss (one 4-entry set and 20000 tokens). */
      cfg.cache_entries = pass == 1 ? 4 : 65536;
      authn *a = NULL;
      if (authn_new(&cfg, &a) != ERR_OK || authn_set_keys(a, &key, 1) != ERR_OK)
        die("authn");
      if (pass == 2) {
        /* Cached: warm the cache first. */
        for (int i = 0; i < g_tokens; i++)
          if (authn_verify(a, toks[i], strlen(toks[i]), NULL, NULL) != ERR_OK)
            die("warm");
      }
      r[t - 1] = run_verify(a, toks, g_tokens, t, pass == 0);
      if (pass == 1) {
        authn_stats st;
        authn_get_stats(a, &st);
        if (st.hits * 100 > st.misses) /* more than 1% hits: not "uncached" */
          fprintf(stderr, "warning: uncached run had %llu hits\n",
                  (unsigned long long)st.hits);
      }
      authn_free(a);
    }
    const char *name = pass == 0 ? "reference: paseto_verify (b64 + Ed25519)"
                       : pass == 1
                           ? "authn_verify, uncached (every call verifies)"
                           : "authn_verify, cached (hash + time check)";
    printf("%-44s %14.0f %14.0f\n", name, r[0], r[1]);
  }
  for (int i = 0; i < g_tokens; i++) free(toks[i]);
  free(toks);
}

/* -------------------------------------------------------------- logins --- */

typedef struct ljob {
  const char *addr;
  const char *tenant;
  const char *email;
  int64_t stop_ms;
  uint64_t ok, busy, other;
  int64_t *lat_us;
  size_t nlat, cap;
} ljob;

/* A client calling auth as the gateway does (service identity from the
 * harness's keys, which auth is started with). */
static int bench_client_new(const char *addr, rpc_client **out) {
  static svcid_signer *gateway;
  static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  pthread_mutex_lock(&mu);
  if (gateway == NULL) gateway = harness_identity_signer("gateway");
  pthread_mutex_unlock(&mu);
  rpc_client_options o;
  rpc_client_options_init(&o);
  o.credential = svcid_credential;
  o.credential_arg = gateway;
  return rpc_client_new(addr, &o, out);
}

static void *login_main(void *arg) {
  ljob *j = arg;
  rpc_client *c = NULL;
  if (bench_client_new(j->addr, &c) != ERR_OK ||
      rpc_client_wait_connected(c, 1, 10000) != ERR_OK)
    die("client");
  Auth__V1__LoginRequest req = AUTH__V1__LOGIN_REQUEST__INIT;
  req.email = (char *)j->email;
  req.password = "bench-password-1";
  rpc_call_options o = RPC_CALL_OPTIONS_INIT;
  o.tenant_id = j->tenant;
  o.deadline_ms = 30000;
  while (time_mono_ms() < j->stop_ms) {
    int64_t t0 = time_mono_ns();
    rpc_result *r = NULL;
    if (rpc_client_call_message(c, "auth.v1.Auth/Login", &req.base, &o, &r) !=
        ERR_OK)
      die("call");
    int64_t us = (time_mono_ns() - t0) / 1000;
    if (r->code == RPC_OK) {
      j->ok++;
      if (j->nlat < j->cap) j->lat_us[j->nlat++] = us;
    } else if (r->code == RPC_RESOURCE_EXHAUSTED) {
      j->busy++;
    } else {
      j->other++;
    }
    rpc_result_free(r);
  }
  rpc_client_free(c);
  return NULL;
}

static int cmp64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static double pwhash_rate(unsigned long long ops, size_t mem, int threads);

typedef struct pjob {
  const char *hash;
  int64_t stop_ms;
  uint64_t n;
} pjob;

static void *pw_main(void *arg) {
  pjob *j = arg;
  while (time_mono_ms() < j->stop_ms) {
    if (crypto_pwhash_str_verify(j->hash, "bench-password-1", 16) != 0)
      die("pwhash verify");
    j->n++;
  }
  return NULL;
}

static double pwhash_rate(unsigned long long ops, size_t mem, int threads) {
  char hash[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str(hash, "bench-password-1", 16, ops, mem) != 0)
    die("pwhash");
  pthread_t th[8];
  pjob jobs[8];
  int64_t t0 = time_mono_ms();
  for (int i = 0; i < threads; i++) {
    jobs[i] = (pjob){hash, t0 + g_secs * 1000, 0};
    pthread_create(&th[i], NULL, pw_main, &jobs[i]);
  }
  uint64_t n = 0;
  for (int i = 0; i < threads; i++) {
    pthread_join(th[i], NULL);
    n += jobs[i].n;
  }
  return (double)n / ((double)(time_mono_ms() - t0) / 1000.0);
}

static harness_proc *start_auth(const harness_pg *pg, const harness_redis *rd,
                                const char *ops, const char *mem, char *addr,
                                size_t cap) {
  int port = harness_free_port(), admin = harness_free_port();
  char cwd[512];
  if (getcwd(cwd, sizeof cwd) == NULL) die("getcwd");
  char sk_hex[PASETO_SECRET_HEX_LEN + 1];
  paseto_secret_key_to_hex(&g_sk, sk_hex);
  char e[12][700];
  int n = 0;
  snprintf(e[n++], sizeof e[0], "DATABASE_URL=%s", pg->url);
  snprintf(e[n++], sizeof e[0], "REDIS_URL=%s", rd->url);
  snprintf(e[n++], sizeof e[0], "RPC_LISTEN=tcp://127.0.0.1:%d", port);
  snprintf(e[n++], sizeof e[0], "ADMIN_ADDR=127.0.0.1");
  snprintf(e[n++], sizeof e[0], "ADMIN_PORT=%d", admin);
  snprintf(e[n++], sizeof e[0], "MIGRATIONS_DIR=%s/services/auth/migrations",
           cwd);
  snprintf(e[n++], sizeof e[0], "AUTH_SIGNING_KEYS=%s", sk_hex);
  snprintf(e[n++], sizeof e[0], "AUTH_PWHASH_OPSLIMIT=%s", ops);
  snprintf(e[n++], sizeof e[0], "AUTH_PWHASH_MEMLIMIT_KIB=%s", mem);
  snprintf(e[n++], sizeof e[0], "LOG_LEVEL=warn");
  snprintf(e[n++], sizeof e[0], "SERVICE_KEY_FILE=%s",
           harness_identity_key_file("auth"));
  snprintf(e[n++], sizeof e[0], "SERVICE_TRUST_FILE=%s",
           harness_identity_trust_file());
  char *envp[13];
  for (int i = 0; i < n; i++) envp[i] = e[i];
  envp[n] = NULL;
  char *argv[] = {(char *)harness_bin_path("services/auth/auth"), NULL};
  harness_proc *p = harness_spawn("auth", argv, envp);
  sodium_memzero(e, sizeof e);
  sodium_memzero(sk_hex, sizeof sk_hex);
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/readyz", admin);
  if (p == NULL || !harness_wait_http_ok(url, 60000)) die("auth did not start");
  snprintf(addr, cap, "tcp://127.0.0.1:%d", port);
  return p;
}

static void bench_logins_with(const harness_pg *pg, const harness_redis *rd,
                              const char *label, const char *ops,
                              const char *mem) {
  char addr[64];
  harness_proc *p = start_auth(pg, rd, ops, mem, addr, sizeof addr);
  char tenant[UUID_STR_LEN + 1];
  uuid_v7_str(tenant);
  rpc_client *c = NULL;
  if (bench_client_new(addr, &c) != ERR_OK ||
      rpc_client_wait_connected(c, 1, 10000) != ERR_OK)
    die("client");
  Auth__V1__RegisterRequest reg = AUTH__V1__REGISTER_REQUEST__INIT;
  reg.email = "bench@example.com";
  reg.password = "bench-password-1";
  reg.name = "Bench";
  rpc_call_options o = RPC_CALL_OPTIONS_INIT;
  o.tenant_id = tenant;
  rpc_result *r = NULL;
  if (rpc_client_call_message(c, "auth.v1.Auth/Register", &reg.base, &o, &r) !=
          ERR_OK ||
      r->code != RPC_OK)
    die("register");
  rpc_result_free(r);
  rpc_client_free(c);

  ljob jobs[16];
  pthread_t th[16];
  int64_t t0 = time_mono_ms();
  for (int i = 0; i < g_clients; i++) {
    jobs[i] = (ljob){addr,
                     tenant,
                     "bench@example.com",
                     t0 + g_secs * 1000,
                     0,
                     0,
                     0,
                     calloc(100000, sizeof(int64_t)),
                     0,
                     100000};
    pthread_create(&th[i], NULL, login_main, &jobs[i]);
  }
  uint64_t ok = 0, busy = 0, other = 0;
  size_t nlat = 0;
  int64_t *lat = calloc((size_t)g_clients * 100000, sizeof *lat);
  for (int i = 0; i < g_clients; i++) {
    pthread_join(th[i], NULL);
    ok += jobs[i].ok;
    busy += jobs[i].busy;
    other += jobs[i].other;
    memcpy(lat + nlat, jobs[i].lat_us, jobs[i].nlat * sizeof *lat);
    nlat += jobs[i].nlat;
    free(jobs[i].lat_us);
  }
  double secs = (double)(time_mono_ms() - t0) / 1000.0;
  qsort(lat, nlat, sizeof *lat, cmp64);
  double p50 = nlat ? (double)lat[nlat / 2] / 1000.0 : 0;
  double p99 = nlat ? (double)lat[(nlat * 99) / 100] / 1000.0 : 0;
  printf("%-44s %10.1f %9.1f %9.1f %8llu %6llu\n", label, (double)ok / secs,
         p50, p99, (unsigned long long)busy, (unsigned long long)other);
  free(lat);
  harness_stop(p, 10000);
}

static void bench_logins(void) {
  harness_pg pg;
  harness_redis rd;
  if (harness_pg_start(&pg) != 0 || harness_redis_start(&rd) != 0)
    die("cannot start PostgreSQL/Redis");
  printf(
      "\n== logins against the auth service (%d clients, %d s, RPC_WORKERS 16,"
      " 2 hashing threads)\n",
      g_clients, g_secs);
  printf("%-44s %10s %9s %9s %8s %6s\n", "case", "logins/s", "p50 ms", "p99 ms",
         "refused", "other");
  bench_logins_with(&pg, &rd, "auth, Argon2id INTERACTIVE (2 ops, 64 MiB)", "2",
                    "65536");
  bench_logins_with(&pg, &rd, "auth, Argon2id minimum (1 op, 8 KiB)", "1", "8");
  printf("\n== ceiling: bare crypto_pwhash_str_verify on this machine\n");
  printf("%-44s %10s %10s\n", "case", "1 thread/s", "2 threads/s");
  printf("%-44s %10.1f %10.1f\n", "Argon2id INTERACTIVE (2 ops, 64 MiB)",
         pwhash_rate(2, 64u << 20, 1), pwhash_rate(2, 64u << 20, 2));
  harness_redis_stop(&rd);
  harness_pg_stop(&pg);
}

int main(int argc, char **argv) {
  static const struct option opts[] = {
      {"secs", required_argument, NULL, 's'},
      {"tokens", required_argument, NULL, 't'},
      {"clients", required_argument, NULL, 'c'},
      {"no-logins", no_argument, NULL, 'n'},
      {NULL, 0, NULL, 0}};
  bool logins = true;
  int ch;
  while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    char *end = NULL;
    long v = ch != 'n' ? strtol(optarg, &end, 10) : 0;
    if (ch != 'n' && (end == optarg || *end != '\0' || v < 1 || v > 1000000))
      die("bad number");
    if (ch == 's')
      g_secs = (int)v;
    else if (ch == 't')
      g_tokens = (int)v;
    else if (ch == 'c')
      g_clients = v > 16 ? 16 : (int)v;
    else if (ch == 'n')
      logins = false;
    else
      die("usage: bench_auth [--secs S] [--tokens N] [--clients C] "
          "[--no-logins]");
  }
  if (paseto_init() != ERR_OK) die("sodium");
  paseto_keygen(&g_sk, &g_pk);
  printf("== machine: %ld cores\n", sysconf(_SC_NPROCESSORS_ONLN));
  bench_verify();
  if (logins) {
    harness_init();
    bench_logins();
  }
  paseto_secret_key_wipe(&g_sk);
  return 0;
}
