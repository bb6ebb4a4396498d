/*
 * keyed.h - Idempotency-Key for the tenants service's creates
 * (CreateTenant, AddDomain), over libs/idem's table tenants.idempotency.
 *
 * Both are sagas or multi-step (CreateTenant calls auth between its
 * transactions), so the key is claimed in a transaction of its own
 * before the work (a twin meanwhile: ABORTED, HTTP 409), and the answer
 * saved after it (or the claim released on failure: a refused request
 * changed nothing and may be retried, also with the same key). A crash
 * between the two leaves the claim until its lease ends - or until a
 * retry of the same call takes it over and resumes the work (the claim
 * notes what the work makes: CreateTenant's tenant id; see keyed_begin).
 *
 * Scopes. AddDomain: the caller's tenant and user id, like orders.
 * CreateTenant is anonymous: there is no user yet and the client address
 * is not in the envelope (and is shared behind NAT, unstable on mobile
 * networks), so its keys are scoped by the nil tenant id and the slug the
 * request asks for ("slug:<slug>"): the one thing a create names that is
 * unique, and which the client itself chose. Two clients can only meet
 * under one key if they ask for the same slug - and then only one could
 * have won anyway. A replay needs the identical body, owner password
 * included, so it tells nothing to someone who does not already know it.
 *
 * Saved answers are sealed. CreateTenant's answer holds the owner's
 * access and refresh tokens; they must not sit readable in the database.
 * The answer is encrypted (crypto_secretbox) under a key derived from the
 * request itself (BLAKE2b-256 of a tag different from the request hash's
 * tag, the method and the payload), which the database never holds: only
 * a caller presenting the same body can open it. (What a database reader
 * can still do: guess the owner's password offline against the request
 * hash, a fast hash, for the key's lifetime - see docs/SECURITY.md.)
 */
#ifndef TENANTS_KEYED_H
#define TENANTS_KEYED_H

#include <stdbool.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "libs/idem/idem.h"
#include "libs/rpc/rpc.h"
#include "services/tenants/store.h"

#define KEYED_TAG "tenants.idem.v1"
#define KEYED_SEAL_TAG "tenants.idem.seal.v1"
#define KEYED_NIL_TENANT "00000000-0000-0000-0000-000000000000"

#define KEYED_NOTE_MAX 63

/* One keyed call; zero-initialise. */
typedef struct keyed {
  bool on;                       /* the call has a key and it is claimed */
  bool resumed;                  /* took over its own earlier attempt's claim */
  char note[KEYED_NOTE_MAX + 1]; /* resumed: the claim's note */
  bool tenant_scope;
  idem_ref ref;
  uint8_t hash[IDEM_HASH_LEN];
  uint8_t seal[32]; /* the answer's key (wiped by keyed_done) */
  char tenant_id[UUID_STR_LEN + 1];
  char principal[96];
} keyed;

/* Before the work. tenant_id NULL: anonymous (directory scope, nil
 * tenant). Without a key: true, k->on false. Otherwise validates the key
 * and claims it (with note, the work's own id, or NULL): true to go on;
 * false when the reply is already set - a replay (the first answer,
 * opened), INVALID_ARGUMENT (bad key, or the key used for another
 * request), ABORTED (the first call still runs) or a database failure.
 *
 * Failover: a retry of the call (attempt > 1: an earlier attempt may
 * have reached a replica that died mid-work, leaving its claim behind)
 * takes that claim over instead of waiting for its lease: true, with
 * k->resumed set and k->note the claim's note, and the caller carries on
 * the same work (which must therefore be safe to resume: every step
 * idempotent by the note). */
bool keyed_begin(keyed *k, store *st, const rpc_call *call,
                 const char *tenant_id, const char *principal, int64_t ttl_ms,
                 const char *note, rpc_reply *reply);

/* The work succeeded: answers m, and with a key saves it (sealed). */
void keyed_reply(keyed *k, store *st, rpc_reply *reply,
                 const ProtobufCMessage *m);

/* The work failed (the reply says how): the claim is released. */
void keyed_fail(keyed *k, store *st);

/* The work's outcome is unknown (a twin of the call may still be
 * running it): the claim is kept - a retry takes it over and resumes,
 * or the lease lapses. */
void keyed_keep(keyed *k);

/* Wipes k's secrets. Always call once at the end. */
void keyed_done(keyed *k);

#endif
