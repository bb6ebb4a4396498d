/*
 * campaign_handlers.c - the campaigns' methods (handlers.h, same shape as
 * handlers.c): Create, List, Get, Update, Delete, Send, admin and owner
 * only (the declared role), the tenant from the verified token. A
 * campaign of another tenant is NOT_FOUND; a change its status refuses is
 * FAILED_PRECONDITION naming "status". Sending itself is campaign.c's.
 * CreateCampaign honours Idempotency-Key as CreateWebhook does
 * (handlers.c; libs/idem/once.h).
 */
#include <stdlib.h>
#include <string.h>

#include "libs/authn/authn_caller.h"
#include "libs/base/cursor.h"
#include "libs/base/timeutil.h"
#include "libs/base/utf8.h"
#include "proto/notifications/v1/notifications.pb-c.h"
#include "services/notifications/handlers_internal.h"
#include "services/notifications/store_campaigns.h"

#define REQUEST_MAX (64 * 1024)

static const char *const kChannels[] = {"in_app", "email", "sms"};
static const char *const kRoles[] = {"owner", "admin", "staff", "customer"};

static bool admin(notifications *h, const rpc_call *call, rpc_reply *reply,
                  paseto_claims *cl) {
  return authn_check_call(h->c.verifier, call, handler_min_rank(call), cl,
                          reply) == ERR_OK;
}

/* ------------------------------------------------------------ rules --- */

static void check_text(const char *s, size_t min, size_t max, unsigned flags,
                       const char *field, vlist *v) {
  const char *why = NULL;
  if (utf8_check_text(s, min, max, flags, &why) != ERR_OK)
    vlist_add(v, why, "%s", field);
}

/* A list drawn from allowed[0..nallowed), distinct, 1..nallowed long
 * (when required; 0 allowed otherwise). */
static void check_set(char *const *items, size_t n, const char *const *allowed,
                      size_t nallowed, bool required, const char *field,
                      vlist *v) {
  if (n == 0) {
    if (required) vlist_add(v, "is required", "%s", field);
    return;
  }
  if (n > nallowed) {
    vlist_add(v, "has too many entries", "%s", field);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    bool known = false;
    for (size_t k = 0; k < nallowed; k++)
      known = known || strcmp(items[i], allowed[k]) == 0;
    if (!known) vlist_add(v, "is not allowed here", "%s[%zu]", field, i);
    for (size_t j = 0; j < i; j++)
      if (strcmp(items[i], items[j]) == 0)
        vlist_add(v, "is a duplicate", "%s[%zu]", field, i);
  }
}

/* "" -> 0; else a time in the future (into *ms). */
static void check_when(const char *s, int64_t *ms, vlist *v) {
  *ms = 0;
  if (s[0] == '\0') return;
  if (time_parse_rfc3339(s, strlen(s), ms) != ERR_OK)
    vlist_add(v, "must be an RFC 3339 time", "scheduled_at");
  else if (*ms <= time_now_ms())
    vlist_add(v, "must be in the future", "scheduled_at");
}

/* ------------------------------------------------------------- wire --- */

typedef struct wire_campaign {
  Notifications__V1__Campaign pb;
  Notifications__V1__Audience audience;
  Notifications__V1__CampaignStats stats;
  char *channels[CAMPAIGN_CHANNELS_MAX];
  char *roles[CAMPAIGN_ROLES_MAX];
} wire_campaign;

static void campaign_pb(const store_campaign *c, wire_campaign *w) {
  notifications__v1__campaign__init(&w->pb);
  notifications__v1__audience__init(&w->audience);
  notifications__v1__campaign_stats__init(&w->stats);
  for (size_t i = 0; i < c->nchannels; i++)
    w->channels[i] = (char *)c->channels[i];
  for (size_t i = 0; i < c->nroles; i++) w->roles[i] = (char *)c->roles[i];
  w->audience.n_roles = c->nroles;
  w->audience.roles = w->roles;
  w->stats.targeted = c->targeted;
  w->stats.delivered = c->delivered;
  w->stats.failed = c->failed;
  w->pb.id = (char *)c->id;
  w->pb.name = (char *)c->name;
  w->pb.title = (char *)c->title;
  w->pb.body = (char *)c->body;
  w->pb.n_channels = c->nchannels;
  w->pb.channels = w->channels;
  w->pb.audience = &w->audience;
  w->pb.status = (char *)c->status;
  w->pb.scheduled_at = (char *)c->scheduled_at;
  w->pb.sent_at = (char *)c->sent_at;
  w->pb.stats = &w->stats;
  w->pb.created_at = (char *)c->created_at;
  w->pb.updated_at = (char *)c->updated_at;
}

