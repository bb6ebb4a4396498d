/*
 * route.h - the gateway's route table: rows that say what an HTTP call
 * means, and the matcher that finds the row for a request.
 *
 * Adding an endpoint is adding a row (routes.c) and its proto, nothing
 * more: the row names the method and path template, the backend service
 * and RPC method, the request and response message types, the minimum
 * role, the success status and a few switches. Path parameters
 * ("{user_id}") name top-level fields of the request message; their text
 * goes through pbjson like query parameters and the body, so the message
 * is built one way whatever the source (transcode.h).
 *
 * Templates: "/" followed by segments separated by "/", each a literal of
 * [A-Za-z0-9._~-] or a parameter "{name}" naming a scalar field of the
 * request message; no empty segments, no trailing slash (a request for
 * "/v1/tenant/" is not "/v1/tenant"). route_table_new checks every row.
 *
 * Matching: a request path matches a template when it has as many
 * segments, the literals are equal byte for byte, and each parameter
 * segment is non-empty. Among the templates that match and have the
 * request's method, the most specific wins: comparing segment by segment
 * from the left, a literal beats a parameter ("/v1/orders/stats" beats
 * "/v1/orders/{id}"). When templates match but none has the method, the
 * answer is 405 with the methods of every matching template (Allow).
 * HEAD is matched as GET. Parameter values are percent-decoded (after
 * splitting, so "%2F" stays inside one value).
 */
#ifndef GATEWAY_ROUTE_H
#define GATEWAY_ROUTE_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>

#include "libs/base/err.h"
#include "services/gateway/arena.h"

#define ROUTE_MAX_PARAMS 8    /* parameters in one template */
#define ROUTE_MAX_SEGMENTS 32 /* segments in a template or request path */
#define ROUTE_MAX_PATH 2048   /* bytes of a request path */
#define ROUTE_ALLOW_MAX 96    /* "GET, POST, PATCH, PUT, DELETE" and more */

/* Roles, in order: a route's min_role admits every role at or above it.
 * ROUTE_ANYONE routes are anonymous (no token needed, none looked at). */
enum route_role {
  ROUTE_ANYONE = 0,
  ROUTE_CUSTOMER = 1, /* any member of the tenant ("member") */
  ROUTE_STAFF = 2,
  ROUTE_ADMIN = 3,
  ROUTE_OWNER = 4,
};

/* Where an anonymous call's tenant comes from. */
enum route_tenant {
  ROUTE_TENANT_NONE = 0,  /* the call names no tenant (or the token does) */
  ROUTE_TENANT_NAMED = 1, /* anonymous: Host "<slug>.<base>", a custom
                             domain, or X-Tenant must name an active one */
};

/* Route flags. */
#define ROUTE_IDEMPOTENT 0x1u /* the RPC is safe to retry (reads) */
/* The backend method honours an Idempotency-Key (libs/idem): with one it
 * is safe to retry on another replica, so the gateway sends the client's
 * key or, when there is none, one of its own ("gw-<uuid>"), and lets the
 * RPC client retry it (docs/adr/0013-failover-and-replicas.md). */
#define ROUTE_KEYED 0x2u
/* The body travels in parts, each one call of the route's RPC, so the
 * gateway holds one part (ROUTE_PART_BYTES), never the whole body (sync's
 * files: docs/adr/0018-sync-file-storage.md). By convention of the
 * messages: an upload route (raw_body) sends "upload_id" (a UUID the
 * gateway picks per request), "size" (the Content-Length, required: 411
 * without one), "offset" (bytes sent before) and the part in raw_body, and
 * its reply says "done" (no more parts wanted: stored, or it existed); the
 * last reply is the answer. A download route (raw_reply) sends "offset"
 * and "max" and its reply gives "size" (the whole) and the part in
 * raw_reply; the first reply decides the status and Content-Length, and
 * the body goes out as the client reads it, one part ahead at most. */
