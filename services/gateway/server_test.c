/*
 * server_test.c - the gateway's HTTP behaviour end to end inside one
 * process: a real microhttpd server, the pipeline, token verification
 * (libs/authn with locally made keys), tenant resolution (libs/tenantdir
 * with a fake directory) and an echo backend over libs/rpc, driven with
 * libcurl and raw sockets. Every status, header and error shape of
 * HTTP-API.md that does not need the real auth/tenants services is
 * checked here; tests/gateway covers those.
 */
#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "libs/authn/authn.h"
#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "libs/base/uuid.h"
#include "libs/paseto/claims.h"
#include "libs/paseto/paseto.h"
#include "libs/rpc/rpc.h"
#include "libs/tenantdir/tenantdir.h"
#include "services/gateway/appfiles.h"
#include "services/gateway/pipeline.h"
#include "services/gateway/server.h"
#include "services/gateway/testdata/gwtest.pb-c.h"

#define REQ (&gwtest__v1__echo_request__descriptor)
#define REP (&gwtest__v1__echo_reply__descriptor)
#define DEADLINE_MS 1500
#define MAX_BODY 1024
#define SMALL_BODY 64 /* POST /v1/small's own cap */

static const char *const kHidden[] = {"tenant_id", NULL};
static const char *const kOmitQty[] = {"quantity", NULL};
static const route_extra kExtra = {"extra", "echo", "gwtest.v1.Echo/Echo",
                                   REQ,     REP,    "item"};

#define PART_REQ (&gwtest__v1__put_part_request__descriptor)
#define PART_REP (&gwtest__v1__put_part_reply__descriptor)
#define GETP_REQ (&gwtest__v1__get_part_request__descriptor)
#define GETP_REP (&gwtest__v1__get_part_reply__descriptor)
#define FILE_MAX (4 * 1024 * 1024)
static const char *const kUploadHidden[] = {"upload_id", "size", "offset",
                                            NULL};
static const char *const kDownloadHidden[] = {"offset", "max", NULL};
static const char *const kOmitPart[] = {"existed", "done", "received", NULL};

static const route kRows[] = {
    {.method = "PUT",
     .path = "/v1/files/{name}",
     .service = "echo",
     .rpc = "gwtest.v1.Echo/PutPart",
     .request = PART_REQ,
     .response = PART_REP,
     .min_role = ROUTE_ANYONE,
     .status = 201,
     .hidden = kUploadHidden,
     .omit = kOmitPart,
     .max_body = FILE_MAX,
     .raw_body = "data",
     .existed_field = "existed",
     .flags = ROUTE_IDEMPOTENT | ROUTE_STREAMED},
    {.method = "GET",
     .path = "/v1/files/{name}",
     .service = "echo",
     .rpc = "gwtest.v1.Echo/GetPart",
     .request = GETP_REQ,
     .response = GETP_REP,
     .min_role = ROUTE_ANYONE,
     .status = 200,
     .hidden = kDownloadHidden,
     .raw_reply = "data",
     .flags = ROUTE_IDEMPOTENT | ROUTE_STREAMED},
    {.method = "GET",
     .path = "/v1/echo/{id}",
     .service = "echo",
     .rpc = "gwtest.v1.Echo/Echo",
     .request = REQ,
     .response = REP,
     .min_role = ROUTE_ANYONE,
     .status = 200,
     .hidden = kHidden,
     .flags = ROUTE_IDEMPOTENT},
    {.method = "POST",
     .path = "/v1/echo",
     .service = "echo",
     .rpc = "gwtest.v1.Echo/Echo",
     .request = REQ,
     .response = REP,
     .min_role = ROUTE_ANYONE,
     .status = 201,
     .tenant = ROUTE_TENANT_NAMED,
     .hidden = kHidden,
     .login_key = "email"},
    {.method = "PATCH",
     .path = "/v1/echo/{id}",
     .service = "echo",
     .rpc = "gwtest.v1.Echo/Echo",
     .request = REQ,
     .response = REP,
     .min_role = ROUTE_ADMIN,
     .status = 200,
     .hidden = kHidden},
    {.method = "DELETE",
     .path = "/v1/echo/{id}",
     .service = "echo",
     .rpc = "gwtest.v1.Echo/Echo",
     .request = REQ,
     .response = REP,
     .min_role = ROUTE_CUSTOMER,
     .status = 204,
     .hidden = kHidden},
    {.method = "GET",
     .path = "/v1/me",
     .service = "echo",
     .rpc = "gwtest.v1.Echo/Echo",
     .request = REQ,
     .response = REP,
     .min_role = ROUTE_CUSTOMER,
     .status = 200,
     .hidden = kHidden,
     .extra = &kExtra},
    {.method = "POST",
     .path = "/v1/down",
     .service = "down",
     .rpc = "gwtest.v1.Echo/Echo",
     .request = REQ,
     .response = REP,
     .min_role = ROUTE_ANYONE,
     .status = 200,
     .hidden = kHidden},
    {.method = "POST",
     .path = "/v1/small",
     .service = "echo",
     .rpc = "gwtest.v1.Echo/Echo",
     .request = REQ,
     .response = REP,
     .min_role = ROUTE_ANYONE,
     .status = 201,
     .tenant = ROUTE_TENANT_NAMED,
     .hidden = kHidden,
     .max_body = SMALL_BODY},
    {.method = "GET",
     .path = "/v1/item/{id}",
     .service = "echo",
     .rpc = "gwtest.v1.Echo/Echo",
     .request = REQ,
     .response = REP,
     .min_role = ROUTE_ANYONE,
     .status = 200,
     .reply_field = "item",
     .hidden = kHidden,
     .omit = kOmitQty},
    {.method = "POST",
     .path = "/v1/keyed",
     .service = "echo",
     .rpc = "gwtest.v1.Echo/Echo",
     .request = REQ,
     .response = REP,
     .min_role = ROUTE_ANYONE,
     .status = 201,
     .tenant = ROUTE_TENANT_NAMED,
     .hidden = kHidden,
     .flags = ROUTE_KEYED},
};

#define T_ACME "0190a000-0000-7000-8000-00000000000a"
#define T_FROZEN "0190a000-0000-7000-8000-00000000000f"
#define T_OTHER "0190a000-0000-7000-8000-00000000000b"

static rpc_server *backend_srv;
static rpc_client *echo_client, *down_client;
static authn *verifier;
static tenantdir *dir;
static route_table *routes;
static cors *origins;
static pipeline *pipe_;
static server *srv;
static char base[64];
static paseto_secret_key sk;

/* ------------------------------------------------------------ backend -- */

static void echo(void *arg, const rpc_call *call, rpc_reply *reply) {
  Gwtest__V1__EchoRequest *in =
      gwtest__v1__echo_request__unpack(NULL, call->payload_len, call->payload);
  if (in == NULL) {
    rpc_reply_status(reply, RPC_INVALID_ARGUMENT, "bad payload");
    return;
  }
  if (in->sleep_ms > 0) time_sleep_ms(in->sleep_ms);
  int code;
  if (in->fail_code[0] != '\0' &&
      rpc_code_parse(in->fail_code, &code) == ERR_OK) {
    rpc_reply_status(reply, code, "backend says no: SELECT secret FROM t");
    if (code == RPC_RESOURCE_EXHAUSTED) rpc_reply_retry_after(reply, 1500);
    (void)rpc_reply_add_violation(reply, "name", "is not acceptable");
    gwtest__v1__echo_request__free_unpacked(in, NULL);
    return;
  }
  Gwtest__V1__Envelope env = GWTEST__V1__ENVELOPE__INIT;
  env.tenant_id = (char *)call->tenant_id;
  env.request_id = (char *)call->request_id;
  env.has_token = call->token[0] != '\0';
  env.token = (char *)call->token;
  env.idempotency_key = (char *)call->idempotency_key;
  Gwtest__V1__Item item = GWTEST__V1__ITEM__INIT;
  item.id = in->id;
  item.name = in->name;
  item.quantity = 7;
  Gwtest__V1__EchoReply out = GWTEST__V1__ECHO_REPLY__INIT;
  out.request = in;
  out.envelope = &env;
  out.item = &item;
  if (rpc_reply_set_message(reply, &out.base) != ERR_OK)
    rpc_reply_status(reply, RPC_INTERNAL, NULL);
  gwtest__v1__echo_request__free_unpacked(in, NULL);
}

/* The streamed routes' backend: one file in memory, and what it saw of
 * the upload's parts. */
