/*
 * validate.h - the auth service's input rules (HTTP-API.md, "Tenants and
 * identity"): e-mail shape and normalisation, password and name lengths
 * counted in characters, role names.
 *
 * Every function is pure and bounded: it never reads past the NUL, and it
 * refuses oversized input before any other work.
 */
#ifndef AUTH_VALIDATE_H
#define AUTH_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

#define VALIDATE_EMAIL_MAX 254    /* bytes */
#define VALIDATE_PASSWORD_MIN 8   /* characters */
#define VALIDATE_PASSWORD_MAX 128 /* characters */
#define VALIDATE_NAME_MAX 100     /* characters */

/* Normalises an e-mail address into out (capacity cap): surrounding
 * spaces removed, ASCII letters lower-cased. Returns true when the result
 * is a plausible address: at most VALIDATE_EMAIL_MAX bytes, printable
 * ASCII without spaces, exactly one '@', a local part of 1..64 bytes, a
 * domain with at least one dot, no empty labels. out holds the
 * normalised text even when it is refused (if it fits). */
bool validate_email(const char *in, char *out, size_t cap);

/* 8..128 characters of text (libs/base's utf8.h rule: valid UTF-8, no
 * control characters); spaces only is allowed. */
bool validate_password(const char *pw);

/* 1..100 characters of text (utf8.h), not only spaces. */
bool validate_name(const char *name);

/* "owner", "admin", "staff" or "customer" (libs/authn's role names). */
bool validate_role(const char *role);

#endif
