/*
 * main.c - the notifications service: configuration, start-up and
 * shutdown; the work is in handlers.c (the API), fanout.c (events into
 * deliveries), queue.c and attempt.c (sending), store*.c (SQL). libs/svc's
 * svc_main does the rest (common settings, logging, database and
 * migrations, the RPC server with the service-identity guard over
 * notifications_v1_access, the admin port, drain on SIGTERM).
 *
 * init opens, in order: the sealing key, the store, Redis (required: the
 * queue), the token verifier, the queue (its workers start sending), the
 * outbox of this service's own events (eventpub: Notification events for
 * realtime), the client of orders (Replay) and the bus fan-out, then
 * registers the handlers and starts the relay with Replay, then the rounds
 * that delete what is no longer needed (expired Idempotency-Keys, old
 * finished deliveries: retention.h). The channel-settings cache
 * (settings_cache.h) is shared by the fan-out and UpdateSettings. fini stops
 * them in reverse: no new events, then the workers (an attempt in progress
 * finishes and is recorded).
 */
#include <curl/curl.h>
#include <sodium.h>

#include "libs/idem/expiry.h"
#include "libs/obs/log.h"
#include "libs/svc/eventpub.h"
#include "libs/svc/svc.h"
#include "proto/notifications/v1/notifications_access.h"
#include "services/notifications/campaign.h"
#include "services/notifications/fanout.h"
#include "services/notifications/handlers.h"
#include "services/notifications/mailer.h"
#include "services/notifications/queue.h"
#include "services/notifications/retention.h"
#include "services/notifications/settings_cache.h"
#include "services/notifications/store.h"

