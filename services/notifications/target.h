/*
 * target.h - where a webhook may go: the URL rules and the address rules.
 *
 * A URL is http or https, at most 2048 bytes, with a host and without
 * user information (credentials in a URL end up in logs). An address is
 * "private" when it is not on the public Internet: loopback, RFC 1918,
 * carrier-grade NAT, link-local (cloud metadata lives at 169.254.169.254),
 * unique-local IPv6, multicast, reserved, unspecified, documentation, and
 * IPv4 embedded in IPv6 (mapped, NAT64) when the embedded address is.
 * Unless configuration allows them, a target whose name resolves to any
 * private address is refused - all of its addresses, so a name that
 * answers one public and one private address cannot win by luck.
 *
 * The resolution is done once per request and the request is pinned to
 * the address checked (sender.c: CURLOPT_RESOLVE, and the socket is
 * checked again when curl opens it), so a name that changes its answer
 * between the check and the connection (DNS rebinding) gains nothing.
 */
#ifndef NOTIFICATIONS_TARGET_H
#define NOTIFICATIONS_TARGET_H

#include <stdbool.h>
#include <sys/socket.h>

#include "libs/base/err.h"

#define TARGET_URL_MAX 2048
#define TARGET_HOST_MAX 255
#define TARGET_ADDR_MAX 46 /* INET6_ADDRSTRLEN */

typedef struct target {
  char host[TARGET_HOST_MAX + 1]; /* without IPv6 brackets */
  int port;
  char addr[TARGET_ADDR_MAX + 1]; /* the pinned address (target_resolve) */
  struct sockaddr_storage sa;     /* the same, for comparing */
  socklen_t salen;
} target;

/* Checks url's syntax and fills t's host and port. ERR_INVAL with *why
 * (a fixed text for the caller's answer) when it breaks a rule. */
int target_parse(const char *url, target *t, const char **why) WARN_UNUSED;

/* Resolves t's host and pins the first address. Unless allow_private, any
 * private address refuses the target: ERR_INVAL with *why. ERR_UNAVAILABLE
 * when the name does not resolve. */
int target_resolve(target *t, bool allow_private, const char **why) WARN_UNUSED;

/* True for an address that is not on the public Internet (see above). */
bool target_addr_private(const struct sockaddr *sa);

#endif
