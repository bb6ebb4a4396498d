/*
 * server.c - see server.h.
 *
 * A request's life in MHD's callbacks:
 *   uri_log       MHD has the request line: a `req` is made (the raw URI
 *                 with its query string is only visible here), becoming
 *                 the request's *con_cls.
 *   handle #1     headers are in: request id, local answers, route match,
 *                 the token (offline: signature and time, never Redis or
 *                 an RPC on this thread), the route's body cap, framing
 *                 and content-type checks. 401, 411 and 413 are queued at
 *                 once, before any body byte is read: when a body was
 *                 announced MHD then closes the connection after the
 *                 answer (the body is never read). Other errors wait for
 *                 the body to be read and dropped (at most the route's
 *                 cap), so the keep-alive connection survives them.
 *   handle #2..   body pieces: appended (bounded) or dropped.
 *   handle last   body complete: answer a pending error, or suspend and
 *                 hand the request to a worker; after the worker resumes
 *                 the connection MHD calls again and the answer is queued.
 *   completed     access log, metrics, free.
 *
 * Slow clients. MHD's idle timeout restarts on every byte, so a client
 * sending one byte every few seconds would keep a connection (and its
 * buffers) forever. Every connection therefore has a slot (MHD's
 * NOTIFY_CONNECTION, the socket context) holding a deadline for reading
 * the current request, headers and body: accept (or, on a kept-alive
 * connection, the end of the previous answer plus the idle allowance)
 * plus request_timeout_ms, tightened when the request line arrives,
 * cleared once the body is complete. A sweeper thread shuts down (2)
 * the socket of every connection past its deadline; MHD then sees the
 * end of the stream and closes it on its own thread. The slot list lock
 * is held across shutdown and across MHD's CLOSED notification, which
 * MHD sends before it closes the descriptor, so a descriptor number is
 * never shut down after it was reused. The per-address connection cap is
 * MHD's (PER_IP_CONNECTION_LIMIT): it counts TCP peers, so behind a
 * proxy it caps the proxy, not the clients.
 */
#include "services/gateway/server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "libs/obs/log.h"
#include "libs/obs/metrics.h"
#include "services/gateway/arena.h"
#include "services/gateway/clientaddr.h"
#include "services/gateway/httperr.h"
#include "services/gateway/reqid.h"
#include "services/gateway/workq.h"

#define MAX_URI 8192 /* longer request targets are cut (and not found) */
/* Bytes of an unwanted body read and dropped before the connection is
 * cut instead (see too_big). */
#define DISCARD_MAX ((size_t)16 * 1024 * 1024)

/* A connection's read deadline (see the top of the file). */
typedef struct conn_slot {
  struct conn_slot *prev, *next; /* under server.slots_mu */
  MHD_socket fd;
  atomic_int_fast64_t deadline_ms; /* monotonic; 0: not reading */
  bool cut;                        /* under slots_mu */
} conn_slot;

struct server {
  server_config cfg;
  pthread_mutex_t slots_mu;
  conn_slot *slots;
  pthread_t sweeper;
  bool sweeper_started;
  pthread_mutex_t stop_mu;
  pthread_cond_t stop_cv;
  bool stopping; /* under stop_mu */
  char bind_addr[64];
  struct MHD_Daemon *d;
  workq *q;
  int port;
  atomic_int_fast64_t in_flight;
  atomic_bool draining;
  MHD_socket quiesced_fd;
  char **labels; /* per route row: "METHOD /path" */
  size_t nlabels;
};

enum req_state {
  REQ_NEW = 0, /* before handle #1 */
  REQ_BODY,    /* reading the body for the pipeline */
  REQ_DISCARD, /* reading and dropping the body, an error is pending */
  REQ_RUNNING, /* suspended, a worker has it */
  REQ_READY,   /* the answer is ready to queue */
  REQ_SENT,    /* queued */
};

typedef struct req {
  server *srv;
  struct MHD_Connection *conn;
  arena a;
  int state;
  int64_t start_ns;
  int64_t start_ms;
  char rid[REQID_MAX + 1];
  char method[16];
  const char *uri; /* raw request target, in the arena */
  size_t path_len; /* uri[0..path_len) is the path */
  const char *query;
  size_t query_len;
  route_match match;
  const char *route_label; /* "GET /v1/tenant" or "-" */
  bool local;              /* /healthz: no API headers, no access log */
  bool api;                /* API answer: nosniff, no-store */
  const char *origin;      /* allowed Origin, or NULL */
  const char *authorization, *host, *x_tenant, *idem_key;
  bool lb_retry; /* X-Lb-Retry: the load balancer's repeat (lb/nginx_conf) */
  char remote[CLIENTADDR_STRLEN]; /* the client (clientaddr.h) */
  char peer[CLIENTADDR_STRLEN];   /* the TCP peer */
  size_t max_body; /* the route's cap (the default before a route) */
  long long clen;  /* Content-Length, 0 when none */
  char *body;
  size_t body_len, body_cap;
  size_t discarded; /* body bytes read and dropped */
  pipeline_answer ans;
  /* A streamed route (ROUTE_STREAMED; see "Streamed routes" below). */
  pipeline_request in; /* what the worker passes on; lives with the req */
  pipeline_stream *stream;
  bool upload;       /* a streamed upload: body in parts of PART */
  long long got;     /* upload: body bytes taken from MHD */
  int64_t read_left; /* upload: read time left while a part is away, ms */
  bool last_part;    /* upload: the part in flight ends the body */
  char *part;        /* download: the part held, malloc'd */
  size_t part_len;   /* ... its bytes */
  uint64_t part_pos; /* ... where it starts in the body */
  uint64_t total;    /* ... the whole body's bytes */
  bool fetch_failed; /* ... the next part could not be had */
  bool preflight;
  const char *allow;   /* Allow header (405, OPTIONS) */
  const appfile *file; /* a console file (200, or 304 when not_modified) */
  bool not_modified;
} req;

/* Streamed routes (their section is near the end). */
static void download_job(void *arg);
static struct MHD_Response *download_response(req *r);

/* ------------------------------------------------------------ metrics -- */

static metrics_family *m_requests, *m_duration, *m_stage, *m_upstream,
    *m_ratelimit, *m_rejected, *m_inflight;
static metrics_child *c_inflight;

