/*
 * db_itest.c - libs/db against a real PostgreSQL started by the harness.
 *
 * main() starts one server shared by the tests (each test uses its own
 * tables or schemas); the restart test starts a second one of its own,
 * since only the process that started a server can stop and restart it and
 * Check runs each test in a forked child.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "libs/base/timeutil.h"
#include "libs/db/db.h"
#include "tests/harness/harness.h"

static harness_pg g_pg;

#define OK(expr)                                                               \
  do {                                                                         \
    int rc_ = (expr);                                                          \
    ck_assert_msg(rc_ == ERR_OK, "%s: %s [%s] %s", #expr, err_str(rc_),        \
                  db_last_error()->sqlstate, db_last_error()->message);        \
  } while (0)

static db_pool *pool_on(const char *conninfo, int max, int acquire_ms,
                        int stmt_ms) {
  db_config cfg = {.conninfo = conninfo,
                   .max_conns = max,
                   .acquire_timeout_ms = acquire_ms,
                   .statement_timeout_ms = stmt_ms,
                   .application_name = "db_itest"};
  db_pool *p = NULL;
  OK(db_pool_new(&cfg, &p));
  return p;
}

static db_pool *pool(int max) { return pool_on(g_pg.url, max, 5000, 0); }

/* Runs a statement without parameters on a fresh connection. */
static void sql(db_pool *p, const char *stmt) {
  db_conn *c = NULL;
  OK(db_acquire(p, &c));
  OK(db_exec(c, stmt, NULL, 0, NULL));
  db_release(c);
}

static int64_t query_int(db_conn *c, const char *stmt, const db_param *ps,
                         int n) {
  db_result *r = NULL;
  OK(db_exec(c, stmt, ps, n, &r));
  ck_assert_int_eq(db_nrows(r), 1);
  int64_t v = 0;
  OK(db_get_int64(r, 0, 0, &v));
  db_result_free(r);
  return v;
}

static int64_t backend_pid(db_conn *c) {
  return query_int(c, "SELECT pg_backend_pid()", NULL, 0);
}

/* Terminates a backend from a connection of its own (not from the pool
 * under test, which might hand out the very connection to be killed) and
 * waits until it is gone. */
static void terminate(int64_t pid) {
  db_pool *admin = pool_on(g_pg.url, 1, 5000, 0);
  db_conn *c = NULL;
  OK(db_acquire(admin, &c));
  db_param ps[] = {db_int64(pid)};
  db_result *r = NULL;
  OK(db_exec(c, "SELECT pg_terminate_backend($1::int, 5000)", ps, 1, &r));
  ck_assert_str_eq(db_get(r, 0, 0), "t");
  db_result_free(r);
  db_release(c);
  db_pool_free(admin);
}

/* ------------------------------------------------------------------ pool ---
 */

START_TEST(released_connection_is_reused) {
  db_pool *p = pool(4);
  db_conn *c = NULL;
  OK(db_acquire(p, &c));
  int64_t pid1 = backend_pid(c);
  db_release(c);
  OK(db_acquire(p, &c));
  ck_assert_int_eq(backend_pid(c), pid1);
  db_pool_stats st;
  db_pool_get_stats(p, &st);
  ck_assert_int_eq(st.open, 1);
  ck_assert_int_eq(st.in_use, 1);
  db_release(c);
  db_pool_get_stats(p, &st);
  ck_assert_int_eq(st.in_use, 0);
  OK(db_ping(p));
  db_pool_free(p);
}
END_TEST

START_TEST(exhausted_pool_times_out_then_recovers) {
  db_pool *p = pool_on(g_pg.url, 2, 300, 0);
  db_conn *a = NULL, *b = NULL, *c = NULL;
  OK(db_acquire(p, &a));
  OK(db_acquire(p, &b));
  int64_t t0 = time_mono_ms();
  ck_assert_int_eq(db_acquire(p, &c), ERR_TIMEOUT);
  int64_t waited = time_mono_ms() - t0;
  ck_assert_ptr_null(c);
  ck_assert_int_ge(waited, 250);
  ck_assert_int_lt(waited, 10000);
  ck_assert_int_eq(db_last_error()->code, ERR_TIMEOUT);
  db_pool_stats st;
  db_pool_get_stats(p, &st);
  ck_assert_int_eq(st.open, 2);
  ck_assert_uint_eq(st.acquire_timeouts, 1);
  db_release(a);
  OK(db_acquire(p, &c));
  db_release(b);
  db_release(c);
  db_pool_free(p);
}
END_TEST

typedef struct waiter {
  db_pool *p;
  int rc;
  db_conn *c;
} waiter;

static void *acquire_thread(void *arg) {
  waiter *w = arg;
  w->rc = db_acquire(w->p, &w->c);
  return NULL;
}

START_TEST(waiter_gets_a_connection_when_one_is_released) {
  db_pool *p = pool_on(g_pg.url, 1, 20000, 0);
  db_conn *a = NULL;
  OK(db_acquire(p, &a));
  waiter w = {.p = p, .rc = -1};
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, acquire_thread, &w), 0);
  db_pool_stats st;
  for (int i = 0; i < 500; i++) { /* until the thread is waiting */
    db_pool_get_stats(p, &st);
    if (st.waiting == 1) break;
    time_sleep_ms(10);
  }
  ck_assert_int_eq(st.waiting, 1);
  db_release(a);
  pthread_join(t, NULL);
  ck_assert_int_eq(w.rc, ERR_OK);
  db_release(w.c);
  db_pool_free(p);
}
END_TEST

/* ------------------------------------------------------------- reconnect ---
 */

START_TEST(idle_connection_killed_by_server_is_replaced) {
  db_pool *p = pool(2);
  db_conn *c = NULL;
  OK(db_acquire(p, &c));
  int64_t pid = backend_pid(c);
  db_release(c);
  terminate(pid);
  OK(db_acquire(p, &c));
  int64_t pid2 = backend_pid(c);
  ck_assert_int_ne(pid2, pid);
  db_release(c);
  db_pool_stats st;
  db_pool_get_stats(p, &st);
  ck_assert_uint_ge(st.reconnects, 1);
  db_pool_free(p);
}
END_TEST

