/*
 * rpc_arena.c - a bump allocator for per-request memory (see
 * rpc_internal.h). Blocks form a singly linked list, newest first;
 * requests bigger than an ordinary block get a block of their own, which
 * the next reset frees, so one huge payload does not pin memory.
 */
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "libs/rpc/rpc_internal.h"

struct rpc_arena_block {
  rpc_arena_block *next;
  size_t cap;
  size_t used;
  alignas(max_align_t) unsigned char data[];
};

#define ARENA_ALIGN (alignof(max_align_t))

static void *arena_pb_alloc(void *data, size_t size) {
  return rpc_arena_alloc(data, size);
}

/* protobuf-c frees field by field; the arena frees all at once on reset. */
static void arena_pb_free(void *data, void *ptr) {
  (void)data;
  (void)ptr;
}

void rpc_arena_init(rpc_arena *a, size_t block_size) {
  a->head = NULL;
  a->block_size = block_size < 256 ? 256 : block_size;
  a->pb.alloc = arena_pb_alloc;
  a->pb.free = arena_pb_free;
  a->pb.allocator_data = a;
}

void *rpc_arena_alloc(rpc_arena *a, size_t size) {
  if (size == 0) size = 1;
  if (size > SIZE_MAX / 2) return NULL;
  size_t need = (size + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
  rpc_arena_block *b = a->head;
  if (b == NULL || b->cap - b->used < need) {
    size_t cap = need > a->block_size ? need : a->block_size;
    b = malloc(sizeof(*b) + cap);
    if (b == NULL) return NULL;
    b->cap = cap;
    b->used = 0;
    b->next = a->head;
    a->head = b;
  }
  void *p = b->data + b->used;
  b->used += need;
  return p;
}

char *rpc_arena_strdup(rpc_arena *a, const char *s) {
  if (s == NULL) s = "";
  size_t n = strlen(s);
  char *d = rpc_arena_alloc(a, n + 1);
  if (d != NULL) memcpy(d, s, n + 1);
  return d;
}

void rpc_arena_reset(rpc_arena *a) {
  /* Keep one ordinary-sized block (the oldest one of that size). */
  rpc_arena_block *keep = NULL;
  rpc_arena_block *b = a->head;
  while (b != NULL) {
    rpc_arena_block *next = b->next;
    if (keep == NULL && b->cap == a->block_size) {
      keep = b;
    } else {
      free(b);
    }
    b = next;
  }
  if (keep != NULL) {
    keep->next = NULL;
    keep->used = 0;
  }
  a->head = keep;
}

void rpc_arena_fini(rpc_arena *a) {
  rpc_arena_block *b = a->head;
  while (b != NULL) {
    rpc_arena_block *next = b->next;
    free(b);
    b = next;
  }
  a->head = NULL;
}