static void metrics_init(void) {
  static const char *const route_status[] = {"route", "status"};
  static const char *const stage[] = {"stage"};
  static const char *const rpc[] = {"rpc"};
  static const char *const rl[] = {"bucket", "decision"};
  static const char *const reason[] = {"reason"};
  m_requests = metrics_counter("gateway_http_requests_total",
                               "HTTP requests answered", 2, route_status);
  m_duration = metrics_histogram("gateway_http_request_duration_seconds",
                                 "HTTP request latency, arrival to answer", 2,
                                 route_status, NULL, 0);
  m_stage = metrics_histogram("gateway_stage_duration_seconds",
                              "Time per pipeline stage", 1, stage, NULL, 0);
  m_upstream =
      metrics_histogram("gateway_upstream_duration_seconds",
                        "Backend RPC time per request", 1, rpc, NULL, 0);
  m_ratelimit = metrics_counter("gateway_ratelimit_decisions_total",
                                "Rate limit decisions", 2, rl);
  m_rejected =
      metrics_counter("gateway_rejected_total",
                      "Requests refused before the pipeline", 1, reason);
  m_inflight = metrics_gauge("gateway_requests_in_flight",
                             "Requests received and not yet answered", 0, NULL);
  c_inflight = metrics_child_get(m_inflight, NULL);
}

/* Children of the {route,status} families, looked up once per pair:
 * metrics_child_get takes the family's lock, which every request would
 * otherwise contend for. Open addressing over (label pointer, status);
 * label pointers are static strings or route-table rows' labels, stable
 * for the process. A lost race stores the same pointers twice. */
#define CHILD_CACHE 512

typedef struct child_slot {
  _Atomic(const char *) label;
  atomic_int status;
  _Atomic(metrics_child *) count, duration;
} child_slot;

static child_slot child_cache[CHILD_CACHE];

static void route_children(const char *label, int status, metrics_child **count,
                           metrics_child **duration) {
  size_t h = ((uintptr_t)label >> 4) * 31u + (size_t)status;
  for (size_t i = 0; i < 8; i++) {
    child_slot *c = &child_cache[(h + i) % CHILD_CACHE];
    const char *l = atomic_load(&c->label);
    if (l == label && atomic_load(&c->status) == status) {
      *count = atomic_load(&c->count);
      *duration = atomic_load(&c->duration);
      if (*count != NULL && *duration != NULL) return;
      break;
    }
    if (l == NULL) {
      char st[8];
      snprintf(st, sizeof st, "%d", status);
      const char *v[] = {label, st};
      *count = metrics_child_get(m_requests, v);
      *duration = metrics_child_get(m_duration, v);
      const char *expected = NULL;
      if (atomic_compare_exchange_strong(&c->label, &expected, label)) {
        atomic_store(&c->count, *count);
        atomic_store(&c->duration, *duration);
        atomic_store(&c->status, status);
      }
      return;
    }
  }
  char st[8];
  snprintf(st, sizeof st, "%d", status);
  const char *v[] = {label, st};
  *count = metrics_child_get(m_requests, v);
  *duration = metrics_child_get(m_duration, v);
}

static void observe_stage(const char *name, int64_t ns) {
  if (ns <= 0) return;
  const char *v[] = {name};
  metrics_observe(metrics_child_get(m_stage, v), (double)ns / 1e9);
}

static void count_rl(const char *bucket, int state) {
  static const char *const names[] = {NULL, "allowed", "limited", "failed_open",
                                      "failed_closed"};
  if (state <= PIPELINE_RL_NONE || state > PIPELINE_RL_FAILED_CLOSED) return;
  const char *v[] = {bucket, names[state]};
  metrics_inc(metrics_child_get(m_ratelimit, v));
}

static void count_rejected(const char *reason) {
  const char *v[] = {reason};
  metrics_inc(metrics_child_get(m_rejected, v));
}

/* -------------------------------------------------------- connections -- */

static conn_slot *slot_of(struct MHD_Connection *c) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return ci != NULL ? ci->socket_context : NULL;
}

static void set_deadline(struct MHD_Connection *c, int64_t deadline_ms) {
  conn_slot *sl = slot_of(c);
  if (sl != NULL) atomic_store(&sl->deadline_ms, deadline_ms);
}

/* Stops the read deadline's clock (returns the time left, ms; 0 when
 * none runs) and starts it again with what was left: the time a streamed
 * upload's part spends with the backend is not the client's. */
static int64_t pause_deadline(struct MHD_Connection *c) {
  conn_slot *sl = slot_of(c);
  int64_t d = sl != NULL ? atomic_exchange(&sl->deadline_ms, 0) : 0;
  if (d == 0) return 0;
  int64_t left = d - time_mono_ms();
  return left > 1 ? left : 1;
}

static void resume_deadline(struct MHD_Connection *c, int64_t left_ms) {
  if (left_ms > 0) set_deadline(c, time_mono_ms() + left_ms);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **ctx,
                          enum MHD_ConnectionNotificationCode code) {
  server *s = cls;
  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    conn_slot *sl = calloc(1, sizeof *sl);
    if (sl == NULL || ci == NULL) {
      /* No deadline could be kept: refuse rather than risk a slow one. */
      if (ci != NULL) (void)shutdown(ci->connect_fd, SHUT_RDWR);
      free(sl);
      return;
    }
    sl->fd = ci->connect_fd;
    atomic_store(&sl->deadline_ms, time_mono_ms() + s->cfg.request_timeout_ms);
    pthread_mutex_lock(&s->slots_mu);
    sl->next = s->slots;
    if (s->slots != NULL) s->slots->prev = sl;
    s->slots = sl;
    pthread_mutex_unlock(&s->slots_mu);
    *ctx = sl;
    return;
  }
  conn_slot *sl = *ctx;
  if (sl == NULL) return;
  *ctx = NULL;
  pthread_mutex_lock(&s->slots_mu);
  if (sl->prev != NULL)
    sl->prev->next = sl->next;
  else
    s->slots = sl->next;
  if (sl->next != NULL) sl->next->prev = sl->prev;
  pthread_mutex_unlock(&s->slots_mu);
  free(sl);
}

