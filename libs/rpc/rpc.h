/*
 * rpc.h - the inter-service RPC layer: nng req/rep carrying protobuf
 * envelopes, with deadlines, safe retries, discovery and metrics.
 *
 * On the wire every call is one rpc.v1.Request (proto/rpc/v1/rpc.proto):
 * the fully qualified method ("orders.v1.Orders/CreateOrder"), the payload
 * (the method's own serialised protobuf message), the request id, the time
 * left for the whole call in milliseconds (relative, so the two hosts'
 * clocks need not agree), the caller's token, tenant id, idempotency key
 * and the attempt number. The reply is one rpc.v1.Response: a status code
 * (rpc_status.h, numbered as gRPC), a message, field violations and the
 * payload.
 *
 * SERVER
 *
 *   rpc_server *srv;
 *   if (rpc_server_new(NULL, &srv) != ERR_OK) ...
 *   if (rpc_server_register(srv, "orders.v1.Orders/CreateOrder",
 *                           create_order, store) != ERR_OK) ...
 *   if (rpc_server_start(srv, "tcp://0.0.0.0:7001") != ERR_OK) ...
 *   ...
 *   rpc_server_close(srv);   // on SIGTERM: drains, then frees
 *
 * The server listens with one nng rep0 socket and runs a fixed pool of
 * worker threads, so N workers means at most N handlers run at once.
 * Handlers may block (database calls): they never run on nng's own
 * callback threads (except those registered with
 * rpc_server_register_nonblocking, which promise never to block). A request is
 * received as soon as a worker is free or while fewer than `queue_depth`
 * requests wait for one; further requests wait in the transport
 * (back-pressure), never in unbounded memory.
 *
 * Deadlines: a request's deadline is its arrival time plus the envelope's
 * deadline_ms (or the server's default_deadline_ms when that is 0, capped
 * at max_deadline_ms). A request whose deadline has passed before a worker
 * picks it up is answered DEADLINE_EXCEEDED without running the handler. A
 * handler reads its time left with rpc_call_time_left_ms() and should pass
 * it on to the calls it makes. A handler that finishes late still has its
 * reply sent (the client may have given up), and is counted.
 *
 * An unknown method is answered UNIMPLEMENTED; an undecodable request is
 * answered INVALID_ARGUMENT; a request larger than max_recv_bytes makes
 * nng drop the connection (the client sees UNAVAILABLE). Nothing a peer
 * sends can crash the server.
 *
 * Metrics (libs/obs/metrics.h), method labels are the registered names,
 * or "_unknown" for methods not registered (bounded cardinality):
 *   rpc_server_calls_total{method,code}      counter
 *   rpc_server_duration_seconds{method}      histogram (arrival to reply)
 *   rpc_server_in_flight                     gauge (handlers running)
 *   rpc_server_late_total{method}            counter (handler overran)
 *
 * CLIENT
 *
 *   rpc_client *cli;
 *   if (rpc_client_new("dns+tcp://orders:7001", NULL, &cli) != ERR_OK) ...
 *   rpc_call_options o = RPC_CALL_OPTIONS_INIT;
 *   o.deadline_ms = 2000;
 *   o.idempotent = true;
 *   o.tenant_id = tenant;
 *   rpc_result *res;
 *   if (rpc_client_call(cli, "orders.v1.Orders/GetOrder", buf, len, &o,
 *                       &res) != ERR_OK) ...   // only local failures
 *   if (res->code == RPC_OK) ... use res->payload ...
 *   rpc_result_free(res);
 *
 * An address is a comma-separated list of endpoints, each either
 * "tcp://host:port" (dialled as is) or "dns+tcp://name:port" (resolved
 * with getaddrinfo in a background thread every resolve_interval_ms, each
 * resolved IP dialled; dialers are added and removed as the set changes:
 * the Kubernetes headless-Service pattern). Every endpoint is dialled on
 * one nng req0 socket, so nng spreads calls over all connected replicas
 * and routes around a dead one while its dialer reconnects in the
 * background. Each call uses its own nng context, so any number of
 * threads may call at once.
 *
 * nng's own REQ resend is switched off (NNG_OPT_REQ_RESENDTIME infinite):
 * in nng 1.5 that also makes a call whose connection drops fail at once
 * with ECONNRESET instead of waiting, and leaves retrying to this layer,
 * where it is counted and bounded. A failed attempt is retried, with
 * capped exponential backoff and full jitter, within the call's deadline
 * and at most max_attempts times in all, only when that is safe:
 *   - always, when the request surely did not reach a server: no replica
 *     was connected within connect_wait_ms, or nng could not hand the
 *     message to a connection;
 *   - for calls marked idempotent, also when the connection failed after
 *     the request was sent, when the attempt's own timeout
 *     (attempt_timeout_ms) ran out, or when the server answered
 *     UNAVAILABLE;
 *   - for calls marked idempotent that carry an idempotency key, also
 *     when the server answered ABORTED ("a request with this key is
 *     still running") after an earlier attempt of the same call may have
 *     reached a server (or the caller says one may have: maybe_twin):
 *     that twin is our own, and the retry meets its saved answer or,
 *     once the dead replica's transaction is rolled back, a free key.
 *     These retries go on until the deadline, past max_attempts.
 * "Idempotent" is the caller's declaration that running the call twice
 * is harmless: reads, and writes carrying an idempotency key to a method
 * that honours keys (libs/idem; the gateway's ROUTE_KEYED routes). A
 * write without a key, or to a method that ignores keys, must not be
 * marked: it is then retried only when it surely never left this
 * process (docs/adr/0013-failover-and-replicas.md).
 *
 * Outliers: a replica that answers UNAVAILABLE eject_after times in a
 * row (its database is gone, it is overloaded) is ejected, as Envoy's
 * outlier detection does: its connection is closed and it is not dialled
 * again for eject_base_ms, doubled for each ejection that follows soon
 * after the last, at most eject_max_ms; then it is dialled again and
 * takes calls as soon as it connects. At most half of the replicas are
 * out at once, and never the last one. A replica that dies loses its
 * connection, which takes it out of rotation at once; nng re-dials it
 * (reconnect_min_ms up to reconnect_max_ms) and it is back as soon as it
 * listens again. A replica that hangs without answering (stopped,
 * deadlocked, its host swapping) keeps its connection: idempotent calls
 * with an attempt timeout move on to another replica, and the timeouts
 * count toward its ejection. nng's req0 does not say which connection a
 * timed-out request went to, so a call whose attempt timed out blames,
 * once it is over, every connected replica that has sent this client no
 * reply since that attempt was sent - provided some other replica did
 * (else nothing can be told apart: no blame). A hung replica answers
 * nothing, so it is blamed by every such call and ejected after
 * eject_after of them; closing its connection also fails the requests
 * still waiting on it at once (idempotent ones retry elsewhere). When
 * its ejection ends it is dialled again and, if it answers again, back
 * (a stopped process does not even complete nng's handshake until it
 * runs again).
 *
 * "No peer" is detected with nng pipe notifications (a count of connected
 * pipes) rather than by letting nng queue the request for a connection
 * that may never come.
 *
 * A transport failure becomes a result, not an error: UNAVAILABLE when no
 * replica could be reached or the connection failed, DEADLINE_EXCEEDED
 * only when the call's deadline truly ran out, CANCELLED when the client
 * is being freed. rpc_client_call returns an ERR_* code only for local
 * failures (bad arguments, too large, out of memory).
 *
 * Metrics: rpc_client_calls_total{method,code}, rpc_client_retries_total
 * {method}, rpc_client_duration_seconds{method} (the whole call, retries
 * included).
 *
 * Both sides bound every socket with a maximum receive size (default
 * RPC_DEFAULT_MAX_RECV_BYTES) and unpack each envelope exactly once.
 */
