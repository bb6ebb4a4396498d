/*
 * domainverify.c - the HTTP fetch of a domain's verification token (see
 * domainverify.h for the rules and why).
 *
 * The public-address rule is enforced where the socket is opened
 * (CURLOPT_OPENSOCKETFUNCTION sees the resolved address of every attempt),
 * so a name that resolves to a private address is refused even when DNS
 * changes between calls. The body is collected by a write callback that
 * aborts the transfer past the cap.
 */
#include "services/tenants/domainverify.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "libs/base/strutil.h"

typedef struct body {
  char buf[DOMAINVERIFY_BODY_MAX + 1];
  size_t len;
  bool too_big;
} body;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static void global_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

bool domainverify_connect_to_valid(const char *ct) {
  if (ct == NULL || ct[0] == '\0') return true;
  const char *colon = strrchr(ct, ':');
  if (colon == NULL || colon == ct || strlen(ct) > 300) return false;
  char *end = NULL;
  long port = strtol(colon + 1, &end, 10);
  if (end == colon + 1 || *end != '\0' || port < 1 || port > 65535)
    return false;
  for (const char *p = ct; p < colon; p++)
    if (!isalnum((unsigned char)*p) && strchr(".-[]:", *p) == NULL)
      return false;
  return true;
}

int domainverify_url(const char *host, const char *token,
                     char out[DOMAINVERIFY_URL_MAX]) {
  int n = snprintf(out, DOMAINVERIFY_URL_MAX,
                   "http://%s" DOMAINVERIFY_PATH "%s", host, token);
  return n > 0 && n < DOMAINVERIFY_URL_MAX ? ERR_OK : ERR_TOOBIG;
}

static bool v4_public(uint32_t a) {
  uint8_t b0 = (uint8_t)(a >> 24), b1 = (uint8_t)(a >> 16);
  if (b0 == 0 || b0 == 10 || b0 == 127 || b0 >= 224)
    return false; /* this net, private, loopback, multicast/reserved */
  if (b0 == 169 && b1 == 254) return false; /* link-local, cloud metadata */
  if (b0 == 172 && (b1 & 0xf0) == 16) return false;
  if (b0 == 192 && b1 == 168) return false;
  if (b0 == 100 && (b1 & 0xc0) == 64) return false; /* CGNAT 100.64/10 */
  return true;
}

bool domainverify_address_public(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    return v4_public(ntohl(in->sin_addr.s_addr));
  }
  if (sa->sa_family != AF_INET6) return false;
  const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
  if (IN6_IS_ADDR_V4MAPPED(a) || IN6_IS_ADDR_V4COMPAT(a)) {
    uint32_t v4;
    memcpy(&v4, &a->s6_addr[12], 4);
    return v4_public(ntohl(v4));
  }
  if (IN6_IS_ADDR_UNSPECIFIED(a) || IN6_IS_ADDR_LOOPBACK(a) ||
      IN6_IS_ADDR_LINKLOCAL(a) || IN6_IS_ADDR_SITELOCAL(a) ||
      IN6_IS_ADDR_MULTICAST(a))
    return false;
  return (a->s6_addr[0] & 0xfe) != 0xfc; /* unique local fc00::/7 */
}

/* Refuses non-public addresses before a socket exists. */
static curl_socket_t open_public(void *arg, curlsocktype purpose,
                                 struct curl_sockaddr *addr) {
  (void)arg;
  if (purpose != CURLSOCKTYPE_IPCXN ||
      !domainverify_address_public(&addr->addr))
    return CURL_SOCKET_BAD;
  return socket(addr->family, addr->socktype, addr->protocol);
}

static size_t collect(char *data, size_t size, size_t n, void *arg) {
  body *b = arg;
  size_t len = size * n;
  if (b->len + len > DOMAINVERIFY_BODY_MAX) {
    b->too_big = true;
    return 0; /* aborts the transfer */
  }
  memcpy(b->buf + b->len, data, len);
  b->len += len;
  b->buf[b->len] = '\0';
  return len;
}

/* The fetch's options; connect_to (a curl list) must outlive the call. */
static void set_options(CURL *h, const domainverify_options *o, const char *url,
                        struct curl_slist *connect_to, body *b) {
  long ms = o->timeout_ms > 0 ? (long)o->timeout_ms : 5000L;
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, ms);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, ms);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_MAXFILESIZE, (long)DOMAINVERIFY_BODY_MAX);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "restaurant-domain-verifier/1");
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
  /* No proxy from the environment: the operator's way is connect_to. */
  curl_easy_setopt(h, CURLOPT_PROXY, "");
  if (connect_to != NULL)
    curl_easy_setopt(h, CURLOPT_CONNECT_TO, connect_to);
  else
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, open_public);
}

/* The body, trailing whitespace removed, equal to token? */
static bool body_is_token(body *b, const char *token) {
  while (b->len > 0 && isspace((unsigned char)b->buf[b->len - 1]))
    b->buf[--b->len] = '\0';
  size_t n = strlen(token);
  return b->len == n && memcmp(b->buf, token, n) == 0;
}

static int judge(CURLcode cc, long status, body *b, const char *token,
                 const char **why) {
  if (b->too_big || cc == CURLE_FILESIZE_EXCEEDED) {
    *why = "the answer is larger than a token";
    return ERR_INVAL;
  }
  if (cc == CURLE_OPERATION_TIMEDOUT) {
    *why = "the domain did not answer in time";
    return ERR_UNAVAILABLE;
  }
  if (cc != CURLE_OK) {
    *why = "could not connect to the domain on port 80";
    return ERR_UNAVAILABLE;
  }
  if (status != 200) {
    *why = status >= 300 && status < 400
               ? "the verification URL redirects (not followed)"
               : "the verification URL did not answer 200";
    return ERR_INVAL;
  }
  if (!body_is_token(b, token)) {
    *why = "the verification URL does not answer the token";
    return ERR_INVAL;
  }
  return ERR_OK;
}

int domainverify_check(const domainverify_options *o, const char *host,
                       const char *token, const char **why) {
  *why = "cannot verify now";
  char url[DOMAINVERIFY_URL_MAX];
  if (domainverify_url(host, token, url) != ERR_OK) return ERR_INVAL;
  pthread_once(&g_once, global_init);
  CURL *h = curl_easy_init();
  body *b = calloc(1, sizeof *b);
  struct curl_slist *ct = NULL;
  char entry[400];
  int rc = h != NULL && b != NULL ? ERR_OK : ERR_NOMEM;
  if (rc == ERR_OK && o->connect_to != NULL && o->connect_to[0] != '\0') {
    /* "::host:port": every host and port of this fetch goes there. */
    snprintf(entry, sizeof entry, "::%s", o->connect_to);
    ct = curl_slist_append(NULL, entry);
    rc = ct != NULL ? ERR_OK : ERR_NOMEM;
  }
  if (rc == ERR_OK) {
    set_options(h, o, url, ct, b);
    CURLcode cc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    rc = judge(cc, status, b, token, why);
  }
  curl_slist_free_all(ct);
  curl_easy_cleanup(h);
  free(b);
  return rc;
}