/* One pass: cuts every connection past its read deadline. */
static void sweep(server *s) {
  int64_t now = time_mono_ms();
  pthread_mutex_lock(&s->slots_mu);
  for (conn_slot *sl = s->slots; sl != NULL; sl = sl->next) {
    int64_t d = atomic_load(&sl->deadline_ms);
    if (d == 0 || now < d || sl->cut) continue;
    sl->cut = true;
    (void)shutdown(sl->fd, SHUT_RDWR);
    count_rejected("request_timeout");
  }
  pthread_mutex_unlock(&s->slots_mu);
}

static void *sweeper_main(void *arg) {
  server *s = arg;
  /* A quarter of the timeout (at most 250 ms): a connection is cut at
   * most that late. */
  int64_t period = s->cfg.request_timeout_ms / 4;
  if (period > 250) period = 250;
  if (period < 10) period = 10;
  pthread_mutex_lock(&s->stop_mu);
  while (!s->stopping) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += (long)period * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    (void)pthread_cond_timedwait(&s->stop_cv, &s->stop_mu, &ts);
    if (s->stopping) break;
    pthread_mutex_unlock(&s->stop_mu);
    sweep(s);
    pthread_mutex_lock(&s->stop_mu);
  }
  pthread_mutex_unlock(&s->stop_mu);
  return NULL;
}

/* ------------------------------------------------------------ answers -- */

static void answer_error(req *r, int code, const char *msg, const char *field,
                         const char *desc) {
  rpc_violation v = {field, desc};
  pipeline_answer_error(&r->ans, code, msg, r->rid, field ? &v : NULL,
                        field ? 1 : 0);
}

/* An HTTP status outside the RPC table (411, 413, 415, 405): the body
 * uses the closest code; the status is the gateway's. */
static void answer_status(req *r, int status, int code, const char *msg) {
  answer_error(r, code, msg, NULL, NULL);
  r->ans.status = status;
}

static int add(struct MHD_Response *resp, const char *k, const char *v) {
  return MHD_add_response_header(resp, k, v) == MHD_YES ? 0 : 1;
}

/* A console file: its bytes are the table's (they outlive every
 * response), its headers a page's rather than an API answer's. */
static enum MHD_Result queue_file(req *r) {
  const appfile *f = r->file;
  r->ans.status = r->not_modified ? 304 : 200;
  struct MHD_Response *resp = MHD_create_response_from_buffer(
      r->not_modified ? 0 : f->len, r->not_modified ? NULL : (void *)f->data,
      MHD_RESPMEM_PERSISTENT);
  if (resp == NULL) return MHD_NO;
  int bad = 0;
  bad |= add(resp, "X-Request-Id", r->rid);
  bad |= add(resp, "Content-Type", f->type);
  bad |= add(resp, "Content-Security-Policy", appfiles_csp(r->srv->cfg.app));
  bad |= add(resp, "X-Content-Type-Options", "nosniff");
  bad |= add(resp, "Referrer-Policy", "no-referrer");
  bad |= add(resp, "X-Frame-Options", "DENY");
  /* Revalidated on every load (a 304 is a few bytes): a new console
   * after a deploy is picked up at once, never mixed with cached
   * modules of the old one. */
  bad |= add(resp, "Cache-Control", "no-cache");
  bad |= add(resp, "ETag", f->etag);
  if (atomic_load(&r->srv->draining)) bad |= add(resp, "Connection", "close");
  enum MHD_Result rc = MHD_NO;
  if (!bad) rc = MHD_queue_response(r->conn, (unsigned)r->ans.status, resp);
  MHD_destroy_response(resp);
  r->state = REQ_SENT;
  set_deadline(r->conn, 0);
  return rc;
}

static enum MHD_Result queue_answer(req *r) {
  if (r->file != NULL) return queue_file(r);
  pipeline_answer *a = &r->ans;
  struct MHD_Response *resp;
  if (r->stream != NULL && !r->upload && a->code == RPC_OK) {
    resp = download_response(r);
  } else if (a->body != NULL) {
    resp = MHD_create_response_from_buffer(a->body_len, a->body,
                                           MHD_RESPMEM_MUST_FREE);
    if (resp != NULL) a->body = NULL; /* MHD frees it */
  } else {
    resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
  }
  if (resp == NULL) return MHD_NO;
  int bad = 0;
  bad |= add(resp, "X-Request-Id", r->rid);
  if (r->local) {
    bad |= add(resp, "Content-Type", "text/plain; charset=utf-8");
  } else {
    if (a->body_len > 0 || a->status >= 400 || a->content_type != NULL)
      bad |=
          add(resp, "Content-Type",
              a->content_type != NULL ? a->content_type : "application/json");
    bad |= add(resp, "X-Content-Type-Options", "nosniff");
    bad |= add(resp, "Cache-Control", "no-store");
  }
  if (r->origin != NULL) {
    bad |= add(resp, "Access-Control-Allow-Origin", r->origin);
    bad |= add(resp, "Vary", "Origin");
    if (r->preflight) {
      bad |=
          add(resp, "Access-Control-Allow-Methods", r->allow ? r->allow : "");
      bad |= add(resp, "Access-Control-Allow-Headers", CORS_ALLOW_HEADERS);
      bad |= add(resp, "Access-Control-Max-Age", CORS_MAX_AGE);
    } else {
      bad |= add(resp, "Access-Control-Expose-Headers", CORS_EXPOSE_HEADERS);
    }
  }
  if (r->allow != NULL && (a->status == 405 || r->preflight))
    bad |= add(resp, "Allow", r->allow);
  if (a->www_authenticate)
    bad |= add(resp, "WWW-Authenticate",
               a->invalid_token ? "Bearer error=\"invalid_token\"" : "Bearer");
  /* Every 429 says when to come back (1 s when nobody said); a 503 does
   * when its cause knows (rate limiting failed closed, a backend's
   * advice). */
  if (a->status == 429 || (a->status == 503 && a->retry_after_s > 0)) {
    char ra[24];
    snprintf(ra, sizeof ra, "%lld",
             (long long)(a->retry_after_s > 0 ? a->retry_after_s : 1));
    bad |= add(resp, "Retry-After", ra);
  }
  if (atomic_load(&r->srv->draining)) bad |= add(resp, "Connection", "close");
  enum MHD_Result rc = MHD_NO;
  if (!bad) rc = MHD_queue_response(r->conn, (unsigned)a->status, resp);
  MHD_destroy_response(resp);
  r->state = REQ_SENT;
  set_deadline(r->conn, 0); /* the request is read; answering now */
  return rc;
}

