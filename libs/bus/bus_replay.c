/*
 * bus_replay.c - the client side of "<source>.v1.Events/Replay": one
 * backfill step over libs/rpc.
 *
 * Replay is read-only, so the call is marked idempotent and libs/rpc may
 * retry it within the deadline. Status codes are folded into the three
 * answers the tracker acts on: events (ERR_OK), "gone for good"
 * (ERR_NOTFOUND: the tracker skips the range) and "try again later"
 * (anything else).
 */
#include <stdio.h>
#include <string.h>

#include "libs/bus/bus.h"
#include "libs/bus/bus_internal.h"
#include "libs/rpc/rpc.h"

int bus_replay_method(const char *source, char *buf, size_t cap) {
  if (!bus_name_ok(source, BUS_MAX_SOURCE_LEN) || buf == NULL) return ERR_INVAL;
  int n = snprintf(buf, cap, "%s.v1.Events/Replay", source);
  return (n < 0 || (size_t)n >= cap) ? ERR_TOOBIG : ERR_OK;
}

int bus_replay_fetch(struct rpc_client *cli, const char *source,
                     uint64_t after_seq, uint32_t limit, uint32_t deadline_ms,
                     bus_backfill *out) {
  if (cli == NULL || out == NULL) return ERR_INVAL;
  char method[RPC_MAX_METHOD_LEN + 1];
  int rc = bus_replay_method(source, method, sizeof(method));
  if (rc != ERR_OK) return ERR_INVAL;
  Rpc__V1__ReplayRequest req = RPC__V1__REPLAY_REQUEST__INIT;
  req.after_seq = after_seq;
  req.limit = limit;
  rpc_call_options o = RPC_CALL_OPTIONS_INIT;
  o.deadline_ms = deadline_ms;
  o.idempotent = true;
  rpc_result *res = NULL;
  rc = rpc_client_call_message(cli, method, &req.base, &o, &res);
  if (rc != ERR_OK) return rc;
  switch (res->code) {
  case RPC_OK:
    rc = bus_backfill_add_replay(out, res->payload, res->payload_len);
    if (rc == ERR_TOOBIG) rc = ERR_PROTO;
    break;
  case RPC_NOT_FOUND:
  case RPC_OUT_OF_RANGE:
    rc = ERR_NOTFOUND;
    break;
  case RPC_UNAVAILABLE:
  case RPC_RESOURCE_EXHAUSTED:
  case RPC_ABORTED:
  case RPC_CANCELLED:
    rc = ERR_UNAVAILABLE;
    break;
  case RPC_DEADLINE_EXCEEDED:
    rc = ERR_TIMEOUT;
    break;
  default:
    rc = ERR_PROTO;
    break;
  }
  rpc_result_free(res);
  return rc;
}
