/*
 * edge_itest.c - the gateway's edge under attack (issue 9), over real
 * sockets against real processes: PostgreSQL, Redis, auth, tenants and two
 * gateways (tests/harness).
 *
 * Design. Each test is an attack as an outsider would mount it, and
 * asserts that it ends refused, with the answer the contract promises:
 *   - a password guesser spreading 50 attempts over case and whitespace
 *     variants of one e-mail and over several client addresses (through a
 *     trusted proxy: the test's own loopback peer, 127.0.0.1, is
 *     configured as one and writes X-Forwarded-For) ends in 429 with
 *     Retry-After;
 *   - tenant-less routes are limited per client address (as the proxy
 *     reports it), and neither a spoofed left part of X-Forwarded-For nor
 *     garbage earns a fresh bucket;
 *   - a POST announcing a 900 kB body without a valid token gets 401
 *     before a byte of the body is sent (the test sends headers only);
 *   - 1,000 slow uploads from ten addresses (127.0.0.2..11: Linux routes
 *     all of 127/8 to lo) keep the gateway's RSS under a stated bound
 *     while a fresh request is answered, and are all cut after the
 *     request timeout although they keep trickling bytes; a per-address
 *     connection cap refuses the connection over it;
 *   - with Redis stopped, the fail-closed gateway answers 503 with
 *     Retry-After (rate limits and revocation checks), the fail-open one
 *     lets requests through.
 * No assertion is on speed: waits have generous bounds, and everything
 * the test starts it stops (the harness kills leftovers at exit).
 */
#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "libs/base/timeutil.h"
#include "tests/harness/api.h"
#include "tests/harness/cases.h"
#include "tests/harness/harness.h"
#include "tests/harness/http.h"
#include "tests/harness/system.h"

#define OPERATOR_SECRET "itest-operator-secret-0123456789"
#define PASSWORD "correct horse battery"
#define LOGIN_BURST 5
#define TIGHT_BURST 3
#define SLOW_CONNS 1000
#define SLOW_ADDRS 10  /* 127.0.0.2 .. 127.0.0.11, 100 each */
#define PER_IP_CAP 150 /* GATEWAY_MAX_CONNECTIONS_PER_IP */
#define REQUEST_TIMEOUT_MS 8000
#define SLOW_BODY_SENT 8192 /* bytes each slow upload sends at once */
/* RSS bound for 1,000 slow uploads (see slow_uploads_...): per connection
 * MHD's 32 KiB connection pool, the body buffer (at most the route's
 * 16 KiB cap) and ~4 KiB of request state: ~52 KiB, ~52 MiB in all;
 * allowed 96 MiB over the idle gateway, far below the pod's 512 MiB. */
#define RSS_GROWTH_MAX_KB (96 * 1024)

typedef harness_http_resp resp;

static harness_system g_sys; /* gateway[0] the edge, gateway[1] tight */
static harness_api_tenant g_t;

/* ---------------------------------------------------------- processes -- */

#define STR_(x) #x
#define STR(x) STR_(x)

static char *const kTenants[] = {"TENANTS_OPERATOR_SECRET=" OPERATOR_SECRET,
                                 "TENANTS_BASE_DOMAINS=localhost", NULL};
/* Both gateways trust 127.0.0.1 as a proxy. */
static char *const kGateway[] = {
    "GATEWAY_LOGIN_BURST=" STR(LOGIN_BURST),
    "GATEWAY_REQUEST_TIMEOUT_MS=" STR(REQUEST_TIMEOUT_MS),
    "GATEWAY_MAX_CONNECTIONS_PER_IP=" STR(PER_IP_CAP),
    "GATEWAY_RATE_PER_MIN=1",
    "GATEWAY_LOGIN_PER_MIN=1",
    "GATEWAY_TRUSTED_PROXIES=127.0.0.1/32, ::1",
    "GATEWAY_MAX_CONNECTIONS=4000",
    "GATEWAY_ACCESS_LOG=false", /* 1,000 slow lines */
    "GATEWAY_DEADLINE_MS=3000",
    NULL};
/* The edge: rate limits and revocation checks fail closed. */
static char *const kEdge[] = {"GATEWAY_RATE_BURST=1000",
                              "GATEWAY_RATE_LIMIT_FAIL=closed",
                              "AUTHN_REVOCATION_FAIL=closed", NULL};
/* The tight one: a small burst, failing open. */
static char *const kTight[] = {"GATEWAY_RATE_BURST=" STR(TIGHT_BURST),
                               "GATEWAY_RATE_LIMIT_FAIL=open",
                               "AUTHN_REVOCATION_FAIL=open", NULL};

