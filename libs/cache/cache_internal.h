/*
 * cache_internal.h - what cache.c shares with its unit test. Not part of
 * the public API.
 */
#ifndef LIBS_CACHE_CACHE_INTERNAL_H
#define LIBS_CACHE_CACHE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "libs/cache/cache.h"

typedef struct cache_url {
  char host[256];
  int port;
  int db;
  char user[128];     /* ACL user (Redis 6+); "" for the default user */
  char password[256]; /* "" when none */
  bool tls;           /* "rediss://": parsed, refused by cache_new */
} cache_url;

/* Parses "redis[s]://[[user]:password@]host[:port][/db]": with a user,
 * AUTH user password (Redis 6 ACL); without, AUTH password. ERR_INVAL for
 * anything else: other schemes, empty host, port outside 1..65535,
 * non-numeric db, over-long parts. */
int cache_parse_url(const char *url, cache_url *out) WARN_UNUSED;

/* Maps a Redis error reply ("LOADING ...", "ERR ...") to an ERR_* code. */
int cache_err_from_reply(const char *msg, size_t len);

/* SHA-1 of data as 40 lower-case hex digits and a NUL. */
void cache_sha1_hex(const void *data, size_t len, char out[41]);

#endif
