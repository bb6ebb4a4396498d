/*
 * claims.c - access-token claims and the kid footer (see claims.h).
 *
 * jansson parses only text that json_within() has already bounded: the
 * scan counts nesting and object keys without building anything, so a
 * hostile footer (read before any signature check) costs at most one
 * linear pass over a few hundred bytes. Duplicate keys are rejected, so
 * that no two readers can disagree on which "exp" or "kid" counts.
 */
#include "libs/paseto/claims.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "libs/base/timeutil.h"

#define MS_PER_DAY (24LL * 3600 * 1000)

/* The string claims, in output order, with their field in paseto_claims. */
static const struct {
  const char *key;
  size_t offset;
  const char *bad; /* reason when present but unusable */
} STR_CLAIMS[] = {
    {"iss", offsetof(paseto_claims, iss),
     "claim iss is not a string of at most 128 bytes"},
    {"sub", offsetof(paseto_claims, sub),
     "claim sub is not a string of at most 128 bytes"},
    {"aud", offsetof(paseto_claims, aud),
     "claim aud is not a string of at most 128 bytes"},
    {"tid", offsetof(paseto_claims, tid),
     "claim tid is not a string of at most 128 bytes"},
    {"role", offsetof(paseto_claims, role),
     "claim role is not a string of at most 128 bytes"},
    {"jti", offsetof(paseto_claims, jti),
     "claim jti is not a string of at most 128 bytes"},
};
#define N_STR_CLAIMS (sizeof STR_CLAIMS / sizeof STR_CLAIMS[0])

static int fail(const char **why, const char *reason, int rc) {
  if (why) *why = reason;
  return rc;
}

static bool is_json_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* True when the JSON text nests at most max_depth arrays/objects and has
 * at most max_keys object keys (a string followed by ':'). Strings are
 * skipped with their escapes; an unterminated string or unbalanced
 * bracket is false. Syntax is left to jansson. */
static bool json_within(const char *s, size_t len, int max_depth,
                        int max_keys) {
  int depth = 0, keys = 0;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (c == '"') {
      for (i++; i < len && s[i] != '"'; i++)
        if (s[i] == '\\') i++;
      if (i >= len) return false;
      size_t j = i + 1;
      while (j < len && is_json_space(s[j])) j++;
      if (j < len && s[j] == ':' && ++keys > max_keys) return false;
    } else if (c == '{' || c == '[') {
      if (++depth > max_depth) return false;
    } else if (c == '}' || c == ']') {
      if (--depth < 0) return false;
    }
  }
  return depth == 0;
}

/* Loads a bounded JSON object; NULL when it is not one. */
static json_t *load_object(const char *s, size_t len) {
  json_error_t jerr;
  json_t *v = json_loadb(s, len, JSON_REJECT_DUPLICATES, &jerr);
  if (v && !json_is_object(v)) {
    json_decref(v);
    v = NULL;
  }
  return v;
}

/* Formats a claim time at whole seconds: "YYYY-MM-DDTHH:MM:SSZ". */
static int format_time(int64_t ms, char out[21]) {
  char full[RFC3339_MS_LEN + 1];
  int64_t sec_ms = ms - (((ms % 1000) + 1000) % 1000);
  if (time_format_rfc3339(sec_ms, full) != ERR_OK) return ERR_INVAL;
  memcpy(out, full, 19);
  out[19] = 'Z';
  out[20] = '\0';
  return ERR_OK;
}