static const cfg_entry config[] = {
    {.name = "AUTH_ADDR",
     .kind = CFG_URL,
     .required = true,
     .description = "auth service RPC address list (token keys)"},
    {.name = "AUTH_ISSUER",
     .kind = CFG_STRING,
     .def = "auth",
     .description = "required iss claim of access tokens"},
    {.name = "REDIS_URL",
     .kind = CFG_URL,
     .required = true,
     .description = "Redis: the delivery queue, token revocations"},
    {.name = "NOTIFICATIONS_DB_ROLE",
     .kind = CFG_STRING,
     .def = "notifications_app",
     .description = "role each transaction switches to (RLS); empty: none"},
    {.name = "ORDERS_ADDR",
     .kind = CFG_URL,
     .required = true,
     .description = "orders service RPC address list (Events/Replay)"},
    {.name = "ORDERS_EVENTS",
     .kind = CFG_STRING,
     .required = true,
     .description = "orders' bus publishers (orders., kitchen., tables.)"},
    {.name = "NOTIFICATIONS_SECRET_KEY",
     .kind = CFG_STRING,
     .required = true,
     .secret = true,
     .description = "base64 of 32 bytes: seals webhook secrets at rest"},
    {.name = "NOTIFICATIONS_ALLOW_PRIVATE_TARGETS",
     .kind = CFG_BOOL,
     .def = "false",
     .description = "allow webhooks to private/loopback addresses (dev)"},
    {.name = "NOTIFICATIONS_WORKERS",
     .kind = CFG_INT,
     .def = "4",
     .min = 1,
     .max = 64,
     .description = "threads sending webhooks"},
    {.name = "NOTIFICATIONS_MAX_ATTEMPTS",
     .kind = CFG_INT,
     .def = "3",
     .min = 1,
     .max = 100,
     .description = "attempts of a delivery before it is dead"},
    {.name = "NOTIFICATIONS_RETRY_BASE",
     .kind = CFG_DURATION_MS,
     .def = "5s",
     .min = 0,
     .max = 3600000,
     .description = "delay before the first retry; doubles, with jitter"},
    {.name = "NOTIFICATIONS_SEND_TIMEOUT",
     .kind = CFG_DURATION_MS,
     .def = "10s",
     .min = 100,
     .max = 60000,
     .description = "a webhook request's whole time"},
    {.name = "NOTIFICATIONS_RESPONSE_MAX",
     .kind = CFG_INT,
     .def = "65536",
     .min = 0,
     .max = 1048576,
     .description = "response body bytes read; then the transfer is cut"},
    {.name = "NOTIFICATIONS_CLAIM_TIMEOUT",
     .kind = CFG_DURATION_MS,
     .def = "30s",
     .min = 100,
     .max = 3600000,
     .description = "a job idle this long is taken over (XAUTOCLAIM)"},
    {.name = "NOTIFICATIONS_POLL",
     .kind = CFG_DURATION_MS,
     .def = "250ms",
     .min = 10,
     .max = 60000,
     .description = "how often due retries move to the stream"},
    {.name = "NOTIFICATIONS_SWEEP_INTERVAL",
     .kind = CFG_DURATION_MS,
     .def = "30s",
     .min = 100,
     .max = 3600000,
     .description = "how often PostgreSQL is searched for lost jobs"},
    {.name = "NOTIFICATIONS_SWEEP_GRACE",
     .kind = CFG_DURATION_MS,
     .def = "60s",
     .min = 0,
     .max = 86400000,
     .description =
         "how overdue a pending delivery is before it is queued again"},
    {.name = "NOTIFICATIONS_SECRET_GRACE",
     .kind = CFG_DURATION_MS,
     .def = "24h",
     .min = 0,
     .max = 604800000,
     .description = "how long a rotated-out secret still signs"},
    {.name = "NOTIFICATIONS_MAX_ENDPOINTS",
     .kind = CFG_INT,
     .def = "50",
     .min = 1,
     .max = 1000,
     .description = "webhook endpoints per tenant"},
    {.name = "NOTIFICATIONS_DELIVERIES_RETENTION",
     .kind = CFG_DURATION_MS,
     .def = "720h",
     .min = 1000,
     .max = 315360000000,
     .description = "how long a succeeded or dead delivery (and its "
                    "attempts) is kept after its last change; pending ones "
                    "are never pruned"},
    {.name = "NOTIFICATIONS_INBOX_READ_RETENTION",
     .kind = CFG_DURATION_MS,
     .def = "0",
     .min = 0,
     .max = 315360000000,
     .description = "how long an in-app notification is kept after it was "
                    "read; 0: kept for ever (unread ones always are)"},
    {.name = "NOTIFICATIONS_RETENTION_SWEEP",
     .kind = CFG_DURATION_MS,
     .def = "10m",
     .min = 100,
     .max = 86400000,
     .description = "how often old finished deliveries are pruned"},
    {.name = "NOTIFICATIONS_SETTINGS_CACHE_TTL",
     .kind = CFG_DURATION_MS,
     .def = "5s",
     .min = 1,
     .max = 3600000,
     .description = "how long a replica reuses a tenant's channel settings "
                    "(its own PATCH forgets them at once; another replica "
                    "sees a change within this)"},
    {.name = "SMTP_URL",
     .kind = CFG_STRING,
     .def = "",
     .secret = true,
     .description = "smtp[s]://[user:password@]host[:port]: e-mail of each "
                    "notification (STARTTLS when offered); empty: no e-mail"},
    {.name = "SMS_URL",
     .kind = CFG_STRING,
     .def = "",
     .description = "SMS provider's message endpoint (a Twilio-style form "
                    "POST); empty: no SMS"},
    {.name = "SMS_ACCOUNT",
     .kind = CFG_STRING,
     .def = "",
     .description = "SMS provider account (HTTP Basic user name)"},
    {.name = "SMS_TOKEN",
     .kind = CFG_STRING,
     .def = "",
     .secret = true,
     .description = "SMS provider token (HTTP Basic password)"},
    {.name = "SMS_FROM",
     .kind = CFG_STRING,
     .def = "",
     .description = "the sender number of SMS (E.164)"},
    {.name = "NOTIFICATIONS_MAIL_FROM",
     .kind = CFG_STRING,
     .def = "notifications@localhost",
     .description = "the From address of e-mails"},
    {.name = "NOTIFICATIONS_CAMPAIGN_BATCH",
     .kind = CFG_INT,
     .def = "100",
     .min = 1,
     .max = 1000,
     .description = "recipients of a campaign per batch"},
    {.name = "NOTIFICATIONS_CAMPAIGN_INTERVAL",
     .kind = CFG_DURATION_MS,
     .def = "1s",
     .min = 0,
     .max = 3600000,
     .description = "pause between two batches of one campaign (send rate: "
                    "BATCH per INTERVAL)"},
    {.name = "NOTIFICATIONS_CAMPAIGN_POLL",
     .kind = CFG_DURATION_MS,
     .def = "1s",
     .min = 10,
     .max = 60000,
     .description = "how often due campaigns are looked for"},
    {.name = "BUS_LISTEN",
     .kind = CFG_URL,
     .description = "bus publisher URL (Notification events for realtime); "
                    "unset: Replay only"},
    {.name = "NOTIFICATIONS_OUTBOX_POLL",
     .kind = CFG_DURATION_MS,
     .def = "1s",
     .min = 10,
     .max = 60000,
     .description = "relay poll period of the Notification events"},
    {.name = "NOTIFICATIONS_OUTBOX_KEEP",
     .kind = CFG_DURATION_MS,
     .def = "168h",
     .min = 60000,
     .max = 31622400000LL,
     .description = "how long published events stay available to Replay"},
};

