/*
 * failover_test.c - libs/rpc's client across several replicas when one
 * dies: real nng sockets over tcp://127.0.0.1, and a replica that is a
 * real process killed with SIGKILL in the middle of a call (its handler
 * kills it), so the connection goes exactly as it does when a pod dies.
 *
 * What is proven: a call that may have run on the dead replica is sent
 * again to a live one only when the caller declared it safe (a read, or a
 * keyed write), and then runs exactly once on the survivor; an unkeyed
 * write is answered UNAVAILABLE after one attempt, never repeated; a
 * keyed write that meets its own twin (ABORTED, "still running") is
 * retried, while ABORTED without a twin of its own is answered as is; a
 * replica that keeps answering UNAVAILABLE is ejected (no call reaches
 * it) and dialled again once healthy; never more than half of them,
 * never the last one; a replica that hangs (a process stopped with
 * SIGSTOP, connection kept) costs reads one attempt timeout each until
 * those timeouts eject it, and is back once it runs again.
 *
 * Timing: no assertion on time; calls have generous deadlines.
 */
#include <check.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "libs/base/timeutil.h"
#include "libs/rpc/rpc.h"
#include "proto/rpc/v1/rpc.pb-c.h"

#define M_WRITE "test.v1.Test/Write"

/* ---- a replica in another process that dies on its first call ---- */

static void h_die(void *arg, const rpc_call *call, rpc_reply *reply) {
  (void)arg;
  (void)call;
  (void)reply;
  raise(SIGKILL); /* mid-call, as kill -9 */
}

/* Forks a process serving M_WRITE with h_die; returns its pid and writes
 * its URL. Forks before this process has any nng thread. */
static pid_t spawn_dying_replica(char *url, size_t cap) {
  int fds[2];
  ck_assert_int_eq(pipe(fds), 0);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlives a failed test */
    rpc_server *s = NULL;
    if (rpc_server_new(NULL, &s) != ERR_OK ||
        rpc_server_register(s, M_WRITE, h_die, NULL) != ERR_OK ||
        rpc_server_start(s, "tcp://127.0.0.1:0") != ERR_OK)
      _exit(2);
    int port = rpc_server_port(s);
    if (write(fds[1], &port, sizeof port) != (ssize_t)sizeof port) _exit(2);
    for (;;) pause();
  }
  close(fds[1]);
  int port = 0;
  ck_assert_int_eq(read(fds[0], &port, sizeof port), (ssize_t)sizeof port);
  close(fds[0]);
  snprintf(url, cap, "tcp://127.0.0.1:%d", port);
  return pid;
}

/* ---- the surviving replica, in this process ---- */

static _Atomic int survivor_calls;

static void h_write(void *arg, const rpc_call *call, rpc_reply *reply) {
  (void)arg;
  (void)call;
  atomic_fetch_add(&survivor_calls, 1);
  rpc_reply_status(reply, RPC_OK, "written");
}

static rpc_server *start_survivor(char *url, size_t cap) {
  rpc_server *s = NULL;
  ck_assert_int_eq(rpc_server_new(NULL, &s), ERR_OK);
  ck_assert_int_eq(rpc_server_register(s, M_WRITE, h_write, NULL), ERR_OK);
  ck_assert_int_eq(rpc_server_start(s, "tcp://127.0.0.1:0"), ERR_OK);
  snprintf(url, cap, "tcp://127.0.0.1:%d", rpc_server_port(s));
  return s;
}

typedef struct run_result {
  int calls;       /* calls made */
  int ok;          /* answered OK */
  int retried;     /* OK after more than one attempt */
  int unavailable; /* answered UNAVAILABLE after exactly one attempt */
} run_result;

/* Calls M_WRITE through a client of both replicas until the dying one
 * has been hit (and reaped), at most 200 calls. */
