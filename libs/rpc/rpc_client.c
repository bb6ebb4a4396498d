/*
 * rpc_client.c - the RPC client: one nng req0 socket dialling every
 * replica, one nng context per call, retries that are counted, bounded
 * and safe.
 *
 * Design. All endpoints of an address are dialled on the same req0
 * socket, so nng itself spreads requests over the connected pipes (it
 * sends on the first idle pipe and moves it to the back) and a replica
 * that dies simply loses its pipe. The address list, the re-resolution
 * of dns+tcp:// names every resolve_interval_ms and the reconciling of
 * the dialers with the resolved IPs (a failed lookup keeps the last good
 * answer, so a DNS blip does not disconnect a healthy service) are the
 * dialset's (dialset.h), shared with the bus subscriber.
 *
 * nng's REQ resend is disabled (NNG_OPT_REQ_RESENDTIME =
 * NNG_DURATION_INFINITE on the socket and on every context). In nng 1.5.2
 * that has two effects, both relied on here: nng never re-sends a request
 * by itself (it could not know whether the method is idempotent), and a
 * request whose pipe closes before the reply fails at once with
 * NNG_ECONNRESET instead of being silently re-queued.
 *
 * "No peer": req0 with no connected pipe accepts a send and queues it
 * until a pipe appears, which is indistinguishable from a slow server.
 * So the client counts connected pipes (the dialset does, with
 * nng_pipe_notify ADD_POST / REM_POST) and an attempt first waits at
 * most connect_wait_ms for the count to be non-zero; and the send
 * itself has the same timeout (in
 * req0 a context's send completes only when the message is handed to a
 * pipe). Either failure means the request surely never left this
 * process, so it is retried even for non-idempotent calls. After the
 * send, a lost connection or an expired per-attempt timeout leave the
 * request's fate unknown: only idempotent calls retry then.
 *
 * Outliers: every reply is reported to the dialset with the pipe it came
 * on (an UNAVAILABLE answer as a failure, anything else as a success), so
 * a replica that keeps answering UNAVAILABLE (its database is gone, it
 * is overloaded) is ejected for a while and re-admitted after
 * (dialset.h, "Outlier ejection"); each attempt first lets the dialset
 * re-dial what is due. A call with a timed-out attempt reports it once
 * the call is over (dialset_report_timeout: the replicas silent since
 * that attempt was sent, while another answered, are blamed), which is
 * how a hung replica - connected, never answering - is ejected.
 *
 * Contexts (nng_ctx + nng_aio) are pooled: a call takes one, uses it for
 * all its attempts (a new send on a context abandons the previous
 * request, so a late reply to a timed-out attempt is discarded by nng)
 * and returns it.
 */
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"
#include "libs/obs/metrics.h"
#include "libs/rpc/dialset.h"
#include "libs/rpc/rpc.h"
#include "libs/rpc/rpc_internal.h"
#include "proto/rpc/v1/rpc.pb-c.h"

#define MAX_DIALERS 256
#define METHOD_CACHE 512     /* slots; power of two */
#define METHOD_CACHE_MAX 256 /* distinct methods before "_other" */
#define OTHER_METHOD_LABEL "_other"

typedef struct call_ctx {
  nng_ctx ctx;
  nng_aio *aio;
  struct call_ctx *next;
} call_ctx;

typedef struct method_metrics {
  char *method;
  metrics_child *_Atomic calls[RPC_CODE_COUNT];
  metrics_child *retries;
  metrics_child *duration;
} method_metrics;

struct rpc_client {
  rpc_client_options opt;
  dialset_outlier outlier;
  nng_socket sock;
  dialset *ds; /* the address: dialers, re-resolution, connected pipes */

  pthread_mutex_t pool_mu;
  call_ctx *pool;

  pthread_mutex_t cache_mu;
  method_metrics *_Atomic cache[METHOD_CACHE];
  size_t ncache;
  method_metrics other;
};

typedef struct result_impl {
  rpc_result pub;
  Rpc__V1__Response *resp; /* unpacked reply, or NULL for local */
  rpc_violation *violations;
} result_impl;

static metrics_family *fam_calls, *fam_retries, *fam_duration;
static pthread_once_t fam_once = PTHREAD_ONCE_INIT;