/* ------------------------------------------------------------ request -- */

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c) {
  server *s = cls;
  req *r = calloc(1, sizeof *r);
  if (r == NULL) return NULL;
  r->srv = s;
  r->conn = c;
  r->start_ns = time_mono_ns();
  r->start_ms = time_mono_ms();
  arena_init(&r->a, 2048, 256 * 1024);
  size_t n = strnlen(uri, MAX_URI + 1);
  if (n > MAX_URI) n = MAX_URI;
  r->uri = arena_strndup(&r->a, uri, n);
  if (r->uri == NULL) r->uri = "";
  r->route_label = "-";
  r->max_body = s->cfg.max_body;
  /* The request line is in: from now on the request has at most
   * request_timeout_ms to arrive whole (the slot may hold an earlier,
   * tighter deadline from the accept). */
  conn_slot *sl = slot_of(c);
  if (sl != NULL) {
    int64_t d = r->start_ms + s->cfg.request_timeout_ms;
    int64_t cur = atomic_load(&sl->deadline_ms);
    if (cur == 0 || d < cur) atomic_store(&sl->deadline_ms, d);
  }
  atomic_fetch_add(&s->in_flight, 1);
  metrics_add(c_inflight, 1);
  return r;
}

static const char *header(req *r, const char *name) {
  const char *v = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
  if (v == NULL) return NULL;
  return arena_strndup(&r->a, v, strnlen(v, 65536));
}

/* Joins every X-Forwarded-For line in order ("a, b" + "c" = "a, b, c"),
 * bounded by CLIENTADDR_XFF_MAX (over it: truncated, see clientaddr.h). */
typedef struct xff_buf {
  char text[CLIENTADDR_XFF_MAX + 1];
  size_t len;
  bool seen, truncated;
} xff_buf;

static enum MHD_Result xff_line(void *cls, enum MHD_ValueKind kind,
                                const char *key, const char *value) {
  xff_buf *b = cls;
  if (key == NULL || value == NULL || strcasecmp(key, "X-Forwarded-For") != 0)
    return MHD_YES;
  size_t n = strnlen(value, CLIENTADDR_XFF_MAX + 1);
  size_t sep = b->seen ? 1 : 0;
  if (b->len + sep + n > CLIENTADDR_XFF_MAX) {
    b->truncated = true;
    return MHD_NO;
  }
  if (sep) b->text[b->len++] = ',';
  memcpy(b->text + b->len, value, n);
  b->len += n;
  b->text[b->len] = '\0';
  b->seen = true;
  return MHD_YES;
}

/* r->peer: the TCP peer; r->remote: the client (clientaddr.h). */
static void remote_addr(req *r) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  const struct sockaddr *sa = ci != NULL ? ci->client_addr : NULL;
  (void)clientaddr_pick(NULL, sa, NULL, false, r->peer, sizeof r->peer);
  str_copy(r->remote, r->peer, sizeof r->remote);
  const clientaddr_trust *t = r->srv->cfg.trusted_proxies;
  if (clientaddr_trust_count(t) == 0 || !clientaddr_is_trusted(t, r->peer))
    return;
  xff_buf *b = malloc(sizeof *b);
  if (b == NULL) return; /* the peer it is */
  b->len = 0;
  b->seen = b->truncated = false;
  b->text[0] = '\0';
  (void)MHD_get_connection_values(r->conn, MHD_HEADER_KIND, xff_line, b);
  (void)clientaddr_pick(t, sa, b->seen ? b->text : NULL, b->truncated,
                        r->remote, sizeof r->remote);
  free(b);
}

/* ct is the media type want (ASCII case-insensitive), parameters aside. */
static bool is_type(const char *ct, const char *want) {
  if (ct == NULL) return false;
  while (*ct == ' ') ct++;
  size_t n = strlen(want);
  if (strncasecmp(ct, want, n) != 0) return false;
  ct += n;
  while (*ct == ' ') ct++;
  return *ct == '\0' || *ct == ';';
}

static bool route_has_body(const route *rt) {
  return strcmp(rt->method, "GET") != 0 && strcmp(rt->method, "DELETE") != 0;
}

/* The route label for metrics and logs ("GET /v1/tenant"): one string
 * per row, made at start-up, so its pointer is stable (child_cache) and
 * the cardinality bounded. */
static const char *label(req *r, const route *rt) {
  const server *s = r->srv;
  size_t i = (size_t)(rt - route_table_row(s->cfg.routes, 0));
  return i < s->nlabels ? s->labels[i] : "-";
}

/* A token route: refuses (401, answer set) a missing or malformed
 * Authorization, and, when a body follows, a token that is invalid
 * offline (libs/authn: shape, known kid, signature, time - no Redis, no
 * RPC, so MHD's thread never waits). Without a body there is nothing to
 * protect: the signature is left to the workers, keeping an Ed25519
 * verification per new token off the few I/O threads. Revocation and the
 * tenant's status are the pipeline's. Cannot tell (no key set yet): the
 * pipeline decides. */
static bool token_refused(req *r, bool body_follows) {
  const char *tok;
  size_t len;
  if (!pipeline_bearer(r->authorization, &tok, &len)) {
    answer_error(r, RPC_UNAUTHENTICATED, "a bearer access token is required",
                 NULL, NULL);
    return true;
  }
  if (r->srv->cfg.authn == NULL || !body_follows) return false;
  enum authn_result why = AUTHN_OK;
  if (authn_verify_offline(r->srv->cfg.authn, tok, len, &why) != ERR_INVAL)
    return false;
  int code = authn_result_code(why);
  if (code != RPC_UNAUTHENTICATED) return false;
  answer_error(r, code, authn_result_str(why), NULL, NULL);
  r->ans.invalid_token = true;
  return true;
}

/* A request under /app/: a console file, 304 when the client holds it,
 * 404 or 405 (the API's error body) otherwise. */
static bool on_app(req *r, const char *method) {
  r->route_label = "GET /app/";
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
    r->allow = "GET, HEAD";
    answer_status(r, 405, RPC_UNIMPLEMENTED, "method not allowed on this path");
    return true;
  }
  r->file = appfiles_find(r->srv->cfg.app, r->uri, r->path_len);
  if (r->file == NULL) {
    answer_error(r, RPC_NOT_FOUND, "no such path", NULL, NULL);
    return true;
  }
  const char *inm =
      MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "If-None-Match");
  r->not_modified = inm != NULL && strstr(inm, r->file->etag) != NULL;
  r->ans.status = r->not_modified ? 304 : 200;
  return true;
}

