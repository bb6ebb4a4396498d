/*
 * store_settings.h - a tenant's channel settings (table settings,
 * migrations/0005_settings_attempts.sql), with store.h's transaction
 * rules: which channels its notifications use - the ordering customer's
 * on status changes (order), owners' and admins' on StockLow (staff).
 *
 * THE DEFAULTS are written here and nowhere else: in_app and email on,
 * sms off. E-mail was on for every tenant before settings existed (so an
 * upgrade changes nothing), and SMS costs the tenant money per message,
 * so it waits for an admin to turn it on. A tenant without a row has the
 * defaults; the first update makes its row.
 */
#ifndef NOTIFICATIONS_STORE_SETTINGS_H
#define NOTIFICATIONS_STORE_SETTINGS_H

#include <stdbool.h>

#include "libs/base/err.h"
#include "libs/base/timeutil.h"
#include "services/notifications/store.h"

#define SETTINGS_DEFAULT_IN_APP true
#define SETTINGS_DEFAULT_EMAIL true
#define SETTINGS_DEFAULT_SMS false

typedef struct store_channels {
  bool in_app, email, sms;
} store_channels;

typedef struct store_settings {
  store_channels order; /* the ordering customer, on status changes */
  store_channels staff; /* owners and admins, on StockLow */
  char updated_at[RFC3339_MS_LEN + 1]; /* "" while the defaults stand */
} store_settings;

/* A change: NULL = unchanged (pointers borrowed). */
typedef struct store_channels_in {
  const bool *in_app, *email, *sms;
} store_channels_in;
typedef struct store_settings_in {
  store_channels_in order, staff;
} store_settings_in;

/* The defaults into *out. */
void store_settings_defaults(store_settings *out);

/* tid's settings (the defaults when it has none). */
int store_get_settings(store *st, const char *tid,
                       store_settings *out) WARN_UNUSED;

/* Applies in to tid's settings (made from the defaults first) and returns
 * them; concurrent changes of different channels both stand (the row is
 * locked and each column changed only when given). */
int store_update_settings(store *st, const char *tid,
                          const store_settings_in *in,
                          store_settings *out) WARN_UNUSED;

#endif
