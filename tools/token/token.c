/*
 * token.c - command-line tool for PASETO v4.public access tokens.
 *
 *   token keygen
 *   token sign   --key <secret hex> [--footer <str>] [--assertion <str>]
 *                <claims JSON | ->
 *   token verify --key <public hex | k4.public…> [--assertion <str>]
 *                [--footer <str>] [--leeway <seconds>] [--no-time]
 *                <token | ->
 *   token decode <token | ->
 *   token pid    <public hex | k4.public…>
 *
 * --key-file <path> reads the key from a file instead of the command line,
 * where other users of the machine could see it in the process list.
 *
 * A thin shell over libs/paseto, so that what the tool signs and accepts is
 * exactly what the services sign and accept. sign refuses claims that are
 * not a JSON object or whose registered claims are malformed, and by
 * default puts {"kid":"<k4.pid of the key>"} in the footer, as the auth
 * service does (--footer '' for none, --footer <str> for another). verify
 * checks the signature and then exp/nbf/iat against the clock with a
 * leeway (default 60 s). Signing is deterministic (Ed25519).
 *
 * The secret key is printed only by keygen; every copy of it in memory is
 * wiped before exit. Exit status: 0 success, 1 invalid token or failed
 * operation, 2 usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "libs/base/err.h"
#include "libs/base/strutil.h"
#include "libs/base/timeutil.h"
#include "libs/paseto/claims.h"
#include "libs/paseto/paseto.h"

#define EXIT_INVALID 1
#define EXIT_USAGE 2
#define INPUT_MAX PASETO_TOKEN_MAX /* claims or token from stdin */
#define KEY_FILE_MAX 512           /* a hex key or PASERK and whitespace */
#define DEFAULT_LEEWAY_S 60
#define MAX_LEEWAY_S 86400

static const char USAGE[] =
    "usage:\n"
    "  token keygen\n"
    "  token sign   --key <secret hex> [--footer <str>] [--assertion <str>]"
    " <claims JSON | ->\n"
    "  token verify --key <public hex | k4.public...> [--assertion <str>]\n"
    "               [--footer <str>] [--leeway <seconds>] [--no-time]"
    " <token | ->\n"
    "  token decode <token | ->\n"
    "  token pid    <public hex | k4.public...>\n"
    "  (--key-file <path> reads the key from a file)\n";

static int usage(const char *msg) {
  if (msg) fprintf(stderr, "token: %s\n", msg);
  fputs(USAGE, stderr);
  return EXIT_USAGE;
}

static bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Trims ASCII whitespace at both ends of buf[0..*len) in place. */
static char *trim(char *buf, size_t *len) {
  size_t n = *len;
  while (n && is_space(buf[n - 1])) n--;
  while (n && is_space(*buf)) {
    buf++;
    n--;
  }
  buf[n] = '\0';
  *len = n;
  return buf;
}

/* Reads at most max bytes of f into buf (capacity max + 1). */
static int read_bounded(FILE *f, char *buf, size_t max, size_t *len) {
  size_t n = fread(buf, 1, max + 1, f);
  if (ferror(f)) return ERR_IO;
  if (n > max) return ERR_TOOBIG;
  buf[n] = '\0';
  *len = n;
  return ERR_OK;
}

/* The text of an argument that may be "-" (stdin), trimmed, into buf
 * (capacity INPUT_MAX + 1). */
static int arg_or_stdin(const char *arg, char *buf, char **out, size_t *len) {
  if (strcmp(arg, "-") == 0) {
    int rc = read_bounded(stdin, buf, INPUT_MAX, len);
    if (rc != ERR_OK) return rc;
  } else {
    size_t n = strlen(arg);
    if (n > INPUT_MAX) return ERR_TOOBIG;
    memcpy(buf, arg, n + 1);
    *len = n;
  }
  *out = trim(buf, len);
  return ERR_OK;
}