#define SAME_LAYOUT(T)                                                         \
  _Static_assert(                                                              \
      sizeof(T) == sizeof(Notifications__V1__GetCampaignResponse) &&           \
          offsetof(T, campaign) ==                                             \
              offsetof(Notifications__V1__GetCampaignResponse, campaign),      \
      #T " differs from GetCampaignResponse")
SAME_LAYOUT(Notifications__V1__CreateCampaignResponse);
SAME_LAYOUT(Notifications__V1__UpdateCampaignResponse);

/* Create, Get and Update answer {Campaign campaign = 1}: one C layout
 * (checked above) under each one's descriptor. */
static void reply_campaign(rpc_reply *reply, const store_campaign *c,
                           const ProtobufCMessageDescriptor *d) {
  wire_campaign w;
  campaign_pb(c, &w);
  Notifications__V1__GetCampaignResponse resp =
      NOTIFICATIONS__V1__GET_CAMPAIGN_RESPONSE__INIT;
  resp.base.descriptor = d;
  resp.campaign = &w.pb;
  handler_reply_message(reply, &resp.base);
}

static void reply_store_error(rpc_reply *reply, int rc, const char *what) {
  if (rc == ERR_CONFLICT)
    handler_reply_field(reply, RPC_FAILED_PRECONDITION,
                        "the campaign's status does not allow this", "status",
                        "must be draft or scheduled");
  else
    handler_reply_error(reply, rc, what);
}

/* ---------------------------------------------------------- methods --- */

/* CreateCampaign's answer as the key saves it: what reply_campaign sends. */
static int pack_created_campaign(const void *row, void *arg, uint8_t **out,
                                 size_t *len) {
  (void)arg;
  wire_campaign w;
  campaign_pb(row, &w);
  Notifications__V1__CreateCampaignResponse resp =
      NOTIFICATIONS__V1__CREATE_CAMPAIGN_RESPONSE__INIT;
  resp.campaign = &w.pb;
  return idem_once_pack_message(&resp.base, out, len);
}

static void create_campaign(void *arg, const rpc_call *call, rpc_reply *reply) {
  notifications *h = arg;
  store_campaign *c = NULL;
  idem_once k = {0};
  HANDLER_UNPACK(Notifications__V1__CreateCampaignRequest,
                 notifications__v1__create_campaign_request, req, REQUEST_MAX);
  paseto_claims cl;
  if (!admin(h, call, reply, &cl)) goto out;
  vlist v;
  vlist_init(&v);
  int64_t when = 0;
  check_text(req->name, 1, 200, 0, "name", &v);
  check_text(req->title, 1, 200, 0, "title", &v);
  check_text(req->body, 0, 2000, UTF8_MULTILINE | UTF8_BLANK_OK, "body", &v);
  check_set(req->channels, req->n_channels, kChannels, 3, true, "channels", &v);
  if (req->audience == NULL)
    vlist_add(&v, "is required", "audience.roles");
  else
    check_set(req->audience->roles, req->audience->n_roles, kRoles, 4, true,
              "audience.roles", &v);
  check_when(req->scheduled_at, &when, &v);
  if (v.n > 0) {
    handler_reply_invalid(reply, "invalid campaign", &v);
    goto out;
  }
  if (!notifications_idem_prepare(h, call, cl.tid, cl.sub, &k, reply)) goto out;
  k.pack = pack_created_campaign;
  store_campaign_in in = {.name = req->name,
                          .title = req->title,
                          .body = req->body,
                          .channels = (const char *const *)req->channels,
                          .nchannels = req->n_channels,
                          .roles = (const char *const *)req->audience->roles,
                          .nroles = req->audience->n_roles,
                          .scheduled_ms = when};
  c = malloc(sizeof *c);
  int rc = c == NULL ? ERR_NOMEM
                     : store_create_campaign(h->c.store, cl.tid, &in, &k, c);
  if (idem_once_reply(&k, rc, reply))
    ; /* replayed, refused, or the saved answer sent */
  else if (rc != ERR_OK)
    handler_reply_error(reply, rc, "create the campaign");
  else
    reply_campaign(reply, c,
                   &notifications__v1__create_campaign_response__descriptor);
out:
  idem_once_done(&k);
  free(c);
  notifications__v1__create_campaign_request__free_unpacked(req, NULL);
}

static void list_campaigns(void *arg, const rpc_call *call, rpc_reply *reply) {
  notifications *h = arg;
  store_campaigns l = {0};
  wire_campaign *w = NULL;
  Notifications__V1__Campaign **ptrs = NULL;
  HANDLER_UNPACK(Notifications__V1__ListCampaignsRequest,
                 notifications__v1__list_campaigns_request, req, 0);
  paseto_claims cl;
  char before[UUID_STR_LEN + 1];
  size_t limit = 0;
  vlist v;
  vlist_init(&v);
  if (!admin(h, call, reply, &cl)) goto out;
  notifications_page_args(req->limit, req->cursor, &v, &limit, before);
  if (v.n > 0) {
    handler_reply_invalid(reply, "invalid request", &v);
    goto out;
  }
  bool more = false;
  int rc = store_list_campaigns(h->c.store, cl.tid, before[0] ? before : NULL,
                                limit, &l, &more);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "list the campaigns");
    goto out;
  }
  w = calloc(l.n ? l.n : 1, sizeof *w);
  ptrs = calloc(l.n ? l.n : 1, sizeof *ptrs);
  if (w == NULL || ptrs == NULL) {
    rpc_reply_status(reply, RPC_RESOURCE_EXHAUSTED, "out of memory");
    goto out;
  }
  for (size_t i = 0; i < l.n; i++) {
    campaign_pb(&l.v[i], &w[i]);
    ptrs[i] = &w[i].pb;
  }
  char next[CURSOR_LEN + 1] = "";
  if (more && l.n > 0 && cursor_encode(l.v[l.n - 1].id, next) != ERR_OK)
    next[0] = '\0';
  Notifications__V1__ListCampaignsResponse resp =
      NOTIFICATIONS__V1__LIST_CAMPAIGNS_RESPONSE__INIT;
  resp.n_campaigns = l.n;
  resp.campaigns = ptrs;
  resp.next_cursor = next;
  handler_reply_message(reply, &resp.base);
