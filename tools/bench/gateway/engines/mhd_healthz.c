/*
 * mhd_healthz.c - the smallest useful libmicrohttpd server: any GET -> 200
 * "ok", in the mode the gateway uses (internal thread pool, epoll, turbo).
 * Used only to measure microhttpd against nginx and nng
 * (docs/adr/0003-gateway-http-engine.md).
 *
 *   mhd_healthz PORT [THREADS]
 */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static struct MHD_Response *ok_response;

static enum MHD_Result handle(void *cls, struct MHD_Connection *c,
                              const char *url, const char *method,
                              const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls) {
  static int seen;
  /* The first call only announces the headers; answering there would make
   * MHD close the connection (it cannot know the body is empty yet). */
  if (*con_cls == NULL) {
    *con_cls = &seen;
    return MHD_YES;
  }
  return MHD_queue_response(c, 200, ok_response);
}

int main(int argc, char **argv) {
  long port = argc > 1 ? strtol(argv[1], NULL, 10) : 18082;
  long threads = argc > 2 ? strtol(argv[2], NULL, 10) : 2;
  if (port <= 0 || port > 65535 || threads <= 0 || threads > 64) {
    fprintf(stderr, "usage: mhd_healthz PORT [THREADS]\n");
    return 2;
  }
  ok_response =
      MHD_create_response_from_buffer(2, (void *)"ok", MHD_RESPMEM_PERSISTENT);
  if (ok_response == NULL ||
      MHD_add_response_header(ok_response, "Content-Type", "text/plain") !=
          MHD_YES)
    return 1;
  struct MHD_Daemon *d = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TURBO,
      (uint16_t)port, NULL, NULL, handle, NULL, MHD_OPTION_THREAD_POOL_SIZE,
      (unsigned int)threads, MHD_OPTION_CONNECTION_LIMIT, 10000u,
      MHD_OPTION_END);
  if (d == NULL) {
    fprintf(stderr, "cannot start on port %ld\n", port);
    return 1;
  }
  for (;;) pause();
}
