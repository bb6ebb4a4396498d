/*
 * cors.h - which browser origins may call the API (GATEWAY_CORS_ORIGINS).
 *
 * The configuration is a comma-separated list of origins
 * ("https://app.example.com, http://localhost:3000"), or "*" for any, or
 * empty for none. A request whose Origin is allowed gets
 * Access-Control-Allow-Origin (the origin itself, with Vary: Origin, so
 * caches keep answers apart), and a preflight OPTIONS gets the allowed
 * methods and headers. Origins compare exactly, after lower-casing the
 * scheme and host (browsers send them lower case anyway).
 */
#ifndef GATEWAY_CORS_H
#define GATEWAY_CORS_H

#include <stdbool.h>

#include "libs/base/err.h"

#define CORS_MAX_ORIGINS 32
#define CORS_MAX_ORIGIN_LEN 256

/* Headers a browser may send (preflight answer). */
#define CORS_ALLOW_HEADERS                                                     \
  "Authorization, Content-Type, X-Request-Id, X-Tenant, Idempotency-Key"
/* Response headers scripts may read. */
#define CORS_EXPOSE_HEADERS "X-Request-Id, Retry-After, WWW-Authenticate"
#define CORS_MAX_AGE "600"

typedef struct cors cors;

/* Parses the list (NULL or "" = none). Errors: ERR_INVAL for an entry that
 * is not "*" or scheme://host[:port] without path, more than
 * CORS_MAX_ORIGINS entries, or one longer than CORS_MAX_ORIGIN_LEN;
 * ERR_NOMEM. The caller owns *out (cors_free). */
int cors_new(const char *origins, cors **out) WARN_UNUSED;
void cors_free(cors *c); /* NULL-safe */

/* True when origin (the request's Origin header; NULL = none) is allowed. */
bool cors_allowed(const cors *c, const char *origin);

#endif
