/*
 * pipeline.c - see pipeline.h. One function per step; each returns true
 * to go on or fills the error answer and returns false, so pipeline_run
 * reads as the list of steps.
 */
#include "services/gateway/pipeline.h"

#include <ctype.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"
#include "libs/obs/log.h"
#include "libs/pbjson/pbjson.h"
#include "libs/tenantdir/tenantname.h"
#include "services/gateway/httperr.h"
#include "services/gateway/pipeline_int.h"
#include "services/gateway/replycache.h"
#include "services/gateway/transcode.h"

#define BEARER_MAX PIPELINE_BEARER_MAX /* longer values are refused */

int pipeline_new(const pipeline_config *cfg, pipeline **out) {
  *out = NULL;
  if (cfg->deadline_ms <= 0 || (cfg->nbackends > 0 && cfg->backends == NULL))
    return ERR_INVAL;
  pipeline *p = calloc(1, sizeof *p);
  if (p == NULL) return ERR_NOMEM;
  p->cfg = *cfg;
  p->base_domains = strdup(cfg->base_domains ? cfg->base_domains : "");
  p->public_hosts = strdup(cfg->public_hosts ? cfg->public_hosts : "");
  if (p->base_domains == NULL || p->public_hosts == NULL ||
      replycache_new(&p->replies) != ERR_OK) {
    pipeline_free(p);
    return ERR_NOMEM;
  }
  p->cfg.base_domains = p->base_domains;
  p->cfg.public_hosts = p->public_hosts;
  *out = p;
  return ERR_OK;
}

void pipeline_free(pipeline *p) {
  if (p == NULL) return;
  free(p->base_domains);
  free(p->public_hosts);
  replycache_free(p->replies);
  free(p);
}

void pipeline_answer_clear(pipeline_answer *a) {
  if (a == NULL) return;
  free(a->body);
  a->body = NULL;
  a->body_len = 0;
}

void pipeline_answer_error(pipeline_answer *out, int code, const char *msg,
                           const char *request_id, const rpc_violation *v,
                           size_t n) {
  pipeline_answer_clear(out);
  if (!rpc_code_valid(code) || code == RPC_OK) code = RPC_UNKNOWN;
  out->code = code;
  out->content_type = NULL;
  out->status = httperr_status(code);
  out->www_authenticate = code == RPC_UNAUTHENTICATED;
  out->body = httperr_body(code, msg, request_id, v, n, &out->body_len);
  /* Out of memory for an error body: the status still goes out. */
}

void pl_fail(run *x, int code, const char *msg) {
  pipeline_answer_error(x->out, code, msg, x->in->request_id, NULL, 0);
}

static void fail_field(run *x, int code, const char *msg, const char *field,
                       const char *desc) {
  rpc_violation v = {field, desc};
  pipeline_answer_error(x->out, code, msg, x->in->request_id, &v, 1);
}

static int64_t elapsed_ns(int64_t since) { return time_mono_ns() - since; }

static bool check_idempotency_key(run *x) {
  const char *k = x->in->idempotency_key;
  if (k == NULL) return true;
  size_t n = strnlen(k, PIPELINE_IDEMPOTENCY_KEY_MAX + 1);
  if (n == 0 || n > PIPELINE_IDEMPOTENCY_KEY_MAX || !str_is_printable(k, n)) {
    fail_field(x, RPC_INVALID_ARGUMENT, "invalid Idempotency-Key",
               "Idempotency-Key", "must be 1 to 255 printable characters");
    return false;
  }
  return true;
}

/* Chooses the route call's key and tells whether the call may be sent
 * again to another replica after it may have run: a read, or a keyed
 * create (the backend answers a repeat with the first answer). */
static bool retry_safe(run *x) {
  x->key = x->in->idempotency_key;
  if ((x->r->flags & ROUTE_IDEMPOTENT) != 0) return true;
  if ((x->r->flags & ROUTE_KEYED) == 0) return false;
  if (x->key == NULL) {
    memcpy(x->own_key, "gw-", 3);
    uuid_v7_str(x->own_key + 3);
    x->key = x->own_key;
  }
  return true;
}

