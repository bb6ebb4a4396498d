/*
 * bench_rpc - what libs/rpc costs on top of raw nng req/rep, measured
 * side by side in one run.
 *
 * A forked child process runs two echo servers on loopback:
 *   raw  - nng rep0 with one context per in-flight request, replying from
 *          the aio callback (nng's demo/async/server.c pattern): the
 *          cheapest possible nng server;
 *   rpc  - libs/rpc's server (envelope decode, handler table, deadline
 *          check, metrics) with the same Echo handler registered twice:
 *          "Echo" (rpc_server_register: runs on a worker thread, the
 *          blocking-safe default every service uses) and "EchoNB"
 *          (rpc_server_register_nonblocking: runs on nng's thread).
 * The parent measures three variants with the same client shape:
 *   raw, rpc (worker handler), rpc-nb (non-blocking handler);
 *   sequential - one thread, one call at a time: latency p50/p99/mean;
 *   throughput - 64 threads, 64 calls in flight on one connection
 *                (one req0 socket, one dialer): calls per second.
 * Raw uses nng_ctx send/recv directly; the rpc variants use
 * rpc_client_call (envelope, request id, deadline, metrics, context
 * pool). Sequential calls alternate between the variants in chunks of
 * 100; throughput phases alternate too, for --rounds rounds, and the
 * median of the rounds is reported, so drift on a shared machine hits
 * all variants alike.
 *
 *   bench_rpc [--payload BYTES] [--seq N] [--secs S] [--rounds R]
 *             [--inflight N] [--workers N] [--only raw|rpc|rpc-nb]
 *
 * It prints a table and, last, one machine-readable line:
 *   RESULT raw_p50_us=... rpc_p50_us=... nb_p50_us=... raw_rps=... ...
 */
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "libs/base/timeutil.h"
#include "libs/rpc/rpc.h"

#define METHOD "bench.v1.Bench/Echo"
#define METHOD_NB "bench.v1.Bench/EchoNB"
#define NVAR 3
#define MAX_INFLIGHT 1024

static size_t payload_len = 64;
static int seq_n = 5000;
static double secs = 3.0;
static int rounds = 3;
static int inflight = 64;
static int workers = 8;
static int only = -1; /* --only VARIANT: profile one (-1: all) */
static const char *const var_name[NVAR] = {"raw", "rpc", "rpc-nb"};

static void die(const char *what, int rv) {
  fprintf(stderr, "bench_rpc: %s: %s\n", what, rv ? nng_strerror(rv) : "failed");
  exit(1);
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

static void rpc_echo(void *arg, const rpc_call *call, rpc_reply *reply) {
  (void)arg;
  if (rpc_reply_set_payload(reply, call->payload, call->payload_len) != ERR_OK) {
    rpc_reply_status(reply, RPC_INTERNAL, NULL);
  }
}

static void run_servers(int raw_port_fd, int stop_fd) {
  nng_socket sock;
  int rv;
  if ((rv = nng_rep0_open(&sock)) != 0) die("rep0_open", rv);
  nng_listener l;
  if ((rv = nng_listen(sock, "tcp://127.0.0.1:0", &l, 0)) != 0) die("listen", rv);
  int raw_port = 0;
  nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &raw_port);
  int nslots = inflight + 8;
  raw_slot *slots = calloc((size_t)nslots, sizeof(*slots));
  for (int i = 0; i < nslots; i++) {
    slots[i].sock = sock;
    if (nng_ctx_open(&slots[i].ctx, sock) != 0 ||
        nng_aio_alloc(&slots[i].aio, raw_cb, &slots[i]) != 0) {
      die("raw ctx", 0);
    }
    nng_ctx_recv(slots[i].ctx, slots[i].aio);
  }

  rpc_server_options o;
  rpc_server_options_init(&o);
  o.workers = workers;
  o.queue_depth = inflight + 8 > workers ? inflight + 8 - workers : 1;
  rpc_server *srv = NULL;
  if (rpc_server_new(&o, &srv) != ERR_OK ||
      rpc_server_register(srv, METHOD, rpc_echo, NULL) != ERR_OK ||
      rpc_server_register_nonblocking(srv, METHOD_NB, rpc_echo, NULL) != ERR_OK ||
      rpc_server_start(srv, "tcp://127.0.0.1:0") != ERR_OK) {
    die("rpc server", 0);
  }
  int ports[2] = {raw_port, rpc_server_port(srv)};
  if (write(raw_port_fd, ports, sizeof(ports)) != (ssize_t)sizeof(ports)) die("write", 0);
  char c;
  while (read(stop_fd, &c, 1) > 0) {
  }
  rpc_server_close(srv);
  nng_close(sock);
  _exit(0);
}

/* ---------------- clients ---------------- */

