/*
 * cache.c - Redis connections, commands, scripts and replies (see cache.h).
 *
 * Design. The same small pool shape as libs/db: a mutex, a condition
 * variable on the monotonic clock and a LIFO list of idle connections,
 * connections opened outside the lock after reserving a slot. A pool
 * connection whose hiredis context is NULL is "closed"; it is (re)opened
 * when next borrowed, so a Redis outage costs one fast connect attempt
 * (refused, or the connect timeout) per command rather than a hang.
 *
 * One function, run(), sends every command: it borrows a connection,
 * checks it, sends with SIGPIPE held off, and on a broken connection
 * retries once on a fresh one when the caller said the command is
 * idempotent. Error replies never escape as replies: they become ERR_*
 * codes with the message in the thread's cache_last_error().
 *
 * cache_reply is a redisReply in disguise (never dereferenced as anything
 * else), which keeps hiredis out of cache.h without copying replies.
 *
 * SHA-1 is here (RFC 3174, compact) only because EVALSHA names scripts by
 * it; it protects nothing.
 */
#include "libs/cache/cache.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "libs/cache/cache_internal.h"

#define DEFAULT_MAX_CONNS 4
#define DEFAULT_TIMEOUT_MS 1000
#define DEFAULT_MAX_VALUE (1u << 20)
#define MAX_EVAL_ARGS 256

typedef struct conn {
  redisContext *ctx; /* NULL: closed, reopen on next use */
  struct conn *next;
} conn;

struct cache {
  cache_url url;
  struct timeval connect_tv, command_tv;
  int max_conns;
  int acquire_timeout_ms;
  size_t max_value;

  pthread_mutex_t mu;
  pthread_cond_t cv;
  conn *idle;
  int open; /* conn structs in existence (idle + lent) */
  int in_use;
  uint64_t reconnects;
  uint64_t retries;
};

struct cache_script {
  char *source;
  char sha[41];
};

static __thread cache_error tl_err;

static redisReply *RR(const cache_reply *r) { return (redisReply *)r; }

/* ---------------------------------------------------------------- errors ---
 */

static int set_error(int code, const char *msg) {
  tl_err.code = code;
  size_t k = 0;
  const char *m = msg != NULL ? msg : err_str(code);
  for (; m[k] != '\0' && k + 1 < sizeof tl_err.message; k++)
    tl_err.message[k] = (m[k] >= 0x20 && m[k] <= 0x7e) ? m[k] : '?';
  tl_err.message[k] = '\0';
  return code;
}

const cache_error *cache_last_error(void) { return &tl_err; }

int cache_err_from_reply(const char *msg, size_t len) {
  static const char *const unavailable[] = {"LOADING", "BUSY", "MASTERDOWN",
                                            "READONLY", "TRYAGAIN"};
  for (size_t i = 0; i < sizeof unavailable / sizeof unavailable[0]; i++) {
    size_t n = strlen(unavailable[i]);
    if (len >= n && memcmp(msg, unavailable[i], n) == 0 &&
        (len == n || msg[n] == ' '))
      return ERR_UNAVAILABLE;
  }
  return ERR_DB;
}

/* ------------------------------------------------------------------- url ---
 */

static bool parse_int(const char *s, size_t len, long lo, long hi, int *out) {
  if (len == 0 || len > 9) return false;
  long v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  if (v < lo || v > hi) return false;
  *out = (int)v;
  return true;
}

