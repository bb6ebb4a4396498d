/*
 * fileparts.c - the streamed file methods, "sync.v1.Sync/PutFilePart" and
 * "GetFilePart" (proto/sync/v1/sync.proto says the contract; the design is
 * docs/adr/0018-sync-file-storage.md "Streaming"). The gateway streams a
 * PUT body to sync in parts and answers a GET chunk by chunk; sync keeps
 * no state between calls, so any replica takes any part.
 *
 * PutFilePart: the part is checked whole before the store sees it (every
 * bad field named at once), then store_upload_part applies it in one
 * transaction (store_uploads.h). Its verdicts become answers:
 *   applied / repeated (an exact re-send) / stored / done -> OK, with
 *     received (the next offset) and done;
 *   a part not at received (and not a re-send) -> FAILED_PRECONDITION
 *     naming "offset" and the offset expected;
 *   the last part's SHA-256 is not the name -> INVALID_ARGUMENT naming
 *     "content" (the upload, its parts and its reservation are gone);
 *   the upload names another file or size -> INVALID_ARGUMENT "upload_id";
 *   over quota on the first part -> FAILED_PRECONDITION naming "content";
 *   no such upload (a later part after the upload was dropped or expired,
 *     or another tenant's id) -> NOT_FOUND.
 *
 * GetFilePart: up to max bytes from offset (substring() of the stored
 * bytea; TOAST fetches only the chunks it needs) and the whole size;
 * max 0 is a HEAD. offset == size answers no bytes; offset > size is
 * OUT_OF_RANGE naming "offset" (the caller asked past the end it was
 * told).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/uuid.h"
#include "libs/base/vlist.h"
#include "libs/obs/metrics.h"
#include "libs/svc/handler.h"
#include "proto/sync/v1/sync.pb-c.h"
#include "services/sync/files_internal.h"
#include "services/sync/store_uploads.h"

int files_part_check(const char *sha256, const char *upload_id, int64_t size,
                     int64_t offset, size_t len, uint8_t hash[32],
                     char id[UUID_STR_LEN + 1], vlist *v) {
  if (files_hash_parse(sha256, hash) != ERR_OK)
    vlist_add(v, "must be 64 lower-case hex digits", "sha256");
  if (upload_id == NULL || uuid_canonical(upload_id, id) != ERR_OK)
    vlist_add(v, "must be a UUID", "upload_id");
  bool size_ok = size >= 0 && size <= (int64_t)FILES_MAX_BYTES;
  if (!size_ok) vlist_add(v, "must be between 0 and 25 MiB", "size");
  if (offset < 0) vlist_add(v, "must not be negative", "offset");
  if (len > FILES_PART_MAX_BYTES)
    vlist_add(v, "must be at most 1 MiB", "data");
  else if (size_ok && offset >= 0 && offset > size - (int64_t)len)
    vlist_add(v, "ends past the file's size", "data");
  else if (len == 0 && size > 0)
    vlist_add(v, "must not be empty (only an empty file has no bytes)", "data");
  return v->n == 0 ? ERR_OK : ERR_INVAL;
}

/* A verdict that is not an answer: the reply, the part counted refused. */
static void refuse(files *f, rpc_reply *reply, const store_part_result *res) {
  metrics_inc(f->parts_refused);
  char why[96];
  switch (res->status) {
  case STORE_PART_GAP:
    snprintf(why, sizeof why, "must be %lld, the bytes received so far",
             (long long)res->received);
    handler_reply_field(reply, RPC_FAILED_PRECONDITION,
                        "the part is not the next one", "offset", why);
    return;
  case STORE_PART_OTHER:
    handler_reply_field(reply, RPC_INVALID_ARGUMENT, "invalid part",
                        "upload_id",
                        "names an upload of another sha256 or size");
    return;
  default: /* STORE_PART_MISMATCH */
    handler_reply_field(reply, RPC_INVALID_ARGUMENT, "invalid file", "content",
                        "SHA-256 of the content does not match the name");
    return;
  }
}

/* The store's error as the answer. */
static void reply_part_error(files *f, rpc_reply *reply, int rc) {
  metrics_inc(f->parts_refused);
  if (rc == ERR_TOOBIG)
    /* FAILED_PRECONDITION, not RESOURCE_EXHAUSTED: the gateway turns
     * that into 429 "try again later", and waiting frees no quota (the
     * HTTP contract's 400, as the whole-file upload answered). "content"
     * is what an HTTP client sent; size is the gateway's field. */
    handler_reply_field(reply, RPC_FAILED_PRECONDITION,
                        "the tenant's file quota is full", "content",
                        "does not fit in the quota");
  else
    handler_reply_error(reply, rc, "store the part");
}