bool pipeline_bearer(const char *h, const char **tok, size_t *len) {
  if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0) return false;
  h += 7;
  while (*h == ' ') h++;
  size_t n = strnlen(h, BEARER_MAX + 1);
  while (n > 0 && h[n - 1] == ' ') n--;
  if (n == 0 || n > BEARER_MAX) return false;
  *tok = h;
  *len = n;
  return true;
}

static bool authenticate(run *x) {
  if (x->r->min_role == ROUTE_ANYONE) return true;
  int64_t t0 = time_mono_ns();
  bool ok = false;
  if (!pipeline_bearer(x->in->authorization, &x->token, &x->token_len)) {
    pl_fail(x, RPC_UNAUTHENTICATED, "a bearer access token is required");
    goto done;
  }
  if (x->p->cfg.authn == NULL) {
    pl_fail(x, RPC_UNAVAILABLE, NULL);
    goto done;
  }
  enum authn_result why = AUTHN_OK;
  int rc =
      authn_verify(x->p->cfg.authn, x->token, x->token_len, &x->claims, &why);
  if (rc == ERR_INVAL) {
    int code = authn_result_code(why);
    pl_fail(x, code, authn_result_str(why));
    x->out->invalid_token = code == RPC_UNAUTHENTICATED;
    goto done;
  }
  if (rc != ERR_OK) {
    pl_fail(x, rc == ERR_NOMEM ? RPC_INTERNAL : RPC_UNAVAILABLE, NULL);
    goto done;
  }
  (void)str_copy(x->out->tenant_id, x->claims.tid, sizeof x->out->tenant_id);
  int role = route_role_parse(x->claims.role);
  if (role < x->r->min_role) {
    char msg[96];
    snprintf(msg, sizeof msg, "this call needs the %s role or higher",
             route_role_name(x->r->min_role));
    pl_fail(x, RPC_PERMISSION_DENIED, msg);
    goto done;
  }
  ok = true;
done:
  x->out->t.verify_ns += elapsed_ns(t0);
  return ok;
}

/* True when host (normalised) is one of the comma-separated names. */
static bool in_list(const char *host, const char *list) {
  size_t hl = strlen(host);
  const char *p = list;
  while (p != NULL && *p != '\0') {
    while (*p == ' ' || *p == ',') p++;
    const char *e = p;
    while (*e != '\0' && *e != ',') e++;
    const char *end = e;
    while (end > p && end[-1] == ' ') end--;
    if ((size_t)(end - p) == hl && strncasecmp(p, host, hl) == 0) return true;
    p = e;
  }
  return false;
}

enum named_kind { NAMED_NONE, NAMED_SLUG, NAMED_CUSTOM_HOST };

/* Which tenant the request names, without resolving it yet. */
static enum named_kind named_tenant(run *x, char *key, size_t cap) {
  const char *xt = x->in->x_tenant;
  if (xt != NULL && xt[0] != '\0') {
    size_t i = 0;
    for (; xt[i] != '\0' && i + 1 < cap; i++)
      key[i] = (char)tolower((unsigned char)xt[i]);
    key[i] = '\0';
    if (xt[i] != '\0') key[0] = '\0'; /* too long: no tenant has it */
    return NAMED_SLUG;
  }
  if (x->in->host == NULL) return NAMED_NONE;
  char host[TENANTNAME_HOST_MAX + 1];
  if (tenantname_normalize_host(x->in->host, host, sizeof host) != ERR_OK)
    return NAMED_NONE;
  if (tenantname_slug_from_host(host, x->p->cfg.base_domains, key, cap))
    return NAMED_SLUG;
  if (in_list(host, x->p->cfg.base_domains) ||
      in_list(host, x->p->cfg.public_hosts))
    return NAMED_NONE;
  const char *why;
  if (tenantname_check_custom_host(host, x->p->cfg.base_domains, &why) !=
      ERR_OK)
    return NAMED_NONE;
  (void)str_copy(key, host, cap);
  return NAMED_CUSTOM_HOST;
}

