/*
 * xfer.h - one bounded HTTP/JSON exchange with the public API over
 * libcurl, shared by tools/multi and tools/bots.
 *
 * An xfer owns a curl easy handle set up for one request: method, URL,
 * optional bearer token, Idempotency-Key and X-Tenant, a JSON body, a
 * connect and a total timeout, and a cap on the answer's size (a larger
 * answer aborts the transfer instead of growing memory). The caller runs
 * it either on its own (xfer_perform) or inside a curl multi handle
 * (add x->easy, then xfer_done with the CURLcode the multi reported), so
 * the same setup serves sequential set-up calls and parallel requests.
 *
 * Tokens and passwords pass through the headers and body only: nothing
 * here prints them.
 */
#ifndef TOOLS_MULTI_XFER_H
#define TOOLS_MULTI_XFER_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define XFER_MAX_RESP_DEFAULT (1u << 20) /* 1 MiB: the API's own body cap */

typedef struct xfer_req {
  const char *method;   /* "GET", "POST", ... */
  const char *base;     /* "http://127.0.0.1:8080" (no trailing slash) */
  const char *path;     /* "/v1/orders" */
  const char *token;    /* bearer token or NULL */
  const char *idem_key; /* Idempotency-Key or NULL */
  const char *tenant;   /* X-Tenant slug or NULL */
  const char *body;     /* JSON body or NULL */
  long timeout_ms;      /* whole transfer; connect is bounded by it too */
  size_t max_resp;      /* 0: XFER_MAX_RESP_DEFAULT */
} xfer_req;

typedef struct xfer {
  CURL *easy;
  struct curl_slist *hdrs;
  char *body; /* a copy of the request body (curl reads it later) */
  char *buf;  /* the answer, NUL-terminated */
  size_t len, max;
  bool too_big;
  CURLcode rc;
  long status; /* 0: no HTTP answer */
  long retry_after_s;
  char err[CURL_ERROR_SIZE];
  int64_t start_ns, end_ns;
  void *user; /* the caller's */
} xfer;

/* Sets x up for r. Returns 0, or -1 when out of memory (x is then freed). */
int xfer_init(xfer *x, const xfer_req *r);

/* Records the end of a transfer run by a multi handle (its CURLcode). */
void xfer_done(xfer *x, CURLcode rc);

/* Runs x to completion on its own (curl_easy_perform + xfer_done). */
void xfer_perform(xfer *x);

/* Frees everything x holds (not x itself). Safe on a zeroed xfer. */
void xfer_free(xfer *x);

/* True for a 2xx answer. */
bool xfer_ok(const xfer *x);

/* True when repeating the same request may succeed and is safe given an
 * Idempotency-Key (or a read): no answer at all (refused, reset, timeout),
 * 429, 502, 503, 504. */
bool xfer_retryable(const xfer *x);

/* The answer parsed as JSON (new reference), or NULL. */
json_t *xfer_json(const xfer *x);

/* The duration of the transfer in milliseconds. */
double xfer_ms(const xfer *x);

/* A short description of the outcome for people: "201", "503
 * UNAVAILABLE", "connection refused: ...", "answer over 1048576 bytes".
 * Written into out[cap]; returns out. */
const char *xfer_describe(const xfer *x, char *out, size_t cap);

/* The string field k of the JSON object o, or NULL. */
const char *xfer_str(const json_t *o, const char *k);

#endif