static void families_init(void) {
  static const char *const method_code[] = {"method", "code"};
  static const char *const method[] = {"method"};
  fam_calls = metrics_counter("rpc_client_calls_total",
                              "RPC calls made, by method and final code.", 2,
                              method_code);
  fam_retries =
      metrics_counter("rpc_client_retries_total",
                      "RPC attempts after the first, by method.", 1, method);
  fam_duration = metrics_histogram(
      "rpc_client_duration_seconds",
      "Whole RPC call time including retries, by method.", 1, method, NULL, 0);
}

/* ---------------------------------------------------------------- */
/* Small helpers                                                      */
/* ---------------------------------------------------------------- */

/* Milliseconds from now until deadline_ns, rounded up, at least 1. */
static nng_duration ms_until(int64_t deadline_ns) {
  int64_t left = deadline_ns - time_mono_ns();
  if (left <= 0) return 1;
  int64_t ms = (left + 999999) / 1000000;
  if (ms > INT32_MAX) ms = INT32_MAX;
  return (nng_duration)ms;
}

void rpc_client_options_init(rpc_client_options *o) {
  memset(o, 0, sizeof(*o));
  o->default_deadline_ms = 5000;
  o->max_attempts = 4;
  o->backoff_base_ms = 20;
  o->backoff_max_ms = 1000;
  o->connect_wait_ms = 1000;
  o->resolve_interval_ms = 5000;
  o->reconnect_min_ms = 100;
  o->reconnect_max_ms = 2000;
  o->max_recv_bytes = RPC_DEFAULT_MAX_RECV_BYTES;
  o->max_send_bytes = RPC_DEFAULT_MAX_RECV_BYTES;
  o->eject_after = 5;
  o->eject_base_ms = 1000;
  o->eject_max_ms = 30000;
}

/* ---------------------------------------------------------------- */
/* Metrics cache                                                      */
/* ---------------------------------------------------------------- */

static void mm_init(method_metrics *m) {
  const char *labels[1] = {m->method};
  m->retries = metrics_child_get(fam_retries, labels);
  m->duration = metrics_child_get(fam_duration, labels);
}

static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s != '\0'; s++) {
    h ^= (unsigned char)*s;
    h *= 1099511628211ull;
  }
  return h;
}

/* The metric children for method; lock-free once the method was seen. */
static method_metrics *mm_get(rpc_client *c, const char *method) {
  size_t mask = METHOD_CACHE - 1;
  size_t start = hash_str(method) & mask;
  for (size_t i = start, n = 0; n < METHOD_CACHE; i = (i + 1) & mask, n++) {
    method_metrics *m =
        atomic_load_explicit(&c->cache[i], memory_order_acquire);
    if (m == NULL) break;
    if (strcmp(m->method, method) == 0) return m;
  }
  method_metrics *found = &c->other;
  pthread_mutex_lock(&c->cache_mu);
  for (size_t i = start, n = 0; n < METHOD_CACHE; i = (i + 1) & mask, n++) {
    method_metrics *m =
        atomic_load_explicit(&c->cache[i], memory_order_relaxed);
    if (m != NULL) {
      if (strcmp(m->method, method) == 0) {
        found = m;
        break;
      }
      continue;
    }
    if (c->ncache >= METHOD_CACHE_MAX) break;
    m = calloc(1, sizeof(*m));
    if (m == NULL) break;
    m->method = strdup(method);
    if (m->method == NULL) {
      free(m);
      break;
    }
    mm_init(m);
    c->ncache++;
    atomic_store_explicit(&c->cache[i], m, memory_order_release);
    found = m;
    break;
  }
  pthread_mutex_unlock(&c->cache_mu);
  return found;
}

static metrics_child *mm_calls(method_metrics *m, int code) {
  metrics_child *ch =
      atomic_load_explicit(&m->calls[code], memory_order_acquire);
  if (ch == NULL) {
    const char *labels[2] = {m->method, rpc_code_name(code)};
    ch = metrics_child_get(fam_calls, labels);
    atomic_store_explicit(&m->calls[code], ch, memory_order_release);
  }
  return ch;
}

/* ---------------------------------------------------------------- */
/* Connected replicas (counted by the dialset)                        */
/* ---------------------------------------------------------------- */

int rpc_client_connected(rpc_client *c) {
  return c != NULL ? (int)dialset_connected(c->ds) : 0;
}

int rpc_client_wait_connected(rpc_client *c, int n, uint32_t timeout_ms) {
  return c != NULL ? dialset_wait_connected_ms(c->ds, n, timeout_ms)
                   : ERR_INVAL;
}

