/*
 * files.c - see files.h.
 *
 * Uploads and downloads travel in parts (fileparts.c: PutFilePart hashes
 * each part into the upload's SHA-256 state as it arrives, GetFilePart
 * reads slices); this file has the manifest (MissingFiles), the caller
 * check they share, and the expiry round.
 *
 * Who: a device or staff+ (the methods declare USER_STAFF; a device token
 * ranks as staff), the tenant always the token's. Files are keyed by
 * (tenant, hash), so another tenant's file with the same hash is simply
 * absent: 404 on read, "missing" in a manifest, a fresh upload (counted
 * against the uploader's own quota) on PUT.
 *
 * Expiry: a periodic round deletes files unused for ttl in batches (the
 * store skips rows other transactions hold, so replicas running the round
 * at once split the work instead of colliding). "Used" means uploaded,
 * read, or named in a manifest (the client still refers to it). The same
 * round deletes streamed uploads (fileparts.c) not advanced for
 * upload_idle_ms, giving an unfinished one's reserved bytes back.
 */
#include "services/sync/files.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/authn/authn_caller.h"
#include "libs/base/vlist.h"
#include "libs/obs/log.h"
#include "libs/obs/metrics.h"
#include "libs/svc/handler.h"
#include "libs/svc/periodic.h"
#include "proto/sync/v1/sync.pb-c.h"
#include "services/sync/files_internal.h"
#include "services/sync/store_files.h"
#include "services/sync/store_uploads.h"

#define HEX_LEN 64
#define EXPIRE_BATCH 100

int files_hash_parse(const char *hex, uint8_t out[32]) {
  if (hex == NULL || strlen(hex) != HEX_LEN) return ERR_INVAL;
  for (size_t i = 0; i < HEX_LEN; i++)
    if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f')))
      return ERR_INVAL;
  size_t n = 0;
  if (sodium_hex2bin(out, 32, hex, HEX_LEN, NULL, &n, NULL) != 0 || n != 32)
    return ERR_INVAL;
  return ERR_OK;
}

/* The caller (any role of staff rank: devices and staff+). */
bool files_caller(files *f, const rpc_call *call, rpc_reply *reply,
                  paseto_claims *cl) {
  return authn_check_call(f->c.verifier, call, handler_min_rank(call), cl,
                          reply) == ERR_OK;
}

static void missing_files(void *arg, const rpc_call *call, rpc_reply *reply) {
  files *f = arg;
  uint8_t *hashes = NULL;
  bool *present = NULL;
  char **missing = NULL;
  HANDLER_UNPACK(Sync__V1__MissingFilesRequest, sync__v1__missing_files_request,
                 req, 0);
  paseto_claims cl;
  if (!files_caller(f, call, reply, &cl)) goto out;
  size_t n = req->n_hashes;
  if (n > FILES_MISSING_MAX) {
    handler_reply_field(reply, RPC_INVALID_ARGUMENT, "invalid manifest",
                        "hashes", "at most 1000");
    goto out;
  }
  hashes = malloc(n * 32 + 1);
  present = calloc(n + 1, sizeof *present);
  missing = calloc(n + 1, sizeof *missing);
  if (hashes == NULL || present == NULL || missing == NULL) {
    handler_reply_error(reply, ERR_NOMEM, "check the manifest");
    goto out;
  }
  vlist v;
  vlist_init(&v);
  for (size_t i = 0; i < n; i++)
    if (files_hash_parse(req->hashes[i], hashes + i * 32) != ERR_OK)
      vlist_add(&v, "must be 64 lower-case hex digits", "hashes[%zu]", i);
  if (v.n > 0) {
    handler_reply_invalid(reply, "invalid manifest", &v);
    goto out;
  }
  int rc = store_files_present(f->c.store, cl.tid, hashes, n, present);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "check the manifest");
    goto out;
  }
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    if (present[i]) continue;
    bool seen = false; /* each missing hash once */
    for (size_t j = 0; j < m && !seen; j++)
      seen = strcmp(missing[j], req->hashes[i]) == 0;
    if (!seen) missing[m++] = req->hashes[i];
  }
  Sync__V1__MissingFilesResponse resp = SYNC__V1__MISSING_FILES_RESPONSE__INIT;
  resp.missing = missing;
  resp.n_missing = m;
  handler_reply_message(reply, &resp.base);