static struct {
  pthread_mutex_t mu;
  char name[64];
  char upload_id[64];
  char *data;
  size_t size, received;
  int parts;
  size_t largest_part;
  bool mixed_ids; /* a part named another upload */
} files = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void put_part(void *arg, const rpc_call *call, rpc_reply *reply) {
  Gwtest__V1__PutPartRequest *in = gwtest__v1__put_part_request__unpack(
      NULL, call->payload_len, call->payload);
  if (in == NULL) {
    rpc_reply_status(reply, RPC_INVALID_ARGUMENT, "bad payload");
    return;
  }
  Gwtest__V1__PutPartReply out = GWTEST__V1__PUT_PART_REPLY__INIT;
  out.name = in->name;
  out.size = in->size;
  pthread_mutex_lock(&files.mu);
  if (strcmp(in->name, "there") == 0) {
    files.parts++;
    out.existed = out.done = true;
  } else {
    if (in->offset == 0) {
      free(files.data);
      files.data = malloc((size_t)in->size + 1);
      files.size = (size_t)in->size;
      files.received = 0;
      files.parts = 0;
      files.largest_part = 0;
      files.mixed_ids = false;
      str_copy(files.name, in->name, sizeof files.name);
      str_copy(files.upload_id, in->upload_id, sizeof files.upload_id);
    }
    if (strcmp(files.upload_id, in->upload_id) != 0) files.mixed_ids = true;
    if ((size_t)in->offset == files.received &&
        files.received + in->data.len <= files.size) {
      if (in->data.len > 0)
        memcpy(files.data + files.received, in->data.data, in->data.len);
      files.received += in->data.len;
      files.parts++;
      if (in->data.len > files.largest_part) files.largest_part = in->data.len;
    }
    out.received = (int64_t)files.received;
    out.done = files.received == files.size;
  }
  pthread_mutex_unlock(&files.mu);
  if (rpc_reply_set_message(reply, &out.base) != ERR_OK)
    rpc_reply_status(reply, RPC_INTERNAL, NULL);
  gwtest__v1__put_part_request__free_unpacked(in, NULL);
}

static void get_part(void *arg, const rpc_call *call, rpc_reply *reply) {
  Gwtest__V1__GetPartRequest *in = gwtest__v1__get_part_request__unpack(
      NULL, call->payload_len, call->payload);
  if (in == NULL) {
    rpc_reply_status(reply, RPC_INVALID_ARGUMENT, "bad payload");
    return;
  }
  pthread_mutex_lock(&files.mu);
  bool broken = strcmp(in->name, "broken") == 0;
  if (!broken && strcmp(in->name, files.name) != 0) {
    rpc_reply_status(reply, RPC_NOT_FOUND, "no such file");
  } else if (broken && in->offset > 0) {
    rpc_reply_status(reply, RPC_INTERNAL, "the disk is on fire");
  } else {
    Gwtest__V1__GetPartReply out = GWTEST__V1__GET_PART_REPLY__INIT;
    size_t size = broken ? 1024 * 1024 : files.size;
    size_t off = (size_t)in->offset < size ? (size_t)in->offset : size;
    size_t n = size - off < (size_t)in->max ? size - off : (size_t)in->max;
    char *zeros = broken ? calloc(1, n + 1) : NULL;
    out.size = (int64_t)size;
    out.data.data = (uint8_t *)(broken ? zeros : files.data + off);
    out.data.len = n;
    if (rpc_reply_set_message(reply, &out.base) != ERR_OK)
      rpc_reply_status(reply, RPC_INTERNAL, NULL);
    free(zeros);
  }
  pthread_mutex_unlock(&files.mu);
  gwtest__v1__get_part_request__free_unpacked(in, NULL);
}

static int fake_fetch(void *arg, bool by_host, const char *key,
                      tenantdir_entry *out) {
  const char *id = NULL, *status = "active";
  if (!by_host && strcmp(key, "acme") == 0) id = T_ACME;
  if (!by_host && strcmp(key, "other") == 0) id = T_OTHER;
  if (!by_host && strcmp(key, "frozen") == 0) {
    id = T_FROZEN;
    status = "suspended";
  }
  if (by_host && strcmp(key, "shop.example.com") == 0) id = T_ACME;
  if (id == NULL) return ERR_NOTFOUND;
  memset(out, 0, sizeof *out);
  str_copy(out->tenant_id, id, sizeof out->tenant_id);
  str_copy(out->slug, by_host ? "acme" : key, sizeof out->slug);
  str_copy(out->status, status, sizeof out->status);
  out->suspended = strcmp(status, "suspended") == 0;
  return ERR_OK;
}

static char *token_for(const char *tid, const char *role, const char *sub) {
  paseto_claims c;
  memset(&c, 0, sizeof c);
  str_copy(c.iss, "auth", sizeof c.iss);
  str_copy(c.sub, sub, sizeof c.sub);
  str_copy(c.tid, tid, sizeof c.tid);
  str_copy(c.role, role, sizeof c.role);
  uuid_v7_str(c.jti);
  c.has_iat = c.has_nbf = c.has_exp = true;
  c.iat_ms = c.nbf_ms = time_now_ms() - 1000;
  c.exp_ms = time_now_ms() + 15 * 60 * 1000;
  char *json = NULL;
  size_t jlen = 0;
  ck_assert_int_eq(paseto_claims_to_json(&c, &json, &jlen), ERR_OK);
  paseto_public_key pk;
  paseto_public_key_of(&sk, &pk);
  char pid[PASETO_PID_LEN + 1];
  paseto_pid(&pk, pid);
  char f[PASETO_KID_FOOTER_MAX];
  size_t flen = 0;
  ck_assert_int_eq(paseto_footer_kid_json(pid, f, sizeof f, &flen), ERR_OK);
  char *tok = malloc(PASETO_TOKEN_MAX + 1);
  ck_assert_int_eq(paseto_sign(&sk, json, jlen, f, flen, NULL, 0, tok,
                               PASETO_TOKEN_MAX + 1, NULL),
                   ERR_OK);
  free(json);
  return tok;
}

/* Set-up runs outside any test case, where ck_assert cannot report. */
#define REQUIRE(x)                                                             \
  do {                                                                         \
    if (!(x)) {                                                                \
      fprintf(stderr, "%s:%d: set-up failed: %s\n", __FILE__, __LINE__, #x);   \
      exit(EXIT_FAILURE);                                                      \
    }                                                                          \
  } while (0)

static void setup_all(void) {
  REQUIRE(paseto_init() == ERR_OK);
  paseto_public_key pk;
  paseto_keygen(&sk, &pk);

  REQUIRE(rpc_server_new(NULL, &backend_srv) == ERR_OK);
  REQUIRE(rpc_server_register(backend_srv, "gwtest.v1.Echo/Echo", echo, NULL) ==
          ERR_OK);
  REQUIRE(rpc_server_register(backend_srv, "gwtest.v1.Echo/PutPart", put_part,
                              NULL) == ERR_OK);
  REQUIRE(rpc_server_register(backend_srv, "gwtest.v1.Echo/GetPart", get_part,
                              NULL) == ERR_OK);
  REQUIRE(rpc_server_start(backend_srv, "tcp://127.0.0.1:0") == ERR_OK);
  char url[64];
  snprintf(url, sizeof url, "tcp://127.0.0.1:%d", rpc_server_port(backend_srv));
  REQUIRE(rpc_client_new(url, NULL, &echo_client) == ERR_OK);
  REQUIRE(rpc_client_wait_connected(echo_client, 1, 5000) == ERR_OK);
  /* A port nothing listens on: bind, learn it, close. */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t sl = sizeof sa;
  REQUIRE(bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
  REQUIRE(getsockname(fd, (struct sockaddr *)&sa, &sl) == 0);
  snprintf(url, sizeof url, "tcp://127.0.0.1:%d", ntohs(sa.sin_port));
  close(fd);
  REQUIRE(rpc_client_new(url, NULL, &down_client) == ERR_OK);

  authn_config ac = AUTHN_CONFIG_INIT;
  ac.issuer = "auth";
  REQUIRE(authn_new(&ac, &verifier) == ERR_OK);
  authn_key k = {.pk = pk, .active = true};
  REQUIRE(authn_set_keys(verifier, &k, 1) == ERR_OK);

  tenantdir_options to = TENANTDIR_OPTIONS_INIT;
  to.fetch = fake_fetch;
  REQUIRE(tenantdir_new(&to, &dir) == ERR_OK);

  REQUIRE(route_table_new(kRows, sizeof kRows / sizeof kRows[0], &routes,
                          NULL) == ERR_OK);
  REQUIRE(cors_new("https://app.example.com", &origins) == ERR_OK);
  static pipeline_backend backends[2];
  backends[0] = (pipeline_backend){"echo", echo_client};
  backends[1] = (pipeline_backend){"down", down_client};
  pipeline_config pc = {.backends = backends,
                        .nbackends = 2,
                        .authn = verifier,
                        .tenants = dir,
                        .base_domains = "localhost,example.net",
                        .public_hosts = "api.example.org",
                        .deadline_ms = DEADLINE_MS};
  REQUIRE(pipeline_new(&pc, &pipe_) == ERR_OK);
  server_config sc = {.bind_addr = "127.0.0.1",
                      .port = 0,
                      .workers = 4,
                      .queue_depth = 64,
                      .max_body = MAX_BODY,
                      .access_log = true,
                      .routes = routes,
                      .pipeline = pipe_,
                      .cors = origins,
                      .authn = verifier};
  REQUIRE(server_new(&sc, &srv) == ERR_OK);
  REQUIRE(server_start(srv) == ERR_OK);
  REQUIRE(server_port(srv) > 0);
  snprintf(base, sizeof base, "http://127.0.0.1:%d", server_port(srv));
}

static void teardown_all(void) {
  REQUIRE(server_drain(srv, 2000) == ERR_OK);
  server_free(srv);
  pipeline_free(pipe_);
  cors_free(origins);
  route_table_free(routes);
  tenantdir_free(dir);
  authn_free(verifier);
  rpc_client_free(echo_client);
  rpc_client_free(down_client);
  rpc_server_close(backend_srv);
}

/* ------------------------------------------------------------- client -- */

typedef struct resp {
  long status;
  char *body;
  size_t len;
  char head[16384];
  size_t hlen;
  json_t *json;
  double secs;
} resp;

static size_t on_body(char *p, size_t sz, size_t n, void *arg) {
  resp *r = arg;
  size_t k = sz * n;
  char *b = realloc(r->body, r->len + k + 1);
  if (b == NULL) return 0;
  memcpy(b + r->len, p, k);
  r->len += k;
  b[r->len] = '\0';
  r->body = b;
  return k;
}

static size_t on_header(char *p, size_t sz, size_t n, void *arg) {
  resp *r = arg;
  size_t k = sz * n;
  if (k >= 5 && memcmp(p, "HTTP/", 5) == 0) r->hlen = 0; /* new response */
  if (r->hlen + k < sizeof r->head) {
    memcpy(r->head + r->hlen, p, k);
    r->hlen += k;
    r->head[r->hlen] = '\0';
  }
  return k;
}

/* The value of header name in r (static buffer), or NULL. */
static const char *hdr(const resp *r, const char *name) {
  static char val[1024];
  size_t nl = strlen(name);
  const char *p = r->head;
  while ((p = strchr(p, '\n')) != NULL) {
    p++;
    if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
      const char *v = p + nl + 1;
      while (*v == ' ') v++;
      size_t k = strcspn(v, "\r\n");
      if (k >= sizeof val) k = sizeof val - 1;
      memcpy(val, v, k);
      val[k] = '\0';
      return val;
    }
  }
  return NULL;
}

/* headers: NULL-terminated list of "Name: value". */
static resp *call(const char *method, const char *path, const char *body,
                  const char *const *headers, CURL *reuse) {
  resp *r = calloc(1, sizeof *r);
  CURL *c = reuse ? reuse : curl_easy_init();
  curl_easy_reset(c);
  char url[2048];
  snprintf(url, sizeof url, "%s%s", base, path);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  if (strcmp(method, "HEAD") == 0) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  struct curl_slist *h = NULL;
  for (const char *const *p = headers; p && *p; p++)
    h = curl_slist_append(h, *p);
  if (body != NULL) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    bool has_ct = false;
    for (const char *const *p = headers; p && *p; p++)
      if (strncasecmp(*p, "Content-Type:", 13) == 0) has_ct = true;
    if (!has_ct) h = curl_slist_append(h, "Content-Type: application/json");
  }
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L);
  int64_t t0 = time_mono_ns();
  CURLcode rc = curl_easy_perform(c);
  r->secs = (double)(time_mono_ns() - t0) / 1e9;
  ck_assert_msg(rc == CURLE_OK, "curl: %s", curl_easy_strerror(rc));
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
  curl_slist_free_all(h);
  if (!reuse) curl_easy_cleanup(c);
  if (r->body != NULL) r->json = json_loads(r->body, 0, NULL);
  return r;
}

