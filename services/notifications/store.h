/*
 * store.h - the notifications service's SQL, in schema "notifications":
 * webhook endpoints, their deliveries, and the bus positions.
 *
 * Every function is one transaction (db_with_tx: retried as a whole on
 * serialisation failures and deadlocks), run as the store's role
 * (store_new) with app.tenant_id set to the tenant concerned, so row-level
 * security binds (migrations/0001_init.sql); every statement also filters
 * on tenant_id explicitly and every value travels as a parameter. The one
 * cross-tenant read, store_due, runs under the sweep policy and only
 * returns (tenant, id) pairs.
 *
 * Secrets cross this interface sealed (seal.h): the store never sees one
 * in clear.
 *
 * Errors: ERR_OK, ERR_NOTFOUND (no such row in this tenant), ERR_EXISTS
 * (a unique key), ERR_INVAL (a malformed id or a CHECK the input broke),
 * ERR_TOOBIG (the tenant's endpoint limit), or libs/db's infrastructure
 * errors (ERR_UNAVAILABLE, ERR_TIMEOUT, ERR_CONFLICT after retries,
 * ERR_DB, ERR_NOMEM); db_last_error() has the details, without parameter
 * values.
 */
#ifndef NOTIFICATIONS_STORE_H
#define NOTIFICATIONS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libs/base/err.h"
#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"
#include "libs/db/db.h"
#include "libs/idem/once.h"
#include "services/notifications/seal.h"

#define STORE_SCHEMA "notifications"
#define STORE_URL_MAX 2048
#define STORE_DESCRIPTION_MAX 2000 /* bytes: 500 characters of up to 4 */
#define STORE_EVENTS_MAX 16
#define STORE_EVENT_TYPE_MAX 32
#define STORE_ERROR_MAX 200 /* bytes of last_error we keep */

typedef db_store store; /* libs/db: the pool and the role */

/* An endpoint as stored (without its secrets); strings NUL-terminated. */
typedef struct store_endpoint {
  char id[UUID_STR_LEN + 1];
  char url[STORE_URL_MAX + 1];
  char events[STORE_EVENTS_MAX][STORE_EVENT_TYPE_MAX + 1];
  size_t nevents;
  char description[STORE_DESCRIPTION_MAX + 1];
  bool active;
  char created_at[RFC3339_MS_LEN + 1];
} store_endpoint;

/* What an endpoint is made of, or (store_update_endpoint) what changes:
 * NULL pointers and nevents 0 mean "unchanged". */
typedef struct store_endpoint_in {
  const char *url;
  const char *const *events;
  size_t nevents;
  const char *description;
  const bool *active;
} store_endpoint_in;

enum store_delivery_status {
  STORE_PENDING = 1, /* the proto's DELIVERY_STATUS_* numbers */
  STORE_SUCCEEDED = 2,
  STORE_DEAD = 3,
};

typedef struct store_delivery {
  char id[UUID_STR_LEN + 1];
  char event_id[UUID_STR_LEN + 1];
  char event_type[STORE_EVENT_TYPE_MAX + 1];
  int status; /* enum store_delivery_status */
  int attempts;
  int last_status_code; /* 0: none */
  char last_error[STORE_ERROR_MAX + 1];
  char next_attempt_at[RFC3339_MS_LEN + 1]; /* "" unless pending */
  char created_at[RFC3339_MS_LEN + 1];
  char updated_at[RFC3339_MS_LEN + 1];
} store_delivery;

/* A list the store allocates; store_list_free releases it. */
typedef struct store_endpoints {
  store_endpoint *v;
  size_t n;
} store_endpoints;
typedef struct store_deliveries {
  store_delivery *v;
  size_t n;
} store_deliveries;
void store_endpoints_free(store_endpoints *l);   /* NULL-safe; empties l */
void store_deliveries_free(store_deliveries *l); /* NULL-safe; empties l */

/* A job's address: the delivery id and its tenant. */
typedef struct store_job {
  char tid[UUID_STR_LEN + 1];
  char id[UUID_STR_LEN + 1];
} store_job;

/* A store over db (borrowed; must outlive it) whose transactions run as
 * role (SET LOCAL ROLE; NULL or "": the connection's own). Errors:
 * ERR_INVAL (no db, a role that is not db_ident_ok), ERR_NOMEM. *out is
 * the caller's: store_free. */
int store_new(db_pool *db, const char *role, store **out) WARN_UNUSED;
void store_free(store *st); /* NULL-safe */

/* ------------------------------------------------------- endpoints --- */

/* Inserts an endpoint of tenant tid (in: every field but active, which
 * starts true) sealed with secret (a seal_box) and returns it. ERR_TOOBIG
 * when the tenant already has max endpoints. With a key (NULL: none;
 * libs/idem/once.h) the key is checked first and the answer saved with
 * the endpoint, in its transaction; when the key decides the call
 * (idem_once_fresh false) nothing is inserted and *out stays empty. */
