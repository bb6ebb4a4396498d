/*
 * report.h - the multi-server client's output: a table for people or one
 * JSON object for scripts, from an engine_result.
 */
#ifndef TOOLS_MULTI_REPORT_H
#define TOOLS_MULTI_REPORT_H

#include <stdbool.h>
#include <stdio.h>

#include "tools/multi/engine.h"

/* One line per server (outcome, status, attempts, latency, detail) and a
 * result line naming the servers that failed; with show_body, the
 * winning (or first accepted) answer after it. */
void report_table(FILE *f, const engine_cfg *c, const engine_result *r,
                  bool show_body);

/* {"mode","method","path","idempotency_key","ok","accepted","servers":[
 * {url,outcome,status,attempts,renewals,latency_ms,detail,logged_out}],
 * "winner","failed":[url…],"answer"} on one line. */
void report_json(FILE *f, const engine_cfg *c, const engine_result *r);

#endif
