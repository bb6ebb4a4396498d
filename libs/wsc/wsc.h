/*
 * wsc.h - the pure parts shared by our libwebsockets clients (syncd's
 * realtime nudges, clients/syncd/rt.c; the load bots' listeners,
 * tools/bots/listen.c): a `ws://` URL taken apart, and one text message
 * reassembled from the fragments libwebsockets hands the receive
 * callback, bounded at the realtime protocol's 64 KiB (a longer message is
 * dropped whole, never read truncated). No libwebsockets here: each
 * client keeps its own callback and connection logic, and this stays
 * unit-testable.
 */
#ifndef LIBS_WSC_WSC_H
#define LIBS_WSC_WSC_H

#include <stdbool.h>
#include <stddef.h>

#define WSC_MSG_MAX 65536

/* "ws://host:port[/path]" → host, port (1..65535), path (default_path
 * when the URL has none). 0, or -1 when malformed or a part does not fit.
 * Only ws:// (no TLS). */
int wsc_parse_url(const char *url, char *host, size_t hcap, int *port,
                  char *path, size_t pcap, const char *default_path);

typedef struct wsc_msg {
  char buf[WSC_MSG_MAX];
  size_t len;
  bool too_long, complete;
} wsc_msg;

/* Starts over (a new connection). */
void wsc_msg_reset(wsc_msg *m);

/* Adds one fragment (final: lws_is_final_fragment). True when it ended a
 * message that fits: its bytes are m->buf[0..m->len) until the next call.
 * A message over WSC_MSG_MAX is skipped (false at its end). */
bool wsc_msg_add(wsc_msg *m, const void *in, size_t len, bool final);

#endif
