/*
 * body.h - the JSON body of a webhook request (HTTP-API.md):
 *
 *   {"id": event id, "type", "tenant_id", "created_at", "data"}
 *
 * rendered once when the delivery is made and stored with it, so every
 * attempt signs and sends the same bytes. Pure: no I/O.
 */
#ifndef NOTIFICATIONS_BODY_H
#define NOTIFICATIONS_BODY_H

#include <stdint.h>

#include "libs/base/err.h"
#include "proto/rpc/v1/rpc.pb-c.h"

/* The body for a bus event. *out is malloc'd (the caller frees).
 * Errors: ERR_NOTFOUND (a type webhooks do not carry), ERR_PROTO (the
 * payload does not decode), ERR_NOMEM. */
int body_for_event(const Rpc__V1__Event *ev, char **out) WARN_UNUSED;

/* The body of a "webhook.test" event event_id of tenant tid for endpoint
 * webhook_id at now_ms: data {"webhook_id"}. Errors: ERR_NOMEM. */
int body_for_test(const char *event_id, const char *tid, const char *webhook_id,
                  int64_t now_ms, char **out) WARN_UNUSED;

#endif
