/*
 * target.c - URL and address rules (see target.h). URLs are parsed by
 * libcurl's own parser (curl_url), the one that will send the request, so
 * the host checked is the host connected to. Names are resolved with
 * getaddrinfo.
 */
#include "services/notifications/target.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/strutil.h"

/* Copies curl part `what` of h into out[cap]; false when absent. */
static bool url_part(CURLU *h, CURLUPart what, unsigned flags, char *out,
                     size_t cap) {
  char *v = NULL;
  if (curl_url_get(h, what, &v, flags) != CURLUE_OK || v == NULL) return false;
  bool fits = strlen(v) < cap;
  if (fits) str_copy(out, v, cap);
  curl_free(v);
  return fits;
}

static int parse_parts(CURLU *h, target *t, const char **why) {
  char scheme[8], port[8];
  if (!url_part(h, CURLUPART_SCHEME, 0, scheme, sizeof scheme) ||
      (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
    *why = "must be an http or https URL";
    return ERR_INVAL;
  }
  char *v = NULL;
  if (curl_url_get(h, CURLUPART_USER, &v, 0) == CURLUE_OK) {
    curl_free(v);
    *why = "must not contain credentials";
    return ERR_INVAL;
  }
  char host[TARGET_HOST_MAX + 3];
  if (!url_part(h, CURLUPART_HOST, 0, host, sizeof host) || host[0] == '\0') {
    *why = "must have a host";
    return ERR_INVAL;
  }
  size_t n = strlen(host);
  if (host[0] == '[' && n > 2 && host[n - 1] == ']') { /* IPv6 literal */
    memmove(host, host + 1, n - 2);
    host[n - 2] = '\0';
  }
  str_copy(t->host, host, sizeof t->host);
  if (!url_part(h, CURLUPART_PORT, CURLU_DEFAULT_PORT, port, sizeof port)) {
    *why = "must have a valid port";
    return ERR_INVAL;
  }
  char *end = NULL;
  long pn = strtol(port, &end, 10);
  if (end == port || *end != 0 || pn < 1 || pn > 65535) {
    *why = "must have a valid port";
    return ERR_INVAL;
  }
  t->port = (int)pn;
  return ERR_OK;
}

int target_parse(const char *url, target *t, const char **why) {
  memset(t, 0, sizeof *t);
  *why = "must be an http or https URL";
  if (url == NULL || url[0] == '\0') {
    *why = "is required";
    return ERR_INVAL;
  }
  if (strlen(url) > TARGET_URL_MAX) {
    *why = "must be at most 2048 bytes";
    return ERR_INVAL;
  }
  if (!str_is_printable(url, strlen(url)) || strchr(url, ' ') != NULL)
    return ERR_INVAL;
  CURLU *h = curl_url();
  if (h == NULL) return ERR_NOMEM;
  int rc = curl_url_set(h, CURLUPART_URL, url, 0) == CURLUE_OK
               ? parse_parts(h, t, why)
               : ERR_INVAL;
  curl_url_cleanup(h);
  return rc;
}

static bool v4_private(uint32_t a) {
  static const struct {
    uint32_t net, mask;
  } kNets[] = {
      {0x00000000u, 0xff000000u}, /* 0/8 this network */
      {0x0a000000u, 0xff000000u}, /* 10/8 */
      {0x64400000u, 0xffc00000u}, /* 100.64/10 CGNAT */
      {0x7f000000u, 0xff000000u}, /* 127/8 loopback */
      {0xa9fe0000u, 0xffff0000u}, /* 169.254/16 link-local */
      {0xac100000u, 0xfff00000u}, /* 172.16/12 */
      {0xc0000000u, 0xffffff00u}, /* 192.0.0/24 */
      {0xc0000200u, 0xffffff00u}, /* 192.0.2/24 documentation */
      {0xc0a80000u, 0xffff0000u}, /* 192.168/16 */
      {0xc6120000u, 0xfffe0000u}, /* 198.18/15 benchmarking */
      {0xc6336400u, 0xffffff00u}, /* 198.51.100/24 documentation */
      {0xcb007100u, 0xffffff00u}, /* 203.0.113/24 documentation */
      {0xe0000000u, 0xe0000000u}, /* 224/3: multicast, reserved, broadcast */
  };
  for (size_t i = 0; i < sizeof kNets / sizeof kNets[0]; i++)
    if ((a & kNets[i].mask) == kNets[i].net) return true;
  return false;
}

static bool v6_private(const unsigned char *b) {
  static const unsigned char kZero[16] = {0};
  static const unsigned char kMapped[12] = {0, 0, 0, 0, 0,    0,
                                            0, 0, 0, 0, 0xff, 0xff};
  static const unsigned char kNat64[12] = {0, 0x64, 0xff, 0x9b};
  if (memcmp(b, kZero, 15) == 0) return true; /* :: and ::1 */
  if (memcmp(b, kMapped, 12) == 0 || memcmp(b, kNat64, 12) == 0 ||
      memcmp(b, kZero, 12) == 0) /* mapped, NAT64, IPv4-compatible */
    return v4_private((uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 |
                      (uint32_t)b[14] << 8 | b[15]);
  if ((b[0] & 0xfe) == 0xfc) return true;                 /* fc00::/7 */
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return true; /* fe80::/10 */
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return true; /* fec0::/10 */
  if (b[0] == 0xff) return true;                          /* multicast */
  if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8)
    return true; /* 2001:db8::/32 documentation */
  return false;
}

bool target_addr_private(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET)
    return v4_private(ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr));
  if (sa->sa_family == AF_INET6)
    return v6_private(((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr);
  return true; /* anything else is not a place for webhooks */
}

static void pin(target *t, const struct addrinfo *ai) {
  memcpy(&t->sa, ai->ai_addr, ai->ai_addrlen);
  t->salen = ai->ai_addrlen;
  const void *a =
      ai->ai_family == AF_INET
          ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
          : (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
  if (inet_ntop(ai->ai_family, a, t->addr, sizeof t->addr) == NULL)
    t->addr[0] = '\0';
}

int target_resolve(target *t, bool allow_private, const char **why) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  struct addrinfo *res = NULL;
  char port[8];
  snprintf(port, sizeof port, "%d", t->port);
  if (getaddrinfo(t->host, port, &hints, &res) != 0 || res == NULL) {
    *why = "host does not resolve";
    return ERR_UNAVAILABLE;
  }
  int rc = ERR_OK;
  const struct addrinfo *first = NULL;
  for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    if (!allow_private && target_addr_private(ai->ai_addr)) {
      *why = "must not be a private, loopback or link-local address";
      rc = ERR_INVAL;
      break;
    }
    if (first == NULL) first = ai;
  }
  if (rc == ERR_OK && first == NULL) {
    *why = "host does not resolve";
    rc = ERR_UNAVAILABLE;
  }
  if (rc == ERR_OK) pin(t, first);
  freeaddrinfo(res);
  return rc;
}
