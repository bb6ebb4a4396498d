/*
 * pipeline.h - what the gateway does with one routed request, on a worker
 * thread: identity, tenant, role, rate limits, transcoding, the RPC, and
 * the answer. The HTTP engine (server.c) has already matched the route,
 * checked the method, body size and content type, and read the body.
 *
 * Order (each step may end the request with an error answer):
 *   1. Idempotency-Key, when sent, must be 1..255 printable characters.
 *   2. Identity: routes above ROUTE_ANYONE need "Authorization: Bearer
 *      <token>"; the token is verified offline (libs/authn: signature,
 *      time, revocation, tenant status) -> 401 with WWW-Authenticate, or
 *      403 for a suspended tenant; its role must reach the route's
 *      min_role -> 403. Anonymous routes never look at a token.
 *   3. Tenant: named by X-Tenant (a slug), else by Host "<slug>.<base
 *      domain>", else by Host as a custom domain; resolved through
 *      libs/tenantdir. Unknown -> 404, suspended -> 403 (anonymous calls);
 *      for token calls a named tenant other than the token's tid -> 403.
 *      ROUTE_TENANT_NAMED routes without any named tenant -> 400.
 *      A Host that is not under a base domain and not a known custom
 *      domain is ignored unless the route needs a named tenant (it may be
 *      the API's own host name).
 *   4. Rate limit: the caller bucket (tenant + user id, or the client
 *      address for anonymous calls, tenant-less ones included: "-" as the
 *      tenant) -> 429 with Retry-After; Redis down with fail_closed ->
 *      503 with Retry-After.
 *   5. Transcoding (transcode.h) -> 400 naming every bad field.
 *   6. Login bucket (routes with login_key: tenant + that field) -> 429.
 *   7. The RPC with the time left of the request's deadline; the envelope
 *      carries the request id, the tenant id, the token (token routes) and
 *      the Idempotency-Key. A backend that does not answer in time -> 504,
 *      one that cannot be reached -> 503. Its status maps through
 *      httperr.h; a RESOURCE_EXHAUSTED (or UNAVAILABLE) carrying
 *      retry_after_ms gives Retry-After (seconds, rounded up); its reply
 * becomes the JSON answer (plus the route's extra call, if any).
 */
#ifndef GATEWAY_PIPELINE_H
#define GATEWAY_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libs/authn/authn.h"
#include "libs/base/err.h"
#include "libs/base/uuid.h"
#include "libs/rpc/rpc.h"
#include "libs/tenantdir/tenantdir.h"
#include "services/gateway/ratelimit.h"
#include "services/gateway/route.h"

#define PIPELINE_IDEMPOTENCY_KEY_MAX 255

/* A backend service by the name route rows use ("auth"). */
typedef struct pipeline_backend {
  const char *name;
  rpc_client *client; /* borrowed */
} pipeline_backend;

typedef struct pipeline_config {
  const pipeline_backend *backends; /* borrowed array */
  size_t nbackends;
  authn *authn;             /* borrowed; NULL: token routes answer 503 */
  tenantdir *tenants;       /* borrowed; NULL: tenant lookups answer 503 */
  ratelimit *limits;        /* borrowed; NULL: no rate limits */
  const char *base_domains; /* "localhost,example.com" (copied) */
  const char *public_hosts; /* the API's own host names, never looked up
                               as custom domains (copied; may be NULL) */
  int64_t deadline_ms;      /* per request, from arrival; > 0 */
} pipeline_config;

typedef struct pipeline pipeline;

/* Errors: ERR_INVAL (deadline_ms <= 0, nbackends > 0 with NULL backends),
 * ERR_NOMEM. *out is the caller's (pipeline_free). */
int pipeline_new(const pipeline_config *cfg, pipeline **out) WARN_UNUSED;
void pipeline_free(pipeline *p); /* NULL-safe */

/* One request. Strings are NUL-terminated (NULL when the header was not
 * sent); everything is borrowed for the call. */
typedef struct pipeline_request {
  const route_match *match; /* ROUTE_FOUND */
  const char *query;        /* raw, without '?'; may be NULL */
  size_t query_len;
  const char *body; /* may be NULL when body_len is 0 */
  size_t body_len;
  const char *authorization;
  const char *host;
  const char *x_tenant;
  const char *idempotency_key;
  /* X-Lb-Retry sent: the load balancer repeats a keyed POST that may have
   * reached a gateway that died (tools/lb/nginx_conf.sh), so a backend's
   * "still running" (409) is that first request, waited for and replayed
   * rather than answered. A client sending it itself gains nothing but a
   * wait for its own twin under its own key. */
  bool lb_retry;
  const char *client_addr; /* "127.0.0.1" */
  const char *request_id;
  int64_t start_mono_ms; /* arrival, time_mono_ms() */
} pipeline_request;

