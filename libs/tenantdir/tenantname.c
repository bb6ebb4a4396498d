/*
 * tenantname.c - slug and host-name rules (see tenantname.h).
 *
 * Everything here is pure string work on bounded inputs: no allocation, no
 * locale (ASCII case folding by hand, since tolower() depends on the
 * locale), and every scan stops at TENANTNAME_INPUT_MAX so that a hostile
 * Host header costs nothing.
 */
#include "libs/tenantdir/tenantname.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Sorted (strcmp order) for bsearch. Keep it sorted: the unit test checks.
 * Why each group is here:
 *  - host names the platform serves or may serve under a base domain
 *    (api, app, auth, cdn, static, status, ws, www, mail, ...);
 *  - the services' own names (gateway, orders, realtime, ...);
 *  - words that would let a tenant pose as the operator (admin, billing,
 *    security, support, help, ...);
 *  - DNS and mail infrastructure labels (mx, ns1, smtp, imap, ...);
 *  - generic environment names (dev, staging, test, demo, ...). */
static const char *const reserved[] = {
    "about",         "abuse",     "account",    "accounts",      "admin",
    "administrator", "api",       "app",        "apps",          "assets",
    "auth",          "billing",   "blog",       "cdn",           "console",
    "dashboard",     "demo",      "dev",        "dns",           "doc",
    "docs",          "email",     "ftp",        "gateway",       "health",
    "healthz",       "help",      "hostmaster", "imap",          "internal",
    "legal",         "localhost", "login",      "logout",        "mail",
    "metrics",       "mx",        "noreply",    "notifications", "ns1",
    "ns2",           "oauth",     "operator",   "orders",        "pop",
    "pop3",          "portal",    "postmaster", "privacy",       "readyz",
    "realtime",      "register",  "root",       "security",      "settings",
    "signin",        "signup",    "smtp",       "sso",           "staging",
    "static",        "status",    "support",    "sync",          "system",
    "tenant",        "tenants",   "terms",      "test",          "webmail",
    "webmaster",     "ws",        "wss",        "www",
};
#define NRESERVED (sizeof reserved / sizeof reserved[0])

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

bool tenantname_is_reserved(const char *slug) {
  if (slug == NULL) return false;
  return bsearch(&slug, reserved, NRESERVED, sizeof reserved[0], cmp_str) !=
         NULL;
}

const char *const *tenantname_reserved(size_t *n) {
  *n = NRESERVED;
  return reserved;
}

static bool is_lower_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

int tenantname_check_slug(const char *slug, const char **why) {
  const char *dummy;
  if (why == NULL) why = &dummy;
  if (slug == NULL) {
    *why = "is required";
    return ERR_INVAL;
  }
  size_t n = strnlen(slug, TENANTNAME_SLUG_MAX + 1);
  if (n < TENANTNAME_SLUG_MIN || n > TENANTNAME_SLUG_MAX) {
    *why = "must be 3 to 32 characters";
    return ERR_INVAL;
  }
  for (size_t i = 0; i < n; i++) {
    if (!is_lower_alnum(slug[i]) && slug[i] != '-') {
      *why = "may contain only a-z, 0-9 and '-'";
      return ERR_INVAL;
    }
  }
  if (slug[0] == '-' || slug[n - 1] == '-') {
    *why = "must not start or end with '-'";
    return ERR_INVAL;
  }
  if (tenantname_is_reserved(slug)) {
    *why = "is reserved";
    return ERR_INVAL;
  }
  return ERR_OK;
}

/* Checks the labels of an already lower-cased name of length n. */
static bool valid_labels(const char *s, size_t n) {
  size_t start = 0;
  for (size_t i = 0; i <= n; i++) {
    if (i < n && s[i] != '.') {
      if (!is_lower_alnum(s[i]) && s[i] != '-') return false;
      continue;
    }
    size_t len = i - start;
    if (len == 0 || len > TENANTNAME_LABEL_MAX) return false;
    if (s[start] == '-' || s[i - 1] == '-') return false;
    start = i + 1;
  }
  return true;
}

