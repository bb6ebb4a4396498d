/*
 * server.h - the gateway's public HTTP/1.1 server on GNU libmicrohttpd
 * (docs/adr/0003-gateway-http-engine.md).
 *
 * MHD's few I/O threads (io_threads, epoll) parse requests and do the
 * cheap, non-blocking part on the spot: request id, CORS preflight,
 * GET /healthz, route matching (404, 405 with Allow), the token of token
 * routes from the headers (401 before any body byte is read: a missing
 * Bearer always, an invalid token when a body follows -
 * authn_verify_offline, no Redis, no RPC), framing checks (411 for
 * a Transfer-Encoding other than chunked, 413 over the route's max_body -
 * from Content-Length, and while a chunked body streams in), 415 for a
 * body without Content-Type: application/json, and reading the body.
 * Slow clients: a connection gets request_timeout_ms to deliver one
 * request, headers and body, however it trickles (then it is cut), and
 * at most max_conns_per_ip connections per TCP peer address. A request that
 * needs a backend is then *suspended* and handed to a worker pool
 * (workq.h) that runs the pipeline (pipeline.h) and *resumes* the
 * connection; the answer is queued from MHD's thread. A full queue
 * answers 503 at once.
 *
 * GET/HEAD under /app/ are the console's static files (appfiles.h),
 * answered from memory without a worker, rate limit or token.
 *
 * Every answer carries X-Request-Id; API answers also
 * X-Content-Type-Options: nosniff and Cache-Control: no-store, and, for an
 * allowed Origin, Access-Control-Allow-Origin with Vary: Origin and
 * Access-Control-Expose-Headers. Errors use the body of httperr.h (also
 * 404/405/411/413/415, before any RPC). Keep-alive is MHD's (HTTP/1.1
 * default); idle connections close after conn_timeout_s. Requests MHD
 * itself refuses before the gateway sees them (malformed request line,
 * headers over the connection memory limit, bad chunked framing) get
 * MHD's short answers.
 *
 * One JSON access log line per request (not for /healthz): method, route
 * template (or "-"), status, duration_ms, tenant, remote (the client:
 * the TCP peer, or behind a trusted proxy the X-Forwarded-For address of
 * clientaddr.h), peer (the TCP peer) and the request id - never tokens
 * or bodies. Rate-limit keys use the same client address.
 *
 * Metrics:
 *   gateway_http_requests_total{route,status}
 *   gateway_http_request_duration_seconds{route,status}   histogram
 *   gateway_stage_duration_seconds{stage}  verify|tenant|ratelimit|
 *                                          transcode|rpc (histogram)
 *   gateway_upstream_duration_seconds{rpc} histogram (RPC time per call)
 *   gateway_ratelimit_decisions_total{bucket,decision}
 *                              allowed|limited|failed_open|failed_closed
 *   gateway_rejected_total{reason}         queue_full|request_timeout
 *   gateway_requests_in_flight             gauge
 */
#ifndef GATEWAY_SERVER_H
#define GATEWAY_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "services/gateway/appfiles.h"
#include "services/gateway/clientaddr.h"
#include "services/gateway/cors.h"
#include "services/gateway/pipeline.h"
#include "services/gateway/route.h"

#define SERVER_MAX_BODY_DEFAULT (1024 * 1024)
#define SERVER_REQUEST_TIMEOUT_DEFAULT_MS 10000

typedef struct server_config {
  const char *bind_addr;     /* IPv4 literal; NULL: "0.0.0.0" */
  int port;                  /* 0: ephemeral (server_port) */
  int io_threads;            /* MHD thread pool; 0 -> 2 */
  int workers;               /* pipeline threads; 0 -> 64 */
  size_t queue_depth;        /* requests waiting for a worker; 0 -> 4096 */
  size_t max_body;           /* bytes, routes without their own; 0 -> 1 MiB */
  unsigned conn_timeout_s;   /* idle keep-alive; 0 -> 60 */
  unsigned max_conns;        /* 0 -> 10000 */
  unsigned max_conns_per_ip; /* per TCP peer address; 0: no cap */
  /* Reading one request, headers and body, from its first byte (or the
   * accept): past it the connection is cut. 0 -> 10000 ms. */
  int64_t request_timeout_ms;
  /* Token routes are refused (401) from the headers with
   * authn_verify_offline before the body is read; borrowed; NULL: only
   * the pipeline checks tokens (after the body). */
  authn *authn;
  bool access_log;           /* one line per request */
  const route_table *routes; /* borrowed, required */
  pipeline *pipeline;        /* borrowed, required */
  const cors *cors;          /* borrowed; NULL: no CORS */
  /* Proxies whose X-Forwarded-For is believed (clientaddr.h); borrowed;
   * NULL or empty: the client is always the TCP peer. */
  const clientaddr_trust *trusted_proxies;
  /* The web console under /app/ (appfiles.h): GET and HEAD answered from
   * memory on the I/O thread with its own headers (CSP, nosniff,
   * Referrer-Policy, ETag + Cache-Control: no-cache); borrowed; NULL:
   * /app/ is not found like any unknown path. */
  const appfiles *app;
} server_config;

typedef struct server server;

/* Creates the server (not listening yet). cfg is copied; what it points
 * to is borrowed and must outlive the server. Errors: ERR_INVAL,
 * ERR_NOMEM, ERR_INTERNAL (threads). *out is the caller's (server_free). */
int server_new(const server_config *cfg, server **out) WARN_UNUSED;

/* Starts listening. Errors: ERR_INVAL (bad address, started twice),
 * ERR_UNAVAILABLE (MHD could not start: port in use, ...). */
int server_start(server *s) WARN_UNUSED;

/* The port listened on, or -1 before server_start. */
int server_port(const server *s);

/* Requests received and not yet answered and logged. */
int64_t server_in_flight(const server *s);

/* Graceful stop, part one: stops accepting connections, marks answers
 * "Connection: close", and waits up to grace_ms for in-flight requests.
 * Returns ERR_OK when none is left, ERR_TIMEOUT otherwise. */
int server_drain(server *s, int64_t grace_ms) WARN_UNUSED;

/* Stops: lets running pipeline jobs finish (each is bounded by the
 * request deadline), closes every connection and frees s. NULL-safe. */
void server_free(server *s);

#endif
