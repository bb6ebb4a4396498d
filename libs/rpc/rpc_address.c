/*
 * rpc_address.c - parsing of client address lists ("tcp://a:1,tcp://b:2",
 * "dns+tcp://orders:7001") and formatting of nng TCP URLs.
 *
 * Parsing is strict on purpose: an address comes from configuration, and
 * a typo should stop the service at start-up with a clear error instead
 * of dialling nothing forever. Hosts are limited to the characters of DNS
 * names and IP literals, so a host can be pasted into a URL unescaped.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/strutil.h"
#include "libs/rpc/rpc.h"
#include "libs/rpc/rpc_internal.h"

static int is_host_char(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
         (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_';
}

static int is_v6_char(char ch) {
  return (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F') ||
         (ch >= '0' && ch <= '9') || ch == ':' || ch == '.';
}

static int parse_port(const char *s, size_t len, int *port) {
  char buf[8];
  if (len == 0 || len >= sizeof(buf)) return ERR_INVAL;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') return ERR_INVAL;
  }
  memcpy(buf, s, len);
  buf[len] = '\0';
  errno = 0;
  char *end = NULL;
  long v = strtol(buf, &end, 10);
  if (errno != 0 || end == NULL || *end != '\0' || v < 1 || v > 65535) {
    return ERR_INVAL;
  }
  *port = (int)v;
  return ERR_OK;
}

/* One endpoint from s[0..len), already trimmed. */
static int parse_one(const char *s, size_t len, rpc_endpoint *ep) {
  static const char tcp[] = "tcp://";
  static const char dns[] = "dns+tcp://";
  memset(ep, 0, sizeof(*ep));
  if (len >= sizeof(dns) - 1 && memcmp(s, dns, sizeof(dns) - 1) == 0) {
    ep->dns = true;
    s += sizeof(dns) - 1;
    len -= sizeof(dns) - 1;
  } else if (len >= sizeof(tcp) - 1 && memcmp(s, tcp, sizeof(tcp) - 1) == 0) {
    s += sizeof(tcp) - 1;
    len -= sizeof(tcp) - 1;
  } else {
    return ERR_INVAL;
  }

  const char *host;
  size_t hlen;
  const char *rest;
  if (len > 0 && s[0] == '[') {
    const char *close = memchr(s, ']', len);
    if (close == NULL) return ERR_INVAL;
    host = s + 1;
    hlen = (size_t)(close - host);
    if (hlen == 0) return ERR_INVAL;
    for (size_t i = 0; i < hlen; i++) {
      if (!is_v6_char(host[i])) return ERR_INVAL;
    }
    rest = close + 1;
  } else {
    const char *colon = memchr(s, ':', len);
    if (colon == NULL) return ERR_INVAL;
    host = s;
    hlen = (size_t)(colon - s);
    if (hlen == 0) return ERR_INVAL;
    for (size_t i = 0; i < hlen; i++) {
      if (!is_host_char(host[i])) return ERR_INVAL;
    }
    rest = colon;
  }
  size_t rlen = len - (size_t)(rest - s);
  if (rlen < 2 || rest[0] != ':') return ERR_INVAL;
  if (parse_port(rest + 1, rlen - 1, &ep->port) != ERR_OK) return ERR_INVAL;
  if (hlen >= sizeof(ep->host)) return ERR_INVAL;
  memcpy(ep->host, host, hlen);
  ep->host[hlen] = '\0';
  return ERR_OK;
}

int rpc_address_parse(const char *address, rpc_endpoint *out, size_t cap,
                      size_t *n) {
  if (address == NULL || n == NULL || (out == NULL && cap > 0)) {
    return ERR_INVAL;
  }
  size_t count = 0;
  const char *p = address;
  for (;;) {
    const char *comma = strchr(p, ',');
    const char *end = comma != NULL ? comma : p + strlen(p);
    const char *b = p;
    const char *e = end;
    while (b < e && (*b == ' ' || *b == '\t')) b++;
    while (e > b && (e[-1] == ' ' || e[-1] == '\t')) e--;
    if (b == e) return ERR_INVAL; /* empty element or empty list */
    if (count >= cap) return ERR_INVAL;
    if (parse_one(b, (size_t)(e - b), &out[count]) != ERR_OK) return ERR_INVAL;
    count++;
    if (comma == NULL) break;
    p = comma + 1;
  }
  *n = count;
  return ERR_OK;
}

int rpc_tcp_url(const char *host, int port, char *buf, size_t cap) {
  int w;
  if (strchr(host, ':') != NULL) {
    w = snprintf(buf, cap, "tcp://[%s]:%d", host, port);
  } else {
    w = snprintf(buf, cap, "tcp://%s:%d", host, port);
  }
  if (w < 0 || (size_t)w >= cap) return ERR_TOOBIG;
  return ERR_OK;
}
