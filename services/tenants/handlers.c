/*
 * handlers.c - "tenants.v1.Tenants/..." (see handlers.h and README.md).
 *
 * Every handler has the same shape, with libs/svc's handler.h steps:
 * unpack the request (exactly one free_unpacked on every path, through
 * the single `out:` label), check the caller (libs/authn's
 * authn_check_call), validate, call the store, answer. Input errors
 * become INVALID_ARGUMENT with one field violation per bad field, so a
 * client fixes them all at once. Database failures become the status of
 * rpc_code_from_err with a generic message: the detail goes to the log
 * (db_last_error never carries parameter values), never to the caller.
 *
 * Redis and the outbox relay are touched only after the database has
 * committed, and only on a best-effort basis: the database is the truth,
 * the cache versions keep stale writes out (rescache.h), and the janitor
 * repairs tenant:status keys.
 */
#include "services/tenants/handlers.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/authn/authn_caller.h"
#include "libs/base/strutil.h"
#include "libs/base/uuid.h"
#include "libs/obs/log.h"
#include "libs/obs/metrics.h"
#include "libs/svc/handler.h"
#include "libs/tenantdir/tenantname.h"
#include "proto/tenants/v1/tenants.pb-c.h"
#include "services/tenants/keyed.h"
#include "services/tenants/validate.h"

#define REASON_MAX 200

struct tenants {
  tenants_config c;
  char base_domains[1024];
  char default_currency[4];
  metrics_child *resolve_cache, *resolve_db, *resolve_missing;
};

/* ------------------------------------------------------------ helpers --- */

static void tenant_pb(const store_tenant *s, Tenants__V1__Tenant *t) {
  tenants__v1__tenant__init(t);
  t->id = (char *)s->id;
  t->slug = (char *)s->slug;
  t->name = (char *)s->name;
  t->currency = (char *)s->currency;
  t->status = (char *)s->status;
  t->created_at = (char *)s->created_at;
}

/* A domain as clients see it; an unverified one carries how to verify
 * it (v and url are the caller's, filled here). */
typedef struct domain_wire {
  Tenants__V1__Domain d;
  Tenants__V1__DomainVerification v;
  char url[DOMAINVERIFY_URL_MAX];
} domain_wire;

static void domain_pb(const store_domain *s, domain_wire *w) {
  tenants__v1__domain__init(&w->d);
  w->d.host = (char *)s->host;
  w->d.tenant_id = (char *)s->tenant_id;
  w->d.created_at = (char *)s->created_at;
  w->d.verified = s->verified;
  if (s->verified) {
    w->d.verified_at_present_case =
        TENANTS__V1__DOMAIN__VERIFIED_AT_PRESENT_VERIFIED_AT;
    w->d.verified_at = (char *)s->verified_at;
    return;
  }
  tenants__v1__domain_verification__init(&w->v);
  w->v.method = "http";
  if (domainverify_url(s->host, s->token, w->url) != ERR_OK) w->url[0] = '\0';
  w->v.url = w->url;
  w->v.token = (char *)s->token;
  w->d.verification = &w->v;
}