static void done(resp *r) {
  json_decref(r->json);
  free(r->body);
  free(r);
}

/* json path lookup "a.b.c" */
static json_t *jget(json_t *v, const char *path) {
  char buf[256];
  str_copy(buf, path, sizeof buf);
  char *save = NULL;
  for (char *t = strtok_r(buf, ".", &save); t && v;
       t = strtok_r(NULL, ".", &save))
    v = json_object_get(v, t);
  return v;
}

static const char *jstr(resp *r, const char *path) {
  const char *s = json_string_value(jget(r->json, path));
  return s ? s : "<missing>";
}

/* Checks the error body of HTTP-API.md and returns it. */
static void assert_error(resp *r, long status, const char *code) {
  ck_assert_msg(r->status == status, "status %ld, want %ld: %s", r->status,
                status, r->body ? r->body : "");
  ck_assert_ptr_nonnull(r->json);
  ck_assert_str_eq(jstr(r, "error.code"), code);
  ck_assert(json_is_string(jget(r->json, "error.message")));
  ck_assert(json_is_array(jget(r->json, "error.details")));
  ck_assert_str_eq(jstr(r, "error.request_id"), hdr(r, "X-Request-Id"));
  ck_assert_str_eq(hdr(r, "Content-Type"), "application/json");
  ck_assert_str_eq(hdr(r, "X-Content-Type-Options"), "nosniff");
  ck_assert_str_eq(hdr(r, "Cache-Control"), "no-store");
}

static bool has_detail(resp *r, const char *field, const char *desc_part) {
  json_t *d = jget(r->json, "error.details");
  size_t i;
  json_t *e;
  json_array_foreach(d, i, e) {
    const char *f = json_string_value(json_object_get(e, "field"));
    const char *s = json_string_value(json_object_get(e, "description"));
    if (f && s && strcmp(f, field) == 0 && strstr(s, desc_part)) return true;
  }
  return false;
}

/* Raw HTTP: sends req, returns what came back within timeout_ms. */
static char *raw(const char *req, size_t len, int timeout_ms) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)server_port(srv))};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  size_t off = 0;
  while (off < len) {
    ssize_t w = send(fd, req + off, len - off, MSG_NOSIGNAL);
    if (w <= 0) break; /* the server may close early (413) */
    off += (size_t)w;
  }
  char *out = calloc(1, 65536);
  size_t got = 0;
  int64_t until = time_mono_ms() + timeout_ms;
  while (got < 65535 && time_mono_ms() < until) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 100) <= 0) continue;
    ssize_t n = recv(fd, out + got, 65535 - got, 0);
    if (n <= 0) break;
    got += (size_t)n;
  }
  close(fd);
  return out;
}

/* -------------------------------------------------------------- tests -- */

START_TEST(healthz_answers_ok_with_a_request_id) {
  resp *r = call("GET", "/healthz", NULL, NULL, NULL);
  ck_assert_int_eq(r->status, 200);
  ck_assert_str_eq(r->body, "ok");
  ck_assert_uint_eq(strlen(hdr(r, "X-Request-Id")), 36);
  done(r);
}
END_TEST

START_TEST(unknown_path_is_404_with_the_error_shape) {
  const char *paths[] = {"/v1/nope",     "/",         "/v1/echo",
                         "/v1/echo/a/b", "/v1/echo/", "/healthz/x"};
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
    resp *r = call("GET", paths[i], NULL, NULL, NULL);
    if (strcmp(paths[i], "/v1/echo") == 0) {
      assert_error(r, 405, "UNIMPLEMENTED"); /* POST exists there */
    } else {
      assert_error(r, 404, "NOT_FOUND");
    }
    done(r);
  }
}
END_TEST

START_TEST(wrong_method_is_405_with_allow) {
  resp *r = call("PUT", "/v1/echo/1", "{}", NULL, NULL);
  assert_error(r, 405, "UNIMPLEMENTED");
  ck_assert_str_eq(hdr(r, "Allow"), "GET, PATCH, DELETE");
  done(r);
  r = call("DELETE", "/v1/echo", NULL, NULL, NULL);
  assert_error(r, 405, "UNIMPLEMENTED");
  ck_assert_str_eq(hdr(r, "Allow"), "POST");
  done(r);
}
END_TEST

/* The console's files (appfiles.h) on a server that has them, with a
 * page's headers; the API's server without them answers 404 there. */
START_TEST(app_files_are_served_with_page_headers) {
  resp *r = call("GET", "/app/", NULL, NULL, NULL);
  assert_error(r, 404, "NOT_FOUND"); /* no GATEWAY_APP_DIR */
  done(r);

  char adir[] = "/tmp/server_test_app.XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(adir));
  char p[128];
  snprintf(p, sizeof p, "%s/index.html", adir);
  FILE *f = fopen(p, "w");
  fputs("<!doctype html><title>console</title>", f);
  fclose(f);
  appfiles *app;
  ck_assert_int_eq(appfiles_load(adir, "ws://127.0.0.1:1/v1/realtime", &app),
                   ERR_OK);
  ck_assert_int_eq(unlink(p), 0);
  ck_assert_int_eq(rmdir(adir), 0);
  server_config sc = {.bind_addr = "127.0.0.1",
                      .routes = routes,
                      .pipeline = pipe_,
                      .workers = 2,
                      .queue_depth = 8,
                      .app = app};
  server *s2;
  ck_assert_int_eq(server_new(&sc, &s2), ERR_OK);
  ck_assert_int_eq(server_start(s2), ERR_OK);
  char saved[sizeof base];
  memcpy(saved, base, sizeof base);
  snprintf(base, sizeof base, "http://127.0.0.1:%d", server_port(s2));

  r = call("GET", "/app/?v=1", NULL, NULL, NULL);
  ck_assert_int_eq(r->status, 200);
  ck_assert_str_eq(r->body, "<!doctype html><title>console</title>");
  ck_assert_str_eq(hdr(r, "Content-Type"), "text/html; charset=utf-8");
  ck_assert_ptr_nonnull(strstr(hdr(r, "Content-Security-Policy"),
                               "connect-src 'self' ws://127.0.0.1:1/"));
  ck_assert_str_eq(hdr(r, "X-Content-Type-Options"), "nosniff");
  ck_assert_str_eq(hdr(r, "Referrer-Policy"), "no-referrer");
  ck_assert_str_eq(hdr(r, "Cache-Control"), "no-cache");
  ck_assert_uint_eq(strlen(hdr(r, "X-Request-Id")), 36);
  char inm[64];
  snprintf(inm, sizeof inm, "If-None-Match: %s", hdr(r, "ETag"));
  done(r);
  const char *h[] = {inm, NULL};
  r = call("GET", "/app/index.html", NULL, h, NULL);
  ck_assert_int_eq(r->status, 304);
  ck_assert_uint_eq(r->len, 0);
  done(r);
  r = call("HEAD", "/app/config.json", NULL, NULL, NULL);
  ck_assert_int_eq(r->status, 200);
  ck_assert_str_eq(hdr(r, "Content-Type"), "application/json");
  done(r);
  r = call("POST", "/app/", "{}", NULL, NULL);
  assert_error(r, 405, "UNIMPLEMENTED");
  ck_assert_str_eq(hdr(r, "Allow"), "GET, HEAD");
  done(r);
  r = call("GET", "/app/missing.js", NULL, NULL, NULL);
  assert_error(r, 404, "NOT_FOUND");
  done(r);
  /* The API still answers beside it. */
  r = call("GET", "/v1/nope", NULL, NULL, NULL);
  assert_error(r, 404, "NOT_FOUND");
  done(r);

  memcpy(base, saved, sizeof base);
  ck_assert_int_eq(server_drain(s2, 2000), ERR_OK);
  server_free(s2);
  appfiles_free(app);
}
END_TEST

