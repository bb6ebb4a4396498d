/*
 * routes.c - THE ROUTE TABLE. Adding an endpoint is adding a row here
 * (and its RPC in the backend's proto, and its operation in
 * docs/openapi.json): method, path template, backend service and RPC,
 * request and response messages, success status, where an anonymous
 * call's tenant comes from, and the few per-route switches (route.h).
 * Nothing else in the gateway knows any endpoint.
 *
 * Who may call a route is not written here: its minimum role is the one
 * the backend method declares for the caller "gateway" in its
 * proto/<service>/v1/<service>_rpc.proto (option (rpc.v1.access)), the
 * same declaration the backend's guard and handlers read. A route to a
 * method that does not admit the gateway fails the table's compilation.
 */
#include "services/gateway/routes.h"

#include <pthread.h>

#include "proto/auth/v1/auth.pb-c.h"
#include "proto/orders/v1/orders.pb-c.h"
#include "proto/sync/v1/sync.pb-c.h"
#include "proto/tenants/v1/tenants.pb-c.h"
#include "proto/auth/v1/auth_access.h"
#include "proto/orders/v1/orders_access.h"
#include "proto/sync/v1/sync_access.h"
#include "proto/tenants/v1/tenants_access.h"
#include "proto/notifications/v1/notifications.pb-c.h"
#include "proto/notifications/v1/notifications_access.h"

#define AUTH(m) .service = "auth", .rpc = "auth.v1.Auth/" m
#define TENANTS(m) .service = "tenants", .rpc = "tenants.v1.Tenants/" m
#define ORDERS(m) .service = "orders", .rpc = "orders.v1.Orders/" m
#define SYNC(m) .service = "sync", .rpc = "sync.v1.Sync/" m
#define NOTIFICATIONS(m)                                                       \
  .service = "notifications", .rpc = "notifications.v1.Notifications/" m
#define MSG(x) (&x##__descriptor)

/* Filled by the envelope or the gateway, never by clients. */
static const char *const kTenantId[] = {"tenant_id", NULL};
static const char *const kGetTenantHidden[] = {"id", NULL};
static const char *const kCreateUserHidden[] = {"tenant_id", "issue_tokens",
                                                "idempotency_key", NULL};

/* A user is {id, email, name, role, created_at} (HTTP-API.md), and
 * beyond it `phone` only for a user who has one (docs/openapi.json): a
 * user without stays exactly the contract's shape. */
static const char *const kOmitUser[] = {"user.tenant_id", "?user.phone", NULL};
static const char *const kOmitBareUser[] = {"tenant_id", "?phone", NULL};
static const char *const kOmitMembers[] = {
    "members[].tenant_id", "?members[].phone", "?next_cursor", NULL};
/* POST /v1/tenant/members answers {user} only. */
static const char *const kOmitCreateUser[] = {"user.tenant_id",
                                              "?user.phone",
                                              "access_token",
                                              "refresh_token",
                                              "token_type",
                                              "expires_in",
                                              NULL};

/* GET /v1/auth/me answers {user, tenant}. */
/* The order's own id and a cancel's version are for the sync service's
 * calls (offline devices), not the public routes (HTTP-API.md). */
static const char *const kCreateOrderHidden[] = {"id", NULL};
static const char *const kCancelOrderHidden[] = {"version", NULL};

/* GET /v1/products answers {products, next_cursor?}. */
static const char *const kOmitProductsCursor[] = {"?next_cursor", NULL};
/* GET /v1/orders answers {orders, next_cursor?}. */
static const char *const kOmitOrdersCursor[] = {"?next_cursor", NULL};

/* POST /v1/sync/push: each mutation's args as canonical JSON text; a
 * result's optional members only when set (HTTP-API.md). */
static const char *const kPushJsonText[] = {"mutations[].args", NULL};
static const char *const kOmitPush[] = {
    "?results[].server_id", "?results[].version", "?results[].error",
    "?results[].conflict", NULL};

/* PUT /v1/sync/files/{sha256}: the status says whether it was there. */
/* The streamed file routes (ROUTE_STREAMED): the part fields are the
 * gateway's, never the client's; the answer is {sha256, size}. */
static const char *const kFileUploadHidden[] = {"upload_id", "size", "offset",
                                                NULL};
