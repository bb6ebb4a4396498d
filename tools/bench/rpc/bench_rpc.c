/*
 * bench_rpc - what libs/rpc costs on top of raw nng req/rep, and what
 * proving the caller's identity costs on top of that, measured side by
 * side in one run.
 *
 * A forked child process runs the echo servers on loopback:
 *   raw     - nng rep0 with one context per in-flight request, replying
 *             from the aio callback (nng's demo/async/server.c pattern):
 *             the cheapest possible nng server, over tcp://;
 *   raw-tls - the same over tls+tcp:// with mutual TLS (both sides
 *             present a certificate from one CA, NNG_TLS_AUTH_MODE_
 *             REQUIRED): the transport alternative for service identity
 *             (docs/adr/0008-service-identity.md); only with --tls-dir;
 *   rpc     - libs/rpc's server (envelope decode, handler table, deadline
 *             check, metrics) with the same Echo handler registered twice:
 *             "Echo" (rpc_server_register: runs on a worker thread, the
 *             blocking-safe default every service uses) and "EchoNB"
 *             (rpc_server_register_nonblocking: runs on nng's thread);
 *   rpc-id  - a second libs/rpc server, identical but for the
 *             production service-identity guard (libs/svc/identity.h,
 *             svc_identity_guard): svcid_verify (verified-token cache) of
 *             the envelope's service token for audience "bench", then the
 *             access-table lookup of the method's callers.
 * The parent measures six variants with the same client shape:
 *   raw, raw-tls, rpc, rpc-id (worker handler), rpc-nb, rpc-nb-id
 *   (non-blocking handler); the -id variants use a client whose
 *   credential callback returns svcid_signer_token (the signer's cached
 *   token, re-minted at half-life), as libs/svc's clients do;
 *   sequential - one thread, one call at a time: latency p50/p99/mean;
 *   throughput - 64 threads, 64 calls in flight on one connection
 *                (one req0 socket, one dialer): calls per second.
 * Raw uses nng_ctx send/recv directly; the rpc variants use
 * rpc_client_call (envelope, request id, deadline, metrics, context
 * pool). Sequential calls alternate between the variants in chunks of
 * 100; throughput phases alternate too, for --rounds rounds, and the
 * median of the rounds is reported with the spread (min..max), so drift
 * on a shared machine hits all variants alike and shows.
 *
 *   bench_rpc [--payload BYTES] [--seq N] [--secs S] [--rounds R]
 *             [--inflight N] [--workers N] [--tls-dir DIR]
 *             [--only raw|raw-tls|rpc|rpc-id|rpc-nb|rpc-nb-id]
 *
 * --tls-dir holds ca.crt, server.crt, server.key, client.crt, client.key
 * (PEM; run.sh makes them with openssl). Without it raw-tls is skipped.
 *
 * It prints tables and, last, one machine-readable line:
 *   RESULT raw_p50_us=... rpc_p50_us=... nb_p50_us=... raw_rps=... ...
 */
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "libs/paseto/paseto.h"
#include "libs/rpc/rpc.h"
#include "libs/svc/identity.h"
#include "libs/svcid/access.h"
#include "libs/svcid/svcid.h"

#define METHOD "bench.v1.Bench/Echo"
#define METHOD_NB "bench.v1.Bench/EchoNB"
#define AUDIENCE "bench" /* the callee's service name */
#define CALLER "gateway" /* the caller's */
#define MAX_INFLIGHT 1024
#define MAX_ROUNDS 50
#define PEM_MAX 16384

enum { V_RAW, V_TLS, V_RPC, V_RPC_ID, V_NB, V_NB_ID, NVAR };
static const char *const var_name[NVAR] = {"raw",    "raw-tls", "rpc",
                                           "rpc-id", "rpc-nb",  "rpc-nb-id"};

static size_t payload_len = 64;
static int seq_n = 5000;
static double secs = 3.0;
static int rounds = 3;
static int inflight = 64;
static int workers = 8;
static int only = -1; /* --only VARIANT: profile one (-1: all) */
static const char *tls_dir = NULL;
static bool enabled[NVAR];

static void die(const char *what, int rv) {
  fprintf(stderr, "bench_rpc: %s: %s\n", what,
          rv ? nng_strerror(rv) : "failed");
  exit(1);
}

/* ---------------- TLS configuration ---------------- */

