/*
 * provision.h - creating a tenant together with its owner, and cleaning up
 * after creations that were interrupted (the CreateTenant saga).
 *
 * The tenant lives in this service's database, its owner in the auth
 * service's, so no single transaction covers both. The steps are ordered
 * so that nothing half-made is ever visible and nothing half-made
 * remains:
 *
 *   1. insert the tenant as 'provisioning': invisible to Resolve and
 *      GetTenant, but holding its slug (unique index);
 *   2. call auth "auth.v1.Auth/CreateUser" {role owner, issue_tokens}
 *      with idempotency key "tenant-owner:<tenant_id>", so a retry of
 *      this call (libs/rpc retries it: it is idempotent by that key)
 *      never makes a second owner;
 *   3. mark the tenant 'active' (and write its tenants.changed event in
 *      the same transaction).
 *
 * Failures:
 *   - auth refuses (a definite answer: INVALID_ARGUMENT for a bad
 *     password, ...): no user exists; the row is deleted and auth's
 *     answer returned, its field violations prefixed with "owner.";
 *   - auth's answer is unknown (UNAVAILABLE, DEADLINE_EXCEEDED,
 *     INTERNAL...): a user may exist; auth "DeleteTenantUsers" is called,
 *     then the row deleted; if that fails too the row stays
 *     'provisioning' for the reaper; UNAVAILABLE is returned;
 *   - the row was reaped meanwhile (step 3 finds no provisioning row):
 *     the user just made is deleted again, ABORTED is returned;
 *   - the process dies between the steps: the reaper (provision_reap,
 *     run at start and periodically by the janitor) finds 'provisioning'
 *     rows older than max_age, asks auth to delete their users, then
 *     deletes the rows. max_age must exceed the owner step's timeout, so
 *     that a creation still in progress is not reaped under it (if it is
 *     anyway, the third case above repairs it).
 *
 * Test seam: after_owner, when set, is called right after step 2
 * succeeded. Only the tenants_testhooks binary sets it (main.c under
 * TEST_HOOKS: TENANTS_TEST_CRASH_AFTER_OWNER=1 makes it _exit(137)), so
 * the integration tests can prove the reaper's promise; the shipped
 * binary leaves it NULL and has no code that could set it.
 */
#ifndef TENANTS_PROVISION_H
#define TENANTS_PROVISION_H

#include <stdbool.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "libs/db/db.h"
#include "libs/outbox/outbox.h"
#include "libs/rpc/rpc.h"
#include "proto/auth/v1/auth.pb-c.h"
#include "services/tenants/events.h"
#include "services/tenants/rescache.h"
#include "services/tenants/store.h"

#define PROVISION_CREATE_USER "auth.v1.Auth/CreateUser"
#define PROVISION_DELETE_USERS "auth.v1.Auth/DeleteTenantUsers"

typedef struct provision_deps {
  store *st; /* borrowed, all of them */
  rpc_client *auth;
  rescache *cache;           /* may be NULL */
  outbox *events;            /* the relay to kick; may be NULL */
  uint32_t owner_timeout_ms; /* the CreateUser call at most; 0 -> 10000 */
  void (*after_owner)(const char *tenant_id); /* test seam; NULL */
} provision_deps;

typedef struct provision_owner {
  const char *email, *password, *name; /* never logged */
} provision_owner;

/* What provision_create_tenant did. On code RPC_OK: tenant and owner are
 * set (owner points into auth's unpacked reply). Otherwise message is a
 * static text for the caller, and auth_result (when not NULL) holds auth's
 * answer whose violations the caller reports with the "owner." prefix. */
typedef struct provision_outcome {
  int code;
  const char *message;
  store_tenant tenant;
  Auth__V1__CreateUserResponse *owner;
  rpc_result *auth_result;
  bool keep_claim; /* a twin may still finish it: keep the key's claim */
} provision_outcome;

/* Frees what an outcome holds. NULL-safe; leaves it zeroed. */
void provision_outcome_clear(provision_outcome *o);

/* Which tenant the saga provisions. id: a new UUIDv7 (provision_new_id)
 * or, resuming, the one an earlier attempt of the same keyed call noted
 * in its claim. keyed: a claim names the id, so a retry can resume. */
typedef struct provision_run {
  const char *id;
  bool keyed;
  bool resume;
} provision_run;

/* A fresh tenant id (UUIDv7) into out. */
void provision_new_id(char out[UUID_STR_LEN + 1]);

/* Runs the saga for already validated input (slug syntax, name, currency
 * normalised). deadline_ms bounds the whole operation (the caller's time
 * left). Never fails locally: the result is in *out (clear it after).
 *
 * Resuming (run->resume: an earlier attempt of the same call died or
 * hangs somewhere in the saga) every step is repeated and tolerates what
 * the earlier attempt already did: the provisioning row with this id
 * (and slug) is taken as ours, the owner step replays by its key, and a
 * tenant already active with this id is the answer. Two attempts may run
 * at once (a hung replica comes back): whichever activates first wins and
 * the other answers the same tenant; when auth says the owner's creation
 * is still running (ABORTED) a keyed run undoes nothing and answers
 * ABORTED with keep_claim set, so the next retry resumes. */
void provision_create_tenant(const provision_deps *d, const provision_run *run,
                             const char *slug, const char *name,
                             const char *currency, const provision_owner *owner,
                             int64_t deadline_ms, provision_outcome *out);

/* Deletes 'provisioning' tenants created more than max_age_ms ago, each
 * after auth confirmed its users are deleted; *reaped (optional) gets the
 * count. Rows whose users could not be deleted stay for the next run.
 * Errors: the database's (listing failed). */
int provision_reap(const provision_deps *d, int64_t max_age_ms,
                   size_t *reaped) WARN_UNUSED;

#endif
