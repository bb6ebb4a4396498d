/*
 * handlers.c - "sync.v1.Sync/..." (see handlers.h): devices and their
 * sessions.
 *
 * Every handler has the same shape, with libs/svc's handler.h steps:
 * unpack the request (exactly one free_unpacked on every path, through
 * the single `out:` label), check the caller (authn_check_call with
 * handler_min_rank: the role comes from the method's (rpc.v1.access)
 * declaration, never from a constant here), validate, call the store,
 * answer. Input errors become INVALID_ARGUMENT with one field violation
 * per bad field. Database failures become the status of rpc_code_from_err
 * with a generic message (handler_reply_error): the detail goes to the
 * log, never to the caller. The tenant is always the verified token's
 * tid, never a request field; CreateSession, anonymous, takes the
 * envelope's.
 *
 * Heartbeats: devices only (the role by name), buffered in memory by
 * heartbeat.c, which flushes them in batches and decides online/offline.
 *
 * Sessions: the device's secret is checked here (secret.h) and the token
 * signed by auth (IssueDeviceToken), so auth stays the one signer. A
 * wrong secret and an unknown device get the same answer, so the call
 * says nothing about which devices exist. Deleting a device asks auth to
 * revoke its tokens (RevokeDevice: the revocation every verifier applies
 * within a second) before the row goes, so a failed revocation leaves
 * the device in place to be deleted again.
 *
 * RegisterDevice honours Idempotency-Key (libs/idem/once.h, in the
 * insert's transaction): a retry gets the same device and the same
 * secret; the saved answer is sealed under a key derived from the request
 * and the pepper's key, so the database never holds the secret readable.
 */
#include "services/sync/handlers.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "libs/authn/authn_caller.h"
#include "libs/base/timeutil.h"
#include "libs/base/utf8.h"
#include "libs/base/vlist.h"
#include "libs/obs/log.h"
#include "libs/svc/handler.h"
#include "proto/auth/v1/auth.pb-c.h"
#include "services/sync/handlers_internal.h"
#include "proto/sync/v1/sync.pb-c.h"

#define PING_MESSAGE_MAX 200 /* bytes */

static void device_pb(const store_device *s, Sync__V1__Device *pb) {
  sync__v1__device__init(pb);
  pb->id = (char *)s->id;
  pb->name = (char *)s->name;
  pb->platform = (char *)s->platform;
  pb->status = s->online ? "online" : "offline";
  pb->last_seen_at = (char *)s->last_seen_at;
  pb->app_version = (char *)s->app_version;
  pb->created_at = (char *)s->created_at;
  pb->pending = s->pending;
  pb->cursor = s->cursor;
}

/* authn_check_call with the declared role, and not a device: devices do
 * not manage devices even though their token ranks as staff. */
bool sync_member(sync *h, const rpc_call *call, rpc_reply *reply,
                 paseto_claims *cl) {
  if (authn_check_call(h->c.verifier, call, handler_min_rank(call), cl,
                       reply) != ERR_OK)
    return false;
  if (strcmp(cl->role, AUTHN_ROLE_DEVICE_NAME) == 0) {
    rpc_reply_status(reply, RPC_PERMISSION_DENIED,
                     "a device cannot manage devices");
    return false;
  }
  return true;
}

/* ----------------------------------------------------------- methods --- */

/* Public (USER_ANONYMOUS for the gateway): no token to check. */
static void ping(void *arg, const rpc_call *call, rpc_reply *reply) {
  (void)arg;
  HANDLER_UNPACK(Sync__V1__PingRequest, sync__v1__ping_request, req, 0);
  if (strlen(req->message) > PING_MESSAGE_MAX) {
    handler_reply_field(reply, RPC_INVALID_ARGUMENT, "invalid ping", "message",
                        "is too long");
    goto out;
  }
  Sync__V1__PingResponse resp = SYNC__V1__PING_RESPONSE__INIT;
  resp.message = req->message;
  resp.service = "sync";
  handler_reply_message(reply, &resp.base);
out:
  sync__v1__ping_request__free_unpacked(req, NULL);
}

/* RegisterDevice's answer: the device (row) and its secret (arg). The
 * Idempotency-Key saves exactly these bytes (sealed) and answers them. */