static const harness_system_opts kSystem = {
    .parts = HARNESS_WITH(HARNESS_TENANTS) | HARNESS_WITH(HARNESS_GATEWAY),
    .rpc_workers = 8,
    .log_level = "info",
    .env = {[HARNESS_TENANTS] = kTenants, [HARNESS_GATEWAY] = kGateway},
    .gateways = {{.name = "gateway-edge", .env = kEdge},
                 {.name = "gateway-tight", .redis_db = 1, .env = kTight}},
};

/* ------------------------------------------------------------ helpers -- */

/* A request through "the proxy" (127.0.0.1) for client xff (NULL: no
 * header), with X-Tenant of the test's tenant. */
static resp *via_proxy(int port, const char *method, const char *path,
                       const char *body, const char *xff, const char *token) {
  char xt[96], xf[256];
  snprintf(xt, sizeof xt, "X-Tenant: %s", g_t.slug);
  const char *h[3] = {xt, NULL, NULL};
  if (xff != NULL) {
    snprintf(xf, sizeof xf, "X-Forwarded-For: %s", xff);
    h[1] = xf;
  }
  return harness_http_call(method, port, path, body, token, h);
}

static void check_retry_after(const resp *r) {
  const char *ra = harness_http_header(r, "Retry-After");
  ck_assert_msg(ra != NULL, "no Retry-After on %ld", r->status);
  char *end;
  long v = strtol(ra, &end, 10);
  ck_assert_msg(*end == '\0' && v >= 1, "Retry-After: %s", ra);
}

/* A TCP connection from src (NULL: any) to 127.0.0.1:port; -1 on error. */
static int dial(const char *src, int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  if (src != NULL) {
    struct sockaddr_in me = {.sin_family = AF_INET};
    inet_pton(AF_INET, src, &me.sin_addr);
    if (bind(fd, (struct sockaddr *)&me, sizeof me) != 0) {
      close(fd);
      return -1;
    }
  }
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static bool send_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0) return false;
    p += w;
    n -= (size_t)w;
  }
  return true;
}

/* Reads until the peer closes or timeout_ms pass; *closed says which. */
static char *read_answer(int fd, int timeout_ms, bool *closed) {
  char *out = calloc(1, 65536);
  size_t got = 0;
  *closed = false;
  int64_t until = time_mono_ms() + timeout_ms;
  while (got < 65535 && time_mono_ms() < until) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 100) <= 0) continue;
    ssize_t n = recv(fd, out + got, 65535 - got, 0);
    if (n <= 0) {
      *closed = true;
      break;
    }
    got += (size_t)n;
  }
  return out;
}

/* -------------------------------------------------------------- tests -- */

