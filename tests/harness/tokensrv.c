/*
 * tokensrv.c - the verification stand-in web site (see tokensrv.h). One
 * microhttpd daemon with its own thread; the bodies are files named by
 * token, so the parent process's server sees what a forked test case
 * wrote.
 */
#include "tests/harness/tokensrv.h"

#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "libs/base/strutil.h"

#define PREFIX "/.well-known/restaurant-domain-verification/"
#define BODY_MAX 4096

struct harness_tokensrv {
  struct MHD_Daemon *d;
  int port;
  char dir[256];
};

static bool token_ok(const char *t) {
  size_t n = strlen(t);
  if (n == 0 || n > 100) return false;
  for (size_t i = 0; i < n; i++)
    if (!((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= 'A' && t[i] <= 'Z') ||
          (t[i] >= '0' && t[i] <= '9') || t[i] == '-' || t[i] == '_'))
      return false;
  return true;
}

/* The body for token into out (NUL-terminated); false when none. */
static bool read_body(const harness_tokensrv *s, const char *token, char *out,
                      size_t cap) {
  if (!token_ok(token)) return false;
  char path[400];
  snprintf(path, sizeof path, "%s/%s", s->dir, token);
  FILE *f = fopen(path, "rb");
  if (f == NULL) return false;
  size_t n = fread(out, 1, cap - 1, f);
  out[n] = '\0';
  fclose(f);
  return true;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *c,
                              const char *url, const char *method,
                              const char *version, const char *upload,
                              size_t *upload_len, void **state) {
  (void)version, (void)upload, (void)upload_len, (void)state;
  const harness_tokensrv *s = cls;
  char *body = malloc(BODY_MAX);
  if (body == NULL) return MHD_NO;
  bool ok = strcmp(method, "GET") == 0 &&
            strncmp(url, PREFIX, strlen(PREFIX)) == 0 &&
            read_body(s, url + strlen(PREFIX), body, BODY_MAX);
  const char *text = ok ? body : "not here";
  struct MHD_Response *r = MHD_create_response_from_buffer(
      strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
  free(body);
  enum MHD_Result rc = MHD_queue_response(c, ok ? 200 : 404, r);
  MHD_destroy_response(r);
  return rc;
}

harness_tokensrv *harness_tokensrv_start(void) {
  harness_tokensrv *s = calloc(1, sizeof *s);
  if (s == NULL) return NULL;
  const char *tmp = getenv("TMPDIR");
  snprintf(s->dir, sizeof s->dir, "%s/tokensrv-XXXXXX",
           tmp && tmp[0] ? tmp : "/tmp");
  if (mkdtemp(s->dir) == NULL) {
    fprintf(stderr, "tokensrv: no directory\n");
    free(s);
    return NULL;
  }
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL,
                          answer, s, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_END);
  const union MHD_DaemonInfo *info =
      s->d ? MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT) : NULL;
  if (info == NULL) {
    fprintf(stderr, "tokensrv: cannot start\n");
    harness_tokensrv_stop(s);
    return NULL;
  }
  s->port = info->port;
  return s;
}

const char *harness_tokensrv_env(const harness_tokensrv *s, char *out,
                                 int cap) {
  snprintf(out, (size_t)cap, "TENANTS_DOMAIN_VERIFY_CONNECT_TO=127.0.0.1:%d",
           s->port);
  return out;
}

void harness_tokensrv_set(const harness_tokensrv *s, const char *token,
                          const char *body) {
  if (!token_ok(token)) return;
  char path[400];
  snprintf(path, sizeof path, "%s/%s", s->dir, token);
  if (body == NULL) {
    unlink(path);
    return;
  }
  FILE *f = fopen(path, "wb");
  if (f == NULL) return;
  fputs(body, f);
  fclose(f);
}

void harness_tokensrv_stop(harness_tokensrv *s) {
  if (s == NULL) return;
  if (s->d != NULL) MHD_stop_daemon(s->d);
  /* The token files stay with the rest of the test's TMPDIR. */
  free(s);
}
