/*
 * cache.h - Redis for every service: get/set/delete with TTL, Lua scripts,
 * and a generic command for the rest, over hiredis 0.14 (blocking API).
 *
 * Redis holds only what may be lost or rebuilt, so this library's first
 * promise is never to hang a request: connecting and every command are
 * bounded by timeouts (redisConnectWithTimeout, redisSetTimeout), and a
 * Redis that is down, refusing, or not answering in time gives
 * ERR_UNAVAILABLE - callers degrade (skip the cache, fail open or closed as
 * they choose) instead of waiting.
 *
 * Threads. A cache is safe to use from any number of threads. It owns a
 * small pool of connections (max_conns); each call borrows one for exactly
 * one command and returns it, so a hiredis context is never used by two
 * threads at once, and connections are shared by all threads rather than
 * tied to one (threads come and go in the RPC servers; a per-thread
 * connection would leak when they do). When every connection is busy a
 * call waits up to acquire_timeout_ms, then fails with ERR_TIMEOUT.
 *
 * Reconnects. Connections open lazily. An idle connection whose socket
 * shows the server closed it is replaced before use. If a command fails on
 * a broken connection (reset, EOF) and it is marked idempotent - GET, SET,
 * DEL and script evaluation are - the library reconnects once and retries
 * it once; a command that timed out is never retried (the server may be
 * stuck, and a retry would double the wait). Commands the caller marks
 * non-idempotent are not retried.
 *
 * Scripts. cache_script_new() computes the script's SHA-1 locally, so a
 * script object needs no server and is immutable (shareable by threads).
 * cache_eval() sends EVALSHA and, on NOSCRIPT (Redis restarted or SCRIPT
 * FLUSH), falls back to EVAL with the source, which also reloads it.
 *
 * Values are binary-safe (sent as %b, any bytes including NUL). Keys are
 * NUL-terminated strings, sent as one argument each (spaces, quotes and
 * CR/LF in a key are harmless). SIGPIPE: a write to a closed socket is
 * kept from killing the process (blocked and discarded around each
 * command, as libpq does), so the application need not ignore SIGPIPE.
 */
#ifndef LIBS_CACHE_CACHE_H
#define LIBS_CACHE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"

typedef struct cache cache;
typedef struct cache_script cache_script;
typedef struct cache_reply cache_reply;

/* -------------------------------------------------------------- set-up --- */

typedef struct cache_config {
  /* "redis://[[user]:password@]host[:port][/db]"; port defaults to 6379,
   * db to 0. IPv6 hosts in brackets. Required. Every new connection
   * (including each reconnect) sends AUTH [user] password and SELECT db
   * before anything else; a refused AUTH is ERR_UNAVAILABLE with Redis's
   * reply ("WRONGPASS ...") in cache_last_error(), never the password.
   * The password is kept only in memory, never logged, and wiped on
   * cache_free. "rediss://" (TLS) is refused by cache_new with ERR_INVAL
   * and a message saying so: the hiredis this builds against (0.14) has
   * no TLS; put a TLS sidecar (stunnel) next to the service instead. */
  const char *url;
  int max_conns;          /* 0 -> 4 */
  int connect_timeout_ms; /* 0 -> 1000 */
  int command_timeout_ms; /* per command (send + reply); 0 -> 1000 */
  int acquire_timeout_ms; /* waiting for a free connection; 0 -> command timeout
                           */
  size_t max_value_bytes; /* largest value set or returned; 0 -> 1 MiB */
} cache_config;

/* Creates a cache; connects to nothing yet (see cache_ping). Errors:
 * ERR_INVAL (bad URL or limits), ERR_NOMEM. The caller owns *out. */
int cache_new(const cache_config *cfg, cache **out) WARN_UNUSED;

/* Closes every connection and frees the cache. No call may be running.
 * NULL-safe. */
void cache_free(cache *c);

/* PING: ERR_OK when Redis answers (readiness probes). */
int cache_ping(cache *c) WARN_UNUSED;

/* -------------------------------------------------------- key / value --- */

/* GET. On success *val is a malloc'd copy of the value the caller frees,
 * NUL-terminated for convenience (*len excludes the NUL). Errors:
 * ERR_NOTFOUND (no such key, or it expired), ERR_TOOBIG, ERR_UNAVAILABLE,
 * ERR_TIMEOUT (no free connection), ERR_DB (e.g. the key holds a hash). */
int cache_get(cache *c, const char *key, char **val, size_t *len) WARN_UNUSED;

