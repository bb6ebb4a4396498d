/*
 * main.c - the realtime service: configuration, start-up and shutdown.
 *
 * libs/svc's svc_main runs the common parts (settings, logging, the RPC
 * server with its service-identity guard over realtime_v1_access - one
 * method, Ping - the admin port, drain on SIGTERM). The service needs no
 * PostgreSQL (uses_db false): what it shares between replicas, the
 * channels' offsets and epochs, lives in Redis, which is therefore
 * required (and the channels' history and presence with them). init opens,
 * in order: Redis, the token verifier, offsets and presence, the WebSocket
 * server (ws.h, its own thread on WS_ADDR:WS_PORT, with the recheck of
 * live tokens), the revocation events into that recheck, the client of
 * orders (Replay) and the bus feed (feed.h); fini closes them in the
 * reverse order, the WebSocket connections with 1001 within
 * REALTIME_DRAIN_MS.
 */
#include <stdio.h>
#include <string.h>

#include "libs/obs/log.h"
#include "libs/svc/svc.h"
#include "proto/realtime/v1/realtime_access.h"
#include "services/realtime/feed.h"
#include "services/realtime/handlers.h"
#include "services/realtime/offsets.h"
#include "services/realtime/presence.h"
#include "services/realtime/recheck.h"
#include "services/realtime/ws.h"