static bool resolve_tenant(run *x) {
  bool anonymous = x->r->min_role == ROUTE_ANYONE;
  bool needed = anonymous && x->r->tenant == ROUTE_TENANT_NAMED;
  /* Anonymous calls that name no tenant by contract skip the lookup. */
  if (anonymous && !needed) return true;
  int64_t t0 = time_mono_ns();
  bool ok = false;
  char key[TENANTNAME_HOST_MAX + 1];
  enum named_kind kind = named_tenant(x, key, sizeof key);
  if (kind == NAMED_NONE) {
    if (needed) {
      fail_field(x, RPC_INVALID_ARGUMENT,
                 "this call needs a tenant: use the tenant's host name or "
                 "the X-Tenant header",
                 "X-Tenant", "required");
      goto done;
    }
    ok = true;
    goto done;
  }
  if (x->p->cfg.tenants == NULL) {
    pl_fail(x, RPC_UNAVAILABLE, NULL);
    goto done;
  }
  int rc = kind == NAMED_SLUG
               ? tenantdir_resolve_slug(x->p->cfg.tenants, key, &x->named)
               : tenantdir_resolve_host(x->p->cfg.tenants, key, &x->named);
  if (rc == ERR_NOTFOUND || rc == ERR_INVAL) {
    if (kind == NAMED_CUSTOM_HOST && !needed) {
      ok = true; /* not a tenant's domain: perhaps the API's own name */
      goto done;
    }
    pl_fail(x, RPC_NOT_FOUND, "unknown tenant");
    goto done;
  }
  if (rc != ERR_OK) {
    pl_fail(x, RPC_UNAVAILABLE, NULL);
    goto done;
  }
  x->have_named = true;
  if (anonymous) {
    if (x->named.suspended) {
      pl_fail(x, RPC_PERMISSION_DENIED, "this tenant is suspended");
      goto done;
    }
    (void)str_copy(x->out->tenant_id, x->named.tenant_id,
                   sizeof x->out->tenant_id);
  } else if (strcmp(x->named.tenant_id, x->claims.tid) != 0) {
    pl_fail(x, RPC_PERMISSION_DENIED,
            "the access token belongs to another tenant");
    goto done;
  }
  ok = true;
done:
  x->out->t.tenant_ns += elapsed_ns(t0);
  return ok;
}

static int rl_state(const ratelimit_decision *d) {
  if (d->failed_closed) return PIPELINE_RL_FAILED_CLOSED;
  if (d->failed_open) return PIPELINE_RL_FAILED_OPEN;
  return d->allowed ? PIPELINE_RL_ALLOWED : PIPELINE_RL_LIMITED;
}

static bool take(run *x, enum ratelimit_kind kind, const char *subject,
                 int *state) {
  if (x->p->cfg.limits == NULL) return true;
  int64_t t0 = time_mono_ns();
  ratelimit_decision d;
  if (ratelimit_take(x->p->cfg.limits, kind, x->out->tenant_id, subject, &d) !=
      ERR_OK)
    d.allowed = true;
  x->out->t.ratelimit_ns += elapsed_ns(t0);
  *state = rl_state(&d);
  if (d.allowed) return true;
  if (d.failed_closed) {
    pl_fail(x, RPC_UNAVAILABLE,
            "rate limiting is unavailable, try again later");
    x->out->retry_after_s = d.retry_after_s;
    return false;
  }
  pl_fail(x, RPC_RESOURCE_EXHAUSTED,
          kind == RATELIMIT_LOGIN ? "too many login attempts, try again later"
                                  : "too many requests, try again later");
  x->out->retry_after_s = d.retry_after_s;
  return false;
}

static bool limit_caller(run *x) {
  const char *who;
  char buf[PASETO_CLAIM_STR_MAX + 80];
  if (x->token != NULL) {
    snprintf(buf, sizeof buf, "u:%s", x->claims.sub);
  } else {
    snprintf(buf, sizeof buf, "ip:%s",
             x->in->client_addr ? x->in->client_addr : "-");
  }
  who = buf;
  return take(x, RATELIMIT_CALLER, who, &x->out->rl_caller);
}

