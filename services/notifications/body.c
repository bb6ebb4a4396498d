/*
 * body.c - webhook bodies (see body.h): libs/evdata gives the data as the
 * HTTP API shows it, jansson writes the object, keys in the contract's
 * order.
 */
#include "services/notifications/body.h"

#include <jansson.h>

#include "libs/base/timeutil.h"
#include "libs/evdata/evdata.h"

static int dump(const char *id, const char *type, const char *tid, int64_t ms,
                json_t *data, char **out) {
  char when[RFC3339_MS_LEN + 1];
  if (time_format_rfc3339(ms, when) != ERR_OK) when[0] = '\0';
  json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:o}", "id", id, "type", type,
                        "tenant_id", tid, "created_at", when, "data", data);
  *out = o == NULL ? NULL
                   : json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                       JSON_REAL_PRECISION(15));
  json_decref(o);
  return *out != NULL ? ERR_OK : ERR_NOMEM;
}

int body_for_event(const Rpc__V1__Event *ev, char **out) {
  *out = NULL;
  json_t *data = NULL;
  int rc = evdata_json(ev, &data);
  if (rc != ERR_OK) return rc;
  return dump(ev->id, ev->type, ev->tenant_id, (int64_t)ev->time_unix_ms, data,
              out);
}

int body_for_test(const char *event_id, const char *tid, const char *webhook_id,
                  int64_t now_ms, char **out) {
  *out = NULL;
  return dump(event_id, "webhook.test", tid, now_ms,
              json_pack("{s:s}", "webhook_id", webhook_id), out);
}