/* ---------------------------------------------------------------- */
/* New / free                                                         */
/* ---------------------------------------------------------------- */

int rpc_client_new(const char *address, const rpc_client_options *opts,
                   rpc_client **out) {
  if (out == NULL) return ERR_INVAL;
  *out = NULL;
  rpc_client_options o;
  rpc_client_options_init(&o);
  if (opts != NULL) {
    if (opts->max_recv_bytes > (size_t)INT32_MAX ||
        opts->reconnect_min_ms > INT32_MAX ||
        opts->reconnect_max_ms > INT32_MAX || opts->max_attempts > 100) {
      return ERR_INVAL;
    }
    if (opts->default_deadline_ms)
      o.default_deadline_ms = opts->default_deadline_ms;
    if (opts->max_attempts) o.max_attempts = opts->max_attempts;
    if (opts->backoff_base_ms) o.backoff_base_ms = opts->backoff_base_ms;
    if (opts->backoff_max_ms) o.backoff_max_ms = opts->backoff_max_ms;
    if (opts->connect_wait_ms) o.connect_wait_ms = opts->connect_wait_ms;
    if (opts->resolve_interval_ms)
      o.resolve_interval_ms = opts->resolve_interval_ms;
    if (opts->reconnect_min_ms) o.reconnect_min_ms = opts->reconnect_min_ms;
    if (opts->reconnect_max_ms) o.reconnect_max_ms = opts->reconnect_max_ms;
    if (opts->max_recv_bytes) o.max_recv_bytes = opts->max_recv_bytes;
    if (opts->max_send_bytes) o.max_send_bytes = opts->max_send_bytes;
    if (opts->eject_after) o.eject_after = opts->eject_after;
    if (opts->eject_base_ms) o.eject_base_ms = opts->eject_base_ms;
    if (opts->eject_max_ms) o.eject_max_ms = opts->eject_max_ms;
    o.attempt_timeout_ms = opts->attempt_timeout_ms;
    o.credential = opts->credential;
    o.credential_arg = opts->credential_arg;
  }
  if (o.backoff_base_ms > o.backoff_max_ms)
    o.backoff_base_ms = o.backoff_max_ms;

  /* The address: every replica dialled with the client's limits. */
  const dialset_options dso = {.who = "rpc client",
                               .max_dialers = MAX_DIALERS,
                               .recv_max_bytes = o.max_recv_bytes,
                               .resolve_interval_ms = o.resolve_interval_ms,
                               .reconnect_min_ms = o.reconnect_min_ms,
                               .reconnect_max_ms = o.reconnect_max_ms};
  dialset *ds = NULL;
  int rc = dialset_new(address, &dso, &ds); /* ERR_INVAL (syntax), ERR_NOMEM */
  if (rc != ERR_OK) return rc;
  if (sodium_init() < 0) {
    dialset_free(ds);
    return ERR_INTERNAL;
  }
  pthread_once(&fam_once, families_init);

  rpc_client *c = calloc(1, sizeof(*c));
  if (c == NULL) {
    dialset_free(ds);
    return ERR_NOMEM;
  }
  c->opt = o;
  c->outlier = (dialset_outlier){
      .failures = o.eject_after == UINT32_MAX ? 0 : o.eject_after,
      .base_ms = o.eject_base_ms,
      .max_ms =
          o.eject_max_ms < o.eject_base_ms ? o.eject_base_ms : o.eject_max_ms};
  c->ds = ds;
  c->other.method = strdup(OTHER_METHOD_LABEL);
  if (c->other.method == NULL) {
    dialset_free(ds);
    free(c);
    return ERR_NOMEM;
  }
  mm_init(&c->other);
  pthread_mutex_init(&c->pool_mu, NULL);
  pthread_mutex_init(&c->cache_mu, NULL);

  if (nng_req0_open(&c->sock) != 0) goto err_nosock;
  if (nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME,
                        NNG_DURATION_INFINITE) != 0 ||
      nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, o.max_recv_bytes) != 0 ||
      nng_socket_set_ms(c->sock, NNG_OPT_RECONNMINT,
                        (nng_duration)o.reconnect_min_ms) != 0 ||
      nng_socket_set_ms(c->sock, NNG_OPT_RECONNMAXT,
                        (nng_duration)o.reconnect_max_ms) != 0) {
    goto err;
  }
  /* Resolves the names once and dials every address; then the resolver
   * keeps dns+tcp names current. */
  if (dialset_attach(ds, c->sock) != ERR_OK) goto err;
  if (dialset_start_resolver(ds) != ERR_OK) goto err;
  *out = c;
  return ERR_OK;

