/*
 * channel.h - realtime channel names and who may subscribe to them
 * (services/realtime/README.md, "WebSocket").
 *
 *   orders.<tenant_id>  kitchen.<tenant_id>  tables.<tenant_id>
 *   devices.<tenant_id>     staff and above of that tenant (a "device"
 *                           token counts as staff, as in the HTTP API)
 *   private.user.<user_id>  that user only
 *
 * Ids are canonical lower-case UUIDs, as tokens and events carry them.
 * The decision is a pure function of the name and the verified claims, so
 * it is unit-tested without sockets; a refusal says why in the contract's
 * error codes: INVALID_ARGUMENT (not a channel name at all), NOT_FOUND
 * (no such kind of channel), PERMISSION_DENIED (a real channel the token
 * may not read: another tenant's, a customer on a staff channel, another
 * user's private channel).
 */
#ifndef REALTIME_CHANNEL_H
#define REALTIME_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>

#define CHANNEL_MAX 64 /* bytes of the longest name, without the NUL */

enum channel_verdict {
  CHANNEL_OK = 0,
  CHANNEL_INVALID,   /* INVALID_ARGUMENT */
  CHANNEL_NOT_FOUND, /* NOT_FOUND */
  CHANNEL_DENIED,    /* PERMISSION_DENIED */
};

/* Who asks: a verified token's sub, tid and role (borrowed strings). */
typedef struct channel_who {
  const char *user_id, *tenant_id, *role;
} channel_who;

/* May who subscribe to name (NUL-terminated)? */
enum channel_verdict channel_authorize(const char *name,
                                       const channel_who *who);

/* The contract's code for a refusal ("PERMISSION_DENIED", ...); static. */
const char *channel_verdict_code(enum channel_verdict v);

/* Staff or above (a device counts as staff): who may read history. */
bool channel_is_staff(const channel_who *who);

/* The kinds of channel, for metrics labels. */
enum channel_kind {
  CHANNEL_KIND_ORDERS = 0,
  CHANNEL_KIND_KITCHEN,
  CHANNEL_KIND_TABLES,
  CHANNEL_KIND_DEVICES,
  CHANNEL_KIND_PRIVATE,
  CHANNEL_KINDS
};

/* The kind of a channel name that channel_authorize accepted (anything
 * else counts as CHANNEL_KIND_PRIVATE). */
enum channel_kind channel_kind_of(const char *name);

/* "orders", "kitchen", "tables", "devices", "private"; static. */
const char *channel_kind_name(enum channel_kind k);

/* out = "private.user.<user_id>" when user_id is a canonical UUID (else
 * false: no such channel). */
bool channel_private_user(const char *user_id, char out[CHANNEL_MAX + 1]);

/* True when topic (a bus topic, "orders.<tid>", or notifications'
 * "private.user.<user_id>") is also a channel that clients may subscribe
 * to, i.e. a publication should be made for it. */
bool channel_from_topic(const char *topic);

#endif