/* SET key value [PX ttl_ms]. ttl_ms 0 means no expiry; negative is
 * ERR_INVAL. The value is copied to Redis byte for byte. Errors as
 * cache_get, ERR_TOOBIG for a value over max_value_bytes. */
int cache_set(cache *c, const char *key, const void *val, size_t len,
              int64_t ttl_ms) WARN_UNUSED;

/* DEL. *existed (optional) says whether the key was there. */
int cache_del(cache *c, const char *key, bool *existed) WARN_UNUSED;

/* ------------------------------------------------------------- scripts --- */

/* Wraps Lua source (copied) and its SHA-1. Pure: needs no server. ERR_INVAL
 * for NULL/empty source, ERR_NOMEM. Free with cache_script_free. */
int cache_script_new(const char *source, cache_script **out) WARN_UNUSED;
void cache_script_free(cache_script *s); /* NULL-safe */

/* The script's SHA-1 as 40 lower-case hex digits (owned by s). */
const char *cache_script_sha(const cache_script *s);

/* SCRIPT LOAD, to warm the server's script cache (optional: cache_eval
 * recovers without it). ERR_INTERNAL if Redis computes another SHA-1. */
int cache_script_load(cache *c, const cache_script *s) WARN_UNUSED;

/* EVALSHA sha nkeys keys... args..., falling back to EVAL on NOSCRIPT.
 * keys/args are NUL-terminated strings (either array may be NULL when its
 * count is 0). *out gets the reply, which the caller frees with
 * cache_reply_free. A script error (redis.error_reply, a runtime error)
 * is ERR_DB with Redis's message in cache_last_error(). */
int cache_eval(cache *c, const cache_script *s, int nkeys,
               const char *const *keys, int nargs, const char *const *args,
               cache_reply **out) WARN_UNUSED;

/* ------------------------------------------------------------- generic --- */

/* Any other command, e.g. {"INCR", "k"} or {"XADD", ...}: argc arguments
 * with lengths (argvlen NULL: all NUL-terminated). idempotent says whether
 * a retry after a broken connection is safe (INCR is not; SADD is). *out
 * (optional) gets the reply. Error replies map as: LOADING, BUSY,
 * MASTERDOWN, READONLY, TRYAGAIN -> ERR_UNAVAILABLE; everything else ->
 * ERR_DB, message in cache_last_error(). */
int cache_command(cache *c, bool idempotent, int argc, const char *const *argv,
                  const size_t *argvlen, cache_reply **out) WARN_UNUSED;

/* ------------------------------------------------------------- replies --- */

enum cache_reply_type {
  CACHE_REPLY_NIL,
  CACHE_REPLY_INT,
  CACHE_REPLY_STRING,
  CACHE_REPLY_STATUS, /* +OK and the like */
  CACHE_REPLY_ARRAY,
  CACHE_REPLY_ERROR, /* only as an element of an array */
};

void cache_reply_free(cache_reply *r); /* NULL-safe; frees the whole tree */

enum cache_reply_type cache_reply_type(const cache_reply *r);

/* An integer reply, or a string/status reply holding a decimal integer
 * (Lua numbers come back as integers, but scripts often return strings).
 * ERR_INVAL otherwise. */
int cache_reply_int(const cache_reply *r, int64_t *out) WARN_UNUSED;

/* The bytes of a string, status or error reply (owned by r). ERR_INVAL
 * for other types. */
int cache_reply_str(const cache_reply *r, const char **s,
                    size_t *len) WARN_UNUSED;

/* Number of elements of an array reply (0 for other types) and element i
 * (NULL when out of range; owned by r). */
size_t cache_reply_len(const cache_reply *r);
const cache_reply *cache_reply_at(const cache_reply *r, size_t i);

/* Shorthand: element i of an array reply as an integer. */
int cache_reply_int_at(const cache_reply *r, size_t i,
                       int64_t *out) WARN_UNUSED;

/* -------------------------------------------------------------- errors --- */

typedef struct cache_error {
  int code;          /* the ERR_* returned */
  char message[160]; /* Redis's error reply or the I/O error; no values */
} cache_error;

/* The most recent failure of a cache_ call in the calling thread. */
const cache_error *cache_last_error(void);

typedef struct cache_stats {
  int open;            /* connections open */
  int in_use;          /* lent out right now */
  uint64_t reconnects; /* broken connections replaced */
  uint64_t retries;    /* commands retried after a broken connection */
} cache_stats;

void cache_get_stats(cache *c, cache_stats *out);

#endif
