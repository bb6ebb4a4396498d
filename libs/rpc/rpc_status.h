/*
 * rpc_status.h - the status codes every RPC reply carries.
 *
 * The codes are numbered exactly as google.rpc.Code / gRPC (and as the
 * rpc.v1.Code enum on the wire), so the gateway maps them to HTTP with
 * grpc-gateway's table and a reader who knows gRPC knows what each means.
 * Their names are the gRPC spellings ("INVALID_ARGUMENT"), used in logs,
 * metrics labels and configuration.
 *
 * rpc_code_from_err() is the one place where the project's ERR_* codes
 * (libs/base/err.h) become RPC codes, so every handler maps a failed
 * store call the same way.
 */
#ifndef RPC_STATUS_H
#define RPC_STATUS_H

#include "libs/base/err.h"

enum rpc_code {
  RPC_OK = 0,
  RPC_CANCELLED = 1,
  RPC_UNKNOWN = 2,
  RPC_INVALID_ARGUMENT = 3,
  RPC_DEADLINE_EXCEEDED = 4,
  RPC_NOT_FOUND = 5,
  RPC_ALREADY_EXISTS = 6,
  RPC_PERMISSION_DENIED = 7,
  RPC_RESOURCE_EXHAUSTED = 8,
  RPC_FAILED_PRECONDITION = 9,
  RPC_ABORTED = 10,
  RPC_OUT_OF_RANGE = 11,
  RPC_UNIMPLEMENTED = 12,
  RPC_INTERNAL = 13,
  RPC_UNAVAILABLE = 14,
  RPC_DATA_LOSS = 15,
  RPC_UNAUTHENTICATED = 16,
};

/* Number of codes; valid codes are 0 .. RPC_CODE_COUNT - 1. */
#define RPC_CODE_COUNT 17

/* The gRPC name of a code: rpc_code_name(RPC_INVALID_ARGUMENT) is
 * "INVALID_ARGUMENT". A code outside 0..16 is treated as gRPC treats it,
 * as UNKNOWN, and gives "UNKNOWN". The string is static; never NULL. */
const char *rpc_code_name(int code);

/* Parses a gRPC code name (exact, upper case: "NOT_FOUND") into *code.
 * Returns ERR_OK, or ERR_INVAL (and leaves *code alone) for NULL or any
 * other string. */
int rpc_code_parse(const char *name, int *code) WARN_UNUSED;

/* True when code is one of the 17 defined codes. */
int rpc_code_valid(int code);

/* Maps a project error (ERR_*) to the status a handler should answer:
 *   ERR_OK -> OK, ERR_INVAL -> INVALID_ARGUMENT, ERR_NOTFOUND -> NOT_FOUND,
 *   ERR_EXISTS -> ALREADY_EXISTS, ERR_CONFLICT -> ABORTED,
 *   ERR_TIMEOUT -> DEADLINE_EXCEEDED, ERR_UNAVAILABLE and ERR_CLOSED ->
 *   UNAVAILABLE, ERR_TOOBIG and ERR_NOMEM -> RESOURCE_EXHAUSTED,
 *   anything else (ERR_DB, ERR_IO, ERR_PROTO, ERR_INTERNAL, unknown) ->
 *   INTERNAL. */
int rpc_code_from_err(int err);

#endif