#define ROUTE_STREAMED 0x4u
#define ROUTE_PART_BYTES ((size_t)256 * 1024)

/* A second call whose answer is added to the first one's under `key`
 * (GET /v1/auth/me answers {user, tenant}: the user from auth, the tenant
 * from the tenants service). It gets an empty request message, the same
 * token, tenant and request id, and must succeed too. */
typedef struct route_extra {
  const char *key; /* member added to the answer: "tenant" */
  const char *service;
  const char *rpc;
  const ProtobufCMessageDescriptor *request;
  const ProtobufCMessageDescriptor *response;
  const char *reply_field; /* as in route; NULL: the whole reply */
} route_extra;

/* One row. Every pointer is static data. */
typedef struct route {
  const char *method;  /* "GET", "POST", "PUT", "PATCH", "DELETE" */
  const char *path;    /* "/v1/tenant/members/{user_id}" */
  const char *service; /* backend: "auth", "tenants", ... */
  const char *rpc;     /* "auth.v1.Auth/UpdateRole" */
  const ProtobufCMessageDescriptor *request;
  const ProtobufCMessageDescriptor *response;
  int min_role; /* enum route_role */
  int status;   /* on success: 200, 201, 202 (queued) or 204 (no body) */
  int tenant;   /* enum route_tenant */
  /* The answer is this message field of the reply (e.g. "user" for a bare
   * user object) instead of the whole reply; NULL: the whole reply. */
  const char *reply_field;
  /* Request fields a client may not set (the gateway or the envelope
   * fills them, e.g. "tenant_id"): treated as unknown fields.
   * NULL-terminated; NULL for none. */
  const char *const *hidden;
  /* Body field whose value keys the login rate limit bucket ("email");
   * NULL: no such bucket for this route. */
  const char *login_key;
  unsigned flags;           /* ROUTE_* */
  const route_extra *extra; /* NULL: none */
  /* Members left out of the answer (NULL-terminated; NULL for none), so
   * the JSON is exactly the public shape even where the RPC reply carries
   * more: "user.tenant_id" drops a nested member, "members[].tenant_id"
   * drops it in every element of an array, and a leading '?' drops the
   * member only when it is "" or null ("?next_cursor": present only while
   * more remain). */
  const char *const *omit;
  /* Members whose JSON value travels as JSON text in a string field:
   * "mutations[].args" for that member of every element of an array, or a
   * top-level "name". In a request, the client's JSON value becomes its
   * canonical text (keys sorted, no spaces: jansson's JSON_COMPACT |
   * JSON_SORT_KEYS), which the backend parses itself (sync verifies a
   * hash over exactly this text); in the answer, the backend's text
   * becomes JSON again ("" becomes null). NULL-terminated; NULL for none. */
  const char *const *json_text;
  /* Answer members holding a message with one member set (a oneof of
   * messages, like a pulled change's entity: "changes[].data") written as
   * that member's value instead of an object around it; unset or empty
   * becomes null. Paths as json_text ("a[].b" or a top-level "b"); the
   * OpenAPI schema of such a member is a oneOf of the alternatives.
   * NULL-terminated; NULL for none. */
  const char *const *unwrap;
  /* Largest request body, bytes (413 over it, from Content-Length before
   * reading and while a chunked body streams in); 0: the server's default
   * (GATEWAY_MAX_BODY_BYTES, 1 MiB). At most ROUTE_MAX_BODY_LIMIT. */
  size_t max_body;
  /* Raw bytes instead of JSON (sync's files). raw_body: a bytes field of
   * the request that receives the HTTP body as it came (Content-Type
   * application/octet-stream, 415 otherwise; path parameters still fill
   * the other fields). raw_reply: a bytes field of the reply answered as
   * the body, application/octet-stream. existed_field: a bool field of the
   * reply; true answers 200 instead of `status` (201 for "created", 200
   * for "was there already"). NULL: none. */
  const char *raw_body;
  const char *raw_reply;
  const char *existed_field;
} route;