/* Rate-limit outcome of one bucket, for metrics. */
enum pipeline_rl {
  PIPELINE_RL_NONE = 0, /* not consulted */
  PIPELINE_RL_ALLOWED,
  PIPELINE_RL_LIMITED,
  PIPELINE_RL_FAILED_OPEN,
  PIPELINE_RL_FAILED_CLOSED, /* Redis failed, fail closed: 503 */
};

/* Where the time went (nanoseconds; 0 for steps not run). */
typedef struct pipeline_timing {
  int64_t verify_ns, tenant_ns, ratelimit_ns, transcode_ns, rpc_ns;
} pipeline_timing;

typedef struct pipeline_answer {
  int status; /* HTTP status */
  int code;   /* RPC code (RPC_OK on success) */
  char *body; /* malloc'd JSON, NULL for no body; owned here */
  /* Static; NULL: application/json. A raw_reply route's bytes are
   * "application/octet-stream". */
  const char *content_type;
  size_t body_len;
  bool www_authenticate; /* 401: send WWW-Authenticate: Bearer */
  bool invalid_token;    /* ... with error="invalid_token" */
  int64_t retry_after_s; /* 429 and some 503s: > 0 sends Retry-After */
  char tenant_id[UUID_STR_LEN + 1]; /* the request's tenant, if known */
  int rl_caller, rl_login;          /* enum pipeline_rl */
  pipeline_timing t;
} pipeline_answer;

/* Handles one request; always fills *out (an error answer when anything
 * fails). Thread-safe: many workers run it at once. Blocks for at most
 * the time left of the request's deadline plus the local work. */
void pipeline_run(pipeline *p, const pipeline_request *in,
                  pipeline_answer *out);

/*
 * Streamed routes (ROUTE_STREAMED, route.h): the body or the answer
 * travels in parts, one call of the route's RPC each, so the gateway never
 * holds more than one part of it. pipeline_stream_open runs steps 1-5 once
 * (the key's form, the caller, the tenant, the caller's rate limit, the
 * request message from the path); each part is then a call with its own
 * deadline (deadline_ms from the part's start: a 25 MiB upload from a slow
 * client outlives one request's deadline), sent again to another replica
 * when one fails (the convention makes parts safe to repeat). A stream
 * belongs to one request and takes one call at a time.
 */
typedef struct pipeline_stream pipeline_stream;

/* Starts a streamed request. size: the upload's bytes (its
 * Content-Length; ignored for downloads). False when a step refused: *out
 * is the error answer and *st NULL. in and out are borrowed for the
 * stream's life; *st is the caller's (pipeline_stream_free). */
bool pipeline_stream_open(pipeline *p, const pipeline_request *in, int64_t size,
                          pipeline_answer *out, pipeline_stream **st);

/* Sends the next part of an upload (len <= ROUTE_PART_BYTES; the parts
 * must add up to size). *done: the backend wants no more parts (the last
 * one was stored, or the whole existed already) and *out is the answer.
 * False: *out is the error answer; the upload is over. */
bool pipeline_stream_put(pipeline_stream *st, const void *data, size_t len,
                         bool *done);

/* Up to max bytes of a download from offset. On the first call (offset 0)
 * *out becomes the answer (status, content type; no body), or the error
 * answer when it fails. *size: the whole body's bytes; *data (malloc'd,
 * the caller's; NULL when *len is 0) and *len: the part. False: the part
 * could not be had; *out is then the error answer, which for a later part
 * only the access log and the metrics see (the client's status went out
 * with the first part; server.c ends the body short). */
bool pipeline_stream_get(pipeline_stream *st, int64_t offset, size_t max,
                         int64_t *size, char **data, size_t *len);

void pipeline_stream_free(pipeline_stream *st); /* NULL-safe */

/* Fills *out as an error answer: status from code, the error body of
 * httperr.h with details (may be NULL when n is 0), and
 * www_authenticate for UNAUTHENTICATED. Frees a body out held before. */
void pipeline_answer_error(pipeline_answer *out, int code, const char *msg,
                           const char *request_id, const rpc_violation *v,
                           size_t n);

/* "Bearer <token>" (scheme case-insensitive, spaces around the token):
 * true with *tok and *len pointing into h (not NUL-terminated where spaces
 * follow); false for anything else or a token over PIPELINE_BEARER_MAX
 * bytes. The one parser of Authorization, for the pipeline and for the
 * server's check before the body. */
#define PIPELINE_BEARER_MAX 4096
bool pipeline_bearer(const char *h, const char **tok, size_t *len);

/* Frees the body; the answer may be reused. NULL-safe. */
void pipeline_answer_clear(pipeline_answer *a);

#endif
