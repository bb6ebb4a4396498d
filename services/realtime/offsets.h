/*
 * offsets.h - each channel's publication offset and epoch, in Redis so
 * that every replica numbers a channel's publications alike.
 *
 *   realtime:chan:<channel>            hash {offset, epoch}
 *   realtime:ev:<channel>:<event id>   the offset given to that event
 *                                      (kept OFFSETS_EVENT_TTL_MS)
 *
 * offsets_next gives an event the channel's next offset, once: the
 * replicas that receive the same event (each receives every event, in the
 * source's order) get the offset the first one took, so offsets grow by
 * exactly one per publication whatever the number of replicas, and a
 * retried call cannot take two. The epoch is a random 16-hex-digit string
 * made when the hash is created; when the hash is lost (Redis flushed or
 * restarted empty) offsets start again at 1 under a new epoch, which is
 * how a client learns that what it remembers no longer holds. History
 * (the publications themselves) is a later slice; see README.md.
 *
 * Each call is one Lua script (atomic in Redis). Thread-safe as libs/cache.
 */
#ifndef REALTIME_OFFSETS_H
#define REALTIME_OFFSETS_H

#include <stdint.h>

#include "libs/base/err.h"
#include "libs/cache/cache.h"

#define OFFSETS_EPOCH_MAX 32
#define OFFSETS_EVENT_TTL_MS 600000

typedef struct offsets offsets;

/* redis is borrowed and must outlive *out. Errors: ERR_INVAL, ERR_NOMEM. */
int offsets_new(cache *redis, offsets **out) WARN_UNUSED;
void offsets_free(offsets *o); /* NULL-safe */

/* The offset of event_id in channel (the next one if it has none yet) and
 * the channel's epoch. Errors: libs/cache's (ERR_UNAVAILABLE, ERR_DB,
 * ...), ERR_PROTO for an unexpected reply. */
int offsets_next(offsets *o, const char *channel, const char *event_id,
                 int64_t *offset,
                 char epoch[OFFSETS_EPOCH_MAX + 1]) WARN_UNUSED;

/* The channel's last offset (0: none yet) and its epoch (made now if the
 * channel has none). Errors as offsets_next. */
int offsets_current(offsets *o, const char *channel, int64_t *offset,
                    char epoch[OFFSETS_EPOCH_MAX + 1]) WARN_UNUSED;

#endif
