/*
 * events.h - the tenants.changed events: their payload, and where they go.
 *
 * Every change others must hear about (created, updated, suspended,
 * resumed, domain_added, domain_removed) writes one tenants.v1.
 * TenantChanged event into tenants.outbox inside the change's own
 * transaction (store.c, through libs/outbox's outbox_append). The relay of
 * libs/outbox numbers the rows (source "tenants"), publishes them on the
 * bus and serves them again through "tenants.v1.Events/Replay"; main.c
 * sets it up with the names below.
 */
#ifndef TENANTS_EVENTS_H
#define TENANTS_EVENTS_H

#include <stddef.h>

#include "libs/base/err.h"
#include "services/tenants/store.h"

#define EVENTS_SCHEMA "tenants" /* the outbox table's schema */
#define EVENTS_SOURCE "tenants" /* bus source; Replay method */
#define EVENTS_TOPIC "tenants.changed"
#define EVENTS_TYPE_CHANGED "TenantChanged"

/* Builds the event of a change: a serialised TenantChanged {tenant_id,
 * slug, status, change, hosts} of type "TenantChanged". out->payload is
 * malloc'd: release it with events_clear. slug and status may be NULL
 * (""); hosts may be NULL when nhosts is 0. ERR_NOMEM. */
int events_changed(const char *change, const char *tenant_id, const char *slug,
                   const char *status, const char *const *hosts, size_t nhosts,
                   store_event *out) WARN_UNUSED;

/* Frees the payload events_changed made and zeroes it. NULL-safe. */
void events_clear(store_event *ev);

#endif
