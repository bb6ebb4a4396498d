/*
 * validate.h - the auth service's input rules (HTTP-API.md, "Tenants and
 * identity"): e-mail shape and normalisation, phone numbers (E.164), password
 * and name lengths counted in characters, role names.
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
#define VALIDATE_PHONE_IN_MAX 32  /* bytes of a phone number as typed */
#define VALIDATE_PHONE_MAX 16     /* bytes of one in E.164: '+', 8..15 digits */

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

/* THE one normalisation of phone numbers (everything that stores or sends
 * one gets it from here, through auth): spaces, '-', '.', '(' and ')' are
 * dropped, and what remains must be E.164 - a '+' then 8..15 digits, the
 * first not 0. "+49 (151) 123-456.78" and "+4915112345678" are the same
 * number. Anything else (no '+', "00" prefix, letters, more than
 * VALIDATE_PHONE_IN_MAX bytes as typed) is refused: false. out (cap >=
 * VALIDATE_PHONE_MAX + 1) gets the number; "" (and true) for "". */
bool validate_phone(const char *in, char *out, size_t cap);

/* "owner", "admin", "staff" or "customer" (libs/authn's role names). */
bool validate_role(const char *role);

#endif
