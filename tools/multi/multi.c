/*
 * multi.c - the multi-server client's command line (README.md): parse
 * and bound the arguments, read the password from the environment or a
 * file (never argv, which every local user can read in /proc), run the
 * engine and print its report.
 *
 * Exit codes: 0 the mode's condition holds; 1 it does not (the report
 * names every server that failed); 2 usage or input error; 3 it does not
 * and at least one server refused the credentials (401 on login: fix the
 * configuration rather than retry); 4 a local failure (memory, libcurl).
 */
#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs/base/uuid.h"
#include "tools/multi/engine.h"
#include "tools/multi/report.h"

#define MAX_BODY (1u << 20)
#define MAX_PASSWORD 128

typedef struct args {
  const char *urls[ENGINE_MAX_SERVERS];
  int n;
  bool json, show_body, mode_set;
  char password[MAX_PASSWORD + 2];
  char idem[256];
  char *body;
  engine_cfg cfg;
} args;

static void usage(FILE *f) {
  fputs("usage: multi --server URL [--server URL ...] --tenant SLUG --email E\n"
        "             [--password-file FILE] [--mode all|quorum|fastest]\n"
        "             [--timeout MS] [--retries N] [--idempotency-key KEY]\n"
        "             [--max-response BYTES] [--json] [--body]\n"
        "             read PATH | write [--method M] PATH JSON|-\n"
        "The password comes from $MULTI_PASSWORD or --password-file.\n",
        f);
}

static int fail_usage(const char *msg) {
  fprintf(stderr, "multi: %s\n", msg);
  usage(stderr);
  return 2;
}

static bool valid_url(const char *u) {
  size_t n = strlen(u);
  return n < 512 &&
         (strncmp(u, "http://", 7) == 0 || strncmp(u, "https://", 8) == 0) &&
         u[n - 1] != '/';
}

static bool printable(const char *s, size_t max) {
  size_t n = strlen(s);
  if (n == 0 || n > max) return false;
  for (size_t i = 0; i < n; i++)
    if (s[i] < 0x21 || s[i] > 0x7e) return false;
  return true;
}

static int read_password_file(args *a, const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  bool got = fgets(a->password, sizeof a->password, f) != NULL;
  fclose(f);
  if (!got) return -1;
  a->password[strcspn(a->password, "\r\n")] = '\0';
  return 0;
}

/* The JSON body: an argument or "-" for stdin, at most MAX_BODY bytes,
 * checked to be JSON before anything is sent. */
static int read_body(args *a, const char *arg) {
  if (strcmp(arg, "-") != 0) {
    if (strlen(arg) > MAX_BODY) return -1;
    a->body = strdup(arg);
  } else {
    a->body = malloc(MAX_BODY + 1);
    size_t n = a->body ? fread(a->body, 1, MAX_BODY + 1, stdin) : 0;
    if (n > MAX_BODY) return -1;
    if (a->body) a->body[n] = '\0';
  }
  if (a->body == NULL) return -1;
  json_t *j = json_loads(a->body, 0, NULL);
  json_decref(j);
  return j != NULL ? 0 : -1;
}

static int parse_mode(engine_cfg *c, const char *m) {
  if (strcmp(m, "all") == 0)
    c->mode = MODE_ALL;
  else if (strcmp(m, "quorum") == 0)
    c->mode = MODE_QUORUM;
  else if (strcmp(m, "fastest") == 0)
    c->mode = MODE_FASTEST;
  else
    return -1;
  return 0;
}

static long bounded(const char *s, long lo, long hi) {
  char *end;
  long v = strtol(s, &end, 10);
  return (*s && !*end && v >= lo && v <= hi) ? v : -1;
}

enum { O_METHOD = 256 };