static bool limit_login(run *x, json_t *fields) {
  if (x->r->login_key == NULL) return true;
  const char *v = json_string_value(json_object_get(fields, x->r->login_key));
  if (v == NULL || v[0] == '\0') return true; /* the backend will refuse */
  return take(x, RATELIMIT_LOGIN, v, &x->out->rl_login);
}

static rpc_client *backend(run *x, const char *name) {
  for (size_t i = 0; i < x->p->cfg.nbackends; i++)
    if (strcmp(x->p->cfg.backends[i].name, name) == 0)
      return x->p->cfg.backends[i].client;
  return NULL;
}

/* Turns a failed result into the answer; logs what the client is not
 * told. */
static void upstream_error(run *x, const char *rpc, const rpc_result *res) {
  if (httperr_status(res->code) >= 500)
    log_warn("upstream failed", "rpc", rpc, "code", rpc_code_name(res->code),
             "message", res->message);
  rpc_violation *v = NULL;
  size_t n = res->nviolations;
  if (n > 0) v = (rpc_violation *)res->violations;
  pipeline_answer_error(x->out, res->code, res->message, x->in->request_id, v,
                        n);
  /* The backend's advice (auth's per-account login lockout): seconds,
   * rounded up, so a client never retries before the lock is gone. */
  if ((res->code == RPC_RESOURCE_EXHAUSTED || res->code == RPC_UNAVAILABLE) &&
      res->retry_after_ms > 0)
    x->out->retry_after_s = ((int64_t)res->retry_after_ms + 999) / 1000;
}

/* Calls rpc on service with msg; on success *res holds an OK result. */
bool pl_call(run *x, const char *service, const char *rpc,
             const ProtobufCMessage *msg, bool idempotent, rpc_result **res) {
  *res = NULL;
  rpc_client *c = backend(x, service);
  if (c == NULL) {
    log_error("no backend for route", "service", service, "rpc", rpc);
    pl_fail(x, RPC_UNIMPLEMENTED, NULL);
    return false;
  }
  /* No replica connected (killed, not started, unreachable): answer 503
   * now rather than wait for one until the deadline. */
  if (rpc_client_connected(c) == 0) {
    log_warn("backend not connected", "service", service, "rpc", rpc);
    pl_fail(x, RPC_UNAVAILABLE, NULL);
    return false;
  }
  int64_t left = x->start_ms + x->p->cfg.deadline_ms - time_mono_ms();
  if (left <= 0) {
    pl_fail(x, RPC_DEADLINE_EXCEEDED, NULL);
    return false;
  }
  rpc_call_options o = RPC_CALL_OPTIONS_INIT;
  o.deadline_ms = (uint32_t)left;
  o.idempotent = idempotent;
  o.attempt_timeout_ms = x->attempt_ms;
  o.request_id = x->in->request_id;
  o.tenant_id = x->out->tenant_id;
  o.token = x->token != NULL ? x->token : NULL;
  o.idempotency_key = x->key;
  /* Only the client's own key can have a twin at another gateway. */
  o.maybe_twin =
      x->in->lb_retry && x->key != NULL && x->key == x->in->idempotency_key;
  /* The token is not NUL-terminated where it ends with spaces; copy it. */
  char tokbuf[BEARER_MAX + 1];
  if (x->token != NULL) {
    memcpy(tokbuf, x->token, x->token_len);
    tokbuf[x->token_len] = '\0';
    o.token = tokbuf;
  }
  int64_t t0 = time_mono_ns();
  int rc = rpc_client_call_message(c, rpc, msg, &o, res);
  x->out->t.rpc_ns += elapsed_ns(t0);
  if (x->token != NULL) sodium_memzero(tokbuf, x->token_len);
  if (rc != ERR_OK) {
    log_error("rpc call failed locally", "rpc", rpc, "error", err_str(rc));
    pl_fail(x, rc == ERR_TOOBIG ? RPC_INVALID_ARGUMENT : RPC_INTERNAL, NULL);
    return false;
  }
  if ((*res)->code != RPC_OK) {
    upstream_error(x, rpc, *res);
    rpc_result_free(*res);
    *res = NULL;
    return false;
  }
  return true;
}

