/*
 * rpc_server.c - the RPC server: one nng rep0 socket, a fixed pool of
 * worker threads, a handler table keyed by method name.
 *
 * Design. The socket has `workers + queue_depth` nng contexts ("slots"),
 * each with its own asynchronous nng_aio, as in nng's demo/async/server.c.
 * A slot's receive completes on one of nng's callback threads; the
 * callback does no work beyond stamping the arrival time and handing the
 * slot to a FIFO that the worker threads drain. The worker decodes the
 * envelope, runs the handler (which may block on a database: that is why
 * handlers never run on nng's callback threads, which are shared by every
 * socket in the process), packs the reply and starts the asynchronous
 * send on the slot's context; the send's completion re-arms the receive.
 * So N workers means exactly N handlers at once, and at most queue_depth
 * requests wait for a worker; beyond that nng stops reading from the
 * connections (back-pressure in TCP, not in our memory).
 *
 * The alternative - one thread per context doing a synchronous receive -
 * costs the same one thread wake-up per request, but a request would only
 * be "received" when a worker is free, so its waiting time could not be
 * measured. With the hand-off, the arrival time is known, so a request
 * that waited past its deadline is answered DEADLINE_EXCEEDED without
 * running the handler, and a handler's time left includes the wait.
 *
 * The hand-off costs one thread wake-up per request when workers are
 * idle, which on a small machine is most of this layer's cost (see
 * docs/PERFORMANCE.md). Methods registered as non-blocking skip it: the
 * callback reads the method name from the first envelope field without
 * decoding, and if that method promised never to block, processes the
 * request right there with the slot's own arena and sends the reply.
 *
 * Per-request memory comes from the worker's arena (rpc_internal.h): the
 * request is unpacked into it, the reply's strings and payload live in
 * it, and it is reset after the reply is packed into the nng message.
 * Metric children are looked up once per (method, code) and cached in
 * the handler table, so the hot path neither allocates nor locks for
 * metrics.
 *
 * Close: `closing` is set (no slot re-arms its receive after that) and
 * every slot still waiting to receive is cancelled; requests already received
 * run to completion and their replies are sent; when every slot is idle (or
 * close_grace_ms passed) the workers stop and the socket closes.
 */
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "libs/obs/log.h"
#include "libs/obs/metrics.h"
#include "libs/rpc/rpc.h"
#include "libs/rpc/rpc_internal.h"
#include "proto/rpc/v1/rpc.pb-c.h"

#define ARENA_BLOCK (16 * 1024)
#define MAX_WORKERS 1024
#define MAX_QUEUE 4096
#define UNKNOWN_METHOD_LABEL "_unknown"

/* One registered method and its cached metric children. */
typedef struct handler_entry {
  char *method;
  size_t method_len;
  rpc_handler_fn fn;
  void *arg;
  bool nonblocking; /* runs on nng's callback thread (register_nonblocking) */
  metrics_child *_Atomic calls[RPC_CODE_COUNT]; /* filled on first use */
  metrics_child *duration;
  metrics_child *late;
} handler_entry;

enum slot_state { SLOT_IDLE, SLOT_RECV, SLOT_QUEUED, SLOT_SEND };

/* Per-request memory of whoever processes a request: each worker has
 * one, and so does each slot when non-blocking methods are registered
 * (those run on nng's thread, one request per slot at a time). */
typedef struct worker_state worker_state;

typedef struct slot {
  rpc_server *srv;
  nng_ctx ctx;
  nng_aio *aio;
  /* The slot is owned by one party at a time (nng while RECV/SEND, the
   * queue, then one worker), so state needs no lock on the hot path.
   * `mu` only orders "arm a receive" against close's "cancel pending
   * receives" (see slot_rearm). */
  pthread_mutex_t mu;
  _Atomic int state; /* enum slot_state */
  bool mu_init;
  nng_msg *msg;     /* the request, while QUEUED */
  worker_state *ws; /* for non-blocking methods; NULL if none */
  int64_t arrival_ns;
  struct slot *next; /* FIFO link */
} slot;

struct rpc_server {
  rpc_server_options opt;

  /* Handler table: open addressing, power-of-two size, immutable after
   * start. */
  handler_entry **table;
  size_t table_cap;
  size_t nhandlers;
  handler_entry unknown; /* metrics for unregistered/undecodable */
  atomic_int connected;  /* pipes (client connections) open now */
  rpc_guard_fn guard;    /* runs before every handler; may be NULL */
  void *guard_arg;
  bool any_nonblocking; /* some method runs inline: slots get state */

