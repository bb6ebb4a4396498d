/*
 * janitor.h - the tenants service's periodic housekeeping thread.
 *
 * Every interval_ms (and once right at start):
 *   - reaps 'provisioning' tenants older than provisioning_max_age_ms
 *     (provision_reap: a CreateTenant interrupted by a crash);
 *   - writes tenant:status:<id> to Redis for every suspended tenant and
 *     every tenant changed within the last status_recent_ms, so that a
 *     Redis that lost its data, or a status write that failed or raced,
 *     is repaired.
 * Each task's failure is logged and retried next time; none stops the
 * others. (Old tenants.changed events are pruned by the outbox relay
 * itself, libs/outbox.)
 */
#ifndef TENANTS_JANITOR_H
#define TENANTS_JANITOR_H

#include <stdint.h>

#include "libs/base/err.h"
#include "libs/svc/periodic.h"
#include "services/tenants/provision.h"

typedef struct janitor_options {
  const provision_deps *deps;      /* borrowed; cache may be NULL */
  int64_t interval_ms;             /* > 0 */
  int64_t provisioning_max_age_ms; /* >= 0 */
  int64_t status_recent_ms;        /* >= 0 */
} janitor_options;

/* Runs every task once on the calling thread (tests, start-up). */
void janitor_run_once(const janitor_options *o);

/* Starts the rounds on a libs/svc periodic thread, the first at once. o
 * is borrowed: it must stay valid until periodic_stop(*out). Errors:
 * ERR_INVAL, periodic_start's. */
int janitor_start(janitor_options *o, periodic **out) WARN_UNUSED;

#endif