START_TEST(login_guesses_over_email_variants_and_addresses_end_in_429) {
  const char *variants[] = {"%s", " %s", "%s ", "\\t%s", "  %s\\t ", NULL};
  char lower[128], upper[128];
  size_t n = strlen(g_t.owner_email);
  for (size_t i = 0; i <= n; i++) {
    char c = g_t.owner_email[i];
    lower[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    upper[i] = (char)(c >= 'a' && c <= 'z' ? c - 32 : c);
  }
  const char *cases[] = {lower, upper, g_t.owner_email};
  int unauthorized = 0, limited = 0, by_gateway = 0;
  resp *last = NULL;
  for (int i = 0; i < 50; i++) {
    char email[160], body[400], xff[64];
    snprintf(email, sizeof email, variants[i % 5], cases[i % 3]);
    snprintf(body, sizeof body,
             "{\"email\":\"%s\",\"password\":\"wrong guess %d\"}", email, i);
    /* Ten client addresses, each behind the trusted proxy. */
    snprintf(xff, sizeof xff, "203.0.113.%d", 1 + i % 10);
    harness_http_free(last);
    last = via_proxy(g_sys.gateway[0].http_port, "POST", "/v1/auth/login", body,
                     xff, NULL);
    if (last->status == 401) {
      unauthorized++;
    } else {
      CK_HTTP_ERROR(last, 429, "RESOURCE_EXHAUSTED");
      check_retry_after(last);
      limited++;
      /* The gateway's bucket, not auth's per-account lock (which would
       * end the guessing too, and hide a bucket per spelling). */
      if (strcmp(harness_json_str(last->json, "error.message"),
                 "too many login attempts, try again later") == 0)
        by_gateway++;
    }
  }
  /* The bucket (5, refilling 1 a minute) is one for every variant and
   * every address: at most the burst and a refill or two got through. */
  ck_assert_msg(unauthorized <= LOGIN_BURST + 2, "%d guesses answered 401",
                unauthorized);
  ck_assert_int_ge(limited, 50 - LOGIN_BURST - 2);
  ck_assert_int_ge(by_gateway, 50 - LOGIN_BURST - 4);
  CK_HTTP_ERROR(last, 429, "RESOURCE_EXHAUSTED");
  check_retry_after(last);
  harness_http_free(last);
}
END_TEST

START_TEST(tenant_less_routes_are_limited_per_client_address) {
  int port = g_sys.gateway[1].http_port; /* caller burst 3, 1 a minute */
  const char *body = "{\"refresh_token\":\"not-a-real-one\"}";
  for (int i = 0; i < TIGHT_BURST; i++) {
    resp *r =
        via_proxy(port, "POST", "/v1/auth/refresh", body, "198.51.100.1", NULL);
    ck_assert_int_ne(r->status, 429);
    harness_http_free(r);
  }
  resp *r =
      via_proxy(port, "POST", "/v1/auth/refresh", body, "198.51.100.1", NULL);
  CK_HTTP_ERROR(r, 429, "RESOURCE_EXHAUSTED");
  check_retry_after(r);
  harness_http_free(r);
  /* A spoofed left part does not change who the client is. */
  r = via_proxy(port, "POST", "/v1/auth/refresh", body,
                "10.9.9.9, 198.51.100.1", NULL);
  CK_HTTP_ERROR(r, 429, "RESOURCE_EXHAUSTED");
  harness_http_free(r);
  /* Another client has its own bucket (also on POST /v1/tenants). */
  r = via_proxy(port, "POST", "/v1/auth/refresh", body, "198.51.100.2", NULL);
  ck_assert_int_ne(r->status, 429);
  harness_http_free(r);
  r = via_proxy(port, "POST", "/v1/tenants", "{}", "198.51.100.2", NULL);
  ck_assert_int_ne(r->status, 429);
  harness_http_free(r);
  /* Garbage lands in the proxy's own bucket, shared by all garbage. */
  int garbage_limited = 0;
  for (int i = 0; i < TIGHT_BURST + 1; i++) {
    char junk[32];
    snprintf(junk, sizeof junk, "junk-%d", i);
    r = via_proxy(port, "POST", "/v1/auth/refresh", body, junk, NULL);
    if (r->status == 429) garbage_limited++;
    harness_http_free(r);
  }
  ck_assert_int_ge(garbage_limited, 1);
}
END_TEST

START_TEST(token_routes_answer_401_before_the_body_is_sent) {
  const char *heads[] = {
      "POST /v1/tenant/domains HTTP/1.1\r\nHost: localhost\r\n"
      "Content-Type: application/json\r\nContent-Length: 900000\r\n\r\n",
      "POST /v1/tenant/domains HTTP/1.1\r\nHost: localhost\r\n"
      "Authorization: Bearer v4.public.eyJmb3JnZWQiOnRydWV9\r\n"
      "Content-Type: application/json\r\nContent-Length: 900000\r\n\r\n",
      "PATCH /v1/tenant HTTP/1.1\r\nHost: localhost\r\n"
      "Authorization: Basic b3duZXI6cHc=\r\n"
      "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++) {
    int fd = dial(NULL, g_sys.gateway[0].http_port);
    ck_assert_int_ge(fd, 0);
    ck_assert(send_all(fd, heads[i], strlen(heads[i])));
    bool closed;
    char *out = read_answer(fd, 10000, &closed);
    close(fd);
    ck_assert_msg(strncmp(out, "HTTP/1.1 401", 12) == 0, "%zu: %s", i, out);
    ck_assert_ptr_nonnull(strstr(out, "WWW-Authenticate: Bearer"));
    ck_assert_ptr_nonnull(strstr(out, "\"code\":\"UNAUTHENTICATED\""));
    ck_assert_ptr_nonnull(strstr(out, "\"request_id\""));
    /* The body was announced and never read: the connection is closed. */
    ck_assert_msg(closed, "%zu: connection left open", i);
    free(out);
  }
  /* An anonymous route announcing more than its 16 KiB cap: 413 at once. */
  char head[512];
  snprintf(head, sizeof head,
           "POST /v1/auth/login HTTP/1.1\r\nHost: localhost\r\nX-Tenant: %s\r\n"
           "Content-Type: application/json\r\nContent-Length: 20000\r\n\r\n",
           g_t.slug);
  int fd = dial(NULL, g_sys.gateway[0].http_port);
  ck_assert(send_all(fd, head, strlen(head)));
  bool closed;
  char *out = read_answer(fd, 10000, &closed);
  close(fd);
  ck_assert_msg(strncmp(out, "HTTP/1.1 413", 12) == 0, "%s", out);
  free(out);
  /* A valid token still works. */
  resp *r = harness_http_call("GET", g_sys.gateway[0].http_port, "/v1/tenant",
                              NULL, g_t.owner_token, NULL);
  CK_HTTP_STATUS(r, 200);
  harness_http_free(r);
}
END_TEST

/* Opens n slow uploads from src: headers announcing 16000 bytes and the
 * first SLOW_BODY_SENT of them. Returns how many were opened. */
static int open_slow(const char *src, int *fds, int n, const char *head) {
  static char body[SLOW_BODY_SENT];
  memset(body, ' ', sizeof body);
  body[0] = '{';
  int opened = 0;
  for (int i = 0; i < n; i++) {
    fds[i] = dial(src, g_sys.gateway[0].http_port);
    if (fds[i] < 0) break;
    if (!send_all(fds[i], head, strlen(head)) ||
        !send_all(fds[i], body, sizeof body)) {
      close(fds[i]);
      fds[i] = -1;
      break;
    }
    fcntl(fds[i], F_SETFL, O_NONBLOCK);
    opened++;
  }
  return opened;
}

/* One more byte on every open connection; closes and marks (-1) those the
 * gateway has cut. Returns how many are still open. */
static int trickle(int *fds, int n) {
  int open_left = 0;
  for (int i = 0; i < n; i++) {
    if (fds[i] < 0) continue;
    char b[4096];
    ssize_t r = recv(fds[i], b, sizeof b, 0);
    bool gone = r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
    if (!gone && send(fds[i], " ", 1, MSG_NOSIGNAL) < 0 && errno != EAGAIN)
      gone = true;
    if (gone) {
      close(fds[i]);
      fds[i] = -1;
    } else {
      open_left++;
    }
  }
  return open_left;
}

START_TEST(slow_uploads_stay_bounded_and_are_cut_after_the_timeout) {
  harness_proc *gw = g_sys.gateway[0].proc;
  long before = harness_rss_kb(gw);
  ck_assert_int_gt(before, 0);
  char head[512];
  snprintf(head, sizeof head,
           "POST /v1/auth/login HTTP/1.1\r\nHost: localhost\r\nX-Tenant: %s\r\n"
           "Content-Type: application/json\r\nContent-Length: 16000\r\n\r\n",
           g_t.slug);
  static int fds[SLOW_CONNS];
  int per = SLOW_CONNS / SLOW_ADDRS, opened = 0;
  for (int a = 0; a < SLOW_ADDRS; a++) {
    char src[32];
    snprintf(src, sizeof src, "127.0.0.%d", 2 + a);
    opened += open_slow(src, fds + a * per, per, head);
  }
  ck_assert_int_eq(opened, SLOW_CONNS);
  /* Let the gateway read what was sent, then measure. */
  time_sleep_ms(1500);
  (void)trickle(fds, SLOW_CONNS);
  long during = harness_rss_kb(gw);
  fprintf(stderr,
          "edge_itest: gateway VmRSS %ld KiB idle, %ld KiB with %d "
          "slow uploads (+%ld KiB, bound +%d KiB)\n",
          before, during, SLOW_CONNS, during - before, RSS_GROWTH_MAX_KB);
  ck_assert_int_le(during - before, RSS_GROWTH_MAX_KB);
  /* A normal client on a fresh connection is still served. */
  resp *r = harness_http_call("GET", g_sys.gateway[0].http_port,
                              "/v1/auth/keys", NULL, NULL, NULL);
  CK_HTTP_STATUS(r, 200);
  harness_http_free(r);
  /* The per-address cap: 127.0.0.12 may hold PER_IP_CAP connections; the
   * next one is closed without an answer. */
  static int cap_fds[PER_IP_CAP];
  const char *get = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
  for (int i = 0; i < PER_IP_CAP; i++) {
    cap_fds[i] = dial("127.0.0.12", g_sys.gateway[0].http_port);
    ck_assert_int_ge(cap_fds[i], 0);
  }
  /* An answer on the last proves every earlier one was accepted. */
  ck_assert(send_all(cap_fds[PER_IP_CAP - 1], get, strlen(get)));
  bool closed;
  char *out = read_answer(cap_fds[PER_IP_CAP - 1], 100, &closed);
  for (int64_t until = time_mono_ms() + 10000;
       strstr(out, "200") == NULL && time_mono_ms() < until;) {
    free(out);
    out = read_answer(cap_fds[PER_IP_CAP - 1], 500, &closed);
  }
  ck_assert_msg(strncmp(out, "HTTP/1.1 200", 12) == 0, "%s", out);
  free(out);
  int over = dial("127.0.0.12", g_sys.gateway[0].http_port);
  ck_assert_int_ge(over, 0);
  (void)send_all(over, get, strlen(get));
  out = read_answer(over, 10000, &closed);
  ck_assert_msg(closed && out[0] == '\0', "over the cap answered: %s", out);
  free(out);
  close(over);
  for (int i = 0; i < PER_IP_CAP; i++) close(cap_fds[i]);
  /* Every slow upload keeps sending a byte every 500 ms - MHD's idle
   * timer never fires - and is still cut once the request timeout is
   * over. Bound: the timeout, plus generous slack for a loaded box. */
  int left = SLOW_CONNS;
  int64_t until = time_mono_ms() + REQUEST_TIMEOUT_MS + 60000;
  while (left > 0 && time_mono_ms() < until) {
    time_sleep_ms(500);
    left = trickle(fds, SLOW_CONNS);
  }
  for (int i = 0; i < SLOW_CONNS; i++)
    if (fds[i] >= 0) close(fds[i]);
  ck_assert_msg(left == 0, "%d slow uploads still open", left);
  /* And the gateway still serves. */
  r = harness_http_call("GET", g_sys.gateway[0].http_port, "/v1/auth/keys",
                        NULL, NULL, NULL);
  CK_HTTP_STATUS(r, 200);
  harness_http_free(r);
}
END_TEST

START_TEST(redis_down_fails_closed_or_open_as_configured) {
  harness_redis_stop(&g_sys.redis);
  /* Fail closed: the rate limiter cannot decide -> 503 with Retry-After. */
  resp *r = via_proxy(g_sys.gateway[0].http_port, "GET", "/v1/auth/keys", NULL,
                      "192.0.2.10", NULL);
  CK_HTTP_ERROR(r, 503, "UNAVAILABLE");
  check_retry_after(r);
  harness_http_free(r);
  /* ... and a token call, whose revocation check cannot be made. */
  r = harness_http_call("GET", g_sys.gateway[0].http_port, "/v1/tenant", NULL,
                        g_t.owner_token, NULL);
  CK_HTTP_ERROR(r, 503, "UNAVAILABLE");
  harness_http_free(r);
  /* Fail open (the other gateway): both go through. */
  r = via_proxy(g_sys.gateway[1].http_port, "GET", "/v1/auth/keys", NULL,
                "192.0.2.11", NULL);
  CK_HTTP_STATUS(r, 200);
  harness_http_free(r);
  r = harness_http_call("GET", g_sys.gateway[1].http_port, "/v1/tenant", NULL,
                        g_t.owner_token, NULL);
  CK_HTTP_STATUS(r, 200);
  harness_http_free(r);
  ck_assert_int_eq(harness_redis_restart(&g_sys.redis), 0);
}
END_TEST

/* --------------------------------------------------------------- main -- */

/* 1,000 client sockets here and as many in the gateway (a child: it
 * inherits the limit). */
static void raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  rlim_t want = 8192;
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) want = rl.rlim_max;
  if (rl.rlim_cur < want) {
    rl.rlim_cur = want;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
  }
}

