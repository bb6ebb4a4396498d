/*
 * load.h - the load phase: operations chosen at random by a fixed mix,
 * started at a given average rate (Poisson arrivals: exponential gaps,
 * as independent users produce) for a given time, at most `concurrency`
 * in flight over one curl multi handle.
 *
 * The mix (weights out of 100) is what a restaurant's day looks like
 * from the API: customers place orders (35) and look at the menu (12) and
 * at their order (7) and sometimes cancel a pending one (4); the kitchen
 * moves orders one step along (30) and watches the list (12). An
 * operation that needs an order none is free for falls back to placing
 * one. Every order creation carries an Idempotency-Key.
 *
 * With devices (device.h) the mix also has a device's push (10) and pull
 * (5), falling back to placing an order when no device of the tenant is
 * free; every device beats on its own interval besides (the first beat
 * at a random point of the first interval, so they do not all beat at
 * once).
 */
#ifndef TOOLS_BOTS_LOAD_H
#define TOOLS_BOTS_LOAD_H

#include "tools/bots/stats.h"
#include "tools/bots/world.h"

typedef enum {
  OP_CREATE_ORDER,
  OP_ADVANCE_ORDER,
  OP_CANCEL_ORDER,
  OP_GET_ORDER,
  OP_LIST_ORDERS,
  OP_LIST_PRODUCTS,
  OP_PUSH,      /* a device's push of one mutation */
  OP_PULL,      /* a device's pull from its cursor */
  OP_HEARTBEAT, /* not in the mix: each device's own interval */
  OP_COUNT
} load_op;

typedef struct load_cfg {
  double rate;       /* operations per second, all tenants together */
  double duration_s; /* how long to start operations */
  int concurrency;   /* at most this many in flight */
  double beat_s;     /* each device's heartbeat interval */
} load_cfg;

typedef struct load_result {
  stats_op ops[OP_COUNT];
  double elapsed_s;    /* from the first start to the last answer */
  long late;           /* starts more than 5 ms behind schedule (a full
                        * `concurrency`, or the client or machine behind) */
  long uncertain;      /* changes that got no answer (state unknown) */
  long device_changes; /* mutations applied (each an order event) */
} load_result;

/* Runs the load against w. Returns 0, or -1 on a local failure. */
int load_run(bots_world *w, const load_cfg *c, load_result *r);

void load_result_free(load_result *r);

#endif
