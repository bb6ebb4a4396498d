/*
 * provision.c - the CreateTenant saga and its reaper (see provision.h).
 *
 * The one judgement call is which answers of auth are "definite": a code
 * that a server only gives after deciding (it validated, looked up,
 * refused) means the request did not create a user; a transport failure,
 * deadline or internal error leaves it unknown. Unknown is treated as
 * "maybe created" and compensated with DeleteTenantUsers, which is
 * idempotent and harmless when nothing was created.
 */
#include "services/tenants/provision.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"
#include "libs/obs/log.h"

#define DELETE_USERS_DEADLINE_MS 5000
#define REAP_BATCH 32

void provision_outcome_clear(provision_outcome *o) {
  if (o == NULL) return;
  if (o->owner != NULL)
    auth__v1__create_user_response__free_unpacked(o->owner, NULL);
  rpc_result_free(o->auth_result);
  memset(o, 0, sizeof *o);
}

static bool definite(int code) {
  switch (code) {
  case RPC_INVALID_ARGUMENT:
  case RPC_NOT_FOUND:
  case RPC_ALREADY_EXISTS:
  case RPC_PERMISSION_DENIED:
  case RPC_RESOURCE_EXHAUSTED:
  case RPC_FAILED_PRECONDITION:
  case RPC_OUT_OF_RANGE:
  case RPC_UNIMPLEMENTED:
  case RPC_UNAUTHENTICATED:
    return true;
  default:
    return false;
  }
}

/* Asks auth to delete every user of tenant_id. ERR_OK when auth
 * confirmed. */
static int delete_users(const provision_deps *d, const char *tenant_id) {
  Auth__V1__DeleteTenantUsersRequest req =
      AUTH__V1__DELETE_TENANT_USERS_REQUEST__INIT;
  req.tenant_id = (char *)tenant_id;
  rpc_call_options o = RPC_CALL_OPTIONS_INIT;
  o.deadline_ms = DELETE_USERS_DEADLINE_MS;
  o.idempotent = true;
  o.tenant_id = tenant_id;
  rpc_result *res = NULL;
  int rc = rpc_client_call_message(d->auth, PROVISION_DELETE_USERS, &req.base,
                                   &o, &res);
  if (rc == ERR_OK && res->code != RPC_OK) {
    log_warn("auth could not delete a tenant's users", "tenant_id", tenant_id,
             "code", rpc_code_name(res->code));
    rc = ERR_UNAVAILABLE;
  }
  rpc_result_free(res);
  return rc;
}

/* Undoes steps 1-2 after an unknown or failed outcome: users first (so a
 * crash here leaves the row for the reaper, never an orphan user). */
static void compensate(const provision_deps *d, const char *tenant_id,
                       bool user_maybe) {
  if (user_maybe && delete_users(d, tenant_id) != ERR_OK) {
    log_warn("tenant left for the reaper", "tenant_id", tenant_id);
    return;
  }
  int rc = store_delete_provisioning(d->st, tenant_id);
  if (rc != ERR_OK && rc != ERR_NOTFOUND)
    log_warn("could not delete a provisioning tenant; the reaper will",
             "tenant_id", tenant_id, "error", err_str(rc));
}

/* Time left for the owner step: the caller's deadline minus a margin for
 * the steps after it, capped by owner_timeout_ms. */
static uint32_t owner_deadline(const provision_deps *d, int64_t deadline_ms) {
  int64_t cap = d->owner_timeout_ms ? d->owner_timeout_ms : 10000;
  int64_t left = deadline_ms - 500;
  if (left < 100) left = 100;
  return (uint32_t)(left < cap ? left : cap);
}

void provision_new_id(char out[UUID_STR_LEN + 1]) { uuid_v7_str(out); }

/* Step 1 when resuming and the insert met an existing row: ours when it
 * has this id and slug. *active: the earlier attempt already got to the
 * end of step 3. */