static const char *const kFileDownloadHidden[] = {"offset", "max", NULL};
static const char *const kOmitUploadPart[] = {"existed", "done", "received",
                                              NULL};
#define ROUTE_FILE_BODY ((size_t)25 * 1024 * 1024)

/* GET /v1/sync/pull: each change's entity (an Order, Product or Table)
 * as "data" itself, not inside {"order": ...}. */
static const char *const kPullUnwrap[] = {"changes[].data", NULL};
/* A webhook's secret is shown only when it is made (POST /v1/webhooks). */
static const char *const kOmitSecret[] = {"secret", NULL};
static const char *const kOmitSecrets[] = {"webhooks[].secret", NULL};
/* Lists: next_cursor only while more remain. */
static const char *const kOmitDeliveriesCursor[] = {"?next_cursor", NULL};
/* The inbox: the recipient is the caller; next_cursor only while more. */
static const char *const kOmitInbox[] = {"notifications[].user_id",
                                         "?next_cursor", NULL};

static const route_extra kWithTenant = {
    .key = "tenant",
    .service = "tenants",
    .rpc = "tenants.v1.Tenants/GetTenant",
    .request = MSG(tenants__v1__get_tenant_request),
    .response = MSG(tenants__v1__get_tenant_response),
    .reply_field = "tenant",
};