static int pack_registered(const void *row, void *arg, uint8_t **out,
                           size_t *len) {
  Sync__V1__Device pb;
  device_pb(row, &pb);
  Sync__V1__RegisterDeviceResponse resp =
      SYNC__V1__REGISTER_DEVICE_RESPONSE__INIT;
  resp.device = &pb;
  resp.device_secret = arg;
  return idem_once_pack_message(&resp.base, out, len);
}

static void register_device(void *arg, const rpc_call *call, rpc_reply *reply) {
  sync *h = arg;
  char secret[SECRET_TEXT_LEN + 1] = "";
  idem_once k = {0};
  HANDLER_UNPACK(Sync__V1__RegisterDeviceRequest,
                 sync__v1__register_device_request, req, 0);
  paseto_claims cl;
  if (!sync_member(h, call, reply, &cl)) goto out;
  vlist v;
  vlist_init(&v);
  const char *why = NULL;
  if (utf8_check_text(req->name, 1, 100, 0, &why) != ERR_OK)
    vlist_add(&v, why, "name");
  if (req->platform[0] != '\0' &&
      utf8_check_text(req->platform, 1, 50, 0, &why) != ERR_OK)
    vlist_add(&v, why, "platform");
  if (v.n > 0) {
    handler_reply_invalid(reply, "invalid device", &v);
    goto out;
  }
  if (!idem_once_prepare(&k, &h->idem, call, cl.tid, cl.sub, reply)) goto out;
  uint8_t hash[SECRET_HASH_LEN];
  int rc = secret_new(h->c.key, secret, hash);
  store_device d;
  k.pack = pack_registered;
  k.pack_arg = secret;
  if (rc == ERR_OK)
    rc = store_device_create(h->c.store, cl.tid, req->name, req->platform, hash,
                             &k, &d);
  if (rc == ERR_OK && idem_once_fresh(&k))
    log_info("device registered", "tenant_id", cl.tid, "device_id", d.id, "by",
             cl.sub);
  if (idem_once_reply(&k, rc, reply)) goto out; /* replay, refusal, saved */
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "register the device");
    goto out;
  }
  Sync__V1__Device pb;
  device_pb(&d, &pb);
  Sync__V1__RegisterDeviceResponse resp =
      SYNC__V1__REGISTER_DEVICE_RESPONSE__INIT;
  resp.device = &pb;
  resp.device_secret = secret;
  handler_reply_message(reply, &resp.base);
out:
  idem_once_done(&k);
  sodium_memzero(secret, sizeof secret);
  sync__v1__register_device_request__free_unpacked(req, NULL);
}

static void list_devices(void *arg, const rpc_call *call, rpc_reply *reply) {
  sync *h = arg;
  store_device *ds = NULL;
  Sync__V1__Device *pbs = NULL;
  Sync__V1__Device **ptrs = NULL;
  HANDLER_UNPACK(Sync__V1__ListDevicesRequest, sync__v1__list_devices_request,
                 req, 0);
  paseto_claims cl;
  if (!sync_member(h, call, reply, &cl)) goto out;
  ds = calloc(STORE_DEVICES_MAX, sizeof *ds);
  pbs = calloc(STORE_DEVICES_MAX, sizeof *pbs);
  ptrs = calloc(STORE_DEVICES_MAX, sizeof *ptrs);
  if (ds == NULL || pbs == NULL || ptrs == NULL) {
    rpc_reply_status(reply, RPC_RESOURCE_EXHAUSTED, "out of memory");
    goto out;
  }
  size_t n = 0;
  int rc = store_device_list(h->c.store, cl.tid, ds, STORE_DEVICES_MAX, &n);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "list the devices");
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    device_pb(&ds[i], &pbs[i]);
    ptrs[i] = &pbs[i];
  }
  Sync__V1__ListDevicesResponse resp = SYNC__V1__LIST_DEVICES_RESPONSE__INIT;
  resp.n_devices = n;
  resp.devices = ptrs;
  handler_reply_message(reply, &resp.base);
out:
  free(ds);
  free(pbs);
  free(ptrs);
  sync__v1__list_devices_request__free_unpacked(req, NULL);
}