/* A fresh verification token: 32 random bytes as unpadded base64url. */
static void new_token(char out[STORE_TOKEN_LEN + 1]) {
  unsigned char raw[32];
  randombytes_buf(raw, sizeof raw);
  sodium_bin2base64(out, STORE_TOKEN_LEN + 1, raw, sizeof raw,
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static bool operator_call(tenants *t, const rpc_call *call, rpc_reply *reply) {
  if (call->token[0] == '\0') {
    rpc_reply_status(reply, RPC_UNAUTHENTICATED, "operator secret required");
    return false;
  }
  if (!access_operator_enabled(t->c.op)) {
    rpc_reply_status(
        reply, RPC_PERMISSION_DENIED,
        "operator calls are disabled (no TENANTS_OPERATOR_SECRET)");
    return false;
  }
  if (!access_operator_check(t->c.op, call->token)) {
    rpc_reply_status(reply, RPC_PERMISSION_DENIED, "not an operator");
    return false;
  }
  return true;
}

static store_resolved resolved_of(const store_tenant *s, int64_t version) {
  store_resolved r;
  memset(&r, 0, sizeof r);
  memcpy(r.tenant_id, s->id, sizeof r.tenant_id);
  memcpy(r.slug, s->slug, sizeof r.slug);
  memcpy(r.status, s->status, sizeof r.status);
  r.version = version > s->version ? version : s->version;
  return r;
}

/* After a status change: every Resolve key of the tenant gets the new
 * status at the tenant's new version. */
/* After a change of the tenant's row: its cached record, the new one. */
static void put_tenant(tenants *t, const store_tenant *s) {
  if (rescache_put_tenant(t->c.deps.cache, s) == ERR_UNAVAILABLE &&
      t->c.deps.cache != NULL)
    log_warn("could not update the cached tenant record; it expires with "
             "the resolve cache TTL",
             "tenant_id", s->id);
}

static void refresh_cache(tenants *t, const store_tenant *s) {
  put_tenant(t, s);
  store_resolved r = resolved_of(s, 0);
  rescache_put(t->c.deps.cache, false, s->slug, &r);
  store_domain *ds = calloc(STORE_MAX_DOMAINS, sizeof *ds);
  size_t n = 0;
  if (ds != NULL && store_list_domains(t->c.deps.st, s->id, false, ds,
                                       STORE_MAX_DOMAINS, &n) == ERR_OK)
    for (size_t i = 0; i < n; i++)
      if (ds[i].verified) /* only these route; others may be claimed */
        rescache_put(t->c.deps.cache, true, ds[i].host, &r);
  free(ds);
}

/* ----------------------------------------------------------- methods --- */

static void create_tenant(void *arg, const rpc_call *call, rpc_reply *reply) {
  tenants *t = arg;
  provision_outcome po;
  memset(&po, 0, sizeof po);
  keyed k;
  memset(&k, 0, sizeof k);
  HANDLER_UNPACK(Tenants__V1__CreateTenantRequest,
                 tenants__v1__create_tenant_request, req, 0);
  vlist v;
  vlist_init(&v);
  const char *why = NULL;
  if (validate_name(req->name, &why) != ERR_OK) vlist_add(&v, why, "name");
  if (tenantname_check_slug(req->slug, &why) != ERR_OK)
    vlist_add(&v, why, "slug");
  char currency[4];
  memcpy(currency, t->default_currency, sizeof currency);
  if (req->currency_present_case ==
          TENANTS__V1__CREATE_TENANT_REQUEST__CURRENCY_PRESENT_CURRENCY &&
      validate_currency(req->currency, currency, &why) != ERR_OK)
    vlist_add(&v, why, "currency");
  if (req->owner == NULL) vlist_add(&v, "is required", "owner");
  if (v.n > 0) {
    handler_reply_invalid(reply, "invalid tenant", &v);
    goto out;
  }
  /* Anonymous: the key's scope is the slug asked for (keyed.h). */
  char scope[TENANTNAME_SLUG_MAX + 8];
  snprintf(scope, sizeof scope, "slug:%s", req->slug);
  /* The claim notes the tenant id, so a retry that takes it over (the
   * replica running the saga died) provisions the same tenant. */
  char id[UUID_STR_LEN + 1];
  provision_new_id(id);
  if (!keyed_begin(&k, t->c.deps.st, call, NULL, scope, t->c.idem_ttl_ms, id,
                   reply))
    goto out;
  provision_run run = {.id = id, .keyed = k.on};
  if (k.resumed) {
    if (!uuid_is_valid(k.note)) {
      rpc_reply_status(reply, RPC_INTERNAL, "cannot resume the creation");
      goto out;
    }
    run.id = k.note;
    run.resume = true;
  }

  provision_owner owner = {req->owner->email, req->owner->password,
                           req->owner->name};
  provision_create_tenant(&t->c.deps, &run, req->slug, req->name, currency,
                          &owner, rpc_call_time_left_ms(call), &po);
  if (po.keep_claim) keyed_keep(&k);
  if (po.code != RPC_OK) {
    rpc_reply_status(reply, po.code, "%s", po.message);
    if (po.code == RPC_ALREADY_EXISTS)
      (void)rpc_reply_add_violation(reply, "slug", "is taken");
    for (size_t i = 0; po.auth_result && i < po.auth_result->nviolations; i++) {
      char field[160];
      snprintf(field, sizeof field, "owner.%s",
               po.auth_result->violations[i].field);
      (void)rpc_reply_add_violation(reply, field,
                                    po.auth_result->violations[i].description);
    }
    goto out;
  }
  Tenants__V1__Tenant tpb;
  tenant_pb(&po.tenant, &tpb);
  Tenants__V1__CreateTenantResponse resp =
      TENANTS__V1__CREATE_TENANT_RESPONSE__INIT;
  resp.tenant = &tpb;
  resp.user = po.owner->user;
  resp.access_token = po.owner->access_token;
  resp.refresh_token = po.owner->refresh_token;
  resp.token_type = po.owner->token_type[0] ? po.owner->token_type : "Bearer";
  resp.expires_in = po.owner->expires_in;
  keyed_reply(&k, t->c.deps.st, reply, &resp.base);
out:
  keyed_fail(&k, t->c.deps.st); /* nothing if answered or without key */
  keyed_done(&k);
  provision_outcome_clear(&po);
  tenants__v1__create_tenant_request__free_unpacked(req, NULL);
}

static void get_tenant(void *arg, const rpc_call *call, rpc_reply *reply) {
  tenants *t = arg;
  HANDLER_UNPACK(Tenants__V1__GetTenantRequest, tenants__v1__get_tenant_request,
                 req, 0);
  paseto_claims cl;
  if (authn_check_call(t->c.verifier, call, handler_min_rank(call), &cl,
                       reply) != ERR_OK)
    goto out;
  if (req->id[0] != '\0' && strcmp(req->id, cl.tid) != 0) {
    rpc_reply_status(reply, RPC_PERMISSION_DENIED,
                     "the token belongs to another tenant");
    goto out;
  }
  store_tenant s;
  int rc = ERR_OK;
  if (!rescache_get_tenant(t->c.deps.cache, cl.tid, &s)) {
    rc = store_get(t->c.deps.st, cl.tid, &s);
    if (rc == ERR_OK)
      rescache_put_tenant(t->c.deps.cache, &s); /* best effort */
  }
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "read the tenant");
    goto out;
  }
  Tenants__V1__Tenant tpb;
  tenant_pb(&s, &tpb);
  Tenants__V1__GetTenantResponse resp = TENANTS__V1__GET_TENANT_RESPONSE__INIT;
  resp.tenant = &tpb;
  handler_reply_message(reply, &resp.base);
out:
  tenants__v1__get_tenant_request__free_unpacked(req, NULL);
}

