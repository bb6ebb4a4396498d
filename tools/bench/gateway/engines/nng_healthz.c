/*
 * nng_healthz.c - the smallest useful nng HTTP server: GET /healthz -> 200
 * "ok". Used only to measure nng's supplemental HTTP server against nginx
 * and libmicrohttpd (docs/adr/0003-gateway-http-engine.md).
 *
 *   nng_healthz PORT
 */
#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void healthz(nng_aio *aio) {
  nng_http_res *res;
  if (nng_http_res_alloc(&res) != 0) {
    nng_aio_finish(aio, NNG_ENOMEM);
    return;
  }
  if (nng_http_res_set_header(res, "Content-Type", "text/plain") != 0 ||
      nng_http_res_copy_data(res, "ok", 2) != 0) {
    nng_http_res_free(res);
    nng_aio_finish(aio, NNG_ENOMEM);
    return;
  }
  nng_aio_set_output(aio, 0, res);
  nng_aio_finish(aio, 0);
}

int main(int argc, char **argv) {
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%s",
           argc > 1 ? argv[1] : "18080");
  nng_url *u;
  nng_http_server *s;
  nng_http_handler *h;
  if (nng_url_parse(&u, url) != 0 || nng_http_server_hold(&s, u) != 0) {
    fprintf(stderr, "cannot create server on %s\n", url);
    return 1;
  }
  if (nng_http_handler_alloc(&h, "/healthz", healthz) != 0 ||
      nng_http_handler_set_method(h, "GET") != 0 ||
      nng_http_server_add_handler(s, h) != 0 || nng_http_server_start(s) != 0) {
    fprintf(stderr, "cannot start server on %s\n", url);
    return 1;
  }
  for (;;) pause();
}
