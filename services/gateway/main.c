/*
 * main.c - the gateway process: configuration, signals, start, drain.
 * Everything else is gateway.c.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "libs/obs/config.h"
#include "libs/obs/lifecycle.h"
#include "libs/obs/log.h"
#include "libs/svc/cfgdoc.h"
#include "services/gateway/gateway.h"

int main(int argc, char **argv) {
  if (argc > 1) {
    /* `gateway --print-config`: the table for docs/CONFIG.md (cfgdoc.h);
     * the gateway has no libs/svc common entries, its table is whole. */
    if (!cfgdoc_requested(argc, argv)) {
      fprintf(stderr, "usage: gateway [--print-config]\n");
      return 2;
    }
    size_t n;
    const cfg_entry *entries = gateway_config_entries(&n);
    cfgdoc_print_header(stdout);
    return cfgdoc_print(stdout, "gateway", entries, n) == 0 &&
                   fflush(stdout) == 0
               ? 0
               : 1;
  }
  if (lifecycle_init() != ERR_OK) {
    fprintf(stderr, "gateway: cannot set up signal handling\n");
    return 1;
  }
  log_init("gateway", LOG_INFO);
  size_t n;
  const cfg_entry *entries = gateway_config_entries(&n);
  cfg *c = NULL;
  char err[1024];
  if (cfg_load(entries, n, &c, err, sizeof err) != ERR_OK) {
    log_error("bad configuration", "error", err);
    return 1;
  }
  int level = log_level_parse(cfg_str(c, "LOG_LEVEL"));
  log_init("gateway", level < 0 ? LOG_INFO : (enum log_level)level);
  cfg_print(c);
  gateway *g = NULL;
  if (gateway_new(c, NULL, 0, &g) != ERR_OK || gateway_start(g) != ERR_OK) {
    gateway_free(g);
    cfg_free(c);
    return 1;
  }
  int sig = 0;
  if (lifecycle_wait_for_stop(-1, &sig) != ERR_OK) sig = SIGTERM;
  log_info("stopping", "signal", sig == SIGINT ? "INT" : "TERM");
  if (gateway_drain(g, cfg_duration_ms(c, "SHUTDOWN_GRACE_MS")) != ERR_OK)
    log_warn("grace period over with requests in flight");
  /* gateway_free closes nng sockets; nng 1.5.2 can hang there. */
  if (lifecycle_exit_watchdog(5000) != ERR_OK) log_warn("no shutdown watchdog");
  gateway_free(g);
  log_info("stopped");
  cfg_free(c);
  return 0;
}