int store_create_endpoint(store *st, const char *tid,
                          const store_endpoint_in *in, const seal_box *secret,
                          size_t max, idem_once *key,
                          store_endpoint *out) WARN_UNUSED;

/* Every endpoint of tid, newest first (at most max). */
int store_list_endpoints(store *st, const char *tid, size_t max,
                         store_endpoints *out) WARN_UNUSED;

int store_get_endpoint(store *st, const char *tid, const char *id,
                       store_endpoint *out) WARN_UNUSED;

/* Applies the fields of in that are set and returns the endpoint. */
int store_update_endpoint(store *st, const char *tid, const char *id,
                          const store_endpoint_in *in,
                          store_endpoint *out) WARN_UNUSED;

/* Deletes the endpoint and (cascade) its deliveries. */
int store_delete_endpoint(store *st, const char *tid,
                          const char *id) WARN_UNUSED;

/* Replaces the secret with next; the current one becomes the previous
 * secret, valid for signing for grace_ms more. */
int store_rotate_secret(store *st, const char *tid, const char *id,
                        const seal_box *next, int64_t grace_ms) WARN_UNUSED;

/* ------------------------------------------------------ deliveries --- */

enum store_kind {
  STORE_KIND_WEBHOOK = 0,
  STORE_KIND_EMAIL,
  STORE_KIND_SMS,
};

/* An e-mail or SMS to one user (strings borrowed). */
typedef struct store_message {
  int kind; /* STORE_KIND_EMAIL or STORE_KIND_SMS */
  char user_id[UUID_STR_LEN + 1];
  const char *address; /* e-mail address or phone number */
  const char *subject; /* "" for SMS */
  const char *body;
} store_message;

/* What one bus event makes: its webhook deliveries and in-app
 * notifications (store_inbox.h). Strings borrowed. */
struct store_inbox_new;
typedef struct store_fanout_in {
  const char *tid; /* "" (an event of no tenant): only the position moves */
  const char *event_id, *type;
  const char *body; /* the webhook body, rendered */
  const char *source;
  uint64_t seq;
  const struct store_inbox_new *inbox; /* may be NULL when ninbox is 0 */
  size_t ninbox;
  const store_message *messages; /* e-mails and SMS, queued like webhooks */
  size_t nmessages;
} store_fanout_in;

/* Fans the event out, in one transaction: one pending delivery, due now,
 * per active endpoint of tid subscribed to type, unless that (endpoint,
 * event) already has one; the in-app notifications (store_inbox_add);
 * the e-mail and SMS deliveries (one per (event, kind, user)); and
 * source's position seq. The new deliveries' jobs go to *jobs
 * (malloc'd, the caller frees; NULL when none), their number to *njobs;
 * *inbox_added counts the new notifications (their outbox events wait for
 * a kick). */
int store_fanout(store *st, const store_fanout_in *in, store_job **jobs,
                 size_t *njobs, size_t *inbox_added) WARN_UNUSED;
/* store_fanout for in[0..n), consecutive events of one source (a bus
 * batch), in ONE transaction: per tenant of the batch one read of its
 * endpoints and one multi-row INSERT of every delivery (ON CONFLICT on
 * (tenant, endpoint, event): idempotent as store_fanout), the e-mails,
 * SMS and in-app notifications as store_fanout, and one position update
 * (the last seq). All or nothing: on ERR_INVAL or ERR_EXISTS (an event
 * the database refuses) nothing is stored and the caller can fall back to
 * store_fanout per event. Outputs as store_fanout. */
int store_fanout_batch(store *st, const store_fanout_in *in, size_t n,
                       store_job **jobs, size_t *njobs,
                       size_t *inbox_added) WARN_UNUSED;
/* A "webhook.test" delivery of event event_id to endpoint id only. */
int store_test_delivery(store *st, const char *tid, const char *id,
                        const char *event_id, const char *body,
                        store_job *job) WARN_UNUSED;

/* The last seq recorded for source; 0 (and ERR_OK) when none. */
int store_position(store *st, const char *source, uint64_t *seq) WARN_UNUSED;

/* The endpoint's deliveries, newest first: status 0 = any, before_id
 * NULL = from the newest, at most limit; *more when others follow. */
int store_list_deliveries(store *st, const char *tid, const char *endpoint_id,
                          int status, const char *before_id, size_t limit,
                          store_deliveries *out, bool *more) WARN_UNUSED;

/* One recorded attempt of a delivery (its history). */
typedef struct store_attempt_entry {
  int number; /* 1.. within the delivery's round (a retry starts again) */
  char at[RFC3339_MS_LEN + 1];
  int status_code; /* 0: no HTTP answer */
  char error[STORE_ERROR_MAX + 1];
  int64_t duration_ms;
} store_attempt_entry;

