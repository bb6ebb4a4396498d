/*
 * receiver.c - the test's webhook receiver (see receiver.h). One
 * microhttpd daemon, a thread per connection (so a held request does not
 * block others), one mutex over the endpoints' state.
 */
#include "tests/notifications/receiver.h"

#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_ENDPOINTS 32
#define MAX_HITS 256
#define BODY_MAX (1 << 20)

typedef struct endpoint {
  char name[64];
  receiver_mode mode;
  int fail_first;
  bool release;
  int held;
  unsigned char key[RECEIVER_MAX_SECRETS][64]; /* [0] current, [1] previous */
  size_t keylen[RECEIVER_MAX_SECRETS];
  receiver_hit hits[MAX_HITS];
  int nhits;
} endpoint;

struct receiver {
  struct MHD_Daemon *d;
  int port;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  endpoint eps[MAX_ENDPOINTS];
  int neps;
};

/* Under r->mu. */
static endpoint *find(receiver *r, const char *name, bool create) {
  for (int i = 0; i < r->neps; i++)
    if (strcmp(r->eps[i].name, name) == 0) return &r->eps[i];
  if (!create || r->neps == MAX_ENDPOINTS) return NULL;
  endpoint *e = &r->eps[r->neps++];
  snprintf(e->name, sizeof e->name, "%s", name);
  return e;
}

/* HMAC-SHA256(key, id "." ts "." body) in base64, written here on
 * purpose rather than taken from the service. */
static void expected(const unsigned char *key, size_t keylen, const char *id,
                     const char *ts, const char *body, size_t len, char *out,
                     size_t cap) {
  size_t n = strlen(id) + strlen(ts) + len + 2;
  char *msg = malloc(n + 1);
  snprintf(msg, n + 1, "%s.%s.", id, ts);
  memcpy(msg + strlen(id) + strlen(ts) + 2, body, len);
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, key, keylen);
  crypto_auth_hmacsha256_update(&st, (unsigned char *)msg, n);
  crypto_auth_hmacsha256_final(&st, mac);
  free(msg);
  sodium_bin2base64(out, cap, mac, sizeof mac, sodium_base64_VARIANT_ORIGINAL);
}

/* Counts the signatures of header sig and which of them verify. */
static void verify(const endpoint *e, const char *id, const char *ts,
                   const char *sig, const char *body, size_t len,
                   receiver_hit *h) {
  char want[RECEIVER_MAX_SECRETS][64];
  for (int k = 0; k < RECEIVER_MAX_SECRETS; k++)
    if (e->keylen[k] > 0)
      expected(e->key[k], e->keylen[k], id, ts, body, len, want[k],
               sizeof want[k]);
  char copy[512];
  snprintf(copy, sizeof copy, "%s", sig ? sig : "");
  char *save = NULL;
  for (char *t = strtok_r(copy, " ", &save); t;
       t = strtok_r(NULL, " ", &save)) {
    if (strncmp(t, "v1,", 3) != 0) continue;
    h->nsig++;
    if (e->keylen[0] > 0 && strcmp(t + 3, want[0]) == 0) h->valid_new++;
    if (e->keylen[1] > 0 && strcmp(t + 3, want[1]) == 0) h->valid_old++;
  }
}

typedef struct upload {
  char *buf;
  size_t len;
  bool too_big;
} upload;

/* Records the request and picks the status; may wait (HOLD). */
static int handle(receiver *r, struct MHD_Connection *c, const char *name,
                  upload *u) {
  const char *id =
      MHD_lookup_connection_value(c, MHD_HEADER_KIND, "webhook-id");
  const char *ts =
      MHD_lookup_connection_value(c, MHD_HEADER_KIND, "webhook-timestamp");
  const char *sig =
      MHD_lookup_connection_value(c, MHD_HEADER_KIND, "webhook-signature");
  pthread_mutex_lock(&r->mu);
  endpoint *e = find(r, name, true);
  int status = 404;
  if (e != NULL && e->nhits < MAX_HITS) {
    int i = e->nhits++;
    receiver_hit *h = &e->hits[i];
    memset(h, 0, sizeof *h);
    snprintf(h->id, sizeof h->id, "%s", id ? id : "");
    h->ts = ts ? strtoll(ts, NULL, 10) : 0;
    h->body = strndup(u->buf ? u->buf : "", u->len);
    verify(e, h->id, ts ? ts : "", sig, u->buf ? u->buf : "", u->len, h);
    int held_status = 0;
    if (e->mode == RECEIVER_HOLD) {
      held_status = e->fail_first;
      e->held++;
      while (!e->release) pthread_cond_wait(&r->cv, &r->mu);
      e->held--;
    }
    if (held_status > 0)
      status = held_status;
    else if (e->mode == RECEIVER_FAIL ||
             (e->mode == RECEIVER_FAIL_FIRST && i < e->fail_first))
      status = 500;
    else
      status = e->mode == RECEIVER_REDIRECT ? 302
               : e->mode == RECEIVER_HUGE   ? 299 /* 200, huge body */
                                            : 200;
    e->hits[i].status = status;
  }
  pthread_mutex_unlock(&r->mu);
  return status;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *c,
                              const char *url, const char *method,
                              const char *version, const char *data,
                              size_t *data_len, void **state) {
  (void)version;
  receiver *r = cls;
  upload *u = *state;
  if (u == NULL) {
    u = calloc(1, sizeof *u);
    *state = u;
    return u ? MHD_YES : MHD_NO;
  }
  if (*data_len > 0) {
    if (u->len + *data_len > BODY_MAX) {
      u->too_big = true;
    } else {
      char *b = realloc(u->buf, u->len + *data_len + 1);
      if (b == NULL) return MHD_NO;
      memcpy(b + u->len, data, *data_len);
      u->buf = b;
      u->len += *data_len;
    }
    *data_len = 0;
    return MHD_YES;
  }
  int status = 405;
  if (strcmp(method, "POST") == 0 && strncmp(url, "/r/", 3) == 0 && !u->too_big)
    status = handle(r, c, url + 3, u);
  const char *text = status == 200 ? "{\"ok\":true}" : "{\"ok\":false}";
  struct MHD_Response *resp;
  if (status == 299) {
    status = 200;
    size_t n = 4 << 20;
    char *huge = malloc(n);
    if (huge == NULL) return MHD_NO;
    memset(huge, 'x', n);
    resp = MHD_create_response_from_buffer(n, huge, MHD_RESPMEM_MUST_FREE);
  } else {
    resp = MHD_create_response_from_buffer(strlen(text), (void *)text,
                                           MHD_RESPMEM_MUST_COPY);
  }
  if (status == 302) {
    char loc[128];
    snprintf(loc, sizeof loc, "%s-target", url);
    MHD_add_response_header(resp, "Location", loc);
  }
  enum MHD_Result rc = MHD_queue_response(c, (unsigned)status, resp);
  MHD_destroy_response(resp);
  return rc;
}