  nng_socket sock;
  bool sock_open;
  nng_listener listener;
  int port;
  bool started; /* rpc_server_start was called */
  bool running; /* ... and succeeded: slots armed, workers up */

  slot *slots;
  size_t nslots;
  pthread_t *threads;
  size_t nthreads;

  /* mu guards the queue, the worker counts and idle_slots. */
  pthread_mutex_t mu;
  pthread_cond_t work_cv; /* queue non-empty or stopping */
  pthread_cond_t idle_cv; /* a slot became idle (close waits on it) */
  slot *q_head, *q_tail;
  size_t q_len;
  int n_sleeping; /* workers in pthread_cond_wait */
  _Atomic bool closing;
  bool stop_workers;
  size_t idle_slots;

  metrics_child *in_flight;
  metrics_child *connections;

  _Atomic uint64_t st_received, st_handled, st_expired, st_late, st_unknown,
      st_malformed, st_send_failed;
};

struct rpc_reply {
  int code;
  char message[RPC_MAX_MESSAGE_LEN + 1];
  Rpc__V1__FieldViolation viol[RPC_MAX_VIOLATIONS];
  Rpc__V1__FieldViolation *violp[RPC_MAX_VIOLATIONS];
  size_t nviol;
  uint32_t retry_after_ms;
  uint8_t *payload;
  size_t payload_len;
  size_t max_payload;
  rpc_arena *arena;
};

struct worker_state {
  rpc_arena arena;
  rpc_reply reply;
};

static metrics_family *fam_calls, *fam_duration, *fam_in_flight, *fam_late,
    *fam_connections;
static pthread_once_t fam_once = PTHREAD_ONCE_INIT;

static void families_init(void) {
  static const char *const method_code[] = {"method", "code"};
  static const char *const method[] = {"method"};
  fam_calls = metrics_counter("rpc_server_calls_total",
                              "RPC calls handled, by method and status code.",
                              2, method_code);
  fam_duration = metrics_histogram(
      "rpc_server_duration_seconds",
      "Time from a request's arrival to its reply, by method.", 1, method, NULL,
      0);
  fam_in_flight = metrics_gauge("rpc_server_in_flight",
                                "RPC handlers running now.", 0, NULL);
  fam_connections = metrics_gauge(
      "rpc_server_connections",
      "Client connections open now (one per client process and socket).", 0,
      NULL);
  fam_late = metrics_counter(
      "rpc_server_late_total",
      "Handlers that finished after their call's deadline, by method.", 1,
      method);
}

static void entry_metrics_init(handler_entry *e) {
  const char *labels[1] = {e->method};
  e->duration = metrics_child_get(fam_duration, labels);
  e->late = metrics_child_get(fam_late, labels);
}

static metrics_child *entry_calls(handler_entry *e, int code) {
  metrics_child *c =
      atomic_load_explicit(&e->calls[code], memory_order_acquire);
  if (c == NULL) {
    /* Two workers may race here; both get the same child. */
    const char *labels[2] = {e->method, rpc_code_name(code)};
    c = metrics_child_get(fam_calls, labels);
    atomic_store_explicit(&e->calls[code], c, memory_order_release);
  }
  return c;
}

/* ---------------------------------------------------------------- */
/* Reply                                                              */
/* ---------------------------------------------------------------- */

static void reply_reset(rpc_reply *r, rpc_arena *arena, size_t max_payload) {
  r->code = RPC_OK;
  r->message[0] = '\0';
  r->nviol = 0;
  r->retry_after_ms = 0;
  r->payload = NULL;
  r->payload_len = 0;
  r->max_payload = max_payload;
  r->arena = arena;
}

void rpc_reply_status(rpc_reply *r, int code, const char *fmt, ...) {
  if (r == NULL) return;
  r->code = rpc_code_valid(code) ? code : RPC_UNKNOWN;
  if (fmt == NULL) {
    r->message[0] = '\0';
    return;
  }
  va_list ap;
  va_start(ap, fmt);
  int w = vsnprintf(r->message, sizeof(r->message), fmt, ap);
  va_end(ap);
  if (w < 0) r->message[0] = '\0';
}

void rpc_reply_retry_after(rpc_reply *r, uint32_t ms) {
  if (r != NULL) r->retry_after_ms = ms;
}

int rpc_reply_add_violation(rpc_reply *r, const char *field,
                            const char *description) {
  if (r == NULL) return ERR_INVAL;
  if (r->nviol >= RPC_MAX_VIOLATIONS) return ERR_TOOBIG;
  char *f = rpc_arena_strdup(r->arena, field);
  char *d = rpc_arena_strdup(r->arena, description);
  if (f == NULL || d == NULL) return ERR_NOMEM;
  Rpc__V1__FieldViolation *v = &r->viol[r->nviol];
  rpc__v1__field_violation__init(v);
  v->field = f;
  v->description = d;
  r->violp[r->nviol] = v;
  r->nviol++;
  return ERR_OK;
}

