/*
 * campaign.c - the campaign runner (see campaign.h). Runs on its own
 * periodic thread; every step that fails is logged and left for the next
 * round (the lease runs out, another replica or this one takes the
 * campaign again from its committed cursor).
 */
#include "services/notifications/campaign.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "libs/obs/log.h"
#include "libs/svc/periodic.h"
#include "services/notifications/inbox.h"
#include "services/notifications/recipients.h"
#include "services/notifications/store_campaigns.h"

#define DUE_MAX 16
#define LEASE_MS 30000 /* one batch's work, at most */

struct campaign_runner {
  campaign_config c;
  periodic *p;
};

static bool has_channel(const store_campaign *c, const char *ch) {
  for (size_t i = 0; i < c->nchannels; i++)
    if (strcmp(c->channels[i], ch) == 0) return true;
  return false;
}

/* An e-mail or SMS of campaign c to recipient u into *m. */
static void message(int kind, const store_campaign *c, const recipient *u,
                    store_message *m) {
  m->kind = kind;
  memcpy(m->user_id, u->id, sizeof m->user_id);
  m->address = kind == STORE_KIND_EMAIL ? u->email : u->phone;
  m->subject = kind == STORE_KIND_EMAIL ? c->title : "";
  /* An SMS without words says the title. */
  m->body = kind == STORE_KIND_SMS && c->body[0] == '\0' ? c->title : c->body;
}

/* The batch's messages for who: in-app notifications into inbox, e-mails
 * and SMS into msgs (room for two per recipient; pointing into c and
 * who). */
static int messages(const campaign_runner *r, const store_campaign *c,
                    const recipients *who, inbox_batch *inbox,
                    store_message *msgs, size_t *nmsgs) {
  bool in_app = has_channel(c, "in_app"),
       email = r->c.email && has_channel(c, "email"),
       sms = r->c.sms && has_channel(c, "sms");
  json_t *d = json_pack("{s:s}", "campaign_id", c->id);
  char *data = d != NULL ? json_dumps(d, JSON_COMPACT) : NULL;
  json_decref(d);
  int rc = data != NULL ? ERR_OK : ERR_NOMEM;
  *nmsgs = 0;
  for (size_t i = 0; rc == ERR_OK && i < who->n; i++) {
    if (in_app)
      rc = inbox_batch_add(inbox, who->v[i].id, NULL, NULL, "campaign",
                           c->title, c->body, data);
    if (rc == ERR_OK && email && who->v[i].email[0] != '\0')
      message(STORE_KIND_EMAIL, c, &who->v[i], &msgs[(*nmsgs)++]);
    if (rc == ERR_OK && sms && who->v[i].phone[0] != '\0')
      message(STORE_KIND_SMS, c, &who->v[i], &msgs[(*nmsgs)++]);
  }
  free(data);
  return rc;
}

/* One batch of campaign c (claimed). */
static int send_batch(campaign_runner *r, const store_job *job,
                      const store_campaign *c) {
  const char *roles[CAMPAIGN_ROLES_MAX];
  for (size_t i = 0; i < c->nroles; i++) roles[i] = c->roles[i];
  recipients who = {0};
  char next[UUID_STR_LEN + 1];
  int rc = recipients_page(r->c.auth, job->tid, roles, c->nroles, c->cursor,
                           r->c.batch, &who, next);
  if (rc != ERR_OK) return rc;
  inbox_batch inbox = {0};
  store_message *msgs = calloc(who.n ? 2 * who.n : 1, sizeof *msgs);
  size_t nmsgs = 0;
  rc = msgs == NULL ? ERR_NOMEM : messages(r, c, &who, &inbox, msgs, &nmsgs);
  store_job *jobs = NULL;
  size_t njobs = 0;
  bool done = next[0] == '\0';
  if (rc == ERR_OK)
    rc = store_campaign_batch(
        r->c.store, job->tid, c, inbox.v, inbox.n, msgs, nmsgs,
        who.n > 0 ? who.v[who.n - 1].id : c->cursor, (int64_t)(inbox.n + nmsgs),
        done, r->c.interval_ms, &jobs, &njobs);
  if (rc == ERR_OK) {
    if (njobs > 0) (void)queue_push(r->c.queue, jobs, njobs);
    if (inbox.n > 0) outbox_kick(r->c.events);
    if (done) log_info("campaign sent", "campaign", c->id);
  }
  free(jobs);
  free(msgs);
  inbox_batch_free(&inbox);
  recipients_free(&who);
  return rc;
}

static void round_fn(void *arg) {
  campaign_runner *r = arg;
  store_job *due = NULL;
  size_t n = 0;
  if (store_due_campaigns(r->c.store, DUE_MAX, &due, &n) != ERR_OK) {
    log_warn("cannot read due campaigns");
    return;
  }
  for (size_t i = 0; i < n; i++) {
    store_campaign *c = calloc(1, sizeof *c); /* large: not on the stack */
    bool claimed = false;
    int rc = c == NULL ? ERR_NOMEM
                       : store_claim_campaign(r->c.store, &due[i], LEASE_MS, c,
                                              &claimed);
    if (rc == ERR_OK && claimed) rc = send_batch(r, &due[i], c);
    if (rc != ERR_OK && rc != ERR_CONFLICT)
      log_warn("campaign batch not sent; retrying later", "campaign", due[i].id,
               "error", err_str(rc));
    free(c);
  }
  free(due);
}

int campaign_runner_start(const campaign_config *c, campaign_runner **out) {
  *out = NULL;
  if (c->batch == 0 || c->batch > 1000 || c->poll_ms <= 0) return ERR_INVAL;
  campaign_runner *r = calloc(1, sizeof *r);
  if (r == NULL) return ERR_NOMEM;
  r->c = *c;
  periodic_options o = {
      .name = "campaigns", .interval_ms = c->poll_ms, .fn = round_fn, .arg = r};
  int rc = periodic_start(&o, &r->p);
  if (rc != ERR_OK) {
    free(r);
    return rc;
  }
  *out = r;
  return ERR_OK;
}

void campaign_runner_free(campaign_runner *r) {
  if (r == NULL) return;
  periodic_stop(r->p);
  free(r);
}