/* Reads dir/name (a PEM file) into buf (capacity PEM_MAX). */
static int read_pem(const char *name, char *buf) {
  char path[4096];
  snprintf(path, sizeof(path), "%s/%s", tls_dir, name);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  size_t n = fread(buf, 1, PEM_MAX - 1, f);
  int bad = ferror(f) || n == PEM_MAX - 1;
  fclose(f);
  buf[n] = '\0';
  return bad ? -1 : 0;
}

/* A mutual-TLS configuration for one side ("server" or "client"): its
 * own certificate and key, the CA that signed the peer's, and the peer's
 * certificate required. Returns 0 or an nng error (-1: files). */
static int tls_config(bool server, nng_tls_config **out) {
  static char ca[PEM_MAX], cert[PEM_MAX], key[PEM_MAX];
  const char *who = server ? "server" : "client";
  char cname[32], kname[32];
  snprintf(cname, sizeof(cname), "%s.crt", who);
  snprintf(kname, sizeof(kname), "%s.key", who);
  if (read_pem("ca.crt", ca) || read_pem(cname, cert) || read_pem(kname, key))
    return -1;
  nng_tls_config *c = NULL;
  int rv = nng_tls_config_alloc(&c, server ? NNG_TLS_MODE_SERVER
                                           : NNG_TLS_MODE_CLIENT);
  if (rv == 0) rv = nng_tls_config_own_cert(c, cert, key, NULL);
  if (rv == 0) rv = nng_tls_config_ca_chain(c, ca, NULL);
  if (rv == 0) rv = nng_tls_config_auth_mode(c, NNG_TLS_AUTH_MODE_REQUIRED);
  if (rv == 0 && !server) rv = nng_tls_config_server_name(c, "localhost");
  memset(key, 0, sizeof(key));
  if (rv != 0 && c != NULL) nng_tls_config_free(c);
  *out = rv == 0 ? c : NULL;
  return rv;
}

/* ---------------- servers (child process) ---------------- */

typedef struct raw_slot {
  nng_socket sock;
  nng_ctx ctx;
  nng_aio *aio;
  int sending;
} raw_slot;

static void raw_cb(void *arg) {
  raw_slot *s = arg;
  int rv = nng_aio_result(s->aio);
  if (s->sending) {
    if (rv != 0) nng_msg_free(nng_aio_get_msg(s->aio));
    s->sending = 0;
    nng_ctx_recv(s->ctx, s->aio);
    return;
  }
  if (rv != 0) return; /* closed */
  /* Echo: the request message goes straight back. */
  s->sending = 1;
  nng_ctx_send(s->ctx, s->aio);
}

/* A raw echo server on url (TLS when tls is not NULL); returns its port. */
static int raw_server(const char *url, nng_tls_config *tls, nng_socket *sock) {
  nng_listener l;
  int rv, port = 0;
  if ((rv = nng_rep0_open(sock)) != 0) die("rep0_open", rv);
  if ((rv = nng_listener_create(&l, *sock, url)) != 0) die("listener", rv);
  if (tls != NULL &&
      (rv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, tls)) != 0)
    die("listener tls", rv);
  if ((rv = nng_listener_start(l, 0)) != 0) die("listen", rv);
  nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port);
  int nslots = inflight + 8;
  raw_slot *slots = calloc((size_t)nslots, sizeof(*slots));
  for (int i = 0; i < nslots; i++) {
    slots[i].sock = *sock;
    if (nng_ctx_open(&slots[i].ctx, *sock) != 0 ||
        nng_aio_alloc(&slots[i].aio, raw_cb, &slots[i]) != 0) {
      die("raw ctx", 0);
    }
    nng_ctx_recv(slots[i].ctx, slots[i].aio);
  }
  return port;
}

static void rpc_echo(void *arg, const rpc_call *call, rpc_reply *reply) {
  (void)arg;
  if (rpc_reply_set_payload(reply, call->payload, call->payload_len) !=
      ERR_OK) {
    rpc_reply_status(reply, RPC_INTERNAL, NULL);
  }
}

/* Who may call the bench methods, in the shape tools/protoaccess
 * generates, so the production guard reads it as a service's table. */
static const svcid_caller_rule BENCH_CALLERS[] = {{CALLER, SVCID_USER_NONE}};
static const svcid_method_access BENCH_METHODS[] = {
    {METHOD, BENCH_CALLERS, 1, NULL, NULL},
    {METHOD_NB, BENCH_CALLERS, 1, NULL, NULL},
};
static const svcid_access_table BENCH_ACCESS = {"tools/bench/rpc",
                                                BENCH_METHODS, 2};

