/*
 * access.h - the operator secret: who may call Suspend and Resume.
 *
 * Members are identified by their access token and ranked by role with
 * libs/authn (authn_caller.h, in the handlers); this module checks
 * operator calls.
 *
 * Operators (Suspend, Resume) are not tenant members: there is no tenant
 * whose owner could suspend others. They present a shared secret,
 * TENANTS_OPERATOR_SECRET, as the envelope's token (the field every call
 * already carries). The comparison hashes both sides with BLAKE2b-256 and
 * compares the digests with crypto_verify_32, so it takes the same time
 * whatever the input and however long it is. Without a configured secret
 * operator calls are refused. The secret is kept only as its digest.
 */
#ifndef TENANTS_ACCESS_H
#define TENANTS_ACCESS_H

#include <stdbool.h>
#include <stddef.h>

#include "libs/base/err.h"

#define ACCESS_OPERATOR_SECRET_MIN 16 /* bytes */

typedef struct access_operator access_operator;

/* Keeps the digest of secret. secret NULL or "" gives an operator object
 * that refuses everything. Errors: ERR_INVAL (a secret shorter than
 * ACCESS_OPERATOR_SECRET_MIN), ERR_NOMEM, ERR_INTERNAL (libsodium). */
int access_operator_new(const char *secret, access_operator **out) WARN_UNUSED;
void access_operator_free(access_operator *op); /* NULL-safe */

/* True when op has a secret and token equals it. Constant time in token. */
bool access_operator_check(const access_operator *op, const char *token);

/* True when a secret is configured. */
bool access_operator_enabled(const access_operator *op);

#endif