int tenantname_normalize_host(const char *host, char *out, size_t cap) {
  if (host == NULL || out == NULL || cap == 0) return ERR_INVAL;
  size_t n = strnlen(host, TENANTNAME_INPUT_MAX + 1);
  if (n == 0 || n > TENANTNAME_INPUT_MAX || host[0] == '[') return ERR_INVAL;
  const char *colon = memchr(host, ':', n);
  size_t hlen = n;
  if (colon != NULL) {
    hlen = (size_t)(colon - host);
    const char *port = colon + 1;
    size_t plen = n - hlen - 1;
    if (plen == 0 || plen > 5) return ERR_INVAL;
    long v = 0;
    for (size_t i = 0; i < plen; i++) {
      if (port[i] < '0' || port[i] > '9')
        return ERR_INVAL; /* also a second ':' (bare IPv6) */
      v = v * 10 + (port[i] - '0');
    }
    if (v < 1 || v > 65535) return ERR_INVAL;
  }
  if (hlen > 0 && host[hlen - 1] == '.') hlen--;
  if (hlen == 0 || hlen > TENANTNAME_HOST_MAX) return ERR_INVAL;
  if (hlen + 1 > cap) return ERR_TOOBIG;
  for (size_t i = 0; i < hlen; i++) out[i] = ascii_lower(host[i]);
  out[hlen] = '\0';
  if (!valid_labels(out, hlen)) {
    out[0] = '\0';
    return ERR_INVAL;
  }
  return ERR_OK;
}

/* Calls fn for each trimmed, non-empty element of a comma-separated list
 * until it returns true; returns whether one did. */
static bool each_base(const char *list,
                      bool (*fn)(const char *b, size_t blen, void *ud),
                      void *ud) {
  if (list == NULL) return false;
  size_t total = strnlen(list, TENANTNAME_INPUT_MAX * 4);
  size_t i = 0;
  while (i < total) {
    size_t j = i;
    while (j < total && list[j] != ',') j++;
    size_t a = i, b = j;
    while (a < b && list[a] == ' ') a++;
    while (b > a && list[b - 1] == ' ') b--;
    if (b > a && fn(list + a, b - a, ud)) return true;
    i = j + 1;
  }
  return false;
}

typedef struct slug_match {
  const char *host;
  size_t hlen;
  size_t label_len; /* out */
} slug_match;

static bool match_slug_base(const char *b, size_t blen, void *ud) {
  slug_match *m = ud;
  /* host = label "." base, label without dots */
  if (m->hlen < blen + 2) return false;
  size_t llen = m->hlen - blen - 1;
  if (m->host[llen] != '.' || memcmp(m->host + llen + 1, b, blen) != 0)
    return false;
  if (memchr(m->host, '.', llen) != NULL) return false;
  m->label_len = llen;
  return true;
}

bool tenantname_slug_from_host(const char *host, const char *base_domains,
                               char *slug, size_t cap) {
  if (host == NULL || slug == NULL || cap == 0) return false;
  slug_match m = {.host = host, .hlen = strnlen(host, TENANTNAME_HOST_MAX + 1)};
  if (m.hlen > TENANTNAME_HOST_MAX) return false;
  if (!each_base(base_domains, match_slug_base, &m)) return false;
  if (m.label_len + 1 > cap) return false;
  memcpy(slug, host, m.label_len);
  slug[m.label_len] = '\0';
  return true;
}

typedef struct under_match {
  const char *host;
  size_t hlen;
} under_match;

/* True when host equals b or ends with "." b. */
static bool match_under_base(const char *b, size_t blen, void *ud) {
  under_match *m = ud;
  if (m->hlen == blen) return memcmp(m->host, b, blen) == 0;
  if (m->hlen > blen)
    return m->host[m->hlen - blen - 1] == '.' &&
           memcmp(m->host + m->hlen - blen, b, blen) == 0;
  return false;
}

int tenantname_check_custom_host(const char *host, const char *base_domains,
                                 const char **why) {
  const char *dummy;
  if (why == NULL) why = &dummy;
  if (host == NULL) {
    *why = "is required";
    return ERR_INVAL;
  }
  size_t n = strnlen(host, TENANTNAME_HOST_MAX + 1);
  if (n == 0 || n > TENANTNAME_HOST_MAX || !valid_labels(host, n)) {
    *why = "must be a valid host name";
    return ERR_INVAL;
  }
  const char *dot = memrchr(host, '.', n);
  if (dot == NULL) {
    *why = "must have at least two labels";
    return ERR_INVAL;
  }
  bool digits = true;
  for (const char *p = dot + 1; p < host + n; p++)
    if (*p < '0' || *p > '9') digits = false;
  if (digits) {
    *why = "must be a host name, not an IP address";
    return ERR_INVAL;
  }
  under_match m = {.host = host, .hlen = n};
  if (each_base(base_domains, match_under_base, &m)) {
    *why = "belongs to the platform's base domain";
    return ERR_INVAL;
  }
  return ERR_OK;
}