/* An rpc echo server, with the production service-identity guard
 * (libs/svc/identity.h) when id is set. */
static rpc_server *rpc_echo_server(svc_identity *id) {
  rpc_server_options o;
  rpc_server_options_init(&o);
  o.workers = workers;
  o.queue_depth = inflight + 8 > workers ? inflight + 8 - workers : 1;
  rpc_server *srv = NULL;
  if (rpc_server_new(&o, &srv) != ERR_OK ||
      (id != NULL && svc_identity_guard(id, srv, &BENCH_ACCESS) != ERR_OK) ||
      rpc_server_register(srv, METHOD, rpc_echo, NULL) != ERR_OK ||
      rpc_server_register_nonblocking(srv, METHOD_NB, rpc_echo, NULL) !=
          ERR_OK ||
      rpc_server_start(srv, "tcp://127.0.0.1:0") != ERR_OK) {
    die("rpc server", 0);
  }
  return srv;
}

/* ports: raw, raw-tls (0 = none), rpc, rpc-id. */
static void run_servers(const char *bundle_text, int port_fd, int stop_fd) {
  nng_socket raw_sock, tls_sock;
  nng_tls_config *tls = NULL;
  int ports[4] = {0, 0, 0, 0};
  ports[0] = raw_server("tcp://127.0.0.1:0", NULL, &raw_sock);
  if (enabled[V_TLS] && tls_config(true, &tls) == 0)
    ports[1] = raw_server("tls+tcp://127.0.0.1:0", tls, &tls_sock);

  svcid_bundle *bundle = NULL;
  svcid_verifier *verifier = NULL;
  svc_identity *id = NULL;
  int bad = 0;
  if (svcid_bundle_parse(bundle_text, strlen(bundle_text), &bundle, &bad) !=
          ERR_OK ||
      svcid_verifier_new(AUDIENCE, bundle, &verifier) != ERR_OK ||
      svc_identity_new(NULL, verifier, &id) != ERR_OK) {
    die("trust bundle", 0);
  }
  rpc_server *plain = rpc_echo_server(NULL), *guarded = rpc_echo_server(id);
  ports[2] = rpc_server_port(plain);
  ports[3] = rpc_server_port(guarded);
  if (write(port_fd, ports, sizeof(ports)) != (ssize_t)sizeof(ports))
    die("write", 0);
  char c;
  while (read(stop_fd, &c, 1) > 0) {
  }
  rpc_server_close(guarded);
  rpc_server_close(plain);
  svc_identity_free(id); /* and the verifier it owns */
  nng_close(raw_sock);
  if (ports[1] != 0) nng_close(tls_sock);
  _exit(0);
}

/* ---------------- clients ---------------- */

typedef struct client {
  bool raw;
  nng_socket sock; /* raw */
  rpc_client *rpc; /* rpc */
  const char *method;
} client;

static unsigned char *payload;

static int64_t now_ns(void) { return time_mono_ns(); }

/* One call; returns 0 on success. Raw: ctx and aio given. */
static int raw_call(nng_ctx ctx, nng_aio *aio) {
  nng_msg *m;
  if (nng_msg_alloc(&m, payload_len) != 0) return -1;
  memcpy(nng_msg_body(m), payload, payload_len);
  nng_aio_set_msg(aio, m);
  nng_ctx_send(ctx, aio);
  nng_aio_wait(aio);
  if (nng_aio_result(aio) != 0) {
    nng_msg_free(nng_aio_get_msg(aio));
    return -1;
  }
  nng_ctx_recv(ctx, aio);
  nng_aio_wait(aio);
  if (nng_aio_result(aio) != 0) return -1;
  nng_msg *r = nng_aio_get_msg(aio);
  int ok = nng_msg_len(r) == payload_len ? 0 : -1;
  nng_msg_free(r);
  return ok;
}

static int rpc_code_of(rpc_client *c, const char *method) {
  rpc_call_options o = RPC_CALL_OPTIONS_INIT;
  o.deadline_ms = 10000;
  rpc_result *r = NULL;
  if (rpc_client_call(c, method, payload, payload_len, &o, &r) != ERR_OK)
    return -1;
  int code = r->code == RPC_OK && r->payload_len != payload_len ? -1 : r->code;
  rpc_result_free(r);
  return code;
}