static void update_tenant(void *arg, const rpc_call *call, rpc_reply *reply) {
  tenants *t = arg;
  store_event ev = {0};
  HANDLER_UNPACK(Tenants__V1__UpdateTenantRequest,
                 tenants__v1__update_tenant_request, req, 0);
  paseto_claims cl;
  if (authn_check_call(t->c.verifier, call, handler_min_rank(call), &cl,
                       reply) != ERR_OK)
    goto out;
  vlist v;
  vlist_init(&v);
  const char *why = NULL;
  const char *name = NULL, *currency = NULL;
  char cur[4];
  if (req->name_present_case ==
      TENANTS__V1__UPDATE_TENANT_REQUEST__NAME_PRESENT_NAME) {
    if (validate_name(req->name, &why) != ERR_OK) vlist_add(&v, why, "name");
    name = req->name;
  }
  if (req->currency_present_case ==
      TENANTS__V1__UPDATE_TENANT_REQUEST__CURRENCY_PRESENT_CURRENCY) {
    if (validate_currency(req->currency, cur, &why) != ERR_OK)
      vlist_add(&v, why, "currency");
    currency = cur;
  }
  if (v.n > 0) {
    handler_reply_invalid(reply, "invalid tenant", &v);
    goto out;
  }
  store_tenant s;
  int rc = store_get(t->c.deps.st, cl.tid, &s);
  if (rc == ERR_OK && (name != NULL || currency != NULL)) {
    rc = events_changed("updated", s.id, s.slug, s.status, NULL, 0, &ev);
    if (rc == ERR_OK)
      rc = store_update(t->c.deps.st, cl.tid, name, currency, &ev, &s);
    if (rc == ERR_OK) {
      outbox_kick(t->c.deps.events);
      put_tenant(t, &s); /* before answering: the next read sees it */
    }
  }
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "update the tenant");
    goto out;
  }
  Tenants__V1__Tenant tpb;
  tenant_pb(&s, &tpb);
  Tenants__V1__UpdateTenantResponse resp =
      TENANTS__V1__UPDATE_TENANT_RESPONSE__INIT;
  resp.tenant = &tpb;
  handler_reply_message(reply, &resp.base);
