/*
 * attempt.h - one attempt of one delivery: claim it in PostgreSQL, sign
 * the stored body with the endpoint's secret(s), POST it (sender.h),
 * record the outcome, count it (metrics). An e-mail delivery is sent over
 * SMTP instead (mailer.h), an SMS through the provider's API (sms.h),
 * with the same claim, record and retries.
 *
 * Standard Webhooks headers: webhook-id (the event id, the same on every
 * attempt, so receivers can deduplicate), webhook-timestamp (Unix seconds
 * of this attempt) and webhook-signature ("v1,<sig>", and a second
 * "v1,<sig>" with the previous secret while a rotation's grace runs).
 */
#ifndef NOTIFICATIONS_ATTEMPT_H
#define NOTIFICATIONS_ATTEMPT_H

#include <stdbool.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "services/notifications/mailer.h"
#include "services/notifications/seal.h"
#include "services/notifications/sms.h"
#include "services/notifications/sender.h"
#include "services/notifications/store.h"

typedef struct attempt_config {
  store *store;
  const seal_key *key;
  const sender_config *send;
  const mailer_config *mail; /* e-mail deliveries; NULL: none are made */
  const sms_config *sms;     /* SMS deliveries; NULL: none are made */
  int max_attempts;
  int64_t base_delay_ms;
  int64_t lease_ms;
} attempt_config;

/* What the queue does with the job afterwards. */
typedef struct attempt_result {
  bool ack;            /* the job is spent (recorded, or nothing to do) */
  int64_t retry_in_ms; /* > 0: queue a retry that far ahead */
} attempt_result;

/* Makes the attempt for job if it can be claimed. ERR_OK with out set:
 * ack false when another worker's lease runs (the job stays pending in
 * the group for XAUTOCLAIM); another error (PostgreSQL unreachable) also
 * leaves the job to be taken over later. */
int attempt_run(const attempt_config *c, const store_job *job,
                attempt_result *out) WARN_UNUSED;

/* The rest of attempt_run for a delivery already claimed (a by
 * store_claim or store_claim_batch; the caller clears it): send, record,
 * count. */
int attempt_claimed(const attempt_config *c, const store_job *job,
                    const store_attempt *a, attempt_result *out) WARN_UNUSED;

/* The claim's leeway: a job may run this much before its due time. */
#define ATTEMPT_SLACK_MS 1000

/* Registers the metric families (once, at start). */
void attempt_metrics_init(void);

#endif
