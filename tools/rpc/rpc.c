/*
 * rpc.c - a grpcurl-like operator tool for the platform's RPC services.
 *
 *   rpc list [SERVICE]
 *   rpc describe METHOD
 *   rpc call [--addr URL] [--as SERVICE --key-file PATH]
 *            [--token TOKEN | --token-file PATH] [--tenant ID]
 *            [--idempotency-key K] [--deadline-ms N] METHOD [JSON | -]
 *
 * Design: a thin shell over the libraries the services themselves use,
 * so the tool can neither accept nor send anything they would not:
 * methods and schemas come from the generated access tables
 * (tools/rpc/catalog.c), the request is built from JSON by libs/pbjson
 * (the gateway's mapping, so a body that works here works there), the
 * call goes through libs/rpc, and the service identity is a libs/svcid
 * token minted for the method's service exactly as a service's client
 * would (audience = "auth" for "auth.v1.Auth/Login"). Without --as the
 * request carries no service identity at all: that is how an operator
 * shows that the servers refuse an anonymous caller.
 *
 * Secrets: the service key is read only from a file (argv is visible in
 * the process list); svcid_signer_load wipes its copy. The user's access
 * token may come from --token-file; a --token given on the command line
 * is blanked in argv once read. Neither is ever printed.
 *
 * Exit status: 0 the call answered OK (reply JSON on stdout); 1 it did
 * not (status, message and field violations on stderr), or could not be
 * made; 2 usage or bad input, when nothing was sent.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "libs/base/err.h"
#include "libs/base/strutil.h"
#include "libs/pbjson/pbjson.h"
#include "libs/rpc/rpc.h"
#include "libs/svcid/svcid.h"
#include "tools/rpc/catalog.h"

#define EXIT_FAILED 1
#define EXIT_USAGE 2
#define JSON_MAX PBJSON_DEFAULT_MAX_JSON_BYTES
#define TOKEN_FILE_MAX 4096 /* an access token and whitespace */
#define DEFAULT_DEADLINE_MS 5000
#define MAX_DEADLINE_MS 300000 /* the server's cap (rpc.h) */

static const char USAGE[] =
    "usage:\n"
    "  rpc list [SERVICE]           methods, messages and callers\n"
    "  rpc describe METHOD          request and response fields\n"
    "  rpc call [--addr tcp://HOST:PORT] [--as SERVICE --key-file PATH]\n"
    "           [--token TOKEN | --token-file PATH] [--tenant ID]\n"
    "           [--idempotency-key K] [--deadline-ms N] METHOD [JSON | -]\n"
    "  The address defaults to $<SERVICE>_ADDR (AUTH_ADDR for auth.v1.*).\n"
    "  Without --as the call carries no service identity.\n";

static int usage(const char *msg) {
  if (msg) fprintf(stderr, "rpc: %s\n", msg);
  fputs(USAGE, stderr);
  return EXIT_USAGE;
}

/* Writes text that came from the network with anything but printable
 * ASCII escaped, so a server's message cannot drive the terminal. */
static void put_escaped(FILE *f, const char *s) {
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c >= 0x20 && c < 0x7f && c != '\\')
      fputc(c, f);
    else
      fprintf(f, "\\x%02x", c);
  }
}

/* ---- input ------------------------------------------------------------ */

/* Reads at most max bytes of f into a new NUL-terminated buffer. */
static int read_all(FILE *f, size_t max, char **out, size_t *len) {
  char *buf = malloc(max + 1);
  size_t n;
  if (!buf) return ERR_NOMEM;
  n = fread(buf, 1, max + 1, f);
  if (ferror(f) || n > max) {
    free(buf);
    return ferror(f) ? ERR_IO : ERR_TOOBIG;
  }
  buf[n] = '\0';
  *out = buf;
  *len = n;
  return ERR_OK;
}

/* The request text: the argument, stdin for "-", "{}" when absent. */
static int request_text(const char *arg, char **out, size_t *len) {
  if (arg && strcmp(arg, "-") == 0) return read_all(stdin, JSON_MAX, out, len);
  *out = strdup(arg ? arg : "{}");
  if (!*out) return ERR_NOMEM;
  *len = strlen(*out);
  return *len > JSON_MAX ? ERR_TOOBIG : ERR_OK;
}