int cache_parse_url(const char *url, cache_url *out) {
  memset(out, 0, sizeof *out);
  out->port = 6379;
  static const char scheme[] = "redis://", tls_scheme[] = "rediss://";
  const char *p;
  if (url != NULL && strncmp(url, scheme, sizeof scheme - 1) == 0) {
    p = url + sizeof scheme - 1;
  } else if (url != NULL &&
             strncmp(url, tls_scheme, sizeof tls_scheme - 1) == 0) {
    p = url + sizeof tls_scheme - 1;
    out->tls = true;
  } else {
    return ERR_INVAL;
  }
  const char *end = p + strlen(p);
  const char *slash = memchr(p, '/', (size_t)(end - p));
  const char *auth_end = slash != NULL ? slash : end;
  /* The password may contain '@' only if it is the last '@' before host. */
  const char *at = NULL;
  for (const char *q = p; q < auth_end; q++)
    if (*q == '@') at = q;
  if (at != NULL) {
    const char *colon = memchr(p, ':', (size_t)(at - p));
    if (colon == NULL) return ERR_INVAL; /* "user@" without a password */
    size_t ulen = (size_t)(colon - p);
    if (ulen >= sizeof out->user) return ERR_INVAL;
    memcpy(out->user, p, ulen);
    out->user[ulen] = '\0';
    size_t plen = (size_t)(at - colon - 1);
    if (plen == 0 || plen >= sizeof out->password) return ERR_INVAL;
    memcpy(out->password, colon + 1, plen);
    out->password[plen] = '\0';
    p = at + 1;
  }
  const char *host = p, *host_end;
  if (*p == '[') { /* [ipv6] */
    const char *rb = memchr(p, ']', (size_t)(auth_end - p));
    if (rb == NULL) return ERR_INVAL;
    host = p + 1;
    host_end = rb;
    p = rb + 1;
  } else {
    host_end = p;
    while (host_end < auth_end && *host_end != ':') host_end++;
    p = host_end;
  }
  size_t hlen = (size_t)(host_end - host);
  if (hlen == 0 || hlen >= sizeof out->host) return ERR_INVAL;
  memcpy(out->host, host, hlen);
  out->host[hlen] = '\0';
  if (p < auth_end) {
    if (*p != ':' ||
        !parse_int(p + 1, (size_t)(auth_end - p - 1), 1, 65535, &out->port))
      return ERR_INVAL;
  }
  if (slash != NULL && slash + 1 < end) {
    if (!parse_int(slash + 1, (size_t)(end - slash - 1), 0, 1000000, &out->db))
      return ERR_INVAL;
  }
  return ERR_OK;
}

/* ----------------------------------------------------------------- sha-1 ---
 */

static uint32_t rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1_block(uint32_t h[5], const unsigned char *b) {
  uint32_t w[80];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)b[4 * i] << 24 | (uint32_t)b[4 * i + 1] << 16 |
           (uint32_t)b[4 * i + 2] << 8 | b[4 * i + 3];
  for (int i = 16; i < 80; i++)
    w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
  uint32_t a = h[0], bb = h[1], c = h[2], d = h[3], e = h[4];
  for (int i = 0; i < 80; i++) {
    uint32_t f, k;
    if (i < 20) {
      f = (bb & c) | (~bb & d);
      k = 0x5A827999;
    } else if (i < 40) {
      f = bb ^ c ^ d;
      k = 0x6ED9EBA1;
    } else if (i < 60) {
      f = (bb & c) | (bb & d) | (c & d);
      k = 0x8F1BBCDC;
    } else {
      f = bb ^ c ^ d;
      k = 0xCA62C1D6;
    }
    uint32_t t = rol(a, 5) + f + e + k + w[i];
    e = d;
    d = c;
    c = rol(bb, 30);
    bb = a;
    a = t;
  }
  h[0] += a;
  h[1] += bb;
  h[2] += c;
  h[3] += d;
  h[4] += e;
}

void cache_sha1_hex(const void *data, size_t len, char out[41]) {
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  const unsigned char *p = data;
  size_t left = len;
  while (left >= 64) {
    sha1_block(h, p);
    p += 64;
    left -= 64;
  }
  unsigned char tail[128];
  memset(tail, 0, sizeof tail);
  memcpy(tail, p, left);
  tail[left] = 0x80;
  size_t tlen = left + 1 + 8 <= 64 ? 64 : 128;
  uint64_t bits = (uint64_t)len * 8;
  for (int i = 0; i < 8; i++)
    tail[tlen - 1 - i] = (unsigned char)(bits >> (8 * i));
  sha1_block(h, tail);
  if (tlen == 128) sha1_block(h, tail + 64);
  for (int i = 0; i < 5; i++) snprintf(out + 8 * i, 9, "%08" PRIx32, h[i]);
}

