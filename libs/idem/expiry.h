/*
 * expiry.h - deleting a service's expired Idempotency-Keys, periodically.
 *
 * Lookups already treat a row past expires_at as absent (idem.h); this
 * only keeps the table from growing. A round deletes in batches (one
 * short transaction each, libs/idem's idem_expire) until a batch comes
 * back short. It runs across tenants, so its transactions set the
 * service's cross-tenant setting (a name with a dot, from code: the
 * policy of the service's key table that lets them see every tenant's
 * rows, e.g. "app.sync_sweeper"), as the store's role. Every replica may
 * run one; the work is idempotent.
 */
#ifndef LIBS_IDEM_EXPIRY_H
#define LIBS_IDEM_EXPIRY_H

#include <stdint.h>

#include "libs/base/err.h"
#include "libs/db/db.h"

/* A round a minute: expired rows never pile up for long, and a round
 * that finds nothing is one indexed DELETE. */
#define IDEM_EXPIRY_INTERVAL_MS 60000

typedef struct idem_expiry idem_expiry;

typedef struct idem_expiry_options {
  const db_store *store; /* borrowed: must outlive the expiry */
  const char *table;     /* "sync.idempotency" (copied) */
  const char *setting;   /* "app.sync_sweeper" (copied) */
  int64_t interval_ms;   /* > 0 */
} idem_expiry_options;

/* One round now; *deleted (optional) counts the rows. libs/db's errors,
 * ERR_INVAL (a bad table name). */
int idem_expiry_run(const db_store *st, const char *table, const char *setting,
                    int64_t *deleted) WARN_UNUSED;

/* Starts the periodic rounds (the first at once; libs/svc periodic).
 * Errors: ERR_INVAL (a missing option), ERR_NOMEM, ERR_INTERNAL. *out is
 * the caller's: idem_expiry_stop. */
int idem_expiry_start(const idem_expiry_options *o,
                      idem_expiry **out) WARN_UNUSED;

/* Stops the rounds (waiting for one in progress) and frees e. NULL-safe. */
void idem_expiry_stop(idem_expiry *e);

#endif