START_TEST(body_without_json_content_type_is_415_and_keeps_the_connection) {
  CURL *c = curl_easy_init();
  const char *h1[] = {"X-Tenant: acme", "Content-Type: text/plain", NULL};
  resp *r = call("POST", "/v1/echo", "{\"name\":\"a\"}", h1, c);
  assert_error(r, 415, "INVALID_ARGUMENT");
  done(r);
  const char *h2[] = {"X-Tenant: acme", "Content-Type: application/jsonx",
                      NULL};
  r = call("POST", "/v1/echo", "{}", h2, c);
  assert_error(r, 415, "INVALID_ARGUMENT");
  done(r);
  const char *h3[] = {"X-Tenant: acme",
                      "Content-Type: Application/JSON; charset=utf-8", NULL};
  r = call("POST", "/v1/echo", "{\"name\":\"a\"}", h3, c);
  ck_assert_int_eq(r->status, 201);
  long conns = -1;
  curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &conns);
  ck_assert_int_eq(conns, 0); /* the same connection as the 415s */
  done(r);
  /* No body at all needs no Content-Type. */
  const char *h4[] = {"X-Tenant: acme", NULL};
  r = call("POST", "/v1/echo", NULL, h4, c);
  ck_assert_int_eq(r->status, 201);
  done(r);
  curl_easy_cleanup(c);
}
END_TEST

START_TEST(body_over_the_limit_is_413) {
  char *big = malloc(MAX_BODY + 100);
  memset(big, ' ', MAX_BODY + 99);
  big[0] = '{';
  big[MAX_BODY + 97] = '}';
  big[MAX_BODY + 99] = '\0';
  const char *h[] = {"X-Tenant: acme", NULL};
  resp *r = call("POST", "/v1/echo", big, h, NULL);
  assert_error(r, 413, "INVALID_ARGUMENT");
  done(r);
  /* Exactly at the limit is fine. */
  big[MAX_BODY - 1] = '}';
  big[MAX_BODY] = '\0';
  r = call("POST", "/v1/echo", big, h, NULL);
  ck_assert_int_eq(r->status, 201);
  done(r);
  free(big);
  /* Chunked, no length announced: refused while streaming. */
  char req[4096];
  int n = snprintf(req, sizeof req,
                   "POST /v1/echo HTTP/1.1\r\nHost: x\r\nX-Tenant: acme\r\n"
                   "Content-Type: application/json\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n");
  for (int i = 0; i < 3; i++) {
    n += snprintf(req + n, sizeof req - (size_t)n, "200\r\n");
    memset(req + n, ' ', 0x200);
    n += 0x200;
    n += snprintf(req + n, sizeof req - (size_t)n, "\r\n");
  }
  n += snprintf(req + n, sizeof req - (size_t)n, "0\r\n\r\n");
  char *out = raw(req, (size_t)n, 3000);
  ck_assert_msg(strncmp(out, "HTTP/1.1 413", 12) == 0, "%s", out);
  ck_assert_ptr_nonnull(strstr(out, "\"request_id\""));
  free(out);
}
END_TEST

START_TEST(unframeable_transfer_encoding_is_411) {
  const char req[] =
      "POST /v1/echo HTTP/1.1\r\nHost: x\r\nX-Tenant: acme\r\n"
      "Content-Type: application/json\r\nTransfer-Encoding: gzip\r\n\r\nabc";
  char *out = raw(req, sizeof req - 1, 3000);
  ck_assert_msg(strncmp(out, "HTTP/1.1 411", 12) == 0, "%s", out);
  ck_assert_ptr_nonnull(strstr(out, "\"code\":\"INVALID_ARGUMENT\""));
  free(out);
}
END_TEST

START_TEST(chunked_body_within_the_limit_is_read) {
  const char req[] =
      "POST /v1/echo HTTP/1.1\r\nHost: x\r\nX-Tenant: acme\r\n"
      "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
      "Connection: close\r\n\r\n"
      "5\r\n{\"nam\r\n9\r\ne\":\"chk\"}\r\n0\r\n\r\n";
  char *out = raw(req, sizeof req - 1, 3000);
  ck_assert_msg(strncmp(out, "HTTP/1.1 201", 12) == 0, "%s", out);
  ck_assert_ptr_nonnull(strstr(out, "\"name\":\"chk\""));
  free(out);
}
END_TEST

START_TEST(bad_json_is_400_naming_the_field) {
  const char *h[] = {"X-Tenant: acme", NULL};
  resp *r = call("POST", "/v1/echo", "{\"name\":", h, NULL);
  assert_error(r, 400, "INVALID_ARGUMENT");
  ck_assert(has_detail(r, "", "malformed JSON"));
  done(r);
  r = call("POST", "/v1/echo",
           "{\"name\":1,\"nope\":2,\"item\":{\"quantity\":\"x\"}}", h, NULL);
  assert_error(r, 400, "INVALID_ARGUMENT");
  ck_assert(has_detail(r, "name", ""));
  ck_assert(has_detail(r, "nope", "unknown field"));
  ck_assert(has_detail(r, "item.quantity", ""));
  done(r);
  r = call("POST", "/v1/echo", "{\"tenant_id\":\"" T_OTHER "\"}", h, NULL);
  assert_error(r, 400, "INVALID_ARGUMENT");
  ck_assert(has_detail(r, "tenant_id", "unknown field"));
  done(r);
  r = call("GET", "/v1/echo/x?limit=abc", NULL, NULL, NULL);
  assert_error(r, 400, "INVALID_ARGUMENT");
  ck_assert(has_detail(r, "limit", ""));
  done(r);
  r = call("GET", "/v1/echo/a%zz", NULL, NULL, NULL);
  assert_error(r, 400, "INVALID_ARGUMENT");
  ck_assert(has_detail(r, "id", ""));
  done(r);
}
END_TEST

START_TEST(path_query_and_body_reach_the_backend) {
  resp *r =
      call("GET", "/v1/echo/it%2F1?limit=5&tags=a&tags=b", NULL, NULL, NULL);
  ck_assert_int_eq(r->status, 200);
  ck_assert_str_eq(jstr(r, "request.id"), "it/1");
  ck_assert_int_eq(json_integer_value(jget(r->json, "request.limit")), 5);
  ck_assert_uint_eq(json_array_size(jget(r->json, "request.tags")), 2);
  ck_assert_str_eq(hdr(r, "Content-Type"), "application/json");
  ck_assert_str_eq(hdr(r, "Cache-Control"), "no-store");
  ck_assert_str_eq(hdr(r, "X-Content-Type-Options"), "nosniff");
  /* Anonymous: no tenant looked up, no token forwarded. */
  ck_assert_str_eq(jstr(r, "envelope.tenant_id"), "");
  ck_assert(json_is_false(jget(r->json, "envelope.has_token")));
  done(r);
  r = call("GET", "/v1/item/i9", NULL, NULL, NULL);
  ck_assert_int_eq(r->status, 200);
  ck_assert_str_eq(r->body,
                   "{\"id\":\"i9\",\"name\":\"\"}"); /* member, omitted */
  done(r);
}
END_TEST

