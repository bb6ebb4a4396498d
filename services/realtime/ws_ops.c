/*
 * ws_ops.c - the client's ops on an open connection (see ws.h and the
 * README's "WebSocket"): auth, refresh, subscribe, unsubscribe, history,
 * presence. Runs on the libwebsockets thread, like all of ws.c; the Redis
 * calls here (offsets, presence) are libs/cache's, bounded by its
 * timeouts.
 */
#include <stdlib.h>
#include <string.h>

#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "libs/obs/log.h"
#include "services/realtime/pub.h"
#include "services/realtime/ws_int.h"

/* ------------------------------------------------------- authentication --- */

/* Verifies token into *cl, or asks for a close and returns false: 4001
 * for a missing, bad or expired token (and at the first auth for any
 * refusal); on a live connection (refresh) 4003 for a revoked one or a
 * suspended tenant; 1011 when the verifier cannot decide. */
static bool verified(ws_server *s, conn *c, const char *token, bool live,
                     paseto_claims *cl) {
  enum authn_result why = AUTHN_MISSING;
  int rc = token == NULL || token[0] == '\0'
               ? ERR_INVAL
               : authn_verify(s->c.verifier, token, strlen(token), cl, &why);
  if (rc == ERR_OK && strlen(cl->sub) <= UUID_STR_LEN &&
      strlen(cl->tid) <= UUID_STR_LEN && strlen(cl->role) < ROLE_MAX)
    return true;
  log_info("websocket token refused", "reason", authn_result_str(why));
  ws_conn_close(
      c, rc == ERR_UNAVAILABLE ? LWS_CLOSE_STATUS_UNEXPECTED_CONDITION
         : live && (why == AUTHN_REVOKED || why == AUTHN_TENANT_SUSPENDED)
             ? CLOSE_FORBIDDEN
             : CLOSE_AUTH);
  return false;
}

/* Takes the token's expiry (the connection's timer) and hands the token
 * to the recheck under a new generation. */
static bool track_token(ws_server *s, conn *c, const char *token,
                        const paseto_claims *cl) {
  c->exp_ms = cl->exp_ms;
  int64_t left_ms = cl->exp_ms - time_now_ms();
  lws_set_timer_usecs(c->wsi, (lws_usec_t)(left_ms > 0 ? left_ms : 0) * 1000);
  c->token_gen++;
  if (recheck_put(s->recheck, c->id, c->token_gen, token) == ERR_OK)
    return true;
  ws_conn_close(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION);
  return false;
}

static json_t *expires_at(int64_t exp_ms) {
  char exp[RFC3339_MS_LEN + 1];
  if (time_format_rfc3339(exp_ms, exp) != ERR_OK) exp[0] = '\0';
  return json_string(exp);
}

void ws_authenticate(ws_server *s, conn *c, const char *token, json_t *id) {
  paseto_claims cl;
  if (!verified(s, c, token, false, &cl)) return;
  /* Lengths checked by verified: these copies never cut. */
  str_copy(c->user_id, cl.sub, sizeof c->user_id);
  str_copy(c->tenant_id, cl.tid, sizeof c->tenant_id);
  str_copy(c->role, cl.role, sizeof c->role);
  if (!track_token(s, c, token, &cl)) return;
  c->authed = true;
  json_t *v = ws_with_id(json_pack("{s:s}", "op", "ready"), id);
  if (v != NULL)
    json_object_update_new(
        v, json_pack("{s:s, s:s, s:s, s:s, s:o}", "client_id", c->client_id,
                     "user_id", c->user_id, "tenant_id", c->tenant_id, "role",
                     c->role, "expires_at", expires_at(cl.exp_ms)));
  ws_send_json(s, c, v);
}

/* Every subscription still allowed to who? */
static bool subs_allowed(ws_server *s, conn *c, const channel_who *who) {
  for (size_t i = 0; c->subs != NULL && i < s->c.max_subscriptions; i++)
    if (c->subs[i].channel != NULL &&
        channel_authorize(c->subs[i].channel, who) != CHANNEL_OK)
      return false;
  return true;
}

/* refresh: the same user of the same tenant with a new token (4003
 * otherwise, also when the new role no longer allows a subscription);
 * expiry and the revocation recheck then follow the new token. */
