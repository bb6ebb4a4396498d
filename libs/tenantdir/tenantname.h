/*
 * tenantname.h - the naming rules for tenants: slugs, host names, and how a
 * host name maps to a slug.
 *
 * One module holds the rules so that the tenants service (which enforces
 * them), the gateway (which reads Host and X-Tenant headers) and
 * libs/tenantdir (which caches by normalised key) agree byte for byte.
 *
 * Slugs (HTTP-API.md): 3 to 32 characters of a-z, 0-9 and '-', not starting
 * or ending with '-', and not one of the reserved names below. Reserved
 * names are labels that the platform itself uses or may use as host names
 * under a base domain ("api.example.com", "status.example.com"), names of
 * the services, and names that would let a tenant impersonate the operator
 * ("admin", "support", "billing", "security"); see tenantname.c for the
 * full, sorted list (tenantname_reserved() returns it for documentation
 * and tests).
 *
 * Host names are compared after normalisation: ASCII lower case, a
 * ":port" suffix removed, one trailing '.' removed. A normalised host is
 * 1..253 characters of dot-separated labels, each 1..63 characters of
 * a-z, 0-9 and '-' not starting or ending with '-' (RFC 1123). IP literals
 * in brackets are refused. Internationalised names must arrive in their
 * ASCII (punycode "xn--") form.
 *
 * "<slug>.<base domain>" hosts: a host whose first label is followed by
 * exactly one of the configured base domains (a comma-separated list such
 * as "localhost,example.com") names the tenant whose slug is that label.
 */
#ifndef TENANTDIR_TENANTNAME_H
#define TENANTDIR_TENANTNAME_H

#include <stdbool.h>
#include <stddef.h>

#include "libs/base/err.h"

#define TENANTNAME_SLUG_MIN 3
#define TENANTNAME_SLUG_MAX 32
#define TENANTNAME_HOST_MAX 253 /* normalised host, without the NUL */
#define TENANTNAME_LABEL_MAX 63
#define TENANTNAME_INPUT_MAX 1024 /* longest raw host/slug even looked at */

/* Checks a slug (NUL-terminated) against the syntax and the reserved list.
 * Returns ERR_OK, or ERR_INVAL with *why (if why is not NULL) set to a
 * static description for a field violation: "must be 3 to 32 characters",
 * "may contain only a-z, 0-9 and '-'", "must not start or end with '-'",
 * "is reserved". Upper case is refused (slugs are lower case); callers
 * that accept user input case-insensitively lower it first. */
int tenantname_check_slug(const char *slug, const char **why) WARN_UNUSED;

/* True when slug is on the reserved list (exact match). */
bool tenantname_is_reserved(const char *slug);

/* The reserved list, sorted; *n gets its length. Static. */
const char *const *tenantname_reserved(size_t *n);

/* Normalises a host name or Host header value (see above) into out
 * (capacity cap, at least TENANTNAME_HOST_MAX + 1), NUL-terminated.
 * Returns ERR_OK, ERR_INVAL for anything that is not a valid host name
 * (empty, too long, bad characters or labels, a bad or out-of-range port,
 * an IP literal in brackets), or ERR_TOOBIG when cap is too small. */
int tenantname_normalize_host(const char *host, char *out,
                              size_t cap) WARN_UNUSED;

/* When the normalised host is "<label>.<base>" for one of base_domains (a
 * comma-separated list of normalised names; spaces around commas ignored),
 * copies label into slug (capacity cap) and returns true. The label is
 * not checked against the slug rules. Returns false otherwise, also when
 * the label does not fit in cap or base_domains is NULL/empty. */
bool tenantname_slug_from_host(const char *host, const char *base_domains,
                               char *slug, size_t cap);

/* Checks that a normalised host may be registered as a tenant's custom
 * domain: at least two labels, a top-level label that is not all digits
 * (no IPv4 addresses), and neither one of base_domains nor under one of
 * them (those names belong to the platform). ERR_OK or ERR_INVAL with a
 * static reason in *why. */
int tenantname_check_custom_host(const char *host, const char *base_domains,
                                 const char **why) WARN_UNUSED;

#endif