static bool start_system(void) {
  if (!harness_system_start(&g_sys, &kSystem)) return false;
  /* The tenant is made through the open gateway, so the edge's buckets
   * start full. */
  int st = harness_api_create_tenant(g_sys.gateway[1].http_port, "edge",
                                     PASSWORD, &g_t);
  if (st != 201) {
    fprintf(stderr, "cannot create the tenant: %d\n", st);
    harness_system_end(&g_sys, 1);
  }
  return st == 201;
}

/* Each case its own tcase (CK_RUN_CASE=<case name>); the system it needs
 * is started in main. */
#define ADD_CASE(s, t) HARNESS_ADD_CASE((s), t, 180, NULL)

int main(void) {
  harness_init();
  raise_nofile();
  curl_global_init(CURL_GLOBAL_DEFAULT);
  if (!start_system()) return 1;
  Suite *s = suite_create("edge_itest");
  ADD_CASE(s, login_guesses_over_email_variants_and_addresses_end_in_429);
  ADD_CASE(s, tenant_less_routes_are_limited_per_client_address);
  ADD_CASE(s, token_routes_answer_401_before_the_body_is_sent);
  ADD_CASE(s, slow_uploads_stay_bounded_and_are_cut_after_the_timeout);
  ADD_CASE(s, redis_down_fails_closed_or_open_as_configured);
  /* The cases share the system started above. */
  int failed = harness_run_shared(s);
  int rc = harness_system_end(&g_sys, failed);
  curl_global_cleanup();
  return rc;
}