out:
  free(w);
  free(ptrs);
  store_campaigns_free(&l);
  notifications__v1__list_campaigns_request__free_unpacked(req, NULL);
}

static void get_campaign(void *arg, const rpc_call *call, rpc_reply *reply) {
  notifications *h = arg;
  store_campaign *c = NULL;
  HANDLER_UNPACK(Notifications__V1__GetCampaignRequest,
                 notifications__v1__get_campaign_request, req, 0);
  paseto_claims cl;
  char id[UUID_STR_LEN + 1];
  if (!admin(h, call, reply, &cl) ||
      handler_uuid_arg(reply, "id", req->id, id) != ERR_OK)
    goto out;
  c = malloc(sizeof *c);
  int rc =
      c == NULL ? ERR_NOMEM : store_get_campaign(h->c.store, cl.tid, id, c);
  if (rc != ERR_OK)
    handler_reply_error(reply, rc, "read the campaign");
  else
    reply_campaign(reply, c,
                   &notifications__v1__get_campaign_response__descriptor);
out:
  free(c);
  notifications__v1__get_campaign_request__free_unpacked(req, NULL);
}

static void update_campaign(void *arg, const rpc_call *call, rpc_reply *reply) {
  notifications *h = arg;
  store_campaign *c = NULL;
  HANDLER_UNPACK(Notifications__V1__UpdateCampaignRequest,
                 notifications__v1__update_campaign_request, req, REQUEST_MAX);
  paseto_claims cl;
  char id[UUID_STR_LEN + 1];
  if (!admin(h, call, reply, &cl) ||
      handler_uuid_arg(reply, "id", req->id, id) != ERR_OK)
    goto out;
  bool has_name = req->name_present_case ==
                  NOTIFICATIONS__V1__UPDATE_CAMPAIGN_REQUEST__NAME_PRESENT_NAME;
  bool has_title =
      req->title_present_case ==
      NOTIFICATIONS__V1__UPDATE_CAMPAIGN_REQUEST__TITLE_PRESENT_TITLE;
  bool has_body = req->body_present_case ==
                  NOTIFICATIONS__V1__UPDATE_CAMPAIGN_REQUEST__BODY_PRESENT_BODY;
  vlist v;
  vlist_init(&v);
  int64_t when = 0;
  if (has_name) check_text(req->name, 1, 200, 0, "name", &v);
  if (has_title) check_text(req->title, 1, 200, 0, "title", &v);
  if (has_body)
    check_text(req->body, 0, 2000, UTF8_MULTILINE | UTF8_BLANK_OK, "body", &v);
  check_set(req->channels, req->n_channels, kChannels, 3, false, "channels",
            &v);
  size_t nroles = req->audience != NULL ? req->audience->n_roles : 0;
  if (nroles > 0)
    check_set(req->audience->roles, nroles, kRoles, 4, false, "audience.roles",
              &v);
  check_when(req->scheduled_at, &when, &v);
  if (v.n > 0) {
    handler_reply_invalid(reply, "invalid campaign", &v);
    goto out;
  }
  store_campaign_in in = {
      .name = has_name ? req->name : NULL,
      .title = has_title ? req->title : NULL,
      .body = has_body ? req->body : NULL,
      .channels = (const char *const *)req->channels,
      .nchannels = req->n_channels,
      .roles = nroles ? (const char *const *)req->audience->roles : NULL,
      .nroles = nroles,
      .scheduled_ms = when};
  c = malloc(sizeof *c);
  int rc = c == NULL ? ERR_NOMEM
                     : store_update_campaign(h->c.store, cl.tid, id, &in, c);
  if (rc != ERR_OK)
    reply_store_error(reply, rc, "update the campaign");
  else
    reply_campaign(reply, c,
                   &notifications__v1__update_campaign_response__descriptor);
out:
  free(c);
  notifications__v1__update_campaign_request__free_unpacked(req, NULL);
}

