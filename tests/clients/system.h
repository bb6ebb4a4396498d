/*
 * system.h - one whole deployment for the clients' tests: its own
 * PostgreSQL and Redis, auth, tenants, orders and a gateway, as processes
 * (logs named "<tag>-<service>"). tools/multi's test starts two of these
 * - two regions that share nothing - and tools/bots' test one.
 *
 * Realtime is started on request (clients_system_start_realtime).
 * The gateway's rate limits are raised (a test logs the same owner in
 * many times); everything else is the services' defaults.
 */
#ifndef TESTS_CLIENTS_SYSTEM_H
#define TESTS_CLIENTS_SYSTEM_H

#include <stdbool.h>

#include "tests/harness/harness.h"
#include "tests/harness/service.h"

typedef struct clients_system {
  char tag[16];
  harness_pg pg;
  harness_redis redis;
  harness_service_opts opts;
  harness_service auth, tenants, orders, sync, gw, realtime;
  harness_service_opts rt_opts;
  char ws_url[64]; /* "ws://127.0.0.1:<port>" once realtime runs */
  char auth_addr[96], ten_addr[96], ord_addr[96], sync_addr[96];
  char auth_events[96], ten_events[96];
  char *gw_extra[12]; /* kept for restarting the gateway */
  char base[64];      /* "http://127.0.0.1:<gateway port>" */
} clients_system;

/* Starts everything; false when any part does not get ready. auth_extra
 * (NULL-terminated "K=V", may be NULL) goes to auth (a test's own auth
 * settings). */
bool clients_system_start(clients_system *s, const char *tag,
                          char *const auth_extra[]);

/* Adds the realtime service (fed by orders', auth's and tenants'
 * events; Redis only) on a free WebSocket port; sets s->ws_url. */
bool clients_system_start_realtime(clients_system *s);

/* Stops the gateway only (the rest keeps running). */
void clients_system_stop_gateway(clients_system *s);

/* Starts the gateway again on the same port. */
bool clients_system_restart_gateway(clients_system *s);

void clients_system_stop(clients_system *s);

#endif