/* handle #1: everything the headers decide. Returns true when an answer
 * is decided (r->ans is set). Sets *body_follows. */
static bool on_headers(req *r, const char *method, bool *body_follows) {
  server *s = r->srv;
  str_copy(r->method, method, sizeof r->method);
  reqid_choose(
      MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "X-Request-Id"),
      r->rid);
  remote_addr(r);
  const char *q = strchr(r->uri, '?');
  r->path_len = q ? (size_t)(q - r->uri) : strlen(r->uri);
  r->query = q ? q + 1 : NULL;
  r->query_len = q ? strlen(q + 1) : 0;
  r->api = true;
  const char *origin =
      MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Origin");
  if (s->cfg.cors != NULL && cors_allowed(s->cfg.cors, origin))
    r->origin = arena_strndup(&r->a, origin, strlen(origin));

  const char *te = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                               "Transfer-Encoding");
  const char *cl =
      MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Length");
  bool chunked = te != NULL && strcasecmp(te, "chunked") == 0;
  long long clen = 0;
  if (cl != NULL) { /* MHD has already refused a malformed one */
    char *end;
    clen = strtoll(cl, &end, 10);
    if (end == cl || *end != '\0' || clen < 0) clen = 0;
  }
  *body_follows = chunked || clen > 0;

  if (te != NULL && !chunked) {
    /* MHD would read such a body until the connection closes: we cannot
     * frame it, so refuse before reading anything. */
    *body_follows = false;
    answer_status(r, 411, RPC_INVALID_ARGUMENT,
                  "a request body must have Content-Length or chunked "
                  "Transfer-Encoding");
    return true;
  }
  r->clen = clen;

  if (r->path_len == 8 && memcmp(r->uri, "/healthz", 8) == 0 &&
      (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)) {
    r->local = true;
    r->api = false;
    r->route_label = "GET /healthz";
    r->ans.status = 200;
    r->ans.body = strdup("ok");
    r->ans.body_len = r->ans.body ? 2 : 0;
    return true;
  }

  if (s->cfg.app != NULL && appfiles_owns(r->uri, r->path_len))
    return on_app(r, method);

  bool options = strcmp(method, "OPTIONS") == 0;
  int rc = route_match_path(s->cfg.routes, options ? "GET" : method, r->uri,
                            r->path_len, &r->a, &r->match);
  if (rc == ERR_INVAL) {
    answer_error(r, RPC_INVALID_ARGUMENT, "invalid path parameter",
                 r->match.bad_param, "malformed percent-encoding");
    return true;
  }
  if (rc != ERR_OK) {
    answer_error(r, RPC_INTERNAL, NULL, NULL, NULL);
    return true;
  }
  if (r->match.result == ROUTE_NOT_FOUND) {
    answer_error(r, RPC_NOT_FOUND, "no such path", NULL, NULL);
    return true;
  }
  if (options) {
    /* Preflight (or a plain OPTIONS): the path exists; say what it takes. */
    r->route_label = "OPTIONS";
    r->allow = arena_strndup(&r->a, r->match.allow, strlen(r->match.allow));
    r->preflight = true;
    r->ans.status = 204;
    return true;
  }
  if (r->match.result == ROUTE_METHOD_NOT_ALLOWED) {
    r->allow = arena_strndup(&r->a, r->match.allow, strlen(r->match.allow));
    answer_status(r, 405, RPC_UNIMPLEMENTED, "method not allowed on this path");
    r->ans.code = RPC_UNIMPLEMENTED;
    return true;
  }
  const route *rt = r->match.route;
  r->route_label = label(r, rt);
  r->max_body = rt->max_body != 0 ? rt->max_body : s->cfg.max_body;
  r->authorization = header(r, "Authorization");
  if (rt->min_role != ROUTE_ANYONE && token_refused(r, *body_follows))
    return true;
  if ((size_t)clen > r->max_body) {
    *body_follows = false;
    answer_status(r, 413, RPC_INVALID_ARGUMENT,
                  "the request body is larger than the limit");
    return true;
  }
  const char *ct =
      MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type");
  if (*body_follows && route_has_body(rt) && rt->raw_body != NULL &&
      !is_type(ct, "application/octet-stream")) {
    answer_status(r, 415, RPC_INVALID_ARGUMENT,
                  "the request body must be raw bytes (Content-Type: "
                  "application/octet-stream)");
    return true;
  }
  if (*body_follows && route_has_body(rt) && rt->raw_body == NULL &&
      !is_type(ct, "application/json")) {
    answer_status(r, 415, RPC_INVALID_ARGUMENT,
                  "the request body must be JSON (Content-Type: "
                  "application/json)");
    return true;
  }
  if ((rt->flags & ROUTE_STREAMED) != 0 && rt->raw_body != NULL) {
    if (r->clen == 0 && *body_follows) {
      /* Parts name the whole size; a chunked body has none yet. */
      *body_follows = false;
      answer_status(r, 411, RPC_INVALID_ARGUMENT,
                    "this upload needs Content-Length");
      return true;
    }
    r->upload = true;
  }
  r->host = header(r, "Host");
  r->x_tenant = header(r, "X-Tenant");
  r->idem_key = header(r, "Idempotency-Key");
  r->lb_retry = header(r, "X-Lb-Retry") != NULL;
  return false;
}

/* What the pipeline gets of r (kept in r: a stream borrows it). */
static void fill_request(req *r) {
  r->in = (pipeline_request){
      .match = &r->match,
      .query = r->query,
      .query_len = r->query_len,
      .body = r->body,
      .body_len = r->body_len,
      .authorization = r->authorization,
      .host = r->host,
      .x_tenant = r->x_tenant,
      .idempotency_key = r->idem_key,
      .lb_retry = r->lb_retry,
      .client_addr = r->remote,
      .request_id = r->rid,
      .start_mono_ms = r->start_ms,
  };
}

static void run_job(void *arg) {
  req *r = arg;
  log_set_request_id(r->rid);
  fill_request(r);
  pipeline_run(r->srv->cfg.pipeline, &r->in, &r->ans);
  log_set_request_id(NULL);
  r->state = REQ_READY;
  MHD_resume_connection(r->conn);
}