static const cfg_entry config[] = {
    {.name = "AUTH_ADDR",
     .kind = CFG_URL,
     .required = true,
     .description = "auth service RPC address list (token keys)"},
    {.name = "AUTH_ISSUER",
     .kind = CFG_STRING,
     .def = "auth",
     .description = "required iss claim of access tokens"},
    {.name = "AUTH_EVENTS",
     .kind = CFG_STRING,
     .def = "",
     .description = "auth's bus publishers (auth.revoked), for authn"},
    {.name = "TENANTS_EVENTS",
     .kind = CFG_STRING,
     .def = "",
     .description = "tenants' bus publishers (tenants.changed), for authn"},
    {.name = "REDIS_URL",
     .kind = CFG_URL,
     .required = true,
     .description =
         "Redis: channel offsets, epochs and history, token revocations"},
    {.name = "ORDERS_ADDR",
     .kind = CFG_URL,
     .required = true,
     .description = "orders service RPC address list (Events/Replay)"},
    {.name = "ORDERS_EVENTS",
     .kind = CFG_STRING,
     .required = true,
     .description = "orders' bus publishers (orders., kitchen., tables.)"},
    {.name = "NOTIFICATIONS_ADDR",
     .kind = CFG_STRING,
     .def = "",
     .description = "notifications' RPC address list (Events/Replay)"},
    {.name = "NOTIFICATIONS_EVENTS",
     .kind = CFG_STRING,
     .def = "",
     .description = "notifications' bus publishers (private.user.); empty: "
                    "no in-app notifications pushed"},
    {.name = "SYNC_ADDR",
     .kind = CFG_STRING,
     .def = "",
     .description = "sync service RPC address list (Events/Replay of "
                    "devices.*); needed with SYNC_EVENTS"},
    {.name = "SYNC_EVENTS",
     .kind = CFG_STRING,
     .def = "",
     .description = "sync's bus publishers (devices.): DeviceOnline and "
                    "DeviceOffline on devices.<tenant>; empty: none"},
    {.name = "WS_ADDR",
     .kind = CFG_STRING,
     .def = "0.0.0.0",
     .description = "WebSocket bind address"},
    {.name = "WS_PORT",
     .kind = CFG_INT,
     .def = "8081",
     .min = 1,
     .max = 65535,
     .description = "WebSocket port (path /v1/realtime)"},
    {.name = "REALTIME_MAX_SUBSCRIPTIONS",
     .kind = CFG_INT,
     .def = "64",
     .min = 1,
     .max = 4096,
     .description = "channels per connection"},
    {.name = "REALTIME_SEND_QUEUE_BYTES",
     .kind = CFG_INT,
     .def = "1048576",
     .min = 1024,
     .max = 268435456,
     .description = "queued outbound bytes per connection; over: close 4008"},
    {.name = "REALTIME_AUTH_TIMEOUT",
     .kind = CFG_DURATION_MS,
     .def = "5s",
     .min = 1,
     .max = 600000,
     .description = "time for the first-frame auth; then close 4001"},
    {.name = "REALTIME_PING_IDLE",
     .kind = CFG_DURATION_MS,
     .def = "30s",
     .min = 1000,
     .max = 3600000,
     .description = "ping a connection silent this long; drop it at twice"},
    {.name = "REALTIME_HISTORY_SIZE",
     .kind = CFG_INT,
     .def = "300",
     .min = 1,
     .max = 100000,
     .description = "publications kept per channel for recovery and history"},
    {.name = "REALTIME_HISTORY_TTL",
     .kind = CFG_DURATION_MS,
     .def = "10m",
     .min = 1000,
     .max = 86400000,
     .description = "how long a publication stays in a channel's history"},
    {.name = "REALTIME_PRESENCE_TTL",
     .kind = CFG_DURATION_MS,
     .def = "30s",
     .min = 300,
     .max = 3600000,
     .description = "a client's presence without a heartbeat (ttl/3); a dead "
                    "replica's clients vanish after it"},
    {.name = "REALTIME_RECHECK_FULL",
     .kind = CFG_DURATION_MS,
     .def = "5s",
     .min = 250,
     .max = 86400000,
     .description = "a pass re-verifying every live token at least this often "
                    "(between, only when the revocation counter moved)"},
    {.name = "AUTHN_CACHE_ENTRIES",
     .kind = CFG_INT,
     .def = "32768",
     .min = 1024,
     .max = 4194304,
     .description = "verified tokens cached (344 B each, touched as used); "
                    "keep above the distinct live tokens, or the recheck's "
                    "full passes verify the others' signatures again"},
    {.name = "REALTIME_RECHECK_MS",
     .kind = CFG_DURATION_MS,
     .def = "250ms",
     .min = 10,
     .max = 60000,
     .description = "between passes re-verifying live connections' tokens "
                    "(revoked -> close 4003)"},
    {.name = "REALTIME_MAX_CONNECTIONS_PER_IP",
     .kind = CFG_INT,
     .def = "256",
     .min = 0,
     .max = 1000000,
     .description = "WebSocket connections per remote address (TCP peer); "
                    "over: the upgrade is refused; 0: no cap"},
    {.name = "REALTIME_DRAIN_MS",
     .kind = CFG_DURATION_MS,
     .def = "2s",
     .min = 0,
     .max = 60000,
     .description = "wait for connections closed with 1001 at shutdown"},
};

typedef struct app {
  cache *redis;     /* the runtime's */
  rpc_client *auth; /* the runtime's */
  authn *verifier;  /* the runtime's */
  bus_subscriber *revocations;
  rpc_client *orders;
  offsets *offsets;
  presence *presence;
  ws_server *ws;
  feed *feed;
  rpc_client *notifications;
  feed *inbox;      /* notifications' Notification events, when configured */
  rpc_client *sync; /* ours; NULL without SYNC_EVENTS */
  feed *devices;    /* sync's device events, when configured */
} app;

/* auth.revoked and tenants.changed into the verifier and the live
 * connections' recheck, when configured. */
static int open_revocations(svc *s, app *a) {
  const cfg *c = svc_cfg(s);
  const char *au = cfg_str(c, "AUTH_EVENTS"),
             *te = cfg_str(c, "TENANTS_EVENTS");
  au = au ? au : "";
  te = te ? te : "";
  if (au[0] == '\0' && te[0] == '\0') {
    log_warn("AUTH_EVENTS/TENANTS_EVENTS not set: revocations are seen "
             "through Redis re-checks only");
    return ERR_OK;
  }
  char addr[2 * CFG_MAX_VALUE + 2];
  snprintf(addr, sizeof addr, "%s%s%s", au, au[0] && te[0] ? "," : "", te);
  return recheck_subscribe(ws_server_recheck(a->ws), addr, &a->revocations);
}