static run_result call_until_dead(pid_t pid, const char *both,
                                  const rpc_call_options *o) {
  rpc_client_options co;
  rpc_client_options_init(&co);
  co.reconnect_min_ms = 20;
  co.reconnect_max_ms = 200;
  rpc_client *c = NULL;
  ck_assert_int_eq(rpc_client_new(both, &co, &c), ERR_OK);
  ck_assert_int_eq(rpc_client_wait_connected(c, 2, 10000), ERR_OK);
  run_result rr = {0};
  bool dead = false;
  for (int i = 0; i < 200 && !dead; i++) {
    rpc_result *r = NULL;
    ck_assert_int_eq(rpc_client_call(c, M_WRITE, "w", 1, o, &r), ERR_OK);
    rr.calls++;
    if (r->code == RPC_OK) rr.ok++;
    if (r->code == RPC_OK && r->attempts > 1) rr.retried++;
    if (r->code == RPC_UNAVAILABLE && r->attempts == 1) rr.unavailable++;
    rpc_result_free(r);
    int st = 0;
    dead = waitpid(pid, &st, WNOHANG) == pid;
    if (dead) ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  }
  ck_assert_msg(dead, "the dying replica was never called");
  rpc_client_free(c);
  return rr;
}

START_TEST(keyed_write_is_retried_on_a_live_replica_and_runs_once) {
  char url_a[64], url_b[64], both[160];
  pid_t pid = spawn_dying_replica(url_a, sizeof url_a);
  rpc_server *b = start_survivor(url_b, sizeof url_b);
  snprintf(both, sizeof both, "%s,%s", url_a, url_b);
  rpc_call_options o = RPC_CALL_OPTIONS_INIT;
  o.deadline_ms = 10000;
  o.idempotent = true;
  o.idempotency_key = "k-1";
  run_result rr = call_until_dead(pid, both, &o);
  /* Every call answered OK; the one that hit the dying replica was sent
   * again; each ran exactly once on the survivor. */
  ck_assert_int_eq(rr.ok, rr.calls);
  ck_assert_int_ge(rr.retried, 1);
  ck_assert_int_eq(atomic_load(&survivor_calls), rr.calls);
  rpc_server_close(b);
}
END_TEST

START_TEST(unkeyed_write_is_not_repeated_after_the_replica_died) {
  char url_a[64], url_b[64], both[160];
  pid_t pid = spawn_dying_replica(url_a, sizeof url_a);
  rpc_server *b = start_survivor(url_b, sizeof url_b);
  snprintf(both, sizeof both, "%s,%s", url_a, url_b);
  rpc_call_options o = RPC_CALL_OPTIONS_INIT;
  o.deadline_ms = 10000; /* not idempotent: it may have run */
  run_result rr = call_until_dead(pid, both, &o);
  ck_assert_int_eq(rr.unavailable, 1);
  ck_assert_int_eq(rr.ok, rr.calls - 1);
  ck_assert_int_eq(rr.retried, 0);
  ck_assert_int_eq(atomic_load(&survivor_calls), rr.calls - 1);
  rpc_server_close(b);
}
END_TEST

/* ---- a scripted raw replica: what each request gets ---- */

#define DROP (-1) /* close the connection without answering */

typedef struct script_srv {
  nng_socket sock;
  int port;
  const int *script; /* per request; past the end: OK */
  int nscript;
  _Atomic int received;
  pthread_t thr;
} script_srv;

static void answer(script_srv *f, nng_msg *m, int code) {
  Rpc__V1__Request *rq =
      rpc__v1__request__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
  Rpc__V1__Response resp = RPC__V1__RESPONSE__INIT;
  resp.code = (uint32_t)code;
  resp.request_id = rq != NULL ? rq->request_id : "";
  size_t len = rpc__v1__response__get_packed_size(&resp);
  nng_msg_clear(m);
  if (nng_msg_realloc(m, len) == 0) {
    rpc__v1__response__pack(&resp, nng_msg_body(m));
    if (nng_sendmsg(f->sock, m, 0) != 0) nng_msg_free(m);
  } else {
    nng_msg_free(m);
  }
  if (rq != NULL) rpc__v1__request__free_unpacked(rq, NULL);
}

static void *script_main(void *arg) {
  script_srv *f = arg;
  for (;;) {
    nng_msg *m = NULL;
    if (nng_recvmsg(f->sock, &m, 0) != 0) return NULL;
    int i = atomic_fetch_add(&f->received, 1);
    int what = i < f->nscript ? f->script[i] : RPC_OK;
    if (what == DROP) {
      nng_pipe p = nng_msg_get_pipe(m);
      nng_msg_free(m);
      nng_pipe_close(p);
      continue;
    }
    answer(f, m, what);
  }
}

