/*
 * campaign.h - the campaign runner: a periodic job on every replica that
 * sends campaigns in batches (store_campaigns.h has the rules that make
 * it safe with several replicas).
 *
 * Each round: the campaigns due (sending, or scheduled and past their
 * time, and not paused or leased), each claimed with a lease; for each,
 * one page of recipients from auth (the audience's roles, after the
 * campaign's cursor, `batch` of them), an in-app notification for each
 * (pushed on their private.user channel through the outbox, like every
 * notification), an e-mail for each with an address and an SMS for each
 * with a phone, when this service can send them and the campaign asks for
 * them (its own channels: the tenant's settings are for event
 * notifications), all committed with the campaign's progress; e-mails and
 * SMS go through the delivery queue. Then the campaign rests for
 * `interval_ms`: the send rate is at most batch recipients per interval
 * per campaign, however many replicas run.
 */
#ifndef NOTIFICATIONS_CAMPAIGN_H
#define NOTIFICATIONS_CAMPAIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "libs/outbox/outbox.h"
#include "libs/rpc/rpc.h"
#include "services/notifications/queue.h"
#include "services/notifications/store.h"

typedef struct campaign_config {
  store *store;        /* borrowed */
  queue *queue;        /* borrowed: the e-mails */
  rpc_client *auth;    /* borrowed: the audience */
  outbox *events;      /* borrowed: kicked after in-app notifications */
  bool email;          /* SMTP_URL set */
  bool sms;            /* SMS_URL set */
  size_t batch;        /* recipients per batch, 1..1000 */
  int64_t interval_ms; /* between two batches of one campaign */
  int64_t poll_ms;     /* how often the runner looks for work */
} campaign_config;

typedef struct campaign_runner campaign_runner;

int campaign_runner_start(const campaign_config *c,
                          campaign_runner **out) WARN_UNUSED;
void campaign_runner_free(campaign_runner *r); /* NULL-safe; waits */

#endif