/* The key text from --key or --key-file into buf (KEY_FILE_MAX + 1). */
static int key_text(const char *key, const char *key_file, char *buf,
                    char **out, size_t *len) {
  if (key && key_file) return ERR_INVAL;
  if (key) {
    if (str_copy(buf, key, KEY_FILE_MAX + 1) > KEY_FILE_MAX) return ERR_TOOBIG;
    *len = strlen(buf);
  } else if (key_file) {
    FILE *f = fopen(key_file, "r");
    int rc;
    if (!f) return ERR_IO;
    rc = read_bounded(f, buf, KEY_FILE_MAX, len);
    fclose(f);
    if (rc != ERR_OK) return rc;
  } else {
    return ERR_NOTFOUND;
  }
  *out = trim(buf, len);
  return ERR_OK;
}

static int load_public(const char *s, size_t len, paseto_public_key *pk) {
  if (str_has_prefix(s, "k4.public."))
    return paseto_paserk_public_parse(s, len, pk);
  return paseto_public_key_from_hex(s, len, pk);
}

/* Prints unverified bytes with anything but printable ASCII escaped, so a
 * hostile token cannot drive the terminal. */
static void print_escaped(const char *label, const char *s, size_t len) {
  fputs(label, stdout);
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c < 0x7f && c != '\\')
      putchar(c);
    else
      printf("\\x%02x", c);
  }
  putchar('\n');
}

/* ---- subcommands ----------------------------------------------------------
 */

static int cmd_keygen(int argc, char **argv) {
  paseto_secret_key sk;
  paseto_public_key pk;
  char shex[PASETO_SECRET_HEX_LEN + 1], phex[PASETO_PUBLIC_HEX_LEN + 1];
  char pid[PASETO_PID_LEN + 1], paserk[PASETO_PASERK_PUBLIC_LEN + 1];
  (void)argv;
  if (argc != 1) return usage("keygen takes no arguments");
  paseto_keygen(&sk, &pk);
  paseto_secret_key_to_hex(&sk, shex);
  paseto_public_key_to_hex(&pk, phex);
  paseto_pid(&pk, pid);
  paseto_paserk_public(&pk, paserk);
  printf("secret_key=%s\npublic_key=%s\npid=%s\npaserk_public=%s\n", shex, phex,
         pid, paserk);
  fflush(stdout);
  sodium_memzero(shex, sizeof shex);
  paseto_secret_key_wipe(&sk);
  return ferror(stdout) ? EXIT_INVALID : EXIT_SUCCESS;
}

enum {
  OPT_KEY = 1,
  OPT_KEY_FILE,
  OPT_FOOTER,
  OPT_ASSERTION,
  OPT_LEEWAY,
  OPT_NO_TIME
};

static const struct option OPTIONS[] = {
    {"key", required_argument, NULL, OPT_KEY},
    {"key-file", required_argument, NULL, OPT_KEY_FILE},
    {"footer", required_argument, NULL, OPT_FOOTER},
    {"assertion", required_argument, NULL, OPT_ASSERTION},
    {"leeway", required_argument, NULL, OPT_LEEWAY},
    {"no-time", no_argument, NULL, OPT_NO_TIME},
    {NULL, 0, NULL, 0},
};

struct opts {
  const char *key, *key_file, *footer, *assertion, *leeway;
  bool no_time;
  const char *arg; /* the one positional argument */
};

static int parse_opts(int argc, char **argv, struct opts *o) {
  int c;
  memset(o, 0, sizeof *o);
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "", OPTIONS, NULL)) != -1) {
    switch (c) {
    case OPT_KEY:
      o->key = optarg;
      break;
    case OPT_KEY_FILE:
      o->key_file = optarg;
      break;
    case OPT_FOOTER:
      o->footer = optarg;
      break;
    case OPT_ASSERTION:
      o->assertion = optarg;
      break;
    case OPT_LEEWAY:
      o->leeway = optarg;
      break;
    case OPT_NO_TIME:
      o->no_time = true;
      break;
    default:
      return usage("unknown option or missing option value");
    }
  }
  if (optind != argc - 1) return usage("expected exactly one argument");
  o->arg = argv[optind];
  return 0;
}

