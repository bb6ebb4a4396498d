/*
 * cache_internal.h - what cache.c shares with its unit test. Not part of
 * the public API.
 */
#ifndef LIBS_CACHE_CACHE_INTERNAL_H
#define LIBS_CACHE_CACHE_INTERNAL_H

#include <stddef.h>

#include "libs/cache/cache.h"

typedef struct cache_url {
  char host[256];
  int port;
  int db;
  char password[256]; /* "" when none */
} cache_url;

/* Parses "redis://[:password@]host[:port][/db]" (also "user:password@",
 * the user being ignored as Redis 5-style AUTH takes only a password).
 * ERR_INVAL for anything else: other schemes, empty host, port outside
 * 1..65535, non-numeric db, over-long parts. */
int cache_parse_url(const char *url, cache_url *out) WARN_UNUSED;

/* Maps a Redis error reply ("LOADING ...", "ERR ...") to an ERR_* code. */
int cache_err_from_reply(const char *msg, size_t len);

/* SHA-1 of data as 40 lower-case hex digits and a NUL. */
void cache_sha1_hex(const void *data, size_t len, char out[41]);

#endif