#define ROUTE_MAX_BODY_LIMIT ((size_t)64 * 1024 * 1024)
/* Anonymous routes take small JSON (credentials, a tenant's name): their
 * bodies are what an unauthenticated client can make the gateway hold. */
#define ROUTE_BODY_SMALL ((size_t)16 * 1024)

/* The compiled table (read-only after creation, shared by all threads). */
typedef struct route_table route_table;

/* Compiles rows[0..n) (not copied: static rows outlive the table). Checks
 * every row: method, template syntax, parameters naming distinct scalar
 * (non-message, non-repeated) fields of the request message, no hidden
 * field used as a parameter, status 200/201/202/204, max_body at most
 * ROUTE_MAX_BODY_LIMIT, a reply_field that is a
 * message field of the response (also for extra, which is only allowed
 * on routes answering a body), min_role and tenant in range, and no two
 * rows with the same method and the same template shape.
 * Errors: ERR_INVAL (a bad row; *bad_row, if not NULL, gets its index),
 * ERR_EXISTS (a duplicate; *bad_row is the second), ERR_NOMEM. */
int route_table_new(const route *rows, size_t n, route_table **out,
                    size_t *bad_row) WARN_UNUSED;

void route_table_free(route_table *t); /* NULL-safe */

size_t route_table_count(const route_table *t);
const route *route_table_row(const route_table *t, size_t i);

enum route_result {
  ROUTE_FOUND = 0,
  ROUTE_NOT_FOUND,          /* no template matches the path: 404 */
  ROUTE_METHOD_NOT_ALLOWED, /* templates match, none with the method: 405 */
};

typedef struct route_param {
  const char *name;  /* the field (static, from the template) */
  const char *value; /* percent-decoded, NUL-terminated (in the arena); may
                        hold any byte but NUL, UTF-8 is checked later */
  size_t len;
} route_param;

typedef struct route_match {
  int result;         /* enum route_result */
  const route *route; /* ROUTE_FOUND: the row */
  size_t nparams;
  route_param params[ROUTE_MAX_PARAMS];
  char allow[ROUTE_ALLOW_MAX]; /* 405 (and OPTIONS): "GET, PATCH" */
  const char *bad_param;       /* ERR_INVAL: the parameter whose value was
                                  not valid percent-encoding or held NUL */
} route_match;

/* Matches method and path[0..len) (the path only: no query string). On
 * ERR_OK m->result says what was found; for ROUTE_FOUND m->route and
 * m->params are set; for ROUTE_METHOD_NOT_ALLOWED (and also for
 * ROUTE_FOUND) m->allow lists the methods of the matching templates in
 * table order. Parameter values are allocated from a.
 * Errors: ERR_INVAL when the best route's parameter value is malformed
 * (m->bad_param names it: a 400 naming the field), ERR_NOMEM. A path over
 * ROUTE_MAX_PATH bytes or ROUTE_MAX_SEGMENTS segments, or one not starting
 * with "/", is simply not found. */
int route_match_path(const route_table *t, const char *method, const char *path,
                     size_t len, arena *a, route_match *m) WARN_UNUSED;

/* Percent-decodes s[0..len) into a NUL-terminated copy allocated from a
 * (*out, *outlen without the NUL); with plus_is_space a '+' is a space
 * (application/x-www-form-urlencoded, for query strings; path segments
 * keep it). The one decoder of path parameters and query strings.
 * Errors: ERR_INVAL for a bad or cut escape or a decoded NUL, ERR_NOMEM. */
int route_pct_decode(const char *s, size_t len, bool plus_is_space, arena *a,
                     char **out, size_t *outlen) WARN_UNUSED;

/* "owner" -> ROUTE_OWNER etc. (exact, lower case); -1 for anything else
 * (including "anyone"); "device" (a sync device) -> ROUTE_STAFF. */
int route_role_parse(const char *name);

/* The name of a role ("anyone", "customer", ...); "?" when out of range. */
const char *route_role_name(int role);

#endif