static void op_refresh(ws_server *s, conn *c, json_t *req, json_t *id) {
  const char *token = json_string_value(json_object_get(req, "token"));
  paseto_claims cl;
  if (!verified(s, c, token, true, &cl)) return;
  channel_who who = {cl.sub, cl.tid, cl.role};
  if (strcmp(cl.sub, c->user_id) != 0 || strcmp(cl.tid, c->tenant_id) != 0 ||
      !subs_allowed(s, c, &who)) {
    log_info("websocket refresh with another identity: closing", "client_id",
             c->client_id);
    ws_conn_close(c, CLOSE_FORBIDDEN);
    return;
  }
  str_copy(c->role, cl.role, sizeof c->role);
  if (!track_token(s, c, token, &cl)) return;
  json_t *v = ws_with_id(json_pack("{s:s}", "op", "refreshed"), id);
  if (v != NULL) json_object_set_new(v, "expires_at", expires_at(cl.exp_ms));
  ws_send_json(s, c, v);
}

/* ----------------------------------------------------------------- ops --- */

/* The channel of req, authorised for c (an error is sent otherwise). */
static const char *authorised_channel(ws_server *s, conn *c, json_t *req,
                                      json_t *id) {
  const char *channel = json_string_value(json_object_get(req, "channel"));
  channel_who who = {c->user_id, c->tenant_id, c->role};
  enum channel_verdict v = channel_authorize(channel, &who);
  if (v == CHANNEL_OK) return channel;
  ws_send_error(s, c, id, channel_verdict_code(v),
                v == CHANNEL_DENIED      ? "not allowed on this channel"
                : v == CHANNEL_NOT_FOUND ? "no such channel"
                                         : "bad channel name");
  return NULL;
}

/* Staff and above only (history, presence); an error is sent otherwise. */
static bool staff_only(ws_server *s, conn *c, json_t *id, const char *what) {
  channel_who who = {c->user_id, c->tenant_id, c->role};
  if (channel_is_staff(&who)) return true;
  ws_send_error(s, c, id, "PERMISSION_DENIED", what);
  return false;
}

/* {"offset":N,"epoch":"…"} (recover, since): false when malformed. */
static bool position(json_t *p, int64_t *offset, const char **epoch) {
  json_t *o = json_object_get(p, "offset");
  *epoch = json_string_value(json_object_get(p, "epoch"));
  if (!json_is_integer(o) || json_integer_value(o) < 0 || *epoch == NULL ||
      strlen(*epoch) > OFFSETS_EPOCH_MAX)
    return false;
  *offset = (int64_t)json_integer_value(o);
  return true;
}

/* The publications of h as the pub frames they were (or would have been)
 * when sent live, so a client handles both alike. NULL: out of memory or
 * an entry that is not JSON. */
static json_t *publications(const char *channel, const offsets_history *h) {
  json_t *a = json_array();
  for (size_t i = 0; a != NULL && i < h->n; i++) {
    char *text = NULL;
    size_t len = 0;
    json_t *f = NULL;
    if (pub_frame_text(channel, h->pubs[i].offset, h->epoch, h->pubs[i].event,
                       h->pubs[i].len, &text, &len) == ERR_OK)
      f = json_loadb(text, len, 0, NULL);
    free(text);
    if (f == NULL || json_array_append_new(a, f) != 0) {
      json_decref(a);
      a = NULL;
    }
  }
  return a;
}

/* Best effort: presence is a view, a subscription works without it. */
static void presence_enter(ws_server *s, conn *c, const char *channel) {
  const char *cl[] = {c->client_id}, *us[] = {c->user_id};
  int rc = presence_join(s->c.presence, channel, cl, us, 1);
  if (rc != ERR_OK) log_warn("presence not recorded", "error", err_str(rc));
}

static void send_subscribed(ws_server *s, conn *c, json_t *id,
                            const char *channel, const offsets_history *h,
                            bool recovered, json_t *pubs) {
  json_t *r = ws_with_id(json_pack("{s:s}", "op", "subscribed"), id);
  if (r != NULL)
    json_object_update_new(
        r, json_pack("{s:s, s:I, s:s, s:b, s:o}", "channel", channel, "offset",
                     (json_int_t)h->offset, "epoch", h->epoch, "recovered",
                     recovered, "publications", pubs));
  else
    json_decref(pubs);
  ws_send_json(s, c, r);
}

