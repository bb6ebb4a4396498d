/*
 * email.h - the one normalisation of an e-mail address, shared by every
 * place that compares or keys on one: auth (storage, login lookup) and the
 * gateway (the login rate-limit bucket). Two rules that differ by a single
 * character let an attacker get a fresh bucket for the same account, so
 * there is only this one.
 *
 * The rule: spaces and tabs around the address are removed, the ASCII
 * letters A-Z are lower-cased, every other byte is kept as it is (no
 * Unicode case folding: auth refuses non-ASCII addresses anyway, and
 * folding them here would make two addresses auth tells apart share a
 * bucket). Whether the result is a plausible address is a separate
 * question (services/auth/validate.h).
 */
#ifndef BASE_EMAIL_H
#define BASE_EMAIL_H

#include <stddef.h>

#include "libs/base/err.h"

#define EMAIL_MAX 254 /* bytes after trimming (RFC 5321 path limit) */
/* Bytes of input looked at; longer input is refused without reading on,
 * so the work is bounded whatever a client sends. */
#define EMAIL_INPUT_MAX (EMAIL_MAX + 64)

/* Normalises in into out (capacity cap). Errors: ERR_INVAL (NULL
 * arguments, cap 0, or nothing left after trimming), ERR_TOOBIG (more
 * than EMAIL_MAX bytes after trimming, more than EMAIL_INPUT_MAX bytes of
 * input, or out too small). out is always NUL-terminated when cap > 0: the
 * normalised text on ERR_OK, "" on an error. */
int email_normalize(const char *in, char *out, size_t cap) WARN_UNUSED;

#endif
