/*
 * system.c - see system.h. The same composition as tests/failover, with
 * one replica of each service.
 */
#include "tests/clients/system.h"

#include <stdio.h>
#include <string.h>

static bool start_services(clients_system *s, char *const auth_extra[]) {
  char name[48];
  snprintf(name, sizeof name, "%s-auth", s->tag);
  if (!harness_service_start_auth(&s->auth, name, &s->opts, auth_extra))
    return false;
  snprintf(s->auth_addr, sizeof s->auth_addr, "AUTH_ADDR=%s", s->auth.rpc_url);
  snprintf(s->auth_events, sizeof s->auth_events, "AUTH_EVENTS=%s",
           s->auth.bus_url);
  char *ten_extra[] = {s->auth_addr, "TENANTS_OPERATOR_SECRET=clients-operator",
                       "TENANTS_BASE_DOMAINS=localhost,example.test", NULL};
  snprintf(name, sizeof name, "%s-tenants", s->tag);
  if (!harness_service_start(&s->tenants, name, "services/tenants/tenants",
                             &s->opts, ten_extra))
    return false;
  snprintf(s->ten_addr, sizeof s->ten_addr, "TENANTS_ADDR=%s",
           s->tenants.rpc_url);
  snprintf(s->ten_events, sizeof s->ten_events, "TENANTS_EVENTS=%s",
           s->tenants.bus_url);
  char *ord_extra[] = {s->auth_addr, s->ten_addr, s->auth_events, s->ten_events,
                       NULL};
  snprintf(name, sizeof name, "%s-orders", s->tag);
  if (!harness_service_start(&s->orders, name, "services/orders/orders",
                             &s->opts, ord_extra))
    return false;
  snprintf(s->ord_addr, sizeof s->ord_addr, "ORDERS_ADDR=%s",
           s->orders.rpc_url);
  /* sync: the devices of tools/bots (--devices). */
  char *sync_extra[] = {
      s->auth_addr, s->ord_addr,
      "SYNC_DEVICE_PEPPER=clients-pepper-not-secret-0123456789abcdef", NULL};
  snprintf(name, sizeof name, "%s-sync", s->tag);
  if (!harness_service_start(&s->sync, name, "services/sync/sync", &s->opts,
                             sync_extra))
    return false;
  snprintf(s->sync_addr, sizeof s->sync_addr, "SYNC_ADDR=%s", s->sync.rpc_url);
  return true;
}

bool clients_system_start(clients_system *s, const char *tag,
                          char *const auth_extra[]) {
  memset(s, 0, sizeof *s);
  snprintf(s->tag, sizeof s->tag, "%s", tag);
  if (harness_pg_start(&s->pg) != 0 || harness_redis_start(&s->redis) != 0)
    return false;
  s->opts = (harness_service_opts){.pg = &s->pg, .redis = &s->redis};
  if (!start_services(s, auth_extra)) return false;
  char *gw[] = {s->auth_addr,
                s->ten_addr,
                s->ord_addr,
                s->sync_addr,
                s->auth_events,
                s->ten_events,
                "GATEWAY_RATE_BURST=100000",
                "GATEWAY_RATE_PER_MIN=10000000",
                "GATEWAY_LOGIN_BURST=100000",
                "GATEWAY_LOGIN_PER_MIN=10000000",
                NULL};
  memcpy(s->gw_extra, gw, sizeof gw);
  char name[48];
  snprintf(name, sizeof name, "%s-gateway", s->tag);
  if (!harness_service_start(&s->gw, name, "services/gateway/gateway", &s->opts,
                             s->gw_extra))
    return false;
  snprintf(s->base, sizeof s->base, "http://127.0.0.1:%d", s->gw.http_port);
  return true;
}

bool clients_system_start_realtime(clients_system *s) {
  char a[96], o[96], oe[96], wp[32], name[48];
  snprintf(a, sizeof a, "AUTH_ADDR=%s", s->auth.rpc_url);
  snprintf(o, sizeof o, "ORDERS_ADDR=%s", s->orders.rpc_url);
  snprintf(oe, sizeof oe, "ORDERS_EVENTS=%s", s->orders.bus_url);
  int port = harness_free_port();
  snprintf(wp, sizeof wp, "WS_PORT=%d", port);
  char *extra[] = {
      a, o, oe, s->auth_events, s->ten_events, wp, "WS_ADDR=127.0.0.1", NULL};
  s->rt_opts = (harness_service_opts){.redis = &s->redis};
  snprintf(name, sizeof name, "%s-realtime", s->tag);
  if (!harness_service_start(&s->realtime, name, "services/realtime/realtime",
                             &s->rt_opts, extra) ||
      !harness_wait_port(port, 10000))
    return false;
  snprintf(s->ws_url, sizeof s->ws_url, "ws://127.0.0.1:%d", port);
  return true;
}

void clients_system_stop_gateway(clients_system *s) {
  harness_service_stop(&s->gw, 15000);
}

bool clients_system_restart_gateway(clients_system *s) {
  char name[48];
  snprintf(name, sizeof name, "%s-gateway", s->tag);
  return harness_service_restart(&s->gw, name, &s->opts, s->gw_extra);
}

void clients_system_stop(clients_system *s) {
  harness_service_stop(&s->realtime, 15000);
  harness_service_stop(&s->gw, 15000);
  harness_service_stop(&s->sync, 15000);
  harness_service_stop(&s->orders, 15000);
  harness_service_stop(&s->tenants, 15000);
  harness_service_stop(&s->auth, 15000);
  harness_redis_stop(&s->redis);
  harness_pg_stop(&s->pg);
}