static int rpc_one(rpc_client *c, const char *method) {
  return rpc_code_of(c, method) == RPC_OK ? 0 : -1;
}

/* A raw variant's per-thread context and aio. */
typedef struct raw_io {
  nng_ctx ctx;
  nng_aio *aio;
} raw_io;

static void raw_io_open(const client *cl, raw_io *io) {
  io->aio = NULL;
  if (!cl->raw) return;
  if (nng_ctx_open(&io->ctx, cl->sock) != 0 ||
      nng_aio_alloc(&io->aio, NULL, NULL) != 0)
    die("ctx", 0);
  nng_aio_set_timeout(io->aio, 10000);
}

static void raw_io_close(raw_io *io) {
  if (io->aio == NULL) return;
  nng_aio_free(io->aio);
  nng_ctx_close(io->ctx);
}

static int call_one(const client *cl, raw_io *io) {
  return cl->raw ? raw_call(io->ctx, io->aio) : rpc_one(cl->rpc, cl->method);
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

typedef struct seq_res {
  double p50_us, p99_us, mean_us;
} seq_res;

static seq_res summarize(int64_t *lat, int n) {
  qsort(lat, (size_t)n, sizeof(*lat), cmp_i64);
  double sum = 0;
  for (int i = 0; i < n; i++) sum += (double)lat[i];
  seq_res r = {
      .p50_us = (double)lat[n / 2] / 1e3,
      .p99_us = (double)lat[(n * 99) / 100] / 1e3,
      .mean_us = sum / n / 1e3,
  };
  return r;
}

/* Sequential latency of every variant, interleaved in chunks of CHUNK
 * calls (raw, raw-tls, rpc, ...), so that load from elsewhere on a
 * shared machine lands on all alike. */
#define CHUNK 100
static void run_seq_all(client *cl[NVAR], seq_res out[NVAR]) {
  int64_t *lat[NVAR];
  raw_io io[NVAR];
  for (int k = 0; k < NVAR; k++) {
    lat[k] = calloc((size_t)seq_n, sizeof(int64_t));
    if (enabled[k]) raw_io_open(cl[k], &io[k]);
  }
  int warm = seq_n / 10;
  for (int base = -warm; base < seq_n; base += CHUNK) {
    for (int k = 0; k < NVAR; k++) {
      if (!enabled[k]) continue;
      for (int i = base; i < base + CHUNK && i < seq_n; i++) {
        int64_t t0 = now_ns();
        int rv = call_one(cl[k], &io[k]);
        int64_t t1 = now_ns();
        if (rv != 0) die("sequential call failed", 0);
        if (i >= 0) lat[k][i] = t1 - t0;
      }
    }
  }
  for (int k = 0; k < NVAR; k++) {
    seq_res none = {0, 0, 0};
    if (enabled[k]) raw_io_close(&io[k]);
    out[k] = enabled[k] ? summarize(lat[k], seq_n) : none;
    free(lat[k]);
  }
}

typedef struct thr_arg {
  client *cl;
  pthread_barrier_t *go;
  int64_t *end_ns;
  long calls;
  long errors;
} thr_arg;

static void *thr_main(void *p) {
  thr_arg *a = p;
  raw_io io;
  raw_io_open(a->cl, &io);
  pthread_barrier_wait(a->go); /* all threads start together */
  while (now_ns() < *a->end_ns) {
    if (call_one(a->cl, &io) == 0) {
      a->calls++;
    } else {
      a->errors++;
    }
  }
  raw_io_close(&io);
  return NULL;
}

static double run_thr(client *cl) {
  pthread_t t[MAX_INFLIGHT];
  thr_arg args[MAX_INFLIGHT];
  pthread_barrier_t go;
  pthread_barrier_init(&go, NULL, (unsigned)inflight + 1);
  int64_t end = INT64_MAX;
  for (int i = 0; i < inflight; i++) {
    args[i] = (thr_arg){.cl = cl, .go = &go, .end_ns = &end};
    pthread_create(&t[i], NULL, thr_main, &args[i]);
  }
  /* The end time is set before the barrier releases anyone. */
  int64_t t0 = now_ns();
  end = t0 + (int64_t)(secs * 1e9);
  pthread_barrier_wait(&go);
  long calls = 0, errors = 0;
  for (int i = 0; i < inflight; i++) {
    pthread_join(t[i], NULL);
    calls += args[i].calls;
    errors += args[i].errors;
  }
  double took = (double)(now_ns() - t0) / 1e9;
  pthread_barrier_destroy(&go);
  if (errors > 0) fprintf(stderr, "bench_rpc: %ld failed calls\n", errors);
  return (double)calls / took;
}

/* ---------------- statistics and output ---------------- */

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Median, min and max of v[0..n) (sorted in place). */
typedef struct stat3 {
  double med, lo, hi;
} stat3;

static stat3 stats(double *v, int n) {
  qsort(v, (size_t)n, sizeof(*v), cmp_d);
  stat3 s = {n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2, v[0], v[n - 1]};
  return s;
}

typedef struct results {
  stat3 p50[NVAR], p99[NVAR], mean[NVAR], rps[NVAR];
} results;

static double ratio(double a, double b) { return b > 0 ? a / b : 0; }

static void print_row(const char *label, const stat3 *v, const char *fmt) {
  printf("%-30s", label);
  for (int k = 0; k < NVAR; k++) {
    if (enabled[k]) {
      printf(fmt, v[k].med);
    } else {
      printf(" %10s", "n/a");
    }
  }
  putchar('\n');
}

static void print_spread(const char *label, const stat3 *v, const char *fmt) {
  printf("%-30s", label);
  for (int k = 0; k < NVAR; k++) {
    char cell[40];
    if (enabled[k]) {
      char lo[16], hi[16];
      snprintf(lo, sizeof(lo), fmt, v[k].lo);
      snprintf(hi, sizeof(hi), fmt, v[k].hi);
      snprintf(cell, sizeof(cell), "%s..%s", lo, hi);
    } else {
      snprintf(cell, sizeof(cell), "n/a");
    }
    printf(" %17s", cell);
  }
  putchar('\n');
}

/* The added cost of a variant over its base, in percent of the base
 * (latency: more is worse; throughput: shown as the loss). */
static void print_costs(const results *r) {
  static const int pair[3][2] = {
      {V_RPC_ID, V_RPC}, {V_NB_ID, V_NB}, {V_TLS, V_RAW}};
  static const char *const what[3] = {
      "service token, worker handler (rpc-id vs rpc)",
      "service token, nb handler (rpc-nb-id vs rpc-nb)",
      "mutual TLS, raw nng (raw-tls vs raw)"};
  printf("\ncost of identity (median of rounds; + = slower)\n");
  printf("%-50s %9s %9s %12s\n", "", "p50", "p99", "throughput");
  for (int i = 0; i < 3; i++) {
    int a = pair[i][0], b = pair[i][1];
    if (!enabled[a] || !enabled[b]) continue;
    printf("%-50s %+8.1f%% %+8.1f%% %+11.1f%%\n", what[i],
           100 * (ratio(r->p50[a].med, r->p50[b].med) - 1),
           100 * (ratio(r->p99[a].med, r->p99[b].med) - 1),
           100 * (1 - ratio(r->rps[a].med, r->rps[b].med)));
  }
}

static void print_results(const results *r) {
  printf(
      "\nRPC echo, %zu-byte payload, loopback, server in a separate process, "
      "median of %d rounds\n",
      payload_len, rounds);
  printf(
      "(sequential: %d calls per variant per round, interleaved; throughput: "
      "%d "
      "threads = %d in flight on one connection, %.0f s per round; rpc server "
      "workers=%d)\n\n",
      seq_n, inflight, inflight, secs, workers);
  printf("%-30s", "");
  for (int k = 0; k < NVAR; k++) printf(" %10s", var_name[k]);
  putchar('\n');
  print_row("sequential p50 (us)", r->p50, " %10.1f");
  print_row("sequential p99 (us)", r->p99, " %10.1f");
  print_row("sequential mean (us)", r->mean, " %10.1f");
  char label[64];
  snprintf(label, sizeof(label), "throughput, %d in flight (/s)", inflight);
  print_row(label, r->rps, " %10.0f");
  printf("\nspread over rounds (min..max)\n%-30s", "");
  for (int k = 0; k < NVAR; k++) printf(" %17s", var_name[k]);
  putchar('\n');
  print_spread("sequential p50 (us)", r->p50, "%.1f");
  print_spread("sequential p99 (us)", r->p99, "%.1f");
  print_spread("throughput (/s)", r->rps, "%.0f");
  print_costs(r);
  printf(
      "\nRESULT raw_p50_us=%.1f rpc_p50_us=%.1f nb_p50_us=%.1f raw_p99_us=%.1f "
      "rpc_p99_us=%.1f nb_p99_us=%.1f raw_rps=%.0f rpc_rps=%.0f nb_rps=%.0f "
      "tls_p50_us=%.1f tls_p99_us=%.1f tls_rps=%.0f id_p50_us=%.1f "
      "id_p99_us=%.1f "
      "id_rps=%.0f nbid_p50_us=%.1f nbid_p99_us=%.1f nbid_rps=%.0f\n",
      r->p50[V_RAW].med, r->p50[V_RPC].med, r->p50[V_NB].med, r->p99[V_RAW].med,
      r->p99[V_RPC].med, r->p99[V_NB].med, r->rps[V_RAW].med, r->rps[V_RPC].med,
      r->rps[V_NB].med, r->p50[V_TLS].med, r->p99[V_TLS].med, r->rps[V_TLS].med,
      r->p50[V_RPC_ID].med, r->p99[V_RPC_ID].med, r->rps[V_RPC_ID].med,
      r->p50[V_NB_ID].med, r->p99[V_NB_ID].med, r->rps[V_NB_ID].med);
}

/* ---------------- identity work alone ---------------- */

#define MICRO_N 100000
#define MICRO_MISS_N 2000

/* Nanoseconds per call of fn over n iterations. */
#define TIME_NS(n, stmt)                                                       \
  ({                                                                           \
    int64_t t0_ = now_ns();                                                    \
    for (int i_ = 0; i_ < (n); i_++) {                                         \
      stmt;                                                                    \
    }                                                                          \
    (double)(now_ns() - t0_) / (n);                                            \
  })

/* The CPU work identity adds to one call, without the network: on a
 * loaded shared machine the round-trip difference drowns in noise, this
 * does not. Cached = every call; miss = once per token lifetime per
 * callee (mint) and per caller token (full verify). */
static void measure_identity_work(svcid_signer *signer,
                                  const char *bundle_text) {
  svcid_bundle *b = NULL;
  svcid_verifier *v = NULL;
  int bad = 0, fails = 0;
  char tok[SVCID_TOKEN_MAX + 1], caller[SVCID_NAME_MAX + 1];
  const char *why = "";
  if (svcid_bundle_parse(bundle_text, strlen(bundle_text), &b, &bad) !=
          ERR_OK ||
      svcid_verifier_new(AUDIENCE, b, &v) != ERR_OK ||
      svcid_signer_token(signer, AUDIENCE, tok, sizeof(tok)) != ERR_OK)
    die("identity set-up", 0);
  size_t len = strlen(tok);
  double fetch =
      TIME_NS(MICRO_N, fails += svcid_signer_token(signer, AUDIENCE, tok,
                                                   sizeof(tok)) != ERR_OK);
  double verify = TIME_NS(
      MICRO_N, fails += svcid_verify(v, tok, len, caller, &why) != ERR_OK);
  double lookup = TIME_NS(MICRO_N, {
    const svcid_method_access *m = svcid_access_find(&BENCH_ACCESS, METHOD_NB);
    fails += m == NULL || svcid_access_caller(m, caller) == NULL;
  });
  int64_t now = time_now_ms();
  double mint =
      TIME_NS(MICRO_MISS_N,
              fails += svcid_signer_mint(signer, AUDIENCE, now, SVCID_TTL_MS,
                                         tok, sizeof(tok)) != ERR_OK);
  double full =
      TIME_NS(MICRO_MISS_N, fails += svcid_verify_at(v, tok, len, now, caller,
                                                     &why) != ERR_OK);
  if (fails) die("identity micro-benchmark", 0);
  printf("\nidentity work alone, per call (ns): cached token fetch %.0f + "
         "cached verify "
         "%.0f + access lookup %.0f = %.0f; token %zu bytes in each request\n",
         fetch, verify, lookup, fetch + verify + lookup, len);
  printf("on a cache miss (once per token lifetime per callee): mint %.0f ns, "
         "full verify "
         "%.0f ns\n",
         mint, full);
  printf("MICRO fetch_ns=%.0f verify_ns=%.0f lookup_ns=%.0f mint_ns=%.0f "
         "full_verify_ns=%.0f "
         "token_bytes=%zu\n",
         fetch, verify, lookup, mint, full, len);
  svcid_verifier_free(v);
}

/* ---------------- set-up ---------------- */

static long parse_arg(const char *s, long lo, long hi) {
  char *end = NULL;
  long v = strtol(s, &end, 10);
  if (end == s || *end != '\0' || v < lo || v > hi) {
    fprintf(stderr, "bench_rpc: bad number %s\n", s);
    exit(2);
  }
  return v;
}

static int parse_args(int argc, char **argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *a = argv[i], *v = argv[i + 1];
    if (strcmp(a, "--payload") == 0)
      payload_len = (size_t)parse_arg(v, 1, 1 << 20);
    else if (strcmp(a, "--seq") == 0)
      seq_n = (int)parse_arg(v, 10, 10000000);
    else if (strcmp(a, "--secs") == 0)
      secs = (double)parse_arg(v, 1, 600);
    else if (strcmp(a, "--rounds") == 0)
      rounds = (int)parse_arg(v, 1, MAX_ROUNDS);
    else if (strcmp(a, "--inflight") == 0)
      inflight = (int)parse_arg(v, 1, MAX_INFLIGHT);
    else if (strcmp(a, "--workers") == 0)
      workers = (int)parse_arg(v, 1, 1024);
    else if (strcmp(a, "--tls-dir") == 0)
      tls_dir = v;
    else if (strcmp(a, "--only") == 0) {
      for (int k = 0; k < NVAR; k++) {
        if (strcmp(v, var_name[k]) == 0) only = k;
      }
      if (only < 0) return -1;
    } else {
      return -1;
    }
  }
  return argc % 2 == 1 ? 0 : -1;
}