/* The access token from a file, whitespace trimmed, into buf (wiped by
 * the caller). */
static int token_from_file(const char *path, char *buf, size_t cap) {
  FILE *f = fopen(path, "r");
  char *text = NULL;
  size_t len = 0, start = 0;
  int rc;
  if (!f) return ERR_IO;
  rc = read_all(f, TOKEN_FILE_MAX, &text, &len);
  fclose(f);
  if (rc != ERR_OK) return rc;
  while (len && strchr(" \t\r\n", text[len - 1])) len--;
  while (start < len && strchr(" \t\r\n", text[start])) start++;
  rc = len - start < cap ? ERR_OK : ERR_TOOBIG;
  if (rc == ERR_OK) {
    memcpy(buf, text + start, len - start);
    buf[len - start] = '\0';
  }
  sodium_memzero(text, TOKEN_FILE_MAX + 1);
  free(text);
  return rc;
}

/* Decodes JSON into m's request message and serialises it. Every field
 * error is printed, so the operator fixes them all at once. */
static int build_request(const svcid_method_access *m, const char *json,
                         size_t len, uint8_t **out, size_t *out_len) {
  pbjson_opts po = {.enum_style = PBJSON_ENUM_SHORT_LOWER};
  pbjson_error err;
  ProtobufCMessage *msg = NULL;
  if (pbjson_decode(m->input, json, len, &po, &msg, &err) != ERR_OK) {
    fprintf(stderr, "rpc: the request is not a valid %s:\n", m->input->name);
    for (size_t i = 0; i < err.count; i++)
      fprintf(stderr, "  %s: %s\n",
              err.errors[i].path[0] ? err.errors[i].path : "(document)",
              err.errors[i].description);
    if (err.truncated) fputs("  ...\n", stderr);
    return ERR_INVAL;
  }
  *out_len = protobuf_c_message_get_packed_size(msg);
  *out = malloc(*out_len ? *out_len : 1);
  if (*out) protobuf_c_message_pack(msg, *out);
  pbjson_free(msg);
  return *out ? ERR_OK : ERR_NOMEM;
}

/* ---- the call ----------------------------------------------------------- */

enum {
  OPT_ADDR = 1,
  OPT_AS,
  OPT_KEY_FILE,
  OPT_TOKEN,
  OPT_TOKEN_FILE,
  OPT_TENANT,
  OPT_IDEM,
  OPT_DEADLINE
};

static const struct option OPTIONS[] = {
    {"addr", required_argument, NULL, OPT_ADDR},
    {"as", required_argument, NULL, OPT_AS},
    {"key-file", required_argument, NULL, OPT_KEY_FILE},
    {"token", required_argument, NULL, OPT_TOKEN},
    {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
    {"tenant", required_argument, NULL, OPT_TENANT},
    {"idempotency-key", required_argument, NULL, OPT_IDEM},
    {"deadline-ms", required_argument, NULL, OPT_DEADLINE},
    {NULL, 0, NULL, 0},
};

typedef struct call_opts {
  const char *addr, *as, *key_file, *token_file, *tenant, *idem;
  char *token; /* argv's copy, blanked once read */
  long deadline_ms;
  const char *method, *json; /* json NULL: "{}" */
} call_opts;

static int parse_deadline(const char *s, long *out) {
  char *end = NULL;
  errno = 0;
  *out = strtol(s, &end, 10);
  return errno == 0 && end != s && *end == '\0' && *out > 0 &&
         *out <= MAX_DEADLINE_MS;
}

static int parse_call_opts(int argc, char **argv, call_opts *o) {
  int c;
  memset(o, 0, sizeof *o);
  o->deadline_ms = DEFAULT_DEADLINE_MS;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "", OPTIONS, NULL)) != -1) {
    switch (c) {
    case OPT_ADDR:
      o->addr = optarg;
      break;
    case OPT_AS:
      o->as = optarg;
      break;
    case OPT_KEY_FILE:
      o->key_file = optarg;
      break;
    case OPT_TOKEN:
      o->token = optarg;
      break;
    case OPT_TOKEN_FILE:
      o->token_file = optarg;
      break;
    case OPT_TENANT:
      o->tenant = optarg;
      break;
    case OPT_IDEM:
      o->idem = optarg;
      break;
    case OPT_DEADLINE:
      if (!parse_deadline(optarg, &o->deadline_ms))
        return usage("--deadline-ms must be 1..300000");
      break;
    default:
      return usage("unknown option or missing option value");
    }
  }
  if (optind >= argc || argc - optind > 2)
    return usage("call takes METHOD and at most one JSON argument");
  if (!o->as != !o->key_file)
    return usage("--as and --key-file go together (the key of that service)");
  if (o->token && o->token_file)
    return usage("give --token or --token-file, not both");
  o->method = argv[optind];
  o->json = argc - optind == 2 ? argv[optind + 1] : NULL;
  return 0;
}

