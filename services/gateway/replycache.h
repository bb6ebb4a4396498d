/*
 * replycache.h - the JSON of large backend replies, remembered by their
 * exact bytes, so that the same answer read again (a menu: 100 products,
 * ~15 KB of protobuf) is not transcoded again.
 *
 * Transcoding is a pure function of the route and the reply's bytes
 * (transcode_reply without an extra member), so an entry is keyed by
 * both and matched exactly - the route by identity, the bytes with
 * memcmp, never by their hash alone - and can be shared by every caller:
 * two callers get the same JSON only when the backend gave them the
 * same bytes. The backend still decides every answer (it is asked every
 * time); only the gateway's rendering is reused. Measured on the menu
 * read: transcoding was most of the gateway's CPU per request
 * (docs/PERFORMANCE.md, "Reads").
 *
 * A small direct-mapped table (REPLYCACHE_SLOTS, slot = keyed SipHash of
 * the bytes); a collision replaces the slot. Only replies between
 * REPLYCACHE_MIN and REPLYCACHE_MAX bytes are kept: small ones transcode
 * faster than they hash, large ones would hold memory. Thread-safe.
 */
#ifndef GATEWAY_REPLYCACHE_H
#define GATEWAY_REPLYCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"

#define REPLYCACHE_SLOTS 128
#define REPLYCACHE_MIN 2048
#define REPLYCACHE_MAX (256 * 1024)

typedef struct replycache replycache;

/* ERR_NOMEM, ERR_INTERNAL (libsodium). */
int replycache_new(replycache **out) WARN_UNUSED;
void replycache_free(replycache *c); /* NULL-safe */

/* true when payload's size is one this cache keeps. */
bool replycache_wants(size_t len);

/* The JSON remembered for (route, payload): true with *json a malloc'd
 * copy (caller frees) and *jlen, else false. */
bool replycache_get(replycache *c, const void *route, const uint8_t *payload,
                    size_t len, char **json, size_t *jlen);

/* Remembers json (copied) for (route, payload). Best effort. */
void replycache_put(replycache *c, const void *route, const uint8_t *payload,
                    size_t len, const char *json, size_t jlen);

#endif