START_TEST(connection_killed_while_held_fails_then_reconnects) {
  db_pool *p = pool(2);
  db_conn *c = NULL;
  OK(db_acquire(p, &c));
  terminate(backend_pid(c));
  ck_assert_int_eq(db_exec(c, "SELECT 1", NULL, 0, NULL), ERR_UNAVAILABLE);
  ck_assert_int_eq(db_last_error()->code, ERR_UNAVAILABLE);
  OK(db_exec(c, "SELECT 1", NULL, 0, NULL)); /* outside a tx: reconnected */

  /* Inside a transaction nothing reconnects behind the caller's back. */
  OK(db_begin(c, NULL));
  terminate(backend_pid(c));
  ck_assert_int_eq(db_exec(c, "SELECT 1", NULL, 0, NULL), ERR_UNAVAILABLE);
  ck_assert_int_eq(db_exec(c, "SELECT 1", NULL, 0, NULL), ERR_UNAVAILABLE);
  ck_assert(db_in_tx(c));
  ck_assert_int_eq(db_commit(c), ERR_UNAVAILABLE);
  ck_assert(!db_in_tx(c));
  OK(db_exec(c, "SELECT 1", NULL, 0, NULL));
  db_release(c);
  db_pool_free(p);
}
END_TEST

static int insert_one(db_conn *c, void *ud) {
  db_param ps[] = {db_text(ud)};
  return db_exec(c, "INSERT INTO restart_t VALUES ($1)", ps, 1, NULL);
}

START_TEST(pool_survives_a_server_restart) {
  harness_pg own;
  ck_assert_int_eq(harness_pg_start(&own), 0);
  db_pool *p = pool_on(own.url, 2, 2000, 0);
  sql(p, "CREATE TABLE restart_t (v text)");
  db_conn *c = NULL;
  OK(db_acquire(p, &c));
  OK(db_exec(c, "SELECT 1", NULL, 0, NULL));
  db_release(c); /* idle in the pool when the server goes away */

  harness_pg_stop(&own);
  int64_t t0 = time_mono_ms();
  ck_assert_int_eq(db_acquire(p, &c), ERR_UNAVAILABLE);
  ck_assert_int_lt(time_mono_ms() - t0, 10000);
  ck_assert_int_eq(db_with_tx(p, NULL, 0, insert_one, "lost"), ERR_UNAVAILABLE);

  ck_assert_int_eq(harness_pg_restart(&own), 0);
  OK(db_with_tx(p, NULL, 0, insert_one, "after"));
  OK(db_acquire(p, &c));
  ck_assert_int_eq(query_int(c, "SELECT count(*) FROM restart_t", NULL, 0), 1);
  db_release(c);

  /* A restart while a connection sits idle: the next user gets a live one. */
  harness_pg_stop(&own);
  ck_assert_int_eq(harness_pg_restart(&own), 0);
  OK(db_ping(p));
  OK(db_with_tx(p, NULL, 0, insert_one, "again"));
  db_pool_free(p);
  harness_pg_stop(&own);
}
END_TEST

/* ---------------------------------------------------------- transactions ---
 */

START_TEST(commit_keeps_and_rollback_discards) {
  db_pool *p = pool(2);
  sql(p, "CREATE TABLE tx_t (v text UNIQUE)");
  db_conn *c = NULL;
  OK(db_acquire(p, &c));
  db_param a[] = {db_text("a")}, b[] = {db_text("b")};

  OK(db_begin(c, NULL));
  ck_assert(db_in_tx(c));
  ck_assert_int_eq(db_begin(c, NULL), ERR_INVAL);
  OK(db_exec(c, "INSERT INTO tx_t VALUES ($1)", a, 1, NULL));
  OK(db_rollback(c));
  ck_assert(!db_in_tx(c));
  ck_assert_int_eq(query_int(c, "SELECT count(*) FROM tx_t", NULL, 0), 0);

  OK(db_begin(c, NULL));
  OK(db_exec(c, "INSERT INTO tx_t VALUES ($1)", a, 1, NULL));
  OK(db_commit(c));
  ck_assert_int_eq(query_int(c, "SELECT count(*) FROM tx_t", NULL, 0), 1);
  ck_assert_int_eq(db_commit(c), ERR_INVAL); /* none open */

  /* A failed statement spoils the transaction: commit reports it. */
  OK(db_begin(c, NULL));
  OK(db_exec(c, "INSERT INTO tx_t VALUES ($1)", b, 1, NULL));
  ck_assert_int_eq(db_exec(c, "INSERT INTO tx_t VALUES ($1)", a, 1, NULL),
                   ERR_EXISTS);
  ck_assert_int_eq(db_commit(c), ERR_EXISTS);
  ck_assert_int_eq(query_int(c, "SELECT count(*) FROM tx_t", NULL, 0), 1);

  /* Releasing with a transaction open rolls it back. */
  OK(db_begin(c, NULL));
  OK(db_exec(c, "INSERT INTO tx_t VALUES ($1)", b, 1, NULL));
  db_release(c);
  OK(db_acquire(p, &c));
  ck_assert(!db_in_tx(c));
  ck_assert_int_eq(query_int(c, "SELECT count(*) FROM tx_t", NULL, 0), 1);
  db_release(c);
  db_pool_free(p);
}
END_TEST

typedef struct attempt_ctx {
  int calls;
  int fail_first_with;
} attempt_ctx;

static int flaky(db_conn *c, void *ud) {
  attempt_ctx *a = ud;
  a->calls++;
  db_param ps[] = {db_int64(a->calls)};
  int rc = db_exec(c, "INSERT INTO with_tx_t VALUES ($1)", ps, 1, NULL);
  if (rc != ERR_OK) return rc;
  return a->calls == 1 ? a->fail_first_with : ERR_OK;
}

START_TEST(with_tx_retries_conflicts_and_rolls_back_errors) {
  db_pool *p = pool(2);
  sql(p, "CREATE TABLE with_tx_t (n int)");
  attempt_ctx a = {.fail_first_with = ERR_CONFLICT};
  OK(db_with_tx(p, NULL, 3, flaky, &a));
  ck_assert_int_eq(a.calls, 2);
  attempt_ctx b = {.fail_first_with = ERR_NOTFOUND};
  ck_assert_int_eq(db_with_tx(p, NULL, 3, flaky, &b), ERR_NOTFOUND);
  ck_assert_int_eq(b.calls, 1);
  attempt_ctx d = {.fail_first_with = ERR_CONFLICT};
  ck_assert_int_eq(db_with_tx(p, NULL, 0, flaky, &d),
                   ERR_CONFLICT); /* no retries left */
  db_conn *c = NULL;
  OK(db_acquire(p, &c));
  /* Only the successful attempt of the first call (n = 2) committed. */
  ck_assert_int_eq(query_int(c, "SELECT count(*) FROM with_tx_t", NULL, 0), 1);
  ck_assert_int_eq(query_int(c, "SELECT n FROM with_tx_t", NULL, 0), 2);
  db_release(c);
  db_pool_free(p);
}
END_TEST