out:
  events_clear(&ev);
  tenants__v1__update_tenant_request__free_unpacked(req, NULL);
}

/* The cache, then the database; answers the reply. */
static void resolve_key(tenants *t, bool by_host, const char *key,
                        rpc_reply *reply) {
  store_resolved r;
  memset(&r, 0, sizeof r);
  enum rescache_hit hit = rescache_get(t->c.deps.cache, by_host, key, &r);
  int rc = ERR_OK;
  if (hit == RESCACHE_GONE) {
    rc = ERR_NOTFOUND;
    metrics_inc(t->resolve_cache);
  } else if (hit == RESCACHE_FOUND) {
    metrics_inc(t->resolve_cache);
  } else {
    rc = by_host ? store_resolve_host(t->c.deps.st, key, &r)
                 : store_resolve_slug(t->c.deps.st, key, &r);
    if (rc == ERR_OK) {
      metrics_inc(t->resolve_db);
      rescache_put(t->c.deps.cache, by_host, key, &r);
    }
  }
  if (rc == ERR_NOTFOUND) {
    metrics_inc(t->resolve_missing);
    rpc_reply_status(reply, RPC_NOT_FOUND, "no such tenant");
    return;
  }
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "resolve the tenant");
    return;
  }
  Tenants__V1__ResolveResponse resp = TENANTS__V1__RESOLVE_RESPONSE__INIT;
  resp.tenant_id = r.tenant_id;
  resp.slug = r.slug;
  resp.status = r.status;
  handler_reply_message(reply, &resp.base);
}

static void resolve(void *arg, const rpc_call *call, rpc_reply *reply) {
  tenants *t = arg;
  HANDLER_UNPACK(Tenants__V1__ResolveRequest, tenants__v1__resolve_request, req,
                 0);
  const char *why = NULL;
  char host[TENANTNAME_HOST_MAX + 1], slug[TENANTNAME_SLUG_MAX + 1];
  switch (req->key_case) {
  case TENANTS__V1__RESOLVE_REQUEST__KEY_SLUG:
    if (tenantname_check_slug(req->slug, &why) != ERR_OK) {
      if (tenantname_is_reserved(req->slug)) {
        rpc_reply_status(reply, RPC_NOT_FOUND, "no such tenant");
      } else {
        handler_reply_field(reply, RPC_INVALID_ARGUMENT, "invalid slug", "slug",
                            why);
      }
      break;
    }
    resolve_key(t, false, req->slug, reply);
    break;
  case TENANTS__V1__RESOLVE_REQUEST__KEY_HOST:
    if (tenantname_normalize_host(req->host, host, sizeof host) != ERR_OK) {
      handler_reply_field(reply, RPC_INVALID_ARGUMENT, "invalid host", "host",
                          "must be a valid host name");
      break;
    }
    if (tenantname_slug_from_host(host, t->base_domains, slug, sizeof slug)) {
      if (tenantname_check_slug(slug, NULL) != ERR_OK)
        rpc_reply_status(reply, RPC_NOT_FOUND, "no such tenant");
      else
        resolve_key(t, false, slug, reply);
      break;
    }
    resolve_key(t, true, host, reply);
    break;
  default:
    handler_reply_field(reply, RPC_INVALID_ARGUMENT, "slug or host required",
                        "slug", "slug or host is required");
    break;
  }
  tenants__v1__resolve_request__free_unpacked(req, NULL);
}

/* The host argument of a domain call, normalised into host; replies
 * INVALID_ARGUMENT and returns false when it is not a custom host. */
static bool custom_host_arg(tenants *t, const char *in, rpc_reply *reply,
                            char host[TENANTNAME_HOST_MAX + 1]) {
  const char *why = "must be a valid host name";
  if (tenantname_normalize_host(in, host, TENANTNAME_HOST_MAX + 1) != ERR_OK ||
      strchr(in, ':') != NULL ||
      tenantname_check_custom_host(host, t->base_domains, &why) != ERR_OK) {
    handler_reply_field(reply, RPC_INVALID_ARGUMENT, "invalid host", "host",
                        why);
    return false;
  }
  return true;
}

