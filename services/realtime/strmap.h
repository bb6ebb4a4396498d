/*
 * strmap.h - a small hash map from NUL-terminated string keys to one
 * pointer-sized value, for the WebSocket thread's indexes (channel ->
 * its subscribers, remote address -> its connection count).
 *
 * Keys come from clients (channel names, addresses), so the hash is
 * libsodium's keyed SipHash (crypto_shorthash) under a random key made at
 * strmap_new: a client cannot choose keys that all land in one bucket.
 * Chained buckets; the table doubles when it holds more entries than
 * buckets. Keys are copied; values are the caller's (never freed here).
 * Not thread-safe: one owner thread.
 */
#ifndef REALTIME_STRMAP_H
#define REALTIME_STRMAP_H

#include <stdbool.h>
#include <stddef.h>

#include "libs/base/err.h"

typedef struct strmap strmap;

/* Errors: ERR_NOMEM. *out is the caller's: strmap_free. */
int strmap_new(strmap **out) WARN_UNUSED;

/* Frees the map and its key copies, not the values. NULL-safe. */
void strmap_free(strmap *m);

/* The value slot of key, created (holding NULL) when create is set and
 * the key is absent. NULL: absent (create false) or out of memory. The
 * slot stays valid until the key is deleted or the map grows (the next
 * creating call). */
void **strmap_slot(strmap *m, const char *key, bool create);

/* Removes key (no-op when absent). */
void strmap_del(strmap *m, const char *key);

/* Number of keys. */
size_t strmap_len(const strmap *m);

/* Calls fn(arg, key, value) for every entry; fn must not change m. */
void strmap_each(const strmap *m,
                 void (*fn)(void *arg, const char *key, void *value),
                 void *arg);

#endif