static int resume_row(const provision_deps *d, const char *id, const char *slug,
                      store_tenant *t, bool *active) {
  int rc = store_get_any(d->st, id, t);
  if (rc == ERR_NOTFOUND) return ERR_EXISTS; /* the slug is another's */
  if (rc != ERR_OK) return rc;
  if (strcmp(t->slug, slug) != 0) return ERR_EXISTS;
  *active = strcmp(t->status, "active") == 0;
  return ERR_OK;
}

/* 1. the provisioning row holds the slug. ERR_OK to go on. */
static bool step_insert(const provision_deps *d, const provision_run *run,
                        const char *slug, const char *name,
                        const char *currency, provision_outcome *out,
                        bool *active) {
  *active = false;
  int rc = store_insert_provisioning(d->st, run->id, slug, name, currency,
                                     &out->tenant);
  if (rc == ERR_EXISTS && run->resume)
    rc = resume_row(d, run->id, slug, &out->tenant, active);
  if (rc == ERR_OK) return true;
  if (rc == ERR_EXISTS) {
    out->code = RPC_ALREADY_EXISTS;
    out->message = "slug is taken";
    return false;
  }
  out->code = rpc_code_from_err(rc);
  out->message = "cannot create the tenant";
  log_error("inserting a tenant failed", "error", err_str(rc), "detail",
            db_last_error()->message);
  return false;
}

/* auth refused or its answer is unknown: undo, and say what happened. */
static void owner_failed(const provision_deps *d, const provision_run *run,
                         rpc_result *res, provision_outcome *out) {
  if (res->code == RPC_ABORTED && run->keyed) {
    /* Another attempt of this very call is creating the owner right now
     * (a retry took over from a replica that hangs): undoing would undo
     * its work. Leave the row and the claim: the next retry resumes. */
    log_info("owner step still running elsewhere", "tenant_id", run->id);
    out->code = RPC_ABORTED;
    out->message = "the tenant is still being created; try again";
    out->keep_claim = true;
    rpc_result_free(res);
    return;
  }
  bool sure = definite(res->code);
  log_info("owner step failed", "tenant_id", run->id, "code",
           rpc_code_name(res->code), "definite", sure ? "yes" : "no");
  compensate(d, run->id, !sure);
  if (sure) {
    out->code = res->code == RPC_INVALID_ARGUMENT ||
                        res->code == RPC_RESOURCE_EXHAUSTED ||
                        res->code == RPC_FAILED_PRECONDITION
                    ? res->code
                    : RPC_INTERNAL;
    out->message = res->code == RPC_INVALID_ARGUMENT
                       ? "invalid owner"
                       : "the owner could not be created";
    out->auth_result = res;
  } else {
    out->code = RPC_UNAVAILABLE;
    out->message = "the owner could not be created; try again";
    rpc_result_free(res);
  }
}

/* 2. the owner, idempotent by key. true with out->owner set. */
static bool step_owner(const provision_deps *d, const provision_run *run,
                       const provision_owner *owner, int64_t deadline_ms,
                       provision_outcome *out) {
  char key[64];
  snprintf(key, sizeof key, "tenant-owner:%s", run->id);
  Auth__V1__CreateUserRequest req = AUTH__V1__CREATE_USER_REQUEST__INIT;
  req.tenant_id = (char *)run->id;
  req.email = (char *)owner->email;
  req.name = (char *)owner->name;
  req.password = (char *)owner->password;
  req.role = "owner";
  req.issue_tokens = true;
  req.idempotency_key = key;
  rpc_call_options o = RPC_CALL_OPTIONS_INIT;
  o.deadline_ms = owner_deadline(d, deadline_ms);
  o.idempotent = true;
  o.tenant_id = run->id;
  o.idempotency_key = key;
  rpc_result *res = NULL;
  int rc = rpc_client_call_message(d->auth, PROVISION_CREATE_USER, &req.base,
                                   &o, &res);
  if (rc != ERR_OK) { /* local failure: the request never left */
    compensate(d, run->id, run->resume); /* resuming: an owner may exist */
    out->code = rpc_code_from_err(rc);
    out->message = "cannot create the owner";
    return false;
  }
  if (res->code != RPC_OK) {
    owner_failed(d, run, res, out);
    return false;
  }
  out->owner = auth__v1__create_user_response__unpack(NULL, res->payload_len,
                                                      res->payload);
  rpc_result_free(res);
  if (out->owner == NULL || out->owner->user == NULL) {
    compensate(d, run->id, true);
    out->code = RPC_UNAVAILABLE;
    out->message = "the owner could not be created; try again";
    return false;
  }
  return true;
}