int rpc_reply_set_payload(rpc_reply *r, const void *data, size_t len) {
  if (r == NULL || (data == NULL && len > 0)) return ERR_INVAL;
  r->payload = NULL;
  r->payload_len = 0;
  if (len > r->max_payload) return ERR_TOOBIG;
  if (len == 0) return ERR_OK;
  uint8_t *p = rpc_arena_alloc(r->arena, len);
  if (p == NULL) return ERR_NOMEM;
  memcpy(p, data, len);
  r->payload = p;
  r->payload_len = len;
  return ERR_OK;
}

int rpc_reply_set_message(rpc_reply *r, const ProtobufCMessage *msg) {
  if (r == NULL || msg == NULL) return ERR_INVAL;
  r->payload = NULL;
  r->payload_len = 0;
  size_t len = protobuf_c_message_get_packed_size(msg);
  if (len > r->max_payload) return ERR_TOOBIG;
  if (len == 0) return ERR_OK;
  uint8_t *p = rpc_arena_alloc(r->arena, len);
  if (p == NULL) return ERR_NOMEM;
  if (protobuf_c_message_pack(msg, p) != len) return ERR_INTERNAL;
  r->payload = p;
  r->payload_len = len;
  return ERR_OK;
}

int64_t rpc_call_time_left_ms(const rpc_call *call) {
  if (call == NULL) return 0;
  return call->deadline_mono_ms - time_mono_ms();
}

/* ---------------------------------------------------------------- */
/* Options, handler table                                             */
/* ---------------------------------------------------------------- */

void rpc_server_options_init(rpc_server_options *o) {
  memset(o, 0, sizeof(*o));
  o->workers = 8;
  o->queue_depth = 0; /* = workers */
  o->max_recv_bytes = RPC_DEFAULT_MAX_RECV_BYTES;
  o->default_deadline_ms = 30000;
  o->max_deadline_ms = 300000;
  o->close_grace_ms = 10000;
}

static uint64_t hash_str(const char *s, size_t len) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (size_t i = 0; i < len; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211ull;
  }
  return h;
}

static handler_entry *table_find(const rpc_server *s, const char *m,
                                 size_t len) {
  if (s->table_cap == 0) return NULL;
  size_t mask = s->table_cap - 1;
  for (size_t i = hash_str(m, len) & mask;; i = (i + 1) & mask) {
    handler_entry *e = s->table[i];
    if (e == NULL) return NULL;
    if (e->method_len == len && memcmp(e->method, m, len) == 0) return e;
  }
}

static int table_grow(rpc_server *s) {
  size_t cap = s->table_cap == 0 ? 16 : s->table_cap * 2;
  handler_entry **t = calloc(cap, sizeof(*t));
  if (t == NULL) return ERR_NOMEM;
  for (size_t j = 0; j < s->table_cap; j++) {
    handler_entry *e = s->table[j];
    if (e == NULL) continue;
    size_t i = hash_str(e->method, strlen(e->method)) & (cap - 1);
    while (t[i] != NULL) i = (i + 1) & (cap - 1);
    t[i] = e;
  }
  free(s->table);
  s->table = t;
  s->table_cap = cap;
  return ERR_OK;
}

int rpc_server_new(const rpc_server_options *opts, rpc_server **out) {
  if (out == NULL) return ERR_INVAL;
  *out = NULL;
  rpc_server_options o;
  rpc_server_options_init(&o);
  if (opts != NULL) {
    if (opts->workers < 0 || opts->workers > MAX_WORKERS ||
        opts->queue_depth < 0 || opts->queue_depth > MAX_QUEUE ||
        opts->max_recv_bytes > (size_t)INT32_MAX) {
      return ERR_INVAL;
    }
    if (opts->workers != 0) o.workers = opts->workers;
    if (opts->queue_depth != 0) o.queue_depth = opts->queue_depth;
    if (opts->max_recv_bytes != 0) o.max_recv_bytes = opts->max_recv_bytes;
    if (opts->default_deadline_ms != 0) {
      o.default_deadline_ms = opts->default_deadline_ms;
    }
    if (opts->max_deadline_ms != 0) o.max_deadline_ms = opts->max_deadline_ms;
    if (opts->close_grace_ms != 0) o.close_grace_ms = opts->close_grace_ms;
  }
  if (o.queue_depth == 0) o.queue_depth = o.workers;
  if (o.default_deadline_ms > o.max_deadline_ms) {
    o.default_deadline_ms = o.max_deadline_ms;
  }

  pthread_once(&fam_once, families_init);
  rpc_server *s = calloc(1, sizeof(*s));
  if (s == NULL) return ERR_NOMEM;
  s->opt = o;
  s->port = -1;
  s->unknown.method = strdup(UNKNOWN_METHOD_LABEL);
  if (s->unknown.method == NULL) {
    free(s);
    return ERR_NOMEM;
  }
  entry_metrics_init(&s->unknown);
  s->in_flight = metrics_child_get(fam_in_flight, NULL);
  s->connections = metrics_child_get(fam_connections, NULL);
  pthread_mutex_init(&s->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s->work_cv, &ca);
  pthread_cond_init(&s->idle_cv, &ca);
  pthread_condattr_destroy(&ca);
  *out = s;
  return ERR_OK;
}

