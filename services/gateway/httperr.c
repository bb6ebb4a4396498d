/*
 * httperr.c - see httperr.h. The status table is grpc-gateway's
 * (runtime/errors.go HTTPStatusFromCode), which HTTP-API.md adopts.
 */
#include "services/gateway/httperr.h"

#include <jansson.h>
#include <string.h>

int httperr_status(int code) {
  switch (code) {
  case RPC_OK:
    return 200;
  case RPC_CANCELLED:
    return 499;
  case RPC_INVALID_ARGUMENT:
    return 400;
  case RPC_DEADLINE_EXCEEDED:
    return 504;
  case RPC_NOT_FOUND:
    return 404;
  case RPC_ALREADY_EXISTS:
    return 409;
  case RPC_PERMISSION_DENIED:
    return 403;
  case RPC_RESOURCE_EXHAUSTED:
    return 429;
  case RPC_FAILED_PRECONDITION:
    return 400;
  case RPC_ABORTED:
    return 409;
  case RPC_OUT_OF_RANGE:
    return 400;
  case RPC_UNIMPLEMENTED:
    return 501;
  case RPC_UNAVAILABLE:
    return 503;
  case RPC_UNAUTHENTICATED:
    return 401;
  case RPC_INTERNAL:
  case RPC_DATA_LOSS:
  case RPC_UNKNOWN:
  default:
    return 500;
  }
}

static const char *fixed_text(int code) {
  switch (code) {
  case RPC_CANCELLED:
    return "the request was cancelled";
  case RPC_INVALID_ARGUMENT:
    return "invalid request";
  case RPC_DEADLINE_EXCEEDED:
    return "the request took too long";
  case RPC_NOT_FOUND:
    return "not found";
  case RPC_ALREADY_EXISTS:
    return "already exists";
  case RPC_PERMISSION_DENIED:
    return "permission denied";
  case RPC_RESOURCE_EXHAUSTED:
    return "too many requests";
  case RPC_FAILED_PRECONDITION:
    return "the request cannot be done now";
  case RPC_ABORTED:
    return "conflict, try again";
  case RPC_OUT_OF_RANGE:
    return "out of range";
  case RPC_UNIMPLEMENTED:
    return "not implemented";
  case RPC_UNAVAILABLE:
    return "service unavailable, try again";
  case RPC_UNAUTHENTICATED:
    return "authentication required";
  default:
    return "internal error";
  }
}

const char *httperr_message(int code, const char *msg) {
  if (httperr_status(code) >= 500 || msg == NULL || msg[0] == '\0')
    return fixed_text(code);
  return msg;
}

/* A string value, or "" when s is not valid UTF-8. */
static json_t *str(const char *s) {
  json_t *v = json_string(s ? s : "");
  return v ? v : json_string("");
}

char *httperr_body(int code, const char *message, const char *request_id,
                   const rpc_violation *details, size_t n, size_t *len) {
  if (!rpc_code_valid(code)) code = RPC_UNKNOWN;
  bool server = httperr_status(code) >= 500;
  json_t *arr = json_array();
  if (arr != NULL && !server) {
    for (size_t i = 0; i < n; i++) {
      json_t *d = json_object();
      if (d == NULL) continue;
      json_object_set_new(d, "field", str(details[i].field));
      json_object_set_new(d, "description", str(details[i].description));
      json_array_append_new(arr, d);
    }
  }
  json_t *e =
      json_pack("{s:{s:s,s:o,s:o,s:o}}", "error", "code", rpc_code_name(code),
                "message", str(httperr_message(code, message)), "request_id",
                str(request_id), "details", arr);
  if (e == NULL) return NULL;
  char *s = json_dumps(e, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(e);
  if (s != NULL && len != NULL) *len = strlen(s);
  return s;
}
