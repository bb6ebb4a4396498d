/*
 * system.c - see system.h: the clients' settings over tests/harness:system.
 */
#include "tests/clients/system.h"

static char *const kTenants[] = {"TENANTS_OPERATOR_SECRET=clients-operator",
                                 "TENANTS_BASE_DOMAINS=localhost,example.test",
                                 NULL};
/* sync: the devices of tools/bots (--devices). */
static char *const kSync[] = {
    "SYNC_DEVICE_PEPPER=clients-pepper-not-secret-0123456789abcdef", NULL};
static char *const kGateway[] = {
    "GATEWAY_RATE_BURST=100000", "GATEWAY_RATE_PER_MIN=10000000",
    "GATEWAY_LOGIN_BURST=100000", "GATEWAY_LOGIN_PER_MIN=10000000", NULL};

bool clients_system_start(harness_system *s, const char *tag, bool realtime) {
  harness_system_opts o = {
      .tag = tag,
      .parts = HARNESS_WITH(HARNESS_TENANTS) | HARNESS_WITH(HARNESS_ORDERS) |
               HARNESS_WITH(HARNESS_SYNC) | HARNESS_WITH(HARNESS_GATEWAY),
      .env = {[HARNESS_TENANTS] = kTenants,
              [HARNESS_SYNC] = kSync,
              [HARNESS_GATEWAY] = kGateway},
  };
  if (realtime) o.parts |= HARNESS_WITH(HARNESS_REALTIME);
  return harness_system_start(s, &o);
}