int paseto_claims_to_json(const paseto_claims *c, char **json, size_t *len) {
  static const char *const time_keys[3] = {"iat", "nbf", "exp"};
  json_t *o;
  char *s;
  int rc = ERR_INVAL;

  if (!c || !json) return ERR_INVAL;
  *json = NULL;
  o = json_object();
  if (!o) return ERR_NOMEM;
  for (size_t i = 0; i < N_STR_CLAIMS; i++) {
    const char *v = (const char *)c + STR_CLAIMS[i].offset;
    /* json_string() refuses invalid UTF-8 with NULL; set_new then fails. */
    if (v[0] && json_object_set_new(o, STR_CLAIMS[i].key, json_string(v)) != 0)
      goto err;
  }
  const bool has[3] = {c->has_iat, c->has_nbf, c->has_exp};
  const int64_t at[3] = {c->iat_ms, c->nbf_ms, c->exp_ms};
  for (int i = 0; i < 3; i++) {
    char ts[21];
    if (!has[i]) continue;
    if (format_time(at[i], ts) != ERR_OK ||
        json_object_set_new(o, time_keys[i], json_string(ts)) != 0)
      goto err;
  }
  s = json_dumps(o, JSON_COMPACT);
  if (!s) {
    rc = ERR_NOMEM;
    goto err;
  }
  *json = s;
  if (len) *len = strlen(s);
  rc = ERR_OK;
err:
  json_decref(o);
  return rc;
}

/* Copies string claim key of o into dst (empty when absent). */
static bool get_str(json_t *o, const char *key, char *dst) {
  json_t *v = json_object_get(o, key);
  size_t n;
  dst[0] = '\0';
  if (!v) return true;
  if (!json_is_string(v)) return false;
  n = json_string_length(v);
  if (n > PASETO_CLAIM_STR_MAX || memchr(json_string_value(v), '\0', n))
    return false;
  memcpy(dst, json_string_value(v), n);
  dst[n] = '\0';
  return true;
}

/* Reads DateTime claim key of o; *has is false when absent. */
static bool get_time(json_t *o, const char *key, bool *has, int64_t *ms) {
  json_t *v = json_object_get(o, key);
  const char *s;
  size_t n;
  *has = false;
  *ms = 0;
  if (!v) return true;
  if (!json_is_string(v)) return false;
  s = json_string_value(v);
  n = json_string_length(v);
  /* 04-Claims.md: "T" and "Z" MUST be upper case. */
  if (memchr(s, 't', n) || memchr(s, 'z', n)) return false;
  if (time_parse_rfc3339(s, n, ms) != ERR_OK) return false;
  *has = true;
  return true;
}

int paseto_claims_from_json(const char *json, size_t len, paseto_claims *c,
                            const char **why) {
  json_t *o;
  int rc = ERR_INVAL;

  if (!json || !c) return fail(why, "invalid arguments", ERR_INVAL);
  memset(c, 0, sizeof *c);
  if (len > PASETO_TOKEN_MAX)
    return fail(why, "claims longer than the maximum", ERR_TOOBIG);
  if (!json_within(json, len, PASETO_CLAIMS_MAX_DEPTH, PASETO_CLAIMS_MAX_KEYS))
    return fail(why, "claims nest too deep or have too many keys", ERR_INVAL);
  o = load_object(json, len);
  if (!o) return fail(why, "claims are not a JSON object", ERR_INVAL);
  for (size_t i = 0; i < N_STR_CLAIMS; i++) {
    if (!get_str(o, STR_CLAIMS[i].key, (char *)c + STR_CLAIMS[i].offset)) {
      fail(why, STR_CLAIMS[i].bad, ERR_INVAL);
      goto err;
    }
  }
  if (!get_time(o, "iat", &c->has_iat, &c->iat_ms)) {
    fail(why, "claim iat is not an RFC 3339 date-time", ERR_INVAL);
    goto err;
  }
  if (!get_time(o, "nbf", &c->has_nbf, &c->nbf_ms)) {
    fail(why, "claim nbf is not an RFC 3339 date-time", ERR_INVAL);
    goto err;
  }
  if (!get_time(o, "exp", &c->has_exp, &c->exp_ms)) {
    fail(why, "claim exp is not an RFC 3339 date-time", ERR_INVAL);
    goto err;
  }
  rc = ERR_OK;
err:
  json_decref(o);
  if (rc != ERR_OK) memset(c, 0, sizeof *c);
  return rc;
}

