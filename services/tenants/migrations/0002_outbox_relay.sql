-- The outbox moves to libs/outbox (ADR 0005): one relay pass at a time
-- across replicas, holding a session advisory lock, sequencing rows in
-- one transaction and marking them published only after they went out.
-- Applied with search_path = tenants.

-- The relay reads sequenced-but-unpublished rows in seq order.
CREATE INDEX outbox_unpublished_idx ON outbox (seq)
  WHERE seq IS NOT NULL AND published_at IS NULL;

-- The relay and Replay read every tenant's rows: their transactions set
-- app.outbox_relay = 'on' (SET LOCAL); request transactions never do.
-- Permissive, so it widens outbox_access only for them.
CREATE POLICY outbox_relay ON outbox
  USING (current_setting('app.outbox_relay', true) = 'on');

-- The old relay marked rows published when it numbered them; make sure
-- nothing it numbered goes out a second time. Rows without a seq are
-- left for the new relay. (FORCE RLS binds the table owner too: this
-- transaction takes the relay's scope to see every row.)
SELECT set_config('app.outbox_relay', 'on', true);
UPDATE outbox SET published_at = now()
  WHERE seq IS NOT NULL AND published_at IS NULL;
