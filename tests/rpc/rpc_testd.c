/*
 * rpc_testd - a tiny RPC server for the cross-process tests in this
 * directory. It is a real service process in miniature: libs/rpc's
 * server, a worker pool, SIGTERM handled through libs/obs/lifecycle with
 * a graceful drain.
 *
 *   rpc_testd --listen tcp://127.0.0.1:PORT --id NAME [--workers N]
 *
 * Methods (package test.v1.Testd):
 *   Echo     replies with the request payload
 *   WhoAmI   replies with the replica id (--id)
 *   Sleep    payload: decimal milliseconds; sleeps, then replies with the
 *            replica id (how tests hold a call in flight)
 *   Crash    exits the process at once with status 3, mid-call
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "libs/base/err.h"
#include "libs/base/timeutil.h"
#include "libs/obs/lifecycle.h"
#include "libs/obs/log.h"
#include "libs/rpc/rpc.h"

static const char *replica_id = "?";

static void h_echo(void *arg, const rpc_call *call, rpc_reply *reply) {
  (void)arg;
  if (rpc_reply_set_payload(reply, call->payload, call->payload_len) !=
      ERR_OK) {
    rpc_reply_status(reply, RPC_RESOURCE_EXHAUSTED, "payload too large");
  }
}

static void h_whoami(void *arg, const rpc_call *call, rpc_reply *reply) {
  (void)arg;
  (void)call;
  if (rpc_reply_set_payload(reply, replica_id, strlen(replica_id)) != ERR_OK) {
    rpc_reply_status(reply, RPC_INTERNAL, NULL);
  }
}

static void h_sleep(void *arg, const rpc_call *call, rpc_reply *reply) {
  char buf[16];
  size_t n =
      call->payload_len < sizeof(buf) - 1 ? call->payload_len : sizeof(buf) - 1;
  memcpy(buf, call->payload, n);
  buf[n] = '\0';
  char *end = NULL;
  long ms = strtol(buf, &end, 10);
  if (end == buf || *end != '\0' || ms < 0 || ms > 60000) {
    rpc_reply_status(reply, RPC_INVALID_ARGUMENT, "sleep wants 0..60000 ms");
    (void)rpc_reply_add_violation(reply, "payload", "decimal milliseconds");
    return;
  }
  time_sleep_ms(ms);
  h_whoami(arg, call, reply);
}

static void h_crash(void *arg, const rpc_call *call, rpc_reply *reply) {
  (void)arg;
  (void)call;
  (void)reply;
  _exit(3);
}

int main(int argc, char **argv) {
  const char *listen = NULL;
  long workers = 8;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--listen") == 0) {
      listen = argv[i + 1];
    } else if (strcmp(argv[i], "--id") == 0) {
      replica_id = argv[i + 1];
    } else if (strcmp(argv[i], "--workers") == 0) {
      char *end = NULL;
      workers = strtol(argv[i + 1], &end, 10);
      if (end == argv[i + 1] || *end != '\0' || workers < 1 || workers > 256) {
        fprintf(stderr, "bad --workers\n");
        return 2;
      }
    } else {
      fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (listen == NULL) {
    fprintf(stderr, "usage: rpc_testd --listen URL --id NAME [--workers N]\n");
    return 2;
  }
  if (lifecycle_init() != ERR_OK) return 1;
  log_init("rpc_testd", LOG_INFO);

  rpc_server_options o;
  rpc_server_options_init(&o);
  o.workers = (int)workers;
  o.close_grace_ms = 5000;
  rpc_server *s = NULL;
  if (rpc_server_new(&o, &s) != ERR_OK ||
      rpc_server_register(s, "test.v1.Testd/Echo", h_echo, NULL) != ERR_OK ||
      rpc_server_register(s, "test.v1.Testd/WhoAmI", h_whoami, NULL) !=
          ERR_OK ||
      rpc_server_register(s, "test.v1.Testd/Sleep", h_sleep, NULL) != ERR_OK ||
      rpc_server_register(s, "test.v1.Testd/Crash", h_crash, NULL) != ERR_OK) {
    log_error("cannot set up server");
    return 1;
  }
  int rc = rpc_server_start(s, listen);
  if (rc != ERR_OK) {
    log_error("cannot listen", "url", listen, "error", err_str(rc));
    rpc_server_close(s);
    return 1;
  }
  log_info("listening", "url", listen, "id", replica_id);
  int sig = 0;
  if (lifecycle_wait_for_stop(-1, &sig) != ERR_OK) {
    log_warn("signal wait failed; stopping");
  }
  log_info("stopping");
  rpc_server_close(s); /* drains in-flight calls */
  log_info("stopped");
  return 0;
}