/* ----------------------------------------------------------------- setup ---
 */

static struct timeval ms_tv(int ms) {
  struct timeval tv = {ms / 1000, (suseconds_t)(ms % 1000) * 1000};
  return tv;
}

int cache_new(const cache_config *cfg, cache **out) {
  *out = NULL;
  if (cfg == NULL || cfg->max_conns < 0 || cfg->connect_timeout_ms < 0 ||
      cfg->command_timeout_ms < 0 || cfg->acquire_timeout_ms < 0)
    return set_error(ERR_INVAL, "invalid cache configuration");
  cache *c = calloc(1, sizeof *c);
  if (c == NULL) return set_error(ERR_NOMEM, NULL);
  if (cache_parse_url(cfg->url, &c->url) != ERR_OK) {
    explicit_bzero(&c->url, sizeof c->url);
    free(c);
    return set_error(ERR_INVAL, "invalid Redis URL");
  }
  if (c->url.tls) {
    /* Debian bookworm's hiredis is 0.14.1: no hiredis_ssl, and no hook to
     * put TLS under its blocking connection. Refused rather than sent in
     * clear to a server that expects TLS (or silently downgraded). */
    explicit_bzero(&c->url, sizeof c->url);
    free(c);
    return set_error(ERR_INVAL,
                     "rediss:// (TLS) is not supported by this build (hiredis "
                     "0.14 has no TLS): use redis:// to a local TLS sidecar "
                     "such as stunnel");
  }
  int command_ms = cfg->command_timeout_ms > 0 ? cfg->command_timeout_ms
                                               : DEFAULT_TIMEOUT_MS;
  c->connect_tv = ms_tv(cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms
                                                    : DEFAULT_TIMEOUT_MS);
  c->command_tv = ms_tv(command_ms);
  c->max_conns = cfg->max_conns > 0 ? cfg->max_conns : DEFAULT_MAX_CONNS;
  c->acquire_timeout_ms =
      cfg->acquire_timeout_ms > 0 ? cfg->acquire_timeout_ms : command_ms;
  c->max_value =
      cfg->max_value_bytes > 0 ? cfg->max_value_bytes : DEFAULT_MAX_VALUE;
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&c->cv, &attr);
  pthread_condattr_destroy(&attr);
  pthread_mutex_init(&c->mu, NULL);
  *out = c;
  return ERR_OK;
}

void cache_free(cache *c) {
  if (c == NULL) return;
  conn *k = c->idle;
  while (k != NULL) {
    conn *next = k->next;
    if (k->ctx != NULL) redisFree(k->ctx);
    free(k);
    k = next;
  }
  pthread_cond_destroy(&c->cv);
  pthread_mutex_destroy(&c->mu);
  explicit_bzero(c->url.password, sizeof c->url.password);
  free(c);
}

void cache_get_stats(cache *c, cache_stats *out) {
  memset(out, 0, sizeof *out);
  if (c == NULL) return;
  pthread_mutex_lock(&c->mu);
  out->open = c->open;
  out->in_use = c->in_use;
  out->reconnects = c->reconnects;
  out->retries = c->retries;
  pthread_mutex_unlock(&c->mu);
}

/* ----------------------------------------------------------- connections ---
 */

/* Runs a command on ctx with SIGPIPE blocked in this thread, discarding a
 * SIGPIPE the command raised (hiredis writes with plain write(2)). */
