/*
 * handlers_internal.h - what handlers.c and its sibling handler files
 * (inbox_handlers.c) share. Not for other modules.
 */
#ifndef NOTIFICATIONS_HANDLERS_INTERNAL_H
#define NOTIFICATIONS_HANDLERS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "libs/base/uuid.h"
#include "libs/base/vlist.h"
#include "libs/idem/once.h"
#include "libs/svc/handler.h"
#include "services/notifications/handlers.h"

#define LIST_DEFAULT 20
#define LIST_MAX 100

/* Idempotency-Key of the creates (CreateWebhook, CreateCampaign):
 * libs/idem/once.h over this table (migrations/0006_idempotency.sql). */
#define NOTIFICATIONS_IDEM_TABLE "notifications.idempotency"

/* A page of a newest-first list (HTTP-API.md: limit 1..100, default 20,
 * cursor from next_cursor; libs/base/cursor.h): *limit and before (the id
 * to continue below, "" from the newest) from the request's limit and
 * cursor; each bad one added to v under its field name. */
void notifications_page_args(uint32_t limit_in, const char *cursor, vlist *v,
                             size_t *limit, char before[UUID_STR_LEN + 1]);

struct notifications {
  notifications_config c;
  /* Keys the seal of saved answers (a webhook's holds its secret):
   * derived from the sealing key, so the database alone cannot open
   * them. */
  uint8_t idem_secret[IDEM_SECRET_LEN];
  idem_once_spec idem;
};

/* The call's Idempotency-Key, scoped to the caller (tenant tid, user
 * sub), into k: idem_once_prepare with the service's spec. */
bool notifications_idem_prepare(notifications *h, const rpc_call *call,
                                const char *tid, const char *sub, idem_once *k,
                                rpc_reply *reply);

/* The in-app inbox's methods (inbox_handlers.c), for handler_register. */
extern const handler_method notifications_inbox_methods[];
extern const size_t notifications_ninbox_methods;

/* The campaigns' methods (campaign_handlers.c). */
extern const handler_method notifications_campaign_methods[];
extern const size_t notifications_ncampaign_methods;

/* The settings' methods (settings_handlers.c). */
extern const handler_method notifications_settings_methods[];
extern const size_t notifications_nsettings_methods;

#endif
