/*
 * arena.h - per-request memory for the gateway (STYLE.md habit 5).
 *
 * Everything a request needs while it is being served (its copy of the
 * URI, path parameters, header values, the error text) comes from one
 * arena that is freed once when the request ends, so the many small
 * allocations of parsing cannot leak on an early-return path. A bump
 * allocator over a list of blocks; a large allocation gets a block of its
 * own. Not thread-safe: a request is handled by one thread at a time.
 */
#ifndef GATEWAY_ARENA_H
#define GATEWAY_ARENA_H

#include <stddef.h>

typedef struct arena_block arena_block;

typedef struct arena {
  arena_block *head;
  size_t block_size;
  size_t total; /* bytes handed out, for bounds */
  size_t limit; /* 0 = unlimited; past it every allocation fails */
} arena;

/* Prepares an empty arena; nothing is allocated until the first use.
 * block_size < 256 is raised to 256. limit 0 = no cap. */
void arena_init(arena *a, size_t block_size, size_t limit);

/* size bytes aligned for any type, or NULL when out of memory or over the
 * arena's limit. Owned by the arena. */
void *arena_alloc(arena *a, size_t size);

/* A NUL-terminated copy of s[0..len) (s need not be terminated), or NULL.
 * Owned by the arena. */
char *arena_strndup(arena *a, const char *s, size_t len);

/* Frees every block; the arena may be used again. NULL-safe. */
void arena_release(arena *a);

#endif