static void reply_domain_taken(rpc_reply *reply) {
  handler_reply_field(reply, RPC_ALREADY_EXISTS, "host is already in use",
                      "host", "is already in use");
}

/* AddDomain's work once the caller and host are checked: the claim
 * (unverified, with a fresh token) and its event. */
static void add_domain_claim(tenants *t, const char *tid, const char *host,
                             keyed *k, rpc_reply *reply) {
  store_event ev = {0};
  bool taken = false;
  int rc = store_host_taken(t->c.deps.st, tid, host, &taken);
  if (rc == ERR_OK && taken) rc = ERR_EXISTS;
  store_tenant s;
  if (rc == ERR_OK) rc = store_get(t->c.deps.st, tid, &s);
  const char *hosts[] = {host};
  if (rc == ERR_OK)
    rc = events_changed("domain_added", s.id, s.slug, s.status, hosts, 1, &ev);
  char token[STORE_TOKEN_LEN + 1];
  new_token(token);
  store_domain d;
  if (rc == ERR_OK)
    rc = store_add_domain(t->c.deps.st, tid, host, token, &ev, &d);
  events_clear(&ev);
  if (rc == ERR_EXISTS && k->resumed) {
    /* An earlier attempt of this call added it, then its replica died
     * before the answer was saved: that claim is the answer. */
    rc = store_get_domain(t->c.deps.st, tid, host, &d);
    if (rc == ERR_NOTFOUND) rc = ERR_EXISTS; /* removed again meanwhile */
  } else if (rc == ERR_OK) {
    outbox_kick(t->c.deps.events);
  }
  if (rc == ERR_EXISTS) {
    reply_domain_taken(reply);
    return;
  }
  if (rc == ERR_TOOBIG) {
    rpc_reply_status(reply, RPC_FAILED_PRECONDITION,
                     "a tenant has at most %d custom domains",
                     STORE_MAX_DOMAINS);
    return;
  }
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "add the domain");
    return;
  }
  /* Nothing for the Resolve cache: an unverified host does not route. */
  domain_wire w;
  domain_pb(&d, &w);
  Tenants__V1__AddDomainResponse resp = TENANTS__V1__ADD_DOMAIN_RESPONSE__INIT;
  resp.domain = &w.d;
  keyed_reply(k, t->c.deps.st, reply, &resp.base);
}

static void add_domain(void *arg, const rpc_call *call, rpc_reply *reply) {
  tenants *t = arg;
  HANDLER_UNPACK(Tenants__V1__AddDomainRequest, tenants__v1__add_domain_request,
                 req, 0);
  paseto_claims cl;
  char host[TENANTNAME_HOST_MAX + 1];
  keyed k;
  memset(&k, 0, sizeof k);
  if (authn_check_call(t->c.verifier, call, handler_min_rank(call), &cl,
                       reply) == ERR_OK &&
      custom_host_arg(t, req->host, reply, host) &&
      keyed_begin(&k, t->c.deps.st, call, cl.tid, cl.sub, t->c.idem_ttl_ms,
                  NULL, reply))
    add_domain_claim(t, cl.tid, host, &k, reply);
  keyed_fail(&k, t->c.deps.st); /* nothing if answered or without key */
  keyed_done(&k);
  tenants__v1__add_domain_request__free_unpacked(req, NULL);
}

/* After a successful verification: the host routes to the tenant from
 * now on; the cache learns it at the domain's new version (which beats a
 * tombstone of an earlier removal). */
static void cache_verified(tenants *t, const char *tid, const store_domain *d) {
  store_tenant s;
  if (store_get(t->c.deps.st, tid, &s) == ERR_OK) {
    store_resolved r = resolved_of(&s, d->version);
    rescache_put(t->c.deps.cache, true, d->host, &r);
  }
}

static void reply_verified(rpc_reply *reply, const store_domain *d) {
  domain_wire w;
  domain_pb(d, &w);
  Tenants__V1__VerifyDomainResponse resp =
      TENANTS__V1__VERIFY_DOMAIN_RESPONSE__INIT;
  resp.domain = &w.d;
  handler_reply_message(reply, &resp.base);
}

