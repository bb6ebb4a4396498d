/*
 * arena.c - bump allocator over a singly linked list of blocks, newest
 * first (see arena.h). Nothing is freed until arena_release, which is the
 * point: per-request parsing allocates freely and the request's end frees
 * it all at once.
 */
#include "services/gateway/arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct arena_block {
  arena_block *next;
  size_t cap;
  size_t used;
  alignas(max_align_t) unsigned char data[];
};

#define ARENA_ALIGN (alignof(max_align_t))

void arena_init(arena *a, size_t block_size, size_t limit) {
  a->head = NULL;
  a->block_size = block_size < 256 ? 256 : block_size;
  a->total = 0;
  a->limit = limit;
}

void *arena_alloc(arena *a, size_t size) {
  if (size == 0) size = 1;
  if (size > SIZE_MAX / 2) return NULL;
  size_t need = (size + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
  if (a->limit != 0 &&
      need > a->limit - (a->total < a->limit ? a->total : a->limit))
    return NULL;
  arena_block *b = a->head;
  if (b == NULL || b->cap - b->used < need) {
    size_t cap = need > a->block_size ? need : a->block_size;
    b = malloc(sizeof(*b) + cap);
    if (b == NULL) return NULL;
    b->cap = cap;
    b->used = 0;
    /* A block of its own for a big allocation goes behind the current
     * one, so the current block's free space is still used next time. */
    if (a->head != NULL && need > a->block_size) {
      b->next = a->head->next;
      a->head->next = b;
    } else {
      b->next = a->head;
      a->head = b;
    }
  }
  void *p = b->data + b->used;
  b->used += need;
  a->total += need;
  return p;
}

char *arena_strndup(arena *a, const char *s, size_t len) {
  if (len == SIZE_MAX) return NULL;
  char *d = arena_alloc(a, len + 1);
  if (d == NULL) return NULL;
  if (len > 0) memcpy(d, s, len);
  d[len] = '\0';
  return d;
}

void arena_release(arena *a) {
  if (a == NULL) return;
  arena_block *b = a->head;
  while (b != NULL) {
    arena_block *next = b->next;
    free(b);
    b = next;
  }
  a->head = NULL;
  a->total = 0;
}