/* The body is complete: hand the request to a worker. */
static enum MHD_Result dispatch(req *r) {
  r->state = REQ_RUNNING;
  set_deadline(r->conn, 0); /* read whole: the pipeline's deadline now */
  MHD_suspend_connection(r->conn);
  bool streamed = (r->match.route->flags & ROUTE_STREAMED) != 0;
  int rc = workq_submit(r->srv->q, streamed ? download_job : run_job, r);
  if (rc != ERR_OK) {
    count_rejected("queue_full");
    answer_error(r, RPC_UNAVAILABLE, NULL, NULL, NULL);
    r->state = REQ_READY;
    MHD_resume_connection(r->conn);
  }
  return MHD_YES;
}

/* The body went over max_body while streaming (chunked). MHD accepts an
 * answer only before the body or after all of it, so the rest is read and
 * dropped (up to DISCARD_MAX, then the connection is cut) and the 413 goes
 * out at the end. */
static enum MHD_Result too_big(req *r) {
  answer_status(r, 413, RPC_INVALID_ARGUMENT,
                "the request body is larger than the limit");
  r->state = REQ_DISCARD;
  return MHD_YES;
}

static enum MHD_Result append_body(req *r, const char *data, size_t n) {
  size_t max = r->max_body;
  if (n > max - r->body_len) {
    r->discarded = r->body_len + n;
    return too_big(r);
  }
  if (r->body_len + n > r->body_cap) {
    size_t cap = r->body_cap ? r->body_cap : 4096;
    while (cap < r->body_len + n) cap *= 2;
    if (cap > max) cap = max;
    char *b = realloc(r->body, cap);
    if (b == NULL) {
      answer_error(r, RPC_INTERNAL, NULL, NULL, NULL);
      return queue_answer(r);
    }
    r->body = b;
    r->body_cap = cap;
  }
  memcpy(r->body + r->body_len, data, n);
  r->body_len += n;
  return MHD_YES;
}

/* ---------------------------------------------------- streamed routes -- */

/*
 * ROUTE_STREAMED (route.h; the pipeline's side in pipeline_stream.c).
 *
 * Upload: the body is taken from MHD up to PART bytes at a time; what MHD
 * offers beyond that stays in its buffer (*upload_size left non-zero). A
 * full part suspends the connection - MHD then reads nothing more from
 * the socket, so the client waits on TCP's window, not on our memory -
 * and a worker sends it; the worker resumes the connection and MHD offers
 * the rest again. The last part goes when the body is complete. An error,
 * or "done" early (the file existed), makes the rest of the body be read
 * and dropped, and the answer go out after it, as for any error (MHD
 * answers only before or after a body). The part buffer grows with what
 * arrives, so a slow upload holds what it sent, not PART. The read
 * deadline (request_timeout_ms) stops while a part is with the backend:
 * it bounds the client's slowness, not ours.
 *
 * Download: the first part (a worker) decides the answer. When the body
 * is larger than that part, the answer is a callback response of the
 * whole size whose reader copies from the part held and, at its end,
 * suspends the connection and has a worker fetch the next one (MHD allows
 * suspending from a content reader; returning 0 while suspended is its
 * way to say "not yet"). A part that cannot be had ends the body early:
 * MHD closes the connection, and the client sees fewer bytes than
 * Content-Length, never wrong ones.
 */
#define PART ROUTE_PART_BYTES

static void upload_job(void *arg) {
  req *r = arg;
  log_set_request_id(r->rid);
  bool ok = true, done = false;
  if (r->stream == NULL) {
    fill_request(r);
    ok = pipeline_stream_open(r->srv->cfg.pipeline, &r->in, r->clen, &r->ans,
                              &r->stream);
  }
  if (ok) ok = pipeline_stream_put(r->stream, r->body, r->body_len, &done);
  r->body_len = 0;
  log_set_request_id(NULL);
  if (r->last_part) {
    r->state = REQ_READY;
  } else {
    r->state = ok && !done ? REQ_BODY : REQ_DISCARD;
    resume_deadline(r->conn, r->read_left);
  }
  MHD_resume_connection(r->conn);
}

static enum MHD_Result send_part(req *r, bool last) {
  r->last_part = last;
  r->state = REQ_RUNNING;
  r->read_left = pause_deadline(r->conn); /* the last: read whole */
  MHD_suspend_connection(r->conn);
  if (workq_submit(r->srv->q, upload_job, r) != ERR_OK) {
    count_rejected("queue_full");
    answer_error(r, RPC_UNAVAILABLE, NULL, NULL, NULL);
    r->state = last ? REQ_READY : REQ_DISCARD;
    if (!last) resume_deadline(r->conn, r->read_left);
    MHD_resume_connection(r->conn);
  }
  return MHD_YES;
}

/* A piece of a streamed upload's body (*n bytes; 0: the body is over). */
static enum MHD_Result upload_body(req *r, const char *data, size_t *n) {
  if (*n == 0) return send_part(r, true); /* also an empty body's one */
  size_t take = *n < PART - r->body_len ? *n : PART - r->body_len;
  if (r->body_len + take > r->body_cap) {
    size_t cap = r->body_cap ? r->body_cap * 2 : 16 * 1024;
    while (cap < r->body_len + take) cap *= 2;
    char *b = realloc(r->body, cap < PART ? cap : PART);
    if (b == NULL) {
      answer_error(r, RPC_INTERNAL, NULL, NULL, NULL);
      r->state = REQ_DISCARD;
      return MHD_YES;
    }
    r->body = b;
    r->body_cap = cap < PART ? cap : PART;
  }
  memcpy(r->body + r->body_len, data, take);
  r->body_len += take;
  r->got += (long long)take;
  *n -= take;
  if (r->body_len == PART && r->got < r->clen) return send_part(r, false);
  return MHD_YES;
}

static void download_job(void *arg) {
  req *r = arg;
  log_set_request_id(r->rid);
  int64_t size = 0;
  if (r->stream == NULL) { /* the first part decides the answer */
    bool head = strcmp(r->method, "HEAD") == 0;
    fill_request(r);
    if (pipeline_stream_open(r->srv->cfg.pipeline, &r->in, 0, &r->ans,
                             &r->stream) &&
        pipeline_stream_get(r->stream, 0, head ? 0 : PART, &size, &r->part,
                            &r->part_len))
      r->total = (uint64_t)size;
    r->state = REQ_READY;
  } else { /* the next part, from part_pos (read_part set it) */
    free(r->part);
    r->part = NULL;
    r->part_len = 0;
    if (!pipeline_stream_get(r->stream, (int64_t)r->part_pos, PART, &size,
                             &r->part, &r->part_len) ||
        (uint64_t)size != r->total || r->part_len == 0)
      r->fetch_failed = true;
  }
  log_set_request_id(NULL);
  MHD_resume_connection(r->conn);
}

