/*
 * attempt.c - one attempt (see attempt.h). The secrets are opened only
 * for signing and wiped right after; nothing about them is logged.
 */
#include "services/notifications/attempt.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "libs/base/timeutil.h"
#include "libs/obs/log.h"
#include "libs/obs/metrics.h"
#include "services/notifications/queue.h"

static metrics_child *g_success, *g_failure, *g_dead, *g_latency;

void attempt_metrics_init(void) {
  static const char *const kOutcome[] = {"outcome"};
  static const double kBuckets[] = {0.05, 0.1, 0.25, 0.5, 1,   2.5,
                                    5,    10,  30,   60,  300, 1800};
  metrics_family *att =
      metrics_counter("notifications_attempts_total",
                      "webhook attempts by outcome", 1, kOutcome);
  g_success = metrics_child_get(att, (const char *const[]){"success"});
  g_failure = metrics_child_get(att, (const char *const[]){"failure"});
  g_dead = metrics_child_get(
      metrics_counter("notifications_dead_letters_total",
                      "deliveries dead after their last attempt", 0, NULL),
      NULL);
  g_latency = metrics_child_get(
      metrics_histogram("notifications_delivery_latency_seconds",
                        "from the delivery's creation to its 2xx", 0, NULL,
                        kBuckets, sizeof kBuckets / sizeof kBuckets[0]),
      NULL);
}

/* "v1,<sig>[ v1,<prev sig>]" into out. */
static int sign(const attempt_config *c, const store_attempt *a, int64_t ts,
                char *out, size_t cap) {
  unsigned char raw[SEAL_SECRET_BYTES];
  char s1[SEAL_SIGNATURE_MAX + 1], s2[SEAL_SIGNATURE_MAX + 1] = "";
  size_t len = strlen(a->body);
  int rc = seal_open(c->key, &a->key, raw);
  if (rc == ERR_OK) rc = seal_sign(raw, a->event_id, ts, a->body, len, s1);
  if (rc == ERR_OK && a->has_prev && seal_open(c->key, &a->prev, raw) == ERR_OK)
    rc = seal_sign(raw, a->event_id, ts, a->body, len, s2);
  sodium_memzero(raw, sizeof raw);
  if (rc == ERR_OK)
    snprintf(out, cap, "webhook-signature: %s%s%s", s1, s2[0] ? " " : "", s2);
  return rc;
}

static int send_signed(const attempt_config *c, const store_attempt *a,
                       sender_result *res) {
  int64_t ts = time_now_ms() / 1000;
  char id[UUID_STR_LEN + 32], stamp[48], sig[2 * SEAL_SIGNATURE_MAX + 32];
  snprintf(id, sizeof id, "webhook-id: %s", a->event_id);
  snprintf(stamp, sizeof stamp, "webhook-timestamp: %" PRId64, ts);
  if (sign(c, a, ts, sig, sizeof sig) != ERR_OK) {
    /* A secret sealed under another key: a configuration error. */
    log_error("cannot open an endpoint secret (NOTIFICATIONS_SECRET_KEY?)");
    memset(res, 0, sizeof *res);
    snprintf(res->error, sizeof res->error, "cannot sign");
    return ERR_OK;
  }
  const char *const hdrs[] = {id, stamp, sig, NULL};
  return sender_post(c->send, a->url, hdrs, a->body, strlen(a->body), res);
}

/* An e-mail delivery: its Message-ID is the delivery id. */
static int send_mail(const attempt_config *c, const store_job *job,
                     const store_attempt *a, sender_result *res) {
  memset(res, 0, sizeof *res);
  if (c->mail == NULL) {
    snprintf(res->error, sizeof res->error, "e-mail is not configured");
    return ERR_OK;
  }
  int rc = mailer_send(c->mail, a->address, a->subject, a->body, job->id, res);
  if (rc == ERR_INVAL) { /* an address we will not send to: recorded */
    snprintf(res->error, sizeof res->error, "invalid address");
    rc = ERR_OK;
  }
  return rc;
}

/* An SMS delivery to the phone number in address. */
static int send_sms(const attempt_config *c, const store_attempt *a,
                    sender_result *res) {
  memset(res, 0, sizeof *res);
  if (c->sms == NULL) {
    snprintf(res->error, sizeof res->error, "SMS is not configured");
    return ERR_OK;
  }
  int rc = sms_send(c->sms, a->address, a->body, res);
  if (rc == ERR_INVAL) {
    snprintf(res->error, sizeof res->error, "invalid phone number");
    rc = ERR_OK;
  }
  return rc;
}

/* The attempt's transport by the delivery's kind. */
static int send_one(const attempt_config *c, const store_job *job,
                    const store_attempt *a, sender_result *res) {
  switch (a->kind) {
  case STORE_KIND_EMAIL:
    return send_mail(c, job, a, res);
  case STORE_KIND_SMS:
    return send_sms(c, a, res);
  default:
    return send_signed(c, a, res);
  }
}

static void count(const store_attempt *a, bool ok, int status) {
  metrics_inc(ok ? g_success : g_failure);
  if (status == STORE_DEAD) metrics_inc(g_dead);
  if (ok)
    metrics_observe(g_latency, (double)(time_now_ms() - a->created_ms) / 1000);
}

int attempt_run(const attempt_config *c, const store_job *job,
                attempt_result *out) {
  out->ack = false;
  out->retry_in_ms = 0;
  store_attempt a;
  int claim = STORE_CLAIM_SPENT;
  int rc =
      store_claim(c->store, job, c->lease_ms, ATTEMPT_SLACK_MS, &claim, &a);
  if (rc != ERR_OK || claim != STORE_CLAIMED) {
    /* Spent: acknowledged. Leased: left pending in the group, so that
     * XAUTOCLAIM brings it back once idle - the lease holder may have
     * died mid-request. */
    out->ack = rc == ERR_OK && claim == STORE_CLAIM_SPENT;
    return rc;
  }
  rc = attempt_claimed(c, job, &a, out);
  store_attempt_clear(&a);
  return rc;
}

int attempt_claimed(const attempt_config *c, const store_job *job,
                    const store_attempt *a, attempt_result *out) {
  out->ack = false;
  out->retry_in_ms = 0;
  sender_result res;
  int64_t started_ms = time_now_ms(), t0 = time_mono_ms();
  int rc = send_one(c, job, a, &res);
  int n = a->attempts + 1;
  store_outcome o = {.ok = rc == ERR_OK && res.ok,
                     .status_code = res.status_code,
                     .error = rc == ERR_OK ? res.error : "out of memory",
                     .max_attempts = c->max_attempts,
                     .retry_in_ms = queue_backoff_ms(c->base_delay_ms, n),
                     .started_ms = started_ms,
                     .duration_ms = time_mono_ms() - t0};
  int status = 0;
  rc = store_record(c->store, job, &o, &status);
  if (rc == ERR_OK) {
    count(a, o.ok, status);
    log_info(a->kind == STORE_KIND_WEBHOOK ? "webhook attempt"
                                           : "e-mail attempt",
             "delivery", job->id, "outcome", o.ok ? "success" : "failure",
             "error", o.error);
    out->ack = true;
    if (status == STORE_PENDING) out->retry_in_ms = o.retry_in_ms;
  } else if (rc == ERR_NOTFOUND) { /* deleted meanwhile */
    out->ack = true;
    rc = ERR_OK;
  }
  return rc;
}
