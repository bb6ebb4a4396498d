/*
 * offsets.h - each channel's publication offset, epoch and history, in
 * Redis so that every replica numbers a channel's publications alike and
 * a client that reconnects to any replica can recover what it missed.
 *
 *   realtime:chan:<channel>            hash {offset, epoch}
 *   realtime:hist:<channel>            list of "<offset> <time_ms> <event>"
 *                                      (oldest first; at most history_size
 *                                      entries, none older than
 *                                      history_ttl_ms; the key expires
 *                                      history_ttl_ms after the last write)
 *   realtime:ev:<channel>:<event id>   "<offset> <epoch>" given to that
 *                                      event (kept OFFSETS_EVENT_TTL_MS)
 *
 * offsets_next gives an event the channel's next offset, once, and appends
 * the event's JSON to the history in the same Lua script: a publication
 * never has an offset without being in the history, nor the reverse. The
 * replicas that receive the same event (each receives every event, in the
 * source's order) get the offset the first one took, so offsets grow by
 * exactly one per publication whatever the number of replicas, and a
 * retried call cannot take two. The epoch is a random 16-hex-digit string
 * made when the hash is created; when the hash is lost (Redis flushed or
 * restarted empty, the key evicted) offsets start again at 1 under a new
 * epoch, and every script that makes an epoch deletes the history in the
 * same step, so the history of an old epoch is never served under a new
 * one. Because offsets are given and appended together, the history holds
 * consecutive offsets.
 *
 * Each call is one Lua script (atomic in Redis). Thread-safe as libs/cache.
 */
#ifndef REALTIME_OFFSETS_H
#define REALTIME_OFFSETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "libs/cache/cache.h"

#define OFFSETS_EPOCH_MAX 32
#define OFFSETS_EVENT_TTL_MS 600000

typedef struct offsets offsets;

typedef struct offsets_options {
  size_t history_size;    /* publications kept per channel, >= 1 */
  int64_t history_ttl_ms; /* how long each is kept, > 0 */
} offsets_options;

/* redis is borrowed and must outlive *out. Errors: ERR_INVAL, ERR_NOMEM. */
int offsets_new(cache *redis, const offsets_options *opt,
                offsets **out) WARN_UNUSED;
void offsets_free(offsets *o); /* NULL-safe */

/* The offset of event_id in channel (the next one if it has none yet, and
 * then event[0..len) - the publication's "event" object as JSON - is
 * appended to the history with it) and the channel's epoch. Errors:
 * libs/cache's (ERR_UNAVAILABLE, ERR_DB, ...), ERR_PROTO for an unexpected
 * reply, ERR_INVAL for names too long. */
int offsets_next(offsets *o, const char *channel, const char *event_id,
                 const char *event, size_t len, int64_t *offset,
                 char epoch[OFFSETS_EPOCH_MAX + 1]) WARN_UNUSED;

/* The channel's last offset (0: none yet) and its epoch (made now if the
 * channel has none). Errors as offsets_next. */
int offsets_current(offsets *o, const char *channel, int64_t *offset,
                    char epoch[OFFSETS_EPOCH_MAX + 1]) WARN_UNUSED;

/* One publication of a history read; event points into the read. */
typedef struct offsets_pub {
  int64_t offset;
  const char *event; /* the "event" object's JSON, not NUL-terminated */
  size_t len;
} offsets_pub;

typedef struct offsets_history {
  int64_t offset;                    /* the channel's last offset */
  char epoch[OFFSETS_EPOCH_MAX + 1]; /* and its epoch */
  bool complete;                     /* see offsets_read */
  size_t n;                          /* publications, oldest first */
  offsets_pub *pubs;
  cache_reply *reply; /* owns the events' bytes */
} offsets_history;

/* Reads channel's history, with its current offset and epoch, in one
 * script (so nothing is published between the two):
 *   - since >= 0, epoch given: the publications after since, when epoch is
 *     the channel's (none otherwise); complete is true when they are every
 *     publication since+1..offset (the history still holds them all and
 *     limit did not cut them) - recovery;
 *   - since < 0 (epoch ignored): the last publications; complete false.
 * limit 0: no limit; otherwise at most limit publications (the first ones
 * after since, or the last ones). Free with offsets_history_free, also
 * after an error. Errors as offsets_next. */
int offsets_read(offsets *o, const char *channel, int64_t since,
                 const char *epoch, size_t limit,
                 offsets_history *out) WARN_UNUSED;
void offsets_history_free(offsets_history *h);

/* Pure. Splits a history entry "<offset> <time_ms> <event>". Errors:
 * ERR_PROTO when it is not one. */
int offsets_entry_parse(const char *s, size_t len, int64_t *offset,
                        int64_t *time_ms, const char **event,
                        size_t *evlen) WARN_UNUSED;

/* Pure. Whether a publication at (offset, epoch) is new to a subscriber
 * that has seen everything up to (seen, seen_epoch): a later offset in the
 * same epoch, or any offset in another epoch (the client sees the epoch
 * change and reloads). */
bool offsets_is_new(int64_t seen, const char *seen_epoch, int64_t offset,
                    const char *epoch);

#endif
