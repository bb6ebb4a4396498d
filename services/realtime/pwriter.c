/*
 * pwriter.c - queued presence writes on a thread of their own (see
 * pwriter.h).
 *
 * One mutex-guarded FIFO of jobs. The thread takes the whole list at
 * once and writes it with no lock held: consecutive refreshes of one
 * channel go out together (up to PRESENCE_BATCH per script), which is
 * how the heartbeat queues them (channel by channel).
 */
#include "services/realtime/pwriter.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "libs/obs/log.h"
#include "services/realtime/channel.h"

#define DRAIN_MS 1000

typedef struct job {
  struct job *next;
  bool leave;
  char channel[CHANNEL_MAX + 1];
  char client[PRESENCE_ID_MAX + 1];
  char user[PRESENCE_ID_MAX + 1];
} job;

struct pwriter {
  presence *p;
  size_t max_jobs;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool stop;
  int64_t stop_by_ms; /* monotonic: give up writing after it */
  job *head, *tail;
  size_t n;
};

/* Writes the refreshes j, j->next, ... of j's channel (at most
 * PRESENCE_BATCH); returns the first job not written. */
static job *write_refreshes(pwriter *w, job *j) {
  const char *clients[PRESENCE_BATCH], *users[PRESENCE_BATCH];
  size_t n = 0;
  job *k = j;
  for (; k != NULL && !k->leave && n < PRESENCE_BATCH &&
         strcmp(k->channel, j->channel) == 0;
       k = k->next) {
    clients[n] = k->client;
    users[n++] = k->user;
  }
  int rc = presence_join(w->p, j->channel, clients, users, n);
  if (rc != ERR_OK) log_warn("presence not refreshed", "error", err_str(rc));
  return k;
}

static bool past_deadline(pwriter *w) {
  pthread_mutex_lock(&w->mu);
  bool late = w->stop && time_mono_ms() > w->stop_by_ms;
  pthread_mutex_unlock(&w->mu);
  return late;
}

static void write_all(pwriter *w, job *j) {
  while (j != NULL) {
    job *next = j->next;
    if (past_deadline(w)) {
      next = NULL; /* the rest expires in Redis */
    } else if (j->leave) {
      int rc = presence_leave(w->p, j->channel, j->client);
      if (rc != ERR_OK) log_debug("presence not removed", "error", err_str(rc));
    } else {
      next = write_refreshes(w, j);
    }
    for (job *k = j, *kn; k != next && k != NULL; k = kn) {
      kn = k->next;
      free(k);
    }
    if (next == NULL) break;
    j = next;
  }
}

static void *run(void *arg) {
  pwriter *w = arg;
  pthread_setname_np(pthread_self(), "rt-presence");
  for (;;) {
    pthread_mutex_lock(&w->mu);
    while (w->head == NULL && !w->stop) pthread_cond_wait(&w->cv, &w->mu);
    job *j = w->head;
    bool stop = w->stop;
    w->head = w->tail = NULL;
    w->n = 0;
    pthread_mutex_unlock(&w->mu);
    write_all(w, j);
    if (stop && j == NULL) return NULL;
  }
}

int pwriter_start(presence *p, size_t max_jobs, pwriter **out) {
  *out = NULL;
  if (p == NULL || max_jobs == 0) return ERR_INVAL;
  pwriter *w = calloc(1, sizeof *w);
  if (w == NULL) return ERR_NOMEM;
  w->p = p;
  w->max_jobs = max_jobs;
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  if (pthread_create(&w->thread, NULL, run, w) != 0) {
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
    return ERR_INTERNAL;
  }
  *out = w;
  return ERR_OK;
}

void pwriter_free(pwriter *w) {
  if (w == NULL) return;
  pthread_mutex_lock(&w->mu);
  w->stop = true;
  w->stop_by_ms = time_mono_ms() + DRAIN_MS;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
  pthread_join(w->thread, NULL);
  for (job *j = w->head, *next; j != NULL; j = next) {
    next = j->next;
    free(j);
  }
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
  free(w);
}

static bool enqueue(pwriter *w, bool leave, const char *channel,
                    const char *client, const char *user) {
  if (strlen(channel) > CHANNEL_MAX || strlen(client) > PRESENCE_ID_MAX ||
      strlen(user) > PRESENCE_ID_MAX)
    return false;
  job *j = malloc(sizeof *j);
  if (j == NULL) return false;
  j->next = NULL;
  j->leave = leave;
  str_copy(j->channel, channel, sizeof j->channel); /* lengths checked */
  str_copy(j->client, client, sizeof j->client);
  str_copy(j->user, user, sizeof j->user);
  pthread_mutex_lock(&w->mu);
  bool room = w->n < w->max_jobs && !w->stop;
  if (room) {
    if (w->tail != NULL)
      w->tail->next = j;
    else
      w->head = j;
    w->tail = j;
    w->n++;
  }
  pthread_mutex_unlock(&w->mu);
  if (!room) free(j);
  return room;
}

bool pwriter_refresh(pwriter *w, const char *channel, const char *client,
                     const char *user) {
  return enqueue(w, false, channel, client, user);
}

bool pwriter_leave(pwriter *w, const char *channel, const char *client) {
  bool ok = enqueue(w, true, channel, client, "");
  pwriter_flush(w);
  return ok;
}

void pwriter_flush(pwriter *w) {
  pthread_mutex_lock(&w->mu);
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}