START_TEST(anonymous_call_takes_its_tenant_from_x_tenant_or_host) {
  const char *h1[] = {"X-Tenant: ACME", "Idempotency-Key: k-1", NULL};
  resp *r = call("POST", "/v1/echo", "{\"name\":\"n\"}", h1, NULL);
  ck_assert_int_eq(r->status, 201);
  ck_assert_str_eq(jstr(r, "envelope.tenant_id"), T_ACME);
  ck_assert_str_eq(jstr(r, "envelope.idempotency_key"), "k-1");
  ck_assert_str_eq(jstr(r, "request.name"), "n");
  done(r);
  const char *h2[] = {"Host: acme.localhost:8080", NULL};
  r = call("POST", "/v1/echo", "{}", h2, NULL);
  ck_assert_int_eq(r->status, 201);
  ck_assert_str_eq(jstr(r, "envelope.tenant_id"), T_ACME);
  done(r);
  const char *h3[] = {"Host: other.example.net", NULL};
  r = call("POST", "/v1/echo", "{}", h3, NULL);
  ck_assert_int_eq(r->status, 201);
  ck_assert_str_eq(jstr(r, "envelope.tenant_id"), T_OTHER);
  done(r);
  const char *h4[] = {"Host: Shop.Example.com", NULL}; /* custom domain */
  r = call("POST", "/v1/echo", "{}", h4, NULL);
  ck_assert_int_eq(r->status, 201);
  ck_assert_str_eq(jstr(r, "envelope.tenant_id"), T_ACME);
  done(r);
  /* X-Tenant wins over Host. */
  const char *h5[] = {"Host: acme.localhost", "X-Tenant: other", NULL};
  r = call("POST", "/v1/echo", "{}", h5, NULL);
  ck_assert_str_eq(jstr(r, "envelope.tenant_id"), T_OTHER);
  done(r);
  /* A token on an anonymous route is neither checked nor forwarded. */
  const char *h6[] = {"X-Tenant: acme", "Authorization: Bearer garbage", NULL};
  r = call("POST", "/v1/echo", "{}", h6, NULL);
  ck_assert_int_eq(r->status, 201);
  ck_assert(json_is_false(jget(r->json, "envelope.has_token")));
  done(r);
  const char *h7[] = {"X-Tenant: acme", "Idempotency-Key: ", NULL};
  r = call("POST", "/v1/echo", "{}", h7, NULL);
  ck_assert_int_eq(r->status, 201); /* an empty header is no header */
  done(r);
}
END_TEST

/* A keyed route sends the client's Idempotency-Key, or a fresh one of
 * the gateway's own (so its retries on another replica are safe); an
 * unkeyed route sends none of its own. */
START_TEST(keyed_route_sends_the_clients_key_or_its_own) {
  const char *with[] = {"X-Tenant: acme", "Idempotency-Key: client-1", NULL};
  resp *r = call("POST", "/v1/keyed", "{}", with, NULL);
  ck_assert_int_eq(r->status, 201);
  ck_assert_str_eq(jstr(r, "envelope.idempotency_key"), "client-1");
  done(r);
  const char *without[] = {"X-Tenant: acme", NULL};
  char first[64];
  r = call("POST", "/v1/keyed", "{}", without, NULL);
  ck_assert_int_eq(r->status, 201);
  const char *k = jstr(r, "envelope.idempotency_key");
  ck_assert_int_eq(strlen(k), 3 + 36);
  ck_assert(strncmp(k, "gw-", 3) == 0);
  snprintf(first, sizeof first, "%s", k);
  done(r);
  r = call("POST", "/v1/keyed", "{}", without, NULL);
  ck_assert_str_ne(jstr(r, "envelope.idempotency_key"), first);
  done(r);
  r = call("POST", "/v1/echo", "{}", without, NULL);
  ck_assert_int_eq(r->status, 201);
  ck_assert_str_eq(jstr(r, "envelope.idempotency_key"), "");
  done(r);
}
END_TEST

START_TEST(unknown_suspended_or_missing_tenant_is_refused) {
  const char *h1[] = {"X-Tenant: nosuch", NULL};
  resp *r = call("POST", "/v1/echo", "{}", h1, NULL);
  assert_error(r, 404, "NOT_FOUND");
  done(r);
  const char *h2[] = {"Host: nosuch.localhost", NULL};
  r = call("POST", "/v1/echo", "{}", h2, NULL);
  assert_error(r, 404, "NOT_FOUND");
  done(r);
  const char *h3[] = {"Host: unknown-shop.example.com", NULL};
  r = call("POST", "/v1/echo", "{}", h3, NULL);
  assert_error(r, 404, "NOT_FOUND");
  done(r);
  const char *h4[] = {"X-Tenant: frozen", NULL};
  r = call("POST", "/v1/echo", "{}", h4, NULL);
  assert_error(r, 403, "PERMISSION_DENIED");
  done(r);
  const char *h5[] = {"Host: localhost", NULL};
  r = call("POST", "/v1/echo", "{}", h5, NULL);
  assert_error(r, 400, "INVALID_ARGUMENT");
  ck_assert(has_detail(r, "X-Tenant", "required"));
  done(r);
  const char *h6[] = {"Host: api.example.org", NULL};
  r = call("POST", "/v1/echo", "{}", h6, NULL);
  assert_error(r, 400, "INVALID_ARGUMENT");
  done(r);
  const char *h7[] = {"X-Tenant: acme", "Idempotency-Key: bad\x01key", NULL};
  r = call("POST", "/v1/echo", "{}", h7, NULL);
  assert_error(r, 400, "INVALID_ARGUMENT");
  ck_assert(has_detail(r, "Idempotency-Key", ""));
  done(r);
}
END_TEST

START_TEST(token_routes_need_a_valid_bearer_token) {
  resp *r = call("DELETE", "/v1/echo/1", NULL, NULL, NULL);
  assert_error(r, 401, "UNAUTHENTICATED");
  ck_assert_str_eq(hdr(r, "WWW-Authenticate"), "Bearer");
  done(r);
  const char *h1[] = {"Authorization: Basic dXNlcjpwdw==", NULL};
  r = call("DELETE", "/v1/echo/1", NULL, h1, NULL);
  assert_error(r, 401, "UNAUTHENTICATED");
  done(r);
  const char *h2[] = {"Authorization: Bearer v4.public.garbage", NULL};
  r = call("DELETE", "/v1/echo/1", NULL, h2, NULL);
  assert_error(r, 401, "UNAUTHENTICATED");
  ck_assert_str_eq(hdr(r, "WWW-Authenticate"),
                   "Bearer error=\"invalid_token\"");
  done(r);
  /* A token signed by a key the gateway does not know. */
  paseto_secret_key keep = sk;
  paseto_public_key pk;
  paseto_keygen(&sk, &pk);
  char *tok = token_for(T_ACME, "owner", "u1");
  sk = keep;
  char auth[PASETO_TOKEN_MAX + 64];
  snprintf(auth, sizeof auth, "Authorization: Bearer %s", tok);
  const char *h3[] = {auth, NULL};
  r = call("DELETE", "/v1/echo/1", NULL, h3, NULL);
  assert_error(r, 401, "UNAUTHENTICATED");
  done(r);
  free(tok);
}
END_TEST

START_TEST(role_below_the_route_minimum_is_403) {
  char *tok = token_for(T_ACME, "staff", "u-staff");
  char auth[PASETO_TOKEN_MAX + 64];
  snprintf(auth, sizeof auth, "Authorization: Bearer %s", tok);
  const char *h[] = {auth, NULL};
  resp *r = call("PATCH", "/v1/echo/1", "{}", h, NULL);
  assert_error(r, 403, "PERMISSION_DENIED");
  ck_assert_ptr_nonnull(strstr(jstr(r, "error.message"), "admin"));
  done(r);
  free(tok);
  tok = token_for(T_ACME, "admin", "u-admin");
  snprintf(auth, sizeof auth, "authorization: bearer   %s", tok);
  r = call("PATCH", "/v1/echo/1", "{\"name\":\"x\"}", h, NULL);
  ck_assert_int_eq(r->status, 200);
  ck_assert_str_eq(jstr(r, "envelope.tenant_id"), T_ACME);
  ck_assert(json_is_true(jget(r->json, "envelope.has_token")));
  ck_assert_str_eq(jstr(r, "envelope.token"), tok);
  done(r);
  free(tok);
}
END_TEST

START_TEST(token_for_another_tenant_is_403) {
  char *tok = token_for(T_ACME, "owner", "u-owner");
  char auth[PASETO_TOKEN_MAX + 64];
  snprintf(auth, sizeof auth, "Authorization: Bearer %s", tok);
  const char *h1[] = {auth, "X-Tenant: other", NULL};
  resp *r = call("GET", "/v1/me", NULL, h1, NULL);
  assert_error(r, 403, "PERMISSION_DENIED");
  done(r);
  const char *h2[] = {auth, "Host: other.localhost", NULL};
  r = call("GET", "/v1/me", NULL, h2, NULL);
  assert_error(r, 403, "PERMISSION_DENIED");
  done(r);
  const char *h3[] = {auth, "Host: acme.localhost", NULL};
  r = call("GET", "/v1/me", NULL, h3, NULL);
  ck_assert_int_eq(r->status, 200);
  done(r);
  /* The API's own host name is not a tenant's domain: ignored. */
  const char *h4[] = {auth, "Host: gateway.internal.example", NULL};
  r = call("GET", "/v1/me", NULL, h4, NULL);
  ck_assert_int_eq(r->status, 200);
  done(r);
  free(tok);
}
END_TEST