static int do_register(rpc_server *s, const char *method, rpc_handler_fn fn,
                       void *arg, bool nonblocking) {
  if (s == NULL || method == NULL || fn == NULL || s->started) return ERR_INVAL;
  size_t len = strlen(method);
  if (len == 0 || len > RPC_MAX_METHOD_LEN || !str_is_printable(method, len)) {
    return ERR_INVAL;
  }
  if (table_find(s, method, len) != NULL) return ERR_EXISTS;
  if ((s->nhandlers + 1) * 2 > s->table_cap) {
    int rc = table_grow(s);
    if (rc != ERR_OK) return rc;
  }
  handler_entry *e = calloc(1, sizeof(*e));
  if (e == NULL) return ERR_NOMEM;
  e->method = strdup(method);
  if (e->method == NULL) {
    free(e);
    return ERR_NOMEM;
  }
  e->method_len = len;
  e->fn = fn;
  e->arg = arg;
  entry_metrics_init(e);
  size_t mask = s->table_cap - 1;
  size_t i = hash_str(method, len) & mask;
  while (s->table[i] != NULL) i = (i + 1) & mask;
  s->table[i] = e;
  s->nhandlers++;
  e->nonblocking = nonblocking;
  if (nonblocking) s->any_nonblocking = true;
  return ERR_OK;
}

int rpc_server_set_guard(rpc_server *s, rpc_guard_fn fn, void *arg) {
  if (s == NULL || s->started) return ERR_INVAL;
  s->guard = fn;
  s->guard_arg = arg;
  return ERR_OK;
}

void rpc_server_each_method(const rpc_server *s,
                            void (*fn)(void *arg, const char *method),
                            void *arg) {
  if (s == NULL || fn == NULL) return;
  for (size_t i = 0; i < s->table_cap; i++)
    if (s->table[i] != NULL) fn(arg, s->table[i]->method);
}

int rpc_server_register(rpc_server *s, const char *method, rpc_handler_fn fn,
                        void *arg) {
  return do_register(s, method, fn, arg, false);
}

int rpc_server_register_nonblocking(rpc_server *s, const char *method,
                                    rpc_handler_fn fn, void *arg) {
  return do_register(s, method, fn, arg, true);
}

/* ---------------------------------------------------------------- */
/* Slots (nng callback side)                                          */
/* ---------------------------------------------------------------- */

static void slot_idle(slot *sl) {
  rpc_server *s = sl->srv;
  atomic_store(&sl->state, SLOT_IDLE);
  pthread_mutex_lock(&s->mu);
  s->idle_slots++;
  pthread_cond_broadcast(&s->idle_cv);
  pthread_mutex_unlock(&s->mu);
}

/* Arms the slot's next receive, unless the server is closing. Under the
 * slot lock, so rpc_server_close (which sets `closing` first, then
 * cancels every slot in RECV under the same lock) either sees the receive
 * armed and cancels it, or this sees `closing` and goes idle: no receive
 * is left pending after close. nng never runs the aio callback inside
 * nng_ctx_recv or nng_aio_cancel (completions are dispatched to its task
 * threads), so holding the lock across them cannot deadlock. */
static void slot_rearm(slot *sl) {
  rpc_server *s = sl->srv;
  pthread_mutex_lock(&sl->mu);
  if (atomic_load(&s->closing)) {
    pthread_mutex_unlock(&sl->mu);
    slot_idle(sl);
    return;
  }
  atomic_store(&sl->state, SLOT_RECV);
  nng_ctx_recv(sl->ctx, sl->aio);
  pthread_mutex_unlock(&sl->mu);
}