/* The environment variable naming a service's address: "AUTH_ADDR". */
static void address_var(const char *service, char *var, size_t cap) {
  size_t i;
  for (i = 0; service[i] && i + 6 < cap; i++)
    var[i] = service[i] == '-' ? '_' : (char)(service[i] & ~0x20);
  str_copy(var + i, "_ADDR", cap - i);
}

/* The service identity of every request: a token for this method's
 * service, minted once and cached by the signer. */
typedef struct credential {
  svcid_signer *signer;
  char audience[CATALOG_SERVICE_MAX + 1];
} credential;

static int credential_cb(void *arg, const char *method, char *buf, size_t cap) {
  (void)method; /* the audience was taken from it once, in prepare */
  credential *c = arg;
  return svcid_signer_token(c->signer, c->audience, buf, cap);
}

static void print_failure(const rpc_result *r) {
  fprintf(stderr, "%s: ", rpc_code_name(r->code));
  put_escaped(stderr, r->message);
  fputc('\n', stderr);
  for (size_t i = 0; i < r->nviolations; i++) {
    fputs("  ", stderr);
    put_escaped(stderr, r->violations[i].field);
    fputs(": ", stderr);
    put_escaped(stderr, r->violations[i].description);
    fputc('\n', stderr);
  }
  if (r->retry_after_ms)
    fprintf(stderr, "  (retry after %u ms)\n", r->retry_after_ms);
}

/* The reply as indented JSON on stdout. */
static int print_reply(const svcid_method_access *m, const rpc_result *r) {
  pbjson_opts po = {.enum_style = PBJSON_ENUM_SHORT_LOWER};
  ProtobufCMessage *msg =
      protobuf_c_message_unpack(m->output, NULL, r->payload_len, r->payload);
  json_t *j = NULL;
  char *text = NULL;
  if (msg && pbjson_encode(msg, &po, &j, NULL) == ERR_OK)
    text = json_dumps(j, JSON_INDENT(2));
  json_decref(j);
  if (msg) protobuf_c_message_free_unpacked(msg, NULL);
  if (!text) {
    fprintf(stderr, "rpc: OK, but the reply (%zu bytes) is not a valid %s\n",
            r->payload_len, m->output->name);
    return EXIT_FAILED;
  }
  puts(text);
  free(text);
  return fflush(stdout) == 0 ? EXIT_SUCCESS : EXIT_FAILED;
}

static int do_call(const call_opts *o, const svcid_method_access *m,
                   const char *addr, credential *cred, const char *token,
                   const uint8_t *req, size_t req_len) {
  rpc_client_options co;
  rpc_call_options opt = RPC_CALL_OPTIONS_INIT;
  rpc_client *cli = NULL;
  rpc_result *res = NULL;
  int status;
  rpc_client_options_init(&co);
  if (cred->signer) {
    co.credential = credential_cb;
    co.credential_arg = cred;
  }
  if (rpc_client_new(addr, &co, &cli) != ERR_OK) {
    fprintf(stderr, "rpc: bad address %s\n", addr);
    return EXIT_USAGE;
  }
  opt.deadline_ms = (uint32_t)o->deadline_ms;
  opt.tenant_id = o->tenant;
  opt.token = token;
  opt.idempotency_key = o->idem;
  if (rpc_client_call(cli, m->method, req, req_len, &opt, &res) != ERR_OK) {
    fprintf(stderr, "rpc: the call could not be made (service key?)\n");
    rpc_client_free(cli);
    return EXIT_FAILED;
  }
  if (res->code == RPC_OK) {
    status = print_reply(m, res);
  } else {
    print_failure(res);
    status = EXIT_FAILED;
  }
  rpc_result_free(res);
  rpc_client_free(cli);
  return status;
}

