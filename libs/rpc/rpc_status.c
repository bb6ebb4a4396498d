/*
 * rpc_status.c - names of the RPC status codes and the ERR_* mapping.
 *
 * A plain table indexed by code: the codes are dense 0..16, so lookup is
 * an array index and parsing a linear scan over 17 short strings (only
 * used for configuration and tests, never per call).
 */
#include "libs/rpc/rpc_status.h"

#include <stddef.h>
#include <string.h>

static const char *const code_names[RPC_CODE_COUNT] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

int rpc_code_valid(int code) { return code >= 0 && code < RPC_CODE_COUNT; }

const char *rpc_code_name(int code) {
  if (!rpc_code_valid(code)) return code_names[RPC_UNKNOWN];
  return code_names[code];
}

int rpc_code_parse(const char *name, int *code) {
  if (name == NULL || code == NULL) return ERR_INVAL;
  for (int i = 0; i < RPC_CODE_COUNT; i++) {
    if (strcmp(name, code_names[i]) == 0) {
      *code = i;
      return ERR_OK;
    }
  }
  return ERR_INVAL;
}

int rpc_code_from_err(int err) {
  switch (err) {
  case ERR_OK:
    return RPC_OK;
  case ERR_INVAL:
    return RPC_INVALID_ARGUMENT;
  case ERR_NOTFOUND:
    return RPC_NOT_FOUND;
  case ERR_EXISTS:
    return RPC_ALREADY_EXISTS;
  case ERR_CONFLICT:
    return RPC_ABORTED;
  case ERR_TIMEOUT:
    return RPC_DEADLINE_EXCEEDED;
  case ERR_UNAVAILABLE:
  case ERR_CLOSED:
    return RPC_UNAVAILABLE;
  case ERR_TOOBIG:
  case ERR_NOMEM:
    return RPC_RESOURCE_EXHAUSTED;
  default:
    return RPC_INTERNAL;
  }
}