/* Queues a received request for the workers and wakes one if any
 * sleeps. (Not waking when a worker is about to come back for more work
 * was tried: it saves a wake-up under load, but a worker preempted on
 * its way back then delays the request by a whole scheduler time slice,
 * which showed up as 5 ms tail latencies on a loaded 2-core machine.) */
static void slot_enqueue(slot *sl) {
  rpc_server *s = sl->srv;
  atomic_store(&sl->state, SLOT_QUEUED);
  sl->next = NULL;
  pthread_mutex_lock(&s->mu);
  if (s->q_tail != NULL) {
    s->q_tail->next = sl;
  } else {
    s->q_head = sl;
  }
  s->q_tail = sl;
  s->q_len++;
  bool wake = s->n_sleeping > 0;
  pthread_mutex_unlock(&s->mu);
  /* Signalled after unlocking, so the woken worker does not run straight
   * into the mutex this thread still holds (one context switch less). */
  if (wake) pthread_cond_signal(&s->work_cv);
}

static nng_msg *process(rpc_server *s, worker_state *w, slot *sl);

/* Starts sending reply on the slot (NULL: nothing could be built). The
 * send completes on nng's side and slot_cb then re-arms the receive.
 * Under the slot lock so that close, which cancels slots it sees in
 * RECV, can never cancel this reply instead. */
static void slot_send(slot *sl, nng_msg *reply) {
  if (reply == NULL) {
    atomic_fetch_add(&sl->srv->st_send_failed, 1);
    slot_rearm(sl);
    return;
  }
  pthread_mutex_lock(&sl->mu);
  atomic_store(&sl->state, SLOT_SEND);
  nng_aio_set_msg(sl->aio, reply);
  nng_ctx_send(sl->ctx, sl->aio);
  pthread_mutex_unlock(&sl->mu);
}

/* The handler for a request's method if the method can be read cheaply
 * without decoding the envelope: field 1 (method) encoded first, as
 * protobuf-c and every other encoder write it. NULL otherwise; the
 * request then takes the ordinary worker path, which decodes properly. */
static handler_entry *peek_handler(const rpc_server *s, const uint8_t *b,
                                   size_t len) {
  if (len < 2 || b[0] != 0x0a) return NULL; /* field 1, length-delimited */
  size_t mlen = 0;
  size_t i = 1;
  for (int shift = 0; i < len && shift < 35; shift += 7, i++) {
    mlen |= (size_t)(b[i] & 0x7f) << shift;
    if ((b[i] & 0x80) == 0) break;
  }
  if (i >= len || (b[i] & 0x80) != 0) return NULL;
  i++;
  if (mlen == 0 || mlen > RPC_MAX_METHOD_LEN || mlen > len - i) return NULL;
  return table_find(s, (const char *)b + i, mlen);
}

static void slot_cb(void *arg) {
  slot *sl = arg;
  rpc_server *s = sl->srv;
  int rv = nng_aio_result(sl->aio);
  int state = atomic_load(&sl->state);

  if (state == SLOT_SEND) {
    if (rv != 0) {
      /* The peer went away; the message is still ours. */
      nng_msg_free(nng_aio_get_msg(sl->aio));
      nng_aio_set_msg(sl->aio, NULL);
      atomic_fetch_add(&s->st_send_failed, 1);
    }
    slot_rearm(sl);
  } else if (state == SLOT_RECV) {
    if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
      slot_idle(sl); /* close cancelled it, or the socket closed */
    } else if (rv != 0) {
      slot_rearm(sl); /* none expected for rep0; keep serving */
    } else {
      sl->msg = nng_aio_get_msg(sl->aio);
      nng_aio_set_msg(sl->aio, NULL);
      sl->arrival_ns = time_mono_ns();
      atomic_fetch_add(&s->st_received, 1);
      if (s->any_nonblocking) {
        handler_entry *e =
            peek_handler(s, nng_msg_body(sl->msg), nng_msg_len(sl->msg));
        if (e != NULL && e->nonblocking) {
          /* Promised not to block: run here, saving the hand-off. */
          slot_send(sl, process(s, sl->ws, sl));
          return;
        }
      }
      slot_enqueue(sl);
    }
  }
}

/* ---------------------------------------------------------------- */
/* Workers                                                            */
/* ---------------------------------------------------------------- */

static char *empty_if_null(char *s) { return s != NULL ? s : (char *)""; }

/* Decodes, dispatches and answers one request. Returns the reply message
 * (the request's nng_msg, reused) or NULL if even that failed. */