#ifndef RPC_RPC_H
#define RPC_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "libs/base/err.h"
#include "libs/rpc/rpc_status.h"

#define RPC_DEFAULT_MAX_RECV_BYTES (4u * 1024u * 1024u)
#define RPC_MAX_METHOD_LEN 128   /* bytes, without the NUL */
#define RPC_MAX_VIOLATIONS 64    /* per reply; more are dropped */
#define RPC_MAX_MESSAGE_LEN 1024 /* status message bytes; longer is cut */
#define RPC_MAX_ENDPOINTS 32     /* per address list / resolved name */
#define RPC_MAX_URL_LEN 300
#define RPC_MAX_CREDENTIAL_LEN 1024 /* a service token, bytes */

/* ------------------------------------------------------------------ */
/* Server                                                              */
/* ------------------------------------------------------------------ */

typedef struct rpc_server rpc_server;

/* What a handler is given. Every pointer is owned by the server and valid
 * only until the handler returns; strings are NUL-terminated and "" when
 * the caller did not set them. */
typedef struct rpc_call {
  const char *method;     /* "orders.v1.Orders/CreateOrder" */
  const char *request_id; /* the caller's (for logs) */
  const char *tenant_id;
  const char *token; /* never log it */
  const char *idempotency_key;
  const uint8_t *payload; /* the method's serialised request */
  size_t payload_len;
  uint32_t attempt;          /* 1 for the first attempt, 2, ... */
  int64_t deadline_mono_ms;  /* absolute, on time_mono_ms()'s clock */
  const char *service_token; /* the calling service's; never log it */
  /* Set by the server's guard (rpc_server_set_guard) before the handler
   * runs: the verified calling service and the matched access rule
   * (libs/svcid/access.h); "" and NULL when there is no guard. */
  char caller[33];
  const void *access;
} rpc_call;