static void get_device(void *arg, const rpc_call *call, rpc_reply *reply) {
  sync *h = arg;
  HANDLER_UNPACK(Sync__V1__GetDeviceRequest, sync__v1__get_device_request, req,
                 0);
  paseto_claims cl;
  char id[UUID_STR_LEN + 1];
  if (!sync_member(h, call, reply, &cl) ||
      handler_uuid_arg(reply, "id", req->id, id) != ERR_OK)
    goto out;
  store_device d;
  int rc = store_device_get(h->c.store, cl.tid, id, &d, NULL);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "read the device");
    goto out;
  }
  Sync__V1__Device pb;
  device_pb(&d, &pb);
  Sync__V1__GetDeviceResponse resp = SYNC__V1__GET_DEVICE_RESPONSE__INIT;
  resp.device = &pb;
  handler_reply_message(reply, &resp.base);
out:
  sync__v1__get_device_request__free_unpacked(req, NULL);
}

/* Calls auth's method (IssueDeviceToken, RevokeDevice) for device did of
 * tenant tid; *out the result (the caller frees it). */
static int call_auth(sync *h, const char *method, const ProtobufCMessage *m,
                     rpc_result **out) {
  rpc_call_options o = RPC_CALL_OPTIONS_INIT;
  o.deadline_ms = SYNC_AUTH_DEADLINE_MS;
  o.idempotent = true; /* a token more, or the same revocation again */
  return rpc_client_call_message(h->c.auth, method, m, &o, out);
}

static void delete_device(void *arg, const rpc_call *call, rpc_reply *reply) {
  sync *h = arg;
  rpc_result *r = NULL;
  HANDLER_UNPACK(Sync__V1__DeleteDeviceRequest, sync__v1__delete_device_request,
                 req, 0);
  paseto_claims cl;
  char id[UUID_STR_LEN + 1];
  if (!sync_member(h, call, reply, &cl) ||
      handler_uuid_arg(reply, "id", req->id, id) != ERR_OK)
    goto out;
  store_device d;
  int rc = store_device_get(h->c.store, cl.tid, id, &d, NULL);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "read the device");
    goto out;
  }
  Auth__V1__RevokeDeviceRequest rv = AUTH__V1__REVOKE_DEVICE_REQUEST__INIT;
  rv.tenant_id = cl.tid;
  rv.device_id = id;
  rc = call_auth(h, "auth.v1.Auth/RevokeDevice", &rv.base, &r);
  if (rc != ERR_OK || r->code != RPC_OK) {
    log_warn("cannot revoke the device's tokens", "tenant_id", cl.tid,
             "device_id", id, "code", r ? rpc_code_name(r->code) : err_str(rc));
    rpc_reply_status(reply, RPC_UNAVAILABLE,
                     "cannot revoke the device's tokens now");
    goto out;
  }
  rc = store_device_delete(h->c.store, cl.tid, id);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "delete the device");
    goto out;
  }
  log_info("device deleted", "tenant_id", cl.tid, "device_id", id, "by",
           cl.sub);
  Sync__V1__DeleteDeviceResponse resp = SYNC__V1__DELETE_DEVICE_RESPONSE__INIT;
  handler_reply_message(reply, &resp.base);
out:
  rpc_result_free(r);
  sync__v1__delete_device_request__free_unpacked(req, NULL);
}

/* Anonymous: whoever holds the device's secret. The tenant is the
 * envelope's (the gateway's Host / X-Tenant). */