START_TEST(extra_call_is_merged_into_the_answer) {
  char *tok = token_for(T_ACME, "customer", "u-c");
  char auth[PASETO_TOKEN_MAX + 64];
  snprintf(auth, sizeof auth, "Authorization: Bearer %s", tok);
  const char *h[] = {auth, NULL};
  resp *r = call("GET", "/v1/me", NULL, h, NULL);
  ck_assert_int_eq(r->status, 200);
  ck_assert(json_is_object(jget(r->json, "extra")));
  ck_assert_int_eq(json_integer_value(jget(r->json, "extra.quantity")), 7);
  ck_assert(json_is_object(jget(r->json, "envelope")));
  done(r);
  free(tok);
}
END_TEST

START_TEST(delete_answers_204_without_a_body) {
  char *tok = token_for(T_ACME, "customer", "u-c");
  char auth[PASETO_TOKEN_MAX + 64];
  snprintf(auth, sizeof auth, "Authorization: Bearer %s", tok);
  const char *h[] = {auth, NULL};
  resp *r = call("DELETE", "/v1/echo/9", NULL, h, NULL);
  ck_assert_int_eq(r->status, 204);
  ck_assert_uint_eq(r->len, 0);
  ck_assert_ptr_nonnull(hdr(r, "X-Request-Id"));
  done(r);
  free(tok);
}
END_TEST

START_TEST(backend_status_maps_and_5xx_hide_internals) {
  static const struct {
    const char *code;
    long status;
  } t[] = {{"NOT_FOUND", 404},
           {"ALREADY_EXISTS", 409},
           {"ABORTED", 409},
           {"FAILED_PRECONDITION", 400},
           {"PERMISSION_DENIED", 403},
           {"UNAUTHENTICATED", 401},
           {"RESOURCE_EXHAUSTED", 429},
           {"UNIMPLEMENTED", 501},
           {"INTERNAL", 500},
           {"DATA_LOSS", 500},
           {"UNAVAILABLE", 503},
           {"CANCELLED", 499}};
  const char *h[] = {"X-Tenant: acme", NULL};
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    char body[128];
    snprintf(body, sizeof body, "{\"fail_code\":\"%s\"}", t[i].code);
    resp *r = call("POST", "/v1/echo", body, h, NULL);
    assert_error(r, t[i].status, t[i].code);
    if (t[i].status >= 500) {
      ck_assert_ptr_null(strstr(r->body, "SELECT"));
      ck_assert_uint_eq(json_array_size(jget(r->json, "error.details")), 0);
    } else {
      ck_assert_ptr_nonnull(
          strstr(jstr(r, "error.message"), "backend says no"));
      ck_assert(has_detail(r, "name", "not acceptable"));
    }
    if (t[i].status == 401)
      ck_assert_str_eq(hdr(r, "WWW-Authenticate"), "Bearer");
    /* The backend's retry_after_ms (1500) in whole seconds, rounded up. */
    if (t[i].status == 429) ck_assert_str_eq(hdr(r, "Retry-After"), "2");
    done(r);
  }
}
END_TEST

START_TEST(unreachable_backend_is_503_not_a_hang) {
  resp *r = call("POST", "/v1/down", "{}", NULL, NULL);
  assert_error(r, 503, "UNAVAILABLE");
  ck_assert_ptr_null(strstr(r->body, "127.0.0.1"));
  ck_assert_msg(r->secs < DEADLINE_MS / 1000.0 + 2.0, "took %.2fs", r->secs);
  done(r);
}
END_TEST

START_TEST(slow_backend_is_504_within_the_deadline) {
  const char *h[] = {"X-Tenant: acme", NULL};
  resp *r = call("POST", "/v1/echo", "{\"sleep_ms\":4000}", h, NULL);
  assert_error(r, 504, "DEADLINE_EXCEEDED");
  ck_assert_msg(r->secs < DEADLINE_MS / 1000.0 + 2.0, "took %.2fs", r->secs);
  ck_assert_msg(r->secs >= DEADLINE_MS / 1000.0 - 0.2, "too early %.2fs",
                r->secs);
  done(r);
}
END_TEST

START_TEST(request_id_is_echoed_or_generated) {
  const char *h1[] = {"X-Request-Id: my-trace-42", NULL};
  resp *r = call("GET", "/v1/echo/1", NULL, h1, NULL);
  ck_assert_str_eq(hdr(r, "X-Request-Id"), "my-trace-42");
  ck_assert_str_eq(jstr(r, "envelope.request_id"), "my-trace-42");
  done(r);
  r = call("GET", "/v1/nope", NULL, h1, NULL);
  ck_assert_str_eq(hdr(r, "X-Request-Id"), "my-trace-42");
  ck_assert_str_eq(jstr(r, "error.request_id"), "my-trace-42");
  done(r);
  char longid[200];
  memset(longid, 'a', sizeof longid);
  memcpy(longid, "X-Request-Id: ", 14);
  longid[14 + 129] = '\0';
  const char *h2[] = {longid, NULL};
  r = call("GET", "/v1/echo/1", NULL, h2, NULL);
  ck_assert_uint_eq(strlen(hdr(r, "X-Request-Id")), 36);
  ck_assert_str_eq(jstr(r, "envelope.request_id"), hdr(r, "X-Request-Id"));
  done(r);
}
END_TEST

START_TEST(cors_answers_allowed_origins_and_preflight) {
  const char *h1[] = {"Origin: https://app.example.com", NULL};
  resp *r = call("GET", "/v1/echo/1", NULL, h1, NULL);
  ck_assert_str_eq(hdr(r, "Access-Control-Allow-Origin"),
                   "https://app.example.com");
  ck_assert_str_eq(hdr(r, "Vary"), "Origin");
  ck_assert_ptr_nonnull(
      strstr(hdr(r, "Access-Control-Expose-Headers"), "X-Request-Id"));
  done(r);
  const char *h2[] = {"Origin: https://evil.example.com", NULL};
  r = call("GET", "/v1/echo/1", NULL, h2, NULL);
  ck_assert_int_eq(r->status, 200);
  ck_assert_ptr_null(hdr(r, "Access-Control-Allow-Origin"));
  done(r);
  const char *h3[] = {
      "Origin: https://app.example.com", "Access-Control-Request-Method: PATCH",
      "Access-Control-Request-Headers: authorization, content-type", NULL};
  r = call("OPTIONS", "/v1/echo/1", NULL, h3, NULL);
  ck_assert_int_eq(r->status, 204);
  ck_assert_str_eq(hdr(r, "Access-Control-Allow-Origin"),
                   "https://app.example.com");
  ck_assert_str_eq(hdr(r, "Access-Control-Allow-Methods"),
                   "GET, PATCH, DELETE");
  ck_assert_ptr_nonnull(
      strstr(hdr(r, "Access-Control-Allow-Headers"), "Authorization"));
  ck_assert_ptr_nonnull(hdr(r, "Access-Control-Max-Age"));
  ck_assert_uint_eq(r->len, 0);
  done(r);
  r = call("OPTIONS", "/v1/nope", NULL, h3, NULL);
  assert_error(r, 404, "NOT_FOUND");
  done(r);
}
END_TEST

START_TEST(keep_alive_serves_many_requests_on_one_connection) {
  CURL *c = curl_easy_init();
  static const struct {
    const char *method, *path, *body;
    long status;
  } seq[] = {
      {"GET", "/v1/echo/k", NULL, 200},  {"POST", "/v1/nope", "{}", 404},
      {"GET", "/healthz", NULL, 200},    {"GET", "/v1/nope", NULL, 404},
      {"PUT", "/v1/echo/1", NULL, 405},  {"OPTIONS", "/v1/echo/1", NULL, 204},
      {"GET", "/v1/echo/%zz", NULL, 400}};
  for (int i = 0; i < 21; i++) {
    size_t k = (size_t)i % (sizeof seq / sizeof seq[0]);
    resp *r = call(seq[k].method, seq[k].path, seq[k].body, NULL, c);
    ck_assert_msg(r->status == seq[k].status, "%s %s: %ld", seq[k].method,
                  seq[k].path, r->status);
    ck_assert_ptr_null(hdr(r, "Connection"));
    if (i > 0) {
      long conns = -1;
      curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &conns);
      ck_assert_int_eq(conns, 0);
    }
    done(r);
  }
  curl_easy_cleanup(c);
}
END_TEST

typedef struct bg {
  pthread_t t;
  const char *method, *path, *body;
  long status;
} bg;

static void *bg_run(void *arg) {
  bg *b = arg;
  const char *h[] = {"X-Tenant: acme", NULL};
  resp *r = call(b->method, b->path, b->body, h, NULL);
  b->status = r->status;
  done(r);
  return NULL;
}

/* Sends req on a fresh connection and reads until the server closes it or
 * timeout_ms pass; *closed says whether it closed. */
static char *raw_until_close(const char *req, size_t len, int timeout_ms,
                             bool *closed) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)server_port(srv))};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  ck_assert_int_eq(send(fd, req, len, MSG_NOSIGNAL), (ssize_t)len);
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
  close(fd);
  return out;
}

/* The token is checked from the headers: a client announcing a large body
 * without a valid token gets 401 without sending a byte of it, and the
 * connection is closed (the body is never read). */