/* VerifyDomain's work: fetch (outside any transaction: it may take
 * seconds), then mark verified if the claim is unchanged. */
static void verify_claim(tenants *t, const char *tid, const char *host,
                         rpc_reply *reply) {
  store_domain d;
  int rc = store_get_domain(t->c.deps.st, tid, host, &d);
  if (rc == ERR_NOTFOUND) {
    rpc_reply_status(reply, RPC_NOT_FOUND, "no such domain");
    return;
  }
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "read the domain");
    return;
  }
  if (d.verified) { /* idempotent */
    reply_verified(reply, &d);
    return;
  }
  const char *why = NULL;
  rc = domainverify_check(&t->c.verify, host, d.token, &why);
  if (rc != ERR_OK) {
    log_info("domain verification failed", "tenant_id", tid, "host", host,
             "reason", why);
    handler_reply_field(reply, RPC_FAILED_PRECONDITION,
                        "domain verification failed", "host", why);
    return;
  }
  store_tenant s;
  store_event ev = {0};
  const char *hosts[] = {host};
  rc = store_get(t->c.deps.st, tid, &s);
  if (rc == ERR_OK)
    rc = events_changed("domain_verified", s.id, s.slug, s.status, hosts, 1,
                        &ev);
  store_domain out;
  if (rc == ERR_OK)
    rc = store_verify_domain(t->c.deps.st, tid, host, d.token, &ev, &out);
  events_clear(&ev);
  if (rc == ERR_EXISTS) {
    handler_reply_field(reply, RPC_ALREADY_EXISTS,
                        "the host is verified by another tenant", "host",
                        "is already in use");
    return;
  }
  if (rc == ERR_NOTFOUND) { /* removed or re-added meanwhile */
    rpc_reply_status(reply, RPC_ABORTED, "the domain changed meanwhile");
    return;
  }
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "verify the domain");
    return;
  }
  outbox_kick(t->c.deps.events);
  cache_verified(t, tid, &out);
  log_info("domain verified", "tenant_id", tid, "host", host);
  reply_verified(reply, &out);
}

static void verify_domain(void *arg, const rpc_call *call, rpc_reply *reply) {
  tenants *t = arg;
  HANDLER_UNPACK(Tenants__V1__VerifyDomainRequest,
                 tenants__v1__verify_domain_request, req, 0);
  paseto_claims cl;
  char host[TENANTNAME_HOST_MAX + 1];
  if (authn_check_call(t->c.verifier, call, handler_min_rank(call), &cl,
                       reply) == ERR_OK &&
      custom_host_arg(t, req->host, reply, host))
    verify_claim(t, cl.tid, host, reply);
  tenants__v1__verify_domain_request__free_unpacked(req, NULL);
}

static void remove_domain(void *arg, const rpc_call *call, rpc_reply *reply) {
  tenants *t = arg;
  store_event ev = {0};
  HANDLER_UNPACK(Tenants__V1__RemoveDomainRequest,
                 tenants__v1__remove_domain_request, req, 0);
  paseto_claims cl;
  if (authn_check_call(t->c.verifier, call, handler_min_rank(call), &cl,
                       reply) != ERR_OK)
    goto out;
  char host[TENANTNAME_HOST_MAX + 1];
  if (tenantname_normalize_host(req->host, host, sizeof host) != ERR_OK) {
    handler_reply_field(reply, RPC_INVALID_ARGUMENT, "invalid host", "host",
                        "must be a valid host name");
    goto out;
  }
  store_tenant s;
  int64_t version = 0;
  bool was_verified = false;
  const char *hosts[] = {host};
  int rc = store_get(t->c.deps.st, cl.tid, &s);
  if (rc == ERR_OK)
    rc =
        events_changed("domain_removed", s.id, s.slug, s.status, hosts, 1, &ev);
  if (rc == ERR_OK)
    rc = store_remove_domain(t->c.deps.st, cl.tid, host, &ev, &version,
                             &was_verified);
  if (rc == ERR_NOTFOUND) {
    rpc_reply_status(reply, RPC_NOT_FOUND, "no such domain");
    goto out;
  }
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "remove the domain");
    goto out;
  }
  outbox_kick(t->c.deps.events);
  /* An unverified claim never routed, and the host may be another
   * tenant's verified one: its cache entry is not ours to bury. */
  if (was_verified) rescache_put_gone(t->c.deps.cache, true, host, version);
  Tenants__V1__RemoveDomainResponse resp =
      TENANTS__V1__REMOVE_DOMAIN_RESPONSE__INIT;
  handler_reply_message(reply, &resp.base);
