/*
 * pwriter.h - presence writes that the WebSocket thread does not wait
 * for: the heartbeat of every local subscription and the leaves of
 * closed connections, queued and written to Redis (presence.h) by a
 * thread of this module.
 *
 * Why: the heartbeat touches every channel with a local subscriber (one
 * script per channel and PRESENCE_BATCH clients) and a burst of closes
 * one script per subscription; done on the WebSocket thread, that Redis
 * time would delay every delivery. Queued, the WebSocket thread pays a
 * copy of the ids. What is lost (a full queue, a Redis failure) is
 * harmless: a missed refresh is repeated by the next heartbeat before the
 * entry expires (ttl = 3 heartbeats), a missed leave expires by itself.
 * Subscribe and unsubscribe still write synchronously (presence.h), so a
 * client's own presence is visible by the time it is answered.
 *
 * Threads: every function is thread-safe.
 */
#ifndef REALTIME_PWRITER_H
#define REALTIME_PWRITER_H

#include <stdbool.h>
#include <stddef.h>

#include "libs/base/err.h"
#include "services/realtime/presence.h"

typedef struct pwriter pwriter;

/* Starts the writer over p (borrowed; outlives it), holding at most
 * max_jobs queued writes. Errors: ERR_INVAL, ERR_NOMEM, ERR_INTERNAL. */
int pwriter_start(presence *p, size_t max_jobs, pwriter **out) WARN_UNUSED;

/* Stops the thread after writing what is queued, for at most a second
 * (the rest expires in Redis), and frees w. NULL-safe. */
void pwriter_free(pwriter *w);

/* Queues a refresh of client (of user) in channel; strings copied. false:
 * dropped (queue full or names too long). Written after pwriter_flush. */
bool pwriter_refresh(pwriter *w, const char *channel, const char *client,
                     const char *user);

/* Queues the removal of client from channel and wakes the writer. */
bool pwriter_leave(pwriter *w, const char *channel, const char *client);

/* Wakes the writer for what was queued. */
void pwriter_flush(pwriter *w);

#endif
