/*
 * reqid.h - the X-Request-Id of every request: the client's when it sent
 * a usable one (1..128 printable ASCII characters), a new UUIDv7
 * otherwise. It is echoed on every response, put in every log line about
 * the request and forwarded in the RPC envelope.
 */
#ifndef GATEWAY_REQID_H
#define GATEWAY_REQID_H

#include <stdbool.h>
#include <stddef.h>

#define REQID_MAX 128

/* True when s (may be NULL) is 1..REQID_MAX bytes of printable ASCII. */
bool reqid_valid(const char *s);

/* Writes into out (REQID_MAX + 1 bytes) the client's id when
 * reqid_valid(client), else a new UUIDv7. */
void reqid_choose(const char *client, char out[REQID_MAX + 1]);

#endif
