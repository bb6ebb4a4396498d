-- The orders schema: the menu (products with stock), tables, orders and
-- their lines, idempotency keys of CreateOrder, and the outbox of events.
-- Applied by libs/db's migration runner with search_path = orders.
--
-- Tenant isolation: every row carries tenant_id, every query of the
-- service filters on it, and row-level security on
-- current_setting('app.tenant_id') is enabled AND forced (so it binds the
-- table owner too). The service switches to the non-superuser role
-- orders_app inside each transaction (SET LOCAL ROLE through
-- set_config('role', .., true), see store.c, ORDERS_DB_ROLE), so the
-- policies apply even when DATABASE_URL names a superuser, as in dev and
-- tests. Two kinds of transaction see across tenants, each through its
-- own permissive policy and setting: the outbox relay and Replay
-- (app.outbox_relay = 'on', libs/outbox) and the janitor that deletes
-- expired idempotency keys (app.orders_janitor = 'on').
--
-- CHECK constraints repeat the service's input rules (validate.h) as the
-- last wall: stock never below zero, quantities 1..99, lengths in
-- characters.

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'orders_app') THEN
    CREATE ROLE orders_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
  END IF;
EXCEPTION
  -- Created concurrently by another database of the cluster, or the
  -- migrating role may not create roles: the deployment then provides
  -- orders_app itself (or sets ORDERS_DB_ROLE empty).
  WHEN duplicate_object OR unique_violation OR insufficient_privilege THEN
    NULL;
END
$$;

-- The menu. Deleting is soft (deleted_at): orders keep their lines and
-- the foreign key from order_items stays valid. stock NULL = unlimited.
CREATE TABLE products (
  tenant_id           uuid NOT NULL,
  id                  uuid NOT NULL,
  name                text NOT NULL,
  description         text NOT NULL DEFAULT '',
  category            text NOT NULL DEFAULT '',
  price_cents         bigint NOT NULL,
  stock               bigint,
  low_stock_threshold bigint NOT NULL DEFAULT 5,
  active              boolean NOT NULL DEFAULT true,
  deleted_at          timestamptz,
  version             bigint NOT NULL DEFAULT 1,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  CONSTRAINT products_name_length CHECK (char_length(name) BETWEEN 1 AND 200),
  CONSTRAINT products_description_length
    CHECK (char_length(description) <= 2000),
  CONSTRAINT products_category_length CHECK (char_length(category) <= 100),
  CONSTRAINT products_price_range
    CHECK (price_cents BETWEEN 0 AND 100000000),
  -- Restocking by cancellations may lift stock past the 1000000 a client
  -- may set, so only the lower bound is a wall here.
  CONSTRAINT products_stock_nonnegative CHECK (stock IS NULL OR stock >= 0),
  CONSTRAINT products_threshold_range
    CHECK (low_stock_threshold BETWEEN 0 AND 1000000),
  CONSTRAINT products_version_positive CHECK (version >= 1)
);

-- The menu listing: by category then name, deleted ones left out.
CREATE INDEX products_menu_idx ON products (tenant_id, category, name)
  WHERE deleted_at IS NULL;

CREATE TABLE tables (
  tenant_id  uuid NOT NULL,
  id         uuid NOT NULL,
  label      text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  CONSTRAINT tables_label_key UNIQUE (tenant_id, label),
  CONSTRAINT tables_label_length CHECK (char_length(label) BETWEEN 1 AND 50)
);

-- Ids are UUIDv7 minted by the service, so (tenant_id, id DESC) is
-- "newest first" and the primary key serves ListOrders' keyset pages.
CREATE TABLE orders (
  tenant_id   uuid NOT NULL,
  id          uuid NOT NULL,
  status      text NOT NULL DEFAULT 'pending',
  total_cents bigint NOT NULL,
  currency    char(3) NOT NULL,
  table_id    uuid,
  notes       text NOT NULL DEFAULT '',
  customer_id uuid,
  version     bigint NOT NULL DEFAULT 1,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  -- MATCH SIMPLE: no check when table_id is NULL; the pair keeps an order
  -- from naming another tenant's table.
  FOREIGN KEY (tenant_id, table_id) REFERENCES tables (tenant_id, id),
  CONSTRAINT orders_status_values CHECK (status IN
    ('pending', 'confirmed', 'preparing', 'ready', 'delivered', 'cancelled')),
  CONSTRAINT orders_total_nonnegative CHECK (total_cents >= 0),
  CONSTRAINT orders_currency_format CHECK (currency ~ '^[A-Z]{3}$'),
  CONSTRAINT orders_notes_length CHECK (char_length(notes) <= 500),
  CONSTRAINT orders_version_positive CHECK (version >= 1)
);

