/*
 * recipients.c - auth.v1.Auth/ListRecipients, page by page (see
 * recipients.h). Idempotent reads: the client may retry them.
 */
#include "services/notifications/recipients.h"

#include <stdlib.h>
#include <string.h>

#include "libs/base/strutil.h"
#include "libs/obs/log.h"
#include "proto/auth/v1/auth.pb-c.h"

#define METHOD "auth.v1.Auth/ListRecipients"
#define PAGE 500
#define DEADLINE_MS 5000

void recipients_free(recipients *l) {
  if (l == NULL) return;
  free(l->v);
  l->v = NULL;
  l->n = 0;
}

static int append(recipients *out, size_t max, const Auth__V1__User *u) {
  if (out->n >= max) return ERR_OK;
  if (out->n % PAGE == 0) {
    recipient *v = realloc(out->v, (out->n + PAGE) * sizeof *v);
    if (v == NULL) return ERR_NOMEM;
    out->v = v;
  }
  recipient *r = &out->v[out->n++];
  memset(r, 0, sizeof *r);
  str_copy(r->id, u->id, sizeof r->id);
  str_copy(r->email, u->email, sizeof r->email);
  str_copy(r->name, u->name, sizeof r->name);
  /* A number that does not fit is not one (auth keeps E.164 only). */
  if (strlen(u->phone) <= RECIPIENT_PHONE_MAX)
    str_copy(r->phone, u->phone, sizeof r->phone);
  str_copy(r->role, u->role, sizeof r->role);
  return ERR_OK;
}

/* One page after cursor (updated to the next one, "" at the end). */
static int page(rpc_client *auth, Auth__V1__ListRecipientsRequest *req,
                size_t max, recipients *out, char cursor[UUID_STR_LEN + 1]) {
  rpc_call_options o = RPC_CALL_OPTIONS_INIT;
  o.deadline_ms = DEADLINE_MS;
  o.idempotent = true;
  o.tenant_id = req->tenant_id;
  req->cursor = cursor;
  rpc_result *res = NULL;
  int rc = rpc_client_call_message(auth, METHOD, &req->base, &o, &res);
  if (rc == ERR_OK && res->code != RPC_OK) {
    log_warn("auth refused ListRecipients", "message", res->message);
    rc = ERR_UNAVAILABLE;
  }
  Auth__V1__ListRecipientsResponse *resp =
      rc == ERR_OK ? auth__v1__list_recipients_response__unpack(
                         NULL, res->payload_len, res->payload)
                   : NULL;
  if (rc == ERR_OK && resp == NULL) rc = ERR_PROTO;
  for (size_t i = 0; rc == ERR_OK && i < resp->n_users; i++)
    rc = append(out, max, resp->users[i]);
  if (rc == ERR_OK) str_copy(cursor, resp->next_cursor, UUID_STR_LEN + 1);
  if (resp != NULL)
    auth__v1__list_recipients_response__free_unpacked(resp, NULL);
  rpc_result_free(res);
  return rc;
}

static int list(rpc_client *auth, Auth__V1__ListRecipientsRequest *req,
                size_t max, recipients *out) {
  memset(out, 0, sizeof *out);
  char cursor[UUID_STR_LEN + 1] = "";
  int rc = ERR_OK;
  do {
    rc = page(auth, req, max, out, cursor);
  } while (rc == ERR_OK && cursor[0] != '\0' && out->n < max);
  if (rc != ERR_OK) recipients_free(out);
  return rc;
}

int recipients_by_role(rpc_client *auth, const char *tid,
                       const char *const *roles, size_t nroles, size_t max,
                       recipients *out) {
  Auth__V1__ListRecipientsRequest req = AUTH__V1__LIST_RECIPIENTS_REQUEST__INIT;
  req.tenant_id = (char *)tid;
  req.roles = (char **)roles;
  req.n_roles = nroles;
  req.limit = PAGE;
  return list(auth, &req, max, out);
}

int recipients_page(rpc_client *auth, const char *tid, const char *const *roles,
                    size_t nroles, const char *cursor, size_t limit,
                    recipients *out, char next[UUID_STR_LEN + 1]) {
  memset(out, 0, sizeof *out);
  Auth__V1__ListRecipientsRequest req = AUTH__V1__LIST_RECIPIENTS_REQUEST__INIT;
  req.tenant_id = (char *)tid;
  req.roles = (char **)roles;
  req.n_roles = nroles;
  req.limit = (uint32_t)limit;
  str_copy(next, cursor, UUID_STR_LEN + 1);
  int rc = page(auth, &req, limit, out, next);
  if (rc != ERR_OK) recipients_free(out);
  return rc;
}

int recipients_user(rpc_client *auth, const char *tid, const char *uid,
                    recipients *out) {
  Auth__V1__ListRecipientsRequest req = AUTH__V1__LIST_RECIPIENTS_REQUEST__INIT;
  req.tenant_id = (char *)tid;
  req.user_id = (char *)uid;
  return list(auth, &req, 1, out);
}
