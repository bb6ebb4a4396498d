/*
 * janitor.h - the orders service's periodic chores, on one thread:
 * deleting expired idempotency keys (lookups already ignore them; this
 * keeps the table small), retrying menu-cache invalidations that
 * Redis missed (menucache.h) and, every prune_every_ms, pruning the
 * change log of finished entities older than changes_retention_ms
 * (store_changes.c). Outbox pruning is the relay's own (libs/outbox).
 * Every replica runs one; the work is idempotent (a tenant's change log
 * is pruned by one replica at a time).
 */
#ifndef ORDERS_JANITOR_H
#define ORDERS_JANITOR_H

#include <stdint.h>

#include "libs/base/err.h"
#include "libs/svc/periodic.h"
#include "services/orders/menucache.h"
#include "services/orders/store.h"

typedef struct janitor_options {
  store *st;                    /* required */
  menucache *menu;              /* may be NULL */
  int64_t interval_ms;          /* > 0 */
  int64_t changes_retention_ms; /* > 0; 0: the change log is not pruned */
  int64_t prune_every_ms;       /* at most this often (0: every round) */
  int64_t next_prune_ms;        /* the janitor's own (monotonic clock) */
} janitor_options;

/* One round now, on the calling thread (tests). */
void janitor_run_once(janitor_options *o);

/* Starts the rounds on a libs/svc periodic thread, the first at once. o
 * is borrowed: it must stay valid until periodic_stop(*out). Errors:
 * ERR_INVAL, periodic_start's. */
int janitor_start(janitor_options *o, periodic **out) WARN_UNUSED;

#endif