/* 3. visible from now on; the event commits with it. A row no longer
 * provisioning but active with this id was activated by a twin attempt of
 * the same call: done all the same. */
static int step_activate(const provision_deps *d, const provision_run *run,
                         const char *slug, store_tenant *t) {
  store_event ev;
  int rc = events_changed("created", run->id, slug, "active", NULL, 0, &ev);
  if (rc == ERR_OK) {
    rc = store_activate(d->st, run->id, &ev, t);
    events_clear(&ev);
  }
  if (rc != ERR_NOTFOUND) return rc;
  bool active = false;
  if (resume_row(d, run->id, slug, t, &active) == ERR_OK && active)
    return ERR_OK;
  return ERR_NOTFOUND;
}

void provision_create_tenant(const provision_deps *d, const provision_run *run,
                             const char *slug, const char *name,
                             const char *currency, const provision_owner *owner,
                             int64_t deadline_ms, provision_outcome *out) {
  memset(out, 0, sizeof *out);
  const char *id = run->id;
  bool active = false;
  if (!step_insert(d, run, slug, name, currency, out, &active)) return;
  if (!step_owner(d, run, owner, deadline_ms, out)) return;

  if (d->after_owner != NULL) d->after_owner(id);

  int rc = active ? ERR_OK : step_activate(d, run, slug, &out->tenant);
  if (rc != ERR_OK) {
    log_warn("activating a tenant failed; undoing", "tenant_id", id, "error",
             err_str(rc));
    compensate(d, id, true);
    out->code = rc == ERR_NOTFOUND ? RPC_ABORTED : RPC_UNAVAILABLE;
    out->message = "the tenant could not be created; try again";
    auth__v1__create_user_response__free_unpacked(out->owner, NULL);
    out->owner = NULL;
    return;
  }
  outbox_kick(d->events);
  if (rescache_set_status(d->cache, id, "active") != ERR_OK)
    log_warn("could not record the tenant status in Redis", "tenant_id", id);
  store_resolved r;
  memset(&r, 0, sizeof r);
  memcpy(r.tenant_id, out->tenant.id, sizeof r.tenant_id);
  memcpy(r.slug, out->tenant.slug, sizeof r.slug);
  memcpy(r.status, out->tenant.status, sizeof r.status);
  r.version = out->tenant.version;
  rescache_put(d->cache, false, r.slug, &r);
  out->code = RPC_OK;
  log_info(run->resume ? "tenant created (resumed)" : "tenant created",
           "tenant_id", id, "slug", slug);
}

int provision_reap(const provision_deps *d, int64_t max_age_ms,
                   size_t *reaped) {
  if (reaped != NULL) *reaped = 0;
  char ids[REAP_BATCH][UUID_STR_LEN + 1];
  size_t n = 0;
  int rc = store_stale_provisioning(d->st, max_age_ms, ids, REAP_BATCH, &n);
  if (rc != ERR_OK) return rc;
  for (size_t i = 0; i < n; i++) {
    if (delete_users(d, ids[i]) != ERR_OK) continue; /* next run */
    rc = store_delete_provisioning(d->st, ids[i]);
    if (rc == ERR_OK) {
      log_info("reaped an unfinished tenant", "tenant_id", ids[i]);
      if (reaped != NULL) (*reaped)++;
    } else if (rc != ERR_NOTFOUND) {
      log_warn("reaping a tenant failed", "tenant_id", ids[i], "error",
               err_str(rc));
    }
  }
  return ERR_OK;
}