/* History bounds: a retry keeps the newest STORE_ATTEMPTS_KEEP rows, and
 * a round adds at most NOTIFICATIONS_MAX_ATTEMPTS (<= 100); a read
 * returns at most STORE_ATTEMPTS_LIST_MAX, the newest. */
#define STORE_ATTEMPTS_KEEP 50
#define STORE_ATTEMPTS_LIST_MAX 200

/* Delivery id of tid (any kind) into *d and its attempts, oldest first,
 * into *attempts (malloc'd, the caller frees; NULL when none), their
 * number into *n. ERR_NOTFOUND when tid has no such delivery. */
int store_get_delivery(store *st, const char *tid, const char *id,
                       store_delivery *d, store_attempt_entry **attempts,
                       size_t *n) WARN_UNUSED;

/* A dead delivery becomes pending with no attempts, due now (its history
 * trimmed to the newest STORE_ATTEMPTS_KEEP attempts); *was_dead false
 * (nothing changed) when it is not dead. */
int store_retry_delivery(store *st, const char *tid, const char *id,
                         bool *was_dead) WARN_UNUSED;

/* ---------------------------------------------------------- worker --- */

/* What an attempt needs, claimed for lease_ms (store_claim). */
typedef struct store_attempt {
  int kind; /* enum store_kind */
  char event_id[UUID_STR_LEN + 1];
  char url[STORE_URL_MAX + 1]; /* webhooks */
  char address[321];           /* e-mail and SMS */
  char subject[1001];          /* e-mail */
  char *body;                  /* malloc'd */
  seal_box key;                /* the current secret */
  seal_box prev;
  bool has_prev; /* the previous secret still signs */
  int attempts;  /* before this one */
  int64_t created_ms;
} store_attempt;
void store_attempt_clear(store_attempt *a); /* frees body, wipes the keys */

enum store_claim_result {
  STORE_CLAIMED = 0,  /* ours for lease_ms: *out is filled */
  STORE_CLAIM_SPENT,  /* succeeded, dead, deleted or not yet due: nothing
                         to do for this job */
  STORE_CLAIM_LEASED, /* pending, but another worker's lease runs: that
                         worker may be dead; try again later */
};

/* Claims delivery job for one attempt: only when it is pending, due
 * (within slack_ms) and not claimed by another worker whose lease runs;
 * the lease is lease_ms. *res says which (ERR_OK in every case). */
int store_claim(store *st, const store_job *job, int64_t lease_ms,
                int64_t slack_ms, int *res, store_attempt *out) WARN_UNUSED;

#define STORE_CLAIM_BATCH_MAX 16

/* store_claim for jobs[0..n), n <= STORE_CLAIM_BATCH_MAX (ERR_INVAL past
 * it), in one transaction with one UPDATE per tenant among them: res[i]
 * and out[i] say for jobs[i] what store_claim would. A job named twice is
 * claimed once (the other copy is LEASED). On an error every res[i] is
 * STORE_CLAIM_SPENT and nothing is claimed. */
int store_claim_batch(store *st, const store_job *jobs, size_t n,
                      int64_t lease_ms, int64_t slack_ms, int *res,
                      store_attempt *out) WARN_UNUSED;

/* The outcome of one attempt. */
typedef struct store_outcome {
  bool ok;             /* 2xx */
  int status_code;     /* 0: no answer */
  const char *error;   /* NULL or a short reason (no secrets, no body) */
  int max_attempts;    /* dead when attempts reach it and !ok */
  int64_t retry_in_ms; /* when not ok and not dead */
  int64_t started_ms;  /* Unix ms when the attempt began */
  int64_t duration_ms; /* how long it took */
} store_outcome;

/* Records the attempt - on the delivery, and as one more row of its
 * history (delivery_attempts), in one statement - and releases the claim:
 * succeeded, pending again (due in retry_in_ms) or dead. *status gets the
 * new status. */
int store_record(store *st, const store_job *job, const store_outcome *o,
                 int *status) WARN_UNUSED;

/* Up to max pending deliveries of any tenant that are overdue by
 * grace_ms and not claimed (lost jobs, see sweep.c), oldest first. */
int store_due(store *st, int64_t grace_ms, size_t max, store_job **jobs,
              size_t *njobs) WARN_UNUSED;

/* Pending deliveries of every tenant (the queue-depth gauge). */
int store_pending_count(store *st, int64_t *n) WARN_UNUSED;

/* Deletes up to batch succeeded or dead deliveries of any tenant not
 * changed for older_ms (> 0), with their attempts; never a pending one.
 * Rows another transaction holds are skipped (FOR UPDATE SKIP LOCKED).
 * *deleted: how many went. store_retention.c. */
int store_prune_deliveries(store *st, int64_t older_ms, size_t batch,
                           int64_t *deleted) WARN_UNUSED;

/* The same for inbox notifications of any tenant read more than older_ms
 * ago; never an unread one. */
int store_prune_inbox(store *st, int64_t older_ms, size_t batch,
                      int64_t *deleted) WARN_UNUSED;

#endif
