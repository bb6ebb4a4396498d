/*
 * settings_handlers.c - GetSettings and UpdateSettings (admin and owner,
 * their own tenant): which channels the tenant's notifications use
 * (store_settings.h has the defaults and what each group means). Beyond
 * HTTP-API.md: GET/PATCH /v1/notifications/settings, docs/openapi.json.
 */
#include <string.h>

#include "libs/authn/authn_caller.h"
#include "proto/notifications/v1/notifications.pb-c.h"
#include "services/notifications/handlers_internal.h"
#include "services/notifications/store_settings.h"

/* The wire form of settings, pointing into its own storage. */
typedef struct wire_settings {
  Notifications__V1__Settings pb;
  Notifications__V1__Channels order, staff;
} wire_settings;

static void channels_pb(const store_channels *c,
                        Notifications__V1__Channels *pb) {
  notifications__v1__channels__init(pb);
  pb->in_app_present_case = NOTIFICATIONS__V1__CHANNELS__IN_APP_PRESENT_IN_APP;
  pb->in_app = c->in_app;
  pb->email_present_case = NOTIFICATIONS__V1__CHANNELS__EMAIL_PRESENT_EMAIL;
  pb->email = c->email;
  pb->sms_present_case = NOTIFICATIONS__V1__CHANNELS__SMS_PRESENT_SMS;
  pb->sms = c->sms;
}

static void settings_pb(store_settings *s, wire_settings *w) {
  notifications__v1__settings__init(&w->pb);
  channels_pb(&s->order, &w->order);
  channels_pb(&s->staff, &w->staff);
  w->pb.order_updates = &w->order;
  w->pb.staff_alerts = &w->staff;
  w->pb.updated_at = s->updated_at;
}

/* The request's channels as a change into *in, pointing into vals (NULL
 * pb: no change). */
static void channels_in(const Notifications__V1__Channels *pb,
                        store_channels *vals, store_channels_in *in) {
  memset(in, 0, sizeof *in);
  if (pb == NULL) return;
  vals->in_app = pb->in_app;
  vals->email = pb->email;
  vals->sms = pb->sms;
  if (pb->in_app_present_case ==
      NOTIFICATIONS__V1__CHANNELS__IN_APP_PRESENT_IN_APP)
    in->in_app = &vals->in_app;
  if (pb->email_present_case ==
      NOTIFICATIONS__V1__CHANNELS__EMAIL_PRESENT_EMAIL)
    in->email = &vals->email;
  if (pb->sms_present_case == NOTIFICATIONS__V1__CHANNELS__SMS_PRESENT_SMS)
    in->sms = &vals->sms;
}

static bool admin(notifications *h, const rpc_call *call, rpc_reply *reply,
                  paseto_claims *cl) {
  return authn_check_call(h->c.verifier, call, handler_min_rank(call), cl,
                          reply) == ERR_OK;
}

static void get_settings(void *arg, const rpc_call *call, rpc_reply *reply) {
  notifications *h = arg;
  HANDLER_UNPACK(Notifications__V1__GetSettingsRequest,
                 notifications__v1__get_settings_request, req, 0);
  paseto_claims cl;
  store_settings s;
  if (!admin(h, call, reply, &cl)) goto out;
  int rc = store_get_settings(h->c.store, cl.tid, &s);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "read the settings");
    goto out;
  }
  wire_settings w;
  settings_pb(&s, &w);
  Notifications__V1__GetSettingsResponse resp =
      NOTIFICATIONS__V1__GET_SETTINGS_RESPONSE__INIT;
  resp.settings = &w.pb;
  handler_reply_message(reply, &resp.base);
out:
  notifications__v1__get_settings_request__free_unpacked(req, NULL);
}

static void update_settings(void *arg, const rpc_call *call, rpc_reply *reply) {
  notifications *h = arg;
  HANDLER_UNPACK(Notifications__V1__UpdateSettingsRequest,
                 notifications__v1__update_settings_request, req, 0);
  paseto_claims cl;
  store_settings s;
  store_settings_in in;
  store_channels order, staff;
  if (!admin(h, call, reply, &cl)) goto out;
  channels_in(req->order_updates, &order, &in.order);
  channels_in(req->staff_alerts, &staff, &in.staff);
  int rc = store_update_settings(h->c.store, cl.tid, &in, &s);
  /* After the commit (even an error may follow one): the next event on
   * this replica reads the new settings (settings_cache.h). */
  settings_cache_forget(h->c.settings, cl.tid);
  if (rc != ERR_OK) {
    handler_reply_error(reply, rc, "change the settings");
    goto out;
  }
  wire_settings w;
  settings_pb(&s, &w);
  Notifications__V1__UpdateSettingsResponse resp =
      NOTIFICATIONS__V1__UPDATE_SETTINGS_RESPONSE__INIT;
  resp.settings = &w.pb;
  handler_reply_message(reply, &resp.base);
out:
  notifications__v1__update_settings_request__free_unpacked(req, NULL);
}

const handler_method notifications_settings_methods[] = {
    {NOTIFICATIONS_METHOD("GetSettings"), get_settings},
    {NOTIFICATIONS_METHOD("UpdateSettings"), update_settings},
};
const size_t notifications_nsettings_methods =
    sizeof notifications_settings_methods /
    sizeof notifications_settings_methods[0];