static nng_msg *process(rpc_server *s, worker_state *w, slot *sl) {
  nng_msg *msg = sl->msg;
  sl->msg = NULL;
  rpc_reply *r = &w->reply;
  reply_reset(r, &w->arena, s->opt.max_recv_bytes);
  handler_entry *e = &s->unknown;
  const char *request_id = "";

  Rpc__V1__Request *req = rpc__v1__request__unpack(
      &w->arena.pb, nng_msg_len(msg), nng_msg_body(msg));
  if (req == NULL) {
    atomic_fetch_add(&s->st_malformed, 1);
    rpc_reply_status(r, RPC_INVALID_ARGUMENT, "undecodable request envelope");
  } else {
    request_id = empty_if_null(req->request_id);
    const char *method = empty_if_null(req->method);
    size_t mlen = strlen(method);
    handler_entry *found =
        mlen <= RPC_MAX_METHOD_LEN ? table_find(s, method, mlen) : NULL;
    uint32_t budget =
        req->deadline_ms != 0 ? req->deadline_ms : s->opt.default_deadline_ms;
    if (budget > s->opt.max_deadline_ms) budget = s->opt.max_deadline_ms;
    int64_t deadline_ms = sl->arrival_ns / 1000000 + (int64_t)budget;

    if (found == NULL) {
      atomic_fetch_add(&s->st_unknown, 1);
      if (mlen <= RPC_MAX_METHOD_LEN && str_is_printable(method, mlen)) {
        rpc_reply_status(r, RPC_UNIMPLEMENTED, "unknown method %s", method);
      } else {
        rpc_reply_status(r, RPC_UNIMPLEMENTED, "unknown method");
      }
    } else if (time_mono_ms() >= deadline_ms) {
      e = found;
      atomic_fetch_add(&s->st_expired, 1);
      rpc_reply_status(r, RPC_DEADLINE_EXCEEDED,
                       "deadline passed before the call started");
    } else {
      e = found;
      rpc_call call = {
          .method = e->method,
          .request_id = request_id,
          .tenant_id = empty_if_null(req->tenant_id),
          .token = empty_if_null(req->token),
          .idempotency_key = empty_if_null(req->idempotency_key),
          .payload = req->payload.data,
          .payload_len = req->payload.len,
          .attempt = req->attempt,
          .deadline_mono_ms = deadline_ms,
          .service_token = empty_if_null(req->service_token),
      };
      if (call.payload == NULL) call.payload = (const uint8_t *)"";
      metrics_add(s->in_flight, 1);
      if (s->guard == NULL || s->guard(s->guard_arg, &call, r))
        e->fn(e->arg, &call, r);
      metrics_add(s->in_flight, -1);
      atomic_fetch_add(&s->st_handled, 1);
      if (time_mono_ms() > deadline_ms) {
        atomic_fetch_add(&s->st_late, 1);
        metrics_inc(e->late);
      }
    }
  }

  Rpc__V1__Response resp = RPC__V1__RESPONSE__INIT;
  resp.code = (Rpc__V1__Code)r->code;
  resp.message = r->message;
  resp.n_violations = r->nviol;
  resp.violations = r->nviol > 0 ? r->violp : NULL;
  resp.payload.data = r->payload;
  resp.payload.len = r->payload_len;
  resp.request_id = (char *)request_id;
  resp.retry_after_ms = r->retry_after_ms;
  size_t len = rpc__v1__response__get_packed_size(&resp);
  nng_msg_clear(msg);
  if (nng_msg_realloc(msg, len) != 0) {
    /* Out of memory for the reply: try a bare INTERNAL. */
    resp = (Rpc__V1__Response)RPC__V1__RESPONSE__INIT;
    resp.code = RPC__V1__CODE__INTERNAL;
    resp.request_id = (char *)request_id;
    len = rpc__v1__response__get_packed_size(&resp);
    if (nng_msg_realloc(msg, len) != 0) {
      nng_msg_free(msg);
      msg = NULL;
    }
  }
  if (msg != NULL) rpc__v1__response__pack(&resp, nng_msg_body(msg));

  int code = (int)resp.code;
  metrics_inc(entry_calls(e, code));
  metrics_observe(e->duration, (double)(time_mono_ns() - sl->arrival_ns) / 1e9);

  if (req != NULL) rpc__v1__request__free_unpacked(req, &w->arena.pb);
  rpc_arena_reset(&w->arena);
  return msg;
}