out:
  free(hashes);
  free(present);
  free(missing);
  sync__v1__missing_files_request__free_unpacked(req, NULL);
}

/* Files unused for ttl: batches until a short one. */
static void expire_files(files *f) {
  for (;;) {
    size_t removed = 0;
    int64_t bytes = 0;
    int rc = store_files_expire(f->c.store, f->c.ttl_ms, EXPIRE_BATCH, &removed,
                                &bytes);
    if (rc != ERR_OK) {
      log_warn("file expiry failed", "error", err_str(rc));
      return;
    }
    if (removed > 0) {
      metrics_add(f->removed, (double)bytes);
      char nf[24], nb[24];
      snprintf(nf, sizeof nf, "%zu", removed);
      snprintf(nb, sizeof nb, "%lld", (long long)bytes);
      log_info("unused files removed", "files", nf, "bytes", nb);
    }
    if (removed < EXPIRE_BATCH) return;
  }
}

/* Uploads idle for upload_idle_ms (abandoned, or stored and kept only for
 * re-sent last parts): batches until a short one. */
static void expire_uploads(files *f) {
  for (;;) {
    size_t removed = 0;
    int64_t released = 0;
    int rc = store_uploads_expire(f->c.store, f->c.upload_idle_ms, EXPIRE_BATCH,
                                  &removed, &released);
    if (rc != ERR_OK) {
      log_warn("upload expiry failed", "error", err_str(rc));
      return;
    }
    if (removed > 0) {
      char nu[24], nb[24];
      snprintf(nu, sizeof nu, "%zu", removed);
      snprintf(nb, sizeof nb, "%lld", (long long)released);
      log_info("idle uploads removed", "uploads", nu, "released_bytes", nb);
    }
    if (removed < EXPIRE_BATCH) return;
  }
}

static void expire_round(void *arg) {
  expire_files(arg);
  expire_uploads(arg);
}

int files_new(const files_config *cfg, files **out) {
  *out = NULL;
  if (cfg == NULL || cfg->store == NULL || cfg->verifier == NULL ||
      cfg->quota_bytes < 0 || cfg->ttl_ms <= 0 || cfg->sweep_ms <= 0 ||
      cfg->upload_idle_ms <= 0)
    return ERR_INVAL;
  files *f = calloc(1, sizeof *f);
  if (f == NULL) return ERR_NOMEM;
  f->c = *cfg;
  static const char *const labels[] = {"op"};
  metrics_family *fam = metrics_counter(
      "sync_file_bytes_total", "file bytes stored and removed", 1, labels);
  const char *s[] = {"stored"}, *r[] = {"removed"};
  f->stored = metrics_child_get(fam, s);
  f->removed = metrics_child_get(fam, r);
  static const char *const status[] = {"status"};
  metrics_family *parts = metrics_counter(
      "sync_upload_parts_total",
      "PutFilePart calls by outcome (applied, repeated: a re-sent part "
      "answered without applying it, refused)",
      1, status);
  const char *ap[] = {"applied"}, *rp[] = {"repeated"}, *rf[] = {"refused"};
  f->parts_applied = metrics_child_get(parts, ap);
  f->parts_repeated = metrics_child_get(parts, rp);
  f->parts_refused = metrics_child_get(parts, rf);
  periodic_options o = {.name = "sync-files",
                        .interval_ms = cfg->sweep_ms,
                        .fn = expire_round,
                        .arg = f};
  int rc = periodic_start(&o, &f->round);
  if (rc != ERR_OK) {
    free(f);
    return rc;
  }
  *out = f;
  return ERR_OK;
}

void files_free(files *f) {
  if (f == NULL) return;
  periodic_stop(f->round);
  free(f);
}

int files_register(files *f, rpc_server *srv) {
  static const handler_method table[] = {
      {"sync.v1.Sync/MissingFiles", missing_files},
      {"sync.v1.Sync/PutFilePart", files_put_part},
      {"sync.v1.Sync/GetFilePart", files_get_part},
  };
  return handler_register(srv, table, sizeof table / sizeof table[0], f);
}