START_TEST(serialization_failure_is_conflict) {
  db_pool *p = pool(3);
  sql(p, "CREATE TABLE ser_t (id int PRIMARY KEY, n int)");
  sql(p, "INSERT INTO ser_t VALUES (1, 0)");
  db_conn *a = NULL, *b = NULL;
  OK(db_acquire(p, &a));
  OK(db_acquire(p, &b));
  db_tx_opts o = {.isolation = DB_REPEATABLE_READ};
  OK(db_begin_opts(a, &o));
  OK(db_begin_opts(b, &o));
  ck_assert_int_eq(query_int(a, "SELECT n FROM ser_t WHERE id = 1", NULL, 0),
                   0);
  ck_assert_int_eq(query_int(b, "SELECT n FROM ser_t WHERE id = 1", NULL, 0),
                   0);
  OK(db_exec(a, "UPDATE ser_t SET n = n + 1 WHERE id = 1", NULL, 0, NULL));
  OK(db_commit(a));
  ck_assert_int_eq(
      db_exec(b, "UPDATE ser_t SET n = n + 1 WHERE id = 1", NULL, 0, NULL),
      ERR_CONFLICT);
  ck_assert_str_eq(db_last_error()->sqlstate, "40001");
  OK(db_rollback(b));
  db_release(a);
  db_release(b);
  db_pool_free(p);
}
END_TEST

/* ---------------------------------------------------------------- tenant ---
 */

static const char *tenant_setting(db_conn *c, char *buf, size_t cap) {
  db_result *r = NULL;
  OK(db_exec(c, "SELECT current_setting('app.tenant_id', true)", NULL, 0, &r));
  const char *v = db_get(r, 0, 0);
  snprintf(buf, cap, "%s", v != NULL ? v : "<null>");
  db_result_free(r);
  return buf;
}

START_TEST(tenant_setting_lives_exactly_as_long_as_the_transaction) {
  db_pool *p = pool(1);
  db_conn *c = NULL;
  char buf[128];
  OK(db_acquire(p, &c));
  ck_assert_str_eq(tenant_setting(c, buf, sizeof buf), "<null>");
  OK(db_begin(c, "tenant-a"));
  ck_assert_str_eq(tenant_setting(c, buf, sizeof buf), "tenant-a");
  OK(db_commit(c));
  ck_assert_str_ne(tenant_setting(c, buf, sizeof buf), "tenant-a");
  /* A hostile tenant id is a value, not SQL. */
  OK(db_begin(c, "x', true); DROP TABLE IF EXISTS tx_t; --"));
  ck_assert_str_eq(tenant_setting(c, buf, sizeof buf),
                   "x', true); DROP TABLE IF EXISTS tx_t; --");
  OK(db_rollback(c));
  ck_assert_str_eq(tenant_setting(c, buf, sizeof buf), "");
  /* No tenant: nothing set. */
  OK(db_begin(c, NULL));
  ck_assert_str_eq(tenant_setting(c, buf, sizeof buf), "");
  OK(db_commit(c));
  /* The next borrower of the connection does not inherit a tenant. */
  OK(db_begin(c, "tenant-b"));
  db_release(c);
  OK(db_acquire(p, &c));
  ck_assert_str_ne(tenant_setting(c, buf, sizeof buf), "tenant-b");
  db_release(c);
  db_pool_free(p);
}
END_TEST

/* What db_store_run set up for its transaction function. */
typedef struct scope_seen {
  char tenant[64], janitor[16], read_only[8];
} scope_seen;

static int see_scope(db_conn *c, void *ud) {
  scope_seen *s = ud;
  db_result *r = NULL;
  int rc = db_exec(c,
                   "SELECT current_setting('app.tenant_id', true) AS t, "
                   "current_setting('app.test_janitor', true) AS j, "
                   "current_setting('transaction_read_only') AS ro",
                   NULL, 0, &r);
  if (rc != ERR_OK) return rc;
  const char *t = db_get(r, 0, 0), *j = db_get(r, 0, 1), *ro = db_get(r, 0, 2);
  snprintf(s->tenant, sizeof s->tenant, "%s", t != NULL ? t : "");
  snprintf(s->janitor, sizeof s->janitor, "%s", j != NULL ? j : "");
  snprintf(s->read_only, sizeof s->read_only, "%s", ro != NULL ? ro : "");
  db_result_free(r);
  return ERR_OK;
}

START_TEST(store_run_scopes_one_tenant_or_a_policy) {
  db_pool *p = pool(1);
  db_store *st = NULL;
  OK(db_store_new(p, NULL, &st));
  scope_seen s = {0};
  /* A tenant: its id, never the cross-tenant switch, even when named. */
  OK(db_store_run(st, "tenant-a", "app.test_janitor", false, see_scope, &s));
  ck_assert_str_eq(s.tenant, "tenant-a");
  ck_assert_str_eq(s.janitor, "");
  ck_assert_str_eq(s.read_only, "off");
  /* No tenant: the scope's switch is on. */
  memset(&s, 0, sizeof s);
  OK(db_store_run(st, NULL, "app.test_janitor", false, see_scope, &s));
  ck_assert_str_eq(s.tenant, "");
  ck_assert_str_eq(s.janitor, "on");
  /* Neither: nothing set; read-only as asked. */
  memset(&s, 0, sizeof s);
  OK(db_store_run(st, NULL, NULL, true, see_scope, &s));
  ck_assert_str_eq(s.tenant, "");
  ck_assert_str_eq(s.janitor, "");
  ck_assert_str_eq(s.read_only, "on");
  db_store_free(st);
  db_pool_free(p);
}
END_TEST

