/*
 * http.h - a libcurl client for tests of the public HTTP API, JSON
 * getters, and Check assertions for the API's answers.
 *
 * One call is one request on its own curl handle, to 127.0.0.1 (where
 * every service under test listens): harness_http_request never asserts,
 * so threads may fire requests at once; harness_http_call is the same
 * inside a Check test, failing it when no HTTP answer came. An answer
 * keeps the status, the body (NUL-terminated, never NULL), the body parsed
 * as JSON when it is JSON, the last header block (after any 1xx or
 * redirect) looked up by name, and how long the exchange took.
 *
 * The assertions check what HTTP-API.md promises: CK_HTTP_STATUS a status
 * (printing the body when it is not), CK_HTTP_ERROR an error of exactly
 * the documented shape
 *
 *   {"error": {"code", "message", "request_id", "details": [...]}}
 *
 * with the request id equal to the X-Request-Id header; details are found
 * by field with harness_http_has_detail. The macros report the caller's
 * file and line.
 *
 * Needs curl_global_init once before threads (harness_init does not);
 * links libcurl, jansson and Check.
 */
#ifndef TESTS_HARNESS_HTTP_H
#define TESTS_HARNESS_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* One header line of an answer. */
typedef struct harness_http_field {
  char *name;  /* as sent */
  char *value; /* leading spaces and the line end removed */
} harness_http_field;

/* An answer. Everything is owned by it; free with harness_http_free. */
typedef struct harness_http_resp {
  long status;  /* the HTTP status; 0 when no answer came */
  int curl_rc;  /* the transfer's CURLcode (0 = CURLE_OK) */
  char *body;   /* NUL-terminated; "" when there was none */
  size_t len;   /* body bytes */
  json_t *json; /* the body parsed; NULL when it is not JSON */
  double secs;  /* wall time of the exchange */
  char *head;   /* the last header block as received, status line first */
  harness_http_field *headers; /* parsed from head, in order */
  size_t nheaders;
} harness_http_resp;

/* Sends method ("GET", "POST", ...; "HEAD" asks for no body) to
 * http://127.0.0.1:<port><path>. body NULL: none; otherwise it is sent as
 * is, with "Content-Type: application/json" unless headers name a
 * Content-Type. token not NULL: "Authorization: Bearer <token>". headers:
 * NULL-terminated "Name: value" lines (may be NULL; a "Host:" line replaces
 * curl's). Times out after 30 s. Never asserts and is thread-safe. Returns
 * the answer (the caller's); aborts only when out of memory. */
harness_http_resp *harness_http_request(const char *method, int port,
                                        const char *path, const char *body,
                                        const char *token,
                                        const char *const headers[]);

/* harness_http_request with a body of blen bytes that may hold any byte
 * (NULs too): sync's files. body NULL: none. */
harness_http_resp *harness_http_request_bytes(const char *method, int port,
                                              const char *path,
                                              const char *body, size_t blen,
                                              const char *token,
                                              const char *const headers[]);

/* harness_http_request inside a Check test: fails the test, naming method,
 * path and the curl error, when no HTTP answer came. */
harness_http_resp *harness_http_call(const char *method, int port,
                                     const char *path, const char *body,
                                     const char *token,
                                     const char *const headers[]);

/* Frees r and everything it holds. NULL-safe. */
void harness_http_free(harness_http_resp *r);

/* The value of the first header called name (case-insensitive), or NULL.
 * Owned by r. */
const char *harness_http_header(const harness_http_resp *r, const char *name);

/* True when the error's details hold one whose "field" is field (or, for
 * _prefix, starts with prefix). */
bool harness_http_has_detail(const harness_http_resp *r, const char *field);
bool harness_http_has_detail_prefix(const harness_http_resp *r,
                                    const char *prefix);

/* ------------------------------------------------------------- JSON --- */

/* The value at a dotted path of object members ("error.code"), or NULL
 * when v is NULL or any step is missing. Paths are at most 255 chars.
 * Borrowed from v. */
json_t *harness_json_get(json_t *v, const char *path);

/* The string at path, or "<missing>" when there is none (so a failed
 * string comparison shows what is wrong). Borrowed from v. */
const char *harness_json_str(json_t *v, const char *path);

/* The integer at path; fails the Check test when it is not one. */
long long harness_json_int(json_t *v, const char *path);

/* ------------------------------------------------------- assertions --- */

/* r's status is want; else fails the test with the body. */
#define CK_HTTP_STATUS(r, want)                                                \
  harness_http_check_status((r), (want), __FILE__, __LINE__)

/* The value of one series on the /metrics page of a service's admin port
 * (libs/obs text format): series is the name with its labels exactly as
 * printed ("sync_upload_parts_total{status=\"applied\"}", or a bare name).
 * 0 when the page lacks it, -1 when the page does not answer. */
double harness_metric(int admin_port, const char *series);

/* r is an HTTP-API.md error: the status, the body exactly {"error": {...}}
 * as JSON (Content-Type: application/json) with this code, a string
 * message, an array of details and request_id equal to the X-Request-Id
 * header. */
#define CK_HTTP_ERROR(r, status, code)                                         \
  harness_http_check_error((r), (status), (code), __FILE__, __LINE__)

/* o is an object with exactly these members (keys: NULL-terminated). */
#define CK_JSON_KEYS(o, keys)                                                  \
  harness_json_check_keys((o), (keys), __FILE__, __LINE__)

void harness_http_check_status(const harness_http_resp *r, long want,
                               const char *file, int line);
void harness_http_check_error(const harness_http_resp *r, long status,
                              const char *code, const char *file, int line);
void harness_json_check_keys(json_t *o, const char *const *keys,
                             const char *file, int line);

#endif