/* Milliseconds left before the call's deadline (time_mono_ms() based);
 * 0 or negative once it has passed. */
int64_t rpc_call_time_left_ms(const rpc_call *call);

/* The reply a handler fills. It starts as OK with no message, no
 * violations and an empty payload. Owned by the server. */
typedef struct rpc_reply rpc_reply;

/* Sets the status code and message (printf-style, copied, cut at
 * RPC_MAX_MESSAGE_LEN bytes; fmt may be NULL for no message). An
 * invalid code is replaced by RPC_UNKNOWN. Messages go to the caller:
 * no secrets, no internal details. */
void rpc_reply_status(rpc_reply *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Adds a field violation ("items[3].quantity", "must be at least 1");
 * both strings are copied. At most RPC_MAX_VIOLATIONS are kept: returns
 * ERR_TOOBIG past that (the reply is still valid), ERR_NOMEM. Does not
 * change the code: set INVALID_ARGUMENT with rpc_reply_status. */
int rpc_reply_add_violation(rpc_reply *r, const char *field,
                            const char *description);

/* Tells the caller to wait ms milliseconds before trying again (with
 * RESOURCE_EXHAUSTED or UNAVAILABLE; the gateway turns it into
 * Retry-After). 0 clears it. Does not change the code. */
void rpc_reply_retry_after(rpc_reply *r, uint32_t ms);

/* Sets the reply payload to a copy of data[0..len). Returns ERR_NOMEM, or
 * ERR_TOOBIG when len exceeds the server's max_recv_bytes (the reply would
 * not fit the envelope a peer accepts); the payload is then left empty. */
int rpc_reply_set_payload(rpc_reply *r, const void *data,
                          size_t len) WARN_UNUSED;

/* Serialises msg (any protobuf-c message) as the reply payload, without
 * an intermediate copy. Errors as rpc_reply_set_payload. msg stays the
 * caller's. */
int rpc_reply_set_message(rpc_reply *r,
                          const ProtobufCMessage *msg) WARN_UNUSED;

/* A handler. arg is the pointer given to rpc_server_register. It runs on
 * a server worker thread and may block, but should respect
 * rpc_call_time_left_ms(). It reports failures through the reply. */
typedef void (*rpc_handler_fn)(void *arg, const rpc_call *call,
                               rpc_reply *reply);

typedef struct rpc_server_options {
  int workers;                  /* handler threads; default 8, max 1024 */
  int queue_depth;              /* requests received and waiting for a
                                   worker; default = workers */
  size_t max_recv_bytes;        /* per request; default 4 MiB */
  uint32_t default_deadline_ms; /* when a request has none; default 30000 */
  uint32_t max_deadline_ms;     /* cap on any request's; default 300000 */
  uint32_t close_grace_ms;      /* rpc_server_close waits this long for
                                   running handlers; default 10000 */
} rpc_server_options;

/* Fills o with the defaults above. */
void rpc_server_options_init(rpc_server_options *o);

/* Creates a stopped server (no socket yet). opts may be NULL for the
 * defaults; it is copied. Zero fields take their defaults. Returns
 * ERR_INVAL for out-of-range options, ERR_NOMEM. *out is the caller's,
 * to be released with rpc_server_close. */
int rpc_server_new(const rpc_server_options *opts,
                   rpc_server **out) WARN_UNUSED;

/* A guard runs before the handler of every registered method (after the
 * deadline check, on the thread that runs the handler): it decides
 * whether the call may proceed - libs/svc's checks the calling service's
 * identity against the method's declared callers - and may fill
 * call->caller and call->access for the handler. It returns true to run
 * the handler, or false with reply's status set (the handler is then
 * skipped). It must not block on I/O: it also runs before handlers
 * registered nonblocking. */
typedef bool (*rpc_guard_fn)(void *arg, rpc_call *call, rpc_reply *reply);

/* Installs the guard (one per server; NULL removes it). Only before
 * rpc_server_start. ERR_INVAL after start. */
int rpc_server_set_guard(rpc_server *s, rpc_guard_fn fn, void *arg) WARN_UNUSED;

/* The methods registered so far, for checks at start-up: calls fn once
 * per method, in no particular order. */
void rpc_server_each_method(const rpc_server *s,
                            void (*fn)(void *arg, const char *method),
                            void *arg);

/* Registers fn for method (copied; at most RPC_MAX_METHOD_LEN bytes,
 * printable ASCII). Only before rpc_server_start: the table is read
 * without locks afterwards. Returns ERR_INVAL (bad name, NULL fn, server
 * already started), ERR_EXISTS (method already registered), ERR_NOMEM. */
int rpc_server_register(rpc_server *s, const char *method, rpc_handler_fn fn,
                        void *arg) WARN_UNUSED;

/* Like rpc_server_register, for a handler that never blocks: no I/O, no
 * locks held for long, no sleeping - pure computation on memory (a cache
 * lookup, a validation, an in-memory snapshot). It runs directly on the
 * nng thread that received the request, skipping the hand-off to a
 * worker (one thread wake-up: on a small machine that is most of the
 * layer's cost, see docs/PERFORMANCE.md). Deadlines, metrics and limits
 * apply as for any handler. A handler registered this way that does
 * block stalls nng's threads, which every socket in the process shares:
 * when in doubt, use rpc_server_register. Errors as rpc_server_register. */
int rpc_server_register_nonblocking(rpc_server *s, const char *method,
                                    rpc_handler_fn fn, void *arg) WARN_UNUSED;

/* Listens on url ("tcp://127.0.0.1:7001"; port 0 picks a free port, see
 * rpc_server_port) and starts the workers. Once per server. Returns
 * ERR_INVAL (bad url, already started), ERR_UNAVAILABLE (address in use
 * or not bindable), ERR_NOMEM, ERR_INTERNAL (nng or thread failure). */
int rpc_server_start(rpc_server *s, const char *url) WARN_UNUSED;

/* The TCP port the server listens on (useful after "tcp://...:0"), or -1
 * when not started or not TCP. */
int rpc_server_port(const rpc_server *s);

/* Client connections open now (every replica of every caller counts
 * one per connection). */
int rpc_server_connected(const rpc_server *s);

/* Waits until no client is connected, or timeout_ms passes: ERR_OK or
 * ERR_TIMEOUT. For tests whose clients are gone (another process that
 * exited): nng 1.5.2 can hang closing a socket while a connection is
 * still going away (docs/adr/0007), so they close only after this. */
int rpc_server_wait_disconnected(const rpc_server *s,
                                 uint32_t timeout_ms) WARN_UNUSED;

/* Counters since start, for tests and health checks. */
typedef struct rpc_server_stats {
  uint64_t received;    /* requests taken off the socket */
  uint64_t handled;     /* handler invocations completed */
  uint64_t expired;     /* answered DEADLINE_EXCEEDED before running */
  uint64_t late;        /* handler finished after the deadline */
  uint64_t unknown;     /* answered UNIMPLEMENTED */
  uint64_t malformed;   /* answered INVALID_ARGUMENT: undecodable */
  uint64_t send_failed; /* replies nng could not send (peer gone) */
} rpc_server_stats;

void rpc_server_get_stats(const rpc_server *s, rpc_server_stats *out);

/* Graceful stop and free: stops receiving new requests, lets requests
 * already received finish (waiting at most close_grace_ms for running
 * handlers; past that the workers are abandoned and the process should
 * exit), sends their replies, then closes the socket and frees s.
 * NULL-safe. Must not be called from a handler. */
void rpc_server_close(rpc_server *s);

/* ------------------------------------------------------------------ */
/* Client                                                              */
/* ------------------------------------------------------------------ */

typedef struct rpc_client rpc_client;

typedef struct rpc_client_options {
  uint32_t default_deadline_ms; /* when a call gives none; default 5000 */
  uint32_t max_attempts;        /* attempts per call, first included;
                                   default 4; 1 disables retries */
  uint32_t backoff_base_ms;     /* first retry's backoff cap; default 20 */
  uint32_t backoff_max_ms;      /* cap on any backoff; default 1000 */
  uint32_t connect_wait_ms;     /* how long an attempt waits for some
                                   replica to be connected; default 1000 */
  uint32_t resolve_interval_ms; /* dns+tcp re-resolution; default 5000 */
  uint32_t reconnect_min_ms;    /* nng dialer reconnect backoff; 100 */
  uint32_t reconnect_max_ms;    /* default 2000 */
  size_t max_recv_bytes;        /* per reply; default 4 MiB */
  size_t max_send_bytes;        /* request payload cap; default 4 MiB */
  /* Outlier ejection (see "Outliers" above): a replica whose replies are
   * UNAVAILABLE eject_after times in a row is not dialled for
   * eject_base_ms, doubled for each repeat, at most eject_max_ms.
   * Defaults 5, 1000, 30000; eject_after UINT32_MAX: never eject. */
  uint32_t eject_after;
  uint32_t eject_base_ms;
  uint32_t eject_max_ms;
  /* Per-attempt timeout of idempotent calls without an idempotency key
   * (reads) whose rpc_call_options set none (Envoy's per_try_timeout): an
   * attempt not answered within it is given up and the call retried (on another
   * replica, as req0 sends the next request to the next pipe); such timeouts
   * count toward ejecting the replica that did not answer ("Outliers"). 0
   * (default): each attempt may use all the time left. */
  uint32_t attempt_timeout_ms;
  /* The calling service's identity, sent in every request (libs/svcid:
   * svc_rpc_client_new sets it). credential writes a NUL-terminated token
   * of at most cap - 1 bytes into buf for a call of method (whose package
   * names the callee: "orders.v1.Orders/GetOrder" goes to "orders"); it
   * is called once per call, so it must be fast (a cached token) and
   * thread-safe. An error from it fails the call locally. NULL: none. */
  int (*credential)(void *arg, const char *method, char *buf, size_t cap);
  void *credential_arg;
} rpc_client_options;

/* Fills o with the defaults above. */
void rpc_client_options_init(rpc_client_options *o);

/* Creates a client for address (see above; copied) and starts dialling
 * every endpoint. opts may be NULL (defaults; zero fields take defaults).
 * A name that does not resolve yet is not an error: it is retried every
 * resolve_interval_ms and calls answer UNAVAILABLE meanwhile. Returns
 * ERR_INVAL (syntax, more than RPC_MAX_ENDPOINTS endpoints), ERR_NOMEM,
 * ERR_INTERNAL (nng, thread or libsodium failure). *out is the caller's,
 * released with rpc_client_free. */
int rpc_client_new(const char *address, const rpc_client_options *opts,
                   rpc_client **out) WARN_UNUSED;

/* Stops the resolver, closes every connection and frees c. NULL-safe.
 * No other thread may be inside rpc_client_call on c (the caller joins
 * its threads first). */
void rpc_client_free(rpc_client *c);

/* Number of replicas currently connected (for readiness checks/tests). */
int rpc_client_connected(rpc_client *c);

/* Waits until at least n replicas are connected or timeout_ms passes.
 * Returns ERR_OK or ERR_TIMEOUT. */
int rpc_client_wait_connected(rpc_client *c, int n,
                              uint32_t timeout_ms) WARN_UNUSED;

typedef struct rpc_call_options {
  uint32_t deadline_ms;        /* whole call incl. retries; 0 = default */
  uint32_t attempt_timeout_ms; /* idempotent calls only: give up on one
                                  attempt after this and retry; 0 = each
                                  attempt may use all the time left */
  bool idempotent;             /* safe to run twice (a read, or a keyed
                                  write to a method that honours keys):
                                  enables retries after the request may
                                  have been seen */
  const char *request_id;      /* NULL: a new UUIDv7 */
  const char *tenant_id;       /* NULL = "" */
  const char *token;           /* NULL = "" */
  const char *idempotency_key; /* NULL = "" */
  bool maybe_twin; /* keyed calls: an earlier attempt of this very request
                      may be running elsewhere already (a load balancer
                      sent it again after a gateway died): ABORTED ("still
                      running") is retried from the first attempt on */
} rpc_call_options;

#define RPC_CALL_OPTIONS_INIT                                                  \
  { 0, 0, false, NULL, NULL, NULL, NULL, false }

typedef struct rpc_violation {
  const char *field;
  const char *description;
} rpc_violation;

/* The outcome of a call. Every pointer points into the result and lives
 * until rpc_result_free; strings are never NULL. */
typedef struct rpc_result {
  int code; /* enum rpc_code */
  const char *message;
  const rpc_violation *violations;
  size_t nviolations;
  const uint8_t *payload; /* the method's serialised reply */
  size_t payload_len;
  uint32_t attempts;       /* attempts sent or tried */
  uint32_t retry_after_ms; /* the server's advice; 0 = none */
  char request_id[129];
  void *priv_; /* internal */
} rpc_result;

/* Calls method with payload req[0..req_len) (req may be NULL when
 * req_len is 0). opts may be NULL (defaults, not idempotent). Blocks
 * until a reply, the deadline, or a final transport failure; retries as
 * described above. On ERR_OK *out holds the result (any code), owned by
 * the caller (rpc_result_free). Returns ERR_INVAL (NULL/empty/too long
 * method), ERR_TOOBIG (req_len > max_send_bytes), ERR_NOMEM; *out is
 * then NULL. Thread-safe. */
int rpc_client_call(rpc_client *c, const char *method, const void *req,
                    size_t req_len, const rpc_call_options *opts,
                    rpc_result **out) WARN_UNUSED;

/* Convenience: serialises msg and calls rpc_client_call. */
int rpc_client_call_message(rpc_client *c, const char *method,
                            const ProtobufCMessage *msg,
                            const rpc_call_options *opts,
                            rpc_result **out) WARN_UNUSED;

/* Frees a result. NULL-safe. */
void rpc_result_free(rpc_result *r);

/* ------------------------------------------------------------------ */
/* Addresses                                                           */
/* ------------------------------------------------------------------ */

typedef struct rpc_endpoint {
  bool dns;       /* dns+tcp://: resolve host periodically */
  char host[256]; /* name or IP literal (IPv6 without []) */
  int port;       /* 1..65535 */
} rpc_endpoint;

/* Parses an address list: comma-separated endpoints, optional spaces
 * around commas, each "tcp://HOST:PORT" or "dns+tcp://NAME:PORT" (HOST
 * may be an IPv6 literal in brackets). At most cap endpoints are written
 * to out; *n receives how many. Returns ERR_INVAL for an empty list, an
 * empty element, another scheme, a missing/zero/out-of-range port, a
 * missing host, a host too long, or more than cap endpoints. */
int rpc_address_parse(const char *address, rpc_endpoint *out, size_t cap,
                      size_t *n) WARN_UNUSED;

#endif
