/*
 * rt.h - realtime nudges for `syncd run`: one WebSocket to the realtime
 * service (services/realtime, `ws://host:port/v1/realtime`), authenticated
 * with the device token (first frame `auth`; a renewed token goes as
 * `refresh`), subscribed to orders.<tenant_id> and tables.<tenant_id>
 * (the tenant id comes from the `ready` answer). Every publication, and
 * every (re)subscription (it may follow a gap), raises a flag the loop
 * reads: a round then runs at once instead of at the next poll. The
 * notification carries nothing syncd applies: the pull stays the one way
 * data enters the replica, so a lost or duplicated notification costs at
 * most a poll interval or one extra pull.
 *
 * libwebsockets runs on a thread of its own (lws_service), so the loop
 * never waits on the network for it; the loop and the thread share only
 * the flag (an atomic) and the token (a mutex). Lost connections are
 * retried with full-jitter exponential backoff (clock.h).
 */
#ifndef CLIENTS_SYNCD_RT_H
#define CLIENTS_SYNCD_RT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rt rt;

/* Starts the client towards url ("ws://host:port[/path]", path default
 * /v1/realtime); it connects once a token is given. NULL (with the reason
 * on stderr) when url is malformed or libwebsockets fails. */
rt *rt_start(const char *url, int64_t backoff_base_ms, int64_t backoff_max_ms);

/* The current device token ("" when there is none); a changed token is
 * sent as `refresh` on the live connection, or used by the next connect. */
void rt_token(rt *r, const char *token);

/* True (once) when something was published since the last call. r NULL:
 * false. */
bool rt_poked(rt *r);

/* True while subscribed. */
bool rt_live(rt *r);

void rt_stop(rt *r);

/* "ws://host:port[/path]" → host, port, path (pure; 0 or -1). */
int rt_parse_url(const char *url, char *host, size_t hcap, int *port,
                 char *path, size_t pcap);

#endif