out:
  events_clear(&ev);
  tenants__v1__remove_domain_request__free_unpacked(req, NULL);
}

static void list_domains(void *arg, const rpc_call *call, rpc_reply *reply) {
  tenants *t = arg;
  store_domain *ds = NULL;
  domain_wire *pbs = NULL;
  Tenants__V1__Domain **ptrs = NULL;
  HANDLER_UNPACK(Tenants__V1__ListDomainsRequest,
                 tenants__v1__list_domains_request, req, 0);
  paseto_claims cl;
  if (authn_check_call(t->c.verifier, call, handler_min_rank(call), &cl,
                       reply) != ERR_OK)
    goto out;
  ds = calloc(STORE_MAX_DOMAINS, sizeof *ds);
  pbs = calloc(STORE_MAX_DOMAINS, sizeof *pbs);
  ptrs = calloc(STORE_MAX_DOMAINS, sizeof *ptrs);
  if (ds == NULL || pbs == NULL || ptrs == NULL) {
    rpc_reply_status(reply, RPC_RESOURCE_EXHAUSTED, "out of memory");
    goto out;
  }
  size_t n = 0;
  int rc =
      store_list_domains(t->c.deps.st, cl.tid, true, ds, STORE_MAX_DOMAINS, &n);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "list the domains");
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    domain_pb(&ds[i], &pbs[i]);
    ptrs[i] = &pbs[i].d;
  }
  Tenants__V1__ListDomainsResponse resp =
      TENANTS__V1__LIST_DOMAINS_RESPONSE__INIT;
  resp.n_domains = n;
  resp.domains = ptrs;
  handler_reply_message(reply, &resp.base);
out:
  free(ds);
  free(pbs);
  free(ptrs);
  tenants__v1__list_domains_request__free_unpacked(req, NULL);
}

/* Suspend and Resume: the same steps with another target status. */
static void set_status(tenants *t, const rpc_call *call, rpc_reply *reply,
                       const char *id_in, const char *reason,
                       const char *status) {
  store_event ev = {0};
  store_domain *ds = NULL;
  const char **hosts = NULL;
  if (!operator_call(t, call, reply)) return;
  /* Lower case: the id is also a Redis key and a log field. */
  char tenant_id[UUID_STR_LEN + 1];
  if (handler_uuid_arg(reply, "tenant_id", id_in, tenant_id) != ERR_OK) return;
  size_t rlen = strnlen(reason, REASON_MAX + 1);
  if (rlen > REASON_MAX || !str_is_printable(reason, rlen)) {
    handler_reply_field(reply, RPC_INVALID_ARGUMENT, "invalid reason", "reason",
                        "must be at most 200 printable characters");
    return;
  }
  store_tenant s;
  int rc = store_get_any(t->c.deps.st, tenant_id, &s);
  if (rc == ERR_OK && strcmp(s.status, "provisioning") == 0) rc = ERR_NOTFOUND;
  size_t n = 0;
  ds = calloc(STORE_MAX_DOMAINS, sizeof *ds);
  hosts = calloc(STORE_MAX_DOMAINS, sizeof *hosts);
  if (rc == ERR_OK && (ds == NULL || hosts == NULL)) rc = ERR_NOMEM;
  if (rc == ERR_OK)
    rc = store_list_domains(t->c.deps.st, tenant_id, false, ds,
                            STORE_MAX_DOMAINS, &n);
  for (size_t i = 0; rc == ERR_OK && i < n; i++) hosts[i] = ds[i].host;
  const char *change =
      strcmp(status, "suspended") == 0 ? "suspended" : "resumed";
  if (rc == ERR_OK)
    rc = events_changed(change, s.id, s.slug, status, hosts, n, &ev);
  bool changed = false;
  if (rc == ERR_OK)
    rc = store_set_status(t->c.deps.st, tenant_id, status, &ev, &s, &changed);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "change the tenant status");
    goto out;
  }
  if (changed) {
    outbox_kick(t->c.deps.events);
    log_info("tenant status changed", "tenant_id", tenant_id, "status", status,
             "reason", reason);
  }
  /* Written even when unchanged: repairs a key that was lost. */
  if (rescache_set_status(t->c.deps.cache, tenant_id, status) != ERR_OK)
    log_warn("could not record the tenant status in Redis; the janitor will "
             "retry",
             "tenant_id", tenant_id);
  refresh_cache(t, &s);
  Tenants__V1__Tenant tpb;
  tenant_pb(&s, &tpb);
  if (strcmp(status, "suspended") == 0) {
    Tenants__V1__SuspendResponse resp = TENANTS__V1__SUSPEND_RESPONSE__INIT;
    resp.tenant = &tpb;
    handler_reply_message(reply, &resp.base);
  } else {
    Tenants__V1__ResumeResponse resp = TENANTS__V1__RESUME_RESPONSE__INIT;
    resp.tenant = &tpb;
    handler_reply_message(reply, &resp.base);
  }
