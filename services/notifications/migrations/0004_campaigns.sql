-- Campaigns: one message to every member of the tenant with one of the
-- audience's roles, on each channel, sent in batches (campaign.c).
--
-- The runner (a periodic job on every replica) claims a campaign with a
-- lease (lease_until), sends the next batch of recipients after cursor
-- (the last user id done), and moves cursor, targeted and batches in the
-- transaction that makes that batch's notifications and deliveries: a
-- replica that dies mid-batch leaves the batch undone, the next one
-- redoes it, and the (event id, recipient) keys - the campaign id is the
-- event id - make each message once. delivered and failed are counted
-- from the inbox and the deliveries when read, so they are never off.
-- The runner's cross-tenant read (which campaigns are due) has its own
-- SELECT-only policy behind app.notifications_sweep, like the sweep's.

CREATE TABLE campaigns (
  tenant_id    uuid NOT NULL,
  id           uuid NOT NULL,
  name         text NOT NULL,
  title        text NOT NULL,
  body         text NOT NULL DEFAULT '',
  channels     text[] NOT NULL,
  roles        text[] NOT NULL,
  status       text NOT NULL,
  scheduled_at timestamptz,
  sent_at      timestamptz,
  cursor       uuid,
  targeted     bigint NOT NULL DEFAULT 0,
  batches      integer NOT NULL DEFAULT 0,
  lease_until  timestamptz,
  created_at   timestamptz NOT NULL,
  updated_at   timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, id),
  CONSTRAINT campaigns_status CHECK
    (status IN ('draft', 'scheduled', 'sending', 'sent', 'cancelled')),
  CONSTRAINT campaigns_name_length CHECK (char_length(name) BETWEEN 1 AND 200),
  CONSTRAINT campaigns_title_length CHECK (char_length(title) BETWEEN 1 AND 200),
  CONSTRAINT campaigns_body_length CHECK (char_length(body) <= 2000),
  CONSTRAINT campaigns_channels CHECK (cardinality(channels) BETWEEN 1 AND 3
    AND channels <@ ARRAY['in_app', 'email', 'sms']),
  CONSTRAINT campaigns_roles CHECK (cardinality(roles) BETWEEN 1 AND 4
    AND roles <@ ARRAY['owner', 'admin', 'staff', 'customer']),
  CONSTRAINT campaigns_scheduled CHECK (status <> 'scheduled' OR scheduled_at IS NOT NULL)
);
CREATE INDEX campaigns_by_tenant ON campaigns (tenant_id, id DESC);
CREATE INDEX campaigns_due ON campaigns (scheduled_at)
  WHERE status IN ('scheduled', 'sending');
-- delivered and failed of a campaign: its e-mails by event id.
CREATE INDEX deliveries_by_event ON deliveries (tenant_id, event_id)
  WHERE kind <> 'webhook';

ALTER TABLE campaigns ENABLE ROW LEVEL SECURITY;
ALTER TABLE campaigns FORCE ROW LEVEL SECURITY;
CREATE POLICY campaigns_tenant ON campaigns
  USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY campaigns_sweep ON campaigns FOR SELECT
  USING (current_setting('app.notifications_sweep', true) = 'on');

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'notifications_app') THEN
    EXECUTE 'GRANT SELECT, INSERT, UPDATE, DELETE ON campaigns TO notifications_app';
  END IF;
END
$$;