typedef struct app {
  seal_key key;
  mailer_config mail; /* .url "" : no e-mail */
  sms_config sms;     /* .url "" : no SMS */
  cache *redis;       /* the runtime's */
  rpc_client *auth;   /* the runtime's */
  authn *verifier;    /* the runtime's */
  store *store;
  queue *queue;
  rpc_client *orders;
  eventpub *events; /* the outbox of Notification events, for realtime */
  fanout *fanout;
  campaign_runner *campaigns;
  notifications *handlers;
  idem_expiry *idem_expiry; /* expired Idempotency-Keys deleted */
  retention *retention;     /* old finished deliveries deleted */
  settings_cache *settings; /* channel settings per tenant, with a TTL */
} app;

static int open_queue(svc *s, app *a) {
  const cfg *c = svc_cfg(s);
  queue_config qc = {
      .redis = a->redis,
      .store = a->store,
      .key = &a->key,
      .send = {.timeout_ms = cfg_duration_ms(c, "NOTIFICATIONS_SEND_TIMEOUT"),
               .max_response = (size_t)cfg_int(c, "NOTIFICATIONS_RESPONSE_MAX"),
               .allow_private =
                   cfg_bool(c, "NOTIFICATIONS_ALLOW_PRIVATE_TARGETS")},
      .mail = a->mail.url[0] != '\0' ? &a->mail : NULL,
      .sms = a->sms.url[0] != '\0' ? &a->sms : NULL,
      .workers = (int)cfg_int(c, "NOTIFICATIONS_WORKERS"),
      .max_attempts = (int)cfg_int(c, "NOTIFICATIONS_MAX_ATTEMPTS"),
      .base_delay_ms = cfg_duration_ms(c, "NOTIFICATIONS_RETRY_BASE"),
      .claim_timeout_ms = cfg_duration_ms(c, "NOTIFICATIONS_CLAIM_TIMEOUT"),
      .poll_ms = cfg_duration_ms(c, "NOTIFICATIONS_POLL"),
      .sweep_interval_ms = cfg_duration_ms(c, "NOTIFICATIONS_SWEEP_INTERVAL"),
      .sweep_grace_ms = cfg_duration_ms(c, "NOTIFICATIONS_SWEEP_GRACE"),
  };
  int rc = queue_start(&qc, &a->queue);
  if (rc != ERR_OK) log_error("cannot start the queue", "error", err_str(rc));
  return rc;
}

