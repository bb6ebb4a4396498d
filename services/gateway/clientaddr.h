/*
 * clientaddr.h - who the client is: the TCP peer, or, when the peer is a
 * configured trusted proxy (GATEWAY_TRUSTED_PROXIES), the address the
 * proxies reported in X-Forwarded-For. Rate-limit keys and the access log
 * use it.
 *
 * Every proxy appends the address it received the request from, so the
 * header reads "<anything the client wrote>, <client>, <proxy 1>, ...".
 * Only the entries appended by trusted proxies can be believed; the
 * client controls everything to their left. Hence the walk goes from the
 * right, skipping trusted addresses, and stops at the first untrusted one:
 * that is the client. The rules, in order:
 *   - peer not trusted, or no X-Forwarded-For: the peer;
 *   - the right-most entry that is not a trusted address;
 *   - every entry trusted: the left-most one;
 *   - a malformed entry (not a bare IPv4 or IPv6 literal - "[v6]" is
 *     accepted -, empty, with a port or a zone, "unknown", over 45 bytes)
 *     ends the walk: the client is the last trusted hop before it (the
 *     entry to its right, or the peer). A client cannot earn a fresh
 *     bucket by writing garbage: garbage lands in its proxy's bucket;
 *   - more than CLIENTADDR_MAX_HOPS entries walked, or a header longer
 *     than CLIENTADDR_XFF_MAX (several X-Forwarded-For lines are joined
 *     in order, as RFC 9110 says): treated like a malformed entry.
 * Addresses are written canonically (inet_ntop); IPv4-mapped IPv6
 * addresses (::ffff:1.2.3.4) are IPv4, in the list and in the header.
 */
#ifndef GATEWAY_CLIENTADDR_H
#define GATEWAY_CLIENTADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "libs/base/err.h"

#define CLIENTADDR_MAX_NETS 64  /* CIDRs in the trusted list */
#define CLIENTADDR_MAX_HOPS 32  /* X-Forwarded-For entries walked */
#define CLIENTADDR_XFF_MAX 4096 /* bytes of X-Forwarded-For considered */
#define CLIENTADDR_STRLEN 46    /* INET6_ADDRSTRLEN */

typedef struct clientaddr_trust clientaddr_trust;

/* Parses a comma list of CIDRs ("10.0.0.0/8, 2001:db8::/32, 127.0.0.1";
 * a bare address is a /32 or /128; host bits are ignored). NULL or ""
 * gives an empty list (no proxy trusted). Errors: ERR_INVAL (a bad entry:
 * its text, cut, goes to bad[badcap] when bad is not NULL), ERR_TOOBIG
 * (over CLIENTADDR_MAX_NETS), ERR_NOMEM. *out is the caller's. */
int clientaddr_trust_new(const char *cidrs, clientaddr_trust **out, char *bad,
                         size_t badcap) WARN_UNUSED;
void clientaddr_trust_free(clientaddr_trust *t); /* NULL-safe */

/* Number of CIDRs in t (0 for NULL). */
size_t clientaddr_trust_count(const clientaddr_trust *t);

/* True when the address text (IPv4 or IPv6 literal) is in t. */
bool clientaddr_is_trusted(const clientaddr_trust *t, const char *addr);

/* Writes the client address (rules above) into out[cap] (cap >=
 * CLIENTADDR_STRLEN, else "-"). peer is the TCP peer (AF_INET or
 * AF_INET6; anything else gives "-"); xff the joined X-Forwarded-For
 * values or NULL; xff_truncated says the header was longer than
 * CLIENTADDR_XFF_MAX. t NULL trusts nobody. Returns true when the answer
 * came from X-Forwarded-For. */
bool clientaddr_pick(const clientaddr_trust *t, const struct sockaddr *peer,
                     const char *xff, bool xff_truncated, char *out,
                     size_t cap);

#endif
