/*
 * pipeline_stream.c - streamed routes (see pipeline.h, "Streamed routes",
 * and route.h, ROUTE_STREAMED): the steps of pipeline.c run once per
 * request, then one RPC per part.
 *
 * The request message is decoded once from the path (sync's file name);
 * each part sets the convention's fields on it ("upload_id", "size",
 * "offset" and the raw_body bytes for an upload; "offset" and "max" for a
 * download) and sends it. The part's bytes are borrowed into the message
 * for the call and taken out again before it is freed.
 *
 * Why a part may be sent twice: every part names its upload and offset,
 * and the backend answers a part it already has instead of applying it
 * again (sync's PutFilePart), so a call that timed out on one replica is
 * repeated on another like a read. The upload id is the gateway's own
 * UUIDv7, one per HTTP request: a client's retried PUT is a new upload,
 * and the first one's parts are the backend's janitor's.
 */
#include <stdlib.h>
#include <string.h>

#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"
#include "libs/obs/log.h"
#include "services/gateway/pipeline_int.h"

struct pipeline_stream {
  run x;
  ProtobufCMessage *msg; /* the route's request, path fields set */
  int64_t size;          /* upload: the whole body's bytes */
  int64_t sent;          /* upload: bytes the backend has */
};

bool pipeline_stream_open(pipeline *p, const pipeline_request *in, int64_t size,
                          pipeline_answer *out, pipeline_stream **st) {
  *st = NULL;
  memset(out, 0, sizeof *out);
  pipeline_stream *s = calloc(1, sizeof *s);
  if (s == NULL) {
    pipeline_answer_error(out, RPC_INTERNAL, NULL, in->request_id, NULL, 0);
    return false;
  }
  s->x = (run){.p = p,
               .in = in,
               .out = out,
               .r = in->match->route,
               .start_ms = in->start_mono_ms};
  s->size = size;
  json_t *fields = NULL;
  bool ok = pl_admit(&s->x) && pl_decode(&s->x, &s->msg, &fields);
  json_decref(fields);
  if (ok && s->x.r->raw_body != NULL) {
    char id[UUID_STR_LEN + 1];
    uuid_v7_str(id);
    char **upload_id = pl_member(s->msg, "upload_id");
    char *copy = strdup(id);
    if (copy == NULL) {
      pl_fail(&s->x, RPC_INTERNAL, NULL);
      ok = false;
    } else {
      /* The message's own strings are freed with it; "" is the
       * descriptor's default, never freed. */
      *upload_id = copy;
      *(int64_t *)pl_member(s->msg, "size") = size;
    }
  }
  if (!ok) {
    pipeline_stream_free(s);
    return false;
  }
  *st = s;
  return true;
}

/* One call of the route's RPC with the message as the part set it. */
static bool call_part(pipeline_stream *s, rpc_result **res) {
  s->x.start_ms = time_mono_ms();
  return pl_call(&s->x, s->x.r->service, s->x.r->rpc, s->msg, true, res);
}

bool pipeline_stream_put(pipeline_stream *s, const void *data, size_t len,
                         bool *done) {
  *done = false;
  ProtobufCBinaryData *bytes = pl_member(s->msg, s->x.r->raw_body);
  *(int64_t *)pl_member(s->msg, "offset") = s->sent;
  *bytes = (ProtobufCBinaryData){len, (uint8_t *)data};
  /* The last part joins the whole file (up to 25 MiB) in one transaction:
   * slower than a read's attempt timeout, rightly, so its one attempt may
   * use the whole deadline (a repeat would only wait for the first). */
  bool last = s->sent + (int64_t)len >= s->size;
  s->x.attempt_ms = last ? (uint32_t)s->x.p->cfg.deadline_ms : 0;
  rpc_result *res = NULL;
  bool ok = call_part(s, &res);
  *bytes = (ProtobufCBinaryData){0, NULL};
  if (!ok) return false;
  s->sent += (int64_t)len;
  ProtobufCMessage *m = protobuf_c_message_unpack(
      s->x.r->response, NULL, res->payload_len, res->payload);
  if (m == NULL) {
    log_error("undecodable reply", "rpc", s->x.r->rpc);
    pl_fail(&s->x, RPC_INTERNAL, NULL);
    rpc_result_free(res);
    return false;
  }
  *done = *(const protobuf_c_boolean *)pl_member(m, "done");
  protobuf_c_message_free_unpacked(m, NULL);
  if (!*done && s->sent >= s->size) {
    /* Every byte sent and the backend still waits: not the convention. */
    log_error("upload not finished after its last part", "rpc", s->x.r->rpc);
    pl_fail(&s->x, RPC_INTERNAL, NULL);
    rpc_result_free(res);
    return false;
  }
  if (*done) pl_answer(&s->x, res, NULL);
  rpc_result_free(res);
  return true;
}

bool pipeline_stream_get(pipeline_stream *s, int64_t offset, size_t max,
                         int64_t *size, char **data, size_t *len) {
  *size = 0;
  *data = NULL;
  *len = 0;
  *(int64_t *)pl_member(s->msg, "offset") = offset;
  *(int32_t *)pl_member(s->msg, "max") = (int32_t)max;
  rpc_result *res = NULL;
  if (!call_part(s, &res)) return false;
  ProtobufCMessage *m = protobuf_c_message_unpack(
      s->x.r->response, NULL, res->payload_len, res->payload);
  rpc_result_free(res);
  if (m == NULL) {
    log_error("undecodable reply", "rpc", s->x.r->rpc);
    pl_fail(&s->x, RPC_INTERNAL, NULL);
    return false;
  }
  const ProtobufCBinaryData *b = pl_member(m, s->x.r->raw_reply);
  *size = *(const int64_t *)pl_member(m, "size");
  bool ok = b->len <= max && *size >= 0 && offset + (int64_t)b->len <= *size;
  if (ok && b->len > 0) {
    *data = malloc(b->len);
    ok = *data != NULL;
    if (ok) {
      memcpy(*data, b->data, b->len);
      *len = b->len;
    }
  }
  protobuf_c_message_free_unpacked(m, NULL);
  if (!ok) {
    log_error("bad part of a download", "rpc", s->x.r->rpc);
    pl_fail(&s->x, RPC_INTERNAL, NULL);
    return false;
  }
  if (offset == 0) {
    s->x.out->code = RPC_OK;
    s->x.out->status = s->x.r->status;
    s->x.out->content_type = "application/octet-stream";
  }
  return true;
}

void pipeline_stream_free(pipeline_stream *s) {
  if (s == NULL) return;
  pbjson_free(s->msg);
  free(s);
}
