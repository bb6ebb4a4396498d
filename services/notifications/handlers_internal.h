/*
 * handlers_internal.h - what handlers.c and its sibling handler files
 * (inbox_handlers.c) share. Not for other modules.
 */
#ifndef NOTIFICATIONS_HANDLERS_INTERNAL_H
#define NOTIFICATIONS_HANDLERS_INTERNAL_H

#include "libs/svc/handler.h"
#include "services/notifications/handlers.h"

#define LIST_DEFAULT 20
#define LIST_MAX 100

struct notifications {
  notifications_config c;
};

/* The in-app inbox's methods (inbox_handlers.c), for handler_register. */
extern const handler_method notifications_inbox_methods[];
extern const size_t notifications_ninbox_methods;

/* The campaigns' methods (campaign_handlers.c). */
extern const handler_method notifications_campaign_methods[];
extern const size_t notifications_ncampaign_methods;

#endif
