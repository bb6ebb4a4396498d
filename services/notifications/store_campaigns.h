/*
 * store_campaigns.h - campaigns' SQL (table campaigns, migrations/
 * 0004_campaigns.sql), with store.h's transaction rules. The batch that a
 * runner sends commits with the campaign's progress (cursor, targeted,
 * batches) and only if no other runner moved the campaign meanwhile, so
 * several replicas never send one batch twice; the messages themselves are
 * idempotent by (campaign id, recipient) besides.
 *
 * Statuses: draft -> scheduled (a time) -> sending -> sent; draft and
 * scheduled -> sending (SendCampaign); scheduled -> cancelled (delete).
 * delivered and failed are counted when read (inbox rows of the campaign
 * and its e-mails that succeeded; its e-mails that died).
 */
#ifndef NOTIFICATIONS_STORE_CAMPAIGNS_H
#define NOTIFICATIONS_STORE_CAMPAIGNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"
#include "services/notifications/store.h"
#include "services/notifications/store_inbox.h"

#define CAMPAIGN_TEXT_MAX 800  /* bytes: 200 characters of up to 4 */
#define CAMPAIGN_BODY_MAX 8000 /* bytes: 2000 characters of up to 4 */
#define CAMPAIGN_CHANNELS_MAX 3
#define CAMPAIGN_ROLES_MAX 4

typedef struct store_campaign {
  char id[UUID_STR_LEN + 1];
  char name[CAMPAIGN_TEXT_MAX + 1];
  char title[CAMPAIGN_TEXT_MAX + 1];
  char body[CAMPAIGN_BODY_MAX + 1];
  char channels[CAMPAIGN_CHANNELS_MAX][8];
  size_t nchannels;
  char roles[CAMPAIGN_ROLES_MAX][9];
  size_t nroles;
  char status[12];
  char scheduled_at[RFC3339_MS_LEN + 1]; /* "" when none */
  char sent_at[RFC3339_MS_LEN + 1];
  char cursor[UUID_STR_LEN + 1]; /* the last recipient done; "" none */
  int64_t targeted, delivered, failed;
  char created_at[RFC3339_MS_LEN + 1];
  char updated_at[RFC3339_MS_LEN + 1];
} store_campaign;

typedef struct store_campaigns {
  store_campaign *v;
  size_t n;
} store_campaigns;

void store_campaigns_free(store_campaigns *l); /* NULL-safe */

/* Create: every field; update: NULL / 0 = unchanged. scheduled_ms 0: no
 * time (create: a draft; update: unchanged). */
typedef struct store_campaign_in {
  const char *name, *title, *body;
  const char *const *channels;
  size_t nchannels;
  const char *const *roles;
  size_t nroles;
  int64_t scheduled_ms;
} store_campaign_in;

/* With a key (NULL: none), as store_create_endpoint's (store.h). */
int store_create_campaign(store *st, const char *tid,
                          const store_campaign_in *in, idem_once *key,
                          store_campaign *out) WARN_UNUSED;
/* Newest first: before before_id (NULL: from the newest), at most limit;
 * *more when others follow. */
int store_list_campaigns(store *st, const char *tid, const char *before_id,
                         size_t limit, store_campaigns *out,
                         bool *more) WARN_UNUSED;
int store_get_campaign(store *st, const char *tid, const char *id,
                       store_campaign *out) WARN_UNUSED;
/* ERR_CONFLICT when it is neither draft nor scheduled (nothing changed). */
int store_update_campaign(store *st, const char *tid, const char *id,
                          const store_campaign_in *in,
                          store_campaign *out) WARN_UNUSED;
/* Draft, sent, cancelled: removed; scheduled: cancelled; sending:
 * ERR_CONFLICT. */
int store_delete_campaign(store *st, const char *tid,
                          const char *id) WARN_UNUSED;
/* Draft or scheduled -> sending; else ERR_CONFLICT. */
int store_send_campaign(store *st, const char *tid, const char *id) WARN_UNUSED;

/* ----------------------------------------------------------- runner --- */

/* Up to max campaigns of any tenant to work on: sending, or scheduled and
 * due, and not leased by a live runner. */
int store_due_campaigns(store *st, size_t max, store_job **jobs,
                        size_t *njobs) WARN_UNUSED;

/* Leases campaign job for lease_ms (a scheduled one becomes sending) and
 * reads it into *out; *claimed false when another runner holds it or it
 * is not due or not sending. */
int store_claim_campaign(store *st, const store_job *job, int64_t lease_ms,
                         store_campaign *out, bool *claimed) WARN_UNUSED;

/* One batch of campaign c, in one transaction: its in-app notifications
 * and its e-mails, then the campaign's cursor moves to next_cursor,
 * targeted grows by targeted, batches by one, and done makes it sent;
 * otherwise no runner takes it again for pause_ms (the send rate).
 * Nothing is written (ERR_CONFLICT) when the campaign's cursor is no
 * longer c->cursor (another runner sent this batch). The e-mails' jobs
 * into *jobs (malloc'd, the caller frees). */
int store_campaign_batch(store *st, const char *tid, const store_campaign *c,
                         const store_inbox_new *inbox, size_t ninbox,
                         const store_message *msgs, size_t nmsgs,
                         const char *next_cursor, int64_t targeted, bool done,
                         int64_t pause_ms, store_job **jobs,
                         size_t *njobs) WARN_UNUSED;

#endif
