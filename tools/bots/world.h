/*
 * world.h - the load bots' model of what they made on the server: the
 * tenants, each with its owner, one staff member, customers, products,
 * and every order the bots placed with the status they last saw. The
 * load phase picks its next operation from this model (only orders no
 * request is in flight for, so two bots never race on one order), and
 * the report's order counts come from it, which is what a test compares
 * with the server's data.
 */
#ifndef TOOLS_BOTS_WORLD_H
#define TOOLS_BOTS_WORLD_H

#include <stdbool.h>
#include <stddef.h>

#include "libs/base/uuid.h"
#include "tools/bots/stats.h"

#define BOTS_MAX_TENANTS 100
#define BOTS_MAX_CUSTOMERS 20
#define BOTS_MAX_PRODUCTS 50
#define BOTS_MAX_ORDERS_PER_TENANT 100000
#define BOTS_TOKEN_MAX 1024
#define BOTS_MAX_DEVICES 20

/* Order statuses in their forward order; cancelled last. */
enum {
  ST_PENDING,
  ST_CONFIRMED,
  ST_PREPARING,
  ST_READY,
  ST_DELIVERED,
  ST_CANCELLED,
  ST_COUNT
};
extern const char *const kStatusNames[ST_COUNT];

typedef struct bot_user {
  char id[UUID_STR_LEN + 1];
  char email[128];
  char token[BOTS_TOKEN_MAX];
} bot_user;

typedef struct bot_order {
  char id[UUID_STR_LEN + 1];
  int status, customer;
  int device;        /* 1 + the index of the device that made it; 0: a
                      * customer's (only its device changes it then) */
  long long version; /* a device's order: the version it last saw */
  bool busy;         /* a request about it is in flight */
  bool uncertain;    /* a change got no answer: its state is unknown */
} bot_order;

/* A simulated offline device (the sync API): registered by the staff
 * member, one mutation stream (ids 1, 2, 3, ...) and one pull cursor. */
typedef struct bot_device {
  char id[UUID_STR_LEN + 1];
  char token[BOTS_TOKEN_MAX];
  long long next_mid; /* the next mutation id; next_mid - 1 were answered */
  long long cursor;   /* of its pulls */
  long orders;        /* orders its createOrder mutations made */
  bool busy;          /* a push or a pull in flight */
  bool beating;       /* a heartbeat in flight */
  bool uncertain;     /* a push got no answer: its mutation ids unknown */
  long long next_beat_ns;
} bot_device;

typedef struct bot_tenant {
  char id[UUID_STR_LEN + 1];
  char slug[48];
  bot_user owner, staff;
  bot_user customers[BOTS_MAX_CUSTOMERS];
  int ncustomers;
  char products[BOTS_MAX_PRODUCTS][UUID_STR_LEN + 1];
  int nproducts;
  bot_device devices[BOTS_MAX_DEVICES];
  int ndevices;
  bot_order *orders;
  size_t norders, cap;
} bot_tenant;

typedef struct bots_world {
  const char *base;
  long timeout_ms;
  int ntenants, customers, products, devices;
  long stock;
  char password[48]; /* random per run, never printed */
  bot_tenant *tenants;
  stats_op setup; /* every set-up request */
} bots_world;

/* Creates w->ntenants tenants through the API (tenant + owner, a staff
 * member, customers who register and log in, products with stock, and
 * w->devices devices registered by the staff member, each with a session
 * token).
 * Returns 0, or -1 with the failing step printed to stderr. */
int world_setup(bots_world *w);

/* Appends an order to t; NULL when the cap is reached or memory is out. */
bot_order *world_add_order(bot_tenant *t);

void world_free(bots_world *w);

#endif