START_TEST(token_is_refused_before_the_body_is_read) {
  const char *reqs[] = {
      "PATCH /v1/echo/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
      "\r\nContent-Length: 900000\r\n\r\n",
      "PATCH /v1/echo/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
      "\r\nAuthorization: Bearer v4.public.forged\r\n"
      "Content-Length: 900000\r\n\r\n",
      "PATCH /v1/echo/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
      "\r\nAuthorization: Bearer v4.public.forged\r\n"
      "Transfer-Encoding: chunked\r\n\r\n",
      /* 401 also comes before the content type and the size checks. */
      "PATCH /v1/echo/1 HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain"
      "\r\nContent-Length: 99999999\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
    bool closed;
    char *out = raw_until_close(reqs[i], strlen(reqs[i]), 5000, &closed);
    ck_assert_msg(strncmp(out, "HTTP/1.1 401", 12) == 0, "%zu: %s", i, out);
    ck_assert_ptr_nonnull(strstr(out, "WWW-Authenticate: Bearer"));
    ck_assert_ptr_nonnull(strstr(out, "\"UNAUTHENTICATED\""));
    ck_assert_msg(closed, "%zu: connection left open", i);
    free(out);
  }
  /* A valid token passes the header check; the body is then read. */
  char *tok = token_for(T_ACME, "owner", "u1");
  char auth[PASETO_TOKEN_MAX + 64];
  snprintf(auth, sizeof auth, "Authorization: Bearer %s", tok);
  const char *h[] = {auth, NULL};
  resp *r = call("PATCH", "/v1/echo/5", "{\"name\":\"n\"}", h, NULL);
  ck_assert_int_eq(r->status, 200);
  done(r);
  free(tok);
}
END_TEST

/* A route's own cap: by Content-Length before reading, and while a
 * chunked body streams in. */
/* A PUT or GET of raw bytes with libcurl; *curl_rc: how the transfer
 * ended (a streamed download cut short is CURLE_PARTIAL_FILE). */
static resp *call_bytes(const char *method, const char *path, const char *data,
                        size_t len, CURL *reuse, CURLcode *curl_rc) {
  resp *r = calloc(1, sizeof *r);
  CURL *c = reuse ? reuse : curl_easy_init();
  curl_easy_reset(c);
  char url[2048];
  snprintf(url, sizeof url, "%s%s", base, path);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  if (strcmp(method, "HEAD") == 0) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  struct curl_slist *h =
      curl_slist_append(NULL, "Content-Type: application/octet-stream");
  if (data != NULL) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, data);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
  }
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L);
  *curl_rc = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
  curl_slist_free_all(h);
  if (!reuse) curl_easy_cleanup(c);
  const char *ct = hdr(r, "Content-Type");
  if (r->body != NULL && ct != NULL && strcmp(ct, "application/json") == 0)
    r->json = json_loads(r->body, 0, NULL);
  return r;
}

static char *pattern(size_t n) {
  char *b = malloc(n);
  ck_assert_ptr_nonnull(b);
  for (size_t i = 0; i < n; i++) b[i] = (char)((i * 7 + i / 251) & 0xff);
  return b;
}

START_TEST(streamed_upload_goes_in_parts_and_comes_back_whole) {
  size_t n = 3 * ROUTE_PART_BYTES + 3; /* three full parts and a small one */
  char *data = pattern(n);
  CURLcode rc;
  resp *r = call_bytes("PUT", "/v1/files/menu.png", data, n, NULL, &rc);
  ck_assert_int_eq(rc, CURLE_OK);
  ck_assert_msg(r->status == 201, "%ld %s", r->status, r->body);
  ck_assert_str_eq(jstr(r, "name"), "menu.png");
  ck_assert_int_eq(json_integer_value(jget(r->json, "size")), (json_int_t)n);
  ck_assert_ptr_null(jget(r->json, "done"));
  ck_assert_ptr_null(jget(r->json, "received"));
  done(r);
  /* The backend got it in parts of at most ROUTE_PART_BYTES, one upload
   * id for all of them, every byte in place. */
  pthread_mutex_lock(&files.mu);
  ck_assert_int_eq(files.parts, 4);
  ck_assert_uint_eq(files.largest_part, ROUTE_PART_BYTES);
  ck_assert(!files.mixed_ids);
  ck_assert_uint_eq(files.received, n);
  ck_assert(memcmp(files.data, data, n) == 0);
  pthread_mutex_unlock(&files.mu);
  /* Read back part by part: Content-Length whole, every byte. */
  r = call_bytes("GET", "/v1/files/menu.png", NULL, 0, NULL, &rc);
  ck_assert_int_eq(rc, CURLE_OK);
  ck_assert_int_eq(r->status, 200);
  ck_assert_uint_eq(r->len, n);
  ck_assert(memcmp(r->body, data, n) == 0);
  ck_assert_str_eq(hdr(r, "Content-Type"), "application/octet-stream");
  char want[32];
  snprintf(want, sizeof want, "%zu", n);
  ck_assert_str_eq(hdr(r, "Content-Length"), want);
  done(r);
  r = call_bytes("HEAD", "/v1/files/menu.png", NULL, 0, NULL, &rc);
  ck_assert_int_eq(rc, CURLE_OK);
  ck_assert_int_eq(r->status, 200);
  ck_assert_str_eq(hdr(r, "Content-Length"), want);
  done(r);
  r = call_bytes("GET", "/v1/files/nothing", NULL, 0, NULL, &rc);
  assert_error(r, 404, "NOT_FOUND");
  done(r);
  /* An empty file is one empty part. */
  r = call_bytes("PUT", "/v1/files/empty", "", 0, NULL, &rc);
  ck_assert_msg(r->status == 201, "%ld %s", r->status, r->body);
  done(r);
  free(data);
}
END_TEST

START_TEST(streamed_upload_done_early_drops_the_rest_on_a_kept_connection) {
  size_t n = 2 * ROUTE_PART_BYTES + 10;
  char *data = pattern(n);
  pthread_mutex_lock(&files.mu);
  files.parts = 0;
  pthread_mutex_unlock(&files.mu);
  CURL *c = curl_easy_init();
  CURLcode rc;
  resp *r = call_bytes("PUT", "/v1/files/there", data, n, c, &rc);
  ck_assert_int_eq(rc, CURLE_OK);
  ck_assert_msg(r->status == 200, "%ld %s", r->status, r->body);
  done(r);
  pthread_mutex_lock(&files.mu);
  ck_assert_int_eq(files.parts, 1); /* "done" on the first: no more sent */
  pthread_mutex_unlock(&files.mu);
  /* The rest of the body was read and dropped: the connection serves the
   * next request. */
  long conns = -1;
  r = call_bytes("GET", "/v1/files/nothing", NULL, 0, c, &rc);
  ck_assert_int_eq(r->status, 404);
  curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &conns);
  ck_assert_int_eq(conns, 0); /* reused, not reopened */
  done(r);
  curl_easy_cleanup(c);
  /* A part field in the query is the client's to leave alone. */
  r = call_bytes("GET", "/v1/files/menu.png?offset=3", NULL, 0, NULL, &rc);
  ck_assert_int_eq(r->status, 400);
  done(r);
  /* A chunked upload has no size for its parts: 411 before any byte. */
  const char *chunked = "PUT /v1/files/x HTTP/1.1\r\nHost: h\r\n"
                        "Content-Type: application/octet-stream\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n"
                        "5\r\nhello\r\n0\r\n\r\n";
  char *out = raw(chunked, strlen(chunked), 3000);
  ck_assert_msg(strncmp(out, "HTTP/1.1 411", 12) == 0, "%s", out);
  free(out);
  free(data);
}
END_TEST

START_TEST(streamed_download_failing_midway_ends_the_body_early) {
  CURLcode rc;
  resp *r = call_bytes("GET", "/v1/files/broken", NULL, 0, NULL, &rc);
  /* The status and length went out with the first part; the second
   * fails: the body stops short and the connection closes, so the client
   * can tell (never a complete-looking body). */
  ck_assert_int_eq(r->status, 200);
  ck_assert_str_eq(hdr(r, "Content-Length"), "1048576");
  ck_assert_int_eq(rc, CURLE_PARTIAL_FILE);
  ck_assert_uint_eq(r->len, ROUTE_PART_BYTES);
  done(r);
}
END_TEST

