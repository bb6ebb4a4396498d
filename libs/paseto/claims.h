/*
 * claims.h - the JSON layer over paseto.h: access-token claims and the
 * {"kid": "k4.pid.…"} footer.
 *
 * The core signs opaque bytes; this module gives them the shape the
 * services use (docs/tokens.md, "Claims"): a flat JSON object with
 * the registered claims iss, sub, aud, jti, iat, nbf, exp (paseto-spec
 * docs/02-Implementation-Guide/04-Claims.md) plus tid (tenant) and role.
 * DateTime claims are RFC 3339 strings with an upper-case "T" and "Z";
 * they are written at whole seconds and "Z", as the spec recommends.
 *
 * JSON from a token is attacker-controlled until verified (the footer is
 * read before verification to choose a key), so before jansson sees it the
 * text is bounded in length, nesting depth and number of keys, as
 * 01-Payload-Processing.md asks ("validate the footer before decoding").
 *
 * Time checks work in Unix milliseconds with a leeway for clock skew and
 * name the failed check in *why (a static string).
 */
#ifndef PASETO_CLAIMS_H
#define PASETO_CLAIMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "libs/paseto/paseto.h"

#define PASETO_CLAIM_STR_MAX 128 /* bytes of iss, sub, aud, tid, role, jti */
#define PASETO_CLAIMS_MAX_KEYS 32
#define PASETO_CLAIMS_MAX_DEPTH 4 /* the object itself is depth 1 */
#define PASETO_KID_FOOTER_MAX 256 /* bytes of a footer read for its kid */
#define PASETO_KID_FOOTER_MAX_KEYS 8

/* Claims of an access token. Empty strings and has_* = false mean
 * "absent". Times are Unix milliseconds. */
typedef struct paseto_claims {
  char iss[PASETO_CLAIM_STR_MAX + 1];
  char sub[PASETO_CLAIM_STR_MAX + 1];
  char aud[PASETO_CLAIM_STR_MAX + 1]; /* service tokens (libs/svcid) */
  char tid[PASETO_CLAIM_STR_MAX + 1];
  char role[PASETO_CLAIM_STR_MAX + 1];
  char jti[PASETO_CLAIM_STR_MAX + 1];
  bool has_iat, has_nbf, has_exp;
  int64_t iat_ms, nbf_ms, exp_ms;
} paseto_claims;

/* Serialises c as compact JSON, keys in the order iss, sub, aud, tid, role,
 * jti, iat, nbf, exp, absent ones left out; times are truncated to whole
 * seconds ("2026-11-22T10:00:00Z"). *json (NUL-terminated, length in *len
 * if len is not NULL) is the caller's, to free(). Errors: ERR_INVAL
 * (string not UTF-8, time outside years 0000-9999), ERR_NOMEM. */
int paseto_claims_to_json(const paseto_claims *c, char **json,
                          size_t *len) WARN_UNUSED;

/* Parses a token payload into *c. The payload must be a JSON object of at
 * most PASETO_TOKEN_MAX bytes, PASETO_CLAIMS_MAX_DEPTH levels and
 * PASETO_CLAIMS_MAX_KEYS keys; the known claims, when present, must be
 * strings (at most PASETO_CLAIM_STR_MAX bytes, no NUL) and iat/nbf/exp
 * valid RFC 3339 date-times with "T" and "Z" upper case. Other claims are
 * ignored. Errors: ERR_TOOBIG, ERR_INVAL, with the reason in *why. */
int paseto_claims_from_json(const char *json, size_t len, paseto_claims *c,
                            const char **why) WARN_UNUSED;

/* Flags for paseto_claims_check_time. */
#define PASETO_CLAIMS_REQUIRE_EXP 1u /* a token without exp is refused */

/* Checks the time claims at now_ms, allowing leeway_ms (>= 0) of clock
 * skew: expired when now - leeway >= exp; not yet valid when
 * now + leeway < nbf; issued in the future when iat > now + leeway.
 * ERR_OK or ERR_INVAL with the failed check in *why ("token expired",
 * "token not yet valid", "token issued in the future", "token has no
 * expiry"). */
int paseto_claims_check_time(const paseto_claims *c, int64_t now_ms,
                             int64_t leeway_ms, unsigned flags,
                             const char **why) WARN_UNUSED;

/* Writes the footer {"kid":"<pid>"} and a NUL into out (capacity cap);
 * *len (may be NULL) gets its length. pid must pass paseto_pid_is_valid.
 * Errors: ERR_INVAL, ERR_TOOBIG (cap too small). */
int paseto_footer_kid_json(const char *pid, char *out, size_t cap,
                           size_t *len) WARN_UNUSED;

/* Reads "kid" from a footer: a flat JSON object of at most
 * PASETO_KID_FOOTER_MAX bytes and PASETO_KID_FOOTER_MAX_KEYS keys whose
 * "kid" is a string with the shape of a k4.pid. Copies it into kid.
 * Errors: ERR_TOOBIG, ERR_INVAL (not such an object, or a kid that is not
 * a k4.pid), ERR_NOTFOUND (no kid). */
int paseto_footer_kid(const char *footer, size_t len,
                      char kid[PASETO_PID_LEN + 1]) WARN_UNUSED;

/* Reads the kid from a token's footer WITHOUT verifying the token, to pick
 * the public key to verify it with; trust nothing else from the footer.
 * Errors as paseto_footer_unverified and paseto_footer_kid (ERR_NOTFOUND
 * for a token without footer); *why (may be NULL) gets the reason. */
int paseto_token_kid(const char *token, size_t token_len,
                     char kid[PASETO_PID_LEN + 1],
                     const char **why) WARN_UNUSED;

#endif