/* Dials a raw req0 socket (TLS when tls is set). */
static void raw_client(client *c, const char *url, nng_tls_config *tls) {
  nng_dialer d;
  int rv;
  c->raw = true;
  if ((rv = nng_req0_open(&c->sock)) != 0) die("req0", rv);
  nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
  if ((rv = nng_dialer_create(&d, c->sock, url)) != 0) die("dialer", rv);
  if (tls != NULL && (rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, tls)) != 0)
    die("dialer tls", rv);
  if ((rv = nng_dialer_start(d, 0)) != 0) die(url, rv);
}

/* The -id clients' credential: the signer's cached token for "bench". */
static int credential_cb(void *arg, const char *method, char *buf, size_t cap) {
  (void)method;
  return svcid_signer_token(arg, AUDIENCE, buf, cap);
}

static rpc_client *rpc_client_for(int port, svcid_signer *signer) {
  char url[64];
  rpc_client_options o;
  rpc_client *c = NULL;
  rpc_client_options_init(&o);
  if (signer != NULL) {
    o.credential = credential_cb;
    o.credential_arg = signer;
  }
  snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
  if (rpc_client_new(url, &o, &c) != ERR_OK ||
      rpc_client_wait_connected(c, 1, 5000) != ERR_OK)
    die("rpc client", 0);
  return c;
}

