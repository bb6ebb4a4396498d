/*
 * once.h - an Idempotency-Key on a create that is one transaction of the
 * service's own database (idem.h's first way), with the saved answer
 * sealed (seal.h): what notifications (CreateWebhook, CreateCampaign) and
 * sync (RegisterDevice) share. Orders keeps its own wiring (its answers
 * hold no secret); tenants' creates are sagas (services/tenants/keyed.h).
 *
 *   handler:  idem_once k;
 *             if (!idem_once_prepare(&k, &spec, call, tid, sub, reply)) ...
 *             k.pack = my_pack; k.pack_arg = ...;   (the answer's bytes)
 *             rc = store_create_x(..., &k, &row);
 *             if (idem_once_reply(&k, rc, reply)) -> answered
 *             else the usual answer (or error) from rc and row
 *             idem_once_done(&k);
 *   store, in the create's transaction:
 *             rc = idem_once_begin(c, k);
 *             if (rc != ERR_OK || !idem_once_fresh(k)) return rc;
 *             ... the insert into row ...
 *             rc = idem_once_save(c, k, &row);
 *
 * idem_once_begin locks the key (a twin arriving meanwhile gets ABORTED
 * at once) and reads it: a replay opens the saved answer, another body
 * under the key is INVALID_ARGUMENT naming idempotency_key (HTTP 400,
 * HTTP-API.md "Conventions"). idem_once_save packs the created row
 * through k->pack, seals it and saves it in the same transaction, so the
 * row and its answer commit together; the first call is then answered
 * with exactly those bytes, and a replay with the same bytes again. Only
 * successful creates are saved (a failed one rolls back, key included).
 *
 * Every function accepts a NULL k or one without a key (k->on false):
 * the create goes on unkeyed. A transaction that is retried runs begin
 * and save again; both reset what the previous attempt left.
 */
#ifndef LIBS_IDEM_ONCE_H
#define LIBS_IDEM_ONCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "libs/base/err.h"
#include "libs/base/uuid.h"
#include "libs/db/db.h"
#include "libs/idem/idem.h"
#include "libs/idem/seal.h"
#include "libs/rpc/rpc.h"

#define IDEM_ONCE_PRINCIPAL_MAX 95
#define IDEM_ONCE_TTL_MS (24LL * 3600 * 1000) /* HTTP-API.md: 24 h */

/* A service's keyed create. Every pointer must outlive the calls. */
typedef struct idem_once_spec {
  const char *table;     /* "sync.idempotency" (idem.h's shape) */
  const char *tag;       /* the request hash's: "sync.idem.v1" */
  const char *seal_tag;  /* the seal key's: "sync.idem.seal.v1" */
  const uint8_t *secret; /* IDEM_SECRET_LEN bytes the database never
                            holds (the service's own key); NULL: none */
  int64_t ttl_ms;        /* 0: IDEM_ONCE_TTL_MS */
} idem_once_spec;

/* Packs the created row (the store's type) into the serialised answer:
 * *out malloc'd (idem_once frees and wipes it), *len its size. Runs in
 * the transaction, again when it is retried. ERR_NOMEM. */
typedef int (*idem_once_pack_fn)(const void *row, void *arg, uint8_t **out,
                                 size_t *len);

/* One keyed call; idem_once_prepare fills it, idem_once_done clears it. */
typedef struct idem_once {
  bool on; /* the call carries a valid key */
  idem_once_pack_fn pack;
  void *pack_arg;
  idem_ref ref;
  uint8_t hash[IDEM_HASH_LEN];
  uint8_t seal[IDEM_SEAL_KEY_LEN];
  char tenant_id[UUID_STR_LEN + 1];
  char principal[IDEM_ONCE_PRINCIPAL_MAX + 1];
  /* What the last transaction found and made. */
  enum idem_outcome outcome;
  int code;        /* IDEM_REPLAY: the saved status */
  uint8_t *answer; /* in clear: replayed, or just saved */
  size_t len;
} idem_once;

/* Fills k for call in scope (tenant_id, principal), both copied. Without
 * a key: true, k->on false. A key that is not 1..255 printable
 * characters: INVALID_ARGUMENT naming idempotency_key; a principal too
 * long or a hash failure: INTERNAL; false then, the reply set. */
bool idem_once_prepare(idem_once *k, const idem_once_spec *s,
                       const rpc_call *call, const char *tenant_id,
                       const char *principal, rpc_reply *reply);

/* In the create's transaction, first: locks and reads the key. ERR_OK
 * and idem_once_fresh(k) false when the call is answered already
 * (replay, reuse, busy); ERR_INTERNAL when a saved answer does not open;
 * libs/db's errors. */
int idem_once_begin(db_conn *c, idem_once *k) WARN_UNUSED;

/* True when the create should go on (no key, or a new one). */
bool idem_once_fresh(const idem_once *k);

/* In the create's transaction, after the change: the answer of row
 * (k->pack) sealed and saved. ERR_EXISTS when a twin saved first (the
 * transaction must roll back; idem_once_reply answers ABORTED). */
int idem_once_save(db_conn *c, idem_once *k, const void *row) WARN_UNUSED;

/* After the store call that returned rc: answers the call from k when k
 * decides it - a replay (saved status and bytes), a reused key (400), a
 * busy key (409), or a new create (the saved bytes). True when it
 * answered; false: the caller answers from rc as without a key. */
bool idem_once_reply(idem_once *k, int rc, rpc_reply *reply);

/* Wipes and frees what k holds. NULL-safe; call once at the end. */
void idem_once_done(idem_once *k);

/* The usual pack: m serialised into *out (malloc'd). ERR_NOMEM. */
int idem_once_pack_message(const ProtobufCMessage *m, uint8_t **out,
                           size_t *len) WARN_UNUSED;

#endif