static void script_start(script_srv *f, const int *script, int n) {
  memset(f, 0, sizeof *f);
  f->script = script;
  f->nscript = n;
  ck_assert_int_eq(nng_rep0_open(&f->sock), 0);
  nng_listener l;
  ck_assert_int_eq(nng_listen(f->sock, "tcp://127.0.0.1:0", &l, 0), 0);
  ck_assert_int_eq(nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &f->port),
                   0);
  ck_assert_int_eq(pthread_create(&f->thr, NULL, script_main, f), 0);
}

static void script_stop(script_srv *f) {
  nng_close(f->sock);
  pthread_join(f->thr, NULL);
}

static rpc_result *keyed_call_twin(script_srv *f, const char *key,
                                   bool maybe_twin) {
  char url[64];
  snprintf(url, sizeof url, "tcp://127.0.0.1:%d", f->port);
  rpc_client_options co;
  rpc_client_options_init(&co);
  co.reconnect_min_ms = 10;
  co.reconnect_max_ms = 50;
  rpc_client *c = NULL;
  ck_assert_int_eq(rpc_client_new(url, &co, &c), ERR_OK);
  ck_assert_int_eq(rpc_client_wait_connected(c, 1, 5000), ERR_OK);
  rpc_call_options o = RPC_CALL_OPTIONS_INIT;
  o.deadline_ms = 10000;
  o.idempotent = true;
  o.idempotency_key = key;
  o.maybe_twin = maybe_twin;
  rpc_result *r = NULL;
  ck_assert_int_eq(rpc_client_call(c, M_WRITE, "w", 1, &o, &r), ERR_OK);
  rpc_client_free(c);
  return r;
}

static rpc_result *keyed_call(script_srv *f, const char *key) {
  return keyed_call_twin(f, key, false);
}

START_TEST(keyed_write_meeting_its_own_twin_is_retried) {
  static const int script[] = {DROP, RPC_ABORTED, RPC_ABORTED};
  script_srv f;
  script_start(&f, script, 3);
  rpc_result *r = keyed_call(&f, "k-2");
  ck_assert_int_eq(r->code, RPC_OK);
  ck_assert_uint_eq(r->attempts, 4);
  rpc_result_free(r);
  script_stop(&f);
}
END_TEST

START_TEST(aborted_without_a_twin_of_our_own_is_answered) {
  static const int script[] = {RPC_ABORTED};
  script_srv f;
  script_start(&f, script, 1);
  rpc_result *r = keyed_call(&f, "k-3");
  ck_assert_int_eq(r->code, RPC_ABORTED);
  ck_assert_uint_eq(r->attempts, 1);
  rpc_result_free(r);
  ck_assert_int_eq(atomic_load(&f.received), 1);
  script_stop(&f);
}
END_TEST

/* The caller knows of a twin elsewhere (a load balancer's repeat after a
 * gateway died): ABORTED is retried from the first attempt on. */
START_TEST(aborted_with_a_twin_the_caller_knows_of_is_retried) {
  static const int script[] = {RPC_ABORTED, RPC_ABORTED};
  script_srv f;
  script_start(&f, script, 2);
  rpc_result *r = keyed_call_twin(&f, "k-4", true);
  ck_assert_int_eq(r->code, RPC_OK);
  ck_assert_uint_eq(r->attempts, 3);
  rpc_result_free(r);
  script_stop(&f);
}
END_TEST

START_TEST(aborted_without_a_key_is_answered) {
  static const int script[] = {DROP, RPC_ABORTED};
  script_srv f;
  script_start(&f, script, 2);
  rpc_result *r = keyed_call(&f, NULL); /* idempotent read, no key */
  ck_assert_int_eq(r->code, RPC_ABORTED);
  ck_assert_uint_eq(r->attempts, 2);
  rpc_result_free(r);
  script_stop(&f);
}
END_TEST

/* ---- outlier ejection: a replica that keeps answering UNAVAILABLE ---- */

static atomic_bool sick;
static _Atomic int sick_calls;