START_TEST(cells_and_pages_read_as_asked) {
  db_pool *p = pool(1);
  db_conn *c = NULL;
  db_result *r = NULL;
  OK(db_acquire(p, &c));
  OK(db_exec(c, "SELECT NULL::text AS n, 'abcdef' AS s", NULL, 0, &r));
  ck_assert_str_eq(db_cell(r, 0, db_col(r, "n")), "");
  ck_assert_str_eq(db_cell(r, 0, db_col(r, "s")), "abcdef");
  ck_assert_str_eq(db_cell(r, 0, db_col(r, "missing")), "");
  ck_assert_str_eq(db_cell(r, 1, 0), ""); /* no such row */
  char buf[4];
  db_copy_cell(r, 0, 1, buf, sizeof buf);
  ck_assert_str_eq(buf, "abc"); /* truncated, terminated */
  db_copy_cell(r, 0, 0, buf, sizeof buf);
  ck_assert_str_eq(buf, "");
  /* One row: a page of one with no more; a page of none with more. */
  bool more = true;
  ck_assert_uint_eq(db_page_rows(r, 1, &more), 1);
  ck_assert(!more);
  ck_assert_uint_eq(db_page_rows(r, 0, &more), 0);
  ck_assert(more);
  ck_assert_uint_eq(db_page_rows(NULL, 5, &more), 0);
  ck_assert(!more);
  db_result_free(r);
  db_release(c);
  db_pool_free(p);
}
END_TEST

#define TENANT_A "0190a4f6-0000-7000-8000-00000000000a"
#define TENANT_B "0190a4f6-0000-7000-8000-00000000000b"

static int64_t count_notes(db_pool *p, const char *tenant) {
  db_conn *c = NULL;
  OK(db_acquire(p, &c));
  OK(db_begin(c, tenant));
  int64_t n = query_int(c, "SELECT count(*) FROM rls_notes", NULL, 0);
  OK(db_commit(c));
  db_release(c);
  return n;
}

static int add_note(db_pool *p, const char *as_tenant, const char *row_tenant,
                    const char *body) {
  db_conn *c = NULL;
  OK(db_acquire(p, &c));
  OK(db_begin(c, as_tenant));
  db_param ps[] = {db_text(row_tenant), db_text(body)};
  int rc = db_exec(
      c, "INSERT INTO rls_notes (tenant_id, body) VALUES ($1::uuid, $2)", ps, 2,
      NULL);
  if (rc == ERR_OK) rc = db_commit(c);
  db_release(c);
  return rc;
}

START_TEST(row_level_security_hides_other_tenants_rows) {
  db_pool *admin = pool(1);
  sql(admin, "CREATE ROLE rls_app LOGIN");
  sql(admin,
      "CREATE TABLE rls_notes (tenant_id uuid NOT NULL, body text NOT NULL)");
  sql(admin, "ALTER TABLE rls_notes ENABLE ROW LEVEL SECURITY");
  sql(admin, "ALTER TABLE rls_notes FORCE ROW LEVEL SECURITY");
  sql(admin, "CREATE POLICY tenant_isolation ON rls_notes"
             " USING (tenant_id = NULLIF(current_setting('app.tenant_id', "
             "true), '')::uuid)"
             " WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', "
             "true), '')::uuid)");
  sql(admin, "GRANT SELECT, INSERT ON rls_notes TO rls_app");

  char conninfo[256];
  snprintf(conninfo, sizeof conninfo,
           "host=127.0.0.1 port=%d dbname=test user=rls_app", g_pg.port);
  db_pool *app = pool_on(conninfo, 2, 5000, 0);
  OK(add_note(app, TENANT_A, TENANT_A, "a1"));
  OK(add_note(app, TENANT_A, TENANT_A, "a2"));
  OK(add_note(app, TENANT_B, TENANT_B, "b1"));
  /* Writing into another tenant is refused by WITH CHECK. */
  ck_assert_int_eq(add_note(app, TENANT_A, TENANT_B, "sneaky"), ERR_DB);
  ck_assert_str_eq(db_last_error()->sqlstate, "42501");

  ck_assert_int_eq(count_notes(app, TENANT_A), 2);
  ck_assert_int_eq(count_notes(app, TENANT_B), 1);
  ck_assert_int_eq(count_notes(app, NULL), 0);
  /* The superuser sees everything: the rows are really there. */
  db_conn *c = NULL;
  OK(db_acquire(admin, &c));
  ck_assert_int_eq(query_int(c, "SELECT count(*) FROM rls_notes", NULL, 0), 3);
  db_release(c);
  db_pool_free(app);
  db_pool_free(admin);
}
END_TEST

/* ---------------------------------------------------------------- errors ---
 */

START_TEST(unique_violation_is_exists_without_the_value) {
  db_pool *p = pool(1);
  sql(p, "CREATE TABLE uniq_users (email text CONSTRAINT uniq_users_email "
         "UNIQUE)");
  db_conn *c = NULL;
  OK(db_acquire(p, &c));
  db_param ps[] = {db_text("secret-person@example.com")};
  OK(db_exec(c, "INSERT INTO uniq_users VALUES ($1)", ps, 1, NULL));
  ck_assert_int_eq(
      db_exec(c, "INSERT INTO uniq_users VALUES ($1)", ps, 1, NULL),
      ERR_EXISTS);
  const db_error *e = db_last_error();
  ck_assert_int_eq(e->code, ERR_EXISTS);
  ck_assert_str_eq(e->sqlstate, "23505");
  ck_assert_str_eq(e->constraint, "uniq_users_email");
  ck_assert(e->message[0] != '\0');
  ck_assert_ptr_null(strstr(e->message, "secret-person"));

  db_param bad[] = {db_text("not-a-uuid-secret")};
  ck_assert_int_eq(db_exec(c, "SELECT $1::uuid", bad, 1, NULL), ERR_INVAL);
  ck_assert_str_eq(db_last_error()->sqlstate, "22P02");
  ck_assert_ptr_null(strstr(db_last_error()->message, "secret"));

  ck_assert_int_eq(db_exec(c, "SELECT * FROM no_such_table", NULL, 0, NULL),
                   ERR_DB);
  ck_assert_str_eq(db_last_error()->sqlstate, "42P01");
  db_release(c);
  db_pool_free(p);
}
END_TEST

