/*
 * presence.h - who is subscribed to a channel, across every replica, in
 * Redis.
 *
 *   realtime:pres:<channel>   hash client_id -> "<expires_ms> <user_id>"
 *
 * A replica writes its own clients of a channel (presence_join: on
 * subscribe, and again every ttl/3 for all of them as a heartbeat) and
 * removes them when they leave (presence_leave). Each entry carries its
 * own expiry time: a replica that dies (kill -9) stops refreshing and its
 * clients vanish from every answer ttl after the last heartbeat, without
 * anyone cleaning up for it. presence_list drops expired entries in the
 * same script that reads the hash. The key itself expires ttl after the
 * last write, so a channel nobody watches leaves nothing behind. Times are
 * the replicas' wall clocks (skew of a few ms is harmless next to ttl).
 *
 * Each call is one Lua script. Thread-safe as libs/cache.
 */
#ifndef REALTIME_PRESENCE_H
#define REALTIME_PRESENCE_H

#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "libs/cache/cache.h"

#define PRESENCE_MAX 1000   /* clients in one answer */
#define PRESENCE_ID_MAX 128 /* bytes of a client or user id */
#define PRESENCE_BATCH 256  /* clients per heartbeat script */

typedef struct presence presence;

/* redis is borrowed and must outlive *out; ttl_ms > 0. Errors: ERR_INVAL,
 * ERR_NOMEM. */
int presence_new(cache *redis, int64_t ttl_ms, presence **out) WARN_UNUSED;
void presence_free(presence *p); /* NULL-safe */

/* Marks clients[i] (user users[i]) present in channel for ttl from now;
 * n <= PRESENCE_BATCH. Errors: ERR_INVAL (names too long, n too big),
 * libs/cache's. */
int presence_join(presence *p, const char *channel, const char *const *clients,
                  const char *const *users, size_t n) WARN_UNUSED;

/* Removes client_id from channel. Errors: as presence_join. */
int presence_leave(presence *p, const char *channel,
                   const char *client_id) WARN_UNUSED;

typedef struct presence_client {
  char client_id[PRESENCE_ID_MAX + 1];
  char user_id[PRESENCE_ID_MAX + 1];
} presence_client;

/* The live clients of channel (at most PRESENCE_MAX; the order is
 * Redis's). *out (n entries, possibly NULL when n is 0) is the caller's:
 * free(). Errors: ERR_INVAL, ERR_PROTO (an unexpected reply), ERR_NOMEM,
 * libs/cache's. */
int presence_list(presence *p, const char *channel, presence_client **out,
                  size_t *n) WARN_UNUSED;

#endif