/* The route's extra call (e.g. the tenant for /v1/auth/me). */
static bool extra_value(run *x, json_t **out) {
  *out = NULL;
  const route_extra *e = x->r->extra;
  ProtobufCMessage *m = NULL;
  pbjson_error err;
  json_t *empty = json_object();
  if (empty == NULL) {
    pl_fail(x, RPC_INTERNAL, NULL);
    return false;
  }
  int rc = pbjson_decode_value(e->request, empty, NULL, &m, &err);
  json_decref(empty);
  if (rc != ERR_OK) {
    pl_fail(x, RPC_INTERNAL, NULL);
    return false;
  }
  rpc_result *res;
  bool ok = pl_call(x, e->service, e->rpc, m, true, &res);
  pbjson_free(m);
  if (!ok) return false;
  int64_t t0 = time_mono_ns();
  rc = transcode_payload_value(e->response, e->reply_field, res->payload,
                               res->payload_len, out);
  x->out->t.transcode_ns += elapsed_ns(t0);
  rpc_result_free(res);
  if (rc != ERR_OK) {
    log_error("undecodable reply", "rpc", e->rpc, "error", err_str(rc));
    pl_fail(x, RPC_INTERNAL, NULL);
    return false;
  }
  return true;
}

/* The route's raw_body / raw_reply / existed_field member of m. */
void *pl_member(const ProtobufCMessage *m, const char *name) {
  const ProtobufCFieldDescriptor *f =
      protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
  return f != NULL ? (char *)m + f->offset : NULL;
}

/* A raw_body route: the HTTP body, borrowed, as the bytes field (cleared
 * again before the message is freed: raw_body_clear). */
static void raw_body_set(run *x, ProtobufCMessage *msg) {
  ProtobufCBinaryData *b = pl_member(msg, x->r->raw_body);
  if (b == NULL) return; /* route_table_new checked the field */
  b->data = (uint8_t *)x->in->body;
  b->len = x->in->body_len;
}

static void raw_body_clear(const route *r, ProtobufCMessage *msg) {
  ProtobufCBinaryData *b =
      msg != NULL && r->raw_body != NULL ? pl_member(msg, r->raw_body) : NULL;
  if (b != NULL) *b = (ProtobufCBinaryData){0, NULL};
}

/* The answer of a route with raw_reply (the bytes as the body) or
 * existed_field (200 instead of the route's status when true). False
 * (the answer set) when the reply does not unpack. */
bool pl_raw_answer(run *x, const rpc_result *res) {
  ProtobufCMessage *m = protobuf_c_message_unpack(
      x->r->response, NULL, res->payload_len, res->payload);
  if (m == NULL) {
    log_error("undecodable reply", "rpc", x->r->rpc);
    pl_fail(x, RPC_INTERNAL, NULL);
    return false;
  }
  bool ok = true;
  if (x->r->existed_field != NULL) {
    const protobuf_c_boolean *e = pl_member(m, x->r->existed_field);
    if (e != NULL && *e) x->out->status = 200;
  }
  if (x->r->raw_reply != NULL) {
    const ProtobufCBinaryData *b = pl_member(m, x->r->raw_reply);
    size_t n = b != NULL ? b->len : 0;
    x->out->body = malloc(n ? n : 1);
    if (x->out->body == NULL) {
      pl_fail(x, RPC_INTERNAL, NULL);
      ok = false;
    } else {
      if (n > 0) memcpy(x->out->body, b->data, n);
      x->out->body_len = n;
      x->out->content_type = "application/octet-stream";
    }
  }
  protobuf_c_message_free_unpacked(m, NULL);
  return ok;
}

