/*
 * rpc_internal.h - pieces shared by the RPC server and client, not part of
 * the public API (visible to this package and its tests only).
 *
 * rpc_arena: per-request memory. The server unpacks each request envelope
 * into an arena (a protobuf-c allocator whose free is a no-op) and builds
 * the reply there too, then resets the arena once the reply is packed, so
 * the hot path makes no malloc/free per field and a request's memory is
 * released in one place. A reset keeps the first block, so steady-state
 * calls of ordinary size allocate nothing.
 */
#ifndef RPC_INTERNAL_H
#define RPC_INTERNAL_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include "libs/base/err.h"
#include "libs/rpc/rpc.h"

typedef struct rpc_arena_block rpc_arena_block;

typedef struct rpc_arena {
  rpc_arena_block *head; /* newest block first; the last is the kept one */
  size_t block_size;     /* size of ordinary blocks */
  ProtobufCAllocator pb; /* allocator view for protobuf-c */
} rpc_arena;

/* Initialises a (which the caller owns) with blocks of block_size bytes.
 * No allocation happens until the first rpc_arena_alloc. */
void rpc_arena_init(rpc_arena *a, size_t block_size);

/* size bytes aligned for any type, valid until the next reset; NULL when
 * out of memory. */
void *rpc_arena_alloc(rpc_arena *a, size_t size);

/* A NUL-terminated copy of s (NULL gives ""), NULL when out of memory. */
char *rpc_arena_strdup(rpc_arena *a, const char *s);

/* Releases everything allocated since the last reset; keeps one ordinary
 * block for reuse. */
void rpc_arena_reset(rpc_arena *a);

/* Releases every block. */
void rpc_arena_fini(rpc_arena *a);

/* Writes the nng URL for a resolved or literal endpoint host:
 * "tcp://1.2.3.4:80" or "tcp://[::1]:80". Returns ERR_TOOBIG if it does
 * not fit cap bytes. */
int rpc_tcp_url(const char *host, int port, char *buf, size_t cap) WARN_UNUSED;

#endif