static void create_session(void *arg, const rpc_call *call, rpc_reply *reply) {
  sync *h = arg;
  rpc_result *r = NULL;
  Auth__V1__IssueDeviceTokenResponse *tok = NULL;
  HANDLER_UNPACK(Sync__V1__CreateSessionRequest,
                 sync__v1__create_session_request, req, 0);
  char tid[UUID_STR_LEN + 1], id[UUID_STR_LEN + 1];
  if (uuid_canonical(call->tenant_id, tid) != ERR_OK) {
    rpc_reply_status(reply, RPC_INVALID_ARGUMENT, "a tenant is required");
    goto out;
  }
  if (handler_uuid_arg(reply, "id", req->id, id) != ERR_OK) goto out;
  store_device d;
  uint8_t want[SECRET_HASH_LEN];
  int rc = store_device_get(h->c.store, tid, id, &d, want);
  if (rc != ERR_OK && rc != ERR_NOTFOUND) {
    handler_reply_error(reply, rc, "read the device");
    goto out;
  }
  if (rc == ERR_NOTFOUND ||
      !secret_matches(h->c.key, req->device_secret, want)) {
    rpc_reply_status(reply, RPC_UNAUTHENTICATED,
                     "unknown device or wrong device secret");
    goto out;
  }
  Auth__V1__IssueDeviceTokenRequest ir =
      AUTH__V1__ISSUE_DEVICE_TOKEN_REQUEST__INIT;
  ir.tenant_id = tid;
  ir.device_id = id;
  rc = call_auth(h, "auth.v1.Auth/IssueDeviceToken", &ir.base, &r);
  if (rc == ERR_OK && r->code == RPC_OK)
    tok = auth__v1__issue_device_token_response__unpack(NULL, r->payload_len,
                                                        r->payload);
  if (tok == NULL) {
    log_warn("cannot get a device token", "tenant_id", tid, "device_id", id,
             "code", r ? rpc_code_name(r->code) : err_str(rc));
    rpc_reply_status(reply, RPC_UNAVAILABLE, "cannot issue a token now");
    goto out;
  }
  Sync__V1__CreateSessionResponse resp =
      SYNC__V1__CREATE_SESSION_RESPONSE__INIT;
  resp.access_token = tok->access_token;
  resp.token_type = tok->token_type;
  resp.expires_in = tok->expires_in;
  handler_reply_message(reply, &resp.base);
out:
  if (tok != NULL) {
    sodium_memzero(tok->access_token, strlen(tok->access_token));
    auth__v1__issue_device_token_response__free_unpacked(tok, NULL);
  }
  rpc_result_free(r);
  sodium_memzero(req->device_secret, strlen(req->device_secret));
  sync__v1__create_session_request__free_unpacked(req, NULL);
}

/* Devices only: the beat goes to this replica's buffer (heartbeat.h),
 * never to a transaction or a round trip of its own. */
static void heartbeat_h(void *arg, const rpc_call *call, rpc_reply *reply) {
  sync *h = arg;
  HANDLER_UNPACK(Sync__V1__HeartbeatRequest, sync__v1__heartbeat_request, req,
                 0);
  paseto_claims cl;
  if (authn_check_call(h->c.verifier, call, handler_min_rank(call), &cl,
                       reply) != ERR_OK)
    goto out;
  if (strcmp(cl.role, AUTHN_ROLE_DEVICE_NAME) != 0) {
    rpc_reply_status(reply, RPC_PERMISSION_DENIED,
                     "only a device sends heartbeats");
    goto out;
  }
  vlist v;
  vlist_init(&v);
  const char *why = NULL;
  if (req->app_version[0] != '\0' &&
      utf8_check_text(req->app_version, 1, 50, 0, &why) != ERR_OK)
    vlist_add(&v, why, "app_version");
  bool has_pending = req->pending_present_case ==
                     SYNC__V1__HEARTBEAT_REQUEST__PENDING_PRESENT_PENDING;
  if (has_pending && req->pending < 0)
    vlist_add(&v, "must be at least 0", "pending");
  bool has_cursor = req->cursor_present_case ==
                    SYNC__V1__HEARTBEAT_REQUEST__CURSOR_PRESENT_CURSOR;
  if (has_cursor && req->cursor < 0)
    vlist_add(&v, "must be at least 0", "cursor");
  if (v.n > 0) {
    handler_reply_invalid(reply, "invalid heartbeat", &v);
    goto out;
  }
  char did[UUID_STR_LEN + 1];
  if (uuid_canonical(cl.sub, did) != ERR_OK) {
    rpc_reply_status(reply, RPC_UNAUTHENTICATED, "not a device token");
    goto out;
  }
  int64_t now = time_now_ms();
  int rc = heartbeat_record(
      h->c.beats, cl.tid, did,
      req->app_version[0] != '\0' ? req->app_version : NULL,
      has_pending ? req->pending : -1, has_cursor ? req->cursor : -1, now);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "record the heartbeat");
    goto out;
  }
  metrics_inc(h->m.beats);
  char at[RFC3339_MS_LEN + 1];
  if (time_format_rfc3339(now, at) != ERR_OK) at[0] = '\0';
  Sync__V1__HeartbeatResponse resp = SYNC__V1__HEARTBEAT_RESPONSE__INIT;
  resp.server_time = at;
  resp.interval_s = (uint32_t)(h->c.interval_ms / 1000);
  handler_reply_message(reply, &resp.base);
out:
  sync__v1__heartbeat_request__free_unpacked(req, NULL);
}

/* ------------------------------------------------------------ metrics --- */