START_TEST(statement_timeout_is_enforced) {
  db_pool *p = pool_on(g_pg.url, 1, 5000, 200);
  db_conn *c = NULL;
  OK(db_acquire(p, &c));
  ck_assert_int_eq(db_exec(c, "SELECT pg_sleep(3)", NULL, 0, NULL),
                   ERR_TIMEOUT);
  ck_assert_str_eq(db_last_error()->sqlstate, "57014");
  OK(db_exec(c, "SELECT 1", NULL, 0, NULL)); /* connection still usable */
  db_release(c);
  db_pool_free(p);

  p = pool(1); /* no pool-wide timeout; one per transaction */
  OK(db_acquire(p, &c));
  db_tx_opts o = {.statement_timeout_ms = 100};
  OK(db_begin_opts(c, &o));
  ck_assert_int_eq(db_exec(c, "SELECT pg_sleep(3)", NULL, 0, NULL),
                   ERR_TIMEOUT);
  OK(db_rollback(c));
  OK(db_exec(c, "SELECT pg_sleep(0.3)", NULL, 0, NULL)); /* back to no limit */
  db_release(c);
  db_pool_free(p);
}
END_TEST

/* ------------------------------------------------------------ parameters ---
 */

/* Statements are prepared once per connection (db.c, "prepared
 * statements"): a repeat is executed by name, a table change that alters a
 * "*" result is absorbed, and a new session starts without any. */
static int64_t prepared_count(db_conn *c) {
  return query_int(c, "SELECT count(*) FROM pg_prepared_statements", NULL, 0);
}

START_TEST(statements_are_prepared_once_per_connection) {
  db_pool *p = pool(1);
  sql(p, "CREATE TABLE prep_t (a int)");
  sql(p, "INSERT INTO prep_t VALUES (1)");
  db_conn *c = NULL;
  OK(db_acquire(p, &c));
  int64_t before = prepared_count(c);
  db_param ps[] = {db_int64(1)};
  for (int i = 0; i < 3; i++)
    ck_assert_int_eq(
        query_int(c, "SELECT count(*) FROM prep_t WHERE a = $1", ps, 1), 1);
  /* three identical calls: one statement prepared (the count query was
   * prepared by the first prepared_count) */
  ck_assert_int_eq(prepared_count(c) - before, 1);
  db_result *r = NULL;
  OK(db_exec(c, "SELECT * FROM prep_t", NULL, 0, &r));
  ck_assert_int_eq(db_ncols(r), 1);
  db_result_free(r);
  /* A migration adds a column: the prepared "*" cannot change its result
   * type; outside a transaction the call still succeeds, with two columns. */
  OK(db_exec(c, "ALTER TABLE prep_t ADD COLUMN b int DEFAULT 7", NULL, 0,
             NULL));
  OK(db_exec(c, "SELECT * FROM prep_t", NULL, 0, &r));
  ck_assert_int_eq(db_ncols(r), 2);
  db_result_free(r);
  OK(db_exec(c, "SELECT * FROM prep_t", NULL, 0, &r));
  ck_assert_int_eq(db_ncols(r), 2);
  db_result_free(r);
  /* A broken statement is an error, not a cache entry. */
  ck_assert_int_ne(db_exec(c, "SELEC nonsense", NULL, 0, NULL), ERR_OK);
  OK(db_exec(c, "SELECT 1", NULL, 0, NULL));
  /* A replaced session (the backend killed) prepares afresh. */
  int64_t pid = backend_pid(c);
  db_release(c);
  terminate(pid);
  OK(db_acquire(p, &c));
  ck_assert_int_ne(backend_pid(c), pid);
  ck_assert_int_eq(
      query_int(c, "SELECT count(*) FROM prep_t WHERE a = $1", ps, 1), 1);
  db_release(c);
  db_pool_free(p);
}
END_TEST

START_TEST(parameters_are_stored_verbatim) {
  db_pool *p = pool(1);
  sql(p, "CREATE TABLE verbatim (i serial, t text, b bytea, n int8, f bool)");
  static const char *texts[] = {
      "Robert'); DROP TABLE verbatim; --",
      "it's \"quoted\" and back\\slashed",
      "$1 $2 ? %s %n",
      "",
      "unicode: \xc3\xbc\xc3\xb1\xc3\xaf \xf0\x9f\x8d\x95",
      "line\nbreak\ttab",
  };
  unsigned char bytes[256];
  for (int i = 0; i < 256; i++) bytes[i] = (unsigned char)i; /* NULs and all */
  db_conn *c = NULL;
  OK(db_acquire(p, &c));
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    db_param ps[] = {db_text(texts[i]), db_bytes(bytes, sizeof bytes),
                     db_int64(INT64_MIN), db_bool(true)};
    db_result *r = NULL;
    OK(db_exec(
        c,
        "INSERT INTO verbatim (t, b, n, f) VALUES ($1, $2, $3, $4) RETURNING i",
        ps, DB_NPARAMS(ps), &r));
    ck_assert_int_eq(db_affected(r), 1);
    db_result_free(r);
  }
  db_param nulls[] = {db_null(), db_text(NULL), db_null(), db_null()};
  OK(db_exec(c, "INSERT INTO verbatim (t, b, n, f) VALUES ($1, $2, $3, $4)",
             nulls, 4, NULL));

  db_result *r = NULL;
  OK(db_exec(c, "SELECT t, b, n, f FROM verbatim ORDER BY i", NULL, 0, &r));
  size_t n = sizeof texts / sizeof texts[0];
  ck_assert_int_eq(db_nrows(r), (int)n + 1);
  for (size_t i = 0; i < n; i++) {
    ck_assert_str_eq(db_get(r, (int)i, 0), texts[i]);
    unsigned char *got = NULL;
    size_t len = 0;
    OK(db_get_bytes(r, (int)i, 1, &got, &len));
    ck_assert_uint_eq(len, sizeof bytes);
    ck_assert_int_eq(memcmp(got, bytes, len), 0);
    free(got);
    int64_t v = 0;
    OK(db_get_int64(r, (int)i, 2, &v));
    ck_assert(v == INT64_MIN);
    bool f = false;
    OK(db_get_bool(r, (int)i, 3, &f));
    ck_assert(f);
  }
  for (int col = 0; col < 4; col++) ck_assert(db_is_null(r, (int)n, col));
  db_result_free(r);

  /* Many parameters (beyond the on-stack fast path). */
  db_param many[40];
  for (int i = 0; i < 40; i++) many[i] = db_int64(i);
  ck_assert_int_eq(
      query_int(
          c,
          "SELECT $1::int+$2::int+$3::int+$4::int+$5::int+$6::int+$7::int+"
          "$8::int+$9::int+$10::int+$11::int+$12::int+$13::int+$14::int+"
          "$15::int+$16::int+$17::int+$18::int+$19::int+$20::int+$21::int+"
          "$22::int+$23::int+$24::int+$25::int+$26::int+$27::int+$28::int+"
          "$29::int+$30::int+$31::int+$32::int+$33::int+$34::int+$35::int+"
          "$36::int+$37::int+$38::int+$39::int+$40::int",
          many, 40),
      780);
  db_release(c);
  db_pool_free(p);
}
END_TEST