static int open_fanout(svc *s, app *a) {
  const cfg *c = svc_cfg(s);
  int rc = svc_rpc_client_new(s, cfg_str(c, "ORDERS_ADDR"), NULL, &a->orders);
  fanout_config fc = {.address = cfg_str(c, "ORDERS_EVENTS"),
                      .replay = a->orders,
                      .store = a->store,
                      .queue = a->queue,
                      .auth = a->auth,
                      .events = eventpub_outbox(a->events),
                      .settings = a->settings,
                      .email = a->mail.url[0] != '\0',
                      .sms = a->sms.url[0] != '\0'};
  if (rc == ERR_OK) rc = fanout_start(&fc, &a->fanout);
  if (rc != ERR_OK)
    log_error("cannot subscribe to ORDERS_EVENTS", "error", err_str(rc));
  return rc;
}

static int open_events(svc *s, app *a) {
  const cfg *c = svc_cfg(s);
  eventpub_options eo = {
      .schema = STORE_SCHEMA,
      .source = "notifications",
      .bus_url = cfg_str(c, "BUS_LISTEN"),
      .poll_ms = cfg_duration_ms(c, "NOTIFICATIONS_OUTBOX_POLL"),
      .keep_ms = cfg_duration_ms(c, "NOTIFICATIONS_OUTBOX_KEEP"),
  };
  return eventpub_open(svc_db(s), &eo, &a->events);
}

static int open_campaigns(svc *s, app *a) {
  const cfg *c = svc_cfg(s);
  campaign_config cc = {
      .store = a->store,
      .queue = a->queue,
      .auth = a->auth,
      .events = eventpub_outbox(a->events),
      .email = a->mail.url[0] != '\0',
      .sms = a->sms.url[0] != '\0',
      .batch = (size_t)cfg_int(c, "NOTIFICATIONS_CAMPAIGN_BATCH"),
      .interval_ms = cfg_duration_ms(c, "NOTIFICATIONS_CAMPAIGN_INTERVAL"),
      .poll_ms = cfg_duration_ms(c, "NOTIFICATIONS_CAMPAIGN_POLL")};
  return campaign_runner_start(&cc, &a->campaigns);
}

static int open_handlers(svc *s, app *a) {
  const cfg *c = svc_cfg(s);
  notifications_config hc = {
      .store = a->store,
      .verifier = a->verifier,
      .queue = a->queue,
      .key = &a->key,
      .allow_private = cfg_bool(c, "NOTIFICATIONS_ALLOW_PRIVATE_TARGETS"),
      .max_endpoints = (size_t)cfg_int(c, "NOTIFICATIONS_MAX_ENDPOINTS"),
      .secret_grace_ms = cfg_duration_ms(c, "NOTIFICATIONS_SECRET_GRACE"),
      .settings = a->settings};
  int rc = notifications_new(&hc, &a->handlers);
  return rc == ERR_OK ? notifications_register(a->handlers, svc_rpc(s)) : rc;
}