/* The answer's JSON: transcoded, or (a large reply of a route without an
 * extra member: a pure function of the route and the bytes) the JSON
 * remembered for exactly these bytes (replycache.h). */
int pl_reply_json(pipeline *p, const route *r, const rpc_result *res,
                  json_t *extra, pipeline_answer *out) {
  bool cacheable = r->extra == NULL && replycache_wants(res->payload_len);
  if (cacheable && replycache_get(p->replies, r, res->payload, res->payload_len,
                                  &out->body, &out->body_len))
    return ERR_OK;
  int rc = transcode_reply(r, res->payload, res->payload_len,
                           r->extra ? r->extra->key : NULL, extra, &out->body,
                           &out->body_len);
  if (rc == ERR_OK && cacheable)
    replycache_put(p->replies, r, res->payload, res->payload_len, out->body,
                   out->body_len);
  return rc;
}

bool pl_admit(run *x) {
  return check_idempotency_key(x) && authenticate(x) && resolve_tenant(x) &&
         limit_caller(x);
}

bool pl_decode(run *x, ProtobufCMessage **msg, json_t **fields) {
  const pipeline_request *in = x->in;
  int64_t t0 = time_mono_ns();
  pbjson_error err;
  arena a;
  arena_init(&a, 1024, 64 * 1024);
  bool raw = x->r->raw_body != NULL; /* the body is bytes, not JSON */
  int rc = transcode_request(in->match, in->query, in->query_len,
                             raw ? NULL : in->body, raw ? 0 : in->body_len, &a,
                             msg, fields, &err);
  arena_release(&a);
  x->out->t.transcode_ns += elapsed_ns(t0);
  if (rc == ERR_OK) return true;
  if (rc != ERR_INVAL) {
    pl_fail(x, RPC_INTERNAL, NULL);
    return false;
  }
  rpc_violation v[PBJSON_MAX_ERRORS];
  for (size_t i = 0; i < err.count; i++) {
    v[i].field = err.errors[i].path;
    v[i].description = err.errors[i].description;
  }
  pipeline_answer_error(x->out, RPC_INVALID_ARGUMENT, "invalid request",
                        in->request_id, v, err.count);
  return false;
}

void pl_answer(run *x, const rpc_result *res, json_t *extra) {
  pipeline_answer *out = x->out;
  out->code = RPC_OK;
  out->status = x->r->status;
  if (x->r->status == 204) return;
  if ((x->r->existed_field != NULL || x->r->raw_reply != NULL) &&
      !pl_raw_answer(x, res))
    return;
  if (x->r->raw_reply != NULL) return; /* pl_raw_answer made the body */
  int64_t t0 = time_mono_ns();
  int rc = pl_reply_json(x->p, x->r, res, extra, out);
  out->t.transcode_ns += elapsed_ns(t0);
  if (rc != ERR_OK) {
    log_error("undecodable reply", "rpc", x->r->rpc, "error", err_str(rc));
    pl_fail(x, RPC_INTERNAL, NULL);
  }
}

void pipeline_run(pipeline *p, const pipeline_request *in,
                  pipeline_answer *out) {
  memset(out, 0, sizeof *out);
  run x = {.p = p,
           .in = in,
           .out = out,
           .r = in->match->route,
           .start_ms = in->start_mono_ms};
  ProtobufCMessage *msg = NULL;
  json_t *fields = NULL;
  json_t *extra = NULL;
  rpc_result *res = NULL;

  if (!pl_admit(&x) || !pl_decode(&x, &msg, &fields)) goto done;
  if (x.r->raw_body != NULL) raw_body_set(&x, msg);
  if (!limit_login(&x, fields)) goto done;
  if (!pl_call(&x, x.r->service, x.r->rpc, msg, retry_safe(&x), &res))
    goto done;
  if (x.r->extra != NULL && !extra_value(&x, &extra)) goto done;
  pl_answer(&x, res, extra);
done:
  rpc_result_free(res);
  json_decref(extra);
  json_decref(fields);
  raw_body_clear(x.r, msg);
  pbjson_free(msg);
}
