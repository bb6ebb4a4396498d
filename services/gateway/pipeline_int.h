/*
 * pipeline_int.h - the pipeline's steps, shared by pipeline.c (one call per
 * request) and pipeline_stream.c (one call per part of a streamed body).
 * Internal to the gateway's server library: nothing outside it includes
 * this.
 *
 * Each step returns true to go on, or fills the error answer (x->out) and
 * returns false.
 */
#ifndef GATEWAY_PIPELINE_INT_H
#define GATEWAY_PIPELINE_INT_H

#include <jansson.h>
#include <stdbool.h>

#include "libs/pbjson/pbjson.h"
#include "services/gateway/pipeline.h"
#include "services/gateway/replycache.h"

struct pipeline {
  pipeline_config cfg;
  char *base_domains;
  char *public_hosts;
  replycache *replies; /* JSON of large replies read again */
};

/* Per-request state while the steps run. */
typedef struct run {
  pipeline *p;
  const pipeline_request *in;
  pipeline_answer *out;
  const route *r;
  int64_t start_ms; /* the call's deadline counts from here (time_mono_ms) */
  /* A call's own attempt timeout, ms (0: the client's, for reads). */
  uint32_t attempt_ms;
  const char *token; /* NULL for anonymous calls */
  size_t token_len;
  paseto_claims claims;
  bool have_named; /* a tenant was named and resolved */
  tenantdir_entry named;
  /* The key sent with the route's call: the client's Idempotency-Key,
   * or on a ROUTE_KEYED route without one, own_key. */
  const char *key;
  char own_key[3 + UUID_STR_LEN + 1];
} run;

/* Steps 1-4 of pipeline.h: the Idempotency-Key's form, the caller, the
 * tenant, the caller's rate limit. */
bool pl_admit(run *x);

/* Step 5: the route's request message from the path, the query and (not
 * for raw_body routes) the JSON body; *fields is the body's JSON (NULL
 * for none). Both the caller's (pbjson_free, json_decref). */
bool pl_decode(run *x, ProtobufCMessage **msg, json_t **fields);

/* Step 7: rpc of service with msg, deadline_ms from x->start_ms;
 * idempotent: may be sent again to another replica. On success *res
 * holds an OK result (rpc_result_free). */
bool pl_call(run *x, const char *service, const char *rpc,
             const ProtobufCMessage *msg, bool idempotent, rpc_result **res);

/* The answer of a successful call: the route's status (200 when its
 * existed_field is true), and its JSON or raw_reply bytes. */
void pl_answer(run *x, const rpc_result *res, json_t *extra);

/* The pieces pl_answer is made of. */
bool pl_raw_answer(run *x, const rpc_result *res);
int pl_reply_json(pipeline *p, const route *r, const rpc_result *res,
                  json_t *extra, pipeline_answer *out);

/* An error answer with the request's id. */
void pl_fail(run *x, int code, const char *msg);

/* The field called name of m (its address), or NULL. */
void *pl_member(const ProtobufCMessage *m, const char *name);

#endif