static int parse_options(args *a, int argc, char **argv) {
  static const struct option opts[] = {
      {"server", required_argument, 0, 's'},
      {"tenant", required_argument, 0, 't'},
      {"email", required_argument, 0, 'e'},
      {"password-file", required_argument, 0, 'p'},
      {"mode", required_argument, 0, 'm'},
      {"timeout", required_argument, 0, 'T'},
      {"retries", required_argument, 0, 'r'},
      {"idempotency-key", required_argument, 0, 'k'},
      {"max-response", required_argument, 0, 'M'},
      {"method", required_argument, 0, O_METHOD},
      {"json", no_argument, 0, 'j'},
      {"body", no_argument, 0, 'b'},
      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  engine_cfg *c = &a->cfg;
  int o;
  while ((o = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
    switch (o) {
    case 's':
      if (a->n == ENGINE_MAX_SERVERS) return fail_usage("at most 16 servers");
      if (!valid_url(optarg))
        return fail_usage("--server: http(s)://host[:port], no trailing /");
      a->urls[a->n++] = optarg;
      break;
    case 't':
      c->tenant = optarg;
      break;
    case 'e':
      c->email = optarg;
      break;
    case 'p':
      if (read_password_file(a, optarg) != 0)
        return fail_usage("--password-file: cannot read it");
      break;
    case 'm':
      if (parse_mode(c, optarg) != 0)
        return fail_usage("--mode: all|quorum|fastest");
      a->mode_set = true;
      break;
    case 'T':
      if ((c->timeout_ms = bounded(optarg, 100, 120000)) < 0)
        return fail_usage("--timeout: 100..120000 ms");
      break;
    case 'r':
      if ((c->retries = (int)bounded(optarg, 0, 10)) < 0)
        return fail_usage("--retries: 0..10");
      break;
    case 'k':
      if (!printable(optarg, 255))
        return fail_usage("--idempotency-key: 1-255 printable characters");
      snprintf(a->idem, sizeof a->idem, "%s", optarg);
      break;
    case 'M': {
      long v = bounded(optarg, 1024, 64L << 20);
      if (v < 0) return fail_usage("--max-response: 1024..67108864 bytes");
      c->max_resp = (size_t)v;
      break;
    }
    case O_METHOD:
      if (strcmp(optarg, "POST") && strcmp(optarg, "PATCH") &&
          strcmp(optarg, "PUT") && strcmp(optarg, "DELETE"))
        return fail_usage("--method: POST|PATCH|PUT|DELETE");
      c->method = optarg;
      break;
    case 'j':
      a->json = true;
      break;
    case 'b':
      a->show_body = true;
      break;
    case 'h':
      usage(stdout);
      exit(0);
    default:
      return fail_usage("unknown option");
    }
  }
  return 0;
}

/* read PATH | write PATH BODY, after the options. */
static int parse_command(args *a, int argc, char **argv) {
  engine_cfg *c = &a->cfg;
  if (optind >= argc) return fail_usage("read or write?");
  const char *cmd = argv[optind++];
  bool write = strcmp(cmd, "write") == 0;
  if (!write && strcmp(cmd, "read") != 0) return fail_usage("read or write?");
  if (optind + (write ? 2 : 1) != argc) return fail_usage("wrong arguments");
  c->path = argv[optind];
  if (c->path[0] != '/' || !printable(c->path, 1024))
    return fail_usage("PATH: /v1/... without spaces");
  if (!write) {
    if (c->method != NULL) return fail_usage("--method is for write");
    c->method = "GET";
    if (!a->mode_set) c->mode = MODE_FASTEST;
    return 0;
  }
  if (c->method == NULL) c->method = "POST";
  if (a->mode_set && c->mode == MODE_FASTEST)
    return fail_usage("fastest is for reads: a write goes to all servers");
  if (!a->mode_set) c->mode = MODE_ALL;
  if (read_body(a, argv[optind + 1]) != 0)
    return fail_usage("JSON body: valid JSON of at most 1 MiB");
  c->body = a->body;
  if (!a->idem[0]) uuid_v7_str(a->idem); /* one key per logical write */
  c->idem_key = a->idem;
  return 0;
}

static int parse(args *a, int argc, char **argv) {
  a->cfg.timeout_ms = 5000;
  a->cfg.retries = 2;
  int rc = parse_options(a, argc, argv);
  if (rc == 0) rc = parse_command(a, argc, argv);
  if (rc != 0) return rc;
  const char *env = getenv("MULTI_PASSWORD");
  if (!a->password[0] && env != NULL)
    snprintf(a->password, sizeof a->password, "%s", env);
  if (a->n == 0) return fail_usage("at least one --server");
  if (a->cfg.tenant == NULL || a->cfg.email == NULL || !a->password[0])
    return fail_usage("--tenant, --email and a password are required");
  if (strlen(a->password) > MAX_PASSWORD || strlen(a->cfg.email) > 254 ||
      !printable(a->cfg.tenant, 64))
    return fail_usage("credentials out of bounds");
  a->cfg.password = a->password;
  return 0;
}

static bool credentials_refused(const engine_result *r) {
  for (int i = 0; i < r->n; i++)
    if (r->servers[i].outcome == OUT_LOGIN_FAILED &&
        r->servers[i].status == 401)
      return true;
  return false;
}

int main(int argc, char **argv) {
  static args a;
  int rc = parse(&a, argc, argv);
  if (rc != 0) {
    explicit_bzero(a.password, sizeof a.password);
    return rc;
  }
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return 4;
  static engine_result res;
  if (engine_run(&a.cfg, a.urls, a.n, &res) != 0) {
    fprintf(stderr, "multi: local failure (memory or libcurl)\n");
    rc = 4;
  } else {
    if (a.json)
      report_json(stdout, &a.cfg, &res);
    else
      report_table(stdout, &a.cfg, &res, a.show_body);
    rc = res.met ? 0 : credentials_refused(&res) ? 3 : 1;
  }
  engine_result_free(&res);
  explicit_bzero(a.password, sizeof a.password);
  free(a.body);
  curl_global_cleanup();
  return rc;
}