static int open_ws(svc *s, app *a) {
  const cfg *c = svc_cfg(s);
  ws_config wc = {
      .addr = cfg_str(c, "WS_ADDR"),
      .port = (int)cfg_int(c, "WS_PORT"),
      .verifier = a->verifier,
      .offsets = a->offsets,
      .max_subscriptions = (size_t)cfg_int(c, "REALTIME_MAX_SUBSCRIPTIONS"),
      .send_queue_bytes = (size_t)cfg_int(c, "REALTIME_SEND_QUEUE_BYTES"),
      .auth_timeout_ms = cfg_duration_ms(c, "REALTIME_AUTH_TIMEOUT"),
      .ping_idle_ms = cfg_duration_ms(c, "REALTIME_PING_IDLE"),
      .inbox_max = 100000,
      .presence = a->presence,
      .presence_ttl_ms = cfg_duration_ms(c, "REALTIME_PRESENCE_TTL"),
      .recheck_ms = cfg_duration_ms(c, "REALTIME_RECHECK_MS"),
      .redis = a->redis,
      .recheck_full_ms = cfg_duration_ms(c, "REALTIME_RECHECK_FULL"),
      .max_conns_per_addr =
          (size_t)cfg_int(c, "REALTIME_MAX_CONNECTIONS_PER_IP"),
  };
  int rc = ws_server_start(&wc, &a->ws);
  if (rc != ERR_OK)
    log_error("cannot serve WebSocket", "addr", wc.addr, "port",
              cfg_str(c, "WS_PORT"), "error", err_str(rc));
  else
    log_info("websocket ready", "port", cfg_str(c, "WS_PORT"), "path", WS_PATH);
  return rc;
}

static int open_feed(svc *s, app *a) {
  const cfg *c = svc_cfg(s);
  int rc = svc_rpc_client_new(s, cfg_str(c, "ORDERS_ADDR"), NULL, &a->orders);
  feed_config fc = {.address = cfg_str(c, "ORDERS_EVENTS"),
                    .replay = a->orders,
                    .offsets = a->offsets,
                    .ws = a->ws,
                    .thread_name = "rt-feed-orders"};
  if (rc == ERR_OK) rc = feed_start(&fc, &a->feed);
  if (rc != ERR_OK)
    log_error("cannot subscribe to ORDERS_EVENTS", "error", err_str(rc));
  return rc;
}

/* Each user's in-app notifications on private.user.<id>, from the
 * notifications service's bus, when NOTIFICATIONS_EVENTS is set. */
static int open_inbox_feed(svc *s, app *a) {
  static const char *const kFamilies[] = {"private.user.", NULL};
  const cfg *c = svc_cfg(s);
  const char *ev = cfg_str(c, "NOTIFICATIONS_EVENTS"),
             *addr = cfg_str(c, "NOTIFICATIONS_ADDR");
  if (ev == NULL || ev[0] == '\0' || addr == NULL || addr[0] == '\0') {
    log_warn("NOTIFICATIONS_EVENTS/NOTIFICATIONS_ADDR not set: no in-app "
             "notifications on private.user channels");
    return ERR_OK;
  }
  int rc = svc_rpc_client_new(s, addr, NULL, &a->notifications);
  feed_config fc = {.address = ev,
                    .replay = a->notifications,
                    .families = kFamilies,
                    .offsets = a->offsets,
                    .ws = a->ws,
                    .thread_name = "rt-feed-notif"};
  if (rc == ERR_OK) rc = feed_start(&fc, &a->inbox);
  if (rc != ERR_OK)
    log_error("cannot subscribe to NOTIFICATIONS_EVENTS", "error", err_str(rc));
  return rc;
}

