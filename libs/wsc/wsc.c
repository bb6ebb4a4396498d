/*
 * wsc.c - see wsc.h.
 */
#include "libs/wsc/wsc.h"

#include <stdio.h>
#include <string.h>

int wsc_parse_url(const char *url, char *host, size_t hcap, int *port,
                  char *path, size_t pcap, const char *default_path) {
  if (url == NULL || strncmp(url, "ws://", 5) != 0) return -1;
  const char *h = url + 5, *slash = strchr(h, '/');
  const char *hend = slash != NULL ? slash : h + strlen(h);
  const char *c = memchr(h, ':', (size_t)(hend - h));
  if (c == NULL || c == h || (size_t)(c - h) >= hcap) return -1;
  long n = 0;
  for (const char *d = c + 1; d < hend; d++) {
    if (*d < '0' || *d > '9' || n > 65535) return -1;
    n = n * 10 + (*d - '0');
  }
  if (n <= 0 || n > 65535) return -1;
  const char *p = slash != NULL ? slash : default_path;
  if (strlen(p) >= pcap) return -1;
  snprintf(host, hcap, "%.*s", (int)(c - h), h);
  *port = (int)n;
  snprintf(path, pcap, "%s", p);
  return 0;
}

void wsc_msg_reset(wsc_msg *m) {
  m->len = 0;
  m->too_long = false;
  m->complete = false;
}

bool wsc_msg_add(wsc_msg *m, const void *in, size_t len, bool final) {
  if (m->complete) wsc_msg_reset(m);
  if (len > WSC_MSG_MAX - m->len) m->too_long = true;
  if (!m->too_long) {
    memcpy(m->buf + m->len, in, len);
    m->len += len;
  }
  if (!final) return false;
  bool whole = !m->too_long;
  if (whole)
    m->complete = true;
  else
    wsc_msg_reset(m);
  return whole;
}
