/*
 * retention.h - the notifications service's periodic pruning of finished
 * deliveries: succeeded or dead ones whose last change is older than
 * NOTIFICATIONS_DELIVERIES_RETENTION (default 30 days) go, with their
 * attempts; pending ones stay whatever their age
 * (migrations/0007_retention.sql). Every replica runs the round every
 * NOTIFICATIONS_RETENTION_SWEEP; each batch deletes rows FOR UPDATE SKIP
 * LOCKED, so replicas running it at once share the work instead of
 * repeating it. Counted in notifications_deliveries_pruned_total.
 *
 * Inbox notifications are kept unless NOTIFICATIONS_INBOX_READ_RETENTION
 * is set (off by default; README.md, "Retention", says why): then read
 * ones go that long after they were read; unread ones never do
 * (notifications_inbox_pruned_total).
 */
#ifndef NOTIFICATIONS_RETENTION_H
#define NOTIFICATIONS_RETENTION_H

#include <stdint.h>

#include "libs/base/err.h"
#include "services/notifications/store.h"

#define RETENTION_BATCH 1000 /* deliveries per delete transaction */

typedef struct retention_config {
  store *store;          /* borrowed */
  int64_t keep_ms;       /* > 0: a finished delivery older than this goes */
  int64_t inbox_keep_ms; /* >= 0: a notification read longer ago goes;
                            0: none */
  int64_t interval_ms;   /* > 0: how often the round runs */
} retention_config;

typedef struct retention retention;

/* Starts the round (the first at once). Errors: ERR_INVAL, ERR_NOMEM,
 * ERR_INTERNAL. *out: retention_free. */
int retention_new(const retention_config *cfg, retention **out) WARN_UNUSED;

/* Stops the round (waiting for one in progress) and frees r. NULL-safe. */
void retention_free(retention *r);

#endif