static int notifications_init(svc *s, void *arg) {
  app *a = arg;
  const cfg *c = svc_cfg(s);
  if (seal_key_parse(cfg_str(c, "NOTIFICATIONS_SECRET_KEY"), &a->key) !=
      ERR_OK) {
    log_error("NOTIFICATIONS_SECRET_KEY must be base64 of 32 bytes");
    return ERR_INVAL;
  }
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return ERR_INTERNAL;
  a->mail = (mailer_config){
      .url = cfg_str(c, "SMTP_URL") ? cfg_str(c, "SMTP_URL") : "",
      .from = cfg_str(c, "NOTIFICATIONS_MAIL_FROM"),
      .timeout_ms = cfg_duration_ms(c, "NOTIFICATIONS_SEND_TIMEOUT")};
  a->sms = (sms_config){
      .url = cfg_str(c, "SMS_URL") ? cfg_str(c, "SMS_URL") : "",
      .account = cfg_str(c, "SMS_ACCOUNT") ? cfg_str(c, "SMS_ACCOUNT") : "",
      .token = cfg_str(c, "SMS_TOKEN") ? cfg_str(c, "SMS_TOKEN") : "",
      .from = cfg_str(c, "SMS_FROM") ? cfg_str(c, "SMS_FROM") : "",
      .timeout_ms = cfg_duration_ms(c, "NOTIFICATIONS_SEND_TIMEOUT")};
  if (a->sms.url[0] != '\0' && !sms_number_ok(a->sms.from)) {
    log_error("SMS_FROM is not an E.164 number");
    return ERR_INVAL;
  }
  if (a->mail.url[0] != '\0' && !mailer_address_ok(a->mail.from)) {
    log_error("NOTIFICATIONS_MAIL_FROM is not an e-mail address");
    return ERR_INVAL;
  }
  int rc = store_new(svc_db(s), cfg_str(c, "NOTIFICATIONS_DB_ROLE"), &a->store);
  if (rc != ERR_OK) {
    log_error("bad NOTIFICATIONS_DB_ROLE");
    return rc;
  }
  /* Reads block 500 ms (queue.c); every worker holds a connection. */
  cache_config cc = {.max_conns = (int)cfg_int(c, "NOTIFICATIONS_WORKERS") + 8,
                     .command_timeout_ms = 3000};
  rc = svc_redis_open(s, &cc, "REDIS_URL not set", &a->redis);
  if (rc == ERR_OK && a->redis == NULL) rc = ERR_INVAL;
  if (rc == ERR_OK) rc = svc_verifier_open(s, a->redis, &a->auth, &a->verifier);
  if (rc == ERR_OK)
    rc = settings_cache_new(
        cfg_duration_ms(c, "NOTIFICATIONS_SETTINGS_CACHE_TTL"), &a->settings);
  if (rc == ERR_OK) rc = open_queue(s, a);
  if (rc == ERR_OK) rc = open_events(s, a);
  if (rc == ERR_OK) rc = open_fanout(s, a);
  if (rc == ERR_OK) rc = open_handlers(s, a);
  if (rc == ERR_OK) rc = eventpub_start(a->events, svc_rpc(s));
  if (rc == ERR_OK) rc = open_campaigns(s, a);
  if (rc == ERR_OK) {
    idem_expiry_options eo = {.store = a->store,
                              .table = "notifications.idempotency",
                              .setting = "app.notifications_sweep",
                              .interval_ms = IDEM_EXPIRY_INTERVAL_MS};
    rc = idem_expiry_start(&eo, &a->idem_expiry);
  }
  if (rc == ERR_OK) {
    retention_config rtc = {
        .store = a->store,
        .keep_ms = cfg_duration_ms(c, "NOTIFICATIONS_DELIVERIES_RETENTION"),
        .inbox_keep_ms =
            cfg_duration_ms(c, "NOTIFICATIONS_INBOX_READ_RETENTION"),
        .interval_ms = cfg_duration_ms(c, "NOTIFICATIONS_RETENTION_SWEEP")};
    rc = retention_new(&rtc, &a->retention);
  }
  return rc;
}

/* After the RPC server drained. Redis, the auth client and the verifier
 * are the runtime's. */
static void notifications_fini(svc *s, void *arg) {
  (void)s;
  app *a = arg;
  retention_free(a->retention);
  idem_expiry_stop(a->idem_expiry);
  fanout_free(a->fanout);
  campaign_runner_free(a->campaigns);
  eventpub_free(a->events);
  rpc_client_free(a->orders);
  queue_free(a->queue);
  notifications_free(a->handlers);
  settings_cache_free(a->settings);
  store_free(a->store);
  sodium_memzero(&a->key, sizeof a->key);
  curl_global_cleanup();
}

int main(int argc, char **argv) {
  static app a;
  svc_spec spec = {
      .access = &notifications_v1_access,
      .name = "notifications",
      .config = config,
      .nconfig = sizeof config / sizeof config[0],
      .uses_db = true,
      .schema = STORE_SCHEMA,
      .init = notifications_init,
      .fini = notifications_fini,
      .argc = argc,
      .argv = argv,
      .arg = &a,
  };
  return svc_main(&spec);
}