static void init_metrics(sync_metrics *m) {
  static const char *const labels[] = {"status"};
  metrics_family *f = metrics_counter("sync_mutations_total",
                                      "pushed mutations by result", 1, labels);
  const char *a[] = {"applied"}, *d[] = {"duplicate"}, *r[] = {"rejected"},
             *c[] = {"conflict"};
  m->applied = metrics_child_get(f, a);
  m->duplicate = metrics_child_get(f, d);
  m->rejected = metrics_child_get(f, r);
  m->conflict = metrics_child_get(f, c);
  m->pushes = metrics_child_get(
      metrics_counter("sync_pushes_total", "pushes answered", 0, NULL), NULL);
  m->beats = metrics_child_get(
      metrics_counter("sync_heartbeats_total", "heartbeats recorded", 0, NULL),
      NULL);
  m->pulled =
      metrics_child_get(metrics_counter("sync_pull_changes_total",
                                        "changes returned by pulls", 0, NULL),
                        NULL);
  /* How far behind the tenant's change log a pull started (its newest seq
   * minus the cursor): devices that fell behind show in the upper
   * buckets; a cursor reset counts as the whole log. */
  static const double lag_buckets[] = {0, 1, 10, 100, 1e3, 1e4, 1e5, 1e6};
  m->lag = metrics_child_get(
      metrics_histogram("sync_pull_lag_changes",
                        "changes between a pull's cursor and the newest", 0,
                        NULL, lag_buckets,
                        sizeof lag_buckets / sizeof lag_buckets[0]),
      NULL);
}

void sync_count_result(sync *h, const char *status) {
  if (strcmp(status, "applied") == 0)
    metrics_inc(h->m.applied);
  else if (strcmp(status, "duplicate") == 0)
    metrics_inc(h->m.duplicate);
  else if (strcmp(status, "rejected") == 0)
    metrics_inc(h->m.rejected);
  else if (strcmp(status, "conflict") == 0)
    metrics_inc(h->m.conflict);
}

/* ------------------------------------------------------------- set-up --- */

int sync_new(const sync_config *cfg, sync **out) {
  *out = NULL;
  if (cfg == NULL || cfg->store == NULL || cfg->verifier == NULL ||
      cfg->auth == NULL || cfg->key == NULL || cfg->beats == NULL ||
      cfg->orders == NULL || cfg->interval_ms < 1000)
    return ERR_INVAL;
  sync *h = calloc(1, sizeof *h);
  if (h == NULL) return ERR_NOMEM;
  h->c = *cfg;
  init_metrics(&h->m);
  /* A key of its own for the seals of saved answers, not the pepper's. */
  if (idem_hash_keyed(cfg->key->k, "sync.idem.secret.v1", NULL, NULL, 0,
                      h->idem_secret) != ERR_OK) {
    free(h);
    return ERR_INTERNAL;
  }
  h->idem = (idem_once_spec){.table = SYNC_IDEM_TABLE,
                             .tag = "sync.idem.v1",
                             .seal_tag = "sync.idem.seal.v1",
                             .secret = h->idem_secret};
  *out = h;
  return ERR_OK;
}

void sync_free(sync *h) {
  if (h == NULL) return;
  sodium_memzero(h->idem_secret, sizeof h->idem_secret);
  free(h);
}

int sync_register(sync *h, rpc_server *srv) {
  static const handler_method table[] = {
      {SYNC_METHOD("Ping"), ping},
      {SYNC_METHOD("RegisterDevice"), register_device},
      {SYNC_METHOD("ListDevices"), list_devices},
      {SYNC_METHOD("GetDevice"), get_device},
      {SYNC_METHOD("DeleteDevice"), delete_device},
      {SYNC_METHOD("CreateSession"), create_session},
      {SYNC_METHOD("Heartbeat"), heartbeat_h},
      {SYNC_METHOD("Push"), sync_push},
      {SYNC_METHOD("Pull"), sync_pull},
      {SYNC_METHOD("ListConflicts"), sync_list_conflicts},
      {SYNC_METHOD("ResolveConflict"), sync_resolve_conflict},
      {SYNC_METHOD("GetSettings"), sync_get_settings},
      {SYNC_METHOD("UpdateSettings"), sync_update_settings},
  };
  return handler_register(srv, table, sizeof table / sizeof table[0], h);
}
