/*
 * recipients.h - who a notification goes to, from auth: the users of a
 * tenant by role, or one user, with their e-mail addresses and phone
 * numbers, through
 * auth.v1.Auth/ListRecipients (callable by this service only, as a
 * service: no user token; proto/auth/v1/auth_rpc.proto). Disabled users
 * are left out by auth.
 */
#ifndef NOTIFICATIONS_RECIPIENTS_H
#define NOTIFICATIONS_RECIPIENTS_H

#include <stddef.h>

#include "libs/base/err.h"
#include "libs/base/uuid.h"
#include "libs/rpc/rpc.h"

#define RECIPIENT_EMAIL_MAX 320
#define RECIPIENT_NAME_MAX 400
#define RECIPIENT_PHONE_MAX 16 /* E.164, normalised by auth */

typedef struct recipient {
  char id[UUID_STR_LEN + 1];
  char email[RECIPIENT_EMAIL_MAX + 1];
  char name[RECIPIENT_NAME_MAX + 1];
  char phone[RECIPIENT_PHONE_MAX + 1]; /* "" when none; never logged */
  char role[16];
} recipient;

typedef struct recipients {
  recipient *v;
  size_t n;
} recipients;

void recipients_free(recipients *l); /* NULL-safe; empties l */

/* The users of tenant tid whose role is one of roles[0..nroles), at most
 * max (pages of auth's answers), into *out. Errors: ERR_UNAVAILABLE (auth
 * did not answer: the caller retries later), ERR_PROTO, ERR_NOMEM. */
int recipients_by_role(rpc_client *auth, const char *tid,
                       const char *const *roles, size_t nroles, size_t max,
                       recipients *out) WARN_UNUSED;

/* One page: the users of tid with one of roles, after cursor ("" from the
 * first), at most limit (<= 1000); *next the cursor of the next page, ""
 * at the end. Errors as recipients_by_role. */
int recipients_page(rpc_client *auth, const char *tid, const char *const *roles,
                    size_t nroles, const char *cursor, size_t limit,
                    recipients *out, char next[UUID_STR_LEN + 1]) WARN_UNUSED;

/* User uid of tid (none when gone or disabled: out->n == 0). Errors as
 * recipients_by_role. */
int recipients_user(rpc_client *auth, const char *tid, const char *uid,
                    recipients *out) WARN_UNUSED;

#endif