/* ------------------------------------------------------------- pipelines ---
 */

START_TEST(pipeline_runs_in_order_with_a_deferred_begin_and_commit) {
  db_pool *p = pool(1);
  sql(p, "CREATE TABLE pipe_t (v text UNIQUE)");
  db_conn *c = NULL;
  OK(db_acquire(p, &c));
  int64_t pid = backend_pid(c);
  /* A deferred opening sends nothing until the first statement, and
   * nothing at all for a transaction that runs none. */
  db_tx_opts o = {.tenant_id = "5f0c6a4e-3b1d-4c8e-9a7f-2d6b8e1c0a93",
                  .defer_begin = true};
  OK(db_begin_opts(c, &o));
  ck_assert(db_in_tx(c));
  OK(db_commit(c));
  ck_assert(!db_in_tx(c));
  OK(db_begin_opts(c, &o));
  OK(db_rollback(c));
  /* Opening, three statements and COMMIT in one round trip; the
   * statements see the tenant setting and each other's effects. */
  OK(db_begin_opts(c, &o));
  db_param a[] = {db_text("a")}, b[] = {db_text("b")};
  db_stmt v[] = {
      {.sql = "INSERT INTO pipe_t VALUES ($1)", .params = a, .nparams = 1},
      {.sql = "INSERT INTO pipe_t VALUES ($1) RETURNING v",
       .params = b,
       .nparams = 1},
      {.sql = "SELECT count(*), current_setting('app.tenant_id') FROM pipe_t"},
  };
  db_result *out[3] = {NULL, NULL, NULL};
  OK(db_exec_commit(c, v, 3, out));
  ck_assert(!db_in_tx(c));
  ck_assert_int_eq(db_affected(out[0]), 1);
  ck_assert_str_eq(db_get(out[1], 0, 0), "b");
  ck_assert_str_eq(db_get(out[2], 0, 0), "2");
  ck_assert_str_eq(db_get(out[2], 0, 1), o.tenant_id);
  for (int i = 0; i < 3; i++) db_result_free(out[i]);
  OK(db_commit(c)); /* what db_with_tx does after fn: nothing left to do */
  ck_assert_int_eq(db_commit(c), ERR_INVAL);
  /* The setting ended with the transaction; the rows stayed; the same
   * session served it all. */
  db_result *r = NULL;
  OK(db_exec(c, "SELECT current_setting('app.tenant_id', true)", NULL, 0, &r));
  ck_assert(db_get(r, 0, 0) == NULL || db_get(r, 0, 0)[0] == '\0');
  db_result_free(r);
  ck_assert_int_eq(query_int(c, "SELECT count(*) FROM pipe_t", NULL, 0), 2);
  ck_assert_int_eq(backend_pid(c), pid);
  /* Outside a transaction a pipeline autocommits each statement. */
  db_param d[] = {db_text("d")};
  db_stmt one[] = {
      {.sql = "INSERT INTO pipe_t VALUES ($1)", .params = d, .nparams = 1}};
  OK(db_exec_pipeline(c, one, 1, NULL));
  ck_assert_int_eq(query_int(c, "SELECT count(*) FROM pipe_t", NULL, 0), 3);
  ck_assert_int_eq(db_exec_commit(c, one, 1, NULL), ERR_INVAL);
  ck_assert_int_eq(db_exec_pipeline(c, one, 0, NULL), ERR_INVAL);
  db_release(c);
  db_pool_free(p);
}
END_TEST

START_TEST(pipeline_stops_at_the_first_failure_and_rolls_back) {
  db_pool *p = pool(1);
  sql(p, "CREATE TABLE pipe_f (v text CONSTRAINT pipe_f_v UNIQUE)");
  sql(p, "INSERT INTO pipe_f VALUES ('taken')");
  db_conn *c = NULL;
  OK(db_acquire(p, &c));
  db_param x[] = {db_text("x")}, t[] = {db_text("taken")}, y[] = {db_text("y")};
  db_tx_opts o = {.defer_begin = true};
  db_stmt v[] = {
      {.sql = "INSERT INTO pipe_f VALUES ($1)", .params = x, .nparams = 1},
      {.sql = "INSERT INTO pipe_f VALUES ($1)", .params = t, .nparams = 1},
      {.sql = "INSERT INTO pipe_f (v) VALUES ($1)", .params = y, .nparams = 1},
  };
  db_result *out[3] = {NULL, NULL, NULL};
  OK(db_begin_opts(c, &o));
  ck_assert_int_eq(db_exec_commit(c, v, 3, out), ERR_EXISTS);
  ck_assert_str_eq(db_last_error()->constraint, "pipe_f_v");
  ck_assert(out[0] == NULL && out[1] == NULL && out[2] == NULL);
  ck_assert(!db_in_tx(c));
  ck_assert_int_eq(db_commit(c), ERR_INVAL); /* not committed */
  ck_assert_int_eq(query_int(c, "SELECT count(*) FROM pipe_f", NULL, 0), 1);
  /* A statement that cannot even be parsed: an error, not a cache entry
   * (the same pipeline fails the same way again, and a good one runs). */
  db_stmt bad[] = {
      {.sql = "INSERT INTO pipe_f VALUES ($1)", .params = x, .nparams = 1},
      {.sql = "SELEC nonsense"},
  };
  for (int i = 0; i < 2; i++) {
    OK(db_begin(c, NULL));
    ck_assert_int_eq(db_exec_pipeline(c, bad, 2, NULL), ERR_DB);
    ck_assert_str_eq(db_last_error()->sqlstate, "42601");
    ck_assert_int_eq(db_commit(c), ERR_DB);
  }
  /* A malformed statement is refused before anything is sent: the held
   * back BEGIN still opens the transaction of the next statement. */
  db_stmt malformed[] = {{.sql = NULL}};
  OK(db_begin_opts(c, &o));
  ck_assert_int_eq(db_exec_pipeline(c, malformed, 1, NULL), ERR_INVAL);
  OK(db_exec(c, "INSERT INTO pipe_f VALUES ($1)", y, 1, NULL));
  OK(db_rollback(c));
  ck_assert_int_eq(query_int(c, "SELECT count(*) FROM pipe_f", NULL, 0), 1);
  db_stmt good[] = {v[0], v[2]};
  OK(db_begin(c, NULL));
  OK(db_exec_commit(c, good, 2, NULL));
  OK(db_commit(c));
  ck_assert_int_eq(query_int(c, "SELECT count(*) FROM pipe_f", NULL, 0), 3);
  db_release(c);
  db_pool_free(p);
}
END_TEST