err:
  dialset_stop(ds);
  nng_close(c->sock);
err_nosock:
  dialset_free(ds);
  free(c->other.method);
  pthread_mutex_destroy(&c->pool_mu);
  pthread_mutex_destroy(&c->cache_mu);
  free(c);
  return ERR_INTERNAL;
}

void rpc_client_free(rpc_client *c) {
  if (c == NULL) return;
  dialset_stop(c->ds); /* no more dialling on a socket about to close */
  /* Closing the socket closes every context, dialer and pipe. */
  nng_close(c->sock);
  dialset_free(c->ds);
  call_ctx *cc = c->pool;
  while (cc != NULL) {
    call_ctx *next = cc->next;
    nng_aio_free(cc->aio);
    free(cc);
    cc = next;
  }
  for (size_t i = 0; i < METHOD_CACHE; i++) {
    method_metrics *m = atomic_load(&c->cache[i]);
    if (m != NULL) {
      free(m->method);
      free(m);
    }
  }
  free(c->other.method);
  pthread_mutex_destroy(&c->pool_mu);
  pthread_mutex_destroy(&c->cache_mu);
  free(c);
}

/* ---------------------------------------------------------------- */
/* Calls                                                              */
/* ---------------------------------------------------------------- */

static call_ctx *ctx_take(rpc_client *c) {
  pthread_mutex_lock(&c->pool_mu);
  call_ctx *cc = c->pool;
  if (cc != NULL) c->pool = cc->next;
  pthread_mutex_unlock(&c->pool_mu);
  if (cc != NULL) return cc;

  cc = calloc(1, sizeof(*cc));
  if (cc == NULL) return NULL;
  if (nng_aio_alloc(&cc->aio, NULL, NULL) != 0) {
    free(cc);
    return NULL;
  }
  if (nng_ctx_open(&cc->ctx, c->sock) != 0) {
    nng_aio_free(cc->aio);
    free(cc);
    return NULL;
  }
  /* The socket value is copied into new contexts; set it again so the
   * no-resend guarantee does not depend on that. */
  (void)nng_ctx_set_ms(cc->ctx, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
  return cc;
}

static void ctx_give(rpc_client *c, call_ctx *cc) {
  pthread_mutex_lock(&c->pool_mu);
  cc->next = c->pool;
  c->pool = cc;
  pthread_mutex_unlock(&c->pool_mu);
}

/* How an attempt ended. */
enum attempt_end {
  END_REPLY,      /* got a reply (resp set) */
  END_NOT_SENT,   /* surely not processed: retry is always safe */
  END_MAYBE_SENT, /* fate unknown: retry only if idempotent */
  END_DEADLINE,   /* the call's deadline ran out */
  END_CLOSED,     /* client closing */
  END_NOMEM,
};

typedef struct attempt_out {
  enum attempt_end end;
  Rpc__V1__Response *resp;
  int code;        /* for non-reply ends */
  const char *why; /* static message for non-reply ends */
  int64_t sent_ns; /* when a pipe took the request (0: never) */
  bool timed_out;  /* sent, then no reply within the attempt's time */
} attempt_out;

static void attempt(rpc_client *c, call_ctx *cc, Rpc__V1__Request *req,
                    int64_t deadline_ns, int64_t attempt_deadline_ns,
                    attempt_out *ao) {
  ao->resp = NULL;
  ao->sent_ns = 0;
  ao->timed_out = false;
  dialset_tick(c->ds); /* ejected replicas whose time is up: dial again */

  /* 1. Some replica connected? (see the file comment on "no peer") */
  int64_t wait_until =
      time_mono_ns() + (int64_t)c->opt.connect_wait_ms * 1000000;
  if (wait_until > deadline_ns) wait_until = deadline_ns;
  if (!dialset_wait_connected(c->ds, 1, wait_until)) {
    ao->end = time_mono_ns() >= deadline_ns ? END_DEADLINE : END_NOT_SENT;
    ao->code =
        ao->end == END_DEADLINE ? RPC_DEADLINE_EXCEEDED : RPC_UNAVAILABLE;
    ao->why = "no server connected";
    return;
  }

  /* 2. Pack straight into the nng message. */
  int64_t left_ms = (deadline_ns - time_mono_ns()) / 1000000;
  req->deadline_ms =
      left_ms < 1 ? 1 : (left_ms > UINT32_MAX ? UINT32_MAX : (uint32_t)left_ms);
  size_t len = rpc__v1__request__get_packed_size(req);
  nng_msg *msg = NULL;
  if (nng_msg_alloc(&msg, len) != 0) {
    ao->end = END_NOMEM;
    return;
  }
  rpc__v1__request__pack(req, nng_msg_body(msg));

  /* 3. Send: completes when a pipe took the message. */
  nng_aio_set_msg(cc->aio, msg);
  int64_t send_until =
      time_mono_ns() + (int64_t)c->opt.connect_wait_ms * 1000000;
  if (send_until > deadline_ns) send_until = deadline_ns;
  nng_aio_set_timeout(cc->aio, ms_until(send_until));
  nng_ctx_send(cc->ctx, cc->aio);
  nng_aio_wait(cc->aio);
  int rv = nng_aio_result(cc->aio);
  if (rv != 0) {
    nng_msg_free(nng_aio_get_msg(cc->aio));
    nng_aio_set_msg(cc->aio, NULL);
    if (rv == NNG_ECLOSED) {
      ao->end = END_CLOSED;
      ao->code = RPC_CANCELLED;
      ao->why = "client closed";
    } else {
      ao->end = time_mono_ns() >= deadline_ns ? END_DEADLINE : END_NOT_SENT;
      ao->code =
          ao->end == END_DEADLINE ? RPC_DEADLINE_EXCEEDED : RPC_UNAVAILABLE;
      ao->why = "could not send to any server";
    }
    return;
  }

  /* 4. Receive. */
  ao->sent_ns = time_mono_ns();
  nng_aio_set_timeout(cc->aio, ms_until(attempt_deadline_ns));
  nng_ctx_recv(cc->ctx, cc->aio);
  nng_aio_wait(cc->aio);
  rv = nng_aio_result(cc->aio);
  if (rv == 0) {
    nng_msg *rep = nng_aio_get_msg(cc->aio);
    nng_aio_set_msg(cc->aio, NULL);
    nng_pipe pipe = nng_msg_get_pipe(rep);
    ao->resp =
        rpc__v1__response__unpack(NULL, nng_msg_len(rep), nng_msg_body(rep));
    nng_msg_free(rep);
    dialset_report(c->ds, pipe,
                   ao->resp != NULL && (int)ao->resp->code != RPC_UNAVAILABLE,
                   &c->outlier);
    if (ao->resp == NULL) {
      /* Something answered that is not our protocol: do not retry into
       * it blindly. */
      ao->end = END_REPLY;
      ao->code = RPC_INTERNAL;
      ao->why = "undecodable reply";
      return;
    }
    ao->end = END_REPLY;
    ao->code =
        rpc_code_valid((int)ao->resp->code) ? (int)ao->resp->code : RPC_UNKNOWN;
    return;
  }
  if (rv == NNG_ECLOSED) {
    ao->end = END_CLOSED;
    ao->code = RPC_CANCELLED;
    ao->why = "client closed";
  } else if (rv == NNG_ETIMEDOUT && time_mono_ns() >= deadline_ns) {
    ao->end = END_DEADLINE;
    ao->code = RPC_DEADLINE_EXCEEDED;
    ao->why = "deadline exceeded";
    ao->timed_out = true;
  } else if (rv == NNG_ETIMEDOUT) {
    ao->end = END_MAYBE_SENT;
    ao->code = RPC_DEADLINE_EXCEEDED;
    ao->why = "attempt timed out";
    ao->timed_out = true;
  } else {
    ao->end = END_MAYBE_SENT;
    ao->code = RPC_UNAVAILABLE;
    ao->why = "connection to server lost";
  }
}

/* Whether the call may be sent again after this attempt (rpc.h,
 * "retried ... only when that is safe"). A keyed call (idempotency key)
 * whose earlier attempt may still be running on a replica that went away
 * meets that twin as ABORTED ("a request with this key is still
 * running": the twin holds the key until its transaction ends, which a
 * dead replica's database session does within moments): retrying then
 * reaches either the twin's saved answer or a free key. ABORTED without
 * such a twin is another client's request and is answered as is. */
static bool retry_safe(const attempt_out *ao, bool idempotent, bool keyed,
                       bool own_twin) {
  switch (ao->end) {
  case END_NOT_SENT:
    return true;
  case END_MAYBE_SENT:
    return idempotent;
  case END_REPLY:
    if (!idempotent || ao->resp == NULL) return false;
    if (ao->code == RPC_UNAVAILABLE) return true;
    return ao->code == RPC_ABORTED && keyed && own_twin;
  default:
    return false;
  }
}

static result_impl *result_local(int code, const char *why) {
  result_impl *ri = calloc(1, sizeof(*ri));
  if (ri == NULL) return NULL;
  ri->pub.code = code;
  ri->pub.message = why;
  ri->pub.violations = NULL;
  ri->pub.payload = (const uint8_t *)"";
  return ri;
}

static result_impl *result_from_reply(Rpc__V1__Response *resp, int code) {
  result_impl *ri = calloc(1, sizeof(*ri));
  if (ri == NULL) return NULL;
  if (resp->n_violations > 0) {
    size_t nv = resp->n_violations;
    ri->violations = calloc(nv, sizeof(*ri->violations));
    if (ri->violations == NULL) {
      free(ri);
      return NULL;
    }
    for (size_t i = 0; i < nv; i++) {
      const Rpc__V1__FieldViolation *v = resp->violations[i];
      ri->violations[i].field = v != NULL && v->field != NULL ? v->field : "";
      ri->violations[i].description =
          v != NULL && v->description != NULL ? v->description : "";
    }
    ri->pub.nviolations = nv;
  }
  ri->resp = resp;
  ri->pub.priv_ = resp;
  ri->pub.code = code;
  ri->pub.message = resp->message != NULL ? resp->message : "";
  ri->pub.violations = ri->violations;
  ri->pub.payload =
      resp->payload.data != NULL ? resp->payload.data : (const uint8_t *)"";
  ri->pub.payload_len = resp->payload.len;
  ri->pub.retry_after_ms = resp->retry_after_ms;
  return ri;
}

void rpc_result_free(rpc_result *r) {
  if (r == NULL) return;
  result_impl *ri = (result_impl *)r;
  if (ri->resp != NULL) rpc__v1__response__free_unpacked(ri->resp, NULL);
  free(ri->violations);
  free(ri);
}

int rpc_client_call(rpc_client *c, const char *method, const void *reqbuf,
                    size_t req_len, const rpc_call_options *opts,
                    rpc_result **out) {
  if (out == NULL) return ERR_INVAL;
  *out = NULL;
  if (c == NULL || method == NULL || (reqbuf == NULL && req_len > 0)) {
    return ERR_INVAL;
  }
  size_t mlen = strlen(method);
  if (mlen == 0 || mlen > RPC_MAX_METHOD_LEN ||
      !str_is_printable(method, mlen)) {
    return ERR_INVAL;
  }
  if (req_len > c->opt.max_send_bytes) return ERR_TOOBIG;
  static const rpc_call_options defaults = RPC_CALL_OPTIONS_INIT;
  if (opts == NULL) opts = &defaults;

  int64_t start_ns = time_mono_ns();
  uint32_t budget =
      opts->deadline_ms != 0 ? opts->deadline_ms : c->opt.default_deadline_ms;
  int64_t deadline_ns = start_ns + (int64_t)budget * 1000000;
  method_metrics *mm = mm_get(c, method);

  char request_id[UUID_STR_LEN + 1];
  const char *rid = opts->request_id;
  if (rid == NULL || rid[0] == '\0') {
    uuid_v7_str(request_id);
    rid = request_id;
  }

  Rpc__V1__Request req = RPC__V1__REQUEST__INIT;
  req.method = (char *)method;
  req.payload.data = (uint8_t *)reqbuf;
  req.payload.len = req_len;
  req.request_id = (char *)rid;
  req.token = (char *)(opts->token != NULL ? opts->token : "");
  req.tenant_id = (char *)(opts->tenant_id != NULL ? opts->tenant_id : "");
  req.idempotency_key =
      (char *)(opts->idempotency_key != NULL ? opts->idempotency_key : "");
  char credential[RPC_MAX_CREDENTIAL_LEN + 1] = "";
  if (c->opt.credential != NULL) {
    int crc = c->opt.credential(c->opt.credential_arg, method, credential,
                                sizeof credential);
    if (crc != ERR_OK) return crc;
  }
  req.service_token = credential;

  call_ctx *cc = ctx_take(c);
  if (cc == NULL) return ERR_NOMEM;

  attempt_out ao = {0};
  uint32_t n = 0;
  bool keyed = req.idempotency_key[0] != '\0';
  /* An earlier attempt may still run somewhere: ours, or one the caller
   * knows of (maybe_twin). */
  bool own_twin = keyed && opts->maybe_twin;
  /* The client's default per-attempt timeout is for reads: a keyed write
   * that outlived it would be sent again while the first attempt still
   * works on it (the twin then waits, or takes the key's claim over), so
   * only a call that asks for one itself gets it. */
  uint32_t per_try = opts->attempt_timeout_ms != 0 ? opts->attempt_timeout_ms
                     : keyed                       ? 0
                                                   : c->opt.attempt_timeout_ms;
  int64_t timed_out_sent = 0; /* the first timed-out attempt's send */
  for (;;) {
    n++;
    req.attempt = n;
    int64_t attempt_deadline = deadline_ns;
    if (opts->idempotent && per_try != 0) {
      int64_t a = time_mono_ns() + (int64_t)per_try * 1000000;
      if (a < attempt_deadline) attempt_deadline = a;
    }
    attempt(c, cc, &req, deadline_ns, attempt_deadline, &ao);
    if (ao.timed_out && timed_out_sent == 0) timed_out_sent = ao.sent_ns;

    bool retry = retry_safe(&ao, opts->idempotent, keyed, own_twin);
    /* Our twin still running is waited for until the deadline, not for
     * max_attempts only: its transaction may take longer than a few
     * short backoffs (row locks under load). */
    bool twin_wait = retry && ao.end == END_REPLY && ao.code == RPC_ABORTED;
    if (ao.end == END_MAYBE_SENT) own_twin = true;
    if (!retry || (n >= c->opt.max_attempts && !twin_wait)) break;

    /* Full jitter: uniform in [0, min(max, base * 2^(n-1))]. */
    uint64_t cap = (uint64_t)c->opt.backoff_base_ms
                   << (n - 1 < 20 ? n - 1 : 20);
    if (cap > c->opt.backoff_max_ms) cap = c->opt.backoff_max_ms;
    uint32_t sleep_for = randombytes_uniform((uint32_t)cap + 1);
    if (time_mono_ns() + (int64_t)sleep_for * 1000000 >= deadline_ns) break;
    if (ao.resp != NULL) {
      rpc__v1__response__free_unpacked(ao.resp, NULL);
      ao.resp = NULL;
    }
    metrics_inc(mm->retries);
    if (sleep_for > 0) time_sleep_ms(sleep_for);
  }
  ctx_give(c, cc);
  /* Blamed once the call is over, when the retry's answer (or other
   * calls') shows which replicas were alive meanwhile. */
  if (timed_out_sent != 0)
    dialset_report_timeout(c->ds, timed_out_sent, &c->outlier);

  result_impl *ri;
  if (ao.end == END_REPLY && ao.resp != NULL) {
    ri = result_from_reply(ao.resp, ao.code);
    if (ri == NULL) rpc__v1__response__free_unpacked(ao.resp, NULL);
  } else if (ao.end == END_NOMEM) {
    ri = NULL;
  } else {
    ri = result_local(ao.code, ao.why);
  }
  if (ri == NULL) return ERR_NOMEM;
  ri->pub.attempts = n;
  str_copy(ri->pub.request_id, rid, sizeof(ri->pub.request_id));

  metrics_inc(mm_calls(mm, ri->pub.code));
  metrics_observe(mm->duration, (double)(time_mono_ns() - start_ns) / 1e9);
  *out = &ri->pub;
  return ERR_OK;
}

int rpc_client_call_message(rpc_client *c, const char *method,
                            const ProtobufCMessage *msg,
                            const rpc_call_options *opts, rpc_result **out) {
  if (out == NULL) return ERR_INVAL;
  *out = NULL;
  if (c == NULL || msg == NULL) return ERR_INVAL;
  size_t len = protobuf_c_message_get_packed_size(msg);
  if (len > c->opt.max_send_bytes) return ERR_TOOBIG;
  uint8_t *buf = malloc(len > 0 ? len : 1);
  if (buf == NULL) return ERR_NOMEM;
  protobuf_c_message_pack(msg, buf);
  int rc = rpc_client_call(c, method, buf, len, opts, out);
  free(buf);
  return rc;
}
