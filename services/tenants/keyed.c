/*
 * keyed.c - claims, replays and sealed answers for the tenants service's
 * Idempotency-Key (see keyed.h for the scopes and why answers are sealed).
 *
 * Sealing is libs/idem's (seal.h): the seal key is derived from the
 * request alone (no service secret: the body carries the owner's
 * password, which the database never holds). A saved answer that does
 * not open is an internal error, never "go on and create again".
 */
#include "services/tenants/keyed.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/strutil.h"
#include "libs/idem/seal.h"
#include "libs/obs/log.h"
#include "libs/svc/handler.h"

#define LEASE_MARGIN_MS 5000

/* The seal key: a different tag than the request hash's, same input. */
static int seal_key(const rpc_call *call, uint8_t out[32]) {
  return idem_seal_key(NULL, KEYED_SEAL_TAG, call->method, call->payload,
                       call->payload_len, out);
}

static void replay(keyed *k, const idem_found *f, rpc_reply *reply) {
  uint8_t *plain = NULL;
  size_t n = 0;
  if (idem_unseal(k->seal, f->answer, f->len, &plain, &n) != ERR_OK) {
    rpc_reply_status(reply, RPC_INTERNAL, "cannot replay the answer");
    return;
  }
  rpc_reply_status(reply, f->code, NULL);
  if (rpc_reply_set_payload(reply, plain, n) != ERR_OK)
    rpc_reply_status(reply, RPC_RESOURCE_EXHAUSTED, "answer too large");
  sodium_memzero(plain, n);
  free(plain);
}

/* Answers what idem_begin found when it is not IDEM_NEW. */
static void answer_found(keyed *k, const idem_found *f, rpc_reply *reply) {
  switch (f->outcome) {
  case IDEM_REPLAY:
    replay(k, f, reply);
    break;
  case IDEM_REUSED:
    handler_reply_field(reply, RPC_INVALID_ARGUMENT,
                        "the Idempotency-Key was used for another request",
                        "idempotency_key", "was used for another request");
    break;
  default:
    rpc_reply_status(reply, RPC_ABORTED,
                     "a request with this Idempotency-Key is still running");
    break;
  }
}

static bool prepare(keyed *k, const rpc_call *call, const char *tenant_id,
                    const char *principal, int64_t ttl_ms, rpc_reply *reply) {
  if (!idem_key_valid(call->idempotency_key)) {
    handler_reply_field(reply, RPC_INVALID_ARGUMENT, "invalid request",
                        "idempotency_key",
                        "must be 1 to 255 printable characters");
    return false;
  }
  k->tenant_scope = tenant_id != NULL;
  str_copy(k->tenant_id, tenant_id ? tenant_id : KEYED_NIL_TENANT,
           sizeof k->tenant_id);
  str_copy(k->principal, principal, sizeof k->principal);
  if (idem_hash(KEYED_TAG, call->method, call->payload, call->payload_len,
                k->hash) != ERR_OK ||
      seal_key(call, k->seal) != ERR_OK) {
    rpc_reply_status(reply, RPC_INTERNAL, "cannot hash the request");
    return false;
  }
  k->ref = (idem_ref){.table = STORE_IDEM_TABLE,
                      .tenant_id = k->tenant_id,
                      .principal = k->principal,
                      .key = call->idempotency_key,
                      .method = call->method,
                      .hash = k->hash,
                      .ttl_ms = ttl_ms > 0 ? ttl_ms : 24LL * 3600 * 1000};
  return true;
}

/* A taken-over claim's note, as text (what this service notes is an id;
 * anything longer or not printable is not ours: no note). */
static void take_note(keyed *k, const idem_found *f) {
  k->resumed = true;
  if (f->len > 0 && f->len <= KEYED_NOTE_MAX &&
      str_is_printable((const char *)f->answer, f->len)) {
    memcpy(k->note, f->answer, f->len);
    k->note[f->len] = '\0';
  }
}

bool keyed_begin(keyed *k, store *st, const rpc_call *call,
                 const char *tenant_id, const char *principal, int64_t ttl_ms,
                 const char *note, rpc_reply *reply) {
  memset(k, 0, sizeof *k);
  if (call->idempotency_key[0] == '\0') return true;
  if (!prepare(k, call, tenant_id, principal, ttl_ms, reply)) return false;
  /* The claim outlives the call's deadline a little: a twin sent after
   * the deadline sees "still running" rather than racing the saga. */
  int64_t lease = rpc_call_time_left_ms(call) + LEASE_MARGIN_MS;
  if (lease < LEASE_MARGIN_MS)
    lease = LEASE_MARGIN_MS; /* a passed deadline: the margin still */
  idem_found f;
  int rc = store_idem_start(st, &k->ref, k->tenant_scope, lease,
                            call->attempt > 1, note, &f);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "check the Idempotency-Key");
    return false;
  }
  if (f.outcome == IDEM_NEW) {
    k->on = true;
    if (f.pending) take_note(k, &f);
    idem_found_clear(&f);
    return true;
  }
  answer_found(k, &f, reply);
  idem_found_clear(&f);
  return false;
}

void keyed_reply(keyed *k, store *st, rpc_reply *reply,
                 const ProtobufCMessage *m) {
  if (!k->on) {
    handler_reply_message(reply, m);
    return;
  }
  size_t n = protobuf_c_message_get_packed_size(m), len = 0;
  uint8_t *plain = malloc(n ? n : 1);
  uint8_t *sealed = NULL;
  if (plain != NULL) {
    protobuf_c_message_pack(m, plain);
    if (idem_seal(k->seal, plain, n, &sealed, &len) != ERR_OK) sealed = NULL;
  }
  /* The work is done: answer it even if the key cannot be saved (a
   * retry then finds the key free, and the create's own uniqueness -
   * slug, host - answers it). */
  if (sealed == NULL ||
      store_idem_save(st, &k->ref, k->tenant_scope, sealed, len) != ERR_OK) {
    log_warn("could not save an idempotent answer", "method", k->ref.method);
    keyed_fail(k, st);
  }
  handler_reply_message(reply, m);
  if (plain != NULL) sodium_memzero(plain, n);
  free(plain);
  free(sealed);
  k->on = false;
}

void keyed_fail(keyed *k, store *st) {
  if (!k->on) return;
  if (store_idem_release(st, &k->ref, k->tenant_scope) != ERR_OK)
    log_warn("could not release an Idempotency-Key claim; it lapses", "method",
             k->ref.method);
  k->on = false;
}

void keyed_keep(keyed *k) { k->on = false; }

void keyed_done(keyed *k) { sodium_memzero(k->seal, sizeof k->seal); }
