/*
 * report.c - see report.h. The answer shown is the fastest server's in
 * `fastest` mode and the first accepting server's otherwise: with `all`
 * every server answered the same logical write, so one is representative.
 */
#include "tools/multi/report.h"

#include <jansson.h>
#include <stdlib.h>

static int answer_index(const engine_result *r) {
  if (r->winner >= 0) return r->winner;
  for (int i = 0; i < r->n; i++)
    if (r->servers[i].outcome == OUT_OK) return i;
  return -1;
}

void report_table(FILE *f, const engine_cfg *c, const engine_result *r,
                  bool show_body) {
  fprintf(f, "%-32s %-12s %6s %8s %10s  %s\n", "SERVER", "OUTCOME", "STATUS",
          "ATTEMPTS", "LATENCY_MS", "DETAIL");
  for (int i = 0; i < r->n; i++) {
    const engine_server *s = &r->servers[i];
    fprintf(f, "%-32s %-12s %6ld %8d %10.1f  %s\n", s->url,
            engine_outcome_name(s->outcome), s->status, s->attempts,
            s->latency_ms, s->detail);
  }
  fprintf(f, "result: %s %s: %d/%d accepted", engine_mode_name(c->mode),
          r->met ? "OK" : "FAILED", r->ok_count, r->n);
  const char *sep = "; failed: ";
  for (int i = 0; i < r->n; i++) {
    const engine_server *s = &r->servers[i];
    if (s->outcome == OUT_OK || s->outcome == OUT_CANCELLED) continue;
    fprintf(f, "%s%s (%s)", sep, s->url, s->detail);
    sep = ", ";
  }
  fputc('\n', f);
  int a = answer_index(r);
  if (show_body && a >= 0 && r->servers[a].answer != NULL) {
    json_dumpf(r->servers[a].answer, f, JSON_INDENT(2) | JSON_SORT_KEYS);
    fputc('\n', f);
  }
}

static json_t *server_json(const engine_server *s) {
  return json_pack("{sssssisisisfsssb}", "url", s->url, "outcome",
                   engine_outcome_name(s->outcome), "status", (int)s->status,
                   "attempts", s->attempts, "renewals", s->renewals,
                   "latency_ms", s->latency_ms, "detail", s->detail,
                   "logged_out", s->logged_out);
}

void report_json(FILE *f, const engine_cfg *c, const engine_result *r) {
  json_t *servers = json_array(), *failed = json_array();
  for (int i = 0; i < r->n; i++) {
    const engine_server *s = &r->servers[i];
    json_array_append_new(servers, server_json(s));
    if (s->outcome != OUT_OK && s->outcome != OUT_CANCELLED)
      json_array_append_new(failed, json_string(s->url));
  }
  int a = answer_index(r);
  json_t *o = json_pack("{sssssssbsisisoso}", "mode", engine_mode_name(c->mode),
                        "method", c->method, "path", c->path, "ok", r->met,
                        "accepted", r->ok_count, "servers_total", r->n,
                        "servers", servers, "failed", failed);
  json_object_set_new(o, "idempotency_key",
                      c->idem_key ? json_string(c->idem_key) : json_null());
  json_object_set_new(o, "winner",
                      r->winner >= 0 ? json_string(r->servers[r->winner].url)
                                     : json_null());
  json_object_set(o, "answer",
                  a >= 0 && r->servers[a].answer ? r->servers[a].answer
                                                 : json_null());
  json_dumpf(o, f, JSON_COMPACT | JSON_SORT_KEYS);
  fputc('\n', f);
  json_decref(o);
}
