/*
 * janitor.h - the orders service's periodic chores, on one thread:
 * deleting expired idempotency keys (lookups already ignore them; this
 * keeps the table small) and retrying menu-cache invalidations that
 * Redis missed (menucache.h). Outbox pruning is the relay's own
 * (libs/outbox). Every replica runs one; the work is idempotent.
 */
#ifndef ORDERS_JANITOR_H
#define ORDERS_JANITOR_H

#include <stdint.h>

#include "libs/base/err.h"
#include "services/orders/menucache.h"
#include "services/orders/store.h"

typedef struct janitor_options {
  store *st;         /* required */
  menucache *menu;   /* may be NULL */
  int64_t interval_ms; /* > 0 */
} janitor_options;

typedef struct janitor janitor;

/* One round now, on the calling thread (tests). */
void janitor_run_once(const janitor_options *o);

/* Starts the thread (a first round at once). ERR_INVAL, ERR_NOMEM,
 * ERR_INTERNAL. */
int janitor_start(const janitor_options *o, janitor **out) WARN_UNUSED;

/* Stops and joins the thread; frees j. NULL-safe. */
void janitor_stop(janitor *j);

#endif
