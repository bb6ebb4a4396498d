/*
 * clientaddr.c - see clientaddr.h. Addresses are kept as 16 bytes, IPv4
 * as IPv4-mapped IPv6 (prefix lengths + 96), so one comparison serves
 * both families and "::ffff:10.0.0.1" cannot slip past a "10.0.0.0/8".
 */
#include "services/gateway/clientaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/strutil.h"

typedef struct net {
  uint8_t a[16];
  unsigned bits; /* 0..128 */
} net;

struct clientaddr_trust {
  net nets[CLIENTADDR_MAX_NETS];
  size_t n;
};

static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static bool is_mapped(const uint8_t a[16]) {
  return memcmp(a, kMapped, sizeof kMapped) == 0;
}

/* Parses text[0..len) as a bare IPv4 or IPv6 literal ("[v6]" allowed)
 * into a[16]. */
static bool parse_addr(const char *text, size_t len, uint8_t a[16]) {
  if (len >= 2 && text[0] == '[' && text[len - 1] == ']') {
    text++;
    len -= 2;
    if (memchr(text, ':', len) == NULL) return false; /* "[1.2.3.4]" */
  }
  if (len == 0 || len >= CLIENTADDR_STRLEN) return false;
  char buf[CLIENTADDR_STRLEN];
  memcpy(buf, text, len);
  buf[len] = '\0';
  struct in_addr v4;
  if (inet_pton(AF_INET, buf, &v4) == 1) {
    memcpy(a, kMapped, sizeof kMapped);
    memcpy(a + 12, &v4, 4);
    return true;
  }
  return inet_pton(AF_INET6, buf, a) == 1;
}

static void format_addr(const uint8_t a[16], char *out, size_t cap) {
  const char *ok = is_mapped(a)
                       ? inet_ntop(AF_INET, a + 12, out, (socklen_t)cap)
                       : inet_ntop(AF_INET6, a, out, (socklen_t)cap);
  if (ok == NULL) str_copy(out, "-", cap);
}

static bool in_net(const net *n, const uint8_t a[16]) {
  unsigned full = n->bits / 8, rest = n->bits % 8;
  if (memcmp(n->a, a, full) != 0) return false;
  if (rest == 0) return true;
  uint8_t mask = (uint8_t)(0xff << (8 - rest));
  return (n->a[full] & mask) == (a[full] & mask);
}

static bool trusted(const clientaddr_trust *t, const uint8_t a[16]) {
  for (size_t i = 0; t != NULL && i < t->n; i++)
    if (in_net(&t->nets[i], a)) return true;
  return false;
}

/* One list entry "addr[/bits]" (trimmed) into *n. */
static bool parse_net(const char *s, size_t len, net *n) {
  const char *slash = memchr(s, '/', len);
  size_t alen = slash ? (size_t)(slash - s) : len;
  if (!parse_addr(s, alen, n->a)) return false;
  unsigned max = is_mapped(n->a) ? 32 : 128;
  unsigned bits = max;
  if (slash != NULL) {
    size_t dl = len - alen - 1;
    if (dl == 0 || dl > 3) return false;
    bits = 0;
    for (size_t i = 0; i < dl; i++) {
      char c = slash[1 + i];
      if (c < '0' || c > '9') return false;
      bits = bits * 10 + (unsigned)(c - '0');
    }
    if (bits > max) return false;
  }
  n->bits = bits + (max == 32 ? 96 : 0);
  /* Host bits are ignored: "10.1.2.3/8" is 10.0.0.0/8. */
  for (unsigned i = n->bits; i < 128; i++)
    n->a[i / 8] &= (uint8_t) ~(0x80u >> (i % 8));
  return true;
}

static void trim(const char **s, size_t *len) {
  while (*len > 0 && (**s == ' ' || **s == '\t')) {
    (*s)++;
    (*len)--;
  }
  while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
    (*len)--;
}

int clientaddr_trust_new(const char *cidrs, clientaddr_trust **out, char *bad,
                         size_t badcap) {
  *out = NULL;
  if (bad != NULL && badcap > 0) bad[0] = '\0';
  clientaddr_trust *t = calloc(1, sizeof *t);
  if (t == NULL) return ERR_NOMEM;
  const char *p = cidrs != NULL ? cidrs : "";
  while (*p != '\0') {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    const char *s = p;
    trim(&s, &len);
    p = e ? e + 1 : p + strlen(p);
    if (len == 0) continue; /* "a,,b" and a trailing comma are harmless */
    int rc = t->n == CLIENTADDR_MAX_NETS ? ERR_TOOBIG : ERR_OK;
    if (rc == ERR_OK && !parse_net(s, len, &t->nets[t->n])) rc = ERR_INVAL;
    if (rc != ERR_OK) {
      if (bad != NULL && badcap > 0)
        snprintf(bad, badcap, "%.*s", (int)(len > 64 ? 64 : len), s);
      free(t);
      return rc;
    }
    t->n++;
  }
  *out = t;
  return ERR_OK;
}

void clientaddr_trust_free(clientaddr_trust *t) { free(t); }

size_t clientaddr_trust_count(const clientaddr_trust *t) {
  return t != NULL ? t->n : 0;
}

bool clientaddr_is_trusted(const clientaddr_trust *t, const char *addr) {
  uint8_t a[16];
  return addr != NULL && parse_addr(addr, strlen(addr), a) && trusted(t, a);
}

static bool peer_bytes(const struct sockaddr *sa, uint8_t a[16]) {
  if (sa == NULL) return false;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *v4 = (const struct sockaddr_in *)(const void *)sa;
    memcpy(a, kMapped, sizeof kMapped);
    memcpy(a + 12, &v4->sin_addr, 4);
    return true;
  }
  if (sa->sa_family == AF_INET6) {
    memcpy(a, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
    return true;
  }
  return false;
}

bool clientaddr_pick(const clientaddr_trust *t, const struct sockaddr *peer,
                     const char *xff, bool xff_truncated, char *out,
                     size_t cap) {
  if (cap < CLIENTADDR_STRLEN) {
    if (cap > 0) str_copy(out, "-", cap);
    return false;
  }
  uint8_t hop[16];
  if (!peer_bytes(peer, hop)) {
    str_copy(out, "-", cap);
    return false;
  }
  format_addr(hop, out, cap);
  if (xff == NULL || xff_truncated || !trusted(t, hop)) return false;
  /* From the right: skip trusted hops; stop at the first untrusted one
   * (the client) or at anything malformed (keep the last trusted hop). */
  size_t end = strnlen(xff, CLIENTADDR_XFF_MAX + 1);
  if (end > CLIENTADDR_XFF_MAX) return false;
  bool from_xff = false;
  for (int walked = 0; end > 0; walked++) {
    size_t start = end;
    while (start > 0 && xff[start - 1] != ',') start--;
    const char *s = xff + start;
    size_t len = end - start;
    trim(&s, &len);
    uint8_t a[16];
    if (walked == CLIENTADDR_MAX_HOPS || !parse_addr(s, len, a)) break;
    format_addr(a, out, cap);
    from_xff = true;
    if (!trusted(t, a)) break;
    end = start > 0 ? start - 1 : 0;
    if (start == 0) break;
  }
  return from_xff;
}
