/*
 * handlers.h - the realtime service's RPC handlers ("realtime.v1.Realtime/...",
 * proto/realtime/v1/realtime.proto; who may call each: realtime_rpc.proto).
 *
 * The service's real interface is its WebSocket endpoint (ws.h); the RPC
 * side has one method, Ping, an echo that tells operators the RPC server
 * and its service-identity guard are up. The guard (libs/svc/identity.h)
 * has already refused calls without a valid service identity or from an
 * undeclared service before a handler runs.
 */
#ifndef REALTIME_HANDLERS_H
#define REALTIME_HANDLERS_H

#include "libs/base/err.h"
#include "libs/rpc/rpc.h"

#define REALTIME_METHOD(m) "realtime.v1.Realtime/" m

/* Registers every method on srv. Errors as handler_register. */
int realtime_register(rpc_server *srv) WARN_UNUSED;

#endif