static int cmd_sign(int argc, char **argv) {
  static char input[INPUT_MAX + 1];
  char keybuf[KEY_FILE_MAX + 1], kidfooter[PASETO_KID_FOOTER_MAX + 1];
  char token[PASETO_TOKEN_MAX + 1], pid[PASETO_PID_LEN + 1];
  paseto_secret_key sk;
  paseto_public_key pk;
  paseto_claims claims;
  struct opts o;
  char *claims_json, *key;
  size_t claims_len, key_len, tlen = 0;
  const char *footer, *why = NULL;
  size_t footer_len;
  int rc, status = EXIT_INVALID;

  if ((rc = parse_opts(argc, argv, &o)) != 0) return rc;
  if (o.leeway || o.no_time) return usage("sign takes no time options");
  rc = key_text(o.key, o.key_file, keybuf, &key, &key_len);
  if (rc != ERR_OK) {
    sodium_memzero(keybuf, sizeof keybuf);
    return usage("sign needs one of --key or --key-file with a secret key");
  }
  rc = paseto_secret_key_from_hex(key, key_len, &sk);
  sodium_memzero(keybuf, sizeof keybuf);
  /* Blank the argv copy too, so the key stops showing in the process
   * list as soon as it is parsed (it was visible until now: prefer
   * --key-file). */
  if (o.key) sodium_memzero((char *)o.key, strlen(o.key));
  if (rc != ERR_OK)
    return usage(
        "--key must be a 128-digit secret key or 64-digit seed in hex");

  if (arg_or_stdin(o.arg, input, &claims_json, &claims_len) != ERR_OK) {
    fprintf(stderr, "token: claims unreadable or over %d bytes\n", INPUT_MAX);
    goto done;
  }
  /* Refuse what no verifier should accept: a payload that is not a JSON
   * object, or registered claims of the wrong type. */
  if (paseto_claims_from_json(claims_json, claims_len, &claims, &why) !=
      ERR_OK) {
    fprintf(stderr, "token: bad claims: %s\n", why);
    goto done;
  }

  if (o.footer) {
    footer = o.footer;
    footer_len = strlen(o.footer);
  } else {
    paseto_public_key_of(&sk, &pk);
    paseto_pid(&pk, pid);
    if (paseto_footer_kid_json(pid, kidfooter, sizeof kidfooter, &footer_len) !=
        ERR_OK) {
      fprintf(stderr, "token: cannot build the kid footer\n");
      goto done;
    }
    footer = kidfooter;
  }
  rc = paseto_sign(&sk, claims_json, claims_len, footer, footer_len,
                   o.assertion, o.assertion ? strlen(o.assertion) : 0, token,
                   sizeof token, &tlen);
  if (rc != ERR_OK) {
    fprintf(stderr, "token: cannot sign: %s\n", err_str(rc));
    goto done;
  }
  printf("%s\n", token);
  status = EXIT_SUCCESS;
done:
  paseto_secret_key_wipe(&sk);
  return status;
}