typedef struct client {
  int kind; /* 0 raw, 1 rpc, 2 rpc-nb */
  nng_socket sock;
  rpc_client *rpc;
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

static int rpc_one(rpc_client *c, const char *method) {
  rpc_call_options o = RPC_CALL_OPTIONS_INIT;
  o.deadline_ms = 10000;
  rpc_result *r = NULL;
  if (rpc_client_call(c, method, payload, payload_len, &o, &r) != ERR_OK) return -1;
  int ok = r->code == RPC_OK && r->payload_len == payload_len ? 0 : -1;
  rpc_result_free(r);
  return ok;
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
 * calls (raw, rpc, rpc-nb, raw, ...), so that load from elsewhere on a
 * shared machine lands on all alike. */
#define CHUNK 100
static void run_seq_all(client *cl[NVAR], seq_res out[NVAR]) {
  int64_t *lat[NVAR];
  for (int k = 0; k < NVAR; k++) lat[k] = calloc((size_t)seq_n, sizeof(int64_t));
  nng_ctx ctx;
  nng_aio *aio = NULL;
  if (nng_ctx_open(&ctx, cl[0]->sock) != 0 || nng_aio_alloc(&aio, NULL, NULL) != 0) die("ctx", 0);
  nng_aio_set_timeout(aio, 10000);
  int warm = seq_n / 10;
  for (int base = -warm; base < seq_n; base += CHUNK) {
    for (int k = 0; k < NVAR; k++) {
      if (only >= 0 && only != k) continue;
      for (int i = base; i < base + CHUNK && i < seq_n; i++) {
        int64_t t0 = now_ns();
        int rv = k == 0 ? raw_call(ctx, aio) : rpc_one(cl[k]->rpc, cl[k]->method);
        int64_t t1 = now_ns();
        if (rv != 0) die("sequential call failed", 0);
        if (i >= 0) lat[k][i] = t1 - t0;
      }
    }
  }
  nng_aio_free(aio);
  nng_ctx_close(ctx);
  for (int k = 0; k < NVAR; k++) {
    seq_res none = {1, 1, 1};
    out[k] = only < 0 || only == k ? summarize(lat[k], seq_n) : none;
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
  nng_ctx ctx;
  nng_aio *aio = NULL;
  if (a->cl->kind == 0) {
    if (nng_ctx_open(&ctx, a->cl->sock) != 0 || nng_aio_alloc(&aio, NULL, NULL) != 0) die("ctx", 0);
    nng_aio_set_timeout(aio, 10000);
  }
  pthread_barrier_wait(a->go); /* all threads start together */
  while (now_ns() < *a->end_ns) {
    int rv = a->cl->kind == 0 ? raw_call(ctx, aio) : rpc_one(a->cl->rpc, a->cl->method);
    if (rv == 0) {
      a->calls++;
    } else {
      a->errors++;
    }
  }
  if (aio != NULL) {
    nng_aio_free(aio);
    nng_ctx_close(ctx);
  }
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

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof(*v), cmp_d);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static long parse_arg(const char *s, long lo, long hi) {
  char *end = NULL;
  long v = strtol(s, &end, 10);
  if (end == s || *end != '\0' || v < lo || v > hi) {
    fprintf(stderr, "bench_rpc: bad number %s\n", s);
    exit(2);
  }
  return v;
}

int main(int argc, char **argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--payload") == 0) payload_len = (size_t)parse_arg(argv[i + 1], 1, 1 << 20);
    else if (strcmp(argv[i], "--seq") == 0) seq_n = (int)parse_arg(argv[i + 1], 10, 10000000);
    else if (strcmp(argv[i], "--secs") == 0) secs = (double)parse_arg(argv[i + 1], 1, 600);
    else if (strcmp(argv[i], "--rounds") == 0) rounds = (int)parse_arg(argv[i + 1], 1, 50);
    else if (strcmp(argv[i], "--inflight") == 0) inflight = (int)parse_arg(argv[i + 1], 1, MAX_INFLIGHT);
    else if (strcmp(argv[i], "--workers") == 0) workers = (int)parse_arg(argv[i + 1], 1, 1024);
    else if (strcmp(argv[i], "--only") == 0) {
      for (int k = 0; k < NVAR; k++) {
        if (strcmp(argv[i + 1], var_name[k]) == 0) only = k;
      }
      if (only < 0) {
        fprintf(stderr, "bench_rpc: --only raw|rpc|rpc-nb\n");
        return 2;
      }
    }
    else {
      fprintf(stderr, "usage: bench_rpc [--payload B] [--seq N] [--secs S] [--rounds R] [--inflight N] [--workers N] [--only raw|rpc|rpc-nb]\n");
      return 2;
    }
  }
  payload = malloc(payload_len);
  for (size_t i = 0; i < payload_len; i++) payload[i] = (unsigned char)(i * 31 + 7);

  int portp[2], stopp[2];
  if (pipe(portp) != 0 || pipe(stopp) != 0) die("pipe", 0);
  pid_t pid = fork();
  if (pid < 0) die("fork", 0);
  if (pid == 0) {
    close(portp[0]);
    close(stopp[1]);
    run_servers(portp[1], stopp[0]);
  }
  close(portp[1]);
  close(stopp[0]);
  int ports[2];
  if (read(portp[0], ports, sizeof(ports)) != (ssize_t)sizeof(ports)) die("server start", 0);

  char url[64];
  client raw = {.kind = 0};
  snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", ports[0]);
  int rv;
  if ((rv = nng_req0_open(&raw.sock)) != 0) die("req0", rv);
  nng_socket_set_ms(raw.sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
  if ((rv = nng_dial(raw.sock, url, NULL, 0)) != 0) die("dial raw", rv);

  client rpc = {.kind = 1, .method = METHOD};
  snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", ports[1]);
  if (rpc_client_new(url, NULL, &rpc.rpc) != ERR_OK ||
      rpc_client_wait_connected(rpc.rpc, 1, 5000) != ERR_OK) {
    die("rpc client", 0);
  }
  client nb = {.kind = 2, .rpc = rpc.rpc, .method = METHOD_NB};
  client *cl[NVAR] = {&raw, &rpc, &nb};

  double p50[NVAR][50], p99[NVAR][50], mean[NVAR][50], thr[NVAR][50];
  for (int r = 0; r < rounds; r++) {
    seq_res sr[NVAR];
    run_seq_all(cl, sr);
    for (int k = 0; k < NVAR; k++) {
      p50[k][r] = sr[k].p50_us;
      p99[k][r] = sr[k].p99_us;
      mean[k][r] = sr[k].mean_us;
    }
    for (int k = 0; k < NVAR; k++) thr[k][r] = only < 0 || only == k ? run_thr(cl[k]) : 1;
    fprintf(stderr, "round %d:", r + 1);
    for (int k = 0; k < NVAR; k++) {
      fprintf(stderr, " %s p50 %.1f us p99 %.1f us %.0f/s%s", var_name[k], sr[k].p50_us,
              sr[k].p99_us, thr[k][r], k + 1 < NVAR ? " |" : "\n");
    }
  }
  double m50[NVAR], m99[NVAR], mm[NVAR], mt[NVAR];
  for (int k = 0; k < NVAR; k++) {
    m50[k] = median(p50[k], rounds);
    m99[k] = median(p99[k], rounds);
    mm[k] = median(mean[k], rounds);
    mt[k] = median(thr[k], rounds);
  }

  printf("\nlibs/rpc vs raw nng req/rep: %zu-byte echo over tcp://127.0.0.1, "
         "server in a separate process, median of %d rounds\n",
         payload_len, rounds);
  printf("(sequential: %d calls per variant per round, interleaved; throughput: %d "
         "threads = %d in flight on one connection, %.0f s per round; rpc server "
         "workers=%d)\n\n",
         seq_n, inflight, inflight, secs, workers);
  printf("%-34s %10s %10s %10s %9s %9s\n", "", "raw nng", "rpc", "rpc-nb", "rpc/raw",
         "nb/raw");
  printf("%-34s %10.1f %10.1f %10.1f %9.3f %9.3f\n", "sequential p50 (us)", m50[0], m50[1],
         m50[2], m50[1] / m50[0], m50[2] / m50[0]);
  printf("%-34s %10.1f %10.1f %10.1f %9.3f %9.3f\n", "sequential p99 (us)", m99[0], m99[1],
         m99[2], m99[1] / m99[0], m99[2] / m99[0]);
  printf("%-34s %10.1f %10.1f %10.1f %9.3f %9.3f\n", "sequential mean (us)", mm[0], mm[1],
         mm[2], mm[1] / mm[0], mm[2] / mm[0]);
  char label[64];
  snprintf(label, sizeof(label), "throughput, %d in flight (calls/s)", inflight);
  printf("%-34s %10.0f %10.0f %10.0f %9.3f %9.3f\n", label, mt[0], mt[1], mt[2],
         mt[1] / mt[0], mt[2] / mt[0]);
  printf("\nRESULT raw_p50_us=%.1f rpc_p50_us=%.1f nb_p50_us=%.1f raw_p99_us=%.1f "
         "rpc_p99_us=%.1f nb_p99_us=%.1f raw_rps=%.0f rpc_rps=%.0f nb_rps=%.0f\n",
         m50[0], m50[1], m50[2], m99[0], m99[1], m99[2], mt[0], mt[1], mt[2]);

  rpc_client_free(rpc.rpc);
  nng_close(raw.sock);
  close(stopp[1]);
  int st;
  waitpid(pid, &st, 0);
  free(payload);
  return 0;
}
