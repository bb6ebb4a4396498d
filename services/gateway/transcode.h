/*
 * transcode.h - HTTP request parts -> the RPC's request message, and the
 * RPC's reply message -> the JSON answer, through libs/pbjson.
 *
 * Request: the body (a JSON object, or nothing), the path parameters and
 * the query parameters are merged into ONE JSON object, which pbjson then
 * decodes into the route's request message. Every value, whatever its
 * source, passes the same type, range and size checks and its errors name
 * the field the same way ("limit": "out of range for uint32"). Rules:
 *   - the body must be a JSON object (or absent/empty, meaning {});
 *     duplicate keys are rejected;
 *   - a field listed in the route's `hidden` is an unknown field, from
 *     any source (the envelope or the gateway fills those);
 *   - path parameters are set into the object; a body value for the same
 *     field that differs is rejected ("conflicts with another value");
 *   - query parameters are accepted only on routes without a body (GET,
 *     DELETE): each names a top-level scalar field ("?limit=20"); a field
 *     given twice takes both values when repeated and must agree
 *     otherwise; on body routes any query parameter is rejected;
 *   - every problem found is reported (up to PBJSON_MAX_ERRORS), not just
 *     the first.
 *
 * Reply: the payload is unpacked with the route's response descriptor;
 * when the route has a reply_field that member is the answer (a NULL
 * member answers {}); extra members (e.g. "tenant") may be added; the
 * JSON is compact.
 *
 * JSON conventions for the whole API (kOpts in transcode.c): enums as
 * short lower-case names ("pending"), doubles with 15 significant digits,
 * unset optional fields as null.
 */
#ifndef GATEWAY_TRANSCODE_H
#define GATEWAY_TRANSCODE_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "libs/pbjson/pbjson.h"
#include "services/gateway/arena.h"
#include "services/gateway/route.h"

#define TRANSCODE_MAX_QUERY_PARAMS 64
#define TRANSCODE_MAX_QUERY 4096 /* bytes of a query string */

/* Called for each query parameter with its percent-decoded key and value
 * (NUL-terminated, in the arena; "+" is a space). Return ERR_OK to go on;
 * any other code stops the walk and is returned. */
typedef int (*transcode_query_fn)(void *arg, const char *key, size_t klen,
                                  const char *val, size_t vlen);

/* Walks query[0..len) ("a=1&b=2"; no leading '?'), calling fn for each
 * pair. Empty pairs ("a=1&&b=2") are skipped; "a" alone has value "".
 * Errors: ERR_INVAL for a malformed %-escape or an encoded NUL (*bad_key,
 * if not NULL, points at the raw key text, length *bad_klen - not
 * terminated), ERR_TOOBIG for a query over TRANSCODE_MAX_QUERY bytes or
 * more than TRANSCODE_MAX_QUERY_PARAMS pairs, ERR_NOMEM, or fn's code. */
int transcode_query_each(const char *query, size_t len, arena *a,
                         transcode_query_fn fn, void *arg, const char **bad_key,
                         size_t *bad_klen) WARN_UNUSED;

/* Builds the request message for match->route from the query string
 * (query[0..qlen), may be NULL when qlen is 0) and body[0..blen) (may be
 * NULL when blen is 0). On ERR_OK *out is the message (pbjson_free) and,
 * if fields is not NULL, *fields a new reference to the merged JSON
 * object (json_decref) - the rate limiter reads the login key from it.
 * Errors: ERR_INVAL with err listing every problem (a 400), ERR_NOMEM.
 * On failure *out (and *fields) are NULL. */
int transcode_request(const route_match *match, const char *query, size_t qlen,
                      const char *body, size_t blen, arena *a,
                      ProtobufCMessage **out, json_t **fields,
                      pbjson_error *err) WARN_UNUSED;

/* Builds the JSON answer for route r from the reply payload[0..len). When
 * extra_key is not NULL, extra (borrowed; may be NULL for null) is added
 * to the answer object under that key. On ERR_OK *json is a malloc'd
 * NUL-terminated string (free) of length *jlen.
 * Errors: ERR_PROTO (the payload does not unpack as r->response),
 * ERR_INVAL (the message holds something JSON cannot carry), ERR_NOMEM. */
int transcode_reply(const route *r, const uint8_t *payload, size_t len,
                    const char *extra_key, json_t *extra, char **json,
                    size_t *jlen) WARN_UNUSED;

/* Like transcode_reply for any message type, without reply_field: the
 * payload as a JSON value (*out, a new reference). Used for the answers
 * of secondary calls (the "tenant" of /v1/auth/me). Errors as
 * transcode_reply. */
int transcode_payload_value(const ProtobufCMessageDescriptor *desc,
                            const char *field, const uint8_t *payload,
                            size_t len, json_t **out) WARN_UNUSED;

/* Appends one field error to err (dropped, with err->truncated set, when
 * err is full); sets err->code to code when it is still ERR_OK. Strings
 * are copied, cut at the buffer size, and made safe for a JSON body
 * (bytes outside printable ASCII become '?' unless valid UTF-8). */
void transcode_add_error(pbjson_error *err, int code, const char *path,
                         size_t plen, const char *description);

#endif