/* Everything a call needs from files or the environment: --addr or
 * $<SERVICE>_ADDR, the access token file, the service key. Any failure
 * here means nothing was sent. */
static int prepare(const call_opts *o, credential *cred, char *token,
                   const char **addr) {
  char var[CATALOG_SERVICE_MAX + 8];
  address_var(cred->audience, var, sizeof var);
  *addr = o->addr ? o->addr : getenv(var);
  if (!*addr || !**addr) {
    fprintf(stderr, "rpc: no address: give --addr or set %s\n", var);
    return EXIT_USAGE;
  }
  if (o->token_file &&
      token_from_file(o->token_file, token, TOKEN_FILE_MAX + 1) != ERR_OK) {
    fprintf(stderr, "rpc: cannot read an access token from %s\n",
            o->token_file);
    return EXIT_USAGE;
  }
  if (o->as && svcid_signer_load(o->as, o->key_file, &cred->signer) != ERR_OK) {
    fprintf(stderr, "rpc: cannot load %s's service key from %s\n", o->as,
            o->key_file);
    return EXIT_USAGE;
  }
  return 0;
}

/* The method and its request, checked before anything is read from
 * files or sent: a typo costs nothing. */
static int request_for(const call_opts *o, const svcid_method_access **m,
                       credential *cred, uint8_t **req, size_t *req_len) {
  char *json = NULL;
  size_t json_len = 0;
  int rc;
  *m = catalog_find(o->method);
  if (!*m) return usage("unknown method (see rpc list)");
  if (!catalog_service_of(o->method, cred->audience))
    return usage("method has no service prefix");
  if (request_text(o->json, &json, &json_len) != ERR_OK) {
    fprintf(stderr, "rpc: request unreadable or over %d bytes\n", JSON_MAX);
    return EXIT_USAGE;
  }
  rc = build_request(*m, json, json_len, req, req_len);
  free(json);
  return rc == ERR_OK ? 0 : EXIT_USAGE;
}

static int cmd_call(int argc, char **argv) {
  static char token[TOKEN_FILE_MAX + 1];
  credential cred = {.signer = NULL};
  const svcid_method_access *m = NULL;
  const char *addr = NULL;
  uint8_t *req = NULL;
  size_t req_len = 0;
  call_opts o;
  int rc;
  if ((rc = parse_call_opts(argc, argv, &o)) != 0) return rc;
  if (o.token) {
    str_copy(token, o.token, sizeof token);
    sodium_memzero(o.token, strlen(o.token));
  }
  if ((rc = request_for(&o, &m, &cred, &req, &req_len)) == 0 &&
      (rc = prepare(&o, &cred, token, &addr)) == 0)
    rc = do_call(&o, m, addr, &cred, token, req, req_len);
  sodium_memzero(token, sizeof token);
  svcid_signer_free(cred.signer);
  free(req);
  return rc;
}

/* ---- list, describe, main ---------------------------------------------- */

static int cmd_list(int argc, char **argv) {
  if (argc > 2) return usage("list takes at most one SERVICE");
  const char *filter = argc == 2 ? argv[1] : NULL;
  if (catalog_list(stdout, filter) == 0) {
    fprintf(stderr, "rpc: no service %s\n", filter ? filter : "");
    return EXIT_USAGE;
  }
  return EXIT_SUCCESS;
}

static int cmd_describe(int argc, char **argv) {
  const svcid_method_access *m;
  if (argc != 2) return usage("describe takes one METHOD");
  m = catalog_find(argv[1]);
  if (!m) return usage("unknown method (see rpc list)");
  catalog_describe(stdout, m);
  return EXIT_SUCCESS;
}

int main(int argc, char **argv) {
  if (argc < 2) return usage(NULL);
  const char *cmd = argv[1];
  if (strcmp(cmd, "list") == 0) return cmd_list(argc - 1, argv + 1);
  if (strcmp(cmd, "describe") == 0) return cmd_describe(argc - 1, argv + 1);
  if (strcmp(cmd, "call") == 0) return cmd_call(argc - 1, argv + 1);
  if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
    fputs(USAGE, stdout);
    return EXIT_SUCCESS;
  }
  return usage("unknown subcommand");
}