/* The guarded server must refuse a call without identity, or rpc-id
 * would measure nothing. */
static void check_guard(rpc_client *plain_to_guarded) {
  int code = rpc_code_of(plain_to_guarded, METHOD);
  if (code != RPC_UNAUTHENTICATED) {
    fprintf(stderr, "bench_rpc: guarded server answered %d without identity\n",
            code);
    exit(1);
  }
}

/* Makes the caller's key pair: the signer, and the bundle text the
 * server trusts. */
static svcid_signer *make_identity(char *bundle, size_t cap) {
  paseto_secret_key sk;
  paseto_public_key pk;
  char paserk[PASETO_PASERK_PUBLIC_LEN + 1];
  svcid_signer *s = NULL;
  if (paseto_init() != ERR_OK) die("libsodium", 0);
  paseto_keygen(&sk, &pk);
  paseto_paserk_public(&pk, paserk);
  snprintf(bundle, cap, "%s %s\n", CALLER, paserk);
  if (svcid_signer_new(CALLER, &sk, &s) != ERR_OK) die("signer", 0);
  paseto_secret_key_wipe(&sk);
  return s;
}

int main(int argc, char **argv) {
  if (parse_args(argc, argv) != 0) {
    fprintf(stderr,
            "usage: bench_rpc [--payload B] [--seq N] [--secs S] [--rounds R] "
            "[--inflight N] [--workers N] [--tls-dir DIR] "
            "[--only raw|raw-tls|rpc|rpc-id|rpc-nb|rpc-nb-id]\n");
    return 2;
  }
  for (int k = 0; k < NVAR; k++) enabled[k] = only < 0 || only == k;
  if (tls_dir == NULL) enabled[V_TLS] = false;
  payload = malloc(payload_len);
  for (size_t i = 0; i < payload_len; i++)
    payload[i] = (unsigned char)(i * 31 + 7);
  char bundle[256];
  svcid_signer *signer = make_identity(bundle, sizeof(bundle));

  int portp[2], stopp[2];
  if (pipe(portp) != 0 || pipe(stopp) != 0) die("pipe", 0);
  pid_t pid = fork();
  if (pid < 0) die("fork", 0);
  if (pid == 0) {
    close(portp[0]);
    close(stopp[1]);
    run_servers(bundle, portp[1], stopp[0]);
  }
  close(portp[1]);
  close(stopp[0]);
  int ports[4];
  if (read(portp[0], ports, sizeof(ports)) != (ssize_t)sizeof(ports))
    die("server start", 0);
  /* nng may only be touched after the fork (it panics in a child
   * forked from a process that initialised it), so TLS is set up here. */
  nng_tls_config *ctls = NULL;
  if (enabled[V_TLS]) {
    int rv = ports[1] == 0 ? -1 : tls_config(false, &ctls);
    if (rv != 0) {
      fprintf(stderr, "bench_rpc: TLS unavailable (%s); raw-tls skipped\n",
              rv < 0 ? "no server: certificate files?" : nng_strerror(rv));
      enabled[V_TLS] = false;
    } else {
      fprintf(stderr, "bench_rpc: TLS engine %s\n", nng_tls_engine_name());
    }
  }

  char url[64];
  client raw = {0}, tls = {0};
  snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", ports[0]);
  raw_client(&raw, url, NULL);
  if (enabled[V_TLS]) {
    snprintf(url, sizeof(url), "tls+tcp://127.0.0.1:%d", ports[1]);
    raw_client(&tls, url, ctls);
  }
  rpc_client *plain = rpc_client_for(ports[2], NULL);
  rpc_client *anon = rpc_client_for(ports[3], NULL);
  rpc_client *ided = rpc_client_for(ports[3], signer);
  check_guard(anon);
  rpc_client_free(anon);
  client rpc = {.rpc = plain, .method = METHOD},
         nb = {.rpc = plain, .method = METHOD_NB};
  client rid = {.rpc = ided, .method = METHOD},
         nbid = {.rpc = ided, .method = METHOD_NB};
  client *cl[NVAR] = {&raw, &tls, &rpc, &rid, &nb, &nbid};

  double p50[NVAR][MAX_ROUNDS], p99[NVAR][MAX_ROUNDS], mean[NVAR][MAX_ROUNDS];
  double thr[NVAR][MAX_ROUNDS];
  for (int r = 0; r < rounds; r++) {
    seq_res sr[NVAR];
    run_seq_all(cl, sr);
    fprintf(stderr, "round %d:", r + 1);
    for (int k = 0; k < NVAR; k++) {
      p50[k][r] = sr[k].p50_us;
      p99[k][r] = sr[k].p99_us;
      mean[k][r] = sr[k].mean_us;
      thr[k][r] = enabled[k] ? run_thr(cl[k]) : 0;
      if (enabled[k])
        fprintf(stderr, " %s %.1f/%.1f us %.0f/s;", var_name[k], sr[k].p50_us,
                sr[k].p99_us, thr[k][r]);
    }
    fputc('\n', stderr);
  }
  results res;
  for (int k = 0; k < NVAR; k++) {
    res.p50[k] = stats(p50[k], rounds);
    res.p99[k] = stats(p99[k], rounds);
    res.mean[k] = stats(mean[k], rounds);
    res.rps[k] = stats(thr[k], rounds);
  }
  print_results(&res);
  if (enabled[V_RPC_ID] || enabled[V_NB_ID])
    measure_identity_work(signer, bundle);

  rpc_client_free(ided);
  rpc_client_free(plain);
  svcid_signer_free(signer);
  nng_close(raw.sock);
  if (enabled[V_TLS]) nng_close(tls.sock);
  close(stopp[1]);
  int st;
  waitpid(pid, &st, 0);
  free(payload);
  return 0;
}