static void done(void *cls, struct MHD_Connection *c, void **state,
                 enum MHD_RequestTerminationCode why) {
  (void)cls, (void)c, (void)why;
  upload *u = *state;
  if (u != NULL) free(u->buf);
  free(u);
  *state = NULL;
}

receiver *receiver_start(void) {
  receiver *r = calloc(1, sizeof *r);
  if (r == NULL || sodium_init() < 0) return NULL;
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cv, NULL);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  r->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
                              MHD_USE_THREAD_PER_CONNECTION,
                          0, NULL, NULL, answer, r, MHD_OPTION_SOCK_ADDR, &sa,
                          MHD_OPTION_NOTIFY_COMPLETED, done, r, MHD_OPTION_END);
  const union MHD_DaemonInfo *info =
      r->d ? MHD_get_daemon_info(r->d, MHD_DAEMON_INFO_BIND_PORT) : NULL;
  if (info == NULL) {
    fprintf(stderr, "receiver: cannot start\n");
    return NULL;
  }
  r->port = info->port;
  return r;
}

void receiver_stop(receiver *r) {
  if (r == NULL) return;
  pthread_mutex_lock(&r->mu);
  for (int i = 0; i < r->neps; i++) r->eps[i].release = true;
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
  if (r->d != NULL) MHD_stop_daemon(r->d);
}

int receiver_port(const receiver *r) { return r->port; }

void receiver_set_mode(receiver *r, const char *name, receiver_mode m, int n) {
  pthread_mutex_lock(&r->mu);
  endpoint *e = find(r, name, true);
  if (e != NULL) {
    e->mode = m;
    e->fail_first = n;
    e->release = m != RECEIVER_HOLD;
  }
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
}

void receiver_set_secret(receiver *r, const char *name, const char *secret) {
  pthread_mutex_lock(&r->mu);
  endpoint *e = find(r, name, true);
  if (e != NULL && strncmp(secret, "whsec_", 6) == 0) {
    memcpy(e->key[1], e->key[0], sizeof e->key[0]);
    e->keylen[1] = e->keylen[0];
    size_t len = 0;
    if (sodium_base642bin(e->key[0], sizeof e->key[0], secret + 6,
                          strlen(secret + 6), NULL, &len, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0)
      len = 0;
    e->keylen[0] = len;
  }
  pthread_mutex_unlock(&r->mu);
}

void receiver_release(receiver *r, const char *name) {
  receiver_set_mode(r, name, RECEIVER_OK, 0);
}

int receiver_count(receiver *r, const char *name) {
  pthread_mutex_lock(&r->mu);
  endpoint *e = find(r, name, false);
  int n = e ? e->nhits : 0;
  pthread_mutex_unlock(&r->mu);
  return n;
}

int receiver_held(receiver *r, const char *name) {
  pthread_mutex_lock(&r->mu);
  endpoint *e = find(r, name, false);
  int n = e ? e->held : 0;
  pthread_mutex_unlock(&r->mu);
  return n;
}

bool receiver_hit_at(receiver *r, const char *name, int i, receiver_hit *out) {
  pthread_mutex_lock(&r->mu);
  endpoint *e = find(r, name, false);
  bool ok = e != NULL && i >= 0 && i < e->nhits;
  if (ok) {
    *out = e->hits[i];
    out->body = strdup(e->hits[i].body ? e->hits[i].body : "");
  }
  pthread_mutex_unlock(&r->mu);
  return ok;
}

void receiver_hit_free(receiver_hit *h) {
  free(h->body);
  h->body = NULL;
}

int receiver_ok_count(receiver *r, const char *name, const char *id) {
  pthread_mutex_lock(&r->mu);
  endpoint *e = find(r, name, false);
  int n = 0;
  for (int i = 0; e != NULL && i < e->nhits; i++)
    if (strcmp(e->hits[i].id, id) == 0 && e->hits[i].status / 100 == 2) n++;
  pthread_mutex_unlock(&r->mu);
  return n;
}