static void h_maybe_sick(void *arg, const rpc_call *call, rpc_reply *reply) {
  (void)arg;
  (void)call;
  atomic_fetch_add(&sick_calls, 1);
  if (atomic_load(&sick))
    rpc_reply_status(reply, RPC_UNAVAILABLE, "database unreachable");
  else
    rpc_reply_status(reply, RPC_OK, NULL);
}

static rpc_server *start_sick(char *url, size_t cap) {
  rpc_server *s = NULL;
  ck_assert_int_eq(rpc_server_new(NULL, &s), ERR_OK);
  ck_assert_int_eq(rpc_server_register(s, M_WRITE, h_maybe_sick, NULL), ERR_OK);
  ck_assert_int_eq(rpc_server_start(s, "tcp://127.0.0.1:0"), ERR_OK);
  snprintf(url, cap, "tcp://127.0.0.1:%d", rpc_server_port(s));
  return s;
}

static int call_code(rpc_client *c) {
  rpc_call_options o = RPC_CALL_OPTIONS_INIT;
  o.deadline_ms = 10000; /* not idempotent: UNAVAILABLE comes back as is */
  rpc_result *r = NULL;
  ck_assert_int_eq(rpc_client_call(c, M_WRITE, "w", 1, &o, &r), ERR_OK);
  int code = r->code;
  rpc_result_free(r);
  return code;
}

START_TEST(failing_replica_is_ejected_and_readmitted_when_healthy) {
  char url_a[64], url_b[64], both[160];
  atomic_store(&sick, true);
  rpc_server *a = start_sick(url_a, sizeof url_a);
  rpc_server *b = start_survivor(url_b, sizeof url_b);
  snprintf(both, sizeof both, "%s,%s", url_a, url_b);
  rpc_client_options co;
  rpc_client_options_init(&co);
  co.eject_after = 3;
  co.eject_base_ms = 2000; /* far longer than the 10 calls below */
  co.reconnect_min_ms = 20;
  co.reconnect_max_ms = 100;
  rpc_client *c = NULL;
  ck_assert_int_eq(rpc_client_new(both, &co, &c), ERR_OK);
  ck_assert_int_eq(rpc_client_wait_connected(c, 2, 10000), ERR_OK);

  /* Three UNAVAILABLE answers in a row from A eject it... */
  int unavailable = 0;
  for (int i = 0; i < 200 && unavailable < 3; i++)
    if (call_code(c) == RPC_UNAVAILABLE) unavailable++;
  ck_assert_int_eq(unavailable, 3);
  /* Its connection closes (nng tells of it a moment later). */
  for (int i = 0; i < 1000 && rpc_client_connected(c) != 1; i++)
    time_sleep_ms(10);
  ck_assert_int_eq(rpc_client_connected(c), 1);
  /* ...and calls go to B only. */
  int seen = atomic_load(&sick_calls);
  for (int i = 0; i < 10; i++) ck_assert_int_eq(call_code(c), RPC_OK);
  ck_assert_int_eq(atomic_load(&sick_calls), seen);

  /* Healthy again: dialled once the ejection ends, and called. */
  atomic_store(&sick, false);
  int64_t deadline = time_mono_ms() + 30000;
  while (atomic_load(&sick_calls) == seen && time_mono_ms() < deadline) {
    ck_assert_int_eq(call_code(c), RPC_OK);
    time_sleep_ms(10);
  }
  ck_assert_int_gt(atomic_load(&sick_calls), seen);
  ck_assert_int_eq(rpc_client_connected(c), 2);
  rpc_client_free(c);
  rpc_server_close(a);
  rpc_server_close(b);
}
END_TEST

START_TEST(the_last_replica_is_never_ejected) {
  char url[64];
  atomic_store(&sick, true);
  rpc_server *a = start_sick(url, sizeof url);
  rpc_client_options co;
  rpc_client_options_init(&co);
  co.eject_after = 2;
  rpc_client *c = NULL;
  ck_assert_int_eq(rpc_client_new(url, &co, &c), ERR_OK);
  ck_assert_int_eq(rpc_client_wait_connected(c, 1, 10000), ERR_OK);
  for (int i = 0; i < 10; i++) ck_assert_int_eq(call_code(c), RPC_UNAVAILABLE);
  ck_assert_int_eq(rpc_client_connected(c), 1);
  atomic_store(&sick, false);
  ck_assert_int_eq(call_code(c), RPC_OK);
  rpc_client_free(c);
  rpc_server_close(a);
}
END_TEST

