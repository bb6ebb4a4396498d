/*
 * routes.h - the public API's route table (HTTP-API.md): one array of
 * rows, one per endpoint. docs/openapi.json describes the same endpoints
 * and openapi_test fails when the two disagree.
 */
#ifndef GATEWAY_ROUTES_H
#define GATEWAY_ROUTES_H

#include <stddef.h>

#include "services/gateway/route.h"

/* The rows (static) and their number. */
const route *routes_public(size_t *n);

#endif