int paseto_claims_check_time(const paseto_claims *c, int64_t now_ms,
                             int64_t leeway_ms, unsigned flags,
                             const char **why) {
  if (!c) return fail(why, "invalid arguments", ERR_INVAL);
  /* A day bounds the skew anyone should allow and keeps the sums below
   * far from overflow (claim times are limited to years 0000-9999). */
  if (leeway_ms < 0 || leeway_ms > MS_PER_DAY)
    return fail(why, "leeway out of range", ERR_INVAL);
  if (now_ms < -MS_PER_DAY * 1000000 || now_ms > MS_PER_DAY * 1000000)
    return fail(why, "clock out of range", ERR_INVAL);
  if (!c->has_exp && (flags & PASETO_CLAIMS_REQUIRE_EXP))
    return fail(why, "token has no expiry", ERR_INVAL);
  if (c->has_exp && now_ms - leeway_ms >= c->exp_ms)
    return fail(why, "token expired", ERR_INVAL);
  if (c->has_nbf && now_ms + leeway_ms < c->nbf_ms)
    return fail(why, "token not yet valid", ERR_INVAL);
  if (c->has_iat && c->iat_ms > now_ms + leeway_ms)
    return fail(why, "token issued in the future", ERR_INVAL);
  return ERR_OK;
}

int paseto_footer_kid_json(const char *pid, char *out, size_t cap,
                           size_t *len) {
  int n;
  if (!pid || !out || !paseto_pid_is_valid(pid, strlen(pid))) return ERR_INVAL;
  /* A valid pid is base64url: nothing in it needs JSON escaping. */
  n = snprintf(out, cap, "{\"kid\":\"%s\"}", pid);
  if (n < 0) return ERR_INTERNAL;
  if ((size_t)n >= cap) return ERR_TOOBIG;
  if (len) *len = (size_t)n;
  return ERR_OK;
}

int paseto_footer_kid(const char *footer, size_t len,
                      char kid[PASETO_PID_LEN + 1]) {
  json_t *o, *v;
  int rc = ERR_INVAL;
  if (!footer || !kid) return ERR_INVAL;
  if (len > PASETO_KID_FOOTER_MAX) return ERR_TOOBIG;
  /* Spec default for footers: one-dimensional objects only. */
  if (!json_within(footer, len, 1, PASETO_KID_FOOTER_MAX_KEYS))
    return ERR_INVAL;
  o = load_object(footer, len);
  if (!o) return ERR_INVAL;
  v = json_object_get(o, "kid");
  if (!v) {
    rc = ERR_NOTFOUND;
  } else if (json_is_string(v) &&
             paseto_pid_is_valid(json_string_value(v), json_string_length(v))) {
    memcpy(kid, json_string_value(v), PASETO_PID_LEN);
    kid[PASETO_PID_LEN] = '\0';
    rc = ERR_OK;
  }
  json_decref(o);
  return rc;
}

int paseto_token_kid(const char *token, size_t token_len,
                     char kid[PASETO_PID_LEN + 1], const char **why) {
  char footer[PASETO_KID_FOOTER_MAX + 1];
  size_t n = 0;
  int rc;
  if (!kid) return fail(why, "invalid arguments", ERR_INVAL);
  rc = paseto_footer_unverified(token, token_len, footer, sizeof footer, &n);
  if (rc == ERR_TOOBIG)
    return fail(why, "token or footer longer than the maximum", rc);
  if (rc != ERR_OK) return fail(why, "malformed token", rc);
  if (n == 0) return fail(why, "token has no footer", ERR_NOTFOUND);
  rc = paseto_footer_kid(footer, n, kid);
  if (rc == ERR_NOTFOUND) return fail(why, "footer has no kid", rc);
  if (rc != ERR_OK)
    return fail(why, "footer is not a {\"kid\":\"k4.pid...\"}", rc);
  return ERR_OK;
}
