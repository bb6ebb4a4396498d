/*
 * retention.c - the pruning round (see retention.h): batches of finished
 * deliveries past the retention until fewer than a batch are left, then
 * the same for read notifications when their retention is set. A
 * failed round is logged and tried again at the next interval.
 */
#include "services/notifications/retention.h"

#include <stdio.h>
#include <stdlib.h>

#include "libs/obs/log.h"
#include "libs/obs/metrics.h"
#include "libs/svc/periodic.h"

struct retention {
  retention_config c;
  metrics_child *deliveries, *inbox; /* rows pruned */
  periodic *round;
};

typedef int (*prune_fn)(store *st, int64_t older_ms, size_t batch,
                        int64_t *deleted);

/* Batches of fn until fewer than a batch are left; counted and logged
 * as what. */
static void prune_all(retention *r, prune_fn fn, int64_t keep_ms,
                      metrics_child *m, const char *what) {
  int64_t total = 0, n = 0;
  int rc;
  do {
    rc = fn(r->c.store, keep_ms, RETENTION_BATCH, &n);
    total += n;
  } while (rc == ERR_OK && n == RETENTION_BATCH);
  if (rc != ERR_OK)
    log_warn("pruning failed", "what", what, "error", err_str(rc));
  if (total > 0) {
    metrics_add(m, (double)total);
    char s[24];
    snprintf(s, sizeof s, "%lld", (long long)total);
    log_info("old rows pruned", "what", what, "rows", s);
  }
}

static void round_fn(void *arg) {
  retention *r = arg;
  prune_all(r, store_prune_deliveries, r->c.keep_ms, r->deliveries,
            "finished deliveries");
  if (r->c.inbox_keep_ms > 0)
    prune_all(r, store_prune_inbox, r->c.inbox_keep_ms, r->inbox,
              "read notifications");
}

int retention_new(const retention_config *cfg, retention **out) {
  *out = NULL;
  if (cfg == NULL || cfg->store == NULL || cfg->keep_ms <= 0 ||
      cfg->inbox_keep_ms < 0 || cfg->interval_ms <= 0)
    return ERR_INVAL;
  retention *r = calloc(1, sizeof *r);
  if (r == NULL) return ERR_NOMEM;
  r->c = *cfg;
  r->deliveries = metrics_child_get(
      metrics_counter("notifications_deliveries_pruned_total",
                      "finished deliveries deleted by the retention round", 0,
                      NULL),
      NULL);
  r->inbox = metrics_child_get(
      metrics_counter("notifications_inbox_pruned_total",
                      "read notifications deleted by the retention round", 0,
                      NULL),
      NULL);
  periodic_options o = {.name = "notifications-retention",
                        .interval_ms = cfg->interval_ms,
                        .fn = round_fn,
                        .arg = r};
  int rc = periodic_start(&o, &r->round);
  if (rc != ERR_OK) {
    free(r);
    return rc;
  }
  *out = r;
  return ERR_OK;
}

void retention_free(retention *r) {
  if (r == NULL) return;
  periodic_stop(r->round);
  free(r);
}
