/*
 * local.h - changes made on this machine, online or not: each one is a
 * mutation in the outbox and its effect on the local replica, written in
 * one transaction.
 */
#ifndef CLIENTS_SYNCD_LOCAL_H
#define CLIENTS_SYNCD_LOCAL_H

#include <sqlite3.h>
#include <stdint.h>

#include "libs/base/uuid.h"

/* A new order of qty x product (and table_id, NULL: none); its client
 * UUIDv7 into order_id. 0 on success, else -1 with a message in
 * err[256]. */
int local_order_add(sqlite3 *db, const char *product_id, int64_t qty,
                    const char *table_id, char order_id[UUID_STR_LEN + 1],
                    char err[256]);

/* Order order_id to status (cancelled: a cancelOrder mutation), based
 * on the version the replica holds. 0 on success, else -1 with err. */
int local_order_status(sqlite3 *db, const char *order_id, const char *status,
                       char err[256]);

#endif