/*
 * subscribe, with or without recover.
 *
 * No gap, no duplicate. Everything here runs on the one libwebsockets
 * thread, and so does delivery (ws.c, drain_inbox): while this function
 * runs no publication reaches any connection. One Redis script reads the
 * channel's offset O, its epoch and (with recover) the history after the
 * client's offset, atomically with respect to offsets_next, which gives an
 * offset and writes the history in one script too. So every publication
 * is either <= O - taken before the read, hence in the recovered
 * `publications` (or at/before the client's own offset) - or > O, taken
 * after the read: the bus thread hands it to the inbox only after
 * offsets_next returned, the inbox is drained on this thread after this
 * function, when the subscription exists, so it is delivered as a pub.
 * What remains is a publication <= O still in the inbox (taken before the
 * read, not yet delivered): it was recovered, or is before the position
 * the client was told, so it must not be sent again. The subscription
 * therefore remembers (O, epoch) and delivery sends only what
 * offsets_is_new says is later. Without recover the same holds: the
 * client starts at O.
 */
static void op_subscribe(ws_server *s, conn *c, json_t *req, json_t *id) {
  const char *channel = authorised_channel(s, c, req, id);
  if (channel == NULL) return;
  json_t *rec = json_object_get(req, "recover");
  int64_t since = -1;
  const char *epoch = NULL;
  if (rec != NULL && !json_is_null(rec) && !position(rec, &since, &epoch)) {
    ws_send_error(s, c, id, "INVALID_ARGUMENT",
                  "recover needs an offset (>= 0) and an epoch");
    return;
  }
  bool existing = ws_find_sub(s, c, channel) != NULL;
  if (existing) since = -1; /* live already: recovering would repeat */
  if (!existing && c->nsubs >= s->c.max_subscriptions) {
    ws_send_error(s, c, id, "INVALID_ARGUMENT", "too many subscriptions");
    return;
  }
  offsets_history h;
  int rc;
  if (since >= 0)
    rc = offsets_read(s->c.offsets, channel, since, epoch, 0, &h);
  else {
    memset(&h, 0, sizeof h);
    rc = offsets_current(s->c.offsets, channel, &h.offset, h.epoch);
  }
  json_t *pubs = rc != ERR_OK ? NULL
                 : h.complete ? publications(channel, &h)
                              : json_array();
  /* An existing subscription keeps its position. */
  if (pubs != NULL && !existing &&
      ws_add_sub(s, c, channel, h.offset, h.epoch) != ERR_OK) {
    json_decref(pubs);
    pubs = NULL;
  }
  if (pubs == NULL) {
    offsets_history_free(&h);
    ws_send_error(s, c, id, "UNAVAILABLE", "try again later");
    return;
  }
  if (!existing) presence_enter(s, c, channel);
  send_subscribed(s, c, id, channel, &h, since >= 0 && h.complete, pubs);
  offsets_history_free(&h);
}

/* history (staff and above): the publications after since in its epoch
 * (none when the epoch is not the channel's: positions do not carry over
 * epochs), or the last ones; at most limit. */
static void op_history(ws_server *s, conn *c, json_t *req, json_t *id) {
  if (!staff_only(s, c, id, "history is for staff")) return;
  const char *channel = authorised_channel(s, c, req, id);
  if (channel == NULL) return;
  json_t *since_v = json_object_get(req, "since"),
         *limit_v = json_object_get(req, "limit");
  int64_t since = -1;
  const char *epoch = NULL;
  if ((since_v != NULL && !json_is_null(since_v) &&
       !position(since_v, &since, &epoch)) ||
      (limit_v != NULL &&
       (!json_is_integer(limit_v) || json_integer_value(limit_v) < 1 ||
        json_integer_value(limit_v) > WS_HISTORY_LIMIT))) {
    ws_send_error(
        s, c, id, "INVALID_ARGUMENT",
        "since needs an offset and an epoch; limit 1.." WS_HISTORY_LIMIT_STR);
    return;
  }
  size_t limit =
      limit_v != NULL ? (size_t)json_integer_value(limit_v) : WS_HISTORY_LIMIT;
  offsets_history h;
  int rc = offsets_read(s->c.offsets, channel, since, epoch, limit, &h);
  json_t *pubs = rc == ERR_OK ? publications(channel, &h) : NULL;
  if (pubs == NULL) {
    offsets_history_free(&h);
    ws_send_error(s, c, id, "UNAVAILABLE", "try again later");
    return;
  }
  json_t *r = ws_with_id(json_pack("{s:s}", "op", "history"), id);
  if (r != NULL)
    json_object_update_new(r,
                           json_pack("{s:s, s:I, s:s, s:o}", "channel", channel,
                                     "offset", (json_int_t)h.offset, "epoch",
                                     h.epoch, "publications", pubs));
  else
    json_decref(pubs);
  offsets_history_free(&h);
  ws_send_json(s, c, r);
}

