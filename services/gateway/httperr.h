/*
 * httperr.h - RPC status -> HTTP status and the one error body of the
 * public API (HTTP-API.md, "Errors"):
 *
 *   {"error":{"code":"INVALID_ARGUMENT","message":"...","request_id":"...",
 *             "details":[{"field":"items[3].quantity",
 *                         "description":"must be between 1 and 99"}]}}
 *
 * `code` is the gRPC status name, the HTTP status follows grpc-gateway's
 * table, `details` is always present (empty when there is nothing to
 * name). A 5xx never carries the backend's message or details: they may
 * hold internals, so the client gets a fixed text and the log gets the
 * request id to find the rest.
 */
#ifndef GATEWAY_HTTPERR_H
#define GATEWAY_HTTPERR_H

#include <stddef.h>

#include "libs/rpc/rpc.h"

/* The HTTP status for an RPC code (rpc_status.h); OK is 200, a code out
 * of range is treated as UNKNOWN (500). */
int httperr_status(int rpc_code);

/* The message a client may see for code: for 4xx the given one (or, when
 * it is NULL or empty, a fixed text for the code); for 5xx always the
 * fixed text. Static or msg itself; never NULL. */
const char *httperr_message(int rpc_code, const char *msg);

/* Builds the error body. message goes through httperr_message; details
 * (field/description pairs, may be NULL when n is 0) are dropped for 5xx.
 * Strings that are not valid UTF-8 are replaced by "" (the body must be
 * JSON). Returns a malloc'd NUL-terminated string (free) and its length in
 * *len, or NULL when out of memory. request_id NULL counts as "". */
char *httperr_body(int rpc_code, const char *message, const char *request_id,
                   const rpc_violation *details, size_t n, size_t *len);

#endif
