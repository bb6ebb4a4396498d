/*
 * retention.h - the sync service's periodic pruning of what it records:
 * mutation results older than the retention (migrations/0004_retention.sql
 * says why the default is 7 days). Every replica runs the round; each
 * batch deletes rows FOR UPDATE SKIP LOCKED, so replicas running it at
 * once share the work instead of repeating it.
 *
 * (Orders' change log, which pull reads, is pruned by the orders service
 * itself: services/orders/store_changes.c.)
 */
#ifndef SYNC_RETENTION_H
#define SYNC_RETENTION_H

#include <stdint.h>

#include "libs/base/err.h"
#include "services/sync/store.h"

#define RETENTION_BATCH 5000 /* rows per delete transaction */

typedef struct retention_config {
  store *store;              /* borrowed */
  int64_t mutations_keep_ms; /* > 0: a record older than this goes */
  int64_t interval_ms;       /* > 0: how often the round runs */
} retention_config;

typedef struct retention retention;

/* Starts the round (the first at once). Errors: ERR_INVAL, ERR_NOMEM,
 * ERR_INTERNAL. *out: retention_free. */
int retention_new(const retention_config *cfg, retention **out) WARN_UNUSED;

/* Stops the round (waiting for one in progress) and frees r. NULL-safe. */
void retention_free(retention *r);

#endif
