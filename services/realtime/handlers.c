/*
 * handlers.c - "realtime.v1.Realtime/..." (see handlers.h).
 *
 * Ping is public (USER_ANONYMOUS for the gateway): no token to check, a
 * bounded message echoed back. The shape is every service's: unpack
 * (HANDLER_UNPACK), validate, answer, one free_unpacked at `out:`.
 */
#include "services/realtime/handlers.h"

#include <string.h>

#include "libs/svc/handler.h"
#include "proto/realtime/v1/realtime.pb-c.h"

#define PING_MESSAGE_MAX 200 /* bytes */

static void ping(void *arg, const rpc_call *call, rpc_reply *reply) {
  (void)arg;
  HANDLER_UNPACK(Realtime__V1__PingRequest, realtime__v1__ping_request, req, 0);
  if (strlen(req->message) > PING_MESSAGE_MAX) {
    handler_reply_field(reply, RPC_INVALID_ARGUMENT, "invalid ping", "message",
                        "is too long");
    goto out;
  }
  Realtime__V1__PingResponse resp = REALTIME__V1__PING_RESPONSE__INIT;
  resp.message = req->message;
  resp.service = "realtime";
  handler_reply_message(reply, &resp.base);
out:
  realtime__v1__ping_request__free_unpacked(req, NULL);
}

int realtime_register(rpc_server *srv) {
  static const handler_method table[] = {
      {REALTIME_METHOD("Ping"), ping},
  };
  return handler_register(srv, table, sizeof table / sizeof table[0], NULL);
}