START_TEST(no_more_than_half_are_ejected_when_all_fail_alike) {
  char url[3][64], all[240];
  rpc_server *srv[3];
  atomic_store(&sick, true); /* all answer UNAVAILABLE: a shared cause */
  for (int i = 0; i < 3; i++) srv[i] = start_sick(url[i], sizeof url[i]);
  snprintf(all, sizeof all, "%s,%s,%s", url[0], url[1], url[2]);
  rpc_client_options co;
  rpc_client_options_init(&co);
  co.eject_after = 2;
  co.eject_base_ms = 30000;
  rpc_client *c = NULL;
  ck_assert_int_eq(rpc_client_new(all, &co, &c), ERR_OK);
  ck_assert_int_eq(rpc_client_wait_connected(c, 3, 10000), ERR_OK);
  for (int i = 0; i < 20; i++) ck_assert_int_eq(call_code(c), RPC_UNAVAILABLE);
  for (int i = 0; i < 1000 && rpc_client_connected(c) != 2; i++)
    time_sleep_ms(10);
  ck_assert_int_eq(rpc_client_connected(c), 2); /* one of three out */
  for (int i = 0; i < 20; i++) ck_assert_int_eq(call_code(c), RPC_UNAVAILABLE);
  time_sleep_ms(200); /* a second ejection would show by now */
  ck_assert_int_eq(rpc_client_connected(c), 2); /* the others stay */
  rpc_client_free(c);
  for (int i = 0; i < 3; i++) rpc_server_close(srv[i]);
}
END_TEST

/* ---- a replica that hangs: a real process stopped with SIGSTOP ---- */

static void h_ok(void *arg, const rpc_call *call, rpc_reply *reply) {
  (void)arg;
  (void)call;
  rpc_reply_status(reply, RPC_OK, NULL);
}

/* Forks a process serving M_WRITE with h_ok (as spawn_dying_replica). */
static pid_t spawn_replica(char *url, size_t cap) {
  int fds[2];
  ck_assert_int_eq(pipe(fds), 0);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    rpc_server *s = NULL;
    if (rpc_server_new(NULL, &s) != ERR_OK ||
        rpc_server_register(s, M_WRITE, h_ok, NULL) != ERR_OK ||
        rpc_server_start(s, "tcp://127.0.0.1:0") != ERR_OK)
      _exit(2);
    int port = rpc_server_port(s);
    if (write(fds[1], &port, sizeof port) != (ssize_t)sizeof port) _exit(2);
    for (;;) pause();
  }
  close(fds[1]);
  int port = 0;
  ck_assert_int_eq(read(fds[0], &port, sizeof port), (ssize_t)sizeof port);
  close(fds[0]);
  snprintf(url, cap, "tcp://127.0.0.1:%d", port);
  return pid;
}

static rpc_result *read_call(rpc_client *c) {
  rpc_call_options o = RPC_CALL_OPTIONS_INIT;
  o.deadline_ms = 10000;
  o.idempotent = true; /* a read: the client's attempt timeout applies */
  rpc_result *r = NULL;
  ck_assert_int_eq(rpc_client_call(c, M_WRITE, "r", 1, &o, &r), ERR_OK);
  return r;
}

typedef struct hung_reader {
  rpc_client *c;
  int calls, retried, failed;
} hung_reader;

/* Reads until the client is down to one replica (at most 200). */
static void *hung_reader_main(void *arg) {
  hung_reader *h = arg;
  for (; h->calls < 200 && rpc_client_connected(h->c) == 2; h->calls++) {
    rpc_call_options o = RPC_CALL_OPTIONS_INIT;
    o.deadline_ms = 10000;
    o.idempotent = true;
    rpc_result *r = NULL;
    if (rpc_client_call(h->c, M_WRITE, "r", 1, &o, &r) != ERR_OK) {
      h->failed++;
      continue;
    }
    if (r->code != RPC_OK) h->failed++;
    if (r->attempts > 1) h->retried++;
    rpc_result_free(r);
  }
  return NULL;
}