START_TEST(deferred_begin_survives_a_connection_killed_while_idle) {
  db_pool *p = pool(1);
  db_conn *c = NULL;
  OK(db_acquire(p, &c));
  int64_t pid = backend_pid(c);
  db_tx_opts o = {.tenant_id = "5f0c6a4e-3b1d-4c8e-9a7f-2d6b8e1c0a93",
                  .defer_begin = true};
  OK(db_begin_opts(c, &o));
  terminate(pid); /* after the opening was held back: nothing sent yet */
  db_result *r = NULL;
  OK(db_exec(c, "SELECT current_setting('app.tenant_id')", NULL, 0, &r));
  ck_assert_str_eq(db_get(r, 0, 0), o.tenant_id);
  db_result_free(r);
  ck_assert_int_ne(backend_pid(c), pid);
  OK(db_commit(c));
  db_release(c);
  db_pool_free(p);
}
END_TEST

/* ------------------------------------------------------------ migrations ---
 */

static void write_file(const char *dir, const char *name, const char *text) {
  char path[700];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  fclose(f);
}

static void remove_file(const char *dir, const char *name) {
  char path[700];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  ck_assert_int_eq(unlink(path), 0);
}

static const char *new_dir(const char *name) {
  static char dir[600];
  snprintf(dir, sizeof dir, "%s/%s", harness_init(), name);
  ck_assert_int_eq(mkdir(dir, 0755), 0);
  return dir;
}

static int64_t count(db_pool *p, const char *stmt) {
  db_conn *c = NULL;
  OK(db_acquire(p, &c));
  int64_t n = query_int(c, stmt, NULL, 0);
  db_release(c);
  return n;
}

START_TEST(migrations_apply_in_order_once) {
  const char *dir = new_dir("mig_order");
  /* Each file depends on the one before: a wrong order fails. */
  write_file(dir, "0001_items.sql",
             "CREATE TABLE items (id int PRIMARY KEY, note text);\n");
  write_file(dir, "0002_seed.sql",
             "INSERT INTO items VALUES (1, 'one');\nINSERT INTO items VALUES "
             "(2, 'two');\n");
  write_file(dir, "0010_extra.sql",
             "ALTER TABLE items ADD COLUMN extra text;\n"
             "UPDATE items SET extra = note || '!';\n");
  db_pool *p = pool(2);
  int applied = -1;
  OK(db_migrate(p, dir, "mig_order", &applied));
  ck_assert_int_eq(applied, 3);
  /* Unqualified names landed in the service's schema. */
  ck_assert_int_eq(
      count(p,
            "SELECT count(*) FROM mig_order.items WHERE extra = note || '!'"),
      2);
  ck_assert_int_eq(
      count(p, "SELECT count(*) FROM mig_order.schema_migrations"
               " WHERE length(checksum) = 64 AND applied_at <= now()"),
      3);
  ck_assert_int_eq(count(p, "SELECT version FROM mig_order.schema_migrations"
                            " WHERE name = '0010_extra.sql'"),
                   10);
  /* Idempotent: nothing re-runs (the seed rows would collide). */
  OK(db_migrate(p, dir, "mig_order", &applied));
  ck_assert_int_eq(applied, 0);
  /* A new file is picked up on its own. */
  write_file(dir, "0011_more.sql",
             "INSERT INTO items VALUES (3, 'three', 'x');");
  OK(db_migrate(p, dir, "mig_order", &applied));
  ck_assert_int_eq(applied, 1);
  ck_assert_int_eq(count(p, "SELECT count(*) FROM mig_order.items"), 3);
  /* Versions applied but missing on disk (an older replica) are fine. */
  remove_file(dir, "0011_more.sql");
  OK(db_migrate(p, dir, "mig_order", &applied));
  ck_assert_int_eq(applied, 0);
  db_pool_free(p);
}
END_TEST

START_TEST(changed_migration_is_rejected_before_anything_runs) {
  const char *dir = new_dir("mig_sum");
  write_file(dir, "0001_t.sql", "CREATE TABLE t (id int);");
  write_file(dir, "0002_u.sql", "CREATE TABLE u (id int);");
  db_pool *p = pool(1);
  OK(db_migrate(p, dir, "mig_sum", NULL));
  write_file(dir, "0002_u.sql", "CREATE TABLE u (id int, sneaky text);");
  write_file(dir, "0003_v.sql", "CREATE TABLE v (id int);");
  int applied = -1;
  ck_assert_int_eq(db_migrate(p, dir, "mig_sum", &applied), ERR_CONFLICT);
  ck_assert_int_eq(applied, 0);
  ck_assert_ptr_nonnull(strstr(db_last_error()->message, "0002_u.sql"));
  ck_assert_int_eq(count(p, "SELECT count(*) FROM mig_sum.schema_migrations"),
                   2);
  ck_assert_int_eq(count(p,
                         "SELECT count(*) FROM pg_tables"
                         " WHERE schemaname = 'mig_sum' AND tablename = 'v'"),
                   0);
  db_pool_free(p);
}
END_TEST

START_TEST(failing_migration_leaves_nothing_half_applied) {
  const char *dir = new_dir("mig_fail");
  write_file(dir, "0001_ok.sql", "CREATE TABLE ok_t (id int);");
  write_file(dir, "0002_bad.sql",
             "CREATE TABLE half_t (id int);\nINSERT INTO half_t VALUES (1);\n"
             "INSERT INTO no_such_table VALUES (1);\n");
  write_file(dir, "0003_after.sql", "CREATE TABLE after_t (id int);");
  db_pool *p = pool(1);
  int applied = -1;
  ck_assert_int_eq(db_migrate(p, dir, "mig_fail", &applied), ERR_DB);
  ck_assert_int_eq(applied, 1);
  ck_assert_str_eq(db_last_error()->sqlstate, "42P01");
  ck_assert_ptr_nonnull(strstr(db_last_error()->message, "0002_bad.sql"));
  ck_assert_int_eq(
      count(p, "SELECT count(*) FROM pg_tables WHERE schemaname = 'mig_fail'"
               " AND tablename IN ('half_t', 'after_t')"),
      0);
  ck_assert_int_eq(count(p, "SELECT count(*) FROM mig_fail.schema_migrations"),
                   1);
  /* Fixed, it applies, and the rest follows. */
  write_file(dir, "0002_bad.sql",
             "CREATE TABLE half_t (id int);\nINSERT INTO half_t VALUES (1);\n");
  OK(db_migrate(p, dir, "mig_fail", &applied));
  ck_assert_int_eq(applied, 2);
  ck_assert_int_eq(count(p, "SELECT count(*) FROM mig_fail.half_t"), 1);
  db_pool_free(p);
}
END_TEST