static const route kRoutes[] = {
    /* ---- tenants ---- */
    {.method = "POST",
     .path = "/v1/tenants",
     TENANTS("CreateTenant"),
     .request = MSG(tenants__v1__create_tenant_request),
     .response = MSG(tenants__v1__create_tenant_response),
     .max_body = ROUTE_BODY_SMALL,
     .status = 201,
     .omit = kOmitUser,
     .flags = ROUTE_KEYED},
    {.method = "GET",
     .path = "/v1/tenant",
     TENANTS("GetTenant"),
     .request = MSG(tenants__v1__get_tenant_request),
     .response = MSG(tenants__v1__get_tenant_response),
     .status = 200,
     .reply_field = "tenant",
     .hidden = kGetTenantHidden,
     .flags = ROUTE_IDEMPOTENT},
    {.method = "PATCH",
     .path = "/v1/tenant",
     TENANTS("UpdateTenant"),
     .request = MSG(tenants__v1__update_tenant_request),
     .response = MSG(tenants__v1__update_tenant_response),
     .status = 200,
     .reply_field = "tenant"},
    {.method = "GET",
     .path = "/v1/tenant/domains",
     TENANTS("ListDomains"),
     .request = MSG(tenants__v1__list_domains_request),
     .response = MSG(tenants__v1__list_domains_response),
     .status = 200,
     .flags = ROUTE_IDEMPOTENT},
    {.method = "POST",
     .path = "/v1/tenant/domains",
     TENANTS("AddDomain"),
     .request = MSG(tenants__v1__add_domain_request),
     .response = MSG(tenants__v1__add_domain_response),
     .status = 201,
     .reply_field = "domain",
     .flags = ROUTE_KEYED},
    {.method = "DELETE",
     .path = "/v1/tenant/domains/{host}",
     TENANTS("RemoveDomain"),
     .request = MSG(tenants__v1__remove_domain_request),
     .response = MSG(tenants__v1__remove_domain_response),
     .status = 204},
    {.method = "POST",
     .path = "/v1/tenant/domains/{host}/verify",
     TENANTS("VerifyDomain"),
     .request = MSG(tenants__v1__verify_domain_request),
     .response = MSG(tenants__v1__verify_domain_response),
     .status = 200,
     .reply_field = "domain"},

    /* ---- auth ---- */
    {.method = "POST",
     .path = "/v1/auth/register",
     AUTH("Register"),
     .request = MSG(auth__v1__register_request),
     .response = MSG(auth__v1__register_response),
     .max_body = ROUTE_BODY_SMALL,
     .status = 201,
     .tenant = ROUTE_TENANT_NAMED,
     .hidden = kTenantId,
     .omit = kOmitUser,
     .flags = ROUTE_KEYED},
    {.method = "POST",
     .path = "/v1/auth/login",
     AUTH("Login"),
     .request = MSG(auth__v1__login_request),
     .response = MSG(auth__v1__login_response),
     .max_body = ROUTE_BODY_SMALL,
     .status = 200,
     .tenant = ROUTE_TENANT_NAMED,
     .hidden = kTenantId,
     .login_key = "email",
     .omit = kOmitUser},
    {.method = "POST",
     .path = "/v1/auth/refresh",
     AUTH("Refresh"),
     .request = MSG(auth__v1__refresh_request),
     .response = MSG(auth__v1__refresh_response),
     .max_body = ROUTE_BODY_SMALL,
     .status = 200,
     .omit = kOmitUser},
    {.method = "POST",
     .path = "/v1/auth/logout",
     AUTH("Logout"),
     .request = MSG(auth__v1__logout_request),
     .response = MSG(auth__v1__logout_response),
     .status = 204},
    {.method = "GET",
     .path = "/v1/auth/me",
     AUTH("Me"),
     .request = MSG(auth__v1__me_request),
     .response = MSG(auth__v1__me_response),
     .status = 200,
     .flags = ROUTE_IDEMPOTENT,
     .extra = &kWithTenant,
     .omit = kOmitUser},
    /* Beyond HTTP-API.md: the caller's own phone (docs/openapi.json). */
    {.method = "PATCH",
     .path = "/v1/auth/me",
     AUTH("UpdateMe"),
     .request = MSG(auth__v1__update_me_request),
     .response = MSG(auth__v1__update_me_response),
     .max_body = ROUTE_BODY_SMALL,
     .status = 200,
     .omit = kOmitUser},
    {.method = "GET",
     .path = "/v1/auth/keys",
     AUTH("Keys"),
     .request = MSG(auth__v1__keys_request),
     .response = MSG(auth__v1__keys_response),
     .status = 200,
     .flags = ROUTE_IDEMPOTENT},

    /* ---- members ---- */
    {.method = "POST",
     .path = "/v1/tenant/members",
     AUTH("CreateUser"),
     .request = MSG(auth__v1__create_user_request),
     .response = MSG(auth__v1__create_user_response),
     .status = 201,
     .hidden = kCreateUserHidden,
     .omit = kOmitCreateUser,
     .flags = ROUTE_KEYED},
    {.method = "GET",
     .path = "/v1/tenant/members",
     AUTH("ListMembers"),
     .request = MSG(auth__v1__list_members_request),
     .response = MSG(auth__v1__list_members_response),
     .status = 200,
     .flags = ROUTE_IDEMPOTENT,
     .omit = kOmitMembers},
    {.method = "PATCH",
     .path = "/v1/tenant/members/{user_id}",
     AUTH("UpdateRole"),
     .request = MSG(auth__v1__update_role_request),
     .response = MSG(auth__v1__update_role_response),
     .status = 200,
     .reply_field = "user",
     .omit = kOmitBareUser},
    {.method = "DELETE",
     .path = "/v1/tenant/members/{user_id}",
     AUTH("RemoveUser"),
     .request = MSG(auth__v1__remove_user_request),
     .response = MSG(auth__v1__remove_user_response),
     .status = 204},

    /* ---- menu: products ---- */
    {.method = "POST",
     .path = "/v1/products",
     ORDERS("CreateProduct"),
     .request = MSG(orders__v1__create_product_request),
     .response = MSG(orders__v1__create_product_response),
     .status = 201,
     .reply_field = "product",
     .flags = ROUTE_KEYED},
    {.method = "GET",
     .path = "/v1/products",
     ORDERS("ListProducts"),
     .request = MSG(orders__v1__list_products_request),
     .response = MSG(orders__v1__list_products_response),
     .status = 200,
     .flags = ROUTE_IDEMPOTENT,
     .omit = kOmitProductsCursor},
    {.method = "GET",
     .path = "/v1/products/{id}",
     ORDERS("GetProduct"),
     .request = MSG(orders__v1__get_product_request),
     .response = MSG(orders__v1__get_product_response),
     .status = 200,
     .reply_field = "product",
     .flags = ROUTE_IDEMPOTENT},
    {.method = "PATCH",
     .path = "/v1/products/{id}",
     ORDERS("UpdateProduct"),
     .request = MSG(orders__v1__update_product_request),
     .response = MSG(orders__v1__update_product_response),
     .status = 200,
     .reply_field = "product"},
    {.method = "DELETE",
     .path = "/v1/products/{id}",
     ORDERS("DeleteProduct"),
     .request = MSG(orders__v1__delete_product_request),
     .response = MSG(orders__v1__delete_product_response),
     .status = 204},

    /* ---- tables ---- */
    {.method = "POST",
     .path = "/v1/tables",
     ORDERS("CreateTable"),
     .request = MSG(orders__v1__create_table_request),
     .response = MSG(orders__v1__create_table_response),
     .status = 201,
     .reply_field = "table",
     .flags = ROUTE_KEYED},
    {.method = "GET",
     .path = "/v1/tables",
     ORDERS("ListTables"),
     .request = MSG(orders__v1__list_tables_request),
     .response = MSG(orders__v1__list_tables_response),
     .status = 200,
     .flags = ROUTE_IDEMPOTENT},

    /* ---- orders (POST /v1/orders honours Idempotency-Key: the pipeline
     * forwards it in the envelope, the service keeps the answer) ---- */
    {.method = "POST",
     .path = "/v1/orders",
     ORDERS("CreateOrder"),
     .request = MSG(orders__v1__create_order_request),
     .response = MSG(orders__v1__create_order_response),
     .status = 201,
     .reply_field = "order",
     .hidden = kCreateOrderHidden,
     .flags = ROUTE_KEYED},
    {.method = "GET",
     .path = "/v1/orders",
     ORDERS("ListOrders"),
     .request = MSG(orders__v1__list_orders_request),
     .response = MSG(orders__v1__list_orders_response),
     .status = 200,
     .flags = ROUTE_IDEMPOTENT,
     .omit = kOmitOrdersCursor},
    {.method = "GET",
     .path = "/v1/orders/{id}",
     ORDERS("GetOrder"),
     .request = MSG(orders__v1__get_order_request),
     .response = MSG(orders__v1__get_order_response),
     .status = 200,
     .reply_field = "order",
     .flags = ROUTE_IDEMPOTENT},
    {.method = "POST",
     .path = "/v1/orders/{id}/status",
     ORDERS("UpdateOrderStatus"),
     .request = MSG(orders__v1__update_order_status_request),
     .response = MSG(orders__v1__update_order_status_response),
     .status = 200,
     .reply_field = "order"},
    {.method = "POST",
     .path = "/v1/orders/{id}/cancel",
     ORDERS("CancelOrder"),
     .request = MSG(orders__v1__cancel_order_request),
     .response = MSG(orders__v1__cancel_order_response),
     .status = 200,
     .reply_field = "order",
     .hidden = kCancelOrderHidden},

    /* ---- sync: devices and their sessions (HTTP-API.md "Offline sync and
     * devices"); the session is anonymous, its tenant named by Host or
     * X-Tenant like a login ---- */
    {.method = "POST",
     .path = "/v1/sync/devices",
     SYNC("RegisterDevice"),
     .request = MSG(sync__v1__register_device_request),
     .response = MSG(sync__v1__register_device_response),
     .max_body = ROUTE_BODY_SMALL,
     .status = 201,
     .flags = ROUTE_KEYED},
    {.method = "GET",
     .path = "/v1/sync/devices",
     SYNC("ListDevices"),
     .request = MSG(sync__v1__list_devices_request),
     .response = MSG(sync__v1__list_devices_response),
     .status = 200,
     .flags = ROUTE_IDEMPOTENT},
    {.method = "GET",
     .path = "/v1/sync/devices/{id}",
     SYNC("GetDevice"),
     .request = MSG(sync__v1__get_device_request),
     .response = MSG(sync__v1__get_device_response),
     .status = 200,
     .reply_field = "device",
     .flags = ROUTE_IDEMPOTENT},
    {.method = "DELETE",
     .path = "/v1/sync/devices/{id}",
     SYNC("DeleteDevice"),
     .request = MSG(sync__v1__delete_device_request),
     .response = MSG(sync__v1__delete_device_response),
     .status = 204},
    {.method = "POST",
     .path = "/v1/sync/devices/{id}/session",
     SYNC("CreateSession"),
     .request = MSG(sync__v1__create_session_request),
     .response = MSG(sync__v1__create_session_response),
     .max_body = ROUTE_BODY_SMALL,
     .status = 200,
     .tenant = ROUTE_TENANT_NAMED},
    /* Devices only (sync checks the role "device"; the rank is staff).
     * A mutation's args reach sync as canonical JSON text, the text its
     * hash is checked over. */
    {.method = "POST",
     .path = "/v1/sync/push",
     SYNC("Push"),
     .request = MSG(sync__v1__push_request),
     .response = MSG(sync__v1__push_response),
     .status = 200,
     .json_text = kPushJsonText,
     .omit = kOmitPush},
    {.method = "GET",
     .path = "/v1/sync/pull",
     SYNC("Pull"),
     .request = MSG(sync__v1__pull_request),
     .response = MSG(sync__v1__pull_response),
     .status = 200,
     .unwrap = kPullUnwrap,
     .flags = ROUTE_IDEMPOTENT},
    {.method = "GET",
     .path = "/v1/sync/conflicts",
     SYNC("ListConflicts"),
     .request = MSG(sync__v1__list_conflicts_request),
     .response = MSG(sync__v1__list_conflicts_response),
     .status = 200,
     .flags = ROUTE_IDEMPOTENT},
    {.method = "POST",
     .path = "/v1/sync/conflicts/{id}/resolve",
     SYNC("ResolveConflict"),
     .request = MSG(sync__v1__resolve_conflict_request),
     .response = MSG(sync__v1__resolve_conflict_response),
     .max_body = ROUTE_BODY_SMALL,
     .status = 200,
     .reply_field = "order"},
    {.method = "GET",
     .path = "/v1/sync/settings",
     SYNC("GetSettings"),
     .request = MSG(sync__v1__get_settings_request),
     .response = MSG(sync__v1__get_settings_response),
     .status = 200,
     .reply_field = "settings",
     .flags = ROUTE_IDEMPOTENT},
    {.method = "PATCH",
     .path = "/v1/sync/settings",
     SYNC("UpdateSettings"),
     .request = MSG(sync__v1__update_settings_request),
     .response = MSG(sync__v1__update_settings_response),
     .max_body = ROUTE_BODY_SMALL,
     .status = 200,
     .reply_field = "settings"},
    /* Devices only (sync checks the role "device"; the rank is staff). */
    {.method = "POST",
     .path = "/v1/sync/heartbeat",
     SYNC("Heartbeat"),
     .request = MSG(sync__v1__heartbeat_request),
     .response = MSG(sync__v1__heartbeat_response),
     .max_body = ROUTE_BODY_SMALL,
     .status = 200},
    /* Files (a device or staff+): raw bytes both ways, streamed in parts
     * of ROUTE_PART_BYTES (route.h, ROUTE_STREAMED), the one route with a
     * 25 MiB body (ROUTE_FILE_BODY); HEAD is answered as GET without the
     * body (its part asks for the size only). */
    {.method = "GET",
     .path = "/v1/sync/files/{sha256}",
     SYNC("GetFilePart"),
     .request = MSG(sync__v1__get_file_part_request),
     .response = MSG(sync__v1__get_file_part_response),
     .status = 200,
     .hidden = kFileDownloadHidden,
     .raw_reply = "data",
     .flags = ROUTE_IDEMPOTENT | ROUTE_STREAMED},
    {.method = "PUT",
     .path = "/v1/sync/files/{sha256}",
     SYNC("PutFilePart"),
     .request = MSG(sync__v1__put_file_part_request),
     .response = MSG(sync__v1__put_file_part_response),
     .max_body = ROUTE_FILE_BODY,
     .status = 201,
     .hidden = kFileUploadHidden,
     .raw_body = "data",
     .existed_field = "existed",
     .omit = kOmitUploadPart,
     .flags = ROUTE_IDEMPOTENT | ROUTE_STREAMED},
    {.method = "POST",
     .path = "/v1/sync/files/missing",
     SYNC("MissingFiles"),
     .request = MSG(sync__v1__missing_files_request),
     .response = MSG(sync__v1__missing_files_response),
     .max_body = 128 * 1024, /* 1000 hashes of 64 digits, quoted */
     .status = 200,
     .flags = ROUTE_IDEMPOTENT},
    /* ---- webhooks (notifications) ---- */
    {.method = "POST",
     .path = "/v1/webhooks",
     NOTIFICATIONS("CreateWebhook"),
     .request = MSG(notifications__v1__create_webhook_request),
     .response = MSG(notifications__v1__create_webhook_response),
     .max_body = ROUTE_BODY_SMALL,
     .status = 201,
     .reply_field = "webhook",
     .flags = ROUTE_KEYED},
    {.method = "GET",
     .path = "/v1/webhooks",
     NOTIFICATIONS("ListWebhooks"),
     .request = MSG(notifications__v1__list_webhooks_request),
     .response = MSG(notifications__v1__list_webhooks_response),
     .status = 200,
     .flags = ROUTE_IDEMPOTENT,
     .omit = kOmitSecrets},
    {.method = "GET",
     .path = "/v1/webhooks/{id}",
     NOTIFICATIONS("GetWebhook"),
     .request = MSG(notifications__v1__get_webhook_request),
     .response = MSG(notifications__v1__get_webhook_response),
     .status = 200,
     .reply_field = "webhook",
     .flags = ROUTE_IDEMPOTENT,
     .omit = kOmitSecret},
    {.method = "PATCH",
     .path = "/v1/webhooks/{id}",
     NOTIFICATIONS("UpdateWebhook"),
     .request = MSG(notifications__v1__update_webhook_request),
     .response = MSG(notifications__v1__update_webhook_response),
     .max_body = ROUTE_BODY_SMALL,
     .status = 200,
     .reply_field = "webhook",
     .omit = kOmitSecret},
    {.method = "DELETE",
     .path = "/v1/webhooks/{id}",
     NOTIFICATIONS("DeleteWebhook"),
     .request = MSG(notifications__v1__delete_webhook_request),
     .response = MSG(notifications__v1__delete_webhook_response),
     .status = 204},
    {.method = "POST",
     .path = "/v1/webhooks/{id}/rotate-secret",
     NOTIFICATIONS("RotateWebhookSecret"),
     .request = MSG(notifications__v1__rotate_webhook_secret_request),
     .response = MSG(notifications__v1__rotate_webhook_secret_response),
     .max_body = ROUTE_BODY_SMALL,
     .status = 200},
    {.method = "POST",
     .path = "/v1/webhooks/{id}/test",
     NOTIFICATIONS("TestWebhook"),
     .request = MSG(notifications__v1__test_webhook_request),
     .response = MSG(notifications__v1__test_webhook_response),
     .max_body = ROUTE_BODY_SMALL,
     .status = 202},
    {.method = "GET",
     .path = "/v1/webhooks/{webhook_id}/deliveries",
     NOTIFICATIONS("ListDeliveries"),
     .request = MSG(notifications__v1__list_deliveries_request),
     .response = MSG(notifications__v1__list_deliveries_response),
     .status = 200,
     .flags = ROUTE_IDEMPOTENT,
     .omit = kOmitDeliveriesCursor},
    {.method = "POST",
     .path = "/v1/deliveries/{id}/retry",
     NOTIFICATIONS("RetryDelivery"),
     .request = MSG(notifications__v1__retry_delivery_request),
     .response = MSG(notifications__v1__retry_delivery_response),
     .max_body = ROUTE_BODY_SMALL,
     .status = 202},
    /* Beyond HTTP-API.md: one delivery with its attempts. */
    {.method = "GET",
     .path = "/v1/deliveries/{id}",
     NOTIFICATIONS("GetDelivery"),
     .request = MSG(notifications__v1__get_delivery_request),
     .response = MSG(notifications__v1__get_delivery_response),
     .status = 200,
     .flags = ROUTE_IDEMPOTENT},
    /* Beyond HTTP-API.md: the tenant's channels. */
    {.method = "GET",
     .path = "/v1/notifications/settings",
     NOTIFICATIONS("GetSettings"),
     .request = MSG(notifications__v1__get_settings_request),
     .response = MSG(notifications__v1__get_settings_response),
     .status = 200,
     .reply_field = "settings",
     .flags = ROUTE_IDEMPOTENT},
    {.method = "PATCH",
     .path = "/v1/notifications/settings",
     NOTIFICATIONS("UpdateSettings"),
     .request = MSG(notifications__v1__update_settings_request),
     .response = MSG(notifications__v1__update_settings_response),
     .max_body = ROUTE_BODY_SMALL,
     .status = 200,
     .reply_field = "settings"},
    /* ---- in-app inbox (notifications) ---- */
    {.method = "GET",
     .path = "/v1/notifications",
     NOTIFICATIONS("ListNotifications"),
     .request = MSG(notifications__v1__list_notifications_request),
     .response = MSG(notifications__v1__list_notifications_response),
     .status = 200,
     .flags = ROUTE_IDEMPOTENT,
     .omit = kOmitInbox},
    {.method = "POST",
     .path = "/v1/notifications/read-all",
     NOTIFICATIONS("MarkAllNotificationsRead"),
     .request = MSG(notifications__v1__mark_all_notifications_read_request),
     .response = MSG(notifications__v1__mark_all_notifications_read_response),
     .max_body = ROUTE_BODY_SMALL,
     .status = 204},
    {.method = "POST",
     .path = "/v1/notifications/{id}/read",
     NOTIFICATIONS("MarkNotificationRead"),
     .request = MSG(notifications__v1__mark_notification_read_request),
     .response = MSG(notifications__v1__mark_notification_read_response),
     .max_body = ROUTE_BODY_SMALL,
     .status = 204},
    /* ---- campaigns (notifications) ---- */
    {.method = "POST",
     .path = "/v1/campaigns",
     NOTIFICATIONS("CreateCampaign"),
     .request = MSG(notifications__v1__create_campaign_request),
     .response = MSG(notifications__v1__create_campaign_response),
     .max_body = ROUTE_BODY_SMALL,
     .status = 201,
     .reply_field = "campaign",
     .flags = ROUTE_KEYED},
    {.method = "GET",
     .path = "/v1/campaigns",
     NOTIFICATIONS("ListCampaigns"),
     .request = MSG(notifications__v1__list_campaigns_request),
     .response = MSG(notifications__v1__list_campaigns_response),
     .status = 200,
     .flags = ROUTE_IDEMPOTENT,
     .omit = kOmitDeliveriesCursor},
    {.method = "GET",
     .path = "/v1/campaigns/{id}",
     NOTIFICATIONS("GetCampaign"),
     .request = MSG(notifications__v1__get_campaign_request),
     .response = MSG(notifications__v1__get_campaign_response),
     .status = 200,
     .reply_field = "campaign",
     .flags = ROUTE_IDEMPOTENT},
    {.method = "PATCH",
     .path = "/v1/campaigns/{id}",
     NOTIFICATIONS("UpdateCampaign"),
     .request = MSG(notifications__v1__update_campaign_request),
     .response = MSG(notifications__v1__update_campaign_response),
     .max_body = ROUTE_BODY_SMALL,
     .status = 200,
     .reply_field = "campaign"},
    {.method = "DELETE",
     .path = "/v1/campaigns/{id}",
     NOTIFICATIONS("DeleteCampaign"),
     .request = MSG(notifications__v1__delete_campaign_request),
     .response = MSG(notifications__v1__delete_campaign_response),
     .status = 204},
    {.method = "POST",
     .path = "/v1/campaigns/{id}/send",
     NOTIFICATIONS("SendCampaign"),
     .request = MSG(notifications__v1__send_campaign_request),
     .response = MSG(notifications__v1__send_campaign_response),
     .max_body = ROUTE_BODY_SMALL,
     .status = 202},
};

