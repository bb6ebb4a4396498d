/*
 * validate.h - the tenants service's own input rules: tenant names and
 * ISO 4217 currency codes (slugs and hosts are in libs/tenantdir's
 * tenantname.h, shared with the gateway).
 *
 * Each check returns ERR_OK or ERR_INVAL with a static, user-facing reason
 * in *why, ready to become a field violation.
 */
#ifndef TENANTS_VALIDATE_H
#define TENANTS_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

#include "libs/base/err.h"

#define VALIDATE_NAME_MAX_CHARS 100

/* A tenant name: libs/base's utf8_check_text with 1..100 characters,
 * single line; its reasons, but "must be at most 100 characters" for a
 * name that is too long. */
int validate_name(const char *name, const char **why) WARN_UNUSED;

/* A currency: three ASCII letters naming an active ISO 4217 currency
 * (funds, precious metals and test codes such as XAU, XTS, XXX are
 * refused). Lower case is accepted: on ERR_OK out (4 bytes) holds the
 * upper-case code. */
int validate_currency(const char *code, char out[4],
                      const char **why) WARN_UNUSED;

/* True when code (exactly three upper-case letters) is on the list. */
bool validate_currency_known(const char *code);

/* The list, sorted; *n gets its length (for documentation and tests). */
const char *const *validate_currencies(size_t *n);

#endif