typedef struct runner {
  const char *dir;
  int rc;
  int applied;
  char msg[256];
} runner;

static void *run_migrations(void *arg) {
  runner *r = arg;
  db_config cfg = {.conninfo = g_pg.url, .max_conns = 1};
  db_pool *p = NULL;
  r->rc = db_pool_new(&cfg, &p);
  if (r->rc == ERR_OK) r->rc = db_migrate(p, r->dir, "mig_race", &r->applied);
  snprintf(r->msg, sizeof r->msg, "%s", db_last_error()->message);
  db_pool_free(p);
  return NULL;
}

START_TEST(concurrent_runners_apply_each_file_once) {
  const char *dir = new_dir("mig_race");
  write_file(dir, "0001_log.sql", "CREATE TABLE runs (file text);");
  /* Slow files widen the window in which a second runner could interfere. */
  write_file(dir, "0002_slow.sql",
             "INSERT INTO runs VALUES ('0002'); SELECT pg_sleep(0.3);");
  write_file(dir, "0003_slow.sql",
             "INSERT INTO runs VALUES ('0003'); SELECT pg_sleep(0.3);");
  runner r[3];
  pthread_t t[3];
  for (int i = 0; i < 3; i++) {
    r[i] = (runner){.dir = dir, .rc = -1};
    ck_assert_int_eq(pthread_create(&t[i], NULL, run_migrations, &r[i]), 0);
  }
  int total = 0;
  for (int i = 0; i < 3; i++) {
    pthread_join(t[i], NULL);
    ck_assert_msg(r[i].rc == ERR_OK, "runner %d: %s %s", i, err_str(r[i].rc),
                  r[i].msg);
    total += r[i].applied;
  }
  ck_assert_int_eq(total, 3);
  db_pool *p = pool(1);
  ck_assert_int_eq(count(p, "SELECT count(*) FROM mig_race.runs"), 2);
  ck_assert_int_eq(count(p, "SELECT count(DISTINCT file) FROM mig_race.runs"),
                   2);
  ck_assert_int_eq(count(p, "SELECT count(*) FROM mig_race.schema_migrations"),
                   3);
  db_pool_free(p);
}
END_TEST

START_TEST(bad_migration_inputs_are_refused) {
  db_pool *p = pool(1);
  const char *dir = new_dir("mig_bad");
  ck_assert_int_eq(db_migrate(p, dir, "x\"; DROP SCHEMA public; --", NULL),
                   ERR_INVAL);
  write_file(dir, "2_wrong.sql", "SELECT 1;");
  ck_assert_int_eq(db_migrate(p, dir, "mig_bad", NULL), ERR_INVAL);
  remove_file(dir, "2_wrong.sql");
  OK(db_migrate(p, dir, "mig_bad",
                NULL)); /* empty directory: just bookkeeping */
  ck_assert_int_eq(count(p, "SELECT count(*) FROM mig_bad.schema_migrations"),
                   0);
  db_pool_free(p);
}
END_TEST

int main(void) {
  harness_init();
  if (harness_pg_start(&g_pg) != 0) {
    harness_dump_logs();
    fprintf(stderr, "cannot start PostgreSQL\n");
    return EXIT_FAILURE;
  }
  Suite *s = suite_create("db_itest");
  TCase *pool_tc = tcase_create("pool");
  tcase_set_timeout(pool_tc, 120);
  tcase_add_test(pool_tc, released_connection_is_reused);
  tcase_add_test(pool_tc, exhausted_pool_times_out_then_recovers);
  tcase_add_test(pool_tc, waiter_gets_a_connection_when_one_is_released);
  tcase_add_test(pool_tc, idle_connection_killed_by_server_is_replaced);
  tcase_add_test(pool_tc, connection_killed_while_held_fails_then_reconnects);
  tcase_add_test(pool_tc, pool_survives_a_server_restart);
  suite_add_tcase(s, pool_tc);

  TCase *q = tcase_create("queries");
  tcase_set_timeout(q, 60);
  tcase_add_test(q, commit_keeps_and_rollback_discards);
  tcase_add_test(q, with_tx_retries_conflicts_and_rolls_back_errors);
  tcase_add_test(q, serialization_failure_is_conflict);
  tcase_add_test(q, tenant_setting_lives_exactly_as_long_as_the_transaction);
  tcase_add_test(q, store_run_scopes_one_tenant_or_a_policy);
  tcase_add_test(q, cells_and_pages_read_as_asked);
  tcase_add_test(q, row_level_security_hides_other_tenants_rows);
  tcase_add_test(q, unique_violation_is_exists_without_the_value);
  tcase_add_test(q, statement_timeout_is_enforced);
  tcase_add_test(q, statements_are_prepared_once_per_connection);
  tcase_add_test(q, parameters_are_stored_verbatim);
  tcase_add_test(q, pipeline_runs_in_order_with_a_deferred_begin_and_commit);
  tcase_add_test(q, pipeline_stops_at_the_first_failure_and_rolls_back);
  tcase_add_test(q, deferred_begin_survives_a_connection_killed_while_idle);
  suite_add_tcase(s, q);

  TCase *m = tcase_create("migrations");
  tcase_set_timeout(m, 60);
  tcase_add_test(m, migrations_apply_in_order_once);
  tcase_add_test(m, changed_migration_is_rejected_before_anything_runs);
  tcase_add_test(m, failing_migration_leaves_nothing_half_applied);
  tcase_add_test(m, concurrent_runners_apply_each_file_once);
  tcase_add_test(m, bad_migration_inputs_are_refused);
  suite_add_tcase(s, m);

  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  if (failed != 0) harness_dump_logs();
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