static void *worker_main(void *arg) {
  rpc_server *s = arg;
  /* Named, so that tests (and top -H) can tell handler threads apart. */
  pthread_setname_np(pthread_self(), "rpc-worker");
  worker_state w;
  rpc_arena_init(&w.arena, ARENA_BLOCK);

  pthread_mutex_lock(&s->mu);
  for (;;) {
    while (s->q_head == NULL && !s->stop_workers) {
      s->n_sleeping++;
      pthread_cond_wait(&s->work_cv, &s->mu);
      s->n_sleeping--;
    }
    if (s->q_head == NULL) break; /* stopping and nothing left */
    slot *sl = s->q_head;
    s->q_head = sl->next;
    if (s->q_head == NULL) s->q_tail = NULL;
    s->q_len--;
    pthread_mutex_unlock(&s->mu);

    slot_send(sl, process(s, &w, sl));

    pthread_mutex_lock(&s->mu);
  }
  pthread_mutex_unlock(&s->mu);
  rpc_arena_fini(&w.arena);
  return NULL;
}

/* ---------------------------------------------------------------- */
/* Start, stats, close                                                */
/* ---------------------------------------------------------------- */

static int map_listen_err(int rv) {
  switch (rv) {
  case NNG_EADDRINUSE:
  case NNG_EADDRINVAL:
  case NNG_EPERM:
    return ERR_UNAVAILABLE;
  case NNG_EINVAL:
  case NNG_ENOTSUP:
    return ERR_INVAL;
  case NNG_ENOMEM:
    return ERR_NOMEM;
  default:
    return ERR_INTERNAL;
  }
}

/* Counts client connections (nng pipe notifications, on nng's threads). */
static void pipe_event(nng_pipe p, nng_pipe_ev ev, void *arg) {
  (void)p;
  rpc_server *s = arg;
  int d = ev == NNG_PIPE_EV_ADD_POST ? 1 : -1;
  atomic_fetch_add(&s->connected, d);
  metrics_add(s->connections, d); /* how far clients reconnected (failover) */
}

int rpc_server_start(rpc_server *s, const char *url) {
  if (s == NULL || url == NULL || s->started) return ERR_INVAL;
  int rc = ERR_INTERNAL;
  int rv;
  s->started = true; /* even on failure: no second try on a half state */

  if ((rv = nng_rep0_open(&s->sock)) != 0) return ERR_INTERNAL;
  s->sock_open = true;
  if (nng_pipe_notify(s->sock, NNG_PIPE_EV_ADD_POST, pipe_event, s) != 0 ||
      nng_pipe_notify(s->sock, NNG_PIPE_EV_REM_POST, pipe_event, s) != 0)
    goto err;
  if (nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, s->opt.max_recv_bytes) !=
      0) {
    goto err;
  }
  if ((rv = nng_listener_create(&s->listener, s->sock, url)) != 0) {
    rc = map_listen_err(rv);
    goto err;
  }
  /* Set on the listener too: the socket value is only inherited by
   * endpoints created after it, and this is the one that matters. */
  (void)nng_listener_set_size(s->listener, NNG_OPT_RECVMAXSZ,
                              s->opt.max_recv_bytes);
  if ((rv = nng_listener_start(s->listener, 0)) != 0) {
    rc = map_listen_err(rv);
    goto err;
  }
  int port = -1;
  if (nng_listener_get_int(s->listener, NNG_OPT_TCP_BOUND_PORT, &port) == 0) {
    s->port = port;
  }

  s->nslots = (size_t)s->opt.workers + (size_t)s->opt.queue_depth;
  s->slots = calloc(s->nslots, sizeof(*s->slots));
  s->threads = calloc((size_t)s->opt.workers, sizeof(*s->threads));
  if (s->slots == NULL || s->threads == NULL) {
    rc = ERR_NOMEM;
    goto err;
  }
  for (size_t i = 0; i < s->nslots; i++) {
    slot *sl = &s->slots[i];
    sl->srv = s;
    atomic_store(&sl->state, SLOT_IDLE);
    pthread_mutex_init(&sl->mu, NULL);
    sl->mu_init = true;
    if (nng_ctx_open(&sl->ctx, s->sock) != 0 ||
        nng_aio_alloc(&sl->aio, slot_cb, sl) != 0) {
      goto err;
    }
    if (s->any_nonblocking) {
      sl->ws = calloc(1, sizeof(*sl->ws));
      if (sl->ws == NULL) {
        rc = ERR_NOMEM;
        goto err;
      }
      rpc_arena_init(&sl->ws->arena, ARENA_BLOCK);
    }
  }
  for (int i = 0; i < s->opt.workers; i++) {
    if (pthread_create(&s->threads[i], NULL, worker_main, s) != 0) goto err;
    s->nthreads++;
  }
  for (size_t i = 0; i < s->nslots; i++) slot_rearm(&s->slots[i]);
  s->running = true;
  return ERR_OK;