/* sync's DeviceOnline/DeviceOffline on devices.<tenant_id> (the device as
 * GET /v1/sync/devices/{id} shows it), when SYNC_EVENTS is set. */
static int open_device_feed(svc *s, app *a) {
  static const char *const kFamilies[] = {"devices.", NULL};
  const cfg *c = svc_cfg(s);
  const char *ev = cfg_str(c, "SYNC_EVENTS"), *addr = cfg_str(c, "SYNC_ADDR");
  if (ev == NULL || ev[0] == '\0' || addr == NULL || addr[0] == '\0') {
    log_info("SYNC_EVENTS/SYNC_ADDR not set: no device events on devices.*");
    return ERR_OK;
  }
  int rc = svc_rpc_client_new(s, addr, NULL, &a->sync);
  feed_config fc = {.address = ev,
                    .replay = a->sync,
                    .families = kFamilies,
                    .offsets = a->offsets,
                    .ws = a->ws,
                    .thread_name = "rt-feed-devices"};
  if (rc == ERR_OK) rc = feed_start(&fc, &a->devices);
  if (rc != ERR_OK)
    log_error("cannot subscribe to SYNC_EVENTS", "error", err_str(rc));
  return rc;
}

static int realtime_init(svc *s, void *arg) {
  app *a = arg;
  int rc = svc_redis_open(s, NULL, "REDIS_URL not set", &a->redis);
  if (rc == ERR_OK && a->redis == NULL) rc = ERR_INVAL;
  if (rc == ERR_OK) rc = svc_verifier_open(s, a->redis, &a->auth, &a->verifier);
  offsets_options oo = {
      .history_size = (size_t)cfg_int(svc_cfg(s), "REALTIME_HISTORY_SIZE"),
      .history_ttl_ms = cfg_duration_ms(svc_cfg(s), "REALTIME_HISTORY_TTL")};
  if (rc == ERR_OK) rc = offsets_new(a->redis, &oo, &a->offsets);
  if (rc == ERR_OK)
    rc = presence_new(a->redis,
                      cfg_duration_ms(svc_cfg(s), "REALTIME_PRESENCE_TTL"),
                      &a->presence);
  if (rc == ERR_OK) rc = open_ws(s, a);
  if (rc == ERR_OK) rc = open_revocations(s, a);
  if (rc == ERR_OK) rc = open_feed(s, a);
  if (rc == ERR_OK) rc = open_inbox_feed(s, a);
  if (rc == ERR_OK) rc = open_device_feed(s, a);
  if (rc == ERR_OK) rc = realtime_register(svc_rpc(s));
  return rc;
}

/* After the RPC server drained: the feed and the revocation events first
 * (they hand work to the WebSocket server), then the connections (1001),
 * then what they used. Redis, the auth client and the verifier are the
 * runtime's. */
static void realtime_fini(svc *s, void *arg) {
  app *a = arg;
  feed_free(a->feed);
  feed_free(a->inbox);
  feed_free(a->devices);
  bus_subscriber_free(a->revocations);
  ws_server_free(a->ws, cfg_duration_ms(svc_cfg(s), "REALTIME_DRAIN_MS"));
  rpc_client_free(a->orders);
  rpc_client_free(a->notifications);
  rpc_client_free(a->sync);
  presence_free(a->presence);
  offsets_free(a->offsets);
}

int main(int argc, char **argv) {
  static app a;
  svc_spec spec = {
      .access = &realtime_v1_access,
      .name = "realtime",
      .config = config,
      .nconfig = sizeof config / sizeof config[0],
      .uses_db = false,
      .init = realtime_init,
      .fini = realtime_fini,
      .argc = argc,
      .argv = argv,
      .arg = &a,
  };
  return svc_main(&spec);
}
