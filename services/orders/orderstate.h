/*
 * orderstate.h - the order status machine (HTTP-API.md, "Order rules").
 *
 *   pending -> confirmed -> preparing -> ready -> delivered
 *   pending | confirmed | preparing -> cancelled
 *
 * Status only moves one step forward along the chain (no skipping: the
 * kitchen screen and notifications see every step), or to cancelled
 * from the first three. Delivered and cancelled are final. Every other
 * move, staying put included, is FAILED_PRECONDITION. Cancelling
 * restocks (store.c). Who may move: staff+ (UpdateOrderStatus and
 * CancelOrder); a customer may cancel their own order only while it is
 * pending.
 *
 * The database stores the status as text ("pending"); the proto enum
 * (orders.v1.OrderStatus) is the wire form.
 */
#ifndef ORDERS_ORDERSTATE_H
#define ORDERS_ORDERSTATE_H

#include <stdbool.h>

#include "proto/orders/v1/orders.pb-c.h"

typedef Orders__V1__OrderStatus order_status;

#define OS_UNSPECIFIED ORDERS__V1__ORDER_STATUS__ORDER_STATUS_UNSPECIFIED
#define OS_PENDING ORDERS__V1__ORDER_STATUS__ORDER_STATUS_PENDING
#define OS_CONFIRMED ORDERS__V1__ORDER_STATUS__ORDER_STATUS_CONFIRMED
#define OS_PREPARING ORDERS__V1__ORDER_STATUS__ORDER_STATUS_PREPARING
#define OS_READY ORDERS__V1__ORDER_STATUS__ORDER_STATUS_READY
#define OS_DELIVERED ORDERS__V1__ORDER_STATUS__ORDER_STATUS_DELIVERED
#define OS_CANCELLED ORDERS__V1__ORDER_STATUS__ORDER_STATUS_CANCELLED

/* "pending" ... "cancelled"; NULL for unspecified or unknown values. */
const char *orderstate_name(order_status s);

/* The status named by text (as stored); OS_UNSPECIFIED when unknown. */
order_status orderstate_parse(const char *text);

/* True when a known status (not unspecified). */
bool orderstate_valid(order_status s);

/* True when from -> to is a legal move for staff. */
bool orderstate_can_move(order_status from, order_status to);

/* True when an order in status s may be cancelled: by staff+ while
 * pending, confirmed or preparing; by its customer only while pending. */
bool orderstate_can_cancel(order_status s, bool staff);

#endif