/* presence (staff and above): every replica's live clients of the
 * channel, from Redis (presence.h). */
static void op_presence(ws_server *s, conn *c, json_t *req, json_t *id) {
  if (!staff_only(s, c, id, "presence is for staff")) return;
  const char *channel = authorised_channel(s, c, req, id);
  if (channel == NULL) return;
  presence_client *pc = NULL;
  size_t n = 0;
  json_t *a = presence_list(s->c.presence, channel, &pc, &n) == ERR_OK
                  ? json_array()
                  : NULL;
  for (size_t i = 0; a != NULL && i < n; i++)
    if (json_array_append_new(a, json_pack("{s:s, s:s}", "client_id",
                                           pc[i].client_id, "user_id",
                                           pc[i].user_id)) != 0) {
      json_decref(a);
      a = NULL;
    }
  free(pc);
  if (a == NULL) {
    ws_send_error(s, c, id, "UNAVAILABLE", "try again later");
    return;
  }
  json_t *r = ws_with_id(json_pack("{s:s}", "op", "presence"), id);
  if (r != NULL)
    json_object_update_new(
        r, json_pack("{s:s, s:o}", "channel", channel, "clients", a));
  else
    json_decref(a);
  ws_send_json(s, c, r);
}

static void op_unsubscribe(ws_server *s, conn *c, json_t *req, json_t *id) {
  const char *channel = json_string_value(json_object_get(req, "channel"));
  if (channel == NULL) {
    ws_send_error(s, c, id, "INVALID_ARGUMENT", "channel is required");
    return;
  }
  sub *b = ws_find_sub(s, c, channel);
  if (b != NULL) ws_remove_sub(s, c, b, true);
  json_t *r = ws_with_id(json_pack("{s:s}", "op", "unsubscribed"), id);
  if (r != NULL) json_object_set_new(r, "channel", json_string(channel));
  ws_send_json(s, c, r);
}

typedef void (*op_fn)(ws_server *, conn *, json_t *, json_t *);

static const struct {
  const char *name;
  op_fn fn;
} kOps[] = {
    {"subscribe", op_subscribe}, {"unsubscribe", op_unsubscribe},
    {"history", op_history},     {"presence", op_presence},
    {"refresh", op_refresh},
};

/* One complete client message. */
void ws_handle_message(ws_server *s, conn *c, const char *text, size_t len) {
  json_t *req = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
  json_t *id = json_object_get(req, "id");
  const char *op = json_string_value(json_object_get(req, "op"));
  op_fn fn = NULL;
  for (size_t i = 0; op != NULL && i < sizeof kOps / sizeof kOps[0]; i++)
    if (strcmp(op, kOps[i].name) == 0) fn = kOps[i].fn;
  if (!c->authed) {
    if (op != NULL && strcmp(op, "auth") == 0)
      ws_authenticate(s, c, json_string_value(json_object_get(req, "token")),
                      id);
    else
      ws_conn_close(c, CLOSE_AUTH);
  } else if (op == NULL) {
    ws_send_error(s, c, id, "INVALID_ARGUMENT", "not a JSON object with an op");
  } else if (fn != NULL) {
    fn(s, c, req, id);
  } else {
    ws_send_error(s, c, id, "INVALID_ARGUMENT", "unknown or unsupported op");
  }
  json_decref(req);
}
