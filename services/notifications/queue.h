/*
 * queue.h - the delivery queue: Redis Streams in front, PostgreSQL behind.
 *
 * A job is a delivery's address (tenant, id); PostgreSQL holds the
 * delivery and its state (store.h), Redis only moves the addresses.
 *
 *   ready    the stream "{notifications}:jobs", consumer group "workers":
 *            each worker reads with XREADGROUP and acknowledges (XACK,
 *            then XDEL) only after the attempt is recorded in PostgreSQL -
 *            at-least-once. A worker that dies leaves its jobs pending in
 *            the group; the others take them over with XAUTOCLAIM once
 *            they have been idle for claim_timeout_ms.
 *   delayed  the sorted set "{notifications}:delayed", scored by due time:
 *            a failed attempt's retry waits here (exponential backoff from
 *            base_delay_ms, doubling, with +-20% jitter) and is moved to
 *            the stream when due, atomically, by one Lua script.
 *   sweep    PostgreSQL is the truth: every sweep_interval_ms, pending
 *            deliveries overdue by sweep_grace_ms and not claimed (a job
 *            lost with Redis, or a crash between commit and XADD) are
 *            queued again.
 *
 * A worker reads up to 4 jobs at a time and claims them in one
 * transaction (store_claim_batch), then sends and records them one after
 * the other, acknowledging each after its record; the batch's lease
 * covers the sends before the last one.
 *
 * A job may therefore arrive twice; the claim in PostgreSQL (store_claim:
 * pending, due, not leased by another worker) makes one attempt of it,
 * and a delivery with a 2xx recorded is never claimed again. The lease is
 * the request timeout plus claim_timeout_ms, so a live worker's lease
 * outlasts its request. A job whose delivery is leased by another worker
 * is not acknowledged: that worker may have died mid-request, so the job
 * stays pending and XAUTOCLAIM brings it back until the lease is over.
 *
 * Metrics (libs/obs): notifications_queue_depth{queue=ready|delayed},
 * notifications_pending_deliveries, notifications_attempts_total{outcome=
 * success|failure}, notifications_dead_letters_total,
 * notifications_delivery_latency_seconds (event to 2xx).
 */
#ifndef NOTIFICATIONS_QUEUE_H
#define NOTIFICATIONS_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "libs/cache/cache.h"
#include "services/notifications/mailer.h"
#include "services/notifications/seal.h"
#include "services/notifications/sms.h"
#include "services/notifications/sender.h"
#include "services/notifications/store.h"

typedef struct queue_config {
  cache *redis;        /* borrowed */
  store *store;        /* borrowed */
  const seal_key *key; /* borrowed: opens the endpoints' secrets */
  sender_config send;
  const mailer_config *mail; /* borrowed; NULL: no e-mail */
  const sms_config *sms;     /* borrowed; NULL: no SMS */
  int workers;               /* sending threads, >= 1 */
  int max_attempts;          /* >= 1 */
  int64_t base_delay_ms;     /* the first retry's delay */
  int64_t claim_timeout_ms;  /* a job idle this long is taken over */
  int64_t poll_ms;           /* delayed -> ready mover period */
  int64_t sweep_interval_ms; /* PostgreSQL sweep period */
  int64_t sweep_grace_ms;    /* overdue this long before the sweep acts */
} queue_config;

typedef struct queue queue;

/* Creates the consumer group if needed and starts the workers and the
 * mover/sweeper. Errors: ERR_INVAL (bad config), ERR_NOMEM, ERR_INTERNAL
 * (threads), cache errors creating the group. *out: queue_free. */
int queue_start(const queue_config *c, queue **out) WARN_UNUSED;

/* Stops the threads (an attempt in progress finishes) and frees q.
 * NULL-safe. */
void queue_free(queue *q);

/* Queues jobs[0..n) now (XADD). On error some may be queued; the failure
 * is logged and the sweep queues the rest, so callers whose deliveries are
 * committed may ignore the result. Errors: cache errors. */
int queue_push(queue *q, const store_job *jobs, size_t n);

/* The delay before retry number `attempt` (1 = after the first failed
 * attempt): base * 2^(attempt-1), capped at an hour, times a factor in
 * [0.8, 1.2). Exposed for tests. */
int64_t queue_backoff_ms(int64_t base_ms, int attempt);

#endif