START_TEST(route_body_cap_applies_before_and_while_reading) {
  const char *h[] = {"X-Tenant: acme", NULL};
  char body[SMALL_BODY + 8];
  memset(body, ' ', sizeof body - 1);
  body[0] = '{';
  body[SMALL_BODY - 1] = '}';
  body[SMALL_BODY] = '\0';
  resp *r = call("POST", "/v1/small", body, h, NULL);
  ck_assert_int_eq(r->status, 201);
  done(r);
  body[SMALL_BODY] = ' ';
  body[SMALL_BODY + 1] = '\0';
  r = call("POST", "/v1/small", body, h, NULL);
  assert_error(r, 413, "INVALID_ARGUMENT");
  done(r);
  /* Announced larger than the route's cap (under the server's): 413 at
   * once, nothing sent. */
  const char *hdrs = "POST /v1/small HTTP/1.1\r\nHost: x\r\nX-Tenant: acme\r\n"
                     "Content-Type: application/json\r\n"
                     "Content-Length: 500\r\n\r\n";
  bool closed;
  char *out = raw_until_close(hdrs, strlen(hdrs), 5000, &closed);
  ck_assert_msg(strncmp(out, "HTTP/1.1 413", 12) == 0, "%s", out);
  free(out);
  char req[1024];
  int n = snprintf(req, sizeof req,
                   "POST /v1/small HTTP/1.1\r\nHost: x\r\nX-Tenant: acme\r\n"
                   "Content-Type: application/json\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n");
  for (int i = 0; i < 3; i++) {
    n += snprintf(req + n, sizeof req - (size_t)n, "30\r\n");
    memset(req + n, ' ', 0x30);
    n += 0x30;
    n += snprintf(req + n, sizeof req - (size_t)n, "\r\n");
  }
  n += snprintf(req + n, sizeof req - (size_t)n, "0\r\n\r\n");
  out = raw(req, (size_t)n, 3000);
  ck_assert_msg(strncmp(out, "HTTP/1.1 413", 12) == 0, "%s", out);
  free(out);
}
END_TEST

/* Opens a keep-alive connection that the server has answered once (an
 * answer proves MHD accepted it and counts it against the per-address cap).
 * The trickler the sweeper just cut may still be counted until MHD reaps
 * it, so a connection closed unanswered is retried for a while. */
static int hold_answered(const struct sockaddr_in *sa, const char *get) {
  int64_t until = time_mono_ms() + 10000;
  for (;;) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_eq(connect(fd, (const struct sockaddr *)sa, sizeof *sa), 0);
    ck_assert_int_gt(send(fd, get, strlen(get), MSG_NOSIGNAL), 0);
    struct pollfd hp = {.fd = fd, .events = POLLIN};
    char b[512];
    if (poll(&hp, 1, 5000) > 0 && recv(fd, b, sizeof b, 0) > 0) return fd;
    close(fd);
    ck_assert_msg(time_mono_ms() < until, "a connection under the cap "
                                          "was refused");
    time_sleep_ms(20);
  }
}

/* A client trickling a request (a byte every 50 ms keeps MHD's idle
 * timer from ever firing) is cut after request_timeout_ms; a prompt one
 * on the same server is answered. */
START_TEST(trickling_client_is_cut_after_the_request_timeout) {
  server_config sc = {.bind_addr = "127.0.0.1",
                      .routes = routes,
                      .pipeline = pipe_,
                      .workers = 2,
                      .queue_depth = 8,
                      .request_timeout_ms = 400,
                      .max_conns_per_ip = 3};
  server *s2;
  ck_assert_int_eq(server_new(&sc, &s2), ERR_OK);
  ck_assert_int_eq(server_start(s2), ERR_OK);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)server_port(s2))};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  const char *head = "POST /v1/echo HTTP/1.1\r\nHost: x\r\nX-Tenant: acme\r\n"
                     "Content-Type: application/json\r\n"
                     "Content-Length: 1000\r\n\r\n{";
  ck_assert_int_gt(send(fd, head, strlen(head), MSG_NOSIGNAL), 0);
  bool cut = false;
  int64_t until = time_mono_ms() + 20000; /* generous: never a speed test */
  while (!cut && time_mono_ms() < until) {
    if (send(fd, " ", 1, MSG_NOSIGNAL) != 1) cut = true;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 50) > 0) {
      char b[512];
      if (recv(fd, b, sizeof b, 0) <= 0) cut = true;
    }
  }
  close(fd);
  ck_assert_msg(cut, "a trickling client was never cut");
  /* The per-address cap: a fourth connection from 127.0.0.1 is closed at
   * once while three are open. */
  const char *get = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  char b[512];
  int held[3];
  for (int i = 0; i < 3; i++) held[i] = hold_answered(&sa, get);
  int extra = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_eq(connect(extra, (struct sockaddr *)&sa, sizeof sa), 0);
  (void)send(extra, get, strlen(get), MSG_NOSIGNAL);
  struct pollfd p = {.fd = extra, .events = POLLIN};
  ck_assert_int_gt(poll(&p, 1, 5000), 0);
  ssize_t got = recv(extra, b, sizeof b - 1, 0);
  if (got > 0) b[got] = 0;
  ck_assert_msg(got <= 0, "answered: %s", got > 0 ? b : ""); /* closed */
  close(extra);
  for (int i = 0; i < 3; i++) close(held[i]);
  server_free(s2);
}
END_TEST

START_TEST(requests_in_flight_finish_during_a_drain) {
  /* A second server sharing the pipeline, drained while a call runs. */
  server_config sc = {.bind_addr = "127.0.0.1",
                      .routes = routes,
                      .pipeline = pipe_,
                      .workers = 1,
                      .queue_depth = 1};
  server *s2;
  ck_assert_int_eq(server_new(&sc, &s2), ERR_OK);
  ck_assert_int_eq(server_start(s2), ERR_OK);
  char saved[64];
  str_copy(saved, base, sizeof saved);
  snprintf(base, sizeof base, "http://127.0.0.1:%d", server_port(s2));
  bg slow = {
      .method = "POST", .path = "/v1/echo", .body = "{\"sleep_ms\":1000}"};
  pthread_create(&slow.t, NULL, bg_run, &slow);
  int64_t until = time_mono_ms() + 3000;
  while (server_in_flight(s2) == 0 && time_mono_ms() < until) time_sleep_ms(5);
  ck_assert_int_eq(server_in_flight(s2), 1);
  /* While the only worker is busy a second request waits in the queue and
   * a third finds it full. */
  bg queued = {
      .method = "POST", .path = "/v1/echo", .body = "{\"sleep_ms\":10}"};
  pthread_create(&queued.t, NULL, bg_run, &queued);
  while (server_in_flight(s2) < 2 && time_mono_ms() < until) time_sleep_ms(5);
  time_sleep_ms(50);
  const char *h[] = {"X-Tenant: acme", NULL};
  resp *r = call("POST", "/v1/echo", "{}", h, NULL);
  assert_error(r, 503, "UNAVAILABLE");
  done(r);
  ck_assert_int_eq(server_drain(s2, 5000), ERR_OK);
  pthread_join(slow.t, NULL);
  pthread_join(queued.t, NULL);
  ck_assert_int_eq(slow.status, 201);
  ck_assert_int_eq(queued.status, 201);
  server_free(s2);
  str_copy(base, saved, sizeof base);
}
END_TEST

int main(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  setup_all();
  Suite *s = suite_create("server");
  TCase *tc = tcase_create("server");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, healthz_answers_ok_with_a_request_id);
  tcase_add_test(tc, app_files_are_served_with_page_headers);
  tcase_add_test(tc, unknown_path_is_404_with_the_error_shape);
  tcase_add_test(tc, wrong_method_is_405_with_allow);
  tcase_add_test(
      tc, body_without_json_content_type_is_415_and_keeps_the_connection);
  tcase_add_test(tc, body_over_the_limit_is_413);
  tcase_add_test(tc, unframeable_transfer_encoding_is_411);
  tcase_add_test(tc, chunked_body_within_the_limit_is_read);
  tcase_add_test(tc, bad_json_is_400_naming_the_field);
  tcase_add_test(tc, path_query_and_body_reach_the_backend);
  tcase_add_test(tc, anonymous_call_takes_its_tenant_from_x_tenant_or_host);
  tcase_add_test(tc, keyed_route_sends_the_clients_key_or_its_own);
  tcase_add_test(tc, unknown_suspended_or_missing_tenant_is_refused);
  tcase_add_test(tc, token_routes_need_a_valid_bearer_token);
  tcase_add_test(tc, role_below_the_route_minimum_is_403);
  tcase_add_test(tc, token_for_another_tenant_is_403);
  tcase_add_test(tc, extra_call_is_merged_into_the_answer);
  tcase_add_test(tc, delete_answers_204_without_a_body);
  tcase_add_test(tc, backend_status_maps_and_5xx_hide_internals);
  tcase_add_test(tc, unreachable_backend_is_503_not_a_hang);
  tcase_add_test(tc, slow_backend_is_504_within_the_deadline);
  tcase_add_test(tc, request_id_is_echoed_or_generated);
  tcase_add_test(tc, cors_answers_allowed_origins_and_preflight);
  tcase_add_test(tc, keep_alive_serves_many_requests_on_one_connection);
  tcase_add_test(tc, token_is_refused_before_the_body_is_read);
  tcase_add_test(tc, route_body_cap_applies_before_and_while_reading);
  tcase_add_test(tc, streamed_upload_goes_in_parts_and_comes_back_whole);
  tcase_add_test(
      tc, streamed_upload_done_early_drops_the_rest_on_a_kept_connection);
  tcase_add_test(tc, streamed_download_failing_midway_ends_the_body_early);
  tcase_add_test(tc, trickling_client_is_cut_after_the_request_timeout);
  tcase_add_test(tc, requests_in_flight_finish_during_a_drain);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_set_fork_status(sr, CK_NOFORK);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  teardown_all();
  curl_global_cleanup();
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