/* Counts an answered part; stored bytes when this upload stored them. */
static void count(files *f, const store_part_result *res) {
  switch (res->status) {
  case STORE_PART_REPEATED:
  case STORE_PART_DONE:
    metrics_inc(f->parts_repeated);
    return;
  case STORE_PART_STORED:
    if (!res->existed) metrics_add(f->stored, (double)res->size);
    metrics_inc(f->parts_applied);
    return;
  default:
    metrics_inc(f->parts_applied);
    return;
  }
}

void files_put_part(void *arg, const rpc_call *call, rpc_reply *reply) {
  files *f = arg;
  HANDLER_UNPACK(Sync__V1__PutFilePartRequest, sync__v1__put_file_part_request,
                 req, FILES_PART_MAX_MESSAGE);
  paseto_claims cl;
  uint8_t hash[32];
  char id[UUID_STR_LEN + 1];
  vlist v;
  vlist_init(&v);
  if (!files_caller(f, call, reply, &cl)) goto out;
  if (files_part_check(req->sha256, req->upload_id, req->size, req->offset,
                       req->data.len, hash, id, &v) != ERR_OK) {
    metrics_inc(f->parts_refused);
    handler_reply_invalid(reply, "invalid part", &v);
    goto out;
  }
  store_part p = {.tid = cl.tid,
                  .hash = hash,
                  .upload_id = id,
                  .size = req->size,
                  .offset = req->offset,
                  .data = req->data.data,
                  .len = req->data.len,
                  .quota = f->c.quota_bytes};
  store_part_result res;
  int rc = store_upload_part(f->c.store, &p, &res);
  if (rc != ERR_OK) {
    reply_part_error(f, reply, rc);
    goto out;
  }
  if (res.status == STORE_PART_GAP || res.status == STORE_PART_OTHER ||
      res.status == STORE_PART_MISMATCH) {
    refuse(f, reply, &res);
    goto out;
  }
  count(f, &res);
  Sync__V1__PutFilePartResponse resp = SYNC__V1__PUT_FILE_PART_RESPONSE__INIT;
  resp.sha256 = req->sha256;
  resp.size = res.size;
  resp.existed = res.existed;
  resp.done = res.status == STORE_PART_EXISTED ||
              res.status == STORE_PART_STORED || res.status == STORE_PART_DONE;
  resp.received = res.received;
  handler_reply_message(reply, &resp.base);
out:
  sync__v1__put_file_part_request__free_unpacked(req, NULL);
}

void files_get_part(void *arg, const rpc_call *call, rpc_reply *reply) {
  files *f = arg;
  uint8_t *data = NULL;
  size_t len = 0;
  HANDLER_UNPACK(Sync__V1__GetFilePartRequest, sync__v1__get_file_part_request,
                 req, 0);
  paseto_claims cl;
  uint8_t hash[32];
  vlist v;
  vlist_init(&v);
  if (!files_caller(f, call, reply, &cl)) goto out;
  if (files_hash_parse(req->sha256, hash) != ERR_OK)
    vlist_add(&v, "must be 64 lower-case hex digits", "sha256");
  if (req->offset < 0) vlist_add(&v, "must not be negative", "offset");
  if (req->max < 0 || (size_t)req->max > FILES_PART_MAX_BYTES)
    vlist_add(&v, "must be between 0 and 1 MiB", "max");
  if (v.n > 0) {
    handler_reply_invalid(reply, "invalid read", &v);
    goto out;
  }
  int64_t size = 0;
  int rc = store_file_read(f->c.store, cl.tid, hash, req->offset, req->max,
                           &size, &data, &len);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "read the file");
    goto out;
  }
  if (req->offset > size) {
    handler_reply_field(reply, RPC_OUT_OF_RANGE, "offset past the end",
                        "offset", "is beyond the file's size");
    goto out;
  }
  Sync__V1__GetFilePartResponse resp = SYNC__V1__GET_FILE_PART_RESPONSE__INIT;
  resp.size = size;
  resp.data.data = data;
  resp.data.len = len;
  handler_reply_message(reply, &resp.base);
out:
  free(data);
  sync__v1__get_file_part_request__free_unpacked(req, NULL);
}