/* A replica that stops answering but keeps its connection (SIGSTOP, as a
 * hung process): reads give up on it after the attempt timeout and are
 * answered by the other replica; the timeouts eject it (its connection
 * closes); once it runs again (SIGCONT) it is dialled again when its
 * ejection ends and back. No read fails meanwhile. */
START_TEST(hung_replica_is_ejected_by_timeouts_and_readmitted) {
  char url_a[64], url_b[64], both[160];
  pid_t pid = spawn_replica(url_a, sizeof url_a);
  rpc_server *b = start_survivor(url_b, sizeof url_b);
  snprintf(both, sizeof both, "%s,%s", url_a, url_b);
  rpc_client_options co;
  rpc_client_options_init(&co);
  co.attempt_timeout_ms = 200;
  co.eject_after = 2;
  co.eject_base_ms = 500;
  co.reconnect_min_ms = 20;
  co.reconnect_max_ms = 100;
  rpc_client *c = NULL;
  ck_assert_int_eq(rpc_client_new(both, &co, &c), ERR_OK);
  ck_assert_int_eq(rpc_client_wait_connected(c, 2, 10000), ERR_OK);
  rpc_result_free(read_call(c));

  ck_assert_int_eq(kill(pid, SIGSTOP), 0);
  /* Several callers at once, so several requests wait on the hung replica
   * when its connection is closed under them. */
  hung_reader hr[4];
  pthread_t th[4];
  for (int i = 0; i < 4; i++) {
    hr[i] = (hung_reader){.c = c};
    ck_assert_int_eq(pthread_create(&th[i], NULL, hung_reader_main, &hr[i]), 0);
  }
  int retried = 0;
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    ck_assert_int_eq(hr[i].failed, 0);
    retried += hr[i].retried;
  }
  ck_assert_int_eq(rpc_client_connected(c), 1); /* the hung one is out */
  ck_assert_int_ge(retried, 2);                 /* eject_after timeouts */
  for (int i = 0; i < 10; i++) { /* its ejection lasts: all to B now */
    rpc_result *r = read_call(c);
    ck_assert_int_eq(r->code, RPC_OK);
    rpc_result_free(r);
  }

  ck_assert_int_eq(kill(pid, SIGCONT), 0);
  int64_t deadline = time_mono_ms() + 30000;
  while (rpc_client_connected(c) < 2 && time_mono_ms() < deadline) {
    rpc_result *r = read_call(c); /* each call lets due ejections end */
    ck_assert_int_eq(r->code, RPC_OK);
    rpc_result_free(r);
    time_sleep_ms(20);
  }
  ck_assert_int_eq(rpc_client_connected(c), 2);
  for (int i = 0; i < 10; i++) {
    rpc_result *r = read_call(c);
    ck_assert_int_eq(r->code, RPC_OK);
    ck_assert_uint_eq(r->attempts, 1); /* answered again, no timeouts */
    rpc_result_free(r);
  }
  rpc_client_free(c);
  rpc_server_close(b);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}
END_TEST

static Suite *failover_suite(void) {
  Suite *s = suite_create("rpc failover");
  TCase *tc = tcase_create("replica killed");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, keyed_write_is_retried_on_a_live_replica_and_runs_once);
  tcase_add_test(tc, unkeyed_write_is_not_repeated_after_the_replica_died);
  suite_add_tcase(s, tc);
  tc = tcase_create("twins");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, keyed_write_meeting_its_own_twin_is_retried);
  tcase_add_test(tc, aborted_without_a_twin_of_our_own_is_answered);
  tcase_add_test(tc, aborted_without_a_key_is_answered);
  tcase_add_test(tc, aborted_with_a_twin_the_caller_knows_of_is_retried);
  suite_add_tcase(s, tc);
  tc = tcase_create("outliers");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, failing_replica_is_ejected_and_readmitted_when_healthy);
  tcase_add_test(tc, the_last_replica_is_never_ejected);
  tcase_add_test(tc, no_more_than_half_are_ejected_when_all_fail_alike);
  tcase_add_test(tc, hung_replica_is_ejected_by_timeouts_and_readmitted);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(failover_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