static int cmd_verify(int argc, char **argv) {
  static char input[INPUT_MAX + 1];
  char keybuf[KEY_FILE_MAX + 1];
  paseto_public_key pk;
  paseto_claims claims;
  paseto_token *t = NULL;
  struct opts o;
  char *tok, *key;
  size_t tok_len, key_len;
  long leeway_s = DEFAULT_LEEWAY_S;
  const char *why = NULL;
  int rc;

  if ((rc = parse_opts(argc, argv, &o)) != 0) return rc;
  if (o.leeway) {
    char *end = NULL;
    errno = 0;
    leeway_s = strtol(o.leeway, &end, 10);
    if (errno || end == o.leeway || *end || leeway_s < 0 ||
        leeway_s > MAX_LEEWAY_S)
      return usage("--leeway must be seconds between 0 and 86400");
  }
  if (key_text(o.key, o.key_file, keybuf, &key, &key_len) != ERR_OK)
    return usage("verify needs one of --key or --key-file with a public key");
  if (load_public(key, key_len, &pk) != ERR_OK)
    return usage("--key must be a public key: 64 hex digits or k4.public...");
  if (arg_or_stdin(o.arg, input, &tok, &tok_len) != ERR_OK) {
    fprintf(stderr, "token: invalid token: unreadable or over %d bytes\n",
            INPUT_MAX);
    return EXIT_INVALID;
  }

  rc = paseto_verify(&pk, tok, tok_len, o.footer,
                     o.footer ? strlen(o.footer) : 0, o.assertion,
                     o.assertion ? strlen(o.assertion) : 0, &t, &why);
  if (rc != ERR_OK) {
    fprintf(stderr, "token: invalid token: %s\n", why);
    return EXIT_INVALID;
  }
  rc = paseto_claims_from_json(t->payload, t->payload_len, &claims, &why);
  if (rc == ERR_OK && !o.no_time)
    rc = paseto_claims_check_time(&claims, time_now_ms(), leeway_s * 1000, 0,
                                  &why);
  if (rc != ERR_OK) {
    fprintf(stderr, "token: invalid token: %s\n", why);
    paseto_token_free(t);
    return EXIT_INVALID;
  }
  fwrite(t->payload, 1, t->payload_len, stdout);
  putchar('\n');
  paseto_token_free(t);
  return EXIT_SUCCESS;
}

static int cmd_decode(int argc, char **argv) {
  static char input[INPUT_MAX + 1];
  paseto_token *t = NULL;
  char *tok;
  size_t tok_len;
  const char *why = NULL;
  if (argc != 2) return usage("decode takes exactly one token");
  if (arg_or_stdin(argv[1], input, &tok, &tok_len) != ERR_OK) {
    fprintf(stderr, "token: invalid token: unreadable or over %d bytes\n",
            INPUT_MAX);
    return EXIT_INVALID;
  }
  if (paseto_decode_unverified(tok, tok_len, &t, &why) != ERR_OK) {
    fprintf(stderr, "token: invalid token: %s\n", why);
    return EXIT_INVALID;
  }
  puts("UNVERIFIED: signature not checked; do not trust these contents");
  print_escaped("payload: ", t->payload, t->payload_len);
  print_escaped("footer: ", t->footer, t->footer_len);
  paseto_token_free(t);
  return EXIT_SUCCESS;
}

static int cmd_pid(int argc, char **argv) {
  paseto_public_key pk;
  char pid[PASETO_PID_LEN + 1];
  if (argc != 2) return usage("pid takes exactly one public key");
  if (load_public(argv[1], strlen(argv[1]), &pk) != ERR_OK)
    return usage("not a public key: 64 hex digits or k4.public...");
  paseto_pid(&pk, pid);
  printf("%s\n", pid);
  return EXIT_SUCCESS;
}

int main(int argc, char **argv) {
  if (paseto_init() != ERR_OK) {
    fprintf(stderr, "token: libsodium failed to initialise\n");
    return EXIT_INVALID;
  }
  if (argc < 2) return usage(NULL);
  const char *cmd = argv[1];
  if (strcmp(cmd, "keygen") == 0) return cmd_keygen(argc - 1, argv + 1);
  if (strcmp(cmd, "sign") == 0) return cmd_sign(argc - 1, argv + 1);
  if (strcmp(cmd, "verify") == 0) return cmd_verify(argc - 1, argv + 1);
  if (strcmp(cmd, "decode") == 0) return cmd_decode(argc - 1, argv + 1);
  if (strcmp(cmd, "pid") == 0) return cmd_pid(argc - 1, argv + 1);
  if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
    fputs(USAGE, stdout);
    return EXIT_SUCCESS;
  }
  return usage("unknown subcommand");
}