static ssize_t read_part(void *cls, uint64_t pos, char *buf, size_t max) {
  req *r = cls;
  if (r->fetch_failed) return MHD_CONTENT_READER_END_WITH_ERROR;
  if (pos >= r->total) return MHD_CONTENT_READER_END_OF_STREAM;
  if (pos < r->part_pos || pos - r->part_pos >= r->part_len) {
    r->part_pos = pos;
    MHD_suspend_connection(r->conn);
    if (workq_submit(r->srv->q, download_job, r) != ERR_OK) {
      count_rejected("queue_full");
      r->fetch_failed = true;
      MHD_resume_connection(r->conn);
    }
    return 0;
  }
  size_t off = (size_t)(pos - r->part_pos);
  size_t n = r->part_len - off < max ? r->part_len - off : max;
  memcpy(buf, r->part + off, n);
  return (ssize_t)n;
}

/* The answer of a streamed download: the first part's bytes when they
 * are the whole body (or for HEAD: none, but the whole size), else the
 * reader above. */
static struct MHD_Response *download_response(req *r) {
  if (r->part_len == r->total) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        r->part_len, r->part, MHD_RESPMEM_MUST_FREE);
    if (resp != NULL) r->part = NULL; /* MHD frees it */
    return resp;
  }
  return MHD_create_response_from_callback(r->total, 64 * 1024, read_part, r,
                                           NULL);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
  req *r = *con_cls;
  if (r == NULL) return MHD_NO; /* on_uri could not allocate */
  switch (r->state) {
  case REQ_NEW: {
    bool body_follows = false;
    if (on_headers(r, method, &body_follows)) {
      /* An answer decided without a route (404, 405, ...) still
       * refuses to read an announced body over the default cap. */
      if (body_follows && r->ans.status != 401 &&
          (size_t)r->clen > r->max_body) {
        answer_status(r, 413, RPC_INVALID_ARGUMENT,
                      "the request body is larger than the limit");
        r->allow = NULL;
        r->file = NULL;
        r->local = false;
        r->preflight = false;
      }
      /* An answer queued on this first call makes MHD close the
       * connection (it cannot know yet that no body follows), which is
       * right only when the body must not be read (411, 413 by length,
       * 401 before a body: an unauthenticated client never gets the
       * gateway to read or hold its body).
       * Every other answer waits for the next call, after the body (if
       * any) has been read and dropped: keep-alive survives. */
      if (r->ans.status == 411 || r->ans.status == 413 ||
          (r->ans.status == 401 && body_follows))
        return queue_answer(r);
      r->state = REQ_DISCARD;
      return MHD_YES;
    }
    r->state = REQ_BODY;
    return MHD_YES;
  }
  case REQ_BODY:
    if (r->upload) return upload_body(r, upload, upload_size);
    if (*upload_size > 0) {
      size_t n = *upload_size;
      *upload_size = 0;
      /* A GET or DELETE body means nothing: dropped, but still capped. */
      if (!route_has_body(r->match.route)) {
        r->discarded += n;
        return r->discarded > r->max_body ? too_big(r) : MHD_YES;
      }
      return append_body(r, upload, n);
    }
    return dispatch(r);
  case REQ_DISCARD:
    if (*upload_size > 0) {
      r->discarded += *upload_size;
      *upload_size = 0;
      if (r->discarded > r->max_body && r->ans.status != 413)
        return too_big(r); /* the 413 replaces the pending error */
      /* Cut past DISCARD_MAX, or past the route's cap where that is more
       * (a refused 25 MiB upload is read to its end, then answered). */
      return r->discarded > DISCARD_MAX && r->discarded > r->max_body ? MHD_NO
                                                                      : MHD_YES;
    }
    return queue_answer(r);
  case REQ_READY:
    return queue_answer(r);
  case REQ_RUNNING: /* not expected: suspended connections get no calls */
  case REQ_SENT:
  default:
    if (upload_size != NULL) *upload_size = 0;
    return MHD_YES;
  }
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  server *s = cls;
  req *r = *con_cls;
  if (r == NULL) return;
  *con_cls = NULL;
  int status = r->state == REQ_SENT ? r->ans.status : 499;
  double secs = (double)(time_mono_ns() - r->start_ns) / 1e9;
  metrics_child *count, *duration;
  route_children(r->route_label, status, &count, &duration);
  metrics_inc(count);
  metrics_observe(duration, secs);
  if (r->state == REQ_SENT && !r->local && r->match.route != NULL) {
    const pipeline_timing *t = &r->ans.t;
    observe_stage("verify", t->verify_ns);
    observe_stage("tenant", t->tenant_ns);
    observe_stage("ratelimit", t->ratelimit_ns);
    observe_stage("transcode", t->transcode_ns);
    observe_stage("rpc", t->rpc_ns);
    if (t->rpc_ns > 0) {
      const char *v[] = {r->match.route->rpc};
      metrics_observe(metrics_child_get(m_upstream, v),
                      (double)t->rpc_ns / 1e9);
    }
    count_rl("caller", r->ans.rl_caller);
    count_rl("login", r->ans.rl_login);
  }
  if (s->cfg.access_log && !r->local) {
    char st[8];
    snprintf(st, sizeof st, "%d", status);
    char dur[32];
    snprintf(dur, sizeof dur, "%.3f", secs * 1000.0);
    log_set_request_id(r->rid[0] ? r->rid : NULL);
    log_info("request", "method", r->method[0] ? r->method : "-", "path",
             r->route_label, "status", st, "duration_ms", dur, "tenant",
             r->ans.tenant_id[0] ? r->ans.tenant_id : "-", "remote",
             r->remote[0] ? r->remote : "-", "peer",
             r->peer[0] ? r->peer : "-");
    log_set_request_id(NULL);
  }
  /* Kept alive: the next request line must start arriving within the
   * idle allowance (MHD's own idle timeout cuts silent ones earlier). */
  set_deadline(c, time_mono_ms() + (int64_t)s->cfg.conn_timeout_s * 1000 +
                      s->cfg.request_timeout_ms);
  pipeline_answer_clear(&r->ans);
  pipeline_stream_free(r->stream);
  free(r->part);
  free(r->body);
  arena_release(&r->a);
  free(r);
  metrics_add(c_inflight, -1);
  atomic_fetch_sub(&s->in_flight, 1);
}