out:
  events_clear(&ev);
  free(ds);
  free(hosts);
}

static void suspend(void *arg, const rpc_call *call, rpc_reply *reply) {
  HANDLER_UNPACK(Tenants__V1__SuspendRequest, tenants__v1__suspend_request, req,
                 0);
  set_status(arg, call, reply, req->tenant_id, req->reason, "suspended");
  tenants__v1__suspend_request__free_unpacked(req, NULL);
}

static void resume(void *arg, const rpc_call *call, rpc_reply *reply) {
  HANDLER_UNPACK(Tenants__V1__ResumeRequest, tenants__v1__resume_request, req,
                 0);
  set_status(arg, call, reply, req->tenant_id, "", "active");
  tenants__v1__resume_request__free_unpacked(req, NULL);
}

/* ------------------------------------------------------------ set-up --- */

int tenants_new(const tenants_config *cfg, tenants **out) {
  *out = NULL;
  if (cfg == NULL || cfg->deps.st == NULL || cfg->deps.auth == NULL ||
      cfg->verifier == NULL || cfg->op == NULL)
    return ERR_INVAL;
  if (sodium_init() < 0 ||
      !domainverify_connect_to_valid(cfg->verify.connect_to))
    return ERR_INVAL;
  tenants *t = calloc(1, sizeof *t);
  if (t == NULL) return ERR_NOMEM;
  t->c = *cfg;
  const char *why = NULL;
  if (validate_currency(cfg->default_currency ? cfg->default_currency : "EUR",
                        t->default_currency, &why) != ERR_OK ||
      str_copy(t->base_domains, cfg->base_domains ? cfg->base_domains : "",
               sizeof t->base_domains) >= sizeof t->base_domains) {
    free(t);
    return ERR_INVAL;
  }
  t->c.base_domains = t->base_domains;
  t->c.default_currency = t->default_currency;
  static const char *const labels[] = {"source"};
  metrics_family *f =
      metrics_counter("tenants_resolve_total",
                      "Resolve answers by where they came from", 1, labels);
  const char *v_cache[] = {"cache"}, *v_db[] = {"db"},
             *v_none[] = {"not_found"};
  t->resolve_cache = metrics_child_get(f, v_cache);
  t->resolve_db = metrics_child_get(f, v_db);
  t->resolve_missing = metrics_child_get(f, v_none);
  *out = t;
  return ERR_OK;
}

void tenants_free(tenants *t) { free(t); }

int tenants_register(tenants *t, rpc_server *srv) {
  static const handler_method table[] = {
      {TENANTS_METHOD("CreateTenant"), create_tenant},
      {TENANTS_METHOD("GetTenant"), get_tenant},
      {TENANTS_METHOD("UpdateTenant"), update_tenant},
      {TENANTS_METHOD("Resolve"), resolve},
      {TENANTS_METHOD("AddDomain"), add_domain},
      {TENANTS_METHOD("RemoveDomain"), remove_domain},
      {TENANTS_METHOD("ListDomains"), list_domains},
      {TENANTS_METHOD("VerifyDomain"), verify_domain},
      {TENANTS_METHOD("Suspend"), suspend},
      {TENANTS_METHOD("Resume"), resume},
  };
  return handler_register(srv, table, sizeof table / sizeof table[0], t);
}