static void delete_campaign(void *arg, const rpc_call *call, rpc_reply *reply) {
  notifications *h = arg;
  HANDLER_UNPACK(Notifications__V1__DeleteCampaignRequest,
                 notifications__v1__delete_campaign_request, req, 0);
  paseto_claims cl;
  char id[UUID_STR_LEN + 1];
  if (!admin(h, call, reply, &cl) ||
      handler_uuid_arg(reply, "id", req->id, id) != ERR_OK)
    goto out;
  int rc = store_delete_campaign(h->c.store, cl.tid, id);
  if (rc != ERR_OK) {
    reply_store_error(reply, rc, "delete the campaign");
    goto out;
  }
  Notifications__V1__DeleteCampaignResponse resp =
      NOTIFICATIONS__V1__DELETE_CAMPAIGN_RESPONSE__INIT;
  handler_reply_message(reply, &resp.base);
out:
  notifications__v1__delete_campaign_request__free_unpacked(req, NULL);
}

static void send_campaign(void *arg, const rpc_call *call, rpc_reply *reply) {
  notifications *h = arg;
  HANDLER_UNPACK(Notifications__V1__SendCampaignRequest,
                 notifications__v1__send_campaign_request, req, 0);
  paseto_claims cl;
  char id[UUID_STR_LEN + 1];
  if (!admin(h, call, reply, &cl) ||
      handler_uuid_arg(reply, "id", req->id, id) != ERR_OK)
    goto out;
  int rc = store_send_campaign(h->c.store, cl.tid, id);
  if (rc != ERR_OK) {
    reply_store_error(reply, rc, "send the campaign");
    goto out;
  }
  Notifications__V1__SendCampaignResponse resp =
      NOTIFICATIONS__V1__SEND_CAMPAIGN_RESPONSE__INIT;
  handler_reply_message(reply, &resp.base);
out:
  notifications__v1__send_campaign_request__free_unpacked(req, NULL);
}

const handler_method notifications_campaign_methods[] = {
    {NOTIFICATIONS_METHOD("CreateCampaign"), create_campaign},
    {NOTIFICATIONS_METHOD("ListCampaigns"), list_campaigns},
    {NOTIFICATIONS_METHOD("GetCampaign"), get_campaign},
    {NOTIFICATIONS_METHOD("UpdateCampaign"), update_campaign},
    {NOTIFICATIONS_METHOD("DeleteCampaign"), delete_campaign},
    {NOTIFICATIONS_METHOD("SendCampaign"), send_campaign},
};
const size_t notifications_ncampaign_methods =
    sizeof notifications_campaign_methods /
    sizeof notifications_campaign_methods[0];