#define NROUTES (sizeof kRoutes / sizeof kRoutes[0])

static const svcid_access_table *const kAccess[] = {
    &auth_v1_access, &tenants_v1_access, &orders_v1_access,
    &notifications_v1_access, &sync_v1_access};

int routes_declared_role(const char *rpc) {
  for (size_t i = 0; i < sizeof kAccess / sizeof kAccess[0]; i++) {
    const svcid_method_access *m = svcid_access_find(kAccess[i], rpc);
    const svcid_caller_rule *rule = svcid_access_caller(m, "gateway");
    if (m == NULL) continue;
    if (rule == NULL || rule->user == SVCID_USER_NONE) return -1;
    /* USER_ANONYMOUS .. USER_OWNER are ROUTE_ANYONE .. ROUTE_OWNER. */
    return rule->user - SVCID_USER_ANONYMOUS;
  }
  return -1;
}

static route g_rows[NROUTES];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* The rows with min_role from the declarations; -1 (refused by
 * route_table_new, naming the row) where the gateway may not call. */
static void fill_rows(void) {
  for (size_t i = 0; i < NROUTES; i++) {
    g_rows[i] = kRoutes[i];
    g_rows[i].min_role = routes_declared_role(kRoutes[i].rpc);
  }
}

const route *routes_public(size_t *n) {
  pthread_once(&g_once, fill_rows);
  *n = NROUTES;
  return g_rows;
}