static redisReply *command_nosigpipe(redisContext *ctx, int argc,
                                     const char **argv, const size_t *lens,
                                     int *err_no) {
  sigset_t pipe_set, old, pending;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  sigpending(&pending);
  bool was_pending = sigismember(&pending, SIGPIPE);
  errno = 0;
  redisReply *r = redisCommandArgv(ctx, argc, argv, lens);
  *err_no = errno;
  if (!was_pending) {
    sigpending(&pending);
    if (sigismember(&pending, SIGPIPE)) {
      struct timespec zero = {0, 0};
      while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
      }
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return r;
}

/* A simple command during connection set-up; ERR_OK on a non-error reply.
 * what prefixes Redis's error reply (which never echoes arguments). */
static int setup_command(redisContext *ctx, int argc, const char **argv,
                         const char *what) {
  int err_no = 0;
  redisReply *r = command_nosigpipe(ctx, argc, argv, NULL, &err_no);
  int rc;
  if (r == NULL) {
    rc = set_error(ERR_UNAVAILABLE, ctx->errstr);
  } else if (r->type == REDIS_REPLY_ERROR) {
    /* Wrong password, unknown user, bad db: this connection is unusable. */
    char msg[160];
    snprintf(msg, sizeof msg, "%s: %s", what, r->str);
    rc = set_error(ERR_UNAVAILABLE, msg);
  } else {
    rc = ERR_OK;
  }
  freeReplyObject(r);
  return rc;
}

static int conn_open(cache *c, conn *k) {
  redisContext *ctx =
      redisConnectWithTimeout(c->url.host, c->url.port, c->connect_tv);
  if (ctx == NULL) return set_error(ERR_NOMEM, NULL);
  if (ctx->err != 0) {
    char msg[160];
    snprintf(msg, sizeof msg, "redis connect: %s", ctx->errstr);
    redisFree(ctx);
    return set_error(ERR_UNAVAILABLE, msg);
  }
  if (redisSetTimeout(ctx, c->command_tv) != REDIS_OK) {
    redisFree(ctx);
    return set_error(ERR_UNAVAILABLE, "redis: cannot set the command timeout");
  }
  (void)redisEnableKeepAlive(ctx);
  int rc = ERR_OK;
  /* On every (re)connect: a new connection starts unauthenticated and in
   * db 0. The password goes to Redis only, never into an error text. */
  if (c->url.password[0] != '\0' && c->url.user[0] != '\0') {
    const char *argv[] = {"AUTH", c->url.user, c->url.password};
    rc = setup_command(ctx, 3, argv, "redis AUTH refused");
  } else if (c->url.password[0] != '\0') {
    const char *argv[] = {"AUTH", c->url.password};
    rc = setup_command(ctx, 2, argv, "redis AUTH refused");
  }
  if (rc == ERR_OK && c->url.db != 0) {
    char db[16];
    snprintf(db, sizeof db, "%d", c->url.db);
    const char *argv[] = {"SELECT", db};
    rc = setup_command(ctx, 2, argv, "redis SELECT refused");
  }
  if (rc != ERR_OK) {
    redisFree(ctx);
    return rc;
  }
  k->ctx = ctx;
  return ERR_OK;
}

static void conn_close(cache *c, conn *k, bool count_reconnect) {
  if (k->ctx != NULL) redisFree(k->ctx);
  k->ctx = NULL;
  if (count_reconnect) {
    pthread_mutex_lock(&c->mu);
    c->reconnects++;
    pthread_mutex_unlock(&c->mu);
  }
}

/* Redis sends nothing unasked on a normal connection: a readable idle
 * socket means the server closed it (restart, timeout, CLIENT KILL). */
static bool conn_idle_ok(const conn *k) {
  if (k->ctx == NULL || k->ctx->err != 0) return false;
  struct pollfd pfd = {.fd = k->ctx->fd, .events = POLLIN};
  return poll(&pfd, 1, 0) == 0;
}

static int acquire(cache *c, conn **out) {
  *out = NULL;
  int64_t deadline = time_mono_ms() + c->acquire_timeout_ms;
  pthread_mutex_lock(&c->mu);
  for (;;) {
    if (c->idle != NULL) {
      *out = c->idle;
      c->idle = (*out)->next;
      c->in_use++;
      break;
    }
    if (c->open < c->max_conns) {
      conn *k = calloc(1, sizeof *k);
      if (k == NULL) {
        pthread_mutex_unlock(&c->mu);
        return set_error(ERR_NOMEM, NULL);
      }
      c->open++;
      c->in_use++;
      *out = k;
      break;
    }
    int64_t now = time_mono_ms();
    if (now >= deadline) {
      pthread_mutex_unlock(&c->mu);
      return set_error(ERR_TIMEOUT, "no free Redis connection");
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t left = deadline - now;
    ts.tv_sec += left / 1000;
    ts.tv_nsec += (long)(left % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&c->cv, &c->mu, &ts);
  }
  pthread_mutex_unlock(&c->mu);
  (*out)->next = NULL;
  return ERR_OK;
}

static void release(cache *c, conn *k) {
  pthread_mutex_lock(&c->mu);
  k->next = c->idle; /* closed ones too: they reopen on next use */
  c->idle = k;
  c->in_use--;
  pthread_cond_signal(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

/* Sends one command, retrying once on a fresh connection when it broke
 * and idempotent is set. On ERR_OK *out holds a non-error reply. */
static int run(cache *c, bool idempotent, int argc, const char **argv,
               const size_t *lens, redisReply **out) {
  *out = NULL;
  if (c == NULL || argc <= 0 || argv == NULL)
    return set_error(ERR_INVAL, "invalid command");
  conn *k = NULL;
  int rc = acquire(c, &k);
  if (rc != ERR_OK) return rc;
  redisReply *r = NULL;
  for (int attempt = 0; attempt < 2; attempt++) {
    if (k->ctx != NULL && !conn_idle_ok(k)) conn_close(c, k, true);
    if (k->ctx == NULL) {
      rc = conn_open(c, k);
      if (rc != ERR_OK) break;
    }
    int err_no = 0;
    r = command_nosigpipe(k->ctx, argc, argv, lens, &err_no);
    if (r != NULL) {
      rc = ERR_OK;
      break;
    }
    bool timed_out =
        k->ctx->err == REDIS_ERR_IO &&
        (err_no == EAGAIN || err_no == EWOULDBLOCK ||
         strstr(k->ctx->errstr, "temporarily unavailable") != NULL);
    char msg[160];
    snprintf(msg, sizeof msg, "redis: %s",
             timed_out ? "command timed out"
                       : (k->ctx->errstr[0] ? k->ctx->errstr : "I/O error"));
    rc = set_error(ERR_UNAVAILABLE, msg);
    /* The context is unusable after any error (a late reply would be read
     * as the answer to the next command). */
    conn_close(c, k, false);
    if (!idempotent || timed_out) break;
    if (attempt == 0) {
      pthread_mutex_lock(&c->mu);
      c->retries++;
      pthread_mutex_unlock(&c->mu);
    }
  }
  release(c, k);
  if (rc != ERR_OK) return rc;
  if (r->type == REDIS_REPLY_ERROR) {
    rc = set_error(cache_err_from_reply(r->str, r->len), r->str);
    freeReplyObject(r);
    return rc;
  }
  *out = r;
  return ERR_OK;
}

int cache_ping(cache *c) {
  const char *argv[] = {"PING"};
  redisReply *r = NULL;
  int rc = run(c, true, 1, argv, NULL, &r);
  freeReplyObject(r);
  return rc;
}

/* ------------------------------------------------------------ key/value --- */

int cache_get(cache *c, const char *key, char **val, size_t *len) {
  *val = NULL;
  *len = 0;
  if (key == NULL) return set_error(ERR_INVAL, "no key");
  const char *argv[] = {"GET", key};
  redisReply *r = NULL;
  int rc = run(c, true, 2, argv, NULL, &r);
  if (rc != ERR_OK) return rc;
  if (r->type == REDIS_REPLY_NIL) {
    rc = ERR_NOTFOUND;
  } else if (r->type != REDIS_REPLY_STRING) {
    rc = set_error(ERR_PROTO, "unexpected reply to GET");
  } else if (r->len > c->max_value) {
    rc = set_error(ERR_TOOBIG, "cached value larger than max_value_bytes");
  } else {
    *val = malloc(r->len + 1);
    if (*val == NULL) {
      rc = set_error(ERR_NOMEM, NULL);
    } else {
      memcpy(*val, r->str, r->len);
      (*val)[r->len] = '\0';
      *len = r->len;
    }
  }
  freeReplyObject(r);
  return rc;
}

int cache_set(cache *c, const char *key, const void *val, size_t len,
              int64_t ttl_ms) {
  if (key == NULL || (val == NULL && len > 0) || ttl_ms < 0)
    return set_error(ERR_INVAL, "invalid cache_set arguments");
  if (c != NULL && len > c->max_value)
    return set_error(ERR_TOOBIG, "value larger than max_value_bytes");
  char ttl[24];
  snprintf(ttl, sizeof ttl, "%" PRId64, ttl_ms);
  const char *argv[] = {"SET", key, val != NULL ? val : "", "PX", ttl};
  size_t lens[] = {3, strlen(key), len, 2, strlen(ttl)};
  redisReply *r = NULL;
  int rc = run(c, true, ttl_ms > 0 ? 5 : 3, argv, lens, &r);
  freeReplyObject(r);
  return rc;
}

int cache_del(cache *c, const char *key, bool *existed) {
  if (existed != NULL) *existed = false;
  if (key == NULL) return set_error(ERR_INVAL, "no key");
  const char *argv[] = {"DEL", key};
  redisReply *r = NULL;
  int rc = run(c, true, 2, argv, NULL, &r);
  if (rc != ERR_OK) return rc;
  if (existed != NULL)
    *existed = r->type == REDIS_REPLY_INTEGER && r->integer > 0;
  freeReplyObject(r);
  return ERR_OK;
}

/* --------------------------------------------------------------- scripts ---
 */

int cache_script_new(const char *source, cache_script **out) {
  *out = NULL;
  if (source == NULL || source[0] == '\0')
    return set_error(ERR_INVAL, "empty script");
  cache_script *s = calloc(1, sizeof *s);
  if (s == NULL || (s->source = strdup(source)) == NULL) {
    free(s);
    return set_error(ERR_NOMEM, NULL);
  }
  cache_sha1_hex(source, strlen(source), s->sha);
  *out = s;
  return ERR_OK;
}

void cache_script_free(cache_script *s) {
  if (s == NULL) return;
  free(s->source);
  free(s);
}

const char *cache_script_sha(const cache_script *s) { return s->sha; }

int cache_script_load(cache *c, const cache_script *s) {
  const char *argv[] = {"SCRIPT", "LOAD", s->source};
  redisReply *r = NULL;
  int rc = run(c, true, 3, argv, NULL, &r);
  if (rc != ERR_OK) return rc;
  if (r->type != REDIS_REPLY_STRING || r->len != 40 ||
      memcmp(r->str, s->sha, 40) != 0)
    rc = set_error(ERR_INTERNAL, "SCRIPT LOAD returned another SHA-1");
  freeReplyObject(r);
  return rc;
}

int cache_eval(cache *c, const cache_script *s, int nkeys,
               const char *const *keys, int nargs, const char *const *args,
               cache_reply **out) {
  *out = NULL;
  if (s == NULL || nkeys < 0 || nargs < 0 || nkeys + nargs > MAX_EVAL_ARGS ||
      (nkeys > 0 && keys == NULL) || (nargs > 0 && args == NULL))
    return set_error(ERR_INVAL, "invalid cache_eval arguments");
  const char *argv[MAX_EVAL_ARGS + 3];
  char nk[16];
  snprintf(nk, sizeof nk, "%d", nkeys);
  int argc = 0;
  argv[argc++] = "EVALSHA";
  argv[argc++] = s->sha;
  argv[argc++] = nk;
  for (int i = 0; i < nkeys; i++) argv[argc++] = keys[i];
  for (int i = 0; i < nargs; i++) argv[argc++] = args[i];
  redisReply *r = NULL;
  int rc = run(c, true, argc, argv, NULL, &r);
  if (rc == ERR_DB && str_has_prefix(tl_err.message, "NOSCRIPT")) {
    /* The server forgot the script (restart, SCRIPT FLUSH): EVAL runs it
     * and caches it again for the next EVALSHA. */
    argv[0] = "EVAL";
    argv[1] = s->source;
    rc = run(c, true, argc, argv, NULL, &r);
  }
  if (rc != ERR_OK) return rc;
  *out = (cache_reply *)r;
  return ERR_OK;
}

/* --------------------------------------------------------------- generic ---
 */

int cache_command(cache *c, bool idempotent, int argc, const char *const *argv,
                  const size_t *argvlen, cache_reply **out) {
  if (out != NULL) *out = NULL;
  redisReply *r = NULL;
  int rc = run(c, idempotent, argc, (const char **)argv, argvlen, &r);
  if (rc != ERR_OK) return rc;
  if (out != NULL)
    *out = (cache_reply *)r;
  else
    freeReplyObject(r);
  return ERR_OK;
}

/* --------------------------------------------------------------- replies ---
 */

void cache_reply_free(cache_reply *r) {
  if (r != NULL) freeReplyObject(RR(r));
}

enum cache_reply_type cache_reply_type(const cache_reply *r) {
  if (r == NULL) return CACHE_REPLY_NIL;
  switch (RR(r)->type) {
  case REDIS_REPLY_INTEGER:
    return CACHE_REPLY_INT;
  case REDIS_REPLY_STRING:
    return CACHE_REPLY_STRING;
  case REDIS_REPLY_STATUS:
    return CACHE_REPLY_STATUS;
  case REDIS_REPLY_ARRAY:
    return CACHE_REPLY_ARRAY;
  case REDIS_REPLY_ERROR:
    return CACHE_REPLY_ERROR;
  default:
    return CACHE_REPLY_NIL;
  }
}

int cache_reply_int(const cache_reply *r, int64_t *out) {
  if (r == NULL) return ERR_INVAL;
  const redisReply *x = RR(r);
  if (x->type == REDIS_REPLY_INTEGER) {
    *out = (int64_t)x->integer;
    return ERR_OK;
  }
  if ((x->type != REDIS_REPLY_STRING && x->type != REDIS_REPLY_STATUS) ||
      x->len == 0 || x->len > 20)
    return ERR_INVAL;
  char buf[24];
  memcpy(buf, x->str, x->len);
  buf[x->len] = '\0';
  char *end = NULL;
  errno = 0;
  long long v = strtoll(buf, &end, 10);
  if (errno != 0 || *end != '\0') return ERR_INVAL;
  *out = (int64_t)v;
  return ERR_OK;
}

int cache_reply_str(const cache_reply *r, const char **s, size_t *len) {
  if (r == NULL) return ERR_INVAL;
  const redisReply *x = RR(r);
  if (x->type != REDIS_REPLY_STRING && x->type != REDIS_REPLY_STATUS &&
      x->type != REDIS_REPLY_ERROR)
    return ERR_INVAL;
  *s = x->str;
  *len = x->len;
  return ERR_OK;
}

size_t cache_reply_len(const cache_reply *r) {
  return (r != NULL && RR(r)->type == REDIS_REPLY_ARRAY) ? RR(r)->elements : 0;
}

const cache_reply *cache_reply_at(const cache_reply *r, size_t i) {
  if (i >= cache_reply_len(r)) return NULL;
  return (const cache_reply *)RR(r)->element[i];
}

int cache_reply_int_at(const cache_reply *r, size_t i, int64_t *out) {
  return cache_reply_int(cache_reply_at(r, i), out);
}
