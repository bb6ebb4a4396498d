/*
 * once.c - a keyed create in one transaction, its answer sealed (see
 * once.h). The storage is idem.c's, the sealing seal.c's; this file is
 * the order of the steps and the answers HTTP-API.md promises.
 */
#include "libs/idem/once.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/strutil.h"
#include "libs/svc/handler.h"

/* Drops what an earlier attempt (or call) left. */
static void forget(idem_once *k) {
  if (k->answer != NULL) sodium_memzero(k->answer, k->len);
  free(k->answer);
  k->answer = NULL;
  k->len = 0;
  k->code = 0;
  k->outcome = IDEM_NEW;
}

bool idem_once_prepare(idem_once *k, const idem_once_spec *s,
                       const rpc_call *call, const char *tenant_id,
                       const char *principal, rpc_reply *reply) {
  memset(k, 0, sizeof *k);
  const char *key = call->idempotency_key;
  if (key == NULL || key[0] == '\0') return true;
  if (!idem_key_valid(key)) {
    handler_reply_field(reply, RPC_INVALID_ARGUMENT, "invalid request",
                        "idempotency_key",
                        "must be 1 to 255 printable characters");
    return false;
  }
  if (strlen(principal) > IDEM_ONCE_PRINCIPAL_MAX ||
      strlen(tenant_id) > UUID_STR_LEN ||
      idem_hash(s->tag, call->method, call->payload, call->payload_len,
                k->hash) != ERR_OK ||
      idem_seal_key(s->secret, s->seal_tag, call->method, call->payload,
                    call->payload_len, k->seal) != ERR_OK) {
    rpc_reply_status(reply, RPC_INTERNAL, "cannot check the Idempotency-Key");
    return false;
  }
  str_copy(k->tenant_id, tenant_id, sizeof k->tenant_id);
  str_copy(k->principal, principal, sizeof k->principal);
  k->ref = (idem_ref){.table = s->table,
                      .tenant_id = k->tenant_id,
                      .principal = k->principal,
                      .key = key,
                      .method = call->method,
                      .hash = k->hash,
                      .ttl_ms = s->ttl_ms > 0 ? s->ttl_ms : IDEM_ONCE_TTL_MS};
  k->on = true;
  return true;
}

int idem_once_begin(db_conn *c, idem_once *k) {
  if (k == NULL || !k->on) return ERR_OK;
  forget(k);
  idem_found f;
  int rc = idem_begin(c, &k->ref, &f);
  if (rc != ERR_OK) return rc;
  k->outcome = f.outcome;
  if (f.outcome == IDEM_REPLAY) {
    k->code = f.code;
    rc = idem_unseal(k->seal, f.answer, f.len, &k->answer, &k->len);
    if (rc == ERR_INVAL) rc = ERR_INTERNAL; /* never "create again" */
  }
  idem_found_clear(&f);
  return rc;
}

bool idem_once_fresh(const idem_once *k) {
  return k == NULL || !k->on || k->outcome == IDEM_NEW;
}

int idem_once_save(db_conn *c, idem_once *k, const void *row) {
  if (k == NULL || !k->on) return ERR_OK;
  if (k->pack == NULL) return ERR_INVAL;
  forget(k);
  int rc = k->pack(row, k->pack_arg, &k->answer, &k->len);
  uint8_t *sealed = NULL;
  size_t len = 0;
  if (rc == ERR_OK) rc = idem_seal(k->seal, k->answer, k->len, &sealed, &len);
  if (rc == ERR_OK) rc = idem_save(c, &k->ref, 0, sealed, len);
  free(sealed);
  if (rc == ERR_EXISTS) k->outcome = IDEM_BUSY;
  return rc;
}

bool idem_once_reply(idem_once *k, int rc, rpc_reply *reply) {
  if (k == NULL || !k->on) return false;
  if (k->outcome == IDEM_BUSY) {
    rpc_reply_status(reply, RPC_ABORTED,
                     "a request with this Idempotency-Key is still running");
    return true;
  }
  if (rc != ERR_OK) return false;
  if (k->outcome == IDEM_REUSED) {
    handler_reply_field(reply, RPC_INVALID_ARGUMENT,
                        "the Idempotency-Key was used for another request",
                        "idempotency_key", "was used for another request");
    return true;
  }
  if (k->answer == NULL) return false; /* nothing saved: answer as usual */
  if (k->outcome == IDEM_REPLAY) rpc_reply_status(reply, k->code, NULL);
  if (rpc_reply_set_payload(reply, k->answer, k->len) != ERR_OK)
    rpc_reply_status(reply, RPC_RESOURCE_EXHAUSTED, "answer too large");
  return true;
}

void idem_once_done(idem_once *k) {
  if (k == NULL) return;
  forget(k);
  sodium_memzero(k->seal, sizeof k->seal);
}

int idem_once_pack_message(const ProtobufCMessage *m, uint8_t **out,
                           size_t *len) {
  size_t n = protobuf_c_message_get_packed_size(m);
  *out = malloc(n ? n : 1);
  *len = 0;
  if (*out == NULL) return ERR_NOMEM;
  protobuf_c_message_pack(m, *out);
  *len = n;
  return ERR_OK;
}
