/*
 * system.h - one whole deployment for the clients' tests: its own
 * PostgreSQL and Redis, auth, tenants, orders, sync and a gateway (and
 * realtime on request), as processes started by tests/harness:system
 * with logs named "<tag>-<service>". tools/multi's test starts two of
 * these - two regions that share nothing - and tools/bots' test one.
 *
 * What is particular to the clients' tests is said here: the gateway's
 * rate limits are raised (a test logs the same owner in many times) and
 * sync has a device pepper (tools/bots --devices); everything else is
 * the services' defaults. Tests use the harness_system directly
 * (s->base, s->gateway[0], s->pg; harness_system_restart to bring a
 * stopped gateway back).
 */
#ifndef TESTS_CLIENTS_SYSTEM_H
#define TESTS_CLIENTS_SYSTEM_H

#include <stdbool.h>

#include "tests/harness/system.h"

/* Starts the deployment as tag (a string that outlives s), with realtime
 * when asked (s->ws_url); false (logs dumped, everything stopped) when
 * any part does not get ready. */
bool clients_system_start(harness_system *s, const char *tag, bool realtime);

#endif