CREATE INDEX orders_status_idx ON orders (tenant_id, status, id);
CREATE INDEX orders_customer_idx ON orders (tenant_id, customer_id, id)
  WHERE customer_id IS NOT NULL;

-- Lines keep the product's name and price as they were when the order
-- was made; later menu changes do not rewrite history.
CREATE TABLE order_items (
  tenant_id        uuid NOT NULL,
  order_id         uuid NOT NULL,
  line_no          integer NOT NULL,
  product_id       uuid NOT NULL,
  name             text NOT NULL,
  unit_price_cents bigint NOT NULL,
  quantity         integer NOT NULL,
  line_total_cents bigint NOT NULL,
  PRIMARY KEY (tenant_id, order_id, line_no),
  CONSTRAINT order_items_product_once UNIQUE (tenant_id, order_id, product_id),
  FOREIGN KEY (tenant_id, order_id) REFERENCES orders (tenant_id, id)
    ON DELETE CASCADE,
  FOREIGN KEY (tenant_id, product_id) REFERENCES products (tenant_id, id),
  CONSTRAINT order_items_line_range CHECK (line_no BETWEEN 0 AND 49),
  CONSTRAINT order_items_quantity_range CHECK (quantity BETWEEN 1 AND 99),
  CONSTRAINT order_items_price_nonnegative CHECK (unit_price_cents >= 0),
  CONSTRAINT order_items_line_total
    CHECK (line_total_cents = unit_price_cents * quantity)
);

-- Idempotency-Key of CreateOrder, written in the same transaction as the
-- order: the key (scoped to the tenant and the calling user, so two
-- users' keys never meet), BLAKE2b-256 of the request (idem.h) and the
-- serialised answer. Rows past expires_at are ignored by lookups and
-- deleted by the janitor.
CREATE TABLE idempotency (
  tenant_id     uuid NOT NULL,
  principal     text NOT NULL,
  key           text NOT NULL,
  method        text NOT NULL,
  request_hash  bytea NOT NULL,
  response_code integer NOT NULL,
  response      bytea NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, principal, key),
  CONSTRAINT idempotency_key_length CHECK (length(key) BETWEEN 1 AND 255),
  CONSTRAINT idempotency_hash_length CHECK (length(request_hash) = 32)
);

CREATE INDEX idempotency_expiry_idx ON idempotency (expires_at);

-- The transactional outbox (libs/outbox/outbox.h): events written in the
-- same transaction as their change; the relay numbers (seq) and publishes
-- them; Replay serves them again.
CREATE TABLE outbox (
  id           bigserial PRIMARY KEY,
  event_id     uuid NOT NULL UNIQUE,
  topic        text NOT NULL,
  type         text NOT NULL,
  tenant_id    uuid,
  payload      bytea NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  seq          bigint UNIQUE,
  published_at timestamptz
);
CREATE INDEX outbox_unsequenced_idx ON outbox (id) WHERE seq IS NULL;
CREATE INDEX outbox_unpublished_idx ON outbox (seq)
  WHERE seq IS NOT NULL AND published_at IS NULL;

-- Row-level security: a request transaction sees its tenant only.
ALTER TABLE products ENABLE ROW LEVEL SECURITY;
ALTER TABLE products FORCE ROW LEVEL SECURITY;
CREATE POLICY products_tenant ON products
  USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE tables ENABLE ROW LEVEL SECURITY;
ALTER TABLE tables FORCE ROW LEVEL SECURITY;
CREATE POLICY tables_tenant ON tables
  USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE orders ENABLE ROW LEVEL SECURITY;
ALTER TABLE orders FORCE ROW LEVEL SECURITY;
CREATE POLICY orders_tenant ON orders
  USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE order_items ENABLE ROW LEVEL SECURITY;
ALTER TABLE order_items FORCE ROW LEVEL SECURITY;
CREATE POLICY order_items_tenant ON order_items
  USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE idempotency ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency FORCE ROW LEVEL SECURITY;
CREATE POLICY idempotency_tenant ON idempotency
  USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY idempotency_janitor ON idempotency
  USING (current_setting('app.orders_janitor', true) = 'on');

ALTER TABLE outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox FORCE ROW LEVEL SECURITY;
CREATE POLICY outbox_tenant ON outbox
  USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY outbox_relay ON outbox
  USING (current_setting('app.outbox_relay', true) = 'on');

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'orders_app') THEN
    EXECUTE 'GRANT USAGE ON SCHEMA orders TO orders_app';
    EXECUTE 'GRANT SELECT, INSERT, UPDATE, DELETE ON products, tables, '
            'orders, order_items, idempotency, outbox TO orders_app';
    EXECUTE 'GRANT USAGE, SELECT ON SEQUENCE outbox_id_seq TO orders_app';
  END IF;
END
$$;
