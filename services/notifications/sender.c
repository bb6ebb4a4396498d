/*
 * sender.c - a webhook POST through libcurl (see sender.h).
 *
 * Each thread keeps one easy handle (a pthread key frees it when the
 * thread ends) and resets its options before every request: the reset
 * keeps the handle's connection cache, so a worker posting to the same
 * receiver again reuses the connection (keep-alive, and TLS sessions)
 * instead of a TCP (and TLS) handshake per delivery. A reused connection
 * was opened through on_open, to an address that passed the target
 * check; the check still runs for every request before curl starts.
 */
#include "services/notifications/sender.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "libs/base/strutil.h"
#include "services/notifications/target.h"

typedef struct xfer {
  const sender_config *c;
  const target *t;
  size_t received;
  bool capped;
} xfer;

static size_t on_body(char *p, size_t size, size_t n, void *arg) {
  (void)p;
  xfer *x = arg;
  x->received += size * n;
  if (x->received > x->c->max_response) {
    x->capped = true;
    return 0; /* cut the transfer: CURLE_WRITE_ERROR */
  }
  return size * n;
}

/* Only the pinned address may be connected to. */
static curl_socket_t on_open(void *arg, curlsocktype purpose,
                             struct curl_sockaddr *a) {
  xfer *x = arg;
  if (purpose != CURLSOCKTYPE_IPCXN || a->addrlen != x->t->salen ||
      memcmp(&a->addr, &x->t->sa, a->addrlen) != 0 ||
      (!x->c->allow_private && target_addr_private(&a->addr)))
    return CURL_SOCKET_BAD;
  return socket(a->family, a->socktype, a->protocol);
}

static void fail(sender_result *out, const char *why) {
  out->ok = false;
  str_copy(out->error, why, sizeof out->error);
}

static int perform(CURL *h, xfer *x, sender_result *out) {
  CURLcode cc = curl_easy_perform(h);
  long code = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
  out->status_code = (int)code;
  out->ok = code >= 200 && code < 300;
  if (cc == CURLE_OPERATION_TIMEDOUT)
    fail(out, "timed out");
  else if (cc == CURLE_COULDNT_CONNECT)
    fail(out, "connection refused");
  else if (cc != CURLE_OK && !(x->capped && code > 0))
    fail(out, curl_easy_strerror(cc));
  else if (!out->ok)
    snprintf(out->error, sizeof out->error, "HTTP %ld", code);
  return ERR_OK;
}

static int post(CURL *h, const sender_config *c, const char *url,
                struct curl_slist *hdrs, const char *body, size_t len,
                sender_result *out) {
  target t;
  const char *why = NULL;
  if (target_parse(url, &t, &why) != ERR_OK ||
      target_resolve(&t, c->allow_private, &why) != ERR_OK) {
    fail(out, why != NULL ? why : "bad target");
    return ERR_OK;
  }
  char pinned[TARGET_HOST_MAX + TARGET_ADDR_MAX + 16];
  bool v6 = t.sa.ss_family == AF_INET6;
  snprintf(pinned, sizeof pinned, "%s:%d:%s%s%s", t.host, t.port, v6 ? "[" : "",
           t.addr, v6 ? "]" : "");
  struct curl_slist *resolve = curl_slist_append(NULL, pinned);
  if (resolve == NULL) return ERR_NOMEM;
  xfer x = {.c = c, .t = &t};
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_RESOLVE, resolve);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_PROXY, "");
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
  curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, on_open);
  curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, &x);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "restaurant-webhooks/1");
  int rc = perform(h, &x, out);
  curl_slist_free_all(resolve);
  return rc;
}

static pthread_key_t g_handle_key;
static pthread_once_t g_handle_once = PTHREAD_ONCE_INIT;

static void handle_free(void *h) { curl_easy_cleanup(h); }

static void handle_key_init(void) {
  (void)pthread_key_create(&g_handle_key, handle_free);
}

/* This thread's easy handle, options reset, connections kept; NULL when
 * out of memory. */
static CURL *thread_handle(void) {
  pthread_once(&g_handle_once, handle_key_init);
  CURL *h = pthread_getspecific(g_handle_key);
  if (h != NULL) {
    curl_easy_reset(h);
    return h;
  }
  h = curl_easy_init();
  if (h != NULL && pthread_setspecific(g_handle_key, h) != 0) {
    curl_easy_cleanup(h);
    h = NULL;
  }
  return h;
}

int sender_post(const sender_config *c, const char *url,
                const char *const *headers, const char *body, size_t len,
                sender_result *out) {
  memset(out, 0, sizeof *out);
  CURL *h = thread_handle();
  struct curl_slist *hdrs =
      curl_slist_append(NULL, "Content-Type: application/json");
  if (hdrs != NULL)
    hdrs = curl_slist_append(hdrs, "Expect:"); /* no 100-continue */
  for (size_t i = 0; hdrs != NULL && headers != NULL && headers[i]; i++) {
    struct curl_slist *next = curl_slist_append(hdrs, headers[i]);
    if (next == NULL) {
      curl_slist_free_all(hdrs);
      hdrs = NULL;
    }
    hdrs = next;
  }
  int rc = h != NULL && hdrs != NULL ? post(h, c, url, hdrs, body, len, out)
                                     : ERR_NOMEM;
  curl_slist_free_all(hdrs);
  return rc;
}