/* ------------------------------------------------------------ lifecycle -- */

int server_new(const server_config *cfg, server **out) {
  *out = NULL;
  if (cfg->routes == NULL || cfg->pipeline == NULL || cfg->port < 0 ||
      cfg->port > 65535 || cfg->io_threads < 0 || cfg->io_threads > 64 ||
      cfg->workers < 0 || cfg->workers > 1024)
    return ERR_INVAL;
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, metrics_init);
  server *s = calloc(1, sizeof *s);
  if (s == NULL) return ERR_NOMEM;
  s->cfg = *cfg;
  if (s->cfg.io_threads == 0) s->cfg.io_threads = 2;
  if (s->cfg.workers == 0) s->cfg.workers = 64;
  if (s->cfg.queue_depth == 0) s->cfg.queue_depth = 4096;
  if (s->cfg.max_body == 0) s->cfg.max_body = SERVER_MAX_BODY_DEFAULT;
  if (s->cfg.conn_timeout_s == 0) s->cfg.conn_timeout_s = 60;
  if (s->cfg.max_conns == 0) s->cfg.max_conns = 10000;
  if (s->cfg.request_timeout_ms <= 0)
    s->cfg.request_timeout_ms = SERVER_REQUEST_TIMEOUT_DEFAULT_MS;
  pthread_mutex_init(&s->slots_mu, NULL);
  pthread_mutex_init(&s->stop_mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s->stop_cv, &ca);
  pthread_condattr_destroy(&ca);

  str_copy(s->bind_addr, cfg->bind_addr ? cfg->bind_addr : "0.0.0.0",
           sizeof s->bind_addr);
  s->cfg.bind_addr = s->bind_addr;
  s->port = -1;
  s->quiesced_fd = MHD_INVALID_SOCKET;
  s->nlabels = route_table_count(cfg->routes);
  s->labels = calloc(s->nlabels ? s->nlabels : 1, sizeof *s->labels);
  if (s->labels == NULL) {
    free(s);
    return ERR_NOMEM;
  }
  for (size_t i = 0; i < s->nlabels; i++) {
    const route *rt = route_table_row(cfg->routes, i);
    if (asprintf(&s->labels[i], "%s %s", rt->method, rt->path) < 0) {
      s->labels[i] = NULL;
      server_free(s);
      return ERR_NOMEM;
    }
  }
  int rc = workq_new(s->cfg.workers, s->cfg.queue_depth, &s->q);
  if (rc != ERR_OK) {
    server_free(s);
    return rc;
  }
  *out = s;
  return ERR_OK;
}

int server_start(server *s) {
  if (s->d != NULL) return ERR_INVAL;
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)s->cfg.port);
  if (inet_pton(AF_INET, s->bind_addr, &sa.sin_addr) != 1) return ERR_INVAL;
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                   MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO;
  s->d = MHD_start_daemon(
      flags, (uint16_t)s->cfg.port, NULL, NULL, on_request, s,
      MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_THREAD_POOL_SIZE,
      (unsigned)s->cfg.io_threads, MHD_OPTION_CONNECTION_LIMIT,
      s->cfg.max_conns, MHD_OPTION_CONNECTION_TIMEOUT, s->cfg.conn_timeout_s,
      /* Request line + headers must fit (a token is ~400 bytes). MHD
       * zeroes this pool for every request, so bigger costs time. */
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024),
      MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_URI_LOG_CALLBACK,
      on_uri, s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
      MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
      /* 0 is MHD's "no limit". Counted per TCP peer across the pool. */
      MHD_OPTION_PER_IP_CONNECTION_LIMIT, s->cfg.max_conns_per_ip,
      MHD_OPTION_END);
  if (s->d == NULL) return ERR_UNAVAILABLE;
  if (pthread_create(&s->sweeper, NULL, sweeper_main, s) != 0) {
    MHD_stop_daemon(s->d);
    s->d = NULL;
    return ERR_INTERNAL;
  }
  s->sweeper_started = true;
  const union MHD_DaemonInfo *di =
      MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
  s->port = di ? di->port : s->cfg.port;
  return ERR_OK;
}

int server_port(const server *s) { return s->port; }

int64_t server_in_flight(const server *s) {
  return atomic_load(&((server *)s)->in_flight);
}

int server_drain(server *s, int64_t grace_ms) {
  atomic_store(&s->draining, true);
  if (s->d != NULL && s->quiesced_fd == MHD_INVALID_SOCKET)
    s->quiesced_fd = MHD_quiesce_daemon(s->d);
  int64_t until = time_mono_ms() + grace_ms;
  while (atomic_load(&s->in_flight) > 0) {
    if (time_mono_ms() >= until) return ERR_TIMEOUT;
    time_sleep_ms(10);
  }
  return ERR_OK;
}

void server_free(server *s) {
  if (s == NULL) return;
  atomic_store(&s->draining, true);
  /* Workers first: each resumes its connection, which needs the daemon;
   * requests dispatched meanwhile are refused (503) by the closed queue. */
  if (s->q != NULL) workq_close(s->q);
  if (s->sweeper_started) {
    pthread_mutex_lock(&s->stop_mu);
    s->stopping = true;
    pthread_cond_broadcast(&s->stop_cv);
    pthread_mutex_unlock(&s->stop_mu);
    pthread_join(s->sweeper, NULL);
  }
  /* Closing every connection frees every slot (NOTIFY_CLOSED). */
  if (s->d != NULL) MHD_stop_daemon(s->d);
  pthread_cond_destroy(&s->stop_cv);
  pthread_mutex_destroy(&s->stop_mu);
  pthread_mutex_destroy(&s->slots_mu);
  workq_free(s->q);
  for (size_t i = 0; i < s->nlabels; i++) free(s->labels[i]);
  free(s->labels);
  if (s->quiesced_fd != MHD_INVALID_SOCKET) close(s->quiesced_fd);
  free(s);
}
