/*
 * device.h - what a simulated offline device sends through the sync API
 * and how its answers change the model: a push of one mutation (a
 * createOrder with the device's own UUIDv7 order id, or now and then an
 * updateOrderStatus one step along on one of its own orders, with the
 * version it last saw), a pull from its cursor, a heartbeat.
 *
 * Mutation ids are the device's own sequence 1, 2, 3, ...: the next one
 * is used only once the previous push was answered, and a push that got
 * no answer takes the device out of the mix (its ids are then unknown),
 * so the server's last_mutation_id of every device ends equal to what
 * the bots say it sent.
 */
#ifndef TOOLS_BOTS_DEVICE_H
#define TOOLS_BOTS_DEVICE_H

#include <stdbool.h>

#include "tools/bots/world.h"
#include "tools/multi/xfer.h"

/* One push being planned or answered. */
typedef struct device_push {
  int device;                 /* index in the tenant's devices */
  long long mid;              /* its mutation id */
  long order;                 /* updateOrderStatus: the order's index; -1 */
  int target;                 /* the status it moves to */
  char oid[UUID_STR_LEN + 1]; /* createOrder: the new order's id */
} device_push;

/* A free device of t (no push or pull in flight, not uncertain); -1. */
int device_pick(const bot_tenant *t);

/* Plans p for device p->device of t and returns the push's JSON body
 * (malloc'd), or NULL when out of memory. Marks a moved order busy. */
char *device_push_body(bot_tenant *t, device_push *p);

/* Brings the model up to date with x, the answer to p: the mutation id
 * advances when the server answered for it, an applied createOrder adds
 * the order, an applied status change moves it. True when the mutation
 * was applied (the operation's success); *changes counts applied ones. */
bool device_push_apply(bot_tenant *t, const device_push *p, const xfer *x,
                       long *changes);

/* A pull's path from d's cursor into path[cap]. */
void device_pull_path(const bot_device *d, char *path, size_t cap);

/* Takes the new cursor from a 2xx pull answer; false when it has none. */
bool device_pull_apply(bot_device *d, const xfer *x);

/* A heartbeat's body (malloc'd) or NULL. */
char *device_beat_body(void);

#endif