err:
  /* Nothing has been received yet: closing the socket and joining the
   * idle workers is enough; rpc_server_close frees the rest. */
  atomic_store(&s->closing, true);
  pthread_mutex_lock(&s->mu);
  s->stop_workers = true;
  pthread_cond_broadcast(&s->work_cv);
  pthread_mutex_unlock(&s->mu);
  for (size_t i = 0; i < s->nthreads; i++) pthread_join(s->threads[i], NULL);
  s->nthreads = 0;
  nng_close(s->sock);
  s->sock_open = false;
  return rc;
}

int rpc_server_port(const rpc_server *s) { return s != NULL ? s->port : -1; }

int rpc_server_connected(const rpc_server *s) {
  return s != NULL ? atomic_load(&((rpc_server *)s)->connected) : 0;
}

int rpc_server_wait_disconnected(const rpc_server *s, uint32_t timeout_ms) {
  int64_t until = time_mono_ms() + (int64_t)timeout_ms;
  while (rpc_server_connected(s) > 0) {
    if (time_mono_ms() >= until) return ERR_TIMEOUT;
    time_sleep_ms(5);
  }
  return ERR_OK;
}

void rpc_server_get_stats(const rpc_server *s, rpc_server_stats *out) {
  memset(out, 0, sizeof(*out));
  if (s == NULL) return;
  rpc_server *m = (rpc_server *)s; /* atomics: loads only */
  out->received = atomic_load(&m->st_received);
  out->handled = atomic_load(&m->st_handled);
  out->expired = atomic_load(&m->st_expired);
  out->late = atomic_load(&m->st_late);
  out->unknown = atomic_load(&m->st_unknown);
  out->malformed = atomic_load(&m->st_malformed);
  out->send_failed = atomic_load(&m->st_send_failed);
}

static void free_table(rpc_server *s) {
  for (size_t i = 0; i < s->table_cap; i++) {
    if (s->table[i] != NULL) {
      free(s->table[i]->method);
      free(s->table[i]);
    }
  }
  free(s->table);
  free(s->unknown.method);
}

void rpc_server_close(rpc_server *s) {
  if (s == NULL) return;
  bool drained = true;

  if (s->running) {
    /* 1. Stop receiving: no slot re-arms after `closing`, and the ones
     * waiting for a request are cancelled (see slot_rearm). */
    atomic_store(&s->closing, true);
    for (size_t i = 0; i < s->nslots; i++) {
      slot *sl = &s->slots[i];
      pthread_mutex_lock(&sl->mu);
      if (atomic_load(&sl->state) == SLOT_RECV) nng_aio_cancel(sl->aio);
      pthread_mutex_unlock(&sl->mu);
    }
    pthread_mutex_lock(&s->mu);
    /* 2. Wait for received requests to be handled and answered. */
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += s->opt.close_grace_ms / 1000;
    until.tv_nsec += (long)(s->opt.close_grace_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000L;
    }
    while (s->idle_slots < s->nslots) {
      if (pthread_cond_timedwait(&s->idle_cv, &s->mu, &until) != 0 &&
          s->idle_slots < s->nslots) {
        drained = false;
        break;
      }
    }
    s->stop_workers = true;
    pthread_cond_broadcast(&s->work_cv);
    pthread_mutex_unlock(&s->mu);
  }

  if (!drained) {
    /* A handler is stuck past the grace period. Its worker still uses s,
     * so s cannot be freed; close the socket so peers see the server go
     * and leave the rest to process exit. */
    log_error("rpc server close: handlers still running after grace period");
    if (s->sock_open) nng_close(s->sock);
    return;
  }
  for (size_t i = 0; i < s->nthreads; i++) pthread_join(s->threads[i], NULL);
  if (s->sock_open) nng_close(s->sock);
  for (size_t i = 0; s->slots != NULL && i < s->nslots; i++) {
    if (s->slots[i].aio != NULL) nng_aio_free(s->slots[i].aio);
    if (s->slots[i].msg != NULL) nng_msg_free(s->slots[i].msg);
    if (s->slots[i].mu_init) pthread_mutex_destroy(&s->slots[i].mu);
    if (s->slots[i].ws != NULL) {
      rpc_arena_fini(&s->slots[i].ws->arena);
      free(s->slots[i].ws);
    }
  }
  free(s->slots);
  free(s->threads);
  free_table(s);
  pthread_cond_destroy(&s->work_cv);
  pthread_cond_destroy(&s->idle_cv);
  pthread_mutex_destroy(&s->mu);
  free(s);
}
